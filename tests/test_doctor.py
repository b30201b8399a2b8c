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


@pytest.mark.gpu
def test_cuda_report_and_checks_pass(capsys):
    assert doctor.main(["--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "ok"
    for name in ("cupy", "CUDA", "GPU 0", "libcublas"):
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert "replayed as a CUDA graph" in out
