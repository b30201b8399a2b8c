"""The paper's theory (section 4), checked on 1-D densities that we can write down exactly.

For a fixed G, the best discriminator is (Proposition 1)

    D*(x) = p_data(x) / (p_data(x) + p_g(x)),

and with it the value of the game, C(G) = max_D V(G, D), is (Theorem 1)

    C(G) = −log 4 + 2 · JSD(p_data ‖ p_g),

which is smallest, −log 4, exactly when p_g = p_data. On the real line every term is a 1-D
integral, so we evaluate them on a fine grid with the trapezoid rule and compare.

V(D, G) is evaluated *through* `gan.discriminator_loss`, the function the training loop
descends, rather than through a second copy of the formula: so when the tests find
V(D*, G) = −log 4 + 2·JSD, they have checked the loss that trains the GAN against the paper.

Densities are passed as values on a grid (NumPy float64). Discriminators are passed as logits
l(x), D(x) = σ(l(x)), as everywhere in minigan; for D* the logit is log p_data − log p_g, which
we compute from log-densities so it stays exact far in the tails where the densities underflow.
"""

from __future__ import annotations

import math

import numpy as np

from . import gan
from .tensor import Tensor, no_grad

# --- densities ---------------------------------------------------------------------------------


def gaussian_log_pdf(x, mean: float, std: float) -> np.ndarray:
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise ValueError(f"gaussian_log_pdf: need a finite mean and a finite std > 0, got mean {mean}, std {std}")
    x = np.asarray(x, dtype=np.float64)
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2.0 * math.pi))


def gaussian_pdf(x, mean: float, std: float) -> np.ndarray:
    return np.exp(gaussian_log_pdf(x, mean, std))


def trapezoid_weights(grid) -> np.ndarray:
    """w such that ∫ f(x) dx ≈ Σ_i w_i f(x_i) on the (sorted) grid: the trapezoid rule, written
    as explicit per-point weights so that the weighting in `value_function` is visible."""
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError("trapezoid_weights: grid must be a 1-D increasing array of at least 2 points")
    spacing = np.diff(grid)
    weights = np.zeros_like(grid)
    weights[:-1] += spacing / 2
    weights[1:] += spacing / 2
    return weights


def _on_grid(name: str, values, grid, densities: bool = False) -> np.ndarray:
    """`values` as float64 with one value per grid point, or a ValueError that names what is wrong.
    Densities must also be finite and ≥ 0; log-densities and logits may be −∞ (a density of 0)."""
    values = np.asarray(values, dtype=np.float64)
    size = np.asarray(grid).size
    if values.shape != (size,):
        raise ValueError(f"{name}: expected one value per grid point, shape ({size},), got {values.shape}")
    if np.isnan(values).any() or (densities and not (np.isfinite(values).all() and (values >= 0).all())):
        raise ValueError(f"{name}: {'densities must be finite and ≥ 0' if densities else 'holds NaN'}")
    return values


# --- Proposition 1: the optimal discriminator ----------------------------------------------------


def optimal_discriminator(p_data, p_g) -> np.ndarray:
    """D*(x) = p_data / (p_data + p_g). Where both densities are 0 any D is optimal; we return 1/2."""
    p_data, p_g = np.asarray(p_data, dtype=np.float64), np.asarray(p_g, dtype=np.float64)
    total = p_data + p_g
    return np.divide(p_data, total, out=np.full_like(total, 0.5), where=total > 0)


def optimal_discriminator_logit(log_p_data, log_p_g) -> np.ndarray:
    """logit D*(x) = log p_data(x) − log p_g(x): D*'s output before the sigmoid."""
    return np.asarray(log_p_data, dtype=np.float64) - np.asarray(log_p_g, dtype=np.float64)


# --- the value function, through minigan's loss -------------------------------------------------

# With D certain about one side, that side adds log 1 = 0 to eq. 1 (softplus(−∞) = 0 exactly), so
# gan.discriminator_loss then returns the other side's term alone: −log D(x) or −log(1 − D(x)).
_CERTAIN_REAL = Tensor(np.array([np.inf]))
_CERTAIN_FAKE = Tensor(np.array([-np.inf]))


def pointwise_log_d(d_logits) -> tuple[np.ndarray, np.ndarray]:
    """(log D(x_i), log(1 − D(x_i))) for each logit, read off gan.discriminator_loss.

    Each grid point is fed as a one-example batch on one side of the game, with a point that D
    is certain about on the other side.
    """
    logits = np.asarray(d_logits, dtype=np.float64).ravel()
    log_d, log_one_minus_d = np.empty_like(logits), np.empty_like(logits)
    with no_grad():
        for i, logit in enumerate(logits):
            point = Tensor(np.array([logit]))
            log_d[i] = -gan.discriminator_loss(point, _CERTAIN_FAKE).item()
            log_one_minus_d[i] = -gan.discriminator_loss(_CERTAIN_REAL, point).item()
    return log_d, log_one_minus_d


def value_function(grid, p_data, p_g, d_logits) -> float:
    """V(D, G) = ∫ p_data(x) log D(x) dx + ∫ p_g(x) log(1 − D(x)) dx     (eq. 1 as an integral)

    by the trapezoid rule: V ≈ Σ_i w_i [p_data(x_i) log D(x_i) + p_g(x_i) log(1 − D(x_i))].
    A minibatch loss averages over samples; an integral weights grid points by w_i times the
    density, so the loss is evaluated per point and the weights are applied here. Points where
    a density is 0 contribute 0 to its term (0 · log 0 = 0), even where D* puts log 0 = −∞.
    """
    weights = trapezoid_weights(grid)
    p_data, p_g = (_on_grid(f"value_function: {name}", p, grid, densities=True)
                   for name, p in (("p_data", p_data), ("p_g", p_g)))
    log_d, log_one_minus_d = pointwise_log_d(_on_grid("value_function: d_logits", d_logits, grid))
    on_data, on_g = p_data > 0, p_g > 0
    data_term = (weights[on_data] * p_data[on_data] * log_d[on_data]).sum()
    generator_term = (weights[on_g] * p_g[on_g] * log_one_minus_d[on_g]).sum()
    return float(data_term + generator_term)


# --- Theorem 1: the virtual training criterion ---------------------------------------------------


def jensen_shannon_divergence(grid, log_p, log_q) -> float:
    """JSD(p ‖ q) = ½ KL(p ‖ m) + ½ KL(q ‖ m) with m = (p + q)/2, in nats, by the trapezoid rule.

    Log-densities in, so that log(p/m) = log 2 + log p − logaddexp(log p, log q) is exact in the
    tails where p and q themselves underflow.
    """
    log_p, log_q = (_on_grid(f"jensen_shannon_divergence: {name}", values, grid)
                    for name, values in (("log_p", log_p), ("log_q", log_q)))
    log_m = np.logaddexp(log_p, log_q) - math.log(2.0)
    integrand = 0.5 * np.exp(log_p) * (log_p - log_m) + 0.5 * np.exp(log_q) * (log_q - log_m)
    return float((trapezoid_weights(grid) * integrand).sum())


def training_criterion(grid, log_p_data, log_p_g) -> float:
    """C(G) = V(D*_G, G): the value of the game when D is the best response to G (eq. 4)."""
    d_star_logits = optimal_discriminator_logit(log_p_data, log_p_g)
    return value_function(grid, np.exp(log_p_data), np.exp(log_p_g), d_star_logits)
