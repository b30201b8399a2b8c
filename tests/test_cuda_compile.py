"""Every CUDA source of minigan/fast/kernels.py, compiled by nvcc for sm_90 with warnings as errors.

Needs nvcc (the CUDA toolkit), no GPU and no CuPy: a typo in a kernel fails here, in CI, not on the
first GPU. What is compiled is exactly what kernels.py hands to CuPy. A stand-in `cupy` module
records every cupy.ElementwiseKernel and cupy.RawModule that kernels.py builds and every name it
looks up, while each kernel function runs its CUDA branch on stand-in arrays of float32 and
float64. Then:

- the RawModule source compiles as CuPy compiles it (NVRTC with -ftz=true; nvcc here);
- each ElementwiseKernel body compiles inside the module CuPy generates for it, for the argument
  kinds of kernels.py's calls (cupy/_core/_kernel.pyx, _get_elementwise_kernel_code: typedefs
  of the type placeholders, the kernel's parameters as CArray/scalars/CIndexer, each array
  element bound by reference, the body inside CUPY_FOR), against CuPy's own headers where CuPy
  is installed and a stand-in for CArray and CIndexer elsewhere;
- every name looked up (RawModule.get_function, ElementwiseKernel's name) is an extern "C"
  entry of the compiled cubin: its symbol is the plain name, not a C++-mangled one.
"""

import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from minigan.fast import kernels

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit)")

ARCH = "sm_90"  # Hopper, the GPUs the project is measured on
# CuPy adds -ftz=true to every compilation (cupy/cuda/compiler.py); C++17 is NVRTC's default.
NVCC_FLAGS = ["-cubin", f"-arch={ARCH}", "-std=c++17", "-ftz=true", "-Werror", "all-warnings"]

# The includes CuPy puts before every ElementwiseKernel's code (cupy_header_list in CuPy's core).
CUPY_HEADERS = ("cupy/complex.cuh", "cupy/carray.cuh", "cupy/atomics.cuh", "cupy/math_constants.h")

# Where CuPy is not installed: what an ElementwiseKernel's code needs of carray.cuh, with the
# same names, template parameters and indexing (CArray<T, ndim, c_contiguous, use_32bit_indexing>,
# CIndexer<ndim, use_32bit_indexing>).
STAND_IN_HEADER = r"""
#include <cstddef>
#define CUPY_FOR(i, n) \
    for (ptrdiff_t i = static_cast<ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
         i < (n); i += static_cast<ptrdiff_t>(blockDim.x) * gridDim.x)

template <typename T, int _ndim, bool _c_contiguous = false, bool _use_32bit_indexing = false>
class CArray {
  T* data_;
  ptrdiff_t size_;
  ptrdiff_t shape_[_ndim];
  ptrdiff_t strides_[_ndim];
 public:
  __device__ ptrdiff_t size() const { return size_; }
  __device__ T& operator[](const ptrdiff_t (&idx)[_ndim]) const {
    const char* ptr = reinterpret_cast<const char*>(data_);
    for (int dim = 0; dim < _ndim; ++dim) ptr += strides_[dim] * idx[dim];
    return const_cast<T&>(*reinterpret_cast<const T*>(ptr));
  }
  __device__ T& operator[](ptrdiff_t i) const {  // a flat index, as a raw parameter's body uses
    ptrdiff_t idx[_ndim];
    for (int dim = _ndim - 1; dim > 0; --dim) { idx[dim] = i % shape_[dim]; i /= shape_[dim]; }
    idx[0] = i;
    return (*this)[idx];
  }
};

template <int _ndim, bool _use_32bit_indexing = false>
class CIndexer {
  ptrdiff_t size_;
  ptrdiff_t shape_[_ndim];
  ptrdiff_t index_[_ndim];
 public:
  __device__ ptrdiff_t size() const { return size_; }
  __device__ const ptrdiff_t (&get() const)[_ndim] { return index_; }
  __device__ void set(ptrdiff_t i) {
    for (int dim = _ndim; --dim > 0;) { index_[dim] = i % shape_[dim]; i /= shape_[dim]; }
    index_[0] = i;
  }
};
"""


# --- a stand-in cupy that records what kernels.py builds, looks up and calls ------------------------


class FakeArray:
    """What kernels.py and CuPy's argument handling read of a cupy.ndarray: shape, strides, dtype."""

    def __init__(self, shape, dtype, strides=None):
        self._array = np.empty(shape, dtype) if strides is None else np.lib.stride_tricks.as_strided(
            np.empty(1, dtype), shape, strides)
        self.shape, self.dtype, self.strides = self._array.shape, self._array.dtype, self._array.strides
        self.ndim, self.size, self.flags = self._array.ndim, self._array.size, self._array.flags


FakeArray.__module__ = "cupy._stand_in"  # backend.array_module takes a "cupy..." type for a GPU array


class Recorder:
    def __init__(self):
        self.elementwise = {}  # name -> (in_params, out_params, operation, options)
        self.elementwise_calls = {}  # name -> set of argument signatures
        self.modules = []  # (code, options)
        self.looked_up = []  # (module index, function name)

    def cupy(self):
        recorder = self

        class ElementwiseKernel:
            def __init__(self, in_params, out_params, operation, name="kernel", options=(), **kwargs):
                assert not kwargs.get("preamble"), "a preamble would have to be compiled too"
                recorder.elementwise[name] = (in_params, out_params, operation, tuple(options))
                self.name = name

            def __call__(self, *args):
                recorder.elementwise_calls.setdefault(self.name, set()).add(signature(args))

        class RawModule:
            def __init__(self, code, options=(), **kwargs):
                self.index = len(recorder.modules)
                recorder.modules.append((code, tuple(options)))

            def get_function(self, name):
                recorder.looked_up.append((self.index, name))
                return lambda grid, block, args: None

        return types.SimpleNamespace(ElementwiseKernel=ElementwiseKernel, RawModule=RawModule,
                                     ndarray=FakeArray)


def signature(args):
    """(kind, dtype, shape, strides) per argument: what decides the code CuPy generates."""
    return tuple(("array", str(a.dtype), a.shape, a.strides) if isinstance(a, FakeArray)
                 else ("scalar", type(a).__name__, (), ()) for a in args)


def exercise_cuda_branches(monkeypatch, m=64, features=(1024, 784), n_params=1_000):
    """Run every kernel function of kernels.py on stand-in CuPy arrays, for float32 and float64."""
    recorder = Recorder()
    monkeypatch.setitem(sys.modules, "cupy", recorder.cupy())
    monkeypatch.setattr(kernels, "_cuda_kernels", None)
    for dtype in (np.float32, np.float64):
        for width in features:
            h, b = FakeArray((m, width), dtype), FakeArray((width,), dtype)
            kernels.bias_leaky_relu(h, b, 0.2)
            kernels.bias_tanh(h, b)
            kernels.add_bias(h, b)
            kernels.leaky_relu_backward(h, FakeArray((m, width), dtype), 0.2)
            kernels.tanh_backward(h, FakeArray((m, width), dtype))
        columns = [FakeArray((2 * m, 1), dtype) for _ in range(4)]
        kernels.bce_with_logits(*columns, FakeArray((1,), dtype))
        flats = [FakeArray((n_params,), dtype) for _ in range(4)]
        kernels.adam(*flats, FakeArray((kernels.ADAM_SCALARS,), np.float64))
    return recorder


# --- CuPy's code generation for an ElementwiseKernel ---------------------------------------------------

C_TYPES = {"float32": "float", "float64": "double"}


def parse_params(text, is_const):
    """CuPy's ParameterInfo: [raw] type name, the type a one-letter placeholder or a dtype name."""
    params = []
    for declaration in filter(None, (d.strip() for d in text.split(","))):
        *keywords, type_, name = declaration.split()
        assert set(keywords) <= {"raw"}, declaration
        params.append({"name": name, "type": type_, "raw": "raw" in keywords, "const": is_const})
    return params


def reduced_shape(call, params):
    """CuPy's _broadcast and _reduced_view_core for the cases kernels.py makes: the loop's shape
    and each non-raw array's C-contiguity after broadcasting. The loop is flattened to one
    dimension when every non-raw array is C-contiguous, and kept (ndim 2) when one is not."""
    arrays = [i for i, (a, p) in enumerate(zip(call, params)) if not p["raw"] and a[0] == "array"]
    shape = np.broadcast_shapes(*(call[i][2] for i in arrays))
    assert len(shape) <= 2, "kernels.py calls its kernels on vectors and matrices only"
    contiguous = {}
    for i in arrays:
        _, dtype, a_shape, strides = call[i]
        view = np.lib.stride_tricks.as_strided(np.empty(1, dtype), a_shape, strides)
        contiguous[i] = np.broadcast_to(view, shape).flags.c_contiguous
    if all(contiguous.values()):
        return (int(np.prod(shape)),), contiguous
    return shape, contiguous


def elementwise_code(name, spec, call):
    """The module CuPy compiles for ElementwiseKernel `name` called with arguments `call`, less
    the #include lines it puts first."""
    in_params, out_params, operation, _ = spec
    params = parse_params(in_params, True) + parse_params(out_params, False)
    assert len(params) == len(call), f"{name}: {len(call)} arguments for {len(params)} parameters"
    # _decide_params_type: each one-letter placeholder takes the dtype of its first array argument.
    type_map = {}
    for p, (kind, dtype, *_) in zip(params, call):
        if len(p["type"]) == 1 and kind == "array":
            type_map.setdefault(p["type"], dtype)
    shape, contiguous = reduced_shape(call, params)
    declarations, bindings = [], []
    for i, (p, (kind, dtype, a_shape, _)) in enumerate(zip(params, call)):
        ctype = C_TYPES[type_map[p["type"]] if len(p["type"]) == 1 else p["type"]]
        const = "const " if p["const"] else ""
        if kind == "scalar":  # a Python scalar, cast to its parameter's type (CScalar.apply_dtype)
            declarations.append(f"{const}{ctype} {p['name']}")
        elif p["raw"]:  # indexed by the body itself, in its own shape
            declarations.append(f"{const}CArray<{ctype}, {len(a_shape)}, 1, 1> {p['name']}")
        else:
            declarations.append(f"{const}CArray<{ctype}, {len(shape)}, {int(contiguous[i])}, 1> _raw_{p['name']}")
            placeholder = p["type"] if len(p["type"]) == 1 else ctype
            bindings.append(f"{const}{placeholder} &{p['name']} = _raw_{p['name']}[_ind.get()];")
    declarations.append(f"CIndexer<{len(shape)}, 1> _ind")
    typedefs = "".join(f"typedef {C_TYPES[dtype]} {placeholder};\n" for placeholder, dtype in sorted(type_map.items()))
    body = "\n".join(bindings + [operation])
    return (f"{typedefs}\n\n"
            f"extern \"C\" __global__ void {name}({', '.join(declarations)}) {{\n"
            f"  ;\n  #pragma unroll 1\n  CUPY_FOR(i, _ind.size()) {{\n    _ind.set(i);\n    {body};\n  }}\n  ;\n}}\n")


def cupy_generated_code(name, spec, call):
    """The same module from CuPy's own code generation (cupy._core._kernel, private API that
    needs no GPU), or None where CuPy is not installed or that API is not as in CuPy 14."""
    try:
        import cupy
        from cupy._core import _carray, _kernel, _scalar
    except ImportError:
        return None
    in_params, out_params, operation, _ = spec
    params = (_kernel._get_param_info(in_params, True) + _kernel._get_param_info(out_params, False)
              + _kernel._get_param_info("CIndexer _ind", False))
    ours = parse_params(in_params, True) + parse_params(out_params, False)
    shape, contiguous = reduced_shape(call, ours)
    ndarray, indexer, scalar = 1, 2, 3  # cupy._core._kernel's _ArgKind
    arginfos, type_map = [], {}
    for i, (p, (kind, dtype, a_shape, _)) in enumerate(zip(ours, call)):
        if len(p["type"]) == 1 and kind == "array":
            type_map.setdefault(p["type"], np.dtype(dtype))
    for i, (p, (kind, dtype, a_shape, _)) in enumerate(zip(ours, call)):
        if kind == "scalar":
            arginfos.append(_kernel._ArgInfo(scalar, _scalar.CScalar, type_map[p["type"]], 0, True, True))
        elif p["raw"]:
            arginfos.append(_kernel._ArgInfo(ndarray, cupy.ndarray, np.dtype(dtype), len(a_shape), True, True))
        else:
            arginfos.append(_kernel._ArgInfo(ndarray, cupy.ndarray, np.dtype(dtype), len(shape), contiguous[i], True))
    arginfos.append(_kernel._ArgInfo(indexer, _carray.Indexer, None, len(shape), True, True))
    try:
        return _kernel._get_elementwise_kernel_code(tuple(arginfos), _kernel._TypeMap(tuple(sorted(type_map.items()))),
                                                    params, operation, name, "")
    except (TypeError, AssertionError, AttributeError):  # another CuPy's private API
        return None


def cupy_include_dir():
    """CuPy's own headers, where CuPy is installed (found without importing it: no GPU needed)."""
    spec = importlib.util.find_spec("cupy")
    if spec is None or not spec.submodule_search_locations:
        return None
    include = Path(list(spec.submodule_search_locations)[0]) / "_core" / "include"
    return include if (include / "cupy" / "carray.cuh").exists() else None


# --- compiling, and reading the cubin's symbols ------------------------------------------------------


def compile_all(sources, directory):
    """Compile {stem: source} into {stem: cubin path} with one nvcc call; fail with its output."""
    include = cupy_include_dir()
    header = "".join(f"#include <{h}>\n" for h in CUPY_HEADERS) if include else STAND_IN_HEADER
    paths = []
    for stem, (source, elementwise) in sources.items():
        path = directory / f"{stem}.cu"
        path.write_text((header if elementwise else "") + source)
        paths.append(str(path))
    command = [NVCC, *NVCC_FLAGS, *([f"-I{include}"] if include else []), "-odir", str(directory), *paths]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"nvcc failed:\n{result.stdout}{result.stderr}"
    return {stem: directory / f"{stem}.cubin" for stem in sources}


def entry_points(cubin):
    """The kernels a cubin defines, by symbol: an extern "C" kernel keeps its plain name."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("needs nm (binutils) to read the cubin's symbols")
    listing = subprocess.run([nm, "--defined-only", str(cubin)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.split()[1:2] == ["T"]}


# --- the tests -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        recorder = exercise_cuda_branches(monkeypatch)
    sources = {}
    for index, (code, options) in enumerate(recorder.modules):
        assert not options, "RawModule options would have to be passed to nvcc too"
        sources[f"raw_module_{index}"] = (code, False)
    for name, calls in recorder.elementwise_calls.items():
        spec = recorder.elementwise[name]
        assert not spec[3], "ElementwiseKernel options would have to be passed to nvcc too"
        # Calls that differ only in shape share one module: one compilation per distinct code.
        codes = {cupy_generated_code(name, spec, call) or elementwise_code(name, spec, call) for call in calls}
        for number, code in enumerate(sorted(codes)):
            sources[f"{name}_{number}"] = (code, True)
    cubins = compile_all(sources, tmp_path_factory.mktemp("nvcc"))
    return recorder, sources, {stem: entry_points(path) for stem, path in cubins.items()}


def test_every_kernel_is_built_and_called_for_both_dtypes(compiled):
    recorder, sources, _ = compiled
    assert set(recorder.elementwise) == {f"minigan_{name}" for name in kernels._ELEMENTWISE} | {"minigan_adam"}
    for name, calls in recorder.elementwise_calls.items():
        dtypes = {arg[1] for call in calls for arg in call if arg[0] == "array"}
        assert {"float32", "float64"} <= dtypes, name
    assert set(recorder.elementwise_calls) == set(recorder.elementwise)
    assert len(recorder.modules) == 1
    assert {name for _, name in recorder.looked_up} == {
        "minigan_adam_prepare", "minigan_bce_with_logits_float32", "minigan_bce_with_logits_float64"}


def test_every_looked_up_raw_module_function_is_an_extern_c_entry(compiled):
    recorder, _, symbols = compiled
    for index, name in recorder.looked_up:
        assert name in symbols[f"raw_module_{index}"], f"{name} is not an extern \"C\" kernel of the RawModule"


def test_every_elementwise_kernel_compiles_for_each_call_as_an_extern_c_entry(compiled):
    recorder, sources, symbols = compiled
    for stem, (source, elementwise) in sources.items():
        if elementwise:
            name = stem.rsplit("_", 1)[0]
            assert symbols[stem] == {name}, f"{stem}: entries {symbols[stem]}, expected {name}"


def test_the_generated_wrapper_binds_what_cupy_binds():
    """The code CuPy 14 generates for bias_leaky_relu on a (64, 1024) float32 batch, a (1024,)
    bias broadcast over it and a Python float slope: the same parameters, typedef and bindings."""
    spec = kernels._ELEMENTWISE["bias_leaky_relu"]
    h, bias = FakeArray((64, 1024), np.float32), FakeArray((1024,), np.float32)
    broadcast_bias = FakeArray((64, 1024), np.float32, strides=(0, 4))
    code = elementwise_code("minigan_bias_leaky_relu", (*spec, ()), signature((bias, 0.2, h)))
    assert code.startswith("typedef float T;\n")
    assert ("extern \"C\" __global__ void minigan_bias_leaky_relu(const CArray<float, 2, 0, 1> _raw_bias, "
            "const float slope, CArray<float, 2, 1, 1> _raw_h, CIndexer<2, 1> _ind)") in code
    assert "const T &bias = _raw_bias[_ind.get()];\nT &h = _raw_h[_ind.get()];\n" + spec[2] in code
    # Every operand C-contiguous and of one shape: CuPy flattens the loop to one dimension.
    code = elementwise_code("minigan_tanh_backward", (*kernels._ELEMENTWISE["tanh_backward"], ()),
                            signature((h, h)))
    assert "(const CArray<float, 1, 1, 1> _raw_y, CArray<float, 1, 1, 1> _raw_g, CIndexer<1, 1> _ind)" in code
    assert reduced_shape(signature((broadcast_bias, h)), parse_params("T a, T b", True)) == ((64, 1024),
                                                                                             {0: False, 1: True})


def test_the_wrapper_is_what_cupy_generates_where_cupy_is_installed(compiled):
    recorder = compiled[0]
    pairs = [(cupy_generated_code(name, recorder.elementwise[name], call),
              elementwise_code(name, recorder.elementwise[name], call))
             for name, calls in recorder.elementwise_calls.items() for call in calls]
    if pairs[0][0] is None:
        pytest.skip("CuPy (14's code generation) is not installed here")
    for theirs, ours in pairs:
        assert ours.split() == theirs.split()
