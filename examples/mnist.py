"""Train the 2014 GAN (Goodfellow et al., arXiv 1406.2661) on MNIST with minigan.

    python examples/mnist.py                                   # the reference config, 30 epochs
    python examples/mnist.py --device cuda
    python examples/mnist.py --config paper --epochs 250       # the authors' own setup
    python examples/mnist.py --resume runs/mnist-reference/checkpoint.npz --epochs 40

Every epoch it writes, under --out: checkpoint.npz (everything needed to continue exactly: both
nets, both optimizers, the step, the epoch and the random states), then samples_epochNNN.png (an
8×8 grid from fixed noise) and losses.png. A run holds its --out folder (a .lock file) while it
runs, and never overwrites another run's checkpoint: --overwrite removes the old run's files first.
Ctrl-C or SIGTERM finishes the current iteration, writes a checkpoint and exits.

The file reads top to bottom: settings, data, the two players, the loop, saving. One iteration is
`gan.train_iteration` (Algorithm 1) or `gan.simultaneous_iteration` (the authors' update).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minigan import Tensor, backend, cli, fast, gan, no_grad
from minigan.checkpoint import (
    CheckpointError,
    load_run,
    read_choice,
    read_generator,
    read_int,
    restore_players,
    save_run,
)
from minigan.cli import positive_int, seed_int
from minigan.data import load_mnist
from minigan.plotting import save_image_grid, save_loss_curves

# --- settings ------------------------------------------------------------------------------------
DEFAULT_EPOCHS = {"reference": 30, "paper": 100}
HISTORY_KEYS = ("step", "d_loss", "g_loss", "d_real", "d_fake")  # one record per --log-every iterations
# The settings a run keeps for its whole life: --resume takes them from the checkpoint.
RUN_SETTINGS = ("config", "noise", "batch_size", "k", "loss", "update", "seed")
POSITION = ("step", "epoch", "position", "interval_iterations")
RESUME_KEYS = (*(f"meta.{key}" for key in RUN_SETTINGS + POSITION), "rng.trainer", "rng.cpu", "order",
               "interval_sums", *(f"history.{key}" for key in HISTORY_KEYS))
# What --overwrite removes from --out: a run's checkpoints, its pictures, and what minigan.evaluate
# and examples/paper_figures.py wrote beside them.
RUN_FILES = ("checkpoint*.npz", ".checkpoint*.npz.*.tmp", "samples_*.png", "losses.png", "*evaluation*.json",
             "figure2_*.png", "figure3_*.png")
COLLAPSE_D_FAKE = 0.01  # mean D(G(z)) below this over a whole epoch: D rejects every fake


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the 2014 GAN on MNIST (Algorithm 1).")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--config", choices=sorted(gan.CONFIGS),
                   help="reference (default): the common torch MNIST GAN; paper: the authors' maxout setup")
    p.add_argument("--epochs", type=positive_int,
                   help="train until this many epochs (default: 30 reference, 100 paper)")
    p.add_argument("--batch-size", type=positive_int, help="m in Algorithm 1 (default: the config's)")
    p.add_argument("--k", type=positive_int, help="D steps per G step (default 1)")
    p.add_argument("--noise", choices=gan.NOISES, help="the prior p_z (default: the config's; paper uniform, "
                   "reference normal)")
    p.add_argument("--loss", choices=gan.LOSSES, help="G's loss (default nonsaturating)")
    p.add_argument("--update", choices=sorted(gan.UPDATES),
                   help="alternating: Algorithm 1's box (default for reference); simultaneous: the authors' code, "
                        "both players stepped from one pass of D (default for paper)")
    p.add_argument("--seed", type=seed_int, help="seed for weights, noise and minibatch order (default 0)")
    p.add_argument("--data-dir", help="folder with the MNIST .gz files (default: $MINIGAN_DATA, then the "
                                      "repository's data/mnist, then ~/.cache/minigan/mnist, then a download)")
    p.add_argument("--out", help="output folder (default runs/mnist-CONFIG, or the --resume checkpoint's folder)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.npz")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many iterations (smoke runs)")
    p.add_argument("--engine", choices=fast.ENGINES, default="auto",
                   help="autograd: the readable path; fused: hand-fused kernels (reference config); "
                        "auto (default): fused on CUDA, autograd on the CPU")
    p.add_argument("--no-graph", action="store_true",
                   help="with the fused engine on CUDA: run the fused step eagerly (no CUDA graph)")
    p.add_argument("--tf32", action="store_true", help="let the fused step's GEMMs use TF32 on CUDA (off by default)")
    p.add_argument("--log-every", type=positive_int, default=50,
                   help="iterations between records of the losses; each one syncs the device once")
    args = p.parse_args(argv)
    for flag in ("out", "resume", "data_dir"):  # an empty value is most often an unset shell variable
        if getattr(args, flag) == "":
            p.error(f"argument --{flag.replace('_', '-')}: expected a path, got an empty string")
    try:
        args.device = backend.usable_device(args.device)
    except backend.DeviceError as error:
        p.error(str(error))
    return args


def settle(args, resumed):
    """The run's settings: the checkpoint's when resuming (each checked; a flag that contradicts
    one is an error), else the flags', else the config's defaults."""
    if resumed is not None:
        stored = stored_settings(resumed, args.resume)
        for key, value in stored.items():
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
    if args.update == "simultaneous" and args.k != 1:
        raise SystemExit(f"error: --update simultaneous takes one step of each player per minibatch; "
                         f"--k {args.k} needs --update alternating")
    default_out = Path(args.resume).parent if args.resume else Path(f"runs/mnist-{config.name}")
    args.out = Path(args.out) if args.out else default_out
    return config


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
    """Whether the checkpoint already stands at --epochs or --max-steps; if so, say that nothing is
    trained and nothing written."""
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


def choose_engine(args, config) -> str:
    """"autograd" (the readable path) or "fused" (hand-fused kernels), from --engine; see minigan/fast."""
    try:
        return fast.resolve_engine(args.engine, device=args.device, config_name=config.name, update=args.update)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        cli.warn_if_cores_busy()
    resumed = load_run(args.resume, RESUME_KEYS, "examples/mnist.py") if args.resume else None
    config = settle(args, resumed)
    if resumed is not None and nothing_to_train(args, resumed):
        return 0
    engine = choose_engine(args, config)
    cli.check_output_dir(args.out)
    with cli.FolderLock(args.out):
        check_out_dir(args.out, args.resume, args.overwrite)
        return train(args, config, engine, resumed)


def train(args, config, engine, resumed) -> int:
    m, k, loss, out, device = args.batch_size, args.k, args.loss, args.out, args.device

    # --- data: the first `train_images` MNIST training digits, as rows scaled to the config's range
    pixels, data = load_training_data(config, args.data_dir, device)
    if len(data) < k * m:
        raise SystemExit(f"error: {len(data)} training images are fewer than one iteration needs (k·m = {k * m})")
    iterations_per_epoch = len(data) // (k * m)

    # --- the two players, their optimizers, and the run's random streams
    backend.manual_seed(args.seed)
    G = gan.build_generator(config, pixel_mean=pixels.mean(axis=0), device=device)
    D = gan.build_discriminator(config, device=device)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    players = {"G": G, "D": D, "opt_G": opt_G, "opt_D": opt_D}
    fixed_noise = gan.sample_noise(config, 64, np.random.default_rng(args.seed + 1), device=device)
    log = LossLog()
    if resumed is None:
        at, rng = Progress(), np.random.default_rng(args.seed)  # rng: noise and minibatch order, on the host
    else:
        at, rng = restore(resumed, args.resume, players, log, config, iterations_per_epoch, len(data), device)
    # On the autograd engine `iteration` is gan.train_iteration (Algorithm 1's box) or, for the
    # paper config, gan.simultaneous_iteration: read those first. The fused engine runs the same maths.
    iteration = fast.make_iteration(engine, G, D, opt_G, opt_D, k=k, loss=loss, update=args.update,
                                    graph=not args.no_graph, tf32=args.tf32)

    def sample_noise():
        return gan.sample_noise(config, m, rng, device=device)

    if args.overwrite:
        clear_old_run(out)
    print(f"minigan GAN, config {config.name}: {len(data)} images, m={m}, k={k}, {loss} G loss, {args.update} "
          f"update, {iterations_per_epoch} iterations/epoch, device {device}, {engine} engine")
    written, epoch_times = [], []
    with Interrupt(out) as interrupt:
        def stop() -> bool:
            return at.epoch >= args.epochs or bool(args.max_steps and at.step >= args.max_steps) or interrupt.requested

        while not stop():
            started = time.perf_counter()
            if at.position == 0:  # a new epoch: a new order of the training digits
                at.order = backend.to_device(rng.permutation(len(data)), device)
            sample_data = Minibatches(data, at.order, first=at.position * k, m=m)
            with tqdm(total=iterations_per_epoch, initial=at.position, desc=f"epoch {at.epoch + 1}/{args.epochs}",
                      leave=False, dynamic_ncols=True) as bar:
                while at.position < iterations_per_epoch and not stop():
                    # One iteration of the game, then the config's learning-rate schedule (paper only).
                    stats = iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k, loss)
                    gan.apply_schedule(config, opt_G, opt_D, at.epoch + 1, d_updates=k)
                    log.add(stats)
                    at.step, at.position = at.step + 1, at.position + 1
                    bar.update(1)
                    if at.step % args.log_every == 0 or at.position == iterations_per_epoch:
                        bar.set_postfix(log.record(at.step, out))
            if log.iterations:
                log.means(at.step, out)  # never save a run whose last iterations went non-finite
            if at.position == iterations_per_epoch:  # the epoch's end
                at.epoch, at.position = at.epoch + 1, 0
                epoch_times.append(time.perf_counter() - started)
                warn_if_collapsed(log.history, at.step - iterations_per_epoch, at.epoch)
            interrupt.saving = True
            written = save(out, args, config, players, iteration, at, log, rng, fixed_noise)
            interrupt.saving = False
            report_progress(log.history, at, iterations_per_epoch, epoch_times)

    if interrupt.requested:
        print(f"interrupted at step {at.step}; checkpoint written to {out / 'checkpoint.npz'}; "
              f"continue with --resume {out / 'checkpoint.npz'}")
        return 128 + interrupt.signal  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    per_epoch = f"{np.mean(epoch_times):.1f} s/epoch" if epoch_times else "no full epoch"
    print(f"done: {at.step} iterations, {at.epoch} epochs, {per_epoch}, ran on: {iteration.description}; "
          f"wrote {', '.join(str(p) for p in written)}")
    return 0


# --- the pieces main() and train() call, in the order they call them -----------------------------

def check_out_dir(out: Path, resume, overwrite: bool) -> None:
    """Before any work, with the folder held: --out holds no other run's checkpoint (unless
    --overwrite), and --overwrite never removes the run that --resume continues."""
    existing = out / "checkpoint.npz"
    continuing = resume is not None and existing.exists() and existing.resolve() == Path(resume).resolve()
    if continuing and overwrite:
        raise SystemExit(f"error: --overwrite would remove the run that --resume continues ({existing}); "
                         f"drop --overwrite, or write the continued run to another --out")
    if existing.exists() and not (continuing or overwrite):
        raise SystemExit(f"error: {out} already holds a run ({existing}); continue it with --resume {existing}, "
                         f"replace it with --overwrite, or choose another --out")


def load_training_data(config, data_dir, device):
    """(pixels in [0, 1] on the host, the training rows in the config's range on the device)."""
    images, _ = load_mnist("train", data_dir=data_dir)
    pixels = images[: config.train_images].reshape(-1, 784).astype(np.float32) / 255
    low, high = config.data_range
    return pixels, backend.to_device(pixels * (high - low) + low, device)


@dataclasses.dataclass
class Progress:
    """Where a run stands: iterations done, epochs done, iterations done in the current epoch, and
    that epoch's order of the training rows (None before its first minibatch)."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    order: object = None


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


def clear_old_run(out: Path) -> None:
    """--overwrite: remove the files of the run in `out` (RUN_FILES), and say what was removed and kept."""
    old = sorted({path for pattern in RUN_FILES for path in out.glob(pattern) if path.is_file()})
    for path in old:
        path.unlink()
    kept = sorted(path.name for path in out.iterdir() if path.name != cli.LOCK_NAME)
    removed = f"removed the old run's {len(old)} files from {out} ({names(old)})" if old else f"no run in {out}"
    if old or kept:
        print(f"--overwrite: {removed}" + (f"; kept {len(kept)} that are not a run's: {names(kept)}" if kept else ""))


def names(paths, most: int = 4) -> str:
    """'a.png, b.png, c.png, d.png and 3 more'."""
    listed = [Path(path).name for path in paths]
    return ", ".join(listed[:most]) + (f" and {len(listed) - most} more" if len(listed) > most else "")


class Interrupt:
    """Ctrl-C or SIGTERM asks the loop to stop after the current iteration and save. A second
    Ctrl-C before the save quits without saving; during the save it is ignored, and the run stops
    once the checkpoint is written."""

    def __init__(self, out: Path):
        self.out, self.requested, self.saving, self.signal = out, False, False, None

    def __enter__(self):
        self.previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame):
        if self.saving:
            tqdm.write("interrupt: the checkpoint is being written; the run stops as soon as it is")
            self.requested, self.signal = True, self.signal or signum
        elif self.requested:
            raise KeyboardInterrupt
        else:
            self.requested, self.signal = True, signum
            tqdm.write(f"{signal.Signals(signum).name}: stopping after this iteration and writing a checkpoint to "
                       f"{self.out} (press Ctrl-C again to quit without saving)")

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

    def record(self, step, out) -> dict:
        """Close the interval: append its means to the history; return them for the progress bar."""
        row = [step, *self.means(step, out)]
        self.sums, self.iterations = None, 0
        for key, value in zip(HISTORY_KEYS, row):
            self.history[key].append(value)
        return {"D": f"{row[1]:.3f}", "G": f"{row[2]:.3f}", "Dx": f"{row[3]:.2f}", "DGz": f"{row[4]:.2f}"}

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


def save(out, args, config, players, iteration, at: Progress, log, rng, fixed_noise):
    """The checkpoint first (it is what a crash would cost), then the pictures: a grid per epoch,
    or per step when the run stops inside an epoch."""
    iteration.sync()  # the fused engine's weights and Adam state back into G, D and the optimizers
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
        tqdm.write(f"warning: collapsed in epoch {epoch}: mean D(G(z)) {mean:.4f} < {COLLAPSE_D_FAKE} "
                   f"(D rejects every sample, so G learns almost nothing)")


def report_progress(history, at: Progress, iterations_per_epoch, epoch_times):
    step, epoch, position = at.step, at.epoch, at.position
    where = f"epoch {epoch}" if position == 0 else f"step {step} (epoch {epoch + 1}, {position}/{iterations_per_epoch})"
    took = f", {epoch_times[-1]:.1f} s" if position == 0 and epoch_times else ""
    if not history["step"]:
        tqdm.write(f"{where}: no losses recorded yet (one record every --log-every iterations){took}")
        return
    tqdm.write(f"{where}: D loss {history['d_loss'][-1]:.3f}, G loss {history['g_loss'][-1]:.3f}, "
               f"D(x) {history['d_real'][-1]:.2f}, D(G(z)) {history['d_fake'][-1]:.2f}{took}")


def run(argv=None) -> int:
    """main(), with every expected failure turned into one line on stderr and a non-zero exit."""
    return cli.run_main(main, argv, interrupted="interrupted: quit without writing a checkpoint "
                                               "(the last one written is intact)")


if __name__ == "__main__":
    sys.exit(run())
