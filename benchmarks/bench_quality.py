"""Does minigan learn what torch learns, at the budget of the torch script users compare it with?

    python benchmarks/bench_quality.py                      # 10 epochs, 3 seeds: hours on 2 cores
    python benchmarks/bench_quality.py --seeds 0 1 2 3 4 --eval-epochs 1 2 5 10
    python benchmarks/bench_quality.py --quick              # smoke run, under a minute

Four rows, each trained on MNIST for `--epochs` epochs (an epoch: 468 shuffled minibatches of 128;
the last 96 images of each shuffle are dropped):

    torch-k1      the torch reference (benchmarks/torch_reference.py), Algorithm 1 at k = 1
    torch-every5  the same nets and losses under the users' torch script schedule: of every 5
                  minibatches, 4 give a D step and the 5th gives only a G step that reuses the last
                  D step's fakes (torch_reference.every5_epoch): 375 D and 93 G steps an epoch
    minigan-k1    gan.train_iteration at k = 1: 468 D and 468 G steps an epoch
    minigan-k4    gan.train_iteration at k = 4, the closest Algorithm-1 counterpart of every5: 117
                  iterations an epoch, 468 D steps on fresh data and 117 G steps on fresh noise

Within a seed every row starts from the same weights (minigan's, copied into torch), shuffles the
data the same way, and takes minibatch i's D-step noise from the same stream. minigan-k1 and
torch-k1 therefore see identical minibatches and noise, step for step. every5 and k4 share the
first group of 4 D steps and then part ways: every5 skips every 5th minibatch and draws no noise for
its G step, k4 uses every minibatch for D and draws G-step noise.

At each of `--eval-epochs` every row's G draws `--samples` digits from the same z, scored against
`--test-size` test digits as `python -m minigan.evaluate` does: Parzen-window log-likelihood (σ
chosen on 1,000 training digits, the paper's protocol at the paper's 10,000 samples by default),
FID of digit-classifier features, Inception Score and classes covered (minigan.classifier; trained
once and cached). Then, per row, mean ± std over seeds, and for each pair of rows Welch's t-test
(computed here, no scipy): a difference counts only when p < 0.05.

Results: benchmarks/results/bench_quality-<time>.json and .png, or bench_quality-reduced-<time>.*
when the run is smaller than the default budget.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

import minigan
from minigan import Tensor, backend, cli, evaluate, gan
from minigan.atomic import atomic_write
from minigan.classifier import CacheDirError, check_cache_dir, load_or_train_classifier
from minigan.data import load_mnist
from minigan.metrics import gaussian_statistics

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_reference  # noqa: E402
from machine import cpu_model  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONFIG = gan.CONFIGS["reference"]
VALIDATION_ROWS = evaluate.VALIDATION_ROWS  # training digits that choose the Parzen σ
SAMPLE_SEED_OFFSET = 10_000  # the evaluation noise of seed s comes from default_rng(10_000 + s)
ROWS = {
    "torch-k1": "torch reference, Algorithm 1 at k = 1",
    "torch-every5": "torch reference, the users' every-5 schedule (4 D steps, then a G step on the last fakes)",
    "minigan-k1": "minigan gan.train_iteration, k = 1",
    "minigan-k4": "minigan gan.train_iteration, k = 4 (fresh data for every D step, fresh noise for G)",
}
METRICS = ("parzen_ll", "fid", "classes_covered", "kl_to_uniform", "inception_score")
COMPARED = ("parzen_ll", "fid", "classes_covered", "kl_to_uniform")
SIGNIFICANCE = 0.05
DEFAULTS = {"epochs": 10, "seeds": [0, 1, 2], "eval_epochs": [2, 5, 10], "samples": 10_000, "test_size": 10_000,
            "train_images": CONFIG.train_images, "batch_size": CONFIG.batch_size}
QUICK = {"epochs": 2, "seeds": [0, 1], "eval_epochs": [1, 2], "samples": 500, "test_size": 500,
         "train_images": 1280}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder with the MNIST files; else $MINIGAN_DATA, then the checkout's data/mnist, "
                        "then ~/.cache/minigan/mnist (downloaded there if none has them)")
    parser.add_argument("--seeds", type=cli.seed_int, nargs="+", default=DEFAULTS["seeds"])
    parser.add_argument("--epochs", type=cli.positive_int, default=DEFAULTS["epochs"])
    parser.add_argument("--eval-epochs", type=cli.positive_int, nargs="+",
                        help="epochs after which samples are scored (default 2 5 10, or those up to --epochs; "
                             "the last epoch always is)")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--samples", type=cli.positive_int, default=DEFAULTS["samples"],
                        help="generator samples scored")
    parser.add_argument("--test-size", type=cli.positive_int, default=DEFAULTS["test_size"],
                        help=f"test digits scored, at most {evaluate.MNIST_TEST_SIZE}")
    parser.add_argument("--train-images", type=cli.positive_int, default=DEFAULTS["train_images"],
                        help="train on the first N training digits (default all 60000)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=DEFAULTS["batch_size"])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items())
                        + " (flags given explicitly win)")
    parser.add_argument("--classifier-cache", default=None, help="folder of the cached digit classifier")
    parser.add_argument("--out-dir", default=None, help="default: benchmarks/results next to this file")
    args = parser.parse_args(argv)
    if args.quick:  # the quick settings become the defaults; flags on the command line still win
        parser.set_defaults(**{key: value for key, value in QUICK.items() if key != "eval_epochs"})
        args = parser.parse_args(argv)
    if args.eval_epochs is None:  # the default epochs, as far as this run goes
        default = (QUICK if args.quick else DEFAULTS)["eval_epochs"]
        args.eval_epochs = [e for e in default if e <= args.epochs]
    elif max(args.eval_epochs) > args.epochs:
        parser.error(f"--eval-epochs {max(args.eval_epochs)} is past --epochs {args.epochs}")
    args.eval_epochs = sorted(set(args.eval_epochs) | {args.epochs})
    for flag, values in (("--seeds", args.seeds), ("--rows", args.rows)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            parser.error(f"{flag} names {', '.join(repeated)} more than once")
    if args.samples < 2 or args.test_size < 2:
        parser.error("--samples and --test-size must be at least 2 (a covariance needs two rows)")
    if args.test_size > evaluate.MNIST_TEST_SIZE:
        parser.error(f"--test-size {args.test_size} is more than the {evaluate.MNIST_TEST_SIZE} digits of the "
                     f"MNIST test set")
    if args.train_images < args.batch_size:
        parser.error("--train-images must hold at least one minibatch")
    return args


def is_default_budget(args) -> bool:
    return all(getattr(args, key) == value for key, value in DEFAULTS.items() if key not in ("seeds", "eval_epochs")) \
        and len(args.seeds) >= len(DEFAULTS["seeds"]) and set(args.rows) == set(ROWS)


# --- the same minibatches and noise for every row --------------------------------------------------


class EpochMinibatches:
    """Epoch `epoch`'s minibatches for one seed, made on demand: item i is (x, z_d, z_g), the data,
    the noise for the D step on it, and noise for a G step after it. The shuffle and every noise
    batch depend only on (seed, epoch, i), so each row gets the same one whatever it skips."""

    def __init__(self, pixels, seed: int, epoch: int, batch_size: int):
        self.pixels, self.seed, self.epoch, self.batch_size = pixels, seed, epoch, batch_size
        self.order = np.random.default_rng([seed, epoch]).permutation(len(pixels))

    def __len__(self):
        return len(self.order) // self.batch_size  # the last partial minibatch is dropped

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(i)
        x = self.pixels[self.order[i * self.batch_size:(i + 1) * self.batch_size]]
        z_d, z_g = (np.random.default_rng([self.seed, self.epoch, i, role])
                    .standard_normal((self.batch_size, CONFIG.noise_dim), dtype=np.float32) for role in (0, 1))
        return x, z_d, z_g


# --- the rows ----------------------------------------------------------------------------------------


class MiniganRow:
    """gan.train_iteration with k D steps per iteration; an epoch is len(minibatches) // k iterations."""

    def __init__(self, initial, k: int):
        self.k = k
        self.G, self.D = gan.build_generator(CONFIG), gan.build_discriminator(CONFIG)
        self.G.load_state_dict(initial["G"])
        self.D.load_state_dict(initial["D"])
        self.opt_G, self.opt_D = gan.build_optimizers(CONFIG, self.G, self.D)

    def train_epoch(self, minibatches) -> dict:
        d_losses, g_losses = [], []
        for start in range(0, len(minibatches) - self.k + 1, self.k):
            group = [minibatches[i] for i in range(start, start + self.k)]
            data = iter([Tensor(x) for x, _, _ in group])
            noise = iter([Tensor(z_d) for _, z_d, _ in group] + [Tensor(group[-1][2])])
            stats = gan.train_iteration(self.G, self.D, self.opt_G, self.opt_D, lambda: next(data),
                                        lambda: next(noise), self.k, CONFIG.loss)
            d_losses.append(float(stats["d_loss"]))
            g_losses.append(float(stats["g_loss"]))
        return {"d_steps": self.k * len(d_losses), "g_steps": len(g_losses), "d_loss": d_losses, "g_loss": g_losses}

    def generate(self, z):
        with minigan.no_grad():
            return self.G(Tensor(z)).numpy()


class TorchRow:
    """torch_reference.train_epoch under a named schedule ("k1" or "every5")."""

    def __init__(self, initial, schedule: str):
        self.schedule = schedule
        self.G, self.D = torch_reference.build_generator(), torch_reference.build_discriminator()
        torch_reference.load_minigan_weights(self.G, initial["G"])
        torch_reference.load_minigan_weights(self.D, initial["D"])
        self.opt_G, self.opt_D = torch_reference.build_optimizers(self.G, self.D)

    def train_epoch(self, minibatches) -> dict:
        as_tensors = (tuple(map(torch.from_numpy, minibatches[i])) for i in range(len(minibatches)))
        return torch_reference.train_epoch(self.G, self.D, self.opt_G, self.opt_D, as_tensors, self.schedule,
                                           CONFIG.loss)

    def generate(self, z):
        with torch.no_grad():
            return self.G(torch.from_numpy(z)).numpy()


def build_row(name: str, initial):
    return {"torch-k1": lambda: TorchRow(initial, "k1"), "torch-every5": lambda: TorchRow(initial, "every5"),
            "minigan-k1": lambda: MiniganRow(initial, 1), "minigan-k4": lambda: MiniganRow(initial, 4)}[name]()


# --- scoring, as python -m minigan.evaluate does it ----------------------------------------------------


def sample_pixels(generate, n: int, seed: int) -> np.ndarray:
    """n samples as float64 pixels in [0, 1], from the z that evaluate.generate_pixels would draw."""
    rng, low, high = np.random.default_rng(seed), *CONFIG.data_range
    chunks = []
    for start in range(0, n, evaluate.SAMPLE_BATCH):
        z = rng.standard_normal((min(evaluate.SAMPLE_BATCH, n - start), CONFIG.noise_dim), dtype=np.float32)
        chunks.append(generate(z).astype(np.float64))
    return np.clip((np.concatenate(chunks) - low) / (high - low), 0.0, 1.0)


def make_scorer(classifier, validation, test):
    test_statistics = gaussian_statistics(classifier.features(test))

    def score(samples01) -> dict:
        parzen = evaluate.parzen_row(samples01, validation, test, "samples")
        row = evaluate.classifier_row(classifier, samples01, test_statistics)
        return {"parzen_ll": parzen["log_likelihood"], "parzen_se": parzen["standard_error"],
                "parzen_sigma": parzen["sigma"], **row}

    return score


# --- statistics over seeds -------------------------------------------------------------------------


def regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), by the continued fraction of Numerical Recipes (betacf, modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this; use the symmetry
        return 1.0 - regularized_incomplete_beta(1.0 - x, b, a)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with df degrees of freedom: I_{df/(df + t²)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / (df + t * t), df / 2, 0.5)


def welch_t_test(a, b) -> dict | None:
    """Welch's t-test of mean(a) = mean(b) without assuming equal variances; None below 2 values each.

    t = (ā − b̄) / √(s_a²/n_a + s_b²/n_b), with Welch–Satterthwaite degrees of freedom. When both
    samples have zero spread the test is degenerate: p = 1 for equal means, else 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = float(a.var(ddof=1)) / len(a), float(b.var(ddof=1)) / len(b)
    difference = float(a.mean() - b.mean())
    if va + vb == 0:
        return {"difference": difference, "t": math.copysign(math.inf, difference) if difference else 0.0,
                "df": None, "p": 0.0 if difference else 1.0}
    t = difference / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return {"difference": difference, "t": t, "df": df, "p": student_t_two_sided_p(t, df)}


def mean_std(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "n": len(values), "values": values.tolist()}


def summarize(runs, rows, eval_epochs):
    """Per row and evaluated epoch, mean ± std of each metric over seeds; and at the last epoch
    Welch's test for every pair of rows and every compared metric."""
    def values(row, epoch, metric):
        return [run["rows"][row]["evaluations"][str(epoch)][metric] for run in runs]

    summary = {row: {str(epoch): {metric: mean_std(values(row, epoch, metric)) for metric in METRICS}
                     for epoch in eval_epochs} for row in rows}
    last = eval_epochs[-1]
    comparisons = []
    for a, b in combinations(rows, 2):
        for metric in COMPARED:
            test = welch_t_test(values(a, last, metric), values(b, last, metric))
            if test is not None:
                comparisons.append({"a": a, "b": b, "metric": metric, "epoch": last, **test,
                                    "exceeds_seed_spread": bool(test["p"] < SIGNIFICANCE)})
    return summary, comparisons


# --- output -----------------------------------------------------------------------------------------


def tile(samples01, rows=6, columns=6):
    images = samples01[:rows * columns].reshape(rows, columns, 28, 28)
    return images.transpose(0, 2, 1, 3).reshape(rows * 28, columns * 28)


def plot(report, sample_grids, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, epochs = report["settings"]["rows"], report["settings"]["eval_epochs"]
    fig = plt.figure(figsize=(13, 7.5))
    grid = fig.add_gridspec(2, max(3, len(rows)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for column, (metric, label) in enumerate((("parzen_ll", "Parzen log-likelihood (nats), higher is better"),
                                              ("fid", "FID (classifier features), lower is better"),
                                              ("classes_covered", "classes covered (of 10)"))):
        axis = fig.add_subplot(grid[0, column])
        for i, row in enumerate(rows):
            stats = [report["summary"][row][str(e)][metric] for e in epochs]
            for run in report["runs"]:
                axis.plot(epochs, [run["rows"][row]["evaluations"][str(e)][metric] for e in epochs], ".",
                          color=colors[i], alpha=0.35)
            axis.errorbar(epochs, [s["mean"] for s in stats], yerr=[s["std"] or 0 for s in stats], color=colors[i],
                          capsize=3, label=row, linestyle="--" if row.startswith("torch") else "-")
        axis.set(xlabel="epoch", title=label, xticks=epochs)
        axis.title.set_fontsize(9)
        axis.grid(True, alpha=0.3)
        if column == 0:
            axis.legend(fontsize=8)
    for column, (row, images) in enumerate(sample_grids.items()):
        axis = fig.add_subplot(grid[1, column])
        axis.imshow(images, cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"{row}, epoch {epochs[-1]}, seed {report['settings']['seeds'][0]}", fontsize=9)
        axis.axis("off")
    settings = report["settings"]
    fig.suptitle(f"{report['budget']} budget: {settings['epochs']} epochs × {settings['minibatches_per_epoch']} "
                 f"minibatches of {settings['batch_size']}, seeds {settings['seeds']}, {settings['samples']} samples "
                 f"vs {settings['test_size']} test digits; mean ± std over seeds, dots: single seeds; "
                 f"{report['date'][:16]}, load {report['machine']['load_before'][0]:.1f}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def recorded_command(argv) -> str:
    """The command line, with folder arguments replaced by placeholders (they name this machine)."""
    argv, shown = list(argv), []
    for i, word in enumerate(argv):
        flags = ("--data-dir", "--classifier-cache", "--out-dir")
        if i > 0 and argv[i - 1] in flags:
            shown.append(f"<{argv[i - 1][2:]}>")
        elif word.startswith(tuple(f"{flag}=" for flag in flags)):
            flag = word.split("=")[0]
            shown.append(f"{flag}=<{flag[2:]}>")
        else:
            shown.append(word)
    return "python benchmarks/bench_quality.py " + shlex.join(shown)


def print_summary(summary, comparisons, rows, last):
    print(f"\nafter epoch {last}, mean ± std over seeds")
    print(f"{'':<15}" + "".join(f"{row:>22}" for row in rows))
    for metric in METRICS:
        cells = [summary[row][str(last)][metric] for row in rows]
        print(f"{metric:<15}" + "".join(f"{c['mean']:>12.2f} ± {c['std'] if c['std'] is not None else math.nan:<7.2f}"
                                        for c in cells))
    print(f"\nWelch's t-test, epoch {last} (a difference exceeds the seed spread when p < {SIGNIFICANCE})")
    for c in comparisons:
        verdict = "EXCEEDS seed spread" if c["exceeds_seed_spread"] else "within seed spread"
        df = f"{c['df']:.1f}" if c["df"] is not None else "-"
        print(f"  {c['metric']:<15} {c['a']:>13} − {c['b']:<13} = {c['difference']:>8.2f}   t {c['t']:>6.2f}  "
              f"df {df:>4}  p {c['p']:.3f}  {verdict}")


# --- main -------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    args = parse_args(argv)
    # Before hours of training: the report and the classifier must have somewhere to go.
    out_dir = cli.check_output_dir(args.out_dir if args.out_dir else RESULTS_DIR, "--out-dir")
    try:
        check_cache_dir(args.classifier_cache)
    except CacheDirError as error:
        raise CacheDirError(f"{error}; pass another --classifier-cache") from None
    cli.warn_if_cores_busy()
    started = datetime.datetime.now().astimezone()
    load_before = os.getloadavg()
    train_images, _ = load_mnist("train", data_dir=args.data_dir)
    test_images, _ = load_mnist("test", data_dir=args.data_dir)
    if args.train_images > len(train_images):
        raise SystemExit(f"error: --train-images {args.train_images} is more than the {len(train_images)} "
                         f"training digits there are")
    low, high = CONFIG.data_range
    train01 = evaluate.unit_pixels(train_images)
    pixels = (train01[:args.train_images] * (high - low) + low).astype(np.float32)  # what G imitates, in [-1, 1]
    test01 = evaluate.unit_pixels(test_images[:args.test_size])
    classifier = load_or_train_classifier(data_dir=args.data_dir, cache_dir=args.classifier_cache)
    score = make_scorer(classifier, train01[VALIDATION_ROWS], test01)
    minibatches_per_epoch = len(pixels) // args.batch_size
    print(f"bench_quality: rows {args.rows}, seeds {args.seeds}, {args.epochs} epochs of {minibatches_per_epoch} "
          f"minibatches of {args.batch_size}, scored at epochs {args.eval_epochs}; torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads; load {load_before[0]:.2f}")

    runs, sample_grids = [], {}
    for seed in args.seeds:
        backend.manual_seed(seed)
        initial = {"G": gan.build_generator(CONFIG).state_dict(), "D": gan.build_discriminator(CONFIG).state_dict()}
        run = {"seed": seed, "rows": {}}
        for name in args.rows:
            row, record = build_row(name, initial), {"epochs": [], "evaluations": {}}
            for epoch in range(1, args.epochs + 1):
                tick = time.perf_counter()
                stats = row.train_epoch(EpochMinibatches(pixels, seed, epoch, args.batch_size))
                entry = {"epoch": epoch, "d_steps": stats["d_steps"], "g_steps": stats["g_steps"],
                         "d_loss_mean": float(np.mean(stats["d_loss"])) if stats["d_loss"] else None,
                         "g_loss_mean": float(np.mean(stats["g_loss"])) if stats["g_loss"] else None,
                         "train_seconds": time.perf_counter() - tick}
                line = f"  seed {seed} {name:<13} epoch {epoch:>2}: {entry['train_seconds']:5.1f} s"
                if epoch in args.eval_epochs:
                    tick = time.perf_counter()
                    samples01 = sample_pixels(row.generate, args.samples, SAMPLE_SEED_OFFSET + seed)
                    record["evaluations"][str(epoch)] = score(samples01)
                    entry["eval_seconds"] = time.perf_counter() - tick
                    scores = record["evaluations"][str(epoch)]
                    line += (f", Parzen {scores['parzen_ll']:7.1f}, FID {scores['fid']:7.2f}, "
                             f"classes {scores['classes_covered']} (scored in {entry['eval_seconds']:.0f} s)")
                    if seed == args.seeds[0] and epoch == args.epochs:
                        sample_grids[name] = tile(samples01)
                record["epochs"].append(entry)
                print(line, flush=True)
            run["rows"][name] = record
        runs.append(run)

    summary, comparisons = summarize(runs, args.rows, args.eval_epochs)
    print_summary(summary, comparisons, args.rows, args.eval_epochs[-1])
    budget = "default" if is_default_budget(args) else "reduced"
    report = {
        "benchmark": "bench_quality", "budget": budget, "date": started.isoformat(timespec="seconds"),
        "command": recorded_command(sys.argv[1:] if argv is None else argv),
        "wall_seconds": (datetime.datetime.now().astimezone() - started).total_seconds(),
        "machine": {"cpu_model": cpu_model(), "usable_cores": len(os.sched_getaffinity(0)),
                    "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "platform": platform.platform(), "load_before": list(load_before),
                    "load_after": list(os.getloadavg())},
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                     "minigan": minigan.__version__},
        "settings": {"config": CONFIG.name, "loss": CONFIG.loss, "rows": args.rows,
                     "row_descriptions": {row: ROWS[row] for row in args.rows}, "seeds": args.seeds,
                     "epochs": args.epochs, "eval_epochs": args.eval_epochs, "batch_size": args.batch_size,
                     "train_images": len(pixels), "minibatches_per_epoch": minibatches_per_epoch,
                     "samples": args.samples, "test_size": len(test01), "sample_seed": f"{SAMPLE_SEED_OFFSET} + seed",
                     "parzen_validation_rows": [VALIDATION_ROWS.start, VALIDATION_ROWS.stop],
                     "classifier_test_accuracy": classifier.test_accuracy, "significance_level": SIGNIFICANCE},
        "summary": summary, "comparisons": comparisons, "runs": runs,
    }
    stem = f"bench_quality-{'' if budget == 'default' else 'reduced-'}{started:%Y%m%d-%H%M%S}"
    atomic_write(out_dir / f"{stem}.json", lambda f: f.write(json.dumps(report, indent=1).encode()))
    plot(report, sample_grids, out_dir / f"{stem}.png")
    print(f"wrote {out_dir / stem}.json and .png ({report['wall_seconds']:.0f} s)")
    return report


def run(argv=None) -> int:
    main(argv)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(run))
