"""Does minigan learn what torch learns? Train both on MNIST from the same start and compare.

    python benchmarks/bench_quality.py --data-dir ../shared/data/mnist                # 3 seeds
    python benchmarks/bench_quality.py --data-dir ../shared/data/mnist --iterations 2000 --seeds 0 1 2 3 4

For each seed, minigan's `reference` GAN and the torch reference (benchmarks/torch_reference.py)
start from the same weights (minigan's, copied into torch) and are fed exactly the same data
batches and noise batches, iteration by iteration (Algorithm 1, k=1, non-saturating loss, Adam).
The two runs agree to rounding at first, then drift apart the way two float32 runs of any GAN
do, so the comparison that matters is statistical: are the loss trajectories, and the samples,
alike across seeds?

Reported per run: D and G loss every iteration (plotted smoothed, side by side), their means over
the last tenth of training, and the wall time. When minigan.metrics and minigan.classifier are
importable, also the Parzen-window log-likelihood of test digits (σ chosen on held-out training
digits, the paper's protocol at a smaller size) and the FID between digit-classifier features of
samples and test digits. A short run is far from a trained GAN: these numbers compare the two
implementations with each other, not with the paper.

Results: benchmarks/results/bench_quality-<time>.json and .png.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import minigan
from minigan import Tensor, backend, gan
from minigan.atomic import atomic_write
from minigan.data import load_mnist

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference  # noqa: E402
from machine import cpu_model  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONFIG = gan.CONFIGS["reference"]
VALIDATION_ROWS = slice(50_000, 51_000)  # held-out digits for choosing the Parzen σ, as in evaluate.py


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST files (else $MINIGAN_DATA, the cache)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=1000,
                        help="training iterations per run (default 1000, about two epochs: a few minutes "
                             "on 2 CPU cores for the 6 runs)")
    parser.add_argument("--batch-size", type=int, default=CONFIG.batch_size)
    parser.add_argument("--samples", type=int, default=2000, help="generator samples for Parzen and FID (default 2000)")
    parser.add_argument("--test-size", type=int, default=2000, help="test digits scored (default 2000)")
    parser.add_argument("--no-metrics", action="store_true", help="skip Parzen and FID")
    parser.add_argument("--classifier-cache", default=None,
                        help="folder of the cached digit classifier for FID (default: minigan's user cache)")
    parser.add_argument("--out-dir", default=None, help="default: benchmarks/results next to this file")
    return parser.parse_args(argv)


# --- the same batches for both -------------------------------------------------------------------


def batch_stream(seed: int, pixels: np.ndarray, iterations: int, batch_size: int, k: int = CONFIG.k):
    """Per iteration: k data batches (shuffled epochs over `pixels`) and k + 1 noise batches.

    A generator function, so that calling it twice with one seed replays exactly the same batches.
    """
    rng = np.random.default_rng(seed)
    order, position = rng.permutation(len(pixels)), 0
    for _ in range(iterations):
        data = []
        for _ in range(k):
            if position + batch_size > len(order):
                order, position = rng.permutation(len(pixels)), 0
            data.append(pixels[order[position:position + batch_size]])
            position += batch_size
        noise = [rng.standard_normal((batch_size, CONFIG.noise_dim), dtype=np.float32) for _ in range(k + 1)]
        yield data, noise


# --- one training run per implementation --------------------------------------------------------


def train_minigan(seed, pixels, args):
    backend.manual_seed(seed)
    G, D = gan.build_generator(CONFIG), gan.build_discriminator(CONFIG)
    initial = {"G": G.state_dict(), "D": D.state_dict()}
    opt_G, opt_D = gan.build_optimizers(CONFIG, G, D)
    d_losses, g_losses = [], []
    started = time.perf_counter()
    for data, noise in batch_stream(seed, pixels, args.iterations, args.batch_size):
        data, noise = iter(data), iter(noise)
        stats = gan.train_iteration(G, D, opt_G, opt_D, lambda: Tensor(next(data)), lambda: Tensor(next(noise)),
                                    CONFIG.k, CONFIG.loss)
        d_losses.append(float(stats["d_loss"]))
        g_losses.append(float(stats["g_loss"]))
    seconds = time.perf_counter() - started

    def generate(z):
        with minigan.no_grad():
            return G(Tensor(z)).numpy()

    return initial, {"d_loss": d_losses, "g_loss": g_losses, "seconds": seconds}, generate


def train_torch(seed, initial, pixels, args):
    G, D = torch_reference.build_generator(), torch_reference.build_discriminator()
    torch_reference.load_minigan_weights(G, initial["G"])
    torch_reference.load_minigan_weights(D, initial["D"])
    opt_G, opt_D = torch_reference.build_optimizers(G, D)
    d_losses, g_losses = [], []
    started = time.perf_counter()
    for data, noise in batch_stream(seed, pixels, args.iterations, args.batch_size):
        data, noise = iter(data), iter(noise)
        stats = torch_reference.train_iteration(G, D, opt_G, opt_D, lambda: torch.from_numpy(next(data)),
                                                lambda: torch.from_numpy(next(noise)), CONFIG.k, CONFIG.loss)
        d_losses.append(stats["d_loss"].item())
        g_losses.append(stats["g_loss"].item())
    seconds = time.perf_counter() - started

    def generate(z):
        with torch.no_grad():
            return G(torch.from_numpy(z)).numpy()

    return {"d_loss": d_losses, "g_loss": g_losses, "seconds": seconds}, generate


# --- sample quality (optional: needs minigan.metrics and minigan.classifier) ---------------------


def load_scorer(args, train_pixels01, test_pixels01):
    """A function from samples in [0, 1] to {"parzen_ll", "parzen_se", "parzen_sigma", "fid"}, or
    None (with the reason printed) when the metrics modules are not there."""
    try:
        from minigan.metrics import (frechet_distance_from_statistics, gaussian_statistics,
                                     parzen_log_likelihood, parzen_summary, select_parzen_sigma)
    except (ImportError, AttributeError) as error:
        print(f"metrics: skipped, minigan.metrics is not usable ({error})")
        return None
    try:
        from minigan.classifier import load_or_train_classifier

        classifier = load_or_train_classifier(data_dir=args.data_dir, cache_dir=args.classifier_cache)
        test_statistics = gaussian_statistics(classifier.features(test_pixels01))
    except (ImportError, AttributeError) as error:
        print(f"FID: skipped, minigan.classifier is not usable ({error})")
        classifier = None
    validation = train_pixels01[VALIDATION_ROWS]

    def score(samples01):
        sigma, _ = select_parzen_sigma(samples01, validation)
        mean, standard_error = parzen_summary(parzen_log_likelihood(samples01, test_pixels01, sigma))
        result = {"parzen_ll": mean, "parzen_se": standard_error, "parzen_sigma": sigma}
        if classifier is not None:
            features = classifier.features(samples01.astype(np.float32))
            result["fid"] = frechet_distance_from_statistics(*gaussian_statistics(features), *test_statistics)
        return result

    return score


# --- output --------------------------------------------------------------------------------------


def smooth(values, window):
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def first_divergence(ours, theirs, tolerance=0.01):
    """The first iteration at which the two runs' losses differ by more than `tolerance`
    (relative), or None: until then they are the same run up to rounding."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    apart = np.abs(ours - theirs) > tolerance * np.maximum(np.abs(theirs), 1e-12)
    return int(np.argmax(apart)) if apart.any() else None


def tail_mean(values, fraction=0.1):
    values = np.asarray(values)
    return float(values[-max(1, int(len(values) * fraction)):].mean())


def plot(runs, sample_grids, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1])
    window = max(1, len(runs[0]["minigan"]["d_loss"]) // 40)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, (key, label) in enumerate((("d_loss", "D loss"), ("g_loss", "G loss"))):
        axis = fig.add_subplot(grid[0, 2 * column:2 * column + 2])
        for i, run in enumerate(runs):
            for implementation, style in (("minigan", "-"), ("torch", "--")):
                curve = smooth(run[implementation][key], window)
                axis.plot(np.arange(len(curve)) + window, curve, style, color=colors[i % len(colors)],
                          label=f"{implementation}, seed {run['seed']}", linewidth=1.2)
        axis.set(xlabel="iteration", ylabel=f"{label} (moving average of {window})")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7, ncol=2)
    for column, (implementation, images) in enumerate(sample_grids.items()):
        axis = fig.add_subplot(grid[1, 2 * column:2 * column + 2])
        axis.imshow(images, cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"{implementation}, seed {runs[0]['seed']}, same z", fontsize=9)
        axis.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def tile(samples01, rows=6, columns=6):
    images = samples01[:rows * columns].reshape(rows, columns, 28, 28)
    return images.transpose(0, 2, 1, 3).reshape(rows * 28, columns * 28)



# --- main ----------------------------------------------------------------------------------------


def main(args) -> None:
    started = datetime.datetime.now().astimezone()
    train_images, _ = load_mnist("train", data_dir=args.data_dir)
    test_images, _ = load_mnist("test", data_dir=args.data_dir)
    low, high = CONFIG.data_range
    train01 = train_images.reshape(len(train_images), -1).astype(np.float32) / 255
    pixels = train01[:CONFIG.train_images] * (high - low) + low  # what G learns to imitate, in [-1, 1]
    test01 = test_images[:args.test_size].reshape(-1, 784).astype(np.float64) / 255
    score = None if args.no_metrics else load_scorer(args, train01, test01)
    print(f"bench_quality: reference GAN on MNIST, seeds {args.seeds}, {args.iterations} iterations of batch "
          f"{args.batch_size}; torch {torch.__version__} with {torch.get_num_threads()} threads")

    runs, sample_grids = [], {}
    for seed in args.seeds:
        initial, ours, our_generate = train_minigan(seed, pixels, args)
        theirs, their_generate = train_torch(seed, initial, pixels, args)
        run = {"seed": seed, "minigan": ours, "torch": theirs,
               "first_divergence": min((i for i in (first_divergence(ours[key], theirs[key])
                                                   for key in ("d_loss", "g_loss")) if i is not None), default=None)}
        z = np.random.default_rng(10_000 + seed).standard_normal((args.samples, CONFIG.noise_dim), dtype=np.float32)
        for name, generate in (("minigan", our_generate), ("torch", their_generate)):
            samples01 = np.clip((generate(z).astype(np.float64) - low) / (high - low), 0, 1)
            run[name]["final_d_loss"] = tail_mean(run[name]["d_loss"])
            run[name]["final_g_loss"] = tail_mean(run[name]["g_loss"])
            if score is not None:
                run[name].update(score(samples01))
            if seed == args.seeds[0]:
                sample_grids[name] = tile(samples01)
        run["sample_difference_rms"] = float(np.sqrt(np.mean((our_generate(z[:256]) - their_generate(z[:256])) ** 2)))
        runs.append(run)
        print(f"  seed {seed}: " + "; ".join(
            f"{name} D {run[name]['final_d_loss']:.3f} G {run[name]['final_g_loss']:.3f}"
            + (f" Parzen {run[name]['parzen_ll']:.1f}" if "parzen_ll" in run[name] else "")
            + (f" FID {run[name]['fid']:.2f}" if "fid" in run[name] else "")
            + f" ({run[name]['seconds']:.0f} s)" for name in ("minigan", "torch"))
            + f"; losses agree within 1% until iteration {run['first_divergence']}"
            + f", rms(G_minigan(z) − G_torch(z)) at the end {run['sample_difference_rms']:.3f}")

    summary = {}
    for name in ("minigan", "torch"):
        summary[name] = {}
        for key in ("final_d_loss", "final_g_loss", "parzen_ll", "fid", "seconds"):
            values = [run[name][key] for run in runs if key in run[name]]
            if values:
                summary[name][key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
    print("\nover seeds, mean ± std (final = mean over the last 10% of iterations)")
    print(f"{'':<14}{'minigan':>22}{'torch':>22}")
    for key, label in (("final_d_loss", "final D loss"), ("final_g_loss", "final G loss"),
                       ("parzen_ll", "Parzen LL"), ("fid", "FID"), ("seconds", "train seconds")):
        if key in summary["minigan"]:
            cells = [f"{summary[n][key]['mean']:.3f} ± {summary[n][key]['std']:.3f}" for n in ("minigan", "torch")]
            print(f"{label:<14}{cells[0]:>22}{cells[1]:>22}")

    out_dir = Path(args.out_dir) if args.out_dir else RESULTS_DIR
    stem = f"bench_quality-{started:%Y%m%d-%H%M%S}"
    report = {
        "benchmark": "bench_quality", "date": started.isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "usable_cores": len(os.sched_getaffinity(0)),
                    "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "versions": {"python": platform.python_version(), "numpy": np.__version__,
                                 "torch": torch.__version__, "minigan": minigan.__version__}},
        "settings": {"config": CONFIG.name, "k": CONFIG.k, "loss": CONFIG.loss, "seeds": args.seeds,
                     "iterations": args.iterations, "batch_size": args.batch_size, "samples": args.samples,
                     "test_size": len(test01), "parzen_validation_rows": [VALIDATION_ROWS.start, VALIDATION_ROWS.stop]},
        "summary": summary, "runs": runs,
    }
    atomic_write(out_dir / f"{stem}.json", lambda f: f.write(json.dumps(report, indent=1).encode()))
    title = (f"minigan vs torch, reference GAN on MNIST, {args.iterations} iterations × batch {args.batch_size}, "
             f"seeds {args.seeds}, {started:%Y-%m-%d %H:%M}")
    plot(runs, sample_grids, out_dir / f"{stem}.png", title)
    print(f"wrote {out_dir / stem}.json and .png")


if __name__ == "__main__":
    main(parse_args())
