"""The game: the losses (eq. 1-3), Algorithm 1's bookkeeping, and both configurations."""

import math

import numpy as np
import pytest

import minigan
from minigan import Tensor, gan, nn, optim


def tiny_players(dtype=np.float64, device="cpu"):
    G = nn.Sequential(nn.Linear(3, 5, dtype=dtype, device=device), nn.Tanh(), nn.Linear(5, 4, dtype=dtype, device=device))
    D = nn.Sequential(nn.Linear(4, 6, dtype=dtype, device=device), nn.LeakyReLU(0.2), nn.Linear(6, 1, dtype=dtype, device=device))
    return G, D


def batch(shape, seed, dtype=np.float64, device="cpu"):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype, device=device)


# --- the losses ---------------------------------------------------------------------------------


def test_discriminator_loss_is_minus_eq2():
    real, fake = np.array([[2.0], [-1.0], [0.5]]), np.array([[-3.0], [0.2], [1.5]])
    sigmoid = lambda l: 1 / (1 + np.exp(-l))
    eq2 = np.mean(np.log(sigmoid(real))) + np.mean(np.log(1 - sigmoid(fake)))
    loss = gan.discriminator_loss(Tensor(real), Tensor(fake))
    assert loss.item() == pytest.approx(-eq2, rel=1e-12)


def test_generator_losses_match_their_definitions():
    fake = np.array([[-3.0], [0.2], [1.5]])
    d = 1 / (1 + np.exp(-fake))
    assert gan.generator_loss(Tensor(fake), "minimax").item() == pytest.approx(np.mean(np.log(1 - d)), rel=1e-12)
    assert gan.generator_loss(Tensor(fake), "nonsaturating").item() == pytest.approx(-np.mean(np.log(d)), rel=1e-12)
    with pytest.raises(ValueError, match="unknown kind 'wasserstein'"):
        gan.generator_loss(Tensor(fake), "wasserstein")


def test_losses_stay_finite_when_d_is_certain():
    certain = Tensor(np.array([[1000.0], [-1000.0]], dtype=np.float32))
    for value in (gan.discriminator_loss(certain, certain), gan.generator_loss(certain, "minimax"),
                  gan.generator_loss(certain, "nonsaturating")):
        assert np.isfinite(value.item())
    # log D(x) for D(x) = σ(-1000) is -1000, exactly, not -inf.
    assert gan.generator_loss(Tensor(np.array([[-1000.0]])), "nonsaturating").item() == pytest.approx(1000.0)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating"])
def test_losses_gradcheck_both_players(kind, device):
    G, D = tiny_players(device=device)
    x, z = batch((7, 4), 1, device=device), batch((7, 3), 2, device=device)
    params = G.parameters() + D.parameters()
    minigan.gradcheck(lambda *_: gan.discriminator_loss(D(x), D(G(z))), params)
    minigan.gradcheck(lambda *_: gan.generator_loss(D(G(z)), kind), params)


def test_nonsaturating_loss_exists_because_eq3_saturates():
    """When D confidently rejects fakes, D(G(z)) ≈ 1e-3, eq. 3 barely moves G; −log D(G(z)) does."""
    D = nn.Linear(4, 1, dtype=np.float64)
    D.weight.data[:] = 0.0
    D.bias.data[:] = math.log(1e-3 / (1 - 1e-3))  # D(anything) = 1e-3
    D.weight.data[:, 0] = 1e-6  # a small dependence on the input, so that there is a gradient
    grads = {}
    for kind in ("minimax", "nonsaturating"):
        fake = Tensor(np.random.default_rng(0).standard_normal((5, 4)), requires_grad=True)
        gan.generator_loss(D(fake), kind).backward()
        grads[kind] = np.linalg.norm(fake.grad)
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
    gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k=k, loss_kind="nonsaturating")
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
    z = gan.sample_noise(config, 2000, np.random.default_rng(0))
    assert np.abs(z.data).max() <= math.sqrt(3) and z.data.var() == pytest.approx(1.0, abs=0.02)
    assert D(G(z[:7])).shape == (7, 1)


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
