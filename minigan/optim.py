"""Optimizers: SGD with classical momentum, and Adam with torch.optim.Adam's update.

Updates are in place on each parameter's `.data`, and the learning rate and momentum are plain
attributes that may change between steps (the paper's schedule does this).

Hyperparameters are checked, with torch's one-line messages ("Invalid learning rate: -0.1"), when
an optimizer is made and when a state dict is loaded; a plain `opt.lr = ...` between steps is not
checked, so that the schedule's per-step assignments cost nothing.

`state_dict()` is a flat dict of NumPy arrays, so it fits in an .npz checkpoint with no pickle.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend


def _non_negative(what: str, value) -> float:
    """`value` as a float, or a ValueError if it is negative, NaN or infinite."""
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"Invalid {what}: {value}")
    return number


def _betas(betas) -> tuple[float, float]:
    betas = tuple(betas)
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas}")
    for i, beta in enumerate(betas):
        if not 0 <= float(beta) < 1:  # also false for NaN
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    return float(betas[0]), float(betas[1])


class Optimizer:
    hyperparameters: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()  # per-parameter state, one array per parameter

    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        self.steps = 0
        self.state = {name: [None] * len(self.params) for name in self.buffers}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.steps += 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(i, p)

    def _update(self, i, p) -> None:
        raise NotImplementedError

    @staticmethod
    def _checked(**hyperparameters) -> dict:
        """The hyperparameters as floats, or a ValueError naming the first that is out of range."""
        raise NotImplementedError

    def _buffer(self, name, i, p):
        """Per-parameter state, created as zeros like the parameter on first use."""
        if self.state[name][i] is None:
            self.state[name][i] = backend.array_module(p.data).zeros_like(p.data)
        return self.state[name][i]

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {name: np.asarray(getattr(self, name)) for name in self.hyperparameters}
        state["steps"] = np.asarray(self.steps)
        for name in self.buffers:
            for i, value in enumerate(self.state[name]):
                if value is not None:
                    state[f"{name}.{i}"] = backend.to_numpy(value).copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        known = set(self.hyperparameters) | {"steps"}
        buffer_keys = {f"{name}.{i}": (name, i) for name in self.buffers for i in range(len(self.params))}
        unexpected = [k for k in state if k not in known and k not in buffer_keys]
        missing = [k for k in known if k not in state]
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing {missing}, unexpected {unexpected}")
        for key, (name, i) in buffer_keys.items():
            if key in state and np.shape(state[key]) != self.params[i].shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key} has shape "
                                 f"{np.shape(state[key])}, parameter {i} has {self.params[i].shape}")
        values = {}
        for name in self.hyperparameters:
            value = np.asarray(state[name], dtype=np.float64)
            values[name] = tuple(value.tolist()) if value.ndim else float(value)
        try:
            values = self._checked(**values)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}.load_state_dict: {err}") from None
        vars(self).update(values)
        self.steps = int(state["steps"])
        for name in self.buffers:
            self.state[name] = [None] * len(self.params)
        for key, (name, i) in buffer_keys.items():
            if key in state:
                p = self.params[i]
                xp = backend.array_module(p.data)
                self.state[name][i] = xp.asarray(backend.to_numpy(state[key]), dtype=p.dtype).copy()


class SGD(Optimizer):
    """Classical momentum: v ← m·v − lr·g;  p ← p + v."""

    hyperparameters = ("lr", "momentum")
    buffers = ("velocity",)

    def __init__(self, params, lr, momentum=0.0):
        checked = self._checked(lr=lr, momentum=momentum)  # before the parameters, as torch does
        super().__init__(params)
        self.lr, self.momentum = checked["lr"], checked["momentum"]

    @staticmethod
    def _checked(lr, momentum):
        return {"lr": _non_negative("learning rate", lr), "momentum": _non_negative("momentum value", momentum)}

    def _update(self, i, p):
        if self.momentum == 0:
            p.data -= self.lr * p.grad
            return
        v = self._buffer("velocity", i, p)
        v *= self.momentum
        v -= self.lr * p.grad
        p.data += v


class Adam(Optimizer):
    """Adam (Kingma & Ba), written the way torch.optim.Adam computes it:

        m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
        p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + ε)
    """

    hyperparameters = ("lr", "betas", "eps")
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        checked = self._checked(lr=lr, betas=betas, eps=eps)
        super().__init__(params)
        self.lr, self.betas, self.eps = checked["lr"], checked["betas"], checked["eps"]

    @staticmethod
    def _checked(lr, betas, eps):
        return {"lr": _non_negative("learning rate", lr), "betas": _betas(betas),
                "eps": _non_negative("epsilon value", eps)}

    def _update(self, i, p):
        m = self._buffer("exp_avg", i, p)
        v = self._buffer("exp_avg_sq", i, p)
        # math.sqrt keeps the bias corrections Python floats (a NumPy float64 would promote float32).
        step_size = self.lr / (1 - self.betas[0] ** self.steps)
        v_scale = math.sqrt(1 - self.betas[1] ** self.steps)
        arrays = (p.data, p.grad, m, v)
        if backend.array_module(p.data) is not np or not all(a.flags.c_contiguous for a in arrays):
            self._adam(*arrays, step_size, v_scale)
            return
        # On the CPU the same arithmetic runs a cache-sized block at a time: Adam is a dozen passes
        # over each array, and passes over a block that stays in cache cost far less.
        flat = [a.reshape(-1) for a in arrays]  # views: the arrays are contiguous
        for start in range(0, p.data.size, BLOCK):
            self._adam(*(a[start:start + BLOCK] for a in flat), step_size, v_scale)

    def _adam(self, p, g, m, v, step_size, v_scale):
        beta1, beta2 = self.betas
        xp = backend.array_module(p)
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        update = xp.sqrt(v)  # in place from here: one temporary instead of four
        update /= v_scale
        update += self.eps
        xp.divide(m, update, out=update)
        update *= step_size
        p -= update


BLOCK = 1 << 15  # Adam's elements per block on the CPU: 128 KB of float32, inside a core's L2 cache
