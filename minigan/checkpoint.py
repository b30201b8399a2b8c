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

from .atomic import atomic_write, file_problem


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
    if path.is_dir():
        hint = f"; did you mean {path / 'checkpoint.npz'}?" if (path / "checkpoint.npz").is_file() else ""
        raise CheckpointError(f"checkpoint {path} is a folder, not a .npz file{hint}")
    problem = file_problem(path)  # a FIFO or a device would block the open below, or never end
    if problem:
        raise CheckpointError(f"checkpoint {path} {problem}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    not_npz = _not_npz(head)
    if not_npz:
        raise CheckpointError(f"checkpoint {path} {not_npz}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as error:
        if "allow_pickle" in str(error):  # an array of Python objects inside the archive
            raise CheckpointError(f"checkpoint {path} holds an array of Python objects; a minigan checkpoint "
                                  f"holds plain number and text arrays only") from None
        raise CheckpointError(f"checkpoint {path} is corrupt: {' '.join(str(error).split())}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as error:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt: not a complete .npz archive "
                              f"({' '.join(str(error).split())})") from None


def _not_npz(head: bytes) -> str | None:
    """What a file that starts with `head` is, when that is plainly not a .npz (zip) archive; else None.

    np.load would take any such file for a pickle and say so; the first bytes say better."""
    if head.startswith(b"PK"):
        return None
    if not head:
        return "is empty, not a .npz file"
    kinds = {b"\x93NUMPY": "a single .npy array", b"\x89PNG": "a PNG image", b"\x1f\x8b": "a gzip file"}
    for magic, kind in kinds.items():
        if head.startswith(magic):
            return f"is {kind}, not a .npz file"
    if all(32 <= byte < 127 or byte in b"\t\n\r" for byte in head):
        return f"is a text file (it starts with {head.decode('ascii').strip()[:8]!r}), not a .npz file"
    return f"is not a .npz file (it starts with bytes {head[:4].hex(' ')})"


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
    settings and position as "meta.*", any other arrays as given, and random generators as JSON.

    Refuses (CheckpointError, nothing written) when a player's state holds NaN or infinity, so that a
    diverged run never replaces the last good checkpoint."""
    state = {}
    for name, player in players.items():
        state.update(with_prefix(player.state_dict(), f"{name}."))
    check_finite(state, path)
    state.update(with_prefix(meta, "meta."))
    state.update(arrays)
    state.update({f"rng.{name}": generator_state(rng) for name, rng in generators.items()})
    return save_checkpoint(path, state)


def check_finite(arrays: dict, path=None) -> None:
    """Raise CheckpointError naming the first key whose floating-point array holds NaN or infinity
    (weights, optimizer moments); other arrays are not looked at."""
    for key, value in arrays.items():
        value = np.asarray(value)  # a CuPy array is converted by state_dict already
        if value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            where = f"not saved to {path}" if path is not None else "not saved"
            raise CheckpointError(f"{key} holds {bad} NaN or infinite value(s): the run diverged; {where}, "
                                  f"so the last good checkpoint is kept")


def load_run(path, required: tuple[str, ...], writer: str) -> dict[str, np.ndarray]:
    """A checkpoint that holds every key in `required` (else a one-line CheckpointError naming
    what is missing and that `writer` did not write it)."""
    run = load_checkpoint(path)
    missing = [key for key in required if key not in run]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}: it was not written by {writer}")
    return run


# --- reading values back: each one checked before use, or one line naming its key ---------------

def _describe(value: np.ndarray) -> str:
    """'int64 -4', "<U3 'ten'", 'int64 of shape (2,)': a value read back, for a message."""
    return f"{value.dtype} {value.item()!r}" if value.shape == () else f"{value.dtype} of shape {value.shape}"


def read_int(run: dict, key: str, path, low: int = 0, high: int | None = None, why: str = "") -> int:
    """run[key] as an int in [low, high) (high None: no upper bound), else CheckpointError; `why`
    says what the bound is, for the message."""
    value = np.asarray(run[key])
    if value.shape != () or value.dtype.kind not in "iu":
        raise CheckpointError(f"checkpoint {path}: {key} should be an integer, but holds {_describe(value)}")
    number = int(value)
    if number < low or (high is not None and number >= high):
        bounds = f"≥ {low}" if high is None else f"in [{low}, {high})"
        raise CheckpointError(f"checkpoint {path}: {key} = {number}, but it must be {bounds}{why and f' ({why})'}")
    return number


def read_choice(run: dict, key: str, path, choices) -> str:
    """run[key] as a string among `choices`, else CheckpointError."""
    value = np.asarray(run[key])
    if value.shape != () or value.dtype.kind != "U" or str(value) not in choices:
        held = repr(value.item()) if value.shape == () and value.dtype.kind == "U" else _describe(value)
        raise CheckpointError(f"checkpoint {path}: {key} is {held}; known: {', '.join(sorted(choices))}")
    return str(value)


def read_generator(run: dict, key: str, path) -> np.random.Generator:
    """The random generator stored under `key`, else CheckpointError."""
    try:
        return restore_generator(run[key])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"checkpoint {path}: {key} is not a random generator's state "
                              f"({type(error).__name__}: {' '.join(str(error).split())})") from None


def check_numbers(state: dict, expected: dict, prefix: str, path) -> None:
    """Each array of a player's `state` is a number array that `load_state_dict` can take as it is:
    where the player's own state (`expected`) holds integers (a step count), an integer ≥ 0; every
    other array floating point and finite. Shapes are left to `load_state_dict`."""
    for name, value in state.items():
        key, value = prefix + name, np.asarray(value)
        want = expected.get(name)
        if want is None and name == "steps":  # an older optimizer state: one step count for all parameters
            want = expected.get("step.0")
        if want is not None and np.asarray(want).dtype.kind in "iu":
            if value.dtype.kind not in "iu" or np.any(value < 0):
                raise CheckpointError(f"checkpoint {path}: {key} should be an integer ≥ 0, "
                                      f"but holds {_describe(value)}")
        elif value.dtype.kind != "f":
            raise CheckpointError(f"checkpoint {path}: {key} should be floating point, but holds {value.dtype}")
        elif not np.all(np.isfinite(value)):
            raise CheckpointError(f"checkpoint {path}: {key} holds NaN or infinite values; the run diverged, "
                                  f"resume from an earlier checkpoint")


def restore_players(run: dict, players: dict, path, model: str) -> None:
    """Load each player's state from `run`, or raise one line naming the mismatch with `model`:
    a missing or unexpected key, a shape, a dtype, a non-finite weight."""
    try:
        for name, player in players.items():
            state = split_prefix(run, f"{name}.")
            check_numbers(state, player.state_dict(), f"{name}.", path)
            player.load_state_dict(state)
    except ValueError as error:
        raise CheckpointError(f"checkpoint {path} does not fit the {model} model: {error}") from None
