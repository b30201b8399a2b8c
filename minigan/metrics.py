"""How good are the samples? Parzen windows, FID, class coverage, Inception Score, ring modes.

The 2014 paper reports one number for MNIST: the mean log-likelihood of the test set under a
Gaussian Parzen window fitted to 10,000 generator samples (225 +- 2 nats for the GAN). The
functions here reproduce that protocol exactly (goodfeli/adversarial, parzen_ll.py), so our
number can be put next to theirs. A higher Parzen number is not always a better model, though:
Theis et al. (2016, "A note on the evaluation of generative models") show that the blurry
centroids of k-means score far higher than the GAN (over 300 nats), and even higher than held-out
real digits. So we also report measures that look at what the samples *are*: the Frechet
distance between classifier features (FID), how evenly a digit classifier spreads the samples
over the ten classes, the Inception Score, and, on the 2-D ring of eight Gaussians, how many
modes the generator reaches.

Every function takes NumPy or CuPy arrays and gets its array module from them. Small summaries
come back as Python numbers; the FID's eigendecompositions run in float64 on the host.
"""

from __future__ import annotations

import math

import numpy as np

from minigan.backend import array_module, to_numpy

# Rows of test data per chunk, and generator samples per chunk, in the Parzen estimate: a
# (500, 10000) float64 block is 40 MB, small enough for any GPU and for the CPU cache to matter.
PARZEN_BATCH_SIZE = 500
PARZEN_SAMPLE_BATCH_SIZE = 10_000

# The authors' cross-validation grid for the Parzen width: 10 values from 0.1 to 1.
PARZEN_SIGMAS = np.logspace(-1, 0, 10)

# Probabilities are clipped to this before a log, so a class with probability 0 adds 0 * log(eps)
# = 0 to a KL divergence instead of 0 * log(0) = nan.
PROBABILITY_EPS = 1e-12


# --- Parzen window log-likelihood (the paper's Table 1) ------------------------------------


def _float64_rows(name: str, array, xp):
    """`array` as a float64 (rows, features) matrix, or a ValueError that says what was wrong."""
    matrix = xp.asarray(array, dtype=xp.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (rows, features) array, got shape {tuple(matrix.shape)}; "
            "flatten images first, e.g. images.reshape(len(images), -1)"
        )
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    # One NaN would turn every number computed from the rows into NaN, or (in an argmin) into a wrong answer.
    if not bool(xp.isfinite(matrix).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return matrix


def _positive_number(name: str, value) -> float:
    """`value` as a float, or a ValueError unless it is finite and > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return number


def _count(name: str, value, least: int) -> int:
    """`value` as an int of at least `least`, or a ValueError (a float such as 2.5 included)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer of at least {least}, got {value!r}")
    return int(value)


def parzen_log_likelihood(
    samples,
    x,
    sigma: float,
    batch_size: int = PARZEN_BATCH_SIZE,
    sample_batch_size: int = PARZEN_SAMPLE_BATCH_SIZE,
):
    """Log-likelihood of each row of `x` under a Gaussian Parzen window on the rows of `samples`.

    log p(x) = log mean_i exp(-||x - mu_i||^2 / (2 sigma^2)) - d log(sigma sqrt(2 pi)), the
    estimate behind the paper's Table 1. Everything runs in float64: the exponents reach
    -||x - mu||^2 / (2 * 0.01) ~ -10^4 on MNIST, and the log-mean-exp subtracts the largest
    exponent first so those do not underflow to log(0). Squared distances use the matrix form
    ||x||^2 + ||mu||^2 - 2 x.mu (one matmul per block instead of a (rows, samples, features)
    tensor), clipped at 0 where rounding makes them slightly negative. `x` is processed in
    chunks of `batch_size` rows and `samples` in chunks of `sample_batch_size`, combined with a
    running log-sum-exp, so memory stays at one (batch_size, sample_batch_size) block.

    Returns a 1-D float64 array with one log-likelihood per row of `x`, on the inputs' device.
    """
    xp = array_module(samples, x)
    samples = _float64_rows("parzen_log_likelihood: samples", samples, xp)
    x = _float64_rows("parzen_log_likelihood: x", x, xp)
    if samples.shape[1] != x.shape[1]:
        raise ValueError(
            f"parzen_log_likelihood: samples have {samples.shape[1]} features but x has {x.shape[1]}"
        )
    sigma = _positive_number("parzen_log_likelihood: sigma", sigma)
    _count("parzen_log_likelihood: batch_size", batch_size, 1)
    _count("parzen_log_likelihood: sample_batch_size", sample_batch_size, 1)

    num_samples, num_features = samples.shape
    inverse_two_variance = 1.0 / (2.0 * sigma * sigma)
    log_normaliser = num_features * math.log(sigma * math.sqrt(2.0 * math.pi))
    sample_squared_norms = (samples * samples).sum(axis=1)

    log_likelihoods = []
    for x_start in range(0, x.shape[0], batch_size):
        x_chunk = x[x_start : x_start + batch_size]
        x_squared_norms = (x_chunk * x_chunk).sum(axis=1)
        # A running log-sum-exp over the sample chunks: keep the largest exponent seen so far and
        # the sum of exp(exponent - largest), rescaling the sum whenever the largest grows.
        running_max = None
        running_sum = None
        for sample_start in range(0, num_samples, sample_batch_size):
            sample_stop = sample_start + sample_batch_size
            squared_distances = (
                x_squared_norms[:, None]
                + sample_squared_norms[None, sample_start:sample_stop]
                - 2.0 * (x_chunk @ samples[sample_start:sample_stop].T)
            )
            exponents = -xp.maximum(squared_distances, 0.0) * inverse_two_variance
            chunk_max = exponents.max(axis=1)
            new_max = chunk_max if running_max is None else xp.maximum(running_max, chunk_max)
            chunk_sum = xp.exp(exponents - new_max[:, None]).sum(axis=1)
            if running_sum is None:
                running_sum = chunk_sum
            else:
                running_sum = running_sum * xp.exp(running_max - new_max) + chunk_sum
            running_max = new_max
        log_mean_exp = running_max + xp.log(running_sum) - math.log(num_samples)
        log_likelihoods.append(log_mean_exp - log_normaliser)
    return xp.concatenate(log_likelihoods)


def select_parzen_sigma(
    samples,
    validation,
    sigmas=PARZEN_SIGMAS,
    batch_size: int = PARZEN_BATCH_SIZE,
) -> tuple[float, dict[float, float]]:
    """Choose the Parzen width by the mean log-likelihood of held-out validation rows.

    The width decides the number as much as the samples do (too narrow and every test digit is
    far from every sample; too wide and all detail is smoothed away), so, like the authors, we
    pick it on validation data (they used 10,000 training digits held out from the GAN) and only
    then score the test set. Returns (best sigma, {sigma: mean validation log-likelihood}) with
    the table in the order of `sigmas`; ties go to the first.
    """
    mean_log_likelihood = {}
    for sigma in np.asarray(to_numpy(sigmas), dtype=np.float64).ravel():
        lls = parzen_log_likelihood(samples, validation, float(sigma), batch_size=batch_size)
        mean_log_likelihood[float(sigma)] = float(lls.mean())
    if not mean_log_likelihood:
        raise ValueError("select_parzen_sigma: sigmas is empty")
    best_sigma = max(mean_log_likelihood, key=mean_log_likelihood.get)
    return best_sigma, mean_log_likelihood


def parzen_summary(lls) -> tuple[float, float]:
    """(mean, standard error) of per-example log-likelihoods, the paper's "225 +- 2".

    The standard error is std / sqrt(N) with the population std (ddof=0), as in the authors'
    parzen_ll.py, so the two numbers compare like for like.
    """
    lls = to_numpy(lls).astype(np.float64).ravel()
    if lls.size == 0:
        raise ValueError("parzen_summary: no log-likelihoods given")
    if np.isnan(lls).any():
        raise ValueError("parzen_summary: the log-likelihoods hold NaN")
    return float(lls.mean()), float(lls.std() / math.sqrt(lls.size))


# --- Frechet distance (FID) -----------------------------------------------------------------


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof=1) of a (rows, features) array, in float64 on the host.

    Split out from `frechet_distance_from_statistics` so the statistics of the real test set can
    be computed once and reused for every checkpoint.
    """
    features = _float64_rows("gaussian_statistics: features", to_numpy(features), np)
    if features.shape[0] < 2:
        raise ValueError("gaussian_statistics: a covariance needs at least 2 rows")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], -1)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix; tiny negative eigenvalues from rounding become 0."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance_from_statistics(mean_a, covariance_a, mean_b, covariance_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the Frechet distance of two Gaussians.

    S_a S_b is not symmetric, which is why general sqrtm routines are slow and can return complex
    noise. But Tr (S_a S_b)^(1/2) is the sum of square roots of its eigenvalues, and those are the
    eigenvalues of the symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2). Two symmetric
    eigendecompositions therefore give the trace exactly for PSD inputs, with no scipy needed.
    """
    mean_a, mean_b = (np.asarray(to_numpy(m), dtype=np.float64).ravel() for m in (mean_a, mean_b))
    covariance_a, covariance_b = (np.asarray(to_numpy(c), dtype=np.float64) for c in (covariance_a, covariance_b))
    if mean_a.shape != mean_b.shape or covariance_a.shape != covariance_b.shape:
        raise ValueError(
            f"frechet_distance: feature sizes differ, {mean_a.shape[0]} and {mean_b.shape[0]}"
        )
    if covariance_a.shape != (mean_a.size, mean_a.size):
        raise ValueError(f"frechet_distance: a covariance of shape {covariance_a.shape} does not fit "
                         f"{mean_a.size} features")
    if not all(np.isfinite(x).all() for x in (mean_a, mean_b, covariance_a, covariance_b)):
        raise ValueError("frechet_distance: the statistics hold NaN or infinite values")
    sqrt_a = _symmetric_sqrt(covariance_a)
    middle = sqrt_a @ covariance_b @ sqrt_a
    # Symmetrise away rounding so eigvalsh sees the matrix it is promised.
    middle_eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_sqrt_product = np.sqrt(np.clip(middle_eigenvalues, 0.0, None)).sum()
    mean_term = float(((mean_a - mean_b) ** 2).sum())
    covariance_term = float(np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * trace_sqrt_product)
    # The exact value is >= 0; rounding can leave about -1e-12 for identical inputs.
    return max(mean_term + covariance_term, 0.0)


def frechet_distance(features_a, features_b) -> float:
    """FID: the Frechet distance between Gaussians fitted to two sets of feature rows.

    Unlike the Parzen estimate, this compares whole distributions of features from a trained
    classifier, so it rises both when samples look wrong (the means move) and when they lack
    variety (the covariance shrinks). Heusel et al. (2017) use Inception features; on MNIST we
    use a small digit classifier's penultimate layer, so values are not comparable across
    feature extractors.
    """
    mean_a, covariance_a = gaussian_statistics(features_a)
    mean_b, covariance_b = gaussian_statistics(features_b)
    return frechet_distance_from_statistics(mean_a, covariance_a, mean_b, covariance_b)


# --- classifier-based measures --------------------------------------------------------------


def class_coverage(predicted_labels, num_classes: int = 10, threshold: float = 0.01) -> dict:
    """How a classifier's labels for the samples spread over the classes: a mode-collapse check.

    A generator that only draws ones can still look sharp and score well per sample; counting
    the classes that get at least `threshold` (1%) of the samples, and the KL divergence of the
    label histogram from uniform (natural log; 0 when balanced, log(num_classes) when collapsed
    onto one class), exposes it. Returns {"histogram", "classes_covered", "kl_to_uniform"}.
    """
    labels = to_numpy(predicted_labels).ravel()
    _count("class_coverage: num_classes", num_classes, 1)
    if labels.size == 0:
        raise ValueError("class_coverage: no labels given")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"class_coverage: labels must be integers, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"class_coverage: labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    histogram = np.bincount(labels, minlength=num_classes)
    frequencies = histogram / labels.size
    nonzero = frequencies > 0  # 0 * log 0 = 0
    kl_to_uniform = float((frequencies[nonzero] * np.log(frequencies[nonzero] * num_classes)).sum())
    return {
        "histogram": histogram,
        "classes_covered": int((frequencies >= threshold).sum()),
        "kl_to_uniform": max(kl_to_uniform, 0.0),
    }


def inception_score(class_probabilities, splits: int = 1) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))): high when each sample is confidently one class and the
    classes are used evenly. Returns (mean, std) over `splits` equal parts of the samples.

    It ranges from 1 (every sample gets the same prediction) to the number of classes. Salimans
    et al. (2016) defined it with Inception on ImageNet; here it uses whichever classifier gives
    the probabilities. Probabilities are clipped to 1e-12 before the log so that a one-hot row
    adds 0 * log(eps) = 0, not nan.
    """
    xp = array_module(class_probabilities)
    probabilities = xp.asarray(class_probabilities, dtype=xp.float64)
    if probabilities.ndim != 2:
        raise ValueError(
            f"inception_score: expected (samples, classes) probabilities, got shape {tuple(probabilities.shape)}"
        )
    if probabilities.shape[0] == 0:
        raise ValueError("inception_score: no samples given")
    if not bool(xp.isfinite(probabilities).all()) or float(probabilities.min()) < 0:
        raise ValueError("inception_score: probabilities must be finite and non-negative")
    worst = float(xp.abs(probabilities.sum(axis=1) - 1).max())
    if worst > 1e-3:
        raise ValueError(f"inception_score: each row must sum to 1 (probabilities, not logits); "
                         f"one is off by {worst:.3g}")
    if not 1 <= splits <= probabilities.shape[0]:
        raise ValueError(f"inception_score: splits must be in [1, {probabilities.shape[0]}], got {splits}")
    scores = []
    for part in xp.array_split(probabilities, splits, axis=0):
        marginal = part.mean(axis=0, keepdims=True)
        log_ratio = xp.log(xp.clip(part, PROBABILITY_EPS, 1.0)) - xp.log(xp.clip(marginal, PROBABILITY_EPS, 1.0))
        mean_kl = (part * log_ratio).sum(axis=1).mean()
        scores.append(math.exp(float(mean_kl)))
    return float(np.mean(scores)), float(np.std(scores))


# --- the ring of eight Gaussians (Metz et al. 2017; Srivastava et al. 2017) -----------------


def ring_modes(num_modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """Centres of `num_modes` Gaussians evenly spaced on a circle, shape (num_modes, 2).

    The toy target of the Unrolled GAN paper: easy to plot, and mode collapse shows as a
    generator that visits a few of the eight modes, or hops between them during training.
    """
    _count("ring_modes: num_modes", num_modes, 1)
    if not math.isfinite(radius):
        raise ValueError(f"ring_modes: radius must be finite, got {radius}")
    angles = 2.0 * np.pi * np.arange(num_modes) / num_modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_ring(n: int, rng, num_modes: int = 8, radius: float = 2.0, std: float = 0.02):
    """`n` points from the ring: a mode chosen uniformly, plus isotropic noise of `std`.

    `rng` is a numpy.random.Generator, or CuPy's for points on the GPU.
    """
    # array_module looks at the type's module, so a CuPy generator selects CuPy too.
    _count("sample_ring: n", n, 0)
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"sample_ring: std must be finite and non-negative, got {std}")
    xp = array_module(rng)
    modes = xp.asarray(ring_modes(num_modes, radius))
    mode_indices = rng.integers(0, num_modes, size=n)
    return modes[mode_indices] + std * rng.standard_normal((n, 2))


def mode_coverage(points, modes, std: float = 0.02) -> dict:
    """VEEGAN's two ring numbers: how many modes are reached, and how many samples are good.

    A sample is high quality if it lies within 3 `std` of its nearest mode. A mode is captured if
    it is the nearest mode of at least one high-quality sample. Returns {"modes_captured",
    "high_quality_fraction", "high_quality_per_mode"}; the last is the count per mode, which
    shows lopsided coverage that the first hides.
    """
    xp = array_module(points)
    points = _float64_rows("mode_coverage: points", points, xp)
    modes = xp.asarray(to_numpy(modes), dtype=xp.float64)
    if modes.ndim != 2 or modes.shape[1] != points.shape[1] or modes.shape[0] == 0:
        raise ValueError(
            f"mode_coverage: modes must have shape (num_modes, {points.shape[1]}), got {tuple(modes.shape)}"
        )
    std = _positive_number("mode_coverage: std", std)
    distances = xp.sqrt(((points[:, None, :] - modes[None, :, :]) ** 2).sum(axis=2))
    nearest_mode = distances.argmin(axis=1)
    nearest_distance = distances.min(axis=1)
    high_quality = nearest_distance <= 3.0 * std
    per_mode = to_numpy(xp.bincount(nearest_mode[high_quality], minlength=modes.shape[0]))
    return {
        "modes_captured": int((per_mode > 0).sum()),
        "high_quality_fraction": float(high_quality.mean()),
        "high_quality_per_mode": per_mode,
    }
