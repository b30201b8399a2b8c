"""The CUDA paths of the scripts, end to end on a CPU, with tests/cupy_stand_in.py in CuPy's place.

The device-parametrized tests elsewhere already run on the stand-in (conftest's `device`
fixture); these run what a user runs with `--device cuda`: training (the readable engine),
resuming, evaluating. The stand-in computes with NumPy, so a run on it must match the CPU run
exactly: any difference is the device plumbing's. The fused engine needs real CUDA (`gpu` tests).
"""

import json

import numpy as np
import pytest
from cupy_stand_in import installed  # tests/cupy_stand_in.py
from test_evaluate import tiny_world, write_reference_checkpoint  # noqa: F401 (a fixture, and a helper)
from test_mnist_example import idle_machine, params, script, tiny_mnist  # noqa: F401 (fixtures)

from minigan import DeviceError, Tensor, backend, evaluate, run
from minigan.tensor import reshape

pytestmark = pytest.mark.skipif(backend.cuda_available(), reason="the real CuPy runs the gpu tests here")


def test_the_stand_in_refuses_what_cupy_refuses(monkeypatch):
    with installed(monkeypatch) as cupy:
        a = cupy.asarray(np.ones(3, np.float32))
        assert backend.device_of(a) == "cuda:0" and backend.array_module(a) is cupy
        with pytest.raises(TypeError, match="Unsupported type"):
            a + np.ones(3, np.float32)
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
            np.asarray(a)
        assert isinstance(a.get(), np.ndarray)
        # So minigan's checks meet it as they would meet CuPy: a host array beside a device tensor.
        with pytest.raises(DeviceError, match="tensors are on different devices, cuda:0 and cpu"):
            Tensor(a) + np.ones(3, np.float32)
        assert reshape(Tensor(a), (3, 1)).device == "cuda:0"


@pytest.mark.parametrize("config", ["reference", "paper"])
def test_training_with_device_cuda_matches_the_cpu_and_resumes_exactly(script, tiny_mnist, tmp_path, monkeypatch,
                                                                       capsys, config):
    base = ["--data-dir", str(tiny_mnist), "--config", config, "--batch-size", "24", "--log-every", "3"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "cpu"), "--epochs", "2"]) == 0
    with installed(monkeypatch):
        cuda = [*base, "--device", "cuda", "--engine", "autograd"]
        assert run.guarded(script.main, [*cuda, "--out", str(tmp_path / "straight"), "--epochs", "2"]) == 0
        assert run.guarded(script.main, [*cuda, "--out", str(tmp_path / "split"), "--epochs", "1"]) == 0
        assert run.guarded(script.main, [*cuda, "--out", str(tmp_path / "split"), "--epochs", "2",
                                         "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
    assert capsys.readouterr().out.count("device cuda:0, autograd engine") == 3
    on_cpu, straight, split = (params(tmp_path / name / "checkpoint.npz") for name in ("cpu", "straight", "split"))
    assert on_cpu.keys() == straight.keys() == split.keys()
    assert int(straight["meta.step"]) == 8  # 96 rows // 24 = 4 iterations per epoch
    for key in on_cpu:
        assert np.array_equal(straight[key], on_cpu[key]), key
        assert np.array_equal(split[key], straight[key]), key


def test_evaluate_with_device_cuda_matches_the_cpu(tmp_path, tiny_world, monkeypatch):
    checkpoint = write_reference_checkpoint(tmp_path / "run" / "checkpoint.npz")
    result = tmp_path / "run" / "checkpoint.evaluation.json"
    flags = [str(checkpoint), "--samples", "200", "--test-size", "80", "--seed", "3"]
    assert evaluate.run(flags) == 0
    on_cpu = json.loads(result.read_text())
    with installed(monkeypatch):
        assert evaluate.run([*flags, "--device", "cuda"]) == 0
    on_cuda = json.loads(result.read_text())
    for row in ("model", "real_train_digits"):
        for key in ("fid", "inception_score", "classes_covered", "class_histogram"):
            assert on_cuda[row][key] == pytest.approx(on_cpu[row][key], rel=1e-9), (row, key)
        parzen, expected = on_cuda[row]["parzen"], on_cpu[row]["parzen"]
        for key in ("log_likelihood", "standard_error", "sigma", "validation_log_likelihood"):
            assert parzen[key] == pytest.approx(expected[key], rel=1e-9), (row, key)
