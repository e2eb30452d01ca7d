"""The mechanism sweep: what the theory predicts for finite students trained for finite steps.

Statement (derived from T5a and T5c of stingy.theory). For free logits the sparse target's
infimum is approached by keeping the teacher's ranking inside M and sending the dropped logits
to -inf; the gradient on a dropped class, T q(i), vanishes as it sinks, so nothing stops the
kept-vs-dropped margin from growing, whereas a dense target anchors every logit at z(i) + const.
A student with finite capacity fits that margin with the same weights that carry the ranking
inside M. The predictions tested here, each with a 95% interval (task draw as the random
factor, seeds averaged within a task, :mod:`stingy.simulations.statistics`):

P1 steps, margin: from the short to the long run the stingy student's kept-vs-dropped logit gap
   on test inputs grows by a larger factor than normal KD's (log-ratio difference > 0).
P2 labels inside M: after the short run the stingy student's argmax over M agrees with the
   teacher's top class more often than the same student trained without labels (alpha = 1):
   the baseline is the sparse target alone, not 1/k (which even the no-label student beats).
P3 steps, alpha = 1: more training lowers stingy accuracy without any labels (long - short < 0).
P4 where the errors are: at the long run the stingy student's argmax stays inside M on at
   least 95% of test inputs (lower end of the interval), so its errors are rankings inside M,
   not mass moved off M (P3 says accuracy falls; P4 says where it goes).
P5 data size: the long-run harm (normal KD - stingy accuracy) is smaller with more training
   examples (harm(small data) - harm(default data) > 0).
P6 width, with normal KD trained at both widths: a wide student (hidden 512) is harmed less
   than the default (hidden 128). The free-logit minimiser keeps the teacher's ranking inside
   M, so the harm needs finite capacity, and more capacity should shrink it. Normal KD's own
   accuracy at both widths is given in the detail (a width where normal KD collapses would make
   the harm small for the wrong reason).
P7 linear (convex) student, the same capacity story: the default MLP is harmed less than a
   linear student at the long run (the direction P6 predicts; the earlier statement, "the
   linear student is harmed less", contradicted it).
P8 label rank, difference in differences: the stingy student's accuracy advantage where the
   true class is the teacher's top class (over where it is ranked 2nd..k-th) is larger than
   normal KD's own advantage, so the sparse target, not the teacher, makes the student right
   mostly at the top class.

:func:`write_prediction` writes ``prediction.json`` (every check predicted to pass) before
anything trains and never rewrites it. A prediction whose interval does not clear its
threshold is reported as failing, with numbers.
:func:`run_mechanism` runs a profile ("quick" for tests, "full" for the committed results) and
returns rows and verdicts; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stingy.io import write_json_once
from stingy.machine import stamp
from stingy.simulations.config import SimulationConfig, load_config
from stingy.simulations.statistics import holm, mark_predicted, nested_interval, write_run
from stingy.simulations.students import predict
from stingy.simulations.sweep import _generator, make_setting_data
from stingy.simulations.training import ModelSpecs, build_specs, train_students
from stingy.theory.operators import top_k_mask


@dataclass(frozen=True)
class Profile:
    """Sizes of one mechanism sweep."""

    task_seeds: tuple[int, ...]
    seeds: int
    short_steps: int
    long_steps: int
    small_data: int
    test_size: int
    classes: int


PROFILES = {
    "quick": Profile(task_seeds=(0, 1), seeds=2, short_steps=40, long_steps=120,
                     small_data=1000, test_size=500, classes=20),
    "full": Profile(task_seeds=(0, 1, 2), seeds=2, short_steps=200, long_steps=2000,
                    small_data=2000, test_size=2000, classes=100),
}

NOISE, RATIO = 0.3, 0.1


def _cases(profile: Profile) -> dict:
    """name -> (steps, hidden, train_size) of each training case."""
    return {
        "short": (profile.short_steps, 128, None),
        "long": (profile.long_steps, 128, None),
        "long_wide": (profile.long_steps, 512, None),
        "long_linear": (profile.long_steps, 0, None),
        "long_small_data": (profile.long_steps, 128, profile.small_data),
    }


def _concat(first: ModelSpecs, second: ModelSpecs) -> ModelSpecs:
    return ModelSpecs(first.method + second.method,
                      torch.cat([first.seed_index, second.seed_index]),
                      torch.cat([first.k, second.k]),
                      torch.cat([first.temperature, second.temperature]),
                      torch.cat([first.alpha, second.alpha]), first.ratio + second.ratio)


def _specs(config: SimulationConfig) -> ModelSpecs:
    """normal KD and stingy KD at the configured alpha, and stingy KD at alpha = 1."""
    seeds, classes = config.student.seeds, config.task.classes
    temperature, alpha = config.distill.temperature, config.distill.alpha
    base = build_specs(["normal_kd", "stingy_kd"], [RATIO], [temperature], alpha, seeds, classes)
    no_labels = build_specs(["stingy_kd"], [RATIO], [temperature], 1.0, seeds, classes)
    return _concat(base, no_labels)


def student_metrics(logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                    k: int) -> dict:
    """Mechanism metrics of one student on the test set (logits, teacher [N, C], labels [N]).

    accuracy; within_m_agreement = argmax of the student over M is the teacher's top class;
    top1_in_kept = the student's argmax is in M; logit_gap = mean sbar_M - sbar_Mc;
    accuracy_label_top / accuracy_label_inside = accuracy where the true label is the
    teacher's top class / ranked 2nd..k-th by the teacher.
    """
    kept = top_k_mask(teacher, k)
    prediction = logits.argmax(-1)
    teacher_top = teacher.argmax(-1)
    within = logits.masked_fill(~kept, float("-inf")).argmax(-1)
    gap = (logits.masked_fill(~kept, 0).sum(-1) / k
           - logits.masked_fill(kept, 0).sum(-1) / (logits.shape[-1] - k))
    label_top = labels == teacher_top
    label_inside = kept.gather(1, labels[:, None]).squeeze(1) & ~label_top
    correct = (prediction == labels).double()
    return {
        "accuracy": float(correct.mean()),
        "within_m_agreement": float((within == teacher_top).double().mean()),
        "top1_in_kept": float(kept.gather(1, prediction[:, None]).double().mean()),
        "logit_gap": float(gap.mean()),
        "accuracy_label_top": float(correct[label_top].mean()),
        "accuracy_label_inside": (float(correct[label_inside].mean()) if label_inside.any()
                                  else float("nan")),
    }


def train_case(profile: Profile, task_seed: int, case: str) -> list[dict]:
    """Train one case on one task draw; one row per student with its metrics."""
    steps, hidden, train_size = _cases(profile)[case]
    overrides = {"task.classes": profile.classes, "task.task_seed": task_seed,
                 "task.test_size": profile.test_size, "student.seeds": profile.seeds,
                 "student.steps": steps, "student.hidden": hidden, "distill.ratios": [RATIO],
                 "task.draw_per_seed": False}
    if train_size is not None:
        overrides["task.train_size"] = train_size
    config = load_config(None, overrides)
    classes = config.task.classes
    setting = make_setting_data(config, NOISE, "symmetric")
    specs = _specs(config)
    params, _ = train_students(specs, setting["inputs"], setting["noisy"],
                               setting["train_teacher"], config.student, _generator(task_seed, 4))
    logits = predict(params, setting["test_x"][0])  # task_seed fixed: one task per call
    teacher = setting["test_teacher"][0]
    k = round(RATIO * classes)
    rows = []
    for m in range(len(specs)):
        name = specs.method[m] + ("_alpha1" if float(specs.alpha[m]) == 1.0 else "")
        rows.append({"case": case, "task_seed": task_seed, "seed": int(specs.seed_index[m]),
                     "method": name, "steps": steps, "hidden": hidden,
                     "train_size": config.task.train_size, "k": k,
                     "alpha": float(specs.alpha[m]),
                     **student_metrics(logits[m], teacher, setting["test_y"][0], k)})
    return rows


def _values(rows, case, method, key) -> dict:
    """{(task_seed, seed): value}."""
    return {(r["task_seed"], r["seed"]): r[key] for r in rows
            if r["case"] == case and r["method"] == method}


def _paired(first: dict, second: dict) -> dict:
    return {key: first[key] - second[key] for key in first if key in second}


def _harm(rows, case) -> dict:
    return _paired(_values(rows, case, "normal_kd", "accuracy"),
                   _values(rows, case, "stingy_kd", "accuracy"))


def _label_rank_advantage(rows, method) -> dict:
    """Long run: accuracy where the label is the teacher's top class minus where it is ranked
    2nd..k-th, per (task, seed)."""
    return _paired(_values(rows, "long", method, "accuracy_label_top"),
                   _values(rows, "long", method, "accuracy_label_inside"))


def predictions(rows: list[dict]) -> list[dict]:
    """P1-P8 (module docstring) from the student rows: measured, 95% interval over task
    draws, verdict; then Holm-corrected over the family."""
    def log_gap(case, method):
        return {key: float(np.log(max(v, 1e-12)))
                for key, v in _values(rows, case, method, "logit_gap").items()}

    growth = {m: _paired(log_gap("long", m), log_gap("short", m))
              for m in ("normal_kd", "stingy_kd")}
    specs = [
        ("P1", "stingy logit gap grows more than normal KD's from short to long training",
         _paired(growth["stingy_kd"], growth["normal_kd"]), 0.0),
        ("P2", ("after short training the stingy student's argmax over M agrees with the "
                "teacher's top class more often than the same student without labels"),
         _paired(_values(rows, "short", "stingy_kd", "within_m_agreement"),
                 _values(rows, "short", "stingy_kd_alpha1", "within_m_agreement")), 0.0),
        ("P3", ("with alpha = 1 (no labels) longer training lowers stingy accuracy "
                "(short - long > 0)"),
         _paired(_values(rows, "short", "stingy_kd_alpha1", "accuracy"),
                 _values(rows, "long", "stingy_kd_alpha1", "accuracy")), 0.0),
        ("P4", ("at the long run the stingy student's argmax stays inside M on at least 95% "
                "of test inputs"),
         _values(rows, "long", "stingy_kd", "top1_in_kept"), 0.95),
        ("P5", "long-run harm (normal - stingy accuracy) is larger with less training data",
         _paired(_harm(rows, "long_small_data"), _harm(rows, "long")), 0.0),
        ("P6", "a wide student (hidden 512) is harmed less than hidden 128 at the long run",
         _paired(_harm(rows, "long"), _harm(rows, "long_wide")), 0.0),
        ("P7", "the MLP (hidden 128) is harmed less than a linear student at the long run",
         _paired(_harm(rows, "long_linear"), _harm(rows, "long")), 0.0),
        ("P8", ("the stingy student's accuracy advantage where the label is the teacher's top "
                "class (over 2nd..k-th) exceeds normal KD's (long run)"),
         _paired(_label_rank_advantage(rows, "stingy_kd"),
                 _label_rank_advantage(rows, "normal_kd")), 0.0),
    ]
    results = []
    for name, statement, values, threshold in specs:
        interval = nested_interval({key: v - threshold for key, v in values.items()})
        results.append({"check": name, "statement": statement, "predicted": f"> {threshold}",
                        "measured": interval["mean"] + threshold,
                        "ci95": [interval["low"] + threshold, interval["high"] + threshold],
                        "p_value": interval["p_value_greater"], "tasks": interval["groups"],
                        "units": interval["units"],
                        "verdict": "pass" if interval["low"] > 0 else "fail"})
    results = holm(results)
    return [mark_predicted(result, "pass") for result in results]


def write_prediction(out) -> dict:
    """``prediction.json`` under ``out`` (once; an existing one is returned unchanged)."""
    return write_json_once(Path(out) / "prediction.json", lambda: {
        **stamp(), "noise": NOISE, "ratio": RATIO,
        "checks": [{"check": f"P{i}", "predicted": "pass"} for i in range(1, 9)],
        "basis": "\n\n".join(__doc__.split("\n\n")[1:3]).strip()})


def run_mechanism(profile_name: str = "full", progress=None) -> dict:
    """Train every case on every task draw; return {"rows", "verdicts", "profile", "wall_s"}."""
    if profile_name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile_name!r}")
    profile = PROFILES[profile_name]
    start = time.time()
    rows = []
    for task_seed in profile.task_seeds:
        for case in _cases(profile):
            rows += train_case(profile, task_seed, case)
            if progress is not None:
                progress(f"task {task_seed} case {case} done at {time.time() - start:.0f} s")
    return {"rows": rows, "verdicts": predictions(rows),
            "profile": {"name": profile_name, **dataclasses.asdict(profile),
                        "noise": NOISE, "ratio": RATIO},
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads()}


def write_mechanism(result: dict, out) -> None:
    """rows.csv, verdicts.json and run.json (profile, wall time, machine, date) under ``out``,
    each written atomically."""
    write_run(out, {"rows.csv": result["rows"], "verdicts.json": result["verdicts"]},
              {"profile": result["profile"], "wall_s": result["wall_s"],
               "torch_threads": result["torch_threads"]})
