"""examples/mnist.py never loses a run: the folder lock, --overwrite, checkpoint values checked before
use, a resume with nothing to do, the busy-machine warning; and minigan.checkpoint on files that are
not checkpoints."""

import os
import signal
import socket

import numpy as np
import pytest
from scripts import load_script  # tests/scripts.py
from test_mnist_example import SMALL, idle_machine, params, write_tiny_mnist  # noqa: F401 (a fixture)

from minigan import backend, cli, fast, gan, run
from minigan.checkpoint import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def script():
    return load_script("examples/mnist.py", "mnist_example")


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """96 random 'digits' as the train split, and the checksum table pointed at them."""
    return write_tiny_mnist(tmp_path / "mnist", monkeypatch)


def train(script, tiny_mnist, out, *flags):
    return run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), *SMALL, *flags])


def no_data(*args, **kwargs):
    pytest.fail("loaded MNIST: the run did work it should have refused before")


# --- a run holds its --out folder ---------------------------------------------------------------

def test_a_run_started_into_a_folder_a_run_is_writing_is_refused(script, tiny_mnist, tmp_path, monkeypatch):
    """The second run starts while the first is training (from inside its 2nd iteration)."""
    out, refusals = tmp_path / "run", []
    real_iteration = gan.train_iteration

    def iteration_that_starts_a_second_run(*args, **kwargs):
        if not refusals:
            with pytest.raises(SystemExit) as refused:
                train(script, tiny_mnist, out, "--max-steps", "2")
            refusals.append(str(refused.value))
        return real_iteration(*args, **kwargs)

    monkeypatch.setattr(gan, "train_iteration", iteration_that_starts_a_second_run)
    assert train(script, tiny_mnist, out, "--max-steps", "4") == 0
    assert refusals == [f"error: --out {out} is in use by another run (pid {os.getpid()} on {socket.gethostname()}; "
                        f"lock {out / '.lock'}); wait for it to finish or choose another --out; "
                        f"if no run is writing there, delete {out / '.lock'}"]
    assert int(params(out / "checkpoint.npz")["meta.step"]) == 4  # the first run's, not mixed with a second
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "losses.png", "samples_step000004.png"]


def test_a_folder_held_by_a_live_process_is_refused_before_any_work(script, tiny_mnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"pid={os.getppid()} host={socket.gethostname()} started=x\n")
    monkeypatch.setattr(run, "load_mnist", no_data)
    with pytest.raises(SystemExit, match=rf"^error: --out {out} is in use by another run \(pid {os.getppid()} on "):
        train(script, tiny_mnist, out)
    assert (out / ".lock").exists()  # never removes another run's lock


def test_a_lock_from_another_host_is_never_taken_over(script, tiny_mnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("pid=1 host=elsewhere.example started=x\n")
    monkeypatch.setattr(run, "load_mnist", no_data)
    with pytest.raises(SystemExit, match=r"\(pid 1 on elsewhere.example; .*if no run is writing there, delete "):
        train(script, tiny_mnist, out)


def test_a_stale_lock_is_taken_over_with_one_line(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    dead = 2**22 + 12345  # above Linux's default pid_max of 2**22: no process has it
    (out / ".lock").write_text(f"pid={dead} host={socket.gethostname()} started=x\n")
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0
    assert (f"note: --out {out} was held by pid {dead}, which is no longer running; taking it over"
            in capsys.readouterr().err)
    assert not (out / ".lock").exists()


def save_fails(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("ending, status", [("done", 0), ("OSError", 1), ("Ctrl-C before training", 130),
                                            ("SIGINT while training", 130), ("non-finite loss", 1)])
def test_the_lock_is_released_on_every_exit(script, tiny_mnist, tmp_path, monkeypatch, ending, status):
    out = tmp_path / "run"
    if ending == "OSError":
        monkeypatch.setattr(run, "save_image_grid", save_fails)
    elif ending == "Ctrl-C before training":
        monkeypatch.setattr(run, "load_training_data", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    elif ending == "SIGINT while training":
        real = gan.train_iteration
        monkeypatch.setattr(gan, "train_iteration", lambda *a: os.kill(os.getpid(), signal.SIGINT) or real(*a))
    elif ending == "non-finite loss":
        real_loss = gan.generator_loss
        monkeypatch.setattr(gan, "generator_loss", lambda logits, kind: real_loss(logits, kind) * float("nan"))
    assert train(script, tiny_mnist, out, "--max-steps", "3") == status
    assert out.is_dir() and not (out / ".lock").exists()


def test_folder_lock_writes_pid_and_host_and_removes_only_its_own(tmp_path):
    with cli.FolderLock(tmp_path):
        assert (tmp_path / ".lock").read_text().startswith(f"pid={os.getpid()} host={socket.gethostname()} ")
        (tmp_path / ".lock").write_text("pid=1 host=other started=x\n")  # someone else's now
    assert (tmp_path / ".lock").read_text() == "pid=1 host=other started=x\n"


# --- --overwrite ------------------------------------------------------------------------------------

def test_overwrite_removes_the_old_runs_files_and_says_what_it_kept(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--epochs", "2") == 0
    old_run = ["checkpoint.evaluation.json", "evaluation.json", "figure2_reference.png", "figure3_reference.png"]
    for name in old_run:  # what minigan.evaluate and examples/paper_figures.py write beside a checkpoint
        (out / name).write_text("{}")
    (out / "notes.txt").write_text("the user's own")
    capsys.readouterr()
    assert train(script, tiny_mnist, out, "--max-steps", "2", "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "losses.png", "notes.txt",
                                                     "samples_step000002.png"]
    printed = capsys.readouterr().out
    assert f"--overwrite: removed the old run's 8 files from {out} (" in printed  # 4 + checkpoint, 2 grids, losses
    assert "; kept 1 that are not a run's: notes.txt" in printed


def test_overwrite_into_a_folder_without_a_run_keeps_everything(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own")
    assert train(script, tiny_mnist, out, "--max-steps", "1", "--overwrite") == 0
    assert f"--overwrite: no run in {out}; kept 1 that are not a run's: notes.txt" in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "the user's own"


def test_overwrite_never_removes_the_run_resume_continues(script, tiny_mnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0
    before = (out / "checkpoint.npz").read_bytes()
    monkeypatch.setattr(run, "load_mnist", no_data)
    with pytest.raises(SystemExit, match="--overwrite would remove the run that --resume continues"):
        run.guarded(script.main, ["--resume", str(out / "checkpoint.npz"), "--overwrite", "--max-steps", "4"])
    assert (out / "checkpoint.npz").read_bytes() == before


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_to_start(script, tiny_mnist, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setattr(run, "load_mnist", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
    assert train(script, tiny_mnist, out, "--max-steps", "2", "--overwrite") == 1
    assert sorted(p.name for p in out.iterdir()) == before


# --- every value read back from a checkpoint is checked ---------------------------------------------

def saved_state(script, tiny_mnist, out):
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0  # mid-epoch: position 2 of 6
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


BAD_VALUES = {
    "meta.position": (np.array(50), "meta.position = 50, but it must be in [0, 6) (an epoch of 96 images is 6 "
                                    "iterations)"),
    "meta.step": (np.array(-3), "meta.step = -3, but it must be ≥ 0"),
    "meta.step  ": (np.array(5), "meta.step = 5, but meta.epoch 0 and meta.position 2 at 6 iterations per epoch "
                                 "make 2"),
    "meta.epoch ": (np.array(3), "meta.step = 2, but meta.epoch 3 and meta.position 2 at 6 iterations per epoch "
                                 "make 20"),
    "meta.epoch": (np.array(-1), "meta.epoch = -1, but it must be ≥ 0"),
    "meta.batch_size": (np.array(0), "meta.batch_size = 0, but it must be ≥ 1"),
    "meta.k": (np.array(0), "meta.k = 0, but it must be ≥ 1"),
    "meta.seed": (np.array(-5), "meta.seed = -5, but it must be in [0, 4294967296)"),
    "meta.interval_iterations": (np.array(5), "meta.interval_iterations = 5, but it must be in [0, 3) "
                                              "(no more than meta.position, 2)"),
    "meta.loss": (np.array("wgan"), "meta.loss is 'wgan'; known: minimax, nonsaturating"),
    "meta.update": (np.array("sometimes"), "meta.update is 'sometimes'; known: alternating, simultaneous"),
    "meta.noise": (np.array("cauchy"), "meta.noise is 'cauchy'; known: normal, uniform"),
    "meta.config": (np.array(3), "meta.config is int64 3; known: paper, reference"),
    "meta.batch_size ": (np.array([16, 16]), "meta.batch_size should be an integer, but holds int64 of shape (2,)"),
    "meta.step ": (np.array(2.5), "meta.step should be an integer, but holds float64 2.5"),
    "order": (np.zeros(96, np.int64), "order is not an order of the 96 training images (int64 of shape (96,))"),
    "order ": (np.arange(10), "order is not an order of the 96 training images (int64 of shape (10,))"),
    "G.0.weight": ("int32", "G.0.weight should be floating point, but holds int32"),
    "D.0.weight": ("nan", "D.0.weight holds NaN or infinite values; the run diverged, resume from an earlier "
                          "checkpoint"),
    "opt_G.steps": (np.array(-4), "opt_G.steps should be an integer ≥ 0, but holds int64 -4"),
    "rng.trainer": (np.array("{not json"), "rng.trainer is not a random generator's state (JSONDecodeError: "),
    "history.d_loss": (np.zeros(7), "history.d_loss holds 7 records, but history.step 0"),
    "history.g_loss": (np.zeros((0, 2)), "history.g_loss should be a list of numbers, but holds float64 of "
                                         "shape (0, 2)"),
    "interval_sums": (np.zeros(2), "interval_sums should be 4 finite numbers, but holds float64 of shape (2,)"),
}


@pytest.mark.parametrize("key", list(BAD_VALUES))
def test_a_bad_value_in_a_checkpoint_is_one_line_naming_its_key(script, tiny_mnist, tmp_path, monkeypatch, capsys,
                                                                key):
    state = saved_state(script, tiny_mnist, tmp_path / "run")
    value, message = BAD_VALUES[key]
    key = key.strip()
    if isinstance(value, str):
        value = state[key].astype(np.int32) if value == "int32" else state[key] * np.nan
    state[key] = value
    np.savez(tmp_path / "bad.npz", **state)
    saves = []
    # Were a bad value let through (meta.position past the epoch once made the loop spin forever,
    # rewriting the checkpoint each turn), the run would save: fail then, instead of hanging.
    monkeypatch.setattr(run, "save_run", lambda *a, **k: saves.append(1) or pytest.fail("saved a run"))
    capsys.readouterr()
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(tmp_path / "bad.npz"),
                       "--out", str(tmp_path / "new"), "--log-every", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: checkpoint {tmp_path / 'bad.npz'}: {message}") and err.count("\n") == 1, err
    assert not saves


NOT_CHECKPOINTS = {
    "random bytes": (bytes(range(200, 256)) * 4, "is not a .npz file (it starts with bytes c8 c9 ca cb)"),
    "a PNG": (b"\x89PNG\r\n\x1a\n" + bytes(64), "is a PNG image, not a .npz file"),
    "a JSON": (b'{"fid": 1.0}', "is a text file (it starts with '{\"fid\":'), not a .npz file"),
    "an empty file": (b"", "is empty, not a .npz file"),
    "a gzip": (b"\x1f\x8b\x08\x00" + bytes(20), "is a gzip file, not a .npz file"),
    "a .npy": (b"\x93NUMPY\x01\x00" + bytes(20), "is a single .npy array, not a .npz file"),
    "a broken zip": (b"PK\x03\x04 not really a zip", "is truncated or corrupt: not a complete .npz archive"),
}


@pytest.mark.parametrize("what", list(NOT_CHECKPOINTS))
def test_a_file_that_is_not_a_checkpoint_says_what_it_is(what, tmp_path):
    content, message = NOT_CHECKPOINTS[what]
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "x.npz")
    assert str(error.value).startswith(f"checkpoint {tmp_path / 'x.npz'} {message}")
    assert "pickle" not in str(error.value).lower()


def test_a_truncated_checkpoint_and_object_arrays(script, tiny_mnist, tmp_path):
    train(script, tiny_mnist, tmp_path / "run", "--max-steps", "2")
    whole = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="cut.npz is truncated or corrupt: not a complete .npz archive"):
        load_checkpoint(tmp_path / "cut.npz")
    np.savez(tmp_path / "objects.npz", a=np.array([{}], dtype=object))
    with pytest.raises(CheckpointError, match="objects.npz holds an array of Python objects; a minigan checkpoint "
                                              "holds plain number and text arrays only$"):
        load_checkpoint(tmp_path / "objects.npz")


def test_a_folder_given_as_a_checkpoint_says_it_is_a_folder(tmp_path):
    with pytest.raises(CheckpointError, match=f"^checkpoint {tmp_path} is a folder, not a .npz file$"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"did you mean {tmp_path / 'checkpoint.npz'}\\?$"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("flag", ["--out", "--resume", "--data-dir"])
def test_an_empty_path_is_a_usage_error(script, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args([flag, ""])
    assert exit_info.value.code == 2
    assert f"argument {flag}: expected a path, got an empty string" in capsys.readouterr().err


# --- a resume with nothing to do -------------------------------------------------------------------

@pytest.mark.parametrize("flags, reached", [(["--max-steps", "2"], "--max-steps 2"),
                                            (["--max-steps", "1"], "--max-steps 1"),
                                            (["--epochs", "1"], "--epochs 1")])
def test_a_resume_already_at_its_goal_says_nothing_was_trained(script, tiny_mnist, tmp_path, capsys, flags, reached):
    out = tmp_path / "run"
    first = ["--epochs", "1"] if "--epochs" in flags else ["--max-steps", "2"]
    assert train(script, tiny_mnist, out, *first) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(out / "checkpoint.npz"),
                                     *flags]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"nothing to train: {out / 'checkpoint.npz'} stands at epoch ")
    assert f"already at {reached}" in printed and printed.rstrip().endswith("nothing was written")
    assert "done:" not in printed and "wrote" not in printed
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- a busy machine -------------------------------------------------------------------------------------

def test_a_busy_machine_gets_one_warning_line_at_the_start(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    monkeypatch.setattr(cli, "_cores", lambda: 2)
    for name in cli.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    threads = {name: os.environ.get(name) for name in cli.THREAD_VARIABLES}
    assert train(script, tiny_mnist, tmp_path / "run", "--max-steps", "1") == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: load average 7.5 on 2 cores:") and "OMP_NUM_THREADS=1" in err.splitlines()[0]
    assert {name: os.environ.get(name) for name in cli.THREAD_VARIABLES} == threads  # nothing changed


# --- the fused engine in the script ---------------------------------------------------------------------

def test_the_fused_iteration_has_sync_and_a_description_and_the_factory_is_gone():
    backend.manual_seed(0)
    config = gan.CONFIGS["reference"]
    G, D = gan.build_generator(config), gan.build_discriminator(config)
    opt_G, opt_D = gan.build_optimizers(config, G, D)
    fused = fast.FusedIteration(G, D, opt_G, opt_D, k=1, loss="nonsaturating", cuda_graph=False)
    assert fused.description == "fused, NumPy" and fused.sync() is None  # nothing to copy before the first step
    with pytest.raises(ValueError, match="FusedIteration: unknown update|FusedIteration: k must be"):
        fast.FusedIteration(G, D, opt_G, opt_D, k=0)
    # The script names gan.train_iteration at the call; no factory stands between them.
    assert not hasattr(fast, "make_iteration") and not hasattr(fast, "AutogradIteration")
