"""What every command-line entry point shares: argument types, output-path checks, one-line errors.

A mistake on the command line should cost one line that names it, before any work is done:

    p.add_argument("--epochs", type=cli.positive_int)
    p.add_argument("--seed", type=cli.seed_int)
    args = p.parse_args(argv)
    cli.check_output_dir(args.out)           # a file where a folder is wanted: one line, exit 1
    cli.warn_if_cores_busy()                 # one warning line when other work holds the cores
    ...
    if __name__ == "__main__":
        sys.exit(cli.run_main(main))         # expected failures: "error: ..." on stderr, exit 1

`run_main` turns the failures a user can cause (a missing or damaged MNIST or checkpoint, a
non-finite loss, an OSError such as a full disk, a ValueError raised by minigan's own checks) into
one line on stderr and exit status 1, and Ctrl-C into exit status 130. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .backend import DeviceError
from .checkpoint import CheckpointError
from .data import MNISTError

# The failures a user can cause, as opposed to bugs. ValueError counts only when minigan raised it.
EXPECTED_ERRORS = (MNISTError, CheckpointError, DeviceError, FloatingPointError, OSError, ValueError)
PACKAGE_DIR = Path(__file__).resolve().parent


# --- argparse types -------------------------------------------------------------------------------

def _integer(text) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_int(text) -> int:
    """An integer ≥ 1 (a batch size, a number of epochs or steps)."""
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text) -> int:
    """An integer ≥ 0 (a count that may be zero)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def seed_int(text) -> int:
    """A seed NumPy accepts for default_rng and RandomState alike: 0 ≤ seed < 2**32."""
    value = _integer(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text}")
    return value


def positive_float(text) -> float:
    """A finite number > 0 (a learning rate, a bandwidth)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


# --- output paths, checked before any work ---------------------------------------------------------

def _existing_ancestor(path: Path) -> Path:
    """The nearest of `path`'s ancestors that exists (`path` itself is not looked at)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


def check_output_dir(path, what: str = "--out") -> Path:
    """Make sure `path` is, or can be made, a folder this process can write into; create it.

    Raises SystemExit("error: ...") with one line otherwise: a file in its place, a file among its
    parents, no permission, a read-only file system."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SystemExit(f"error: {what} {path} is a file, not a folder")
    if path.is_symlink() and not path.exists():
        raise SystemExit(f"error: {what} {path} is a link to {os.readlink(path)}, which does not exist")
    ancestor = _existing_ancestor(path)
    if not path.exists() and not ancestor.is_dir():
        raise SystemExit(f"error: {what} {path} cannot be created: {ancestor} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as error:
        raise SystemExit(f"error: cannot write to {what} {path}: {error.strerror or error}") from None
    return path


def check_output_file(path, what: str = "--out") -> Path:
    """Make sure a file can be written at `path` later, without creating anything now.

    Raises SystemExit("error: ...") with one line when `path` is a folder, when one of its parents
    is a file, or when the nearest existing folder above it is not writable."""
    path = Path(path)
    if path.is_dir():
        raise SystemExit(f"error: {what} {path} is a folder; give a file name (e.g. {path / 'out'}...)")
    ancestor = path.parent if path.parent.exists() else _existing_ancestor(path)
    if not ancestor.is_dir():
        raise SystemExit(f"error: {what} {path} cannot be written: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SystemExit(f"error: cannot write {what} {path}: no permission to write in {ancestor}")
    if path.exists() and not os.access(path, os.W_OK):
        raise SystemExit(f"error: cannot write {what} {path}: the file is read-only")
    return path


# --- one run per output folder --------------------------------------------------------------------

LOCK_NAME = ".lock"


def _lock_holder(lock: Path) -> tuple[int | None, str, str]:
    """(pid, host, text) from a lock file; pid None when the file is unreadable or not ours."""
    try:
        text = lock.read_text().strip()
    except OSError:
        return None, "", ""
    fields = dict(field.split("=", 1) for field in text.split() if "=" in field)
    pid = fields.get("pid", "")
    return (int(pid) if pid.isdigit() else None), fields.get("host", ""), text


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class FolderLock:
    """Holds an output folder for one run: FOLDER/.lock, made with O_CREAT|O_EXCL, holds the pid and
    host of its run, and is removed when the run ends however it ends (a `with` block).

    A second run into a held folder raises SystemExit with one line naming the holder. A lock left
    by a run that died (its pid no longer runs on this host) is stale: it is taken over, with one
    line that says so. A lock from another host cannot be checked and is never taken over.
    """

    def __init__(self, folder, what: str = "--out", stream=None):
        self.folder, self.what, self.stream = Path(folder), what, stream
        self.lock, self.mine = self.folder / LOCK_NAME, None

    def __enter__(self):
        for _ in range(3):  # a stale lock taken over, then perhaps a race with another run
            if self._create():
                return self
            pid, host, text = _lock_holder(self.lock)
            if pid is None and not text and not self.lock.exists():
                continue  # released between our attempt and our look: try again
            here = host == _host()
            if pid is not None and here and pid != os.getpid() and not _alive(pid):
                print(f"note: {self.what} {self.folder} was held by pid {pid}, which is no longer running; "
                      f"taking it over", file=self.stream or sys.stderr)
                if _lock_holder(self.lock)[2] == text:  # still that stale lock, not a newer one
                    self.lock.unlink(missing_ok=True)
                continue
            holder = f"pid {pid} on {host or 'an unknown host'}" if pid is not None else "an unknown process"
            raise SystemExit(f"error: {self.what} {self.folder} is in use by another run ({holder}; lock {self.lock}); "
                             f"wait for it to finish or choose another {self.what}"
                             + ("" if here else f"; if no run is writing there, delete {self.lock}"))
        raise SystemExit(f"error: could not take the lock {self.lock}: other runs keep taking it")

    def _create(self) -> bool:
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as error:
            raise SystemExit(f"error: cannot write to {self.what} {self.folder}: {error.strerror or error}") from None
        self.mine = f"pid={os.getpid()} host={_host()} started={time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        with os.fdopen(fd, "w") as f:
            f.write(self.mine)
        return True

    def __exit__(self, *exc):
        # Remove the lock only if it is still ours (never one another run took over).
        if self.mine is not None and _lock_holder(self.lock)[2] == self.mine.strip():
            self.lock.unlink(missing_ok=True)
        self.mine = None


def _host() -> str:
    return socket.gethostname()


# --- one line per expected failure -----------------------------------------------------------------

def one_line(error: BaseException) -> str:
    """The error as one line: an OSError as its reason and file name, anything else as its message."""
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        where = f" ({error.filename})" if error.filename else ""
        return " ".join(f"{reason}{where}".split())
    return " ".join(str(error).split()) or type(error).__name__


def _raised_by_minigan(error: BaseException) -> bool:
    """Whether the innermost frame of `error`'s traceback is in the minigan package (its own check)."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE_DIR)


def run_main(main, argv=None, errors=EXPECTED_ERRORS,
             interrupted: str = "interrupted: quit before finishing") -> int:
    """`main(argv)`, with each expected failure turned into "error: <one line>" on stderr and exit
    status 1, and Ctrl-C into `interrupted` on stderr and exit status 130. A ValueError counts as
    expected only when minigan's own code raised it; any other exception keeps its traceback."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except errors as error:
        if type(error) is ValueError and not _raised_by_minigan(error):
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1


# --- a busy machine ---------------------------------------------------------------------------------

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _blas_threads(cores: int) -> int:
    """The threads the BLAS will start: the first thread variable set, else one per core."""
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return cores


def warn_if_cores_busy(stream=None) -> str | None:
    """Print one warning line when other work holds the cores the BLAS threads will want; return it.

    The 1-minute load average, less this process's own share, is the other work. When fewer cores
    are free than the BLAS will start threads, the threads wait on each other and a step can run
    several times slower. The line names the load and the fix, OMP_NUM_THREADS=1; thread counts are
    never changed here."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this system
        return None
    cores = _cores()
    threads = _blas_threads(cores)
    own = min(1.0, time.process_time() / 60)  # this process's part of a 1-minute average, at most one core
    others = max(0.0, load - own)
    if threads <= 1 or cores - others >= threads - 0.5:
        return None
    message = (f"warning: load average {load:.1f} on {cores} cores: other work leaves fewer than {threads} "
               f"free for the BLAS's {threads} threads, so steps may run several times slower; "
               f"run with OMP_NUM_THREADS=1 to avoid that")
    print(message, file=stream or sys.stderr)
    return message
