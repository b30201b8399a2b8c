"""Choosing the engine, and the fused step in gan.train_iteration's place, with its fallback.

    engine = fast.resolve_engine(requested="auto", device="cuda", config_name="reference", update="alternating")
    if engine == "fused":
        fused = fast.FusedIteration(G, D, opt_G, opt_D, k=k, loss=loss)
        stats = fused(sample_data, sample_noise)  # gan.train_iteration's samplers and statistics
        fused.sync()  # before a checkpoint: the weights and Adam state back into G, D and the optimizers
        print(fused.description)  # "fused, CUDA graph", "fused, eager", "fused, NumPy", ...
    else:
        stats = gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k, loss)

FusedIteration keeps the weights in its own buffers until sync() copies them back.

FusedIteration builds its FusedTrainer on the first call. If building it (loading cuBLAS, making
a handle, compiling a kernel) or that first step fails, it says so in one warning and hands every
call, that one included, to gan.train_iteration for good: nothing had been written into G, D or
the optimizers yet, so the autograd engine carries on from exactly where training stood.
"""

from __future__ import annotations

import warnings

from .. import backend, gan, optim
from .step import FusedTrainer

ENGINES = ("auto", "autograd", "fused")


def resolve_engine(requested: str = "auto", device="cpu", config_name: str = "reference",
                   update: str = "alternating") -> str:
    """"autograd" or "fused" for a run. "auto" picks the fused step where it pays and applies: on a
    GPU, for the `reference` config with Algorithm 1's alternating update; the autograd engine
    otherwise (on the CPU the two take about the same time, and autograd is the readable one).

    Asking for "fused" where it cannot apply (the `paper` config's maxout and dropout, or the
    simultaneous update) is a ValueError; so is an unknown name.
    """
    if requested not in ENGINES:
        raise ValueError(f"unknown engine {requested!r}; use 'auto', 'autograd' or 'fused'")
    if config_name not in gan.CONFIGS:
        raise ValueError(f"unknown config {config_name!r}; use one of {', '.join(map(repr, gan.CONFIGS))}")
    gan.check_update("resolve_engine", update)
    device = backend.normalize_device(device)
    fits = config_name == "reference" and update == "alternating"
    if requested == "fused" and not fits:
        why = f"the {config_name!r} config" if config_name != "reference" else f"the {update} update"
        raise ValueError(f"the fused engine runs the 'reference' config with the alternating update only, "
                         f"not {why}; use the autograd engine")
    if requested == "auto":
        return "fused" if fits and device != "cpu" else "autograd"
    return requested


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


class FusedIteration:
    """One iteration of gan.train_iteration on G, D, opt_G and opt_D, computed by a FusedTrainer
    built on first use: called with the same sample_data and sample_noise, returns the same statistics.

    `cuda_graph` captures the step into a CUDA graph (False: the fused step runs eagerly); `tf32`
    lets its GEMMs use TF32. Both matter on CUDA only. opt_G and opt_D must be optim.Adam: the
    fused step continues from their state and settings.
    """

    def __init__(self, G, D, opt_G, opt_D, k: int = 1, loss: str = "nonsaturating", cuda_graph: bool = True,
                 tf32: bool = False):
        gan.check_game("FusedIteration", k, loss)
        for name, opt in (("opt_G", opt_G), ("opt_D", opt_D)):
            if not isinstance(opt, optim.Adam):
                raise ValueError(f"FusedIteration: the fused step runs Adam, but {name} is {type(opt).__name__}")
        self.G, self.D, self.opt_G, self.opt_D = G, D, opt_G, opt_D
        self.k, self.loss, self.cuda_graph, self.tf32 = int(k), loss, bool(cuda_graph), bool(tf32)
        self.device = G.parameters()[0].device
        self.trainer = None
        self.failure = None  # why the fused step was given up, one line; None while it runs

    @property
    def description(self) -> str:
        """How iterations run, in words: "fused, CUDA graph", "fused, eager", "fused, NumPy", or
        "autograd (fused step failed: ...)"."""
        if self.failure is not None:
            return f"autograd (fused step failed: {self.failure})"
        if self.trainer is not None:
            return f"fused, {self.trainer.mode}"
        if self.device == "cpu":
            return "fused, NumPy"
        return "fused, CUDA graph" if self.cuda_graph else "fused, eager"

    def __call__(self, sample_data, sample_noise) -> dict:
        G, D, opt_G, opt_D, k, loss = self.G, self.D, self.opt_G, self.opt_D, self.k, self.loss
        if self.failure is not None:
            return gan.train_iteration(G, D, opt_G, opt_D, sample_data, sample_noise, k, loss)
        # The draws of gan.train_iteration, in its order (z, then x, in each D step; then z for
        # G), so that a seed gives the same batches on both engines.
        xs, zs = [], []
        for _ in range(k):
            zs.append(sample_noise())
            xs.append(sample_data())
        zs.append(sample_noise())
        if self.trainer is not None:
            return self.trainer.iteration(xs, zs)
        try:
            trainer = FusedTrainer(G, D, k=k, loss=loss, lr=opt_G.lr, betas=opt_G.betas, eps=opt_G.eps,
                                   cuda_graph=self.cuda_graph, tf32=self.tf32)
            trainer.load_optimizer_states(opt_G, opt_D)
            stats = trainer.iteration(xs, zs)
        except Exception as error:  # e.g. no libcublas, or a kernel that does not compile on this GPU
            self.failure = _one_line(error)
            warnings.warn(f"the fused step failed ({self.failure}); training on with the autograd engine",
                          RuntimeWarning, stacklevel=2)
            # G, D and the optimizers are untouched: the same batches go to the autograd engine.
            data, noise = iter(xs), iter(zs)
            return gan.train_iteration(G, D, opt_G, opt_D, lambda: next(data), lambda: next(noise), k, loss)
        self.trainer = trainer
        return stats

    def sync(self) -> None:
        """Copy the fused step's weights and Adam state into G, D, opt_G and opt_D (before a
        checkpoint, or before anything reads them); nothing to do after a fallback."""
        if self.trainer is not None and self.failure is None:
            self.trainer.copy_to_modules(self.opt_G, self.opt_D)
