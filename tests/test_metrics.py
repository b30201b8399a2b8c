"""Sample-quality metrics against brute-force references and hand-made cases with known answers."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigan import backend
from minigan.metrics import (
    class_coverage,
    frechet_distance,
    inception_score,
    mode_coverage,
    parzen_log_likelihood,
    parzen_summary,
    ring_modes,
    sample_ring,
    select_parzen_sigma,
)

def brute_force_parzen(samples, x, sigma):
    """The Parzen estimate written the slow, obvious way: explicit differences, a plain log-sum-exp."""
    samples = np.asarray(samples, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    d = samples.shape[1]
    result = []
    for row in x:
        exponents = -((row[None, :] - samples) ** 2).sum(axis=1) / (2 * sigma**2)
        top = exponents.max()
        log_sum = top + math.log(np.exp(exponents - top).sum())
        result.append(log_sum - math.log(len(samples)) - d * math.log(sigma * math.sqrt(2 * math.pi)))
    return np.array(result)


# --- Parzen ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.05, 0.2, 1.0])
def test_parzen_matches_brute_force(device, sigma):
    rng = np.random.default_rng(0)
    samples = rng.random((37, 12))
    x = rng.random((23, 12))
    got = parzen_log_likelihood(backend.to_device(samples, device), backend.to_device(x, device), sigma)
    assert backend.device_of(got) == backend.normalize_device(device)
    got = backend.to_numpy(got)
    assert got.shape == (23,) and got.dtype == np.float64
    np.testing.assert_allclose(got, brute_force_parzen(samples, x, sigma), rtol=1e-10, atol=1e-9)


def test_parzen_single_sample_is_gaussian_log_density():
    # One sample: the Parzen window is a single N(mu, sigma^2 I), whose log density is known.
    mu = np.array([[1.0, -2.0, 0.5]])
    x = np.array([[1.0, -2.0, 0.5], [2.0, 0.0, 0.0]])
    sigma = 0.5
    expected = -((x - mu) ** 2).sum(axis=1) / (2 * sigma**2) - 3 * math.log(sigma * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(parzen_log_likelihood(mu, x, sigma), expected, rtol=1e-12)


def test_parzen_far_points_stay_finite():
    # exp(-10^6) underflows to 0, so a naive log(mean(exp(.))) gives -inf; the shifted one does not.
    samples = np.zeros((5, 2))
    x = np.array([[100.0, 100.0]])
    sigma = 0.1
    got = parzen_log_likelihood(samples, x, sigma)
    expected = -20000.0 / (2 * sigma**2) - 2 * math.log(sigma * math.sqrt(2 * math.pi))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, [expected], rtol=1e-12)


@pytest.mark.parametrize("batch_size, sample_batch_size", [(1, 1), (3, 5), (7, 64), (1000, 2)])
def test_parzen_chunking_does_not_change_the_answer(batch_size, sample_batch_size):
    rng = np.random.default_rng(1)
    samples = rng.random((41, 9))
    x = rng.random((17, 9))
    one_chunk = parzen_log_likelihood(samples, x, 0.15, batch_size=10_000, sample_batch_size=10_000)
    chunked = parzen_log_likelihood(samples, x, 0.15, batch_size=batch_size, sample_batch_size=sample_batch_size)
    np.testing.assert_allclose(chunked, one_chunk, rtol=1e-12, atol=1e-10)


def test_parzen_float32_inputs_are_computed_in_float64():
    rng = np.random.default_rng(2)
    samples = rng.random((30, 784)).astype(np.float32)
    x = rng.random((5, 784)).astype(np.float32)
    got = parzen_log_likelihood(samples, x, 0.1)
    assert got.dtype == np.float64
    # The float64 reference on the same (float32-representable) values; a float32 computation of
    # exponents around -10^4 would be off by about 10^-3, far outside this tolerance.
    np.testing.assert_allclose(got, brute_force_parzen(samples, x, 0.1), rtol=1e-11)


@settings(deadline=None, max_examples=25)
@given(
    num_samples=st.integers(1, 8),
    num_rows=st.integers(1, 8),
    num_features=st.integers(1, 6),
    sigma=st.floats(0.05, 3.0),
    seed=st.integers(0, 2**32 - 1),
    sample_batch_size=st.integers(1, 9),
)
def test_parzen_matches_brute_force_over_shapes(num_samples, num_rows, num_features, sigma, seed, sample_batch_size):
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-2, 2, (num_samples, num_features))
    x = rng.uniform(-2, 2, (num_rows, num_features))
    got = parzen_log_likelihood(samples, x, sigma, batch_size=3, sample_batch_size=sample_batch_size)
    np.testing.assert_allclose(got, brute_force_parzen(samples, x, sigma), rtol=1e-9, atol=1e-8)


def test_parzen_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="samples have 3 features but x has 4"):
        parzen_log_likelihood(np.zeros((2, 3)), np.zeros((2, 4)), 0.1)
    with pytest.raises(ValueError, match="2-D"):
        parzen_log_likelihood(np.zeros((2, 28, 28)), np.zeros((2, 784)), 0.1)
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0, got 0\.0"):
        parzen_log_likelihood(np.zeros((2, 3)), np.zeros((2, 3)), 0.0)


def test_select_sigma_recovers_the_spread_of_the_data():
    # With every sample at the origin the Parzen window is one Gaussian N(0, sigma^2 I), so the
    # best sigma is the spread of the validation data. Draw it with a spread on the grid.
    sigmas = np.logspace(-1, 0, 10)
    true_sigma = sigmas[4]  # 0.278
    rng = np.random.default_rng(3)
    samples = np.zeros((4, 5))
    validation = true_sigma * rng.standard_normal((2000, 5))
    best_sigma, table = select_parzen_sigma(samples, validation, sigmas)
    assert best_sigma == pytest.approx(true_sigma)
    assert list(table) == pytest.approx(list(sigmas))
    for sigma, mean_ll in table.items():
        assert mean_ll == pytest.approx(brute_force_parzen(samples, validation, sigma).mean(), rel=1e-10)
    assert table[best_sigma] == max(table.values())


def test_parzen_summary_is_mean_and_standard_error():
    mean, standard_error = parzen_summary(np.array([1.0, 2.0, 3.0, 6.0]))
    assert mean == 3.0
    assert standard_error == pytest.approx(math.sqrt(3.5) / 2)  # population std sqrt(3.5), N = 4
    assert isinstance(mean, float) and isinstance(standard_error, float)


# --- FID ------------------------------------------------------------------------------------


def random_features(seed, rows=300, features=8):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((features, features))
    return rng.standard_normal((rows, features)) @ mixing + rng.standard_normal(features)


def test_fid_of_a_set_with_itself_is_zero():
    features = random_features(4)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_fid_is_symmetric_and_positive():
    a, b = random_features(5), random_features(6)
    forward, backward = frechet_distance(a, b), frechet_distance(b, a)
    assert forward > 1.0
    assert forward == pytest.approx(backward, rel=1e-10)


def test_fid_of_a_pure_mean_shift_is_the_squared_shift():
    features = random_features(7)
    shift = np.array([0.5, -1.0, 2.0, 0.0, 0.0, 0.25, 0.0, -0.5])
    assert frechet_distance(features, features + shift) == pytest.approx((shift**2).sum(), rel=1e-9)


def test_fid_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    a, b = random_features(8, rows=200), random_features(9, rows=150)
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    covariance_a, covariance_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    sqrt_product = linalg.sqrtm(covariance_a @ covariance_b).real
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(covariance_a + covariance_b - 2 * sqrt_product)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_fid_accepts_float32_and_rank_deficient_features():
    # Fewer rows than features: singular covariances, whose tiny negative eigenvalues are clipped.
    rng = np.random.default_rng(10)
    a = rng.standard_normal((5, 20)).astype(np.float32)
    value = frechet_distance(a, a)
    assert value == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(20.0, rel=1e-6)


# --- class coverage and Inception Score -----------------------------------------------------


def test_class_coverage_of_balanced_labels():
    labels = np.repeat(np.arange(10), 7)
    coverage = class_coverage(labels)
    np.testing.assert_array_equal(coverage["histogram"], np.full(10, 7))
    assert coverage["classes_covered"] == 10
    assert coverage["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_class_coverage_of_collapsed_labels():
    coverage = class_coverage(np.full(50, 3))
    np.testing.assert_array_equal(coverage["histogram"], np.eye(10, dtype=int)[3] * 50)
    assert coverage["classes_covered"] == 1
    assert coverage["kl_to_uniform"] == pytest.approx(math.log(10))


def test_class_coverage_threshold_ignores_rare_classes():
    # 995 zeros, 5 ones: class 1 has 0.5% of the samples, below the 1% threshold.
    labels = np.concatenate([np.zeros(995, dtype=int), np.ones(5, dtype=int)])
    coverage = class_coverage(labels)
    assert coverage["classes_covered"] == 1
    p = np.array([0.995, 0.005])
    assert coverage["kl_to_uniform"] == pytest.approx((p * np.log(p * 10)).sum())


def test_class_coverage_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        class_coverage(np.array([0, 10]))


def test_inception_score_of_balanced_confident_predictions_is_num_classes(device):
    probabilities = np.eye(10)[np.repeat(np.arange(10), 4)]
    mean, std = inception_score(backend.to_device(probabilities, device))
    assert mean == pytest.approx(10.0)
    assert std == 0.0


def test_inception_score_of_one_class_is_one():
    probabilities = np.eye(10)[np.zeros(40, dtype=int)]
    assert inception_score(probabilities) == (pytest.approx(1.0), 0.0)


def test_inception_score_of_uninformative_predictions_is_one():
    assert inception_score(np.full((20, 10), 0.1))[0] == pytest.approx(1.0)


def test_inception_score_splits():
    # First half balanced over 2 classes (IS 2), second half all one class (IS 1).
    probabilities = np.eye(10)[[0, 1, 0, 1, 5, 5, 5, 5]]
    mean, std = inception_score(probabilities, splits=2)
    assert mean == pytest.approx(1.5)
    assert std == pytest.approx(0.5)


# --- ring of Gaussians ----------------------------------------------------------------------


def test_ring_modes_lie_on_the_circle():
    modes = ring_modes(8, radius=2.0)
    assert modes.shape == (8, 2)
    np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 2.0)
    np.testing.assert_allclose(modes[0], [2.0, 0.0])
    np.testing.assert_allclose(modes[2], [0.0, 2.0], atol=1e-12)


def test_samples_from_the_ring_cover_every_mode_with_high_quality():
    points = sample_ring(2000, np.random.default_rng(11))
    assert points.shape == (2000, 2)
    coverage = mode_coverage(points, ring_modes())
    assert coverage["modes_captured"] == 8
    # 3 sigma in 2-D holds 1 - exp(-4.5) = 98.9% of a Gaussian's mass.
    assert coverage["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)


def test_mode_coverage_of_points_on_three_modes():
    modes = ring_modes()
    points = modes[[0, 0, 3, 5, 5, 5]]
    coverage = mode_coverage(points, modes)
    assert coverage["modes_captured"] == 3
    assert coverage["high_quality_fraction"] == 1.0
    np.testing.assert_array_equal(coverage["high_quality_per_mode"], [2, 0, 0, 1, 0, 3, 0, 0])


def test_mode_coverage_of_points_far_from_every_mode():
    points = np.array([[0.0, 0.0], [10.0, 10.0], [2.0, 0.1]])  # 0.1 from mode 0 is 5 sigma away
    coverage = mode_coverage(points, ring_modes())
    assert coverage["modes_captured"] == 0
    assert coverage["high_quality_fraction"] == 0.0


def test_mode_coverage_counts_only_high_quality_samples():
    modes = ring_modes()
    # One good sample at mode 1; many poor ones whose nearest mode is 4.
    points = np.vstack([modes[1], modes[4] + [0.1, 0.0] * np.ones((9, 2))])
    coverage = mode_coverage(points, modes)
    assert coverage["modes_captured"] == 1
    assert coverage["high_quality_fraction"] == pytest.approx(0.1)


# --- bad inputs: one line that names the mistake, never a NaN passed on -----------------------------


def message_of(call) -> str:
    with pytest.raises(ValueError) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


GOOD = np.random.default_rng(0).random((5, 3))


def with_value(value, at=(1, 2)):
    bad = GOOD.copy()
    bad[at] = value
    return bad


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_parzen_refuses_non_finite_samples_and_test_rows(value):
    assert message_of(lambda: parzen_log_likelihood(with_value(value), GOOD, 0.2)) == \
        "parzen_log_likelihood: samples holds NaN or infinite values"
    assert message_of(lambda: parzen_log_likelihood(GOOD, with_value(value), 0.2)) == \
        "parzen_log_likelihood: x holds NaN or infinite values"


@pytest.mark.parametrize("sigma", [0.0, -0.1, np.nan, np.inf, "wide", None])
def test_parzen_refuses_a_sigma_that_is_not_a_finite_positive_number(sigma):
    assert "parzen_log_likelihood: sigma must be" in message_of(lambda: parzen_log_likelihood(GOOD, GOOD, sigma))


@pytest.mark.parametrize("empty", ["samples", "x"])
def test_parzen_refuses_an_empty_set(empty):
    samples, x = (np.zeros((0, 3)), GOOD) if empty == "samples" else (GOOD, np.zeros((0, 3)))
    assert message_of(lambda: parzen_log_likelihood(samples, x, 0.2)) == f"parzen_log_likelihood: {empty} has no rows"


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_parzen_refuses_a_batch_size_that_is_not_a_positive_integer(batch_size):
    assert "batch_size must be an integer of at least 1" in message_of(
        lambda: parzen_log_likelihood(GOOD, GOOD, 0.2, batch_size=batch_size))


def test_parzen_summary_refuses_nan():
    assert message_of(lambda: parzen_summary([1.0, np.nan])) == "parzen_summary: the log-likelihoods hold NaN"


def test_fid_refuses_non_finite_features_and_statistics():
    features = np.random.default_rng(1).random((20, 3))
    assert message_of(lambda: frechet_distance(with_value(np.nan), features)) == \
        "gaussian_statistics: features holds NaN or infinite values"
    from minigan.metrics import frechet_distance_from_statistics

    mean, covariance = np.zeros(3), np.eye(3)
    assert message_of(lambda: frechet_distance_from_statistics(mean, covariance, mean + np.nan, covariance)) == \
        "frechet_distance: the statistics hold NaN or infinite values"
    assert "does not fit 3 features" in message_of(
        lambda: frechet_distance_from_statistics(mean, np.eye(2), mean, np.eye(2)))


@pytest.mark.parametrize("probabilities, message", [
    (np.full((4, 10), np.nan), "probabilities must be finite and non-negative"),
    (np.array([[1.5, -0.5]] * 3), "probabilities must be finite and non-negative"),
    (np.random.default_rng(0).normal(size=(4, 10)) + 5, "each row must sum to 1 (probabilities, not logits)"),
    (np.zeros((0, 10)), "no samples given"),
])
def test_inception_score_refuses_what_is_not_probabilities(probabilities, message):
    assert message in message_of(lambda: inception_score(probabilities))


def test_class_coverage_refuses_zero_classes():
    assert "num_classes must be an integer of at least 1, got 0" in message_of(lambda: class_coverage([0], 0))


@pytest.mark.parametrize("std", [0.0, -0.02, np.nan])
def test_mode_coverage_refuses_a_std_that_is_not_positive(std):
    assert "mode_coverage: std must be a finite number > 0" in message_of(
        lambda: mode_coverage(ring_modes(), ring_modes(), std=std))


def test_mode_coverage_refuses_no_modes_and_nan_points():
    assert "modes must have shape (num_modes, 2), got (0, 2)" in message_of(
        lambda: mode_coverage(ring_modes(), np.zeros((0, 2))))
    points = ring_modes()
    points[3, 0] = np.nan
    assert message_of(lambda: mode_coverage(points, ring_modes())) == \
        "mode_coverage: points holds NaN or infinite values"


@pytest.mark.parametrize("call, message", [
    (lambda: ring_modes(0), "ring_modes: num_modes must be an integer of at least 1, got 0"),
    (lambda: ring_modes(2.5), "ring_modes: num_modes must be an integer of at least 1, got 2.5"),
    (lambda: ring_modes(8, np.inf), "ring_modes: radius must be finite, got inf"),
    (lambda: sample_ring(-1, np.random.default_rng(0)), "sample_ring: n must be an integer of at least 0, got -1"),
    (lambda: sample_ring(5, np.random.default_rng(0), std=-1.0),
     "sample_ring: std must be finite and non-negative, got -1.0"),
])
def test_ring_helpers_refuse_impossible_rings(call, message):
    assert message_of(call) == message
