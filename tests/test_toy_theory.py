"""The paper's section 4 on 1-D Gaussians: Proposition 1 (D*) and Theorem 1 (C(G) = −log 4 + 2·JSD).

The JSD on the right-hand side is computed independently, by Simpson's rule on a grid fifty times
finer than the one minigan.toy integrates on, while V(D*, G) on the left goes through minigan's
own discriminator loss: the two agree only if that loss really is −V of eq. 1.
"""

import math

import numpy as np
import pytest

from minigan import Tensor, backend, gan, nn, optim, toy

DATA = (4.0, 0.5)  # p_data = N(4, 0.5), the mean and std of the example in examples/toy_1d.py
# Spacing 0.025, a twelfth of the narrowest std below (0.3): for smooth integrands that decay to
# ~0 well inside the ends, the trapezoid rule is then accurate far beyond the 1e-6 we ask for.
GRID = np.linspace(-20.0, 30.0, 2001)


def reference_jsd(p, q) -> float:
    """JSD(p ‖ q) in nats for two Gaussians given as (mean, std): composite Simpson's rule on
    100,001 points spanning ±12 std of both, with the densities written out here."""
    low = min(p[0] - 12 * p[1], q[0] - 12 * q[1])
    high = max(p[0] + 12 * p[1], q[0] + 12 * q[1])
    x = np.linspace(low, high, 100_001)

    def log_pdf(mean, std):
        return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))

    log_p, log_q = log_pdf(*p), log_pdf(*q)
    log_m = np.logaddexp(log_p, log_q) - math.log(2)
    f = 0.5 * np.exp(log_p) * (log_p - log_m) + 0.5 * np.exp(log_q) * (log_q - log_m)
    h = x[1] - x[0]
    return float(h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))


# --- Theorem 1 -----------------------------------------------------------------------------------


def test_criterion_is_minus_log4_when_pg_equals_pdata():
    log_p = toy.gaussian_log_pdf(GRID, *DATA)
    assert toy.training_criterion(GRID, log_p, log_p) == pytest.approx(-math.log(4), abs=1e-9)
    assert toy.jensen_shannon_divergence(GRID, log_p, log_p) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("generator", [(3.0, 1.0), (4.5, 0.5), (0.0, 2.0), (-6.0, 0.3)])
def test_criterion_is_minus_log4_plus_twice_jsd(generator):
    log_p_data = toy.gaussian_log_pdf(GRID, *DATA)
    log_p_g = toy.gaussian_log_pdf(GRID, *generator)
    criterion = toy.training_criterion(GRID, log_p_data, log_p_g)
    jsd = reference_jsd(DATA, generator)
    assert criterion == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-6)
    # and it is strictly above the global minimum when p_g ≠ p_data (JSD > 0), below 0 (JSD < log 2)
    assert -math.log(4) + 1e-3 < criterion < 0


def test_grid_jsd_matches_a_fine_simpson_reference():
    log_p, log_q = toy.gaussian_log_pdf(GRID, *DATA), toy.gaussian_log_pdf(GRID, 3.0, 1.0)
    assert toy.jensen_shannon_divergence(GRID, log_p, log_q) == pytest.approx(reference_jsd(DATA, (3.0, 1.0)), abs=1e-8)


def test_value_function_matches_eq1_written_out():
    """V through the loss equals ∫ p_data log D + p_g log(1 − D), written directly, for some D ≠ D*."""
    p_data, p_g = toy.gaussian_pdf(GRID, *DATA), toy.gaussian_pdf(GRID, 3.0, 1.0)
    logits = 0.3 * (GRID - 3.5)
    d = 1 / (1 + np.exp(-logits))
    direct = np.trapezoid(p_data * np.log(d) + p_g * np.log1p(-d), GRID)
    assert toy.value_function(GRID, p_data, p_g, logits) == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize("perturbation", [lambda z: z + 0.5, lambda z: 0.5 * z, lambda z: z - 0.3 * np.sin(z)])
def test_d_star_maximises_the_value_function(perturbation):
    """Proposition 1 in the value function itself: moving D away from D* lowers V."""
    log_p_data, log_p_g = toy.gaussian_log_pdf(GRID, *DATA), toy.gaussian_log_pdf(GRID, 3.0, 1.0)
    best = toy.optimal_discriminator_logit(log_p_data, log_p_g)
    p_data, p_g = np.exp(log_p_data), np.exp(log_p_g)
    assert (toy.value_function(GRID, p_data, p_g, perturbation(best))
            < toy.value_function(GRID, p_data, p_g, best) - 1e-4)


def test_zero_density_contributes_nothing_even_where_log_d_is_minus_infinity():
    # Disjoint supports at the ends: there D* is certain, log D* or log(1 − D*) is −∞, and the
    # density in front of it is 0. Trapezoid weights on this grid are ½, 1, ½.
    grid = np.array([0.0, 1.0, 2.0])
    p_data, p_g = np.array([0.0, 0.5, 0.5]), np.array([0.5, 0.5, 0.0])
    with np.errstate(divide="ignore"):
        logits = toy.optimal_discriminator_logit(np.log(p_data), np.log(p_g))
    assert logits.tolist() == [-np.inf, 0.0, np.inf]
    # Only the middle point, where D* = ½, adds anything: 1 · (0.5 log ½ + 0.5 log ½) = −log 2.
    assert toy.value_function(grid, p_data, p_g, logits) == pytest.approx(-math.log(2), rel=1e-12)


# --- Proposition 1, by training ------------------------------------------------------------------


def test_trained_discriminator_approaches_d_star():
    """Freeze G(z) = a·z + b with z ~ N(0, 1), so p_g = N(b, |a|); train only D; compare with D*."""
    a, b = 1.0, 3.0
    backend.manual_seed(0)
    G = nn.Linear(1, 1)
    G.weight.data[...], G.bias.data[...] = a, b
    D = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    opt_D = optim.Adam(D.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    m, steps = 256, 2000
    for step in range(steps):
        # Fresh samples every step, and a learning rate falling to ~0: D ends up at the optimum of
        # the expected loss rather than jittering around it with the last minibatches' noise.
        opt_D.lr = 1e-2 * (1 - step / steps) + 1e-4
        x = Tensor((DATA[0] + DATA[1] * rng.standard_normal((m, 1))).astype(np.float32))
        z = Tensor(rng.standard_normal((m, 1)).astype(np.float32))
        gan.discriminator_step(G, D, opt_D, x, z)

    # Where both densities are at least 1/16 of their peaks (x in about [2.8, 5.0]): elsewhere one
    # of them has almost no samples and D is barely constrained.
    grid = np.linspace(2.0, 6.0, 401)
    p_data, p_g = toy.gaussian_pdf(grid, *DATA), toy.gaussian_pdf(grid, b, abs(a))
    both = (p_data > p_data.max() / 16) & (p_g > p_g.max() / 16)
    d_star = toy.optimal_discriminator(p_data, p_g)
    d = D(Tensor(grid[:, None].astype(np.float32))).sigmoid().numpy().ravel()
    error = np.abs(d - d_star)[both]
    assert both.sum() > 100
    assert error.max() < 0.05, f"max |D − D*| = {error.max():.3f} at x = {grid[both][error.argmax()]:.2f}"
    # D* is far from constant here (from ~0.1 to ~0.8), so matching it is not an accident.
    assert d_star[both].max() - d_star[both].min() > 0.5


def test_optimal_discriminator_is_a_half_where_densities_agree_or_vanish():
    d_star = toy.optimal_discriminator(np.array([0.2, 0.0, 0.3]), np.array([0.2, 0.0, 0.1]))
    assert d_star == pytest.approx([0.5, 0.5, 0.75])


# --- bad inputs: one line that names the mistake -----------------------------------------------------


def message_of(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


SMALL = np.linspace(0.0, 1.0, 5)


@pytest.mark.parametrize("mean, std", [(0.0, 0.0), (0.0, -1.0), (0.0, math.nan), (math.inf, 1.0)])
def test_a_gaussian_needs_a_finite_mean_and_a_positive_std(mean, std):
    assert "gaussian_log_pdf: need a finite mean and a finite std > 0" in message_of(
        lambda: toy.gaussian_log_pdf(SMALL, mean, std))


def test_jsd_refuses_densities_off_the_grid_or_nan():
    good = toy.gaussian_log_pdf(SMALL, 0.5, 0.2)
    assert message_of(lambda: toy.jensen_shannon_divergence(SMALL, good[:4], good)) == (
        "jensen_shannon_divergence: log_p: expected one value per grid point, shape (5,), got (4,)")
    with_nan = good.copy()
    with_nan[2] = np.nan
    assert message_of(lambda: toy.jensen_shannon_divergence(SMALL, good, with_nan)) == \
        "jensen_shannon_divergence: log_q: holds NaN"


def test_value_function_refuses_negative_densities_and_misshapen_logits():
    p = toy.gaussian_pdf(SMALL, 0.5, 0.2)
    assert message_of(lambda: toy.value_function(SMALL, -p, p, np.zeros(5))) == \
        "value_function: p_data: densities must be finite and ≥ 0"
    assert "value_function: d_logits: expected one value per grid point" in message_of(
        lambda: toy.value_function(SMALL, p, p, np.zeros(3)))
