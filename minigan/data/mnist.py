"""MNIST: find it on disk, download it when missing, check it, load it.

    images, labels = load_mnist("train")     # uint8 (60000, 28, 28), uint8 (60000,)

Lookup order: the `data_dir` argument (--data-dir), then $MINIGAN_DATA, then the copy shipped
in the checkout (<repo root>/data/mnist, when the package runs from a checkout that has it), then
the user cache (~/.cache/minigan/mnist, or $XDG_CACHE_HOME/minigan/mnist). The first directory
that holds the split's files wins; each file may be gzipped (NAME.gz) or raw (NAME). Only when
none does is the split downloaded, into `data_dir`, else $MINIGAN_DATA, else the user cache.
When the folder given (`data_dir`, else $MINIGAN_DATA) lacks the split and a later one has it,
a note on stderr names the folder used; a file given as the folder is an error.

Every file is checked on every load, by the length and SHA-256 of its *decompressed* content
(the .gz bytes vary with how a mirror compressed them; the IDX content does not). Anything that
goes wrong raises an `MNISTError` with a one-line message that says what to do about it.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes, file_problem
from .idx import (INFLATE_SLACK, IDX_DTYPES, IDXError, OversizedGzipError, TruncatedGzipError, decompress_idx,
                  describe_text, has_idx_magic, parse_idx)

# Decompressed length and SHA-256 of each file. Read at call time, so tests can swap in their own.
EXPECTED = {
    "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}

# Tried in order; each serves NAME.gz for the four names above.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

# The copy shipped in the repository: minigan/data/mnist.py -> <repo root>/data/mnist. Looked in
# only when it exists beside a pyproject.toml, so that an installed package never picks up some
# unrelated site-packages/data/mnist. Read at call time, so tests can point it elsewhere.
CHECKOUT_MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"

# MNIST's two IDX magic numbers, as big-endian uint32: uint8 with 1 dimension, uint8 with 3.
MAGIC_KINDS = {2049: "labels", 2051: "images"}

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MNISTError(Exception):
    """MNIST is missing, damaged or not what it should be; the message says which file and why."""


class _WrongKind(MNISTError):
    """A file that is not the MNIST file its name says: labels for images, an HTML page, ..."""


def load_mnist(split: str = "train", data_dir=None, download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The images, uint8 (N, 28, 28), and labels, uint8 (N,), of the "train" or "test" split.

    Looks in `search_dirs(data_dir)` in order; when none holds the split and `download` is
    true, downloads it into `data_dir`, else $MINIGAN_DATA, else the user cache.
    """
    names = _file_names(split)
    given, flag = (data_dir, "--data-dir") if data_dir else (os.environ.get("MINIGAN_DATA"), "MINIGAN_DATA")
    if given and Path(given).expanduser().exists() and not Path(given).expanduser().is_dir():
        raise MNISTError(f"{flag} {given} is a file, not a folder: give the folder that holds "
                         f"{', '.join(name + '.gz' for name in names)}")
    directory = find_mnist(data_dir, split)
    if given and directory is not None and directory != Path(given).expanduser():
        # Not silent: the folder given does not hold the split, and another one does.
        missing = [f"{name}.gz" for name in names if _file_in(Path(given).expanduser(), name) is None]
        state = "does not exist" if not Path(given).expanduser().exists() else f"lacks {', '.join(missing)}"
        print(f"note: {flag} {given} {state}; using the MNIST copy in {directory}", file=sys.stderr)
    if directory is None:
        directory = download_dir(data_dir)
        advice = (f"put {', '.join(name + '.gz' for name in names)} in {directory}, "
                  f"or pass --data-dir / set MINIGAN_DATA")
        if not download:
            raise MNISTError(f"MNIST not found and download=False: {advice}")
        try:
            download_mnist(directory, split=split)
        except MNISTError as err:
            raise MNISTError(f"MNIST not found and could not be downloaded ({err}): {advice}") from err

    images_path, labels_path = (_file_in(directory, name) for name in names)
    images, labels = _read_checked(images_path, names[0]), _read_checked(labels_path, names[1])
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MNISTError(f"{images_path} holds {images.dtype} of shape {images.shape}; "
                         f"MNIST images are uint8 of shape (N, 28, 28)")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise MNISTError(f"{labels_path} holds {labels.dtype} of shape {labels.shape}; "
                         f"MNIST labels are uint8 of shape (N,)")
    if len(images) != len(labels):
        raise MNISTError(f"MNIST {split} split in {directory} has {len(images)} images "
                         f"but {len(labels)} labels")
    return images, labels


def mnist_cache_dir() -> Path:
    """Where downloads go by default: $XDG_CACHE_HOME/minigan/mnist, else ~/.cache/minigan/mnist."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "minigan" / "mnist"


def checkout_mnist_dir() -> Path | None:
    """The MNIST copy shipped in the repository, if the package runs from a checkout that has it."""
    root = CHECKOUT_MNIST.parents[1]
    return CHECKOUT_MNIST if CHECKOUT_MNIST.is_dir() and (root / "pyproject.toml").is_file() else None


def search_dirs(data_dir=None) -> list[Path]:
    """The directories MNIST is looked for in, in order: `data_dir`, $MINIGAN_DATA, the checkout's
    data/mnist (only if it exists), the user cache."""
    candidates = [data_dir, os.environ.get("MINIGAN_DATA"), checkout_mnist_dir(), mnist_cache_dir()]
    return [Path(candidate).expanduser() for candidate in candidates if candidate]


def download_dir(data_dir=None) -> Path:
    """Where a missing split is downloaded to: `data_dir`, else $MINIGAN_DATA, else the user cache.

    Never the checkout's data/mnist: a download does not write into the repository.
    """
    for candidate in (data_dir, os.environ.get("MINIGAN_DATA")):
        if candidate:
            return Path(candidate).expanduser()
    return mnist_cache_dir()


def find_mnist(data_dir=None, split: str | None = None) -> Path | None:
    """The first of `search_dirs(data_dir)` that holds the files of `split` (None: both splits).

    This only checks that the files exist; `load_mnist` checks their content.
    """
    names = _file_names(split)
    for directory in search_dirs(data_dir):
        if all(_file_in(directory, name) for name in names):
            return directory
    return None


def download_mnist(dest_dir, mirrors=None, timeout: float = 30.0, split: str | None = None) -> Path:
    """Download the files of `split` (None: both) that `dest_dir` lacks; return `dest_dir`.

    Each file is tried on every mirror in turn (default `MIRRORS`), and is written under its
    final name only after its decompressed content matched `EXPECTED`: a failed, truncated or
    corrupt download never leaves a file that looks valid, and creates no folders (`dest_dir` is
    made only when the first checked file is written into it).
    """
    dest_dir = Path(dest_dir)
    mirrors = MIRRORS if mirrors is None else mirrors
    for name in _file_names(split):
        if _file_in(dest_dir, name) is None:
            _download_file(name, dest_dir, mirrors, timeout)
    return dest_dir


def _download_file(name: str, dest_dir: Path, mirrors, timeout: float) -> None:
    """Fetch NAME.gz from the first mirror that serves it intact, and store it in dest_dir."""
    filename = f"{name}.gz"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
            _check_content(data, name, source=url)
        except MNISTError as err:
            failures.append(str(err))
        except (OSError, http.client.HTTPException) as err:  # URLError and timeouts are OSErrors
            failures.append(f"{url}: {_short_reason(err)}")
        else:
            # Only the checked bytes ever reach the final name.
            try:
                atomic_write_bytes(dest_dir / filename, data)
            except OSError as err:
                raise MNISTError(f"cannot write {dest_dir / filename}: {err.strerror or err}") from err
            return
    raise MNISTError(f"could not download {filename}: {'; '.join(failures) or 'no mirrors given'}")


def _short_reason(err: Exception) -> str:
    """Why a download failed, in a few words: 'HTTP 404 Not Found', 'Connection refused', 'timed out'."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
    return " ".join(text.split())  # one line, whatever the exception said


def _read_checked(path: Path, name: str) -> np.ndarray:
    """The array in the MNIST file `name` at `path`, after checking its content against EXPECTED."""
    problem = file_problem(path)  # a FIFO would block the read below; a device would never end
    if problem:
        raise MNISTError(f"MNIST file {path} {problem}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MNISTError(f"cannot read {path}: {err.strerror or err}") from err
    try:
        content = _check_content(data, name, source=str(path))
    except _WrongKind:
        raise  # the wrong file in the right place: the message says all there is to say
    except MNISTError as err:
        # A damaged local file is best fixed by fetching it again, which load_mnist does once it is gone.
        raise MNISTError(f"{err}; delete it and retry") from err
    try:
        return parse_idx(content, str(path))
    except IDXError as err:  # only if EXPECTED describes a file that is not IDX
        raise MNISTError(str(err)) from err


def _check_content(data: bytes, name: str, source: str) -> bytes:
    """The decompressed content of `data`, once its length and SHA-256 match EXPECTED[name].

    `source` (a path or a URL) names the file in error messages.
    """
    expected_size, expected_sha256 = EXPECTED[name]
    try:
        # Inflating stops a little past the expected size: a gzip bomb costs no more memory than MNIST.
        content = decompress_idx(data, source, limit=expected_size + INFLATE_SLACK)
    except OversizedGzipError as err:
        raise MNISTError(f"MNIST file {source} is too long: expected {expected_size} bytes after decompression, "
                         f"got more than {err.limit} (inflating stopped there)") from err
    except TruncatedGzipError as err:
        raise MNISTError(f"MNIST file {source} is truncated: expected {expected_size} bytes "
                         f"after decompression, got {err.decompressed_bytes}") from err
    except IDXError as err:
        raise MNISTError(f"MNIST file {err}") from err
    _check_kind(content, name, source)
    _check_count(content, name, source)
    if len(content) != expected_size:
        problem = "truncated" if len(content) < expected_size else "too long"
        raise MNISTError(f"MNIST file {source} is {problem}: expected {expected_size} bytes "
                         f"after decompression, got {len(content)}")
    sha256 = hashlib.sha256(content).hexdigest()
    if sha256 != expected_sha256:
        raise MNISTError(f"checksum mismatch for {source}: expected SHA-256 {expected_sha256}, got {sha256}")
    return content


def _check_kind(content: bytes, name: str, source: str) -> None:
    """Say plainly when `content` is not the kind of file `name` is: a labels file under an images
    name, an HTML error page, anything that is not IDX. Content shorter than a magic number is
    left to the length check, which calls it truncated."""
    if len(content) < 4:
        return
    wanted = "images" if "-images-" in name else "labels"
    if has_idx_magic(content):
        magic = int.from_bytes(content[:4], "big")
        kind = MAGIC_KINDS.get(magic)
        if kind == wanted:
            return
        held = (f"an IDX {kind} file" if kind else
                f"an IDX file of {IDX_DTYPES[content[2]].name} with {content[3]} dimensions")
        raise _WrongKind(f"MNIST file {source} holds {held} (magic {magic}), not {wanted}")
    text = describe_text(content)
    reason = text or f"starts with bytes {content[:4].hex(' ')} — not an IDX file"
    raise _WrongKind(f"MNIST file {source} {reason}")


def _expected_count(name: str, content: bytes) -> int | None:
    """How many items (images or labels) the file `name` holds, from its EXPECTED size and the
    per-item size that `content`'s IDX header gives; None when the header is too short to say."""
    ndim = content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        return None
    item = IDX_DTYPES[content[2]].itemsize * math.prod(np.frombuffer(content, ">u4", count=ndim - 1, offset=8).tolist())
    return (EXPECTED[name][0] - header) // item if item else None


def _check_count(content: bytes, name: str, source: str) -> None:
    """Say so when the IDX header's item count is not the count `name` promises (60000 for train,
    10000 for t10k): most often the train and test files swapped, which the length check would
    call truncated."""
    if len(content) < 8:
        return
    count = int.from_bytes(content[4:8], "big")
    expected = _expected_count(name, content)
    if expected is None or count == expected:
        return
    kind = "images" if "-images-" in name else "labels"
    split, other = ("train", "t10k") if name.startswith("train") else ("t10k", "train")
    other_name = name.replace(split, other, 1)
    swapped = other_name in EXPECTED and count == _expected_count(other_name, content)
    why = (f"it holds the {other} file's {count} {kind}: are the train and test files swapped?" if swapped else
           f"its header says {count} {kind}")
    raise _WrongKind(f"MNIST file {source} should hold the {split} split's {expected} {kind}, but {why}")


def _file_names(split: str | None) -> tuple[str, ...]:
    """The file names (without .gz) of one split, or of both when `split` is None."""
    if split is None:
        return SPLIT_FILES["train"] + SPLIT_FILES["test"]
    if split not in SPLIT_FILES:
        raise MNISTError(f"unknown MNIST split {split!r}: use 'train' or 'test'")
    return SPLIT_FILES[split]


def _file_in(directory: Path, name: str) -> Path | None:
    """NAME.gz or raw NAME in `directory`, whichever exists (the .gz first), else None.

    Anything under the name counts, a FIFO or a broken link too: loading it then says what it is,
    rather than calling the file missing."""
    for path in (directory / f"{name}.gz", directory / name):
        if os.path.lexists(path) and not path.is_dir():
            return path
    return None
