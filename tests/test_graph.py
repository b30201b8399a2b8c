"""How the graph behaves: accumulation, no_grad, detach, deep graphs, shared nodes, freeing
buffers, retain_graph, and dtypes kept through forward, backward and the optimizers. (The fused
step's CUDA graphs are tests/test_cuda_graph.py's.)"""

import gc
import weakref

import numpy as np
import pytest

import minigan
from minigan import Tensor, backend, nn, no_grad, optim
from minigan.tensor import _freed_graph, is_grad_enabled


def leaf(data, dtype=np.float64, device="cpu"):
    return Tensor(data, requires_grad=True, dtype=dtype, device=device)


def on(t, array):
    """`array` moved to t's device (a float64 NumPy array, to test that t's dtype wins)."""
    return backend.to_device(array, t.device)


def grad_of(t):
    return backend.to_numpy(t.grad)


# --- accumulation and zeroing --------------------------------------------------------------


def test_gradients_accumulate_on_leaves_until_zeroed(device):
    x = leaf([1.0, 2.0, 3.0], device=device)
    (x * 3).sum().backward()
    np.testing.assert_array_equal(grad_of(x), [3.0, 3.0, 3.0])
    (x * x).sum().backward()  # a new graph adds 2x on top
    np.testing.assert_array_equal(grad_of(x), [5.0, 7.0, 9.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(grad_of(x), [3.0, 3.0, 3.0])


def test_leaf_grad_is_its_own_array():
    # The leaf keeps a copy, so accumulating into it never writes into another node's buffer.
    x = leaf([1.0, 2.0])
    upstream = np.array([5.0, 7.0])
    (x + 0).backward(upstream)
    x.grad += 1
    np.testing.assert_array_equal(upstream, [5.0, 7.0])


def test_module_zero_grad():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model(Tensor(np.ones((5, 3), np.float32))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_optimizer_zero_grad():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    assert model.weight.grad is not None and model.bias.grad is not None
    opt.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None


# --- no_grad and detach -------------------------------------------------------------------


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp() + x
    assert is_grad_enabled()
    assert y.requires_grad is False
    assert y._parents == () and y._backward is None and y.is_leaf
    np.testing.assert_allclose(y.numpy(), np.exp([2.0, 4.0]) + [1.0, 2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_state_after_an_exception_and_nests():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert is_grad_enabled()
    with no_grad():
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_as_a_decorator():
    x = leaf([1.0, 2.0])

    @no_grad()
    def double(t):
        assert not is_grad_enabled()
        return t * 2

    for _ in range(2):  # the decorator works on every call, not just the first
        y = double(x)
        assert y.requires_grad is False and y._parents == ()
        np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
        assert is_grad_enabled()
    assert (x * 2).requires_grad


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    d = y.detach()
    assert d.requires_grad is False and d.is_leaf and d._parents == ()
    np.testing.assert_array_equal(d.numpy(), [2.0, 4.0, 6.0])
    # d * x: only the x branch carries gradient, so dx = d = 2x (not 4x as for y * x).
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0, 6.0])


# --- big and shared graphs ------------------------------------------------------------------


def test_a_chain_of_ten_thousand_ops():
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()  # the iterative topological sort needs no recursion
    factor = 1.0001 ** 10_000
    np.testing.assert_allclose(y.numpy(), [factor, 2 * factor], rtol=1e-10)
    np.testing.assert_allclose(x.grad, [factor, factor], rtol=1e-10)


def test_a_tensor_used_twice_gets_the_summed_gradient():
    x = leaf([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    # A diamond: y feeds both terms of z = y*y + y, with y = 2x: dz/dx = (2y + 1) * 2.
    x.grad = None
    y = x * 2
    (y * y + y).sum().backward()
    np.testing.assert_array_equal(x.grad, (2 * (2 * np.array([1.0, -2.0, 3.0])) + 1) * 2)


def test_one_linear_applied_to_two_batches():
    layer = nn.Linear(3, 2, dtype=np.float64)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    (layer(Tensor(a)).sum() + layer(Tensor(b)).sum()).backward()
    # d/dW of sum(x @ W + b) is the column sums of x, repeated for each output.
    np.testing.assert_allclose(layer.weight.grad, np.repeat((a.sum(0) + b.sum(0))[:, None], 2, 1), rtol=1e-12)
    np.testing.assert_array_equal(layer.bias.grad, [9.0, 9.0])
    # The same as two separate backward passes accumulated.
    both = layer.weight.grad.copy()
    layer.zero_grad()
    layer(Tensor(a)).sum().backward()
    layer(Tensor(b)).sum().backward()
    np.testing.assert_allclose(layer.weight.grad, both, rtol=1e-12)


# --- retain_graph and freed buffers ---------------------------------------------------------


def test_backward_twice_needs_retain_graph():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_retain_graph_allows_a_second_backward_and_doubles_the_grads():
    x = leaf([1.0, 2.0])
    loss = (x * x).exp().sum()
    loss.backward(retain_graph=True)
    once = x.grad.copy()
    np.testing.assert_allclose(once, 2 * np.array([1.0, 2.0]) * np.exp([1.0, 4.0]), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * once, rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_a_shared_part_of_a_freed_graph_cannot_be_reused():
    x = leaf([1.0, 2.0])
    hidden = x.tanh()
    hidden.sum().backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        (hidden * 2).sum().backward()


def test_backward_releases_buffers():
    x = leaf(np.ones((3, 3)))
    y = x * 2
    z = y.exp()
    loss = z.sum()
    loss.backward()
    for node in (y, z, loss):
        assert node._backward is _freed_graph  # a plain function: no closure over saved arrays
        assert node._backward.__closure__ is None
        assert node._parents == ()
    assert x.is_leaf and x._backward is None


@pytest.mark.parametrize("retain", [False, True])
def test_intermediate_tensors_are_freed_unless_retained(retain):
    x = leaf(np.ones(4))
    middle = x * 3
    alive = weakref.ref(middle)
    loss = middle.exp().sum()
    del middle
    loss.backward(retain_graph=retain)
    gc.collect()
    assert (alive() is not None) == retain
    if retain:
        assert loss._backward.__closure__ is not None


# --- dtypes -------------------------------------------------------------------------------

# Every op, with Python numbers and NumPy float64 scalars as the other operand.
OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "matmul": lambda x, y: x @ y.T,
    "pow": lambda x, y: x ** 2,
    "pow_np64": lambda x, y: x ** np.float64(2.0),
    "neg": lambda x, y: -x,
    "add_np64": lambda x, y: x + np.float64(2.0),
    "radd_np64": lambda x, y: np.float64(2.0) + x,
    "rsub_np64": lambda x, y: np.float64(2.0) - x,
    "rmul_np64": lambda x, y: np.float64(2.0) * x,
    "rdiv_np64": lambda x, y: np.float64(2.0) / x,
    "div_np64": lambda x, y: x / np.float64(2.0),
    # A float64 array with a float32 tensor is a TypeError, as a float64 Tensor is (test_bad_inputs).
    "radd_array": lambda x, y: on(x, np.ones(3, dtype=x.dtype)) + x,
    "radd_int_array": lambda x, y: on(x, np.arange(3)) + x,
    "rsub_int": lambda x, y: 2 - x,
    "rdiv_int": lambda x, y: 1 / x,
    "sum": lambda x, y: x.sum(axis=0),
    "mean": lambda x, y: x.mean(),
    "max": lambda x, y: x.max(axis=1, keepdims=True),
    "exp": lambda x, y: x.exp(),
    "log": lambda x, y: (x * x + 1).log(),
    "tanh": lambda x, y: x.tanh(),
    "sigmoid": lambda x, y: x.sigmoid(),
    "softplus": lambda x, y: x.softplus(),
    "relu": lambda x, y: x.relu(),
    "leaky_relu": lambda x, y: x.leaky_relu(0.2),
    "leaky_relu_np64": lambda x, y: x.leaky_relu(np.float64(0.2)),
    "reshape": lambda x, y: x.reshape(3, 2),
    "transpose": lambda x, y: x.T,
    "getitem": lambda x, y: x[1:, :2],
    "concatenate": lambda x, y: minigan.concatenate([x, y], axis=1),
    "bce": lambda x, y: nn.binary_cross_entropy_with_logits(x, on(x, np.full((2, 3), 0.5, dtype=np.float64))),
    "linear": lambda x, y: nn.Linear(3, 4, dtype=x.dtype, device=x.device)(x),
    "maxout": lambda x, y: nn.Maxout(3, 2, 3, dtype=x.dtype, device=x.device)(x),
    "dropout": lambda x, y: nn.Dropout(0.5)(x),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPS))
def test_dtype_is_kept_through_forward_and_backward(name, dtype, device):
    rng = np.random.default_rng(0)
    x = leaf(rng.uniform(0.5, 2.0, (2, 3)), dtype=dtype, device=device)
    y = leaf(rng.uniform(0.5, 2.0, (2, 3)), dtype=dtype, device=device)
    out = OPS[name](x, y)
    assert isinstance(out, Tensor)
    assert out.dtype == dtype, f"{name} gave {out.dtype}"
    out.backward(on(out, np.ones(out.shape, dtype=dtype)))
    assert x.grad is not None and x.grad.dtype == dtype
    assert x.grad.shape == x.shape
    assert np.all(np.isfinite(grad_of(x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: optim.Adam(ps, lr=1e-3, betas=(0.5, 0.999)),
], ids=["sgd", "sgd_momentum", "adam"])
def test_dtype_is_kept_through_the_optimizers(make, dtype, device):
    model = nn.Sequential(nn.Linear(3, 4, dtype=dtype, device=device), nn.Tanh(),
                          nn.Linear(4, 1, dtype=dtype, device=device))
    opt = make(model.parameters())
    x = Tensor(np.ones((2, 3)), dtype=dtype, device=device)
    before = [p.numpy() for p in model.parameters()]
    for step in range(3):
        opt.zero_grad()
        model(x).mean().backward()
        opt.lr = np.float64(opt.lr)  # a NumPy scalar learning rate, as a schedule may produce
        opt.step()
    for p, old in zip(model.parameters(), before):
        assert p.dtype == dtype and p.grad.dtype == dtype
        assert not np.array_equal(p.numpy(), old)
    for buffers in opt.state.values():  # plain SGD leaves its velocity buffers unused (None)
        assert all(b.dtype == dtype for b in buffers if b is not None)
