"""The game from Goodfellow et al. 2014 (arXiv 1406.2661): the value function, Algorithm 1.

    V(D, G) = E_x[log D(x)] + E_z[log(1 − D(G(z)))]                        (eq. 1)

D ascends V (eq. 2); G descends its half of it (eq. 3), or, in practice, descends −log D(G(z)).
D outputs a logit l, so that D(x) = σ(l). Every log of D is taken in the two loss functions, from
the logit, by nn.binary_cross_entropy_with_logits (a stable softplus, never log(sigmoid(l))):
log D(x) = −BCE(l, 1) and log(1 − D(x)) = −BCE(l, 0).

The two players and their optimizers for each setup (`reference`, `paper`) are built in
configs.py; the authors' simultaneous update closes this module.
"""

from __future__ import annotations

import contextlib

import numpy as np

from . import nn
from .configs import (CONFIGS, NOISES, Config, apply_schedule, build_discriminator, build_generator,
                      build_optimizers, paper_schedule, sample_noise)
from .nn import binary_cross_entropy_with_logits as bce
from .tensor import Tensor, concatenate, no_grad

__all__ = [  # the game's names, and configs.py's, which callers reach as gan.CONFIGS etc.
    "discriminator_loss", "generator_loss", "LOSSES", "frozen", "discriminator_step", "generator_step",
    "train_iteration", "check_game", "check_update", "simultaneous_step", "simultaneous_iteration", "UPDATES",
    "CONFIGS", "NOISES", "Config", "apply_schedule", "build_discriminator", "build_generator",
    "build_optimizers", "paper_schedule", "sample_noise"]

# --- the value function ------------------------------------------------------------------------


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """−[mean log D(x) + mean log(1 − D(G(z)))]: descending this is ascending eq. 2.

    As the authors write it: binary cross-entropy with target 1 for data and 0 for samples.
    """
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


LOSSES = ("nonsaturating", "minimax")  # the generator's two losses, below


def generator_loss(fake_logits: Tensor, loss: str = "nonsaturating") -> Tensor:
    """The quantity G descends.

    "minimax":       mean log(1 − D(G(z)))   (eq. 3, the game as written)
    "nonsaturating": mean −log D(G(z))       (the paper's practical variant)
    """
    if loss == "minimax":
        return -bce(fake_logits, 0.0)
    if loss == "nonsaturating":
        # Early on D rejects fakes confidently and log(1 − D(G(z))) saturates: its gradient
        # vanishes. −log D(G(z)) has the same fixed point but strong gradients there.
        return bce(fake_logits, 1.0)
    raise ValueError(f"generator_loss: unknown loss {loss!r}; use 'minimax' or 'nonsaturating'")


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Treat a module's parameters as constants: backward neither computes nor stores their
    gradients. Gradients still flow *through* the module to its input."""
    params = module.parameters()
    before = [p.requires_grad for p in params]  # restored as they were, so that nesting works
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad = flag


# --- Algorithm 1 -------------------------------------------------------------------------------


def discriminator_step(G, D, opt_D, x: Tensor, z: Tensor) -> dict:
    """One update of D on a batch of data x and noise z, ascending eq. 2."""
    with no_grad():  # D's update must not reach into G: the fakes are constants here
        fake = G(z)
    # eq. 2's two terms: log D(x(i)) from D on the data, log(1 − D(G(z(i)))) from D on the fakes
    real_logits, fake_logits = D(x), D(fake)
    loss = discriminator_loss(real_logits, fake_logits)
    opt_D.zero_grad()
    loss.backward()
    opt_D.step()
    return {"d_loss": loss.data, "d_real_logits": real_logits.data, "d_fake_logits": fake_logits.data}


def generator_step(G, D, opt_G, z: Tensor, loss: str) -> dict:
    """One update of G on a batch of noise z, descending eq. 3 (or the non-saturating loss)."""
    with frozen(D):  # gradients flow through D to G's output, but none is left in D
        g_loss = generator_loss(D(G(z)), loss)
        opt_G.zero_grad()
        g_loss.backward()
    opt_G.step()
    return {"g_loss": g_loss.data}


def train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k: int, loss: str) -> dict:
    """One training iteration of Algorithm 1.

    `sample_data()` and `sample_noise()` take no arguments and return the next minibatch of m data
    points or m noise vectors; m is whatever they return. Returns the last D step's and the G
    step's statistics as device arrays (no host sync): the losses, and D's logits on the real and
    fake rows ("d_real_logits", "d_fake_logits"; D(x) = σ(logit)).
    """
    check_game("train_iteration", k, loss)
    # for k steps do
    for _ in range(k):
        # Sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z).
        z = sample_noise()
        # Sample minibatch of m examples {x(1), ..., x(m)} from data generating distribution p_data(x).
        x = sample_data()
        # Update the discriminator by ascending its stochastic gradient (eq. 2):
        #   ∇_θd (1/m) Σ [log D(x(i)) + log(1 − D(G(z(i))))]
        stats = discriminator_step(G, D, opt_D, x, z)
    # Sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z).
    z = sample_noise()
    # Update the generator by descending its stochastic gradient (eq. 3):
    #   ∇_θg (1/m) Σ log(1 − D(G(z(i))))     (or −log D(G(z(i))), non-saturating)
    stats.update(generator_step(G, D, opt_G, z, loss))
    return stats


# Algorithm 1 assumes a sensible game; the checks live here, out of the box's way.
def check_game(caller: str, k, loss: str, update: str = "alternating") -> None:
    """The game's settings, checked before either player moves (an unknown loss found after D's
    step would leave D updated and G not). One-line TypeError/ValueError naming `caller`."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{caller}: k must be an integer ≥ 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{caller}: k must be an integer ≥ 1, got {k!r}")
    if loss not in LOSSES:
        raise ValueError(f"{caller}: unknown loss {loss!r}; use 'nonsaturating' or 'minimax'")
    check_update(caller, update)
    if update == "simultaneous" and k != 1:
        raise ValueError(f"{caller}: the authors' update has no inner loop, k must be 1, got {k}")


def check_update(caller: str, update: str) -> None:
    if update not in UPDATES:
        raise ValueError(f"{caller}: unknown update {update!r}; use 'alternating' or 'simultaneous'")


# --- the authors' update -----------------------------------------------------------------------


def simultaneous_step(G, D, opt_G, opt_D, x: Tensor, z: Tensor, loss: str) -> dict:
    """One update of both players from the same point, as the authors' code does it.

    goodfeli/adversarial (AdversaryCost2) runs D once on x and once on G(z) and takes both
    gradients from those outputs: D's from eq. 2, G's from −log D(G(z)) through the *same* pass
    of D (the same dropout masks), and pylearn2's SGD steps both players at once. Algorithm 1's box
    instead steps D first and lets G answer the updated D with fresh noise (`train_iteration`).
    """
    fake = G(z)
    # Cut the graph at G's output: backward from D's side stops here, and G's own backward
    # starts here, so each player receives only its own objective's gradient.
    fake_for_D = fake.detach()  # the same array, no copy
    fake_for_D.requires_grad = True
    # One pass of D over [x; G(z)] (its rows do not interact): the logits split into D(x) and
    # D(G(z)), eq. 2's two terms, and eq. 3's gradient runs back through the same dropout masks.
    logits = D(concatenate([x, fake_for_D]))
    real_logits, fake_logits = logits[:len(x)], logits[len(x):]
    d_loss = discriminator_loss(real_logits, fake_logits)
    g_loss = generator_loss(fake_logits, loss)
    opt_D.zero_grad()
    opt_G.zero_grad()
    with frozen(D):  # G's gradient flows through D's pass (its masks too), leaving D's params alone
        g_loss.backward(retain_graph=True)
    fake.backward(fake_for_D.grad)
    d_loss.backward()  # D's gradient from the same pass, at the same parameters
    opt_D.step()
    opt_G.step()
    return {"d_loss": d_loss.data, "g_loss": g_loss.data,
            "d_real_logits": real_logits.data, "d_fake_logits": fake_logits.data}


def simultaneous_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k: int, loss: str) -> dict:
    """`train_iteration`'s signature for the authors' update: one minibatch, one step of each player."""
    check_game("simultaneous_iteration", k, loss, "simultaneous")
    z = sample_noise()
    x = sample_data()
    return simultaneous_step(G, D, opt_G, opt_D, x, z, loss)


UPDATES = {"alternating": train_iteration, "simultaneous": simultaneous_iteration}
