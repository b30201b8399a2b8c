"""minigan.cli: argument types, output-path checks, one-line errors, the busy-machine warning."""

import argparse
import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan import cli
from minigan.checkpoint import CheckpointError
from minigan.data import MNISTError


@settings(max_examples=50, deadline=None)
@given(st.integers(-2**40, 2**40))
def test_integer_types_accept_exactly_their_range(value):
    for parse, low, high in ((cli.positive_int, 1, None), (cli.nonnegative_int, 0, None),
                             (cli.seed_int, 0, 2**32 - 1)):
        inside = value >= low and (high is None or value <= high)
        if inside:
            assert parse(str(value)) == value
        else:
            with pytest.raises(argparse.ArgumentTypeError):
                parse(str(value))


@pytest.mark.parametrize("text", ["", "x", "1.5", "1e3", "nan"])
def test_integer_types_refuse_non_integers(text):
    for parse in (cli.positive_int, cli.nonnegative_int, cli.seed_int):
        with pytest.raises(argparse.ArgumentTypeError, match="integer"):
            parse(text)


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "x"])
def test_positive_float_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.positive_float(text)


def test_positive_float_accepts():
    assert cli.positive_float("2e-4") == 2e-4


def test_argparse_reports_a_negative_seed_in_one_line(capsys):
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=cli.seed_int)
    with pytest.raises(SystemExit) as exit:
        p.parse_args(["--seed", "-1"])
    assert exit.value.code == 2
    assert "argument --seed: must be an integer in [0, 2**32), got -1" in capsys.readouterr().err


def test_check_output_dir(tmp_path):
    made = cli.check_output_dir(tmp_path / "a" / "b")
    assert made.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match=r"^error: --out .*file is a file, not a folder$"):
        cli.check_output_dir(tmp_path / "file")
    with pytest.raises(SystemExit, match=r"cannot be created: .*file is a file, not a folder$"):
        cli.check_output_dir(tmp_path / "file" / "sub" / "deeper")


def test_check_output_dir_dangling_link(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(SystemExit, match=r"^error: --out .*link is a link to .*gone, which does not exist$"):
        cli.check_output_dir(tmp_path / "link")


def test_check_output_dir_unwritable(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refuse)
    with pytest.raises(SystemExit, match=r"^error: cannot write to --out .*: Permission denied$"):
        cli.check_output_dir(tmp_path / "out")


def test_check_output_file(tmp_path, monkeypatch):
    target = tmp_path / "new" / "result.json"
    assert cli.check_output_file(target) == target
    assert not (tmp_path / "new").exists()  # nothing created
    with pytest.raises(SystemExit, match=r"^error: --out .* is a folder"):
        cli.check_output_file(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match=r"cannot be written: .*file is a file, not a folder$"):
        cli.check_output_file(tmp_path / "file" / "result.json", what="--json")
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    with pytest.raises(SystemExit, match=r"^error: cannot write --out .*no permission to write in"):
        cli.check_output_file(tmp_path / "result.json")


def test_one_line():
    assert cli.one_line(OSError(errno.ENOSPC, "No space left on device", "/x/y")) == \
        "No space left on device (/x/y)"
    assert cli.one_line(ValueError("two\n  lines")) == "two lines"
    assert cli.one_line(KeyError()) == "KeyError"


def _raise(error):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("error", [MNISTError("no MNIST"), CheckpointError("bad\ncheckpoint"),
                                   FloatingPointError("nan loss"), FileNotFoundError(2, "No such file", "f")])
def test_run_main_expected_errors_are_one_line(error, capsys):
    assert cli.run_main(_raise(error)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_run_main_value_error_from_minigan_is_one_line(capsys):
    from minigan import fast

    def main(argv):
        fast.resolve_engine("warp")
    assert cli.run_main(main) == 1
    assert capsys.readouterr().err == "error: unknown engine 'warp'; use 'auto', 'autograd' or 'fused'\n"


def test_run_main_keeps_the_traceback_of_other_errors():
    with pytest.raises(ValueError):  # raised here, not by minigan: a bug, not a user's mistake
        cli.run_main(_raise(ValueError("bug")))
    with pytest.raises(ZeroDivisionError):
        cli.run_main(_raise(ZeroDivisionError()))


def test_run_main_interrupt(capsys):
    assert cli.run_main(_raise(KeyboardInterrupt()), interrupted="interrupted: nothing saved") == 130
    assert capsys.readouterr().err == "interrupted: nothing saved\n"


def test_run_main_returns_mains_status():
    assert cli.run_main(lambda argv: 3, ["a"]) == 3


@pytest.mark.parametrize("load, threads, warns", [(0.1, None, False), (1.2, None, True), (1.2, "1", False),
                                                  (3.0, "2", True), (0.4, "2", False)])
def test_warn_if_cores_busy(load, threads, warns, monkeypatch, capsys):
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (load, 0.0, 0.0))
    monkeypatch.setattr(cli, "_cores", lambda: 2)
    monkeypatch.setattr(cli.time, "process_time", lambda: 0.0)
    for name in cli.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if threads is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
    message = cli.warn_if_cores_busy()
    err = capsys.readouterr().err
    if warns:
        assert message is not None and err == message + "\n"
        assert f"load average {load:.1f} on 2 cores" in message and "OMP_NUM_THREADS=1" in message
    else:
        assert message is None and err == ""


def test_warn_if_cores_busy_without_a_load_average(monkeypatch, capsys):
    def missing():
        raise OSError("no load average")
    monkeypatch.setattr(cli.os, "getloadavg", missing)
    assert cli.warn_if_cores_busy() is None and capsys.readouterr().err == ""
