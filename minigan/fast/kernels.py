"""The fused ops of the fast training step, each written twice: NumPy and CuPy, same maths.

Twins by design. Each op here computes what a readable function elsewhere computes, and exists
only to do it in fewer passes and with no allocation; read that function first, it is the
reference, and tests/test_fast_kernels.py holds each twin to it:

    bias_leaky_relu      h ← leaky_relu(h + b)            nn.Linear.forward, then Tensor.leaky_relu (tensor.py)
    bias_tanh            h ← tanh(h + b)                  nn.Linear.forward, then Tensor.tanh
    add_bias             h ← h + b                        nn.Linear.forward (D's logit layer)
    leaky_relu_backward  g ← g · (1 if y > 0 else slope)  the backward closure of Tensor.leaky_relu
    tanh_backward        g ← g · (1 − y²)                 the backward closure of Tensor.tanh
    bce_with_logits      loss and dloss/dlogit together   gan.discriminator_loss, gan.generator_loss (eq. 1-3)
    adam                 one Adam update of a flat buffer optim.Adam._update (torch's formula)
    column_sum           a bias gradient                  the bias part of tensor.affine's backward
    matmul               op(a) @ op(b) into a buffer      the GEMMs of tensor.affine (on CUDA: cublas.py)

Every function works in place on buffers it is given and returns nothing, so that a step on CUDA
allocates nothing (a CUDA graph replays fixed addresses); on NumPy only bce_with_logits makes a
few (n, 1) temporaries. The array module comes from the arguments: NumPy arrays take the NumPy
branch, written with `out=` so that nothing is promoted to float64 or copied; CuPy arrays take a
CuPy ElementwiseKernel or RawKernel, compiled on first use. CuPy is imported only on that branch.
"""

from __future__ import annotations

import math

import numpy as np

from .. import backend

# Layout of an Adam state's scalar array (float64, on the device). The step count lives here, not
# in Python, so that a captured CUDA graph reads the current count on every replay.
STEP, LR, BETA1, BETA2, EPS, STEP_SIZE, BIAS_CORRECTION2_SQRT = range(7)
ADAM_SCALARS = 7

# NumPy Adam works through the flat buffer in chunks that stay in cache across its 13 passes.
ADAM_CHUNK = 65536


def _on_gpu(array) -> bool:
    return backend.array_module(array) is not np


# --- forward: bias and activation ----------------------------------------------------------------


# NumPy's versions of the activation kernels need a temporary; they work through the batch in
# blocks of rows that fit it, at most this many elements (128 KB in float32), never a whole
# (batch, features) array (64 MB at B = 8192). Each block runs all of an op's passes (bias,
# activation, derivative) before the next, so that its rows are read from memory once and stay
# in the L2 cache across those passes (benchmarks/README.md has what that saves).
SCRATCH_ELEMENTS = 1 << 15


def _row_slices(n: int, cols: int, elements: int):
    """Slices covering rows 0..n of an (n, cols) array, each at most `elements` elements (≥ 1 row)."""
    step = max(1, min(n, elements // cols))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _row_blocks(a, scratch):
    """(rows, tmp) pairs covering a's rows, tmp a view of the flat `scratch` shaped like a[rows]."""
    n, cols = a.shape
    scratch = np.empty(min(a.size, SCRATCH_ELEMENTS), a.dtype) if scratch is None else scratch.reshape(-1)
    if scratch.size < cols:  # a layer wider than the scratch: one row at a time in a row of its own
        scratch = np.empty(cols, a.dtype)
    for rows in _row_slices(n, cols, min(scratch.size, SCRATCH_ELEMENTS)):
        yield rows, scratch[: (rows.stop - rows.start) * cols].reshape(-1, cols)


_slope_rows = {}


def _slope_row(slope: float, cols: int, dtype):
    """A (1, cols) row filled with `slope`, made once per (slope, cols, dtype) and kept.

    np.maximum against a row broadcast over a block runs NumPy's vectorised loop along each row;
    against the Python scalar it takes a loop about three times slower (NumPy 2.4).
    """
    key = (float(slope), int(cols), np.dtype(dtype))
    if key not in _slope_rows:
        _slope_rows[key] = np.full((1, cols), slope, dtype)
    return _slope_rows[key]


def bias_leaky_relu(h, bias, slope: float, scratch=None) -> None:
    """h ← leaky_relu(h + bias) in place; h is (n, features), bias (features,).
    Twin of nn.Linear.forward followed by Tensor.leaky_relu (tensor.py).

    NumPy computes it as max(h, slope·h), equal to where(h > 0, h, slope·h) for 0 < slope ≤ 1:
    the same trick as tensor.leaky_relu, where the measurement that justifies it is written.
    `scratch` (NumPy only) is a flat buffer (see _row_blocks).
    """
    if _on_gpu(h):
        _cuda().bias_leaky_relu(bias, float(slope), h)
        return
    for rows, tmp in _row_blocks(h, scratch):
        block = h[rows]
        np.add(block, bias, out=block)
        # A Python float slope keeps float32 data float32 (a NumPy float64 would promote it).
        np.multiply(block, float(slope), out=tmp)
        np.maximum(block, tmp, out=block)


def bias_tanh(h, bias) -> None:
    """h ← tanh(h + bias) in place. Twin of nn.Linear.forward followed by Tensor.tanh."""
    if _on_gpu(h):
        _cuda().bias_tanh(bias, h)
        return
    for rows in _row_slices(*h.shape, SCRATCH_ELEMENTS):
        block = h[rows]
        np.add(block, bias, out=block)
        np.tanh(block, out=block)


def add_bias(h, bias) -> None:
    """h ← h + bias in place. Twin of the bias half of nn.Linear.forward."""
    if _on_gpu(h):
        _cuda().add_bias(bias, h)
        return
    np.add(h, bias, out=h)


# --- backward: activations --------------------------------------------------------------------------


def leaky_relu_backward(grad, output, slope: float, scratch=None) -> None:
    """grad ← grad · leaky_relu'(x) in place, read from the output y = leaky_relu(x).
    Twin of the backward closure of Tensor.leaky_relu (tensor.py).

    y > 0 exactly when x > 0 (slope > 0), so the pre-activation need not be kept. NumPy builds
    the factor max([y > 0], slope), which is exactly 1 or slope, block by block in `scratch`.
    """
    if _on_gpu(grad):
        _cuda().leaky_relu_backward(output, float(slope), grad)
        return
    slope_row = _slope_row(slope, grad.shape[1], grad.dtype)
    for rows, tmp in _row_blocks(grad, scratch):
        np.greater(output[rows], 0, out=tmp)
        np.maximum(tmp, slope_row, out=tmp)
        np.multiply(grad[rows], tmp, out=grad[rows])


def tanh_backward(grad, output, scratch=None) -> None:
    """grad ← grad · (1 − y²) in place, y = tanh(x). Twin of the backward closure of Tensor.tanh.
    `scratch` (NumPy only) is a flat buffer (see _row_blocks)."""
    if _on_gpu(grad):
        _cuda().tanh_backward(output, grad)
        return
    for rows, tmp in _row_blocks(grad, scratch):
        np.multiply(output[rows], output[rows], out=tmp)
        np.subtract(1, tmp, out=tmp)
        np.multiply(grad[rows], tmp, out=grad[rows])


# --- the losses ------------------------------------------------------------------------------------


def bce_with_logits(logits, target, weight, grad, loss) -> None:
    """Every GAN loss at once: loss = Σ w·(softplus(l) − t·l), grad = dloss/dl = w·(σ(l) − t).
    Twin of gan.discriminator_loss and gan.generator_loss with their backward.

    With t = 1 a row contributes w·softplus(−l) = −w·log D(x); with t = 0, w·softplus(l) =
    −w·log(1 − D(x)). So D's loss (eq. 2, negated) is t = 1 for the real rows, t = 0 for the fake
    rows, w = 1/m on each half; G's non-saturating loss is t = 1, w = 1/m; eq. 3 is t = 0, w = −1/m.

    softplus(l) − t·l is written max(l, 0) − t·l + log1p(e^−|l|), and σ(l) − t as
    (1 − t)·σ(l) − t·σ(−l), both from the one e^−|l|: nothing overflows, and neither a t = 1 loss
    nor its gradient loses digits to cancellation when D is confident.

    logits, target, weight and grad are (n, 1); `loss` is a one-element array that receives the sum.
    """
    if _on_gpu(logits):
        _cuda().bce_with_logits(logits, target, weight, grad, loss)
        return
    e = np.exp(-np.abs(logits))
    inverse = 1 / (1 + e)
    positive = logits >= 0
    sigmoid = np.where(positive, inverse, e * inverse)  # σ(l)
    sigmoid_neg = np.where(positive, e * inverse, inverse)  # σ(−l) = 1 − σ(l), without the cancellation
    np.multiply(weight, (1 - target) * sigmoid - target * sigmoid_neg, out=grad)
    terms = weight * (np.maximum(logits, 0) - target * logits + np.log1p(e))
    loss[...] = terms.sum(dtype=np.float64)


# --- the optimizer -----------------------------------------------------------------------------------


def adam_scalars(xp, lr: float, betas, eps: float):
    """A fresh Adam scalar array (step 0) on the device of `xp`, in the layout of STEP ... above."""
    scalars = np.zeros(ADAM_SCALARS, dtype=np.float64)
    scalars[[LR, BETA1, BETA2, EPS]] = lr, betas[0], betas[1], eps
    return xp.asarray(scalars)


def adam(param, grad, exp_avg, exp_avg_sq, scalars, scratch=None) -> None:
    """One Adam step over flat buffers: the twin of optim.Adam._update, as torch.optim.Adam computes it:

        t ← t + 1;   m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
        p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + ε)

    The step count t and both bias corrections live in `scalars` (see adam_scalars) and are
    computed on the device, in float64, so that a CUDA graph never freezes them.
    `scratch` (NumPy only) is a buffer of at least ADAM_CHUNK elements.
    """
    if _on_gpu(param):
        _cuda().adam(scalars, param, grad, exp_avg, exp_avg_sq)
        return
    scalars[STEP] += 1
    t = int(scalars[STEP])
    # Python floats from here on, as optim.Adam has them: a NumPy float64 would promote float32.
    lr, beta1, beta2, eps = (float(scalars[i]) for i in (LR, BETA1, BETA2, EPS))
    step_size = lr / (1 - beta1 ** t)
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** t)
    scalars[STEP_SIZE], scalars[BIAS_CORRECTION2_SQRT] = step_size, bias_correction2_sqrt
    scratch = np.empty(ADAM_CHUNK, dtype=param.dtype) if scratch is None else scratch
    for start in range(0, param.size, ADAM_CHUNK):
        chunk = slice(start, start + ADAM_CHUNK)
        p, g, m, v = param[chunk], grad[chunk], exp_avg[chunk], exp_avg_sq[chunk]
        tmp = scratch[: p.size]
        # The same operations in the same order as optim.Adam, each one pass over the chunk.
        np.multiply(m, beta1, out=m)
        np.multiply(g, 1 - beta1, out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, beta2, out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, 1 - beta2, out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.divide(tmp, bias_correction2_sqrt, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, step_size, out=tmp)
        np.subtract(p, tmp, out=p)


# --- NumPy linear algebra (the CUDA versions are in cublas.py) --------------------------------------


def matmul(a, b, out, trans_a: bool = False, trans_b: bool = False) -> None:
    """out ← op(a) @ op(b), op transposing when asked; straight into `out` (BLAS, no temporary).
    Twin of the GEMMs in tensor.affine's forward and backward."""
    np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)


def column_sum(g, out) -> None:
    """out ← g summed over its rows: a bias gradient. Twin of g.sum(axis=0) in tensor.affine's backward."""
    np.sum(g, axis=0, out=out)


# --- the CUDA versions -----------------------------------------------------------------------------

_ELEMENTWISE = {
    # name: (in_params, out_params, body). Out params are references: read, then written in place.
    "bias_leaky_relu": ("T bias, T slope", "T h", "h = h + bias; if (!(h > (T)0)) h = h * slope;"),
    "bias_tanh": ("T bias", "T h", "h = tanh(h + bias);"),
    "add_bias": ("T bias", "T h", "h = h + bias;"),
    "leaky_relu_backward": ("T y, T slope", "T g", "if (!(y > (T)0)) g = g * slope;"),
    "tanh_backward": ("T y", "T g", "g = g * ((T)1 - y * y);"),
}

_ADAM_BODY = f"""
    const double beta1 = s[{BETA1}], beta2 = s[{BETA2}];
    m = (T)beta1 * m + (T)(1.0 - beta1) * g;
    v = (T)beta2 * v + (T)(1.0 - beta2) * (g * g);
    const T denom = sqrt(v) / (T)s[{BIAS_CORRECTION2_SQRT}] + (T)s[{EPS}];
    p = p - (T)s[{STEP_SIZE}] * (m / denom);
"""

_CUDA_SOURCE = f"""
// One thread: t += 1 and both bias corrections, in double, before the elementwise Adam update.
extern "C" __global__ void minigan_adam_prepare(double* s) {{
    s[{STEP}] += 1.0;
    const double t = s[{STEP}];
    s[{STEP_SIZE}] = s[{LR}] / (1.0 - pow(s[{BETA1}], t));
    s[{BIAS_CORRECTION2_SQRT}] = sqrt(1.0 - pow(s[{BETA2}], t));
}}

// One block: the loss terms and their gradient row by row, then a tree sum in shared memory.
// n is at most 2 × the batch size, so one block is plenty, and no second pass is needed.
template <typename T>
__device__ void bce_with_logits(const T* logits, const T* target, const T* weight,
                                T* grad, T* loss, int n) {{
    __shared__ double partial[256];
    double sum = 0.0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) {{
        const T l = logits[r], t = target[r], w = weight[r];
        const T e = exp(-fabs(l));
        const T inverse = (T)1 / ((T)1 + e);
        const T sigmoid = l >= (T)0 ? inverse : e * inverse;
        const T sigmoid_neg = l >= (T)0 ? e * inverse : inverse;
        grad[r] = w * (((T)1 - t) * sigmoid - t * sigmoid_neg);
        sum += (double)(w * (fmax(l, (T)0) - t * l + log1p(e)));
    }}
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {{
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }}
    if (threadIdx.x == 0) *loss = (T)partial[0];
}}

extern "C" __global__ void minigan_bce_with_logits_float32(
        const float* logits, const float* target, const float* weight, float* grad, float* loss, int n) {{
    bce_with_logits<float>(logits, target, weight, grad, loss, n);
}}

extern "C" __global__ void minigan_bce_with_logits_float64(
        const double* logits, const double* target, const double* weight, double* grad, double* loss, int n) {{
    bce_with_logits<double>(logits, target, weight, grad, loss, n);
}}
"""

_BCE_THREADS = 256  # must match the size of `partial` above


class _CudaKernels:
    """The CuPy kernels, built once per process on first use (each compiles on its first call)."""

    def __init__(self):
        import cupy

        self._cupy = cupy
        for name, (in_params, out_params, body) in _ELEMENTWISE.items():
            setattr(self, name, cupy.ElementwiseKernel(in_params, out_params, body, f"minigan_{name}"))
        self._adam = cupy.ElementwiseKernel("T g, raw float64 s", "T p, T m, T v", _ADAM_BODY, "minigan_adam")
        self._module = cupy.RawModule(code=_CUDA_SOURCE)
        self._functions = {}

    def _function(self, name):
        if name not in self._functions:
            self._functions[name] = self._module.get_function(name)
        return self._functions[name]

    def adam(self, scalars, param, grad, exp_avg, exp_avg_sq):
        self._function("minigan_adam_prepare")((1,), (1,), (scalars,))
        self._adam(grad, scalars, param, exp_avg, exp_avg_sq)

    def bce_with_logits(self, logits, target, weight, grad, loss):
        for array in (logits, target, weight, grad, loss):
            if not array.flags.c_contiguous:
                raise ValueError("bce_with_logits: the CUDA kernel needs C-contiguous buffers")
        name = f"minigan_bce_with_logits_{np.dtype(logits.dtype).name}"
        self._function(name)((1,), (_BCE_THREADS,), (logits, target, weight, grad, loss, np.int32(logits.size)))


_cuda_kernels = None


def _cuda() -> _CudaKernels:
    global _cuda_kernels
    if _cuda_kernels is None:
        _cuda_kernels = _CudaKernels()
    return _cuda_kernels
