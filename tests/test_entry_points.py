"""Bad arguments to every entry point but examples/mnist.py: each is refused by argparse (exit 2) or
in one line (exit 1), before any data is loaded or any training starts; and no command replaces
another result or a file of the repository by default.

The scripts are called in-process, as `python script.py ...` would run them (through cli.run_main);
a few subprocess runs check that what reaches the shell really is one line and no traceback.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minigan import classifier, cli, evaluate, gan
from minigan.checkpoint import save_checkpoint, with_prefix

from scripts import ROOT, load_script  # tests/scripts.py
from synthetic import synthetic_digits  # tests/synthetic.py

sys.path.insert(0, str(ROOT))
from benchmarks import paper_parzen_diagnosis, paper_table1  # noqa: E402

figures = load_script("examples/paper_figures.py", "paper_figures_entry")
toy_1d = load_script("examples/toy_1d.py", "toy_1d_entry")
toy_2d = load_script("examples/toy_2d.py", "toy_2d_entry")
try:  # bench_quality compares with torch and imports it; without torch its cases skip
    bench_quality = load_script("benchmarks/bench_quality.py", "bench_quality_entry")
except ImportError:
    bench_quality = None

MAINS = {"evaluate": evaluate.main, "paper_figures": figures.main, "toy_1d": toy_1d.main, "toy_2d": toy_2d.main,
         "bench_quality": bench_quality.run if bench_quality else None, "paper_table1": paper_table1.main,
         "paper_parzen_diagnosis": paper_parzen_diagnosis.main}


@pytest.fixture(autouse=True)
def skip_bench_quality_without_torch(request):
    callspec = getattr(request.node, "callspec", None)
    if bench_quality is None and callspec is not None and callspec.params.get("name") == "bench_quality":
        pytest.skip("benchmarks/bench_quality.py needs torch")


def outcome(name, argv, capsys):
    """(exit status, stderr) of `python <entry point> argv`, as the shell would see them."""
    try:
        status = cli.run_main(MAINS[name], argv)
    except SystemExit as exit:
        if isinstance(exit.code, str):  # Python prints such a message to stderr and exits with 1
            print(exit.code, file=sys.stderr)
            status = 1
        else:
            status = exit.code
    return status, capsys.readouterr().err


def write_checkpoint(path, config="reference"):
    """A freshly built G of `config`, saved with the keys examples/mnist.py writes."""
    G = gan.build_generator(gan.CONFIGS[config])
    return save_checkpoint(path, {**with_prefix(G.state_dict(), "G."), "meta.config": config,
                                  "meta.noise": gan.CONFIGS[config].noise, "meta.epoch": 1, "meta.step": 1})


@pytest.fixture
def no_work(monkeypatch):
    """Loading MNIST, training or scoring is an error: proves that a check came before any of them."""
    def refuse(*args, **kwargs):
        raise AssertionError("did work although the arguments were bad")

    for module in (evaluate, figures, paper_parzen_diagnosis, classifier):
        monkeypatch.setattr(module, "load_mnist", refuse)
    monkeypatch.setattr(evaluate, "load_or_train_classifier", refuse)
    if bench_quality is not None:
        monkeypatch.setattr(bench_quality, "load_mnist", refuse)
        monkeypatch.setattr(bench_quality, "load_or_train_classifier", refuse)
    monkeypatch.setattr(gan, "train_iteration", refuse)  # the toys train through it
    monkeypatch.setattr(toy_2d, "train_one_seed", refuse)
    monkeypatch.setattr(paper_table1.subprocess, "Popen", refuse)


@pytest.fixture
def places(tmp_path):
    """Paths the bad arguments are made of."""
    write_checkpoint(tmp_path / "run" / "checkpoint.npz")
    write_checkpoint(tmp_path / "paper" / "checkpoint.npz", "paper")
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_others").mkdir()
    write_checkpoint(tmp_path / "only_others" / "checkpoint_epoch005.npz")
    return {"ckpt": str(tmp_path / "run" / "checkpoint.npz"), "paper": str(tmp_path / "paper" / "checkpoint.npz"),
            "file": str(tmp_path / "a_file"), "dir": str(tmp_path / "empty"), "tmp": str(tmp_path),
            "others": str(tmp_path / "only_others")}


# --- refused by argparse: exit 2, the usage and one line naming the flag ---------------------------------

ARGPARSE = [
    ("evaluate", ["{ckpt}", "--seed", "-1"], "argument --seed: must be an integer in [0, 2**32), got -1"),
    ("evaluate", ["{ckpt}", "--seed", "4294967296"], "argument --seed: must be an integer in [0, 2**32)"),
    ("evaluate", ["{ckpt}", "--samples", "0"], "argument --samples: must be a positive integer, got 0"),
    ("evaluate", ["{ckpt}", "--samples", "-3"], "argument --samples: must be a positive integer, got -3"),
    ("evaluate", ["{ckpt}", "--samples", "ten"], "argument --samples: must be an integer, got 'ten'"),
    ("evaluate", ["{ckpt}", "--test-size", "0"], "argument --test-size: must be a positive integer, got 0"),
    ("evaluate", ["{ckpt}", "--test-size", "1"], "--samples and --test-size must be at least 2"),
    ("paper_figures", ["{paper}", "--seed", "-1"], "argument --seed: must be an integer in [0, 2**32), got -1"),
    ("paper_figures", ["{paper}", "--seed", "1.5"], "argument --seed: must be an integer, got '1.5'"),
    ("toy_1d", ["--seed", "-1"], "argument --seed: must be an integer in [0, 2**32), got -1"),
    ("toy_1d", ["--steps", "0"], "argument --steps: must be a positive integer, got 0"),
    ("toy_1d", ["--steps", "3"], "--steps must be at least 4, one per panel"),
    ("toy_1d", ["--frames", "-2"], "argument --frames: must be a positive integer, got -2"),
    ("toy_1d", ["--out", "{tmp}/same.png", "--animate", "{tmp}/same.png"], "--animate and --out both name"),
    ("toy_2d", ["--seed", "-1"], "argument --seed: must be an integer in [0, 2**32), got -1"),
    ("toy_2d", ["--steps", "0"], "argument --steps: must be a positive integer, got 0"),
    ("toy_2d", ["--seeds", "0"], "argument --seeds: must be a positive integer, got 0"),
    ("toy_2d", ["--samples", "-1"], "argument --samples: must be a positive integer, got -1"),
    ("toy_2d", ["--seed", "4294967295", "--seeds", "2"], "runs past the largest seed, 2**32 - 1"),
    ("bench_quality", ["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
    ("bench_quality", ["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    ("bench_quality", ["--seeds", "-1"], "argument --seeds: must be an integer in [0, 2**32), got -1"),
    ("bench_quality", ["--seeds", "1", "1"], "--seeds names 1 more than once"),
    ("bench_quality", ["--rows", "torch-k1", "torch-k1"], "--rows names torch-k1 more than once"),
    ("bench_quality", ["--eval-epochs", "0"], "argument --eval-epochs: must be a positive integer, got 0"),
    ("bench_quality", ["--epochs", "3", "--eval-epochs", "5"], "--eval-epochs 5 is past --epochs 3"),
    ("bench_quality", ["--train-images", "0"], "argument --train-images: must be a positive integer, got 0"),
    ("bench_quality", ["--samples", "0"], "argument --samples: must be a positive integer, got 0"),
    ("bench_quality", ["--test-size", "10001"], "--test-size 10001 is more than the 10000 digits"),
    ("paper_table1", ["--every", "0"], "argument --every: must be a positive integer, got 0"),
    ("paper_table1", ["--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    ("paper_table1", ["--seeds", "-1"], "argument --seeds: must be an integer in [0, 2**32), got -1"),
    ("paper_table1", ["--seeds", "0", "2", "0"], "--seeds names 0 more than once"),
    ("paper_parzen_diagnosis", ["{paper}", "--seed", "-1"], "argument --seed: must be an integer in [0, 2**32)"),
]


@pytest.mark.parametrize("name, argv, message", ARGPARSE, ids=[f"{n}{' '.join(a)}" for n, a, _ in ARGPARSE])
def test_refused_by_argparse(name, argv, message, places, no_work, capsys):
    status, err = outcome(name, [word.format(**places) for word in argv], capsys)
    assert status == 2
    assert ": error: " in err.splitlines()[-1] and message in err.splitlines()[-1], err


# --- one line, exit 1, before any work ---------------------------------------------------------------------

ONE_LINE = [
    # a folder given as a checkpoint
    ("evaluate", ["{dir}"], "error: checkpoint {dir} is a folder with no checkpoint.npz in it"),
    ("evaluate", ["{others}"], "error: checkpoint {others} is a folder with no checkpoint.npz in it; it holds "
                               "checkpoint_epoch005.npz: name one"),
    ("paper_figures", ["{dir}"], "error: checkpoint {dir} is a folder with no checkpoint.npz in it"),
    ("paper_parzen_diagnosis", ["{dir}"], "error: checkpoint {dir} is a folder with no checkpoint.npz in it"),
    ("paper_parzen_diagnosis", ["{tmp}/none.npz"], "error: checkpoint {tmp}/none.npz does not exist"),
    # an output that is a folder where a file is wanted, or a file where a folder is wanted
    ("evaluate", ["{ckpt}", "--out", "{dir}"], "error: --out {dir} is a folder"),
    ("evaluate", ["{ckpt}", "--out", "{file}/result.json"], "error: --out {file}/result.json cannot be written: "
                                                             "{file} is a file, not a folder"),
    ("paper_figures", ["{paper}", "--out", "{file}"], "error: --out {file} is a file, not a folder"),
    ("paper_figures", ["{paper}", "--out", "{file}/figures"], "error: --out {file}/figures cannot be created: "
                                                              "{file} is a file, not a folder"),
    ("toy_1d", ["--out", "{dir}"], "error: --out {dir} is a folder"),
    ("toy_1d", ["--out", "{file}/toy.png"], "error: --out {file}/toy.png cannot be written: {file} is a file"),
    ("toy_1d", ["--out", "{tmp}/toy.png", "--animate", "{dir}"], "error: --animate {dir} is a folder"),
    ("toy_2d", ["--out", "{dir}"], "error: --out {dir} is a folder"),
    ("toy_2d", ["--out", "{file}/ring.png"], "error: --out {file}/ring.png cannot be written: {file} is a file"),
    ("bench_quality", ["--out-dir", "{file}"], "error: --out-dir {file} is a file, not a folder"),
    ("bench_quality", ["--out-dir", "{tmp}/out", "--classifier-cache", "{file}"],
     "error: cannot cache the classifier in {file}: {file} is not a folder; pass another --classifier-cache"),
    ("paper_table1", ["--runs", "{file}", "--results", "{tmp}/results"],
     "error: --runs {file} is a file, not a folder"),
    ("paper_table1", ["--runs", "{tmp}/runs", "--results", "{file}"],
     "error: --results {file} is a file, not a folder"),
    ("paper_table1", ["--runs", "{tmp}/none", "--results", "{tmp}/results", "--collect-only"],
     "error: --runs {tmp}/none is not a folder of runs"),
    ("paper_parzen_diagnosis", ["{paper}", "--out", "{dir}"], "error: --out {dir} is a folder"),
    # an output over the checkpoint it reads
    ("evaluate", ["{ckpt}", "--out", "{ckpt}"], "error: --out {ckpt} is the checkpoint itself; name a .json file"),
    ("paper_parzen_diagnosis", ["{paper}", "--out", "{paper}"],
     "error: --out {paper} is the checkpoint itself; name a .json file"),
]


@pytest.mark.parametrize("name, argv, message", ONE_LINE, ids=[f"{n}{' '.join(a)}" for n, a, _ in ONE_LINE])
def test_one_line_before_any_work(name, argv, message, places, no_work, capsys):
    status, err = outcome(name, [word.format(**places) for word in argv], capsys)
    assert status == 1
    assert err.count("\n") == 1 and err.startswith(message.format(**places)), err


def test_a_read_only_output_is_refused_before_any_work(places, no_work, monkeypatch, capsys):
    # os.access is what the check asks; faked, because root (as in CI containers) may write anywhere.
    run = Path(places["ckpt"]).parent
    monkeypatch.setattr(cli.os, "access", lambda path, mode: Path(path) != run)
    status, err = outcome("evaluate", [places["ckpt"]], capsys)
    assert (status, err) == (1, f"error: cannot write the results file {run}/checkpoint.evaluation.json: "
                                f"no permission to write in {run}; choose another with --out\n")
    status, err = outcome("toy_2d", ["--out", str(run / "ring.png")], capsys)
    assert (status, err) == (1, f"error: cannot write --out {run}/ring.png: no permission to write in {run}\n")


def test_paper_figures_in_a_read_only_run_folder_point_to_out(places, no_work, monkeypatch, capsys):
    def read_only(dir=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", read_only)
    status, err = outcome("paper_figures", [places["paper"]], capsys)
    assert (status, err) == (1, f"error: cannot write to the checkpoint's folder {Path(places['paper']).parent}: "
                                f"Permission denied; choose another with --out\n")


# --- the shell sees one line, never a traceback -----------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["-m", "minigan.evaluate", "{dir}"],
    ["examples/paper_figures.py", "{paper}", "--out", "{file}"],
    ["examples/toy_2d.py", "--out", "{dir}"],
    ["benchmarks/paper_parzen_diagnosis.py", "{tmp}/none.npz"],
])
def test_the_shell_gets_one_line_and_status_1(command, places):
    done = subprocess.run([sys.executable, *[w.format(**places) for w in command]], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


# --- no result replaces another -------------------------------------------------------------------------------


@pytest.fixture
def tiny_world(monkeypatch, small_classifier):
    """Synthetic MNIST (300 train, 100 test), σ chosen on train[200:250], and the small classifier."""
    def fake_load_mnist(split, data_dir=None):
        return synthetic_digits(300, seed=0) if split == "train" else synthetic_digits(100, seed=1)

    for module in (evaluate, figures):
        monkeypatch.setattr(module, "load_mnist", fake_load_mnist)
    monkeypatch.setattr(evaluate, "VALIDATION_ROWS", slice(200, 250))
    monkeypatch.setattr(evaluate, "load_or_train_classifier", lambda **kwargs: small_classifier)


def test_two_checkpoints_in_one_folder_keep_two_evaluations(tmp_path, tiny_world, capsys):
    a, b = (write_checkpoint(tmp_path / f"{name}.npz") for name in "AB")
    small = ["--samples", "50", "--test-size", "20"]
    assert evaluate.run([str(a), *small, "--seed", "1"]) == 0
    assert evaluate.run([str(b), *small, "--seed", "2"]) == 0
    first, second = (json.loads((tmp_path / f"{name}.evaluation.json").read_text()) for name in "AB")
    assert (first["checkpoint"], first["seed"]) == (str(a), 1)
    assert (second["checkpoint"], second["seed"]) == (str(b), 2)
    assert not (tmp_path / "evaluation.json").exists()
    assert f"wrote {tmp_path / 'B.evaluation.json'}" in capsys.readouterr().out


def test_evaluate_takes_a_run_folder_and_writes_where_out_says(tmp_path, tiny_world):
    write_checkpoint(tmp_path / "run" / "checkpoint.npz")
    out = tmp_path / "scores" / "first.json"
    assert evaluate.run([str(tmp_path / "run"), "--samples", "50", "--test-size", "20", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["checkpoint"] == str(tmp_path / "run" / "checkpoint.npz")
    assert list((tmp_path / "run").iterdir()) == [tmp_path / "run" / "checkpoint.npz"]


def test_paper_figures_write_beside_the_checkpoint_not_into_docs(tmp_path, tiny_world, monkeypatch, capsys):
    docs = ROOT / "docs"
    before = {path.name: path.stat().st_mtime_ns for path in docs.glob("figure*_paper.png")}
    checkpoint = write_checkpoint(tmp_path / "run" / "checkpoint.npz", "paper")
    monkeypatch.chdir(ROOT)  # where the old default, docs/, pointed into the checkout
    assert cli.run_main(figures.main, [str(checkpoint)]) == 0
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["figure2_paper.png", "figure3_paper.png"]
    assert {path.name: path.stat().st_mtime_ns for path in docs.glob("figure*_paper.png")} == before
    assert str(tmp_path / "run" / "figure2_paper.png") in capsys.readouterr().out


def test_paper_figures_take_a_run_folder(tmp_path, tiny_world):
    write_checkpoint(tmp_path / "run" / "checkpoint.npz", "paper")
    assert cli.run_main(figures.main, [str(tmp_path / "run"), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["figure2_paper.png", "figure3_paper.png"]


# --- paper_table1: its children's failures and file names -------------------------------------------------


class FakeChild:
    """subprocess.Popen for paper_table1's children: `act(command)` does the child's work and
    returns its exit status."""

    act = None

    def __init__(self, command, **kwargs):
        self.command = command

    def wait(self):
        return type(self).act(self.command)


def test_paper_table1_stops_with_the_childs_status_and_one_line(tmp_path, monkeypatch, capsys):
    def failing_child(command):
        print("error: the child's own message", file=sys.stderr)
        return 3

    monkeypatch.setattr(FakeChild, "act", staticmethod(failing_child))
    monkeypatch.setattr(paper_table1.subprocess, "Popen", FakeChild)
    argv = ["--seeds", "0", "--epochs", "2", "--every", "1", "--runs", str(tmp_path / "runs"),
            "--results", str(tmp_path / "res")]
    status, err = outcome("paper_table1", argv, capsys)
    assert status == 3
    assert err == ("error: the child's own message\n"
                   "error: examples/mnist.py (seed 0, to epoch 1) stopped with exit status 3 (its message is above)\n")


def test_paper_table1_scores_each_kept_epoch_into_its_own_file(tmp_path, monkeypatch):
    """The children are faked: training writes a checkpoint at the epoch asked for; scoring writes
    what evaluate would, where --out says."""
    commands = []

    def child(command):
        commands.append(command)
        if "minigan.evaluate" in command:
            out = Path(command[command.index("--out") + 1])
            out.write_text(json.dumps({"model": {"parzen": {"log_likelihood": 100.0 + len(commands),
                                                            "standard_error": 2.0, "sigma": 0.2},
                                                 "fid": 1.0, "classes_covered": 10}}))
        else:
            folder = Path(command[command.index("--out") + 1]) if "--out" in command else \
                Path(command[command.index("--resume") + 1]).parent
            epoch = int(command[command.index("--epochs") + 1])
            save_checkpoint(folder / "checkpoint.npz", {"meta.epoch": epoch})
        return 0

    monkeypatch.setattr(FakeChild, "act", staticmethod(child))
    monkeypatch.setattr(paper_table1.subprocess, "Popen", FakeChild)
    runs = tmp_path / "runs"
    assert paper_table1.main(["--seeds", "0", "--epochs", "3", "--every", "2", "--runs", str(runs),
                              "--results", str(tmp_path / "res")]) == 0
    seed0 = runs / "seed0"
    assert sorted(p.name for p in seed0.glob("evaluation*")) == ["evaluation_epoch002.json", "evaluation_epoch003.json"]
    assert sorted(p.name for p in seed0.glob("checkpoint_epoch*")) == ["checkpoint_epoch002.npz",
                                                                       "checkpoint_epoch003.npz"]
    (record,) = (json.loads(p.read_text()) for p in (tmp_path / "res").glob("paper_table1-uniform-*.json"))
    assert record["epochs"] == 3 and record["curve"] == {"2": {"0": 102.0}, "3": {"0": 104.0}}
    # A second call finds every epoch kept and scored, and runs nothing.
    commands.clear()
    assert paper_table1.main(["--seeds", "0", "--epochs", "3", "--every", "2", "--runs", str(runs),
                              "--results", str(tmp_path / "res")]) == 0
    assert commands == []


def test_paper_table1_lets_an_interrupted_child_finish_saving(tmp_path, monkeypatch, capsys):
    waits = []

    class InterruptedChild(FakeChild):
        def wait(self):
            waits.append(self.command)
            if len(waits) == 1:
                raise KeyboardInterrupt  # Ctrl-C while the child trains
            return 130  # the child saved its checkpoint and stopped

    monkeypatch.setattr(paper_table1.subprocess, "Popen", InterruptedChild)
    argv = ["--seeds", "0", "--epochs", "1", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    status, _ = outcome("paper_table1", argv, capsys)
    assert status == 130 and len(waits) == 2 and waits[0] is waits[1]


def test_paper_table1_names_a_seed_folder_that_is_a_file(tmp_path, no_work, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "seed0").write_text("a file")
    argv = ["--seeds", "0", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    assert outcome("paper_table1", argv, capsys) == (
        1, f"error: the folder of seed 0 {tmp_path / 'runs' / 'seed0'} is a file, not a folder\n")


def test_paper_table1_names_a_damaged_evaluation(tmp_path, capsys):
    (tmp_path / "seed0").mkdir()
    (tmp_path / "seed0" / "evaluation_epoch025.json").write_text("{not json")
    status, err = outcome("paper_table1", ["--seeds", "0", "--runs", str(tmp_path), "--results",
                                           str(tmp_path / "res"), "--collect-only"], capsys)
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"error: {tmp_path / 'seed0' / 'evaluation_epoch025.json'} is not a minigan.evaluate "
                          f"record (")


# --- a busy machine is named at the start, and thread counts stay as they are ------------------------------


@pytest.mark.parametrize("name, argv", [("evaluate", ["{ckpt}", "--samples", "50", "--test-size", "20"]),
                                        ("bench_quality", ["--out-dir", "{tmp}/out", "--classifier-cache", "{tmp}"])])
def test_evaluate_and_bench_quality_warn_of_busy_cores_before_the_work(name, argv, places, monkeypatch, capsys):
    events = []
    monkeypatch.setattr(cli, "warn_if_cores_busy", lambda: events.append("warned"))

    def first_work(*args, **kwargs):
        events.append("work")
        raise KeyboardInterrupt  # stop there

    monkeypatch.setattr(evaluate, "load_generator", first_work)
    if bench_quality is not None:
        monkeypatch.setattr(bench_quality, "load_mnist", first_work)
    threads = {key: value for key, value in os.environ.items() if key.endswith("_NUM_THREADS")}
    status, _ = outcome(name, [word.format(**places) for word in argv], capsys)
    assert status == 130 and events == ["warned", "work"]
    assert {key: value for key, value in os.environ.items() if key.endswith("_NUM_THREADS")} == threads


# --- the classifier's own arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "train_classifier: epochs must be a positive integer, got 0"),
    ({"batch_size": 0}, "train_classifier: batch_size must be a positive integer, got 0"),
    ({"lr": float("nan")}, "train_classifier: lr must be a finite number > 0, got nan"),
    ({"lr": -1e-3}, "train_classifier: lr must be a finite number > 0, got -0.001"),
])
def test_train_classifier_refuses_impossible_settings(kwargs, message):
    images, labels = synthetic_digits(20)
    with pytest.raises(ValueError) as info:
        classifier.train_classifier(images, labels, progress=False, **kwargs)
    assert str(info.value) == message


def test_train_classifier_refuses_no_images_and_labels_out_of_range():
    images, labels = synthetic_digits(20)
    with pytest.raises(ValueError, match="^classifier: no images given$"):
        classifier.train_classifier(images[:0], labels[:0], progress=False)
    with pytest.raises(ValueError, match=r"^train_classifier: labels must lie in \[0, 10\), got 0\.\.12$"):
        classifier.train_classifier(images, np.where(labels == labels[0], 12, 0), progress=False)


# --- a file that is not a checkpoint ------------------------------------------------------------------------

NOT_CHECKPOINTS = {"random bytes": np.random.default_rng(0).bytes(256),
                   "a PNG": b"\x89PNG\r\n\x1a\n" + bytes(64),
                   "a JSON": json.dumps({"model": {"fid": 1.0}}).encode(),
                   "empty": b""}


@pytest.mark.parametrize("what", list(NOT_CHECKPOINTS))
@pytest.mark.parametrize("name", ["evaluate", "paper_figures", "paper_parzen_diagnosis"])
def test_a_file_that_is_not_a_checkpoint_is_one_line_without_talk_of_pickles(name, what, tmp_path, no_work, capsys):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(NOT_CHECKPOINTS[what])
    status, err = outcome(name, [str(path)], capsys)
    assert status == 1 and err.count("\n") == 1 and err.startswith(f"error: checkpoint {path} "), err
    assert "pickle" not in err.lower() and "not a .npz" in err


# --- evaluate's Python API checks what its command line checks -------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"samples": 0}, "evaluate: samples must be an integer of at least 2 (a covariance needs two rows), got 0"),
    ({"test_size": 1}, "evaluate: test_size must be an integer of at least 2 (a covariance needs two rows), got 1"),
    ({"samples": 2.5}, "evaluate: samples must be an integer of at least 2 (a covariance needs two rows), got 2.5"),
    ({"seed": -1}, "evaluate: seed must be an integer in [0, 2**32), got -1"),
])
def test_evaluate_api_refuses_impossible_sizes_before_any_work(kwargs, message, places, no_work):
    with pytest.raises(ValueError) as info:
        evaluate.evaluate(places["ckpt"], cache_dir=places["tmp"], **kwargs)
    assert str(info.value) == message


def test_generate_pixels_refuses_no_samples():
    with pytest.raises(ValueError, match=r"^generate_pixels: n must be a positive integer, got 0$"):
        evaluate.generate_pixels(gan.build_generator(gan.CONFIGS["reference"]), gan.CONFIGS["reference"], 0, seed=0)
