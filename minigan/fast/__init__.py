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


# TEMPORARY stand-in for the engine API that the `fast` branch provides (replaced on merge).
def resolve_engine(requested, device, config_name, update):
    if requested == "auto":
        return "fused" if device != "cpu" and config_name == "reference" and update == "alternating" else "autograd"
    if requested == "fused" and (config_name != "reference" or update != "alternating"):
        raise ValueError("--engine fused supports the reference config with the alternating update only")
    return requested


class FusedIteration:
    def __init__(self, G, D, opt_G, opt_D, k, loss, graph=True, tf32=False):
        self.trainer = FusedTrainer(G, D, k=k, loss_kind=loss, lr=opt_G.lr, betas=opt_G.betas, eps=opt_G.eps, tf32=tf32)
        self.trainer.load_optimizer_states(opt_G, opt_D)
        self.opt_G, self.opt_D = opt_G, opt_D

    def __call__(self, G, D, opt_G, opt_D, sample_data, sample_noise_batch, k, loss):
        xs, zs = [], []
        for _ in range(k):
            zs.append(sample_noise_batch().data)
            xs.append(sample_data().data)
        zs.append(sample_noise_batch().data)
        return self.trainer.iteration(xs, zs)

    def sync(self):
        self.trainer.copy_to_modules(self.opt_G, self.opt_D)
