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


# --- a training run: both players, both optimizers, and the run's own state ---------------------

PLAYERS = ("G", "D", "opt_G", "opt_D")


def save_run(path, players: dict, meta: dict, arrays: dict, generators: dict) -> Path:
    """One atomic .npz: each player's state_dict under its name ("G.", "opt_D.", ...), the run's
    settings and position as "meta.*", any other arrays as given, and random generators as JSON."""
    state = {}
    for name, player in players.items():
        state.update(with_prefix(player.state_dict(), f"{name}."))
    state.update(with_prefix(meta, "meta."))
    state.update(arrays)
    state.update({f"rng.{name}": generator_state(rng) for name, rng in generators.items()})
    return save_checkpoint(path, state)


def load_run(path, required: tuple[str, ...], writer: str) -> dict[str, np.ndarray]:
    """A checkpoint that holds every key in `required` (else a one-line CheckpointError naming
    what is missing and that `writer` did not write it)."""
    path = Path(path)
    if path.is_dir():
        hint = f"; did you mean {path / 'checkpoint.npz'}?" if (path / "checkpoint.npz").is_file() else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a .npz file{hint}")
    run = load_checkpoint(path)
    missing = [key for key in required if key not in run]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: it was not written by {writer}")
    return run


def restore_players(run: dict, players: dict, path, model: str) -> None:
    """Load each player's state from `run`, or raise one line naming the mismatch with `model`."""
    try:
        for name, player in players.items():
            player.load_state_dict(split_prefix(run, f"{name}."))
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path} does not fit the {model} model: {error}") from None
