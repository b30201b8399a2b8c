"""python -m minigan.doctor: the report, the CPU check, and one clean line when CUDA is missing."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigan import backend, doctor
from minigan.fast import kernels

ROOT = Path(__file__).resolve().parent.parent


def test_cpu_report_and_check_pass(capsys):
    assert doctor.main(["--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "ok"
    names = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert names[:4] == ["python", "platform", "minigan", "numpy"]
    assert any(line.startswith("numpy BLAS") for line in lines)
    assert any("fused step (NumPy)" in line and "the same statistics and weights" in line for line in lines)


def test_cpu_check_finds_a_wrong_fused_step(monkeypatch, capsys):
    """An Adam kernel fed a gradient 1.5 times too large: the doctor must say so and exit non-zero."""
    real_adam = kernels.adam

    def off_by_a_little(param, grad, exp_avg, exp_avg_sq, scalars, scratch=None):
        real_adam(param, grad * np.float32(1.5), exp_avg, exp_avg_sq, scalars, scratch)

    monkeypatch.setattr(kernels, "adam", off_by_a_little)
    assert doctor.main(["--device", "cpu"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("problem: fused step (NumPy) against autograd, ")


def test_a_crashing_check_is_a_problem_line(monkeypatch, capsys):
    def crash():
        raise RuntimeError("no\nluck")

    monkeypatch.setattr(doctor, "check_fused_step_on_cpu", crash)
    assert doctor.main([]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "problem: fused step (NumPy): RuntimeError: no luck"


def run_doctor(shim, *args):
    code = f"import runpy, sys; {shim}; sys.argv = ['minigan.doctor', *{list(args)!r}]; " \
           "runpy.run_module('minigan.doctor', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cuda_without_cupy_is_one_clean_line():
    result = run_doctor("sys.modules['cupy'] = None", "--device", "cuda")
    assert result.returncode == 1
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1
    line = result.stdout.strip()
    assert line.startswith("problem: device 'cuda' needs CuPy, which is not installed: pip install")


@pytest.mark.skipif(backend.cuda_available(), reason="CUDA is available here")
def test_cuda_with_a_broken_cupy_names_the_cause(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("libcudart.so.13: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    assert doctor.main(["--device", "cuda:0"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "fails to import (ImportError: libcudart.so.13: cannot open shared object file" in out


def stand_in_cupy(runtime=13020, driver=13000, devices=1, nvrtc=(13, 5)):
    """Enough of CuPy for the doctor's setup checks, on a machine as described."""
    import types

    def device_count():
        if driver == 0:
            raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")
        return devices

    def nvrtc_version():
        if nvrtc is None:
            raise OSError("libnvrtc.so.13: cannot open shared object file")
        return nvrtc

    runtime_api = types.SimpleNamespace(runtimeGetVersion=lambda: runtime, driverGetVersion=lambda: driver,
                                        getDeviceCount=device_count)
    return types.SimpleNamespace(__version__="14.2.0", cuda=types.SimpleNamespace(
        runtime=runtime_api, nvrtc=types.SimpleNamespace(getVersion=nvrtc_version)))


def libraries(missing=()):
    def find(name, major):
        if name in missing:
            raise OSError(f"lib{name}.so.{major}: cannot open shared object file")
        return f"/site-packages/nvidia/cu{major}/lib/lib{name}.so.{major}"
    return find


@pytest.mark.parametrize("machine, missing, expected", [
    # the driver-only machine after pip install -e '.[cuda13]', but with no GPU: only the GPU is missing
    (dict(driver=0), (), "problem: no NVIDIA driver here (libcuda.so.1 not found): this machine has no GPU"),
    (dict(driver=13000, devices=0), (), "problem: the NVIDIA driver (CUDA 13.0) sees no GPU"),
    # a cupy-cuda13x wheel on a driver for CUDA 12.8
    (dict(driver=12080), (), "problem: this CuPy (cupy-cuda13x) needs a driver for CUDA 13, but the driver supports "
                             "CUDA 12.8: pip uninstall cupy-cuda13x, then pip install -e '.[cuda12]'"),
    # only the CuPy wheel installed: NVRTC and cuBLAS missing, the first one named with its install command
    (dict(nvrtc=None), ("nvrtc", "cublas"), "problem: NVRTC (libnvrtc.so.13) is not installed; CuPy compiles "
                                            "minigan's kernels with it: pip install 'cuda-toolkit[nvrtc]==13.*'"),
    (dict(runtime=12090, driver=12090), ("cublas",), "problem: cuBLAS (libcublas.so.12) is not installed; the GEMMs "
                                                     "of both engines: pip install 'cuda-toolkit[cublas]==12.*'"),
])
def test_cuda_setup_problems_are_told_apart(monkeypatch, capsys, machine, missing, expected):
    monkeypatch.setitem(sys.modules, "cupy", stand_in_cupy(**machine))
    monkeypatch.setattr(doctor, "find_cuda_library", libraries(missing))
    assert doctor.main(["--device", "cuda"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(expected), lines[-1]
    rows = dict(line.split(None, 1) for line in lines[:-1])
    assert rows["cupy"] == "14.2.0"
    for label, name in (("NVRTC", "nvrtc"), ("cuBLAS", "cublas"), ("cuRAND", "curand")):
        assert ("MISSING" in rows[label]) == (name in missing), rows[label]


def test_a_gpu_index_past_the_last_gpu_is_a_problem(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", stand_in_cupy(devices=2))
    monkeypatch.setattr(doctor, "find_cuda_library", libraries())
    assert doctor.main(["--device", "cuda:2"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == \
        "problem: cuda:2 was asked for, but this machine has 2 GPU(s)"


@pytest.mark.gpu
def test_cuda_report_and_checks_pass(capsys):
    assert doctor.main(["--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "ok"
    for name in ("cupy", "CUDA", "GPU 0", "libcublas"):
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "replayed as a CUDA graph" in out
