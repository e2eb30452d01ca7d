"""A harm model tested on cells it never saw (H-model).

The harm of a cell is normal KD minus stingy KD accuracy in points, the mean over 5 seeds
(each seed its own task draw), on the simulations' task (oracle teacher, T = 20,
alpha = 0.9, C = 100). The cells cross keep ratios r in RATIOS (k = 2, 5, 10, 30), the
teacher's spread c inside M in SPREADS (``distill.within_spread``: it moves the exact T5
signal-to-drive ratio at a fixed k and kept mass), label noise in NOISES and STEPS.

The model is ordinary least squares on four features,

    harm = b0 + b1 log(ratio) + b2 kept_mass + b3 log10(steps) + b4 noise,

where ratio is the exact T5 signal-to-drive ratio of the cell's sparse target (test-set mean
over seeds) and kept_mass the teacher's mass on M. It is fitted on the cells of one half and
predicts the other. The halves are fixed by design before anything trains: a cell is in the
fitted half when the sum of its level indices (ratio, spread, noise, steps) is even, so that
every level of every factor is in both halves.

:func:`write_prediction` writes ``prediction.json`` before anything trains, and never
rewrites it:

- H-model-rank: on the held-out half the rank correlation of predicted and measured harm is
  high: the lower end of its 95% bootstrap interval (over held-out cells) is above 0.5;
- H-model-error: the model's held-out absolute error is below that of the fitted half's mean
  harm (paired bootstrap interval of the difference above 0);
- H-model-ratio: the ratio's coefficient is negative (95% interval below 0): a larger ratio,
  less harm, with kept mass, steps and noise held in the model;
- H-model-gap: the model beats the same model with log(final logit gap) in place of
  log(ratio) on held-out absolute error (the gap is measured after training, the ratio is
  known before it).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from stingy.io import write_json_once
from stingy.machine import load_average, stamp
from stingy.simulations.config import load_config
from stingy.simulations.statistics import experiment_meta, mark_predicted, write_run
from stingy.simulations.sweep import make_setting_data, run_setting
from stingy.theory.operators import keep_count
from stingy.theory.signal import signal_to_drive_exact

RATIOS = (0.02, 0.05, 0.1, 0.3)
SPREADS = (0.5, 1.0, 2.0)
NOISES = (0.0, 0.15, 0.3)
STEPS = (300, 2000)
FEATURES = ("log_ratio", "kept_mass", "log10_steps", "noise")
GAP_FEATURES = ("log_gap", "kept_mass", "log10_steps", "noise")
BOOTSTRAP = 4000
PREDICTION = "prediction.json"
PREDICTED = {"H-model-rank": "pass", "H-model-error": "pass", "H-model-ratio": "pass",
             "H-model-gap": "pass"}


def in_fitted_half(ratio: float, spread: float, noise: float, steps: int) -> bool:
    """The design's split: the sum of the cell's level indices is even."""
    return (RATIOS.index(ratio) + SPREADS.index(spread) + NOISES.index(noise)
            + STEPS.index(steps)) % 2 == 0


def write_prediction(out: Path) -> dict:
    """``prediction.json`` (once; an existing one is returned unchanged)."""
    return write_json_once(out / PREDICTION, lambda: {
        **stamp(), "ratios": list(RATIOS), "spreads": list(SPREADS), "noise": list(NOISES),
        "steps": list(STEPS), "features": list(FEATURES),
        "split": "fitted half: (ratio index + spread index + noise index + steps index) even",
        "checks": [{"check": check, "predicted": outcome} for check, outcome in PREDICTED.items()],
        "basis": __doc__.split("\n\n", 1)[1].strip()})


def config_for(seeds: int, steps: int, spread: float):
    return load_config(None, {
        "distill.methods": ["normal_kd", "stingy_kd"], "distill.ratios": list(RATIOS),
        "distill.within_spread": spread, "student.seeds": seeds, "student.steps": steps})


def ratio_of(config, noise: float, spread: float) -> dict:
    """{keep ratio: exact T5 ratio of the sparse target at this spread}, test-set mean over
    seeds."""
    teacher = make_setting_data(config, noise, "symmetric")["test_teacher"].double() * spread
    temperature, classes = config.distill.temperature, config.task.classes
    return {ratio: float(signal_to_drive_exact(teacher, keep_count(ratio, classes),
                                                temperature).mean()) for ratio in RATIOS}


def cells_of(rows: list[dict], spread: float, steps: int, exact_ratio: dict) -> list[dict]:
    """One cell per keep ratio: harm (points) with its per-seed values, and the features."""
    normal = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "normal_kd"}
    cells = []
    for ratio in RATIOS:
        stingy = [r for r in rows if r["method"] == "stingy_kd" and math.isclose(r["ratio"], ratio)]
        harms = [100 * (normal[r["seed"]] - r["accuracy"]) for r in stingy]
        noise = stingy[0]["noise"]
        cells.append({
            "ratio": ratio, "k": stingy[0]["k"], "spread": spread, "noise": noise,
            "steps": steps, "half": "fit" if in_fitted_half(ratio, spread, noise, steps)
            else "held_out", "harm": float(np.mean(harms)), "harm_by_seed": harms,
            "signal_to_drive": exact_ratio[ratio],
            "kept_mass": float(np.mean([r["kept_mass"] for r in stingy])),
            "final_logit_gap": float(np.mean([r["final_logit_gap"] for r in stingy]))})
    return cells


def features(cells: list[dict], names=FEATURES) -> np.ndarray:
    """The design matrix [cells, 1 + features]."""
    columns = {
        "log_ratio": lambda c: math.log(c["signal_to_drive"]),
        "log_gap": lambda c: math.log(c["final_logit_gap"]),
        "kept_mass": lambda c: c["kept_mass"],
        "log10_steps": lambda c: math.log10(c["steps"]),
        "noise": lambda c: c["noise"]}
    return np.array([[1.0] + [columns[name](c) for name in names] for c in cells])


def fit(cells: list[dict], names=FEATURES) -> dict:
    """OLS coefficients with their 95% t intervals."""
    design, harm = features(cells, names), np.array([c["harm"] for c in cells])
    coefficients, *_ = np.linalg.lstsq(design, harm, rcond=None)
    residual = harm - design @ coefficients
    dof = len(harm) - design.shape[1]
    covariance = residual @ residual / dof * np.linalg.inv(design.T @ design)
    half_width = stats.t.ppf(0.975, dof) * np.sqrt(np.diag(covariance))
    return {"names": ["intercept", *names], "coefficients": coefficients.tolist(),
            "ci95": np.stack([coefficients - half_width, coefficients + half_width], 1).tolist(),
            "residual_sd": float(np.sqrt(residual @ residual / dof))}


def predict(model: dict, cells: list[dict]) -> np.ndarray:
    return features(cells, model["names"][1:]) @ np.array(model["coefficients"])


def _bootstrap(statistic, count: int, seed: int = 0) -> list[float]:
    """95% percentile interval of ``statistic(indices)`` over resampled held-out cells;
    ``indices`` is [BOOTSTRAP, count] and ``statistic`` returns one value per row."""
    indices = np.random.default_rng(seed).integers(0, count, (BOOTSTRAP, count))
    values = np.asarray(statistic(indices))
    values = values[np.isfinite(values)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def _row_spearman(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation of each row pair (average ranks for ties)."""
    first, second = stats.rankdata(first, axis=1), stats.rankdata(second, axis=1)
    first = first - first.mean(1, keepdims=True)
    second = second - second.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (first * second).sum(1) / np.sqrt((first**2).sum(1) * (second**2).sum(1))


def _check(check, statement, predicted, measured, ci, passed, detail) -> dict:
    return mark_predicted({"check": check, "statement": statement, "predicted": predicted,
                           "measured": measured, "ci95": ci,
                           "verdict": "pass" if passed else "fail", "detail": detail},
                          PREDICTED[check], "verdict")


def verdicts(cells: list[dict]) -> tuple[list[dict], dict]:
    """The four checks of the module docstring, and the fitted models."""
    fitted = [c for c in cells if c["half"] == "fit"]
    held_out = [c for c in cells if c["half"] == "held_out"]
    model, gap_model = fit(fitted), fit(fitted, GAP_FEATURES)
    measured = np.array([c["harm"] for c in held_out])
    predicted, gap_predicted = predict(model, held_out), predict(gap_model, held_out)
    error = np.abs(predicted - measured)
    mean_error = np.abs(np.mean([c["harm"] for c in fitted]) - measured)
    gap_error = np.abs(gap_predicted - measured)
    count = len(held_out)

    rank = float(stats.spearmanr(predicted, measured).statistic)
    rank_ci = _bootstrap(lambda i: _row_spearman(predicted[i], measured[i]), count)
    gain, gain_ci = float(np.mean(mean_error - error)), _bootstrap(
        lambda i: (mean_error[i] - error[i]).mean(1), count)
    gap_gain, gap_ci = float(np.mean(gap_error - error)), _bootstrap(
        lambda i: (gap_error[i] - error[i]).mean(1), count)
    slope, slope_ci = model["coefficients"][1], model["ci95"][1]
    held = f"{count} held-out cells, model fitted on {len(fitted)}"
    for cell, value in zip(held_out, predicted):
        cell["predicted_harm"] = float(value)
    return [
        _check("H-model-rank", "the model ranks the held-out cells' harm (Spearman, lower end "
               "of the 95% bootstrap interval above 0.5)", "> 0.5", rank, rank_ci,
               rank_ci[0] > 0.5, f"Spearman {rank:+.3f}; {held}"),
        _check("H-model-error", "the model's held-out absolute error is below that of the "
               "fitted half's mean", "> 0", gain, gain_ci, gain_ci[0] > 0,
               f"mean absolute error {error.mean():.2f} points against {mean_error.mean():.2f} "
               f"for the fitted mean; {held}"),
        _check("H-model-ratio", "the ratio's coefficient is negative (more signal, less harm)",
               "< 0", slope, slope_ci, slope_ci[1] < 0,
               f"harm changes by {slope:+.2f} points per unit of log(ratio)"),
        _check("H-model-gap", "the ratio model's held-out absolute error is below the gap "
               "model's (log final gap in place of log ratio)", "> 0", gap_gain, gap_ci,
               gap_ci[0] > 0, f"mean absolute error {error.mean():.2f} against "
               f"{gap_error.mean():.2f} points for the gap model; {held}"),
    ], {"ratio_model": model, "gap_model": gap_model}


def cifar_predictions(model: dict, sweep: str | Path) -> dict | None:
    """The model's harm for each CIFAR cell of a sweep's ``prediction.json`` against the
    measured harm (the reference's normal KD at T = 4 minus the stingy cell, in points), with
    the features outside the fitted range named; None when the sweep has no such files."""
    sweep = Path(sweep)
    try:
        cells = json.loads((sweep / "prediction.json").read_text())["cells"]
        profile = json.loads((sweep / "plan.json").read_text())["profile"]
        summary = list(csv.DictReader((sweep / "summary.csv").open()))
    except (OSError, KeyError, ValueError):
        return None
    accuracy = {r["label"]: 100 * float(r["accuracy_mean"]) for r in summary}
    classes = 10
    steps = profile["student_epochs"] * math.ceil(profile["train_subset"]
                                                   / profile["student_batch_size"])
    rows = []
    for cell in cells:
        ratio = next((r for r in profile["ratios"] if keep_count(r, classes) == cell["k"]), None)
        stingy = accuracy.get(f"stingy-r{ratio}-T{cell['temperature']}")
        normal = accuracy.get("kd-T4.0")
        row = {"k": cell["k"], "temperature": cell["temperature"],
               "signal_to_drive": cell["signal_to_drive"], "kept_mass": cell["kept_mass"],
               "steps": steps, "noise": 0.0,
               "measured_harm": None if stingy is None or normal is None else normal - stingy}
        if cell["signal_to_drive"] <= 0:
            row.update(predicted_harm=None, outside="ratio 0 (k = 1): log(ratio) undefined")
        else:
            row["predicted_harm"] = float(predict(model, [row])[0])
            row["outside"] = "; ".join(_outside(row))
        rows.append(row)
    scored = [r for r in rows if r["predicted_harm"] is not None and r["measured_harm"] is not None]
    rho = (float(stats.spearmanr([r["predicted_harm"] for r in scored],
                                 [r["measured_harm"] for r in scored]).statistic)
           if len(scored) > 2 else float("nan"))
    return {"sweep": sweep.name, "student_steps": steps, "cells": rows, "spearman": rho,
            "scored_cells": len(scored)}


def _outside(row: dict) -> list[str]:
    """The features of a CIFAR cell outside the simulations' fitted range."""
    notes = []
    if row["temperature"] != 20.0:
        notes.append(f"T = {row['temperature']:g} (fitted at T = 20 only)")
    if not STEPS[0] <= row["steps"] <= STEPS[-1]:
        notes.append(f"{row['steps']} steps (fitted {STEPS[0]}-{STEPS[-1]})")
    return notes


def run_harm_model(out: str | Path, seeds: int = 5, log=print,
                   cifar_sweep: str | Path = "results/cifar10_sweep_cpu") -> dict:
    """Write the prediction, train every cell, fit, check; {"runs", "cells", "verdicts",
    "models", "cifar", "prediction", "wall_s", "torch_threads", "load_average"}."""
    out = Path(out)
    prediction = write_prediction(out)
    start, load = time.time(), [load_average()]
    runs, cells = [], []
    for noise, spread, steps in itertools.product(NOISES, SPREADS, STEPS):
        config = config_for(seeds, steps, spread)
        rows = run_setting(config, noise, "symmetric")["runs"]
        runs += [{**row, "spread": spread, "steps": steps} for row in rows]
        cells += cells_of(rows, spread, steps, ratio_of(config, noise, spread))
        log(f"[harm-model] noise {noise} spread {spread:g} steps {steps}")
    load.append(load_average())
    checks, models = verdicts(cells)
    return {"runs": runs, "cells": cells, "verdicts": checks, "models": models,
            "cifar": cifar_predictions(models["ratio_model"], cifar_sweep),
            "prediction": prediction, "wall_s": time.time() - start,
            "torch_threads": torch.get_num_threads(), "load_average": load}


def write_harm_model(result: dict, out) -> None:
    """runs.csv, cells.csv, verdicts.json, model.json (both fits and the CIFAR cells) and
    run.json (wall time, load average, machine)."""
    cells = [{key: value for key, value in cell.items() if key != "harm_by_seed"}
             | {"harm_by_seed": " ".join(f"{h:.2f}" for h in cell["harm_by_seed"])}
             for cell in result["cells"]]
    write_run(out, {"runs.csv": result["runs"], "cells.csv": cells,
                    "verdicts.json": result["verdicts"],
                    "model.json": {**result["models"], "cifar": result["cifar"]}},
              experiment_meta(result))
