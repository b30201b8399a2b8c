"""The game from Goodfellow et al. 2014 (arXiv 1406.2661): two nets, the value function, Algorithm 1.

    V(D, G) = E_x[log D(x)] + E_z[log(1 − D(G(z)))]                        (eq. 1)

D ascends V (eq. 2); G descends its half of it (eq. 3), or, in practice, descends −log D(G(z)).
D outputs a logit l, so that D(x) = σ(l). Every log of D is taken in the two loss functions, from
the logit, by nn.binary_cross_entropy_with_logits (a stable softplus, never log(sigmoid(l))):
log D(x) = −BCE(l, 1) and log(1 − D(x)) = −BCE(l, 0).

Two configurations:
- `reference`: the common torch MNIST GAN (LeakyReLU MLPs, Adam, z ~ N(0, I), data in [-1, 1]);
- `paper`: the authors' MNIST setup (goodfeli/adversarial mnist.yaml): a ReLU generator with a
  sigmoid output, a maxout discriminator with dropout, SGD with momentum, z ~ U(−√3, √3), and the
  authors' simultaneous update (`simultaneous_iteration`) rather than the box's alternation.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import backend, nn, optim
from .nn import binary_cross_entropy_with_logits as bce
from .tensor import Tensor, concatenate, no_grad

# --- the value function ------------------------------------------------------------------------


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """−[mean log D(x) + mean log(1 − D(G(z)))]: descending this is ascending eq. 2.

    As the authors write it: binary cross-entropy with target 1 for data and 0 for samples.
    """
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


NOISES = ("normal", "uniform")  # the prior p_z, see sample_noise
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


# --- the two configurations --------------------------------------------------------------------
# A Config holds everything that differs between the two setups, so the builders below read it
# and never ask which setup they are building (nanoGPT's GPTConfig is the model).


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
    discriminator_dropout: tuple[float, float] | None  # (on the pixels, on each hidden layer), or None
    init_range: tuple[float, float] | None  # U(±r) weights and zero biases for (G, D); None: torch's default
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


CONFIGS = {
    # The common torch MNIST GAN.
    "reference": Config(
        "reference", noise_dim=100, noise="normal",
        generator_widths=(256, 512, 1024), generator_layer=linear_leaky_relu, generator_output=nn.Tanh,
        discriminator_widths=(1024, 512, 256), discriminator_layer=linear_leaky_relu, discriminator_dropout=None,
        init_range=None, output_bias_from_marginals=False,
        data_range=(-1.0, 1.0), train_images=60000,
        batch_size=128, k=1, loss="nonsaturating", update="alternating",
        make_optimizer=functools.partial(optim.Adam, betas=(0.5, 0.999)), lr=2e-4, d_lr_scale=1.0, schedule=None),
    # goodfeli/adversarial's mnist.yaml. It sets `noise: "uniform"`, which its Generator draws as
    # U(−√3, √3) (unit variance); `--noise normal` gives N(0, I). Its D objective is
    # ½[log D(x) + log(1 − D(G(z)))] (AdversaryCost2's d_obj), half of eq. 2's sum that
    # discriminator_loss returns; under SGD with momentum, halving a gradient is exactly halving
    # the rate, so D gets 0.05 where G gets 0.1.
    "paper": Config(
        "paper", noise_dim=100, noise="uniform",
        generator_widths=(1200, 1200), generator_layer=linear_relu, generator_output=nn.Sigmoid,
        discriminator_widths=(240, 240), discriminator_layer=maxout5, discriminator_dropout=(0.2, 0.5),
        init_range=(0.05, 0.005), output_bias_from_marginals=True,
        data_range=(0.0, 1.0), train_images=50000,
        batch_size=100, k=1, loss="nonsaturating", update="simultaneous",
        make_optimizer=functools.partial(optim.SGD, momentum=0.5), lr=0.1, d_lr_scale=0.5, schedule=paper_schedule),
}


def build_generator(config: Config, pixel_mean=None, dtype=np.float32, device="cpu") -> nn.Module:
    """G: noise_dim → 784 pixels. `pixel_mean` (784 values in [0, 1]) sets the output bias when
    the config asks for it."""
    init_range = config.init_range[0] if config.init_range else None
    widths = (config.noise_dim, *config.generator_widths)
    layers = [layer for n_in, n_out in zip(widths, widths[1:])
              for layer in config.generator_layer(n_in, n_out, init_range, dtype, device)]
    output = nn.Linear(widths[-1], 784, init_range=init_range, dtype=dtype, device=device)
    if config.output_bias_from_marginals and pixel_mean is not None:
        # With zero weights G would output the mean image: training starts from the marginals.
        p = np.clip(np.asarray(pixel_mean, dtype=np.float64), 1e-7, 1 - 1e-7)
        output.bias.data = backend.to_device(np.log(p / (1 - p)).astype(dtype), device)
    return nn.Sequential(*layers, output, config.generator_output())


def build_discriminator(config: Config, dtype=np.float32, device="cpu") -> nn.Module:
    """D: 784 → one logit. The final sigmoid lives inside the losses, as a stable softplus."""
    init_range = config.init_range[1] if config.init_range else None
    widths = (784, *config.discriminator_widths)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        if config.discriminator_dropout:  # pylearn2 drops each layer's *input*: the pixels, then each hidden layer
            layers.append(nn.Dropout(config.discriminator_dropout[min(i, 1)]))
        layers += config.discriminator_layer(n_in, n_out, init_range, dtype, device)
    if config.discriminator_dropout:
        layers.append(nn.Dropout(config.discriminator_dropout[1]))
    return nn.Sequential(*layers, nn.Linear(widths[-1], 1, init_range=init_range, dtype=dtype, device=device))


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


def sample_noise(config: Config, m: int, rng: np.random.Generator, dtype=np.float32, device="cpu") -> Tensor:
    """m noise vectors from the prior p_z. Drawn on the host so a seed gives the same z on any device."""
    if config.noise == "normal":
        z = rng.standard_normal((m, config.noise_dim), dtype=np.float32)
    elif config.noise == "uniform":
        z = rng.uniform(-math.sqrt(3), math.sqrt(3), (m, config.noise_dim)).astype(np.float32)
    else:
        raise ValueError(f"unknown noise prior {config.noise!r}; known: {', '.join(NOISES)}")
    return Tensor(backend.to_device(z.astype(dtype, copy=False), device))


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
    with no_grad():  # D's update must not reach into G: fakes are constants here
        # One pass of D over [x; G(z)]: the same logits as D(x) and D(G(z)) with half the GEMM
        # calls (D has no batch statistics, so rows do not interact). G(z) lives only until copied.
        x_and_fake = concatenate([x, G(z)])
    logits = D(x_and_fake)
    real_logits, fake_logits = logits[:len(x)], logits[len(x):]
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


def check_game(caller: str, k, loss: str, update: str = "alternating") -> None:
    """The game's settings, checked before either player moves (an unknown loss found after D's
    step would leave D updated and G not). One-line TypeError/ValueError naming `caller`."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{caller}: k must be an integer ≥ 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{caller}: k must be an integer ≥ 1, got {k!r}")
    if loss not in LOSSES:
        raise ValueError(f"{caller}: unknown loss {loss!r}; use 'nonsaturating' or 'minimax'")
    if update not in UPDATES:
        raise ValueError(f"{caller}: unknown update {update!r}; use 'alternating' or 'simultaneous'")
    if update == "simultaneous" and k != 1:
        raise ValueError(f"{caller}: the authors' update has no inner loop, k must be 1, got {k}")


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
    fake_for_D = Tensor(fake.data, requires_grad=True)
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
