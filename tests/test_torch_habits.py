"""Torch habits a newcomer brings, each answered as torch answers it (or refused in one line):
the version counter behind stale saved tensors, in-place operators, copying versus sharing,
transpose and permute, truth and comparison, .grad and requires_grad, retain_grad, grad mode per
thread and on generators, deepcopy and pickle, and a few numbers torch gets right."""

import copy
import pickle
import threading

import numpy as np
import pytest

import minigan
from minigan import Tensor, concatenate, no_grad, optim
from minigan.tensor import is_grad_enabled


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


# --- the version counter: stale saved tensors ---------------------------------------------------


def test_backward_refuses_a_weight_stepped_after_it_was_saved_as_torch():
    rng = np.random.default_rng(0)
    z0, w0 = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    z, W = leaf(z0), leaf(w0)
    out = z @ W
    l1, l2 = (out * out).sum(), out.sum()
    opt = optim.SGD([W], lr=0.1)
    l1.backward(retain_graph=True)
    opt.step()
    message = ("backward: an input of matmul (shape (3, 4)) was modified in place after it was saved "
               "for backward (version 0 → 1), e.g. by an optimizer step; compute the loss again after the step")
    with pytest.raises(RuntimeError) as caught:
        l2.backward()
    assert str(caught.value) == message
    torch = pytest.importorskip("torch")
    tz, tW = torch_leaf(z0), torch_leaf(w0)
    tout = tz @ tW
    tl1, tl2 = (tout * tout).sum(), tout.sum()
    tl1.backward(retain_graph=True)
    torch.optim.SGD([tW], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tl2.backward()


def test_the_message_names_a_parameter_that_has_a_name():
    W = leaf(np.ones((3, 2)))
    W.name = "D.0.weight"
    y = leaf(np.ones((1, 3))) @ W
    with no_grad():
        W -= 1.0
    with pytest.raises(RuntimeError, match=r"^backward: D\.0\.weight, an input of matmul \(shape \(3, 2\)\), was"):
        y.sum().backward()


def test_only_what_backward_reads_is_checked_as_torch():
    # x @ W with a constant x reads only x: stepping W afterwards is fine, as in torch. add saves nothing.
    x = Tensor(np.ones((2, 3)))
    W, b = leaf(np.ones((3, 2))), leaf(np.zeros(2))
    y = x @ W + b
    with no_grad():
        W -= 1.0
        b += 5.0
    y.sum().backward()
    np.testing.assert_array_equal(W.grad, np.full((3, 2), 2.0))
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])


@pytest.mark.parametrize("op", ["exp", "tanh", "sigmoid"])
def test_ops_that_save_their_output_check_its_version(op):
    x = leaf([0.5, 1.0])
    y = getattr(x, op)()
    with no_grad():
        y *= 2.0
    with pytest.raises(RuntimeError, match=rf"backward: the output of {op} \(shape \(2,\)\) was modified"):
        y.sum().backward()


def test_data_assignment_bumps_the_version_and_detach_shares_it():
    x = leaf([1.0, 2.0])
    assert x._version == 0
    d = x.detach()
    x.data = np.array([3.0, 4.0])
    assert x._version == d._version == 1
    x.data -= 1.0  # the optimizers' spelling: in place on the array, then the setter
    assert x._version == 2
    y = x * x
    d += 1.0  # d shares x's counter (though no longer its array, which was replaced)
    with pytest.raises(RuntimeError, match="version 2 → 3"):
        y.sum().backward()


# --- in-place operators -------------------------------------------------------------------------


def test_in_place_update_under_no_grad_changes_the_parameter_as_torch():
    p = leaf([1.0, 2.0, 3.0])
    (p * p).sum().backward()
    array = p.data
    with no_grad():
        p -= 0.1 * p.grad
    assert p.data is array  # written in place, not rebound
    np.testing.assert_allclose(p.data, [0.8, 1.6, 2.4])
    assert p.requires_grad and p.is_leaf and p._version == 1
    torch = pytest.importorskip("torch")
    tp = torch_leaf([1.0, 2.0, 3.0])
    (tp * tp).sum().backward()
    with torch.no_grad():
        tp -= 0.1 * tp.grad
    np.testing.assert_allclose(p.data, tp.detach().numpy())


def test_in_place_operators_broadcast_and_cast_into_self_as_torch():
    t = Tensor(np.ones((2, 3), np.float32))
    t += np.arange(3.0)  # float64 into float32, broadcast over rows
    t *= Tensor(np.float32(2.0))
    t /= 4
    t -= [[1.0], [0.0]]
    assert t.dtype == np.float32 and t.shape == (2, 3)
    np.testing.assert_array_equal(t.data, [[-0.5, 0.0, 0.5], [0.5, 1.0, 1.5]])
    with pytest.raises(ValueError, match=r"^\+=: shape \(2, 3\) would change shape \(3,\) in place$"):
        u = Tensor(np.ones(3))
        u += np.ones((2, 3))
    with pytest.raises(TypeError, match="^/=: the result cannot be stored in place in dtype int64$"):
        i = Tensor([1, 2], dtype=np.int64)
        i /= 2


def test_in_place_on_a_leaf_that_requires_grad_is_refused_as_torch():
    p = leaf([1.0])
    with pytest.raises(RuntimeError, match="^\\+=: a leaf tensor that requires grad cannot be changed in place"):
        p += 1
    np.testing.assert_array_equal(p.data, [1.0])
    tp = torch_leaf([1.0])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        tp += 1


def test_in_place_on_a_non_leaf_is_refused():
    # A deliberate difference: torch records it in the graph; minigan's graph has no in-place ops.
    y = leaf([1.0]) * 2
    with pytest.raises(RuntimeError, match=r"^\*=: minigan does not record in-place ops in the graph; write t = t \*"):
        y *= 3


# --- copying and sharing ----------------------------------------------------------------------


def test_tensor_copies_and_from_numpy_shares_as_torch():
    array = np.ones(3, np.float32)
    copied, shared = Tensor(array), minigan.from_numpy(array)
    array[0] = 5.0
    assert copied.data[0] == 1.0 and shared.data[0] == 5.0
    assert shared.dtype == np.float32 and not shared.requires_grad
    ints = np.arange(3)
    assert minigan.from_numpy(ints).data is ints  # its dtype kept, as torch.from_numpy
    with pytest.raises(TypeError, match="^from_numpy: expected a NumPy array, got list$"):
        minigan.from_numpy([1.0])


def test_an_optimizer_step_does_not_write_into_the_callers_array(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.ones(2, np.float32))
    on_disk = np.load(path, mmap_mode="r+")
    p = Tensor(on_disk, requires_grad=True)
    p.grad = np.ones(2, np.float32)
    optim.SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, [0.5, 0.5])
    np.testing.assert_array_equal(np.load(path), [1.0, 1.0])


def test_no_double_copy_when_the_dtype_changes():
    array = np.ones(3)  # float64 → float32 already copies
    t = Tensor(array, dtype=np.float32)
    assert t.data.base is None and not np.shares_memory(t.data, array)
    assert Tensor(t).data is not t.data


# --- transpose and permute ----------------------------------------------------------------------


def test_transpose_swaps_two_dims_as_torch():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = leaf(a)
    torch = pytest.importorskip("torch")
    for i, j in [(0, 1), (1, 2), (-1, 0), (2, 2)]:
        np.testing.assert_array_equal(x.transpose(i, j).data, torch.tensor(a).transpose(i, j).numpy())
    m = leaf(np.arange(6.0).reshape(2, 3))
    assert m.transpose(0, 1).shape == (3, 2)
    np.testing.assert_array_equal(m.transpose(0, 1).data, m.T.data)
    np.testing.assert_array_equal(x.permute(2, 0, 1).data, torch.tensor(a).permute(2, 0, 1).numpy())
    with pytest.raises(ValueError, match=r"^permute: \(0, 0, 1\) is not a permutation of the 3 dims of shape"):
        x.permute(0, 0, 1)
    with pytest.raises(IndexError, match="^transpose: dim 3 is out of range for a tensor of 3 dims$"):
        x.transpose(0, 3)


# --- truth, conversion, comparison ----------------------------------------------------------------


def test_truth_and_conversion_as_torch():
    assert bool(Tensor([0.0])) is False and bool(Tensor([[2.0]])) is True
    assert float(Tensor([2.5])) == 2.5 and int(Tensor([2.7])) == 2
    with pytest.raises(RuntimeError, match="^bool: the truth value of a tensor with 6 elements is ambiguous"):
        bool(Tensor(np.zeros((2, 3))))
    with pytest.raises(RuntimeError, match="with 0 elements is ambiguous"):
        bool(Tensor(np.zeros(0)))
    with pytest.raises(ValueError, match=r"^float: only a one-element tensor converts to a Python number, not shape"):
        float(Tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="^int: only a one-element tensor"):
        int(Tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="^iteration over a 0-d tensor$"):
        list(Tensor(2.0))
    with pytest.raises(TypeError, match="^len\\(\\) of a 0-d tensor$"):
        len(Tensor(2.0))
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert len(rows) == 3 and rows[2].data.tolist() == [4.0, 5.0]


def test_comparisons_return_boolean_arrays_and_hash_stays_by_identity():
    x = Tensor([1.0, 2.0, 3.0])
    equal = x == 2.0
    assert isinstance(equal, np.ndarray) and equal.dtype == bool
    assert equal.tolist() == [False, True, False]
    assert (x != Tensor([1.0, 0.0, 3.0])).tolist() == [False, True, False]
    assert (x < 2).tolist() == [True, False, False] and (x <= 2).tolist() == [True, True, False]
    assert (x > 2).tolist() == [False, False, True] and (x >= np.array([1.0, 3.0, 3.0])).tolist() == [True, False, True]
    assert (Tensor([1.0]) == 1.0).all()
    assert (x == None) is False  # noqa: E711  (as torch: not an error)
    same = Tensor([1.0, 2.0, 3.0])
    assert len({x, same}) == 2 and {x: 1}[x] == 1


def test_array_protocol_on_the_cpu():
    x = Tensor([[1.0, 2.0]])
    array = np.asarray(x)
    assert array.dtype == np.float32 and array.tolist() == [[1.0, 2.0]]
    assert np.asarray(x, dtype=np.float64).dtype == np.float64


# --- .grad and requires_grad ----------------------------------------------------------------------


def test_grad_assignment_is_validated():
    p = leaf(np.ones((3, 4)), dtype=np.float32)
    p.grad = np.zeros((3, 4), np.float32)
    p.grad = None
    for value, error, message in [
        (np.ones(4, np.float32), ValueError, r"^grad: shape \(4,\) does not match the tensor's shape \(3, 4\)$"),
        (np.ones((3, 4)), TypeError, "^grad: dtype float64 does not match the tensor's dtype float32$"),
        (np.ones((3, 4), np.int32), TypeError, "^grad: dtype int32 does not match"),
        ([[1.0] * 4] * 3, TypeError, r"^grad: expected an array \(NumPy or CuPy\) or None, got list$"),
        (Tensor(np.ones((3, 4))), TypeError, "^grad: expected an array .* got Tensor$"),
        (p, TypeError, "^grad: a tensor cannot be its own gradient$"),
    ]:
        with pytest.raises(error, match=message):
            p.grad = value
    assert p.grad is None


def test_requires_grad_settable_on_leaves_only_as_torch():
    x = leaf([1.0])
    y = x * 2
    for flag in (True, False):
        with pytest.raises(RuntimeError, match="^requires_grad: you can only change requires_grad flags of leaf"):
            y.requires_grad = flag
    assert y.requires_grad and not y.is_leaf
    x.requires_grad = False
    assert not (x * 2).requires_grad
    d = y.detach()
    d.requires_grad = True
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        Tensor([1], dtype=np.int64).requires_grad = True


def test_a_0d_leafs_grad_is_a_0d_array():
    x = leaf(2.0)
    (x * x).backward()
    (x * x).backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == () and x.grad == 8.0


# --- numbers torch gets right -------------------------------------------------------------------


def test_pow_zero_has_gradient_zero_everywhere_as_torch():
    x = leaf([0.0, 2.0, -1.0])
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    tx = torch_leaf([0.0, 2.0, -1.0])
    (tx ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


def test_leaky_relu_of_a_0d_tensor():
    x = leaf(-2.0)
    y = x.leaky_relu(0.2)
    y.backward()
    assert y.item() == pytest.approx(-0.4) and x.grad == pytest.approx(0.2)


def test_division_is_its_own_op_as_torch():
    tiny = np.float32(1e-30)
    a, b = leaf(np.float32(tiny), np.float32), leaf(np.float32(8 * tiny), np.float32)
    q = a / b
    assert q.item() == 0.125
    q.backward()
    torch = pytest.importorskip("torch")
    ta = torch.tensor(tiny, requires_grad=True)
    tb = torch.tensor(np.float32(8 * tiny), requires_grad=True)
    (ta / tb).backward()
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-6)
    assert np.isfinite(b.grad)
    x = leaf(np.float32(3.3), np.float32)
    (x / x).backward()
    assert x.grad == 0.0
    assert minigan.gradcheck(lambda a, b: a / b, [leaf([1.0, -2.0]), leaf([0.5, 3.0])])


def test_max_sends_the_gradient_to_the_nan_as_torch():
    values = [1.0, np.nan, 3.0, np.nan]
    x = leaf(values)
    x.max().backward()
    tx = torch_leaf(values)
    tx.max().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())  # [0, 0.5, 0, 0.5]
    rows = leaf([[1.0, 3.0, 2.0], [np.nan, 2.0, 0.0]])
    rows.max(axis=1).sum().backward()
    np.testing.assert_array_equal(rows.grad, [[0, 1, 0], [1, 0, 0]])
    ties = leaf([1.0, 3.0, 3.0])
    ties.max().backward()
    np.testing.assert_array_equal(ties.grad, [0.0, 0.5, 0.5])  # torch's full max shares ties too


# --- grad mode ----------------------------------------------------------------------------------


def test_grad_mode_is_per_thread_as_torch():
    x = leaf([1.0])
    seen = {}

    def other_thread():
        seen["enabled"] = is_grad_enabled()
        seen["requires_grad"] = (x * 2).requires_grad

    with no_grad():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen == {"enabled": True, "requires_grad": True}


def test_no_grad_on_a_generator_function_holds_at_every_resume():
    x = leaf([1.0])

    @no_grad()
    def twice():
        yield (x * 2).requires_grad, is_grad_enabled()
        yield (x * 3).requires_grad, is_grad_enabled()

    @no_grad
    def bare():
        return (x * 2).requires_grad

    results = []
    for item in twice():
        results.append(item)
        assert is_grad_enabled()  # between resumes, the caller's mode
    assert results == [(False, False), (False, False)]
    assert bare() is False and is_grad_enabled()


# --- deepcopy and pickle ------------------------------------------------------------------------


def test_deepcopy_and_pickle_as_torch():
    x = leaf([1.0, 2.0])
    x.grad = np.array([0.5, 0.5])
    twin = copy.deepcopy(x)
    assert twin.requires_grad and twin.is_leaf and twin.data is not x.data
    np.testing.assert_array_equal(twin.data, x.data)
    np.testing.assert_array_equal(twin.grad, x.grad)  # deepcopy keeps .grad, as torch's
    restored = pickle.loads(pickle.dumps(x * 2))  # pickle keeps data and requires_grad, as torch's
    assert restored.is_leaf and restored.requires_grad and restored.grad is None
    np.testing.assert_array_equal(restored.data, [2.0, 4.0])
    assert pickle.loads(pickle.dumps(x)).grad is None
    with pytest.raises(RuntimeError, match="^deepcopy: only leaf tensors"):
        copy.deepcopy(x * 2)
    with pytest.raises(RuntimeError, match="Only Tensors created explicitly by the user"):
        copy.deepcopy(torch_leaf([1.0]) * 2)


# --- messages that name the real cause ----------------------------------------------------------


def test_messages_name_the_real_cause():
    with pytest.raises(OverflowError, match="^Tensor: the integer 1180591620717411303424 is out of range"):
        Tensor(2**70)
    with pytest.raises(OverflowError, match="the integer -1180591620717411303424"):
        Tensor([1, -(2**70)])
    a = Tensor([1.0])
    with pytest.raises(TypeError, match=r"^concatenate: axis must be an int, got None; flatten with \.reshape\(-1\)"):
        concatenate([a, a], axis=None)


def test_copy_is_an_in_place_write_that_bumps_the_version_as_torchs():
    W = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="copy_: a leaf tensor that requires grad cannot be changed in place"):
        W.copy_(np.zeros((2, 2)))
    x = Tensor(np.full((3, 2), 2.0), requires_grad=True)
    out = (x @ W).sum()  # saves W for x's gradient
    with no_grad():
        W.copy_(np.full((2,), 5.0))  # broadcast into W's shape, as torch's copy_
    np.testing.assert_array_equal(W.data, np.full((2, 2), 5.0))
    assert W._version == 1
    with pytest.raises(RuntimeError, match="modified in place after it was saved for backward"):
        out.backward()
    with pytest.raises(ValueError, match="would change shape"):
        with no_grad():
            W.copy_(np.zeros((3, 2, 2)))


def test_the_fused_trainers_sync_is_seen_by_a_graph_saved_before_it():
    from minigan import gan
    from minigan.fast import FusedTrainer

    config = gan.CONFIGS["reference"]
    G, D = gan.build_generator(config, dtype=np.float64), gan.build_discriminator(config, dtype=np.float64)
    trainer = FusedTrainer(G, D, lr=2e-4, betas=(0.5, 0.999))
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (4, 784))]
    zs = [rng.standard_normal((4, 100)) for _ in range(2)]
    x = Tensor(rng.uniform(-1, 1, (4, 784)))
    saved = D(x).sum()  # D's weights saved for backward, then the fused step moves them
    trainer.iteration(xs, zs)
    trainer.copy_to_modules()
    with pytest.raises(RuntimeError, match="modified in place after it was saved for backward"):
        saved.backward()


def test_leaky_relu_reads_its_input_in_backward_and_refuses_a_changed_one():
    x = Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    h = x * 1.0
    y = h.leaky_relu(0.2).sum()
    with no_grad():
        h -= 5.0  # every sign flips: the slopes backward would use are no longer the forward's
    with pytest.raises(RuntimeError, match="an input of leaky_relu .* was modified in place"):
        y.backward()


def test_a_step_of_D_under_Gs_saved_graph_is_refused_naming_Ds_parameter():
    # The GAN mistake itself: step D, then back-propagate G's loss through the D pass made before it.
    from minigan import gan

    config = gan.CONFIGS["reference"]
    G, D = gan.build_generator(config, dtype=np.float64), gan.build_discriminator(config, dtype=np.float64)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    rng = np.random.default_rng(0)
    x, z = Tensor(rng.uniform(-1, 1, (4, 784))), Tensor(rng.standard_normal((4, 100)))
    fake_logits = D(G(z))
    d_loss = gan.discriminator_loss(D(x), fake_logits)
    g_loss = gan.generator_loss(fake_logits)
    d_loss.backward(retain_graph=True)
    opt_D.step()
    opt_G.zero_grad()
    with pytest.raises(RuntimeError, match=r"backward: D\.\d+\.(weight|bias), an input of affine .* was modified"):
        g_loss.backward()
    assert [p.name for p in G.parameters()][:2] == ["G.0.weight", "G.0.bias"]


# --- views share their base's version counter ----------------------------------------------------

VIEWS = {
    "reshape": lambda t: t.reshape(-1),
    "T": lambda t: t.T,
    "transpose": lambda t: t.transpose(0, 1),
    "permute": lambda t: t.permute(1, 0),
    "row": lambda t: t[0],
    "slice": lambda t: t[:, 1:],
}


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_step_on_the_base_stales_a_saved_view_as_torch(view):
    # W.reshape(-1) and W[0] share W's memory: a step on W changes what backward would read.
    w0 = np.arange(1.0, 7.0).reshape(2, 3)
    W = leaf(w0)
    v = VIEWS[view](W)
    loss = (v * v).sum()  # mul saves v
    with no_grad():
        W -= 1.0
    with pytest.raises(RuntimeError, match=r"an input of mul .* was modified in place .*version 0 → 1"):
        loss.backward()
    torch = pytest.importorskip("torch")
    tW = torch_leaf(w0)
    tv = VIEWS[view](tW)
    tloss = (tv * tv).sum()
    with torch.no_grad():
        tW -= 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tloss.backward()


def test_a_write_through_a_view_stales_its_saved_base_as_torch():
    W = leaf(np.arange(1.0, 7.0).reshape(2, 3))
    loss = (W * W).sum()
    with no_grad():
        row = W[1]
        row *= 2.0  # writes into W's memory
    np.testing.assert_array_equal(W.data[1], [8.0, 10.0, 12.0])
    assert W._version == row._version == 1
    with pytest.raises(RuntimeError, match=r"an input of mul \(shape \(2, 3\)\) was modified in place"):
        loss.backward()


def test_a_copy_keeps_its_own_counter_as_torch():
    # A list index, and a reshape of a non-contiguous array, copy: writing the base leaves them valid.
    W = leaf(np.arange(1.0, 7.0).reshape(2, 3))
    picked, flat = W[[0, 1]], W.T.reshape(-1)
    loss = (picked * picked).sum() + (flat * flat).sum()
    with no_grad():
        W -= 1.0
    loss.backward()
    np.testing.assert_array_equal(W.grad, 4.0 * np.arange(1.0, 7.0).reshape(2, 3))


# --- t[index] = value ----------------------------------------------------------------------------


def test_item_assignment_writes_in_place_under_no_grad_as_torch():
    torch = pytest.importorskip("torch")
    w0 = np.arange(1.0, 7.0).reshape(2, 3)
    W, tW = leaf(w0), torch_leaf(w0)
    with no_grad(), torch.no_grad():
        W[0] += 1.0  # a view, += in place, then item assignment: torch's idiom
        tW[0] += 1.0
        W[:, 2] = 0.0
        tW[:, 2] = 0.0
        W[W.data > 5.0] = -1.0  # a mask, as NumPy
        tW[tW > 5.0] = -1.0
        W[1, 1] = Tensor(9.0, dtype=np.float64)
        tW[1, 1] = torch.tensor(9.0, dtype=torch.float64)
    np.testing.assert_array_equal(W.data, tW.detach().numpy())
    assert W._version > 0


def test_item_assignment_is_refused_where_a_graph_needs_the_old_value():
    W = leaf(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match=r"^item assignment: a leaf tensor that requires grad cannot"):
        W[0] = 0.0
    h = W * 2.0
    with pytest.raises(RuntimeError, match=r"^item assignment: minigan does not record in-place ops in the graph"):
        h[0] = 0.0
    np.testing.assert_array_equal(W.data, np.ones((2, 3)))
    x = Tensor(np.zeros((2, 3)))  # needs no grad: written at once
    x[1] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(x.data[1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^item assignment: could not broadcast .*shape"):
        x[0] = np.ones(4)
    d = Tensor(np.zeros(2), device="cpu")
    with pytest.raises(TypeError, match=r"^item assignment: expected numbers"):
        d[0] = "a"


def test_relu_of_infinities_and_nan_as_torch():
    values = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan])
    x, tx = leaf(values), torch_leaf(values)
    y, ty = x.relu(), tx.relu()
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


def test_copies_views_versions_and_writes_on_each_device(device):
    from minigan import backend

    array = backend.to_device(np.arange(1.0, 7.0).reshape(2, 3), device)
    copied, shared = Tensor(array), minigan.from_numpy(array)
    array[0, 0] = 10.0
    assert float(copied.data[0, 0]) == 1.0 and float(shared.data[0, 0]) == 10.0
    W = Tensor(array, requires_grad=True)
    v = W.T
    loss = (v * v).sum()
    with no_grad():
        W[0] += 1.0  # through a view, then item assignment
    assert W._version == v._version > 0
    np.testing.assert_array_equal(W.numpy()[0], [11.0, 3.0, 4.0])
    with pytest.raises(RuntimeError, match=r"an input of mul \(shape \(3, 2\)\) was modified in place"):
        loss.backward()
    loss = (W * W).sum()
    with no_grad():
        W.copy_(backend.to_device(np.zeros((2, 3)), device))
    with pytest.raises(RuntimeError, match=r"an input of mul \(shape \(2, 3\)\) was modified in place"):
        loss.backward()
    if device == "cpu":
        np.testing.assert_array_equal(np.asarray(W), np.zeros((2, 3)))
    else:
        with pytest.raises(TypeError, match="cannot become a NumPy array implicitly; use .numpy()"):
            np.asarray(W)


def test_numbers_and_lists_meet_a_tensor_on_its_device(device):
    from minigan import DeviceError, backend, nn

    x = Tensor([1.0, 2.0], requires_grad=True, device=device)
    for y in (x + [1.0, 2.0], [1.0, 2.0] * x, x / np.float32(2), x - np.array(1.0, np.float32)):
        assert y.device == x.device and y.dtype == np.float32
    (x * 1.0).backward([1.0, 1.0])
    (x * x).sum().backward(1.0)
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [3.0, 5.0])
    logits = Tensor([[0.5], [-1.0]], device=device)
    by_tensor = nn.binary_cross_entropy_with_logits(logits, Tensor([[1.0], [0.0]], device=device))
    by_list = nn.binary_cross_entropy_with_logits(logits, [[1.0], [0.0]])
    assert by_list.device == logits.device and float(by_list) == float(by_tensor)
    if device != "cpu":  # an array of more dims on the host is refused, as torch refuses a CPU tensor
        with pytest.raises(DeviceError, match=r"^add: tensors are on different devices, cuda:0 and cpu"):
            x + np.ones(2, np.float32)


def test_an_index_that_repeats_sums_its_gradients_without_a_warning(device):
    import warnings

    from minigan import backend

    x = Tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # CuPy 14 deprecates cupyx.scatter_add in favour of add.at
        x[[0, 0, 1]].sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [2.0, 1.0, 0.0])
