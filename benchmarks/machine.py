"""What machine a benchmark ran on, and which BLAS kernels ran, for its results file.

The same code can time very differently on two machines with the same core count: NumPy's
OpenBLAS picks its kernel from the CPU at load time unless OPENBLAS_CORETYPE pins one, and torch's
MKL and ATen pick theirs independently. These functions record what each library reports, so that
a results file says what ran.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

# Environment variables that change what a BLAS or OpenMP runtime does (kernel, threads, caches).
# ATEN_CPU_CAPABILITY pins torch's vectorised kernels the way OPENBLAS_CORETYPE pins OpenBLAS's.
BLAS_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "GOTO", "BLIS", "ATEN_CPU_CAPABILITY")
# The variables that choose a kernel instead of the one the library would detect.
KERNEL_PINNING = {"OPENBLAS_CORETYPE": "NumPy's OpenBLAS", "MKL_DEBUG_CPU_TYPE": "torch's MKL",
                  "MKL_ENABLE_INSTRUCTIONS": "torch's MKL", "ATEN_CPU_CAPABILITY": "torch's ATen"}
# The /proc/cpuinfo flags that decide which GEMM kernels a CPU can run.
VECTOR_FLAGS = re.compile(r"^(sse4_2|avx|avx2|fma|f16c|avx512.*|avx_vnni|amx.*)$")


def _cpuinfo_fields(path="/proc/cpuinfo") -> dict:
    """The first processor's fields in /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def cpu_description(path="/proc/cpuinfo") -> dict:
    """The CPU's model, vendor, family/model numbers and vector extensions (from /proc/cpuinfo)."""
    fields = _cpuinfo_fields(path)
    flags = fields.get("flags", "").split()
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "vendor": fields.get("vendor_id"), "family": fields.get("cpu family"),
            "model_number": fields.get("model"), "cache": fields.get("cache size"),
            "vector_extensions": sorted(f for f in flags if VECTOR_FLAGS.match(f))}


def blas_environment(environ=None) -> dict:
    """Every BLAS/OpenMP environment variable that is set, by name."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in sorted(environ.items()) if name.startswith(BLAS_ENV_PREFIXES)}


def pinned_kernels(environment: dict) -> list[str]:
    """Which library's kernel an environment variable chose, e.g. "NumPy's OpenBLAS kernel pinned
    by OPENBLAS_CORETYPE=Haswell"; [] when every library picks its own."""
    return [f"{library} kernel pinned by {name}={environment[name]}"
            for name, library in KERNEL_PINNING.items() if name in environment]


def numpy_blas() -> dict:
    """NumPy's BLAS as threadpoolctl reports it: library, version, kernel architecture, threads.

    threadpoolctl lists every BLAS loaded in the process; NumPy's is the one in NumPy's own
    folders (numpy.libs for a wheel), else the first OpenBLAS, MKL or BLIS it finds.
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"error": "threadpoolctl is not installed (pip install -e \".[bench]\")"}
    import numpy

    numpy_dir = os.path.dirname(os.path.dirname(numpy.__file__))
    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    ours = [info for info in blas if os.path.basename(os.path.dirname(info.get("filepath", ""))) == "numpy.libs"
            or info.get("filepath", "").startswith(os.path.join(numpy_dir, "numpy"))]
    if not ours and not blas:
        return {"error": "threadpoolctl found no BLAS library loaded"}
    info = (ours or blas)[0]
    return {"library": info.get("internal_api"), "version": info.get("version"),
            "architecture": info.get("architecture"), "threads": info.get("num_threads"),
            "threading_layer": info.get("threading_layer"), "file": os.path.basename(info.get("filepath", ""))}


def torch_blas(torch) -> dict:
    """torch's BLAS and vector kernels: what torch.__config__.show() says it was built with, the
    CPU capability ATen chose at run time, and the banner MKL prints about its code path."""
    shown = torch.__config__.show()

    def find(pattern):
        found = re.search(pattern, shown)
        return found.group(1).strip() if found else None

    description = {"blas": find(r"BLAS_INFO=(\w+)"),
                   "mkl": find(r"Math Kernel Library Version ([^\n]+?)(?:-Product|\n)"),
                   "onednn": find(r"MKL-DNN (v[\d.]+)"),
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "cpu_capability_usage": find(r"CPU capability usage: (\w+)"),
                   "threads": torch.get_num_threads()}
    if description["mkl"]:
        description["mkl_verbose_banner"] = mkl_banner()
    return description


def mkl_banner(timeout=60) -> str | None:
    """The first line MKL_VERBOSE=1 prints in a fresh process running one torch.mm: MKL's version
    and, on Intel CPUs, the instruction set of the code path it chose (on other CPUs it names
    none)."""
    code = "import torch; a = torch.ones(8, 8); torch.mm(a, a)"
    try:
        done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "MKL_VERBOSE": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in done.stdout.splitlines() if line.startswith("MKL_VERBOSE") and "SGEMM" not in line]
    return lines[0].removeprefix("MKL_VERBOSE").strip() if lines else None


def blas_header(numpy_info: dict, torch_info: dict | None, environment: dict) -> list[str]:
    """The lines a benchmark prints about its BLAS kernels and variables; a pinned kernel is said
    in the first line."""
    if "error" in numpy_info:
        numpy_part = f"NumPy BLAS unknown ({numpy_info['error']})"
    else:
        numpy_part = (f"NumPy {numpy_info['library']} {numpy_info['version']} kernel {numpy_info['architecture']}, "
                      f"{numpy_info['threads']} threads")
    pins = pinned_kernels(environment)
    lines = [f"BLAS: {numpy_part}" + (f" [PINNED: {'; '.join(pins)}]" if pins else " [kernels as detected]")]
    if torch_info is not None:
        lines.append(f"torch: BLAS {torch_info['blas']} {torch_info.get('mkl') or ''}".rstrip()
                     + f", CPU capability {torch_info['cpu_capability']}, {torch_info['threads']} threads")
    lines.append("BLAS/OpenMP environment: " + (" ".join(f"{k}={v}" for k, v in environment.items()) or "none set"))
    return lines
