"""The ring of eight Gaussians: does the GAN find every mode, and are its samples on them?

    python examples/toy_2d.py                        # one seed, writes toy_2d_ring.png
    python examples/toy_2d.py --seeds 5 --out docs/toy_2d_ring.png

The data are eight Gaussians of std 0.02 evenly spaced on a circle of radius 2 (Metz et al. 2017,
Srivastava et al. 2017). Mode collapse is easy to see here: a generator that covers three of the
eight modes, or hops from one to the next as D chases it, shows it in a scatter plot. We train the
2014 GAN (Algorithm 1, non-saturating G loss) with small MLPs and report VEEGAN's two numbers on
2,500 samples, from minigan.metrics.mode_coverage:

- modes captured: modes that are the nearest mode of at least one high-quality sample;
- high-quality fraction: samples within 3 std (0.06) of their nearest mode.

With the defaults (6,000 iterations, about 13 s per seed on one CPU core), seeds 0-4 capture
all 8 modes with 90.7% of samples high quality on average (2-core VM, 2026-11-22), though seed 4
holds two of its modes by only a handful of samples. Without the learning-rate decay
(--constant-lr) the high-quality fraction is lower and swings from checkpoint to checkpoint.
For scale, VEEGAN's Table 1 reports, for this ring: GAN 1 mode / 99.3%, Unrolled GAN 7.6 / 35.6%,
VEEGAN 8.0 / 52.9% (their networks and training lengths, not ours).

The figure has one row per seed and one column per moment of training: black dots are data,
green dots are samples.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Every matrix here is tiny (256 × 128): a second BLAS thread saves nothing per matmul and costs a
# wake-up, which on a busy 2-core machine made training 8-14× slower. Set before NumPy loads
# OpenBLAS; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from minigan import Tensor, backend, cli, gan, nn, no_grad, optim  # noqa: E402
from minigan.checkpoint import atomic_write  # noqa: E402
from minigan.metrics import mode_coverage, ring_modes, sample_ring  # noqa: E402

NUM_MODES, RADIUS, MODE_STD = 8, 2.0, 0.02
NOISE_DIM = 16
HIDDEN = 128
BATCH_SIZE = 256
LEARNING_RATE = 1e-3
EVAL_SAMPLES = 2500  # VEEGAN's count


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="A GAN on the 2-D ring of eight Gaussians, with VEEGAN's mode metrics.")
    p.add_argument("--out", default="toy_2d_ring.png", help="PNG to write (default toy_2d_ring.png)")
    p.add_argument("--steps", type=cli.positive_int, default=6000, help="training iterations per seed (default 6000)")
    p.add_argument("--seeds", type=cli.positive_int, default=1,
                   help="how many seeds to train, from --seed on (default 1)")
    p.add_argument("--seed", type=cli.seed_int, default=0, help="the first seed (default 0)")
    p.add_argument("--samples", type=cli.positive_int, default=EVAL_SAMPLES,
                   help="samples for the metrics (default 2500)")
    p.add_argument("--constant-lr", action="store_true",
                   help="keep Adam's rate at 1e-3 throughout (default: linear decay to 0 over the second half)")
    args = p.parse_args(argv)
    if args.seed + args.seeds > 2**32:
        p.error(f"--seed {args.seed} with --seeds {args.seeds} runs past the largest seed, 2**32 - 1")
    return args


def build_players():
    """G: 16-d noise → 2-d point; D: point → one logit. Two hidden layers of 128 each."""
    G = nn.Sequential(nn.Linear(NOISE_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                      nn.Linear(HIDDEN, 2))
    D = nn.Sequential(nn.Linear(2, HIDDEN), nn.LeakyReLU(0.2), nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.2),
                      nn.Linear(HIDDEN, 1))
    return G, D


def generate(G, z: np.ndarray) -> np.ndarray:
    with no_grad():
        return G(Tensor(z)).numpy()


def train_one_seed(seed: int, steps: int, moments, eval_samples: int, decay: bool = True) -> dict:
    """Train one GAN; return its samples at each moment and the metrics of the final samples."""
    backend.manual_seed(seed)
    rng = np.random.default_rng(seed)
    G, D = build_players()
    opt_G = optim.Adam(G.parameters(), lr=LEARNING_RATE, betas=(0.5, 0.999))
    opt_D = optim.Adam(D.parameters(), lr=LEARNING_RATE, betas=(0.5, 0.999))

    def sample_data():
        return Tensor(sample_ring(BATCH_SIZE, rng, NUM_MODES, RADIUS, MODE_STD).astype(np.float32))

    def sample_noise():
        return Tensor(rng.standard_normal((BATCH_SIZE, NOISE_DIM), dtype=np.float32))

    # The same noise at every moment, so that the panels differ only because G does.
    fixed_z = np.random.default_rng(seed + 10_000).standard_normal((eval_samples, NOISE_DIM), dtype=np.float32)
    snapshots = {}
    started = time.perf_counter()
    for step in range(1, steps + 1):
        if decay:
            # Hold the rate for the first half, then lower it linearly to 0. At a constant rate the
            # samples keep swinging around the modes (one seed's high-quality fraction went from
            # 95% to 18% and back between checkpoints); the decay lets G settle onto them.
            opt_G.lr = opt_D.lr = LEARNING_RATE * min(1.0, (steps - step) / (steps / 2))
        gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k=1, loss="nonsaturating")
        if step in moments:
            snapshots[step] = generate(G, fixed_z)
    seconds = time.perf_counter() - started
    coverage = mode_coverage(snapshots[steps], ring_modes(NUM_MODES, RADIUS), std=MODE_STD)
    return {"seed": seed, "snapshots": snapshots, "seconds": seconds, **coverage}


def draw(results, moments, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = sample_ring(500, np.random.default_rng(123), NUM_MODES, RADIUS, MODE_STD)
    rows, cols = len(results), len(moments)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.2 * rows), squeeze=False)
    for r, result in enumerate(results):
        for c, step in enumerate(moments):
            ax = axes[r][c]
            ax.scatter(data[:, 0], data[:, 1], s=2, c="k", lw=0)
            points = result["snapshots"][step]
            ax.scatter(points[:, 0], points[:, 1], s=1.5, c="tab:green", alpha=0.4, lw=0)
            ax.set_xlim(-2.8, 2.8)
            ax.set_ylim(-2.8, 2.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
            if r == 0:
                ax.set_title(f"step {step}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"seed {result['seed']}", fontsize=9)
        axes[r][-1].text(2.7, -2.7, f"{result['modes_captured']}/8 modes\n{result['high_quality_fraction']:.0%} HQ",
                         ha="right", va="bottom", fontsize=7)
    fig.suptitle("GAN on a ring of 8 Gaussians (black: data, green: samples)", fontsize=10)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    cli.check_output_file(args.out)  # before the training, not after it
    moments = sorted({max(1, round(args.steps * f)) for f in (0.05, 0.15, 0.4, 0.7)} | {args.steps})
    schedule = "constant" if args.constant_lr else "decaying linearly to 0 over the second half"
    print(f"ring of {NUM_MODES} Gaussians (radius {RADIUS}, std {MODE_STD}); {args.steps} iterations, "
          f"m={BATCH_SIZE}, Adam lr {LEARNING_RATE} {schedule}; metrics on {args.samples} samples")
    print(f"{'seed':>4}  {'modes':>5}  {'high quality':>12}  {'per mode':<40}  time")
    results = []
    for seed in range(args.seed, args.seed + args.seeds):
        result = train_one_seed(seed, args.steps, moments, args.samples, decay=not args.constant_lr)
        results.append(result)
        per_mode = " ".join(str(n) for n in result["high_quality_per_mode"])
        print(f"{seed:>4}  {result['modes_captured']:>5}  {result['high_quality_fraction']:>11.1%}  "
              f"{per_mode:<40}  {result['seconds']:.1f} s", flush=True)
    modes = np.array([r["modes_captured"] for r in results], dtype=float)
    quality = np.array([r["high_quality_fraction"] for r in results])
    print(f"mean  {modes.mean():>5.1f}  {quality.mean():>11.1%}   (std over seeds: {modes.std():.1f} modes, "
          f"{quality.std():.1%})")
    path = draw(results, moments, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
