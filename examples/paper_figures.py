"""The paper's Figures 2 and 3 from a trained MNIST generator.

    python examples/paper_figures.py runs/mnist-paper/checkpoint.npz             # beside the checkpoint
    python examples/paper_figures.py runs/mnist-paper/checkpoint.npz --out docs  # docs/results.md's figures

Figure 2: samples, each row ending in the training digit nearest (in pixel space) to the sample
beside it, framed in yellow, as in the paper: the generator does not copy its training set.
Figure 3: digits from linear interpolation between points in z space of the full model.

Writes OUT/figure2_<config>.png and OUT/figure3_<config>.png (atomically); OUT is the checkpoint's
folder unless --out names another.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from minigan import Tensor, backend, cli, gan, no_grad
from minigan.atomic import atomic_write
from minigan.data import load_mnist
from minigan.evaluate import checkpoint_file, generate_pixels, load_generator, to_unit_interval, unit_pixels


def nearest_training_digits(samples: np.ndarray, train: np.ndarray, chunk: int = 10_000) -> np.ndarray:
    """For each sample row, the index of the nearest training row in Euclidean (pixel) distance.

    |s − t|² = |s|² − 2 s·t + |t|²: one matrix product per chunk of training rows.
    """
    samples, best, best_distance = samples.astype(np.float64), None, None
    for start in range(0, len(train), chunk):
        rows = train[start:start + chunk].astype(np.float64)
        distance = (samples ** 2).sum(1)[:, None] - 2 * samples @ rows.T + (rows ** 2).sum(1)[None, :]
        index, nearest = distance.argmin(1), distance.min(1)
        if best is None:
            best, best_distance = index + start, nearest
        else:
            closer = nearest < best_distance
            best, best_distance = np.where(closer, index + start, best), np.minimum(nearest, best_distance)
    return best


def interpolations(z_start: np.ndarray, z_end: np.ndarray, steps: int) -> np.ndarray:
    """(rows, steps, dim): for each row, `steps` points from z_start to z_end on a straight line."""
    t = np.linspace(0.0, 1.0, steps)[None, :, None]
    return (1 - t) * z_start[:, None, :] + t * z_end[:, None, :]


def draw_grid(path, images: np.ndarray, framed_column: int | None = None):
    """images: (rows, cols, 784) in [0, 1]. The framed column gets a yellow border (Figure 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r, c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            framed = c == framed_column
            for spine in ax.spines.values():
                spine.set_edgecolor("gold" if framed else "white")
                spine.set_linewidth(3 if framed else 0)
    fig.subplots_adjust(wspace=0.05, hspace=0.05, left=0.02, right=0.98, top=0.98, bottom=0.02)
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    finally:
        plt.close(fig)


def figure2(G, config, train_pixels, rows=6, cols=5, seed=0):
    """(rows, cols + 1, 784): `cols` samples per row, then the training digit nearest the last one."""
    samples = generate_pixels(G, config, rows * cols, seed).reshape(rows, cols, 784)
    nearest = nearest_training_digits(samples[:, -1], train_pixels)
    return np.concatenate([samples, train_pixels[nearest][:, None, :]], axis=1)


def figure3(G, config, rows=5, steps=10, seed=1):
    """(rows, steps, 784): G along straight lines between pairs of prior samples."""
    rng = np.random.default_rng(seed)
    ends = [gan.sample_noise(config, rows, rng).data for _ in range(2)]  # pairs of points from the prior
    z = interpolations(*ends, steps).reshape(rows * steps, config.noise_dim).astype(ends[0].dtype)
    with no_grad():
        pixels = backend.to_numpy(G(Tensor(z)).data)
    return to_unit_interval(pixels, config).reshape(rows, steps, 784)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="The paper's Figures 2 and 3 from an MNIST GAN checkpoint.")
    p.add_argument("checkpoint", help="checkpoint.npz written by examples/mnist.py (or its run folder)")
    p.add_argument("--out", help="folder for figure2_CONFIG.png and figure3_CONFIG.png (default: the checkpoint's)")
    p.add_argument("--data-dir", help="folder with the MNIST .gz files (default: as examples/mnist.py finds them)")
    p.add_argument("--seed", type=cli.seed_int, default=0, help="seed for the noise (default 0)")
    args = p.parse_args(argv)
    checkpoint = checkpoint_file(args.checkpoint)
    G, config, _ = load_generator(checkpoint)
    if args.out:
        out = cli.check_output_dir(args.out)
    else:
        try:
            out = cli.check_output_dir(checkpoint.parent, "the checkpoint's folder")
        except SystemExit as refusal:
            raise SystemExit(f"{refusal.code}; choose another with --out") from None
    images, _ = load_mnist("train", data_dir=args.data_dir)
    # The nearest neighbour is searched among the digits this config trained on.
    train_pixels = unit_pixels(images[: config.train_images])
    written = [draw_grid(out / f"figure2_{config.name}.png", figure2(G, config, train_pixels, seed=args.seed),
                         framed_column=5),
               draw_grid(out / f"figure3_{config.name}.png", figure3(G, config, seed=args.seed + 1))]
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
