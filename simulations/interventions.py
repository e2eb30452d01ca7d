"""The mechanism tested by intervention, on the simulations' task (oracle teacher, T = 20,
alpha = 0.9, r = 0.1, k = 10 of C = 100), at label noise 0 and 0.3; harm is normal KD minus
stingy KD accuracy, paired by seed (5 task draws).

- **I-ratio**: the teacher's spread inside M is scaled by c in SPREADS (the sparse target is
  softmax(c z_M / T); ``distill.within_spread``), which moves the exact T5 signal-to-drive
  ratio from 0 (c = 0, uniform on M) upwards at the same k and the same teacher (its kept
  mass is unchanged). Trained for 2,000 steps.
- **I-gap**: the stingy student pays (gap - cap)^2 when its kept-vs-dropped logit gap exceeds
  cap (``student.gap_cap``), the target unchanged; no cap, cap 30 and cap 5, trained for 300
  and 2,000 steps.
- **I-mass** is not run: the stingy target softmax(z_M / T) does not depend on the teacher's
  logits off M, so changing the kept mass at a fixed ratio (through the dropped logits)
  leaves the stingy student's loss, and so the student, unchanged; only the normal-KD
  baseline would move.

:func:`write_prediction` writes ``prediction.json`` before anything trains (never rewritten):

- I-ratio: the harm falls as the ratio rises, so stingy KD at c = 4 beats stingy KD at c = 0;
- I-gap-long: capping the gap at 5 lowers the harm after 2,000 steps;
- I-gap-growth: with the cap the harm grows less from 300 to 2,000 steps than without;
- I-gap-residual: with the cap, stingy KD is still below normal KD after 2,000 steps (the gap
  explains the growth of the harm, not the harm itself).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from stingy.io import write_json_once
from stingy.machine import load_average, stamp
from stingy.simulations.config import load_config
from stingy.simulations.statistics import experiment_meta, holm, mark_predicted, write_run
from stingy.simulations.sweep import make_setting_data, run_setting
from stingy.simulations.verdicts import accuracy_by_seed, check_greater
from stingy.theory.operators import keep_count
from stingy.theory.signal import signal_to_drive_exact

SPREADS = (0.0, 0.5, 1.0, 2.0, 4.0)
CAPS = (0.0, 30.0, 5.0)  # 0: no cap
NOISES = (0.0, 0.3)
STEPS = {"short": 300, "long": 2000}
RATIO = 0.1
PREDICTION = "prediction.json"
PREDICTED = {"I-ratio": "pass", "I-gap-long": "pass", "I-gap-growth": "pass",
             "I-gap-residual": "pass"}


def write_prediction(out: Path) -> dict:
    """``prediction.json`` (once; an existing one is returned unchanged)."""
    return write_json_once(out / PREDICTION, lambda: {
        **stamp(), "noise": list(NOISES),
        "checks": [{"check": check, "predicted": outcome} for check, outcome in PREDICTED.items()],
        "basis": __doc__.split("\n\n", 2)[2].strip()})


def config_for(seeds: int, steps: int, spread: float = 1.0, cap: float = 0.0):
    return load_config(None, {
        "distill.methods": ["scratch", "normal_kd", "stingy_kd"], "distill.ratios": [RATIO],
        "distill.within_spread": spread, "student.gap_cap": cap, "student.seeds": seeds,
        "student.steps": steps})


def _train(seeds, noise, length, intervention, log, spread=1.0, cap=0.0) -> list[dict]:
    rows = run_setting(config_for(seeds, STEPS[length], spread, cap), noise, "symmetric")["runs"]
    log(f"[interventions] noise {noise} {length} spread {spread:g} cap {cap:g}")
    return [{**row, "length": length, "intervention": intervention, "spread": spread,
             "cap": cap} for row in rows]


def ratios_at_spreads(noise: float, seeds: int) -> list[dict]:
    """The exact T5 ratio of the sparse target at each spread c, test-set mean over seeds."""
    config = config_for(seeds, 1)
    teacher = make_setting_data(config, noise, "symmetric")["test_teacher"].double()
    k = keep_count(RATIO, config.task.classes)
    return [{"noise": noise, "spread": spread, "signal_to_drive": float(signal_to_drive_exact(
        teacher * spread, k, config.distill.temperature).mean())} for spread in SPREADS]


def run_interventions(out: str | Path, seeds: int = 5, log=print) -> dict:
    """Write the prediction, train every setting, check; {"runs", "verdicts", "ratios",
    "prediction", "wall_s", "torch_threads", "load_average"}."""
    out = Path(out)
    prediction = write_prediction(out)
    start, load = time.time(), [load_average()]
    runs, verdicts, ratios = [], [], []
    for noise in NOISES:
        ratio_rows = [row for spread in SPREADS
                      for row in _train(seeds, noise, "long", "ratio", log, spread=spread)]
        at_noise = ratios_at_spreads(noise, seeds)
        gap_rows = [row for length in STEPS for cap in CAPS
                    for row in _train(seeds, noise, length, "gap", log, cap=cap)]
        runs += ratio_rows + gap_rows
        ratios += at_noise
        verdicts += ratio_check(ratio_rows, at_noise) + gap_checks(gap_rows)
    load.append(load_average())
    verdicts = holm(verdicts)
    for verdict in verdicts:
        mark_predicted(verdict, PREDICTED[verdict["check"]])
    return {"runs": runs, "verdicts": verdicts, "ratios": ratios, "prediction": prediction,
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads(),
            "load_average": load}


def _stingy(rows, **match) -> dict:
    return accuracy_by_seed([r for r in rows if all(r[k] == v for k, v in match.items())],
                            "stingy_kd")


def ratio_check(rows, ratios) -> list[dict]:
    """I-ratio: stingy at the largest spread minus at c = 0, paired; the detail lists each
    spread's ratio and harm and their Spearman correlation."""
    normal = accuracy_by_seed([r for r in rows if r["spread"] == 1.0], "normal_kd")
    harms = []
    for entry in ratios:
        stingy = _stingy(rows, spread=entry["spread"])
        harms.append(float(np.mean([normal[s] - stingy[s] for s in stingy])))
    rho = float(stats.spearmanr([r["signal_to_drive"] for r in ratios], harms).statistic)
    spreads = ", ".join(f"c={r['spread']:g}: ratio {r['signal_to_drive']:.3f}, harm {h:+.4f}"
                        for r, h in zip(ratios, harms))
    verdict = check_greater(
        "I-ratio", f"a larger signal-to-drive ratio (spread c={SPREADS[-1]:g} against c=0, same "
        "k and teacher) lowers the stingy harm", _stingy(rows, spread=SPREADS[-1]),
        _stingy(rows, spread=0.0), {"noise": rows[0]["noise"], "noise_kind": "symmetric"},
        f"stingy(c={SPREADS[-1]:g}) - stingy(c=0)")
    verdict["detail"] += f"; {spreads}; Spearman(ratio, harm) = {rho:+.2f}"
    return [verdict]


def gap_checks(rows) -> list[dict]:
    """I-gap-long, I-gap-growth and I-gap-residual at the tightest cap (module docstring)."""
    cap, setting = CAPS[-1], {"noise": rows[0]["noise"], "noise_kind": "symmetric"}
    capped = {length: _stingy(rows, cap=cap, length=length) for length in STEPS}
    free = {length: _stingy(rows, cap=0.0, length=length) for length in STEPS}
    normal_long = accuracy_by_seed([r for r in rows if r["cap"] == 0.0 and r["length"] == "long"],
                                   "normal_kd")

    def growth(by_length):
        return {s: by_length["long"][s] - by_length["short"][s] for s in by_length["long"]}

    return [
        check_greater("I-gap-long", f"capping the logit gap at {cap:g} lowers the stingy harm "
                      "after 2,000 steps", capped["long"], free["long"], setting,
                      f"stingy(cap {cap:g}) - stingy(no cap), long"),
        check_greater("I-gap-growth", f"with the gap capped at {cap:g} the harm grows less from "
                      "300 to 2,000 steps", growth(capped), growth(free), setting,
                      "(long - short) with the cap - (long - short) without"),
        check_greater("I-gap-residual", f"with the gap capped at {cap:g}, stingy KD is still "
                      "below normal KD after 2,000 steps", normal_long, capped["long"], setting,
                      f"normal KD - stingy(cap {cap:g}), long"),
    ]


def write_interventions(result: dict, out) -> None:
    """runs.csv, ratios.csv, verdicts.json and run.json (wall time, load average, machine)."""
    write_run(out, {"runs.csv": result["runs"], "ratios.csv": result["ratios"],
                    "verdicts.json": result["verdicts"]},
              experiment_meta(result))
