"""Devices, array modules, seeding and host copies."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigan import DeviceError, Tensor, backend, manual_seed, nn

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, expected", [
    ("cpu", ("cpu", 0)),
    ("CPU", ("cpu", 0)),
    (" cpu ", ("cpu", 0)),
    ("cuda", ("cuda", 0)),
    ("cuda:0", ("cuda", 0)),
    ("cuda:3", ("cuda", 3)),
    ("CUDA:12", ("cuda", 12)),
])
def test_parse_device(text, expected):
    assert backend.parse_device(text) == expected


@pytest.mark.parametrize("text, expected", [("cpu", "cpu"), ("Cpu", "cpu"), ("cuda", "cuda:0"), ("cuda:2", "cuda:2")])
def test_normalize_device(text, expected):
    assert backend.normalize_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "cuda0", "cuda:", "cuda:1.5", "cpu:0", None])
def test_parse_device_rejects(text):
    with pytest.raises(DeviceError, match="unknown device"):
        backend.parse_device(text)


def test_array_module_of_numpy_arrays_is_numpy():
    assert backend.array_module(np.ones(3)) is np
    assert backend.array_module(np.ones(3), np.float32(1.0), 2.0) is np
    assert backend.array_module() is np
    assert backend.device_of(np.ones(3)) == "cpu"
    assert Tensor(np.ones(3)).device == "cpu"
    backend.check_same_device("add", np.ones(2), np.ones(3))  # one device: no error


def test_cpu_code_never_imports_cupy():
    """The whole CPU path (ops, backward, layers, optimizers, gradcheck) runs without touching CuPy."""
    script = """
import sys
import numpy as np
import minigan
from minigan import Tensor, backend, concatenate, gradcheck, nn, optim

minigan.manual_seed(0)
x = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True, dtype=np.float64)
assert backend.array_module(x.data) is np
y = concatenate([x, x * 2], axis=1)
loss = ((y @ y.T).tanh().sum(axis=0) - 1).sigmoid().log().mean()
loss = loss + (x.exp().max(axis=1) / 3).softplus().sum() + (x[1:, :2].relu() ** 2).sum()
loss.backward()
model = nn.Sequential(nn.Maxout(3, 4, 2), nn.Dropout(0.5), nn.Linear(4, 1))
opt = optim.Adam(model.parameters())
nn.binary_cross_entropy_with_logits(model(x.astype(np.float32)), np.ones((4, 1))).backward()
opt.step()
optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
model.to("cpu").eval()
gradcheck(lambda t: t.tanh(), [x])
x.to("cpu").numpy()
assert "cupy" not in sys.modules, sorted(m for m in sys.modules if "cupy" in m)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_manual_seed_makes_everything_reproducible():
    def draw():
        layer = nn.Linear(4, 3)
        mask = nn.Dropout(0.5)(Tensor(np.ones((5, 5), np.float32))).numpy()
        return layer.weight.numpy(), layer.bias.numpy(), mask, backend.generator("cpu").random(3)

    manual_seed(123)
    first = draw()
    manual_seed(123)
    second = draw()
    manual_seed(124)
    third = draw()
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_dropout_draws_the_same_masks_on_every_device(device):
    # From the CPU generator everywhere: the checkpoint holds its state, so a resumed GPU run goes on
    # with the masks an uninterrupted one would draw.
    ones = np.ones((6, 7), np.float32)
    manual_seed(5)
    on_cpu = nn.Dropout(0.5)(Tensor(ones)).numpy()
    manual_seed(5)
    here = nn.Dropout(0.5)(Tensor(ones, device=device))
    assert here.device.startswith(device)
    np.testing.assert_array_equal(here.numpy(), on_cpu)
    assert 0 < np.count_nonzero(on_cpu) < on_cpu.size


def test_generator_is_shared_until_reseeded():
    manual_seed(1)
    rng = backend.generator("cpu")
    assert backend.generator("CPU") is rng
    manual_seed(1)
    assert backend.generator("cpu") is not rng


def test_set_generator_installs_a_saved_state():
    manual_seed(9)
    backend.generator("cpu").random(10)
    saved = backend.generator("cpu").bit_generator.state
    expected = backend.generator("cpu").random(4)
    restored = np.random.default_rng()
    restored.bit_generator.state = saved
    manual_seed(0)
    backend.set_generator("cpu", restored)
    np.testing.assert_array_equal(backend.generator("cpu").random(4), expected)


def test_to_numpy():
    a = np.arange(6.0).reshape(2, 3)
    assert backend.to_numpy(a) is a  # already on the host: no copy
    listed = backend.to_numpy([[1, 2], [3, 4]])
    assert isinstance(listed, np.ndarray) and listed.tolist() == [[1, 2], [3, 4]]
    t = Tensor(a)
    host = t.numpy()
    assert isinstance(host, np.ndarray) and host is not t.data
    host[0, 0] = 100.0  # Tensor.numpy() is a copy
    assert t.data[0, 0] == 0.0


def test_to_device_round_trip(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    moved = backend.to_device(a, device)
    assert backend.device_of(moved) == backend.normalize_device(device)
    assert backend.array_module(moved) is (np if device == "cpu" else sys.modules["cupy"])
    back = backend.to_numpy(moved)
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, a)


def test_tensor_keeps_float_dtypes_and_makes_others_float32():
    assert Tensor(np.ones(2, np.float64)).dtype == np.float64
    assert Tensor(np.ones(2, np.float32)).dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float32
    assert Tensor(np.array([True])).dtype == np.float32
    assert Tensor(3.0).dtype == np.float32
    assert Tensor([1.0], dtype=np.float64).dtype == np.float64
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.float64(3.0)).dtype == np.float64  # a NumPy scalar keeps its dtype


# --- why CUDA is unusable: the cause, not a guess ----------------------------------------------------


def refuse_import(monkeypatch, name, error):
    """Make `import name` raise `error`, whether or not the module is installed here."""
    import builtins

    real_import = builtins.__import__

    def fake_import(module, *args, **kwargs):
        if module == name or module.startswith(name + "."):
            raise error
        return real_import(module, *args, **kwargs)

    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_a_broken_cupy_is_reported_with_its_cause_not_as_missing(monkeypatch):
    refuse_import(monkeypatch, "cupy", ImportError("libcudart.so.13: cannot open shared object file"))
    with pytest.raises(DeviceError) as info:
        backend.import_cupy()
    message = str(info.value)
    assert "libcudart.so.13: cannot open shared object file" in message
    assert "not installed" not in message and "fails to import" in message
    assert "\n" not in message
    assert not backend.cuda_available()


def test_a_missing_cupy_says_not_installed_and_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ModuleNotFoundError(name="cupy")
    with pytest.raises(DeviceError) as info:
        backend.usable_device("cuda")
    message = str(info.value)
    assert "which is not installed" in message and ".[cuda12]" in message and ".[cuda13]" in message


def test_a_missing_module_inside_cupy_is_a_broken_install(monkeypatch):
    error = ModuleNotFoundError("No module named 'cupy_backends.cuda'", name="cupy_backends.cuda")
    refuse_import(monkeypatch, "cupy", error)
    message = r"fails to import \(ModuleNotFoundError: No module named 'cupy_backends.cuda'\)"
    with pytest.raises(DeviceError, match=message):
        backend.import_cupy()


@pytest.mark.parametrize("machine, expected", [
    (dict(driver=0), "device 'cuda' cannot be used: no NVIDIA driver here (libcuda.so.1 not found)"),
    (dict(driver=13000, devices=0), "device 'cuda' cannot be used: the NVIDIA driver (CUDA 13.0) sees no GPU"),
    (dict(driver=12080), "device 'cuda' cannot be used: this CuPy (cupy-cuda13x) needs a driver for CUDA 13, "
                         "but the driver supports CUDA 12.8"),
])
def test_no_usable_gpu_says_why_as_the_doctor_does(monkeypatch, machine, expected):
    from minigan import doctor
    from test_doctor import libraries, stand_in_cupy  # CUDA's own words would be "driver version is insufficient"

    cupy = stand_in_cupy(**machine)
    if machine.get("driver") == 12080:  # a driver too old for the wheel: CUDA calls that insufficient too
        cupy.cuda.runtime.getDeviceCount = lambda: (_ for _ in ()).throw(
            RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient"))
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(doctor, "find_cuda_library", libraries())
    with pytest.raises(backend.DeviceError) as info:
        backend.usable_device("cuda")
    assert str(info.value).startswith(expected) and "insufficient" not in str(info.value), str(info.value)


@pytest.mark.parametrize("devices, expected", [
    (1, "device 'cuda:1': this machine has 1 GPU, cuda:0"),
    (2, "device 'cuda:3': this machine has 2 GPUs, cuda:0 to cuda:1"),
])
def test_a_gpu_index_past_the_last_gpu_is_one_line(monkeypatch, devices, expected):
    from test_doctor import stand_in_cupy

    monkeypatch.setitem(sys.modules, "cupy", stand_in_cupy(devices=devices))
    with pytest.raises(DeviceError) as info:
        backend.usable_device(expected.split("'")[1])
    assert str(info.value) == expected
