"""benchmarks/gpu_verify.sh checked where no GPU is: its syntax, its stages and their time budgets
(--dry-run), and the one line it prints when CuPy is missing."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_verify.sh"
STAGES = ["doctor", "tests_fast", "bench", "mnist_fused", "mnist_autograd", "mnist_paper", "tests_rest"]
LIMIT = 420  # one device command of 8 minutes, less a minute for start-up checks and test collection

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(*args, env=None):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_the_script_parses():
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_dry_run_lists_every_stage_in_order_with_budgets_within_seven_minutes(tmp_path):
    result = run("--dry-run", env={"OUT": str(tmp_path / "out")})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"^  (\w+) +(\d+)s  (.+)$", result.stdout, flags=re.M)
    assert [name for name, _, _ in rows] == STAGES
    budgets = [int(seconds) for _, seconds, _ in rows]
    assert all(budget > 0 for budget in budgets)
    total = int(re.search(r"^total budget: (\d+)s", result.stdout, flags=re.M).group(1))
    assert total == sum(budgets) <= LIMIT
    assert not (tmp_path / "out").exists(), "a dry run must write nothing"


def test_dry_run_of_named_stages_and_an_unknown_stage():
    result = run("bench", "doctor", "--dry-run")
    assert re.findall(r"^  (\w+) ", result.stdout, flags=re.M) == ["bench", "doctor"]
    result = run("benchmark")
    assert result.returncode == 2
    assert result.stdout.strip() == ("gpu_verify: unknown stage 'benchmark'; the stages are: " + " ".join(STAGES)
                                     + " (or --dry-run)")


def test_without_cupy_one_line_names_the_install_step(tmp_path):
    stand_in = tmp_path / "site"
    stand_in.mkdir()
    (stand_in / "cupy.py").write_text("raise ImportError('no CuPy in this test')\n")
    result = run(env={"OUT": str(tmp_path / "out"), "PYTHON": sys.executable, "PYTHONPATH": str(stand_in)})
    assert result.returncode == 1
    assert result.stdout.strip() == ("gpu_verify: missing CuPy: pip install -e '.[cuda13]' (or '.[cuda12]', "
                                     "as nvidia-smi's CUDA Version says)")
