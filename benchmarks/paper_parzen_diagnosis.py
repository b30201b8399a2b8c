"""Why the paper config's Parzen score stops short of Table 1's 225: one checkpoint, taken apart.

    python benchmarks/paper_parzen_diagnosis.py runs/paper-table1/seed0/checkpoint_epoch075.npz

The Parzen window at σ ≈ 0.2 scores a test digit almost entirely by its nearest sample: a squared
distance d² costs d² / (2σ²) nats, about 11 nats per unit of d² at σ = 0.215. So there are two
suspects for a low score: a few stray bright pixels, each a large d², or samples that do not come
as close to the test digits as real digits do. This script scores, with minigan.evaluate's
protocol (σ chosen on training rows 50,000–51,000, then the 10,000 test digits), four sets of
10,000 images:

    samples                      what the evaluation scores
    samples, 3x3 median          the same with isolated pixels removed (strokes kept)
    real digits                  10,000 training digits, the evaluation's "real" row
    real digits, 3x3 median      the control: what the filter does to digits with no stray pixels

and, for each, the isolated bright pixels per image and the mean over 2,000 test digits of the
squared distance to the nearest image of the set. If the filter helped the samples far more than
it helps real digits, stray pixels would be the gap; if the nearest distances differ, coverage is.

A diagnosis, not a score: the filtered rows are never minigan's Parzen number. Writes the table and
a JSON record (--out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minigan import cli, evaluate  # noqa: E402
from minigan.atomic import atomic_write  # noqa: E402
from minigan.data import load_mnist  # noqa: E402

NEAREST_TEST_DIGITS = 2_000  # test digits whose nearest neighbour is measured (a 2,000 × 10,000 block)


def _shifted(images, include_centre: bool):
    """The 3×3 neighbourhood of every pixel of (n, 784) images, as (9 or 8, n, 28, 28), zero-padded."""
    padded = np.pad(images.reshape(-1, 28, 28), ((0, 0), (1, 1), (1, 1)))
    return np.stack([padded[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3)
                     if include_centre or (i, j) != (1, 1)])


def median_filter(images):
    """Each pixel replaced by the median of its 3×3 neighbourhood: an isolated pixel goes, a stroke
    two or more pixels wide stays. (n, 784) in, (n, 784) out."""
    return np.median(_shifted(images, include_centre=True), axis=0).reshape(len(images), 784)


def isolated_bright_pixels(images, bright: float = 0.5, dark: float = 0.2) -> float:
    """Mean count per image of pixels above `bright` whose 8 neighbours are all below `dark`."""
    centre = images.reshape(-1, 28, 28)
    lonely = (centre > bright) & (_shifted(images, include_centre=False).max(axis=0) < dark)
    return float(lonely.sum(axis=(1, 2)).mean())


def mean_nearest_squared_distance(images, test) -> float:
    """Mean over the rows of `test` of the squared distance to the nearest row of `images`."""
    squared = (test * test).sum(1)[:, None] + (images * images).sum(1)[None, :] - 2.0 * test @ images.T
    return float(np.maximum(squared, 0.0).min(axis=1).mean())


def diagnose(samples, real, validation, test) -> dict:
    """The four rows described above, each {parzen, standard_error, sigma, isolated..., nearest...}."""
    rows = {}
    for name, images in (("samples", samples), ("samples, 3x3 median", median_filter(samples)),
                         ("real digits", real), ("real digits, 3x3 median", median_filter(real))):
        parzen = evaluate.parzen_row(images, validation, test, name)
        rows[name] = {"parzen": parzen["log_likelihood"], "standard_error": parzen["standard_error"],
                      "sigma": parzen["sigma"], "isolated_bright_pixels_per_image": isolated_bright_pixels(images),
                      "nearest_squared_distance": mean_nearest_squared_distance(images, test[:NEAREST_TEST_DIGITS])}
    return rows


def format_rows(rows: dict) -> str:
    lines = [f"{'':26} {'Parzen':>14} {'σ':>6} {'isolated px':>12} {'nearest d²':>11}"]
    for name, row in rows.items():
        lines.append(f"{name:26} {row['parzen']:8.1f} ± {row['standard_error']:3.1f} {row['sigma']:6.3f} "
                     f"{row['isolated_bright_pixels_per_image']:12.2f} {row['nearest_squared_distance']:11.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a paper-config checkpoint.npz (or its run folder)")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST files (default: as minigan.evaluate)")
    parser.add_argument("--seed", type=cli.seed_int, default=0,
                        help="seed for the noise (default 0, as minigan.evaluate)")
    parser.add_argument("--out", default=None, help="write the JSON record here")
    args = parser.parse_args(argv)

    G, config, arrays = evaluate.load_generator(args.checkpoint)
    if args.out:  # before minutes of scoring
        if Path(args.out).resolve() == evaluate.checkpoint_file(args.checkpoint).resolve():
            raise SystemExit(f"error: --out {args.out} is the checkpoint itself; name a .json file")
        cli.check_output_file(args.out)
    train, _ = load_mnist("train", data_dir=args.data_dir)
    test_images, _ = load_mnist("test", data_dir=args.data_dir)
    validation, test = evaluate.unit_pixels(train[evaluate.VALIDATION_ROWS]), evaluate.unit_pixels(test_images)
    samples = evaluate.generate_pixels(G, config, 10_000, args.seed)
    rows = diagnose(samples, evaluate.unit_pixels(train[:10_000]), validation, test)
    epoch = int(arrays["meta.epoch"]) if "meta.epoch" in arrays else None
    print(f"{args.checkpoint} (epoch {epoch})\n{format_rows(rows)}")
    if args.out:
        record = {"checkpoint": args.checkpoint, "epoch": epoch, "rows": rows,
                  "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        atomic_write(Path(args.out), lambda f: f.write(json.dumps(record, indent=1).encode()))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
