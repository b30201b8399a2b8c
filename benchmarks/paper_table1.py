"""The paper's Table 1 for minigan: train `--config paper` on several seeds, score every 25 epochs.

    python benchmarks/paper_table1.py --seeds 0 1 2 --epochs 250            # train, evaluate, collect
    python benchmarks/paper_table1.py --seeds 0 1 --jobs 2 --epochs 1000 --every 50 \
        --runs RUNS --record paper_table1-uniform-long                      # two seeds at once
    python benchmarks/paper_table1.py --seeds 0 --epochs 1000 --every 50 \
        --while-climbing                                                    # and on while it climbs
    python benchmarks/paper_table1.py --seeds 0 1 2 --collect-only          # only write the JSON and plot
    python benchmarks/paper_table1.py --compare A.json B.json               # several records in one plot

For each seed it runs `examples/mnist.py --config paper` in RUNS/seedN, resuming where it stopped,
and after every `--every` epochs keeps the checkpoint as checkpoint_epochE.npz and scores it with
`python -m minigan.evaluate` (10,000 samples, the paper's Parzen protocol) into
evaluation_epochE.json. Then it writes results/RECORD.json (by default paper_table1-NOISE-DATE;
the Parzen curve and every score per seed, the last common epoch's mean) and a plot of Parzen
against epochs with the paper's 225 ± 2 as a band.

Runs are long (about 17-20 s per epoch per seed on one core), so start it under nohup. It is safe
to start again at any time, also after the machine or session that ran it is gone: each seed
continues from whatever its folder holds (the current checkpoint, the kept ones, the scores), a
score cut off mid-write is redone, and an epoch that was trained past but never kept is skipped
with one line. With --jobs N, N seeds train at once, each child at one BLAS thread unless
OMP_NUM_THREADS is set, each writing its output to RUNS/seedN/train.log. When a child command
fails, this script stops with the child's exit status, after the child's own message.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model  # noqa: E402
from minigan.atomic import atomic_write  # noqa: E402
from minigan import cli, gan  # noqa: E402
from minigan.checkpoint import load_checkpoint  # noqa: E402

PAPER_PARZEN = (225.0, 2.0)  # Goodfellow et al. 2014, Table 1, MNIST
# A seed has stopped climbing when this many scores in a row came after its best, none higher.
STOPPED_AFTER = 3


class ChildFailed(Exception):
    """A child command (training or scoring) that exited with a non-zero status; it has printed why."""

    def __init__(self, what: str, status: int, where: str = " (its message is above)"):
        super().__init__(f"{what} stopped with exit status {status}{where}")
        self.status = status


def run_child(what: str, command: list[str], log: Path | None = None, **kwargs) -> None:
    """Run one child to the end; with `log`, its output is appended there instead of the terminal."""
    with open(log, "ab") if log is not None else contextlib.nullcontext() as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if out else None, **kwargs)
        try:
            status = child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached the child too: examples/mnist.py then saves a checkpoint before it stops.
            # Wait for that (subprocess.run would kill it), then stop as well.
            child.wait()
            raise
    if status != 0:
        # A child killed by a signal has a negative status; the shell's convention is 128 + signal.
        where = f"; its output is in {log}" if log is not None else " (its message is above)"
        raise ChildFailed(what, status if status > 0 else 128 - status, where)


def current_epoch(checkpoint: Path) -> int:
    return int(load_checkpoint(checkpoint)["meta.epoch"])


def train_and_evaluate(run_dir: Path, seed: int, noise: str, epochs: int, every: int, extra: list[str],
                       log: Path | None = None, while_climbing: bool = False) -> None:
    """Bring one seed's run to `epochs`, scoring each `every`-th epoch (and the last) once; with
    `while_climbing`, go on `every` epochs at a time until the seed has stopped climbing.

    Resumes from whatever the folder holds: an epoch already kept is not trained again, one already
    scored is not scored again, and one the current checkpoint is already past (kept under another
    --every, or lost with a session) is skipped with one line."""
    run_dir = cli.check_output_dir(run_dir.resolve(), f"the folder of seed {seed}")
    for epoch in sorted(set(range(every, epochs + 1, every)) | {epochs}):
        train_and_score(run_dir, seed, noise, epoch, extra, log)
    epoch = epochs
    while while_climbing:
        points = [(e, read_evaluation(path)["model"]["parzen"]["log_likelihood"])
                  for e, path in sorted(scored_epochs(run_dir).items())]
        best = best_score(points) if points else None
        if best is not None and best["stopped_climbing"]:
            print(f"seed {seed} has stopped climbing: best {best['parzen']:.1f} at epoch {best['epoch']}, "
                  f"{best['scores_after']} scores since, none higher", flush=True)
            return
        epoch += every
        train_and_score(run_dir, seed, noise, epoch, extra, log)


def train_and_score(run_dir: Path, seed: int, noise: str, epoch: int, extra: list[str], log: Path | None) -> None:
    """Train one seed to `epoch` and keep and score that epoch, unless that is done already."""
    current = run_dir / "checkpoint.npz"
    kept = run_dir / f"checkpoint_epoch{epoch:03d}.npz"
    if not kept.exists():
        if current.exists() and current_epoch(current) > epoch:
            print(f"note: seed {seed} is past epoch {epoch}, which was never kept; not scoring it", flush=True)
            return
        resume = ["--resume", str(current)] if current.exists() else ["--out", str(run_dir), "--seed", str(seed),
                                                                     "--noise", noise]
        run_child(f"examples/mnist.py (seed {seed}, to epoch {epoch})",
                  [sys.executable, str(ROOT / "examples" / "mnist.py"), "--config", "paper",
                   "--epochs", str(epoch), *resume, "--log-every", "100", *extra], log=log)
        atomic_write(kept, lambda f: f.write(current.read_bytes()))  # a cut-off copy is never "kept"
    scored = run_dir / f"evaluation_epoch{epoch:03d}.json"
    if not scored.exists():
        run_child(f"minigan.evaluate ({kept.name})",
                  [sys.executable, "-m", "minigan.evaluate", str(kept), "--out", str(scored), *extra],
                  log=log, cwd=ROOT)
    if log is not None:
        parzen = read_evaluation(scored)["model"]["parzen"]["log_likelihood"]
        print(f"seed {seed}, epoch {epoch}: Parzen {parzen:.1f}", flush=True)


def train_seeds(runs: Path, seeds: list[int], noise: str, epochs: int, every: int, extra: list[str],
                jobs: int, while_climbing: bool = False) -> None:
    """Every seed to `epochs`, `jobs` of them at a time; with more than one at a time, each child
    runs at one BLAS thread (unless OMP_NUM_THREADS says otherwise) and logs to its own file."""
    if jobs == 1:
        for seed in seeds:
            train_and_evaluate(runs / f"seed{seed}", seed, noise, epochs, every, extra, while_climbing=while_climbing)
        return
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {}
        for seed in seeds:
            folder = cli.check_output_dir(runs / f"seed{seed}", f"the folder of seed {seed}")
            print(f"seed {seed}: training in {folder}, output in {folder / 'train.log'}", flush=True)
            futures[pool.submit(train_and_evaluate, folder, seed, noise, epochs, every, extra,
                                folder / "train.log", while_climbing)] = seed
        # A seed that fails does not stop the others: they run to the end, then the failure is raised.
        failures = [future.exception() for future in concurrent.futures.as_completed(futures)]
    for failure in failures:
        if failure is not None:
            raise failure


def collect(runs: Path, seeds: list[int]) -> dict:
    """{epoch: {seed: evaluation}} for every scored epoch of every seed."""
    curve = {}
    for seed in seeds:
        for epoch, path in scored_epochs(runs / f"seed{seed}").items():
            curve.setdefault(epoch, {})[seed] = read_evaluation(path)
    return curve


def scored_epochs(run_dir: Path) -> dict[int, Path]:
    """{epoch: evaluation_epochE.json} for every epoch of one seed's folder that has been scored."""
    scored = {}
    for path in sorted(run_dir.glob("evaluation_epoch*.json")):
        try:
            scored[int(path.stem.removeprefix("evaluation_epoch"))] = path
        except ValueError:
            continue  # not one of ours (evaluation_epoch025-old.json, say)
    return scored


def scored_dates(runs: Path, seeds: list[int]) -> list[str]:
    """When the first and the last score were written (UTC), as the runs may span sessions."""
    times = sorted(path.stat().st_mtime for seed in seeds
                   for path in (runs / f"seed{seed}").glob("evaluation_epoch*.json"))
    return [datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="minutes")
            for t in (times[:1] + times[-1:])]


def read_evaluation(path: Path) -> dict:
    """One minigan.evaluate record, or a one-line SystemExit naming the file that is not one."""
    try:
        record = json.loads(path.read_text())
        float(record["model"]["parzen"]["log_likelihood"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"error: {path} is not a minigan.evaluate record ({cli.one_line(error)}); "
                         f"delete it to score that epoch again") from None
    return record


def summarize(curve: dict, seeds: list[int], noise: str) -> dict:
    """The Table-1 record: the Parzen curve per seed, and the last epoch every seed reached."""
    common = [epoch for epoch in sorted(curve) if all(seed in curve[epoch] for seed in seeds)]
    if not common:
        raise SystemExit("error: no epoch has been scored for every seed yet")
    last = common[-1]
    parzen = [curve[last][seed]["model"]["parzen"]["log_likelihood"] for seed in seeds]
    return {
        "config": "paper", "noise": noise, "epochs": last, "seeds": seeds,
        "parzen": parzen,
        "parzen_mean": float(np.mean(parzen)),
        # The seed-to-seed standard error, and each seed's own (over the test digits) for comparison.
        "parzen_se": float(np.std(parzen, ddof=1) / np.sqrt(len(parzen))) if len(parzen) > 1 else None,
        "parzen_se_per_seed": [curve[last][seed]["model"]["parzen"]["standard_error"] for seed in seeds],
        "sigma": [curve[last][seed]["model"]["parzen"]["sigma"] for seed in seeds],
        "fid": [curve[last][seed]["model"]["fid"] for seed in seeds],
        "classes_covered": [curve[last][seed]["model"]["classes_covered"] for seed in seeds],
        "curve": {str(epoch): {str(seed): curve[epoch][seed]["model"]["parzen"]["log_likelihood"]
                               for seed in sorted(curve[epoch])} for epoch in sorted(curve)},
        # Every score of every seed, and how far each seed got (seeds may stand at different epochs).
        "scores": {str(epoch): {str(seed): scores(curve[epoch][seed]) for seed in sorted(curve[epoch])}
                   for epoch in sorted(curve)},
        "latest": {str(seed): {"epoch": max(e for e in curve if seed in curve[e]),
                               **scores(curve[max(e for e in curve if seed in curve[e])][seed])}
                   for seed in seeds if any(seed in curve[e] for e in curve)},
        "best": {str(seed): best_score([(e, curve[e][seed]["model"]["parzen"]["log_likelihood"])
                                        for e in sorted(curve) if seed in curve[e]])
                 for seed in seeds if any(seed in curve[e] for e in curve)},
        "paper": {"parzen": PAPER_PARZEN[0], "parzen_se": PAPER_PARZEN[1]},
    }


def best_score(points: list[tuple[int, float]]) -> dict:
    """A seed's best Parzen score so far, and whether it has stopped climbing: the last
    STOPPED_AFTER scores all came after the best, and none beat it."""
    best_epoch, best = max(points, key=lambda point: point[1])
    after = sum(1 for epoch, _ in points if epoch > best_epoch)
    return {"epoch": best_epoch, "parzen": best, "scores_after": after, "stopped_climbing": after >= STOPPED_AFTER}


def scores(evaluation: dict) -> dict:
    """What Table 1 and its neighbours need from one minigan.evaluate record."""
    model = evaluation["model"]
    return {"parzen": model["parzen"]["log_likelihood"], "parzen_se": model["parzen"].get("standard_error"),
            "sigma": model["parzen"].get("sigma"), "fid": model.get("fid"),
            "inception_score": model.get("inception_score"), "classes_covered": model.get("classes_covered")}


def paper_band(ax) -> None:
    """The paper's 225 ± 2 (the standard error over test digits of one model) as a band."""
    low, high = PAPER_PARZEN[0] - PAPER_PARZEN[1], PAPER_PARZEN[0] + PAPER_PARZEN[1]
    ax.axhspan(low, high, color="black", alpha=0.15, lw=0)
    ax.axhline(PAPER_PARZEN[0], color="black", ls="--", lw=1, label="paper, Table 1 (225 ± 2)")


def plot(path: Path, summary: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for seed in summary["seeds"]:
        points = [(int(e), v[str(seed)]) for e, v in summary["curve"].items() if str(seed) in v]
        ax.plot(*zip(*points), marker="o", label=f"seed {seed}")
    paper_band(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Parzen log-likelihood of test digits (nats)")
    ax.set_title(f"minigan, --config paper, {summary['noise']} prior")
    ax.legend()
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def plot_priors(path: Path, records: list[dict]) -> Path:
    """Several Table-1 records (one per prior) in one plot: each seed's curve, coloured by prior."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for colour, record in zip(("tab:blue", "tab:orange", "tab:green", "tab:red"), records):
        for i, seed in enumerate(record["seeds"]):
            points = sorted((int(e), v[str(seed)]) for e, v in record["curve"].items() if str(seed) in v)
            if not points:
                continue
            ax.plot(*zip(*points), marker="o", ms=3, color=colour, ls=("-", "--", ":")[i % 3],
                    label=f"{record['noise']} prior, seed {seed} ({record['source']})")
    paper_band(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Parzen log-likelihood of test digits (nats)")
    ax.set_title("minigan, --config paper, by prior and record")
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def read_record(path: str) -> dict:
    """A Table-1 JSON this script wrote, or one line saying why it is not one."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: --compare {path}: not a readable JSON file ({error})") from None
    if not isinstance(record, dict) or not {"noise", "seeds", "curve", "date"} <= record.keys():
        raise SystemExit(f"error: --compare {path}: not a Table-1 record (needs noise, seeds, curve and date)")
    return {**record, "source": Path(path).stem}  # the legend names the file: two records may share a date


def recorded_command(argv) -> str:
    """The command line with folder arguments as placeholders: they name this machine's folders."""
    shown, folders = [], ("--runs", "--results", "--data-dir")
    for i, word in enumerate(argv):
        if i > 0 and argv[i - 1] in folders:
            shown.append(f"<{argv[i - 1][2:]}>")
        elif word.startswith(tuple(f"{flag}=" for flag in folders)):
            shown.append(f"{word.split('=')[0]}=<{word.split('=')[0][2:]}>")
        else:
            shown.append(word)
    return " ".join(["python", "benchmarks/paper_table1.py", *shown])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Table 1 (Parzen on MNIST) for --config paper over several seeds.")
    p.add_argument("--seeds", type=cli.seed_int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=cli.positive_int, default=250, help="train each seed to this epoch (default 250)")
    p.add_argument("--every", type=cli.positive_int, default=25, help="score every this many epochs (default 25)")
    p.add_argument("--while-climbing", action="store_true",
                   help=f"after --epochs, go on --every epochs at a time until a seed has stopped climbing "
                        f"({STOPPED_AFTER} scores after its best, none higher)")
    p.add_argument("--noise", choices=gan.NOISES, default=gan.CONFIGS["paper"].noise,
                   help="the prior p_z (default: the paper config's, uniform)")
    p.add_argument("--runs", default="runs/paper-table1", help="folder of the runs, one seedN/ per seed")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="where the JSON and plot go")
    p.add_argument("--data-dir", help="passed to examples/mnist.py and minigan.evaluate")
    p.add_argument("--jobs", type=cli.positive_int, default=1,
                   help="train this many seeds at once, each child at one BLAS thread (default 1)")
    p.add_argument("--record", help="the name of the JSON and plot in --results (default paper_table1-NOISE-DATE, "
                                    "or paper_table1-priors-DATE with --compare)")
    p.add_argument("--collect-only", action="store_true", help="train nothing; summarize the scores there are")
    p.add_argument("--compare", nargs="+", metavar="JSON",
                   help="train nothing; plot these Table-1 records (one per prior) together")
    args = p.parse_args(argv)
    if args.record is not None and (not args.record or Path(args.record).name != args.record):
        p.error(f"--record must be a plain file name without folders, got {args.record!r}")
    if args.compare:
        records = [read_record(path) for path in args.compare]
        results = cli.check_output_dir(args.results, "--results")
        name = args.record or f"paper_table1-priors-{datetime.date.today().isoformat()}"
        png_path = plot_priors(results / f"{name}.png", records)
        print(f"wrote {png_path}")
        return 0
    repeated = sorted({seed for seed in args.seeds if args.seeds.count(seed) > 1})
    if repeated:
        p.error(f"--seeds names {', '.join(map(str, repeated))} more than once")
    runs = Path(args.runs)
    # Before hours of training: the runs and the results must have somewhere to go.
    if args.collect_only:
        if not runs.is_dir():
            raise SystemExit(f"error: --runs {runs} is not a folder of runs")
    else:
        cli.check_output_dir(runs, "--runs")
    results = cli.check_output_dir(args.results, "--results")
    extra = ["--data-dir", str(Path(args.data_dir).resolve())] if args.data_dir else []
    if not args.collect_only:
        try:
            train_seeds(runs, args.seeds, args.noise, args.epochs, args.every, extra, args.jobs, args.while_climbing)
        except ChildFailed as failure:
            print(f"error: {failure}", file=sys.stderr)
            return failure.status
    summary = summarize(collect(runs, args.seeds), args.seeds, args.noise)
    today = datetime.date.today().isoformat()
    summary.update(command=recorded_command(argv if argv is not None else sys.argv[1:]),
                   machine={"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                            "numpy": np.__version__, "threads": os.environ.get("OMP_NUM_THREADS", "default"),
                            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset")},
                   date=today, scored=scored_dates(runs, args.seeds))
    name = args.record or f"paper_table1-{args.noise}-{today}"
    json_path = atomic_write(results / f"{name}.json", lambda f: f.write(json.dumps(summary, indent=2).encode()))
    png_path = plot(results / f"{name}.png", summary)
    print(f"paper config, {args.noise} prior, epoch {summary['epochs']}, seeds {summary['seeds']}: Parzen "
          f"{summary['parzen_mean']:.1f} (per seed {', '.join(f'{v:.1f}' for v in summary['parzen'])}); "
          f"paper: {PAPER_PARZEN[0]:.0f} ± {PAPER_PARZEN[1]:.0f}; wrote {json_path}, {png_path}")
    for seed, best in summary["best"].items():
        state = (f"stopped climbing: {best['scores_after']} scores since, none higher" if best["stopped_climbing"]
                 else f"still climbing ({best['scores_after']} of {STOPPED_AFTER} scores since)")
        print(f"seed {seed}: best {best['parzen']:.1f} at epoch {best['epoch']}, {state}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
