"""Train the 2014 GAN (Goodfellow et al., arXiv 1406.2661) on MNIST with minigan.

Two players: G turns noise z into images, D tells the training digits from G's. Each iteration is
Algorithm 1 of the paper: k steps of D ascending eq. 2, log D(x) + log(1 − D(G(z))), then one step
of G descending eq. 3 (or ascending log D(G(z)), the non-saturating loss). The `paper` config
steps both players from one pass of D instead, as the authors' code does.

    python examples/mnist.py                                   # the reference config, 30 epochs
    python examples/mnist.py --device cuda                     # the fused engine, one CUDA graph a step
    python examples/mnist.py --config paper --epochs 250       # the authors' own setup
    python examples/mnist.py --resume runs/mnist-reference/checkpoint.npz --epochs 40

Reads top to bottom: settings, data, the two players, the loop, saving. Every epoch it writes,
under --out: checkpoint.npz (both nets, both optimizers, the step and the random states: enough
to continue exactly), samples_epochNNN.png (an 8×8 grid from fixed noise) and losses.png.

The run machinery is minigan/run.py: a run holds --out (a .lock file) and never overwrites
another run's checkpoint unless --overwrite; Ctrl-C, SIGTERM or SIGHUP finishes the current
iteration, writes a checkpoint and exits.
"""

from __future__ import annotations

import sys

try:  # NumPy and the rest take a while to import: Ctrl-C meanwhile is one line, not a traceback
    import argparse

    from minigan import backend, fast, gan, run
    from minigan.cli import positive_int, seed_int
except KeyboardInterrupt:
    print("interrupted while starting: nothing was written", file=sys.stderr)
    sys.exit(130)

# --- settings ------------------------------------------------------------------------------------
parser = argparse.ArgumentParser(description="Train the 2014 GAN on MNIST (Algorithm 1).")
parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
parser.add_argument("--config", choices=sorted(gan.CONFIGS),
                    help="reference (default): the common torch MNIST GAN; paper: the authors' maxout setup")
parser.add_argument("--epochs", type=positive_int,
                    help="train until this many epochs (default: 30 reference, 100 paper)")
parser.add_argument("--batch-size", type=positive_int, help="m in Algorithm 1 (default: the config's)")
parser.add_argument("--k", type=positive_int, help="D steps per G step (default 1)")
parser.add_argument("--noise", choices=gan.NOISES, help="the prior p_z (default: the config's; paper uniform, "
                    "reference normal)")
parser.add_argument("--loss", choices=gan.LOSSES, help="G's loss (default nonsaturating)")
parser.add_argument("--update", choices=sorted(gan.UPDATES),
                    help="alternating: Algorithm 1's box (default for reference); simultaneous: the authors' "
                         "code, both players stepped from one pass of D (default for paper)")
parser.add_argument("--seed", type=seed_int, help="seed for weights, noise and minibatch order (default 0)")
parser.add_argument("--data-dir", help="folder with the MNIST .gz files (default: $MINIGAN_DATA, then the "
                                       "repository's data/mnist, then ~/.cache/minigan/mnist, then a download)")
parser.add_argument("--out", help="output folder (default runs/mnist-CONFIG, or the --resume checkpoint's folder)")
parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
parser.add_argument("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.npz")
parser.add_argument("--max-steps", type=positive_int, help="stop after this many iterations (smoke runs)")
parser.add_argument("--engine", choices=fast.ENGINES, default="auto",
                    help="autograd: the readable path; fused: hand-fused kernels (reference config); "
                         "auto (default): fused on CUDA, autograd on the CPU")
parser.add_argument("--no-cuda-graph", action="store_true",
                    help="with the fused engine on CUDA: run the fused step eagerly, not as one CUDA graph")
parser.add_argument("--tf32", action="store_true", help="let the fused step's GEMMs use TF32 on CUDA (off by default)")
parser.add_argument("--log-every", type=positive_int, default=50,
                    help="iterations between records of the losses; each one syncs the device once")


def parse_args(argv=None):
    return run.check_args(parser, argv)  # and no empty path, a usable --device


def main(argv=None) -> int:
    args = parse_args(argv)
    config, resumed = run.settle(args)  # the checkpoint's settings when resuming, else the flags'
    if run.nothing_to_train(args, resumed):
        return 0
    with run.hold(args.out, args.resume, args.overwrite):  # --out's lock; no other run's checkpoint there
        return train(args, config, resumed)


def train(args, config, resumed) -> int:
    m, k, loss, device = args.batch_size, args.k, args.loss, args.device

    # --- data: the first `train_images` MNIST training digits, as rows scaled to the config's range
    pixels, data = run.load_training_data(config, args.data_dir, device)

    # --- the two players and their optimizers (restored from the checkpoint when resuming)
    backend.manual_seed(args.seed)
    G = gan.build_generator(config, pixel_mean=pixels.mean(axis=0), device=device)
    D = gan.build_discriminator(config, device=device)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    training = run.Training(args, config, data, {"G": G, "D": D, "opt_G": opt_G, "opt_D": opt_D}, resumed)

    def sample_noise():  # a minibatch of m noise samples from the prior p_z
        return gan.sample_noise(config, m, training.rng, device=device)

    if args.engine == "fused":  # Algorithm 1 again, backpropagated by hand over flat buffers (minigan/fast)
        fused = fast.FusedIteration(G, D, opt_G, opt_D, k=k, loss=loss, cuda_graph=not args.no_cuda_graph,
                                    tf32=args.tf32)

    # --- the loop: an epoch at a time, each in a new order of the training digits
    with training:  # --overwrite clears the old run here; Ctrl-C stops after the current iteration
        for sample_data in training.epochs():  # a minibatch of m examples from the data, per call
            for epoch in training.iterations():
                if args.engine == "fused":
                    stats = fused(sample_data, sample_noise)
                elif args.update == "alternating":
                    # (1) k times, update D: maximize log D(x) + log(1 − D(G(z)))   (eq. 2)
                    # (2) update G: minimize log(1 − D(G(z))), or maximize log D(G(z))   (eq. 3)
                    stats = gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k, loss)
                else:  # the authors' update: D and G both step from one pass of D over x and G(z)
                    stats = gan.simultaneous_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k, loss)
                gan.apply_schedule(config, opt_G, opt_D, epoch, d_updates=k)  # the paper config's rates
                training.record(stats)

            # --- saving: the checkpoint, then the sample grid and the loss curves
            if args.engine == "fused":
                fused.sync()  # the fused step's weights and Adam state back into G, D and the optimizers
            training.save()
    return training.finish(fused.description if args.engine == "fused" else "autograd")


if __name__ == "__main__":
    sys.exit(run.guarded(main))
