"""python -m minigan.evaluate end to end, on tiny synthetic digits and a small injected classifier.

The real run (10,000 samples against 10,000 MNIST test digits, a classifier trained on 60,000)
takes minutes; here the same code path runs on a few hundred synthetic images in seconds.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from minigan import backend, classifier, evaluate, gan
from minigan.checkpoint import save_checkpoint, with_prefix
from minigan.data import MNISTError

from synthetic import synthetic_digits  # tests/synthetic.py


def write_reference_checkpoint(path):
    """A freshly built `reference` G, saved with the key layout of examples/mnist.py's checkpoint()."""
    G = gan.build_generator(gan.CONFIGS["reference"])
    arrays = {**with_prefix(G.state_dict(), "G."), "meta.config": "reference", "meta.noise": "normal",
              "meta.epoch": 0, "meta.step": 0}
    return save_checkpoint(path, arrays)


@pytest.fixture
def tiny_world(monkeypatch, small_classifier):
    """Synthetic MNIST (300 train, 100 test), σ chosen on train[200:250], and the small classifier."""
    def fake_load_mnist(split, data_dir=None):
        return synthetic_digits(300, seed=0) if split == "train" else synthetic_digits(100, seed=1)

    monkeypatch.setattr(evaluate, "load_mnist", fake_load_mnist)
    monkeypatch.setattr(evaluate, "VALIDATION_ROWS", slice(200, 250))
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda **kwargs: small_classifier)


def test_end_to_end_writes_a_json_of_finite_numbers(tmp_path, tiny_world, capsys):
    checkpoint = write_reference_checkpoint(tmp_path / "run" / "checkpoint.npz")
    status = evaluate.run([str(checkpoint), "--samples", "200", "--test-size", "80", "--seed", "3"])
    assert status == 0
    out = capsys.readouterr().out
    assert "GAN samples" in out and "real training digits" in out

    result = json.loads((tmp_path / "run" / "checkpoint.evaluation.json").read_text())
    assert result["config"] == "reference" and result["samples"] == 200 and result["test_size"] == 80
    for row in (result["model"], result["real_train_digits"]):
        parzen = row["parzen"]
        assert set(parzen) == {"log_likelihood", "standard_error", "sigma", "validation_log_likelihood"}
        assert len(parzen["validation_log_likelihood"]) == 10
        assert parzen["sigma"] in [pytest.approx(s) for s in evaluate.PARZEN_SIGMAS]
        numbers = [parzen["log_likelihood"], parzen["standard_error"], row["fid"], row["inception_score"],
                   row["kl_to_uniform"]]
        assert all(math.isfinite(x) for x in numbers)
        assert 1 <= row["inception_score"] <= 10 and 0 <= row["classes_covered"] <= 10
        assert sum(row["class_histogram"]) == 200

    # An untrained G draws noise; real digits are real. Every measure must tell them apart, which
    # a mix-up of the two sets (or of samples and test digits) would break.
    model, real = result["model"], result["real_train_digits"]
    assert real["parzen"]["log_likelihood"] > model["parzen"]["log_likelihood"]
    assert real["fid"] < model["fid"]
    assert real["inception_score"] > 5 > model["inception_score"]
    assert real["classes_covered"] == 10


def test_samples_are_pixels_in_unit_range_and_follow_the_seed():
    G = gan.build_generator(gan.CONFIGS["reference"])
    config = gan.CONFIGS["reference"]
    first = evaluate.generate_pixels(G, config, 1500, seed=5)  # more than one batch of noise
    assert first.shape == (1500, 784) and first.min() >= 0 and first.max() <= 1
    np.testing.assert_array_equal(evaluate.generate_pixels(G, config, 1500, seed=5), first)
    assert not np.array_equal(evaluate.generate_pixels(G, config, 1500, seed=6), first)
    # tanh's [-1, 1] maps onto [0, 1]: an untrained G's outputs near 0 become mid-grey
    assert abs(first.mean() - 0.5) < 0.1


def test_a_corrupt_checkpoint_is_one_line_and_exit_1(tmp_path, tiny_world, capsys):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert evaluate.run([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "corrupt" in err
    assert err.count("\n") == 1
    assert not list(tmp_path.glob("*.json"))


def test_a_missing_checkpoint_is_one_line_and_exit_1(tmp_path, capsys):
    assert evaluate.run([str(tmp_path / "nope.npz")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_samples_come_from_the_checkpoints_prior(tmp_path, noise):
    G = gan.build_generator(gan.CONFIGS["paper"])
    path = save_checkpoint(tmp_path / "checkpoint.npz", {**with_prefix(G.state_dict(), "G."),
                                                         "meta.config": "paper", "meta.noise": noise})
    _, config, _ = evaluate.load_generator(path)
    assert config.name == "paper" and config.noise == noise


@pytest.mark.parametrize("stored", [None, "laplace"])
def test_a_checkpoint_without_a_known_prior_is_one_line(tmp_path, capsys, stored):
    G = gan.build_generator(gan.CONFIGS["reference"])
    arrays = {**with_prefix(G.state_dict(), "G."), "meta.config": "reference"}
    if stored is not None:
        arrays["meta.noise"] = stored
    path = save_checkpoint(tmp_path / "checkpoint.npz", arrays)
    assert evaluate.run([str(path)]) == 1
    assert capsys.readouterr().err == f"error: checkpoint {path} has no valid meta.noise (the prior p_z): " \
                                      f"not written by this version of examples/mnist.py\n"


def test_a_checkpoint_of_another_shape_is_a_checkpoint_error(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "checkpoint.npz", {"G.0.weight": np.zeros((3, 3)), "meta.config": "reference",
                                                                 "meta.noise": "normal"})
    assert evaluate.run([str(path)]) == 1
    assert "does not fit the reference generator" in capsys.readouterr().err


def test_missing_mnist_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    def no_mnist(split, data_dir=None):
        raise MNISTError(f"MNIST not found in {data_dir}")

    monkeypatch.setattr(evaluate, "load_mnist", no_mnist)
    checkpoint = write_reference_checkpoint(tmp_path / "checkpoint.npz")
    assert evaluate.run([str(checkpoint), "--data-dir", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: MNIST not found in {tmp_path / 'empty'}\n"


def test_parzen_row_picks_the_sigma_with_the_best_validation_likelihood():
    rng = np.random.default_rng(0)
    samples, validation, test = rng.random((50, 4)), rng.random((20, 4)), rng.random((30, 4))
    row = evaluate.parzen_row(samples, validation, test, "check")
    table = row["validation_log_likelihood"]
    assert row["sigma"] == pytest.approx(float(max(table, key=table.get)), rel=1e-3)
    assert len(table) == 10


# --- bad arguments fail up front, in one line -------------------------------------------------------


@pytest.fixture
def nothing_may_load(monkeypatch):
    """Make loading data or training the classifier an error, to prove a check came before them."""
    def refuse(*args, **kwargs):
        raise AssertionError("loaded data or trained although the arguments were bad")

    monkeypatch.setattr(evaluate, "load_mnist", refuse)
    monkeypatch.setattr(evaluate, "load_or_train_classifier", refuse)
    monkeypatch.setattr(classifier, "load_mnist", refuse)
    monkeypatch.setattr(classifier, "train_classifier", refuse)


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_a_cache_dir_that_is_a_file(tmp_path, nothing_may_load, capsys, where):
    checkpoint = write_reference_checkpoint(tmp_path / "checkpoint.npz")
    blocker = tmp_path / "cache"
    blocker.write_text("I am a file")
    cache_dir = blocker if where == "file" else blocker / "minigan"
    assert evaluate.run([str(checkpoint), "--cache-dir", str(cache_dir)]) == 1
    assert capsys.readouterr().err == (f"error: cannot cache the classifier in {cache_dir}: {blocker} is not a "
                                       f"folder; pass another --cache-dir\n")
    assert not list(tmp_path.glob("*.json"))


def test_an_unwritable_cache_dir(tmp_path, nothing_may_load, monkeypatch, capsys):
    checkpoint = write_reference_checkpoint(tmp_path / "checkpoint.npz")
    (tmp_path / "locked").mkdir()
    # os.access is what the check asks; faked, because root (as in CI containers) may write anywhere.
    monkeypatch.setattr(classifier.os, "access", lambda path, mode: Path(path) != tmp_path / "locked")
    cache_dir = tmp_path / "locked" / "cache"
    assert evaluate.run([str(checkpoint), "--cache-dir", str(cache_dir)]) == 1
    assert capsys.readouterr().err == (f"error: cannot cache the classifier in {cache_dir}: {tmp_path / 'locked'} "
                                       f"is not writable; pass another --cache-dir\n")
    assert list((tmp_path / "locked").iterdir()) == []  # the check creates nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_a_read_only_cache_dir_really_is_refused(tmp_path, nothing_may_load, capsys):
    checkpoint = write_reference_checkpoint(tmp_path / "checkpoint.npz")
    (tmp_path / "ro").mkdir(mode=0o500)
    try:
        assert evaluate.run([str(checkpoint), "--cache-dir", str(tmp_path / "ro")]) == 1
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert capsys.readouterr().err.endswith(f"{tmp_path / 'ro'} is not writable; pass another --cache-dir\n")


def test_a_read_only_cache_that_holds_the_classifier_is_fine(tmp_path, monkeypatch):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / classifier.CACHE_NAME).write_bytes(b"")
    monkeypatch.setattr(classifier.os, "access", lambda path, mode: False)
    assert classifier.check_cache_dir(tmp_path / "cache") == tmp_path / "cache"
    with pytest.raises(classifier.CacheDirError, match="is not writable$"):
        classifier.check_cache_dir(tmp_path / "cache", need_write=True)  # as when that cache is damaged


@pytest.mark.parametrize("flags, message", [
    (["--test-size", "10001"], "--test-size 10001 is more than the 10000 digits of the MNIST test set"),
    (["--samples", "60001"], "--samples 60001 is more than the 60000 training digits that are scored in their place"),
])
def test_sizes_beyond_mnist_are_argparse_errors(tmp_path, nothing_may_load, capsys, flags, message):
    with pytest.raises(SystemExit) as info:
        evaluate.run([str(tmp_path / "checkpoint.npz"), *flags])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m minigan.evaluate: error: {message}"


@pytest.mark.parametrize("device, message", [
    ("tpu", "unknown device 'tpu': use 'cpu', 'cuda' or 'cuda:N'"),
    pytest.param("cuda", "device 'cuda' needs CuPy", marks=pytest.mark.skipif(
        backend.cuda_available(), reason="CUDA is available here")),
])
def test_a_device_this_machine_cannot_run_is_one_line(tmp_path, nothing_may_load, capsys, device, message):
    with pytest.raises(SystemExit) as info:
        evaluate.run([str(tmp_path / "checkpoint.npz"), "--device", device])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err  # no usage block above it
    assert err.startswith(f"python -m minigan.evaluate: error: {message}")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_checkpoint_with_non_finite_weights_is_one_line(tmp_path, nothing_may_load, capsys, bad):
    G = gan.build_generator(gan.CONFIGS["reference"])
    state = G.state_dict()
    names = list(state)
    state[names[0]][0, 0] = bad
    state[names[-1]][:] = bad
    path = save_checkpoint(tmp_path / "checkpoint.npz", {**with_prefix(state, "G."), "meta.config": "reference",
                                                              "meta.noise": "normal"})
    assert evaluate.run([str(path), "--cache-dir", str(tmp_path / "cache")]) == 1
    assert capsys.readouterr().err == (f"error: checkpoint {path} has NaN or infinite generator weights "
                                       f"(G.{names[0]}, G.{names[-1]}): the run diverged; evaluate an earlier "
                                       f"checkpoint\n")


def test_data_dir_help_gives_the_lookup_order(capsys):
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("--data-dir DATA_DIR folder with the MNIST files; else $MINIGAN_DATA, then the checkout's data/mnist, "
            "then ~/.cache/minigan/mnist (downloaded there if none has them)") in help_text
