"""benchmarks/paper_parzen_diagnosis.py: the filter, the pixel count and the nearest distances."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import paper_parzen_diagnosis as diagnosis  # noqa: E402


def image(*bright):
    """One (1, 784) image, zero but for the (row, col) pixels given, which are 1."""
    x = np.zeros((28, 28))
    for r, c in bright:
        x[r, c] = 1.0
    return x.reshape(1, 784)


def test_median_filter_removes_an_isolated_pixel_and_keeps_a_thick_stroke():
    stroke = [(r, c) for r in range(10, 13) for c in range(5, 20)]  # 3 rows × 15 columns
    img = image((2, 2), *stroke)
    filtered = diagnosis.median_filter(img).reshape(28, 28)
    assert filtered[2, 2] == 0.0
    assert (filtered[10:13, 6:19] == 1.0).all()  # the stroke, but for its two end columns
    assert filtered.sum() < img.sum()


def test_isolated_bright_pixels_counts_lonely_pixels_only():
    lonely_and_pair = np.concatenate([image((0, 0), (5, 5)), image((8, 8), (8, 9))])
    assert diagnosis.isolated_bright_pixels(lonely_and_pair) == pytest.approx((2 + 0) / 2)
    dim = image((4, 4)) * 0.4  # not bright
    assert diagnosis.isolated_bright_pixels(dim) == 0.0


def test_mean_nearest_squared_distance_by_hand():
    images = np.array([[0.0, 0.0], [3.0, 4.0]])
    test = np.array([[0.0, 1.0], [3.0, 3.0]])
    # nearest of (0, 1): (0, 0) at 1; nearest of (3, 3): (3, 4) at 1
    assert diagnosis.mean_nearest_squared_distance(images, test) == pytest.approx(1.0)
    assert diagnosis.mean_nearest_squared_distance(images, np.array([[6.0, 8.0]])) == pytest.approx(25.0)


def test_diagnose_scores_four_rows_and_tells_stray_pixels_from_real_digits():
    rng = np.random.default_rng(0)
    # "Digits" of thick strokes: random 7×7 patterns blown up to 28×28 (4×4 blocks), no lonely pixel.
    blocks = (rng.random((60, 7, 7)) < 0.3).astype(np.float64)
    digits = blocks.repeat(4, axis=1).repeat(4, axis=2).reshape(60, 784)
    stray = np.zeros_like(digits[:30])
    # One stray pixel per image (lonely unless it lands on a stroke).
    stray[np.arange(30), rng.integers(0, 784, 30)] = 1.0
    samples = np.maximum(digits[:30], stray)
    rows = diagnosis.diagnose(samples, digits[:30], validation=digits[30:40], test=digits[:20])
    assert list(rows) == ["samples", "samples, 3x3 median", "real digits", "real digits, 3x3 median"]
    assert rows["real digits"]["isolated_bright_pixels_per_image"] == 0.0
    assert rows["samples"]["isolated_bright_pixels_per_image"] > 0.3
    assert rows["real digits"]["nearest_squared_distance"] == pytest.approx(0.0, abs=1e-9)  # test ⊂ real
    assert rows["samples"]["nearest_squared_distance"] > 0.3
    assert rows["samples"]["parzen"] < rows["real digits"]["parzen"]
    assert rows["samples, 3x3 median"]["isolated_bright_pixels_per_image"] == 0.0
    assert all(np.isfinite(row["parzen"]) and row["sigma"] > 0 for row in rows.values())
    assert "samples, 3x3 median" in diagnosis.format_rows(rows)
