"""Intervals with the task draw as the random factor, and Holm's correction of a verdict family.

A simulated difference is measured per (task draw, seed). Seeds of one task share its class
means and test set, so they are not independent replicates of the task: the unit of
replication is the task. :func:`nested_interval` averages the seeds within each task and takes
a Student-t interval over the task means (a two-stage random-effects estimate, which is exact
for a balanced design). Its one-sided p-value tests mean > 0.

:func:`holm` corrects a family of one-sided tests (Holm 1979, step-down): with p-values sorted
p_(1) <= ... <= p_(m), the adjusted p_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). A verdict
passes when its p-value is below ALPHA_ONE_SIDED = 0.025, the level that matches a two-sided 95%
interval whose lower end is above 0; both the raw and the corrected verdicts are reported.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from stingy.io import write_csv, write_json

ALPHA_ONE_SIDED = 0.025


def nested_interval(values: dict) -> dict:
    """values {(task, seed): difference} -> mean, 95% t-interval and one-sided p over tasks.

    Keys: mean, low, high, p_value_greater, groups (tasks), units (task, seed pairs).
    With fewer than two tasks the interval and the p-value are nan.
    """
    by_task = defaultdict(list)
    for (task, _), value in values.items():
        if not math.isnan(value):
            by_task[task].append(value)
    means = np.array([np.mean(v) for v in by_task.values()])
    result = {"groups": len(means), "units": sum(len(v) for v in by_task.values()),
              "mean": float(means.mean()) if len(means) else float("nan")}
    if len(means) < 2:
        return {**result, "low": float("nan"), "high": float("nan"),
                "p_value_greater": float("nan")}
    error = means.std(ddof=1) / math.sqrt(len(means))
    half = stats.t.ppf(0.975, len(means) - 1) * error
    if error > 0:
        p_value = float(stats.t.sf(means.mean() / error, len(means) - 1))
    else:
        p_value = 0.0 if means.mean() > 0 else 1.0
    return {**result, "low": result["mean"] - half, "high": result["mean"] + half,
            "p_value_greater": p_value}


def holm(results: list[dict], key: str = "p_value") -> list[dict]:
    """Add ``p_holm``, ``verdict_raw`` (p < 0.025) and ``verdict_holm`` to each result.

    Results whose p-value is nan are left out of the family (p_holm nan, verdict_holm fail).
    """
    tested = sorted((r[key], i) for i, r in enumerate(results) if not math.isnan(r[key]))
    adjusted = {}
    running = 0.0
    for rank, (p_value, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p_value))
        adjusted[index] = running
    out = []
    for i, result in enumerate(results):
        p_holm = adjusted.get(i, float("nan"))
        out.append({**result, "p_holm": p_holm,
                    "verdict_raw": "pass" if result[key] < ALPHA_ONE_SIDED else "fail",
                    "verdict_holm": "pass" if p_holm < ALPHA_ONE_SIDED else "fail"})
    return out


def mark_predicted(verdict: dict, predicted: str, key: str = "verdict_holm") -> dict:
    """Record beside a verdict the outcome written before the run (``predicted_outcome``) and
    whether the verdict it is judged by (``key``) matches it (``prediction_held``)."""
    verdict["predicted_outcome"] = predicted
    verdict["prediction_held"] = predicted == verdict[key]
    return verdict


def experiment_meta(result: dict) -> dict:
    """run.json's fields of an experiment that writes its prediction first: wall time, torch
    threads and the load average at the start and the end."""
    return {"wall_s": result["wall_s"], "torch_threads": result["torch_threads"],
            "load_average_start_end": result["load_average"]}


def write_run(out, files: dict, meta: dict) -> None:
    """Write each ``{name: rows or object}`` (.csv or .json) under ``out`` atomically, and
    run.json with ``meta`` (which should hold the run's torch_threads) plus the machine and the
    UTC date."""
    out = Path(out)
    for name, content in files.items():
        (write_csv if name.endswith(".csv") else write_json)(out / name, content)
    write_json(out / "run.json", {
        **meta, "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs",
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")})
