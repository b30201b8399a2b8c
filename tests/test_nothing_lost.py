"""Nothing lost, nothing hangs: results written before they are shown, output names that fit, odd
files refused without being opened, locks that know a restart, streams that fail in one line.

The subprocess tests run `minigan.evaluate`'s own entry with its minutes of scoring replaced by a
fixed result, under the consoles an unlucky user has: another encoding, a closed pipe, a full disk.
"""

import errno
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from minigan import atomic, cli, evaluate, gan, nn
from minigan.checkpoint import CheckpointError, check_finite, load_checkpoint, save_checkpoint, save_run, with_prefix

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(text: str) -> str:
    """The single line of `text`, which must hold exactly one."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# --- minigan.evaluate: the JSON first, then a table that cannot fail --------------------------------

ROW = {"parzen": {"log_likelihood": 210.5, "standard_error": 2.1, "sigma": 0.2,
                  "validation_log_likelihood": {"0.2000": 200.0}},
       "fid": 3.5, "inception_score": 8.1, "classes_covered": 10, "kl_to_uniform": 0.01, "class_histogram": [1] * 10}

# evaluate.run with the scoring replaced by a fixed result: the rest of main runs as it is.
DRIVER = textwrap.dedent("""
    import sys
    from minigan import evaluate
    result = {"config": "reference", "epoch": 3, "step": 30, "samples": 200, "test_size": 80, "seed": 0,
              "validation_rows": [0, 1], "classifier_test_accuracy": 0.99, "seconds": 1.0,
              "model": %r, "real_train_digits": %r}
    evaluate.evaluate = lambda checkpoint, *args: {"checkpoint": str(checkpoint), **result}
    sys.exit(evaluate.run(sys.argv[1:]))
""" % (ROW, ROW))


@pytest.fixture
def checkpoint(tmp_path):
    G = gan.build_generator(gan.CONFIGS["reference"])
    arrays = {**with_prefix(G.state_dict(), "G."), "meta.config": "reference", "meta.noise": "normal"}
    return save_checkpoint(tmp_path / "run" / "checkpoint.npz", arrays)


def run_evaluate(checkpoint, stdout=subprocess.PIPE, **environment):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", **environment}
    return subprocess.run([sys.executable, "-c", DRIVER, str(checkpoint)], stdout=stdout, stderr=subprocess.PIPE,
                          env=env, timeout=120)


def written(checkpoint) -> dict:
    return json.loads(evaluate.result_file(checkpoint).read_text())


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_console_without_sigma_gets_the_table_in_ascii(checkpoint, encoding):
    done = run_evaluate(checkpoint, PYTHONIOENCODING=encoding)
    assert done.returncode == 0, done.stderr.decode()
    table = done.stdout.decode(encoding)
    assert "sigma" in table and "210.5 +/- 2.1" in table if encoding == "ascii" else "210.5 ± 2.1" in table
    assert written(checkpoint)["model"]["parzen"]["log_likelihood"] == 210.5


def test_a_closed_pipe_ends_quietly_after_the_results_are_written(checkpoint):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as `| head -0` would leave it
    try:
        done = run_evaluate(checkpoint, stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == b"", done.stderr.decode()
    assert written(checkpoint)["model"]["fid"] == 3.5


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_stdout_is_one_line_that_names_stdout_and_the_results(checkpoint):
    with open("/dev/full", "w") as full:
        done = run_evaluate(checkpoint, stdout=full)
    assert done.returncode == 1
    result = evaluate.result_file(checkpoint)
    assert one_line_error(done.stderr.decode()) == (f"error: cannot write to stdout: No space left on device; "
                                                    f"the results were written to {result}")
    assert written(checkpoint)["model"]["classes_covered"] == 10


def test_ctrl_c_while_evaluate_imports_is_one_line(tmp_path):
    # A tqdm whose import is interrupted: evaluate imports it after its guard, as it imports the rest.
    (tmp_path / "tqdm").mkdir()
    (tmp_path / "tqdm" / "__init__.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
                                                    "time.sleep(5)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "minigan.evaluate", "x.npz"], capture_output=True, env=env,
                          timeout=60)
    assert done.returncode == 130
    assert one_line_error(done.stderr.decode()) == "interrupted while starting"


def test_the_import_guard_leaves_an_ignored_sigint_ignored_and_run_main_restores_python_s_handler():
    code = ("import signal; from minigan import cli; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "cli.interrupt_quietly_while_starting(); assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN; "
            "signal.signal(signal.SIGINT, signal.default_int_handler); cli.interrupt_quietly_while_starting(); "
            "assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler; "
            "cli.run_main(lambda argv: 0); assert signal.getsignal(signal.SIGINT) is signal.default_int_handler")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr.decode()


# --- run_main: a stream that fails is named ----------------------------------------------------------


class FailingStream:
    def __init__(self, code):
        self.code, self.encoding = code, "utf-8"

    def write(self, text):
        raise OSError(self.code, os.strerror(self.code))

    def flush(self):
        pass


def test_run_main_names_stdout_when_it_fails(monkeypatch, capsys):
    def main(argv):
        print("a result")
        return 0
    monkeypatch.setattr(sys, "stdout", FailingStream(errno.ENOSPC))
    assert cli.run_main(main) == 1
    assert capsys.readouterr().err == "error: cannot write to stdout: No space left on device\n"


def test_run_main_ends_quietly_when_the_reader_of_stdout_is_gone(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", FailingStream(errno.EPIPE))
    assert cli.run_main(lambda argv: print("a line")) == 141
    assert capsys.readouterr().err == ""


def test_run_main_writes_through_a_closed_stderr(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stderr", None)  # as under `2>&-`; print(file=None) would go to stdout
    assert cli.run_main(lambda argv: print("progress", file=sys.stderr) or 0) == 0
    assert cli.run_main(lambda argv: (_ for _ in ()).throw(OSError(errno.EACCES, "Permission denied"))) == 1
    assert capsys.readouterr().out == ""


def test_encodable_spells_what_the_encoding_lacks():
    assert cli.encodable("σ ± 2 ‖ é", "ascii") == "sigma +/- 2 || \\xe9"
    assert cli.encodable("σ ± é", "latin-1") == "sigma ± é"
    assert cli.encodable("σ", "utf-8") == "σ"
    assert cli.encodable("bad \udcff name", "utf-8") == "bad \\udcff name"  # a path's undecodable byte


# --- output names: the temporary name of the atomic write fits too -----------------------------------


def test_a_name_that_fits_only_without_its_temporary_suffix_is_refused_up_front(tmp_path):
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    fits = tmp_path / ("r" * (name_max - atomic.TEMP_EXTRA))
    too_long = tmp_path / ("r" * (name_max - atomic.TEMP_EXTRA + 1))
    assert cli.check_output_file(fits) == fits
    atomic.atomic_write_bytes(fits, b"{}")  # the longest name that fits is written
    with pytest.raises(SystemExit) as refused:
        cli.check_output_file(too_long, "--out")
    assert one_line_error(str(refused.value)).startswith(f"error: cannot write --out {str(too_long)[:40]}... (")
    assert f"is {name_max - atomic.TEMP_EXTRA + 1} bytes long; with the 14 characters" in str(refused.value)
    calls = []
    with pytest.raises(OSError) as error:
        atomic.atomic_write(too_long, calls.append)
    assert error.value.errno == errno.ENAMETOOLONG and not calls  # refused before any work
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_a_folder_name_too_long_is_refused_before_mkdir(tmp_path):
    with pytest.raises(SystemExit) as refused:
        cli.check_output_dir(tmp_path / ("d" * 300) / "run")
    assert "this file system takes" in one_line_error(str(refused.value))


def test_the_temporary_name_is_fourteen_characters_longer():
    fd, name = tempfile.mkstemp(prefix=".checkpoint.npz.", suffix=".tmp")
    os.close(fd)
    os.unlink(name)
    assert len(os.path.basename(name)) == len("checkpoint.npz") + atomic.TEMP_EXTRA == len("checkpoint.npz") + 14


# --- leftovers of a killed save -----------------------------------------------------------------------


def test_remove_stale_temporaries_removes_only_this_programs_own(tmp_path):
    fd, leftover = tempfile.mkstemp(dir=tmp_path, prefix=".checkpoint.npz.", suffix=".tmp")  # as atomic_write names
    os.close(fd)
    keep = [tmp_path / ".notes.tmp", tmp_path / "checkpoint.npz", tmp_path / ".losses.png.abcd1234.tmp",
            tmp_path / ".checkpoint.npz.toolong123.tmp"]
    for path in keep:
        path.write_text("the user's")
    (tmp_path / ".checkpoint.npz.abcd1234.tmp").symlink_to(keep[0])  # a link is never removed
    removed = atomic.remove_stale_temporaries(tmp_path, ["checkpoint*.npz"])
    assert removed == [Path(leftover)]
    assert not Path(leftover).exists() and all(path.exists() for path in keep)
    assert atomic.remove_stale_temporaries(tmp_path) == [tmp_path / ".losses.png.abcd1234.tmp"]
    assert atomic.remove_stale_temporaries(tmp_path / "missing") == []


# --- a diverged state is never saved over the last good one -------------------------------------------


def test_check_finite_names_the_first_bad_key():
    check_finite({"G.0.weight": np.ones(3), "opt_G.steps": np.array(4), "meta.config": np.array("paper")})
    with pytest.raises(CheckpointError, match=r"^opt_D\.exp_avg_sq\.1 holds 2 NaN or infinite value\(s\): the run "
                                              r"diverged; not saved to c\.npz, so the last good checkpoint is kept$"):
        check_finite({"G.0.weight": np.ones(3), "opt_D.exp_avg_sq.1": np.array([1.0, np.inf, np.nan]),
                      "opt_D.exp_avg.0": np.array([np.nan])}, "c.npz")


def test_save_run_keeps_the_good_checkpoint_when_the_state_went_non_finite(tmp_path):
    layer = nn.Linear(2, 2)
    path = save_run(tmp_path / "checkpoint.npz", {"G": layer}, {"step": 1}, {}, {})
    good = path.read_bytes()
    layer.weight.data[0, 0] = np.inf
    with pytest.raises(CheckpointError, match=r"^G\.weight holds 1 NaN or infinite value"):
        save_run(path, {"G": layer}, {"step": 2}, {}, {})
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


# --- checkpoints that are no plain files: refused without being opened ---------------------------------


@pytest.mark.parametrize("kind, said", [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("device", "is a character device, not a regular file"),
    ("socket", "is a socket, not a regular file"),
    ("loop", "is a symlink loop (a link that leads back to itself)"),
    ("dangling", "is a link to gone.npz, which does not exist"),
])
def test_a_checkpoint_that_is_no_plain_file_is_one_line(tmp_path, kind, said):
    path = tmp_path / "checkpoint.npz"
    if kind == "fifo":
        os.mkfifo(path)  # opening it to read would block until a writer came
    elif kind == "device":
        path = Path("/dev/zero")  # would never end
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    elif kind == "loop":
        path.symlink_to(path.name)
    else:
        path.symlink_to("gone.npz")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert one_line_error(str(info.value)) == f"checkpoint {path} {said}"


@pytest.mark.parametrize("kind, said", [("fifo", "is a FIFO (named pipe), not a regular file"),
                                        ("loop", "is a symlink loop (a link that leads back to itself)")])
def test_evaluate_of_a_checkpoint_that_is_no_plain_file_is_one_line(tmp_path, capsys, kind, said):
    path = tmp_path / "checkpoint.npz"
    os.mkfifo(path) if kind == "fifo" else path.symlink_to(path.name)
    assert evaluate.run([str(path)]) == 1
    assert capsys.readouterr().err == f"error: checkpoint {path} {said}\n"


# --- locks that know a restart and a reused pid --------------------------------------------------------


def write_lock(folder: Path, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / ".lock").write_text(text + "\n")
    return folder / ".lock"


def holds(folder: Path) -> bool:
    return (folder / ".lock").read_text().startswith(f"pid={os.getpid()} ")


def test_the_lock_records_boot_and_start_time(tmp_path):
    with cli.FolderLock(tmp_path):
        fields = dict(f.split("=", 1) for f in (tmp_path / ".lock").read_text().split())
    assert fields["pid"] == str(os.getpid()) and fields["host"] == socket.gethostname()
    if cli.BOOT_ID.exists():
        assert fields["boot"] == cli.BOOT_ID.read_text().strip()
        assert fields["start"] == Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.skipif(not cli.BOOT_ID.exists(), reason="needs /proc")
@pytest.mark.parametrize("case, pid, note", [
    # a container restarted: the run was pid 1, or is this very pid again; the boot id says so
    ("restart", os.getpid(), " before this machine restarted"),
    # the pid now belongs to an unrelated live process, started at another time
    ("reused pid", os.getppid(), ", which now belongs to another process"),
])
def test_a_stale_lock_whose_pid_is_alive_is_taken_over(tmp_path, capsys, case, pid, note):
    start = cli._process_start(pid)
    boot = "00000000-0000-0000-0000-000000000000" if case == "restart" else cli._boot_id()
    write_lock(tmp_path, f"pid={pid} host={socket.gethostname()} started=x boot={boot} "
                         f"start={start if case == 'restart' else int(start) + 1}")
    with cli.FolderLock(tmp_path):
        assert holds(tmp_path)
    assert capsys.readouterr().err == f"note: --out {tmp_path} was held by pid {pid}{note}; taking it over\n"


@pytest.mark.parametrize("fields", ["boot={boot} start={start}", ""])  # a lock of this version, and an older one
def test_a_lock_of_a_live_run_names_the_lock_and_how_to_remove_it(tmp_path, fields):
    pid = os.getppid()
    lock = write_lock(tmp_path, f"pid={pid} host={socket.gethostname()} started=x "
                      + fields.format(boot=cli._boot_id() or "-", start=cli._process_start(pid) or "-"))
    with pytest.raises(SystemExit) as refused:
        with cli.FolderLock(tmp_path):
            pass
    assert str(refused.value) == (f"error: --out {tmp_path} is in use by another run (pid {pid} on "
                                  f"{socket.gethostname()}; lock {lock}); wait for it to finish or choose another "
                                  f"--out; if no run is writing there, delete {lock}")


@pytest.mark.parametrize("target, said", [("nowhere", "which does not exist"), (".lock", "which loops back on itself")])
def test_a_lock_that_is_a_symlink_is_one_line(tmp_path, target, said):
    (tmp_path / ".lock").symlink_to(target)
    with pytest.raises(SystemExit) as refused:
        with cli.FolderLock(tmp_path):
            pass
    assert str(refused.value) == (f"error: the lock file {tmp_path / '.lock'} is a symbolic link to {target}, {said}; "
                                  f"a run's lock is a plain file: delete the link if no run is writing to {tmp_path}")


# --- echoes that stay short -----------------------------------------------------------------------------


@pytest.mark.parametrize("convert", [cli.seed_int, cli.positive_int, cli.nonnegative_int])
def test_a_five_thousand_digit_number_is_not_echoed_whole(convert):
    with pytest.raises(Exception) as refused:
        convert("9" * 5000)
    assert str(refused.value) == "must be an integer of a sensible size, got a 5000-digit number"


def test_long_text_is_shortened_in_messages():
    with pytest.raises(Exception) as refused:
        cli.positive_float("x" * 5000)
    assert len(str(refused.value)) < 100 and "(5002 characters)" in str(refused.value)


def test_a_stderr_that_fails_mid_run_becomes_a_sink_and_main_carries_on(monkeypatch):
    class HungUpTerminal(io.StringIO):
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sys, "stderr", HungUpTerminal())
    done = []

    def main(argv):
        print("epoch 1: 50%", file=sys.stderr)  # a progress bar after SIGHUP closed the terminal
        sys.stderr.flush()
        done.append("saved")  # the run gets on to its checkpoint
        return 0

    assert cli.run_main(main) == 0 and done == ["saved"]
