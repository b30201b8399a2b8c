"""Checkpoints: a flat dict of NumPy arrays in one .npz file, no pickle anywhere.

Written atomically (a temp file in the same folder, then a rename), so a crash or Ctrl-C while
saving never leaves a half-written checkpoint under the real name. Random generator states are
stored as JSON text in a string array, which np.load reads with allow_pickle=False.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


def save_checkpoint(path, arrays: dict) -> Path:
    """Write `arrays` (name → array or number) to `path` as .npz, atomically."""
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    for name, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"save_checkpoint: {name} is not a plain array (dtype object)")
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path) -> dict[str, np.ndarray]:
    """Read every array of a checkpoint into memory, or raise one-line CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a minigan .npz file ({error})") from None


def split_prefix(arrays: dict, prefix: str) -> dict:
    """{'G.0.weight': a, 'D.0.weight': b}, 'G.' → {'0.weight': a}."""
    return {name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)}


def with_prefix(arrays: dict, prefix: str) -> dict:
    return {prefix + name: value for name, value in arrays.items()}


def generator_state(rng: np.random.Generator) -> np.ndarray:
    return np.array(json.dumps(rng.bit_generator.state))


def restore_generator(state: np.ndarray) -> np.random.Generator:
    state = json.loads(str(state))
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
