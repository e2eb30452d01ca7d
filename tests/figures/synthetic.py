"""Small synthetic result files in the layout `stingy reproduce` writes, for figure and
report tests. Values are made up but shaped like the real files (same columns)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from stingy.io import append_jsonl, write_csv, write_json

RATIOS = [0.01, 0.05, 0.1, 0.2, 0.5, 0.7]
TEMPERATURES = [0.5, 1, 2, 4, 8, 16, 32, 64]


def theory_grid_rows(num_classes=100, ks=(1, 10, 20, 50), students=True,
                     exact_columns=True) -> list[dict]:
    """Theory-grid rows; ``exact_columns`` adds the exact T3 worst case and the T5 asymptote
    beside the exact ratio (the grid's newer columns)."""
    rows = []
    for k in ks:
        ratio = k / num_classes
        for t in TEMPERATURES:
            mass = ratio + (1 - ratio) * math.exp(-t / 8)
            row = {"k": k, "ratio": ratio, "num_classes": num_classes, "temperature": t,
                   "kept_mass": mass, "kept_mass_lower": ratio,
                   "kept_mass_upper": min(1.0, mass + 0.05),
                   "kept_mass_expansion": ratio * (1 + 3 / t),
                   "paper_mass_shift": (1 - ratio) / k,
                   "mass_shift_error": 0.5 / t, "mass_shift_error_bound": 0.8 / t,
                   "tv_to_uniform": math.tanh(2 / t) * 0.7, "tv_to_uniform_bound": math.tanh(2 / t),
                   "drive_norm": t * (1 - ratio), "signal_norm": 2.0,
                   "signal_to_drive": 2.0 / (t * (1 - ratio)),
                   "signal_to_drive_bound": 3.0 / (t * (1 - ratio))}
            if exact_columns:
                row.update({"tv_to_uniform_worst_case": math.tanh(2 / t) * 0.9,
                            "signal_to_drive_asymptote": 2.2 / (t * (1 - ratio))})
            if students:
                row.update({"order_t2": t * t * math.log(1 / ratio), "order_t": -0.8 * t,
                            "order_1": 1.5, "remainder": 0.3 / t,
                            "exact": t * t * math.log(1 / ratio) - 0.8 * t + 1.5 + 0.3 / t})
            rows.append(row)
    return rows


def simulation_summary_rows(stingy_dip=20.0, kind="symmetric", temperature=20.0) -> list[dict]:
    """Like simulations/summary.csv: every method at ``temperature`` but label smoothing (T=1)."""
    rows = []
    for noise in (0.0, 0.2, 0.4):
        base = 80 - 30 * noise
        reversed_accuracy = 4.5 if noise == 0 else base - 2  # the clean-label outlier
        for method, accuracy in (("scratch", base), ("normal_kd", base + 3),
                                 ("reversed_kd", reversed_accuracy),
                                 ("label_smoothing", base + 1)):
            rows.append({"noise": noise, "noise_kind": kind, "method": method, "ratio": "",
                         "temperature": 1.0 if method == "label_smoothing" else temperature,
                         "accuracy_mean": accuracy / 100, "n_seeds": 5,
                         "bayes_accuracy": 0.93, "teacher_accuracy": 0.92,
                         "accuracy_ci95_low": (accuracy - 1) / 100,
                         "accuracy_ci95_high": (accuracy + 1) / 100, "runs": 5})
        for ratio in RATIOS:
            dip = stingy_dip * math.exp(-((math.log(ratio) - math.log(0.1)) ** 2))
            for method, accuracy in (("stingy_kd", base - dip), ("within_m_kd", base + 2)):
                rows.append({"noise": noise, "noise_kind": kind, "method": method,
                             "ratio": ratio, "temperature": temperature,
                             "accuracy_mean": accuracy / 100, "n_seeds": 5,
                             "bayes_accuracy": 0.93, "teacher_accuracy": 0.92,
                             "accuracy_ci95_low": (accuracy - 1.5) / 100,
                             "accuracy_ci95_high": (accuracy + 1.5) / 100, "runs": 5})
    return rows


def simulation_run_rows(summary_rows, seeds=3) -> list[dict]:
    """One row per seed around each summary mean (the layout of simulations/runs.csv)."""
    rows = []
    for row in summary_rows:
        for seed in range(seeds):
            rows.append({"noise": row["noise"], "noise_kind": row["noise_kind"],
                         "method": row["method"], "ratio": row["ratio"],
                         "temperature": row["temperature"], "seed": seed,
                         "accuracy": row["accuracy_mean"] + 0.004 * (seed - 1)})
    return rows


def mechanism_rows() -> list[dict]:
    """The mechanism sweeps' rows.csv (the simulations' columns): one case per factor value,
    each differing from 'long' in one of steps, hidden, train_size."""
    rows = []
    cases = {"short": (200, 128, 10000), "long": (2000, 128, 10000),
             "long_narrow": (2000, 32, 10000), "long_linear": (2000, 0, 10000),
             "long_small_data": (2000, 128, 2000)}
    for case, (steps, hidden, train_size) in cases.items():
        harm = 0.05 + steps / 20000 + hidden / 5000 + 200 / train_size
        for task_seed in (0, 1):
            for seed in (0, 1):
                jitter = 0.002 * (task_seed + 2 * seed)
                for method, accuracy, gap in (("normal_kd", 0.9, 1.0),
                                              ("stingy_kd", 0.9 - harm, steps / 20),
                                              ("stingy_kd_alpha1", 0.88 - harm, steps / 15)):
                    rows.append({"case": case, "task_seed": task_seed, "seed": seed,
                                 "method": method, "steps": steps, "hidden": hidden,
                                 "train_size": train_size, "k": 10, "accuracy": accuracy + jitter,
                                 "logit_gap": gap + jitter,
                                 "accuracy_label_top": accuracy + 0.03 + jitter,
                                 "accuracy_label_inside": accuracy - 0.2 + jitter})
    return rows


def sweep_summary_rows(normal_t=4.0, stingy_t=20.0) -> tuple[list[dict], list[dict]]:
    """The CIFAR sweep's summary.csv and rows.csv (stingy.empirical.sweep's columns): stingy
    KD at several k (T = ``stingy_t``) and seeds, two students, the temperature ablation
    (normal KD at ``stingy_t``, stingy KD at ``normal_t``), within-M and tail-bucket KD, KD
    from the Nasty Teacher, and a noisy-label setting."""
    summary, runs = [], []
    for model, noise in (("preresnet20", 0.0), ("cnn", 0.0), ("cnn", 0.4)):
        entries = [("scratch", "scratch", "", 0, math.nan, 0.90),
                   (f"kd-T{normal_t}", "normal_kd", "teacher", 0, normal_t, 0.91),
                   (f"kd-T{stingy_t}", "normal_kd", "teacher", 0, stingy_t, 0.905),
                   (f"stingy-r0.2-T{normal_t}", "stingy_kd", "teacher", 2, normal_t, 0.86),
                   (f"within-r0.2-T{stingy_t}", "within_m_kd", "teacher", 2, stingy_t, 0.89),
                   (f"bucket-r0.2-T{stingy_t}", "tail_bucket_kd", "teacher", 2, stingy_t, 0.895)]
        entries += [(f"stingy-r{k / 10}-T{stingy_t}", "stingy_kd", "teacher", k, stingy_t,
                     0.80 + 0.01 * k) for k in (1, 2, 5, 7)]
        if noise == 0:
            entries.append((f"kd-from-nasty-T{normal_t}", "normal_kd", "nasty", 0, normal_t,
                            0.87))
        for label, method, teacher, k, temperature, accuracy in entries:
            accuracy -= noise / 4
            ratio = k / 10 if k else math.nan
            summary.append({"noise": noise, "model": model, "label": label, "method": method,
                            "ratio": ratio, "temperature": temperature, "seeds": 3,
                            "accuracy_mean": accuracy, "accuracy_ci_low": accuracy - 0.01,
                            "accuracy_ci_high": accuracy + 0.01})
            for seed in range(3):
                runs.append({"model": model, "seed": seed, "noise": noise, "label": label,
                             "method": method, "teacher": teacher, "k": k or "",
                             "ratio": ratio, "temperature": temperature,
                             "test_accuracy": accuracy + 0.003 * seed})
    return summary, runs


SWEEP_TEACHERS = [{"id": "teacher-n0.0", "kind": "teacher", "noise": 0.0, "model": "cnn",
                   "test_accuracy": 0.81},
                  {"id": "nasty", "kind": "nasty", "noise": 0.0, "model": "cnn",
                   "test_accuracy": 0.78}]
PROBE_TEMPERATURES = (5.0, 20.0)


def gap_trajectory_rows(temperature=20.0) -> list[dict]:
    """Main training at ``temperature`` (phase train, prediction for the first 10 steps only)
    and the SGD probe (phase probe, PROBE_TEMPERATURES), as simulations/sweep.py writes
    them."""
    rows = []
    common = {"classes": 100, "noise": 0.0, "noise_kind": "symmetric", "method": "stingy_kd"}
    for ratio in (0.1, 0.5):
        for seed in (0, 1):
            for step in [*range(11), *range(25, 201, 25)]:
                rows.append({**common, "phase": "train", "step": step, "ratio": ratio,
                             "k": int(ratio * 100), "temperature": temperature, "seed": seed,
                             "logit_gap": 15 * (1 - math.exp(-step / 50)),
                             "predicted_gap": 0.3 * step if step <= 10 else math.nan})
    for probe in PROBE_TEMPERATURES:
        for step in range(11):
            rows.append({**common, "phase": "probe", "step": step, "ratio": 0.1, "k": 10,
                         "temperature": probe, "seed": 0, "logit_gap": 0.011 * probe * step,
                         "predicted_gap": 0.01 * probe * step})
    return rows


VERDICTS = [
    {"check": "u_shape", "statement": "stingy accuracy is lowest at an intermediate r",
     "predicted": "minimum at 0.05 <= r <= 0.2", "measured": 0.1, "ci95": [0.05, 0.2],
     "verdict": "pass", "detail": "min at r=0.1", "noise": 0.2, "noise_kind": "symmetric"},
    {"check": "gap_matches", "statement": "logit gap tends to T(1-r)", "predicted": 18.0,
     "measured": 12.345, "ci95": [11.9, 12.8], "verdict": "fail", "detail": "gap saturates lower"},
]

DERIVATIONS = [
    {"statement_id": "T1", "statement": "p~ = p/m on M", "status": "proved symbolically",
     "detail": "sympy simplify"},
    {"statement_id": "T5", "statement": "signal <= bound", "status": "failed",
     "detail": "counterexample at T=0.5"},
]


def _gpu_run(model, method, accuracy, finished=True):
    return {"model": model, "method": method, "test_accuracy": accuracy, "epochs_done": 15,
            "epochs": 15, "finished": finished, "seconds": 40.0, "images_per_second": 41000.0,
            "flops_per_training_image": 2.5e8, "tflops_per_second": 10.25}


# The layout of empirical/gpu_check.py's gpu_check.json.
GPU_CHECK = {
    "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "torch": "2.13.0", "cuda": "12.8",
    "date": "2031-01-01T00:00:00+00:00", "commit": "abc123", "toy": False,
    "teacher": {**_gpu_run("resnet18", "scratch", 0.9512), "seconds": 321.5,
                "images_per_second": 25000.0, "tflops_per_second": 123.4,
                "recipe": "cifar10-teacher-fast",
                "time_to_93": {"epoch": 21, "train_seconds": 201.25}},
    "students": [_gpu_run("preresnet20", "scratch", 0.9123), _gpu_run("preresnet20", "normal_kd", 0.9187),
                 _gpu_run("preresnet20", "stingy_kd", 0.7712), _gpu_run("cnn", "scratch", 0.8401,
                                                                     finished=False)],
    "skipped": ["resnet18-stingy: budget spent"], "wall_seconds": 540.0}


def quick_summary_rows(normal_t=4.0, stingy_t=20.0) -> list[dict]:
    rows = [{"method": "scratch", "teacher": "", "student": "cnn", "k": 0, "ratio": 0.0,
             "temperature": "", "alpha": 0.9, "test_accuracy": 0.7012, "teacher_accuracy": "",
             "seconds": 60.0, "device": "cpu"},
            {"method": "normal_kd", "teacher": "resnet18", "student": "cnn", "k": 0, "ratio": 0.0,
             "temperature": normal_t, "alpha": 0.9, "test_accuracy": 0.7233,
             "teacher_accuracy": 0.81, "seconds": 70.0, "device": "cpu"}]
    for ratio, accuracy in ((0.1, 0.69), (0.2, 0.6411), (0.5, 0.70)):
        rows.append({"method": "stingy_kd", "teacher": "resnet18", "student": "cnn",
                     "k": int(ratio * 10), "ratio": ratio, "temperature": stingy_t, "alpha": 0.9,
                     "test_accuracy": accuracy, "teacher_accuracy": 0.81, "seconds": 70.0,
                     "device": "cpu"})
    return rows


def write_results(root: Path, quick=True, gpu=False, sweep=False, mechanism=True,
                  normal_t=4.0, stingy_t=20.0, simulation_t=20.0) -> Path:
    """A full synthetic results folder; ``quick=False`` leaves the CIFAR-10 files out,
    ``sweep=True`` adds a CIFAR sweep (several ratios and seeds), ``mechanism=False`` leaves
    the mechanism sweeps out. The CIFAR students are distilled at ``normal_t`` (normal KD)
    and ``stingy_t`` (stingy KD), the simulated ones at ``simulation_t``."""
    root = Path(root)
    write_csv(root / "theory/theory_grid.csv", theory_grid_rows())
    write_json(root / "theory/theory_grid.json", {"label": "synthetic logits",
                                                  "student_scale": 3.0, "seed": 0})
    write_json(root / "theory/derivations.json", DERIVATIONS)
    summary = simulation_summary_rows(temperature=simulation_t)
    write_csv(root / "simulations/summary.csv", summary)
    write_csv(root / "simulations/runs.csv", simulation_run_rows(summary))
    superclass = simulation_summary_rows(25.0, "superclass", simulation_t)
    write_csv(root / "simulations_superclass/summary.csv", superclass)
    write_json(root / "simulations_superclass/verdicts.json", VERDICTS[:1])
    if mechanism:
        write_csv(root / "mechanism/rows.csv", mechanism_rows())
    if sweep:
        sweep_summary, sweep_runs = sweep_summary_rows(normal_t, stingy_t)
        write_csv(root / "cifar10_sweep_gpu/summary.csv", sweep_summary)
        write_csv(root / "cifar10_sweep_gpu/rows.csv", sweep_runs)
        write_csv(root / "cifar10_sweep_gpu/teachers.csv", SWEEP_TEACHERS)
    write_csv(root / "simulations/gap_trajectory.csv", gap_trajectory_rows(simulation_t))
    write_json(root / "simulations/verdicts.json", VERDICTS)
    if quick:
        quick_dir = root / "cifar10_quick"
        rows = quick_summary_rows(normal_t, stingy_t)
        write_csv(quick_dir / "summary.csv", rows)
        write_json(quick_dir / "summary.json", {"rows": rows})
        write_csv(quick_dir / "teacher_theory.csv", theory_grid_rows(10, (1, 2, 5), students=False))
        generator = np.random.default_rng(0)
        normal = generator.normal(0, 3, (16, 10))
        stingy = normal.copy()
        stingy[stingy < np.sort(stingy, axis=1)[:, [-2]]] = -np.inf
        nasty = normal + generator.normal(0, 0.5, normal.shape)
        np.savez(quick_dir / "teacher_logits.npz", normal=normal, stingy=stingy, nasty=nasty,
                 labels=normal.argmax(axis=1), k=np.array(2),
                 class_names=np.array(["airplane", "automobile", "bird", "cat", "deer", "dog",
                                       "frog", "horse", "ship", "truck"]))
        run = quick_dir / "runs/stingy"
        write_json(run / "recipe.json", {"method": {"name": "stingy_kd", "ratio": 0.2,
                                                    "temperature": stingy_t}})
        for epoch in range(1, 6):
            t2, t1, t0 = 640.0, -50.0 * epoch, 10.0 * epoch
            append_jsonl(run / "metrics.jsonl", {
                "epoch": epoch, "logit_gap": 6.0 * epoch, "test_accuracy": 0.3 + 0.03 * epoch,
                "test_loss": 2.0 - 0.1 * epoch, "t4_exact": t2 + t1 + t0 + 1.0,
                "t4_order_t2": t2, "t4_order_t": t1, "t4_order_1": t0, "t4_remainder": 1.0})
        teacher = quick_dir / "runs/teacher"
        write_json(teacher / "recipe.json", {"method": {"name": "scratch"},
                                             "model": {"name": "cnn"}})
        for epoch in range(1, 4):
            append_jsonl(teacher / "metrics.jsonl", {"epoch": epoch,
                                                     "test_accuracy": 0.5 + 0.05 * epoch,
                                                     "test_loss": 1.5 - 0.1 * epoch})
    if gpu:
        write_json(root / "gpu_check.json", GPU_CHECK)
    return root
