"""Optimizers: SGD with classical momentum, and Adam with torch.optim.Adam's update.

Updates are in place on each parameter's `.data`, and the learning rate and momentum are plain
attributes that may change between steps (the paper's schedule does this). As in torch, a step
passes over a parameter whose `.grad` is None: its state, step count included, stays as it was.

Hyperparameters are checked, with torch's one-line messages ("Invalid learning rate: -0.1"), when
an optimizer is made and when a state dict is loaded; a plain `opt.lr = ...` between steps is not
checked, so that the schedule's per-step assignments cost nothing. The checks are at the bottom.

`state_dict()` is a flat dict of NumPy arrays, so it fits in an .npz checkpoint with no pickle.
"""

from __future__ import annotations

import math

import numpy as np

from . import backend
from .tensor import Tensor


class Optimizer:
    hyperparameters: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()  # per-parameter state, one array per parameter

    def __init__(self, params):
        self.params = _parameter_list(type(self).__name__, params)
        self.state = {name: [None] * len(self.params) for name in self.buffers}
        # How many updates each parameter has had (torch's state[p]["step"]): Adam's t.
        self.step_counts = [0] * len(self.params)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.step_counts[i] += 1
                self._update(i, p)

    def _update(self, i, p) -> None:
        raise NotImplementedError

    def _buffer(self, name, i, p):
        """Per-parameter state, created as zeros like the parameter on first use."""
        if self.state[name][i] is None:
            self.state[name][i] = backend.array_module(p.data).zeros_like(p.data)
        return self.state[name][i]

    def step_count(self) -> int:
        """The step count all parameters share, for a trainer that keeps one count for all of them
        (minigan.fast); a ValueError if they differ."""
        counts = sorted(set(self.step_counts))
        if len(counts) != 1:
            raise ValueError(f"{type(self).__name__}: the parameters have different step counts {counts}; "
                             f"one shared count cannot stand for them")
        return counts[0]

    def set_step_count(self, t: int) -> None:
        """Give every parameter the step count `t` (the counterpart of step_count)."""
        self.step_counts = [int(t)] * len(self.params)

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {name: np.asarray(getattr(self, name)) for name in self.hyperparameters}
        for i, count in enumerate(self.step_counts):
            state[f"step.{i}"] = np.asarray(count, dtype=np.int64)
        for name in self.buffers:
            for i, value in enumerate(self.state[name]):
                if value is not None:
                    state[f"{name}.{i}"] = backend.to_numpy(value).copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Take the hyperparameters, step counts and buffers from `state`, every one checked first,
        so that a refused state changes nothing."""
        hyperparameters, step_counts, buffers = _checked_state(self, state)
        vars(self).update(hyperparameters)
        self.step_counts = step_counts
        self.state = {name: [None] * len(self.params) for name in self.buffers}
        for (name, i), value in buffers.items():
            p = self.params[i]
            self.state[name][i] = backend.array_module(p.data).asarray(value, dtype=p.dtype).copy()

    @staticmethod
    def _checked(**hyperparameters) -> dict:
        """The hyperparameters as floats, or a ValueError naming the first that is out of range."""
        raise NotImplementedError


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
        beta1, beta2 = self.betas
        t, g = self.step_counts[i], p.grad
        m, v = self._buffer("exp_avg", i, p), self._buffer("exp_avg_sq", i, p)
        xp = backend.array_module(p.data)
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * (g * g)
        # p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε), built up in one scratch array: each
        # temporary would be another pass over memory. math.sqrt keeps the bias corrections Python
        # floats (a NumPy float64 would promote float32).
        step = xp.sqrt(v)
        step /= math.sqrt(1 - beta2 ** t)
        step += self.eps
        xp.divide(m, step, out=step)
        step *= self.lr / (1 - beta1 ** t)
        p.data -= step


# --- argument checks: the hyperparameters, the parameter list, a loaded state ---------------------


def _number(what: str, value) -> float:
    """`value` as a float, or a TypeError: float("0.1") would take a string without a word."""
    if not isinstance(value, (str, bytes)):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"Invalid {what}: {value!r} is not a number")


def _non_negative(what: str, value) -> float:
    """`value` as a float, or a ValueError if it is negative, NaN or infinite."""
    number = _number(what, value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"Invalid {what}: {value}")
    return number


def _betas(betas) -> tuple[float, float]:
    try:
        pair = () if isinstance(betas, (str, bytes)) else tuple(betas)
    except TypeError:  # a number
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas}")
    for i, beta in enumerate(pair):
        if not 0 <= _number(f"beta parameter at index {i}", beta) < 1:  # also false for NaN
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    return float(pair[0]), float(pair[1])


def _parameter_list(optimizer: str, params) -> list[Tensor]:
    """`params` as a list of distinct leaf Tensors, or one line that names what is wrong with it."""
    if isinstance(params, Tensor):
        raise TypeError(f"{optimizer}: params must be an iterable of Tensors, got one Tensor; pass [tensor]")
    if callable(getattr(params, "parameters", None)):  # a Module: Adam(model) for Adam(model.parameters())
        raise TypeError(f"{optimizer}: got a {type(params).__name__} module; pass module.parameters()")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{optimizer}: params must be an iterable of Tensors, got {type(params).__name__}") from None
    if not params:
        raise ValueError(f"{optimizer}: got an empty parameter list")
    first_seen = {}
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{optimizer}: optimizer can only optimize Tensors, but parameter {i} is a "
                            f"{type(p).__name__}")
        if not p.is_leaf:  # its .grad is never filled, so it would silently never move
            raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i} was computed by {p._op})")
        if id(p) in first_seen:
            raise ValueError(f"{optimizer}: parameter {i} is the same tensor as parameter {first_seen[id(p)]}; "
                             f"it would be stepped twice")
        first_seen[id(p)] = i
    return params


def _state_arrays(optimizer: str, state) -> dict:
    """`state` as a dict of arrays: a Tensor value (torch's state dicts hold tensors) gives its data."""
    if not hasattr(state, "keys"):
        raise TypeError(f"{optimizer}.load_state_dict: expected a dict of arrays by name, got {type(state).__name__}")
    return {key: value.data if isinstance(value, Tensor) else value for key, value in state.items()}


def _step_count(optimizer: str, key: str, value) -> int:
    """A stored step count as an int, or a ValueError: it must be an integer ≥ 0."""
    value = backend.to_numpy(value)
    if value.shape != () or value.dtype.kind not in "iu" or value < 0:
        raise ValueError(f"{optimizer}.load_state_dict: {key} must be an integer ≥ 0, "
                         f"got {value.dtype} {value.tolist()}")
    return int(value)


def _checked_state(optimizer: Optimizer, state) -> tuple[dict, list[int], dict]:
    """What load_state_dict sets, from a state dict: the hyperparameters (checked as the
    constructor checks them), one step count per parameter, and the buffers by (name, index) as
    host arrays; or one line naming the first key that is missing, unexpected or wrong.

    A state dict written before per-parameter counts holds one `steps`, the number of step()
    calls: a parameter that has buffers takes it (it was updated at every one of those steps), one
    without buffers never was updated."""
    kind, n = type(optimizer).__name__, len(optimizer.params)
    state = _state_arrays(kind, state)
    buffer_keys = {f"{name}.{i}": (name, i) for name in optimizer.buffers for i in range(n)}
    if "steps" in state and not any(f"step.{i}" in state for i in range(n)):
        steps = state.pop("steps")
        stepped = {i for key, (_, i) in buffer_keys.items() if key in state}
        state.update({f"step.{i}": steps if i in stepped else np.asarray(0) for i in range(n)})
    known = set(optimizer.hyperparameters) | {f"step.{i}" for i in range(n)}
    unexpected = [k for k in state if k not in known and k not in buffer_keys]
    missing = [k for k in known if k not in state]
    if missing or unexpected:
        raise ValueError(f"{kind}.load_state_dict: missing {missing}, unexpected {unexpected}")
    buffers = {}
    for key, (name, i) in buffer_keys.items():
        if key in state:
            if np.shape(state[key]) != optimizer.params[i].shape:
                raise ValueError(f"{kind}.load_state_dict: {key} has shape {np.shape(state[key])}, "
                                 f"parameter {i} has {optimizer.params[i].shape}")
            buffers[name, i] = backend.to_numpy(state[key])
    step_counts = [_step_count(kind, f"step.{i}", state[f"step.{i}"]) for i in range(n)]
    hyperparameters = {}
    for name in optimizer.hyperparameters:
        value = backend.to_numpy(state[name]).astype(np.float64)
        hyperparameters[name] = tuple(value.tolist()) if value.ndim else float(value)
    try:
        hyperparameters = optimizer._checked(**hyperparameters)
    except ValueError as err:
        raise ValueError(f"{kind}.load_state_dict: {err}") from None
    return hyperparameters, step_counts, buffers
