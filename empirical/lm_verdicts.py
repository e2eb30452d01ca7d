"""The prediction of ``stingy lm``, written before any student trains, and its verdicts.

The anchor (Anshumann et al., "Sparse Logit Sampling: Accelerating Knowledge Distillation in
LLMs", ACL 2025): caching the teacher's top-k logits gives a biased estimate of its
distribution, and the student that learns from it is worse in loss and calibration than one
distilled from the full distribution; importance-weighted random sampling is unbiased, and
with enough samples matches full KD. Here, with the toolkit's methods on held-out text:

- ``topk_worse`` (stingy KD at each stored k): cross-entropy and calibration error are higher
  than full KD's: the 95% t-interval of the paired difference (stingy minus full, by seed)
  lies above 0 for both. Predicted: pass at every k.
- ``sampled_matches`` (sampled KD at the largest sample count): the 95% t-interval of the
  paired difference (sampled minus full) contains 0, for cross-entropy and calibration
  error both. Predicted: pass.
- ``fix_between`` (tail-bucket and uniform-floor KD at ``distill.fix_k``): the mean
  cross-entropy and the mean calibration error lie between full KD's and stingy KD's at the
  same k (ends included). Predicted: pass.

Each verdict is written with its numbers, whatever it shows.
"""

from __future__ import annotations

import math

from stingy.intervals import paired, t_interval
from stingy.io import write_json_once
from stingy.machine import stamp

PREDICTION = "prediction.json"
MEASURES = ("cross_entropy", "ece")
FULL = "normal_kd"


def student_label(method: str, k: int = 0) -> str:
    """``scratch``, ``normal_kd``, ``stingy_kd-k8``, ``sampled_kd-s64`` ..."""
    if not k:
        return method
    return f"{method}-{'s' if method == 'sampled_kd' else 'k'}{k}"


def checks(distill) -> list[dict]:
    """The predicted checks for these distillation settings."""
    cells = [{"check": "topk_worse", "student": student_label("stingy_kd", k)}
             for k in distill.top_k]
    cells.append({"check": "sampled_matches",
                  "student": student_label("sampled_kd", max(distill.samples))})
    cells += [{"check": "fix_between", "student": student_label(method, distill.fix_k)}
              for method in ("tail_bucket_kd", "uniform_floor_kd")]
    return [{**cell, "predicted": "pass"} for cell in cells]


def write_prediction(out, settings) -> dict:
    """``prediction.json`` in ``out`` (once; an existing one is returned unchanged)."""
    return write_json_once(out / PREDICTION, lambda: {
        **stamp(), "anchor": "Anshumann et al., Sparse Logit Sampling, ACL 2025",
        "basis": __doc__.split("\n\n", 1)[1].strip(), "cells": checks(settings.distill)})


def _by_seed(results: list[dict], student: str, measure: str) -> dict:
    return {r["seed"]: r[measure] for r in results if r["student"] == student}


def _difference(results, student, measure) -> dict:
    mean, low, high = t_interval(paired(_by_seed(results, student, measure),
                                        _by_seed(results, FULL, measure)))
    return {"mean": mean, "low": low, "high": high}


def _mean(results, student, measure) -> float:
    values = list(_by_seed(results, student, measure).values())
    return sum(values) / len(values) if values else math.nan


def verdict(cell: dict, results: list[dict], fix_k: int) -> dict:
    """One check's outcome (``pass`` or ``fail``) and its numbers."""
    student, numbers = cell["student"], {}
    if cell["check"] == "fix_between":
        stingy = student_label("stingy_kd", fix_k)
        held = True
        for measure in MEASURES:
            ends = sorted((_mean(results, FULL, measure), _mean(results, stingy, measure)))
            value = _mean(results, student, measure)
            numbers[measure] = {"mean": value, "full_kd": _mean(results, FULL, measure),
                                "stingy_kd": _mean(results, stingy, measure)}
            held = held and ends[0] <= value <= ends[1]
    else:
        held = True
        for measure in MEASURES:
            numbers[measure] = difference = _difference(results, student, measure)
            if cell["check"] == "topk_worse":
                held = held and difference["low"] > 0
            else:
                held = held and difference["low"] <= 0 <= difference["high"]
    outcome = "pass" if held else "fail"
    return {**cell, "outcome": outcome, "prediction_held": outcome == cell["predicted"],
            **{f"{measure}_numbers": value for measure, value in numbers.items()}}


def verdicts(prediction: dict, results: list[dict], fix_k: int) -> list[dict]:
    return [verdict(cell, results, fix_k) for cell in prediction["cells"]]
