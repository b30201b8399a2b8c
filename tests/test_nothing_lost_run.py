"""examples/mnist.py loses nothing: --overwrite never removes the resumed file, a diverged run is never
saved over the good one, SIGHUP saves like SIGTERM, a closed stderr is no crash, Ctrl-C while importing
is one line, the progress line names the steps of its losses, CUDA-only flags are refused elsewhere,
a killed save's temporary file is cleared, and checkpoints with the older optimizer step count resume.

The subprocess tests run the script as `python examples/mnist.py` would, through a driver that points
MNIST's checksum table at the tiny digits (and, for the signal test, sends a signal mid-iteration)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scripts import ROOT  # tests/scripts.py
from test_mnist_example import SMALL, assert_same_state, idle_machine, params, script, tiny_mnist  # noqa: F401
from test_run_safety import no_data, train  # noqa: F401

from minigan import gan, run
from minigan.data import mnist as mnist_data

CHECKPOINT = "checkpoint.npz"


# --- examples/mnist.py as a program ----------------------------------------------------------------

DRIVER = textwrap.dedent("""
    import json, os, runpy, sys
    from minigan.data import mnist
    mnist.EXPECTED = {**mnist.EXPECTED, **{k: tuple(v) for k, v in json.loads(os.environ["TINY_EXPECTED"]).items()}}
    if os.environ.get("SIGNAL_AT"):  # "SIGHUP:4": the signal arrives inside the 4th iteration
        import signal
        from minigan import gan
        name, at = os.environ["SIGNAL_AT"].split(":")
        real, calls = gan.train_iteration, []
        def iteration(*args):
            calls.append(1)
            if len(calls) == int(at):
                os.kill(os.getpid(), getattr(signal, name))
            return real(*args)
        gan.train_iteration = iteration
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
""")


def run_script(tiny_mnist, *flags, env=None, **kwargs):
    """examples/mnist.py in a subprocess on the tiny digits (whose checksums the driver passes on)."""
    expected = {name: mnist_data.EXPECTED[name] for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")}
    environment = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                   "OMP_NUM_THREADS": "1", "TINY_EXPECTED": json.dumps(expected), **(env or {})}
    return subprocess.run([sys.executable, "-c", DRIVER, str(ROOT / "examples" / "mnist.py"),
                           "--data-dir", str(tiny_mnist), *SMALL, *flags], env=environment, timeout=300, **kwargs)


def test_sighup_finishes_the_iteration_saves_and_releases_the_lock(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    done = run_script(tiny_mnist, "--out", str(out), "--epochs", "2", env={"SIGNAL_AT": "SIGHUP:4"},
                      capture_output=True, text=True, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    assert done.returncode == 128 + signal.SIGHUP, done.stderr
    assert f"SIGHUP: stopping after this iteration and writing a checkpoint to {out}" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == (f"interrupted at step 4; checkpoint written to {out / CHECKPOINT}; "
                                                    f"continue with --resume {out / CHECKPOINT}")
    assert int(params(out / CHECKPOINT)["meta.step"]) == 4 and not (out / ".lock").exists()
    assert "Traceback" not in done.stderr


def test_a_run_under_nohup_keeps_going_on_sighup(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    done = run_script(tiny_mnist, "--out", str(out), "--max-steps", "6", env={"SIGNAL_AT": "SIGHUP:4"},
                      capture_output=True, text=True, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    assert done.returncode == 0, done.stderr
    assert "SIGHUP" not in done.stdout and int(params(out / CHECKPOINT)["meta.step"]) == 6


def test_a_closed_stderr_trains_and_saves(tiny_mnist, tmp_path):
    out = tmp_path / "run"
    done = run_script(tiny_mnist, "--out", str(out), "--max-steps", "4", stdout=subprocess.PIPE, text=True,
                      preexec_fn=lambda: os.close(2))  # as `2>&-` leaves it
    assert done.returncode == 0
    assert done.stdout.strip().splitlines()[-1].startswith("done: 4 iterations")
    assert int(params(out / CHECKPOINT)["meta.step"]) == 4


def test_the_run_needs_no_stderr_even_outside_run_main(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    """Training called as a library (no cli.run_main to stand in for a closed stream): the progress
    bar is left out rather than written to None."""
    monkeypatch.setattr(sys, "stderr", None)
    assert script.main(["--data-dir", str(tiny_mnist), "--out", str(tmp_path / "run"), *SMALL, "--max-steps", "4"]) == 0
    assert int(params(tmp_path / "run" / CHECKPOINT)["meta.step"]) == 4
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("done: 4 iterations")


def test_ctrl_c_while_the_script_imports_is_one_line(tmp_path):
    # A tqdm whose import is interrupted: minigan.run imports it, after the script's guard.
    (tmp_path / "tqdm").mkdir()
    (tmp_path / "tqdm" / "__init__.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\n"
                                                    "time.sleep(5)\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "mnist.py"), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert (done.returncode, done.stderr) == (130, "interrupted while starting: nothing was written\n")
    assert not (tmp_path / "run").exists()


# --- --overwrite never removes the file being resumed ------------------------------------------------

@pytest.mark.parametrize("backup", ["checkpoint_backup.npz", "checkpoint_epoch002.npz", "copy.npz", "link"])
def test_overwrite_never_removes_the_resumed_checkpoint(script, tiny_mnist, tmp_path, capsys, backup):
    """A copy of the run's checkpoint, under any name (one that looks like a kept epoch too, or a
    hard link), resumed with --overwrite: the old run goes, the resumed file stays as it was."""
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0
    if backup == "link":
        os.link(out / CHECKPOINT, out / "link.npz")
        backup = "link.npz"
        kept = (out / CHECKPOINT).read_bytes()
    else:
        kept = shutil.copyfile(out / CHECKPOINT, out / backup).read_bytes()
    (out / "notes.txt").write_text("the user's own")
    capsys.readouterr()
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(out / backup), "--out", str(out),
                                     "--overwrite", "--max-steps", "4"]) == 0
    assert (out / backup).read_bytes() == kept
    assert int(params(out / CHECKPOINT)["meta.step"]) == 4
    assert sorted(p.name for p in out.iterdir()) == sorted([CHECKPOINT, backup, "losses.png", "notes.txt",
                                                           "samples_step000004.png"])
    said = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("--overwrite:"))
    # The old grid and loss curves, and its checkpoint unless that is the resumed file under another name.
    removed, resumed = (2, f"{CHECKPOINT}, {backup}") if backup == "link.npz" else (3, backup)
    assert said.startswith(f"--overwrite: removed the old run's {removed} files from {out} (")
    assert f"; kept the checkpoint --resume continues, {resumed}; kept 1 that are not a run's: notes.txt" in said


def test_overwrite_keeps_a_users_own_checkpoint_copies_and_removes_kept_epochs(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0
    for name in ("checkpoint_epoch005.npz", "checkpoint.old.npz", "checkpoint_backup.npz"):
        shutil.copyfile(out / CHECKPOINT, out / name)
    assert train(script, tiny_mnist, out, "--max-steps", "1", "--overwrite") == 0
    assert sorted(p.name for p in out.glob("checkpoint*.npz")) == ["checkpoint.npz", "checkpoint.old.npz",
                                                                   "checkpoint_backup.npz"]


# --- a diverged run is never saved over the good one -------------------------------------------------

def poison(where):
    """After the real iteration (its losses finite), a NaN in G's first weight or an infinity in
    D's optimizer state, as a huge learning rate leaves them."""
    def iteration(G, D, opt_G, opt_D, *rest):
        stats = real_iteration(G, D, opt_G, opt_D, *rest)
        if len(calls) == 5:
            if where == "weight":
                G.parameters()[0].data[0, 0] = np.nan
            else:
                next(value for value in opt_D.state["exp_avg_sq"] if value is not None).flat[0] = np.inf
        calls.append(1)
        return stats
    calls, real_iteration = [], gan.train_iteration
    return iteration


@pytest.mark.parametrize("where, key", [("weight", "G.0.weight"), ("optimizer state", "opt_D.exp_avg_sq.0")])
def test_a_diverged_run_stops_in_one_line_and_keeps_the_good_checkpoint(script, tiny_mnist, tmp_path, monkeypatch,
                                                                        capsys, where, key):
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--epochs", "1") == 0
    good = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(gan, "train_iteration", poison(where))
    capsys.readouterr()
    status = run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(out / CHECKPOINT),
                                       "--epochs", "2", "--log-every", "3"])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"error: {key} holds 1 NaN or infinite value(s): the run diverged; not "
                                            f"saved to {out / CHECKPOINT}, so the last good checkpoint is kept")
    assert "resume from" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == good  # no grid, no curves, no temp file, no lock


# --- the progress line -------------------------------------------------------------------------------

def test_the_progress_line_names_the_steps_its_losses_are_the_mean_of(script, tiny_mnist, tmp_path, monkeypatch,
                                                                      capsys):
    """--log-every 4, stopped at step 5: the bar at 5/6 shows the losses of steps 1-4, and says so."""
    shown = []

    class RecordingBar(run.tqdm):
        def close(self):
            shown.append(str(self))
            super().close()

    monkeypatch.setattr(run, "tqdm", RecordingBar)
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(tmp_path / "run"),
                                     "--batch-size", "16", "--log-every", "4", "--max-steps", "5"]) == 0
    with np.load(tmp_path / "run" / CHECKPOINT) as npz:
        d_loss, g_loss = float(npz["history.d_loss"][0]), float(npz["history.g_loss"][0])
    assert shown and " 5/6 " in shown[-1]
    assert f"steps 1-4: D {d_loss:.3f}, G {g_loss:.3f}, D(x) " in shown[-1]
    printed = capsys.readouterr().out
    assert f"step 5 (epoch 1, 5/6): D loss {d_loss:.3f}, G loss {g_loss:.3f}, " in printed
    assert "(mean of steps 1-4)" in printed


def test_the_loss_log_labels_each_record_with_its_steps():
    log = run.LossLog()
    logits = np.zeros((4, 1), np.float32)
    for step in range(1, 4):
        log.add({"d_loss": np.float32(step), "g_loss": np.float32(1), "d_real_logits": logits,
                 "d_fake_logits": logits})
        if step in (2, 3):
            shown = log.record(step, "out")
    assert shown == "step 3: D 3.000, G 1.000, D(x) 0.50, D(G(z)) 0.50"
    assert log.history["step"] == [2, 3] and log.history["d_loss"] == [1.5, 3.0]


# --- flags that cannot apply are refused -------------------------------------------------------------

@pytest.mark.parametrize("flags, said", [
    (["--tf32"], "--tf32 applies to the fused engine on CUDA only, but this run uses the autograd engine on cpu: "
                 "drop it, or use --device cuda"),
    (["--no-cuda-graph", "--engine", "fused"], "--no-cuda-graph applies to the fused engine on CUDA only, but this "
                                               "run uses the fused engine on cpu: drop it, or use --device cuda"),
    (["--tf32", "--no-cuda-graph"], "--tf32 and --no-cuda-graph apply to the fused engine on CUDA only, but this "
                                    "run uses the autograd engine on cpu: drop them, or use --device cuda"),
])
def test_cuda_only_flags_on_the_cpu_are_refused_in_one_line(script, tiny_mnist, tmp_path, monkeypatch, flags, said):
    monkeypatch.setattr(run, "load_mnist", no_data)
    with pytest.raises(SystemExit) as refused:
        train(script, tiny_mnist, tmp_path / "run", *flags)
    assert str(refused.value) == f"error: {said}"
    assert not (tmp_path / "run").exists()


# --- a killed save's temporary file ------------------------------------------------------------------

def test_a_killed_saves_temporary_files_are_removed_at_start_with_one_line(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(script, tiny_mnist, out, "--max-steps", "2") == 0
    stale = [".checkpoint.npz.k1ll3d_x.tmp", ".samples_step000004.png.abcdefgh.tmp"]
    others = [".checkpoint.evaluation.json.abcdefgh.tmp", ".notes.txt.abcdefgh.tmp"]  # minigan.evaluate's, a user's
    for name in stale + others:
        (out / name).write_bytes(b"half a file")
    capsys.readouterr()
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(out / CHECKPOINT),
                                     "--max-steps", "3"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: removed 2 temporary file(s) that an interrupted save left in {out}: {', '.join(stale)}"]
    assert sorted(p.name for p in out.glob(".*.tmp")) == sorted(others)


# --- checkpoints written before per-parameter step counts --------------------------------------------

@pytest.mark.parametrize("config, batch", [("reference", "16"), ("paper", "24")])
def test_a_checkpoint_with_one_step_count_per_optimizer_resumes_exactly(script, tiny_mnist, tmp_path, config, batch):
    base = ["--data-dir", str(tiny_mnist), "--config", config, "--batch-size", batch, "--log-every", "2"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight"), "--max-steps", "6"]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--max-steps", "3"]) == 0
    with np.load(tmp_path / "split" / CHECKPOINT, allow_pickle=False) as npz:
        state = {key: npz[key] for key in npz.files}
    for player in ("opt_G", "opt_D"):
        counts = {key: state.pop(key) for key in list(state) if key.startswith(f"{player}.step.")}
        assert counts and {int(count) for count in counts.values()} == {3}
        state[f"{player}.steps"] = np.asarray(3, np.int64)
    np.savez(tmp_path / "older.npz", **state)
    assert run.guarded(script.main, [*base, "--resume", str(tmp_path / "older.npz"), "--max-steps", "6",
                                     "--out", str(tmp_path / "resumed")]) == 0
    assert_same_state(params(tmp_path / "straight" / CHECKPOINT), params(tmp_path / "resumed" / CHECKPOINT))
