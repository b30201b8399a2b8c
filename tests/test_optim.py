"""SGD with momentum and Adam against their update rules written out by hand, and their state."""

import io
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigan import Tensor, optim


def param(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def grads(steps, size):
    return arrays(np.float64, (steps, size), elements=st.floats(-3, 3, allow_nan=False))


def run(opt, p, gradients):
    """Feed `gradients` to the optimizer one step at a time, as backward() would leave them."""
    for g in gradients:
        p.grad = np.array(g, dtype=p.dtype)
        opt.step()


# --- SGD ----------------------------------------------------------------------------------


@given(g=grads(4, 3), lr=st.floats(1e-4, 1.0), momentum=st.floats(0.0, 0.99))
def test_sgd_momentum_matches_the_rule(g, lr, momentum):
    start = np.array([0.5, -1.0, 2.0])
    p = param(start)
    opt = optim.SGD([p], lr=lr, momentum=momentum)
    expected, v = start.copy(), np.zeros(3)
    for step in g:
        v = momentum * v - lr * step  # v <- m v - lr g
        expected = expected + v  # p <- p + v
        run(opt, p, [step])
        np.testing.assert_allclose(p.data, expected, rtol=1e-13, atol=1e-15)
    assert opt.step_counts == [4]


def test_sgd_momentum_by_hand():
    p = param([1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    run(opt, p, [[1.0]])  # v = -0.1, p = 0.9
    np.testing.assert_allclose(p.data, [0.9], rtol=1e-15)
    run(opt, p, [[1.0]])  # v = 0.5 * -0.1 - 0.1 = -0.15, p = 0.75
    np.testing.assert_allclose(p.data, [0.75], rtol=1e-15)
    run(opt, p, [[-2.0]])  # v = -0.075 + 0.2 = 0.125, p = 0.875
    np.testing.assert_allclose(p.data, [0.875], rtol=1e-15)
    np.testing.assert_allclose(opt.state["velocity"][0], [0.125], rtol=1e-15)


def test_plain_sgd():
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.25)
    run(opt, p, [[1.0, -4.0], [2.0, 0.0]])
    np.testing.assert_allclose(p.data, [1.0 - 0.25 - 0.5, 2.0 + 1.0], rtol=1e-15)


def test_changing_lr_and_momentum_between_steps_takes_effect():
    p = param([0.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    run(opt, p, [[1.0]])  # v = -0.1
    opt.lr, opt.momentum = 0.01, 0.9
    run(opt, p, [[1.0]])  # v = 0.9 * -0.1 - 0.01 = -0.1
    np.testing.assert_allclose(opt.state["velocity"][0], [-0.1], rtol=1e-14)
    np.testing.assert_allclose(p.data, [-0.2], rtol=1e-14)
    opt.lr = 1.0
    opt.momentum = 0.0  # now plain SGD: the velocity is no longer used
    run(opt, p, [[0.5]])
    np.testing.assert_allclose(p.data, [-0.7], rtol=1e-14)


def test_a_parameter_without_a_gradient_is_left_alone():
    p, q = param([1.0]), param([2.0])
    opt = optim.SGD([p, q], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.9], rtol=1e-15)
    np.testing.assert_array_equal(q.data, [2.0])
    assert opt.state["velocity"][1] is None


# --- Adam ---------------------------------------------------------------------------------


def adam_by_hand(p, gradients, lr, beta1, beta2, eps):
    """Kingma & Ba, Algorithm 1, with bias-corrected moments."""
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(gradients, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@given(g=grads(5, 3), lr=st.floats(1e-4, 0.1), beta1=st.floats(0.0, 0.95), beta2=st.floats(0.9, 0.9999),
       eps=st.sampled_from([1e-8, 1e-3]))
def test_adam_matches_the_rule(g, lr, beta1, beta2, eps):
    start = np.array([0.5, -1.0, 2.0])
    p = param(start)
    opt = optim.Adam([p], lr=lr, betas=(beta1, beta2), eps=eps)
    for steps in range(1, len(g) + 1):
        run(opt, p, g[steps - 1:steps])
        np.testing.assert_allclose(p.data, adam_by_hand(start, g[:steps], lr, beta1, beta2, eps),
                                   rtol=1e-12, atol=1e-14)


def test_adam_first_step_moves_each_coordinate_by_about_lr():
    # With bias correction, step 1 is lr * g / (|g| + eps): a move of lr against the gradient's sign.
    p = param([0.0, 0.0, 0.0])
    opt = optim.Adam([p], lr=0.01)
    run(opt, p, [[3.0, -0.002, 100.0]])
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-5)


# --- state --------------------------------------------------------------------------------

MAKERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.5, 0.99), eps=1e-6),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_state_dict_round_trip_continues_identically(kind):
    rng = np.random.default_rng(0)
    gradients = rng.standard_normal((6, 2, 3))
    start = rng.standard_normal((2, 3))
    p = param(start)
    opt = MAKERS[kind]([p])
    run(opt, p, gradients[:3])
    state = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    # Through an .npz file and back, as a checkpoint would store it.
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    loaded = dict(np.load(buffer))

    q = param(p.data.copy())
    resumed = optim.SGD([q], lr=1.0) if kind == "sgd" else optim.Adam([q], lr=1.0)
    resumed.load_state_dict(loaded)
    assert resumed.step_counts == [3] and resumed.lr == opt.lr
    run(opt, p, gradients[3:])
    run(resumed, q, gradients[3:])
    np.testing.assert_array_equal(q.data, p.data)
    # And the same as never stopping.
    r = param(start)
    uninterrupted = MAKERS[kind]([r])
    run(uninterrupted, r, gradients)
    np.testing.assert_array_equal(r.data, p.data)


def test_state_dict_holds_copies_and_hyperparameters():
    p = param([1.0, 2.0])
    opt = optim.Adam([p], lr=0.01, betas=(0.5, 0.999), eps=1e-7)
    run(opt, p, [[1.0, 1.0]])
    state = opt.state_dict()
    assert set(state) == {"lr", "betas", "eps", "step.0", "exp_avg.0", "exp_avg_sq.0"}
    np.testing.assert_array_equal(state["betas"], [0.5, 0.999])
    assert state["step.0"].dtype == np.int64 and int(state["step.0"]) == 1
    state["exp_avg.0"][:] = 99.0
    np.testing.assert_allclose(opt.state["exp_avg"][0], [0.5, 0.5])
    fresh = optim.Adam([param([0.0, 0.0])])
    fresh.load_state_dict(opt.state_dict())
    assert fresh.betas == (0.5, 0.999) and fresh.eps == 1e-7 and fresh.lr == 0.01
    fresh.state["exp_avg"][0][:] = 5.0  # loaded buffers are the optimizer's own arrays
    np.testing.assert_allclose(opt.state["exp_avg"][0], [0.5, 0.5])


def test_load_state_dict_errors():
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    run(opt, p, [[1.0, 1.0]])
    good = opt.state_dict()
    with pytest.raises(ValueError, match=r"SGD\.load_state_dict: missing \['lr'\]"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "lr"})
    with pytest.raises(ValueError, match=r"unexpected \['velocity\.1'\]"):
        opt.load_state_dict(dict(good, **{"velocity.1": np.zeros(2)}))
    with pytest.raises(ValueError, match=r"unexpected \['exp_avg\.0'\]"):
        opt.load_state_dict(dict(good, **{"exp_avg.0": np.zeros(2)}))
    with pytest.raises(ValueError, match=r"velocity\.0 has shape \(3,\), parameter 0 has \(2,\)"):
        opt.load_state_dict(dict(good, **{"velocity.0": np.zeros(3)}))
    # A failed load leaves the optimizer as it was.
    assert opt.lr == 0.1 and opt.step_counts == [1]
    np.testing.assert_allclose(opt.state["velocity"][0], [-0.1, -0.1])


def test_an_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="Adam: got an empty parameter list"):
        optim.Adam([])


# --- hyperparameters out of range: torch's one-line messages --------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate: -0.1"),
    (lambda p: optim.SGD(p, lr=float("nan")), "Invalid learning rate: nan"),
    (lambda p: optim.SGD(p, lr=float("inf")), "Invalid learning rate: inf"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=float("nan")), "Invalid momentum value: nan"),
    (lambda p: optim.Adam(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: optim.Adam(p, lr=float("-inf")), "Invalid learning rate: -inf"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.Adam(p, betas=(0.5, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (lambda p: optim.Adam(p, betas=(0.5, float("nan"))), "Invalid beta parameter at index 1: nan"),
    (lambda p: optim.Adam(p, betas=(0.5,)), "Invalid betas: expected a pair (beta1, beta2), got (0.5,)"),
    (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon value: -1e-08"),
])
def test_out_of_range_hyperparameters_are_refused(make, message):
    with pytest.raises(ValueError) as info:
        make([param([1.0])])
    assert str(info.value) == message


def test_boundary_hyperparameters_are_accepted():
    p = param([1.0])
    assert optim.SGD([p], lr=0, momentum=0).lr == 0.0
    assert optim.Adam([p], lr=0, betas=(0, 0), eps=0).betas == (0.0, 0.0)


@pytest.mark.parametrize("kind, key, value, message", [
    ("sgd", "lr", -0.1, "SGD.load_state_dict: Invalid learning rate: -0.1"),
    ("sgd", "momentum", np.nan, "SGD.load_state_dict: Invalid momentum value: nan"),
    ("adam", "betas", [0.9, 1.5], "Adam.load_state_dict: Invalid beta parameter at index 1: 1.5"),
    ("adam", "eps", np.inf, "Adam.load_state_dict: Invalid epsilon value: inf"),
])
def test_load_state_dict_refuses_out_of_range_hyperparameters(kind, key, value, message):
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9) if kind == "sgd" else optim.Adam([p], lr=0.1)
    run(opt, p, [[1.0, 1.0]])
    before = opt.state_dict()
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(dict(before, **{key: np.asarray(value)}))
    assert str(info.value) == message
    after = opt.state_dict()  # a refused load changes nothing
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)


def test_adam_is_torchs_formula_on_a_big_and_a_non_contiguous_array():
    """Every element comes out as torch's formula gives it, also when a gradient is not contiguous."""
    rng = np.random.default_rng(0)
    shape = (300, 400)
    start = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    p = Tensor(start.copy(), requires_grad=True)
    opt = optim.Adam([p], lr=1e-2, betas=(0.5, 0.999))
    m, v, expected = np.zeros_like(start), np.zeros_like(start), start.copy()
    for t, g in enumerate(grads, 1):
        p.grad = g if t != 2 else np.asfortranarray(g)
        opt.step()
        m = m * np.float32(0.5) + np.float32(0.5) * g
        v = v * np.float32(0.999) + np.float32(1 - 0.999) * (g * g)
        update = np.sqrt(v) / np.float32(math.sqrt(1 - 0.999 ** t)) + np.float32(1e-8)
        expected -= (m / update) * np.float32(1e-2 / (1 - 0.5 ** t))
    np.testing.assert_allclose(p.data, expected, rtol=2e-6, atol=1e-7)
