"""Bad inputs to Tensor, the layers, the loss and gradcheck: each is one line that names it.

Every message is checked whole, so that a change of wording is a decision, not an accident.
"""

import re

import numpy as np
import pytest

import minigan
from minigan import Tensor, gradcheck, nn


def message_of(error_type, call) -> str:
    with pytest.raises(error_type) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


# --- Tensor: numbers only -----------------------------------------------------------------------


class Thing:
    pass


@pytest.mark.parametrize("data, described", [
    (["1", "2"], "a list of str"),
    ([[1.0, 2.0], [3.0, "x"]], "a list of str"),
    ((1.0, None), "a tuple of NoneType"),
    ([1 + 2j], "a list of complex"),
    (None, "None"),
    (object, "the class object"),
    (Thing(), "an object of type Thing"),
    ("12", "'12' of type str"),
    ({"a": 1}, "{'a': 1} of type dict"),
    (np.array(["1", "2"]), "an array of dtype <U1"),
    (np.array([1 + 1j]), "an array of dtype complex128"),
])
def test_tensor_of_something_that_is_not_numbers(data, described):
    assert message_of(TypeError, lambda: Tensor(data)) == f"Tensor: expected numbers, got {described}"
    assert message_of(TypeError, lambda: Tensor(data, dtype=np.float64)) == f"Tensor: expected numbers, got {described}"


@pytest.mark.parametrize("op, name", [
    (lambda t, x: t + x, "add"), (lambda t, x: x - t, "sub"), (lambda t, x: t * x, "mul"), (lambda t, x: x / t, "div"),
])
def test_an_operand_that_is_not_numbers(op, name):
    t = Tensor([1.0, 2.0])
    assert message_of(TypeError, lambda: op(t, "3")) == f"{name}: expected numbers, got '3' of type str"
    assert message_of(TypeError, lambda: op(t, None)) == f"{name}: expected numbers, got None"


def test_numbers_of_every_kind_are_still_taken():
    assert Tensor([True, False]).dtype == np.float32
    assert Tensor(np.arange(3, dtype=np.int64)).dtype == np.float32
    assert Tensor(np.ones(2, np.float64)).dtype == np.float64
    assert Tensor([]).shape == (0,)
    np.testing.assert_array_equal(Tensor([[1, 2.5]]).data, np.array([[1, 2.5]], np.float32))


# --- one dtype rule for Tensors and arrays -------------------------------------------------------


@pytest.mark.parametrize("op, name, tensor_first", [
    (lambda t, x: t + x, "add", True), (lambda t, x: x + t, "add", False),
    (lambda t, x: t - x, "sub", True), (lambda t, x: x - t, "sub", False),
    (lambda t, x: t * x, "mul", True), (lambda t, x: x * t, "mul", False),
    (lambda t, x: t / x, "div", True), (lambda t, x: x / t, "div", False),
])
@pytest.mark.parametrize("mine, other", [(np.float32, np.float64), (np.float64, np.float32)])
def test_a_float_array_of_another_dtype_is_refused_like_a_tensor(op, name, tensor_first, mine, other):
    """The message names the dtypes in the order the operands are written."""
    t = Tensor(np.ones((2, 2), mine))
    left, right = (mine, other) if tensor_first else (other, mine)
    expected = f"{name}: dtypes {np.dtype(left)} and {np.dtype(right)} differ; convert one with .astype()"
    assert message_of(TypeError, lambda: op(t, Tensor(np.ones((2, 2), other)))) == expected
    assert message_of(TypeError, lambda: op(t, np.ones((2, 2), other))) == expected


def test_matmul_with_an_array_of_another_dtype():
    t = Tensor(np.ones((2, 2), np.float32))
    assert message_of(TypeError, lambda: t @ np.ones((2, 2))) == (
        "matmul: dtypes float32 and float64 differ; convert one with .astype()")
    assert message_of(TypeError, lambda: np.ones((2, 2)) @ t) == (
        "matmul: dtypes float64 and float32 differ; convert one with .astype()")


def test_scalars_ints_and_same_dtype_arrays_take_the_tensors_dtype():
    t = Tensor(np.ones(2, np.float32), requires_grad=True)
    for other in [2.0, 2, True, np.float64(2), np.int64(2), np.ones(2, np.float32), np.arange(2), [1.0, 2.0]]:
        for out in (t + other, other + t, t * other, t - other, other / t):
            assert out.dtype == np.float32, other
    out = (t * np.float64(3) + np.arange(2)).sum()
    out.backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad, [3.0, 3.0])


# --- layers and the loss -------------------------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Linear(0, 5), "Linear: in_features must be a positive integer, got 0"),
    (lambda: nn.Linear(5, -2), "Linear: out_features must be a positive integer, got -2"),
    (lambda: nn.Linear(2.0, 5), "Linear: in_features must be a positive integer, got 2.0"),
    (lambda: nn.Linear(3, 5, init_range=-0.1), "Linear: init_range must be a positive number, got -0.1"),
    (lambda: nn.Maxout(4, 3, 0), "Maxout: pieces must be a positive integer, got 0"),
    (lambda: nn.Maxout(4, 0, 5), "Maxout: units must be a positive integer, got 0"),
    (lambda: nn.Maxout(-1, 3, 5), "Maxout: in_features must be a positive integer, got -1"),
])
def test_layer_sizes_must_be_positive(make, message):
    assert message_of(ValueError, make) == message


def test_layer_sizes_may_be_numpy_ints():
    assert nn.Linear(np.int64(3), 2).weight.shape == (3, 2)


@pytest.mark.parametrize("target, shown", [
    (1.5, "1.5"), (-1, "-1"), (float("nan"), "nan"),
    (np.array([0.0, 1.0, -0.25]), "-0.25"),
    (np.array([0.0, 1.0, np.nan]), "nan"),
    (Tensor(np.array([2.0, 0.5, 0.5], np.float32)), "2"),
])
def test_bce_target_outside_zero_one(target, shown):
    logits = Tensor(np.zeros(3, np.float32), requires_grad=True)
    assert message_of(ValueError, lambda: nn.binary_cross_entropy_with_logits(logits, target)) == (
        f"binary_cross_entropy_with_logits: target must lie in [0, 1], got {shown}")


def test_bce_takes_targets_at_the_ends_of_the_range_and_any_float_array():
    logits = Tensor(np.zeros(2, np.float32), requires_grad=True)
    targets = (0, 1.0, np.array([0.0, 1.0]), np.array([0.0, 1.0], np.float32), Tensor(np.array([0.0, 1.0], np.float32)))
    for target in targets:
        loss = nn.binary_cross_entropy_with_logits(logits, target)
        assert loss.dtype == np.float32 and loss.item() == pytest.approx(np.log(2))


# --- gradcheck -----------------------------------------------------------------------------------


def test_gradcheck_of_a_function_that_returns_a_float():
    x = Tensor(np.ones(3), requires_grad=True)
    assert message_of(TypeError, lambda: gradcheck(lambda x: (x * 2).sum().item(), [x])) == (
        "gradcheck: the function must return a Tensor, got float; a float (from .item(), say) has no graph "
        "to differentiate")


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "3", True, None])
def test_manual_seed_refuses_what_no_generator_takes(seed):
    expected = f"manual_seed: the seed must be an integer in [0, 2**32), got {seed!r}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        minigan.manual_seed(seed)
    minigan.manual_seed(0)
    minigan.nn.Linear(2, 3)  # the generator still works afterwards
