"""Devices and array modules: "cpu" is NumPy, "cuda" and "cuda:N" are CuPy.

CuPy is imported only when a CUDA device is asked for, so CPU code paths never touch it.
Code that works on either backend gets its array module from its inputs:

    xp = array_module(x)      # numpy or cupy
"""

from __future__ import annotations

import numpy as np

CUPY_INSTALL_HINT = (
    "pip install -e '.[cuda12]' (cupy-cuda12x) or -e '.[cuda13]' (cupy-cuda13x), matching the CUDA major "
    "version nvidia-smi shows"
)


class DeviceError(RuntimeError):
    """A device that cannot be used here, or arrays on two different devices."""


def parse_device(device) -> tuple[str, int]:
    """'cpu' -> ('cpu', 0); 'cuda' -> ('cuda', 0); 'cuda:1' -> ('cuda', 1)."""
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text == "cuda":
        return "cuda", 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise DeviceError(f"unknown device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")


def normalize_device(device) -> str:
    kind, index = parse_device(device)
    return "cpu" if kind == "cpu" else f"cuda:{index}"


def import_cupy():
    """Import CuPy and check that a GPU is visible, or raise one clear DeviceError."""
    try:
        import cupy
    except ModuleNotFoundError as error:
        if error.name == "cupy":
            raise DeviceError(f"device 'cuda' needs CuPy, which is not installed: {CUPY_INSTALL_HINT}") from None
        raise _broken_cupy(error) from error
    except ImportError as error:  # installed but broken: the cause (say, a missing libcudart) is the news
        raise _broken_cupy(error) from error
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDA driver missing or broken
        raise _no_gpu(cupy, f" ({' '.join(str(error).split())})") from None
    if count == 0:
        raise _no_gpu(cupy, "")
    return cupy


def _no_gpu(cupy, detail: str) -> DeviceError:
    """Why CuPy sees no GPU, as the doctor tells it apart (no driver, a wheel newer than the driver, a
    missing CUDA library, no GPU): CUDA's own "driver version is insufficient" says the same for all."""
    from . import doctor  # only now: the doctor imports the models, which import this module

    try:
        problem = doctor.cuda_setup(cupy)[1]
    except Exception:  # a CuPy too odd for the doctor: CuPy's own words
        problem = None
    if problem is None:
        return DeviceError(f"device 'cuda' needs a CUDA GPU, but CuPy found none{detail}")
    return DeviceError(f"device 'cuda' cannot be used: {problem}")


def _broken_cupy(error: ImportError) -> DeviceError:
    cause = " ".join(str(error).split())  # one line, whatever the loader printed
    return DeviceError(f"device 'cuda' needs CuPy, which is installed but fails to import "
                       f"({type(error).__name__}: {cause}); is the cupy-cudaNNx wheel the one for this "
                       f"machine's CUDA major version?")


def usable_device(device) -> str:
    """The normalized name of `device`, after checking that it can be used here (DeviceError if not).

    A GPU becomes CuPy's current device, where its ops run: `--device cuda:1` trains on GPU 1."""
    name = normalize_device(device)
    if name != "cpu":
        cupy = import_cupy()
        index, count = parse_device(name)[1], cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise DeviceError(f"device {name!r}: this machine has {count} GPU{'s' if count > 1 else ''}, "
                              f"cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}")
        cupy.cuda.Device(index).use()
    return name


def cuda_available() -> bool:
    try:
        import_cupy()
    except DeviceError:
        return False
    return True


def _is_cupy_array(array) -> bool:
    # Looking at the type's module avoids importing cupy just to ask the question.
    return type(array).__module__.startswith("cupy")


def array_module(*arrays):
    """numpy, or cupy if any of the arrays lives on a GPU."""
    for array in arrays:
        if _is_cupy_array(array):
            import cupy

            return cupy
    return np


def device_of(array) -> str:
    if _is_cupy_array(array):
        return f"cuda:{array.device.id}"
    return "cpu"


def check_same_device(op: str, *arrays) -> None:
    """Raise DeviceError naming both devices if the arrays do not all live on one device."""
    first = device_of(arrays[0])
    for array in arrays[1:]:
        other = device_of(array)
        if other != first:
            raise DeviceError(f"{op}: tensors are on different devices, {first} and {other}; move one with .to()")


def to_device(array, device):
    """A copy of `array` on `device` (no copy if it is already there)."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return to_numpy(array)
    cupy = import_cupy()
    with cupy.cuda.Device(index):
        if _is_cupy_array(array) and array.device.id != index:
            return array.copy()  # CuPy's copy lands on the current device; asarray would keep GPU `array.device`
        return cupy.asarray(array)


def copy(array):
    """A copy of `array` on its own device (CuPy's .copy() would make it on the current one)."""
    if _is_cupy_array(array):
        with array.device:
            return array.copy()
    return array.copy()


def to_numpy(array) -> np.ndarray:
    if _is_cupy_array(array):
        return array.get()
    return np.asarray(array)


# --- random numbers -------------------------------------------------------------------------
# One seeded generator per device. Parameters are initialised from the CPU generator and then
# moved, so a model starts from the same weights on every device.

_seed = None
_generators: dict[str, object] = {}


def manual_seed(seed: int) -> None:
    """Seed minigan's random numbers on every device (the CPU now, each GPU when first used).

    The seed is an integer in [0, 2**32): NumPy's and CuPy's generators both accept that range."""
    global _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"manual_seed: the seed must be an integer in [0, 2**32), got {seed!r}")
    _seed = int(seed)
    _generators.clear()


def generator(device="cpu"):
    """The seeded random generator for `device`: numpy.random.Generator, or cupy's."""
    name = normalize_device(device)
    if name not in _generators:
        if name == "cpu":
            _generators[name] = np.random.default_rng(_seed)
        else:
            cupy = import_cupy()
            with cupy.cuda.Device(parse_device(name)[1]):
                _generators[name] = cupy.random.default_rng(_seed)
    return _generators[name]


def set_generator(device, rng) -> None:
    """Install `rng` as the generator for `device` (used when resuming from a checkpoint)."""
    _generators[normalize_device(device)] = rng
