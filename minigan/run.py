"""The run machinery around a training script's loop: settings, resume, the lock, interrupts,
the loss log, the progress bar and the checkpoint. examples/mnist.py is its reader:

    config, resumed = run.settle(args)          # the checkpoint's settings when resuming, else the flags'
    if run.nothing_to_train(args, resumed): return 0
    with run.hold(args.out, args.resume, args.overwrite):      # the folder lock, no other run clobbered
        training = run.Training(args, config, data, players, resumed)   # restores when resuming
        with training:                            # --overwrite clears here; Ctrl-C/SIGTERM/SIGHUP are caught
            for sample_data in training.epochs():         # a new order of the training rows per epoch
                for epoch in training.iterations():       # the progress bar; stops at --max-steps, a signal
                    stats = gan.train_iteration(...)
                    training.record(stats)
                training.save()                   # the checkpoint, then the pictures
        return training.finish(engine)            # the last line, and the exit status

    sys.exit(run.guarded(main))                   # an expected failure is one line on stderr

Where things live, in this file's order:
- settle, stored_settings, nothing_to_train: the settings a run keeps (RUN_SETTINGS), --resume's checks.
- hold, check_out_dir: cli.FolderLock on --out (a .lock file), and the refusal to write over
  another run's checkpoint unless --overwrite.
- Training: where a run stands (Progress), the run's random generator, restore(), --overwrite's
  clear_old_run (in __enter__), Interrupt (SIGINT/SIGTERM/SIGHUP: finish the iteration, save, exit
  128 + signal), the tqdm progress bar (iterations()), save() and finish().
- LossLog: the loss history, summed on the device and recorded every --log-every iterations.
- The checkpoint's keys: RESUME_KEYS, beside the players' G.*, D.*, opt_G.*, opt_D.* (checkpoint.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import atomic, backend, cli, fast, gan
from .checkpoint import (
    CheckpointError,
    load_run,
    read_choice,
    read_generator,
    read_int,
    restore_players,
    save_run,
)
from .data import load_mnist
from .plotting import save_image_grid, save_loss_curves
from .tensor import Tensor, no_grad

DEFAULT_EPOCHS = {"reference": 30, "paper": 100}
HISTORY_KEYS = ("step", "d_loss", "g_loss", "d_real", "d_fake")  # one record per --log-every iterations
# The settings a run keeps for its whole life: --resume takes them from the checkpoint.
RUN_SETTINGS = ("config", "noise", "batch_size", "k", "loss", "update", "seed")
POSITION = ("step", "epoch", "position", "interval_iterations")
RESUME_KEYS = (*(f"meta.{key}" for key in RUN_SETTINGS + POSITION), "rng.trainer", "rng.cpu", "order",
               "interval_sums", *(f"history.{key}" for key in HISTORY_KEYS))
# What a run writes into --out (only while it holds the folder, so a temp file of one of these
# that no run is writing is a killed save's leftover, removed at start).
OWN_FILES = ("checkpoint.npz", "samples_epoch*.png", "samples_step*.png", "losses.png")
# What --overwrite removes from --out: the run's own files, and what benchmarks/paper_table1.py,
# minigan.evaluate and examples/paper_figures.py wrote beside them; never the --resume checkpoint.
RUN_FILES = (*OWN_FILES, "checkpoint_epoch[0-9]*.npz", "*evaluation*.json", "figure2_*.png", "figure3_*.png")
COLLAPSE_D_FAKE = 0.01  # mean D(G(z)) below this over a whole epoch: D rejects every fake
SCRIPT = "examples/mnist.py"  # the writer a checkpoint without our keys is said not to come from


def check_args(parser, argv=None):
    """parser.parse_args(argv), then what argparse cannot check: no empty path, a usable --device."""
    args = parser.parse_args(argv)
    for flag in ("out", "resume", "data_dir"):  # an empty value is most often an unset shell variable
        if getattr(args, flag) == "":
            parser.error(f"argument --{flag.replace('_', '-')}: expected a path, got an empty string")
    args.device = cli.usable_device(parser, args.device)
    return args


# --- the settings, and --resume's ----------------------------------------------------------------

def settle(args):
    """(config, the --resume checkpoint's arrays or None). Fills in `args`: the checkpoint's
    settings when resuming (a flag that contradicts one is an error), else the flags', else the
    config's defaults; --out's default; and the engine, "auto" resolved to "fused" or "autograd"."""
    if args.device == "cpu":
        cli.warn_if_cores_busy()
    resumed = load_run(args.resume, RESUME_KEYS, SCRIPT) if args.resume else None
    if resumed is not None:
        for key, value in stored_settings(resumed, args.resume).items():
            given = getattr(args, key)
            if given is not None and given != value:
                flag = "--" + key.replace("_", "-")
                raise SystemExit(f"error: {flag} {given} contradicts the checkpoint's {value}; a resumed run keeps "
                                 f"its settings: drop {flag}, or start a new run with another --out")
            setattr(args, key, value)
    config = gan.CONFIGS[args.config or "reference"]
    args.config = config.name
    args.noise = args.noise or config.noise
    config = dataclasses.replace(config, noise=args.noise)
    args.batch_size, args.k = args.batch_size or config.batch_size, args.k or config.k
    args.loss, args.update = args.loss or config.loss, args.update or config.update
    args.seed = 0 if args.seed is None else args.seed
    args.epochs = args.epochs or DEFAULT_EPOCHS[config.name]
    default_out = Path(args.resume).parent if args.resume else Path(f"runs/mnist-{config.name}")
    args.out = Path(args.out) if args.out else default_out
    try:
        gan.check_game(SCRIPT, args.k, args.loss, args.update)
        args.engine = fast.resolve_engine(args.engine, device=args.device, config_name=config.name,
                                          update=args.update)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    check_cuda_flags(args)
    return config, resumed


def check_cuda_flags(args) -> None:
    """--tf32 and --no-cuda-graph change the fused engine on CUDA only: anywhere else, refused in one
    line rather than accepted without effect."""
    given = [flag for flag, on in (("--tf32", getattr(args, "tf32", False)),
                                   ("--no-cuda-graph", getattr(args, "no_cuda_graph", False))) if on]
    on_cuda = args.device.startswith("cuda")
    if given and not (args.engine == "fused" and on_cuda):
        them, other = ("them", "apply") if len(given) > 1 else ("it", "applies")
        raise SystemExit(f"error: {' and '.join(given)} {other} to the fused engine on CUDA only, but this run uses "
                         f"the {args.engine} engine on {args.device}: drop {them}, or use "
                         f"{'--engine fused (reference config)' if on_cuda else '--device cuda'}")


def stored_settings(resumed, path) -> dict:
    """The settings a checkpoint keeps (RUN_SETTINGS), each checked: one line naming a bad key."""
    return {"config": read_choice(resumed, "meta.config", path, gan.CONFIGS),
            "noise": read_choice(resumed, "meta.noise", path, gan.NOISES),
            "batch_size": read_int(resumed, "meta.batch_size", path, low=1),
            "k": read_int(resumed, "meta.k", path, low=1),
            "loss": read_choice(resumed, "meta.loss", path, gan.LOSSES),
            "update": read_choice(resumed, "meta.update", path, gan.UPDATES),
            "seed": read_int(resumed, "meta.seed", path, low=0, high=2**32)}


def nothing_to_train(args, resumed) -> bool:
    """Whether the checkpoint (if any) already stands at --epochs or --max-steps; if so, say that
    nothing is trained and nothing written."""
    if resumed is None:
        return False
    step, epoch = read_int(resumed, "meta.step", args.resume), read_int(resumed, "meta.epoch", args.resume)
    if epoch >= args.epochs:
        reached = f"--epochs {args.epochs}: raise --epochs to train further"
    elif args.max_steps and step >= args.max_steps:
        reached = f"--max-steps {args.max_steps}: raise --max-steps, or drop it, to train further"
    else:
        return False
    print(f"nothing to train: {args.resume} stands at epoch {epoch}, step {step}, already at {reached}; "
          f"nothing was written")
    return True


# --- the folder --------------------------------------------------------------------------------

@contextlib.contextmanager
def hold(out: Path, resume, overwrite: bool):
    """--out, writable and held (cli.FolderLock) for the whole run, and holding no other run's
    checkpoint unless --overwrite; checked before any work. Once held, the temp files that a killed
    save of this script left there are removed, with one line."""
    cli.check_output_dir(out)
    with cli.FolderLock(out):
        check_out_dir(out, resume, overwrite)
        stale = atomic.remove_stale_temporaries(out, OWN_FILES)  # only a run holding `out` writes these
        if stale:
            print(f"note: removed {len(stale)} temporary file(s) that an interrupted save left in {out}: "
                  f"{names(stale)}", file=sys.stderr)
        yield


def check_out_dir(out: Path, resume, overwrite: bool) -> None:
    """--out holds no other run's checkpoint (unless --overwrite), and --overwrite never removes the
    run that --resume continues."""
    existing = out / "checkpoint.npz"
    continuing = resume is not None and existing.exists() and existing.resolve() == Path(resume).resolve()
    if continuing and overwrite:
        raise SystemExit(f"error: --overwrite would remove the run that --resume continues ({existing}); "
                         f"drop --overwrite, or write the continued run to another --out")
    if existing.exists() and not (continuing or overwrite):
        raise SystemExit(f"error: {out} already holds a run ({existing}); continue it with --resume {existing}, "
                         f"replace it with --overwrite, or choose another --out")


def clear_old_run(out: Path, resume=None) -> None:
    """--overwrite: remove the files of the run in `out` (RUN_FILES) but never the --resume
    checkpoint, whatever its name, and say what was removed and kept."""
    resumed = [path for path in out.iterdir() if resume is not None and same_file(path, resume)]
    old = sorted({path for pattern in RUN_FILES for path in out.glob(pattern)
                  if path.is_file() and not path.is_symlink() and path not in resumed})
    for path in old:
        path.unlink()
    kept = sorted(path.name for path in out.iterdir() if path.name != cli.LOCK_NAME and path not in resumed)
    removed = f"removed the old run's {len(old)} files from {out} ({names(old)})" if old else f"no run in {out}"
    said = [f"--overwrite: {removed}"]
    if resumed:
        said.append(f"kept the checkpoint --resume continues, {names(resumed)}")
    if kept:
        said.append(f"kept {len(kept)} that are not a run's: {names(kept)}")
    if old or kept or resumed:
        print("; ".join(said))


def same_file(path: Path, other) -> bool:
    """Whether `path` and `other` are one file (the same path, a link to it, or a hard link)."""
    try:
        return path.samefile(other)
    except OSError:
        return False


def names(paths, most: int = 4) -> str:
    """'a.png, b.png, c.png, d.png and 3 more'."""
    listed = [Path(path).name for path in paths]
    return ", ".join(listed[:most]) + (f" and {len(listed) - most} more" if len(listed) > most else "")


def load_training_data(config, data_dir, device):
    """(pixels in [0, 1] on the host, the training rows in the config's range on the device)."""
    images, _ = load_mnist("train", data_dir=data_dir)
    pixels = images[: config.train_images].reshape(-1, 784).astype(np.float32) / 255
    low, high = config.data_range
    return pixels, backend.to_device(pixels * (high - low) + low, device)


# --- one run -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Progress:
    """Where a run stands: iterations done, epochs done, iterations done in the current epoch, and
    that epoch's order of the training rows (None before its first minibatch)."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    order: object = None


class Training:
    """One run's bookkeeping around the script's loop (see the module docstring for the loop).

    Made after the players: restores them, their optimizers, the loss log and the random states
    from `resumed` (a checkpoint's arrays), or starts at step 0. `rng` draws the noise and each
    epoch's order of the rows; `fixed_noise` is the noise of every sample grid."""

    def __init__(self, args, config, data, players: dict, resumed=None):
        self.args, self.config, self.data, self.players = args, config, data, players
        m, k = args.batch_size, args.k
        if len(data) < k * m:
            raise SystemExit(f"error: {len(data)} training images are fewer than one iteration needs (k·m = {k * m})")
        self.iterations_per_epoch = len(data) // (k * m)
        self.fixed_noise = gan.sample_noise(config, 64, np.random.default_rng(args.seed + 1), device=args.device)
        self.log = LossLog()
        if resumed is None:
            self.at, self.rng = Progress(), np.random.default_rng(args.seed)
        else:
            self.at, self.rng = restore(resumed, args.resume, players, self.log, config,
                                        self.iterations_per_epoch, len(data), args.device)
        self.interrupt, self.written, self.epoch_times = Interrupt(args.out), [], []

    def __enter__(self):
        args = self.args
        if args.overwrite:
            clear_old_run(args.out, args.resume)
        print(f"minigan GAN, config {self.config.name}: {len(self.data)} images, m={args.batch_size}, k={args.k}, "
              f"{args.loss} G loss, {args.update} update, {self.iterations_per_epoch} iterations/epoch, "
              f"device {args.device}, {args.engine} engine")
        self.interrupt.__enter__()
        return self

    def __exit__(self, *exc):
        self.interrupt.__exit__(*exc)

    def stopped(self) -> bool:
        """--epochs reached, --max-steps reached, or a signal asked to stop."""
        args, at = self.args, self.at
        return at.epoch >= args.epochs or bool(args.max_steps and at.step >= args.max_steps) or self.interrupt.requested

    def epochs(self):
        """Yields, until the run stops, Algorithm 1's "sample a minibatch of m examples" for the rest
        of the current epoch; an epoch's first one draws a new order of the training rows."""
        while not self.stopped():
            self.started = time.perf_counter()
            if self.at.position == 0:
                self.at.order = backend.to_device(self.rng.permutation(len(self.data)), self.args.device)
            yield Minibatches(self.data, self.at.order, first=self.at.position * self.args.k, m=self.args.batch_size)

    def iterations(self):
        """Yields the 1-based epoch once per iteration, under a progress bar, until the epoch ends or
        the run stops; record() after each one moves the run on. At the epoch's end: its time, and a
        warning if D won outright."""
        at, per_epoch = self.at, self.iterations_per_epoch
        with tqdm(total=per_epoch, initial=at.position, desc=f"epoch {at.epoch + 1}/{self.args.epochs}",
                  leave=False, dynamic_ncols=True, file=sys.stderr, disable=sys.stderr is None) as self.bar:
            while at.position < per_epoch and not self.stopped():
                yield at.epoch + 1
        if self.log.iterations:
            self.log.means(at.step, self.args.out)  # never save a run whose last iterations went non-finite
        if at.position == per_epoch:
            at.epoch, at.position = at.epoch + 1, 0
            self.epoch_times.append(time.perf_counter() - self.started)
            warn_if_collapsed(self.log.history, at.step - per_epoch, at.epoch)

    def record(self, stats: dict) -> None:
        """One iteration done: its statistics into the loss log, the bar and the position moved on.
        The bar shows the last record's losses under the steps they are the mean of: between records
        it moves on while they stay (reading them every iteration would sync the device each time)."""
        at = self.at
        self.log.add(stats)
        at.step, at.position = at.step + 1, at.position + 1
        self.bar.update(1)
        if at.step % self.args.log_every == 0 or at.position == self.iterations_per_epoch:
            self.bar.set_postfix_str(self.log.record(at.step, self.args.out))

    def save(self) -> None:
        """The checkpoint, then the sample grid and loss curves; a signal meanwhile waits for them."""
        self.interrupt.saving = True
        self.written = save(self.args, self.config, self.players, self.at, self.log, self.rng, self.fixed_noise)
        self.interrupt.saving = False
        report_progress(self.log.history, self.at, self.iterations_per_epoch, self.epoch_times)

    def finish(self, engine: str) -> int:
        """The run's last line, and its exit status: 0, or 128 + the signal that stopped it."""
        out, at = self.args.out, self.at
        if self.interrupt.requested:
            print(f"interrupted at step {at.step}; checkpoint written to {out / 'checkpoint.npz'}; "
                  f"continue with --resume {out / 'checkpoint.npz'}")
            return 128 + self.interrupt.signal  # the shell's convention: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
        per_epoch = f"{np.mean(self.epoch_times):.1f} s/epoch" if self.epoch_times else "no full epoch"
        print(f"done: {at.step} iterations, {at.epoch} epochs, {per_epoch}, ran on: {engine}; "
              f"wrote {', '.join(str(p) for p in self.written)}")
        return 0


def restore(resumed, path, players, log, config, iterations_per_epoch: int, rows: int, device):
    """(Progress, the run's random generator) from a checkpoint, with the players' weights and
    optimizer states, the loss history and the CPU generator loaded. Every value is checked before
    use: a bad one is one CheckpointError line naming its key."""
    restore_players(resumed, players, path, config.name)
    at = Progress(step=read_int(resumed, "meta.step", path), epoch=read_int(resumed, "meta.epoch", path),
                  position=read_int(resumed, "meta.position", path, high=iterations_per_epoch,
                                    why=f"an epoch of {rows} images is {iterations_per_epoch} iterations"))
    if at.step != at.epoch * iterations_per_epoch + at.position:
        raise CheckpointError(f"checkpoint {path}: meta.step = {at.step}, but meta.epoch {at.epoch} and "
                              f"meta.position {at.position} at {iterations_per_epoch} iterations per epoch make "
                              f"{at.epoch * iterations_per_epoch + at.position}")
    if at.position:
        order = resumed["order"]
        if order.shape != (rows,) or order.dtype.kind not in "iu" or not np.array_equal(np.sort(order),
                                                                                         np.arange(rows)):
            raise CheckpointError(f"checkpoint {path}: order is not an order of the {rows} training images "
                                  f"({order.dtype} of shape {order.shape})")
        at.order = backend.to_device(order, device)
    rng = read_generator(resumed, "rng.trainer", path)
    backend.set_generator("cpu", read_generator(resumed, "rng.cpu", path))
    log.restore(resumed, path, at, device)
    print(f"resumed from {path}: epoch {at.epoch}, step {at.step}")
    return at, rng


# Each asks a run to stop after the current iteration and save: Ctrl-C, `kill`, and a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupt:
    """Ctrl-C, SIGTERM or SIGHUP asks the loop to stop after the current iteration and save. A
    second one before the save quits without saving; during the save it is ignored, and the run
    stops once the checkpoint is written."""

    def __init__(self, out: Path):
        self.out, self.requested, self.saving, self.signal = out, False, False, None

    def __enter__(self):
        # A signal ignored when the run started stays ignored: `nohup` is asked not to stop on SIGHUP.
        self.previous = {sig: signal.signal(sig, self.handle) for sig in STOP_SIGNALS
                         if signal.getsignal(sig) is not signal.SIG_IGN}
        return self

    def handle(self, signum, frame):
        if self.saving:
            self.requested, self.signal = True, self.signal or signum
            say("interrupt: the checkpoint is being written; the run stops as soon as it is", best_effort=True)
        elif self.requested:
            raise KeyboardInterrupt
        else:
            self.requested, self.signal = True, signum
            say(f"{signal.Signals(signum).name}: stopping after this iteration and writing a checkpoint to "
                f"{self.out} (press Ctrl-C again to quit without saving)", best_effort=True)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Minibatches:
    """Algorithm 1's "sample a minibatch of m examples" for one epoch: each call returns the next m
    rows of `data` in `order`, starting from minibatch number `first`."""

    def __init__(self, data, order, first: int, m: int):
        self.data, self.order, self.next, self.m = data, order, first, m

    def __call__(self) -> Tensor:
        start = self.next * self.m
        self.next += 1
        return Tensor(self.data[self.order[start:start + self.m]])


class LossLog:
    """The losses and mean D outputs, summed on the device over each --log-every interval (no host
    sync per iteration) and recorded once per interval. Records fall on fixed steps (every
    --log-every iterations and at each epoch's end), and an unfinished interval is saved with the
    checkpoint, so an interrupted and resumed run has the same history as one that ran straight."""

    def __init__(self):
        self.history = {key: [] for key in HISTORY_KEYS}
        self.sums, self.iterations = None, 0

    def add(self, stats):
        xp = backend.array_module(stats["d_loss"])
        values = xp.stack([stats["d_loss"], stats["g_loss"],
                           mean_d(stats["d_real_logits"]), mean_d(stats["d_fake_logits"])])
        self.sums = values if self.sums is None else self.sums + values
        self.iterations += 1

    def means(self, step, out):
        """The open interval's means on the host (one sync); a non-finite one stops the run."""
        means = (backend.to_numpy(self.sums) / self.iterations).tolist()
        if not np.all(np.isfinite(means)):
            raise FloatingPointError(f"non-finite loss before step {step}: D loss {means[0]}, G loss {means[1]}; "
                                     f"stopped without overwriting the last checkpoint in {out}")
        return means

    def record(self, step, out) -> str:
        """Close the interval: append its means to the history; return them, with the steps they
        are the mean of, for the progress bar."""
        row, first = [step, *self.means(step, out)], step - self.iterations + 1
        self.sums, self.iterations = None, 0
        for key, value in zip(HISTORY_KEYS, row):
            self.history[key].append(value)
        return f"{steps(first, step)}: D {row[1]:.3f}, G {row[2]:.3f}, D(x) {row[3]:.2f}, D(G(z)) {row[4]:.2f}"

    def arrays(self):
        return {"interval_sums": backend.to_numpy(self.sums) if self.iterations else np.zeros(4),
                **{f"history.{key}": np.asarray(values) for key, values in self.history.items()}}

    def restore(self, resumed, path, at: Progress, device):
        """The history and the open interval from a checkpoint, checked: records of equal length,
        no more open iterations than the epoch has run, finite sums."""
        history = {key: resumed[f"history.{key}"] for key in HISTORY_KEYS}
        for key, values in history.items():
            if values.ndim != 1 or values.dtype.kind not in "iuf":
                raise CheckpointError(f"checkpoint {path}: history.{key} should be a list of numbers, but holds "
                                      f"{values.dtype} of shape {values.shape}")
            if len(values) != len(history["step"]):
                raise CheckpointError(f"checkpoint {path}: history.{key} holds {len(values)} records, but "
                                      f"history.step {len(history['step'])}")
        self.history = {key: list(values) for key, values in history.items()}
        self.iterations = read_int(resumed, "meta.interval_iterations", path, high=at.position + 1,
                                   why=f"no more than meta.position, {at.position}")
        sums = resumed["interval_sums"]
        if sums.shape != (4,) or sums.dtype.kind != "f" or not np.all(np.isfinite(sums)):
            raise CheckpointError(f"checkpoint {path}: interval_sums should be 4 finite numbers, "
                                  f"but holds {sums.dtype} of shape {sums.shape}")
        self.sums = backend.to_device(sums, device) if self.iterations else None


def mean_d(logits):
    """The mean of D's outputs, from its logits: D = σ(logit)."""
    return Tensor(logits).sigmoid().data.mean()


def save(args, config, players, at: Progress, log, rng, fixed_noise):
    """The checkpoint first (it is what a crash would cost), then the pictures: a grid per epoch,
    or per step when the run stops inside an epoch. Returns the paths written."""
    out = args.out
    meta = {**{key: getattr(args, key) for key in RUN_SETTINGS}, "step": at.step, "epoch": at.epoch,
            "position": at.position, "interval_iterations": log.iterations}
    order = backend.to_numpy(at.order) if at.position else np.zeros(0, np.int64)
    written = save_run(out / "checkpoint.npz", players, meta, {"order": order, **log.arrays()},
                       {"trainer": rng, "cpu": backend.generator("cpu")})
    G = players["G"]
    with no_grad():
        G.eval()
        samples = G(fixed_noise).numpy()
        G.train()
    grid = f"samples_epoch{at.epoch:03d}.png" if at.position == 0 else f"samples_step{at.step:06d}.png"
    return [written, save_image_grid(out / grid, samples, value_range=config.data_range),
            save_loss_curves(out / "losses.png", log.history, title=f"minigan {config.name}")]


def warn_if_collapsed(history, epoch_start_step, epoch):
    """One warning line when D has won: G then gets almost no gradient, and its samples stop changing.

    The epoch's records are those after `epoch_start_step`; each is the mean over the steps since
    the record before it, so the epoch's mean weights each record by its number of steps."""
    steps, d_fake = np.asarray(history["step"]), np.asarray(history["d_fake"])
    inside = steps > epoch_start_step
    if not inside.any():
        return
    previous = np.concatenate([[epoch_start_step], steps[inside][:-1]])
    mean = float(np.average(d_fake[inside], weights=steps[inside] - previous))
    if mean < COLLAPSE_D_FAKE:
        say(f"warning: collapsed in epoch {epoch}: mean D(G(z)) {mean:.4f} < {COLLAPSE_D_FAKE} "
            f"(D rejects every sample, so G learns almost nothing)")


def report_progress(history, at: Progress, iterations_per_epoch, epoch_times):
    step, epoch, position = at.step, at.epoch, at.position
    where = f"epoch {epoch}" if position == 0 else f"step {step} (epoch {epoch + 1}, {position}/{iterations_per_epoch})"
    took = f", {epoch_times[-1]:.1f} s" if position == 0 and epoch_times else ""
    if not history["step"]:
        say(f"{where}: no losses recorded yet (one record every --log-every iterations){took}")
        return
    first = history["step"][-2] + 1 if len(history["step"]) > 1 else 1  # a record is the mean since the one before
    say(f"{where}: D loss {history['d_loss'][-1]:.3f}, G loss {history['g_loss'][-1]:.3f}, "
        f"D(x) {history['d_real'][-1]:.2f}, D(G(z)) {history['d_fake'][-1]:.2f} "
        f"(mean of {steps(first, history['step'][-1])}){took}")


def steps(first: int, last: int) -> str:
    """'steps 41-50', or 'step 50' for one."""
    return f"steps {first}-{last}" if first < last else f"step {last}"


def say(text: str, best_effort: bool = False) -> None:
    """One line on stdout, above the progress bar; nothing where stdout is closed. `best_effort`:
    a failed write (a terminal that hung up) is let go, for a signal handler that must not stop
    the save it asks for."""
    if sys.stdout is None:
        return
    try:
        tqdm.write(text, file=sys.stdout)
    except OSError:
        if not best_effort:
            raise


def guarded(main, argv=None) -> int:
    """main(argv), with every expected failure turned into one line on stderr and a non-zero exit."""
    return cli.run_main(main, argv, interrupted="interrupted: quit without writing a checkpoint "
                                               "(the last one written is intact)")
