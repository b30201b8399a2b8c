"""Finite-difference checks of backward(), in float64.

The default check follows Chainer's `check_backward` and torch's fast gradcheck: pick a random
direction r for the inputs and a random weighting u of the outputs, then compare

    numeric  = (<u, f(x + εr)> − <u, f(x − εr)>) / 2ε      (two forward passes, any input size)
    analytic = Σ <grad_i, r_i>,   grad = backward of <u, f(x)>

Float64 because a central difference loses about half the mantissa: in float32 the difference
of two nearby losses is mostly rounding noise. `full=True` instead checks every coordinate of
every input (one pair of forward passes each), for tiny inputs.

The inputs are perturbed in place, so `fn` may also close over tensors it does not take as
arguments (a layer's weight, say) as long as they are listed in `inputs`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    pass


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, full=False, seed=0) -> bool:
    """Check the gradients of `fn(*inputs)` with respect to each tensor in `inputs`.

    Every input must be a float64 Tensor with requires_grad=True (one Tensor alone is taken as
    [it], as torch does). Returns True, or raises GradcheckError with the inputs, the direction and
    both values; a non-finite input, value or gradient is a failure too, since nothing can be compared.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if not inputs:
        raise ValueError("gradcheck: no inputs to check")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or t.dtype != np.float64 or not t.requires_grad:
            raise TypeError(f"gradcheck: input {i} must be a float64 Tensor with requires_grad=True")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: eps must be a positive finite number, got {eps!r}")
    for name, tolerance in (("atol", atol), ("rtol", rtol)):
        if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not tolerance >= 0:
            raise ValueError(f"gradcheck: {name} must be a non-negative number, got {tolerance!r}")
    for i, t in enumerate(inputs):
        _require_finite(f"input {i}", t.data)
    rng = np.random.default_rng(seed)
    device = inputs[0].device

    def random_like(shape):
        return backend.to_device(rng.standard_normal(shape), device)

    with no_grad():
        out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: the function must return a Tensor, got {type(out).__name__}; "
                        f"a float (from .item(), say) has no graph to differentiate")
    _require_finite("the function's output", out.data)
    out_shape = out.shape
    u = random_like(out_shape)

    def weighted_output():
        with no_grad():
            return float((fn(*inputs).data * u).sum())

    for t in inputs:
        t.grad = None
    fn(*inputs).backward(u)
    grads = [t.grad if t.grad is not None else backend.array_module(t.data).zeros_like(t.data) for t in inputs]

    if not full:
        directions = [random_like(t.shape) for t in inputs]
        numeric = _central_difference(weighted_output, inputs, directions, eps)
        analytic = sum(float((g * r).sum()) for g, r in zip(grads, directions))
        _require_finite_pair(inputs, directions, numeric, analytic)
        if abs(numeric - analytic) > atol + rtol * abs(numeric):
            raise GradcheckError(_report(inputs, directions, numeric, analytic))
        return True

    for i, t in enumerate(inputs):
        flat_grad = backend.to_numpy(grads[i]).ravel()
        for j in range(t.size):
            one_hot = np.zeros(t.size)
            one_hot[j] = 1.0
            directions = [backend.array_module(s.data).zeros_like(s.data) for s in inputs]
            directions[i] = backend.to_device(one_hot.reshape(t.shape), device)
            numeric = _central_difference(weighted_output, inputs, directions, eps)
            analytic = float(flat_grad[j])
            _require_finite_pair(inputs, directions, numeric, analytic, where=f"input {i}, element {j}")
            if abs(numeric - analytic) > atol + rtol * abs(numeric):
                raise GradcheckError(_report(inputs, directions, numeric, analytic, where=f"input {i}, element {j}"))
    return True


def _require_finite(what, array) -> None:
    """A GradcheckError naming the first nan or inf in `array`: with one, every comparison is False."""
    values = backend.to_numpy(array)
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        index = tuple(int(j) for j in bad[0])
        raise GradcheckError(f"gradcheck: {what} holds a non-finite value, {values[index]} at index {index}")


def _require_finite_pair(inputs, directions, numeric, analytic, where="random direction") -> None:
    if not (math.isfinite(numeric) and math.isfinite(analytic)):
        raise GradcheckError(_report(inputs, directions, numeric, analytic, where, "non-finite: "))


def _central_difference(weighted_output, inputs, directions, eps):
    # Through ._data, not .data: the original arrays are put back unchanged, so a graph built
    # before the check is not stale, and its backward must not be refused for a bumped version.
    originals = [t._data for t in inputs]
    try:
        for t, x, r in zip(inputs, originals, directions):
            t._data = x + eps * r
        plus = weighted_output()
        for t, x, r in zip(inputs, originals, directions):
            t._data = x - eps * r
        minus = weighted_output()
    finally:
        for t, x in zip(inputs, originals):
            t._data = x
    return (plus - minus) / (2 * eps)


def _report(inputs, directions, numeric, analytic, where="random direction", what=""):
    with np.printoptions(precision=4, threshold=20, edgeitems=3):
        lines = [f"gradcheck failed ({where}): {what}numeric {numeric!r} vs analytic {analytic!r} "
                 f"(difference {abs(numeric - analytic):.3g})"]
        for i, (t, r) in enumerate(zip(inputs, directions)):
            lines.append(f"  input {i} shape {t.shape}: {backend.to_numpy(t.data)}")
            lines.append(f"  direction {i}: {backend.to_numpy(r)}")
    return "\n".join(lines)
