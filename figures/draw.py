"""Every figure, how it finds its inputs inside a results folder, and ``draw_all`` that draws
each figure whose inputs exist and skips the others with a one-line reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from stingy.figures.accuracy_figures import (
    cifar_method,
    draw_cifar_accuracy,
    draw_mechanism_sweeps,
    draw_paper_overlay,
    draw_simulation_accuracy,
    draw_superclass_accuracy,
)
from stingy.figures.cifar_sweep_figure import draw_cifar_k_curve
from stingy.figures.inputs import read_rows
from stingy.figures.paper_numbers import load_paper_numbers
from stingy.figures.logit_figures import (
    draw_cifar_t4_terms,
    draw_logit_gap,
    draw_logit_responses,
    draw_mechanism,
)
from stingy.figures.theory_figures import draw_approximation_error, draw_kept_mass, draw_signal_to_drive
from stingy.figures.training_figures import cifar_runs, draw_training_curves
from stingy.figures.style import canonical_method
from stingy.formatting import is_missing

# Where each stage of `stingy reproduce` writes, relative to the results folder.
THEORY_DIR = "theory"
THEORY_GRID = f"{THEORY_DIR}/theory_grid.csv"
THEORY_CONFIG = f"{THEORY_DIR}/theory_grid.json"
SIMULATION_DIR = "simulations"
SUPERCLASS_DIR = "simulations_superclass"
MECHANISM_DIR = "mechanism"  # the simulations' mechanism sweeps
QUICK_DIR = "cifar10_quick"
PAPER_DIR = "cifar10_paper"
SWEEP_DIRS = ("cifar10_sweep_gpu", "cifar10_sweep_cpu", "cifar10_sweep")  # `stingy sweep` outputs
GPU_CHECK = ("gpu_check.json", "gpu/gpu_check.json")  # where empirical/gpu_check.py's file is kept
FIGURE_DIR = "figures"
CIFAR_SUMMARY = (*(f"{folder}/summary.csv" for folder in SWEEP_DIRS), f"{PAPER_DIR}/summary.csv",
                 f"{QUICK_DIR}/summary.csv")
SWEEP_ROWS = tuple(f"{folder}/rows.csv" for folder in SWEEP_DIRS)
TEACHER_LOGITS = (f"{PAPER_DIR}/teacher_logits.npz", f"{QUICK_DIR}/teacher_logits.npz")


class Missing(Exception):
    """A figure's input is not in the results folder; the message names it."""


@dataclass(frozen=True)
class FigureSpec:
    """A figure: id, title, drawing function and ``inputs(results_dir)`` returning the
    drawing function's (args, kwargs), or raising Missing naming what is absent."""
    figure_id: str
    title: str
    draw: Callable
    inputs: Callable


def resolve(results_dir: Path, name) -> Path | None:
    """The path of an input (the first existing one of a tuple), or None if none exists."""
    for candidate in (name if isinstance(name, tuple) else (name,)):
        if (results_dir / candidate).is_file():
            return results_dir / candidate
    return None


def need(results_dir: Path, name) -> Path:
    path = resolve(results_dir, name)
    if path is None:
        raise Missing(" or ".join(name) if isinstance(name, tuple) else name)
    return path


def _optional(results_dir: Path, **names) -> dict:
    return {key: path for key, name in names.items()
            if (path := resolve(results_dir, name)) is not None}


def _theory_config(results_dir: Path) -> dict:
    path = results_dir / THEORY_CONFIG
    return json.loads(path.read_text()) if path.is_file() else {}


def teacher_description(folder: Path) -> str:
    """Which teacher a CIFAR folder's files come from, with its test accuracy, from the
    folder's own summary.csv."""
    summary_path = folder / "summary.csv"
    if not summary_path.is_file():
        return "the trained teacher"
    rows = read_rows(summary_path, "CIFAR-10 summary", ("method",))
    accuracies = [r["teacher_accuracy"] for r in rows if not is_missing(r.get("teacher_accuracy"))
                  and r.get("teacher_accuracy") != ""]
    model = next((str(r["teacher"]) for r in rows if not is_missing(r.get("teacher"))
                  and r.get("teacher") != ""), "trained")
    profile = {PAPER_DIR: "reference-recipe", QUICK_DIR: "CPU quick profile"}.get(
        folder.name, folder.name)
    accuracy = f", {100 * accuracies[0]:.1f}% test accuracy" if accuracies else ""
    return f"the {profile} {model} teacher{accuracy}"


# The teachers of a CIFAR run's teacher_logits.npz: the method its students learn by, and how
# captions name that method.
TEACHER_METHODS = {"normal": ("normal_kd", "normal KD"),
                   "nasty": ("nasty_kd", "KD from the Nasty Teacher"),
                   "stingy": ("stingy_kd", "stingy KD")}


def distill_temperatures(folder: Path) -> dict:
    """Teacher -> the temperature its students were distilled at, from the summary.csv of the
    folder whose teacher logits are drawn (the paper's temperature first where several). A
    teacher no student of the run learnt from is left out."""
    summary_path = folder / "summary.csv"
    if not summary_path.is_file():
        raise Missing(f"{folder.name}/summary.csv (the temperatures of its students)")
    used = {}
    for row in read_rows(summary_path, "CIFAR-10 summary", ("method",)):
        t = row.get("temperature")
        if not (is_missing(t) or t == ""):
            used.setdefault(cifar_method(row), set()).add(float(t))
    paper = load_paper_numbers()["settings"]["cifar10"]
    found = {}
    for teacher, (method, _) in TEACHER_METHODS.items():
        if method in used:
            preferred = paper.get(method, paper["normal_kd"])["temperature"]
            found[teacher] = preferred if preferred in used[method] else min(used[method])
    return found


def run_temperatures(folder: Path) -> dict:
    """{method label: T} of the students of a CIFAR run (see distill_temperatures)."""
    return {TEACHER_METHODS[teacher][1]: t
            for teacher, t in distill_temperatures(folder).items()}


def _theory_inputs(results_dir, **extra):
    config = _theory_config(results_dir)
    kwargs = {"theory_label": config.get("label", "representative synthetic logits")}
    for key, value in extra.items():
        if value is not None:
            kwargs[key] = value
    return (need(results_dir, THEORY_GRID),), kwargs


def _f1(results_dir):
    args, kwargs = _theory_inputs(results_dir)
    teacher = resolve(results_dir, (f"{PAPER_DIR}/teacher_theory.csv",
                                    f"{QUICK_DIR}/teacher_theory.csv"))
    if teacher is not None:
        folder = teacher.parent
        kwargs.update(teacher_theory=teacher, teacher_label=teacher_description(folder))
        marks = run_temperatures(folder) if (folder / "summary.csv").is_file() else {}
        if marks:
            kwargs.update(temperatures=marks,
                          temperature_source=f"the students of {folder.name}/summary.csv")
    return args, kwargs


def _f2(results_dir):
    config = _theory_config(results_dir)
    students = (f"random Normal(0, {config['student_scale']:g}^2) logits, seed "
                f"{config.get('seed', 0) + 10_000}" if "student_scale" in config else None)
    return _theory_inputs(results_dir, student_label=students)


def _f3(results_dir):
    return _theory_inputs(results_dir)


def _simulation_extras(results_dir, folder=SIMULATION_DIR):
    return _optional(results_dir, config_json=f"{folder}/config.json",
                     verdicts_json=f"{folder}/verdicts.json")


def _f4(results_dir):
    return (need(results_dir, f"{SIMULATION_DIR}/summary.csv"),), _simulation_extras(results_dir)


def draw_cifar_figure(out_stem, rows_csv=None, summary_csv=None, **kwargs) -> dict:
    """F5: a sweep's accuracy against k when its per-seed rows exist, else the quick
    profile's (or the reference recipes') one run per method."""
    if rows_csv is not None:
        return draw_cifar_k_curve(rows_csv, out_stem, **kwargs)
    return draw_cifar_accuracy(summary_csv, out_stem, **kwargs)


def _f5(results_dir):
    rows = resolve(results_dir, SWEEP_ROWS)
    if rows is not None:
        return (), {"rows_csv": rows, "teachers_csv": rows.with_name("teachers.csv")}
    summary = need(results_dir, (f"{PAPER_DIR}/summary.csv", f"{QUICK_DIR}/summary.csv"))
    kwargs = {"summary_csv": summary, **_optional(results_dir, gpu_check_json=GPU_CHECK)}
    quick = summary.with_name("summary.json")
    if quick.is_file():
        kwargs["quick_json"] = quick
    return (), kwargs


def _f6(results_dir):
    logits = need(results_dir, TEACHER_LOGITS)
    return (logits,), {"temperatures": distill_temperatures(logits.parent),
                       "teacher_label": teacher_description(logits.parent)}


def _f7(results_dir):
    return ((need(results_dir, f"{SIMULATION_DIR}/gap_trajectory.csv"),),
            _optional(results_dir, verdicts_json=f"{SIMULATION_DIR}/verdicts.json",
                      mechanism_csv=f"{MECHANISM_DIR}/rows.csv",
                      run_json=f"{MECHANISM_DIR}/run.json",
                      mechanism_verdicts_json=f"{MECHANISM_DIR}/verdicts.json"))


def _f8(results_dir):
    runs = need(results_dir, f"{SIMULATION_DIR}/runs.csv")
    kwargs = _optional(results_dir, cifar_runs_csv=SWEEP_ROWS)
    if "cifar_runs_csv" not in kwargs:
        kwargs.update(_optional(results_dir, cifar_summary_csv=CIFAR_SUMMARY))
    return (runs,), kwargs


def _f9(results_dir):
    return ((need(results_dir, f"{SIMULATION_DIR}/summary.csv"),
             need(results_dir, f"{SUPERCLASS_DIR}/summary.csv")),
            _optional(results_dir, verdicts_json=f"{SIMULATION_DIR}/verdicts.json",
                      superclass_verdicts_json=f"{SUPERCLASS_DIR}/verdicts.json"))


def _stingy_runs(results_dir):
    return [run for run in cifar_runs(results_dir)
            if canonical_method(run[2].get("method", {}).get("name", "")) == "stingy_kd"
            and '"t4_exact"' in run[1].read_text()]


def _f10(results_dir):
    runs = _stingy_runs(results_dir)
    if not runs:
        raise Missing("a CIFAR stingy run's metrics.jsonl with t4_* terms")
    return (runs,), {}


def _f11(results_dir):
    runs = cifar_runs(results_dir)
    if not runs:
        raise Missing("CIFAR runs' metrics.jsonl (runs/*/metrics.jsonl)")
    return (runs,), {}


def _f12(results_dir):
    logits = need(results_dir, TEACHER_LOGITS)
    temperatures = distill_temperatures(logits.parent)
    if "stingy" not in temperatures:
        raise Missing(f"a stingy student's temperature in {logits.parent.name}/summary.csv")
    return (logits,), {"temperature": temperatures["stingy"],
                       "teacher_label": teacher_description(logits.parent)}


def _f13(results_dir):
    return ((need(results_dir, f"{MECHANISM_DIR}/rows.csv"),),
            _optional(results_dir, verdicts_json=f"{MECHANISM_DIR}/verdicts.json",
                      run_json=f"{MECHANISM_DIR}/run.json"))


FIGURES = [
    FigureSpec("F1_kept_mass", "Kept mass against temperature", draw_kept_mass, _f1),
    FigureSpec("F2_approximation_error", "The paper's approximation error and the T4 terms",
               draw_approximation_error, _f2),
    FigureSpec("F3_signal_to_drive", "Signal-to-drive ratio against T and r",
               draw_signal_to_drive, _f3),
    FigureSpec("F4_simulation_accuracy", "Simulations: accuracy against the sparse ratio",
               draw_simulation_accuracy, _f4),
    FigureSpec("F5_cifar_accuracy", "CIFAR-10 student accuracy against k", draw_cifar_figure,
               _f5),
    FigureSpec("F6_logit_responses", "Teacher responses on test images", draw_logit_responses,
               _f6),
    FigureSpec("F7_logit_gap", "The simulated student's logit gap against the early-drive "
               "prediction", draw_logit_gap, _f7),
    FigureSpec("F8_paper_overlay", "Paper overlay: stingy minus scratch against r",
               draw_paper_overlay, _f8),
    FigureSpec("F9_superclass_noise", "Superclass against symmetric label noise",
               draw_superclass_accuracy, _f9),
    FigureSpec("F10_cifar_t4_terms", "CIFAR stingy training: T4 terms and logit gap per epoch",
               draw_cifar_t4_terms, _f10),
    FigureSpec("F11_training_curves", "Training curves of every CIFAR run",
               draw_training_curves, _f11),
    FigureSpec("F12_mechanism", "The mechanism on one example", draw_mechanism, _f12),
    FigureSpec("F13_mechanism_sweeps", "Mechanism sweeps: steps, width, data, label rank",
               draw_mechanism_sweeps, _f13),
]


def draw_all(results_dir, out_dir=None, log=print, keep_figures=False) -> tuple[list, list]:
    """Draw every figure whose inputs exist in ``results_dir`` into ``out_dir`` (default:
    results_dir/figures). Returns (drawn, skipped): drawn records have figure_id, title, png,
    pdf, caption (and the open matplotlib figure when ``keep_figures``); skipped ones
    figure_id, title and the missing input."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise NotADirectoryError(f"results folder {results_dir} does not exist")
    out_dir = Path(out_dir) if out_dir else results_dir / FIGURE_DIR
    drawn, skipped = [], []
    for spec in FIGURES:
        try:
            args, kwargs = spec.inputs(results_dir)
        except Missing as missing:
            skipped.append({"figure_id": spec.figure_id, "title": spec.title,
                            "missing": [str(missing)]})
            log(f"  {spec.figure_id}: skipped, missing {missing}")
            continue
        record = spec.draw(*args, out_dir / spec.figure_id, **kwargs)
        figure = record.pop("figure")
        if keep_figures:
            record["figure"] = figure
        else:
            plt.close(figure)
        drawn.append({"figure_id": spec.figure_id, "title": spec.title, **record})
        log(f"  {spec.figure_id}: {record['png']}")
    return drawn, skipped

