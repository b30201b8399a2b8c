"""Every error a user can hit says what went wrong in terms they can act on."""

import re

import numpy as np
import pytest

import minigan
from minigan import DeviceError, GradcheckError, Tensor, backend, concatenate, gradcheck, nn
from minigan.tensor import _result

CUDA = backend.cuda_available()


def zeros(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype), requires_grad=True)


# --- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"),
    (lambda a, b: a - b, "sub"),
    (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div"),
])
def test_elementwise_shape_mismatch_names_the_op_and_both_shapes(op, name):
    with pytest.raises(ValueError, match=re.escape(f"{name}: shapes (2, 3) and (4, 5) do not broadcast")):
        op(zeros(2, 3), zeros(4, 5))
    with pytest.raises(ValueError, match=re.escape(f"{name}: shapes (3,) and (4,) do not broadcast")):
        op(zeros(3), np.ones(4, np.float32))


def test_matmul_shapes_do_not_align():
    with pytest.raises(ValueError, match=re.escape("matmul: shapes (128, 784) and (100, 256) do not align")):
        zeros(128, 784) @ zeros(100, 256)
    # Shapes that would align as NumPy's 1-d or batched matmul: the cause is the number of dims.
    with pytest.raises(ValueError, match=re.escape("matmul: takes 2-d tensors only, got shapes (3,) and (3, 2)")):
        zeros(3) @ zeros(3, 2)
    with pytest.raises(ValueError, match=re.escape("matmul: takes 2-d tensors only, got shapes (2, 2, 3) and (3, 2)")):
        zeros(2, 2, 3) @ zeros(3, 2)


def test_reshape_names_both_shapes():
    with pytest.raises(ValueError, match=re.escape("reshape: cannot reshape (2, 3) into (4,)")):
        zeros(2, 3).reshape(4)
    with pytest.raises(ValueError, match=re.escape("reshape: cannot reshape (2, 3) into (5, 2)")):
        zeros(2, 3).reshape((5, 2))


def test_concatenate_names_the_shapes_and_axis():
    with pytest.raises(ValueError, match=re.escape("concatenate: shapes [(2, 3), (2, 4)] do not fit along axis 0")):
        concatenate([zeros(2, 3), zeros(2, 4)], axis=0)


def test_linear_names_the_expected_input():
    layer = nn.Linear(784, 240)
    with pytest.raises(ValueError, match=re.escape("input (16, 100) does not fit weight (784, 240); "
                                                   "expected (batch, 784)")):
        layer(zeros(16, 100))
    with pytest.raises(ValueError, match=re.escape("input (784,) does not fit weight (784, 240); "
                                                   "expected (batch, 784)")):
        layer(zeros(784))


def test_bce_target_shape_mismatch():
    with pytest.raises(ValueError, match=re.escape("logits (4, 1) and target (4,) differ")):
        nn.binary_cross_entropy_with_logits(zeros(4, 1), np.ones(4))


# --- dtypes and bad arguments ---------------------------------------------------------------


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"),
    (lambda a, b: a * b, "mul"),
    (lambda a, b: a @ b, "matmul"),
    (lambda a, b: concatenate([a, b]), "concatenate"),
])
def test_dtype_mismatch_is_a_type_error(op, name):
    with pytest.raises(TypeError, match=re.escape(f"{name}: dtypes float32 and float64 differ")):
        op(zeros(2, 2), zeros(2, 2, dtype=np.float64))


def test_pow_needs_a_number_exponent():
    with pytest.raises(TypeError, match="pow: only a Python number"):
        zeros(2) ** zeros(2)


def test_dropout_p_out_of_range():
    with pytest.raises(ValueError, match=re.escape("Dropout: p must be in [0, 1), got 1")):
        nn.Dropout(1)


# --- devices ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tpu", "nvidia", "cuda:", "cuda:x", "cuda:-1", ""])
def test_unknown_device(name):
    with pytest.raises(DeviceError, match=re.escape(f"unknown device {name!r}: use 'cpu', 'cuda' or 'cuda:N'")):
        Tensor([1.0], device=name)
    with pytest.raises(DeviceError, match="unknown device"):
        nn.Linear(2, 2).to(name)


@pytest.mark.skipif(CUDA, reason="CUDA is available here, so asking for it is no error")
def test_cuda_without_cupy_says_what_to_install():
    for attempt in [lambda: backend.to_device(np.ones(2), "cuda"),
                    lambda: Tensor([1.0], device="cuda"),
                    lambda: nn.Linear(2, 2, device="cuda:0")]:
        with pytest.raises(DeviceError) as info:
            attempt()
        message = str(info.value)
        assert "device 'cuda' needs" in message and "cupy" in message.lower()
        try:
            import cupy  # noqa: F401
        except ImportError:
            assert "pip install" in message and "cupy-cuda12x" in message
    assert issubclass(DeviceError, RuntimeError)


@pytest.fixture
def second_device(monkeypatch):
    """Pretend that arrays in `on_gpu` live on cuda:0, to test the mixed-device checks on any machine."""
    on_gpu = []
    real = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda a: "cuda:0" if any(a is b for b in on_gpu) else real(a))
    return on_gpu


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"),
    (lambda a, b: a - b, "sub"),
    (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div"),
    (lambda a, b: a @ b, "matmul"),
    (lambda a, b: concatenate([a, b]), "concatenate"),
])
def test_mixed_devices_name_both(second_device, op, name):
    a, b = zeros(2, 2), zeros(2, 2)
    second_device.append(b.data)
    expected = f"{name}: tensors are on different devices, cpu and cuda:0; move one with .to()"
    with pytest.raises(DeviceError, match=re.escape(expected)):
        op(a, b)


def test_backward_grad_on_another_device(second_device):
    x = zeros(2)
    g = np.ones(2, np.float32)
    second_device.append(g)
    with pytest.raises(DeviceError, match=re.escape("backward: tensors are on different devices, cpu and cuda:0")):
        (x * 2).backward(g)


# --- backward and item --------------------------------------------------------------------


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="backward: this tensor does not require grad"):
        Tensor([1.0, 2.0]).sum().backward()


def test_backward_needs_an_explicit_grad_for_a_non_scalar():
    expected = "backward: grad can be implied only for a one-element tensor, not shape (2, 3)"
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        (zeros(2, 3) * 2).backward()


def test_backward_grad_of_the_wrong_shape():
    with pytest.raises(ValueError, match=re.escape("backward: grad shape (3,) does not match tensor shape (2,)")):
        (zeros(2) * 2).backward(np.ones(3))


def test_item_needs_one_element():
    expected = "item: only a tensor with one element has an item, this one has shape (2, 2)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        zeros(2, 2).item()
    assert Tensor([[3.5]]).item() == 3.5


# --- gradcheck ----------------------------------------------------------------------------


def test_gradcheck_wants_float64_inputs_that_require_grad():
    with pytest.raises(TypeError, match="input 0 must be a float64 Tensor with requires_grad=True"):
        gradcheck(lambda x: x * 2, [zeros(3)])  # float32
    with pytest.raises(TypeError, match="input 1 must be a float64 Tensor"):
        gradcheck(lambda x, y: x * y, [zeros(3, dtype=np.float64), Tensor(np.zeros(3))])


def wrong_double(x):
    """2x whose backward claims the derivative is 3."""
    return _result(x.data * 2, (x,), "bad", lambda g: (g * 3,))


@pytest.mark.parametrize("full", [False, True])
def test_gradcheck_reports_a_wrong_backward(full):
    x = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True, dtype=np.float64)
    with pytest.raises(GradcheckError) as info:
        gradcheck(wrong_double, [x], full=full)
    message = str(info.value)
    assert "numeric" in message and "analytic" in message and "direction" in message
    assert "input 0 shape (3,)" in message
    if full:
        assert "input 0, element 0" in message
        # Numeric 2 x u, analytic 3 x u, for the same random output weighting u.
        numeric, analytic = (float(v) for v in re.search(r"numeric (\S+) vs analytic (\S+) ", message).groups())
        assert analytic == pytest.approx(1.5 * numeric, rel=1e-6)
    else:
        assert "random direction" in message
    assert isinstance(info.value, AssertionError)
    # The right rule passes the same check.
    assert gradcheck(lambda x: x * 2, [x], full=full)


def test_the_public_names_exist():
    assert minigan.GradcheckError is GradcheckError and minigan.DeviceError is DeviceError


def test_affine_names_what_does_not_fit():
    from minigan.tensor import affine

    x, w = Tensor(np.ones((2, 3))), Tensor(np.ones((3, 4)))
    with pytest.raises(ValueError, match=re.escape("affine: input (2, 3) does not fit weight (4, 4); "
                                                   "expected (batch, 4)")):
        affine(x, Tensor(np.ones((4, 4))), Tensor(np.ones(4)))
    with pytest.raises(ValueError, match=re.escape("affine: bias shape (3,) does not match 4 outputs")):
        affine(x, w, Tensor(np.ones(3)))
    np.testing.assert_array_equal(affine(x, w, Tensor(np.arange(4.0))).data, x.data @ w.data + np.arange(4.0))
