"""The fast path's NumPy kernels, each against the autograd op or formula it replaces.

Forward and backward ops do the same floating-point operations as the autograd ops, so most
comparisons are exact; the loss is a sum in a different order, so it is compared to a tolerance.
The CuPy versions are held to these NumPy versions in tests/test_fast_cuda.py.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minigan import Tensor, gan, optim
from minigan.fast import kernels
from minigan.tensor import unbroadcast

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: 2e-6, np.float64: 1e-13}


@st.composite
def batch_and_bias(draw, low=-4.0, high=4.0):
    """An (n, features) batch and a (features,) bias, in float64, with some exact zeros."""
    n, features = draw(st.integers(1, 9)), draw(st.integers(1, 12))
    elements = st.one_of(st.just(0.0), st.floats(low, high, allow_nan=False, allow_infinity=False))
    return (draw(arrays(np.float64, (n, features), elements=elements)),
            draw(arrays(np.float64, (features,), elements=elements)))


def as_dtype(dtype, *arrays_):
    return [np.array(a, dtype=dtype) for a in arrays_]


# --- forward: bias + activation --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=batch_and_bias(), slope=st.sampled_from([0.2, 0.01, 0.5]))
def test_bias_leaky_relu_is_linear_bias_then_leaky_relu(dtype, data, slope):
    h, b = as_dtype(dtype, *data)
    expected = (Tensor(h) + Tensor(b)).leaky_relu(slope).data
    kernels.bias_leaky_relu(h, b, slope)
    assert h.dtype == dtype
    np.testing.assert_array_equal(h, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=batch_and_bias())
def test_bias_tanh_is_linear_bias_then_tanh(dtype, data):
    h, b = as_dtype(dtype, *data)
    expected = (Tensor(h) + Tensor(b)).tanh().data
    kernels.bias_tanh(h, b)
    assert h.dtype == dtype
    np.testing.assert_array_equal(h, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=batch_and_bias())
def test_add_bias(dtype, data):
    h, b = as_dtype(dtype, *data)
    expected = (Tensor(h) + Tensor(b)).data
    kernels.add_bias(h, b)
    np.testing.assert_array_equal(h, expected)


def test_forward_kernels_work_in_place_with_a_given_scratch():
    h = np.array([[-1.0, 2.0], [0.5, -3.0]], dtype=np.float32)
    scratch = np.full_like(h, np.nan)
    before = h.__array_interface__["data"][0]
    kernels.bias_leaky_relu(h, np.zeros(2, np.float32), 0.2, scratch)
    assert h.__array_interface__["data"][0] == before
    np.testing.assert_array_equal(h, np.array([[-0.2, 2.0], [0.5, -0.6]], dtype=np.float32))


# --- backward: activations -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=batch_and_bias(), slope=st.sampled_from([0.2, 0.01, 0.5]))
def test_leaky_relu_backward_from_the_output_matches_autograd(dtype, data, slope):
    x, _ = data
    x, = as_dtype(dtype, x)
    g = np.random.default_rng(x.size).standard_normal(x.shape).astype(dtype)
    leaf = Tensor(x, requires_grad=True)
    y = leaf.leaky_relu(slope)
    y.backward(g)
    grad = g.copy()
    kernels.leaky_relu_backward(grad, y.data, slope, np.empty_like(grad))
    np.testing.assert_array_equal(grad, leaf.grad)


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=batch_and_bias())
def test_tanh_backward_from_the_output_matches_autograd(dtype, data):
    x, _ = data
    x, = as_dtype(dtype, x)
    g = np.random.default_rng(x.size).standard_normal(x.shape).astype(dtype)
    leaf = Tensor(x, requires_grad=True)
    y = leaf.tanh()
    y.backward(g)
    grad = g.copy()
    kernels.tanh_backward(grad, y.data)
    np.testing.assert_array_equal(grad, leaf.grad)


# --- the losses ------------------------------------------------------------------------------------


def fused_loss(logits, target, weight):
    grad, loss = np.empty_like(logits), np.empty(1, logits.dtype)
    kernels.bce_with_logits(logits, target, weight, grad, loss)
    return loss[0], grad


def autograd_loss(logits, loss_fn):
    leaf = Tensor(logits, requires_grad=True)
    loss = loss_fn(leaf)
    loss.backward()
    return loss.data, leaf.grad


def assert_close_to(value, expected, dtype):
    scale = max(np.max(np.abs(expected)), 1e-30)
    np.testing.assert_allclose(value, expected, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] * scale)


logit_values = st.floats(-60.0, 60.0, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("dtype", DTYPES)
@given(m=st.integers(1, 12), data=st.data())
def test_bce_with_logits_is_the_discriminator_loss_over_real_then_fake_rows(dtype, m, data):
    logits = np.array(data.draw(arrays(np.float64, (2 * m, 1), elements=logit_values)), dtype=dtype)
    target = np.repeat(np.array([[1.0], [0.0]], dtype), m, axis=0)
    weight = np.full((2 * m, 1), 1.0 / m, dtype)
    loss, grad = fused_loss(logits, target, weight)
    expected_loss, expected_grad = autograd_loss(logits, lambda logit: gan.discriminator_loss(logit[:m], logit[m:]))
    assert grad.dtype == dtype
    assert_close_to(loss, expected_loss, dtype)
    assert_close_to(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, t, sign", [("nonsaturating", 1.0, 1.0), ("minimax", 0.0, -1.0)])
@given(m=st.integers(1, 12), data=st.data())
def test_bce_with_logits_is_the_generator_loss(dtype, kind, t, sign, m, data):
    logits = np.array(data.draw(arrays(np.float64, (m, 1), elements=logit_values)), dtype=dtype)
    loss, grad = fused_loss(logits, np.full((m, 1), t, dtype), np.full((m, 1), sign / m, dtype))
    expected_loss, expected_grad = autograd_loss(logits, lambda logit: gan.generator_loss(logit, kind))
    assert_close_to(loss, expected_loss, dtype)
    assert_close_to(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_keeps_its_digits_when_d_is_certain(dtype):
    """softplus(−l) for l = 30 is 9.4e-14: computed as softplus(l) − l it would round to 0."""
    logits = np.array([[30.0], [-30.0], [1000.0], [-1000.0]], dtype)
    ones = np.ones((4, 1), dtype)
    loss, grad = fused_loss(logits[:1], ones[:1], ones[:1])
    assert loss == pytest.approx(np.log1p(np.exp(-30.0)), rel=1e-6)
    assert grad[0, 0] == pytest.approx(-1 / (1 + np.exp(30.0)), rel=1e-6)
    loss, grad = fused_loss(logits, ones, ones)  # t = 1: −log σ(l)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(30.0 + 1000.0 + np.log1p(np.exp(-30.0)) * 2, rel=1e-6)
    np.testing.assert_allclose(grad[:, 0], [-1 / (1 + np.exp(30.0)), -1 / (1 + np.exp(-30.0)), 0.0, -1.0], rtol=1e-6)


# --- the optimizer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@given(shapes=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=4),
       hyper=st.sampled_from([(2e-4, (0.5, 0.999), 1e-8), (1e-3, (0.9, 0.999), 1e-8), (0.05, (0.8, 0.99), 1e-3)]),
       chunk=st.sampled_from([3, 7, kernels.ADAM_CHUNK]))
def test_adam_over_a_flat_buffer_is_optim_adam_bit_for_bit(dtype, shapes, hyper, chunk):
    """The same operations in the same order as optim.Adam, so the same bits, chunk boundaries or not."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "ADAM_CHUNK", chunk)
        check_adam_against_optim_adam(dtype, shapes, *hyper)


def check_adam_against_optim_adam(dtype, shapes, lr, betas, eps):
    rng = np.random.default_rng(len(shapes))
    params = [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]
    reference = optim.Adam(params, lr=lr, betas=betas, eps=eps)
    flat = np.concatenate([p.data.ravel() for p in params])
    exp_avg, exp_avg_sq = np.zeros_like(flat), np.zeros_like(flat)
    scalars = kernels.adam_scalars(np, lr, betas, eps)
    for step in range(1, 5):
        grads = [(rng.standard_normal(p.shape) * 10.0 ** rng.integers(-9, 1)).astype(dtype) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        reference.step()
        kernels.adam(flat, np.concatenate([g.ravel() for g in grads]), exp_avg, exp_avg_sq, scalars)
        assert scalars[kernels.STEP] == step and flat.dtype == dtype
        np.testing.assert_array_equal(flat, np.concatenate([p.data.ravel() for p in params]))
    np.testing.assert_array_equal(exp_avg, np.concatenate([m.ravel() for m in reference.state["exp_avg"]]))
    np.testing.assert_array_equal(exp_avg_sq, np.concatenate([v.ravel() for v in reference.state["exp_avg_sq"]]))


def test_adam_scalars_hold_the_step_and_both_bias_corrections():
    scalars = kernels.adam_scalars(np, 2e-4, (0.5, 0.999), 1e-8)
    p, g = np.zeros(3, np.float32), np.ones(3, np.float32)
    for _ in range(3):
        kernels.adam(p, g, np.zeros_like(p), np.zeros_like(p), scalars)
    assert scalars[kernels.STEP] == 3
    assert scalars[kernels.STEP_SIZE] == pytest.approx(2e-4 / (1 - 0.5 ** 3), rel=1e-15)
    assert scalars[kernels.BIAS_CORRECTION2_SQRT] == pytest.approx(np.sqrt(1 - 0.999 ** 3), rel=1e-15)


# --- NumPy linear algebra --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@given(m=st.integers(1, 7), k=st.integers(1, 7), n=st.integers(1, 7))
def test_matmul_into_a_view_of_a_flat_buffer(dtype, trans_a, trans_b, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    flat = np.full(m * n + 3, np.nan, dtype)
    out = flat[1:1 + m * n].reshape(m, n)
    kernels.matmul(a, b, out, trans_a=trans_a, trans_b=trans_b)
    expected = (Tensor(a).T if trans_a else Tensor(a)) @ (Tensor(b).T if trans_b else Tensor(b))
    np.testing.assert_allclose(out, expected.data, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    assert np.isnan(flat[0]) and np.isnan(flat[-2:]).all()  # nothing written outside the view


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=batch_and_bias())
def test_column_sum_is_the_bias_gradient_unbroadcast_computes(dtype, data):
    g, _ = as_dtype(dtype, *data)
    out = np.empty(g.shape[1], dtype)
    kernels.column_sum(g, out)
    np.testing.assert_array_equal(out, unbroadcast(g, (g.shape[1],)))


# --- the CUDA sources, compiled for the CPU --------------------------------------------------------
# The CuPy kernels cannot run without a GPU, but their C++ can: with the few CUDA keywords defined
# away (one thread per block), g++ compiles the very strings kernels.py hands to CuPy, and each is
# run against its NumPy twin. This checks the source compiles and computes the same maths; the
# GPU itself is checked in tests/test_fast_cuda.py.

CUDA_SHIM = r"""
#include <cmath>
using std::exp; using std::fabs; using std::fmax; using std::log1p; using std::pow; using std::sqrt; using std::tanh;
#define __global__
#define __device__
#define __shared__ static
struct minigan_dim3 { unsigned x; };
static const minigan_dim3 threadIdx = {0}, blockDim = {1};
#define __syncthreads()
"""

# Which of an ElementwiseKernel's inputs are Python scalars in kernels.py's calls.
SCALAR_PARAMS = {"slope"}


def elementwise_as_cpp(name, in_params, out_params, body, suffix, ctype):
    """An ElementwiseKernel as a C loop, binding its parameters the way CuPy does."""
    params, bindings = ["long n"], []
    for declaration in in_params.split(","):
        words = declaration.split()
        param = words[-1]
        if words[0] == "raw":  # a raw array, indexed by the body itself
            params.append(f"const {'double' if words[1] == 'float64' else 'T'}* {param}")
        elif param in SCALAR_PARAMS:
            params.append(f"double {param}_value")
            bindings.append(f"const T {param} = (T){param}_value;")
        else:
            params.append(f"const T* {param}_array")
            bindings.append(f"const T {param} = {param}_array[i];")
    for declaration in out_params.split(","):
        param = declaration.split()[-1]
        params.append(f"T* {param}_array")
        bindings.append(f"T& {param} = {param}_array[i];")
    return (f"namespace {name}_{suffix} {{ typedef {ctype} T;\n"
            f"extern \"C\" void cpu_{name}_{suffix}({', '.join(params)}) {{\n"
            f"  for (long i = 0; i < n; ++i) {{ {' '.join(bindings)}\n{body}\n  }}\n}} }}\n")


@pytest.fixture(scope="module")
def cuda_source_on_cpu(tmp_path_factory):
    import ctypes
    import shutil
    import subprocess

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("needs a C++ compiler")
    kernels_ = dict(kernels._ELEMENTWISE, adam=("T g, raw float64 s", "T p, T m, T v", kernels._ADAM_BODY))
    source = CUDA_SHIM + kernels._CUDA_SOURCE + "".join(
        elementwise_as_cpp(name, *spec, suffix, ctype)
        for name, spec in kernels_.items() for suffix, ctype in (("float32", "float"), ("float64", "double")))
    directory = tmp_path_factory.mktemp("cuda_on_cpu")
    (directory / "kernels.cpp").write_text(source)
    library = directory / "kernels.so"
    result = subprocess.run([compiler, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library),
                             str(directory / "kernels.cpp")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(library))


def call(library, name, *args):
    import ctypes

    converted = []
    for a in args:
        if isinstance(a, np.ndarray):
            assert a.flags.c_contiguous
            converted.append(ctypes.c_void_p(a.ctypes.data))
        elif isinstance(a, float):
            converted.append(ctypes.c_double(a))
        elif isinstance(a, np.int32):
            converted.append(ctypes.c_int(int(a)))
        else:
            converted.append(ctypes.c_long(a))
    getattr(library, name)(*converted)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["bias_leaky_relu", "bias_tanh", "add_bias"])
def test_cuda_forward_kernels_compute_what_numpy_does(cuda_source_on_cpu, dtype, op):
    rng = np.random.default_rng(0)
    h, b = (rng.standard_normal((9, 13)) * 3).astype(dtype), rng.standard_normal(13).astype(dtype)
    h[0, :4] = -b[:4]  # h + b = 0, the kink
    expected = h.copy()
    getattr(kernels, op)(expected, b, *((0.2,) if op == "bias_leaky_relu" else ()))
    bias = np.ascontiguousarray(np.broadcast_to(b, h.shape))  # CuPy broadcasts; the C loop indexes
    scalars = (0.2,) if op == "bias_leaky_relu" else ()
    call(cuda_source_on_cpu, f"cpu_{op}_{np.dtype(dtype).name}", h.size, bias, *scalars, h)
    np.testing.assert_allclose(h, expected, rtol=TOLERANCE[dtype], atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["leaky_relu_backward", "tanh_backward"])
def test_cuda_activation_backward_kernels_compute_what_numpy_does(cuda_source_on_cpu, dtype, op):
    rng = np.random.default_rng(1)
    y, g = rng.standard_normal((9, 13)).astype(dtype), rng.standard_normal((9, 13)).astype(dtype)
    y[0, :3] = 0
    if op == "tanh_backward":
        y = np.tanh(y)
    scalars = (0.2,) if op == "leaky_relu_backward" else ()
    expected = g.copy()
    getattr(kernels, op)(expected, y, *scalars)
    call(cuda_source_on_cpu, f"cpu_{op}_{np.dtype(dtype).name}", g.size, y, *scalars, g)
    np.testing.assert_array_equal(g, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_adam_computes_what_numpy_does_bit_for_bit(cuda_source_on_cpu, dtype):
    rng = np.random.default_rng(2)
    p = rng.standard_normal(50).astype(dtype)
    m, v, p_cuda, m_cuda, v_cuda = np.zeros_like(p), np.zeros_like(p), p.copy(), np.zeros_like(p), np.zeros_like(p)
    scalars, scalars_cuda = (kernels.adam_scalars(np, 2e-4, (0.5, 0.999), 1e-8) for _ in range(2))
    for _ in range(4):
        g = (rng.standard_normal(50) * 10.0 ** rng.integers(-9, 0, 50)).astype(dtype)
        kernels.adam(p, g, m, v, scalars)
        call(cuda_source_on_cpu, "minigan_adam_prepare", scalars_cuda)
        call(cuda_source_on_cpu, f"cpu_adam_{np.dtype(dtype).name}", p.size, g, scalars_cuda, p_cuda, m_cuda, v_cuda)
    np.testing.assert_array_equal(scalars_cuda, scalars)
    for cuda, numpy in ((p_cuda, p), (m_cuda, m), (v_cuda, v)):
        np.testing.assert_array_equal(cuda, numpy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_bce_with_logits_computes_what_numpy_does(cuda_source_on_cpu, dtype):
    rng = np.random.default_rng(3)
    n = 300
    logits = (rng.standard_normal((n, 1)) * 20).astype(dtype)
    logits[:3, 0] = [1000.0, -1000.0, 0.0]
    target = rng.integers(0, 2, (n, 1)).astype(dtype)
    weight = (rng.choice([-1.0, 1.0], (n, 1)) / n).astype(dtype)
    grad, loss = np.empty_like(logits), np.empty(1, dtype)
    kernels.bce_with_logits(logits, target, weight, grad, loss)
    grad_cuda, loss_cuda = np.empty_like(logits), np.empty(1, dtype)
    call(cuda_source_on_cpu, f"minigan_bce_with_logits_{np.dtype(dtype).name}", logits, target, weight,
         grad_cuda, loss_cuda, np.int32(n))
    np.testing.assert_allclose(grad_cuda, grad, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype] / n)
    np.testing.assert_allclose(loss_cuda, loss, rtol=TOLERANCE[dtype])


# --- the row-major to column-major GEMM mapping of cublas.py ---------------------------------------


def column_major_gemm(transa, transb, m, n, k, A, lda, B, ldb, ldc):
    """BLAS's C (m × n) = op(A)·op(B), every matrix column-major in a flat buffer, read from the
    specification: element (i, j) of a matrix with leading dimension ld is flat[i + j·ld]."""
    from minigan.fast import cublas

    def matrix(flat, ld, rows, cols):
        assert ld >= max(1, rows), "leading dimension shorter than a column"
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        return flat[i + j * ld]

    op_a = matrix(A, lda, k, m).T if transa == cublas.CUBLAS_OP_T else matrix(A, lda, m, k)
    op_b = matrix(B, ldb, n, k).T if transb == cublas.CUBLAS_OP_T else matrix(B, ldb, k, n)
    assert ldc >= max(1, m)
    C = np.zeros(ldc * n)
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    C[i + j * ldc] = op_a @ op_b
    return C


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@given(rows=st.integers(1, 6), k=st.integers(1, 6), cols=st.integers(1, 6))
def test_row_major_gemm_arguments_give_the_row_major_product(trans_a, trans_b, rows, k, cols):
    """What cublas.Cublas.matmul passes to cublasGemmEx, run through a column-major GEMM, is a@b."""
    from minigan.fast import cublas

    rng = np.random.default_rng(rows * 100 + k * 10 + cols)
    a = rng.standard_normal((k, rows) if trans_a else (rows, k))
    b = rng.standard_normal((cols, k) if trans_b else (k, cols))
    (transa, transb, m, n, kk, lda, ldb, ldc), shape = cublas.row_major_gemm(a.shape, b.shape, trans_a, trans_b)
    # The first matrix is b, the second a, each passed as its C-order bytes.
    C = column_major_gemm(transa, transb, m, n, kk, b.ravel(), lda, a.ravel(), ldb, ldc)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    assert shape == expected.shape
    np.testing.assert_allclose(C.reshape(shape), expected, rtol=1e-12)  # C's bytes, read row-major


def test_row_major_gemm_refuses_shapes_that_do_not_align():
    from minigan.fast import cublas

    with pytest.raises(ValueError, match=r"shapes \(3, 4\) and \(5, 2\) do not align"):
        cublas.row_major_gemm((3, 4), (5, 2), False, False)


def test_numpy_activation_kernels_work_in_row_blocks_of_a_small_scratch():
    """With a scratch smaller than the batch, the kernels go block by block and agree exactly
    with one pass over the whole array."""
    rng = np.random.default_rng(0)
    h, bias = rng.standard_normal((7, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    grad = rng.standard_normal((7, 3)).astype(np.float32)
    small = np.empty(4, np.float32)  # one row (3 elements) per block: 7 blocks
    for run in (lambda out, scratch: kernels.bias_leaky_relu(out, bias, 0.2, scratch),
                lambda out, scratch: kernels.leaky_relu_backward(out, h, 0.2, scratch),
                lambda out, scratch: kernels.tanh_backward(out, np.tanh(h), scratch)):
        whole, blocked = grad.copy(), grad.copy()
        run(whole, None)
        run(blocked, small)
        np.testing.assert_array_equal(blocked, whole)
    expected = np.maximum(h + bias, 0.2 * (h + bias))
    kernels.bias_leaky_relu(h, bias, 0.2, small)
    np.testing.assert_array_equal(h, expected)


# --- cublas.py's library search and errors (no GPU needed) ------------------------------------------


def test_cublas_errors_name_the_status():
    from minigan.fast import cublas

    with pytest.raises(cublas.CublasError, match=r"cublasCreate_v2 failed: CUBLAS_STATUS_NOT_INITIALIZED \(1\)"):
        cublas._check(1, "cublasCreate_v2")
    with pytest.raises(RuntimeError, match=r"cublasGemmEx failed: CUBLAS_STATUS_ARCH_MISMATCH \(8\)"):
        cublas._check(8, "cublasGemmEx")
    with pytest.raises(RuntimeError, match=r"unknown status \(42\)"):
        cublas._check(42, "cublasGemmEx")
    cublas._check(0, "cublasGemmEx")  # success raises nothing


def test_cublas_search_prefers_cupys_cuda_major_over_the_first_mapped(monkeypatch):
    """torch may have mapped a libcublas of another CUDA major before CuPy mapped its own: the
    one of CuPy's major comes first, and the other is never tried."""
    from minigan.fast import cublas

    mapped = ["/torch/lib/nvidia/cublas/lib/libcublas.so.12", "/cupy/nvidia/cu13/lib/libcublas.so.13"]
    monkeypatch.setattr(cublas, "_loaded_cublas_paths", lambda: sorted(mapped))
    monkeypatch.setattr(cublas, "_pathfinder_cublas", lambda: "/site/nvidia/cu13/lib/libcublas.so.13")
    candidates = list(cublas._candidate_paths(13))
    assert candidates[:3] == [mapped[1], "/site/nvidia/cu13/lib/libcublas.so.13", "libcublas.so.13"]
    assert not any(path.endswith(".so.12") or path.endswith(".so") for path in candidates)
    assert list(cublas._candidate_paths(12))[0] == mapped[0]
    assert [cublas._major_of(p) for p in ("/x/libcublas.so.13", "/x/libcublas.so.12.9.1", "/x/libcublas.so")] \
        == [13, 12, None]
