"""``stingy lab``: one self-contained HTML page for teaching the mechanism.

The page (figures/lab_template.html with figures/lab_core.js inlined) computes T1-T5 in
JavaScript, independently of stingy.theory (tests/lab checks the two agree), walks through them
in six steps, trains 2-D toy students live (one per method of the registry that the
simulations train) and, when a results folder is given, plots the measured accuracy against r.
It loads nothing from the network: the data it needs is embedded as JSON.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
from stingy.figures.draw import PAPER_DIR, QUICK_DIR, SIMULATION_DIR
from stingy.figures.inputs import read_rows

from stingy.io import write_text
from stingy.methods import METHODS, names

# Registry names (stingy.methods), the same in the simulations and the CIFAR runs.
PLOTTED_METHODS = ("scratch", "normal_kd", "stingy_kd", "within_m_kd")


def _ratio(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def simulation_accuracy(summary_csv: Path) -> dict:
    """{noise: [levels], rows: [{noise, method, ratio, accuracy}]} from the simulations' summary."""
    rows = read_rows(summary_csv, "stingy simulate", ("noise", "method", "ratio", "accuracy_mean"))
    kept = [{"noise": row["noise"], "method": row["method"], "ratio": _ratio(row["ratio"]),
             "accuracy": row["accuracy_mean"]}
            for row in rows if row["method"] in PLOTTED_METHODS]
    return {"noise": sorted({row["noise"] for row in kept}), "rows": kept}


def cifar_accuracy(summary_csv: Path) -> dict:
    """{source, rows: [{method, ratio, accuracy}]} from a CIFAR-10 profile's summary."""
    rows = read_rows(summary_csv, "stingy reproduce", ("method", "ratio", "test_accuracy"))
    kept = [{"method": row["method"],
             "ratio": _ratio(row["ratio"]) if METHODS[row["method"]].sparse_target else None,
             "accuracy": row["test_accuracy"]}
            for row in rows if row["method"] in PLOTTED_METHODS]
    return {"source": summary_csv.parent.name, "rows": kept}


def teacher_logits(npz_path: Path) -> dict:
    """{source, logits: [[...]]}: the trained teacher's dense test logits (no pickles loaded)."""
    with np.load(npz_path, allow_pickle=False) as data:
        logits = np.asarray(data["normal"], dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(f"{npz_path}: 'normal' must be an (examples, classes >= 2) array, "
                         f"got shape {logits.shape}")
    return {"source": npz_path.parent.name, "logits": logits.tolist()}


def toy_methods() -> list[dict]:
    """The toy's students: the registry's methods that the simulations train, in registry
    order, with their labels, colours and descriptions."""
    return [{"name": name, "label": METHODS[name].label, "colour": METHODS[name].colour,
             "description": METHODS[name].description} for name in names("simulations")]


def lab_data(results: str | Path | None) -> dict:
    """What the page embeds from a results folder: each part present only if its file exists."""
    if results is None:
        return {}
    results = Path(results)
    if not results.is_dir():
        raise NotADirectoryError(f"--results must be a results folder, got {results}")
    data = {}
    simulations = results / SIMULATION_DIR / "summary.csv"
    if simulations.is_file():
        data["simulations"] = simulation_accuracy(simulations)
    for folder in (PAPER_DIR, QUICK_DIR):
        if (results / folder / "summary.csv").is_file():
            data["cifar"] = cifar_accuracy(results / folder / "summary.csv")
            break
    for folder in (PAPER_DIR, QUICK_DIR):
        if (results / folder / "teacher_logits.npz").is_file():
            data["teacher_logits"] = teacher_logits(results / folder / "teacher_logits.npz")
            break
    return data


def render_lab(results: str | Path | None = None) -> str:
    """The page's HTML text, with the core script, the toy's methods and the results data
    inlined."""
    package = resources.files("stingy.figures")
    template = package.joinpath("lab_template.html").read_text(encoding="utf-8")
    core = package.joinpath("lab_core.js").read_text(encoding="utf-8")
    # "</" inside a script would close it early; JSON allows the escaped form
    data, methods = (json.dumps(value, allow_nan=False).replace("</", "<\\/")
                     for value in (lab_data(results), toy_methods()))
    return (template.replace("/*LAB_CORE*/", core).replace("/*LAB_DATA*/", data)
            .replace("/*LAB_METHODS*/", methods))


def write_lab(out: str | Path = "lab.html", results: str | Path | None = None) -> Path:
    """Write the page to ``out`` atomically; returns its path."""
    if Path(out).is_dir():
        raise ValueError(f"--out must name an HTML file, got the folder {out}")
    return write_text(out, render_lab(results))
