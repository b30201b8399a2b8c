"""The fast path: one fused training step for the `reference` GAN, NumPy or CuPy.

Nothing in the autograd (tensor.py, nn.py, optim.py, gan.py) depends on this package; it computes
the same maths as gan.train_iteration with optim.Adam, and tests/test_fast_*.py hold it to that.

    from minigan import fast
    engine = fast.resolve_engine("auto", device="cuda", config_name="reference", update="alternating")
    iterate = fast.make_iteration(engine, G, D, opt_G, opt_D, k=1, loss="nonsaturating")
    stats = iterate(G, D, opt_G, opt_D, sample_data, sample_noise, 1, "nonsaturating")
    iterate.sync()  # fused: weights and Adam state back into G, D and the optimizers (autograd: nothing to do)

engine.py    resolve_engine; make_iteration, which gives an AutogradIteration (gan.UPDATES behind the
             common interface) or a FusedIteration (the fused step behind gan.train_iteration's
             signature, falling back to it if the fused step cannot be built or fails on its first call)
step.py      FusedTrainer: flat buffers, the hand-derived forward and backward, Algorithm 1
kernels.py   the fused ops, a NumPy and a CuPy twin of each readable op they replace
cublas.py    GEMMs through cuBLAS via ctypes (CUDA only, imported lazily)
graph.py     the CUDA plumbing: the step's stream, and its capture into a CUDA graph with an
             eager fallback (CUDA only, imported lazily)

The GPU measurements these choices rest on are in docs/gpu.md.
"""

from .engine import ENGINES, AutogradIteration, FusedIteration, make_iteration, resolve_engine
from .step import FusedTrainer

__all__ = ["ENGINES", "AutogradIteration", "FusedIteration", "FusedTrainer", "make_iteration", "resolve_engine"]
