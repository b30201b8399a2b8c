"""Train the 2014 GAN (Goodfellow et al., arXiv 1406.2661) on MNIST with minigan.

    python examples/mnist.py --device cuda
    python examples/mnist.py --data-dir ../shared/data/mnist --epochs 5
    python examples/mnist.py --config paper --epochs 10
    python examples/mnist.py --resume runs/mnist-reference/checkpoint.npz --epochs 10

Every epoch it writes, under --out: samples_epochNNN.png (an 8×8 grid from fixed noise),
losses.png, and checkpoint.npz (everything needed to continue exactly: both nets, both
optimizers, the step, the epoch and the random states). Ctrl-C finishes the current iteration,
writes a checkpoint and exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from minigan import Tensor, backend, gan, no_grad
from minigan.checkpoint import (CheckpointError, generator_state, load_checkpoint, restore_generator,
                                save_checkpoint, split_prefix, with_prefix)
from minigan.data import MNISTError, load_mnist
from minigan.plotting import save_image_grid, save_loss_curves

DEFAULT_EPOCHS = {"reference": 30, "paper": 100}
HISTORY_KEYS = ("step", "d_loss", "g_loss", "d_real", "d_fake")
RESUME_KEYS = (*(f"meta.{key}" for key in ("config", "batch_size", "k", "loss", "update", "seed", "step", "epoch",
                                            "position")),
               "rng.trainer", "rng.cpu", "order", *(f"history.{key}" for key in HISTORY_KEYS))


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train the 2014 GAN on MNIST (Algorithm 1).")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--config", default="reference", choices=sorted(gan.CONFIGS),
                   help="reference: the common torch MNIST GAN; paper: the authors' maxout setup")
    p.add_argument("--epochs", type=positive_int, help="default: 30 (reference), 100 (paper)")
    p.add_argument("--batch-size", type=positive_int, help="m in Algorithm 1 (default: the config's)")
    p.add_argument("--k", type=positive_int, help="D steps per G step (default 1)")
    p.add_argument("--loss", choices=["nonsaturating", "minimax"], help="G's loss (default nonsaturating)")
    p.add_argument("--update", choices=sorted(gan.UPDATES),
                   help="alternating: Algorithm 1's box (default for reference); simultaneous: the authors' code, "
                        "both players stepped from one pass of D (default for paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", help="folder with the MNIST files (else $MINIGAN_DATA, then ~/.cache/minigan/mnist)")
    p.add_argument("--out", help="output folder (default runs/mnist-CONFIG)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.npz")
    p.add_argument("--max-steps", type=positive_int, help="stop after this many iterations (smoke runs)")
    p.add_argument("--engine", choices=["auto", "autograd", "fused"], default="auto",
                   help="autograd: the readable path; fused: hand-fused kernels (reference config), captured "
                        "in one CUDA graph on a GPU; auto (default): fused on CUDA, autograd on the CPU")
    p.add_argument("--no-graph", action="store_true", help="on CUDA, use the autograd path (same as --engine autograd)")
    p.add_argument("--tf32", action="store_true", help="let the fused step's GEMMs use TF32 on CUDA (off by default)")
    p.add_argument("--log-every", type=positive_int, default=50,
                   help="iterations between progress updates; each one syncs the device once")
    args = p.parse_args(argv)
    try:
        args.device = backend.usable_device(args.device)
    except backend.DeviceError as error:
        p.error(str(error))
    return args


class Interrupt:
    """The first Ctrl-C asks the loop to stop after the current iteration; a second one kills."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


COLLAPSE_D_FAKE = 0.01  # mean D(G(z)) below this over a whole epoch: D rejects every fake


def warn_if_collapsed(history, iterations_per_epoch, log_every, epoch):
    """One warning line when D has won: G then gets almost no gradient, and its samples stop changing."""
    records = history["d_fake"][-max(1, -(-iterations_per_epoch // log_every)):]
    if records and float(np.mean(records)) < COLLAPSE_D_FAKE:
        tqdm.write(f"warning: collapsed in epoch {epoch}: mean D(G(z)) {np.mean(records):.4f} < {COLLAPSE_D_FAKE} "
                   f"(D rejects every sample, so G learns almost nothing)")


def main(argv=None) -> int:
    args = parse_args(argv)
    resumed = load_checkpoint(args.resume) if args.resume else None
    if resumed is not None:  # the run's settings come from the checkpoint it continues
        missing = [key for key in RESUME_KEYS if key not in resumed]
        if missing:
            raise CheckpointError(f"checkpoint {args.resume} lacks {', '.join(missing)}: "
                                  f"it was not written by examples/mnist.py")
        if str(resumed["meta.config"]) not in gan.CONFIGS:
            raise CheckpointError(f"checkpoint {args.resume} names an unknown config {str(resumed['meta.config'])!r}")
        args.config = str(resumed["meta.config"])
        args.batch_size, args.k = int(resumed["meta.batch_size"]), int(resumed["meta.k"])
        args.loss, args.seed = str(resumed["meta.loss"]), int(resumed["meta.seed"])
        args.update = str(resumed["meta.update"])
    config = gan.CONFIGS[args.config]
    m = args.batch_size or config.batch_size
    k = args.k or config.k
    loss_kind = args.loss or config.loss
    update = args.update or config.update
    if update == "simultaneous" and k != 1:
        raise SystemExit(f"error: --update simultaneous takes one step of each player per minibatch; --k {k} needs alternating")
    epochs = args.epochs or DEFAULT_EPOCHS[config.name]
    out = Path(args.out or f"runs/mnist-{config.name}")
    device = args.device

    # --- data: the first `train_images` MNIST training digits, as rows scaled to the config's range
    images, _ = load_mnist("train", data_dir=args.data_dir)
    pixels = images[: config.train_images].reshape(-1, 784).astype(np.float32) / 255
    low, high = config.data_range
    data = backend.to_device(pixels * (high - low) + low, device)
    if len(data) < k * m:
        raise SystemExit(f"error: {len(data)} training images are fewer than one iteration needs (k·m = {k * m})")
    iterations_per_epoch = len(data) // (k * m)

    # --- the two players and their optimizers
    backend.manual_seed(args.seed)
    G = gan.build_generator(config, pixel_mean=pixels.mean(axis=0), device=device)
    D = gan.build_discriminator(config, device=device)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    rng = np.random.default_rng(args.seed)  # noise and minibatch order, drawn on the host
    fixed_noise = gan.sample_noise(config, 64, np.random.default_rng(args.seed + 1), device=device)
    step, epoch, position, order = 0, 0, 0, None
    history = {key: [] for key in HISTORY_KEYS}

    if resumed is not None:
        try:
            G.load_state_dict(split_prefix(resumed, "G."))
            D.load_state_dict(split_prefix(resumed, "D."))
            opt_G.load_state_dict(split_prefix(resumed, "opt_G."))
            opt_D.load_state_dict(split_prefix(resumed, "opt_D."))
        except ValueError as error:
            raise CheckpointError(f"checkpoint {args.resume} does not fit the {config.name} model: {error}") from None
        step, epoch, position = (int(resumed[f"meta.{key}"]) for key in ("step", "epoch", "position"))
        rng = restore_generator(resumed["rng.trainer"])
        backend.set_generator("cpu", restore_generator(resumed["rng.cpu"]))
        order = backend.to_device(resumed["order"], device) if position else None
        history = {key: list(resumed[f"history.{key}"]) for key in HISTORY_KEYS}
        print(f"resumed from {args.resume}: epoch {epoch}, step {step}")

    def checkpoint():
        arrays = {**with_prefix(G.state_dict(), "G."), **with_prefix(D.state_dict(), "D."),
                  **with_prefix(opt_G.state_dict(), "opt_G."), **with_prefix(opt_D.state_dict(), "opt_D."),
                  **{f"history.{key}": np.asarray(values) for key, values in history.items()},
                  "meta.config": config.name, "meta.batch_size": m, "meta.k": k, "meta.loss": loss_kind,
                  "meta.update": update,
                  "meta.seed": args.seed, "meta.step": step, "meta.epoch": epoch, "meta.position": position,
                  "rng.trainer": generator_state(rng), "rng.cpu": generator_state(backend.generator("cpu")),
                  "order": backend.to_numpy(order) if order is not None else np.zeros(0, np.int64)}
        return save_checkpoint(out / "checkpoint.npz", arrays)

    interval = {"sums": None, "iterations": 0}  # statistics summed on the device since the last record

    def accumulate(stats):
        """Add this iteration's statistics to the interval's sums, on the device: no host sync."""
        xp = backend.array_module(stats["d_loss"])
        mean_d = lambda logits: xp.exp(-xp.logaddexp(0, -logits)).mean()  # mean D = mean σ(logit)
        values = xp.stack([stats["d_loss"], stats["g_loss"], mean_d(stats["d_real"]), mean_d(stats["d_fake"])])
        interval["sums"] = values if interval["sums"] is None else interval["sums"] + values
        interval["iterations"] += 1

    def record():
        """Pull the interval's mean statistics to the host (one sync) and check the game is finite."""
        row = [step] + (backend.to_numpy(interval["sums"]) / interval["iterations"]).tolist()
        interval.update(sums=None, iterations=0)
        if not np.all(np.isfinite(row)):
            raise FloatingPointError(f"non-finite loss before step {step}: D loss {row[1]}, G loss {row[2]}; "
                                     f"stopped without overwriting the last checkpoint in {out}")
        for key, value in zip(HISTORY_KEYS, row):
            history[key].append(value)
        return row

    def sample_data():
        nonlocal batch
        rows = order[batch * m: (batch + 1) * m]
        batch += 1
        return Tensor(data[rows])

    def sample_noise():
        return gan.sample_noise(config, m, rng, device=device)

    # --- the engine: Algorithm 1 through the autograd graph, or the fused step (minigan/fast)
    engine = "autograd" if args.no_graph else args.engine
    if engine == "auto":
        engine = "fused" if device != "cpu" and config.name == "reference" and update == "alternating" else "autograd"
    trainer = None
    if engine == "fused":
        if config.name != "reference" or update != "alternating":
            raise SystemExit("error: --engine fused supports the reference config with the alternating update only")
        from minigan.fast import FusedTrainer

        trainer = FusedTrainer(G, D, k=k, loss_kind=loss_kind, lr=opt_G.lr, betas=opt_G.betas, eps=opt_G.eps,
                               tf32=args.tf32)
        trainer.load_optimizer_states(opt_G, opt_D)

    def iterate():
        """One iteration of Algorithm 1 (gan.train_iteration), on the chosen engine."""
        nonlocal trainer, engine
        if trainer is None:
            return gan.UPDATES[update](G, D, opt_G, opt_D, sample_data, sample_noise, k, loss_kind)
        x_batches, z_batches = [sample_data().data for _ in range(k)], [sample_noise().data for _ in range(k + 1)]
        try:
            return trainer.iteration(x_batches, z_batches)
        except Exception as error:  # e.g. a kernel that does not compile on this GPU
            if step > 0:
                raise
            # Nothing has been written back into G, D or the optimizers yet: carry on without it.
            warnings.warn(f"the fused step failed ({type(error).__name__}: {error}); using the autograd path")
            trainer, engine = None, "autograd"
            x_iter, z_iter = iter(x_batches), iter(z_batches)
            return gan.train_iteration(G, D, opt_G, opt_D, lambda: Tensor(next(x_iter)),
                                       lambda: Tensor(next(z_iter)), k, loss_kind)

    print(f"minigan GAN, config {config.name}: {len(data)} images, m={m}, k={k}, {loss_kind} G loss, "
          f"{update} update, {iterations_per_epoch} iterations/epoch, device {device}, {engine} engine")
    written, epoch_times = [], []
    with Interrupt() as interrupt:
        while epoch < epochs and not (args.max_steps and step >= args.max_steps) and not interrupt.requested:
            started = time.perf_counter()
            if position == 0:
                order = backend.to_device(rng.permutation(len(data)), device)
            batch = position * k
            with tqdm(total=iterations_per_epoch, initial=position, desc=f"epoch {epoch + 1}/{epochs}",
                      leave=False, dynamic_ncols=True) as bar:
                while position < iterations_per_epoch:
                    stats = iterate()
                    if config.name == "paper":
                        gan.paper_schedule(opt_G, epoch + 1)
                        for _ in range(k):
                            gan.paper_schedule(opt_D, epoch + 1, scale=gan.PAPER_D_SCALE)
                    accumulate(stats)
                    step += 1
                    position += 1
                    bar.update(1)
                    stop = interrupt.requested or (args.max_steps and step >= args.max_steps)
                    if step % args.log_every == 0 or stop or position == iterations_per_epoch:
                        row = record()
                        bar.set_postfix(D=f"{row[1]:.3f}", G=f"{row[2]:.3f}", Dx=f"{row[3]:.2f}", DGz=f"{row[4]:.2f}")
                    if stop:
                        break
            if position == iterations_per_epoch:
                epoch, position = epoch + 1, 0
                epoch_times.append(time.perf_counter() - started)
                warn_if_collapsed(history, iterations_per_epoch, args.log_every, epoch)
            if trainer is not None:  # bring the fused step's weights and Adam state home
                trainer.copy_to_modules(opt_G, opt_D)
            with no_grad():
                G.eval()
                samples = G(fixed_noise).numpy()
                G.train()
            written = [save_image_grid(out / f"samples_epoch{epoch:03d}.png", samples, value_range=config.data_range),
                       save_loss_curves(out / "losses.png", history, title=f"minigan {config.name}"),
                       checkpoint()]
            where = f"epoch {epoch}" if position == 0 else f"step {step} (epoch {epoch + 1}, {position}/{iterations_per_epoch})"
            took = f", {epoch_times[-1]:.1f} s" if position == 0 else ""
            tqdm.write(f"{where}: D loss {history['d_loss'][-1]:.3f}, G loss {history['g_loss'][-1]:.3f}, "
                       f"D(x) {history['d_real'][-1]:.2f}, D(G(z)) {history['d_fake'][-1]:.2f}{took}")

    if interrupt.requested:
        print(f"interrupted at step {step}; checkpoint written to {out / 'checkpoint.npz'}; "
              f"continue with --resume {out / 'checkpoint.npz'}")
        return 130
    per_epoch = f"{np.mean(epoch_times):.1f} s/epoch" if epoch_times else "no full epoch"
    print(f"done: {step} iterations, {epoch} epochs, {per_epoch}; wrote {', '.join(str(p) for p in written)}")
    return 0


def run(argv=None) -> int:
    """main(), with every expected failure turned into one line on stderr and a non-zero exit."""
    try:
        return main(argv)
    except (MNISTError, CheckpointError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(run())
