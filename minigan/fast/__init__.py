"""The fast path: one fused training step for the `reference` GAN, NumPy or CuPy.

Nothing in the autograd (tensor.py, nn.py, optim.py, gan.py) depends on this package; it computes
the same maths as gan.train_iteration with optim.Adam, and tests/test_fast_*.py hold it to that.

    from minigan import fast
    engine = fast.resolve_engine("auto", device="cuda", config_name="reference", update="alternating")
    if engine == "fused":
        fused = fast.FusedIteration(G, D, opt_G, opt_D, k=1, loss="nonsaturating")
        stats = fused(sample_data, sample_noise)  # what gan.train_iteration(G, D, ...) would return
        fused.sync()  # the weights and Adam state back into G, D and the optimizers

engine.py      resolve_engine ("autograd" or "fused" for a run), and FusedIteration: the fused step
               in gan.train_iteration's place, with its samplers, falling back to it if the fused
               step cannot be built or fails on its first call
step.py        FusedTrainer: flat buffers, the hand-derived forward and backward, Algorithm 1
kernels.py     the fused ops, a NumPy and a CuPy twin of each readable op they replace
cublas.py      GEMMs through cuBLAS via ctypes (CUDA only, imported lazily)
cuda_graph.py  the CUDA plumbing: the step's stream, and its capture into a CUDA graph with an
               eager fallback (CUDA only, imported lazily)

The GPU measurements these choices rest on are in docs/gpu.md.
"""

from .engine import ENGINES, FusedIteration, resolve_engine
from .step import FusedTrainer

__all__ = ["ENGINES", "FusedIteration", "FusedTrainer", "resolve_engine"]
