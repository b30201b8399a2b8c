"""examples/mnist.py end to end, on a tiny synthetic MNIST written as real IDX files."""

import hashlib
import os
import signal

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from scripts import load_script  # tests/scripts.py

from minigan import backend, cli, gan, run
from minigan.data import mnist as mnist_data
from minigan.data import write_idx

SMALL = ["--batch-size", "16", "--log-every", "3"]


@pytest.fixture(scope="module")
def script():
    return load_script("examples/mnist.py", "mnist_example")


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """No busy-machine warning on stderr: the machine running the tests may well be busy."""
    monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.0, 0.0, 0.0))


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """96 random 'digits' as the train split, and the checksum table pointed at them."""
    return write_tiny_mnist(tmp_path / "mnist", monkeypatch)


def write_tiny_mnist(folder, monkeypatch):
    rng = np.random.default_rng(0)
    folder.mkdir()
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (96, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 96, dtype=np.uint8)}
    expected = dict(mnist_data.EXPECTED)
    for name, array in arrays.items():
        write_idx(folder / name, array)
        content = (folder / name).read_bytes()
        expected[name] = (len(content), hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(mnist_data, "EXPECTED", expected)
    return folder


def params(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k.startswith(("G.", "D.", "opt_G.", "opt_D.", "meta."))}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_writes_pictures_and_a_loadable_checkpoint(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "2", *SMALL]) == 0
    for name in ("samples_epoch001.png", "samples_epoch002.png", "losses.png", "checkpoint.npz"):
        assert (out / name).stat().st_size > 0, name
    state = params(out / "checkpoint.npz")
    assert int(state["meta.epoch"]) == 2 and int(state["meta.step"]) == 12  # 96 // 16 = 6 per epoch
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        assert np.all(np.isfinite(npz["history.d_loss"])) and np.all(np.isfinite(npz["history.g_loss"]))
        assert len(npz["history.step"]) >= 4
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("done: 12 iterations, 2 epochs") and "s/epoch" in summary and "checkpoint.npz" in summary


@pytest.mark.parametrize("config", ["reference", "paper"])
def test_resume_after_epoch_one_is_bit_identical(script, tiny_mnist, tmp_path, config):
    base = ["--data-dir", str(tiny_mnist), "--config", config, *SMALL]
    if config == "paper":
        base = [arg for arg in base if arg not in ("--batch-size", "16")] + ["--batch-size", "24"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight"), "--epochs", "2"]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--epochs", "1"]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--epochs", "2",
                       "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
    assert_same_state(params(tmp_path / "straight" / "checkpoint.npz"), params(tmp_path / "split" / "checkpoint.npz"))


@pytest.mark.gpu
def test_a_resumed_cuda_run_of_the_paper_config_draws_the_masks_of_an_uninterrupted_one(script, tiny_mnist, tmp_path):
    # Other dropout masks after the resume would move the weights by far more than the tolerance.
    base = ["--data-dir", str(tiny_mnist), "--config", "paper", "--device", "cuda", "--engine", "autograd",
            "--batch-size", "24", "--log-every", "3"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight"), "--epochs", "2"]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--epochs", "1"]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--epochs", "2",
                       "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
    straight, split = params(tmp_path / "straight" / "checkpoint.npz"), params(tmp_path / "split" / "checkpoint.npz")
    assert straight.keys() == split.keys()
    for key in straight:
        np.testing.assert_allclose(split[key], straight[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_resume_mid_epoch_is_bit_identical(script, tiny_mnist, tmp_path):
    base = ["--data-dir", str(tiny_mnist), *SMALL, "--epochs", "2"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight")]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--max-steps", "4"]) == 0
    assert int(params(tmp_path / "split" / "checkpoint.npz")["meta.position"]) == 4
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"),
                       "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
    assert_same_state(params(tmp_path / "straight" / "checkpoint.npz"), params(tmp_path / "split" / "checkpoint.npz"))


def test_ctrl_c_writes_a_checkpoint_and_exits_cleanly(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    base = ["--data-dir", str(tiny_mnist), *SMALL, "--epochs", "2"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight")]) == 0
    real_iteration, calls = gan.train_iteration, []

    def interrupted_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:  # Ctrl-C arrives in the middle of the 8th iteration
            os.kill(os.getpid(), signal.SIGINT)
        return real_iteration(*args, **kwargs)

    monkeypatch.setattr(gan, "train_iteration", interrupted_iteration)
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split")]) == 130
    assert "interrupted at step 8" in capsys.readouterr().out
    monkeypatch.setattr(gan, "train_iteration", real_iteration)
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"),
                       "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
    assert_same_state(params(tmp_path / "straight" / "checkpoint.npz"), params(tmp_path / "split" / "checkpoint.npz"))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the NaN is the point
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    base = ["--data-dir", str(tiny_mnist), "--out", str(out), *SMALL]
    assert run.guarded(script.main, [*base, "--epochs", "1"]) == 0
    good = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    real_loss = gan.generator_loss
    monkeypatch.setattr(gan, "generator_loss", lambda logits, kind: real_loss(logits, kind) * float("nan"))
    assert run.guarded(script.main, [*base, "--epochs", "3", "--resume", str(out / "checkpoint.npz")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: non-finite loss before step")
    assert (out / "checkpoint.npz").read_bytes() == good


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["--k", "0"], "--k: must be a positive integer"),
    (["--config", "dcgan"], "invalid choice: 'dcgan'"),
])
def test_bad_flags_get_a_one_line_argparse_error(script, flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.guarded(script.main, flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(backend.cuda_available(), reason="CUDA is available here")
def test_cuda_without_cupy_says_what_to_install(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.guarded(script.main, ["--device", "cuda"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err  # the machine lacks CuPy: no usage block above the line
    assert "device 'cuda' needs" in err and "cupy" in err


def test_an_unknown_device_is_one_line(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run.guarded(script.main, ["--device", "tpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.rstrip().endswith(": error: unknown device 'tpu': use 'cpu', 'cuda' or 'cuda:N'")


def test_missing_data_offline_is_one_line(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIGAN_DATA", raising=False)
    monkeypatch.setattr(mnist_data, "MIRRORS", ["http://127.0.0.1:9/"])  # nothing listens on port 9
    # not the shipped copy
    monkeypatch.setattr(mnist_data, "CHECKOUT_MNIST", tmp_path / "no-checkout" / "data" / "mnist")
    assert run.guarded(script.main, ["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "MNIST not found" in err and "train-images-idx3-ubyte.gz" in err and "--data-dir" in err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_corrupt_checkpoint_is_one_line(script, tiny_mnist, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(bad), "--out",
                                     str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: checkpoint {bad} is a text file (it starts with 'not a zi'), not a .npz file"


def test_checkpoint_of_another_model_is_refused(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    state["G.0.weight"] = state["G.0.weight"][:50]
    np.savez(tmp_path / "wrong.npz", **state)
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(tmp_path / "wrong.npz"),
                       "--out", str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert "does not fit the reference model" in err and "shape mismatch 0.weight (50, 256) vs (100, 256)" in err


def test_fused_engine_trains_like_autograd_and_resumes_exactly(script, tiny_mnist, tmp_path):
    # One BLAS thread: with two, OpenBLAS splits the autograd engine's GEMM reductions differently,
    # and Adam carries that float32 rounding (on this data, gradients that nearly cancel) to 6e-4 in
    # the weights after 2 epochs, engine against itself; at one thread the engines differ by ~1e-6.
    with threadpool_limits(1):
        base = ["--data-dir", str(tiny_mnist), *SMALL, "--epochs", "2"]
        assert run.guarded(script.main, [*base, "--out", str(tmp_path / "autograd"), "--engine", "autograd"]) == 0
        assert run.guarded(script.main, [*base, "--out", str(tmp_path / "fused"), "--engine", "fused"]) == 0
        autograd = params(tmp_path / "autograd" / "checkpoint.npz")
        fused = params(tmp_path / "fused" / "checkpoint.npz")
        assert autograd.keys() == fused.keys()
        for key in autograd:  # float32 rounding differs; Adam moves each weight by about lr = 2e-4 per step
            if autograd[key].dtype.kind == "U":
                assert fused[key] == autograd[key], key
            else:
                np.testing.assert_allclose(fused[key], autograd[key], rtol=1e-4, atol=1e-5, err_msg=key)
        assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--engine", "fused",
                                         "--max-steps", "4"]) == 0
        assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--engine", "fused",
                           "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
        assert_same_state(fused, params(tmp_path / "split" / "checkpoint.npz"))


def test_fused_engine_refuses_the_paper_config(script, tiny_mnist, tmp_path):
    with pytest.raises(SystemExit, match="the fused engine runs the 'reference' config with the alternating update "
                                         "only, not the 'paper' config"):
        run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--config", "paper", "--batch-size", "24",
                                  "--engine", "fused",
                    "--out", str(tmp_path)])


@pytest.mark.parametrize("change, message", [
    (lambda state: state.pop("meta.step"), "lacks meta.step: it was not written by examples/mnist.py"),
    (lambda state: state.update({"meta.config": np.array("dcgan")}), "meta.config is 'dcgan'; known: paper, reference"),
])
def test_checkpoint_with_missing_or_unknown_metadata_is_one_line(script, tiny_mnist, tmp_path, capsys, change, message):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    with np.load(out / "checkpoint.npz", allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    change(state)
    np.savez(tmp_path / "odd.npz", **state)
    capsys.readouterr()
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(tmp_path / "odd.npz"),
                                     "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].endswith(message)


# --- a run is never lost (bare-clone issue) ------------------------------------------------------


def test_a_second_run_into_the_same_out_is_refused_before_any_work(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    first = (out / "checkpoint.npz").read_bytes()
    with monkeypatch.context() as patch, pytest.raises(
            SystemExit, match=r"already holds a run .*continue it with --resume .*checkpoint.npz, "
                              r"replace it with --overwrite, or choose another --out"):
        patch.setattr(run, "load_mnist", lambda *a, **k: pytest.fail("loaded data before refusing"))
        run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--max-steps", "2", *SMALL])
    assert (out / "checkpoint.npz").read_bytes() == first
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--max-steps", "2",
                                     "--overwrite",
                       *SMALL]) == 0
    assert (out / "checkpoint.npz").read_bytes() != first


@pytest.mark.parametrize("where, message", [("file", "--out {out} is a file, not a folder"),
                                            ("under_file", "--out {out} cannot be created: {blocker} is a file")])
def test_an_unwritable_out_fails_in_one_line_before_loading_data(script, tiny_mnist, tmp_path, monkeypatch, where,
                                                                 message):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "run"
    monkeypatch.setattr(run, "load_mnist", lambda *a, **k: pytest.fail("loaded data before checking --out"))
    with pytest.raises(SystemExit, match="error: " + message.format(out=out, blocker=blocker)):
        run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), *SMALL])


def test_sigterm_saves_like_ctrl_c_and_says_so(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    real_iteration, calls = gan.train_iteration, []

    def terminated_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_iteration(*args, **kwargs)

    monkeypatch.setattr(gan, "train_iteration", terminated_iteration)
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "2",
                                     *SMALL]) == 143  # 128 + 15
    printed = capsys.readouterr().out
    assert "SIGTERM: stopping after this iteration and writing a checkpoint to" in printed
    assert "interrupted at step 4" in printed and int(params(out / "checkpoint.npz")["meta.step"]) == 4


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_during_the_save_lets_it_finish_then_stops(script, tiny_mnist, tmp_path, monkeypatch, capsys, signals):
    """One Ctrl-C while the checkpoint is written stops the run after the save (not lost, not
    fatal to the save); a second one there is ignored just the same."""
    real_save, calls = run.save_run, []

    def save_interrupted(*args, **kwargs):
        calls.append(1)
        for _ in range(signals):
            os.kill(os.getpid(), signal.SIGINT)  # arrives while the checkpoint is being written
        return real_save(*args, **kwargs)

    monkeypatch.setattr(run, "save_run", save_interrupted)
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "3", *SMALL]) == 130
    printed = capsys.readouterr().out
    assert printed.count("interrupt: the checkpoint is being written; the run stops as soon as it is") == signals
    assert "interrupted at step 6" in printed
    assert len(calls) == 1 and int(params(out / "checkpoint.npz")["meta.epoch"]) == 1


def test_ctrl_c_before_training_is_one_line(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "load_training_data", interrupted)
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(tmp_path / "run"), *SMALL]) == 130
    assert capsys.readouterr().err.strip() == ("interrupted: quit without writing a checkpoint "
                                               "(the last one written is intact)")


def test_a_run_stopped_inside_an_epoch_names_its_grid_by_step(script, tiny_mnist, tmp_path):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--max-steps", "8", *SMALL]) == 0
    assert sorted(p.name for p in out.glob("samples_*.png")) == ["samples_epoch001.png", "samples_step000008.png"]


def test_the_checkpoint_is_written_before_the_pictures(script, tiny_mnist, tmp_path, monkeypatch, capsys):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "run" / "samples_epoch001.png"))

    monkeypatch.setattr(run, "save_image_grid", no_space)
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", *SMALL]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == f"error: No space left on device ({out / 'samples_epoch001.png'})"
    assert "Traceback" not in err
    assert int(params(out / "checkpoint.npz")["meta.epoch"]) == 1


def history(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if k.startswith("history.")}


def test_a_resumed_run_has_the_uninterrupted_loss_history(script, tiny_mnist, tmp_path, monkeypatch):
    base = ["--data-dir", str(tiny_mnist), *SMALL, "--epochs", "2"]  # records every 3 steps
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight")]) == 0
    real_iteration, calls = gan.train_iteration, []

    def interrupted_iteration(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # between two records
            os.kill(os.getpid(), signal.SIGINT)
        return real_iteration(*args, **kwargs)

    monkeypatch.setattr(gan, "train_iteration", interrupted_iteration)
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split")]) == 130
    monkeypatch.setattr(gan, "train_iteration", real_iteration)
    assert run.guarded(script.main, [*base, "--resume", str(tmp_path / "split" / "checkpoint.npz")]) == 0
    straight, split = history(tmp_path / "straight" / "checkpoint.npz"), history(tmp_path / "split" / "checkpoint.npz")
    assert list(straight["history.step"]) == [3, 6, 9, 12]
    assert_same_state(straight, split)


@pytest.mark.parametrize("flag, value, stored", [("--batch-size", "8", "16"), ("--k", "2", "1"), ("--seed", "3", "0"),
                                                 ("--loss", "minimax", "nonsaturating"),
                                                 ("--config", "paper", "reference"), ("--noise", "uniform", "normal")])
def test_resume_refuses_a_flag_that_contradicts_the_checkpoint(script, tiny_mnist, tmp_path, flag, value, stored):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    with pytest.raises(SystemExit, match=f"error: {flag} {value} contradicts the checkpoint's {stored}; "
                                         f"a resumed run keeps its settings: drop {flag}"):
        run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(out / "checkpoint.npz"),
                                  "--epochs", "2",
                    "--log-every", "3", flag, value])


@pytest.mark.parametrize("flags, noise", [([], "uniform"), (["--noise", "normal"], "normal")])
def test_the_paper_run_draws_from_the_authors_prior_unless_told(script, tiny_mnist, tmp_path, monkeypatch,
                                                                  flags, noise):
    drawn = []
    real_sample_noise = gan.sample_noise
    monkeypatch.setattr(gan, "sample_noise", lambda config, *a, **kw: drawn.append(config.noise)
                        or real_sample_noise(config, *a, **kw))
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--config", "paper",
                                     "--max-steps", "2",
                       *SMALL, *flags]) == 0
    assert drawn and set(drawn) == {noise}  # the fixed grid's noise and every minibatch's
    assert str(params(out / "checkpoint.npz")["meta.noise"]) == noise


def test_resume_given_a_folder_points_at_the_checkpoint_inside(script, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    capsys.readouterr()
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--resume", str(out)]) == 1
    assert capsys.readouterr().err.strip() == (f"error: checkpoint {out} is a folder, not a .npz file; "
                                               f"did you mean {out / 'checkpoint.npz'}?")


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_bad_seed_is_a_usage_error(script, seed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--seed", seed])
    assert exit_info.value.code == 2
    assert f"argument --seed: must be an integer in [0, 2**32), got {seed}" in capsys.readouterr().err


def test_an_epoch_with_d_winning_outright_prints_one_warning(script, capsys):
    # Epoch 2 is steps 11-20, recorded at 15 and 20 (5 steps each); step 10 closed epoch 1.
    history = {"step": [5, 10, 15, 20], "d_fake": [0.3, 0.2, 0.004, 0.006]}
    run.warn_if_collapsed(history, epoch_start_step=10, epoch=2)
    assert capsys.readouterr().out.strip().splitlines() == [
        "warning: collapsed in epoch 2: mean D(G(z)) 0.0050 < 0.01 "
        "(D rejects every sample, so G learns almost nothing)"]
    # Records weigh by the steps they cover: 1 step at 0.001 and 9 at 0.02 average 0.0181, no warning.
    run.warn_if_collapsed({"step": [10, 11, 20], "d_fake": [0.3, 0.001, 0.02]}, epoch_start_step=10, epoch=2)
    assert capsys.readouterr().out == ""
