"""What this machine has, and whether minigan computes correctly on it, in a few seconds.

    python -m minigan.doctor                  # the CPU: NumPy's fused step against autograd
    python -m minigan.doctor --device cuda    # CuPy, CUDA, the GPU; kernels, a captured step, autograd

Like torch.utils.collect_env, it first prints the versions a bug report needs: Python, NumPy and
the BLAS it was built with and has loaded, CuPy, the CUDA runtime and driver, the GPU and its
memory, and the libcublas the fused step loaded. Then it runs a few small computations on the
device and compares each with the CPU. The last line is `ok`, or `problem: ...` naming the first
problem, and the exit status is non-zero on a problem.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import warnings

import numpy as np

from . import __version__, backend, gan
from .tensor import Tensor

REFERENCE = gan.CONFIGS["reference"]
# Adam's default hyperparameters here are the reference config's.
LR = 2e-4


class Problem(Exception):
    """A check that found something wrong; the message is the one line to print."""


# --- the environment -------------------------------------------------------------------------------


def _loaded_libraries(*needles) -> list[str]:
    """Shared libraries mapped into this process whose file name contains one of `needles`."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:  # not Linux
        return []
    return sorted(p for p in paths if any(n in p.rsplit("/", 1)[-1].lower() for n in needles))


def numpy_blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        built = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # NumPy before 1.25 has no dict mode
        built = "unknown"
    loaded = _loaded_libraries("openblas", "mkl_rt", "libblas", "libcblas", "accelerate", "blis")
    return f"{built} (loaded: {', '.join(loaded) if loaded else 'not visible'})"


def environment() -> list[tuple[str, str]]:
    return [("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform()),
            ("minigan", __version__),
            ("numpy", np.__version__),
            ("numpy BLAS", numpy_blas())]


def cuda_environment(cupy, device_id: int) -> list[tuple[str, str]]:
    runtime, driver = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
    version = lambda v: f"{v // 1000}.{v % 1000 // 10}"
    rows = [("cupy", cupy.__version__),
            ("CUDA", f"runtime {version(runtime)}, driver supports up to {version(driver)}")]
    for i in range(cupy.cuda.runtime.getDeviceCount()):
        properties = cupy.cuda.runtime.getDeviceProperties(i)
        name = properties["name"].decode() if isinstance(properties["name"], bytes) else properties["name"]
        memory = properties["totalGlobalMem"] / 2**30
        marker = " (checked below)" if i == device_id else ""
        rows.append((f"GPU {i}", f"{name}, {memory:.1f} GiB, compute capability "
                                 f"{properties['major']}.{properties['minor']}{marker}"))
    return rows


def cublas_line() -> tuple[str, str]:
    from .fast import cublas

    library = cublas.load_library()
    loaded = _loaded_libraries("libcublas.so")
    return "libcublas", f"{library._name} (mapped: {', '.join(loaded) if loaded else 'none'})"


# --- the checks --------------------------------------------------------------------------------------


def _players(device="cpu"):
    backend.manual_seed(0)
    G, D = gan.build_generator(REFERENCE), gan.build_discriminator(REFERENCE)
    return (G, D) if device == "cpu" else (G.to(device), D.to(device))


def _batches(seed, m=32, k=1):
    rng = np.random.default_rng(seed)
    xs = [np.tanh(rng.standard_normal((m, 784))).astype(np.float32) for _ in range(k)]
    zs = [rng.standard_normal((m, 100)).astype(np.float32) for _ in range(k + 1)]
    return xs, zs


def _autograd_iteration(G, D, opt_G, opt_D, xs, zs, device="cpu"):
    data = iter([Tensor(x, device=device) for x in xs])
    noise = iter([Tensor(z, device=device) for z in zs])
    return gan.train_iteration(G, D, opt_G, opt_D, lambda: next(data), lambda: next(noise), 1, "nonsaturating")


def _compare(what, actual, expected, rtol, atol=None):
    """Problem if `actual` is not within rtol (and atol, default rtol·max|expected|) of `expected`."""
    actual, expected = backend.to_numpy(actual).astype(np.float64), backend.to_numpy(expected).astype(np.float64)
    if actual.shape != expected.shape:
        raise Problem(f"{what}: shape {actual.shape}, expected {expected.shape}")
    if not np.all(np.isfinite(actual)):
        raise Problem(f"{what}: not finite")
    atol = rtol * max(float(np.max(np.abs(expected))), 1e-30) if atol is None else atol
    excess = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    if np.any(excess > 0):
        worst = int(np.argmax(excess))
        raise Problem(f"{what}: {actual.flat[worst]:.7g} where {expected.flat[worst]:.7g} was expected "
                      f"(rtol {rtol:g}, atol {atol:.3g})")
    return float(np.max(np.abs(actual - expected)))


def _compare_training(what, stats, expected, modules, reference_modules):
    """Statistics to float32 rounding; parameters to a fraction of lr, as Adam moves an element
    whose gradient is near ε by an amount that rounding decides (tests/test_fast_step.py)."""
    for key in expected:
        _compare(f"{what}, {key}", stats[key], expected[key], rtol=1e-4)
    for module, reference in zip(modules, reference_modules):
        for (name, p), q in zip(reference.named_parameters(), module.parameters()):
            _compare(f"{what}, parameter {name}", q.data, p.data, rtol=1e-4, atol=0.1 * LR)


def check_fused_step_on_cpu() -> str:
    """The NumPy fused step against gan.train_iteration, over two iterations."""
    from .fast import FusedTrainer

    (G, D), (G2, D2) = _players(), _players()
    opt_G, opt_D = gan.build_optimizers(REFERENCE, G, D)
    trainer = FusedTrainer(G2, D2)
    for seed in (1, 2):
        xs, zs = _batches(seed)
        expected = _autograd_iteration(G, D, opt_G, opt_D, xs, zs)
        stats = trainer.iteration(xs, zs)
    trainer.copy_to_modules()
    _compare_training("fused step (NumPy) against autograd", stats, expected, (G2, D2), (G, D))
    return "the same statistics and weights as autograd after 2 iterations"


def check_kernels_on_cuda(cupy, device) -> str:
    """Each fused kernel and a cuBLAS GEMM on the GPU against NumPy."""
    from .fast import cublas, kernels

    rng = np.random.default_rng(0)
    h, b = rng.standard_normal((33, 70)).astype(np.float32), rng.standard_normal(70).astype(np.float32)
    y = np.tanh(h)
    for name, args in (("bias_leaky_relu", (b, 0.2)), ("bias_tanh", (b,)), ("add_bias", (b,)),
                       ("leaky_relu_backward", (h, 0.2)), ("tanh_backward", (y,))):
        expected, actual = h.copy(), cupy.asarray(h)
        getattr(kernels, name)(expected, *args)
        getattr(kernels, name)(actual, *(cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in args))
        _compare(f"kernel {name}", actual, expected, rtol=1e-5)
    logits = (rng.standard_normal((300, 1)) * 10).astype(np.float32)
    target = rng.integers(0, 2, (300, 1)).astype(np.float32)
    weight = np.full((300, 1), 1 / 300, np.float32)
    grad, loss = np.empty_like(logits), np.empty(1, np.float32)
    kernels.bce_with_logits(logits, target, weight, grad, loss)
    grad_gpu, loss_gpu = cupy.empty_like(cupy.asarray(grad)), cupy.empty(1, cupy.float32)
    kernels.bce_with_logits(*(cupy.asarray(a) for a in (logits, target, weight)), grad_gpu, loss_gpu)
    _compare("kernel bce_with_logits (gradient)", grad_gpu, grad, rtol=1e-5)
    _compare("kernel bce_with_logits (loss)", loss_gpu, loss, rtol=1e-5)
    p, g = rng.standard_normal(1001).astype(np.float32), (rng.standard_normal(1001) * 1e-2).astype(np.float32)
    state = [p.copy(), np.zeros_like(p), np.zeros_like(p), kernels.adam_scalars(np, LR, (0.5, 0.999), 1e-8)]
    state_gpu = [cupy.asarray(a) for a in state[:3]] + [kernels.adam_scalars(cupy, LR, (0.5, 0.999), 1e-8)]
    for _ in range(3):
        kernels.adam(state[0], g, *state[1:])
        kernels.adam(state_gpu[0], cupy.asarray(g), *state_gpu[1:])
    _compare("kernel adam", state_gpu[0], state[0], rtol=1e-5)
    a, w = rng.standard_normal((64, 784)).astype(np.float32), rng.standard_normal((784, 256)).astype(np.float32)
    stream = cupy.cuda.Stream(non_blocking=True)
    linalg = cublas.Cublas(stream)
    with stream:
        out = cupy.empty((64, 256), cupy.float32)
        linalg.matmul(cupy.asarray(a), cupy.asarray(w), out)
    stream.synchronize()
    exact = a.astype(np.float64) @ w.astype(np.float64)
    # A sum of K float32 products is off by about eps·sqrt(K)·|C| (see tests/test_fast_cuda.py).
    _compare("cuBLAS GEMM", out, exact, rtol=0, atol=2 * np.finfo(np.float32).eps * np.sqrt(784) * np.abs(exact).max())
    return "5 elementwise kernels, bce_with_logits, Adam and a cuBLAS GEMM match NumPy"


def check_captured_step_on_cuda(cupy, device) -> str:
    """The fused step, captured into a CUDA graph and replayed, against autograd on the CPU."""
    from .fast import FusedTrainer

    (G, D) = _players()
    G2, D2 = copy.deepcopy(G).to(device), copy.deepcopy(D).to(device)
    opt_G, opt_D = gan.build_optimizers(REFERENCE, G, D)
    trainer = FusedTrainer(G2, D2, use_graph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a capture failure is reported below instead
        for seed in (1, 2, 3):  # eager warm-up, capture and launch, replay
            xs, zs = _batches(seed)
            expected = _autograd_iteration(G, D, opt_G, opt_D, xs, zs)
            stats = trainer.iteration([cupy.asarray(x) for x in xs], [cupy.asarray(z) for z in zs])
    if not trainer.captured:
        raise Problem(f"the fused step did not replay a CUDA graph: it ran {trainer.mode}")
    trainer.copy_to_modules()
    _compare_training("captured fused step against autograd on the CPU", stats, expected, (G2, D2), (G, D))
    return "replayed as a CUDA graph; the same statistics and weights as autograd on the CPU after 3 iterations"


def check_autograd_step_on_cuda(cupy, device) -> str:
    """gan.train_iteration on the GPU against the same on the CPU."""
    (G, D) = _players()
    G2, D2 = copy.deepcopy(G).to(device), copy.deepcopy(D).to(device)
    optimizers = gan.build_optimizers(REFERENCE, G, D), gan.build_optimizers(REFERENCE, G2, D2)
    xs, zs = _batches(1)
    expected = _autograd_iteration(G, D, *optimizers[0], xs, zs)
    stats = _autograd_iteration(G2, D2, *optimizers[1], xs, zs, device=device)
    _compare_training("autograd step on the GPU against the CPU", stats, expected, (G2, D2), (G, D))
    return "the same statistics and weights as on the CPU"


# --- the report ------------------------------------------------------------------------------------


def _print_rows(rows) -> None:
    for name, value in rows:
        print(f"{name:<12}{value}")


def run_checks(checks) -> str | None:
    """Run each (name, check) and print its outcome; return the first problem, or None."""
    first = None
    for name, check in checks:
        try:
            detail = check()
        except Problem as problem:
            detail, failed = f"FAILED: {problem}", str(problem)
        except Exception as error:  # a crash is a problem too, in one line
            failed = f"{name}: {type(error).__name__}: {' '.join(str(error).split())}"
            detail = f"FAILED: {failed}"
        else:
            failed = None
        print(f"  {name:<30}{detail}")
        first = first or failed
    return first


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minigan.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    args = parser.parse_args(argv)
    try:
        device = backend.usable_device(args.device)
    except backend.DeviceError as error:  # one clean line: what is missing, and why
        print(f"problem: {error}")
        return 1
    rows = environment()
    if device == "cpu":
        _print_rows(rows)
        print("checks:")
        problem = run_checks([("fused step (NumPy)", check_fused_step_on_cpu)])
    else:
        cupy = backend.import_cupy()
        device_id = backend.parse_device(device)[1]
        rows += cuda_environment(cupy, device_id)
        problem = None
        try:
            with cupy.cuda.Device(device_id):
                rows.append(cublas_line())
        except Exception as error:
            problem = f"libcublas: {type(error).__name__}: {' '.join(str(error).split())}"
            rows.append(("libcublas", f"FAILED: {problem}"))
        _print_rows(rows)
        print(f"checks on {device}:")
        with cupy.cuda.Device(device_id):
            checks = [(name, lambda check=check: check(cupy, device)) for name, check in (
                ("kernels and cuBLAS", check_kernels_on_cuda),
                ("fused step, CUDA graph", check_captured_step_on_cuda),
                ("autograd step", check_autograd_step_on_cuda))]
            problem = problem or run_checks(checks)
    print("ok" if problem is None else f"problem: {problem}")
    return 0 if problem is None else 1


if __name__ == "__main__":
    sys.exit(main())
