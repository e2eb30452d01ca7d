"""The mechanism's headlines under changed conditions: a trained (non-oracle) teacher, SGD in
place of Adam, T = 4 in place of T = 20, and superclass in place of symmetric label noise,
each against the default (oracle teacher, Adam, T = 20, symmetric noise), on the simulations'
task at label noise 0.3, alpha = 0.9, r = 0.1 (k = 10 of C = 100), 2,000 steps, 5 seeds (each
its own task draw).

The headlines, each a paired check over seeds, Holm-corrected over the whole family:

- R-harm: stingy KD is less accurate than normal KD;
- R-ratio: raising the teacher's spread inside M (c = 4 against c = 0, the I-ratio
  intervention) raises stingy KD's accuracy;
- R-within: within-M KD recovers at least half of the stingy deficit (check d).

:func:`write_prediction` writes ``prediction.json`` before anything trains, and never
rewrites it: every headline is predicted to hold under every condition. A headline that fails
under one condition and holds under the default is reported as conditional on it.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from stingy.io import write_json_once
from stingy.machine import load_average, stamp
from stingy.simulations.config import load_config
from stingy.simulations.statistics import experiment_meta, holm, mark_predicted, write_run
from stingy.simulations.sweep import run_setting
from stingy.simulations.verdicts import accuracy_by_seed, check_d, check_greater

NOISE, RATIO, STEPS = 0.3, 0.1, 2000
SPREADS = (0.0, 4.0)
# name -> (config overrides, noise kind)
CONDITIONS = {
    "default": ({}, "symmetric"),
    "trained teacher": ({"teacher.kind": "trained"}, "symmetric"),
    "SGD": ({"student.optimizer": "sgd", "student.lr": 0.2}, "symmetric"),
    "T = 4": ({"distill.temperature": 4.0}, "symmetric"),
    "superclass noise": ({}, "superclass"),
}
HEADLINES = ("R-harm", "R-ratio", "R-within")
PREDICTION = "prediction.json"


def write_prediction(out: Path) -> dict:
    """``prediction.json`` (once; an existing one is returned unchanged)."""
    return write_json_once(out / PREDICTION, lambda: {
        **stamp(), "conditions": {name: {"overrides": overrides, "noise_kind": kind}
                                  for name, (overrides, kind) in CONDITIONS.items()},
        "checks": [{"check": check, "condition": condition, "predicted": "pass"}
                   for check in HEADLINES for condition in CONDITIONS],
        "basis": __doc__.split("\n\n", 1)[1].strip()})


def config_for(seeds: int, overrides: dict, methods: list[str], spread: float = 1.0):
    return load_config(None, {
        **overrides, "distill.methods": methods, "distill.ratios": [RATIO],
        "distill.within_spread": spread, "student.seeds": seeds, "student.steps": STEPS})


def train_condition(name: str, seeds: int, log) -> list[dict]:
    """Rows of one condition: normal, stingy and within-M KD at spread 1, stingy KD at the
    spreads of R-ratio."""
    overrides, kind = CONDITIONS[name]
    rows = [{**row, "condition": name, "spread": 1.0} for row in run_setting(
        config_for(seeds, overrides, ["normal_kd", "stingy_kd", "within_m_kd"]), NOISE,
        kind)["runs"]]
    for spread in SPREADS:
        rows += [{**row, "condition": name, "spread": spread} for row in run_setting(
            config_for(seeds, overrides, ["stingy_kd"], spread), NOISE, kind)["runs"]]
    log(f"[robustness] {name} done")
    return rows


def condition_checks(name: str, rows: list[dict]) -> list[dict]:
    """R-harm, R-ratio and R-within of one condition."""
    plain = [r for r in rows if r["spread"] == 1.0]
    setting = {"noise": NOISE, "noise_kind": plain[0]["noise_kind"], "condition": name}

    def stingy_at(spread):
        return accuracy_by_seed([r for r in rows if r["spread"] == spread], "stingy_kd")

    checks = [
        check_greater("R-harm", "stingy KD is less accurate than normal KD",
                      accuracy_by_seed(plain, "normal_kd"), stingy_at(1.0), setting,
                      "normal - stingy"),
        check_greater("R-ratio", f"a larger signal-to-drive ratio (spread c={SPREADS[1]:g} "
                      f"against c={SPREADS[0]:g}) raises stingy KD's accuracy",
                      stingy_at(SPREADS[1]), stingy_at(SPREADS[0]), setting,
                      f"stingy(c={SPREADS[1]:g}) - stingy(c={SPREADS[0]:g})"),
        {**check_d(plain, RATIO), "check": "R-within", "condition": name},
    ]
    return checks


def run_robustness(out: str | Path, seeds: int = 5, log=print) -> dict:
    """Write the prediction, train every condition, check; {"runs", "verdicts", "prediction",
    "wall_s", "torch_threads", "load_average"}."""
    out = Path(out)
    prediction = write_prediction(out)
    start, load = time.time(), [load_average()]
    runs, verdicts = [], []
    for name in CONDITIONS:
        rows = train_condition(name, seeds, log)
        runs += rows
        verdicts += condition_checks(name, rows)
    load.append(load_average())
    verdicts = holm(verdicts)
    default = {v["check"]: v["verdict_holm"] for v in verdicts if v["condition"] == "default"}
    for verdict in verdicts:
        mark_predicted(verdict, "pass")
        verdict["conditional"] = (verdict["condition"] != "default"
                                  and verdict["verdict_holm"] != default[verdict["check"]])
    return {"runs": runs, "verdicts": verdicts, "prediction": prediction,
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads(),
            "load_average": load}


def write_robustness(result: dict, out) -> None:
    """runs.csv, verdicts.json and run.json (wall time, load average, machine)."""
    write_run(out, {"runs.csv": result["runs"], "verdicts.json": result["verdicts"]},
              experiment_meta(result))
