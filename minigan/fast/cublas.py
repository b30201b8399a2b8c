"""GEMMs through cuBLAS, called with ctypes: CUDA only, imported only by the CUDA path.

Why not cupy.matmul: CuPy refuses cuBLAS while a stream is being captured into a CUDA graph
(NotImplementedError). cuBLAS itself captures fine once its handle has a stream and a workspace of
our own, both set *before* capture (measured on an H100; docs/gpu.md).

Row-major through a column-major library: a C-contiguous (r, c) array is, to cuBLAS, the
column-major (c, r) matrix, its transpose. So C = op(A)·op(B) is computed as Cᵀ = op(B)ᵀ·op(A)ᵀ:
B goes first, m and n swap, and each matrix's leading dimension is its row length.

cublasGemmEx takes the compute type per call, so the TF32 switch applies to the layers' GEMMs and
never to the bias gradients (a GEMM with a ones vector, which should stay exact float32 sums).
"""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

# From cublas_api.h and library_types.h.
CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_DEFAULT_MATH = 0
CUDA_R_32F, CUDA_R_64F = 0, 1
CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F, CUBLAS_COMPUTE_32F_FAST_TF32 = 68, 70, 77
CUBLAS_GEMM_DEFAULT = -1

WORKSPACE_BYTES = 32 * 1024 * 1024  # cuBLAS's recommendation for Hopper; ample elsewhere

_library = None


def _loaded_cublas_paths():
    """Paths of libcublas already mapped into this process (CuPy's copy, if it loaded one)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libcublas.so" in line}
    except OSError:
        return []
    return sorted(paths)


def _major_of(path):
    """The CUDA major version in a libcublas file name (libcublas.so.13 -> 13), or None."""
    suffix = os.path.basename(path).partition("libcublas.so.")[2]
    major = suffix.split(".")[0]
    return int(major) if major.isdigit() else None


def _pathfinder_cublas():
    """libcublas as cuda-pathfinder finds it (CuPy 14's own search: pip wheels, conda, CUDA_HOME)."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
    except ImportError:
        return None
    try:
        return load_nvidia_dynamic_lib("cublas").abs_path
    except Exception:  # not found: the other candidates say what was tried
        return None


def _candidate_paths(cuda_major):
    """Where to look for libcublas, best first; only copies of CuPy's CUDA major.

    A process may hold two libcublas, say torch's for CUDA 12 beside CuPy's for CUDA 13: the
    one of CuPy's major comes first, and a copy of another major is never taken.
    """
    for path in _loaded_cublas_paths():
        if _major_of(path) == cuda_major:
            yield path
    found = _pathfinder_cublas()
    if found and _major_of(found) == cuda_major:
        yield found
    yield f"libcublas.so.{cuda_major}"
    # pip wheels (nvidia-cublas-cu12, or the CUDA 13 layout) and a toolkit install.
    for root in sys.path:
        for sub in ("nvidia/cublas/lib", f"nvidia/cu{cuda_major}/lib"):
            yield os.path.join(root, sub, f"libcublas.so.{cuda_major}")
    for root in (os.environ.get("CUDA_PATH"), os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root:
            yield os.path.join(root, "lib64", f"libcublas.so.{cuda_major}")


def _declare(lib):
    c_int, c_void_p, c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t
    signatures = {
        "cublasCreate_v2": [ctypes.POINTER(c_void_p)],
        "cublasDestroy_v2": [c_void_p],
        "cublasSetStream_v2": [c_void_p, c_void_p],
        "cublasSetWorkspace_v2": [c_void_p, c_void_p, c_size_t],
        "cublasSetMathMode": [c_void_p, c_int],
        # handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
        # computeType, algo
        "cublasGemmEx": [c_void_p, c_int, c_int, c_int, c_int, c_int,
                         c_void_p, c_void_p, c_int, c_int, c_void_p, c_int, c_int,
                         c_void_p, c_void_p, c_int, c_int, c_int, c_int],
    }
    for name, argtypes in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = argtypes, c_int
    return lib


def load_library():
    """libcublas as a ctypes library, preferably the very copy CuPy uses, of CuPy's CUDA major."""
    global _library
    if _library is not None:
        return _library
    import cupy

    try:  # makes CuPy load its libcublas, so that the search below finds that very copy first
        cupy.cuda.device.get_cublas_handle()
    except Exception:
        pass
    cuda_major = cupy.cuda.runtime.runtimeGetVersion() // 1000
    tried = []
    for path in _candidate_paths(cuda_major):
        if path in tried:
            continue
        tried.append(path)
        try:
            _library = _declare(ctypes.CDLL(path))
            return _library
        except (OSError, AttributeError):
            continue
    raise RuntimeError(f"cuBLAS: libcublas.so.{cuda_major} is not installed (tried {', '.join(tried)}); "
                       f"pip install 'cuda-toolkit[cublas]=={cuda_major}.*' installs it")


# cublasStatus_t, from cublas_api.h.
STATUS_NAMES = {0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
                7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH", 11: "CUBLAS_STATUS_MAPPING_ERROR",
                13: "CUBLAS_STATUS_EXECUTION_FAILED", 14: "CUBLAS_STATUS_INTERNAL_ERROR",
                15: "CUBLAS_STATUS_NOT_SUPPORTED", 16: "CUBLAS_STATUS_LICENSE_ERROR"}


class CublasError(RuntimeError):
    """A cuBLAS call that returned a status other than CUBLAS_STATUS_SUCCESS."""

    def __init__(self, call, status):
        self.call, self.status = call, status
        super().__init__(f"cuBLAS {call} failed: {STATUS_NAMES.get(status, 'unknown status')} ({status})")


def _check(status, call):
    if status != 0:
        raise CublasError(call, status)


def row_major_gemm(a_shape, b_shape, trans_a: bool, trans_b: bool):
    """The column-major GEMM that computes C = op(A)·op(B) for C-contiguous row-major A and B.

    cuBLAS sees a row-major (r, c) array as the column-major (c, r) matrix: its transpose. So it
    is asked for Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, then A, with m and n swapped and each matrix's row
    length as its leading dimension. Returns the cublasGemmEx arguments
    (transa, transb, m, n, k, lda, ldb, ldc), the first matrix being B and the second A, and the
    shape of C. Pure arithmetic, checked on the CPU against a column-major GEMM written in NumPy.
    """
    rows, k = (a_shape[1], a_shape[0]) if trans_a else a_shape
    k_b, cols = (b_shape[1], b_shape[0]) if trans_b else b_shape
    if k != k_b:
        raise ValueError(f"matmul: shapes {a_shape}{'ᵀ' if trans_a else ''} and "
                         f"{b_shape}{'ᵀ' if trans_b else ''} do not align")
    arguments = (CUBLAS_OP_T if trans_b else CUBLAS_OP_N, CUBLAS_OP_T if trans_a else CUBLAS_OP_N,
                 cols, rows, k, b_shape[1], a_shape[1], cols)
    return arguments, (rows, cols)


class Cublas:
    """A cuBLAS handle bound to one stream, with its own workspace, for row-major GEMMs.

    Create it (and so set its stream and workspace) before any graph capture on that stream.
    """

    def __init__(self, stream, tf32: bool = False, device_id=None):
        import cupy

        self._cupy = cupy
        self.lib = load_library()
        self.stream = stream
        self.tf32 = bool(tf32)
        self.device_id = cupy.cuda.Device().id if device_id is None else device_id
        self._ones = {}  # (rows, dtype) -> a (1, rows) row of ones, for column sums
        self._scalars = {np.dtype(np.float32): (ctypes.c_float(1.0), ctypes.c_float(0.0)),
                         np.dtype(np.float64): (ctypes.c_double(1.0), ctypes.c_double(0.0))}
        handle = ctypes.c_void_p()
        with cupy.cuda.Device(self.device_id):
            _check(self.lib.cublasCreate_v2(ctypes.byref(handle)), "cublasCreate_v2")
            self.handle = handle
            self.workspace = cupy.empty(WORKSPACE_BYTES, dtype=cupy.uint8)
        # cublasSetStream resets the workspace to cuBLAS's own pool, so the stream goes first.
        _check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream.ptr)), "cublasSetStream_v2")
        _check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(self.workspace.data.ptr),
                                              WORKSPACE_BYTES), "cublasSetWorkspace_v2")
        # TF32 is chosen per call by the compute type below; the handle stays in default math.
        _check(self.lib.cublasSetMathMode(self.handle, CUBLAS_DEFAULT_MATH), "cublasSetMathMode")

    def __del__(self):
        handle = getattr(self, "handle", None)
        if handle is not None and handle.value:
            try:
                self.lib.cublasDestroy_v2(handle)
            except Exception:  # interpreter shutdown
                pass

    def matmul(self, a, b, out, trans_a: bool = False, trans_b: bool = False, allow_tf32: bool = True):
        """out ← op(a) @ op(b) for C-contiguous row-major arrays; TF32 if switched on and allowed."""
        dtype = np.dtype(out.dtype)
        if dtype not in self._scalars or a.dtype != dtype or b.dtype != dtype:
            raise TypeError(f"matmul: cuBLAS path needs float32 or float64 throughout, got "
                            f"{a.dtype}, {b.dtype} -> {out.dtype}")
        for name, array in (("a", a), ("b", b), ("out", out)):
            if array.ndim != 2 or not array.flags.c_contiguous:
                raise ValueError(f"matmul: {name} must be a C-contiguous matrix, got shape {array.shape}")
        (transa, transb, m, n, k, lda, ldb, ldc), out_shape = row_major_gemm(a.shape, b.shape, trans_a, trans_b)
        if out.shape != out_shape:
            raise ValueError(f"matmul: op(a) @ op(b) is {out_shape}, but out is {out.shape}")
        if dtype == np.float64:
            data_type, compute = CUDA_R_64F, CUBLAS_COMPUTE_64F
        else:
            data_type = CUDA_R_32F
            compute = CUBLAS_COMPUTE_32F_FAST_TF32 if (self.tf32 and allow_tf32) else CUBLAS_COMPUTE_32F
        one, zero = self._scalars[dtype]
        # Cᵀ = op(b)ᵀ · op(a)ᵀ in column-major terms: b is the first matrix, a the second.
        status = self.lib.cublasGemmEx(
            self.handle, transa, transb, m, n, k,
            ctypes.addressof(one), b.data.ptr, data_type, lda, a.data.ptr, data_type, ldb,
            ctypes.addressof(zero), out.data.ptr, data_type, ldc,
            compute, CUBLAS_GEMM_DEFAULT)
        _check(status, "cublasGemmEx")

    def column_sum(self, g, out):
        """out ← g summed over its rows (a bias gradient), as a (1, n) ones row times g.

        A GEMM rather than an axis-0 reduction, which was slow over 8192 rows; never TF32. The
        ones row is made on first use for each n, so that a captured step allocates nothing.
        """
        key = (g.shape[0], np.dtype(g.dtype))
        if key not in self._ones:
            self._ones[key] = self._cupy.ones((1, g.shape[0]), dtype=g.dtype)
        self.matmul(self._ones[key], g, out.reshape(1, -1), allow_tf32=False)
