"""The fast path: one fused training step for the `reference` GAN, NumPy or CuPy.

Nothing in the autograd (tensor.py, nn.py, optim.py, gan.py) depends on this package; it computes
the same maths as gan.train_iteration with optim.Adam, and tests/test_fast_*.py hold it to that.

    from minigan.fast import FusedTrainer

kernels.py   the fused ops, a NumPy and a CuPy version of each
step.py      FusedTrainer: flat buffers, the hand-derived forward and backward, Algorithm 1
cublas.py    GEMMs through cuBLAS via ctypes (CUDA only, imported lazily)
graph.py     capture of the whole step into a CUDA graph, with an eager fallback (CUDA only)
"""

from .step import FusedTrainer

__all__ = ["FusedTrainer"]
