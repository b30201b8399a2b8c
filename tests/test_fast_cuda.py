"""The fast path on a GPU: CuPy kernels against the NumPy ones, cuBLAS against NumPy, the fused
step against autograd on the CPU, CUDA-graph replay against eager, and the eager fallback.

Every test here needs CuPy and a CUDA GPU (marked `gpu`, skipped otherwise).
"""

import copy
import warnings

import numpy as np
import pytest

from minigan import Tensor, backend, doctor, gan
from minigan.fast import FusedTrainer, kernels

pytestmark = pytest.mark.gpu

REFERENCE = gan.CONFIGS["reference"]
DTYPES = [np.float32, np.float64]
# CUDA contracts a·b + c into one FMA and uses its own exp/tanh, so float32 results differ from
# NumPy's by an ulp or two; float64 by far less.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.fixture
def cp():
    import cupy

    return cupy


def assert_close(actual, expected, dtype, scale_atol=True):
    actual, expected = backend.to_numpy(actual), backend.to_numpy(expected)
    atol = RTOL[dtype] * max(float(np.max(np.abs(expected))), 1e-30) if scale_atol else 0
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=atol)


def assert_sum_close(actual, exact, dtype, terms):
    """A GEMM or column sum against the exact result, each element a sum of `terms` products.

    Summing K float32 products rounds at every add, so the error grows like eps·sqrt(K)·|C| (a
    random walk of K roundings, each about eps times the partial sum); over a whole matrix the
    largest error stays below 0.4·eps·sqrt(K)·max|C| for NumPy's BLAS on the shapes below
    (measured 2026-11-23). Allow 2·eps·sqrt(K)·max|C|: five times that, and still a
    thousandfold below what a TF32 GEMM (10 mantissa bits) would be off by at K = 784.
    """
    actual, exact = backend.to_numpy(actual).astype(np.float64), np.asarray(exact, np.float64)
    tolerance = 2 * np.finfo(dtype).eps * np.sqrt(terms) * max(float(np.max(np.abs(exact))), 1e-300)
    error = float(np.max(np.abs(actual - exact)))
    assert error <= tolerance, f"max error {error:.3g} > {tolerance:.3g} (2·eps·sqrt({terms})·max|C|)"


def exact_product(a, b):
    """op(a) @ op(b) with every digit of float32 inputs kept (float64), or more for float64 (long double)."""
    wide = np.float64 if a.dtype == np.float32 else np.longdouble
    return a.astype(wide) @ b.astype(wide)


def random(shape, dtype, seed, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# --- each fused kernel: CuPy against NumPy -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["bias_leaky_relu", "bias_tanh", "add_bias"])
def test_forward_kernels_match_numpy(cp, dtype, op):
    h, b = random((33, 70), dtype, 0), random((70,), dtype, 1)
    h[0, :5] = 0  # the kink
    args = (0.2,) if op == "bias_leaky_relu" else ()
    expected = h.copy()
    getattr(kernels, op)(expected, b, *args)
    h_gpu = cp.asarray(h)
    getattr(kernels, op)(h_gpu, cp.asarray(b), *args)
    assert h_gpu.dtype == dtype
    assert_close(h_gpu, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["leaky_relu_backward", "tanh_backward"])
def test_activation_backward_kernels_match_numpy(cp, dtype, op):
    y, g = random((33, 70), dtype, 2), random((33, 70), dtype, 3)
    y[0, :5] = 0
    if op == "tanh_backward":
        y = np.tanh(y)
    args = (0.2,) if op == "leaky_relu_backward" else ()
    expected = g.copy()
    getattr(kernels, op)(expected, y, *args)
    g_gpu = cp.asarray(g)
    getattr(kernels, op)(g_gpu, cp.asarray(y), *args)
    assert_close(g_gpu, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 256, 257, 5000])  # one block of 256 threads loops over the rows
def test_bce_with_logits_kernel_matches_numpy(cp, dtype, n):
    rng = np.random.default_rng(n)
    logits = (rng.standard_normal((n, 1)) * 20).astype(dtype)
    logits[:3] = [[1000.0], [-1000.0], [0.0]][: min(3, n)]
    target = rng.integers(0, 2, (n, 1)).astype(dtype)
    weight = np.full((n, 1), 1.0 / n, dtype) * rng.choice([-1.0, 1.0], (n, 1)).astype(dtype)
    grad, loss = np.empty_like(logits), np.empty(1, dtype)
    kernels.bce_with_logits(logits, target, weight, grad, loss)
    grad_gpu, loss_gpu = cp.empty((n, 1), dtype), cp.empty(1, dtype)
    kernels.bce_with_logits(cp.asarray(logits), cp.asarray(target), cp.asarray(weight), grad_gpu, loss_gpu)
    assert_close(grad_gpu, grad, dtype)
    assert_close(loss_gpu, loss, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_matches_numpy_over_steps(cp, dtype):
    size = 100_003  # not a multiple of anything
    p, m, v = random(size, dtype, 4), np.zeros(size, dtype), np.zeros(size, dtype)
    scalars = kernels.adam_scalars(np, 2e-4, (0.5, 0.999), 1e-8)
    p_gpu, m_gpu, v_gpu = cp.asarray(p), cp.zeros(size, dtype), cp.zeros(size, dtype)
    scalars_gpu = kernels.adam_scalars(cp, 2e-4, (0.5, 0.999), 1e-8)
    for step in range(5):
        # Gradients well above ε, where Adam's update is not decided by rounding.
        g = random(size, dtype, 10 + step, scale=1e-2)
        kernels.adam(p, g, m, v, scalars)
        kernels.adam(p_gpu, cp.asarray(g), m_gpu, v_gpu, scalars_gpu)
    np.testing.assert_array_equal(scalars_gpu.get()[kernels.STEP], 5)
    # float64 scalars; CUDA's pow is within an ulp or two of glibc's, not always equal.
    np.testing.assert_allclose(scalars_gpu.get(), scalars, rtol=1e-13)
    assert_close(m_gpu, m, dtype)
    assert_close(v_gpu, v, dtype)
    assert_close(p_gpu, p, dtype)


# --- cuBLAS through ctypes ---------------------------------------------------------------------------


@pytest.fixture
def blas(cp):
    from minigan.fast import cublas

    stream = cp.cuda.Stream(non_blocking=True)
    return cublas.Cublas(stream), stream


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m, k, n", [(64, 784, 1024), (33, 1, 256), (128, 256, 1), (5, 7, 3)])
def test_cublas_matmul_matches_numpy(cp, blas, dtype, trans_a, trans_b, m, k, n):
    linalg, stream = blas
    a = random((k, m) if trans_a else (m, k), dtype, 5)
    b = random((n, k) if trans_b else (k, n), dtype, 6)
    expected = exact_product(a.T if trans_a else a, b.T if trans_b else b)
    with stream:  # everything on the handle's stream: it does not wait for the legacy stream
        flat = cp.full(m * n + 2, cp.nan, dtype)
        out = flat[1:1 + m * n].reshape(m, n)  # a view at an offset, as in the flat buffers
        linalg.matmul(cp.asarray(a), cp.asarray(b), out, trans_a, trans_b)
    stream.synchronize()
    assert_sum_close(out, expected, dtype, terms=k)
    assert np.isnan(flat[0].get()) and np.isnan(flat[-1].get())


def test_cublas_refuses_mismatched_shapes(cp, blas):
    linalg, _ = blas
    with pytest.raises(ValueError, match="do not align"):
        linalg.matmul(cp.zeros((3, 4), cp.float32), cp.zeros((5, 2), cp.float32), cp.zeros((3, 2), cp.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cublas_column_sum_is_the_bias_gradient(cp, blas, dtype):
    linalg, stream = blas
    g = random((300, 70), dtype, 7)
    with stream:
        out = cp.empty(70, dtype)
        linalg.column_sum(cp.asarray(g), out)
    stream.synchronize()
    assert_sum_close(out, exact_product(np.ones((1, 300), dtype), g)[0], dtype, terms=300)


def needs_tf32(cp):
    major = cp.cuda.Device().compute_capability[:-1]
    if int(major) < 8:
        pytest.skip(f"TF32 needs compute capability 8.0 or newer; this GPU is {cp.cuda.Device().compute_capability}")


def test_tf32_switch_changes_float32_gemms_only_within_tf32_precision(cp):
    from minigan.fast import cublas

    needs_tf32(cp)
    stream = cp.cuda.Stream(non_blocking=True)
    a, b = random((256, 1024), np.float32, 8), random((1024, 512), np.float32, 9)
    results = {}
    for tf32 in (False, True):
        linalg = cublas.Cublas(stream, tf32=tf32)
        with stream:
            out = cp.empty((256, 512), cp.float32)
            linalg.matmul(cp.asarray(a), cp.asarray(b), out)
        stream.synchronize()
        results[tf32] = out.get()
    exact = a.astype(np.float64) @ b.astype(np.float64)
    error = {tf32: np.max(np.abs(r - exact)) / np.max(np.abs(exact)) for tf32, r in results.items()}
    assert_sum_close(results[False], exact, np.float32, terms=1024)
    # TF32 keeps 10 mantissa bits: inputs rounded to 2^-11 relative, about 1e-4 of max|C| here.
    assert 20 * error[False] < error[True] < 5e-3


# --- the fused step on CUDA against autograd on the CPU ---------------------------------------------


def cpu_and_cuda_players(dtype):
    backend.manual_seed(0)
    G, D = gan.build_generator(REFERENCE, dtype=dtype), gan.build_discriminator(REFERENCE, dtype=dtype)
    return (G, D), (copy.deepcopy(G).to("cuda"), copy.deepcopy(D).to("cuda"))


def batches(rng, m, k, dtype):
    xs = [np.tanh(rng.standard_normal((m, 784))).astype(dtype) for _ in range(k)]
    zs = [rng.standard_normal((m, 100)).astype(dtype) for _ in range(k + 1)]
    return xs, zs


def on_gpu(cp, arrays):
    return [cp.asarray(a) for a in arrays]


@pytest.mark.parametrize("cuda_graph", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, loss", [(1, "nonsaturating"), (2, "minimax")])
def test_cuda_step_trains_like_autograd_on_the_cpu(cp, cuda_graph, dtype, k, loss):
    (G, D), (G2, D2) = cpu_and_cuda_players(dtype)
    opt_G, opt_D = gan.build_optimizers(REFERENCE, G, D)
    trainer = FusedTrainer(G2, D2, k=k, loss=loss, cuda_graph=cuda_graph)
    rng = np.random.default_rng(1)
    for _ in range(4):
        xs, zs = batches(rng, 32, k, dtype)
        data, noise = iter(xs), iter(zs)
        expected = gan.train_iteration(G, D, opt_G, opt_D, lambda: Tensor(next(data)), lambda: Tensor(next(noise)),
                                       k, loss)
        stats = trainer.iteration(on_gpu(cp, xs), on_gpu(cp, zs))
        rtol = 1e-4 if dtype == np.float32 else 1e-9
        for key in expected:
            np.testing.assert_allclose(stats[key].get(), expected[key], rtol=rtol, atol=rtol, err_msg=key)
    trainer.copy_to_modules()
    names = [f"G.{n}" for n, _ in G.named_parameters()] + [f"D.{n}" for n, _ in D.named_parameters()]
    for name, p, q in zip(names, G.parameters() + D.parameters(), G2.parameters() + D2.parameters()):
        if dtype == np.float64:
            np.testing.assert_allclose(q.data.get(), p.data, rtol=1e-9, atol=1e-12, err_msg=name)
        else:  # cuBLAS rounds its GEMMs its own way: the rule derived in tests/test_gemm_rounding.py
            problem = doctor.parameter_drift(q.data, p.data, REFERENCE.lr)
            assert problem is None, f"{name}: {problem}"
    assert int(trainer.D.adam_scalars[kernels.STEP].get()) == 4 * k  # counted on the device, every replay
    if cuda_graph:
        assert trainer.cuda.runner.graph is not None and not trainer.cuda.runner.failed
    assert trainer.captured == cuda_graph


@pytest.mark.parametrize("dtype", DTYPES)
def test_captured_step_at_a_large_batch_trains_like_autograd_on_the_gpu(cp, dtype):
    """B = 8192, where the GEMMs dominate and cuBLAS picks other algorithms (split-K, other
    tiles) and the bias gradients sum 16384 rows: the captured fused step against the readable
    autograd path on the same GPU (cupy.matmul), over an eager, a captured and a replayed iteration."""
    m, k, loss = 8192, 1, "nonsaturating"
    backend.manual_seed(0)
    G = gan.build_generator(REFERENCE, dtype=dtype, device="cuda")
    D = gan.build_discriminator(REFERENCE, dtype=dtype, device="cuda")
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    opt_G, opt_D = gan.build_optimizers(REFERENCE, G, D)
    trainer = FusedTrainer(G2, D2, k=k, loss=loss, cuda_graph=True)
    rng = np.random.default_rng(8)
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    for _ in range(3):
        xs, zs = (on_gpu(cp, b) for b in batches(rng, m, k, dtype))
        data, noise = iter(xs), iter(zs)
        expected = gan.train_iteration(G, D, opt_G, opt_D, lambda: Tensor(next(data)), lambda: Tensor(next(noise)),
                                       k, loss)
        stats = trainer.iteration(xs, zs)
        for key in expected:
            np.testing.assert_allclose(stats[key].get(), expected[key].get(), rtol=rtol, atol=rtol, err_msg=key)
    assert trainer.captured
    trainer.copy_to_modules()
    names = [f"G.{n}" for n, _ in G.named_parameters()] + [f"D.{n}" for n, _ in D.named_parameters()]
    for name, p, q in zip(names, G.parameters() + D.parameters(), G2.parameters() + D2.parameters()):
        if dtype == np.float64:
            np.testing.assert_allclose(q.data.get(), p.data.get(), rtol=1e-9, atol=1e-12, err_msg=name)
        else:
            problem = doctor.parameter_drift(q.data, p.data, REFERENCE.lr)
            assert problem is None, f"{name}: {problem}"


# --- CUDA graph replay -------------------------------------------------------------------------------


def twin_trainers(dtype=np.float32, k=1, **kwargs):
    backend.manual_seed(0)
    G = gan.build_generator(REFERENCE, dtype=dtype, device="cuda")
    D = gan.build_discriminator(REFERENCE, dtype=dtype, device="cuda")
    eager = FusedTrainer(copy.deepcopy(G), copy.deepcopy(D), k=k, cuda_graph=False)
    return eager, FusedTrainer(G, D, k=k, **kwargs)


def assert_same_training(cp, a, b, iterations, m=64, k=1, dtype=np.float32, rtol=1e-6, param_atol=1e-6,
                         drift_lr=None):
    """Statistics to `rtol`; parameters to `param_atol`, or, given `drift_lr`, as doctor.parameter_drift
    allows two differently rounded GEMMs to differ (a LeakyReLU input near 0 may change sign)."""
    rng = np.random.default_rng(2)
    for _ in range(iterations):
        xs, zs = batches(rng, m, k, dtype)
        stats_a, stats_b = a.iteration(on_gpu(cp, xs), on_gpu(cp, zs)), b.iteration(on_gpu(cp, xs), on_gpu(cp, zs))
        for key in stats_a:
            np.testing.assert_allclose(stats_b[key].get(), stats_a[key].get(), rtol=rtol, atol=rtol, err_msg=key)
    for x, y in ((a.G, b.G), (a.D, b.D)):
        if drift_lr is None:
            np.testing.assert_allclose(y.params.get(), x.params.get(), rtol=rtol, atol=param_atol)
        else:
            problem = doctor.parameter_drift(y.params, x.params, drift_lr)
            assert problem is None, problem


@pytest.mark.parametrize("k", [1, 2])
def test_graph_replay_matches_eager_over_iterations(cp, k):
    eager, graphed = twin_trainers(k=k)
    assert_same_training(cp, eager, graphed, iterations=6, k=k)
    assert graphed.cuda.runner.graph is not None and not graphed.cuda.runner.failed


def test_graph_is_recaptured_when_the_batch_size_changes(cp):
    eager, graphed = twin_trainers()
    for m in (64, 16, 64):
        assert_same_training(cp, eager, graphed, iterations=3, m=m)
        assert graphed.cuda.runner.graph is not None


SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    const long long start = clock64();
    while (clock64() - start < cycles) { }
}
"""


@pytest.mark.parametrize("cuda_graph", [True, False])
def test_an_iteration_does_not_wait_for_the_device(cp, cuda_graph):
    """Queue a second or so of spinning on the caller's stream, then call iteration(): had it
    synchronised with the host anywhere (a .get(), a float(), a mask index), it would take that long."""
    import time

    _, trainer = twin_trainers(cuda_graph=cuda_graph)
    rng = np.random.default_rng(3)
    for _ in range(3):  # eager warm-up, capture, one replay: kernels compiled, memory pooled
        trainer.iteration(*(on_gpu(cp, b) for b in batches(rng, 64, 1, np.float32)))
    xs, zs = (on_gpu(cp, b) for b in batches(rng, 64, 1, np.float32))
    spin = cp.RawKernel(SPIN, "spin")
    spin((1,), (1,), (np.int64(1000),))  # compiled before timing
    cp.cuda.get_current_stream().synchronize()
    start = time.perf_counter()
    spin((1,), (1,), (np.int64(2_000_000_000),))  # about a second at 2 GHz
    stats = trainer.iteration(xs, zs)
    returned = time.perf_counter() - start
    cp.cuda.get_current_stream().synchronize()
    finished = time.perf_counter() - start
    assert finished > 0.3, "the spin kernel did not hold the device long enough for this test to mean anything"
    assert returned < 0.1, f"iteration() returned after {returned:.3f} s, behind a {finished:.2f} s kernel: it waited"
    assert np.isfinite(float(stats["d_loss"]))


def test_input_buffers_skip_the_copies(cp):
    eager, graphed = twin_trainers()
    rng = np.random.default_rng(4)
    data_buffers, noise_buffers = graphed.input_buffers(64)
    for _ in range(3):
        xs, zs = batches(rng, 64, 1, np.float32)
        for buffer, array in zip(data_buffers + noise_buffers, xs + zs):
            buffer[...] = cp.asarray(array)
        expected = eager.iteration(on_gpu(cp, xs), on_gpu(cp, zs))
        stats = graphed.iteration(data_buffers, noise_buffers)
        np.testing.assert_allclose(stats["d_loss"].get(), expected["d_loss"].get(), rtol=1e-6)


# --- fallback when capture is refused ----------------------------------------------------------------


def test_fallback_to_eager_with_one_warning_when_capture_fails(cp, monkeypatch):
    from minigan.fast import cuda_graph

    def refuse(step, stream):
        raise RuntimeError("capture refused for this test")

    monkeypatch.setattr(cuda_graph, "capture", refuse)
    eager, graphed = twin_trainers()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same_training(cp, eager, graphed, iterations=5)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "capture refused for this test" in messages[0]
    assert graphed.cuda.runner.failed and graphed.cuda.runner.graph is None


def test_fallback_when_cupy_refuses_a_library_call_during_capture(cp):
    """cupy.matmul raises NotImplementedError while capturing: the real failure, not a mock.
    The stream must come out of capture usable, and the step must still happen."""
    eager, graphed = twin_trainers()

    def cupy_matmul(a, b, out, trans_a=False, trans_b=False, allow_tf32=True):
        cp.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)

    graphed.linalg.matmul = cupy_matmul
    # cupy.matmul may pick other GEMM algorithms: gradients agree to rounding, but Adam moves an
    # element whose gradient is near ε, or behind a LeakyReLU input near 0, by what rounding decides.
    with pytest.warns(RuntimeWarning, match="running the step eagerly"):
        assert_same_training(cp, eager, graphed, iterations=4, rtol=1e-5, drift_lr=REFERENCE.lr)
    assert graphed.cuda.runner.failed and not graphed.captured
    assert graphed.mode.startswith("eager (CUDA graph capture failed: NotImplementedError")
    assert not graphed.cuda.stream.is_capturing()


STATE = ("params", "exp_avg", "exp_avg_sq", "adam_scalars")


def copy_state(cp, source, target):
    """Give `target` the weights and Adam state of `source`, in place (a graph replays fixed addresses)."""
    cp.cuda.runtime.deviceSynchronize()
    for a, b in ((source.G, target.G), (source.D, target.D)):
        for name in STATE:
            getattr(b, name)[...] = getattr(a, name)
    cp.cuda.runtime.deviceSynchronize()


def test_tf32_is_in_effect_when_the_captured_step_replays(cp):
    """From one state and one batch: the replayed TF32 graph gives what eager TF32 gives, and
    differs from fp32 by far more than fp32 rounding (so TF32 really ran inside the graph)."""
    needs_tf32(cp)
    backend.manual_seed(0)
    G, D = (gan.build_generator(REFERENCE, device="cuda"), gan.build_discriminator(REFERENCE, device="cuda"))
    trainers = {name: FusedTrainer(copy.deepcopy(G), copy.deepcopy(D), cuda_graph=captured, tf32=tf32)
                for name, captured, tf32 in (("fp32", False, False), ("tf32 eager", False, True),
                                          ("tf32 graph", True, True))}
    rng = np.random.default_rng(5)
    m = 512  # D's GEMMs are 1024 × 784 × 1024 and up: TF32's rounding shows
    for _ in range(3):  # eager warm-up, capture + launch, one replay
        xs, zs = batches(rng, m, 1, np.float32)
        for trainer in trainers.values():
            trainer.iteration(on_gpu(cp, xs), on_gpu(cp, zs))
    for trainer in trainers.values():
        copy_state(cp, trainers["fp32"], trainer)
    xs, zs = batches(rng, m, 1, np.float32)
    logits = {}
    for name, trainer in trainers.items():
        stats = trainer.iteration(on_gpu(cp, xs), on_gpu(cp, zs))
        logits[name] = np.concatenate([stats["d_real_logits"].get(), stats["d_fake_logits"].get()]).astype(np.float64)
    assert trainers["tf32 graph"].captured and not trainers["tf32 eager"].captured
    scale = np.max(np.abs(logits["fp32"]))

    def difference(a, b):
        return np.max(np.abs(logits[a] - logits[b])) / scale

    # Eager and replayed TF32 run the same kernels on the same handle settings.
    assert difference("tf32 graph", "tf32 eager") < 1e-6
    # fp32 rounding of these logits is about eps·sqrt(1024) ≈ 4e-6 of their scale; TF32's
    # (2^-11 per input) about 1e-3. Between the two, with a margin on each side:
    assert 5e-5 < difference("tf32 graph", "fp32") < 2e-2


def test_copy_to_modules_on_cuda(cp):
    _, trainer = twin_trainers()
    G = trainer.G.module
    before = [p.data.copy() for p in G.parameters()]
    xs, zs = batches(np.random.default_rng(6), 16, 1, np.float32)
    trainer.iteration(on_gpu(cp, xs), on_gpu(cp, zs))
    trainer.copy_to_modules()
    for p, b, view in zip(G.parameters(), before, trainer.G.param_views):
        assert not bool(cp.array_equal(p.data, b))
        assert bool(cp.array_equal(p.data, view))
