"""Fixes of the stingy target, with and without labels: within-M KD, tail-bucket KD, the
uniform floor and sampled KD (k = 10 classes sampled from the teacher, the same number of
stored classes as the stingy teacher's k = 10), at alpha = 0.9 and alpha = 1, label noise 0,
0.15 and 0.3, short and long training, on the simulations' task (oracle teacher, T = 20,
r = 0.1).

Each setting trains scratch, normal KD, stingy KD and the three fixes (:func:`run_setting`)
and checks, per fix, that it recovers at least half of the stingy deficit against normal KD
(:func:`stingy.simulations.verdicts.check_d`, paired by seed); Holm's correction runs over the
whole family.

:func:`write_prediction` writes ``prediction.json`` before anything trains, and never
rewrites it: the outcome each check is predicted to have, from the targets alone.

- Within-M KD and the uniform floor keep the teacher's ranking inside M and have no drive
  (the student is renormalised over M; the floor's mean over M equals its mean off M), so
  both are predicted to recover at every setting.
- The tail bucket's target keeps the drive's cause (its tail cell is one number for K - k
  classes, and nothing ties the student's tail mass to one class). Without labels nothing
  stops the student from putting the tail mass on a single dropped class, so it is predicted
  to fail at alpha = 1 with label noise and to recover at alpha = 0.9.
- Sampled KD's target equals the teacher's softmax in expectation, with no drive, so it is
  predicted to recover at every setting.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import torch

from stingy.io import write_json_once
from stingy.machine import load_average, stamp
from stingy.simulations.config import SimulationConfig, load_config
from stingy.simulations.statistics import experiment_meta, holm, mark_predicted, write_run
from stingy.simulations.sweep import run_setting
from stingy.simulations.verdicts import check_d

FIXES = ("within_m_kd", "tail_bucket_kd", "uniform_floor_kd", "sampled_kd")
ALPHAS = (0.9, 1.0)
NOISES = (0.0, 0.15, 0.3)
STEPS = {"short": 300, "long": 2000}
RATIO = 0.1
PREDICTION = "prediction.json"


def predicted_outcome(fix: str, alpha: float, noise: float) -> str:
    """'pass' or 'fail' for "``fix`` recovers at least half the stingy deficit" (module
    docstring)."""
    if fix == "tail_bucket_kd" and alpha == 1.0 and noise > 0:
        return "fail"
    return "pass"


def settings_grid() -> list[dict]:
    return [{"alpha": alpha, "length": length, "noise": noise}
            for alpha, length, noise in itertools.product(ALPHAS, STEPS, NOISES)]


def write_prediction(out: Path) -> dict:
    """``prediction.json`` (once; an existing one is returned unchanged)."""
    cells = [{**setting, "fix": fix,
              "predicted": predicted_outcome(fix, setting["alpha"], setting["noise"])}
             for setting in settings_grid() for fix in FIXES]
    return write_json_once(out / PREDICTION, lambda: {
        **stamp(), "statement": "the fix recovers at least half of the stingy deficit against "
        "normal KD (paired by seed, Holm over the family)",
        "basis": __doc__.split("\n\n", 2)[2].strip(), "cells": cells})


def fixes_config(alpha: float, steps: int, seeds: int) -> SimulationConfig:
    """The default simulation config with the baselines and the fixes at r = 0.1 only."""
    return load_config(None, {
        "distill.methods": ["scratch", "normal_kd", "stingy_kd", *FIXES],
        "distill.ratios": [RATIO], "distill.alpha": alpha, "student.steps": steps,
        "student.seeds": seeds})


def run_fixes(out: str | Path, seeds: int = 5, log=print) -> dict:
    """Write the prediction, then train every setting; {"runs", "verdicts", "prediction",
    "wall_s", "torch_threads", "load_average"}."""
    out = Path(out)
    prediction = write_prediction(out)
    start, load = time.time(), [load_average()]
    runs, verdicts = [], []
    for setting in settings_grid():
        config = fixes_config(setting["alpha"], STEPS[setting["length"]], seeds)
        rows = [{**row, "length": setting["length"]}
                for row in run_setting(config, setting["noise"], "symmetric")["runs"]]
        runs += rows
        verdicts += [{**check_d(rows, RATIO, method=fix), "fix": fix, **setting}
                     for fix in FIXES]
        log(f"[fixes] alpha {setting['alpha']} {setting['length']} noise {setting['noise']}: "
            f"{time.time() - start:.0f} s")
    load.append(load_average())
    verdicts = holm(verdicts)
    for verdict in verdicts:
        cell = next(c for c in prediction["cells"] if all(
            c[key] == verdict[key] for key in ("fix", "alpha", "length", "noise")))
        mark_predicted(verdict, cell["predicted"])
    return {"runs": runs, "verdicts": verdicts, "prediction": prediction,
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads(),
            "load_average": load}


def write_fixes(result: dict, out) -> None:
    """runs.csv, verdicts.json and run.json (wall time, load average, machine, date)."""
    write_run(out, {"runs.csv": result["runs"], "verdicts.json": result["verdicts"]},
              experiment_meta(result))
