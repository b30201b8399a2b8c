"""Train the 2014 GAN (Goodfellow et al., arXiv 1406.2661) on MNIST with minigan.

    python examples/mnist.py                                   # the reference config, 30 epochs
    python examples/mnist.py --device cuda
    python examples/mnist.py --config paper --epochs 250       # the authors' own setup
    python examples/mnist.py --resume runs/mnist-reference/checkpoint.npz --epochs 40

Every epoch it writes, under --out: checkpoint.npz (everything needed to continue exactly: both
nets, both optimizers, the step, the epoch and the random states), then samples_epochNNN.png (an
8×8 grid from fixed noise) and losses.png. It never overwrites another run's checkpoint. Ctrl-C
or SIGTERM finishes the current iteration, writes a checkpoint and exits.

The file reads top to bottom: settings, data, the two players, the loop, saving. One iteration is
`gan.train_iteration` (Algorithm 1) or `gan.simultaneous_iteration` (the authors' update).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minigan import Tensor, backend, cli, fast, gan, no_grad
from minigan.checkpoint import (
    CheckpointError,
    load_run,
    restore_generator,
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
COLLAPSE_D_FAKE = 0.01  # mean D(G(z)) below this over a whole epoch: D rejects every fake


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the 2014 GAN on MNIST (Algorithm 1).")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--config", choices=sorted(gan.CONFIGS),
                   help="reference (default): the common torch MNIST GAN; paper: the authors' maxout setup")
    p.add_argument("--epochs", type=positive_int, help="train until this many epochs (default: 30 reference, 100 paper)")
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
    try:
        args.device = backend.usable_device(args.device)
    except backend.DeviceError as error:
        p.error(str(error))
    return args


def settle(args, resumed):
    """The run's settings: the checkpoint's when resuming (a flag that contradicts it is an
    error), else the flags', else the config's defaults."""
    if resumed is not None:
        stored = {key: resumed[f"meta.{key}"].item() for key in RUN_SETTINGS}
        if stored["config"] not in gan.CONFIGS:
            raise CheckpointError(f"checkpoint {args.resume} names an unknown config {stored['config']!r}")
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


def check_out_dir(out: Path, resume, overwrite: bool) -> None:
    """Before any work: --out must be a writable folder that holds no other run's checkpoint."""
    existing = out / "checkpoint.npz"
    continuing = resume is not None and existing.exists() and existing.resolve() == Path(resume).resolve()
    if existing.exists() and not (continuing or overwrite):
        raise SystemExit(f"error: {out} already holds a run ({existing}); continue it with --resume {existing}, "
                         f"replace it with --overwrite, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as error:
        raise SystemExit(f"error: cannot write to --out {out}: {error.strerror or error}") from None


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


def load_training_data(config, data_dir, device):
    """(pixels in [0, 1] on the host, the training rows in the config's range on the device)."""
    images, _ = load_mnist("train", data_dir=data_dir)
    pixels = images[: config.train_images].reshape(-1, 784).astype(np.float32) / 255
    low, high = config.data_range
    return pixels, backend.to_device(pixels * (high - low) + low, device)


def minibatches(data, order, first: int, m: int):
    """The epoch's minibatches of m rows, in `order`, from minibatch number `first` on."""
    for start in range(first * m, len(order) - m + 1, m):
        yield Tensor(data[order[start:start + m]])


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
        mean_d = lambda logits: Tensor(logits).sigmoid().data.mean()  # mean D = mean σ(logit)
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

    def record(self, step, out):
        row = [step, *self.means(step, out)]
        self.sums, self.iterations = None, 0
        for key, value in zip(HISTORY_KEYS, row):
            self.history[key].append(value)
        return row

    def arrays(self):
        return {"interval_sums": backend.to_numpy(self.sums) if self.iterations else np.zeros(4),
                **{f"history.{key}": np.asarray(values) for key, values in self.history.items()}}

    def restore(self, resumed, device):
        self.history = {key: list(resumed[f"history.{key}"]) for key in HISTORY_KEYS}
        self.iterations = int(resumed["meta.interval_iterations"])
        self.sums = backend.to_device(resumed["interval_sums"], device) if self.iterations else None


def save(out, players, meta, arrays, generators, G, fixed_noise, config, history):
    """The checkpoint first (it is what a crash would cost), then the pictures: a grid per epoch,
    or per step when the run stops inside an epoch."""
    written = save_run(out / "checkpoint.npz", players, meta, arrays, generators)
    with no_grad():
        G.eval()
        samples = G(fixed_noise).numpy()
        G.train()
    grid = f"samples_epoch{meta['epoch']:03d}.png" if meta["position"] == 0 else f"samples_step{meta['step']:06d}.png"
    return [written, save_image_grid(out / grid, samples, value_range=config.data_range),
            save_loss_curves(out / "losses.png", history, title=f"minigan {config.name}")]


def main(argv=None) -> int:
    args = parse_args(argv)
    resumed = load_run(args.resume, RESUME_KEYS, "examples/mnist.py") if args.resume else None
    config = settle(args, resumed)
    m, k, loss, update, out, device = args.batch_size, args.k, args.loss, args.update, args.out, args.device
    try:
        engine = fast.resolve_engine(args.engine, device=device, config_name=config.name, update=update)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    check_out_dir(out, args.resume, args.overwrite)

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
    rng = np.random.default_rng(args.seed)  # noise and minibatch order, drawn on the host
    fixed_noise = gan.sample_noise(config, 64, np.random.default_rng(args.seed + 1), device=device)
    step, epoch, position, order, log = 0, 0, 0, None, LossLog()
    if resumed is not None:
        restore_players(resumed, players, args.resume, config.name)
        step, epoch, position = (int(resumed[f"meta.{key}"]) for key in ("step", "epoch", "position"))
        rng = restore_generator(resumed["rng.trainer"])
        backend.set_generator("cpu", restore_generator(resumed["rng.cpu"]))
        order = backend.to_device(resumed["order"], device) if position else None
        log.restore(resumed, device)
        print(f"resumed from {args.resume}: epoch {epoch}, step {step}")

    iteration = (fast.FusedIteration(G, D, opt_G, opt_D, k=k, loss=loss, graph=not args.no_graph, tf32=args.tf32)
                 if engine == "fused" else gan.UPDATES[update])
    sample_noise = lambda: gan.sample_noise(config, m, rng, device=device)

    print(f"minigan GAN, config {config.name}: {len(data)} images, m={m}, k={k}, {loss} G loss, {update} update, "
          f"{iterations_per_epoch} iterations/epoch, device {device}, {engine} engine")
    written, epoch_times = [], []
    with Interrupt(out) as interrupt:
        while epoch < args.epochs and not (args.max_steps and step >= args.max_steps) and not interrupt.requested:
            started = time.perf_counter()
            if position == 0:
                order = backend.to_device(rng.permutation(len(data)), device)
            sample_data = minibatches(data, order, position * k, m).__next__
            with tqdm(total=iterations_per_epoch, initial=position, desc=f"epoch {epoch + 1}/{args.epochs}",
                      leave=False, dynamic_ncols=True) as bar:
                while position < iterations_per_epoch:
                    # One iteration of the game, then the config's learning-rate schedule (paper only).
                    stats = iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k, loss)
                    gan.apply_schedule(config, opt_G, opt_D, epoch + 1, d_updates=k)
                    log.add(stats)
                    step, position = step + 1, position + 1
                    bar.update(1)
                    if step % args.log_every == 0 or position == iterations_per_epoch:
                        row = log.record(step, out)
                        bar.set_postfix(D=f"{row[1]:.3f}", G=f"{row[2]:.3f}", Dx=f"{row[3]:.2f}", DGz=f"{row[4]:.2f}")
                    if interrupt.requested or (args.max_steps and step >= args.max_steps):
                        break
            if log.iterations:
                log.means(step, out)  # never save a run whose last iterations went non-finite
            if position == iterations_per_epoch:
                epoch, position = epoch + 1, 0
                epoch_times.append(time.perf_counter() - started)
                warn_if_collapsed(log.history, step - iterations_per_epoch, epoch)
            if hasattr(iteration, "sync"):  # bring the fused step's weights and Adam state home
                iteration.sync()
            meta = {"config": config.name, "noise": config.noise, "batch_size": m, "k": k, "loss": loss, "update": update, "seed": args.seed,
                    "step": step, "epoch": epoch, "position": position, "interval_iterations": log.iterations}
            order_array = backend.to_numpy(order) if position else np.zeros(0, np.int64)
            interrupt.saving = True
            written = save(out, players, meta, {"order": order_array, **log.arrays()},
                           {"trainer": rng, "cpu": backend.generator("cpu")}, G, fixed_noise, config, log.history)
            interrupt.saving = False
            report_progress(log.history, step, epoch, position, iterations_per_epoch, epoch_times)

    if interrupt.requested:
        print(f"interrupted at step {step}; checkpoint written to {out / 'checkpoint.npz'}; "
              f"continue with --resume {out / 'checkpoint.npz'}")
        return 128 + interrupt.signal  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    per_epoch = f"{np.mean(epoch_times):.1f} s/epoch" if epoch_times else "no full epoch"
    ran_on = iteration.description if engine == "fused" else "autograd"
    print(f"done: {step} iterations, {epoch} epochs, {per_epoch}, ran on: {ran_on}; "
          f"wrote {', '.join(str(p) for p in written)}")
    return 0


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


def report_progress(history, step, epoch, position, iterations_per_epoch, epoch_times):
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
