"""One noise setting of the sweep: data, teacher, every student, every measurement.

:func:`run_setting` returns plain rows (dicts) for ``runs``, ``gap_trajectory`` and
``drive_rates`` plus the setting's Bayes and teacher accuracy (means over seeds). Seeds: the
task (class means, projection, test set) comes from ``task.task_seed``, or, with
``task.draw_per_seed`` (the default), each seed draws its own task (:func:`task_seed_of`), so
that seeds are replicates of the task draw too; seed s draws its own training inputs (the same
at every noise level), its own noisy labels, student initialisation and batch order, which
every method of that seed shares.

``predicted_gap`` in gap_trajectory is the free-logit drive prediction gap(0) + kappa a T / k *
lr * step for the first ``log.early_steps`` steps (NaN afterwards), kappa fitted through the
origin to the measured early rates; it ignores how kept sets overlap across inputs. The rate
check (c) uses :mod:`stingy.simulations.drive_rate` instead: the first-step rate of fresh
students against the linearised (eNTK) prediction with the kept-set overlap (``drive_rates``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stingy.simulations import data, teachers
from stingy.simulations.config import SimulationConfig, TaskSettings, TeacherSettings
from stingy.simulations.drive_rate import first_step_rates
from stingy.simulations.students import mlp_forward
from stingy.simulations.training import (SPARSE_METHODS, GapProbe, ModelSpecs, build_specs,
                                         early_rate, train_students)
from stingy.theory.expansion import logit_gap
from stingy.theory.operators import kept_mass, top_k_mask
from stingy.theory.signal import signal_to_drive_exact


def _generator(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence(parts).generate_state(1)[0]))


def task_seed_of(task: TaskSettings, seed: int) -> int:
    """The task draw of one seed: ``task.task_seed`` itself, or with ``task.draw_per_seed`` a
    draw of its own from (task_seed, seed), so that the task is a random factor."""
    if not task.draw_per_seed:
        return task.task_seed
    return int(np.random.SeedSequence((task.task_seed, seed, 7)).generate_state(1)[0])


def make_setting_data(config: SimulationConfig, rate: float, kind: str) -> dict:
    """Per-seed task draw (or one shared task), training data with noisy labels, test set and
    teacher logits. Test arrays are per seed: test_x [S, N, D], test_y [S, N],
    test_log_posterior [S, N, C], test_teacher [S, N, C]."""
    seeds = [_seed_data(config.task, seed, rate, kind) for seed in range(config.student.seeds)]
    stacked = {key: torch.stack([seed[key] for seed in seeds]) for key in seeds[0]
               if key != "transition"}
    transitions = [seed["transition"] for seed in seeds]
    if config.teacher.kind == "oracle":
        train_teacher, test_teacher = _oracle_teacher(config.teacher, stacked, transitions)
    else:
        train_teacher, test_teacher = _trained_teacher(config, stacked)
    noisy, clean = stacked["noisy"], stacked["clean"]
    return {
        "inputs": stacked["inputs"].float(), "noisy": noisy, "clean": clean,
        "test_x": stacked["test_x"].float(), "test_y": stacked["test_y"],
        "test_log_posterior": stacked["test_log_posterior"],
        "train_teacher": train_teacher.float(), "test_teacher": test_teacher.float(),
        "noise_rate_realised": float((noisy != clean).double().mean()),
    }


def _seed_data(task_settings: TaskSettings, seed: int, rate: float, kind: str) -> dict:
    """One seed's task draw: training inputs with clean and noisy labels, the exact clean
    posterior on them, the noise transition and the clean test set."""
    classes, task_seed = task_settings.classes, task_settings.task_seed
    draw = task_seed_of(task_settings, seed)
    task = data.make_task(classes, classes // task_settings.superclass_size,
                          task_settings.latent_dim, task_settings.input_dim,
                          task_settings.superclass_spread, task_settings.member_spread, draw)
    transition = data.noise_transition(task, rate, kind)
    x, y = data.sample(task, task_settings.train_size, _generator(task_seed, seed, 1))
    label_gen = _generator(task_seed, seed, 2, int(round(rate * 1e6)),
                           data.NOISE_KINDS.index(kind))
    test_x, test_y = data.sample(task, task_settings.test_size, _generator(draw, 10**6))
    return {"inputs": x, "clean": y, "noisy": data.noisy_labels(y, transition, label_gen),
            "train_posterior": data.clean_log_posterior(task, x), "transition": transition,
            "test_x": test_x, "test_y": test_y,
            "test_log_posterior": data.clean_log_posterior(task, test_x)}


def _oracle_teacher(teacher: TeacherSettings, stacked: dict, transitions: list) -> tuple:
    """The exact noisy-label posterior's logits on the training and test inputs, per seed
    (rescaled to ``teacher.logit_range`` when it is set)."""
    scale = teacher.logit_range or None
    return tuple(torch.stack([teachers.oracle_logits(posterior, transition, scale)
                              for posterior, transition in zip(stacked[key], transitions)])
                 for key in ("train_posterior", "test_log_posterior"))


def _trained_teacher(config: SimulationConfig, stacked: dict) -> tuple:
    """A wide MLP per seed trained on the noisy labels: its logits on the training and test
    inputs (rescaled to ``teacher.logit_range`` when it is set)."""
    teacher = config.teacher
    inputs, test_x = stacked["inputs"].float(), stacked["test_x"].float()
    params = teachers.train_teacher(inputs, stacked["noisy"], teacher.hidden, teacher.epochs,
                                    config.student.batch_size, teacher.lr, 0.0,
                                    _generator(config.task.task_seed, 3))
    train_teacher = teachers.trained_teacher_logits(params, inputs)
    test_teacher = teachers.trained_teacher_logits(params, test_x)
    if teacher.logit_range:
        factor = teacher.logit_range / teachers.mean_logit_range(train_teacher)
        train_teacher, test_teacher = train_teacher * factor, test_teacher * factor
    return train_teacher, test_teacher


def student_specs(config: SimulationConfig) -> ModelSpecs:
    """The students of one noise setting: every configured method (sparse ones at every
    ratio) and seed, at the configured temperature and alpha."""
    distill = config.distill
    return build_specs(distill.methods, distill.ratios, [distill.temperature], distill.alpha,
                       config.student.seeds, config.task.classes)


def kept_masks(teacher: torch.Tensor, specs) -> torch.Tensor:
    """Each model's M on the given teacher logits [S, P, C] -> [n, P, C]."""
    distinct = sorted(set(specs.k.tolist()))
    table = torch.stack([top_k_mask(teacher, k) for k in distinct])
    index = torch.tensor([distinct.index(k) for k in specs.k.tolist()])
    return table[index, specs.seed_index]


@torch.no_grad()
def evaluate(params, specs, setting: dict, chunk: int = 1000) -> dict:
    """Per-model test metrics (module docstring of stingy.simulations.runner lists them),
    arrays [n]."""
    test_x, test_y, teacher = setting["test_x"], setting["test_y"], setting["test_teacher"]
    totals = {key: torch.zeros(len(specs), dtype=torch.float64) for key in
              ("correct", "log_loss", "agree", "within_correct", "within_count", "gap")}
    for start in range(0, test_x.shape[1], chunk):
        x = test_x[specs.seed_index, start:start + chunk]
        y = test_y[specs.seed_index, start:start + chunk]
        logits = mlp_forward(params, x)
        t = teacher[specs.seed_index, start:start + chunk]
        kept = kept_masks(teacher[:, start:start + chunk], specs)
        pred = logits.argmax(-1)
        totals["correct"] += (pred == y).sum(1)
        totals["log_loss"] += F.cross_entropy(logits.transpose(1, 2), y,
                                              reduction="none").sum(1)
        totals["agree"] += (pred == t.argmax(-1)).sum(1)
        label_kept = kept.gather(2, y[..., None]).squeeze(2)
        within_pred = logits.masked_fill(~kept, float("-inf")).argmax(-1)
        totals["within_correct"] += ((within_pred == y) & label_kept).sum(1)
        totals["within_count"] += label_kept.sum(1)
        totals["gap"] += torch.nan_to_num(logit_gap(logits, kept), nan=0.0).sum(1)
    count = test_x.shape[1]
    return {
        "accuracy": (totals["correct"] / count).numpy(),
        "log_loss": (totals["log_loss"] / count).numpy(),
        "teacher_agreement": (totals["agree"] / count).numpy(),
        "accuracy_within_m": (totals["within_correct"] / totals["within_count"]).numpy(),
        "final_logit_gap": (totals["gap"] / count).numpy(),
    }


def teacher_statistics(setting: dict, specs) -> tuple[np.ndarray, np.ndarray]:
    """Kept mass m (T2) and exact signal-to-drive (T5b) of each model's teacher, test-set means."""
    cache, mass, ratio = {}, [], []
    for seed, k, temperature in zip(specs.seed_index.tolist(), specs.k.tolist(),
                                    specs.temperature.tolist()):
        if (seed, k, temperature) not in cache:
            logits = setting["test_teacher"][seed].double()
            cache[seed, k, temperature] = (
                float(kept_mass(logits, k, temperature).mean()),
                float(signal_to_drive_exact(logits, k, temperature).mean()))
        mass.append(cache[seed, k, temperature][0])
        ratio.append(cache[seed, k, temperature][1])
    return np.array(mass), np.array(ratio)


def fit_kappa(rates: np.ndarray, drive: np.ndarray) -> float:
    """Least squares through the origin: rate = kappa * drive; NaN without a drive (alpha =
    0: labels only)."""
    norm = float(drive @ drive)
    return float(rates @ drive) / norm if norm else float("nan")


def gap_rows(specs, gaps: dict, common: dict, phase: str, lr: float, early_steps: int) -> tuple:
    """gap_trajectory rows of the sparse models, with the early drive prediction, and rates."""
    sparse = np.array([m in SPARSE_METHODS for m in specs.method])
    steps = np.array(sorted(gaps))
    values = torch.stack([gaps[s] for s in steps]).numpy()  # [n_steps, n]
    early = steps <= early_steps
    rates = early_rate(steps[early].astype(float), values[early])
    drive = (specs.alpha * specs.temperature / specs.k).numpy() * lr
    stingy = np.array([m == "stingy_kd" for m in specs.method])
    kappa = fit_kappa(rates[stingy], drive[stingy]) if stingy.any() else float("nan")
    rows = []
    for m in np.flatnonzero(sparse):
        model = {"method": specs.method[m], "ratio": specs.ratio[m], "k": int(specs.k[m]),
                 "temperature": float(specs.temperature[m]), "seed": int(specs.seed_index[m])}
        for i, step in enumerate(steps):
            predicted = values[0, m] + kappa * drive[m] * step if step <= early_steps else np.nan
            rows.append({**common, "phase": phase, "step": int(step), **model,
                         "logit_gap": float(values[i, m]),
                         "predicted_gap": float(predicted) if specs.method[m] == "stingy_kd"
                         else float("nan")})
    return rows, rates, kappa


def run_setting(config: SimulationConfig, rate: float, kind: str, progress=None) -> dict:
    """Train and measure every student of one (noise rate, kind); plain rows back."""
    setting = make_setting_data(config, rate, kind)
    log, steps = config.log, config.student.steps
    common = {"classes": config.task.classes, "noise": rate, "noise_kind": kind,
              "teacher_logit_range": float(config.teacher.logit_range)}
    probe_x = setting["test_x"][:, :log.probe_examples]
    probe_teacher = setting["test_teacher"][:, :log.probe_examples]

    specs = student_specs(config)
    probe = GapProbe(probe_x[specs.seed_index], kept_masks(probe_teacher, specs), frozenset(
        set(range(log.early_steps + 1)) | set(range(0, steps + 1, log.gap_every)) | {steps}))
    params, gaps = train_students(specs, setting["inputs"], setting["noisy"],
                                  setting["train_teacher"], config.student,
                                  _generator(config.task.task_seed, 4), probe, progress,
                                  config.distill.within_spread)
    trajectory, _, _ = gap_rows(specs, gaps, common, "train", config.student.lr,
                                log.early_steps)
    baselines = seed_baselines(setting)
    drive_rates = first_step_rates(setting, config, common,
                                   _generator(config.task.task_seed, 5))
    return {"runs": run_rows(config, specs, params, setting, common, baselines),
            "gap_trajectory": trajectory, "drive_rates": drive_rates,
            "bayes_accuracy": float(baselines["bayes_accuracy"].mean()),
            "teacher_accuracy": float(baselines["teacher_accuracy"].mean())}


def seed_baselines(setting: dict) -> dict:
    """Per seed [S]: the Bayes rule's accuracy and log-loss and the teacher's accuracy on the
    clean test set."""
    log_posterior, test_y = setting["test_log_posterior"], setting["test_y"]
    return {
        "bayes_accuracy": (log_posterior.argmax(-1) == test_y).double().mean(1),
        "bayes_log_loss": -log_posterior.gather(-1, test_y[..., None]).squeeze(-1).mean(1),
        "teacher_accuracy": (setting["test_teacher"].argmax(-1) == test_y).double().mean(1),
    }


def run_rows(config: SimulationConfig, specs: ModelSpecs, params, setting: dict, common: dict,
             baselines: dict) -> list[dict]:
    """One runs.csv row per trained student (columns: stingy.simulations.runner)."""
    metrics = evaluate(params, specs, setting)
    mass, signal = teacher_statistics(setting, specs)
    nan = float("nan")
    rows = []
    for m in range(len(specs)):
        sparse = specs.method[m] in SPARSE_METHODS
        seed = int(specs.seed_index[m])
        rows.append({
            **common, "temperature": float(specs.temperature[m]), "alpha": float(specs.alpha[m]),
            "method": specs.method[m], "ratio": specs.ratio[m],
            "k": int(specs.k[m]), "seed": seed,
            "accuracy": float(metrics["accuracy"][m]), "log_loss": float(metrics["log_loss"][m]),
            "excess_log_loss": float(metrics["log_loss"][m] - baselines["bayes_log_loss"][seed]),
            "teacher_agreement": float(metrics["teacher_agreement"][m]),
            "accuracy_within_m": float(metrics["accuracy_within_m"][m]) if sparse else nan,
            "kept_mass": float(mass[m]) if sparse else nan,
            "signal_to_drive": float(signal[m]) if sparse else nan,
            "final_logit_gap": float(metrics["final_logit_gap"][m]) if sparse else nan,
            "bayes_accuracy": float(baselines["bayes_accuracy"][seed]),
            "bayes_log_loss": float(baselines["bayes_log_loss"][seed]),
            "teacher_accuracy": float(baselines["teacher_accuracy"][seed]),
            "task_draw": task_seed_of(config.task, seed), "teacher": config.teacher.kind,
            "noise_rate_realised": setting["noise_rate_realised"],
        })
    return rows
