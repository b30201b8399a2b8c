"""python -m minigan.evaluate end to end, on tiny synthetic digits and a small injected classifier.

The real run (10,000 samples against 10,000 MNIST test digits, a classifier trained on 60,000)
takes minutes; here the same code path runs on a few hundred synthetic images in seconds.
"""

import json
import math

import numpy as np
import pytest

from minigan import classifier, evaluate, gan
from minigan.checkpoint import save_checkpoint, with_prefix
from minigan.data import MNISTError

from synthetic import synthetic_digits  # tests/synthetic.py


def write_reference_checkpoint(path):
    """A freshly built `reference` G, saved with the key layout of examples/mnist.py's checkpoint()."""
    G = gan.build_generator(gan.CONFIGS["reference"])
    arrays = {**with_prefix(G.state_dict(), "G."), "meta.config": "reference", "meta.epoch": 0, "meta.step": 0}
    return save_checkpoint(path, arrays)


@pytest.fixture(scope="module")
def small_classifier():
    images, labels = synthetic_digits(1000)
    model = classifier.train_classifier(images, labels, epochs=3, lr=1e-2, hidden=(64, 32), progress=False)
    model.test_accuracy = 1.0
    return model


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

    result = json.loads((tmp_path / "run" / "evaluation.json").read_text())
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
    assert not (tmp_path / "evaluation.json").exists()


def test_a_missing_checkpoint_is_one_line_and_exit_1(tmp_path, capsys):
    assert evaluate.run([str(tmp_path / "nope.npz")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and err.count("\n") == 1


def test_a_checkpoint_of_another_shape_is_a_checkpoint_error(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "checkpoint.npz", {"G.0.weight": np.zeros((3, 3)), "meta.config": "reference"})
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
