"""minigan: a from-scratch reverse-mode autograd on NumPy (CPU) or CuPy (CUDA), and the 2014
Goodfellow et al. GAN with Algorithm 1 written out on it."""

from . import backend, nn, optim
from .backend import DeviceError, manual_seed
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, concatenate, from_numpy, no_grad

__version__ = "0.1.0"

__all__ = [
    "Tensor", "from_numpy", "no_grad", "concatenate", "nn", "optim", "gradcheck", "GradcheckError",
    "backend", "manual_seed", "DeviceError",
]
