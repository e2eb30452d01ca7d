"""`stingy simulate`: bad input is one line and exit 2; a tiny sweep writes every file and
reuses finished settings."""

from __future__ import annotations

import csv
import json

import pytest

from stingy.cli import main
from tests.simulations.tiny import TINY


@pytest.mark.parametrize("argv, flag", [
    (["--noise", "1.5"], "--noise"), (["--seeds", "1"], "--seeds"),
    (["--ratios", "0.001"], "--ratios"), (["--temperature", "0"], "--temperature"),
    (["--alpha", "2"], "--alpha"), (["--classes", "7"], "--classes")])
def test_bad_flags_give_one_line_naming_the_flag_and_exit_2(argv, flag, capsys, tmp_path):
    assert main(["simulate", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def test_tiny_sweep_writes_every_file_and_reuses_work(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    argv = ["simulate", "--config", str(config), "--noise", "0", "0.3", "--out", str(out),
            "--json"]
    assert main(argv) == 0
    verdicts = json.loads(capsys.readouterr().out)
    checks = {v["check"] for v in verdicts}
    assert {"a", "b", "c-T", "c-eNTK", "c-overlap", "d"} <= checks
    assert checks <= {"a", "b", "c-T", "c-eNTK", "c-overlap", "d", "e-mass", "e-noise"}
    assert all(v["verdict"] in ("pass", "fail") and v["verdict_holm"] in ("pass", "fail")
               for v in verdicts)
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 2 * 2 * (4 + 2 * 5)  # settings x seeds x (4 dense + 2 sparse x 5 r)
    for column in ("classes", "noise", "noise_kind", "temperature", "alpha", "method", "ratio",
                   "k", "seed", "accuracy", "log_loss", "excess_log_loss", "teacher_agreement",
                   "accuracy_within_m", "kept_mass", "signal_to_drive", "final_logit_gap"):
        assert column in runs[0]
    with open(out / "summary.csv") as f:
        header = next(csv.reader(f))
    assert {"n_seeds", "accuracy_ci95_low", "bayes_accuracy", "teacher_accuracy"} <= set(header)
    with open(out / "gap_trajectory.csv") as f:
        header = next(csv.reader(f))
    assert {"step", "logit_gap", "predicted_gap", "temperature", "seed"} <= set(header)
    saved = sorted((out / "settings").iterdir())
    assert len(saved) == 2
    stamps = [p.stat().st_mtime_ns for p in saved]
    assert main(argv) == 0  # the second run reuses both settings
    assert [p.stat().st_mtime_ns for p in saved] == stamps
    assert json.loads((out / "config.json").read_text())["config"]["task"]["classes"] == 10


def test_separate_refuses_one_seed_in_one_line(capsys, tmp_path):
    assert main(["separate", "--seeds", "1", "--out", str(tmp_path / "sep")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--seeds" in err
    assert not (tmp_path / "sep").exists()


def test_alpha_0_trains_on_labels_only_and_makes_no_drive_check(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    assert main(["simulate", "--config", str(config), "--noise", "0", "--alpha", "0",
                 "--out", str(out), "--json"]) == 0
    checks = {v["check"] for v in json.loads(capsys.readouterr().out)}
    assert {"a", "b", "d"} <= checks and not any(c.startswith("c-") for c in checks)
    with open(out / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert {float(row["alpha"]) for row in runs} == {0.0}
    assert (out / "drive_rates.csv").read_text().strip() == ""
