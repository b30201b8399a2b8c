"""benchmarks/bench_quality.py: its statistics against hand values, and its smallest run end to end
on synthetic digits with a small injected classifier (the real run takes hours)."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")


from synthetic import synthetic_digits  # noqa: E402  (tests/synthetic.py)
from scripts import load_script  # noqa: E402  (tests/scripts.py)

bench_quality = load_script("benchmarks/bench_quality.py", "bench_quality")


# --- statistics --------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 12.0, -4.0])
def test_t_p_value_matches_the_closed_forms_at_one_and_two_degrees_of_freedom(t):
    # df = 1 is the Cauchy distribution; df = 2 has CDF 1/2 + t / (2 sqrt(2 + t²)).
    assert bench_quality.student_t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(abs(t)), abs=1e-12)
    assert bench_quality.student_t_two_sided_p(t, 2) == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), abs=1e-12)


@pytest.mark.parametrize("t, df, p", [(2.228, 10, 0.05), (2.776, 4, 0.05), (4.604, 4, 0.01), (1.960, 1e7, 0.05)])
def test_t_p_value_matches_textbook_critical_values(t, df, p):
    assert bench_quality.student_t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)


def t_p_value_by_quadrature(t, df):
    """2 ∫_|t|^∞ f(x) dx for Student's density f, in u = 1/x (so the tail is a finite interval)."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    u = np.linspace(0, 1 / abs(t), 400_001)[1:]
    x = 1 / u
    integrand = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df)) / u ** 2
    return 2 * float(np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(u)))


def test_welch_against_a_hand_computed_value():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    # means 2 and 5.5; variances 1 and 5/3; se² = 1/3 + 5/12 = 3/4; t = −3.5 / √(3/4);
    # df = (3/4)² / ((1/3)²/2 + (5/12)²/3) = 3888/784.
    result = bench_quality.welch_t_test(a, b)
    assert result["difference"] == pytest.approx(-3.5)
    assert result["t"] == pytest.approx(-3.5 / math.sqrt(0.75), rel=1e-12)
    assert result["df"] == pytest.approx(3888 / 784, rel=1e-12)
    assert result["p"] == pytest.approx(t_p_value_by_quadrature(result["t"], result["df"]), rel=1e-6)
    assert 0.005 < result["p"] < 0.02


def test_welch_degenerate_cases():
    assert bench_quality.welch_t_test([1.0], [2.0, 3.0]) is None
    assert bench_quality.welch_t_test([10, 10, 10], [10, 10])["p"] == 1.0
    assert bench_quality.welch_t_test([10, 10, 10], [9, 9])["p"] == 0.0


# --- the smallest run, end to end -----------------------------------------------------------------------


@pytest.fixture
def tiny_run(tmp_path, monkeypatch, small_classifier):
    """Synthetic MNIST (300 train, 100 test), σ chosen on train[200:250]; 2 seeds × 2 epochs of
    6 minibatches of 16."""
    monkeypatch.setattr(bench_quality, "load_mnist",
                        lambda split, data_dir=None: synthetic_digits(300 if split == "train" else 100,
                                                                      seed=0 if split == "train" else 1))
    monkeypatch.setattr(bench_quality, "VALIDATION_ROWS", slice(200, 250))
    monkeypatch.setattr(bench_quality, "load_or_train_classifier", lambda **kwargs: small_classifier)
    argv = ["--seeds", "0", "1", "--epochs", "2", "--eval-epochs", "1", "--train-images", "96", "--batch-size", "16",
            "--samples", "100", "--test-size", "80", "--data-dir", str(tmp_path / "private"),
            "--out-dir", str(tmp_path / "out")]
    report = bench_quality.main(argv)
    (json_path,) = (tmp_path / "out").glob("bench_quality-reduced-*.json")
    return report, json.loads(json_path.read_text()), json_path


def test_tiny_run_writes_the_report_and_a_plot(tiny_run, tmp_path):
    report, written, json_path = tiny_run
    assert written == json.loads(json.dumps(report))
    assert json_path.with_suffix(".png").stat().st_size > 10_000
    assert written["budget"] == "reduced"
    assert str(tmp_path) not in written["command"] and "--data-dir '<data-dir>'" in written["command"]
    for key in ("cpu_model", "usable_cores", "torch_threads", "load_before", "load_after"):
        assert key in written["machine"]
    assert set(written["versions"]) == {"python", "numpy", "torch", "minigan"}
    settings = written["settings"]
    assert settings["eval_epochs"] == [1, 2] and settings["minibatches_per_epoch"] == 6
    assert [run["seed"] for run in written["runs"]] == [0, 1]


# 6 minibatches an epoch: every5 takes D steps on 0-3 and 5 and a G step on 4; k = 4 takes one
# iteration on minibatches 0-3 and leaves 4 and 5 unused.
STEPS = {"torch-k1": (6, 6), "minigan-k1": (6, 6), "torch-every5": (5, 1), "minigan-k4": (4, 1)}


def test_tiny_run_steps_and_scores(tiny_run):
    _, written, _ = tiny_run
    for run in written["runs"]:
        assert set(run["rows"]) == set(STEPS)
        for name, record in run["rows"].items():
            assert [(e["d_steps"], e["g_steps"]) for e in record["epochs"]] == [STEPS[name]] * 2
            assert set(record["evaluations"]) == {"1", "2"}
            for scores in record["evaluations"].values():
                assert all(math.isfinite(scores[m]) for m in bench_quality.METRICS)
                assert sum(scores["class_histogram"]) == 100
        # The two k = 1 rows start alike and see the same minibatches and noise: after one epoch
        # they are the same run up to float32 rounding, which no other pair of rows is.
        ours, theirs = (run["rows"][name]["evaluations"]["1"] for name in ("minigan-k1", "torch-k1"))
        assert ours["parzen_ll"] == pytest.approx(theirs["parzen_ll"], abs=0.05)
        assert ours["fid"] == pytest.approx(theirs["fid"], rel=1e-3)
        other = run["rows"]["torch-every5"]["evaluations"]["1"]
        assert abs(other["fid"] - theirs["fid"]) > 10 * abs(ours["fid"] - theirs["fid"])


def test_tiny_run_statistics_are_those_of_the_per_seed_numbers(tiny_run):
    _, written, _ = tiny_run
    runs = written["runs"]
    for row, by_epoch in written["summary"].items():
        for epoch, by_metric in by_epoch.items():
            for metric, stats in by_metric.items():
                values = [run["rows"][row]["evaluations"][epoch][metric] for run in runs]
                assert stats["values"] == values
                assert stats["mean"] == pytest.approx(np.mean(values))
                assert stats["std"] == pytest.approx(np.std(values, ddof=1))
    comparisons = written["comparisons"]
    assert len(comparisons) == 6 * len(bench_quality.COMPARED)  # every pair of the 4 rows
    for c in comparisons:
        a = np.array([run["rows"][c["a"]]["evaluations"]["2"][c["metric"]] for run in runs])
        b = np.array([run["rows"][c["b"]]["evaluations"]["2"][c["metric"]] for run in runs])
        se2 = a.var(ddof=1) / 2 + b.var(ddof=1) / 2
        if se2 > 0:
            assert c["t"] == pytest.approx((a.mean() - b.mean()) / math.sqrt(se2))
            assert c["df"] == pytest.approx(se2 ** 2 / ((a.var(ddof=1) / 2) ** 2 + (b.var(ddof=1) / 2) ** 2))
        assert c["exceeds_seed_spread"] == (c["p"] < 0.05)


def test_quick_sets_defaults_that_explicit_flags_override():
    args = bench_quality.parse_args(["--quick"])
    assert (args.epochs, args.seeds, args.eval_epochs) == (2, [0, 1], [1, 2])
    args = bench_quality.parse_args(["--quick", "--epochs", "3", "--samples", "10000"])
    assert (args.epochs, args.eval_epochs, args.samples) == (3, [1, 2, 3], 10_000)
    assert bench_quality.parse_args([]).eval_epochs == [2, 5, 10]
