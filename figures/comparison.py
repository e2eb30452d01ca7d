"""This run beside the reference run (the committed ``results/``), per headline number.

Headline numbers, read from a results folder:

- each simulation accuracy mean of ``simulations/summary.csv`` (per noise setting, method
  and ratio), compared within the sum of both runs' 95% CI half-widths (at least
  :data:`SIMULATION_FLOOR`);
- each simulation verdict of ``simulations/verdicts.json`` (pass / fail must be equal);
- the number of failed derivations in ``theory/derivations.json`` (must be equal);
- each CIFAR-10 test accuracy of the quick or paper summary, compared within
  :data:`CIFAR_TOLERANCE` (one seed: about +-1 point between seeds is normal).

A number present in only one run is listed as not compared. :func:`settings_differences`
names the settings files that differ between the runs (numbers from those are not like for
like).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from stingy.figures.draw import PAPER_DIR, QUICK_DIR, SIMULATION_DIR, THEORY_DIR
from stingy.figures.inputs import read_rows
from stingy.formatting import is_missing

SIMULATION_FLOOR = 0.005
CIFAR_TOLERANCE = 0.02


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _number(value) -> str:
    """A number in its shortest form; anything else (e.g. "0.3 vs 0.0") as it is."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def _ratio(value) -> str:
    return "" if is_missing(value) or value in ("", 0) else f" r={float(value):g}"


def headline_numbers(results_dir: str | Path) -> dict[str, dict]:
    """{name: {"value", "half_width" (numbers with a CI), "tolerance" (fixed), "exact"}}."""
    results_dir = Path(results_dir)
    numbers = {}
    summary = results_dir / SIMULATION_DIR / "summary.csv"
    if summary.is_file():
        for row in read_rows(summary, "simulation summary",
                             ("noise", "noise_kind", "method", "ratio", "accuracy_mean",
                              "accuracy_ci95_low", "accuracy_ci95_high")):
            name = (f"simulation accuracy, noise {_number(row['noise'])} {row['noise_kind']}, "
                    f"{row['method']}{_ratio(row['ratio'])}")
            half = (row["accuracy_ci95_high"] - row["accuracy_ci95_low"]) / 2
            numbers[name] = {"value": row["accuracy_mean"],
                             "half_width": 0.0 if is_missing(half) else half}
    for verdict in _json(results_dir / SIMULATION_DIR / "verdicts.json") or []:
        setting = ("" if verdict.get("noise") is None
                   else f", noise {_number(verdict['noise'])} {verdict.get('noise_kind', '')}")
        name = f"simulation verdict ({verdict['check']}){setting.rstrip()}"
        repeat = sum(key == name or key.startswith(f"{name} #") for key in numbers)
        numbers[f"{name} #{repeat + 1}" if repeat else name] = {
            "value": str(verdict["verdict"]), "exact": True}
    derivations = _json(results_dir / THEORY_DIR / "derivations.json")
    if derivations is not None:
        failed = sum(str(record.get("status")).lower() == "failed" for record in derivations)
        numbers["derivations failed"] = {"value": failed, "exact": True}
    for folder in (PAPER_DIR, QUICK_DIR):
        path = results_dir / folder / "summary.csv"
        if path.is_file():
            for row in read_rows(path, "CIFAR-10 summary", ("method", "test_accuracy")):
                name = (f"CIFAR-10 ({folder}) test accuracy, {row['method']} "
                        f"{row.get('student', '')}{_ratio(row.get('ratio'))}").rstrip()
                numbers[name] = {"value": row["test_accuracy"], "tolerance": CIFAR_TOLERANCE}
    return numbers


SETTINGS_FILES = (f"{SIMULATION_DIR}/config.json", f"{THEORY_DIR}/theory_grid.json")


def settings_differences(this_dir: str | Path, reference_dir: str | Path) -> list[str]:
    """The settings files present in both runs whose settings differ."""
    differ = []
    for name in SETTINGS_FILES:
        mine, theirs = _json(Path(this_dir) / name), _json(Path(reference_dir) / name)
        if mine is not None and theirs is not None:
            if name.endswith("config.json"):
                mine, theirs = mine.get("config"), theirs.get("config")
            if mine != theirs:
                differ.append(name)
    return differ


def compare(this: dict[str, dict], reference: dict[str, dict]) -> list[dict]:
    """One row per headline number of either run: both values, the tolerance used and
    whether they agree (None when the number is in one run only)."""
    rows = []
    for name in list(reference) + [name for name in this if name not in reference]:
        mine, theirs = this.get(name), reference.get(name)
        row = {"name": name, "this": None if mine is None else mine["value"],
               "reference": None if theirs is None else theirs["value"],
               "tolerance": "", "agree": None}
        known = mine or theirs
        if known.get("exact"):
            row["tolerance"] = "equal"
        elif "tolerance" in known:
            row["tolerance"] = f"+-{known['tolerance']:g}"
        if mine is not None and theirs is not None:
            if known.get("exact"):
                row["agree"] = mine["value"] == theirs["value"]
            else:
                tolerance = known.get("tolerance")
                if tolerance is None:
                    tolerance = max(SIMULATION_FLOOR,
                                    mine.get("half_width", 0) + theirs.get("half_width", 0))
                    row["tolerance"] = f"+-{tolerance:.4f} (both 95% CIs)"
                row["agree"] = (not math.isnan(mine["value"]) and not math.isnan(theirs["value"])
                                and abs(mine["value"] - theirs["value"]) <= tolerance)
        rows.append(row)
    return rows
