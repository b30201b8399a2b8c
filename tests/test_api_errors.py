"""The Python API refuses what torch refuses, each time with one line that names the mistake.

Where torch makes a choice (it accepts SGD(momentum=2), an empty mean is nan), minigan makes the
same one. Without these checks each case fails silently, or with an error from deep inside NumPy
or Python that names something other than the mistake.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigan import gan, nn, optim, viz
from minigan.gradcheck import GradcheckError, gradcheck
from minigan.tensor import Tensor, _result, concatenate


def one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- modules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, message", [
    ("relu", "layer 1 is a str, not a Module"),
    (len, "layer 1 is a builtin_function_or_method, not a Module"),
    (nn.ReLU, "layer 1 is the class ReLU, not a Module; did you mean ReLU()?"),
])
def test_sequential_refuses_a_layer_that_is_not_a_module(bad, message):
    with pytest.raises(TypeError) as info:
        nn.Sequential(nn.Linear(3, 3), bad)
    assert one_line(info) == f"Sequential: {message}"


def test_linear_refuses_a_dtype_that_is_not_floating_point():
    with pytest.raises(TypeError) as info:
        nn.Linear(3, 2, dtype=np.int32)
    assert one_line(info) == "Linear: dtype must be a floating-point dtype (float32 or float64), got int32"
    with pytest.raises(TypeError, match="Maxout: dtype must be a floating-point dtype"):
        nn.Maxout(3, 2, pieces=2, dtype=np.int64)


def test_a_layer_shared_twice_lists_its_parameters_once_as_torch_does():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert [id(p) for p in model.parameters()] == [id(layer.weight), id(layer.bias)]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as torch's state_dict
    optim.Adam(model.parameters())  # no duplicate-parameter error


def test_named_parameters_lists_frozen_tensors_too():
    layer = nn.Linear(2, 2)
    layer.bias.requires_grad = False
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]


# --- tensors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.uint8])
def test_only_floating_point_tensors_can_require_grad(dtype):
    with pytest.raises(TypeError) as info:
        Tensor([1.5, 2.5], dtype=dtype, requires_grad=True)
    assert one_line(info) == (f"Tensor: only floating-point tensors can require gradients, "
                              f"got dtype {np.dtype(dtype)}")
    assert Tensor([1.5, 2.5], dtype=dtype).dtype == dtype  # as data, without a gradient, it is fine


@pytest.mark.parametrize("dtype, shown", [(np.complex64, "complex64"), (object, "object"), (str, "<U0")])
def test_a_tensor_dtype_must_be_numbers(dtype, shown):
    with pytest.raises(TypeError) as info:
        Tensor([1.0], dtype=dtype)
    assert one_line(info) == f"Tensor: dtype must be a real number type, got {shown}"


def test_an_unknown_dtype_names_the_tensor():
    with pytest.raises(TypeError) as info:
        Tensor([1.0], dtype="floot")
    assert one_line(info) == "Tensor: data type 'floot' not understood"


def test_dropout_p_must_be_a_number():
    with pytest.raises(ValueError) as info:
        nn.Dropout("0.5")
    assert one_line(info) == "Dropout: p must be in [0, 1), got '0.5'"


def test_requires_grad_must_be_a_bool():
    with pytest.raises(TypeError) as info:
        Tensor([1.0], requires_grad="yes")
    assert one_line(info) == "Tensor: requires_grad must be True or False, got 'yes'"


def test_a_ragged_list_names_the_tensor():
    with pytest.raises(ValueError) as info:
        Tensor([[1.0, 2.0], [3.0]])
    assert one_line(info) == "Tensor: the rows of a nested list must all have the same length"


def test_a_cast_to_an_integer_dtype_is_a_constant_as_in_torch():
    x = Tensor([1.5, 2.5], requires_grad=True)
    y = x.astype(np.int32)
    assert y.dtype == np.int32 and not y.requires_grad and y.is_leaf
    assert x.astype(np.float64).requires_grad


def test_concatenate_of_nothing():
    with pytest.raises(ValueError) as info:
        concatenate([])
    assert one_line(info) == "concatenate: expected a non-empty list of tensors"


def test_concatenate_of_something_that_is_not_a_tensor():
    with pytest.raises(TypeError) as info:
        concatenate([Tensor([1.0]), np.ones(1, np.float32)])
    assert one_line(info) == "concatenate: item 1 is a ndarray, not a Tensor"


def test_the_mean_of_nothing_is_nan_as_in_torch():
    x = Tensor(np.zeros((0,), np.float32), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no ZeroDivisionError or NumPy warning on the way
        y = x.mean()
    assert np.isnan(y.item()) and y.dtype == np.float32
    y.backward()
    assert x.grad.shape == (0,)
    rows = Tensor(np.zeros((3, 0), np.float32)).mean(axis=1)
    assert rows.shape == (3,) and np.isnan(rows.data).all()


@given(st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple), st.data())
def test_mean_of_any_shape_matches_numpy(shape, data):
    axis = data.draw(st.none() | st.integers(0, len(shape) - 1))
    values = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy warns on an empty slice
        expected = values.mean(axis=axis)
    np.testing.assert_array_equal(Tensor(values).mean(axis=axis).data, expected)


def test_fancy_indexing_with_a_repeated_index_sums_its_gradient():
    x = Tensor([1.0, 2.0, 3.0], dtype=np.float64, requires_grad=True)
    x[[0, 0, 2]].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 1.0])  # as torch: tensor([2., 0., 1.])


def test_boolean_mask_indexing_gradient():
    x = Tensor([1.0, -2.0, 3.0], dtype=np.float64, requires_grad=True)
    (x[x.data > 0] * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 2.0])


@pytest.mark.parametrize("state", [None, [("weight", np.ones((3, 2)))]])
def test_load_state_dict_needs_a_dict(state):
    with pytest.raises(TypeError) as info:
        nn.Linear(3, 2).load_state_dict(state)
    assert one_line(info) == f"load_state_dict: expected a dict of arrays by name, got {type(state).__name__}"
    with pytest.raises(TypeError) as info:
        optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1).load_state_dict(state)
    assert one_line(info) == f"SGD.load_state_dict: expected a dict of arrays by name, got {type(state).__name__}"


def test_bce_needs_tensor_logits():
    with pytest.raises(TypeError) as info:
        nn.binary_cross_entropy_with_logits(np.zeros(3, np.float32), 1.0)
    assert one_line(info) == "binary_cross_entropy_with_logits: logits must be a Tensor, got ndarray"


# --- optimizers --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [optim.Adam, lambda params: optim.SGD(params, lr=0.1)])
def test_an_optimizer_refuses_a_non_leaf_tensor(make):
    w = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError) as info:
        make([w * 2])
    assert one_line(info) == "can't optimize a non-leaf Tensor (parameter 0 was computed by mul)"


@pytest.mark.parametrize("make, name", [(optim.Adam, "Adam"), (lambda p: optim.SGD(p, lr=0.1), "SGD")])
def test_an_optimizer_given_a_module_says_to_pass_its_parameters(make, name):
    with pytest.raises(TypeError) as info:
        make(nn.Linear(3, 2))
    assert one_line(info) == f"{name}: got a Linear module; pass module.parameters()"


def test_an_optimizer_given_one_tensor_says_to_wrap_it_in_a_list():
    with pytest.raises(TypeError) as info:
        optim.Adam(Tensor([1.0, 2.0], requires_grad=True))
    assert one_line(info) == "Adam: params must be an iterable of Tensors, got one Tensor; pass [tensor]"


@pytest.mark.parametrize("bad, shown", [([[1.0]], "list"), ([np.ones(2)], "ndarray"), (5, None)])
def test_an_optimizer_refuses_what_is_not_a_tensor(bad, shown):
    with pytest.raises(TypeError) as info:
        optim.Adam(bad)
    if shown is None:
        assert one_line(info) == "Adam: params must be an iterable of Tensors, got int"
    else:
        assert one_line(info) == f"Adam: optimizer can only optimize Tensors, but parameter 0 is a {shown}"


def test_an_optimizer_refuses_a_parameter_listed_twice():
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError) as info:
        optim.SGD([w, Tensor([2.0], requires_grad=True), w], lr=0.1)
    assert one_line(info) == "SGD: parameter 2 is the same tensor as parameter 0; it would be stepped twice"


@pytest.mark.parametrize("lr", [None, "0.1", [0.1]])
def test_a_learning_rate_that_is_not_a_number(lr):
    with pytest.raises(TypeError) as info:
        optim.SGD([Tensor([1.0], requires_grad=True)], lr=lr)
    assert one_line(info) == f"Invalid learning rate: {lr!r} is not a number"


def test_betas_that_are_not_a_pair():
    with pytest.raises(ValueError) as info:
        optim.Adam([Tensor([1.0], requires_grad=True)], betas=0.5)
    assert one_line(info) == "Invalid betas: expected a pair (beta1, beta2), got 0.5"


def test_sgd_keeps_accepting_a_momentum_above_one_as_torch_does():
    w = Tensor([1.0], requires_grad=True)
    optim.SGD([w], lr=0.1, momentum=2)  # torch accepts it, so minigan does


# --- the GAN -----------------------------------------------------------------------------------


def _players():
    G = nn.Sequential(nn.Linear(2, 3))
    D = nn.Sequential(nn.Linear(3, 1))
    return G, D, optim.SGD(G.parameters(), lr=0.1), optim.SGD(D.parameters(), lr=0.1)


@pytest.mark.parametrize("iteration", [gan.train_iteration, gan.simultaneous_iteration])
@pytest.mark.parametrize("k", [0, -1, 1.5, True, "1"])
def test_k_must_be_a_positive_integer(iteration, k):
    G, D, opt_G, opt_D = _players()
    with pytest.raises((ValueError, TypeError)) as info:
        iteration(G, D, opt_G, opt_D, lambda: Tensor(np.ones((4, 3))), lambda: Tensor(np.ones((4, 2))), k, "minimax")
    assert one_line(info) == f"{iteration.__name__}: k must be an integer ≥ 1, got {k!r}"


@pytest.mark.parametrize("iteration", [gan.train_iteration, gan.simultaneous_iteration])
def test_an_unknown_loss_is_refused_before_any_player_moves(iteration):
    G, D, opt_G, opt_D = _players()
    before = [p.numpy() for p in D.parameters() + G.parameters()]
    with pytest.raises(ValueError) as info:
        iteration(G, D, opt_G, opt_D, lambda: Tensor(np.ones((4, 3), np.float32)),
                  lambda: Tensor(np.ones((4, 2), np.float32)), 1, "wasserstein")
    assert one_line(info) == f"{iteration.__name__}: unknown loss 'wasserstein'; use 'nonsaturating' or 'minimax'"
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(before, D.parameters() + G.parameters()))


# --- gradcheck ---------------------------------------------------------------------------------


def _x(values=(1.0, 2.0)):
    return Tensor(np.array(values), requires_grad=True)


@pytest.mark.parametrize("eps", [0, -1e-6, float("nan"), float("inf")])
def test_gradcheck_eps_must_be_a_positive_finite_number(eps):
    with pytest.raises(ValueError) as info:
        gradcheck(lambda a: a * 2, [_x()], eps=eps)
    assert one_line(info) == f"gradcheck: eps must be a positive finite number, got {eps!r}"


@pytest.mark.parametrize("name", ["atol", "rtol"])
def test_gradcheck_tolerances_must_not_be_negative(name):
    with pytest.raises(ValueError) as info:
        gradcheck(lambda a: a * 2, [_x()], **{name: -1.0})
    assert one_line(info) == f"gradcheck: {name} must be a non-negative number, got -1.0"


def test_gradcheck_of_no_inputs():
    with pytest.raises(ValueError) as info:
        gradcheck(lambda: Tensor([1.0]), [])
    assert one_line(info) == "gradcheck: no inputs to check"


def test_gradcheck_takes_one_tensor_as_torch_does():
    x = _x()
    assert gradcheck(lambda a: a * a, x)

    def wrong(a):  # 2a, whose backward says 3
        return _result(a.data * 2, (a,), "twice", lambda g: (g * 3,))

    with pytest.raises(GradcheckError):  # and really checks it
        gradcheck(wrong, x)


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_gradcheck_at_a_non_finite_input_fails(full, value, shown):
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: a * 2, [_x((1.0, value))], full=full)
    assert one_line(info) == f"gradcheck: input 0 holds a non-finite value, {shown} at index (1,)"


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")  # log(0), on purpose
def test_gradcheck_of_a_function_with_a_non_finite_gradient_fails(full):
    # log at 0: the output is -inf and so is the gradient; nothing can be compared.
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: a.log(), [_x((1.0, 0.0))], full=full)
    assert "non-finite" in str(info.value) and "inf" in str(info.value)


# --- viz ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("root, shown", [(None, "None"), (np.ones(3), "ndarray"), (3.0, "float")])
def test_to_dot_needs_a_tensor(root, shown):
    with pytest.raises(TypeError) as info:
        viz.to_dot(root)
    assert one_line(info) == f"to_dot: expected the Tensor whose graph to draw, got {shown}"


def test_render_needs_dot_text(tmp_path):
    with pytest.raises(TypeError) as info:
        viz.render(Tensor([1.0]), str(tmp_path / "graph.dot"))
    assert one_line(info) == "render: expected DOT text (a str, from to_dot), got Tensor"
    assert not (tmp_path / "graph.dot").exists()
