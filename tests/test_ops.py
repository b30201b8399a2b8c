"""Every Tensor op: forward against NumPy, backward against a float64 finite difference.

`gradcheck` compares one random directional derivative per example (cheap at any size); a few
tests at the end check every coordinate (`full=True`) on tiny inputs.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays, basic_indices, mutually_broadcastable_shapes

import minigan
from minigan import Tensor, backend, concatenate, gradcheck

# The `device` fixture is a plain string, so sharing it across hypothesis examples is safe.
with_device = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

shapes = array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


def values(shape, low=-3.0, high=3.0):
    return arrays(np.float64, shape, elements=st.floats(low, high, allow_nan=False, allow_infinity=False))


def away_from_zero(a, margin):
    """Shift every value at least `margin` away from 0 (a kink or a pole), keeping its sign."""
    return np.where(a >= 0, a + margin, a - margin)


def leaf(data, device):
    return Tensor(data, requires_grad=True, dtype=np.float64, device=device)


def backend_grad(t):
    return backend.to_numpy(t.grad)


def assert_forward(t, expected):
    assert t.dtype == np.float64
    assert t.shape == np.shape(expected)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-12, atol=1e-14)


# --- elementwise ------------------------------------------------------------------------------

# name: (minigan op, NumPy reference, input domain)
UNARY = {
    "neg": (lambda t: -t, lambda a: -a, "any"),
    "exp": (lambda t: t.exp(), np.exp, "any"),
    "log": (lambda t: t.log(), np.log, "positive"),
    "tanh": (lambda t: t.tanh(), np.tanh, "any"),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), "any"),
    "softplus": (lambda t: t.softplus(), lambda a: np.log1p(np.exp(a)), "any"),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0), "no_kink"),
    "leaky_relu": (lambda t: t.leaky_relu(0.2), lambda a: np.where(a > 0, a, 0.2 * a), "no_kink"),
    "leaky_relu_default": (lambda t: t.leaky_relu(), lambda a: np.where(a > 0, a, 0.01 * a), "no_kink"),
    "pow2": (lambda t: t ** 2, lambda a: a * a, "any"),
    "pow3": (lambda t: t ** 3, lambda a: a * a * a, "any"),
    "pow_minus1": (lambda t: t ** -1, lambda a: 1 / a, "no_pole"),
    "pow_half": (lambda t: t ** 0.5, np.sqrt, "positive"),
}


def in_domain(a, domain):
    if domain == "positive":
        return np.abs(a) + 0.1
    if domain == "no_kink":
        return away_from_zero(a, 1e-3)
    if domain == "no_pole":
        return away_from_zero(a, 0.5)
    return a


@pytest.mark.parametrize("name", sorted(UNARY))
@with_device
@given(data=st.data())
def test_unary(name, device, data):
    op, reference, domain = UNARY[name]
    a = in_domain(data.draw(shapes.flatmap(values)), domain)
    x = leaf(a, device)
    assert_forward(op(x), reference(a))
    assert gradcheck(op, [x])


@with_device
@given(a=shapes.flatmap(values))
def test_relu_and_leaky_relu_gradient_is_the_slope(device, a):
    a = away_from_zero(a, 1e-3)
    for op, slope in [(lambda t: t.relu(), 0.0), (lambda t: t.leaky_relu(0.3), 0.3)]:
        x = leaf(a, device)
        op(x).sum().backward()
        np.testing.assert_array_equal(backend_grad(x), np.where(a > 0, 1.0, slope))


def test_sigmoid_and_softplus_are_finite_for_huge_inputs():
    x = leaf(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]), "cpu")
    np.testing.assert_allclose(x.sigmoid().numpy(), [0.0, np.exp(-50.0), 0.5, 1.0, 1.0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(x.softplus().numpy(), [0.0, np.exp(-50.0), np.log(2), 50.0, 1000.0], rtol=1e-12)
    x.softplus().sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, np.exp(-50.0), 0.5, 1.0, 1.0], rtol=1e-12, atol=0)


# --- binary ops with broadcasting ---------------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}

broadcast_pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=5)


@pytest.mark.parametrize("name", sorted(BINARY))
@with_device
@given(data=st.data())
def test_binary_broadcasting(name, device, data):
    op, reference = BINARY[name]
    shape_a, shape_b = data.draw(broadcast_pairs).input_shapes
    a = data.draw(values(shape_a))
    b = away_from_zero(data.draw(values(shape_b)), 0.5)  # a divisor away from 0
    x, y = leaf(a, device), leaf(b, device)
    assert_forward(op(x, y), reference(a, b))
    assert gradcheck(op, [x, y])


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shape_a, shape_b", [
    ((3, 1, 4), (5, 4)),
    ((4, 1), (1, 3)),
    ((2, 3), ()),
    ((), (2, 3)),
    ((5,), (2, 5)),
    ((2, 1, 3), (1, 4, 1)),
])
def test_binary_named_broadcasts(name, shape_a, shape_b, device):
    op, reference = BINARY[name]
    rng = np.random.default_rng(1)
    a = rng.uniform(-3, 3, shape_a)
    b = away_from_zero(rng.uniform(-3, 3, shape_b), 0.5)
    x, y = leaf(a, device), leaf(b, device)
    out = op(x, y)
    assert out.shape == np.broadcast_shapes(shape_a, shape_b)
    assert_forward(out, reference(a, b))
    assert gradcheck(op, [x, y])
    # Each input's gradient has that input's shape, whichever axes were broadcast.
    x.grad = y.grad = None
    out = op(x, y)
    out.backward(backend.to_device(np.ones(out.shape), device))
    assert x.grad.shape == shape_a and y.grad.shape == shape_b


def test_broadcast_gradient_values_are_summed():
    # (n,1) * (1,m): d/dx sum(x*y) = sum over the stretched axis of y, and vice versa.
    a, b = np.array([[1.0], [2.0]]), np.array([[3.0, 4.0, 5.0]])
    x, y = leaf(a, "cpu"), leaf(b, "cpu")
    (x * y).sum().backward()
    np.testing.assert_array_equal(x.grad, [[12.0], [12.0]])
    np.testing.assert_array_equal(y.grad, [[3.0, 3.0, 3.0]])
    x.grad = None
    (x + y).sum().backward()
    np.testing.assert_array_equal(x.grad, [[3.0], [3.0]])


# Python numbers and NumPy scalars on either side of the operator.
SCALAR_OPS = {
    "x+2": (lambda x: x + 2, lambda a: a + 2),
    "2+x": (lambda x: 2 + x, lambda a: 2 + a),
    "x-2.5": (lambda x: x - 2.5, lambda a: a - 2.5),
    "2-x": (lambda x: 2 - x, lambda a: 2 - a),
    "3*x": (lambda x: 3 * x, lambda a: 3 * a),
    "x*3": (lambda x: x * 3, lambda a: a * 3),
    "x/2": (lambda x: x / 2, lambda a: a / 2),
    "1/x": (lambda x: 1 / x, lambda a: 1 / a),
    "np2*x": (lambda x: np.float64(2.0) * x, lambda a: 2.0 * a),
    "np2-x": (lambda x: np.float64(2.0) - x, lambda a: 2.0 - a),
    "np1/x": (lambda x: np.float64(1.0) / x, lambda a: 1.0 / a),
    "x**np2": (lambda x: x ** np.float64(2.0), lambda a: a * a),
    "array+x": (lambda x: backend.to_device(np.arange(x.shape[-1], dtype=np.float64), x.device) + x,
                lambda a: np.arange(a.shape[-1]) + a),
}


@pytest.mark.parametrize("name", sorted(SCALAR_OPS))
@with_device
@given(a=shapes.flatmap(values))
def test_scalar_operands(name, device, a):
    op, reference = SCALAR_OPS[name]
    a = away_from_zero(a, 0.5)
    x = leaf(a, device)
    out = op(x)
    assert isinstance(out, Tensor)
    assert_forward(out, reference(a))
    assert gradcheck(op, [x])


# --- matmul -------------------------------------------------------------------------------

dims = st.integers(1, 5)


@with_device
@given(data=st.data(), n=dims, k=dims, m=dims)
def test_matmul(device, data, n, k, m):
    a, b = data.draw(values((n, k))), data.draw(values((k, m)))
    x, y = leaf(a, device), leaf(b, device)
    assert_forward(x @ y, a @ b)
    assert gradcheck(lambda x, y: x @ y, [x, y])


@with_device
@given(data=st.data(), n=dims, k=dims, m=dims)
def test_matmul_non_contiguous_inputs(device, data, n, k, m):
    # Leaves whose data are transposed views, and a transpose op inside the graph.
    a_t, b_t = data.draw(values((k, n))), data.draw(values((m, k)))
    # from_numpy keeps the views (Tensor would copy them into contiguous arrays).
    x = minigan.from_numpy(backend.to_device(a_t.T, device)).requires_grad_()
    y = minigan.from_numpy(backend.to_device(b_t.T, device)).requires_grad_()
    if device == "cpu":
        assert x.data.flags.c_contiguous == (n == 1 or k == 1)
    assert_forward(x @ y, a_t.T @ b_t.T)
    assert gradcheck(lambda x, y: x @ y, [x, y])
    xt, yt = leaf(a_t, device), leaf(b_t, device)
    assert_forward(xt.T @ yt.T, a_t.T @ b_t.T)
    assert gradcheck(lambda xt, yt: xt.T @ yt.transpose(1, 0), [xt, yt])


def test_matmul_with_a_constant_side(device):
    rng = np.random.default_rng(2)
    data = Tensor(rng.standard_normal((4, 3)), dtype=np.float64, device=device)  # no grad, like a batch
    w = leaf(rng.standard_normal((3, 2)), device)
    assert gradcheck(lambda w: data @ w, [w])
    w.grad = None  # gradcheck leaves its own backward's gradient behind
    (data @ w).sum().backward()
    assert data.grad is None
    np.testing.assert_allclose(backend_grad(w), np.repeat(data.numpy().sum(0)[:, None], 2, axis=1), rtol=1e-12)


def test_matmul_with_numpy_on_the_left():
    a = np.arange(6.0).reshape(2, 3)
    x = leaf(np.ones((3, 2)), "cpu")
    out = a @ x
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.numpy(), a @ np.ones((3, 2)))
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, np.repeat(a.sum(0)[:, None], 2, axis=1))


# --- reductions -----------------------------------------------------------------------------


def axes_for(ndim):
    single = st.integers(-ndim, ndim - 1)
    pairs = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)
    return st.one_of(st.none(), single, pairs)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@with_device
@given(data=st.data(), keepdims=st.booleans())
def test_sum_and_mean(reduction, device, data, keepdims):
    a = data.draw(shapes.flatmap(values))
    axis = data.draw(axes_for(a.ndim))
    x = leaf(a, device)

    def op(t):
        return getattr(t, reduction)(axis=axis, keepdims=keepdims)

    assert_forward(op(x), getattr(np, reduction)(a, axis=axis, keepdims=keepdims))
    assert gradcheck(op, [x])


def test_mean_gradient_is_one_over_count():
    x = leaf(np.zeros((2, 3, 4)), "cpu")
    x.mean(axis=(0, 2)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3, 4), 1 / 8))


def distinct_values(shape):
    """Values at least 0.3 apart, so that no two compete for a maximum within gradcheck's step."""
    size = int(np.prod(shape))
    noise = arrays(np.float64, shape, elements=st.floats(-0.1, 0.1))
    return st.tuples(st.permutations(range(size)), noise).map(
        lambda pn: np.array(pn[0], dtype=np.float64).reshape(shape) * 0.5 - size / 4 + pn[1])


@with_device
@given(data=st.data(), keepdims=st.booleans())
def test_max(device, data, keepdims):
    a = data.draw(shapes.flatmap(distinct_values))
    axis = data.draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
    x = leaf(a, device)

    def op(t):
        return t.max(axis=axis, keepdims=keepdims)

    assert_forward(op(x), a.max(axis=axis, keepdims=keepdims))
    assert gradcheck(op, [x])
    # The gradient goes to the winner of each slice and nowhere else.
    x.grad = None
    op(x).sum().backward()
    winners = (a == a.max(axis=axis, keepdims=True)).astype(np.float64)
    np.testing.assert_array_equal(backend_grad(x), winners)


def test_max_ties_share_the_gradient():
    x = leaf(np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]]), "cpu")
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)


# --- shape ops ----------------------------------------------------------------------------


@with_device
@given(a=shapes.flatmap(values))
def test_reshape(device, a):
    x = leaf(a, device)
    for target in [(a.size,), a.shape[::-1], (1, a.size, 1)]:
        assert_forward(x.reshape(target), a.reshape(target))
        assert gradcheck(lambda t: t.reshape(*target), [x])


@with_device
@given(data=st.data())
def test_transpose(device, data):
    a = data.draw(shapes.flatmap(values))
    axes = tuple(data.draw(st.permutations(range(a.ndim))))
    x = leaf(a, device)
    assert_forward(x.permute(axes), a.transpose(axes))
    assert_forward(x.T, a.T)
    assert gradcheck(lambda t: t.permute(*axes), [x])
    assert gradcheck(lambda t: t.T, [x])
    if a.ndim:  # torch's transpose: swap two dims, negative ones counted from the end
        i, j = data.draw(st.integers(-a.ndim, a.ndim - 1)), data.draw(st.integers(-a.ndim, a.ndim - 1))
        assert_forward(x.transpose(i, j), np.swapaxes(a, i, j))
        assert gradcheck(lambda t: t.transpose(i, j), [x])


@with_device
@given(data=st.data())
def test_getitem_basic_indices(device, data):
    a = data.draw(shapes.flatmap(values))
    index = data.draw(basic_indices(a.shape, allow_ellipsis=True))
    x = leaf(a, device)
    assert_forward(x[index], a[index])
    assert gradcheck(lambda t: t[index], [x])


def test_getitem_gradient_lands_in_the_slice():
    x = leaf(np.zeros((3, 4)), "cpu")
    x[1:, ::2].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]])
    # Splitting a batch in two and using both halves gives every row its gradient once.
    x.grad = None
    (x[:2] * 2).sum().backward()
    (x[2:] * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2] * 4, [2] * 4, [3] * 4])


@with_device
@given(data=st.data(), count=st.integers(1, 3))
def test_concatenate(device, data, count):
    base = data.draw(shapes)
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    arrays_ = []
    for _ in range(count):
        shape = list(base)
        shape[axis] = data.draw(st.integers(1, 5))
        arrays_.append(data.draw(values(tuple(shape))))
    xs = [leaf(a, device) for a in arrays_]
    assert_forward(concatenate(xs, axis=axis), np.concatenate(arrays_, axis=axis))
    assert gradcheck(lambda *ts: concatenate(ts, axis=axis), xs)


def test_concatenate_gives_each_input_its_slice():
    x, y = leaf(np.zeros((2, 2)), "cpu"), leaf(np.zeros((1, 2)), "cpu")
    weights = np.arange(6.0).reshape(3, 2)
    (concatenate([x, y]) * weights).sum().backward()
    np.testing.assert_array_equal(x.grad, weights[:2])
    np.testing.assert_array_equal(y.grad, weights[2:])


def test_to_and_astype_pass_gradients_back(device):
    x = leaf(np.array([1.0, -2.0, 3.0]), "cpu")
    moved = x.to(device)
    assert moved.device == ("cpu" if device == "cpu" else "cuda:0")
    (moved * moved).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])
    x.grad = None
    half = x.astype(np.float32)
    assert half.dtype == np.float32
    (half * 3).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [3.0, 3.0, 3.0])


# --- every coordinate, on tiny inputs -----------------------------------------------------

FULL_CASES = {
    "broadcast mul": (lambda x, y: x * y, [(2, 1), (1, 3)]),
    "broadcast div": (lambda x, y: x / y, [(2, 3), (3,)]),
    "matmul": (lambda x, y: x @ y, [(2, 3), (3, 2)]),
    "composite": (lambda x, y: ((x @ y).tanh() - 2).sigmoid().softplus().mean(axis=0), [(2, 3), (3, 2)]),
    "max": (lambda x: x.max(axis=1), [(2, 3)]),
    "getitem": (lambda x: x[:, 1:] * x[:, :1], [(2, 3)]),
    "concatenate": (lambda x, y: concatenate([x, y], axis=1).exp(), [(2, 1), (2, 2)]),
    "log of square": (lambda x: (x * x + 1).log().sum(keepdims=True), [(3,)]),
}


@pytest.mark.parametrize("name", sorted(FULL_CASES))
def test_full_gradcheck_on_tiny_inputs(name, device):
    op, input_shapes = FULL_CASES[name]
    rng = np.random.default_rng(3)
    # A permutation keeps values distinct (max has no ties) and away from 0 (no division by ~0).
    inputs = [leaf((rng.permutation(int(np.prod(s))) + 1.0).reshape(s) * rng.choice([-0.3, 0.3]), device)
              for s in input_shapes]
    assert gradcheck(op, inputs, full=True)
