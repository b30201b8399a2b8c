"""Torch habits a newcomer brings, each answered as torch answers it (or refused in one line):
the version counter behind stale saved tensors, in-place operators, copying versus sharing,
transpose and permute, truth and comparison, .grad and requires_grad, retain_grad, grad mode per
thread and on generators, deepcopy and pickle, and a few numbers torch gets right."""


import numpy as np
import pytest

from minigan import Tensor


def leaf(data, dtype=np.float64):
    return Tensor(data, requires_grad=True, dtype=dtype)


def torch_leaf(array):
    torch = pytest.importorskip("torch")
    return torch.tensor(np.asarray(array, np.float64), requires_grad=True)


# --- retain_grad -----------------------------------------------------------------------------


def test_retain_grad_keeps_a_non_leafs_gradient_as_torch():
    a = np.array([[0.5, -1.0], [2.0, 3.0]])
    x = leaf(a)
    y = x * x
    y.retain_grad()
    z = y.sigmoid()
    z.retain_grad()
    z.sum().backward(retain_graph=True)
    z.sum().backward()  # a retained gradient accumulates, as a leaf's does
    tx = torch_leaf(a)
    ty = tx * tx
    ty.retain_grad()
    tz = ty.sigmoid()
    tz.retain_grad()
    tz.sum().backward(retain_graph=True)
    tz.sum().backward()
    np.testing.assert_allclose(y.grad, ty.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(z.grad, tz.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_retain_grad_on_a_leaf_is_a_no_op_and_needs_requires_grad():
    x = leaf([1.0, 2.0])
    x.retain_grad()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    y = x * 2
    assert y.grad is None  # not retained: only leaves keep a gradient by default
    with pytest.raises(RuntimeError, match="retain_grad: this tensor does not require grad"):
        Tensor([1.0]).retain_grad()
