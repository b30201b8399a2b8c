"""benchmarks/paper_table1.py: collecting the per-seed Parzen curve into the Table-1 record."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import paper_table1  # noqa: E402


def fake_evaluation(folder: Path, epoch: int, parzen: float):
    folder.mkdir(parents=True, exist_ok=True)
    record = {"model": {"parzen": {"log_likelihood": parzen, "standard_error": 2.0, "sigma": 0.2},
                        "fid": 50.0, "classes_covered": 10}}
    (folder / f"evaluation_epoch{epoch:03d}.json").write_text(json.dumps(record))


def test_collect_only_writes_the_table1_record_and_plot(tmp_path, capsys):
    runs = tmp_path / "runs"
    for seed, values in {0: [100.0, 200.0, 230.0], 1: [90.0, 210.0], 2: [95.0, 220.0]}.items():
        for epoch, value in zip((25, 50, 75), values):
            fake_evaluation(runs / f"seed{seed}", epoch, value)
    assert paper_table1.main(["--runs", str(runs), "--results", str(tmp_path / "out"), "--collect-only"]) == 0
    (json_path,) = (tmp_path / "out").glob("paper_table1-*.json")
    assert json_path.name.startswith("paper_table1-uniform-")  # labelled by the paper config's prior
    record = json.loads(json_path.read_text())
    assert record["noise"] == "uniform"
    assert record["epochs"] == 50  # the last epoch scored for every seed
    assert record["parzen"] == [200.0, 210.0, 220.0] and record["parzen_mean"] == pytest.approx(210.0)
    assert record["parzen_se"] == pytest.approx(np.std([200, 210, 220], ddof=1) / np.sqrt(3))
    assert record["curve"]["75"] == {"0": 230.0} and record["curve"]["25"] == {"0": 100.0, "1": 90.0, "2": 95.0}
    assert {"config", "seeds", "sigma", "command", "machine", "date"} <= record.keys() and record["config"] == "paper"
    assert record["command"] == "python benchmarks/paper_table1.py --runs <runs> --results <results> --collect-only"
    assert (tmp_path / "out" / json_path.name.replace(".json", ".png")).stat().st_size > 0
    assert "Parzen 210.0" in capsys.readouterr().out


def test_collect_only_without_scores_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no epoch has been scored for every seed yet"):
        paper_table1.main(["--runs", str(tmp_path), "--results", str(tmp_path / "out"), "--collect-only"])


def test_compare_plots_both_priors_and_refuses_other_files(tmp_path, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    fake_evaluation(runs / "seed0", 25, 100.0)
    fake_evaluation(runs / "seed0", 50, 150.0)
    records = []
    for noise in ("uniform", "normal"):
        assert paper_table1.main(["--runs", str(runs), "--results", str(out / noise), "--seeds", "0",
                                  "--noise", noise, "--collect-only"]) == 0
        (path,) = (out / noise).glob("paper_table1-*.json")
        records.append(str(path))
    assert paper_table1.main(["--results", str(out), "--compare", *records]) == 0
    (png,) = out.glob("paper_table1-priors-*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    not_a_record = tmp_path / "other.json"
    not_a_record.write_text(json.dumps({"epochs": 3}))
    with pytest.raises(SystemExit, match="not a Table-1 record"):
        paper_table1.main(["--results", str(out), "--compare", str(not_a_record)])


def test_the_record_keeps_every_score_and_where_each_seed_stands(tmp_path):
    runs = tmp_path / "runs"
    for epoch, value in ((50, 140.0), (100, 160.0), (150, 170.0)):
        fake_evaluation(runs / "seed0", epoch, value)
    fake_evaluation(runs / "seed1", 50, 135.0)
    out = tmp_path / "out"
    assert paper_table1.main(["--runs", str(runs), "--results", str(out), "--seeds", "0", "1",
                              "--record", "long-runs", "--collect-only"]) == 0
    record = json.loads((out / "long-runs.json").read_text())
    assert (out / "long-runs.png").read_bytes()[:4] == b"\x89PNG"
    assert record["epochs"] == 50 and record["parzen"] == [140.0, 135.0]  # the last epoch both reached
    assert record["latest"] == {"0": {"epoch": 150, "parzen": 170.0, "parzen_se": 2.0, "sigma": 0.2, "fid": 50.0,
                                      "inception_score": None, "classes_covered": 10},
                                "1": {"epoch": 50, "parzen": 135.0, "parzen_se": 2.0, "sigma": 0.2, "fid": 50.0,
                                      "inception_score": None, "classes_covered": 10}}
    assert record["scores"]["100"]["0"]["parzen"] == 160.0 and "1" not in record["scores"]["100"]
    assert len(record["scored"]) == 2 and record["scored"][0] <= record["scored"][1]
    assert record["machine"]["openblas_coretype"]


def test_record_names_a_file_not_a_folder(tmp_path):
    with pytest.raises(SystemExit):
        paper_table1.main(["--runs", str(tmp_path), "--results", str(tmp_path), "--record", "../x", "--collect-only"])


def write_checkpoint_at(path: Path, epoch: int):
    np.savez(path, **{"meta.epoch": np.array(epoch)})


def fake_children(monkeypatch, calls, parzen_at=lambda epoch: 100.0):
    """run_child stand-in: training writes checkpoint.npz at the target epoch, scoring writes a record
    with the Parzen score `parzen_at(epoch)`."""
    def run_child(what, command, log=None, **kwargs):
        calls.append((what, log))
        if "examples" in command[1]:
            folder = Path(command[command.index("--resume") + 1]).parent if "--resume" in command else \
                Path(command[command.index("--out") + 1])
            write_checkpoint_at(folder / "checkpoint.npz", int(command[command.index("--epochs") + 1]))
        else:
            scored = Path(command[command.index("--out") + 1])
            epoch = int(scored.stem.removeprefix("evaluation_epoch"))
            fake_evaluation(scored.parent, epoch, parzen_at(epoch))
    monkeypatch.setattr(paper_table1, "run_child", run_child)


def test_it_resumes_whatever_a_folder_holds(tmp_path, monkeypatch, capsys):
    seed0 = tmp_path / "seed0"
    seed0.mkdir()
    # A session ended past epoch 50 without keeping it (kept every 25 before, say) and scored 25 only.
    write_checkpoint_at(seed0 / "checkpoint.npz", 60)
    write_checkpoint_at(seed0 / "checkpoint_epoch025.npz", 25)
    fake_evaluation(seed0, 25, 80.0)
    calls = []
    fake_children(monkeypatch, calls)
    paper_table1.train_and_evaluate(seed0, 0, "uniform", 100, 50, [])
    assert "past epoch 50, which was never kept" in capsys.readouterr().out
    assert [what for what, _ in calls] == ["examples/mnist.py (seed 0, to epoch 100)",
                                           "minigan.evaluate (checkpoint_epoch100.npz)"]
    # Started again with everything done: nothing runs.
    calls.clear()
    paper_table1.train_and_evaluate(seed0, 0, "uniform", 100, 50, [])
    assert calls == []


def test_while_climbing_goes_on_past_epochs_until_three_scores_after_the_best_are_none_higher(
        tmp_path, monkeypatch, capsys):
    curve = {50: 140.0, 100: 160.0, 150: 171.0, 200: 170.0, 250: 172.0, 300: 171.0, 350: 172.0, 400: 169.0}
    calls = []
    fake_children(monkeypatch, calls, parzen_at=curve.__getitem__)
    paper_table1.train_and_evaluate(tmp_path / "seed0", 0, "uniform", 100, 50, [])
    assert calls[-1][0] == "minigan.evaluate (checkpoint_epoch100.npz)"  # without the flag: to --epochs only
    calls.clear()
    paper_table1.train_and_evaluate(tmp_path / "seed0", 0, "uniform", 100, 50, [], while_climbing=True)
    # 200 is lower than 150 but 250 beats it; 350 only equals 250's best; 400 is the third after it.
    assert [what for what, _ in calls if "mnist.py" in what] == [
        f"examples/mnist.py (seed 0, to epoch {epoch})" for epoch in (150, 200, 250, 300, 350, 400)]
    assert "seed 0 has stopped climbing: best 172.0 at epoch 250, 3 scores since, none higher" in \
        capsys.readouterr().out
    calls.clear()  # started again once it has stopped: nothing more to do
    paper_table1.train_and_evaluate(tmp_path / "seed0", 0, "uniform", 100, 50, [], while_climbing=True)
    assert calls == []


def test_while_climbing_reaches_every_seed_through_main_and_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    calls = []
    fake_children(monkeypatch, calls, parzen_at=lambda epoch: {50: 150.0}.get(epoch, 140.0))
    assert paper_table1.main(["--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "out"), "--record", "r",
                              "--seeds", "0", "1", "--epochs", "50", "--every", "50", "--jobs", "2",
                              "--while-climbing"]) == 0
    for seed in (0, 1):  # the best at 50, then three lower scores: 100, 150 and 200
        assert sorted(what for what, _ in calls if f"seed {seed}," in what) == sorted(
            f"examples/mnist.py (seed {seed}, to epoch {epoch})" for epoch in (50, 100, 150, 200))
    assert json.loads((tmp_path / "out" / "r.json").read_text())["best"]["1"]["stopped_climbing"] is True


def test_jobs_train_seeds_at_once_each_at_one_thread_with_its_own_log(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    calls = []
    fake_children(monkeypatch, calls)
    paper_table1.train_seeds(tmp_path, [0, 1], "uniform", 50, 50, [], jobs=2)
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    logs = {log for _, log in calls}
    assert logs == {(tmp_path / "seed0" / "train.log").resolve(), (tmp_path / "seed1" / "train.log").resolve()}
    out = capsys.readouterr().out
    assert "seed 0, epoch 50: Parzen 100.0" in out and "seed 1, epoch 50: Parzen 100.0" in out


def test_a_failed_seed_is_reported_after_the_others_finish(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    calls = []
    fake_children(monkeypatch, calls)
    real = paper_table1.run_child

    def failing_for_seed1(what, command, log=None, **kwargs):
        if "seed 1" in what:
            raise paper_table1.ChildFailed(what, 3, f"; its output is in {log}")
        real(what, command, log=log, **kwargs)

    monkeypatch.setattr(paper_table1, "run_child", failing_for_seed1)
    with pytest.raises(paper_table1.ChildFailed, match="seed 1.*exit status 3; its output is in"):
        paper_table1.train_seeds(tmp_path, [0, 1], "uniform", 50, 50, [], jobs=2)
    assert (tmp_path / "seed0" / "evaluation_epoch050.json").exists()  # seed 0 ran to the end


def test_compare_names_each_record_by_its_file(tmp_path):
    path = tmp_path / "paper_table1-uniform-long.json"
    path.write_text(json.dumps({"noise": "uniform", "seeds": [0], "curve": {"50": {"0": 140.0}}, "date": "d"}))
    assert paper_table1.read_record(str(path))["source"] == "paper_table1-uniform-long"


def test_the_record_says_where_each_seed_scored_best_and_whether_it_stopped_climbing(tmp_path, capsys):
    runs = tmp_path / "runs"
    # Seed 0 peaks at 150 and then scores three times lower: it has stopped. Seed 1 peaks at its
    # second-to-last score, with one lower score after it: it may still climb.
    for epoch, value in ((50, 140.0), (100, 160.0), (150, 171.0), (200, 170.5), (250, 169.0), (300, 170.9)):
        fake_evaluation(runs / "seed0", epoch, value)
    for epoch, value in ((50, 135.0), (100, 150.0), (150, 149.0)):
        fake_evaluation(runs / "seed1", epoch, value)
    out = tmp_path / "out"
    assert paper_table1.main(["--runs", str(runs), "--results", str(out), "--seeds", "0", "1",
                              "--record", "r", "--collect-only"]) == 0
    best = json.loads((out / "r.json").read_text())["best"]
    assert best == {"0": {"epoch": 150, "parzen": 171.0, "scores_after": 3, "stopped_climbing": True},
                    "1": {"epoch": 100, "parzen": 150.0, "scores_after": 1, "stopped_climbing": False}}
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == ["seed 0: best 171.0 at epoch 150, stopped climbing: 3 scores since, none higher",
                          "seed 1: best 150.0 at epoch 100, still climbing (1 of 3 scores since)"]
