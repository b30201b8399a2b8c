"""Figure 1 of the GAN paper, drawn from a real run: a 1-D GAN learning p_data = N(4, 0.5).

    python examples/toy_1d.py                       # writes toy_1d.png
    python examples/toy_1d.py --out docs/figure1_toy_1d.png  # docs/results.md's figure: the defaults, uniform z
    python examples/toy_1d.py --animate docs/figure1_animation.gif   # also the run as a GIF

Like the paper's figure, each panel shows the data density (black dots), the generator's
density p_g (green), the discriminator D(x) (blue, dashed), and, below, the noise line z with
arrows to x = G(z) for evenly spaced z: where the arrows bunch together, G concentrates its mass
and p_g is high. The four panels are four moments of one training run (Algorithm 1, k = 1):
D learns to tell the two densities apart, G follows D's gradient toward the data, and at the
end p_g ≈ p_data and D(x) ≈ 1/2 everywhere (Theorem 1's global optimum). Each panel also gives
JSD(p_data ‖ p_g), estimated with minigan.toy on a kernel density estimate of p_g. With the
defaults it falls from log 2 ≈ 0.693 (disjoint) to about 0.013 in 3,000 iterations (15-20 s on a
CPU). Far from both densities D is unconstrained by the game, so it need not be 1/2 there.

`--animate PATH` also writes the same run as a GIF, one panel whose frames run from (a) to (d):
more frames early, where the picture changes fastest, and a pause on each of the four moments.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# Every matrix here is tiny (at most 256 × 128): a second BLAS thread saves nothing per matmul and
# costs a wake-up, which on a busy machine made this script several times slower. Set before
# NumPy loads OpenBLAS; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from minigan import Tensor, backend, cli, gan, nn, no_grad, optim, toy  # noqa: E402
from minigan.checkpoint import atomic_write  # noqa: E402

DATA_MEAN, DATA_STD = 4.0, 0.5
BATCH_SIZE = 256
G_HIDDEN, D_HIDDEN = 32, 128
# D learns faster than G. With equal rates G reaches the data's mean before D has learned more
# than a straight line there, and a D that is linear over the data cannot see a wrong variance.
G_LEARNING_RATE, D_LEARNING_RATE = 5e-4, 2e-3
X_RANGE = (-1.5, 7.0)  # what the panels show; G starts near 0, the data sits at 4


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="A 1-D GAN drawn like Figure 1 of Goodfellow et al. (2014).")
    p.add_argument("--out", default="toy_1d.png", help="PNG to write (default toy_1d.png)")
    p.add_argument("--steps", type=cli.positive_int, default=3000, help="training iterations (default 3000)")
    p.add_argument("--seed", type=cli.seed_int, default=0)
    p.add_argument("--noise", choices=["uniform", "normal"], default="uniform",
                   help="p_z: U(-1, 1), as drawn in the paper's figure, or N(0, 1)")
    p.add_argument("--animate", metavar="GIF", help="also write the run as an animated GIF")
    p.add_argument("--frames", type=cli.positive_int, default=48, help="moments drawn in the GIF (default 48)")
    args = p.parse_args(argv)
    if args.steps < 4:
        p.error("--steps must be at least 4, one per panel")
    if args.frames < 4:
        p.error("--frames must be at least 4")
    if args.animate and Path(args.animate).absolute() == Path(args.out).absolute():
        p.error(f"--animate and --out both name {args.out}; the GIF would replace the figure")
    return args


def build_players():
    """Small MLPs on scalars: G maps z to x, D maps x to one logit.

    G uses tanh, so that it is smooth and so is p_g (a piecewise-linear G would give a staircase
    p_g from uniform z). D is wider: its ReLU kinks are where it can bend, and it needs several
    near x = 4 to judge the shape of p_g there, not just its position.
    """
    G = nn.Sequential(nn.Linear(1, G_HIDDEN), nn.Tanh(), nn.Linear(G_HIDDEN, G_HIDDEN), nn.Tanh(),
                      nn.Linear(G_HIDDEN, 1))
    D = nn.Sequential(nn.Linear(1, D_HIDDEN), nn.LeakyReLU(0.2), nn.Linear(D_HIDDEN, D_HIDDEN), nn.LeakyReLU(0.2),
                      nn.Linear(D_HIDDEN, 1))
    return G, D


def noise_quantiles(kind: str, count: int) -> np.ndarray:
    """`count` z values at evenly spaced quantiles of p_z: equal probability mass between arrows."""
    levels = (np.arange(count) + 0.5) / count
    if kind == "uniform":
        return 2 * levels - 1
    from statistics import NormalDist

    return np.array([NormalDist().inv_cdf(q) for q in levels])


def log_kernel_density(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """log of a Gaussian kernel density estimate of p_g, with Silverman's bandwidth."""
    bandwidth = 1.06 * samples.std() * len(samples) ** -0.2
    exponents = -0.5 * ((grid[:, None] - samples[None, :]) / bandwidth) ** 2
    peak = exponents.max(axis=1, keepdims=True)
    return (peak[:, 0] + np.log(np.exp(exponents - peak).mean(axis=1))
            - math.log(bandwidth * math.sqrt(2 * math.pi)))


def snapshot(G, D, step, z_arrows, z_density, grid) -> dict:
    """What one panel needs: p_g on the grid, D on the grid, and where the arrow z's land."""
    with no_grad():
        d = D(Tensor(grid[:, None].astype(np.float32))).sigmoid().numpy().ravel()
        arrows = G(Tensor(z_arrows[:, None].astype(np.float32))).numpy().ravel()
        samples = G(Tensor(z_density)).numpy().ravel().astype(np.float64)
    log_p_g = log_kernel_density(samples, grid)
    log_p_data = toy.gaussian_log_pdf(grid, DATA_MEAN, DATA_STD)
    return {"step": step, "d": d, "arrows": arrows, "p_g": np.exp(log_p_g),
            "jsd": toy.jensen_shannon_divergence(grid, log_p_data, log_p_g)}


Z_LINE, X_LINE = -0.45, 0.0  # heights of the noise line and the x axis in every panel


def noise_positions(z_arrows, noise_kind):
    """Where each arrow's z sits on the drawn noise line: z's domain under the middle of the x
    axis, so that the arrows show G's stretching."""
    z_low, z_high = (-1.0, 1.0) if noise_kind == "uniform" else (-2.5, 2.5)
    left, right = X_RANGE[0] + 1.0, X_RANGE[1] - 1.0
    return left + (z_arrows - z_low) / (z_high - z_low) * (right - left)


def draw_panel(ax, panel, grid, p_data, z_drawn, title):
    ax.plot(grid[::8], p_data[::8], "k.", markersize=3, label=r"$p_{data}$")
    ax.plot(grid, panel["p_g"], color="tab:green", lw=1.8, label=r"$p_g$")
    ax.plot(grid, panel["d"], color="tab:blue", ls="--", lw=1.5, label=r"$D(x)$")
    ax.axhline(X_LINE, color="k", lw=0.8)
    ax.axhline(Z_LINE, xmin=0.0, xmax=1.0, color="k", lw=0.8)
    for start, end in zip(z_drawn, panel["arrows"]):
        if X_RANGE[0] <= end <= X_RANGE[1]:
            ax.annotate("", xy=(end, X_LINE), xytext=(start, Z_LINE),
                        arrowprops=dict(arrowstyle="->", lw=0.6, color="0.35"))
    ax.text(X_RANGE[0] + 0.1, X_LINE + 0.03, "x", fontsize=10)
    ax.text(X_RANGE[0] + 0.1, Z_LINE + 0.03, "z", fontsize=10)
    ax.set_xlim(*X_RANGE)
    ax.set_ylim(Z_LINE - 0.08, 1.12)
    ax.set_yticks([0, 0.5, 1.0])
    ax.set_title(title, fontsize=10)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(panels, grid, z_arrows, noise_kind, path):
    plt = _pyplot()
    p_data = toy.gaussian_pdf(grid, DATA_MEAN, DATA_STD)
    z_drawn = noise_positions(z_arrows, noise_kind)
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), sharey=True)
    for ax, panel, letter in zip(axes, panels, "abcd"):
        draw_panel(ax, panel, grid, p_data, z_drawn, f"({letter}) step {panel['step']}, JSD ≈ {panel['jsd']:.3f}")
    axes[0].legend(loc="upper left", fontsize=8, frameon=False)
    fig.suptitle(r"1-D GAN on $p_{data} = \mathcal{N}(4, 0.5)$ (minigan; layout of Goodfellow et al. 2014, Fig. 1)",
                 fontsize=10)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)


def animate(frames, moments, grid, z_arrows, noise_kind, path, fps=8, hold=4):
    """The run as a GIF: one panel per frame, held for `hold` frames at the four moments of the figure
    and twice that at the end."""
    from matplotlib.animation import PillowWriter

    plt = _pyplot()
    p_data = toy.gaussian_pdf(grid, DATA_MEAN, DATA_STD)
    z_drawn = noise_positions(z_arrows, noise_kind)
    letters = dict(zip(moments, "abcd"))
    # D ≈ 1/2 where the data are (beyond them D is free, see the docstring): the last frame says how close.
    near_data = np.abs(grid - DATA_MEAN) <= 2 * DATA_STD
    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=80)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.91)  # fixed, so the frames do not jitter
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.gif")  # renamed into place once complete
    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, partial, dpi=fig.dpi):
            for panel in frames:
                ax.clear()
                letter = f"({letters[panel['step']]}) " if panel["step"] in letters else ""
                title = f"{letter}step {panel['step']}, JSD ≈ {panel['jsd']:.3f}"
                draw_panel(ax, panel, grid, p_data, z_drawn, title)
                # A band above the curves for the legend, where D(x) = 1 cannot run through it.
                ax.set_ylim(Z_LINE - 0.08, 1.3)
                ax.legend(loc="upper left", ncol=3, fontsize=8, framealpha=1, edgecolor="none")
                repeats = hold if panel["step"] in letters else 1
                if panel is frames[-1]:
                    gap = np.abs(panel["d"][near_data] - 0.5).max()
                    ax.text(X_RANGE[1] - 0.1, 1.2, f"|D(x) − ½| ≤ {gap:.3f} on 4 ± 1", ha="right", fontsize=8)
                    repeats = 2 * hold
                for _ in range(repeats):
                    writer.grab_frame()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
        plt.close(fig)
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.check_output_file(args.out)  # before the training, not after it
    if args.animate:
        cli.check_output_file(args.animate, "--animate")
    backend.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    G, D = build_players()
    opt_G = optim.Adam(G.parameters(), lr=G_LEARNING_RATE, betas=(0.5, 0.999))
    opt_D = optim.Adam(D.parameters(), lr=D_LEARNING_RATE, betas=(0.5, 0.999))

    def sample_data():
        return Tensor((DATA_MEAN + DATA_STD * rng.standard_normal((BATCH_SIZE, 1))).astype(np.float32))

    def draw_noise(m):
        if args.noise == "uniform":
            return rng.uniform(-1, 1, (m, 1)).astype(np.float32)
        return rng.standard_normal((m, 1)).astype(np.float32)

    def sample_noise():
        return Tensor(draw_noise(BATCH_SIZE))

    grid = np.linspace(*X_RANGE, 800)
    z_arrows = noise_quantiles(args.noise, 24)
    z_density = draw_noise(20_000)  # fixed, so that p_g's estimate changes only because G does
    # Early moments are where the picture changes most: D learns first, then G moves.
    moments = sorted({max(1, round(args.steps * f)) for f in (0.01, 0.04, 0.2)} | {args.steps})
    # The GIF's frames, spaced evenly in log(step) for the same reason, plus the four moments.
    frame_steps = set(np.geomspace(1, args.steps, args.frames).round().astype(int)) if args.animate else set()
    panels, frames = [], []
    training_seconds = 0.0
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        stats = gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k=1, loss="nonsaturating")
        training_seconds += time.perf_counter() - started
        if step in moments or step in frame_steps:
            frames.append(snapshot(G, D, step, z_arrows, z_density, grid))
        if step in moments:
            panels.append(frames[-1])
            print(f"step {step}: D loss {float(stats['d_loss']):.3f}, G loss {float(stats['g_loss']):.3f}, "
                  f"JSD(p_data ‖ p_g) ≈ {panels[-1]['jsd']:.4f}")
    path = draw(panels, grid, z_arrows, args.noise, args.out)
    print(f"{args.steps} iterations in {training_seconds:.1f} s of training; wrote {path}")
    if args.animate:
        gif = animate(frames, moments, grid, z_arrows, args.noise, args.animate)
        print(f"wrote {gif} ({len(frames)} moments)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
