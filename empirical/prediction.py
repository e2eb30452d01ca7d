"""A prediction written before the students train, and its check after they have.

Before any student of a sweep trains, :func:`write_prediction` records, for every stingy
student's (k, T) cell, the kept mass m and the exact T5 signal-to-drive ratio on the clean
teacher's logits of the training images, and the predicted order of harm: the smaller the
ratio, the more of the stingy gradient is the order-T drive and the less the teacher's ranking
inside M, so the more harm (rank 1). The file is written once and never replaced.

After the run, :func:`prediction_check` measures each cell's harm (normal KD at its paper
temperature minus the stingy student, paired by seed) and reports the Spearman rank
correlation of predicted and measured harm, with a bootstrap interval over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from stingy.io import write_json_once
from stingy.machine import stamp
from stingy.theory.sweep import theory_grid

PREDICTION = "prediction.json"
BOOTSTRAP_SAMPLES = 2000


def stingy_cells(students) -> list[tuple[int, float]]:
    """The distinct (k, T) of the stingy students of a group (stingy.empirical.batched.Student)."""
    return sorted({(s.method.k, s.method.temperature) for s in students
                   if s.method.name == "stingy_kd" and s.teacher == "teacher"})


def write_prediction(path: Path, teacher_logits: torch.Tensor, cells, source: str) -> dict:
    """Write the prediction for ``cells`` [(k, T)] from ``teacher_logits`` [N, K] unless
    ``path`` exists (then return what it holds: a prediction is never rewritten)."""
    return write_json_once(path, lambda: {
        **stamp(), "teacher_logits": source,
        "basis": "exact T5 signal-to-drive ratio on the teacher's training logits: the smaller "
                 "the ratio, the larger the predicted harm (rank 1 = most harm)",
        "cells": ranked_cells(teacher_logits, cells)})


def ranked_cells(teacher_logits: torch.Tensor, cells) -> list[dict]:
    """Per (k, T): the kept mass, the exact signal-to-drive ratio and the predicted harm rank
    (smallest ratio first)."""
    rows = []
    for k, temperature in cells:
        grid = theory_grid(teacher_logits, [k], [temperature])[0]
        rows.append({"k": k, "temperature": temperature, "kept_mass": grid["kept_mass"],
                     "signal_to_drive": grid["signal_to_drive"]})
    order = sorted(range(len(rows)), key=lambda i: rows[i]["signal_to_drive"])
    for rank, index in enumerate(order, start=1):
        rows[index]["predicted_harm_rank"] = rank
    return rows


def measured_harm(rows: list[dict], model: str, normal_label: str, cell: dict) -> dict:
    """{seed: normal KD accuracy - the cell's stingy accuracy} at noise 0."""
    def by_seed(chosen):
        return {r["seed"]: r["test_accuracy"] for r in chosen}

    clean = [r for r in rows if r["model"] == model and r["noise"] == 0
             and r["teacher"] == "teacher"]
    normal = by_seed(r for r in clean if r["label"] == normal_label)
    stingy = by_seed(r for r in clean if r["method"] == "stingy_kd" and r["k"] == cell["k"]
                     and r["temperature"] == cell["temperature"])
    return {seed: normal[seed] - stingy[seed] for seed in sorted(set(normal) & set(stingy))}


def prediction_check(prediction: dict, rows: list[dict], model: str, normal_label: str,
                     seed: int = 0) -> dict:
    """Spearman correlation of predicted and measured harm over the cells, with a 95%
    percentile bootstrap interval over seeds (seeds resampled with replacement)."""
    cells = prediction["cells"]
    harms = [measured_harm(rows, model, normal_label, cell) for cell in cells]
    seeds = sorted(set.intersection(*(set(h) for h in harms))) if harms else []
    if len(cells) < 3 or len(seeds) < 2:
        return {"model": model, "verdict": "not computed",
                "detail": f"{len(cells)} cells and {len(seeds)} seeds with every cell"}
    table = np.array([[harm[s] for s in seeds] for harm in harms])  # [cells, seeds]
    predicted = -np.array([cell["signal_to_drive"] for cell in cells])  # larger: more harm
    rho = _spearman(predicted, table.mean(1))
    generator = np.random.default_rng(seed)
    draws = [_spearman(predicted, table[:, generator.integers(0, len(seeds), len(seeds))].mean(1))
             for _ in range(BOOTSTRAP_SAMPLES)]
    draws = [d for d in draws if not math.isnan(d)]
    low, high = (np.percentile(draws, [2.5, 97.5]).tolist() if draws else [math.nan] * 2)
    return {"model": model, "spearman": rho, "ci95": [low, high], "seeds": len(seeds),
            "bootstrap_samples": len(draws),
            "cells": [{**cell, "measured_harm": float(table[i].mean())}
                      for i, cell in enumerate(cells)]}


def _spearman(a, b) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.spearmanr(a, b).statistic)
