"""This run vs the reference run: headline numbers, tolerances and flags; reproduce never
writes into the reference."""

from __future__ import annotations

import csv
import json

import figures_synthetic as synthetic
import pytest

from stingy.figures.comparison import CIFAR_TOLERANCE, SIMULATION_FLOOR, compare, headline_numbers
from stingy.pipeline import REFERENCE_RUN, check_out


def _edit_csv(path, change):
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        change(row)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_the_same_results_agree_on_every_headline_number(tmp_path):
    results = synthetic.write_results(tmp_path / "a")
    numbers = headline_numbers(results)
    rows = compare(numbers, numbers)
    assert rows and all(row["agree"] for row in rows)
    names = " ".join(numbers)
    assert "simulation accuracy, noise 0 symmetric, stingy_kd r=0.1" in names
    assert "simulation verdict (u_shape), noise 0.2 symmetric" in names
    assert "simulation verdict (gap_matches)" in names and "derivations failed" in names
    assert "CIFAR-10 (cifar10_quick) test accuracy, normal_kd cnn" in names


def test_a_simulation_accuracy_differs_exactly_past_both_confidence_half_widths(tmp_path):
    reference = synthetic.write_results(tmp_path / "reference")
    this = synthetic.write_results(tmp_path / "this")
    # scratch at noise 0 has CI half-width 0.01 in both runs: tolerance 0.02
    shifts = {"0.0": 0.0199, "0.2": 0.0201}

    def shift(row):
        if row["method"] == "scratch" and row["noise"] in shifts:
            row["accuracy_mean"] = str(float(row["accuracy_mean"]) + shifts[row["noise"]])

    _edit_csv(this / "simulations" / "summary.csv", shift)
    rows = {row["name"]: row for row in compare(headline_numbers(this),
                                                headline_numbers(reference))}
    inside = rows["simulation accuracy, noise 0 symmetric, scratch"]
    outside = rows["simulation accuracy, noise 0.2 symmetric, scratch"]
    assert inside["agree"] is True and outside["agree"] is False
    assert inside["tolerance"].startswith("+-0.0200")
    assert sum(row["agree"] is False for row in rows.values()) == 1


def test_cifar_accuracy_uses_its_fixed_tolerance_and_verdicts_must_match(tmp_path):
    reference = synthetic.write_results(tmp_path / "reference")
    this = synthetic.write_results(tmp_path / "this")

    def shift(row):
        if row["method"] == "normal_kd":
            row["test_accuracy"] = str(float(row["test_accuracy"]) + CIFAR_TOLERANCE + 1e-3)

    _edit_csv(this / "cifar10_quick" / "summary.csv", shift)
    verdicts = json.loads((this / "simulations" / "verdicts.json").read_text())
    verdicts[0]["verdict"] = "fail" if verdicts[0]["verdict"] == "pass" else "pass"
    (this / "simulations" / "verdicts.json").write_text(json.dumps(verdicts))
    differ = [row for row in compare(headline_numbers(this), headline_numbers(reference))
              if row["agree"] is False]
    assert len(differ) == 2
    assert {row["tolerance"] for row in differ} == {f"+-{CIFAR_TOLERANCE:g}", "equal"}


def test_the_committed_reference_run_gives_one_number_per_verdict_and_summary_row():
    from stingy.figures.draw import SIMULATION_DIR

    numbers = headline_numbers(REFERENCE_RUN)
    verdicts = json.loads((REFERENCE_RUN / SIMULATION_DIR / "verdicts.json").read_text())
    assert sum(name.startswith("simulation verdict") for name in numbers) == len(verdicts)
    rows = list(csv.DictReader((REFERENCE_RUN / SIMULATION_DIR / "summary.csv").open()))
    assert sum(name.startswith("simulation accuracy") for name in numbers) == len(rows)
    assert all(row["agree"] for row in compare(numbers, numbers))


def test_differing_settings_are_named(tmp_path):
    from stingy.figures.comparison import settings_differences
    from stingy.io import write_json

    reference = synthetic.write_results(tmp_path / "reference")
    this = synthetic.write_results(tmp_path / "this")
    assert settings_differences(this, reference) == []
    write_json(this / "theory/theory_grid.json", {"label": "other logits"})
    write_json(this / "simulations/config.json", {"config": {"seeds": 2}, "wall_time_s": 1})
    write_json(reference / "simulations/config.json", {"config": {"seeds": 2}, "wall_time_s": 9})
    assert settings_differences(this, reference) == ["theory/theory_grid.json"]


def test_numbers_in_one_run_only_are_listed_not_compared(tmp_path):
    reference = synthetic.write_results(tmp_path / "reference")
    this = synthetic.write_results(tmp_path / "this", quick=False)
    rows = compare(headline_numbers(this), headline_numbers(reference))
    alone = [row for row in rows if row["agree"] is None]
    assert alone and all(row["this"] is None and "CIFAR-10" in row["name"] for row in alone)
    assert SIMULATION_FLOOR > 0


def test_the_report_ends_with_this_run_vs_the_reference(tmp_path):
    from stingy.figures.report import render_report

    reference = synthetic.write_results(tmp_path / "reference")
    this = synthetic.write_results(tmp_path / "this")
    _edit_csv(this / "simulations" / "summary.csv",
              lambda row: row.update(accuracy_mean="0.1") if row["method"] == "scratch" else None)
    machine = {"date": "today", "python": "3", "platform": "x", "cpu": "c", "cores": 2,
               "torch": "t", "torch_threads": 1, "gpu": None}
    text = render_report(this, "quick", [], [], [], machine=machine, reference=reference)
    last = text.split("## ")[-1]
    assert last.startswith("This run vs the reference")
    assert "3 differ beyond their tolerance" in last and last.count("**DIFFERS**") == 3
    alone = render_report(this, "quick", [], [], [], machine=machine, reference=None)
    assert "no reference run" in alone.split("## ")[-1].lower()


@pytest.mark.parametrize("out", ["results", "results/sub"])
def test_reproduce_refuses_to_write_into_the_reference_run(out, tmp_path, capsys):
    from stingy.cli import main

    reference = tmp_path / "results"
    reference.mkdir()
    with pytest.raises(ValueError, match="not inside the reference run"):
        check_out(tmp_path / out, reference)
    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path / out),
                 "--reference", str(reference)]) == 2
    assert "--out" in capsys.readouterr().err
    assert list(reference.iterdir()) == []


def test_the_default_reference_is_the_checkouts_committed_results():
    assert REFERENCE_RUN.name == "results" and (REFERENCE_RUN / "REPORT.md").is_file()

