"""Score a trained MNIST generator: the paper's Parzen number, and what it cannot see.

    python -m minigan.evaluate runs/mnist-reference/checkpoint.npz

Loads G from a checkpoint written by examples/mnist.py, draws 10,000 samples, and prints:

- Parzen window log-likelihood of the 10,000 test digits (the paper's Table 1, 225 ± 2 nats for
  their GAN), with σ chosen from logspace(-1, 0, 10) on 1,000 held-out training digits
  (train[50000:51000], which the `paper` config never trains on);
- FID between classifier features of the samples and of the test digits;
- Inception Score, classes covered and KL(label histogram ‖ uniform), from the same classifier
  (minigan.classifier, trained once and cached);

and, for scale, the same numbers for real digits: 10,000 training digits put in the samples'
place (the Parzen and IS a perfect generator would get), and FID between training and test
digits (the floor that finite samples leave). Results also go to a JSON file named after the
checkpoint (A.npz's to A.evaluation.json beside it, so that scoring B.npz in the same folder
keeps A's), or to --out. The first run trains the classifier (a few minutes on a CPU).

MNIST is looked for in --data-dir, then $MINIGAN_DATA, then the copy shipped in the checkout
(data/mnist), then ~/.cache/minigan/mnist, and downloaded into the last only if none has it.
"""

from __future__ import annotations

from . import cli

if __name__ == "__main__":  # before the imports below, which take seconds on a busy machine
    cli.interrupt_quietly_while_starting()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from . import backend, gan  # noqa: E402
from .atomic import file_problem  # noqa: E402
from .checkpoint import CheckpointError, atomic_write, load_checkpoint, split_prefix  # noqa: E402
from .classifier import CacheDirError, check_cache_dir, load_or_train_classifier  # noqa: E402
from .data import MNISTError, load_mnist  # noqa: E402
from .metrics import (PARZEN_SIGMAS, class_coverage, frechet_distance_from_statistics,  # noqa: E402
                      gaussian_statistics, inception_score, parzen_log_likelihood, parzen_summary)
from .tensor import no_grad  # noqa: E402

# Held-out digits for choosing σ, as in the authors' parzen_ll.py: the 1,000 after the 50,000
# that the `paper` config trains on. (The `reference` config trains on all 60,000, so for it they
# are not held out; they only pick σ, which the test set then judges.)
VALIDATION_ROWS = slice(50_000, 51_000)
PARZEN_CHUNK = 500  # test rows per Parzen call: one tick of the progress bar
SAMPLE_BATCH = 1000  # noise vectors per forward pass of G
MNIST_TEST_SIZE, MNIST_TRAIN_SIZE = 10_000, 60_000


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minigan.evaluate", description="Parzen log-likelihood, FID, IS "
                                "and class coverage of an MNIST GAN checkpoint.")
    p.add_argument("checkpoint", help="checkpoint.npz written by examples/mnist.py (or its run folder)")
    p.add_argument("--out", help="JSON file for the results (default: CHECKPOINT.evaluation.json, "
                                 "beside the checkpoint, named after it)")
    p.add_argument("--data-dir", help="folder with the MNIST files; else $MINIGAN_DATA, then the checkout's "
                                      "data/mnist, then ~/.cache/minigan/mnist (downloaded there if none has them)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--samples", type=cli.positive_int, default=10_000,
                   help=f"generator samples, at most {MNIST_TRAIN_SIZE} (as many real digits are scored beside them; "
                        f"default 10000)")
    p.add_argument("--test-size", type=cli.positive_int, default=10_000,
                   help=f"test digits to score, at most {MNIST_TEST_SIZE} (default 10000)")
    p.add_argument("--seed", type=cli.seed_int, default=0, help="seed for the noise (default 0)")
    p.add_argument("--cache-dir", help="where the classifier is cached (default ~/.cache/minigan)")
    args = p.parse_args(argv)
    if args.samples < 2 or args.test_size < 2:
        p.error("--samples and --test-size must be at least 2 (a covariance needs two rows)")
    if args.test_size > MNIST_TEST_SIZE:
        p.error(f"--test-size {args.test_size} is more than the {MNIST_TEST_SIZE} digits of the MNIST test set")
    if args.samples > MNIST_TRAIN_SIZE:
        p.error(f"--samples {args.samples} is more than the {MNIST_TRAIN_SIZE} training digits that are "
                f"scored in their place")
    args.device = cli.usable_device(p, args.device)
    return args


# --- the pieces -----------------------------------------------------------------------------------


def checkpoint_file(path) -> Path:
    """The checkpoint a path names: the file itself, or a run folder's checkpoint.npz."""
    path = Path(path)
    if not path.is_dir():
        return path
    if (path / "checkpoint.npz").is_file():
        return path / "checkpoint.npz"
    others = sorted(p.name for p in path.glob("*.npz"))
    hint = f"; it holds {', '.join(others[:4])}{', ...' if len(others) > 4 else ''}: name one" if others else ""
    raise CheckpointError(f"checkpoint {path} is a folder with no checkpoint.npz in it{hint}")


def result_file(checkpoint) -> Path:
    """Where the results of `checkpoint` go by default: A.npz's beside it, as A.evaluation.json."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.evaluation.json")


def load_generator(path, device="cpu"):
    """(G, config, checkpoint arrays) from an examples/mnist.py checkpoint (or its run folder), or
    CheckpointError."""
    path = checkpoint_file(path)
    arrays = load_checkpoint(path)
    if "meta.config" not in arrays:
        raise CheckpointError(f"checkpoint {path} has no meta.config: not written by examples/mnist.py")
    name = str(arrays["meta.config"])
    if name not in gan.CONFIGS:
        raise CheckpointError(f"checkpoint {path} names config {name!r}; known: {', '.join(sorted(gan.CONFIGS))}")
    if str(arrays.get("meta.noise", "")) not in gan.NOISES:
        raise CheckpointError(f"checkpoint {path} has no valid meta.noise (the prior p_z): "
                              f"not written by this version of examples/mnist.py")
    config = dataclasses.replace(gan.CONFIGS[name], noise=str(arrays["meta.noise"]))
    G = gan.build_generator(config, device=device)
    try:
        G.load_state_dict(split_prefix(arrays, "G."))
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path} does not fit the {name} generator: {error}") from None
    # A diverged run saves NaN weights; they would surface as a LinAlgError deep inside FID.
    broken = [key for key, value in arrays.items() if key.startswith("G.") and not np.all(np.isfinite(value))]
    if broken:
        raise CheckpointError(f"checkpoint {path} has NaN or infinite generator weights ({', '.join(broken)}): "
                              f"the run diverged; evaluate an earlier checkpoint")
    return G.eval(), config, arrays


def generate_pixels(G, config: gan.Config, n: int, seed: int, device="cpu") -> np.ndarray:
    """n samples as (n, 784) float64 pixels in [0, 1], on the host.

    G outputs the config's data range ([-1, 1] from tanh for `reference`, [0, 1] from a sigmoid for
    `paper`); the measures compare with real digits in [0, 1], so we map back to that.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"generate_pixels: n must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    chunks = []
    with no_grad():
        for start in range(0, n, SAMPLE_BATCH):
            z = gan.sample_noise(config, min(SAMPLE_BATCH, n - start), rng, device=device)
            chunks.append(backend.to_numpy(G(z).data).astype(np.float64))
    return to_unit_interval(np.concatenate(chunks), config)


def unit_pixels(images) -> np.ndarray:
    """MNIST images (uint8, any shape with the digits first) as (n, 784) float64 pixels in [0, 1],
    the form every measure here takes. Float64, because the Parzen exponents reach −10^4 (see metrics)."""
    return np.asarray(images).reshape(len(images), -1).astype(np.float64) / 255


def to_unit_interval(pixels, config: gan.Config) -> np.ndarray:
    """G's outputs, in the config's data range, as pixels in [0, 1] (float64)."""
    low, high = config.data_range
    return np.clip((np.asarray(pixels, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def parzen_row(samples, validation, test, label: str) -> dict:
    """σ by mean log-likelihood of `validation`, then the test set's mean LL ± standard error."""
    validation_ll = {}
    for sigma in tqdm(PARZEN_SIGMAS, desc=f"Parzen σ search ({label})", leave=False, dynamic_ncols=True):
        validation_ll[float(sigma)] = float(parzen_log_likelihood(samples, validation, float(sigma)).mean())
    sigma = max(validation_ll, key=validation_ll.get)
    chunks = []
    for start in tqdm(range(0, len(test), PARZEN_CHUNK), desc=f"Parzen test LL ({label})", leave=False,
                      dynamic_ncols=True):
        chunks.append(backend.to_numpy(parzen_log_likelihood(samples, test[start:start + PARZEN_CHUNK], sigma)))
    mean, standard_error = parzen_summary(np.concatenate(chunks))
    return {"log_likelihood": mean, "standard_error": standard_error, "sigma": sigma,
            "validation_log_likelihood": {f"{s:.4f}": ll for s, ll in validation_ll.items()}}


def classifier_row(classifier, images, reference_statistics) -> dict:
    """FID against the reference statistics, Inception Score, classes covered, KL to uniform."""
    features = classifier.features(images)
    probabilities = classifier.class_probabilities(images)
    coverage = class_coverage(probabilities.argmax(axis=1))
    inception_mean, _ = inception_score(probabilities)
    return {"fid": frechet_distance_from_statistics(*gaussian_statistics(features), *reference_statistics),
            "inception_score": inception_mean, "classes_covered": coverage["classes_covered"],
            "kl_to_uniform": coverage["kl_to_uniform"], "class_histogram": coverage["histogram"].tolist()}


# --- the whole evaluation -------------------------------------------------------------------------


def evaluate(checkpoint, data_dir=None, device="cpu", samples=10_000, test_size=10_000, seed=0, cache_dir=None) -> dict:
    """Every number of the table for one checkpoint, as a JSON-ready dict."""
    started = time.perf_counter()
    try:
        check_cache_dir(cache_dir)  # before minutes of data loading and classifier training
    except CacheDirError as error:
        raise CacheDirError(f"{error}; pass another --cache-dir") from None
    for name, value in (("samples", samples), ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"evaluate: {name} must be an integer of at least 2 (a covariance needs two rows), "
                             f"got {value!r}")
    if test_size > MNIST_TEST_SIZE:
        raise ValueError(f"test_size {test_size} is more than the {MNIST_TEST_SIZE} digits of the MNIST test set")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"evaluate: seed must be an integer in [0, 2**32), got {seed!r}")
    G, config, arrays = load_generator(checkpoint, device)
    train_images, _ = load_mnist("train", data_dir=data_dir)
    test_images, _ = load_mnist("test", data_dir=data_dir)
    if len(train_images) < max(samples, VALIDATION_ROWS.stop):
        raise MNISTError(f"the training split has {len(train_images)} images; the evaluation needs "
                         f"{max(samples, VALIDATION_ROWS.stop)}")

    validation = unit_pixels(train_images[VALIDATION_ROWS])
    real_samples = unit_pixels(train_images[:samples])  # a perfect generator's samples: real digits, as many as G's
    test = unit_pixels(test_images[:test_size])

    fake = generate_pixels(G, config, samples, seed, device)
    if not np.all(np.isfinite(fake)):
        raise CheckpointError(f"the generator in {checkpoint} draws NaN pixels: the run diverged; "
                              f"evaluate an earlier checkpoint")
    classifier = load_or_train_classifier(data_dir=data_dir, cache_dir=cache_dir, device=device)
    test_statistics = gaussian_statistics(classifier.features(test))

    model = {"parzen": parzen_row(fake, validation, test, "samples"),
             **classifier_row(classifier, fake, test_statistics)}
    real = {"parzen": parzen_row(real_samples, validation, test, "real digits"),
            **classifier_row(classifier, real_samples, test_statistics)}
    return {
        "checkpoint": str(checkpoint), "config": config.name,
        "epoch": int(arrays["meta.epoch"]) if "meta.epoch" in arrays else None,
        "step": int(arrays["meta.step"]) if "meta.step" in arrays else None,
        "samples": samples, "test_size": len(test), "seed": seed,
        "validation_rows": [VALIDATION_ROWS.start, VALIDATION_ROWS.stop],
        "classifier_test_accuracy": classifier.test_accuracy,
        "model": model, "real_train_digits": real, "seconds": time.perf_counter() - started,
    }


def format_table(result: dict) -> str:
    model, real = result["model"], result["real_train_digits"]

    def line(name, row):
        parzen = row["parzen"]
        return (f"{name:<24} {parzen['log_likelihood']:>8.1f} ± {parzen['standard_error']:<4.1f}"
                f" {parzen['sigma']:>6.3f} {row['fid']:>8.2f} {row['inception_score']:>6.2f}"
                f" {row['classes_covered']:>6d}/10 {row['kl_to_uniform']:>8.4f}")

    accuracy = result["classifier_test_accuracy"]
    header = (f"{result['checkpoint']} ({result['config']}, epoch {result['epoch']}): {result['samples']} samples "
              f"vs {result['test_size']} test digits; classifier test accuracy "
              + (f"{accuracy:.2%}" if accuracy is not None else "unknown"))
    columns = f"{'':<24} {'Parzen LL (nats)':>15} {'σ':>6} {'FID':>8} {'IS':>6} {'classes':>9} {'KL(unif)':>8}"
    return "\n".join([header, columns, line("GAN samples", model), line("real training digits", real),
                      "(real rows: training digits in the samples' place; their FID is the train-vs-test floor; "
                      "the paper's GAN: 225 ± 2 nats)"])


def main(argv=None) -> int:
    args = parse_args(argv)
    checkpoint = checkpoint_file(args.checkpoint)
    problem = file_problem(checkpoint)  # missing, a symlink loop, a FIFO (which would block): before any work
    if problem:
        raise CheckpointError(f"checkpoint {checkpoint} {problem}")
    # Before minutes of work: the results must have somewhere to go, and not over the checkpoint.
    if args.out is None:
        try:
            out = cli.check_output_file(result_file(checkpoint), "the results file")
        except SystemExit as refusal:
            raise SystemExit(f"{refusal.code}; choose another with --out") from None
    elif Path(args.out).resolve() == checkpoint.resolve():
        raise SystemExit(f"error: --out {args.out} is the checkpoint itself; name a .json file")
    else:
        out = cli.check_output_file(args.out)
    cli.warn_if_cores_busy()  # the classifier and the Parzen search slow several times on taken cores
    result = evaluate(checkpoint, args.data_dir, args.device, args.samples, args.test_size, args.seed,
                      args.cache_dir)
    # Written before anything is shown: a console that fails (a closed pipe, a full disk) loses no result.
    atomic_write(out, lambda f: f.write(json.dumps(result, indent=2).encode()))
    try:
        print(format_table(result))
        print(f"wrote {out} ({result['seconds']:.0f} s)")
        sys.stdout.flush()
    except cli.StreamError as error:
        raise cli.StreamError(error.errno, error.strerror, error.stream, f"the results were written to {out}") from None
    return 0


def run(argv=None) -> int:
    """main(), with every expected failure turned into one line on stderr and exit status 1."""
    return cli.run_main(main, argv)


if __name__ == "__main__":
    sys.exit(run())
