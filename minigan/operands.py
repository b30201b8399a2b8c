"""What a Tensor may hold, and how two operands meet: the checks behind tensor.py's one-line errors.

These work on arrays (NumPy or CuPy) and plain values, never on Tensors, so that tensor.py can
import them without a circle. Errors name the op and the operands in the order they are written,
e.g. "add: shapes (2, 3) and (4,) do not broadcast".
"""

from __future__ import annotations

import numbers
import reprlib

import numpy as np

from . import backend

DEFAULT_DTYPE = np.float32


def numeric_array(data, op="Tensor"):
    """`data` as an array (NumPy, or CuPy if it is one), or a TypeError when it is not numbers.

    Strings, None, objects and complex numbers are refused by name: NumPy would turn ["1", "2"]
    into numbers without a word.
    """
    try:
        array = backend.array_module(data).asarray(data)
    except ValueError:
        if isinstance(data, (list, tuple)):  # NumPy: "setting an array element with a sequence ..."
            raise ValueError(f"{op}: the rows of a nested list must all have the same length") from None
        raise
    if array.dtype.kind not in "biuf":
        too_large = _first_huge_int(data)
        if too_large is not None:
            raise OverflowError(f"{op}: the integer {too_large} is out of range of 64-bit integers; "
                                f"write it as a float ({float(too_large):g})")
        raise TypeError(f"{op}: expected numbers, got {describe(data, array)}")
    return array


def _first_huge_int(data):
    """The first Python int in `data` (a number or nested lists) that NumPy cannot hold, or None."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, int) and not -2**63 <= item < 2**64:
            return item
    return None


def as_float_array(data, dtype=None, op="Tensor"):
    """Floats stay as they are (float32 stays float32); ints, bools and Python numbers become float32.

    An explicit `dtype` is taken as given, if it is a real number type (torch has integer tensors too).
    """
    array = numeric_array(data, op)
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError as error:  # "data type 'floot' not understood"
            raise TypeError(f"{op}: {error}") from None
        if dtype.kind not in "biuf":
            raise TypeError(f"{op}: dtype must be a real number type, got {dtype}")
        return array.astype(dtype, copy=False)
    # Python floats and lists have no dtype of their own; NumPy would make them float64.
    if array.dtype.kind != "f" or not hasattr(data, "dtype"):
        return array.astype(DEFAULT_DTYPE)
    return array


def on_device_of(value, like, op, a_first=False):
    """`value` (a number, a list or an array; not a Tensor) as an array on the device of the array
    `like`. Numbers, lists and 0-d NumPy arrays are made there, as torch treats Python numbers; an
    array of more dims must be there already (DeviceError naming both devices, in written order)."""
    array = numeric_array(value, op)
    device = backend.device_of(like)
    if backend.device_of(array) != device:
        if backend.array_module(array) is np and (array.ndim == 0 or not hasattr(value, "dtype")):
            return backend.to_device(array, device)
        backend.check_same_device(op, *((array, like) if a_first else (like, array)))
    return array


def shares_memory(array, source) -> bool:
    """Whether `array` may use the memory of `source` (an array, or any value Tensor was given)."""
    xp = backend.array_module(array)
    return hasattr(source, "dtype") and backend.array_module(source) is xp and bool(xp.may_share_memory(array, source))


def check_grad(grad, data, is_self=False) -> None:
    """What `.grad = value` accepts: None, or an array like `data` (shape, dtype, device)."""
    if is_self:
        raise TypeError("grad: a tensor cannot be its own gradient")
    if not (isinstance(grad, np.ndarray) or backend.array_module(grad) is not np):
        raise TypeError(f"grad: expected an array (NumPy or CuPy) or None, got {type(grad).__name__}")
    if grad.shape != data.shape:
        raise ValueError(f"grad: shape {grad.shape} does not match the tensor's shape {data.shape}")
    if grad.dtype != data.dtype:
        raise TypeError(f"grad: dtype {grad.dtype} does not match the tensor's dtype {data.dtype}")
    backend.check_same_device("grad", data, grad)


def describe(data, array) -> str:
    """What `data` is, for an error message: "None", "a list of str", "the class object"."""
    if data is None:
        return "None"
    if isinstance(data, type):
        return f"the class {data.__name__}"
    if isinstance(data, (list, tuple)):
        leaves, stack = [], [data]
        while stack and not leaves:
            for item in stack.pop():
                (stack if isinstance(item, (list, tuple)) else leaves).append(item)
            leaves = [x for x in leaves if not isinstance(x, numbers.Real)]
        kind = type(leaves[0]).__name__ if leaves else f"values NumPy reads as {array.dtype}"
        return f"a {type(data).__name__} of {kind}"
    if hasattr(data, "dtype"):
        return f"an array of dtype {array.dtype}"
    if isinstance(data, (str, bytes, dict, set, frozenset)):
        return f"{reprlib.repr(data)} of type {type(data).__name__}"
    return f"an object of type {type(data).__qualname__}"


def lift(value, like, op, a_first):
    """A number or array, as an array on the device and of the dtype of the tensor data `like`.

    One dtype rule for Tensors and arrays alike: a float array must have the tensor's dtype (a
    float64 array is an error beside a float32 tensor, as a float64 Tensor is), while Python and
    NumPy scalars, ints and bools take the tensor's dtype, as they do in torch. `a_first` says
    whether `value` is written first, so that errors name the operands in that order.
    """
    array = on_device_of(value, like, op, a_first)
    if array.dtype != like.dtype and array.dtype.kind == "f" and hasattr(value, "dtype") \
            and not isinstance(value, np.generic):
        first, second = (array.dtype, like.dtype) if a_first else (like.dtype, array.dtype)
        raise TypeError(f"{op}: dtypes {first} and {second} differ; convert one with .astype()")
    return array.astype(like.dtype, copy=False)


def check_same_kind(a, b, op) -> None:
    """Two tensors' arrays must share a device and a dtype (a lifted value already does)."""
    backend.check_same_device(op, a, b)
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: dtypes {a.dtype} and {b.dtype} differ; convert one with .astype()")


def check_broadcast(a_shape, b_shape, op) -> None:
    try:
        np.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a_shape} and {b_shape} do not broadcast") from None
