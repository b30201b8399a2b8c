"""Score an MNIST GAN checkpoint: Parzen log-likelihood (the paper's Table 1), FID, IS, coverage.

    python examples/evaluate.py runs/mnist-reference/checkpoint.npz

The same as `python -m minigan.evaluate`; the work is done in minigan/evaluate.py.
"""

import sys

from minigan.evaluate import run

if __name__ == "__main__":
    sys.exit(run())
