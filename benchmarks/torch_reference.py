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
                            loss_kind="nonsaturating")
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


def generator_loss(fake_logit: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """"nonsaturating": BCE(D(G(z)), 1) = mean −log D(G(z)), the paper's practical variant;
    "minimax": −BCE(D(G(z)), 0) = mean log(1 − D(G(z))), eq. 3 as written."""
    if kind == "nonsaturating":
        return _bce(fake_logit, torch.ones_like(fake_logit))
    if kind == "minimax":
        return -_bce(fake_logit, torch.zeros_like(fake_logit))
    raise ValueError(f"generator_loss: unknown kind {kind!r}; use 'minimax' or 'nonsaturating'")


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


def generator_step(G, D, opt_G, z: torch.Tensor, loss_kind: str) -> dict:
    """One update of G on noise z, descending eq. 3 (or the non-saturating loss)."""
    with frozen(D):
        loss = generator_loss(discriminator_logit(D, G(z)), loss_kind)
        opt_G.zero_grad(set_to_none=True)
        loss.backward()
    opt_G.step()
    return {"g_loss": loss.detach()}


def train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise_batch, k: int, loss_kind: str) -> dict:
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
    stats.update(generator_step(G, D, opt_G, z, loss_kind))
    return stats
