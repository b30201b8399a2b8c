"""examples/paper_figures.py: the paper's Figure 2 (nearest training digit) and Figure 3 (z interpolation)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mnist_example import script, tiny_mnist  # noqa: F401  (fixtures)
from scripts import load_script  # tests/scripts.py



@pytest.fixture(scope="module")
def figures():
    return load_script("examples/paper_figures.py", "paper_figures")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), t=st.integers(1, 40), d=st.integers(1, 9), chunk=st.integers(1, 50),
       seed=st.integers(0, 99))
def test_nearest_training_digit_matches_brute_force(figures, n, t, d, chunk, seed):
    rng = np.random.default_rng(seed)
    samples, train = rng.random((n, d)), rng.random((t, d))
    brute = np.array([np.argmin([np.sum((s - row) ** 2) for row in train]) for s in samples])
    np.testing.assert_array_equal(figures.nearest_training_digits(samples, train, chunk=chunk), brute)


def test_a_copied_training_digit_finds_itself(figures):
    train = np.random.default_rng(0).random((50, 784))
    assert list(figures.nearest_training_digits(train[[7, 31, 7]] + 1e-3, train, chunk=16)) == [7, 31, 7]


def test_interpolations_run_straight_from_start_to_end(figures):
    start, end = np.zeros((2, 3)), np.array([[1.0, 2.0, 3.0], [-4.0, 0.0, 4.0]])
    path = figures.interpolations(start, end, steps=5)
    assert path.shape == (2, 5, 3)
    np.testing.assert_array_equal(path[:, 0], start)
    np.testing.assert_array_equal(path[:, -1], end)
    np.testing.assert_allclose(path[1, 2], [-2.0, 0.0, 2.0])
    np.testing.assert_allclose(np.diff(path, axis=1), np.broadcast_to((end - start)[:, None] / 4, (2, 4, 3)))


def test_figures_from_a_paper_checkpoint(figures, script, tiny_mnist, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert script.main(["--data-dir", str(tiny_mnist), "--config", "paper", "--out", str(run), "--max-steps", "2",
                       "--batch-size", "16"]) == 0
    assert figures.main([str(run / "checkpoint.npz"), "--data-dir", str(tiny_mnist),
                         "--out", str(tmp_path / "docs")]) == 0
    import matplotlib.pyplot as plt

    for name in ("figure2_paper.png", "figure3_paper.png"):
        image = plt.imread(tmp_path / "docs" / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 200, name
    from minigan.evaluate import load_generator

    G, config, _ = load_generator(run / "checkpoint.npz")
    grid = figures.figure2(G, config, np.random.default_rng(0).random((96, 784)))
    assert grid.shape == (6, 6, 784)
    # The framed column holds, for each row, the training digit nearest the sample beside it.
    train = np.random.default_rng(0).random((96, 784))
    nearest = figures.nearest_training_digits(grid[:, 4], train)
    np.testing.assert_array_equal(grid[:, 5], train[nearest])
    assert figures.figure3(G, config).shape == (5, 10, 784)


def test_a_missing_checkpoint_is_one_line(figures, tmp_path, capsys):
    from minigan import cli

    assert cli.run_main(figures.main, [str(tmp_path / "none.npz")]) == 1
    assert capsys.readouterr().err.strip() == f"error: checkpoint {tmp_path / 'none.npz'} does not exist"
