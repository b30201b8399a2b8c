"""Tensor: an n-d array that remembers how it was made, so that gradients can flow back.

Like micrograd, but on arrays. Every op computes its forward result and, right beside it, a
`backward(g)` closure: given the gradient g of the final scalar with respect to the op's output,
it returns the gradients with respect to each of the op's inputs (the vector-Jacobian product).
`Tensor.backward()` visits the graph in reverse topological order and calls those closures.

Two rules are applied once, in the engine, rather than in every op:
- broadcasting: a gradient is summed back to the shape of the input it belongs to (`unbroadcast`);
- accumulation: an input used twice receives the sum of both gradients.

The file reads in that order: the engine (Tensor, backward, the topological sort, unbroadcast,
_result, _operands), then the ops, each a function whose backward sits right under its forward,
and last the table that makes them Tensor methods and operators (as tinygrad's early `register`
did). What a Tensor may hold and how two operands meet (dtypes, devices, shapes) is checked in
operands.py, which gives the one-line errors.
Data lives in `.data`, a NumPy or CuPy array; the array module is taken from the data.
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import backend, operands
from .operands import DEFAULT_DTYPE  # noqa: F401  (part of this module's API)

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block ops record nothing: no graph, no saved buffers. Also a decorator."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


# --- the engine ------------------------------------------------------------------------------


class Tensor:
    # Make NumPy defer to our reflected operators: without this, np.float64(2) * t or array + t
    # treats the Tensor as a sequence and returns an object array instead of a Tensor.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        # What a Tensor may hold (numbers, of a real dtype) is checked in operands.py.
        data = operands.as_float_array(data.data if isinstance(data, Tensor) else data, dtype)
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"Tensor: requires_grad must be True or False, got {requires_grad!r}")
        if requires_grad and data.dtype.kind != "f":  # as torch: an integer has no small step to take
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, got dtype {data.dtype}")
        if device is not None:
            data = backend.to_device(data, device)
        self.data = data
        self.grad = None  # an array like .data, filled by backward() on leaves
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None  # None for a leaf; else grad -> tuple of grads for _parents
        self._op = ""

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self._backward is None)

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` defaults to 1 for a one-element tensor. Unless `retain_graph`, each op's saved
        buffers are released as soon as its gradient has been passed on.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (was it made under no_grad or detached?)")
        xp = backend.array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward: grad can be implied only for a one-element tensor, "
                                   f"not shape {self.shape}")
            grad = xp.ones_like(self.data)
        else:
            grad = operands.as_float_array(grad.data if isinstance(grad, Tensor) else grad, self.dtype)
            backend.check_same_device("backward", self.data, grad)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad shape {grad.shape} does not match tensor shape {self.shape}")

        grads = {id(self): grad}
        order = _topological_order(self)
        while order:
            # Pop rather than iterate: once visited, a node is held by nothing here, so its output
            # array (an activation) is freed as soon as no one else needs it.
            node = order.pop()
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._backward is None:  # a leaf: keep its own copy, accumulating across calls
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            for parent, parent_grad in zip(node._parents, node._backward(g)):
                if parent_grad is None or not parent.requires_grad:
                    continue
                parent_grad = unbroadcast(parent_grad, parent.shape)
                previous = grads.get(id(parent))
                grads[id(parent)] = parent_grad if previous is None else previous + parent_grad
            if not retain_graph:
                node._backward, node._parents = _freed_graph, ()

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        where = f", device={self.device}" if self.device != "cpu" else ""
        return f"Tensor({self.data!r}{grad}{where})"

    def detach(self) -> Tensor:
        """The same data, cut from the graph: no gradient flows back through the result."""
        return Tensor(self.data)

    def numpy(self) -> np.ndarray:
        """A host copy of the data as a NumPy array."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item: only a tensor with one element has an item, this one has shape {self.shape}")
        return float(self.data.reshape(()))


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every node that leads to `root` and needs a gradient, each after all of its inputs.

    An explicit stack instead of recursion, so that a chain of 10,000 ops is fine.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if p.requires_grad and id(p) not in visited)
    return order


def unbroadcast(grad, shape):
    """Sum `grad` over the axes that broadcasting added or stretched, so that it has `shape`."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _result(data, parents, op, backward) -> Tensor:
    """Wrap an op's output; record how to differentiate it only if some input needs a gradient."""
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._op = data, None, op
    out.requires_grad = _grad_enabled and any(p.requires_grad for p in parents)
    if out.requires_grad:
        out._parents, out._backward = parents, backward
    else:
        out._parents, out._backward = (), None
    return out


def _freed_graph(g):
    raise RuntimeError(
        "backward through this part of the graph a second time: its buffers were freed after the "
        "first backward; pass retain_graph=True to the first call to keep them"
    )


def _operands(a, b, op, broadcast=True) -> tuple[Tensor, Tensor]:
    """`a` and `b` as Tensors on one device, of one dtype, with shapes that broadcast.

    A number or array beside a Tensor becomes a constant Tensor on its device, of its dtype. The
    checks, and the one-line errors that name `op`, are in operands.py.
    """
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: expected a Tensor operand, got {type(a).__name__} and {type(b).__name__}")
        a = Tensor(operands.lift(a, b.data, op, a_first=True))
    elif not isinstance(b, Tensor):
        b = Tensor(operands.lift(b, a.data, op, a_first=False))
    else:
        operands.check_same_kind(a.data, b.data, op)
    if broadcast:
        operands.check_broadcast(a.shape, b.shape, op)
    return a, b


# --- arithmetic: + * @ ** are primitives; - and / are built from them ---------------------------


def add(a, b) -> Tensor:
    a, b = _operands(a, b, "add")
    return _result(a.data + b.data, (a, b), "add", lambda g: (g, g))


def mul(a, b) -> Tensor:
    a, b = _operands(a, b, "mul")

    def backward(g):
        return (g * b.data if a.requires_grad else None,
                g * a.data if b.requires_grad else None)

    return _result(a.data * b.data, (a, b), "mul", backward)


def matmul(a, b) -> Tensor:
    a, b = _operands(a, b, "matmul", broadcast=False)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")

    def backward(g):
        # Skip work nobody needs, e.g. the gradient with respect to the data batch.
        return (g @ b.data.T if a.requires_grad else None,
                a.data.T @ g if b.requires_grad else None)

    return _result(a.data @ b.data, (a, b), "matmul", backward)


def affine(x, weight, bias) -> Tensor:
    """x @ weight + bias as one op (torch's addmm): the product is not kept as a node of its own,
    which saves one (batch, out) array per layer for as long as the graph lives."""
    x, weight = _operands(x, weight, "affine", broadcast=False)
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"affine: shapes {x.shape} and {weight.shape} do not align")
    weight, bias = _operands(weight, bias, "affine", broadcast=False)
    if bias.shape != (weight.shape[1],):
        raise ValueError(f"affine: bias shape {bias.shape} does not match {weight.shape[1]} outputs")
    out = x.data @ weight.data
    out += bias.data

    def backward(g):
        return (g @ weight.data.T if x.requires_grad else None,
                x.data.T @ g if weight.requires_grad else None,
                g.sum(axis=0) if bias.requires_grad else None)

    return _result(out, (x, weight, bias), "affine", backward)


def power(x: Tensor, exponent) -> Tensor:
    if isinstance(exponent, Tensor) or not np.isscalar(exponent):
        raise TypeError("pow: only a Python number is supported as the exponent")
    # A NumPy scalar exponent (np.float64(2)) would promote float32 data to float64.
    exponent = exponent.item() if isinstance(exponent, np.generic) else exponent
    return _result(x.data ** exponent, (x,), "pow", lambda g: (g * exponent * x.data ** (exponent - 1),))


def neg(x: Tensor) -> Tensor:
    return _result(-x.data, (x,), "neg", lambda g: (-g,))


def sub(a, b) -> Tensor:
    a, b = _operands(a, b, "sub")  # so that a shape error names sub, not the add it becomes
    return a + (-b)


def div(a, b) -> Tensor:
    a, b = _operands(a, b, "div")
    return a * b ** -1


# --- reductions ------------------------------------------------------------------------------


def reduce_sum(x: Tensor, axis=None, keepdims=False) -> Tensor:
    def backward(g):
        if axis is not None and not keepdims:
            g = backend.array_module(g).expand_dims(g, axis)
        return (backend.array_module(g).broadcast_to(g, x.shape),)

    return _result(x.data.sum(axis=axis, keepdims=keepdims), (x,), "sum", backward)


def mean(x: Tensor, axis=None, keepdims=False) -> Tensor:
    count = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    # The mean of nothing is nan, as in torch and NumPy (0 · nan), not a ZeroDivisionError.
    return x.sum(axis=axis, keepdims=keepdims) * (1.0 / count if count else float("nan"))


def reduce_max(x: Tensor, axis=None, keepdims=False) -> Tensor:
    """Max over an axis (maxout's pooling). Tied maxima share the gradient equally."""
    out = x.data.max(axis=axis, keepdims=True)

    def backward(g):
        xp = backend.array_module(g)
        winners = (x.data == out).astype(g.dtype)
        winners /= winners.sum(axis=axis, keepdims=True)
        if axis is not None and not keepdims:
            g = xp.expand_dims(g, axis)
        return (winners * g,)

    value = out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis))
    return _result(value, (x,), "max", backward)


# --- elementwise functions -------------------------------------------------------------------


def _stable_sigmoid(xp, x):
    """σ(x) as exp(−softplus(−x)), which never overflows, for large |x| of either sign."""
    return xp.exp(-xp.logaddexp(0, -x))


def exp(x: Tensor) -> Tensor:
    y = backend.array_module(x.data).exp(x.data)
    return _result(y, (x,), "exp", lambda g: (g * y,))


def log(x: Tensor) -> Tensor:
    return _result(backend.array_module(x.data).log(x.data), (x,), "log", lambda g: (g / x.data,))


def tanh(x: Tensor) -> Tensor:
    y = backend.array_module(x.data).tanh(x.data)
    return _result(y, (x,), "tanh", lambda g: (g * (1 - y * y),))


def sigmoid(x: Tensor) -> Tensor:
    y = _stable_sigmoid(backend.array_module(x.data), x.data)
    return _result(y, (x,), "sigmoid", lambda g: (g * y * (1 - y),))


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), computed without overflow; its derivative is sigmoid(x)."""
    xp = backend.array_module(x.data)
    return _result(xp.logaddexp(0, x.data), (x,), "softplus", lambda g: (g * _stable_sigmoid(xp, x.data),))


def relu(x: Tensor) -> Tensor:
    positive = x.data > 0
    return _result(x.data * positive, (x,), "relu", lambda g: (g * positive,))


def leaky_relu(x: Tensor, slope=0.01) -> Tensor:
    xp, data = backend.array_module(x.data), x.data
    slope = float(slope)  # a NumPy float64 slope would promote float32 data
    if not 0 <= slope <= 1:
        raise ValueError(f"leaky_relu: slope must lie in [0, 1], got {slope}")
    # max(x, slope·x) is where(x > 0, x, slope·x) for such slopes, bit for bit, without np.where's
    # slow select.
    y = data * slope
    xp.maximum(data, y, out=y)

    def backward(g):
        derivative = (data > 0).astype(g.dtype)  # 1 where x > 0, else 0 ...
        derivative *= 1 - slope
        derivative += slope  # ... then 1 where x > 0, else slope
        derivative *= g  # in place: one (batch, features) array, not two
        return (derivative,)

    return _result(y, (x,), "leaky_relu", backward)


# --- shape and device ------------------------------------------------------------------------


def reshape(x: Tensor, *shape) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    source = x.shape
    try:
        y = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape {x.shape} into {tuple(shape)}") from None
    return _result(y, (x,), "reshape", lambda g: (g.reshape(source),))


def transpose(x: Tensor, *axes) -> Tensor:
    axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    axes = tuple(axes) or tuple(reversed(range(x.ndim)))
    inverse = tuple(np.argsort(axes))
    return _result(x.data.transpose(axes), (x,), "transpose", lambda g: (g.transpose(inverse),))


def getitem(x: Tensor, index) -> Tensor:
    """x[index], e.g. splitting a batch in two. An index that picks one element twice (x[[0, 0]])
    sends it the sum of both gradients."""
    index = index.data if isinstance(index, Tensor) else index
    # Ints, slices and masks pick each element at most once; a list or an integer array may repeat one.
    repeats = any(isinstance(i, list) or (getattr(i, "ndim", 0) > 0 and i.dtype.kind in "iu")
                  for i in (index if isinstance(index, tuple) else (index,)))

    def backward(g):
        xp = backend.array_module(g)
        full = xp.zeros(x.shape, dtype=g.dtype)
        if not repeats:
            full[index] = g
        elif xp is np:
            np.add.at(full, index, g)  # accumulates where an element is picked more than once
        else:
            import cupyx

            cupyx.scatter_add(full, index, g)
        return (full,)

    return _result(x.data[index], (x,), "getitem", backward)


def to(x: Tensor, device) -> Tensor:
    """A copy on `device`; gradients flow back to this tensor's device."""
    source = x.device
    return _result(backend.to_device(x.data, device), (x,), "to", lambda g: (backend.to_device(g, source),))


def astype(x: Tensor, dtype) -> Tensor:
    """A copy in `dtype`. To an integer dtype it is a constant, as in torch: no gradient flows back."""
    source, y = x.dtype, operands.as_float_array(x.data, dtype, op="astype")
    if y.dtype.kind != "f":
        return Tensor(y, dtype=y.dtype)
    return _result(y, (x,), "astype", lambda g: (g.astype(source),))


def concatenate(tensors, axis=0) -> Tensor:
    """Join tensors along an axis; each gets back its own slice of the gradient."""
    if isinstance(tensors, Tensor):
        raise TypeError("concatenate: expected a list of tensors, got one Tensor")
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"concatenate: item {i} is a {type(t).__name__}, not a Tensor")
    first = tensors[0]
    for t in tensors[1:]:
        backend.check_same_device("concatenate", first.data, t.data)
        if t.dtype != first.dtype:
            raise TypeError(f"concatenate: dtypes {first.dtype} and {t.dtype} differ")
    xp = backend.array_module(first.data)
    try:
        data = xp.concatenate([t.data for t in tensors], axis=axis)
    except ValueError:
        raise ValueError(f"concatenate: shapes {[t.shape for t in tensors]} do not fit along axis {axis}") from None
    ends = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return _result(data, tuple(tensors), "concatenate", lambda g: tuple(xp.split(g, ends, axis=axis)))


# --- the ops as Tensor methods and operators -----------------------------------------------------

# Plain assignments rather than a loop, so that a reader (or an editor) can find each one.
Tensor.__add__, Tensor.__radd__ = add, lambda self, other: add(other, self)
Tensor.__sub__, Tensor.__rsub__ = sub, lambda self, other: sub(other, self)
Tensor.__mul__, Tensor.__rmul__ = mul, lambda self, other: mul(other, self)
Tensor.__truediv__, Tensor.__rtruediv__ = div, lambda self, other: div(other, self)
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, lambda self, other: matmul(other, self)
Tensor.__pow__ = power
Tensor.__neg__ = neg
Tensor.sum = reduce_sum
Tensor.mean = mean
Tensor.max = reduce_max
Tensor.exp = exp
Tensor.log = log
Tensor.tanh = tanh
Tensor.sigmoid = sigmoid
Tensor.softplus = softplus
Tensor.relu = relu
Tensor.leaky_relu = leaky_relu
Tensor.reshape = reshape
Tensor.transpose = transpose
Tensor.T = property(transpose)
Tensor.__getitem__ = getitem
Tensor.to = to
Tensor.astype = astype
