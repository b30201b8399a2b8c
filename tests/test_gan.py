"""The game: the losses (eq. 1-3), Algorithm 1's bookkeeping, and both configurations."""

import dataclasses
import hashlib
import math

import numpy as np
import pytest

import minigan
from minigan import Tensor, gan, nn, optim


def tiny_players(dtype=np.float64, device="cpu"):
    G = nn.Sequential(nn.Linear(3, 5, dtype=dtype, device=device), nn.Tanh(),
                      nn.Linear(5, 4, dtype=dtype, device=device))
    D = nn.Sequential(nn.Linear(4, 6, dtype=dtype, device=device), nn.LeakyReLU(0.2),
                      nn.Linear(6, 1, dtype=dtype, device=device))
    return G, D


def batch(shape, seed, dtype=np.float64, device="cpu"):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype, device=device)


# --- the losses ---------------------------------------------------------------------------------


def test_discriminator_loss_is_minus_eq2():
    real, fake = np.array([[2.0], [-1.0], [0.5]]), np.array([[-3.0], [0.2], [1.5]])
    def sigmoid(logit):
        return 1 / (1 + np.exp(-logit))

    eq2 = np.mean(np.log(sigmoid(real))) + np.mean(np.log(1 - sigmoid(fake)))
    loss = gan.discriminator_loss(Tensor(real), Tensor(fake))
    assert loss.item() == pytest.approx(-eq2, rel=1e-12)


def test_generator_losses_match_their_definitions():
    fake = np.array([[-3.0], [0.2], [1.5]])
    d = 1 / (1 + np.exp(-fake))
    assert gan.generator_loss(Tensor(fake), "minimax").item() == pytest.approx(np.mean(np.log(1 - d)), rel=1e-12)
    assert gan.generator_loss(Tensor(fake), "nonsaturating").item() == pytest.approx(-np.mean(np.log(d)), rel=1e-12)
    with pytest.raises(ValueError, match="unknown loss 'wasserstein'"):
        gan.generator_loss(Tensor(fake), "wasserstein")


def test_losses_stay_finite_when_d_is_certain():
    certain = Tensor(np.array([[1000.0], [-1000.0]], dtype=np.float32))
    for value in (gan.discriminator_loss(certain, certain), gan.generator_loss(certain, "minimax"),
                  gan.generator_loss(certain, "nonsaturating")):
        assert np.isfinite(value.item())
    # log D(x) for D(x) = σ(-1000) is -1000, exactly, not -inf.
    assert gan.generator_loss(Tensor(np.array([[-1000.0]])), "nonsaturating").item() == pytest.approx(1000.0)


@pytest.mark.parametrize("loss", ["minimax", "nonsaturating"])
def test_losses_gradcheck_both_players(loss, device):
    G, D = tiny_players(device=device)
    x, z = batch((7, 4), 1, device=device), batch((7, 3), 2, device=device)
    params = G.parameters() + D.parameters()
    minigan.gradcheck(lambda *_: gan.discriminator_loss(D(x), D(G(z))), params)
    minigan.gradcheck(lambda *_: gan.generator_loss(D(G(z)), loss), params)


def test_nonsaturating_loss_exists_because_eq3_saturates():
    """When D confidently rejects fakes, D(G(z)) ≈ 1e-3, eq. 3 barely moves G; −log D(G(z)) does."""
    D = nn.Linear(4, 1, dtype=np.float64)
    D.weight.data[:] = 0.0
    D.bias.data[:] = math.log(1e-3 / (1 - 1e-3))  # D(anything) = 1e-3
    D.weight.data[:, 0] = 1e-6  # a small dependence on the input, so that there is a gradient
    grads = {}
    for loss in ("minimax", "nonsaturating"):
        fake = Tensor(np.random.default_rng(0).standard_normal((5, 4)), requires_grad=True)
        gan.generator_loss(D(fake), loss).backward()
        grads[loss] = np.linalg.norm(fake.grad)
    d_fake = 1 / (1 + np.exp(-(np.random.default_rng(0).standard_normal((5, 4)) @ D.weight.data + D.bias.data)))
    # Both gradients pass through the same Jacobian of D; per sample they differ by σ/(1−σ).
    assert grads["minimax"] / grads["nonsaturating"] == pytest.approx(np.mean(d_fake / (1 - d_fake)), rel=1e-4)
    assert grads["minimax"] / grads["nonsaturating"] < 2e-3


# --- Algorithm 1 ---------------------------------------------------------------------------------


class CountingSGD(optim.SGD):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def step(self):
        self.calls += 1
        super().step()


@pytest.mark.parametrize("k", [1, 3])
def test_train_iteration_makes_k_discriminator_updates_per_generator_update(k):
    G, D = tiny_players()
    opt_G, opt_D = CountingSGD(G.parameters(), lr=0.1), CountingSGD(D.parameters(), lr=0.1)
    draws = {"data": 0, "noise": 0}

    def sample_data():
        draws["data"] += 1
        return batch((8, 4), draws["data"])

    def sample_noise():
        draws["noise"] += 1
        return batch((8, 3), 100 + draws["noise"])

    before = [p.data.copy() for p in D.parameters()]
    gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k=k, loss="nonsaturating")
    assert (opt_D.calls, opt_G.calls) == (k, 1)
    assert draws == {"data": k, "noise": k + 1}
    assert all(not np.array_equal(b, p.data) for b, p in zip(before, D.parameters()))


def test_discriminator_step_leaves_generator_untouched():
    G, D = tiny_players()
    opt_D = optim.SGD(D.parameters(), lr=0.1)
    G_before = [p.data.copy() for p in G.parameters()]
    gan.discriminator_step(G, D, opt_D, batch((8, 4), 1), batch((8, 3), 2))
    assert all(p.grad is None for p in G.parameters())
    assert all(np.array_equal(b, p.data) for b, p in zip(G_before, G.parameters()))
    assert all(p.grad is not None for p in D.parameters())


def test_discriminator_step_runs_d_on_the_data_and_on_the_fakes_as_eq2s_two_terms():
    """Two passes, D(x) and D(G(z)), and the loss and D's gradient from both logits."""
    G, D = tiny_players()
    seen = []

    class Recorded(nn.Module):
        def __init__(self, inner):
            self.inner = inner

        def forward(self, x):
            seen.append(x.shape)
            return self.inner(x)

    x, z = batch((5, 4), 1), batch((3, 3), 2)
    stats = gan.discriminator_step(G, Recorded(D), optim.SGD(D.parameters(), lr=0.0), x, z)
    assert seen == [(5, 4), (3, 4)]
    G2, D2 = tiny_players()
    for p, q in zip(G.parameters() + D.parameters(), G2.parameters() + D2.parameters()):
        q.data = p.data.copy()
    real, fake = D2(x), D2(G2(z))
    expected = gan.discriminator_loss(real, fake)
    expected.backward()
    assert stats["d_loss"] == pytest.approx(expected.item(), rel=1e-15)
    np.testing.assert_array_equal(stats["d_real_logits"], real.data)
    np.testing.assert_array_equal(stats["d_fake_logits"], fake.data)
    for p, q in zip(D.parameters(), D2.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-13, atol=1e-16)


def test_generator_step_leaves_no_gradient_in_discriminator():
    G, D = tiny_players()
    opt_G, opt_D = optim.SGD(G.parameters(), lr=0.1), optim.SGD(D.parameters(), lr=0.1)
    gan.discriminator_step(G, D, opt_D, batch((8, 4), 1), batch((8, 3), 2))
    d_grads = [p.grad.copy() for p in D.parameters()]
    d_params = [p.data.copy() for p in D.parameters()]
    gan.generator_step(G, D, opt_G, batch((8, 3), 3), "nonsaturating")
    assert all(np.array_equal(g, p.grad) for g, p in zip(d_grads, D.parameters()))
    assert all(np.array_equal(v, p.data) for v, p in zip(d_params, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())  # unfrozen again afterwards
    assert all(p.grad is not None for p in G.parameters())


def test_generator_step_gradient_matches_a_direct_backward():
    """Freezing D must not change G's gradient."""
    G, D = tiny_players()
    z = batch((8, 3), 3)
    gan.generator_loss(D(G(z)), "minimax").backward()
    expected = [p.grad.copy() for p in G.parameters()]
    G.zero_grad()
    gan.generator_step(G, D, optim.SGD(G.parameters(), lr=0.0), z, "minimax")
    for e, p in zip(expected, G.parameters()):
        np.testing.assert_allclose(p.grad, e, rtol=1e-12)


# --- the configurations --------------------------------------------------------------------------


def test_reference_config_shapes_and_optimizers():
    config = gan.CONFIGS["reference"]
    G, D = gan.build_generator(config), gan.build_discriminator(config)
    assert [p.shape for p in G.parameters()][::2] == [(100, 256), (256, 512), (512, 1024), (1024, 784)]
    assert [p.shape for p in D.parameters()][::2] == [(784, 1024), (1024, 512), (512, 256), (256, 1)]
    z = gan.sample_noise(config, 5, np.random.default_rng(0))
    fake = G(z)
    assert fake.shape == (5, 784) and fake.dtype == np.float32
    assert np.all(np.abs(fake.data) <= 1)
    assert D(fake).shape == (5, 1)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    assert isinstance(opt_G, optim.Adam) and (opt_G.lr, opt_G.betas) == (2e-4, (0.5, 0.999))


def test_paper_config_matches_the_authors_setup():
    config = gan.CONFIGS["paper"]
    mean = np.full(784, 0.13)
    mean[0] = 0.0  # clipped to 1e-7 before the logit
    G, D = gan.build_generator(config, pixel_mean=mean), gan.build_discriminator(config)
    assert [p.shape for p in G.parameters()][::2] == [(100, 1200), (1200, 1200), (1200, 784)]
    assert max(np.abs(p.data).max() for p in G.parameters()[::2]) <= 0.05
    assert max(np.abs(p.data).max() for p in D.parameters()[::2]) <= 0.005
    out_bias = G.parameters()[-1].data
    assert out_bias[1] == pytest.approx(math.log(0.13 / 0.87), rel=1e-6)
    assert out_bias[0] == pytest.approx(math.log(1e-7 / (1 - 1e-7)), rel=1e-5)
    assert [type(layer).__name__ for layer in D] == ["Dropout", "Maxout", "Dropout", "Maxout", "Dropout", "Linear"]
    assert [layer.p for layer in D if isinstance(layer, nn.Dropout)] == [0.2, 0.5, 0.5]
    # mnist.yaml's `noise: "uniform"`: the authors' Generator draws it as U(−√3, √3), unit variance.
    assert config.noise == "uniform" and gan.CONFIGS["reference"].noise == "normal"
    z = gan.sample_noise(config, 2000, np.random.default_rng(0))
    assert z.data.mean() == pytest.approx(0.0, abs=0.01) and z.data.var() == pytest.approx(1.0, abs=0.02)
    assert np.abs(z.data).max() <= math.sqrt(3)
    counts, _ = np.histogram(z.data, bins=10, range=(-math.sqrt(3), math.sqrt(3)))
    np.testing.assert_allclose(counts / z.data.size, 0.1, atol=0.005)  # flat, as a normal prior is not
    assert config.update == "simultaneous" and gan.CONFIGS["reference"].update == "alternating"
    assert D(G(z[:7])).shape == (7, 1)


@pytest.mark.parametrize("noise", gan.NOISES)
def test_sample_noise_draws_the_configs_prior(noise):
    config = dataclasses.replace(gan.CONFIGS["paper"], noise=noise)
    z = gan.sample_noise(config, 20000, np.random.default_rng(1)).data
    assert z.shape == (20000, 100) and z.dtype == np.float32
    assert z.mean() == pytest.approx(0.0, abs=0.01) and z.var() == pytest.approx(1.0, abs=0.02)
    beyond = np.mean(np.abs(z) > math.sqrt(3))  # a normal prior puts 8.3% of its mass there, a uniform none
    assert beyond == (0.0 if noise == "uniform" else pytest.approx(0.0833, abs=0.003))


def test_sample_noise_refuses_an_unknown_prior():
    config = dataclasses.replace(gan.CONFIGS["paper"], noise="laplace")
    with pytest.raises(ValueError, match="unknown noise prior 'laplace'"):
        gan.sample_noise(config, 2, np.random.default_rng(0))


def test_paper_optimizers_halve_d_rate_as_the_authors_halve_its_objective():
    config = gan.CONFIGS["paper"]
    G, D = gan.build_generator(config), gan.build_discriminator(config)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    assert isinstance(opt_D, optim.SGD) and (opt_G.lr, opt_D.lr) == (0.1, 0.05)
    assert opt_G.momentum == opt_D.momentum == 0.5
    # SGD with momentum on loss/2 at lr moves exactly as on loss at lr/2.
    x = Tensor(np.linspace(-1, 1, 6), requires_grad=True, dtype=np.float64)
    y = Tensor(x.data.copy(), requires_grad=True)
    halved, full = optim.SGD([x], lr=0.1, momentum=0.5), optim.SGD([y], lr=0.05, momentum=0.5)
    for _ in range(3):
        for t, opt, scale in ((x, halved, 0.5), (y, full, 1.0)):
            opt.zero_grad()
            ((t * t).sum() * scale).backward()
            opt.step()
    np.testing.assert_allclose(x.data, y.data, rtol=1e-15)


def test_paper_schedule_decays_lr_and_ramps_momentum():
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.1, momentum=0.5)
    gan.paper_schedule(opt, epoch=1)
    assert opt.lr == pytest.approx(0.1 / 1.000004) and opt.momentum == pytest.approx(0.5)
    gan.paper_schedule(opt, epoch=125.5)
    assert opt.momentum == pytest.approx(0.6)
    gan.paper_schedule(opt, epoch=400)
    assert opt.momentum == pytest.approx(0.7)
    opt.lr = 1.0000001e-6
    gan.paper_schedule(opt, epoch=400)
    assert opt.lr == 1e-6
    opt.lr = 5.0000001e-7
    gan.paper_schedule(opt, epoch=400, scale=0.5)
    assert opt.lr == 5e-7


# --- the authors' simultaneous update ------------------------------------------------------------


def players_with_dropout(seed, dtype=np.float64):
    """Tiny G and a D with dropout, so that sharing D's masks between the two gradients matters."""
    minigan.manual_seed(seed)
    G = nn.Sequential(nn.Linear(3, 5, dtype=dtype), nn.ReLU(), nn.Linear(5, 4, dtype=dtype), nn.Sigmoid())
    D = nn.Sequential(nn.Dropout(0.2), nn.Maxout(4, 3, pieces=2, dtype=dtype), nn.Dropout(0.5),
                      nn.Linear(3, 1, dtype=dtype))
    return G, D


def test_simultaneous_step_equals_the_hand_computed_authors_step():
    x, z = batch((6, 4), 1), batch((6, 3), 2)
    G, D = players_with_dropout(0)
    opt_G, opt_D = optim.SGD(G.parameters(), lr=0.1, momentum=0.5), optim.SGD(D.parameters(), lr=0.05, momentum=0.5)
    minigan.manual_seed(7)  # the dropout masks of the step
    gan.simultaneous_step(G, D, opt_G, opt_D, x, z, "nonsaturating")

    # By hand: one pass of D over [x; G(z)] with the same masks; D's gradient of eq. 2's loss with G's
    # output held constant, and G's gradient of −log D(G(z)) through that same pass, D's params held.
    G2, D2 = players_with_dropout(0)
    before_G, before_D = [p.data.copy() for p in G2.parameters()], [p.data.copy() for p in D2.parameters()]
    minigan.manual_seed(7)
    logits = D2(minigan.concatenate([x, G2(z)]))
    real, fake = logits[:6], logits[6:]
    d_grads = [g for g in _grads(gan.discriminator_loss(real, fake), D2.parameters())]
    g_grads = [g for g in _grads(gan.generator_loss(fake, "nonsaturating"), G2.parameters())]
    for p, p0, g in zip(D.parameters(), before_D, d_grads):
        np.testing.assert_allclose(p.data, p0 - 0.05 * g, rtol=1e-12, atol=1e-15)
    for p, p0, g in zip(G.parameters(), before_G, g_grads):
        np.testing.assert_allclose(p.data, p0 - 0.1 * g, rtol=1e-12, atol=1e-15)


def _grads(loss, params):
    """d loss / d params, each alone (other leaves' .grad are cleared first and afterwards)."""
    for p in params:
        p.grad = None
    loss.backward(retain_graph=True)
    grads = [p.grad.copy() for p in params]
    for p in params:
        p.grad = None
    return grads


def test_simultaneous_step_moves_both_players_from_the_same_point():
    """G's step answers D as it was before D's step, unlike Algorithm 1's box, where G answers the updated D."""
    x, z = batch((6, 4), 3), batch((6, 3), 4)
    results = {}
    for update in ("simultaneous", "alternating"):
        minigan.manual_seed(0)
        G, D = tiny_players()
        G0 = [p.data.copy() for p in G.parameters()]
        opt_G, opt_D = optim.SGD(G.parameters(), lr=0.5), optim.SGD(D.parameters(), lr=0.5)
        if update == "simultaneous":
            gan.simultaneous_step(G, D, opt_G, opt_D, x, z, "nonsaturating")
        else:
            gan.discriminator_step(G, D, opt_D, x, z)
            gan.generator_step(G, D, opt_G, z, "nonsaturating")
        results[update] = [p.data - p0 for p, p0 in zip(G.parameters(), G0)]
    # The expected G move: the gradient against the *initial* D.
    minigan.manual_seed(0)
    G, D = tiny_players()
    expected = [-0.5 * g for g in _grads(gan.generator_loss(D(G(z)), "nonsaturating"), G.parameters())]
    for got, want in zip(results["simultaneous"], expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert not all(np.allclose(a, b) for a, b in zip(results["alternating"], expected))


def test_simultaneous_iteration_draws_one_minibatch_and_refuses_k_above_1():
    G, D = tiny_players()
    opt_G, opt_D = optim.SGD(G.parameters(), lr=0.1), optim.SGD(D.parameters(), lr=0.1)
    draws = []

    def sample_x():
        draws.append("x")
        return batch((5, 4), len(draws))

    def sample_z():
        draws.append("z")
        return batch((5, 3), len(draws))

    stats = gan.simultaneous_iteration(G, D, opt_G, opt_D, sample_x, sample_z, 1, "nonsaturating")
    assert sorted(draws) == ["x", "z"] and stats["d_real_logits"].shape == stats["d_fake_logits"].shape == (5, 1)
    with pytest.raises(ValueError, match="k must be 1, got 2"):
        gan.simultaneous_iteration(G, D, opt_G, opt_D, sample_x, sample_z, 2, "nonsaturating")


def test_builders_read_the_config_not_its_name():
    """A config renamed, or with other widths, builds from its fields alone."""
    import dataclasses

    renamed = dataclasses.replace(gan.CONFIGS["paper"], name="my-paper-variant")
    G, D = gan.build_generator(renamed), gan.build_discriminator(renamed)
    assert [type(layer).__name__ for layer in D] == ["Dropout", "Maxout", "Dropout", "Maxout", "Dropout", "Linear"]
    assert isinstance(gan.build_optimizers(renamed, G, D)[1], optim.SGD)
    narrow = dataclasses.replace(gan.CONFIGS["reference"], name="narrow", generator_widths=(7,),
                                 discriminator_widths=(5, 3))
    G, D = gan.build_generator(narrow), gan.build_discriminator(narrow)
    assert [p.shape for p in G.parameters()][::2] == [(100, 7), (7, 784)]
    assert [p.shape for p in D.parameters()][::2] == [(784, 5), (5, 3), (3, 1)]
    assert [type(layer).__name__ for layer in G] == ["Linear", "LeakyReLU", "Linear", "Tanh"]


# sha256 of (name, dtype, shape, bytes) over each state_dict, for G and D built with manual_seed(7)
# and a mean image of linspace(0, 1, 784): computed before Config's fields were named, so that the
# nets stay bit-identical and the paper runs' checkpoints (G.0.weight, ...) still load into them.
BUILT_NETS = {
    ("reference", "float32"): ("8ecd4f8d0023aa2161204d2f26840069856f05310dfd58de0318bbc32f83ec23",
                               "88caa280d21f14b071f9b5fc29c946b5d485d4419b31cfa0c517a5b579e1b1b2"),
    ("reference", "float64"): ("c456c2630bec86de80694db0d32e8a3e7b1330339eadba594bd4b941f285c0ab",
                               "bc394f13c00efc725bfc6fb5b88175a45d24b2a7db8bb3627049fcec8ad093ef"),
    ("paper", "float32"): ("0674329a24ec66d1158c0092fedc9c3010c8044b4110b8439db1411e6318c1f7",
                           "4dae8f28b2ef47b465ee82bffe486e38b065a4afaedcc75de017cf2ce109e5b3"),
    ("paper", "float64"): ("a4a9293c1b89b3962ebc87b38793de73823fa66bfc1c3aed94e1f63b519b2cee",
                           "75bda34d87a7acdf215e39793a55c0869315d251aa9a7e6c2833fb68fbe54801"),
}


def _state_digest(module):
    h = hashlib.sha256()
    for name, array in module.state_dict().items():
        h.update(f"{name} {array.dtype} {array.shape};".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name, dtype", sorted(BUILT_NETS))
def test_built_nets_are_bit_identical_for_a_seed(name, dtype):
    minigan.manual_seed(7)
    G = gan.build_generator(gan.CONFIGS[name], pixel_mean=np.linspace(0, 1, 784), dtype=np.dtype(dtype))
    D = gan.build_discriminator(gan.CONFIGS[name], dtype=np.dtype(dtype))
    assert (_state_digest(G), _state_digest(D)) == BUILT_NETS[name, dtype]


def test_paper_discriminator_drops_pixels_at_0_2_and_hidden_units_at_0_5():
    D = gan.build_discriminator(gan.CONFIGS["paper"])
    assert [(type(layer).__name__, getattr(layer, "p", None)) for layer in D] == [
        ("Dropout", 0.2), ("Maxout", None), ("Dropout", 0.5), ("Maxout", None), ("Dropout", 0.5), ("Linear", None)]
    assert list(gan.build_generator(gan.CONFIGS["paper"]).state_dict())[:2] == ["0.weight", "0.bias"]


def test_each_dropout_and_init_range_is_its_own_field():
    paper = gan.CONFIGS["paper"]
    no_pixel_dropout = dataclasses.replace(paper, d_input_dropout=None)
    assert [type(layer).__name__ for layer in gan.build_discriminator(no_pixel_dropout)] == [
        "Maxout", "Dropout", "Maxout", "Dropout", "Linear"]
    wide_d = dataclasses.replace(paper, d_init_range=0.5, g_init_range=0.01)
    assert np.abs(gan.build_discriminator(wide_d)[1].linear.weight.numpy()).max() > 0.1
    assert np.abs(gan.build_generator(wide_d)[0].weight.numpy()).max() <= 0.01


def test_sample_noise_draws_as_before_for_a_seed():
    """sha256 of 5 noise vectors from default_rng(3): the priors' draws, fixed for resumed runs."""
    expected = {"reference": "44f15061f83f530ba6dd9bd5f8e5ff4d6ed4d8fd99a01f73ede14961ff72354c",
                "paper": "ffeb38791ce207f03b1bb3fd1b0585802d35aaadfa6e47211117046b01299397"}
    for name, digest in expected.items():
        z = gan.sample_noise(gan.CONFIGS[name], 5, np.random.default_rng(3)).numpy()
        assert hashlib.sha256(z.tobytes()).hexdigest() == digest


def test_apply_schedule_steps_each_optimizer_once_per_update():
    config = gan.CONFIGS["paper"]
    G, D = tiny_players()
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    gan.apply_schedule(config, opt_G, opt_D, epoch=1, d_updates=3)
    assert opt_G.lr == pytest.approx(0.1 / 1.000004) and opt_D.lr == pytest.approx(0.05 / 1.000004 ** 3)
    reference = gan.CONFIGS["reference"]
    opt_G, opt_D = gan.build_optimizers(reference, G, D)
    gan.apply_schedule(reference, opt_G, opt_D, epoch=1, d_updates=1)
    assert opt_G.lr == opt_D.lr == 2e-4


def test_losses_are_exact_at_infinite_logits():
    """A D that is certain (logit ±inf) costs 0 on its side and +inf on the other, never NaN."""
    inf = np.array([[np.inf]])
    assert gan.discriminator_loss(Tensor(inf), Tensor(-inf)).item() == 0.0
    assert gan.generator_loss(Tensor(inf), "nonsaturating").item() == 0.0
    assert gan.generator_loss(Tensor(-inf), "nonsaturating").item() == np.inf
    assert gan.generator_loss(Tensor(-inf), "minimax").item() == 0.0


def test_a_frozen_module_still_lists_saves_and_loads_its_parameters():
    G, D = tiny_players()
    names = list(D.state_dict())
    with gan.frozen(D):
        assert [p.requires_grad for p in D.parameters()] == [False] * 4
        assert list(D.state_dict()) == names
        D.load_state_dict(D.state_dict())
    assert all(p.requires_grad for p in D.parameters())


def test_frozen_nests_and_restores_each_flag_as_it_was():
    G, D = tiny_players()
    D[0].bias.requires_grad = False  # frozen by the user before
    with gan.frozen(D):
        with gan.frozen(D):
            pass
        assert not any(p.requires_grad for p in D.parameters())  # the inner exit did not unfreeze
    assert D[0].bias.requires_grad is False and D[0].weight.requires_grad is True


@pytest.mark.parametrize("k, loss, update, error, message", [
    (True, "minimax", "alternating", TypeError, "k must be an integer ≥ 1, got True"),
    (1.0, "minimax", "alternating", TypeError, "k must be an integer ≥ 1, got 1.0"),
    (0, "minimax", "alternating", ValueError, "k must be an integer ≥ 1, got 0"),
    (1, "hinge", "alternating", ValueError, "unknown loss 'hinge'; use 'nonsaturating' or 'minimax'"),
    (1, "minimax", "lookahead", ValueError, "unknown update 'lookahead'; use 'alternating' or 'simultaneous'"),
    (2, "minimax", "simultaneous", ValueError, "the authors' update has no inner loop, k must be 1, got 2"),
])
def test_check_game_refuses_in_one_line_naming_the_caller(k, loss, update, error, message):
    with pytest.raises(error) as info:
        gan.check_game("my_trainer", k, loss, update)
    assert str(info.value) == f"my_trainer: {message}"


@pytest.mark.parametrize("k, update", [(1, "alternating"), (np.int64(3), "alternating"), (1, "simultaneous")])
def test_check_game_accepts_every_valid_game(k, update):
    for loss in gan.LOSSES:
        assert gan.check_game("my_trainer", k, loss, update) is None
