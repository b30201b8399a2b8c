"""Differential tests against PyTorch, in float64: every layer forward and backward, the loss, and
the optimizers' steps. Skipped where torch is not installed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigan import Tensor, manual_seed, nn, optim

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL, ATOL = 1e-10, 1e-12

dims = st.integers(1, 5)


def batch(n, features, low=-3.0, high=3.0):
    return arrays(np.float64, (n, features), elements=st.floats(low, high, allow_nan=False))


def ours(a):
    return Tensor(a, requires_grad=True, dtype=np.float64)


def theirs(a):
    return torch.tensor(np.array(a), dtype=torch.float64, requires_grad=True)


def close(actual, expected):
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    if isinstance(actual, Tensor):
        actual = actual.numpy()
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def torch_linear(x, layer):
    """Our weight is (in, out); torch.nn.functional.linear wants (out, in)."""
    w, b = theirs(layer.weight.numpy().T), theirs(layer.bias.numpy())
    return F.linear(x, w, b), w, b


@given(data=st.data(), n=dims, fan_in=dims, fan_out=dims)
def test_linear(data, n, fan_in, fan_out):
    layer = nn.Linear(fan_in, fan_out, dtype=np.float64)
    a = data.draw(batch(n, fan_in))
    u = data.draw(batch(n, fan_out))  # the upstream gradient
    x, tx = ours(a), theirs(a)
    out = layer(x)
    tout, tw, tb = torch_linear(tx, layer)
    close(out, tout)
    out.backward(u)
    tout.backward(torch.tensor(u))
    close(x.grad, tx.grad)
    close(layer.weight.grad, tw.grad.T)
    close(layer.bias.grad, tb.grad)


@given(data=st.data(), n=dims, fan_in=dims, units=dims, pieces=st.integers(1, 4))
def test_maxout(data, n, fan_in, units, pieces):
    layer = nn.Maxout(fan_in, units, pieces, dtype=np.float64)
    a = data.draw(batch(n, fan_in))
    u = data.draw(batch(n, units))
    x, tx = ours(a), theirs(a)
    out = layer(x)
    z, tw, tb = torch_linear(tx, layer.linear)
    tout = z.reshape(n, units, pieces).max(dim=2).values
    close(out, tout)
    out.backward(u)
    tout.backward(torch.tensor(u))
    close(x.grad, tx.grad)
    close(layer.linear.weight.grad, tw.grad.T)
    close(layer.linear.bias.grad, tb.grad)


ACTIVATIONS = {
    "relu": (nn.ReLU(), F.relu),
    "leaky_relu": (nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
    "leaky_relu_default": (nn.LeakyReLU(), F.leaky_relu),
    "sigmoid": (nn.Sigmoid(), torch.sigmoid),
    "tanh": (nn.Tanh(), torch.tanh),
    # torch's softplus returns x itself above threshold=20 (an approximation); ours is exact.
    "softplus": (lambda t: t.softplus(), lambda t: F.softplus(t, threshold=100)),
    "dropout_eval": (nn.Dropout(0.5).eval(), lambda t: F.dropout(t, 0.5, training=False)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(data=st.data(), n=dims, features=dims)
def test_activation(name, data, n, features):
    layer, reference = ACTIVATIONS[name]
    a = data.draw(batch(n, features, -30, 30))
    a = np.where(a >= 0, a + 1e-3, a - 1e-3)  # torch and we may differ exactly at a kink
    u = data.draw(batch(n, features))
    x, tx = ours(a), theirs(a)
    out, tout = layer(x), reference(tx)
    close(out, tout)
    out.backward(u)
    tout.backward(torch.tensor(u))
    close(x.grad, tx.grad)


def assert_bce_matches_torch(logits, target):
    x, tx = ours(logits), theirs(logits)
    loss = nn.binary_cross_entropy_with_logits(x, target)
    tloss = F.binary_cross_entropy_with_logits(tx, torch.tensor(target))
    close(loss, tloss)
    loss.backward()
    tloss.backward()
    close(x.grad, tx.grad)


@given(data=st.data(), n=dims)
def test_bce_with_logits(data, n):
    logits = data.draw(batch(n, 1, -40, 40))
    target = data.draw(arrays(np.float64, (n, 1), elements=st.floats(0, 1)))
    assert_bce_matches_torch(logits, target)


def test_bce_with_huge_logits():
    assert_bce_matches_torch(np.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0]), np.array([1.0, 0.0, 0.0, 1.0, 0.3]))


def copy_into_torch(model):
    """A torch.nn.Sequential of Linear/Tanh/LeakyReLU/Sigmoid with our model's weights."""
    layers = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            t = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():
                t.weight.copy_(torch.tensor(layer.weight.numpy().T))
                t.bias.copy_(torch.tensor(layer.bias.numpy()))
            layers.append(t)
        else:
            layers.append({nn.Tanh: torch.nn.Tanh(), nn.Sigmoid: torch.nn.Sigmoid()}.get(type(layer))
                          or torch.nn.LeakyReLU(layer.slope))
    return torch.nn.Sequential(*layers)


def test_mlp_forward_and_backward():
    manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8, dtype=np.float64), nn.LeakyReLU(0.2), nn.Linear(8, 4, dtype=np.float64),
                          nn.Tanh(), nn.Linear(4, 1, dtype=np.float64))
    reference = copy_into_torch(model)
    rng = np.random.default_rng(0)
    a, target = rng.standard_normal((6, 5)), (rng.random((6, 1)) > 0.5).astype(np.float64)
    x, tx = ours(a), theirs(a)
    loss = nn.binary_cross_entropy_with_logits(model(x), target)
    tloss = F.binary_cross_entropy_with_logits(reference(tx), torch.tensor(target))
    close(loss, tloss)
    loss.backward()
    tloss.backward()
    close(x.grad, tx.grad)
    tparams = list(reference.parameters())
    for p, tp in zip(model.parameters(), tparams):
        close(p.grad, tp.grad.T if p.ndim == 2 else tp.grad)


# --- optimizers ---------------------------------------------------------------------------


def step_both(ours_opt, torch_opt, p, tp, gradients):
    for g in gradients:
        p.grad = g.copy()
        tp.grad = torch.tensor(g)
        ours_opt.step()
        torch_opt.step()
        close(p.data, tp)


def test_one_adam_step():
    rng = np.random.default_rng(1)
    start, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    p, tp = ours(start), theirs(start)
    step_both(optim.Adam([p], lr=2e-4, betas=(0.5, 0.999)), torch.optim.Adam([tp], lr=2e-4, betas=(0.5, 0.999)),
              p, tp, [g])


@pytest.mark.parametrize("eps", [1e-8, 1e-2])
def test_several_adam_steps(eps):
    rng = np.random.default_rng(2)
    start, gradients = rng.standard_normal(7), rng.standard_normal((10, 7)) * np.logspace(-4, 1, 7)
    p, tp = ours(start), theirs(start)
    step_both(optim.Adam([p], lr=0.01, betas=(0.9, 0.99), eps=eps),
              torch.optim.Adam([tp], lr=0.01, betas=(0.9, 0.99), eps=eps), p, tp, gradients)


def test_one_sgd_momentum_step():
    rng = np.random.default_rng(3)
    start, g = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    p, tp = ours(start), theirs(start)
    step_both(optim.SGD([p], lr=0.1, momentum=0.5), torch.optim.SGD([tp], lr=0.1, momentum=0.5), p, tp, [g])


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_several_sgd_steps(momentum):
    # With a constant lr, torch's v <- m v + g; p <- p - lr v is our v <- m v - lr g; p <- p + v.
    rng = np.random.default_rng(4)
    start, gradients = rng.standard_normal(6), rng.standard_normal((8, 6))
    p, tp = ours(start), theirs(start)
    step_both(optim.SGD([p], lr=0.05, momentum=momentum),
              torch.optim.SGD([tp], lr=0.05, momentum=momentum), p, tp, gradients)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_a_few_training_steps_of_an_mlp(kind):
    """Forward, loss, backward and step, five times: the parameters stay together."""
    manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 6, dtype=np.float64), nn.Tanh(), nn.Linear(6, 1, dtype=np.float64))
    reference = copy_into_torch(model)
    if kind == "sgd":
        opt, topt = optim.SGD(model.parameters(), lr=0.1, momentum=0.7), torch.optim.SGD(
            reference.parameters(), lr=0.1, momentum=0.7)
    else:
        opt, topt = optim.Adam(model.parameters(), lr=0.01, betas=(0.5, 0.999)), torch.optim.Adam(
            reference.parameters(), lr=0.01, betas=(0.5, 0.999))
    rng = np.random.default_rng(5)
    for _ in range(5):
        a, target = rng.standard_normal((8, 3)), (rng.random((8, 1)) > 0.5).astype(np.float64)
        opt.zero_grad()
        topt.zero_grad()
        nn.binary_cross_entropy_with_logits(model(Tensor(a)), target).backward()
        F.binary_cross_entropy_with_logits(reference(torch.tensor(a)), torch.tensor(target)).backward()
        opt.step()
        topt.step()
    for p, tp in zip(model.parameters(), reference.parameters()):
        close(p.data, tp.T if p.ndim == 2 else tp)
