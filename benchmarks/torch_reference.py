"""The `reference` GAN written in PyTorch: the yardstick minigan is checked and timed against.

This is the usual torch MNIST GAN, written to compute exactly what minigan's `reference` config
computes (minigan/gan.py), so that tests/test_reference_parity.py can compare the two parameter by
parameter and benchmarks/bench_step.py can time like against like:

    G: z (100) -> 256 -> 512 -> 1024 -> 784, LeakyReLU(0.2) between layers, Tanh at the end
    D: x (784) -> 1024 -> 512 -> 256 -> 1,   LeakyReLU(0.2) between layers, Sigmoid at the end
    losses: binary cross-entropy; Adam(lr 2e-4, betas (0.5, 0.999)) for both players
    Algorithm 1: k discriminator steps on G(z).detach(), then one generator step

Two things differ from minigan only in form, not in the maths:
- D keeps its explicit `Sigmoid` module, as the reference does, but the losses are computed with
  `BCEWithLogitsLoss` on the logit *before* that Sigmoid (`discriminator_logit`). That is the same
  stable softplus form minigan uses: BCE(l, 1) = softplus(−l) = −log σ(l) and
  BCE(l, 0) = softplus(l) = −log(1 − σ(l)).
- torch's `nn.Linear` stores its weight as (out_features, in_features) and computes x @ Wᵀ + b;
  minigan's stores (in_features, out_features) and computes x @ W + b. `load_minigan_weights`
  and `minigan_state_dict` transpose between the two.

    G, D = build_generator(), build_discriminator()
    load_minigan_weights(G, minigan_G)          # start from minigan's initial weights
    opt_G, opt_D = build_optimizers(G, D)
    stats = train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise_batch, k=1,
                            loss="nonsaturating")

Two schedules over an epoch of minibatches (`train_epoch`, `SCHEDULES`):
- "k1": Algorithm 1 at k = 1, one iteration per minibatch: a D step on it, then a G step on fresh
  noise. 468 minibatches of 128 give 468 D steps and 468 G steps.
- "every5": the schedule of the torch MNIST script many users call "the reference" (`every5_epoch`):
  4 of every 5 minibatches give a D step; the 5th gives only a G step, which re-scores the fakes of
  the last D step with the updated D and backpropagates through the graph those fakes were made
  with (no new noise, no new forward pass of G), and its real images are never used.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

NOISE_DIM = 100
IMAGE_SIZE = 28 * 28

# --- the two nets ------------------------------------------------------------------------------


def build_generator(dtype=torch.float32, device="cpu") -> nn.Sequential:
    """G: 100 -> 784 with a Tanh output, for pixels scaled to [-1, 1]."""
    return nn.Sequential(
        nn.Linear(NOISE_DIM, 256), nn.LeakyReLU(0.2),
        nn.Linear(256, 512), nn.LeakyReLU(0.2),
        nn.Linear(512, 1024), nn.LeakyReLU(0.2),
        nn.Linear(1024, IMAGE_SIZE), nn.Tanh(),
    ).to(dtype=dtype, device=device)


def build_discriminator(dtype=torch.float32, device="cpu") -> nn.Sequential:
    """D: 784 -> the probability that the input is real. Sigmoid has no parameters, so the
    parameter names ("0.weight" ... "6.bias") are the same as minigan's logit-only D."""
    return nn.Sequential(
        nn.Linear(IMAGE_SIZE, 1024), nn.LeakyReLU(0.2),
        nn.Linear(1024, 512), nn.LeakyReLU(0.2),
        nn.Linear(512, 256), nn.LeakyReLU(0.2),
        nn.Linear(256, 1), nn.Sigmoid(),
    ).to(dtype=dtype, device=device)


def discriminator_logit(D: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """D's output before its final Sigmoid: the losses take this, so log D never rounds to log 0."""
    *body, _sigmoid = D
    for layer in body:
        x = layer(x)
    return x


def build_optimizers(G: nn.Module, D: nn.Module, capturable: bool = False):
    """(G's optimizer, D's optimizer). `capturable` keeps Adam's step count on the GPU, which a
    CUDA graph needs (a Python step count would be frozen into the graph at capture)."""
    return (torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), capturable=capturable),
            torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), capturable=capturable))


# --- weights to and from minigan ---------------------------------------------------------------


def load_minigan_weights(module: nn.Module, source) -> None:
    """Copy a minigan model's parameters (or its `state_dict()`) into `module`, in place.

    minigan's Linear weight is (in, out) and torch's is (out, in), so weights are transposed.
    Values are cast to `module`'s dtype and moved to its device.
    """
    state = source if isinstance(source, dict) else source.state_dict()
    own = module.state_dict()  # these tensors share storage with the parameters
    if set(own) != set(state):
        raise ValueError(f"load_minigan_weights: parameter names differ: torch has {sorted(own)}, "
                         f"minigan has {sorted(state)}")
    with torch.no_grad():
        for name, tensor in own.items():
            value = np.asarray(_to_numpy(state[name]))
            if name.endswith("weight"):
                value = value.T
            if value.shape != tuple(tensor.shape):
                raise ValueError(f"load_minigan_weights: {name} is {value.shape} after transposing, "
                                 f"torch expects {tuple(tensor.shape)}")
            tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def minigan_state_dict(module: nn.Module) -> dict[str, np.ndarray]:
    """The inverse: host copies of `module`'s parameters in minigan's layout (weights (in, out))."""
    state = {}
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().numpy()
        state[name] = np.ascontiguousarray(value.T if name.endswith("weight") else value)
    return state


def _to_numpy(array):
    """NumPy arrays pass through; CuPy arrays (a minigan model on the GPU) come to the host."""
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else array


# --- the value function ------------------------------------------------------------------------

_bce = nn.BCEWithLogitsLoss()  # mean over the batch of −[t log σ(l) + (1 − t) log(1 − σ(l))]


def discriminator_loss(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """BCE(D(x), 1) + BCE(D(G(z)), 0) = −[mean log D(x) + mean log(1 − D(G(z)))] (minus eq. 2)."""
    return _bce(real_logit, torch.ones_like(real_logit)) + _bce(fake_logit, torch.zeros_like(fake_logit))


def generator_loss(fake_logit: torch.Tensor, loss: str = "nonsaturating") -> torch.Tensor:
    """"nonsaturating": BCE(D(G(z)), 1) = mean −log D(G(z)), the paper's practical variant;
    "minimax": −BCE(D(G(z)), 0) = mean log(1 − D(G(z))), eq. 3 as written."""
    if loss == "nonsaturating":
        return _bce(fake_logit, torch.ones_like(fake_logit))
    if loss == "minimax":
        return -_bce(fake_logit, torch.zeros_like(fake_logit))
    raise ValueError(f"generator_loss: unknown loss {loss!r}; use 'minimax' or 'nonsaturating'")


# --- Algorithm 1 -------------------------------------------------------------------------------


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Gradients flow through `module` to its input, but none is computed for its parameters.

    minigan's generator step does the same (gan.frozen). Without it torch would also compute D's
    weight gradients in G's step (about a sixth of that step's arithmetic) only to discard them at
    D's next zero_grad: the same result, slower.
    """
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def discriminator_step(G, D, opt_D, x: torch.Tensor, z: torch.Tensor) -> dict:
    """One update of D on data x and noise z, ascending eq. 2."""
    fake = G(z).detach()  # the fakes are constants here: D's update must not reach into G
    real_logit, fake_logit = discriminator_logit(D, x), discriminator_logit(D, fake)
    loss = discriminator_loss(real_logit, fake_logit)
    opt_D.zero_grad(set_to_none=True)
    loss.backward()
    opt_D.step()
    return {"d_loss": loss.detach()}


def generator_step(G, D, opt_G, z: torch.Tensor, loss: str) -> dict:
    """One update of G on noise z, descending eq. 3 (or the non-saturating loss)."""
    with frozen(D):
        g_loss = generator_loss(discriminator_logit(D, G(z)), loss)
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
    opt_G.step()
    return {"g_loss": g_loss.detach()}


def train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise_batch, k: int, loss: str) -> dict:
    """One iteration of Algorithm 1, in the same order as minigan's gan.train_iteration: for each
    of the k D steps, draw noise then data; then draw noise for the G step.

    `sample_data()` and `sample_noise_batch()` take no arguments and return tensors on the
    nets' device. Returns the last D step's loss and the G step's loss, as tensors (no sync).
    """
    for _ in range(k):
        z = sample_noise_batch()
        x = sample_data()
        stats = discriminator_step(G, D, opt_D, x, z)
    z = sample_noise_batch()
    stats.update(generator_step(G, D, opt_G, z, loss))
    return stats


# --- the users' every-5 schedule ---------------------------------------------------------------


def reused_fake_generator_step(D, opt_G, fake: torch.Tensor, loss: str) -> dict:
    """G's step in the every-5 schedule: the updated D re-scores `fake`, the batch G made in the last
    D step, and the gradient flows back through the graph that made it. G's forward pass is not run
    again (G has not changed since) and no noise is drawn."""
    with frozen(D):
        g_loss = generator_loss(discriminator_logit(D, fake), loss)
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
    opt_G.step()
    return {"g_loss": g_loss.detach()}


def every5_epoch(G, D, opt_G, opt_D, minibatches, loss: str = "nonsaturating", period: int = 5) -> dict:
    """One epoch of the every-5 schedule over `minibatches`, an iterable of (x, z_d, z_g) tensors.

    Minibatch i (counted from 0, restarting each epoch) gives a G step when i % period == period − 1
    and a D step otherwise. A D step makes fake = G(z_d) *with* its graph and trains D on
    fake.detach() and x; the G step reuses that fake (`reused_fake_generator_step`) and ignores its
    own x and z_g. An epoch of 468 minibatches is 93 groups of 5 and a last group of 3: 375 D steps
    and 93 G steps, and the last 3 minibatches' fakes are never used by G (the count restarts).
    """
    if period < 2:
        raise ValueError(f"every5_epoch: period must be at least 2 (a G step needs a D step's fakes), got {period}")
    d_losses, g_losses, fake = [], [], None
    for i, (x, z_d, _z_g) in enumerate(minibatches):
        if i % period == period - 1:
            g_losses.append(reused_fake_generator_step(D, opt_G, fake, loss)["g_loss"])
            fake = None  # its graph is spent: backward freed it
        else:
            fake = G(z_d)  # keeps the graph: the group's G step backpropagates through it
            real_logit, fake_logit = discriminator_logit(D, x), discriminator_logit(D, fake.detach())
            d_loss = discriminator_loss(real_logit, fake_logit)
            opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_D.step()
            d_losses.append(d_loss.detach())
    return _epoch_stats(d_losses, g_losses)


def k1_epoch(G, D, opt_G, opt_D, minibatches, loss: str = "nonsaturating") -> dict:
    """One epoch of Algorithm 1 at k = 1 over (x, z_d, z_g) minibatches: per minibatch a D step on x
    and z_d, then a G step on z_g."""
    d_losses, g_losses = [], []
    for x, z_d, z_g in minibatches:
        noise = iter((z_d, z_g))
        stats = train_iteration(G, D, opt_G, opt_D, lambda: x, lambda: next(noise), 1, loss)
        d_losses.append(stats["d_loss"])
        g_losses.append(stats["g_loss"])
    return _epoch_stats(d_losses, g_losses)


SCHEDULES = {"k1": k1_epoch, "every5": every5_epoch}


def train_epoch(G, D, opt_G, opt_D, minibatches, schedule: str = "k1", loss: str = "nonsaturating") -> dict:
    """One epoch under a named schedule ("k1" or "every5"). Returns {"d_steps", "g_steps",
    "d_loss", "g_loss"}: the step counts and each step's loss as a list of floats."""
    if schedule not in SCHEDULES:
        raise ValueError(f"train_epoch: unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule](G, D, opt_G, opt_D, minibatches, loss)


def _epoch_stats(d_losses, g_losses) -> dict:
    as_floats = lambda losses: torch.stack(losses).tolist() if losses else []  # noqa: E731 (one sync)
    return {"d_steps": len(d_losses), "g_steps": len(g_losses), "d_loss": as_floats(d_losses),
            "g_loss": as_floats(g_losses)}
