"""Data for the GAN: MNIST (IDX files, lookup, download, checksums).

    from minigan.data import load_mnist
    images, labels = load_mnist("train")   # uint8 (60000, 28, 28), uint8 (60000,)
"""

from .idx import IDXError, read_idx, write_idx
from .mnist import (
    EXPECTED,
    MIRRORS,
    MNISTError,
    checkout_mnist_dir,
    download_dir,
    download_mnist,
    find_mnist,
    load_mnist,
    mnist_cache_dir,
    search_dirs,
)

__all__ = [
    "load_mnist", "find_mnist", "download_mnist", "search_dirs", "download_dir", "checkout_mnist_dir",
    "mnist_cache_dir",
    "MNISTError", "EXPECTED", "MIRRORS", "read_idx", "write_idx", "IDXError",
]
