"""Layers: gradients with respect to inputs and parameters, the loss, and the Module API."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigan import Tensor, backend, gradcheck, manual_seed, nn

# The `device` fixture is a plain string, so sharing it across hypothesis examples is safe.
with_device = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

dims = st.integers(1, 5)


def batch(n, features, low=-3.0, high=3.0):
    return arrays(np.float64, (n, features), elements=st.floats(low, high, allow_nan=False))


def leaf(data, device="cpu"):
    return Tensor(data, requires_grad=True, dtype=np.float64, device=device)


def check_layer(layer, x):
    """gradcheck with respect to the input and every parameter of `layer`."""
    params = layer.parameters()
    assert gradcheck(lambda x, *_: layer(x), [x, *params])


# --- gradients of every layer ---------------------------------------------------------------


@with_device
@given(data=st.data(), n=dims, fan_in=dims, fan_out=dims)
def test_linear(device, data, n, fan_in, fan_out):
    layer = nn.Linear(fan_in, fan_out, dtype=np.float64, device=device)
    a = data.draw(batch(n, fan_in))
    out = layer(leaf(a, device))
    expected = a @ layer.weight.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-14)
    check_layer(layer, leaf(a, device))


@with_device
@given(data=st.data(), n=dims, fan_in=dims, units=dims, pieces=st.integers(1, 4))
def test_maxout(device, data, n, fan_in, units, pieces):
    layer = nn.Maxout(fan_in, units, pieces, dtype=np.float64, device=device)
    a = data.draw(batch(n, fan_in))
    z = a @ layer.linear.weight.numpy() + layer.linear.bias.numpy()
    # Adjacent columns are the pieces of one unit.
    expected = z.reshape(n, units, pieces).max(axis=2)
    np.testing.assert_allclose(layer(leaf(a, device)).numpy(), expected, rtol=1e-12, atol=1e-14)
    assert layer.parameters() == [layer.linear.weight, layer.linear.bias]
    check_layer(layer, leaf(a, device))


def test_maxout_picks_the_largest_piece_per_unit():
    layer = nn.Maxout(1, 2, 3, dtype=np.float64)
    layer.linear.weight.data = np.array([[1.0, 3.0, 2.0, -1.0, -2.0, -3.0]])
    layer.linear.bias.data = np.zeros(6)
    x = leaf([[1.0], [-1.0]])
    np.testing.assert_array_equal(layer(x).numpy(), [[3.0, -1.0], [-1.0, 3.0]])
    layer(x).sum().backward()
    # Winners: columns 1 and 3 for x = 1, columns 0 and 5 for x = -1.
    np.testing.assert_array_equal(layer.linear.weight.grad, [[-1, 1, 0, 1, 0, -1]])
    np.testing.assert_array_equal(layer.linear.bias.grad, [1, 1, 0, 1, 0, 1])


ACTIVATIONS = {
    "relu": (nn.ReLU(), lambda a: np.maximum(a, 0)),
    "leaky_relu": (nn.LeakyReLU(0.2), lambda a: np.where(a > 0, a, 0.2 * a)),
    "sigmoid": (nn.Sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    "tanh": (nn.Tanh(), np.tanh),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@with_device
@given(data=st.data(), n=dims, features=dims)
def test_activation(name, device, data, n, features):
    layer, reference = ACTIVATIONS[name]
    a = data.draw(batch(n, features))
    a = np.where(a >= 0, a + 1e-3, a - 1e-3)  # away from the kink of relu and leaky relu
    x = leaf(a, device)
    np.testing.assert_allclose(layer(x).numpy(), reference(a), rtol=1e-12)
    assert layer.parameters() == []
    check_layer(layer, x)


@with_device
@given(data=st.data(), n=dims, features=dims, p=st.sampled_from([0.0, 0.2, 0.5, 0.9]))
def test_dropout_gradients(device, data, n, features, p):
    layer = nn.Dropout(p)
    x = leaf(data.draw(batch(n, features)), device)
    layer.eval()
    assert layer(x) is x
    check_layer(layer, x)

    layer.train()

    def with_fixed_mask(x):
        manual_seed(7)  # every call of the forward draws the same mask
        return layer(x)

    assert gradcheck(with_fixed_mask, [x])
    # The gradient is the mask itself: 0 where dropped, 1/(1-p) where kept.
    x.grad = None
    out = with_fixed_mask(x)
    out.sum().backward()
    grad = backend.to_numpy(x.grad)
    kept = out.numpy() != 0
    np.testing.assert_allclose(grad[kept], 1 / (1 - p), rtol=1e-12)
    np.testing.assert_array_equal(grad[~kept & (x.numpy() != 0)], 0)


def test_sequential_and_mlp():
    manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6, dtype=np.float64), nn.LeakyReLU(0.2), nn.Linear(6, 6, dtype=np.float64),
                          nn.Tanh(), nn.Maxout(6, 3, 2, dtype=np.float64), nn.Dropout(0.5),
                          nn.Linear(3, 1, dtype=np.float64), nn.Sigmoid())
    x = leaf(np.random.default_rng(1).standard_normal((5, 4)))
    model.eval()
    check_layer(model, x)
    assert gradcheck(lambda x, *_: model(x), [x, *model.parameters()], full=True)
    # The forward is each layer applied in order.
    h = x
    for layer in model:
        h = layer(h)
    np.testing.assert_array_equal(model(x).numpy(), h.numpy())
    model.train()

    def with_fixed_mask(x, *_):
        manual_seed(3)
        return model(x)

    assert gradcheck(with_fixed_mask, [x, *model.parameters()])


def test_gan_shaped_mlp_with_bce():
    """A tiny discriminator on a batch of reals and fakes, through the loss: all parameters."""
    manual_seed(2)
    d = nn.Sequential(nn.Maxout(3, 4, 2, dtype=np.float64), nn.Maxout(4, 3, 2, dtype=np.float64),
                      nn.Linear(3, 1, dtype=np.float64))
    g = nn.Sequential(nn.Linear(2, 5, dtype=np.float64), nn.ReLU(), nn.Linear(5, 3, dtype=np.float64), nn.Sigmoid())
    rng = np.random.default_rng(2)
    real, z = Tensor(rng.random((4, 3))), leaf(rng.standard_normal((4, 2)))
    targets = np.concatenate([np.ones((4, 1)), np.zeros((4, 1))])

    def loss(*_):
        from minigan import concatenate
        return nn.binary_cross_entropy_with_logits(d(concatenate([real, g(z)])), targets)

    assert gradcheck(loss, [z, *d.parameters(), *g.parameters()])


# --- binary cross-entropy with logits --------------------------------------------------------


@with_device
@given(data=st.data(), n=dims)
def test_bce_with_logits_gradient_and_value(device, data, n):
    logits = data.draw(batch(n, 1, -6, 6))
    target = data.draw(arrays(np.float64, (n, 1), elements=st.floats(0, 1)))
    x = leaf(logits, device)
    target_on_device = backend.to_device(target, device)
    loss = nn.binary_cross_entropy_with_logits(x, target_on_device)
    assert loss.shape == ()
    s = 1 / (1 + np.exp(-logits))
    expected = -np.mean(target * np.log(s) + (1 - target) * np.log(1 - s))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-10)
    assert gradcheck(lambda x: nn.binary_cross_entropy_with_logits(x, target_on_device), [x])
    x.grad = None  # gradcheck leaves its own backward's gradient behind
    loss.backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), (s - target) / n, rtol=1e-10, atol=1e-15)


def test_bce_with_logits_is_exact_for_huge_logits():
    logits = leaf([1000.0, -1000.0, 1000.0, -1000.0])
    target = np.array([1.0, 0.0, 0.0, 1.0])
    loss = nn.binary_cross_entropy_with_logits(logits, target)
    # Right answers cost nothing, each confident wrong answer costs |logit|: (0 + 0 + 1000 + 1000) / 4.
    assert loss.item() == 500.0
    loss.backward()
    np.testing.assert_array_equal(logits.grad, [0.0, 0.0, 0.25, -0.25])


def test_bce_with_logits_accepts_a_tensor_or_scalar_target():
    logits = leaf([0.5, -1.5])
    by_array = nn.binary_cross_entropy_with_logits(logits, np.ones(2)).item()
    by_tensor = nn.binary_cross_entropy_with_logits(logits, Tensor(np.ones(2))).item()
    by_scalar = nn.binary_cross_entropy_with_logits(logits, 1.0).item()
    assert by_array == by_tensor == by_scalar == pytest.approx(np.mean(np.log1p(np.exp([-0.5, 1.5]))), rel=1e-12)


# --- Module API ---------------------------------------------------------------------------


def mlp():
    return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Maxout(3, 2, 2), nn.Dropout(0.5), nn.Linear(2, 1))


def test_parameters_order_and_names():
    model = mlp()
    expected = [model[0].weight, model[0].bias, model[2].linear.weight, model[2].linear.bias,
                model[4].weight, model[4].bias]
    params = model.parameters()
    assert len(params) == len(expected) and all(p is q for p, q in zip(params, expected))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.linear.weight", "2.linear.bias", "4.weight", "4.bias"]
    assert [p.shape for p in params] == [(2, 3), (3,), (3, 4), (4,), (2, 1), (1,)]
    assert len(model) == 5 and isinstance(model[3], nn.Dropout)


def test_train_and_eval_propagate():
    inner = nn.Sequential(nn.Dropout(0.5), nn.Linear(2, 2))
    model = nn.Sequential(nn.Linear(2, 2), inner, nn.Maxout(2, 1, 2))
    modules = [model, model[0], inner, inner[0], inner[1], model[2], model[2].linear]
    assert model.eval() is model
    assert all(m.training is False for m in modules)
    assert model.train() is model
    assert all(m.training is True for m in modules)
    model.train(False)
    assert all(m.training is False for m in modules)


def test_dropout_is_identity_in_eval():
    layer = nn.Dropout(0.9).eval()
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert layer(x) is x
    assert nn.Dropout(0.0)(x) is x  # p = 0 is the identity in training too


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_in_training_scales_the_survivors(p, device):
    x = Tensor(np.ones((400, 500), np.float32), device=device)
    out = nn.Dropout(p)(x).numpy()
    assert out.dtype == np.float32
    dropped = out == 0
    # 200,000 Bernoulli draws: the fraction is within 0.005 of p, and the mean of 1 is preserved.
    assert abs(dropped.mean() - p) < 0.005
    np.testing.assert_allclose(out[~dropped], 1 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.02
    # A fresh mask each call.
    assert not np.array_equal(nn.Dropout(p)(x).numpy() == 0, dropped)


def test_state_dict_round_trip():
    manual_seed(0)
    source = mlp()
    manual_seed(1)
    target = mlp()
    x = Tensor(np.random.default_rng(0).standard_normal((4, 2)), dtype=np.float32)
    source.eval(), target.eval()
    assert not np.array_equal(source(x).numpy(), target(x).numpy())
    state = source.state_dict()
    assert list(state) == [name for name, _ in source.named_parameters()]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    target.load_state_dict(state)
    np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())
    for p, q in zip(source.parameters(), target.parameters()):
        assert p.data is not q.data and q.dtype == np.float32
    # The state dict holds copies: changing it, or the source, leaves the other alone.
    state["0.weight"][:] = 42.0
    assert not np.any(source[0].weight.numpy() == 42.0)
    source[0].weight.data += 1
    assert not np.array_equal(source[0].weight.numpy(), target[0].weight.numpy())


def test_load_state_dict_errors_name_the_problem():
    model = mlp()
    state = model.state_dict()
    missing = dict(state)
    del missing["2.linear.bias"]
    with pytest.raises(ValueError, match=r"missing 2\.linear\.bias"):
        model.load_state_dict(missing)
    unexpected = dict(state, **{"9.weight": np.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected 9\.weight"):
        model.load_state_dict(unexpected)
    wrong = dict(state, **{"4.weight": np.zeros((3, 1))})
    with pytest.raises(ValueError, match=r"shape mismatch 4\.weight \(3, 1\) vs \(2, 1\)"):
        model.load_state_dict(wrong)
    # Nothing was loaded by a failed call.
    np.testing.assert_array_equal(model[4].weight.numpy(), state["4.weight"])


def test_linear_default_init_is_uniform_over_one_over_sqrt_fan_in():
    layer = nn.Linear(16, 500)
    bound = 1 / math.sqrt(16)
    for p in (layer.weight.numpy(), layer.bias.numpy()):
        assert p.dtype == np.float32
        assert np.all(np.abs(p) <= bound)
        assert np.abs(p).max() > 0.95 * bound
    w = layer.weight.numpy()
    assert abs(w.mean()) < 0.01
    np.testing.assert_allclose(w.var(), bound ** 2 / 3, rtol=0.05)  # the variance of U(-b, b)


def test_linear_init_range_gives_uniform_weight_and_zero_bias():
    layer = nn.Linear(20, 400, init_range=0.05)
    w = layer.weight.numpy()
    assert np.all(np.abs(w) <= 0.05) and np.abs(w).max() > 0.049
    np.testing.assert_allclose(w.var(), 0.05 ** 2 / 3, rtol=0.05)
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(400))
    assert layer.bias.requires_grad
    maxout = nn.Maxout(5, 3, 2, init_range=0.005)
    assert np.all(np.abs(maxout.linear.weight.numpy()) <= 0.005)
    np.testing.assert_array_equal(maxout.linear.bias.numpy(), np.zeros(6))


def test_init_is_reproducible_from_the_seed():
    manual_seed(5)
    a = nn.Linear(3, 4).weight.numpy()
    manual_seed(5)
    b = nn.Linear(3, 4).weight.numpy()
    manual_seed(6)
    c = nn.Linear(3, 4).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_module_to_cpu(device):
    model = mlp()
    model(Tensor(np.ones((2, 2), np.float32))).sum().backward()
    before = [p.numpy() for p in model.parameters()]
    assert model.to(device) is model
    for p, old in zip(model.parameters(), before):
        assert p.device == ("cpu" if device == "cpu" else "cuda:0")
        assert p.requires_grad and p.grad is None
        np.testing.assert_array_equal(p.numpy(), old)
    out = model.eval()(Tensor(np.ones((2, 2), np.float32), device=device))
    assert out.device == model[0].weight.device
    assert model.to("cpu") is model and all(isinstance(p.data, np.ndarray) for p in model.parameters())
