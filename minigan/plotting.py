"""Pictures a training run writes: a grid of samples and the loss curves. Files are atomic."""

from __future__ import annotations

import numpy as np

from .atomic import atomic_write


def image_grid(images, rows=8, cols=8, pad=2, value_range=(0.0, 1.0)) -> np.ndarray:
    """Tile (n, 784) or (n, 28, 28) images into one (rows·30, cols·30) array in [0, 1]."""
    images = np.asarray(images, dtype=np.float32)
    n = min(len(images), rows * cols)
    side = int(round(np.sqrt(images[0].size)))
    low, high = value_range
    images = np.clip((images[:n].reshape(n, side, side) - low) / (high - low), 0, 1)
    cell = side + pad
    grid = np.ones((rows * cell + pad, cols * cell + pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[pad + r * cell: pad + r * cell + side, pad + c * cell: pad + c * cell + side] = image
    return grid


def save_image_grid(path, images, value_range=(0.0, 1.0), rows=8, cols=8):
    import matplotlib.pyplot as plt

    grid = image_grid(images, rows, cols, value_range=value_range)
    return atomic_write(path, lambda f: plt.imsave(f, grid, cmap="gray", vmin=0, vmax=1, format="png"))


def save_loss_curves(path, history: dict, title=""):
    """Two panels: the D and G losses, and the mean of D(x) and D(G(z)), against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (losses, outputs) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = history["step"]
    losses.plot(steps, history["d_loss"], label="D loss")
    losses.plot(steps, history["g_loss"], label="G loss")
    losses.set_xlabel("iteration")
    losses.legend()
    outputs.plot(steps, history["d_real"], label="mean D(x)")
    outputs.plot(steps, history["d_fake"], label="mean D(G(z))")
    outputs.axhline(0.5, color="gray", lw=0.5)
    outputs.set_ylim(0, 1)
    outputs.set_xlabel("iteration")
    outputs.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
