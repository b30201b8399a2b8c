"""minigan/run.py, the machinery around examples/mnist.py's loop: the checkpoint's run-state keys
(the same as the script wrote before run.py existed), resuming from them, the engine the script
names and prints, the loss log, and the script's shape (the lesson, not the machinery)."""

import ast
from pathlib import Path

import numpy as np
import pytest
from scripts import ROOT  # tests/scripts.py
from test_mnist_example import idle_machine, params, script, tiny_mnist  # noqa: F401 (fixtures)

from minigan import backend, run

# The run state (meta.*, rng.*, order, interval_sums, history.*) of two checkpoints written by
# examples/mnist.py before the run machinery moved into minigan/run.py, on write_tiny_mnist's
# digits: `--config reference --batch-size 16 --log-every 2 --max-steps 4` and
# `--config paper --batch-size 24 --log-every 2 --max-steps 3`. Runs in progress resume from such files.
BEFORE = ROOT / "tests" / "fixtures" / "run_state_2026-12-03.npz"
FLAGS = {"reference": ["--batch-size", "16", "--log-every", "2", "--max-steps", "4"],
         "paper": ["--batch-size", "24", "--log-every", "2", "--max-steps", "3"]}


def written_before(config):
    with np.load(BEFORE, allow_pickle=False) as npz:
        return {key.split("/", 1)[1]: npz[key] for key in npz.files if key.startswith(config + "/")}


def run_state(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if not k.startswith(("G.", "D.", "opt_G.", "opt_D."))}


def test_the_resume_keys_are_the_ones_checkpoints_in_progress_hold():
    assert run.RESUME_KEYS == (
        "meta.config", "meta.noise", "meta.batch_size", "meta.k", "meta.loss", "meta.update", "meta.seed",
        "meta.step", "meta.epoch", "meta.position", "meta.interval_iterations", "rng.trainer", "rng.cpu", "order",
        "interval_sums", "history.step", "history.d_loss", "history.g_loss", "history.d_real", "history.d_fake")
    assert set(written_before("reference")) == set(written_before("paper")) == set(run.RESUME_KEYS)


@pytest.mark.parametrize("config", ["reference", "paper"])
def test_the_run_state_is_written_as_before(script, tiny_mnist, tmp_path, config):
    out = tmp_path / config
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(out), "--config", config,
                                     *FLAGS[config]]) == 0
    now, before = run_state(out / "checkpoint.npz"), written_before(config)
    assert now.keys() == before.keys()
    for key in before:
        assert (now[key].dtype, now[key].shape) == (before[key].dtype, before[key].shape), key
        if key.startswith(("meta.", "rng.", "order", "history.step")):
            assert np.array_equal(now[key], before[key]), key
        else:  # losses: the same to rounding, whatever order the engine sums in
            np.testing.assert_allclose(now[key], before[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_a_run_state_written_before_resumes_bit_exactly(script, tiny_mnist, tmp_path):
    """The players at step 4, with the run state the old script wrote at step 4, continue to step 8
    exactly as a run that went straight to 8."""
    base = ["--data-dir", str(tiny_mnist), "--batch-size", "16", "--log-every", "2"]
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "straight"), "--max-steps", "8"]) == 0
    assert run.guarded(script.main, [*base, "--out", str(tmp_path / "split"), "--max-steps", "4"]) == 0
    with np.load(tmp_path / "split" / "checkpoint.npz", allow_pickle=False) as npz:
        players = {k: npz[k] for k in npz.files if k.startswith(("G.", "D.", "opt_G.", "opt_D."))}
    np.savez(tmp_path / "before.npz", **players, **written_before("reference"))
    assert run.guarded(script.main, [*base, "--resume", str(tmp_path / "before.npz"), "--max-steps", "8",
                                     "--out", str(tmp_path / "resumed")]) == 0
    straight = params(tmp_path / "straight" / "checkpoint.npz")
    resumed = params(tmp_path / "resumed" / "checkpoint.npz")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert np.array_equal(straight[key], resumed[key]), key


@pytest.mark.parametrize("flags, ran_on", [([], "ran on: autograd;"), (["--engine", "fused"], "ran on: fused, NumPy;")])
def test_the_script_says_which_engine_ran(script, tiny_mnist, tmp_path, capsys, flags, ran_on):
    assert run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(tmp_path / "run"),
                                     "--batch-size", "16", "--max-steps", "2", *flags]) == 0
    out = capsys.readouterr().out
    assert f"{'fused' if flags else 'autograd'} engine" in out.splitlines()[0]
    assert out.splitlines()[-1].startswith("done: 2 iterations") and ran_on in out


def test_no_graph_is_now_no_cuda_graph(script, capsys):
    assert script.parse_args(["--no-cuda-graph"]).no_cuda_graph is True
    with pytest.raises(SystemExit) as info:
        script.parse_args(["--no-graph"])
    assert info.value.code == 2 and "unrecognized arguments: --no-graph" in capsys.readouterr().err


def test_a_simultaneous_update_with_k_above_one_is_refused_in_one_line(script, tiny_mnist, tmp_path):
    with pytest.raises(SystemExit, match="^error: examples/mnist.py: the authors' update has no inner loop, "
                                         "k must be 1, got 2$"):
        run.guarded(script.main, ["--data-dir", str(tiny_mnist), "--out", str(tmp_path / "run"),
                                  "--update", "simultaneous", "--k", "2"])


def test_the_loss_log_records_interval_means_and_stops_on_a_non_finite_one(tmp_path):
    log = run.LossLog()
    logits = np.zeros((4, 1), np.float32)  # D = σ(0) = 0.5
    for d_loss, g_loss in ((1.0, 2.0), (3.0, 4.0)):
        log.add({"d_loss": np.float32(d_loss), "g_loss": np.float32(g_loss),
                 "d_real_logits": logits, "d_fake_logits": logits})
    assert log.record(2, tmp_path) == "steps 1-2: D 2.000, G 3.000, D(x) 0.50, D(G(z)) 0.50"
    assert log.history == {"step": [2], "d_loss": [2.0], "g_loss": [3.0], "d_real": [0.5], "d_fake": [0.5]}
    assert log.iterations == 0 and np.array_equal(log.arrays()["interval_sums"], np.zeros(4))
    log.add({"d_loss": np.float32(np.nan), "g_loss": np.float32(1.0), "d_real_logits": logits,
             "d_fake_logits": logits})
    with pytest.raises(FloatingPointError, match="^non-finite loss before step 3: D loss nan, G loss 1.0"):
        log.means(3, tmp_path)


def test_minibatches_follow_the_order_from_where_the_epoch_stands():
    data = backend.to_device(np.arange(12, dtype=np.float32).reshape(6, 2), "cpu")
    sample = run.Minibatches(data, np.array([5, 4, 3, 2, 1, 0]), first=1, m=2)
    assert np.array_equal(sample().numpy(), [[6, 7], [4, 5]])
    assert np.array_equal(sample().numpy(), [[2, 3], [0, 1]])


def test_the_script_is_a_lesson_that_names_the_step():
    """examples/mnist.py: at most 160 lines, no function over 40, Algorithm 1 called by name."""
    source = (ROOT / "examples" / "mnist.py").read_text()
    assert len(source.splitlines()) <= 160
    longest = max((node.end_lineno - node.lineno + 1, node.name) for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.FunctionDef))
    assert longest[0] <= 40, longest
    for call in ("gan.train_iteration(", "gan.simultaneous_iteration(", "fast.FusedIteration("):
        assert call in source, call
    assert "make_iteration" not in source and not any("make_iteration" in path.read_text()
                                                       for path in Path(ROOT, "minigan").rglob("*.py"))
