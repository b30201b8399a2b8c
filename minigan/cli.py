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
keeps its traceback. While `main` runs, stdout and stderr cannot fail on encoding (a symbol the
console lacks is spelled in ASCII), a failed write names the stream (`> /dev/full`), a closed pipe
(`| head -1`) ends the program quietly as Unix tools do, and a closed stream (`2>&-`) is a sink.

A script whose imports take seconds calls `interrupt_quietly_while_starting()` first, so that
Ctrl-C before `run_main` starts is one line too, not a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import backend
from .atomic import file_problem, name_problem
from .checkpoint import CheckpointError
from .data import MNISTError

# The failures a user can cause, as opposed to bugs. ValueError counts only when minigan raised it.
EXPECTED_ERRORS = (MNISTError, CheckpointError, backend.DeviceError, FloatingPointError, OSError, ValueError)
PACKAGE_DIR = Path(__file__).resolve().parent


# --- argparse types -------------------------------------------------------------------------------

def shown(text, limit: int = 40) -> str:
    """`text` for a message: as it is when short, else its start and its length (a 5,000-digit
    number is not echoed whole)."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit // 2]}... ({len(text)} characters)"


def _integer(text) -> int:
    if re.fullmatch(r"\s*[+-]?\d{40,}\s*", str(text)):  # past any count or seed here, and past int()'s limit
        raise argparse.ArgumentTypeError(f"must be an integer of a sensible size, got a "
                                         f"{len(str(text).strip().lstrip('+-'))}-digit number")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {shown(repr(text))}") from None


def positive_int(text) -> int:
    """An integer ≥ 1 (a batch size, a number of epochs or steps)."""
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {shown(text)}")
    return value


def nonnegative_int(text) -> int:
    """An integer ≥ 0 (a count that may be zero)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {shown(text)}")
    return value


def seed_int(text) -> int:
    """A seed NumPy accepts for default_rng and RandomState alike: 0 ≤ seed < 2**32."""
    value = _integer(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {shown(text)}")
    return value


def positive_float(text) -> float:
    """A finite number > 0 (a learning rate, a bandwidth)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {shown(repr(text))}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {shown(text)}")
    return value


def usable_device(parser: argparse.ArgumentParser, name: str):
    """`backend.usable_device(name)`, or one line and exit status 2 when it is unknown or this
    machine cannot run it (no CuPy, no GPU): argparse's usage block would only bury that line."""
    try:
        return backend.usable_device(name)
    except backend.DeviceError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")


# --- output paths, checked before any work ---------------------------------------------------------

def _existing_ancestor(path: Path) -> Path:
    """The nearest of `path`'s ancestors that exists (`path` itself is not looked at)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


def check_output_dir(path, what: str = "--out", names=("checkpoint.npz",)) -> Path:
    """Make sure `path` is, or can be made, a folder this process can write into; create it.

    Raises SystemExit("error: ...") with one line otherwise: a file in its place, a file among its
    parents, no permission, a read-only file system, a name too long for the file system (the
    folder's, or with one of `names`, the files to be written into it, the temporary name of an
    atomic write)."""
    path = Path(path)
    for name in names or ("x",):
        problem = name_problem(path / name)
        if problem:
            raise SystemExit(f"error: cannot write to {what} {shown(path, 80)}: {problem}")
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
    is a file, when the nearest existing folder above it is not writable, or when its name (with the
    atomic write's temporary name) is too long for the file system."""
    path = Path(path)
    if path.is_dir():
        raise SystemExit(f"error: {what} {path} is a folder; give a file name (e.g. {path / 'out'}...)")
    problem = name_problem(path)  # the temp file of the atomic write is 14 characters longer
    if problem:
        raise SystemExit(f"error: cannot write {what} {shown(path, 80)}: {problem}")
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
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _lock_fields(lock: Path) -> tuple[dict, str]:
    """(fields, text) of a lock file ("pid=12 host=h started=... boot=... start=..."); ({}, "")
    when it cannot be read. Older locks hold only pid, host and started."""
    try:
        text = lock.read_text().strip()
    except OSError:
        return {}, ""
    return dict(field.split("=", 1) for field in text.split() if "=" in field), text


def _lock_holder(lock: Path) -> tuple[int | None, str, str]:
    """(pid, host, text) from a lock file; pid None when the file is unreadable or not ours."""
    fields, text = _lock_fields(lock)
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


def _boot_id() -> str:
    """This boot's id ("" where the system has none): after a reboot the same pid is another process."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat), or "" where
    that cannot be read. A pid that is reused by another process gets another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()  # the command name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else ""


def _stale_because(fields: dict, pid: int) -> str | None:
    """Why the lock of `pid` (on this host) is stale, or None while its run may still hold it."""
    boot, start = fields.get("boot", "-"), fields.get("start", "-")  # "-": not known when the lock was made
    if boot != "-" and _boot_id() and boot != _boot_id():
        return f"was held by pid {pid} before this machine restarted"
    if not _alive(pid):
        return f"was held by pid {pid}, which is no longer running"
    if start != "-" and _process_start(pid) and start != _process_start(pid):
        return f"was held by pid {pid}, which now belongs to another process"
    return None


class FolderLock:
    """Holds an output folder for one run: FOLDER/.lock, made with O_CREAT|O_EXCL, holds the pid, host,
    boot id and process start time of its run, and is removed when the run ends however it ends (a
    `with` block).

    A second run into a held folder raises SystemExit with one line naming the holder and the lock
    file. A lock is stale, and taken over with one line that says so, when its run is gone: its pid no
    longer runs on this host, the machine or container restarted since (another boot id), or its pid
    now belongs to another process (another start time, as after a container restart, where the run
    was pid 1 and the next one is pid 1 again). A lock from another host cannot be checked and is
    never taken over.
    """

    def __init__(self, folder, what: str = "--out", stream=None):
        self.folder, self.what, self.stream = Path(folder), what, stream
        self.lock, self.mine = self.folder / LOCK_NAME, None

    def __enter__(self):
        for _ in range(3):  # a stale lock taken over, then perhaps a race with another run
            if self._create():
                return self
            fields, text = _lock_fields(self.lock)
            pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
            host = fields.get("host", "")
            if not text and not os.path.lexists(self.lock):
                continue  # released between our attempt and our look: try again
            if self.lock.is_symlink():
                raise SystemExit(self._not_a_lock())
            here = host == _host()
            stale = _stale_because(fields, pid) if pid is not None and here else None
            if stale:
                print(f"note: {self.what} {self.folder} {stale}; taking it over", file=self.stream or sys.stderr)
                if _lock_fields(self.lock)[1] == text:  # still that stale lock, not a newer one
                    self.lock.unlink(missing_ok=True)
                continue
            holder = f"pid {pid} on {host or 'an unknown host'}" if pid is not None else "an unknown process"
            raise SystemExit(f"error: {self.what} {self.folder} is in use by another run ({holder}; lock {self.lock}); "
                             f"wait for it to finish or choose another {self.what}; if no run is writing there, "
                             f"delete {self.lock}")
        raise SystemExit(f"error: could not take the lock {self.lock}: other runs keep taking it")

    def _not_a_lock(self) -> str:
        """The one line for a .lock that is a symbolic link (a run's lock is always a plain file)."""
        try:
            target = os.readlink(self.lock)
        except OSError:
            target = "?"
        problem = file_problem(self.lock)
        what = ("which loops back on itself" if problem and "loop" in problem else
                "which does not exist" if problem and "does not exist" in problem else "not a lock file")
        return (f"error: the lock file {self.lock} is a symbolic link to {target}, {what}; a run's lock is a plain "
                f"file: delete the link if no run is writing to {self.folder}")

    def _create(self) -> bool:
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise SystemExit(self._not_a_lock()) from None
            raise SystemExit(f"error: cannot write to {self.what} {self.folder}: {error.strerror or error}") from None
        self.mine = (f"pid={os.getpid()} host={_host()} started={time.strftime('%Y-%m-%dT%H:%M:%S%z')} "
                     f"boot={_boot_id() or '-'} start={_process_start(os.getpid()) or '-'}\n")
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
    expected only when minigan's own code raised it; any other exception keeps its traceback.

    While `main` runs, sys.stdout and sys.stderr are `SafeStream`s: a failed write to stdout is a
    StreamError naming it, reported in one line (exit status 1), or, for a closed pipe, ended
    quietly (exit status 141, as a program killed by SIGPIPE); a stderr that fails becomes a sink,
    so that a run whose terminal hung up still reaches its checkpoint."""
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here, KeyboardInterrupt below
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout, "stdout"), SafeStream(sys.stderr, "stderr", sink_on_error=True)
    try:
        try:
            status = main(argv)
            sys.stdout.flush()  # a full disk under a redirected stdout shows here, not at exit
            return status
        except KeyboardInterrupt:
            print(interrupted, file=sys.stderr)
            return 130
        except StreamError:
            raise
        except errors as error:
            if type(error) is ValueError and not _raised_by_minigan(error):
                raise
            print(f"error: {one_line(error)}", file=sys.stderr)
            return 1
    except StreamError as error:
        return _stream_failed(error)
    finally:
        sys.stdout, sys.stderr = saved


class StreamError(OSError):
    """Writing to stdout or stderr failed: a full disk, a closed pipe. `stream` names which one;
    `after` says what was done before (e.g. where the results were written)."""

    def __init__(self, code, reason, stream: str, after: str = ""):
        super().__init__(code, reason)
        self.stream, self.after = stream, after

    def __str__(self):
        return f"cannot write to {self.stream}: {self.strerror}" + (f"; {self.after}" if self.after else "")


# Spelled in ASCII on a console whose encoding lacks them; anything else becomes a \u escape.
ASCII_SPELLINGS = {"σ": "sigma", "±": "+/-", "‖": "||", "≥": ">=", "≤": "<=", "—": "-", "–": "-", "→": "->",
                   "×": "x", "…": "...", "≈": "~", "·": "*", "²": "^2", "√": "sqrt"}


def encodable(text: str, encoding: str | None) -> str:
    """`text` with every character that `encoding` cannot encode spelled in ASCII."""
    encoding = encoding or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    out = []
    for character in text:
        try:
            character.encode(encoding)
            out.append(character)
        except (UnicodeEncodeError, LookupError):
            out.append(ASCII_SPELLINGS.get(character) or character.encode("ascii", "backslashreplace").decode())
    return "".join(out)


class SafeStream:
    """A text stream whose writes cannot fail on encoding, and whose OSErrors are StreamErrors that
    name it. A closed stream (None, as under `2>&-`) is a sink. With `sink_on_error` (stderr: only
    progress and notes go there) a stream that fails (a hung-up terminal's EIO, a closed pipe, a
    full disk) becomes a sink instead, so that a run goes on to its next checkpoint."""

    def __init__(self, stream, name: str, sink_on_error: bool = False):
        self._stream = stream if stream is not None else open(os.devnull, "w")
        self.name, self.sink_on_error = name, sink_on_error

    def write(self, text):
        try:
            try:
                return self._stream.write(text)
            except UnicodeEncodeError:  # nothing was written: the whole text is encoded first
                return self._stream.write(encodable(text, getattr(self._stream, "encoding", None)))
        except StreamError:
            raise
        except OSError as error:
            return self._failed(error, len(text))

    def flush(self):
        try:
            return self._stream.flush()
        except OSError as error:
            return self._failed(error, None)

    def _failed(self, error: OSError, written):
        if not self.sink_on_error:
            raise StreamError(error.errno, error.strerror or str(error), self.name) from None
        self._stream = open(os.devnull, "w")
        return written

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _stream_failed(error: StreamError) -> int:
    """Point the failed stream at /dev/null (so that Python's own flush at exit does not fail again),
    say what failed on stderr where it can, and return the exit status."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "name", None) == error.stream:
            _silence(stream)
    if error.errno == errno.EPIPE and error.stream == "stdout":
        return 141  # the reader went away (| head): quiet, like any Unix tool killed by SIGPIPE
    if error.stream != "stderr":
        try:
            print(f"error: {error}", file=sys.stderr)
        except OSError:
            pass
    return 1


def _silence(stream) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):  # no file descriptor (a test's capture): nothing to do
        pass


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def interrupt_quietly_while_starting(message: str = "interrupted while starting") -> None:
    """Until `run_main` starts: Ctrl-C prints `message` and exits with status 130, instead of a
    KeyboardInterrupt traceback from deep inside an import. Call it first thing in a script (before
    its slow imports); `run_main` puts Python's own handler back. Left alone when SIGINT is ignored
    (a background job) or when not called from the main thread."""
    if not _in_main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    _interrupted_while_starting.message = message
    signal.signal(signal.SIGINT, _interrupted_while_starting)


def _interrupted_while_starting(signum, frame):
    try:
        print(_interrupted_while_starting.message, file=sys.stderr, flush=True)
    except (OSError, AttributeError):
        pass
    raise SystemExit(130)


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
