"""Every figure, its input files inside a results folder, and ``draw_all`` that redraws each
figure whose inputs exist."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from stingy.figures.accuracy_figures import draw_cifar_accuracy, draw_simulation_accuracy
from stingy.figures.logit_figures import draw_logit_gap, draw_logit_responses
from stingy.figures.theory_figures import draw_approximation_error, draw_kept_mass, draw_signal_to_drive

# Where each stage of `stingy reproduce` writes, relative to the results folder.
THEORY_DIR = "theory"
THEORY_GRID = f"{THEORY_DIR}/theory_grid.csv"
THEORY_CONFIG = f"{THEORY_DIR}/theory_grid.json"
SIMULATION_DIR = "simulations"
QUICK_DIR = "cifar10_quick"
PAPER_DIR = "cifar10_paper"
GPU_CHECK = ("gpu_check.json", "gpu/gpu_check.json")  # where empirical/gpu_check.py's file is kept
FIGURE_DIR = "figures"


@dataclass(frozen=True)
class FigureSpec:
    """A figure: id, title, drawing function, required inputs and optional inputs (keyword
    argument -> path relative to the results folder). An input given as a tuple of paths is
    the first of them that exists (the paper profile's files before the quick profile's)."""
    figure_id: str
    title: str
    draw: Callable
    required: tuple
    optional: dict


FIGURES = [
    FigureSpec("F1_kept_mass", "Kept mass against temperature", draw_kept_mass,
               (THEORY_GRID,), {"teacher_theory": (f"{PAPER_DIR}/teacher_theory.csv",
                                                   f"{QUICK_DIR}/teacher_theory.csv")}),
    FigureSpec("F2_approximation_error", "The paper's approximation error and the T4 terms",
               draw_approximation_error, (THEORY_GRID,), {}),
    FigureSpec("F3_signal_to_drive", "Signal-to-drive ratio over (r, T)", draw_signal_to_drive,
               (THEORY_GRID,), {}),
    FigureSpec("F4_simulation_accuracy", "Simulations: accuracy against the sparse ratio",
               draw_simulation_accuracy, (f"{SIMULATION_DIR}/summary.csv",), {}),
    FigureSpec("F5_cifar_accuracy", "CIFAR-10: accuracy against the sparse ratio",
               draw_cifar_accuracy, ((f"{PAPER_DIR}/summary.csv", f"{QUICK_DIR}/summary.csv"),),
               {"gpu_check_json": GPU_CHECK}),
    FigureSpec("F6_logit_responses", "Teacher responses on test images", draw_logit_responses,
               (f"{QUICK_DIR}/teacher_logits.npz",), {}),
    FigureSpec("F7_logit_gap", "The student's logit gap during training", draw_logit_gap,
               (f"{SIMULATION_DIR}/gap_trajectory.csv",), {"stingy_metrics_jsonl": None}),
]


def find_stingy_metrics(results_dir: Path) -> Path | None:
    """The metrics.jsonl of a CIFAR-10 stingy student, if any (a run folder whose recipe.json
    names the stingy method and whose metrics carry a logit_gap; paper runs first)."""
    for folder in (PAPER_DIR, QUICK_DIR):
        for metrics in sorted((results_dir / folder).glob("**/metrics.jsonl")):
            recipe = metrics.with_name("recipe.json")
            if recipe.is_file() and json.loads(recipe.read_text()).get("method", {}).get(
                    "name") == "stingy" and '"logit_gap"' in metrics.read_text():
                return metrics
    return None


def resolve(results_dir: Path, name) -> Path | None:
    """The path of an input (the first existing one of a tuple), or None if none exists."""
    for candidate in (name if isinstance(name, tuple) else (name,)):
        if (results_dir / candidate).is_file():
            return results_dir / candidate
    return None


def _describe(name) -> str:
    return " or ".join(name) if isinstance(name, tuple) else name


def _theory_label(results_dir: Path) -> str | None:
    config = results_dir / THEORY_CONFIG
    if config.is_file():
        return json.loads(config.read_text()).get("label")
    return None


def draw_all(results_dir, out_dir=None, log=print) -> tuple[list[dict], list[dict]]:
    """Draw every figure whose required inputs exist in ``results_dir`` into ``out_dir``
    (default: results_dir/figures). Returns (drawn, skipped): drawn records have figure_id,
    title, png, pdf, caption; skipped ones figure_id, title and the missing files."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise NotADirectoryError(f"results folder {results_dir} does not exist")
    out_dir = Path(out_dir) if out_dir else results_dir / FIGURE_DIR
    label = _theory_label(results_dir)
    drawn, skipped = [], []
    for spec in FIGURES:
        inputs = [resolve(results_dir, name) for name in spec.required]
        missing = [_describe(name) for name, path in zip(spec.required, inputs) if path is None]
        if missing:
            skipped.append({"figure_id": spec.figure_id, "title": spec.title, "missing": missing})
            log(f"  {spec.figure_id}: skipped, missing {', '.join(missing)}")
            continue
        kwargs = {}
        for argument, name in spec.optional.items():
            path = find_stingy_metrics(results_dir) if name is None else resolve(results_dir, name)
            if path is not None:
                kwargs[argument] = path
        if label and spec.required == (THEORY_GRID,):
            kwargs["theory_label"] = label
        record = spec.draw(*inputs, out_dir / spec.figure_id, **kwargs)
        drawn.append({"figure_id": spec.figure_id, "title": spec.title, **record})
        log(f"  {spec.figure_id}: {record['png']}")
    return drawn, skipped
