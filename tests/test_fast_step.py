"""FusedTrainer on the CPU: the same training as gan.train_iteration with optim.Adam.

Both start from the same weights and see the same data and noise batches; after a few iterations
their parameters, gradients and statistics must agree: to rounding in float64. In float32 the
gradients agree to rounding too, but Adam divides each gradient by sqrt(v) + ε, so an element
whose gradient is as small as ε ≈ 1e-8 moves by an amount that rounding decides; those few
elements differ by up to a fraction of lr in either implementation
(test_float32_is_as_accurate_as_the_autograd_path measures both against float64).
"""

import copy
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigan import Tensor, backend, gan, nn, optim
from minigan.fast import FusedTrainer, kernels
from scripts import load_script  # tests/scripts.py

REFERENCE = gan.CONFIGS["reference"]
LR, BETAS = 2e-4, (0.5, 0.999)


def players(dtype, seed=0):
    """Two identical copies of the reference G and D."""
    copies = []
    for _ in range(2):
        backend.manual_seed(seed)
        copies.append((gan.build_generator(REFERENCE, dtype=dtype), gan.build_discriminator(REFERENCE, dtype=dtype)))
    return copies


def batches(rng, m, k, dtype, x_features=784, z_features=100):
    xs = [np.tanh(rng.standard_normal((m, x_features))).astype(dtype) for _ in range(k)]
    zs = [rng.standard_normal((m, z_features)).astype(dtype) for _ in range(k + 1)]
    return xs, zs


def autograd_iteration(G, D, opt_G, opt_D, xs, zs, k, loss):
    """gan.train_iteration fed with exactly these batches, in the order Algorithm 1 draws them."""
    data, noise = iter(xs), iter(zs)
    return gan.train_iteration(G, D, opt_G, opt_D, lambda: Tensor(next(data)), lambda: Tensor(next(noise)),
                               k, loss)


def assert_params_match(reference_modules, fused_modules, dtype):
    for reference, fused in zip(reference_modules, fused_modules):
        for (name, p), q in zip(reference.named_parameters(), fused.parameters()):
            if dtype == np.float64:
                np.testing.assert_allclose(q.data, p.data, rtol=1e-10, atol=1e-13, err_msg=name)
            else:
                np.testing.assert_allclose(q.data, p.data, rtol=1e-5, atol=2e-2 * LR, err_msg=name)


def assert_grads_match(reference_module, flat_grad_views, dtype):
    for (name, p), g in zip(reference_module.named_parameters(), flat_grad_views):
        scale = np.max(np.abs(p.grad))
        rtol = 1e-10 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(g, p.grad, rtol=rtol, atol=rtol * scale, err_msg=name)


def assert_stats_match(stats, expected, dtype):
    assert set(stats) == set(expected) == {"d_loss", "d_real_logits", "d_fake_logits", "g_loss"}
    for key in expected:
        assert stats[key].shape == np.shape(expected[key]) and stats[key].dtype == dtype, key
        rtol = 1e-10 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(stats[key], expected[key], rtol=rtol, atol=rtol, err_msg=key)


# --- parity with Algorithm 1 on the autograd path ---------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_fused_step_trains_exactly_like_train_iteration(dtype, k, loss):
    (G, D), (G2, D2) = players(dtype)
    opt_G, opt_D = optim.Adam(G.parameters(), lr=LR, betas=BETAS), optim.Adam(D.parameters(), lr=LR, betas=BETAS)
    trainer = FusedTrainer(G2, D2, k=k, loss=loss, lr=LR, betas=BETAS)
    rng = np.random.default_rng(1)
    for _ in range(3):
        xs, zs = batches(rng, 16, k, dtype)
        expected = autograd_iteration(G, D, opt_G, opt_D, xs, zs, k, loss)
        stats = trainer.iteration(xs, zs)
        assert_stats_match(stats, expected, dtype)
        # D's gradients are those of its last step; G's of the G step (D is frozen there).
        assert_grads_match(D, trainer.D.grad_views, dtype)
        assert_grads_match(G, trainer.G.grad_views, dtype)
    assert (trainer.D.adam_scalars[kernels.STEP], trainer.G.adam_scalars[kernels.STEP]) == (3 * k, 3)
    trainer.copy_to_modules()
    assert_params_match((G, D), (G2, D2), dtype)


def test_float32_is_as_accurate_as_the_autograd_path():
    """Both float32 paths against float64 autograd: the fused one is no further off (in RMS)."""
    def train(dtype, fused):
        backend.manual_seed(0)
        G, D = gan.build_generator(REFERENCE, dtype=np.float64), gan.build_discriminator(REFERENCE, dtype=np.float64)
        for p in G.parameters() + D.parameters():
            p.data = p.data.astype(dtype)
        trainer = FusedTrainer(G, D) if fused else None
        opt_G, opt_D = gan.build_optimizers(REFERENCE, G, D)
        rng = np.random.default_rng(1)
        for _ in range(3):
            xs, zs = batches(rng, 16, 1, dtype)
            trainer.iteration(xs, zs) if fused else autograd_iteration(G, D, opt_G, opt_D, xs, zs, 1, "nonsaturating")
        if fused:
            trainer.copy_to_modules()
        return np.concatenate([p.data.ravel().astype(np.float64) for p in G.parameters() + D.parameters()])

    truth = train(np.float64, False)
    def rms(a):
        return np.sqrt(np.mean((a - truth) ** 2))

    autograd_error, fused_error = rms(train(np.float32, False)), rms(train(np.float32, True))
    assert 0 < fused_error < 2 * autograd_error


@st.composite
def small_mlps(draw):
    """A G and D of random widths, in the shapes FusedTrainer accepts: Linear layers each followed
    by LeakyReLU (any slope in (0, 1)), Tanh or nothing, D ending in a single logit."""
    def mlp(widths, final):
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b, dtype=np.float64))
            last = i == len(widths) - 2
            activation = final if last else draw(st.sampled_from(["leaky_relu", "tanh", None]))
            if activation == "leaky_relu":
                layers.append(nn.LeakyReLU(draw(st.sampled_from([0.2, 0.01, 0.7]))))
            elif activation == "tanh":
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    widths = st.lists(st.integers(1, 7), min_size=0, max_size=3)
    noise, data = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    G = mlp([noise] + draw(widths) + [data], draw(st.sampled_from(["tanh", "leaky_relu", None])))
    D = mlp([data] + draw(widths) + [1], None)
    return G, D, noise, data


@given(mlps=small_mlps(), m=st.integers(1, 6), k=st.integers(1, 2),
       loss=st.sampled_from(["nonsaturating", "minimax"]))
def test_any_supported_mlp_trains_like_train_iteration(mlps, m, k, loss):
    G, D, noise, data = mlps
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    opt_G, opt_D = optim.Adam(G.parameters(), lr=0.01, betas=BETAS), optim.Adam(D.parameters(), lr=0.01, betas=BETAS)
    trainer = FusedTrainer(G2, D2, k=k, loss=loss, lr=0.01, betas=BETAS)
    rng = np.random.default_rng(m)
    for _ in range(2):
        xs, zs = batches(rng, m, k, np.float64, data, noise)
        expected = autograd_iteration(G, D, opt_G, opt_D, xs, zs, k, loss)
        assert_stats_match(trainer.iteration(xs, zs), expected, np.float64)
    trainer.copy_to_modules()
    assert_params_match((G, D), (G2, D2), np.float64)


def test_batch_size_may_change_between_iterations():
    (G, D), (G2, D2) = players(np.float64)
    opt_G, opt_D = gan.build_optimizers(REFERENCE, G, D)
    trainer = FusedTrainer(G2, D2)
    rng = np.random.default_rng(2)
    for m in (8, 3, 8):
        xs, zs = batches(rng, m, 1, np.float64)
        expected = autograd_iteration(G, D, opt_G, opt_D, xs, zs, 1, "nonsaturating")
        assert_stats_match(trainer.iteration(xs, zs), expected, np.float64)
    trainer.copy_to_modules()
    assert_params_match((G, D), (G2, D2), np.float64)


# --- the buffers -----------------------------------------------------------------------------------


def test_every_gradient_is_written_so_no_zero_grad_is_needed():
    """Poison both flat gradient buffers: if any slice were accumulated or skipped, NaN would
    reach Adam and the parameters."""
    (G, D), _ = players(np.float32)
    trainer = FusedTrainer(G, D, k=2)
    xs, zs = batches(np.random.default_rng(3), 8, 2, np.float32)
    for player in (trainer.G, trainer.D):
        player.grads[...] = np.nan
    trainer.iteration(xs, zs)
    for player in (trainer.G, trainer.D):
        assert np.isfinite(player.grads).all() and np.isfinite(player.params).all()


def test_parameters_are_views_into_one_flat_buffer_per_player():
    (G, D), _ = players(np.float32)
    trainer = FusedTrainer(G, D)
    for player, module in ((trainer.G, G), (trainer.D, D)):
        assert player.params.ndim == 1 and player.params.size == sum(p.size for p in module.parameters())
        for view, grad_view, p in zip(player.param_views, player.grad_views, module.parameters()):
            assert np.shares_memory(view, player.params) and np.shares_memory(grad_view, player.grads)
            np.testing.assert_array_equal(view, p.data)


def test_the_gradient_into_g_reuses_ds_first_hidden_buffer():
    """dL/dG(z) lives in D's first hidden buffer (no m × 784 buffer of its own); a D too narrow for
    it gets its own buffer. The parity tests check that nothing read later is overwritten."""
    (G, D), _ = players(np.float32)
    ws = FusedTrainer(G, D).workspace(16)
    assert ws.fake_grad.shape == (16, 784) and np.shares_memory(ws.fake_grad, ws.d_hidden[0])
    assert not any(np.shares_memory(ws.fake_grad, a) for a in [*ws.g_hidden, *ws.g_hidden_grads, *ws.d_inputs])
    narrow_G = nn.Sequential(nn.Linear(3, 40), nn.Tanh())
    narrow_D = nn.Sequential(nn.Linear(40, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1))
    ws = FusedTrainer(narrow_G, narrow_D).workspace(5)  # D's first hidden buffer: 10 × 4 < 5 × 40
    assert ws.fake_grad.shape == (5, 40) and not np.shares_memory(ws.fake_grad, ws.d_hidden[0])


def test_modules_are_copied_in_and_written_back_only_by_copy_to_modules():
    (G, D), _ = players(np.float32)
    arrays = [p.data for p in G.parameters() + D.parameters()]
    before = [a.copy() for a in arrays]
    trainer = FusedTrainer(G, D)
    trainer.iteration(*batches(np.random.default_rng(4), 8, 1, np.float32))
    assert all(np.array_equal(a, b) for a, b in zip(arrays, before))
    trainer.copy_to_modules()
    after = [p.data for p in G.parameters() + D.parameters()]
    assert all(a is b for a, b in zip(after, arrays))  # written in place
    assert not any(np.array_equal(a, b) for a, b in zip(after, before))


def test_returned_statistics_are_not_overwritten_by_the_next_iteration():
    (G, D), _ = players(np.float32)
    trainer = FusedTrainer(G, D)
    rng = np.random.default_rng(5)
    first = trainer.iteration(*batches(rng, 8, 1, np.float32))
    kept = {key: value.copy() for key, value in first.items()}
    trainer.iteration(*batches(rng, 8, 1, np.float32))
    for key in kept:
        np.testing.assert_array_equal(first[key], kept[key])


def test_input_buffers_can_be_filled_in_place():
    (G, D), (G2, D2) = players(np.float32)
    a, b = FusedTrainer(G, D, k=2), FusedTrainer(G2, D2, k=2)
    xs, zs = batches(np.random.default_rng(6), 8, 2, np.float32)
    data_buffers, _ = b.input_buffers(8)
    for buffer, x in zip(data_buffers, xs):
        buffer[...] = x
    stats_a, stats_b = a.iteration(xs, zs), b.iteration(data_buffers, zs)
    np.testing.assert_array_equal(stats_a["d_real_logits"], stats_b["d_real_logits"])
    np.testing.assert_array_equal(a.G.params, b.G.params)


# --- errors a person can act on -------------------------------------------------------------------


def test_unsupported_players_and_arguments_are_refused_clearly():
    paper = gan.CONFIGS["paper"]
    (G, D), _ = players(np.float32)
    with pytest.raises(ValueError, match=r"D\[0\] is Dropout"):
        FusedTrainer(G, gan.build_discriminator(paper))
    with pytest.raises(ValueError, match="G\\[1\\] is <minigan.nn.ReLU"):
        FusedTrainer(gan.build_generator(paper), D)
    with pytest.raises(ValueError, match="must end in Linear"):
        FusedTrainer(G, nn.Sequential(nn.Linear(784, 1), nn.Tanh()))
    with pytest.raises(ValueError, match="G makes 784 features, D reads 5"):
        FusedTrainer(G, nn.Sequential(nn.Linear(5, 1)))
    with pytest.raises(ValueError, match="unknown loss 'wasserstein'"):
        FusedTrainer(G, D, loss="wasserstein")
    with pytest.raises(ValueError, match="FusedTrainer: k must be an integer ≥ 1, got 0"):
        FusedTrainer(G, D, k=0)
    (G64, _), _ = players(np.float64)
    with pytest.raises(TypeError, match="G is float64 on cpu, D is float32 on cpu"):
        FusedTrainer(G64, D)


def test_wrong_batches_are_refused_clearly():
    (G, D), _ = players(np.float32)
    trainer = FusedTrainer(G, D, k=1)
    xs, zs = batches(np.random.default_rng(7), 4, 1, np.float32)
    with pytest.raises(ValueError, match="needs 1 data batches and 2 noise batches, got 1 and 1"):
        trainer.iteration(xs, zs[:1])
    with pytest.raises(ValueError, match=r"every data batch must have shape \(4, 784\), got \(3, 784\)"):
        trainer.iteration([xs[0][:3]], zs)
    with pytest.raises(TypeError, match="noise batch has dtype float64"):
        trainer.iteration(xs, [z.astype(np.float64) for z in zs])


# --- the fast path stays apart ----------------------------------------------------------------------


def run_python(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_cpu_iteration_imports_no_cupy():
    code = """
import sys
import numpy as np
from minigan import gan
from minigan.fast import FusedTrainer
config = gan.CONFIGS["reference"]
trainer = FusedTrainer(gan.build_generator(config), gan.build_discriminator(config))
trainer.iteration([np.zeros((4, 784), np.float32)], [np.zeros((4, 100), np.float32)] * 2)
trainer.copy_to_modules()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("cupy", "cupyx", "cupy_backends")
             or m in ("minigan.fast.cublas", "minigan.fast.cuda_graph")))
"""
    assert run_python(code) == "[]"


def test_the_autograd_path_does_not_import_the_fast_path():
    code = """
import sys
import minigan
from minigan import gan, nn, optim, tensor, backend
print([m for m in sys.modules if m.startswith("minigan.fast")])
"""
    assert run_python(code) == "[]"


# --- handing over between the fused and the autograd path (checkpoints, resume) ----------------------


def test_optimizer_state_round_trips_between_the_fused_and_autograd_paths():
    """Fused, then autograd on the stored Adam state, then fused again from it: the same
    parameters as autograd all the way."""
    rng = np.random.default_rng(5)
    steps = [batches(rng, 16, 1, np.float64) for _ in range(4)]
    (G, D), (G2, D2) = players(np.float64)
    opt_G, opt_D = optim.Adam(G.parameters(), LR, BETAS), optim.Adam(D.parameters(), LR, BETAS)
    for xs, zs in steps:
        autograd_iteration(G, D, opt_G, opt_D, xs, zs, 1, "nonsaturating")

    opt_G2, opt_D2 = optim.Adam(G2.parameters(), LR, BETAS), optim.Adam(D2.parameters(), LR, BETAS)
    trainer = FusedTrainer(G2, D2, k=1, lr=LR, betas=BETAS)
    trainer.iteration(*steps[0])
    trainer.copy_to_modules(opt_G2, opt_D2)
    assert opt_G2.step_count() == opt_D2.step_count() == 1
    autograd_iteration(G2, D2, opt_G2, opt_D2, *steps[1], 1, "nonsaturating")
    trainer = FusedTrainer(G2, D2, k=1, lr=LR, betas=BETAS)
    trainer.load_optimizer_states(opt_G2, opt_D2)
    for xs, zs in steps[2:]:
        trainer.iteration(xs, zs)
    trainer.copy_to_modules(opt_G2, opt_D2)

    assert_params_match((G, D), (G2, D2), np.float64)
    assert opt_G2.step_count() == opt_G.step_count() == 4
    for ours, theirs in zip((opt_G2, opt_D2), (opt_G, opt_D)):
        for name in ("exp_avg", "exp_avg_sq"):
            for a, b in zip(ours.state[name], theirs.state[name]):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-18)


# --- the engine choice and FusedIteration (what examples/mnist.py calls) -----------------------------

from minigan import fast  # noqa: E402
from minigan.fast import engine as engine_module  # noqa: E402


@pytest.mark.parametrize("requested, device, config_name, update, expected", [
    ("auto", "cpu", "reference", "alternating", "autograd"),
    ("auto", "cuda", "reference", "alternating", "fused"),
    ("auto", "cuda:1", "reference", "alternating", "fused"),
    ("auto", "cuda", "paper", "alternating", "autograd"),
    ("auto", "cuda", "reference", "simultaneous", "autograd"),
    ("fused", "cpu", "reference", "alternating", "fused"),
    ("autograd", "cuda", "reference", "alternating", "autograd"),
    ("autograd", "cpu", "paper", "simultaneous", "autograd"),
])
def test_resolve_engine(requested, device, config_name, update, expected):
    assert fast.resolve_engine(requested=requested, device=device, config_name=config_name, update=update) == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"requested": "fused", "config_name": "paper"}, "not the 'paper' config; use the autograd engine"),
    ({"requested": "fused", "update": "simultaneous"}, "not the simultaneous update; use the autograd engine"),
    ({"requested": "jax"}, "unknown engine 'jax'"),
    ({"config_name": "dcgan"}, "unknown config 'dcgan'"),
    ({"update": "lookahead"}, "unknown update 'lookahead'"),
])
def test_resolve_engine_refuses_in_one_line(kwargs, message):
    arguments = dict(requested="auto", device="cuda", config_name="reference", update="alternating") | kwargs
    with pytest.raises(ValueError) as info:
        fast.resolve_engine(**arguments)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_resolve_engine_refuses_an_unknown_device():
    with pytest.raises(backend.DeviceError, match="unknown device 'gpu'"):
        fast.resolve_engine("auto", "gpu", "reference", "alternating")


class Samplers:
    """sample_data / sample_noise over a seeded generator, logging the order of the draws."""

    def __init__(self, seed, m=8, dtype=np.float64):
        self.rng, self.m, self.dtype, self.log = np.random.default_rng(seed), m, dtype, []

    def data(self):
        self.log.append("x")
        return Tensor(np.tanh(self.rng.standard_normal((self.m, 784))).astype(self.dtype))

    def noise(self):
        self.log.append("z")
        return Tensor(self.rng.standard_normal((self.m, 100)).astype(self.dtype))


def engines(dtype=np.float64, k=2, loss="minimax"):
    """The same players twice, with Adam from the reference config: (autograd's, the fused iteration's)."""
    (G, D), (G2, D2) = players(dtype)
    opts = gan.build_optimizers(REFERENCE, G, D), gan.build_optimizers(REFERENCE, G2, D2)
    iteration = fast.FusedIteration(G2, D2, *opts[1], k=k, loss=loss, cuda_graph=True, tf32=False)
    return (G, D, *opts[0]), (G2, D2, *opts[1]), iteration


def assert_same_run(reference, fused, dtype=np.float64):
    assert_params_match(reference[:2], fused[:2], dtype)
    for ours, theirs in zip(fused[2:], reference[2:]):
        assert ours.step_counts == theirs.step_counts
        for name in ("exp_avg", "exp_avg_sq"):
            for a, b in zip(ours.state[name], theirs.state[name]):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-18)


def test_fused_iteration_is_train_iteration_with_the_same_draws():
    k, loss = 2, "minimax"
    reference, fused, iteration = engines(k=k, loss=loss)
    assert iteration.trainer is None and iteration.description == "fused, NumPy"  # nothing built yet
    a, b = Samplers(7), Samplers(7)
    for _ in range(3):
        expected = gan.train_iteration(*reference, a.data, a.noise, k, loss)
        stats = iteration(b.data, b.noise)
        assert_stats_match(stats, expected, np.float64)
    assert b.log == a.log == ["z", "x", "z", "x", "z"] * 3  # gan.train_iteration's order, kept
    iteration.sync()
    assert_same_run(reference, fused)
    assert iteration.description == "fused, NumPy" and iteration.failure is None


@pytest.mark.parametrize("failing", ["construction", "first step"])
def test_fused_iteration_falls_back_to_autograd_for_good(monkeypatch, failing):
    k, loss = 1, "nonsaturating"
    reference, fused, iteration = engines(k=k, loss=loss)
    if failing == "construction":
        def refuse(*args, **kwargs):
            raise RuntimeError("cuBLAS: could not load libcublas (tried libcublas.so.13)")
        monkeypatch.setattr(engine_module, "FusedTrainer", refuse)
    else:
        def refuse(self, x_batches, z_batches):
            raise RuntimeError("cuBLAS: could not load libcublas (tried libcublas.so.13)")
        monkeypatch.setattr(FusedTrainer, "iteration", refuse)
    a, b = Samplers(3), Samplers(3)
    with pytest.warns(RuntimeWarning) as caught:
        for _ in range(3):
            expected = gan.train_iteration(*reference, a.data, a.noise, k, loss)
            assert_stats_match(iteration(b.data, b.noise), expected, np.float64)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message == ("the fused step failed (RuntimeError: cuBLAS: could not load libcublas (tried "
                       "libcublas.so.13)); training on with the autograd engine")
    assert iteration.description == "autograd (fused step failed: RuntimeError: cuBLAS: could not load " \
                                    "libcublas (tried libcublas.so.13))"
    assert b.log == a.log
    iteration.sync()  # a no-op: the modules and optimizers are autograd's own
    assert_same_run(reference, fused)


def test_a_failure_after_the_first_step_is_not_swallowed(monkeypatch):
    reference, fused, iteration = engines(k=1, loss="nonsaturating")
    samplers = Samplers(4)
    iteration(samplers.data, samplers.noise)

    def fail(self, x_batches, z_batches):
        raise FloatingPointError("a kernel wrote NaN")

    monkeypatch.setattr(FusedTrainer, "iteration", fail)
    with pytest.raises(FloatingPointError, match="a kernel wrote NaN"):
        iteration(samplers.data, samplers.noise)
    assert iteration.failure is None


def test_fused_iteration_refuses_what_it_cannot_run():
    reference, fused, iteration = engines(k=1, loss="nonsaturating")
    G, D, opt_G, opt_D = fused
    with pytest.raises(ValueError, match="the fused step runs Adam, but opt_D is SGD"):
        fast.FusedIteration(G, D, opt_G, optim.SGD(D.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        fast.FusedIteration(G, D, opt_G, opt_D, loss="hinge")
    with pytest.raises(TypeError, match="FusedIteration: k must be an integer ≥ 1, got 1.5"):
        fast.FusedIteration(G, D, opt_G, opt_D, k=1.5)


def test_cpu_trainer_reports_how_it_runs():
    (G, D), _ = players(np.float32)
    trainer = FusedTrainer(G, D)
    trainer.iteration(*batches(np.random.default_rng(8), 4, 1, np.float32))
    assert trainer.captured is False and trainer.mode == "NumPy"


# --- benchmarks/bench_step.py: what it says when it cannot run, and eager rows ----------------------

from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_bench_step_without_torch_is_one_line_naming_the_extra():
    shim = ("import runpy, sys; sys.modules['torch'] = None; "  # makes `import torch` raise ImportError
            "sys.argv = ['bench_step.py', '--device', 'cpu']; "
            "runpy.run_path('benchmarks/bench_step.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", shim], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert 'pip install -e ".[bench]"' in err and "PyTorch" in err


def load_bench_step():
    pytest.importorskip("torch")
    return load_script("benchmarks/bench_step.py", "bench_step")


def test_bench_step_marks_a_fast_row_that_ran_eagerly(capsys):
    bench_step = load_bench_step()
    row = {"median_ms": 1.0, "p25_ms": 0.9, "p75_ms": 1.1, "cpu_median_ms": 1.0, "ratio_to_peer": None}
    results = [dict(row, implementation="minigan fast", batch_size=64, captured=True, graph_expected=True),
               dict(row, implementation="minigan fast", batch_size=128, captured=False, graph_expected=True,
                    mode="eager (CUDA graph capture failed: NotImplementedError: cuRAND)"),
               dict(row, implementation="minigan", batch_size=64, captured=False, graph_expected=False)]
    bench_step.print_table(results, [64, 128], "test")
    out = capsys.readouterr().out
    assert out.count("EAGER") == 2  # the B=128 cell, and the warning line under the table
    assert "WARNING: minigan fast at B=128 ran EAGER, not as a CUDA graph: eager (CUDA graph capture failed" in out
    assert [bench_step.ran_eager(r) for r in results] == [False, True, False]


def test_bench_step_gemm_floor_replays_exactly_the_products_of_one_fused_iteration():
    """The floor row runs the fused iteration's GEMMs and nothing else: 15 products for a D step
    (G forward 4, D forward 4, D's weight gradients 4, D's input gradients below its first layer 3)
    and 19 for the G step (G and D forward 8, through D to its input 4, G's weight gradients 4 and
    input gradients 3); a replay writes every product's output again and runs nothing else."""
    bench_step = load_bench_step()
    setup = bench_step.make_setup(8, 1, "nonsaturating", "cpu", seed=0)
    runner = bench_step.make_gemm_floor(setup)
    assert runner.name == "GEMMs alone" and runner.peer == "torch"
    assert runner.mode() == "34 products replayed, nothing else"
    trainer, products = runner.keep
    assert len(products) == 34
    params = [trainer.G.params.copy(), trainer.D.params.copy()]
    for _, _, out, _, _ in products:
        out[...] = np.nan
    runner.iteration()
    # Every product's output was written again by the replay, and nothing else ran: no Adam step
    # moved a parameter.
    assert all(np.isfinite(out).all() for _, _, out, _, _ in products)
    np.testing.assert_array_equal(trainer.G.params, params[0])
    np.testing.assert_array_equal(trainer.D.params, params[1])
    a, b, out, trans_a, trans_b = products[-1]
    np.testing.assert_allclose(out, (a.T if trans_a else a) @ (b.T if trans_b else b), rtol=1e-5, atol=1e-6)
    with pytest.raises(bench_step.Unavailable, match="measured on the CPU"):
        bench_step.make_gemm_floor(bench_step.Setup(8, 1, "nonsaturating", "cuda", {}, [], []))
