"""benchmarks/paper_table1.py: collecting the per-seed Parzen curve into the Table-1 record."""

import json
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
