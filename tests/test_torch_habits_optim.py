"""The optimizers and layers where a torch habit meets them: each answer is torch's, or one line
naming the real cause. Every comparison runs torch on the same numbers."""

import io

import numpy as np
import pytest

from minigan import Tensor, nn, optim

torch = pytest.importorskip("torch")

LR, BETAS = 0.01, (0.5, 0.999)


def pair(rng, shapes):
    """The same float64 starting values as minigan parameters and as torch leaves."""
    starts = [rng.standard_normal(shape) for shape in shapes]
    return ([Tensor(s.copy(), requires_grad=True) for s in starts],
            [torch.tensor(s.copy(), requires_grad=True) for s in starts])


def step_both(opt, torch_opt, ours, theirs, gradients):
    """One step of each optimizer; a gradient of None leaves that parameter's .grad None in both."""
    for p, t, g in zip(ours, theirs, gradients):
        p.grad = None if g is None else g.copy()
        t.grad = None if g is None else torch.tensor(g)
    opt.step()
    torch_opt.step()


def assert_same_parameters(ours, theirs, rtol=1e-13):
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=1e-15)


# Which parameters have a gradient at each step: the second misses step 1, nobody has one at step 3.
HAS_GRAD = [(True, False), (True, True), (False, False), (False, True), (True, True)]


def test_adam_counts_steps_per_parameter_as_torch_does():
    rng = np.random.default_rng(0)
    ours, theirs = pair(rng, [(3, 4), (4,)])
    opt, torch_opt = optim.Adam(ours, lr=LR, betas=BETAS), torch.optim.Adam(theirs, lr=LR, betas=BETAS)
    for has in HAS_GRAD:
        gradients = [rng.standard_normal(p.shape) if h else None for p, h in zip(ours, has)]
        step_both(opt, torch_opt, ours, theirs, gradients)
        assert_same_parameters(ours, theirs)
        assert opt.step_counts == [int(torch_opt.state[t]["step"]) if t in torch_opt.state else 0 for t in theirs]
    assert opt.step_counts == [3, 3]
    # opt.state holds the buffers only, arrays like the parameters (memory probes sum their nbytes).
    assert set(opt.state) == {"exp_avg", "exp_avg_sq"}
    assert all(b.shape == p.shape for bs in opt.state.values() for b, p in zip(bs, ours))


def test_a_step_without_gradients_changes_nothing():
    p = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.array([1.0, -1.0])
    opt.step()
    before = opt.state_dict()
    opt.zero_grad()
    opt.step()
    after = opt.state_dict()
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    assert opt.step_counts == [1]


def test_sgd_with_momentum_matches_torch_when_some_gradients_are_missing():
    """minigan writes classical momentum as v ← m·v − lr·g, p ← p + v (pylearn2's, which the paper
    config follows); at a constant lr that is torch's buf ← m·buf + g, p ← p − lr·buf, whose first
    step sets buf = g."""
    rng = np.random.default_rng(1)
    ours, theirs = pair(rng, [(3, 4), (4,)])
    opt, torch_opt = optim.SGD(ours, lr=0.1, momentum=0.9), torch.optim.SGD(theirs, lr=0.1, momentum=0.9)
    for has in HAS_GRAD:
        gradients = [rng.standard_normal(p.shape) if h else None for p, h in zip(ours, has)]
        step_both(opt, torch_opt, ours, theirs, gradients)
        assert_same_parameters(ours, theirs, rtol=1e-12)
        for i, t in enumerate(theirs):
            buf = torch_opt.state[t].get("momentum_buffer") if t in torch_opt.state else None
            if buf is None:
                assert opt.state["velocity"][i] is None
            else:
                np.testing.assert_allclose(opt.state["velocity"][i], -0.1 * buf.numpy(), rtol=1e-12)


def test_sgd_momentum_carries_the_old_learning_rate_unlike_torch():
    """The deliberate difference: the velocity holds lr·g, so a new lr applies to new gradients only."""
    p, t = Tensor(np.array([0.0]), requires_grad=True), torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt, torch_opt = optim.SGD([p], lr=0.1, momentum=0.5), torch.optim.SGD([t], lr=0.1, momentum=0.5)
    step_both(opt, torch_opt, [p], [t], [np.array([1.0])])
    opt.lr = torch_opt.param_groups[0]["lr"] = 0.01
    step_both(opt, torch_opt, [p], [t], [np.array([1.0])])
    np.testing.assert_allclose(p.data, [-0.1 - (0.5 * 0.1 + 0.01)], rtol=1e-14)  # v = 0.5·(−0.1) − 0.01
    np.testing.assert_allclose(t.detach().numpy(), [-0.1 - 0.01 * (0.5 + 1)], rtol=1e-14)  # 0.01·(0.5·1 + 1)


# --- the state dict: a step count per parameter, and the older single count ---------------------


def adam_run(rng, gradients, has_grad):
    """Two parameters stepped through `gradients` where `has_grad` says so."""
    ps = [Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True),
          Tensor(np.array([0.5, -0.5]), requires_grad=True)]
    opt = optim.Adam(ps, lr=LR, betas=BETAS)
    for gs, has in zip(gradients, has_grad):
        for p, g, h in zip(ps, gs, has):
            p.grad = g.copy() if h else None
        opt.step()
    return ps, opt


def gradient_steps(rng, n):
    return [[rng.standard_normal((2, 3)), rng.standard_normal(2)] for _ in range(n)]


def through_npz(state):
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    return dict(np.load(buffer))


def test_state_dict_holds_a_step_count_per_parameter():
    rng = np.random.default_rng(2)
    _, opt = adam_run(rng, gradient_steps(rng, 3), [(True, False), (True, True), (True, True)])
    state = opt.state_dict()
    assert int(state["step.0"]) == 3 and int(state["step.1"]) == 2
    assert state["step.0"].dtype == np.int64 and "steps" not in state
    fresh = optim.Adam(adam_run(rng, [], [])[0])
    assert {k: int(v) for k, v in fresh.state_dict().items() if k.startswith("step")} == {"step.0": 0, "step.1": 0}
    fresh.load_state_dict(through_npz(state))
    assert fresh.step_counts == [3, 2]


def test_a_state_dict_with_one_steps_count_loads_and_resumes_identically():
    """A checkpoint written before per-parameter counts holds `steps`, the number of step() calls.
    Each parameter with Adam buffers takes that count, and the run continues as it would have."""
    rng = np.random.default_rng(3)
    gradients = gradient_steps(rng, 6)
    everyone = [(True, True)] * 6
    _, interrupted = adam_run(rng, gradients[:3], everyone)
    old = {k: v for k, v in interrupted.state_dict().items() if not k.startswith("step.")}
    old["steps"] = np.asarray(3)  # the older format, as np.savez wrote it
    ps, _ = adam_run(rng, gradients[:3], everyone)
    resumed = optim.Adam(ps, lr=1.0)
    resumed.load_state_dict(through_npz(old))
    assert resumed.step_counts == [3, 3] and resumed.lr == LR
    for gs in gradients[3:]:
        for p, g in zip(ps, gs):
            p.grad = g.copy()
        resumed.step()
    uninterrupted, _ = adam_run(rng, gradients, everyone)
    for p, q in zip(ps, uninterrupted):
        np.testing.assert_array_equal(p.data, q.data)


def test_one_steps_count_gives_a_parameter_without_buffers_no_steps():
    old = {"lr": np.asarray(LR), "betas": np.asarray(BETAS), "eps": np.asarray(1e-8), "steps": np.asarray(4),
           "exp_avg.1": np.zeros(2), "exp_avg_sq.1": np.zeros(2)}
    opt = optim.Adam(adam_run(np.random.default_rng(4), [], [])[0])
    opt.load_state_dict(old)
    assert opt.step_counts == [0, 4]
    sgd = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1, momentum=0.9)
    sgd.load_state_dict({"lr": np.asarray(0.1), "momentum": np.asarray(0.9), "steps": np.asarray(7),
                         "velocity.0": np.ones(2)})
    assert sgd.step_counts == [7]


@pytest.mark.parametrize("change, message", [
    ({"step.0": np.asarray(-1)}, "Adam.load_state_dict: step.0 must be an integer ≥ 0, got int64 -1"),
    ({"step.1": np.asarray(2.5)}, "Adam.load_state_dict: step.1 must be an integer ≥ 0, got float64 2.5"),
    ({"steps": np.asarray(3)}, "Adam.load_state_dict: missing [], unexpected ['steps']"),
])
def test_a_bad_step_count_is_one_line(change, message):
    rng = np.random.default_rng(5)
    _, opt = adam_run(rng, gradient_steps(rng, 1), [(True, True)])
    before = opt.state_dict()
    with pytest.raises(ValueError) as info:
        opt.load_state_dict(dict(before, **change))
    assert str(info.value) == message
    assert opt.step_counts == [1, 1]


def test_step_count_is_the_shared_count_or_an_error():
    rng = np.random.default_rng(6)
    _, opt = adam_run(rng, gradient_steps(rng, 2), [(True, True), (True, True)])
    assert opt.step_count() == 2
    opt.set_step_count(5)
    assert opt.step_counts == [5, 5] and int(opt.state_dict()["step.1"]) == 5
    _, uneven = adam_run(rng, gradient_steps(rng, 2), [(True, False), (True, True)])
    with pytest.raises(ValueError, match=r"^Adam: the parameters have different step counts \[1, 2\]; "):
        uneven.step_count()


def test_optimizer_load_state_dict_takes_tensors_as_torch_state_dicts_hold():
    rng = np.random.default_rng(7)
    _, opt = adam_run(rng, gradient_steps(rng, 2), [(True, True), (True, True)])
    state = opt.state_dict()
    fresh = optim.Adam(adam_run(rng, [], [])[0])
    fresh.load_state_dict({k: Tensor(v) if k.startswith("exp_avg") else v for k, v in state.items()})
    after = fresh.state_dict()
    assert all(np.array_equal(after[k], state[k]) for k in state)


# --- nn: torch's answers, or one line naming the cause ----------------------------------------


def test_module_load_state_dict_takes_tensors_as_torch_does():
    ours = nn.Linear(3, 2)
    source = nn.Linear(3, 2)
    ours.load_state_dict({name: Tensor(value) for name, value in source.state_dict().items()})
    np.testing.assert_array_equal(ours.weight.data, source.weight.data)
    np.testing.assert_array_equal(ours.bias.data, source.bias.data)
    assert ours.weight.data is not source.weight.data  # copied, as torch copies into its parameters
    # torch takes tensors here too, and copies them in.
    layer = torch.nn.Linear(3, 2)
    layer.load_state_dict({"weight": torch.zeros(2, 3), "bias": torch.ones(2)})
    assert layer.bias.tolist() == [1.0, 1.0]


def test_a_layer_given_a_list_says_its_input_must_be_a_tensor():
    with pytest.raises(TypeError) as ours:
        nn.Linear(2, 1)([[1.0, 2.0]])
    assert str(ours.value) == "Linear: input must be a Tensor, got list; wrap it: Tensor(x)"
    with pytest.raises(TypeError, match="must be Tensor, not list"):  # torch's answer is a TypeError too
        torch.nn.Linear(2, 1)([[1.0, 2.0]])


def test_a_module_without_forward_names_itself():
    class Model(nn.Module):
        pass

    with pytest.raises(NotImplementedError) as info:
        Model()(Tensor(np.ones((1, 2))))
    assert str(info.value) == "Model has no forward(); define forward(self, x)"


@pytest.mark.parametrize("slope", ["0.2", None, [0.2], True])
def test_leaky_relu_refuses_a_slope_that_is_not_a_number(slope):
    with pytest.raises(TypeError) as info:
        nn.LeakyReLU(slope)
    assert str(info.value) == f"LeakyReLU: negative_slope must be a number, got {type(slope).__name__} {slope!r}"


def test_linear_shape_error_names_the_shapes_once():
    with pytest.raises(ValueError) as info:
        nn.Linear(2, 1)(Tensor(np.ones((4, 3), np.float32)))
    message = str(info.value)
    assert "(4, 3)" in message and "(2, 1)" in message and "\n" not in message


INF = float("inf")


@pytest.mark.parametrize("target", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("form", ["number", "array", "tensor"])
def test_bce_with_logits_at_infinite_logits(target, form):
    """torch's loss and gradient where torch's loss is a number; where torch's is NaN (a hard label
    meeting an infinite logit, or x = −∞), the limit: 0 for a right answer, ∞ for a wrong one."""
    logits = np.array([INF, -INF, 3.0])
    targets = np.full(3, target)
    x = Tensor(logits.copy(), requires_grad=True)
    given = {"number": target, "array": targets, "tensor": Tensor(targets)}[form]
    with np.errstate(all="raise"):  # no inf − inf or 0·inf on the way
        loss = nn.binary_cross_entropy_with_logits(x, given)
        loss.backward()

    t = torch.tensor(logits, requires_grad=True)
    torch_loss = torch.nn.functional.binary_cross_entropy_with_logits(t, torch.tensor(targets))
    torch_loss.backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-13)
    per_element = [torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([v]), torch.tensor([target])).item() for v in logits]
    limits = {(INF, 1.0): 0.0, (-INF, 0.0): 0.0}
    expected = [limits.get((v, target), INF) if np.isnan(e) else e for v, e in zip(logits, per_element)]
    np.testing.assert_allclose(loss.item(), np.mean(expected), rtol=1e-15)
    if not np.isnan(torch_loss.item()):
        assert loss.item() == torch_loss.item()
