"""A CuPy stand-in on NumPy, strict where CuPy is strict, for running the CUDA code paths on a CPU.

It catches what a GPU would refuse and NumPy lets through: an array on the host meeting one on the
device (CuPy raises TypeError for a NumPy operand), an implicit conversion to NumPy (np.asarray of a
CuPy array raises), a copy made on the wrong device. Its arrays live in the module "cupy", so that
minigan's backend takes them for CuPy's. It is not CuPy: no kernels, no streams, no CUDA graphs, and
its random numbers are NumPy's (a stream of their own, as CuPy's differ from NumPy's). The fused
engine (minigan/fast) needs real CUDA and is not covered.

    with installed(monkeypatch):      # sys.modules["cupy"] is the stand-in until the test ends
        ...
"""

from __future__ import annotations

import contextlib
import operator
import types

import numpy as np


class ndarray:  # noqa: N801 (CuPy's name)
    """A NumPy array that only meets other stand-in arrays, Python numbers and NumPy scalars."""

    __slots__ = ("_a",)

    def __init__(self, array):
        self._a = array

    # --- what CuPy refuses -----------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
                        "construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):  # np.exp(a), np.float32(2) * a
        if method not in ("__call__", "at"):
            return NotImplemented
        if method == "at":
            target, index, *values = inputs
            index = _unwrap_index(index)
            getattr(ufunc, "at")(target._a, index, *[_operand(v) for v in values])
            return None
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = tuple(_operand(o) for o in out)
        return _wrap(getattr(ufunc, method)(*[_operand(x) for x in inputs], **kwargs))

    def __array_function__(self, func, types, args, kwargs):  # np.sum(a), np.concatenate([a, b])
        return _wrap(func(*_unwrap_tree(args), **_unwrap_tree(kwargs)))

    # --- attributes ---------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    flat = property(lambda self: _FlatIndexer(self._a))
    device = property(lambda self: Device(0))

    def get(self):
        return np.array(self._a, copy=True)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray(row) for row in self._a)

    def __repr__(self):
        return "stand-in cupy " + repr(self._a)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap_index(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap_index(index)] = _operand(value)

    def __deepcopy__(self, memo):
        return ndarray(self._a.copy())

    def __reduce__(self):
        return ndarray, (self._a,)


def _method(name):
    def method(self, *args, **kwargs):
        return _wrap(getattr(self._a, name)(*_unwrap_tree(args), **_unwrap_tree(kwargs)))
    method.__name__ = name
    return method


for _name in ("reshape", "transpose", "sum", "mean", "max", "min", "argmax", "argmin", "astype", "copy",
              "ravel", "any", "all", "std", "var", "clip", "cumsum", "fill", "view", "squeeze", "dot"):
    setattr(ndarray, _name, _method(_name))


def _binary(op, reflected=False):
    def method(self, other):
        if getattr(type(other), "__array_ufunc__", True) is None:  # as CuPy: the other's reflected op runs
            return NotImplemented
        other = _operand(other)
        return _wrap(op(other, self._a) if reflected else op(self._a, other))
    return method


def _in_place(op):
    def method(self, other):
        op(self._a, _operand(other))
        return self
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "pow", "matmul", "and", "or", "xor", "mod"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(ndarray, f"__i{_name}__", _in_place(getattr(operator, f"i{_name}")))
for _name, _op in [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt), ("le", operator.le),
                   ("gt", operator.gt), ("ge", operator.ge)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))
ndarray.__neg__ = lambda self: ndarray(-self._a)
ndarray.__invert__ = lambda self: ndarray(~self._a)
ndarray.__abs__ = lambda self: ndarray(abs(self._a))
ndarray.__hash__ = None


class _FlatIndexer:
    def __init__(self, array):
        self._a = array

    def __getitem__(self, index):
        return _wrap(self._a.flat[_unwrap_index(index)])


def _operand(value):
    """What an op may take: stand-in arrays, numbers and NumPy scalars; a NumPy array is refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")  # CuPy's words, for a NumPy operand
    if isinstance(value, (list, tuple)):
        raise TypeError(f"Unsupported type {type(value)}")
    return value


def _unwrap_index(index):
    # CuPy takes NumPy index arrays (and lists) and moves them; stand-in arrays unwrap.
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    return index._a if isinstance(index, ndarray) else index


def _unwrap_tree(value):
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, np.ndarray):
        raise TypeError(f"Unsupported type {type(value)}")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap_tree(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap_tree(v) for k, v in value.items()}
    return value


def _wrap(result):
    if isinstance(result, np.ndarray):
        return ndarray(result)
    if isinstance(result, np.generic):  # CuPy returns 0-d arrays where NumPy returns scalars
        return ndarray(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


for _cls in (ndarray, _FlatIndexer):
    _cls.__module__ = "cupy"


# --- the module's functions ----------------------------------------------------------------------


def asarray(value, dtype=None, order=None):
    if isinstance(value, ndarray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    return ndarray(np.array(value, dtype=dtype, copy=True))  # host to device: always a copy


def array(value, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(value, ndarray):
        return ndarray(np.array(value._a, dtype=dtype, copy=copy, ndmin=ndmin))
    return ndarray(np.array(value, dtype=dtype, copy=True, ndmin=ndmin))


def _function(name):
    numpy_function = getattr(np, name)

    def function(*args, **kwargs):
        if name in ("split", "array_split") and isinstance(args[1], np.ndarray):  # CuPy takes host indices
            args = (args[0], args[1].tolist(), *args[2:])
        return _wrap(numpy_function(*_unwrap_tree(args), **_unwrap_tree(kwargs)))
    function.__name__ = name
    return function


_FUNCTIONS = ("zeros", "ones", "empty", "full", "arange", "zeros_like", "ones_like", "empty_like", "full_like",
              "concatenate", "stack", "split", "array_split", "expand_dims", "where", "bincount", "argsort",
              "sort", "sqrt", "exp", "log", "log1p", "tanh", "abs", "maximum", "minimum", "logaddexp", "clip",
              "isnan", "isfinite", "isinf", "divide", "multiply", "add", "subtract", "negative", "sum", "mean",
              "matmul", "dot", "may_share_memory", "shares_memory", "broadcast_to", "reshape", "transpose",
              "unique", "cumsum", "argmax", "argmin", "square", "sign", "greater", "less", "equal", "logical_not",
              "count_nonzero", "allclose", "array_equal", "prod", "power", "vstack", "hstack", "linspace",
              "tile", "repeat", "eye", "outer", "einsum", "nan_to_num", "floor", "ceil", "round")
for _name in _FUNCTIONS:
    globals()[_name] = _function(_name)
for _name in ("float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool_", "dtype", "inf", "nan",
              "pi", "e", "newaxis", "iinfo", "finfo", "result_type", "isscalar"):
    globals()[_name] = getattr(np, _name)


class _UFuncAt:
    """cupy.add.at(target, index, values), as NumPy's add.at; `cupy.add(a, b)` too."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _wrap(self._ufunc(*_unwrap_tree(args), **_unwrap_tree(kwargs)))

    def at(self, target, index, values):
        self._ufunc.at(target._a, _unwrap_index(index), _operand(values))


add = _UFuncAt(np.add)
maximum = _UFuncAt(np.maximum)


def get_array_module(*arrays):
    return __import__(__name__)


# --- random numbers: NumPy's, in a stream of their own -----------------------------------------


class Generator:
    def __init__(self, seed):
        self._rng = np.random.default_rng(None if seed is None else [int(seed), 0xC0FFEE])

    def random(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.random(size, dtype=dtype)))

    def standard_normal(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.standard_normal(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._rng.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64):
        return ndarray(np.asarray(self._rng.integers(low, high, size, dtype=dtype)))


random = types.SimpleNamespace(default_rng=Generator)


# --- devices: one GPU ------------------------------------------------------------------------


class Device:
    _current = [0]

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    def use(self):
        Device._current[0] = self.id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


cuda = types.SimpleNamespace(
    Device=Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, runtimeGetVersion=lambda: 13020,
                                  driverGetVersion=lambda: 13020, deviceSynchronize=lambda: None),
)
__version__ = "14.2.0-stand-in"


@contextlib.contextmanager
def installed(monkeypatch):
    """This module as `cupy` for the test, and minigan's generators reset before and after."""
    import sys

    from minigan import backend

    monkeypatch.setitem(sys.modules, "cupy", sys.modules[__name__])
    backend._generators.clear()
    try:
        yield sys.modules[__name__]
    finally:
        backend._generators.clear()
