"""Layers: Module, Linear, Maxout, Dropout, activations, Sequential, and the BCE-with-logits loss.

A parameter is any Tensor attribute, frozen (requires_grad=False) or not, so that a frozen module
still lists, saves and loads all of them. Modules find their parameters by walking their attributes
in the order they were set, so `parameters()` lists each layer's weight before its bias, layer by
layer, as torch does; a layer used twice is listed once.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import backend, operands
from .operands import as_float_array
from .tensor import Tensor, affine


class Module:
    training = True

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, x)")

    def children(self):
        return [value for value in vars(self).values() if isinstance(value, Module)]

    def named_parameters(self, prefix=""):
        """(name, tensor) for every Tensor the module holds; a tensor reached twice (a layer used
        twice) is listed under its first name only, as in torch."""
        seen = set()
        for name, p in self._named_tensors(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_tensors(self, prefix=""):
        """Every Tensor attribute, under every name it is reachable by (what state_dict saves)."""
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value._named_tensors(prefix + name + ".")

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move every parameter to `device`, in place; returns self."""
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            p.grad = None
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Host copies of every parameter, by name."""
        return {name: p.numpy() for name, p in self._named_tensors()}

    def load_state_dict(self, state: dict) -> None:
        """Copy values into the parameters, after checking that names and shapes all match. A value
        may be an array or a Tensor (torch's state dicts hold tensors); either is copied."""
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict: expected a dict of arrays by name, got {type(state).__name__}")
        state = {name: value.data if isinstance(value, Tensor) else value for name, value in state.items()}
        own = dict(self._named_tensors())
        missing = [n for n in own if n not in state]
        unexpected = [n for n in state if n not in own]
        wrong_shape = [f"{n} {tuple(np.shape(state[n]))} vs {p.shape}" for n, p in own.items()
                       if n in state and tuple(np.shape(state[n])) != p.shape]
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected {', '.join(unexpected)}")
        if wrong_shape:
            problems.append(f"shape mismatch {', '.join(wrong_shape)}")
        if problems:
            raise ValueError(f"load_state_dict: {'; '.join(problems)}")
        for name, p in own.items():
            xp = backend.array_module(p.data)
            p.data = xp.asarray(backend.to_numpy(state[name]), dtype=p.dtype).copy()
            p.grad = None


def _check_size(layer: str, name: str, value) -> None:
    """A layer size must be a positive int: Linear(0, 5) would divide by zero in its init."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


def _check_float_dtype(layer: str, dtype) -> None:
    """Weights must be floats: an integer U(±1/√n) rounds to all zeros, and cannot take a gradient."""
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"{layer}: dtype must be a floating-point dtype (float32 or float64), got {np.dtype(dtype)}")


def _uniform(shape, bound, dtype, device):
    values = backend.generator("cpu").uniform(-bound, bound, size=shape).astype(dtype)
    return Tensor(backend.to_device(values, device), requires_grad=True)


class Linear(Module):
    """y = x @ W + b, with W of shape (in_features, out_features).

    Default initialisation is torch's, U(±1/sqrt(in_features)) for weight and bias. With
    `init_range=r` the weight is U(±r) and the bias zero, as in the paper's pylearn2 code.
    """

    def __init__(self, in_features, out_features, init_range=None, dtype=np.float32, device="cpu"):
        _check_size("Linear", "in_features", in_features)
        _check_size("Linear", "out_features", out_features)
        _check_float_dtype("Linear", dtype)
        if init_range is not None and not (math.isfinite(init_range) and init_range > 0):
            raise ValueError(f"Linear: init_range must be a positive number, got {init_range!r}")
        self.in_features, self.out_features = in_features, out_features
        if init_range is None:
            bound = 1 / math.sqrt(in_features)
            self.weight = _uniform((in_features, out_features), bound, dtype, device)
            self.bias = _uniform((out_features,), bound, dtype, device)
        else:
            self.weight = _uniform((in_features, out_features), init_range, dtype, device)
            self.bias = Tensor(backend.to_device(np.zeros(out_features, dtype), device), requires_grad=True)

    def forward(self, x):
        if not isinstance(x, Tensor):  # affine would take it as a constant, as in W + 1
            raise TypeError(f"Linear: input must be a Tensor, got {type(x).__name__}; wrap it: Tensor(x)")
        return affine(x, self.weight, self.bias)  # x @ weight + bias, as one op; it checks the shapes

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"


class Maxout(Module):
    """The paper's discriminator unit: each of `units` outputs is the max of `pieces` linear pieces.

    The pieces of one unit are adjacent columns of the affine output, as in pylearn2.
    """

    def __init__(self, in_features, units, pieces, init_range=None, dtype=np.float32, device="cpu"):
        _check_size("Maxout", "in_features", in_features)
        _check_size("Maxout", "units", units)
        _check_size("Maxout", "pieces", pieces)
        _check_float_dtype("Maxout", dtype)
        self.units, self.pieces = units, pieces
        self.linear = Linear(in_features, units * pieces, init_range, dtype, device)

    def forward(self, x):
        z = self.linear(x)
        return z.reshape(x.shape[0], self.units, self.pieces).max(axis=2)

    def __repr__(self):
        return f"Maxout({self.linear.in_features}, {self.units}, pieces={self.pieces})"


class Dropout(Module):
    """Zero each input with probability p in training, scaling survivors by 1/(1-p) (inverted
    dropout), so that evaluation needs no rescaling and is the identity.

    The masks come from the CPU generator on every device, as the initial weights do: a run draws
    the same masks on a GPU as on the CPU, and a checkpoint (which keeps the CPU generator's state)
    resumes them exactly. CuPy's generators have no state that can be saved."""

    def __init__(self, p=0.5):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = backend.generator("cpu").random(x.shape, dtype=np.float32) >= self.p
        xp = backend.array_module(x.data)
        mask = xp.asarray(keep, dtype=x.dtype) * (1 / (1 - self.p))
        return x * mask  # a constant operand: no copy of the mask, no gradient to it

    def __repr__(self):
        return f"Dropout(p={self.p})"


class LeakyReLU(Module):
    def __init__(self, slope=0.01):
        # float("0.2") would take a string without a word; torch names this argument negative_slope.
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got {type(slope).__name__} {slope!r}")
        self.slope = slope

    def forward(self, x):
        return x.leaky_relu(self.slope)

    def __repr__(self):
        return f"LeakyReLU({self.slope})"


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sequential(Module):
    """Layers applied in order; their parameters are named "0.weight", "0.bias", "2.weight"...."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if isinstance(layer, type) and issubclass(layer, Module):
                raise TypeError(f"Sequential: layer {i} is the class {layer.__name__}, not a Module; "
                                f"did you mean {layer.__name__}()?")
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def __iter__(self):
        return iter(self.children())

    def __getitem__(self, i):
        return self.children()[i]

    def __len__(self):
        return len(self.children())

    def forward(self, x):
        for layer in self:
            x = layer(x)
        return x

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self))
        return f"Sequential(\n{inner}\n)"


def binary_cross_entropy_with_logits(logits: Tensor, target) -> Tensor:
    """Mean of −[t·log σ(x) + (1−t)·log(1−σ(x))], written as t·softplus(−x) + (1−t)·softplus(x).

    Softplus never takes the log of a sigmoid that rounded to 0 or 1, so the loss stays finite
    however confident the logits are; at an infinite logit it is the limit, 0 for a right answer
    and ∞ for a wrong one (torch's is NaN at some of those). `target` is a number, an array (taken
    in the logits' dtype: it is data, not an operand) or a Tensor, each value in [0, 1].
    """
    name = "binary_cross_entropy_with_logits"
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name}: logits must be a Tensor, got {type(logits).__name__}")
    if isinstance(target, numbers.Real):  # the GAN's 0 and 1: checked here, no array, no device sync
        if not 0 <= target <= 1:
            raise ValueError(f"{name}: target must lie in [0, 1], got {target}")
        # A hard label keeps one term: the other's weight is 0, and 0·softplus(±∞) would be NaN.
        if target == 1:
            return (-logits).softplus().mean()
        if target == 0:
            return logits.softplus().mean()
        return ((-logits).softplus() * target + logits.softplus() * (1 - target)).mean()
    if isinstance(target, Tensor):
        values = target.data
    else:
        target = values = as_float_array(operands.on_device_of(target, logits.data, name), logits.dtype, op=name)
    if values.shape and tuple(values.shape) != logits.shape:
        raise ValueError(f"{name}: logits {logits.shape} and target {tuple(values.shape)} differ")
    outside = ~((values >= 0) & (values <= 1))  # NaN is outside too
    if outside.any():
        raise ValueError(f"{name}: target must lie in [0, 1], got {float(values[outside].ravel()[0]):.6g}")
    if not values.shape:  # one target for every logit
        target = target * backend.array_module(values).ones(logits.shape, logits.dtype)
        values = target.data if isinstance(target, Tensor) else target
    # Each term only where its weight is nonzero, for the same reason as the hard labels above.
    real, fake = values > 0, values < 1
    total = ((-logits[real]).softplus() * target[real]).sum() + (logits[fake].softplus() * (1 - target)[fake]).sum()
    return total * (1 / logits.size)
