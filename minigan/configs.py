"""The two players and their optimizers, for each of the two setups.

- `reference`: the common torch MNIST GAN (LeakyReLU MLPs, Adam, z ~ N(0, I), data in [-1, 1]);
- `paper`: the authors' MNIST setup (goodfeli/adversarial mnist.yaml): a ReLU generator with a
  sigmoid output, a maxout discriminator with dropout, SGD with momentum, z ~ U(−√3, √3), and the
  authors' simultaneous update (gan.simultaneous_iteration) rather than the box's alternation.

A Config holds everything that differs between the two setups, so the builders below read it and
never ask which setup they are building (nanoGPT's GPTConfig is the model).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import backend, nn, optim
from .tensor import Tensor

NOISES = ("normal", "uniform")  # the prior p_z, see sample_noise


@dataclass(frozen=True)
class Config:
    name: str
    # the players: G maps noise_dim → generator_widths → 784 pixels; D maps 784 → discriminator_widths → 1 logit
    noise_dim: int
    noise: str  # "normal": z ~ N(0, I); "uniform": z ~ U(−√3, √3), also unit variance
    generator_widths: tuple[int, ...]
    generator_layer: Callable  # (n_in, n_out, init_range, dtype, device) → [modules]
    generator_output: Callable  # the output nonlinearity: nn.Tanh for pixels in [-1, 1], nn.Sigmoid for [0, 1]
    discriminator_widths: tuple[int, ...]
    discriminator_layer: Callable
    g_init_range: float | None  # G's weights ~ U(±r) and zero biases; None: torch's default
    d_init_range: float | None  # the same for D
    d_input_dropout: float | None  # D's dropout rate on the pixels; None: no dropout layer
    d_hidden_dropout: float | None  # D's dropout rate on each hidden layer's output; None: none
    output_bias_from_marginals: bool  # G's output bias = logit of the mean training pixel (pylearn2)
    # the data
    data_range: tuple[float, float]  # pixels are scaled to this interval
    train_images: int  # the first N training images; the rest are held out for validation
    # the game
    batch_size: int
    k: int
    loss: str  # the generator's loss: "nonsaturating" or "minimax"
    update: str  # "alternating": Algorithm 1's box; "simultaneous": the authors' code
    # the optimizers: make_optimizer(params, lr) for each player, D's rate scaled by d_lr_scale
    make_optimizer: Callable
    lr: float
    d_lr_scale: float
    schedule: Callable | None  # schedule(optimizer, epoch, scale), after every update; or None


# --- the layers --------------------------------------------------------------------------------


def linear_leaky_relu(n_in, n_out, init_range, dtype, device):
    """A hidden layer of the torch reference: affine, then LeakyReLU(0.2)."""
    return [nn.Linear(n_in, n_out, init_range=init_range, dtype=dtype, device=device), nn.LeakyReLU(0.2)]


def linear_relu(n_in, n_out, init_range, dtype, device):
    """A hidden layer of the authors' generator: affine, then a rectifier."""
    return [nn.Linear(n_in, n_out, init_range=init_range, dtype=dtype, device=device), nn.ReLU()]


def maxout5(n_in, n_out, init_range, dtype, device):
    """A hidden layer of the authors' discriminator: n_out maxout units of 5 pieces each."""
    return [nn.Maxout(n_in, n_out, pieces=5, init_range=init_range, dtype=dtype, device=device)]


def paper_schedule(optimizer: optim.SGD, epoch: int, scale: float = 1.0) -> None:
    """mnist.yaml's schedule, applied after every update: lr ÷ 1.000004 (floor 1e-6, times
    `scale` for D's halved rate), and momentum rising linearly from 0.5 at epoch 1 to 0.7 at 250."""
    optimizer.lr = max(optimizer.lr / 1.000004, 1e-6 * scale)
    progress = min(max((epoch - 1) / (250 - 1), 0.0), 1.0)
    optimizer.momentum = 0.5 + 0.2 * progress


# --- the two setups ----------------------------------------------------------------------------


CONFIGS = {
    # The common torch MNIST GAN.
    "reference": Config(
        "reference", noise_dim=100, noise="normal",
        generator_widths=(256, 512, 1024), generator_layer=linear_leaky_relu, generator_output=nn.Tanh,
        discriminator_widths=(1024, 512, 256), discriminator_layer=linear_leaky_relu,
        g_init_range=None, d_init_range=None, d_input_dropout=None, d_hidden_dropout=None,
        output_bias_from_marginals=False,
        data_range=(-1.0, 1.0), train_images=60000,
        batch_size=128, k=1, loss="nonsaturating", update="alternating",
        make_optimizer=functools.partial(optim.Adam, betas=(0.5, 0.999)), lr=2e-4, d_lr_scale=1.0, schedule=None),
    # goodfeli/adversarial's mnist.yaml. It sets `noise: "uniform"`, which its Generator draws as
    # U(−√3, √3) (unit variance); `--noise normal` gives N(0, I). Its D objective is
    # ½[log D(x) + log(1 − D(G(z)))] (AdversaryCost2's d_obj), half of eq. 2's sum that
    # gan.discriminator_loss returns; under SGD with momentum, halving a gradient is exactly
    # halving the rate, so D gets 0.05 where G gets 0.1.
    "paper": Config(
        "paper", noise_dim=100, noise="uniform",
        generator_widths=(1200, 1200), generator_layer=linear_relu, generator_output=nn.Sigmoid,
        discriminator_widths=(240, 240), discriminator_layer=maxout5,
        g_init_range=0.05, d_init_range=0.005, d_input_dropout=0.2, d_hidden_dropout=0.5,
        output_bias_from_marginals=True,
        data_range=(0.0, 1.0), train_images=50000,
        batch_size=100, k=1, loss="nonsaturating", update="simultaneous",
        make_optimizer=functools.partial(optim.SGD, momentum=0.5), lr=0.1, d_lr_scale=0.5, schedule=paper_schedule),
}


# --- the builders ------------------------------------------------------------------------------


def named(module: nn.Module, player: str) -> nn.Module:
    """Label each parameter as the checkpoint does ("D.0.weight"), so that a message can name it."""
    for key, p in module.named_parameters():
        p.name = f"{player}.{key}"
    return module


def build_generator(config: Config, pixel_mean=None, dtype=np.float32, device="cpu") -> nn.Module:
    """G: noise_dim → 784 pixels. `pixel_mean` (784 values in [0, 1]) sets the output bias when
    the config asks for it."""
    widths = (config.noise_dim, *config.generator_widths)
    layers = [layer for n_in, n_out in zip(widths, widths[1:])
              for layer in config.generator_layer(n_in, n_out, config.g_init_range, dtype, device)]
    output = nn.Linear(widths[-1], 784, init_range=config.g_init_range, dtype=dtype, device=device)
    if config.output_bias_from_marginals and pixel_mean is not None:
        # With zero weights G would output the mean image: training starts from the marginals.
        p = np.clip(np.asarray(pixel_mean, dtype=np.float64), 1e-7, 1 - 1e-7)
        output.bias.data = backend.to_device(np.log(p / (1 - p)).astype(dtype), device)
    return named(nn.Sequential(*layers, output, config.generator_output()), "G")


def build_discriminator(config: Config, dtype=np.float32, device="cpu") -> nn.Module:
    """D: 784 → one logit. The final sigmoid lives inside the losses, as a stable softplus."""
    widths = (784, *config.discriminator_widths)
    # pylearn2 drops each layer's *input*: the pixels, then each hidden layer's output
    dropout_rates = [config.d_input_dropout] + [config.d_hidden_dropout] * len(config.discriminator_widths)
    layers = []
    for rate, (n_in, n_out) in zip(dropout_rates, zip(widths, widths[1:])):
        if rate is not None:
            layers.append(nn.Dropout(rate))
        layers += config.discriminator_layer(n_in, n_out, config.d_init_range, dtype, device)
    if dropout_rates[-1] is not None:
        layers.append(nn.Dropout(dropout_rates[-1]))
    output = nn.Linear(widths[-1], 1, init_range=config.d_init_range, dtype=dtype, device=device)
    return named(nn.Sequential(*layers, output), "D")


def build_optimizers(config: Config, generator: nn.Module, discriminator: nn.Module):
    """(G's optimizer, D's optimizer)."""
    return (config.make_optimizer(generator.parameters(), lr=config.lr),
            config.make_optimizer(discriminator.parameters(), lr=config.lr * config.d_lr_scale))


def apply_schedule(config: Config, opt_G, opt_D, epoch: int, d_updates: int) -> None:
    """After one iteration (one G update and `d_updates` D updates) in the 1-based `epoch`."""
    if config.schedule is None:
        return
    config.schedule(opt_G, epoch)
    for _ in range(d_updates):
        config.schedule(opt_D, epoch, scale=config.d_lr_scale)


# --- the prior ---------------------------------------------------------------------------------


def sample_noise(config: Config, m: int, rng: np.random.Generator, dtype=np.float32, device="cpu") -> Tensor:
    """m noise vectors from the prior p_z. Drawn on the host so a seed gives the same z on any device."""
    if config.noise == "normal":
        z = rng.standard_normal((m, config.noise_dim), dtype=np.float32)
    elif config.noise == "uniform":
        z = rng.uniform(-math.sqrt(3), math.sqrt(3), (m, config.noise_dim)).astype(np.float32)
    else:
        raise ValueError(f"unknown noise prior {config.noise!r}; known: {', '.join(NOISES)}")
    return Tensor(backend.to_device(z.astype(dtype, copy=False), device))
