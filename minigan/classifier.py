"""A digit classifier for judging samples, trained with minigan itself.

FID, the Inception Score and class coverage (minigan.metrics) need a network that knows what
digits look like. Inception is the usual choice for photographs; for MNIST a small MLP trained on
the training digits does the same job: its penultimate layer (256 ReLU units) gives the features
for FID, its softmax the class probabilities for the Inception Score and coverage.

    classifier = load_or_train_classifier()  # MNIST from minigan.data's usual places
    classifier.features(images)             # (N, 256) float64
    classifier.class_probabilities(images)  # (N, 10), rows sum to 1

Training takes a minute or two on a CPU and reaches about 98% test accuracy; the weights are
cached in the user cache folder ($XDG_CACHE_HOME/minigan, else ~/.cache/minigan), so that every
evaluation after the first uses the same classifier, and so the same FID scale.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import backend, nn, optim
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, split_prefix, with_prefix
from .data import load_mnist, mnist_cache_dir
from .tensor import Tensor, no_grad

HIDDEN = (512, 256)
NUM_CLASSES = 10
# Bump when the architecture or training recipe changes, so that an old cache is not reused.
CACHE_NAME = "mnist_classifier_v1.npz"

EPOCHS = 8
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
EVAL_BATCH_SIZE = 2000


class CacheDirError(CheckpointError):
    """A cache folder that the classifier can be neither read from nor written to."""


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/minigan, else ~/.cache/minigan: the folder that holds the MNIST download."""
    return mnist_cache_dir().parent


def check_cache_dir(cache_dir=None, need_write=False) -> Path:
    """The cache folder (default `default_cache_dir()`), once it is clear that a classifier can be
    read from it or, if there is none (or `need_write`), written into it; else a CacheDirError.

    Checked before any data is loaded, so that minutes of training never end in a failed save.
    Creates nothing: a folder that does not exist yet is fine if its nearest existing parent is
    a writable folder.
    """
    folder = Path(cache_dir or default_cache_dir()).expanduser()
    if not need_write and (folder / CACHE_NAME).is_file():
        return folder
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CacheDirError(f"cannot cache the classifier in {folder}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CacheDirError(f"cannot cache the classifier in {folder}: {existing} is not writable")
    return folder


# --- the loss ----------------------------------------------------------------------------------


def log_softmax(logits: Tensor) -> Tensor:
    """log softmax over the last axis of (N, classes) logits: x − max − log Σ exp(x − max).

    Subtracting the row maximum keeps exp from overflowing and changes nothing else: it cancels
    between the two terms, so its gradient is exactly zero and we pass it as a constant.
    """
    shift = Tensor(logits.data.max(axis=1, keepdims=True))
    shifted = logits - shift
    return shifted - shifted.exp().sum(axis=1, keepdims=True).log()


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Mean of −log softmax(logits)[label] over the batch."""
    xp = backend.array_module(logits.data)
    labels = xp.asarray(labels).astype(np.int64).ravel()
    if logits.ndim != 2 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"cross_entropy: logits {logits.shape} and {labels.shape[0]} labels do not match")
    # Picking one entry per row, written as a product with a one-hot mask so that it needs no
    # gather op: the mask is a constant, so the gradient lands only on the chosen logits' terms.
    one_hot = xp.zeros(logits.shape, dtype=logits.dtype)
    one_hot[xp.arange(labels.shape[0]), labels] = 1
    return -(log_softmax(logits) * Tensor(one_hot)).sum() * (1.0 / labels.shape[0])


# --- the network -------------------------------------------------------------------------------


def pixel_rows(images, dtype=np.float32) -> np.ndarray:
    """Images as (N, 784) rows in [0, 1]: uint8 digits are divided by 255, floats kept as they are."""
    xp = backend.array_module(images)
    images = xp.asarray(images)
    if images.ndim == 0 or images.shape[0] == 0:
        raise ValueError("classifier: no images given")
    rows = images.reshape(images.shape[0], -1)
    if rows.shape[1] != 784:
        raise ValueError(f"classifier: expected 28×28 images or 784-pixel rows, got shape {tuple(images.shape)}")
    if images.dtype == np.uint8:
        return rows.astype(dtype) / 255
    return rows.astype(dtype, copy=False)


class DigitClassifier(nn.Module):
    """784 → 512 → 256 → 10, ReLU. `features` is the 256-unit layer, `head` turns it into logits."""

    def __init__(self, hidden=HIDDEN, dtype=np.float32, device="cpu"):
        self.hidden = tuple(int(h) for h in hidden)
        sizes = (784, *self.hidden)
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out, dtype=dtype, device=device), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], NUM_CLASSES, dtype=dtype, device=device)
        self.test_accuracy = None  # set when trained or loaded from the cache
        self.dtype, self.device = dtype, backend.normalize_device(device)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    def _in_batches(self, images, layer, batch_size) -> np.ndarray:
        rows = pixel_rows(images, self.dtype)
        outputs = []
        with no_grad():
            for start in range(0, rows.shape[0], batch_size):
                x = Tensor(backend.to_device(rows[start:start + batch_size], self.device))
                outputs.append(backend.to_numpy(layer(x).data).astype(np.float64))
        return np.concatenate(outputs)

    def features(self, images, batch_size=EVAL_BATCH_SIZE) -> np.ndarray:
        """The penultimate layer's activations, (N, 256) float64 on the host: FID's features."""
        return self._in_batches(images, self.body, batch_size)

    def logits(self, images, batch_size=EVAL_BATCH_SIZE) -> np.ndarray:
        return self._in_batches(images, self, batch_size)

    def class_probabilities(self, images, batch_size=EVAL_BATCH_SIZE) -> np.ndarray:
        """p(y | x), (N, 10) float64, each row summing to 1."""
        logits = self.logits(images, batch_size)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, images, batch_size=EVAL_BATCH_SIZE) -> np.ndarray:
        return self.logits(images, batch_size).argmax(axis=1)

    def accuracy(self, images, labels) -> float:
        return float((self.predict(images) == np.asarray(backend.to_numpy(labels)).ravel()).mean())


# --- training and the cache ----------------------------------------------------------------------


def train_classifier(images, labels, epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LEARNING_RATE, hidden=HIDDEN,
                     seed=0, device="cpu", progress=True) -> DigitClassifier:
    """Train a DigitClassifier with Adam on (images, labels), minibatches in a seeded random order.

    The learning rate falls from `lr` to 0 along a cosine over all steps: the last epochs then
    settle into a minimum instead of bouncing around it, worth a few tenths of a percent of test
    accuracy. Reseeds minigan's generators with `seed` (the initial weights come from them).
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"train_classifier: {name} must be a positive integer, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"train_classifier: lr must be a finite number > 0, got {lr!r}")
    rows = pixel_rows(images)
    labels = np.asarray(backend.to_numpy(labels)).astype(np.int64).ravel()
    if rows.shape[0] != labels.shape[0]:
        raise ValueError(f"train_classifier: {rows.shape[0]} images but {labels.shape[0]} labels")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"train_classifier: labels must lie in [0, {NUM_CLASSES}), got {labels.min()}..{labels.max()}")
    backend.manual_seed(seed)
    model = DigitClassifier(hidden, device=device)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    data, targets = backend.to_device(rows, device), backend.to_device(labels, device)
    batches_per_epoch = math.ceil(rows.shape[0] / batch_size)
    total_steps, step = epochs * batches_per_epoch, 0
    for epoch in range(epochs):
        order = backend.to_device(rng.permutation(rows.shape[0]), device)
        bar = tqdm(range(batches_per_epoch), desc=f"classifier epoch {epoch + 1}/{epochs}", leave=False,
                   disable=not progress, dynamic_ncols=True)
        for batch in bar:
            rows_in_batch = order[batch * batch_size:(batch + 1) * batch_size]
            optimizer.lr = lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            loss = cross_entropy(model(Tensor(data[rows_in_batch])), targets[rows_in_batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if batch % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return model


def save_classifier(path, model: DigitClassifier) -> Path:
    arrays = {**with_prefix(model.state_dict(), "classifier."), "meta.hidden": np.asarray(model.hidden),
              "meta.test_accuracy": np.nan if model.test_accuracy is None else model.test_accuracy}
    return save_checkpoint(path, arrays)


def load_classifier(path, device="cpu") -> DigitClassifier:
    """Read a cached classifier, or raise CheckpointError if it is missing or does not fit."""
    arrays = load_checkpoint(path)
    try:
        model = DigitClassifier(tuple(arrays["meta.hidden"].tolist()), device=device)
        model.load_state_dict(split_prefix(arrays, "classifier."))
        accuracy = float(arrays["meta.test_accuracy"])
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"classifier {path} does not fit: {error}") from None
    model.test_accuracy = None if math.isnan(accuracy) else accuracy
    return model


def load_or_train_classifier(data_dir=None, cache_dir=None, device="cpu") -> DigitClassifier:
    """The cached MNIST classifier; trained on the 60,000 training digits (and cached) when the
    cache holds none, or one that cannot be read."""
    path = check_cache_dir(cache_dir) / CACHE_NAME
    if path.exists():
        try:
            return load_classifier(path, device)
        except CheckpointError as error:
            check_cache_dir(cache_dir, need_write=True)  # before the training, not after
            print(f"{error}; training a new one", file=sys.stderr)
    train_images, train_labels = load_mnist("train", data_dir=data_dir)
    test_images, test_labels = load_mnist("test", data_dir=data_dir)
    print(f"training the MNIST classifier for FID and IS (once; cached as {path})", file=sys.stderr)
    started = time.perf_counter()
    model = train_classifier(train_images, train_labels, device=device)
    model.test_accuracy = model.accuracy(test_images, test_labels)
    print(f"classifier: {model.test_accuracy:.2%} test accuracy after {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    save_classifier(path, model)
    return model
