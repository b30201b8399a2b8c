"""Files on disk: written so that nobody ever sees half of one, read only when they are plain files.

The content goes to a temp file in the same folder, which is then renamed over the real name.
A rename within one file system is atomic: the path holds either its old content or all of the
new, and a crash, a full disk or Ctrl-C leaves at worst a hidden .tmp file, never a short file
that looks valid. `remove_stale_temporaries` clears such leftovers of a killed save.

Before a file is opened for reading, `file_problem` says whether it is a plain file at all:
opening a FIFO blocks until someone writes into it, and a device never ends.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path

# The temp file of NAME is .NAME.<8 random characters>.tmp: 14 characters longer than NAME.
TEMP_PREFIX, TEMP_SUFFIX, TEMP_RANDOM = ".", ".tmp", 8
TEMP_EXTRA = len(TEMP_PREFIX) + 1 + TEMP_RANDOM + len(TEMP_SUFFIX)
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{%d}\.tmp" % TEMP_RANDOM)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write) -> Path:
    """Call `write(binary_file)` on a temp file beside `path`, then rename it into place."""
    path = Path(path)
    problem = name_problem(path)
    if problem:  # before `write` does its work
        raise OSError(errno.ENAMETOOLONG, problem, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def _name_max(folder: Path) -> int:
    """The longest file name the file system holding `folder` (or its nearest existing ancestor) takes."""
    for candidate in (folder, *folder.absolute().parents):
        try:
            return os.pathconf(candidate, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # not there yet, or no pathconf on this system
            continue
    return 255


def name_problem(path) -> str | None:
    """Why `atomic_write` cannot write `path` for the length of a name, else None: the file's own
    name, or its temp file's, longer than the file system takes (or a folder above it too long)."""
    path = Path(path)
    name_max = _name_max(path.parent)
    for part in path.parent.parts:
        if len(os.fsencode(part)) > name_max:
            return (f"the folder name {part[:24]}... is {len(os.fsencode(part))} bytes long; "
                    f"this file system takes {name_max}")
    length = len(os.fsencode(path.name))
    if length + TEMP_EXTRA > name_max:
        return (f"the file name {path.name[:24]}... is {length} bytes long; with the {TEMP_EXTRA} characters of its "
                f"temporary name while it is written, at most {name_max - TEMP_EXTRA} fit on this file system")
    return None


def remove_stale_temporaries(folder, names=("*",)) -> list[Path]:
    """Remove the temp files that an interrupted `atomic_write` of one of `names` (glob patterns,
    e.g. "checkpoint*.npz") left in `folder`, and return their paths (sorted).

    Call it only while holding the folder (cli.FolderLock): a temp file of a run writing there now
    looks the same. Links and anything but plain files are left alone."""
    folder, removed = Path(folder), []
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # no folder, no leftovers
        return removed
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if not match or not any(Path(match["name"]).match(pattern) for pattern in names):
            continue
        try:
            if not stat.S_ISREG(entry.lstat().st_mode):
                continue
            entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


# --- reading: plain files only --------------------------------------------------------------------

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


def file_problem(path) -> str | None:
    """What keeps `path` from being read as a plain file, as words that follow its name, else None:

    "does not exist", "is a link to X, which does not exist", "is a symlink loop",
    "is a FIFO (named pipe), not a regular file", ... Looks with stat only: opening a FIFO to read
    blocks until someone writes into it."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"is a link to {os.readlink(path)}, which does not exist"
        return "does not exist"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symlink loop (a link that leads back to itself)"
        return f"cannot be read: {error.strerror or error}"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return f"is {kind}, not a regular file"
