"""How the kept-vs-dropped gap of a linear student grows under gradient descent on the stingy
target: the check of the T6 conjecture (docs/theory.md) on the simulations' task.

A linear student s = W x + b (the simulations' ``hidden = 0``) is trained by full-batch
gradient descent at a constant step ``LR`` on T^2 KL(p~ || softmax(s / T)) alone (alpha = 1,
no labels), p~ the oracle teacher's sparse target at k = 10 of C = 100, T = 20, label noise 0,
on the first EXAMPLES training inputs of each seed's task draw (5 seeds, each its own draw).
The mean gap sbar_M - sbar_Mc over those inputs is logged at log-spaced steps up to STEPS.

T6a gives g(t) = T log t + O(1) for free logits. For weights shared across inputs the
conjecture says the separable part of the constraints diverges like log t along the
max-margin direction, so the gap still grows linearly in log t, with a slope of T / gamma
(gamma <= 1 the normalised margin), at least T.

:func:`write_prediction` writes ``prediction.json`` before anything trains, never rewritten:

- G-log: over the last decade of steps the gap is linear in log t: the R^2 of the least-squares
  line of gap on log t is at least 0.98 on every seed;
- G-slope: that line's slope divided by T is at least 1 (the lower end of its 95% t-interval
  over seeds).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from stingy.intervals import t_interval
from stingy.io import write_json_once
from stingy.machine import load_average, stamp
from stingy.simulations.config import load_config
from stingy.simulations.statistics import experiment_meta, mark_predicted, write_run
from stingy.simulations.sweep import make_setting_data
from stingy.theory.expansion import logit_gap
from stingy.theory.operators import keep_count, sparse_target, top_k_mask

RATIO, TEMPERATURE, EXAMPLES, STEPS, LR = 0.1, 20.0, 2000, 20_000, 0.05
LOG_POINTS = 41
PREDICTION = "prediction.json"
PREDICTED = {"G-log": "pass", "G-slope": "pass"}


def write_prediction(out: Path) -> dict:
    """``prediction.json`` (once; an existing one is returned unchanged)."""
    return write_json_once(out / PREDICTION, lambda: {
        **stamp(), "steps": STEPS, "lr": LR, "examples": EXAMPLES,
        "checks": [{"check": check, "predicted": outcome} for check, outcome in PREDICTED.items()],
        "basis": __doc__.split("\n\n", 1)[1].strip()})


def logged_steps(steps: int) -> list[int]:
    """LOG_POINTS log-spaced steps from 1 to ``steps`` (distinct integers)."""
    return sorted({int(round(v)) for v in np.geomspace(1, steps, LOG_POINTS)})


def train_linear(inputs: torch.Tensor, teacher: torch.Tensor, steps: int, lr: float,
                 generator: torch.Generator) -> list[tuple[int, float]]:
    """Full-batch gradient descent of a linear student on the stingy target alone; (step, mean
    gap) at :func:`logged_steps`."""
    classes, k = teacher.shape[-1], keep_count(RATIO, teacher.shape[-1])
    target, kept = sparse_target(teacher, k, TEMPERATURE), top_k_mask(teacher, k)
    weight = (torch.randn(inputs.shape[-1], classes, generator=generator, dtype=inputs.dtype)
              / math.sqrt(inputs.shape[-1])).requires_grad_()
    bias = torch.zeros(classes, dtype=inputs.dtype, requires_grad=True)
    wanted, trajectory = set(logged_steps(steps)), []
    for step in range(1, steps + 1):
        logits = inputs @ weight + bias
        log_q = torch.log_softmax(logits / TEMPERATURE, dim=-1)
        loss = -TEMPERATURE ** 2 * (target * log_q).sum(-1).mean()
        weight.grad, bias.grad = None, None
        loss.backward()
        with torch.no_grad():
            weight -= lr * weight.grad
            bias -= lr * bias.grad
        if step in wanted:
            with torch.no_grad():
                gap = logit_gap(inputs @ weight + bias, kept).mean()
            trajectory.append((step, float(gap)))
    return trajectory


def late_fit(trajectory: list[tuple[int, float]], steps: int) -> dict:
    """Least squares of gap on log(step) over the last decade of steps: slope, R^2."""
    points = np.array([(math.log(s), g) for s, g in trajectory if s >= steps / 10])
    slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
    residual = points[:, 1] - (slope * points[:, 0] + intercept)
    total = ((points[:, 1] - points[:, 1].mean()) ** 2).sum()
    return {"slope": float(slope), "r2": float(1 - (residual ** 2).sum() / total)}


def checks(fits: list[dict]) -> list[dict]:
    """G-log and G-slope (module docstring) from the per-seed fits."""
    r2 = [f["r2"] for f in fits]
    slope_over_t = t_interval([f["slope"] / TEMPERATURE for f in fits])
    results = [
        {"check": "G-log", "statement": "over the last decade of steps the gap is linear in "
         "log t (R^2 >= 0.98 on every seed)", "predicted": ">= 0.98", "measured": min(r2),
         "ci95": [min(r2), max(r2)], "verdict": "pass" if min(r2) >= 0.98 else "fail",
         "detail": "R^2 per seed: " + ", ".join(f"{v:.4f}" for v in r2) + " (ci95: min, max)"},
        {"check": "G-slope", "statement": "the slope of the gap in log t is at least T (slope "
         "/ T >= 1, lower end of the 95% interval)", "predicted": ">= 1",
         "measured": slope_over_t[0], "ci95": list(slope_over_t[1:]),
         "verdict": "pass" if slope_over_t[1] >= 1 else "fail",
         "detail": "slope / T per seed: " + ", ".join(f"{f['slope'] / TEMPERATURE:.3f}"
                                                     for f in fits)}]
    return [mark_predicted(result, PREDICTED[result["check"]], "verdict") for result in results]


def run_gap_growth(out: str | Path, seeds: int = 5, log=print, steps: int = STEPS,
                   examples: int = EXAMPLES) -> dict:
    """Write the prediction, train one linear student per seed, fit, check; {"runs",
    "verdicts", "prediction", "wall_s", "torch_threads", "load_average"}."""
    out = Path(out)
    prediction = write_prediction(out)
    start, load = time.time(), [load_average()]
    config = load_config(None, {"student.seeds": seeds, "distill.ratios": [RATIO]})
    setting = make_setting_data(config, 0.0, "symmetric")
    runs, fits = [], []
    for seed in range(seeds):
        inputs = setting["inputs"][seed, :examples].double()
        teacher = setting["train_teacher"][seed, :examples].double()
        trajectory = train_linear(inputs, teacher, steps, LR,
                                  torch.Generator().manual_seed(seed))
        fits.append(late_fit(trajectory, steps))
        runs += [{"seed": seed, "step": s, "gap": g, "log_step": math.log(s)}
                 for s, g in trajectory]
        log(f"[gap-growth] seed {seed}: slope / T {fits[-1]['slope'] / TEMPERATURE:.3f}, "
            f"R^2 {fits[-1]['r2']:.4f}")
    load.append(load_average())
    return {"runs": runs, "verdicts": checks(fits), "prediction": prediction,
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads(),
            "load_average": load}


def write_gap_growth(result: dict, out) -> None:
    """runs.csv (gap per logged step and seed), verdicts.json and run.json."""
    write_run(out, {"runs.csv": result["runs"], "verdicts.json": result["verdicts"]},
              experiment_meta(result))
