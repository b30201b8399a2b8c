"""What this machine has, and whether minigan computes correctly on it, in a few seconds.

    python -m minigan.doctor                  # the CPU: NumPy's fused step against autograd
    python -m minigan.doctor --device cuda    # CuPy, CUDA, the GPU; kernels, a captured step, autograd

Like torch.utils.collect_env, it first prints the versions a bug report needs: Python, NumPy and
the BLAS it was built with and has loaded, CuPy, the CUDA runtime and driver, the CUDA libraries
CuPy and the fused step load (NVRTC, cuBLAS, cuRAND), the GPU and its memory, and the libcublas
the fused step loaded. Then it runs a few small computations on the device and compares each with
the CPU. The last line is `ok`, or `problem: ...` naming the first problem, and the exit status is
non-zero on a problem.

Before any check on CUDA it tells apart what can be wrong with the setup, each with what to do:
a CUDA library missing (and the pip command that installs it), a CuPy wheel built for a newer
CUDA than the driver supports (and the extra to install instead), and no GPU at all.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import importlib.metadata
import os
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


# The CUDA libraries minigan needs beside the driver: (row name, cuda-pathfinder's name, what for).
# NVIDIA ships each as a pip wheel; cuda-toolkit[<extra>]==<major>.* installs the one of a CUDA major.
CUDA_LIBRARIES = (("NVRTC", "nvrtc", "CuPy compiles minigan's kernels with it"),
                  ("cuBLAS", "cublas", "the GEMMs of both engines"),
                  ("cuRAND", "curand", "noise drawn on the GPU"))


def _version(v: int) -> str:
    """A CUDA version number as CUDA writes it: 13020 -> '13.2'."""
    return f"{v // 1000}.{v % 1000 // 10}"


def cupy_cuda_major(cupy) -> int | None:
    """The CUDA major version this CuPy was built for (it needs no driver to say), or None."""
    try:
        return cupy.cuda.runtime.runtimeGetVersion() // 1000
    except Exception:  # the wheel's name says it too
        for major in (13, 12, 11):
            try:
                importlib.metadata.version(f"cupy-cuda{major}x")
                return major
            except importlib.metadata.PackageNotFoundError:
                continue
    return None


def install_command(major, extra: str) -> str:
    return f"pip install 'cuda-toolkit[{extra}]=={major}.*' (or pip install -e '.[cuda{major}]')"


def _soname(name: str, major: int) -> str:
    return "libcurand.so.10" if name == "curand" else f"lib{name}.so.{major}"


def find_cuda_library(name: str, major: int) -> str:
    """Load CUDA library `name` ("nvrtc", "cublas", "curand") of CUDA `major` and return its path,
    found as CuPy 14 finds it (cuda-pathfinder: pip wheels, conda, CUDA_HOME), else by its soname
    through the dynamic loader. OSError if neither finds it."""
    soname = _soname(name, major)
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        path = load_nvidia_dynamic_lib(name).abs_path
        if path and os.path.basename(path).startswith(soname):
            return path
    except Exception:  # no cuda-pathfinder, or it found nothing: ask the loader
        pass
    ctypes.CDLL(soname)
    return (_loaded_libraries(soname) or [soname])[0]


def cuda_setup(cupy) -> tuple[list[tuple[str, str]], str | None]:
    """Rows on CuPy's CUDA, the driver and the CUDA libraries, and the first problem with them:
    a CuPy wheel newer than the driver, a missing library, or no GPU (in that order). Needs no GPU."""
    rows, problems = [("cupy", getattr(cupy, "__version__", "unknown"))], []
    major = cupy_cuda_major(cupy)
    try:
        driver = cupy.cuda.runtime.driverGetVersion()
    except Exception:  # no libcuda: CuPy reports it as an error on some versions, as 0 on others
        driver = 0
    try:
        runtime = f"runtime {_version(cupy.cuda.runtime.runtimeGetVersion())}"
    except Exception:
        runtime = f"CuPy for CUDA {major}" if major else "CuPy's CUDA version unknown"
    rows.append(("CUDA", f"{runtime}, driver " + (f"supports up to {_version(driver)}" if driver else "not found")))
    if driver and major and driver // 1000 < major:
        wanted = driver // 1000
        problems.append(f"this CuPy (cupy-cuda{major}x) needs a driver for CUDA {major}, but the driver supports "
                        f"CUDA {_version(driver)}: pip uninstall cupy-cuda{major}x, then pip install -e "
                        f"'.[cuda{wanted}]' (or update the NVIDIA driver)")
    for label, name, purpose in CUDA_LIBRARIES:
        if major is None:
            break
        try:
            rows.append((label, find_cuda_library(name, major)))
        except OSError:
            rows.append((label, f"MISSING ({_soname(name, major)}; {purpose})"))
            problems.append(f"{label} ({_soname(name, major)}) is not installed; {purpose}: "
                            f"{install_command(major, name)}")
    try:
        rows.append(("NVRTC/CuPy", "CuPy loads NVRTC %d.%d" % tuple(cupy.cuda.nvrtc.getVersion())))
    except Exception as error:
        rows.append(("NVRTC/CuPy", f"FAILED: {type(error).__name__}: {' '.join(str(error).split())}"))
        if not any(problem.startswith("NVRTC") for problem in problems):
            problems.append(f"CuPy cannot load NVRTC ({type(error).__name__}: {' '.join(str(error).split())}): "
                            f"{install_command(major, 'nvrtc')}")
    if driver == 0:
        problems.append("no NVIDIA driver here (libcuda.so.1 not found): this machine has no GPU that CUDA can use")
    elif not problems:
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as error:
            count, detail = 0, f" ({type(error).__name__}: {' '.join(str(error).split())})"
        else:
            detail = ""
        if count == 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            problems.append(f"the NVIDIA driver (CUDA {_version(driver)}) sees no GPU{detail}"
                            + (f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""))
    return rows, (problems[0] if problems else None)


def cuda_environment(cupy, device_id: int) -> list[tuple[str, str]]:
    rows = []
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


# How far float32 weights trained for a few iterations by two implementations (two devices, two
# GEMM libraries) may drift apart, in units of lr: Adam moves every element by about lr per step
# whatever its gradient's size, so a rounding difference in a gradient shows up as a fraction of
# lr. tests/test_gemm_rounding.py derives these numbers by rounding the fused step's GEMMs as a
# GPU may: GEMM rounding alone moved no element by more than 0.02·lr in 4 iterations, so DRIFT
# holds every element but a few. The few sit downstream of a LeakyReLU input so close to 0 that
# rounding decided its sign (a "kink flip": that row's derivative is 1 in one run and the slope
# in the other); they moved by up to 0.42·lr and were at most 0.1% of a parameter's elements.
DRIFT = 0.1
KINK_DRIFT = 1.0
KINK_SHARE = 1e-3  # of a parameter's elements (at least KINK_LEAST) may drift up to KINK_DRIFT·lr
KINK_LEAST = 2
PARAMETER_RTOL = 1e-4


def parameter_drift(actual, expected, lr) -> str | None:
    """None if float32 parameters `actual` agree with `expected` as two implementations of the
    same training should (see DRIFT above), else one line saying how they do not."""
    actual, expected = backend.to_numpy(actual).astype(np.float64), backend.to_numpy(expected).astype(np.float64)
    if actual.shape != expected.shape:
        return f"shape {actual.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(actual)):
        return "not finite"
    drift = (np.abs(actual - expected) - PARAMETER_RTOL * np.abs(expected)) / lr
    beyond = int(np.count_nonzero(drift > DRIFT))
    allowed = max(KINK_LEAST, int(KINK_SHARE * drift.size))
    worst = int(np.argmax(drift))
    if drift.flat[worst] > KINK_DRIFT or beyond > allowed:
        return (f"{beyond} of {drift.size} elements drifted more than {DRIFT:g}·lr (at most {allowed} may, "
                f"each by at most {KINK_DRIFT:g}·lr); the worst by {drift.flat[worst]:.3g}·lr: "
                f"{actual.flat[worst]:.7g} where {expected.flat[worst]:.7g} was expected")
    return None


def _compare_training(what, stats, expected, modules, reference_modules):
    """Statistics to float32 rounding; parameters as parameter_drift allows."""
    for key in expected:
        _compare(f"{what}, {key}", stats[key], expected[key], rtol=1e-4)
    for module, reference in zip(modules, reference_modules):
        for (name, p), q in zip(reference.named_parameters(), module.parameters()):
            problem = parameter_drift(q.data, p.data, LR)
            if problem:
                raise Problem(f"{what}, parameter {name}: {problem}")


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
    trainer = FusedTrainer(G2, D2, cuda_graph=True)
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


def _import_cupy():
    """CuPy, imported without asking for a GPU (cuda_setup says what is wrong with the setup);
    backend.DeviceError, one line, if it is not installed or fails to import."""
    try:
        import cupy
    except ImportError:
        backend.import_cupy()  # raises the DeviceError that says what is missing
        raise
    return cupy


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
        device = backend.normalize_device(args.device)
        cupy = None if device == "cpu" else _import_cupy()
    except backend.DeviceError as error:  # one clean line: what is missing, and why
        print(f"problem: {error}")
        return 1
    rows = environment()
    if device == "cpu":
        _print_rows(rows)
        print("checks:")
        problem = run_checks([("fused step (NumPy)", check_fused_step_on_cpu)])
    else:
        setup_rows, problem = cuda_setup(cupy)
        rows += setup_rows
        device_id = backend.parse_device(device)[1]
        if problem is None and device_id >= cupy.cuda.runtime.getDeviceCount():
            problem = f"{device} was asked for, but this machine has {cupy.cuda.runtime.getDeviceCount()} GPU(s)"
        if problem is not None:  # nothing on the GPU can run: say what to do
            _print_rows(rows)
            print(f"problem: {problem}")
            return 1
        rows += cuda_environment(cupy, device_id)
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
