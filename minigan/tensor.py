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
Each op records the version of every array its backward will read (torch's `_version`, bumped by
every in-place write), so that backward refuses an array an optimizer step has changed since.
Data lives in `.data`, a NumPy or CuPy array; the array module is taken from the data.
"""

from __future__ import annotations

import copy
import functools
import inspect
import operator
import threading

import numpy as np

from . import backend, operands
from .operands import DEFAULT_DTYPE  # noqa: F401  (part of this module's API)


# --- the engine ------------------------------------------------------------------------------


class Tensor:
    # Make NumPy defer to our reflected operators: without this, np.float64(2) * t or array + t
    # treats the Tensor as a sequence and returns an object array instead of a Tensor.
    __array_ufunc__ = None
    # Tensors stay usable as dict keys and in sets although == compares values.
    __hash__ = object.__hash__
    name = None  # a label for messages, e.g. "D.0.weight" (configs.py names the players' parameters)

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        """A leaf holding a copy of `data`, as torch.tensor; `from_numpy` shares the array instead."""
        # What a Tensor may hold (numbers, of a real dtype) is checked in operands.py.
        source = data.data if isinstance(data, Tensor) else data
        data = operands.as_float_array(source, dtype)
        if device is not None:
            data = backend.to_device(data, device)
        if operands.shares_memory(data, source):  # else a conversion above has already copied
            data = backend.copy(data)
        _init_leaf(self, data, requires_grad, [0])

    # An in-place write (p.data -= lr * g, or p.data = new) bumps the version of the array that
    # ops saved for backward, so that backward can refuse a stale one (torch's _version).
    data = property(lambda self: self._data)

    @data.setter
    def data(self, array):
        self._data = array
        self._versions[0] += 1

    _version = property(lambda self: self._versions[0])
    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    device = property(lambda self: backend.device_of(self._data))
    is_leaf = property(lambda self: self._backward is None)
    requires_grad = property(lambda self: self._requires_grad)
    grad = property(lambda self: self._grad)  # an array like .data, filled by backward() on leaves

    @requires_grad.setter
    def requires_grad(self, flag):
        if not self.is_leaf:
            raise RuntimeError("requires_grad: you can only change requires_grad flags of leaf tensors; "
                               "use .detach() for a copy that is cut from the graph")
        self._requires_grad = _checked_requires_grad(flag, self._data)

    @grad.setter
    def grad(self, value):
        if value is not None:
            operands.check_grad(value, self._data, is_self=value is self)
        self._grad = value

    def requires_grad_(self, flag=True) -> Tensor:
        self.requires_grad = flag
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf's gradient in `.grad` after backward (a leaf keeps its own anyway)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad, so it gets no gradient to keep")
        self._retains_grad = not self.is_leaf

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
            grad = grad.data if isinstance(grad, Tensor) else operands.on_device_of(grad, self.data, "backward")
            backend.check_same_device("backward", self.data, grad)
            grad = operands.as_float_array(grad, self.dtype)
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
            if node._backward is None or node._retains_grad:  # keep its own copy, accumulating across calls
                # An array, also for 0-d (where a NumPy op returns a scalar), and a copy of g.
                own = backend.array_module(g)
                node._grad = own.array(g) if node._grad is None else own.asarray(node._grad + g)
                if node._backward is None:
                    continue
            for saved, versions, version in node._saved:
                if versions[0] != version:
                    raise RuntimeError(_modified_message(node, saved, version, versions[0]))
            for parent, parent_grad in zip(node._parents, node._backward(g)):
                if parent_grad is None or not parent.requires_grad:
                    continue
                parent_grad = unbroadcast(parent_grad, parent.shape)
                previous = grads.get(id(parent))
                grads[id(parent)] = parent_grad if previous is None else previous + parent_grad
            if not retain_graph:
                node._backward, node._parents, node._saved = _freed_graph, (), ()

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        where = f", device={self.device}" if self.device != "cpu" else ""
        return f"Tensor({self.data!r}{grad}{where})"

    def detach(self) -> Tensor:
        """The same data (and version counter), cut from the graph: no gradient flows back through it."""
        return _leaf(self.data, versions=self._versions)

    def numpy(self) -> np.ndarray:
        """A host copy of the data as a NumPy array."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def item(self) -> float:
        if self.size != 1:
            raise ValueError(f"item: only a tensor with one element has an item, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def __bool__(self):
        if self.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self.size} elements is ambiguous; "
                               f"use .numpy().any() or .numpy().all()")
        return bool(self.item())

    def __float__(self):
        if self.size != 1:
            raise ValueError(f"float: only a one-element tensor converts to a Python number, not shape {self.shape}")
        return float(self.item())

    def __int__(self):
        if self.size != 1:
            raise ValueError(f"int: only a one-element tensor converts to a Python number, not shape {self.shape}")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        if self.device != "cpu":
            raise TypeError(f"a tensor on {self.device} cannot become a NumPy array implicitly; use .numpy()")
        return np.array(self.data, dtype=dtype, copy=copy)

    def __deepcopy__(self, memo):
        # As torch: a graph is not copied, only a leaf the user made.
        if not self.is_leaf:
            raise RuntimeError("deepcopy: only leaf tensors (made by the user, not by an op) can be deep-copied; "
                               "deep-copy .detach() for the values")
        twin = _leaf(copy.deepcopy(self.data, memo), self.requires_grad)
        twin._grad = copy.deepcopy(self.grad, memo)
        memo[id(self)] = twin
        return twin

    def __reduce_ex__(self, protocol):
        # As torch: the data and requires_grad, never the graph (whose closures cannot be pickled).
        return _leaf, (self.data, self.requires_grad)


def from_numpy(array) -> Tensor:
    """A leaf that shares `array` (NumPy, or CuPy): writes to either show in the other, as torch.from_numpy."""
    if not (isinstance(array, np.ndarray) or backend.array_module(array) is not np):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(array).__name__}")
    return _leaf(operands.as_float_array(array, array.dtype, op="from_numpy"))


def _leaf(data, requires_grad=False, versions=None) -> Tensor:
    """A leaf around `data` itself, not a copy: the private path for code that must not copy."""
    t = Tensor.__new__(Tensor)
    _init_leaf(t, data, requires_grad, [0] if versions is None else versions)
    return t


def _init_leaf(t, data, requires_grad, versions) -> None:
    t._data, t._versions = data, versions
    t._requires_grad = _checked_requires_grad(requires_grad, data)
    t._grad, t._op, t._retains_grad = None, "", False
    t._parents, t._saved = (), ()
    t._backward = None  # None for a leaf; else grad -> tuple of grads for _parents


def _checked_requires_grad(flag, data) -> bool:
    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(f"Tensor: requires_grad must be True or False, got {flag!r}")
    if flag and data.dtype.kind != "f":  # as torch: an integer has no small step to take
        raise TypeError(f"Tensor: only floating-point tensors can require gradients, got dtype {data.dtype}")
    return bool(flag)


def _modified_message(node, saved, version, now) -> str:
    tensor = saved if saved is not None else node
    role = "an input" if saved is not None else "the output"
    name = tensor.name
    what = f"{role} of {node._op} (shape {tensor.shape})"
    what = f"{name}, {what}," if name else what
    return (f"backward: {what} was modified in place after it was saved for backward (version {version} → {now}), "
            f"e.g. by an optimizer step; compute the loss again after the step")


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


def _result(data, parents, op, backward, saved=(), saves_output=False, view_of=None) -> Tensor:
    """Wrap an op's output; record how to differentiate it only if some input needs a gradient.

    `saved` are the inputs whose data `backward` reads, and `saves_output` says it reads the
    output's: their versions now are kept, and backward refuses to run if one has changed.
    An output that is a view of `view_of`'s memory (a reshape, x.T, x[0]) shares its version
    counter, as in torch: a write to either is a write to both.
    """
    out = Tensor.__new__(Tensor)
    shares = view_of is not None and operands.shares_memory(data, view_of.data)
    versions = view_of._versions if shares else [0]
    out._data, out._versions, out._grad, out._op, out._retains_grad = data, versions, None, op, False
    out._requires_grad = _grad_mode.enabled and any(p.requires_grad for p in parents)
    if out._requires_grad:
        out._parents, out._backward = parents, backward
        out._saved = tuple((t, t._versions, t._versions[0]) for t in saved)
        if saves_output:  # None stands for the output itself: a reference to it would be a cycle
            out._saved += ((None, out._versions, out._versions[0]),)
    else:
        out._parents, out._backward, out._saved = (), None, ()
    return out


def _read_by_backward(*pairs) -> tuple[Tensor, ...]:
    """The `t` of each (t, needed) pair that is needed: what a backward will read, and only that,
    as torch saves (x @ W with a constant x saves x, so a later step on W does not stale it)."""
    return tuple(t for t, needed in pairs if needed)


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
        a = _leaf(operands.lift(a, b.data, op, a_first=True))
    elif not isinstance(b, Tensor):
        b = _leaf(operands.lift(b, a.data, op, a_first=False))
    else:
        operands.check_same_kind(a.data, b.data, op)
    if broadcast:
        operands.check_broadcast(a.shape, b.shape, op)
    return a, b


# --- grad mode -------------------------------------------------------------------------------


class _GradMode(threading.local):
    # Per thread, as in torch: a no_grad block in one thread leaves another thread's graph alone.
    enabled = True


_grad_mode = _GradMode()


class no_grad:
    """Inside this block ops record nothing: no graph, no saved buffers.

    Also a decorator, written @no_grad() or @no_grad; on a generator function the body runs with
    grad off at every resume, as torch's does.
    """

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        return self(fn) if fn is not None else self

    def __enter__(self):
        self.previous, _grad_mode.enabled = _grad_mode.enabled, False

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self.previous

    def __call__(self, fn):
        if not callable(fn):
            raise TypeError(f"no_grad: expected a function to decorate, got {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn):
            return _generator_without_grad(fn)

        @functools.wraps(fn)
        def without_grad(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return without_grad


def _generator_without_grad(fn):
    # The body runs between resumes, not when the decorated function is called, so each resume
    # gets its own no_grad block (and grad mode is the caller's again while the generator waits).
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        generator = fn(*args, **kwargs)
        resume, value = generator.send, None
        while True:
            with no_grad():
                try:
                    response = resume(value)
                except StopIteration as stop:
                    return stop.value
            try:
                resume, value = generator.send, (yield response)
            except GeneratorExit:
                with no_grad():
                    generator.close()
                raise
            except BaseException as error:  # thrown into us: pass it on to the body
                resume, value = generator.throw, error

    return wrapper


def is_grad_enabled() -> bool:
    return _grad_mode.enabled



# --- arithmetic: + * / @ ** are primitives; - is built from them -------------------------------


def add(a, b) -> Tensor:
    a, b = _operands(a, b, "add")
    return _result(a.data + b.data, (a, b), "add", lambda g: (g, g))


def mul(a, b) -> Tensor:
    a, b = _operands(a, b, "mul")

    def backward(g):
        return (g * b.data if a.requires_grad else None,
                g * a.data if b.requires_grad else None)

    return _result(a.data * b.data, (a, b), "mul", backward,
                   saved=_read_by_backward((b, a.requires_grad), (a, b.requires_grad)))


def matmul(a, b) -> Tensor:
    a, b = _operands(a, b, "matmul", broadcast=False)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: takes 2-d tensors only, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")

    def backward(g):
        # Skip work nobody needs, e.g. the gradient with respect to the data batch.
        return (g @ b.data.T if a.requires_grad else None,
                a.data.T @ g if b.requires_grad else None)

    return _result(a.data @ b.data, (a, b), "matmul", backward,
                   saved=_read_by_backward((b, a.requires_grad), (a, b.requires_grad)))


def affine(x, weight, bias) -> Tensor:
    """x @ weight + bias as one op (torch's addmm): the product is not kept as a node of its own,
    which saves one (batch, out) array per layer for as long as the graph lives."""
    x, weight = _operands(x, weight, "affine", broadcast=False)
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[0]:
        # The one shape check of a Linear layer: name the input it expects.
        raise ValueError(f"affine: input {x.shape} does not fit weight {weight.shape}; "
                         f"expected (batch, {weight.shape[0]})")
    weight, bias = _operands(weight, bias, "affine", broadcast=False)
    if bias.shape != (weight.shape[1],):
        raise ValueError(f"affine: bias shape {bias.shape} does not match {weight.shape[1]} outputs")
    out = x.data @ weight.data
    out += bias.data

    def backward(g):
        return (g @ weight.data.T if x.requires_grad else None,
                x.data.T @ g if weight.requires_grad else None,
                g.sum(axis=0) if bias.requires_grad else None)

    return _result(out, (x, weight, bias), "affine", backward,
                   saved=_read_by_backward((weight, x.requires_grad), (x, weight.requires_grad)))


def power(x: Tensor, exponent) -> Tensor:
    if isinstance(exponent, Tensor) or not np.isscalar(exponent):
        raise TypeError("pow: only a Python number is supported as the exponent")
    # A NumPy scalar exponent (np.float64(2)) would promote float32 data to float64.
    exponent = exponent.item() if isinstance(exponent, np.generic) else exponent

    def backward(g):
        if exponent == 0:  # as torch: 0 everywhere, also at x = 0 where x ** -1 is inf
            return (backend.array_module(g).zeros_like(g),)
        return (g * exponent * x.data ** (exponent - 1),)

    return _result(x.data ** exponent, (x,), "pow", backward, saved=(x,))


def neg(x: Tensor) -> Tensor:
    return _result(-x.data, (x,), "neg", lambda g: (-g,))


def sub(a, b) -> Tensor:
    a, b = _operands(a, b, "sub")  # so that a shape error names sub, not the add it becomes
    return a + (-b)


def div(a, b) -> Tensor:
    a, b = _operands(a, b, "div")

    def backward(g):
        # d(a/b)/db = -(a/b)/b, in that order (as torch): b * b would underflow for tiny b in
        # float32, and d(x/x)/dx comes out exactly 0.
        return (g / b.data if a.requires_grad else None,
                -g * (a.data / b.data / b.data) if b.requires_grad else None)

    return _result(a.data / b.data, (a, b), "div", backward,
                   saved=_read_by_backward((b, True), (a, b.requires_grad)))


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
    """Max over an axis (maxout's pooling). Tied maxima share the gradient equally; where the
    max is nan, the nans share it, as torch's max() does (not every element)."""
    out = x.data.max(axis=axis, keepdims=True)

    def backward(g):
        xp = backend.array_module(g)
        winners = ((x.data == out) | (xp.isnan(x.data) & xp.isnan(out))).astype(g.dtype)
        winners /= winners.sum(axis=axis, keepdims=True)
        if axis is not None and not keepdims:
            g = xp.expand_dims(g, axis)
        return (winners * g,)

    value = out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis))
    return _result(value, (x,), "max", backward, saved=(x,))


# --- elementwise functions -------------------------------------------------------------------


def _stable_sigmoid(xp, x):
    """σ(x) as exp(−softplus(−x)), which never overflows, for large |x| of either sign."""
    return xp.exp(-xp.logaddexp(0, -x))


def exp(x: Tensor) -> Tensor:
    y = backend.array_module(x.data).exp(x.data)
    return _result(y, (x,), "exp", lambda g: (g * y,), saves_output=True)


def log(x: Tensor) -> Tensor:
    return _result(backend.array_module(x.data).log(x.data), (x,), "log", lambda g: (g / x.data,), saved=(x,))


def tanh(x: Tensor) -> Tensor:
    y = backend.array_module(x.data).tanh(x.data)
    return _result(y, (x,), "tanh", lambda g: (g * (1 - y * y),), saves_output=True)


def sigmoid(x: Tensor) -> Tensor:
    y = _stable_sigmoid(backend.array_module(x.data), x.data)
    return _result(y, (x,), "sigmoid", lambda g: (g * y * (1 - y),), saves_output=True)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x), computed without overflow; its derivative is sigmoid(x)."""
    xp = backend.array_module(x.data)
    return _result(xp.logaddexp(0, x.data), (x,), "softplus", lambda g: (g * _stable_sigmoid(xp, x.data),),
                   saved=(x,))


def relu(x: Tensor) -> Tensor:
    positive = ~(x.data <= 0)  # NaN passes its gradient on, as in torch
    xp = backend.array_module(x.data)
    return _result(xp.maximum(x.data, 0), (x,), "relu", lambda g: (g * positive,))  # not x * positive: -inf * 0 is NaN


def leaky_relu(x: Tensor, slope=0.01) -> Tensor:
    slope = float(slope)  # a NumPy float64 slope would promote float32 data
    if not 0 <= slope <= 1:
        raise ValueError(f"leaky_relu: slope must lie in [0, 1], got {slope}")
    xp = backend.array_module(x.data)

    def slopes():  # 1 where x > 0, else slope; made again in backward rather than kept beside x
        return xp.maximum((x.data > 0).astype(x.dtype), slope)

    return _result(x.data * slopes(), (x,), "leaky_relu", lambda g: (g * slopes(),), saved=(x,))


# --- shape and device ------------------------------------------------------------------------


def reshape(x: Tensor, *shape) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    source = x.shape
    try:
        y = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape {x.shape} into {tuple(shape)}") from None
    return _result(y, (x,), "reshape", lambda g: (g.reshape(source),), view_of=x)


def permute(x: Tensor, *dims) -> Tensor:
    """The dims reordered: dim i of the result is dim dims[i] of x (NumPy's transpose(axes))."""
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    if sorted(_dim(x, d, "permute") for d in dims) != list(range(x.ndim)):
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} dims of shape {x.shape}")
    dims = tuple(_dim(x, d, "permute") for d in dims)
    inverse = tuple(np.argsort(dims))
    return _result(x.data.transpose(dims), (x,), "permute", lambda g: (g.transpose(inverse),), view_of=x)


def transpose(x: Tensor, dim0, dim1) -> Tensor:
    """Swap two dims, as torch.transpose; negative dims count from the end."""
    dims = list(range(x.ndim))
    i, j = _dim(x, dim0, "transpose"), _dim(x, dim1, "transpose")
    dims[i], dims[j] = dims[j], dims[i]
    return permute(x, dims)


def _dim(x: Tensor, dim, op) -> int:
    """`dim` as an index in [0, ndim), or an IndexError naming the range it must lie in."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: a dim is an int, got {dim!r}")
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {x.ndim} dims")
    return int(dim) % max(x.ndim, 1)


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
        if repeats:
            xp.add.at(full, index, g)  # accumulates where an element is picked more than once
        else:
            full[index] = g
        return (full,)

    return _result(x.data[index], (x,), "getitem", backward, view_of=x)


def to(x: Tensor, device) -> Tensor:
    """The data on `device` (a copy, or x's own memory if it is there already, as torch);
    gradients flow back to this tensor's device."""
    source = x.device
    return _result(backend.to_device(x.data, device), (x,), "to", lambda g: (backend.to_device(g, source),),
                   view_of=x)


def astype(x: Tensor, dtype) -> Tensor:
    """The data in `dtype` (a copy, or x's own memory if it has that dtype already, as torch's .to).
    To an integer dtype it is a constant, as in torch: no gradient flows back."""
    source, y = x.dtype, operands.as_float_array(x.data, dtype, op="astype")
    if y.dtype.kind != "f":
        return _leaf(y)
    return _result(y, (x,), "astype", lambda g: (g.astype(source),), view_of=x)


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
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"concatenate: axis must be an int, got {axis!r}; flatten with .reshape(-1) first")
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


# --- in-place operators and comparisons ------------------------------------------------------


def _in_place(name, update):
    """t += other (and -=, *=, /=): writes into t's array, and bumps its version, as torch does.

    Only where no graph needs the old value: under no_grad, or on a tensor that does not require
    grad. `other` is broadcast to t's shape and the result cast into t's dtype, as in torch.
    """
    def method(self, other):
        _refuse_in_place_in_a_graph(self, name)
        other = other.data if isinstance(other, Tensor) else operands.on_device_of(other, self.data, name)
        backend.check_same_device(name, self.data, other)
        operands.check_broadcast(self.shape, other.shape, name)
        if np.broadcast_shapes(self.shape, other.shape) != self.shape:
            raise ValueError(f"{name}: shape {other.shape} would change shape {self.shape} in place")
        try:
            self.data = update(self.data, other)  # the array's own in-place op, then the version bump
        except TypeError:  # NumPy's UFuncTypeError: "Cannot cast ufunc 'add' output from ..."
            raise TypeError(f"{name}: the result cannot be stored in place in dtype {self.dtype}") from None
        return self

    return method


def _refuse_in_place_in_a_graph(t: Tensor, name) -> None:
    if t.requires_grad and _grad_mode.enabled:
        if t.is_leaf:
            raise RuntimeError(f"{name}: a leaf tensor that requires grad cannot be changed in place "
                               f"outside no_grad (wrap the update in `with no_grad():`)")
        instead = f"write t = t {name[:-1]} other" if name.endswith("=") else "make a new tensor"
        raise RuntimeError(f"{name}: minigan does not record in-place ops in the graph; {instead} instead")


def _set_item(self, index, value) -> None:
    """t[index] = value: an in-place write with the rules of t += other (under no_grad, or on a
    tensor that needs no grad), its version bumped. With a view, `W[0] += 1` works as in torch."""
    name = "item assignment"
    _refuse_in_place_in_a_graph(self, name)
    index = index.data if isinstance(index, Tensor) else index
    value = value.data if isinstance(value, Tensor) else operands.on_device_of(value, self.data, name)
    backend.check_same_device(name, self.data, value)
    array = self.data
    try:
        array[index] = value
    except ValueError as error:  # "could not broadcast input array from shape (4,) into shape (3,)"
        raise ValueError(f"{name}: {' '.join(str(error).split())}") from None
    self.data = array  # the version bump


def _comparison(name, compare):
    """t == other and the like: a boolean array on t's device (not a Tensor: no gradient flows)."""
    def method(self, other):
        if isinstance(other, Tensor):
            backend.check_same_device(name, self.data, other.data)
            other = other.data
        elif not (np.isscalar(other) or hasattr(other, "dtype")):
            return NotImplemented  # t == None or t == "a" is False, not an error, as in torch
        return compare(self.data, other)

    return method


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
Tensor.permute = permute
Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))))
Tensor.__getitem__ = getitem
Tensor.__setitem__ = _set_item
Tensor.to = to
Tensor.astype = astype
def _copy_into(array, source):
    array[...] = source
    return array


Tensor.copy_ = _in_place("copy_", _copy_into)  # t.copy_(source): torch's in-place copy, version bumped
Tensor.__iadd__ = _in_place("+=", operator.iadd)
Tensor.__isub__ = _in_place("-=", operator.isub)
Tensor.__imul__ = _in_place("*=", operator.imul)
Tensor.__itruediv__ = _in_place("/=", operator.itruediv)
Tensor.__eq__ = _comparison("==", operator.eq)
Tensor.__ne__ = _comparison("!=", operator.ne)
Tensor.__lt__ = _comparison("<", operator.lt)
Tensor.__le__ = _comparison("<=", operator.le)
Tensor.__gt__ = _comparison(">", operator.gt)
Tensor.__ge__ = _comparison(">=", operator.ge)
