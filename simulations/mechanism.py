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
P2 free-logit minimiser, not confusion: after the short run the stingy student's argmax over M
   agrees with the teacher's top class far more often than 1/k (the paper's "cannot tell the
   classes in M apart" predicts about 1/k).
P3 steps, alpha = 1: more training lowers stingy accuracy without any labels (long - short < 0).
P4 where the loss goes: with more steps the within-M agreement falls (long - short < 0) while
   the student's argmax stays inside M.
P5 data size: the long-run harm (normal KD - stingy accuracy) is smaller with more training
   examples (harm(small data) - harm(default data) > 0).
P6 width: a narrow student (hidden 32) is harmed less than the default (hidden 128).
P7 linear (convex) student: harmed less than the default MLP at the long run.
P8 label rank: the stingy student is right mostly where the true class is the teacher's top
   class: accuracy(label ranked 1st by the teacher) - accuracy(label ranked 2nd..k-th) > 0.

A prediction whose interval does not clear its threshold is reported as failing, with numbers.
:func:`run_mechanism` runs a profile ("quick" for tests, "full" for the committed results) and
returns rows and verdicts; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from stingy.simulations.config import SimulationConfig, load_config
from stingy.simulations.statistics import holm, nested_interval, write_run
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
        "long_narrow": (profile.long_steps, 32, None),
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


def predictions(rows: list[dict], k: int) -> list[dict]:
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
        ("P2", (f"after short training the stingy student's argmax over M agrees with the "
                f"teacher's top class more often than 1/k = {1 / k:.2f} (paper: about 1/k)"),
         {key: v - 1 / k for key, v in
          _values(rows, "short", "stingy_kd", "within_m_agreement").items()}, 0.0),
        ("P3", ("with alpha = 1 (no labels) longer training lowers stingy accuracy "
                "(short - long > 0)"),
         _paired(_values(rows, "short", "stingy_kd_alpha1", "accuracy"),
                 _values(rows, "long", "stingy_kd_alpha1", "accuracy")), 0.0),
        ("P4", ("longer training lowers the stingy student's within-M agreement with the "
                "teacher (short - long > 0)"),
         _paired(_values(rows, "short", "stingy_kd", "within_m_agreement"),
                 _values(rows, "long", "stingy_kd", "within_m_agreement")), 0.0),
        ("P5", "long-run harm (normal - stingy accuracy) is larger with less training data",
         _paired(_harm(rows, "long_small_data"), _harm(rows, "long")), 0.0),
        ("P6", "a narrow student (hidden 32) is harmed less than hidden 128 at the long run",
         _paired(_harm(rows, "long"), _harm(rows, "long_narrow")), 0.0),
        ("P7", "a linear (convex) student is harmed less than the MLP at the long run",
         _paired(_harm(rows, "long"), _harm(rows, "long_linear")), 0.0),
        ("P8", ("the stingy student is more accurate where the label is the teacher's top "
                "class than where it is ranked 2nd..k-th (long run)"),
         _paired(_values(rows, "long", "stingy_kd", "accuracy_label_top"),
                 _values(rows, "long", "stingy_kd", "accuracy_label_inside")), 0.0),
    ]
    results = []
    for name, statement, values, threshold in specs:
        interval = nested_interval(values)
        results.append({"check": name, "statement": statement, "predicted": f"> {threshold}",
                        "measured": interval["mean"], "ci95": [interval["low"], interval["high"]],
                        "p_value": interval["p_value_greater"], "tasks": interval["groups"],
                        "units": interval["units"],
                        "verdict": "pass" if interval["low"] > threshold else "fail"})
    return holm(results)


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
    k = round(RATIO * profile.classes)
    return {"rows": rows, "verdicts": predictions(rows, k),
            "profile": {"name": profile_name, **dataclasses.asdict(profile),
                        "noise": NOISE, "ratio": RATIO},
            "wall_s": time.time() - start, "torch_threads": torch.get_num_threads()}


def write_mechanism(result: dict, out) -> None:
    """rows.csv, verdicts.json and run.json (profile, wall time, machine, date) under ``out``,
    each written atomically."""
    write_run(out, {"rows.csv": result["rows"], "verdicts.json": result["verdicts"]},
              {"profile": result["profile"], "wall_s": result["wall_s"],
               "torch_threads": result["torch_threads"]})
