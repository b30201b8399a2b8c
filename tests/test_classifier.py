"""The digit classifier behind FID and IS: its loss, that it learns, and its cache.

Everything runs on tiny synthetic "digits" (ten noisy prototypes): training on real MNIST takes
minutes and is measured outside the test suite.
"""

import numpy as np
import pytest

import minigan
from minigan import Tensor, classifier
from minigan.checkpoint import CheckpointError, save_checkpoint

from synthetic import synthetic_digits  # tests/synthetic.py


# --- the loss ------------------------------------------------------------------------------------


def test_log_softmax_matches_torch_even_for_huge_logits():
    torch = pytest.importorskip("torch")
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0], [-1e4, -1e4 + 1, -1e4 + 2]])
    ours = classifier.log_softmax(Tensor(logits)).numpy()
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, torch.log_softmax(torch.tensor(logits), dim=1).numpy(), rtol=1e-12, atol=1e-12)


def test_cross_entropy_value_and_gradient_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((6, 10)) * 3, rng.integers(0, 10, 6)
    ours = Tensor(logits, requires_grad=True)
    loss = classifier.cross_entropy(ours, labels)
    loss.backward()
    theirs = torch.tensor(logits, requires_grad=True)
    reference = torch.nn.functional.cross_entropy(theirs, torch.tensor(labels))
    reference.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_gradcheck():
    rng = np.random.default_rng(1)
    logits = Tensor(rng.standard_normal((5, 4)), requires_grad=True)
    labels = np.array([0, 3, 1, 1, 2])
    minigan.gradcheck(lambda x: classifier.cross_entropy(x, labels), [logits], full=True)


def test_cross_entropy_rejects_mismatched_labels():
    with pytest.raises(ValueError, match=r"logits \(4, 10\) and 3 labels"):
        classifier.cross_entropy(Tensor(np.zeros((4, 10))), [1, 2, 3])


# --- training and the outputs --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_classifier():
    images, labels = synthetic_digits(1000)
    return classifier.train_classifier(images, labels, epochs=3, lr=1e-2, hidden=(64, 32), progress=False)


def test_training_learns_the_synthetic_classes(small_classifier):
    images, labels = synthetic_digits(500, seed=1)  # held out: fresh noise
    assert small_classifier.accuracy(images, labels) > 0.95


def test_features_and_probabilities_have_the_documented_shapes(small_classifier):
    images, _ = synthetic_digits(7, seed=2)
    features = small_classifier.features(images)
    probabilities = small_classifier.class_probabilities(images)
    assert features.shape == (7, 32) and features.dtype == np.float64
    assert np.all(features >= 0)  # ReLU outputs
    assert probabilities.shape == (7, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    # uint8 (N, 28, 28) digits and float (N, 784) pixels in [0, 1] are the same input
    rows = images.reshape(7, 784).astype(np.float32) / 255
    np.testing.assert_allclose(small_classifier.features(rows), features, rtol=1e-6)
    # batching changes only float32 rounding
    np.testing.assert_allclose(small_classifier.features(images, batch_size=3), features, rtol=1e-5, atol=1e-6)


def test_default_size_is_784_512_256_10():
    model = classifier.DigitClassifier()
    assert [p.shape for p in model.parameters()] == [(784, 512), (512,), (512, 256), (256,), (256, 10), (10,)]
    assert model.features(np.zeros((2, 28, 28), np.uint8)).shape == (2, 256)


def test_rejects_images_of_the_wrong_size(small_classifier):
    with pytest.raises(ValueError, match="expected 28×28 images or 784-pixel rows"):
        small_classifier.features(np.zeros((2, 10, 10)))


# --- the cache -----------------------------------------------------------------------------------


@pytest.fixture
def tiny_training(monkeypatch):
    """load_mnist returns synthetic digits, and training is small; counts how often it trains."""
    calls = []
    real_train = classifier.train_classifier

    def fake_load_mnist(split, data_dir=None):
        return synthetic_digits(300 if split == "train" else 100, seed=0 if split == "train" else 1)

    def small_train(images, labels, **kwargs):
        calls.append(len(images))
        return real_train(images, labels, epochs=1, hidden=(16, 8), progress=False)

    monkeypatch.setattr(classifier, "load_mnist", fake_load_mnist)
    monkeypatch.setattr(classifier, "train_classifier", small_train)
    return calls


def refuse_to_train(*args, **kwargs):
    raise AssertionError("trained although a usable cache exists")


def test_trains_once_then_loads_from_the_cache(tmp_path, tiny_training, monkeypatch):
    first = classifier.load_or_train_classifier(cache_dir=tmp_path)
    assert tiny_training == [300]
    assert (tmp_path / classifier.CACHE_NAME).is_file()
    assert 0 <= first.test_accuracy <= 1

    monkeypatch.setattr(classifier, "train_classifier", refuse_to_train)
    second = classifier.load_or_train_classifier(cache_dir=tmp_path)
    images, _ = synthetic_digits(5, seed=3)
    np.testing.assert_array_equal(second.features(images), first.features(images))
    assert second.test_accuracy == pytest.approx(first.test_accuracy)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shapes"])
def test_a_damaged_cache_is_retrained(tmp_path, tiny_training, capsys, damage):
    path = tmp_path / classifier.CACHE_NAME
    if damage == "garbage":
        path.write_bytes(b"this is not an npz file")
    elif damage == "truncated":
        classifier.load_or_train_classifier(cache_dir=tmp_path)
        path.write_bytes(path.read_bytes()[:1000])
    else:  # a readable file whose weights do not fit the layers it names
        save_checkpoint(path, {"classifier.body.0.weight": np.zeros((3, 3)), "meta.hidden": np.array([16, 8]),
                               "meta.test_accuracy": 0.5})
    trained_before = len(tiny_training)
    model = classifier.load_or_train_classifier(cache_dir=tmp_path)
    assert len(tiny_training) == trained_before + 1
    assert "training a new one" in capsys.readouterr().err
    # the new cache is whole again
    assert classifier.load_classifier(path).hidden == model.hidden


def test_load_classifier_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        classifier.load_classifier(tmp_path / "missing.npz")


def test_cache_lives_under_xdg_cache_home(tmp_path, tiny_training, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert classifier.default_cache_dir() == tmp_path / "minigan"
    classifier.load_or_train_classifier()
    assert (tmp_path / "minigan" / classifier.CACHE_NAME).is_file()
