"""The synthetic-task sweep as a library function: :func:`run_sweep` (``stingy simulate``).

Files written to ``out`` (atomically, via stingy.io):
  runs.csv / runs.json    one row per trained student: classes, noise, noise_kind, temperature,
                          alpha, method, ratio (NaN for dense methods), k, seed, accuracy,
                          log_loss, excess_log_loss (over the Bayes log-loss on the same clean test
                          set), teacher_agreement, accuracy_within_m (argmax over the teacher's M
                          equals the clean label, among test examples whose label is in M),
                          kept_mass (T2), signal_to_drive (T5), final_logit_gap (sbar_M - sbar_Mc
                          on the test set), plus bayes_accuracy, bayes_log_loss,
                          teacher_accuracy, teacher, noise_rate_realised. The last four sparse
                          metrics are NaN for methods without a kept set.
  summary.csv             per (noise, noise_kind, method, ratio): n_seeds, accuracy_mean,
                          accuracy_ci95_low/high (Student t over seeds), other metrics' means,
                          bayes_accuracy, teacher_accuracy.
  gap_trajectory.csv      step, noise, noise_kind, method, ratio, k, temperature, seed, phase
                          (train: the main students), logit_gap,
                          predicted_gap (the early drive prediction, see stingy.simulations.sweep).
  drive_rates.csv         per (seed, temperature, ratio, kept_sets true/shuffled): measured_rate
                          (first-step change of the probe gap / lr), predicted_rate (eNTK drive
                          with kept-set overlap), free_logit_rate (a T / k), mean_overlap
                          (stingy.simulations.drive_rate).
  verdicts.json           [{check, statement, predicted, measured, ci95, verdict, p_value, p_holm,
                          verdict_raw, verdict_holm, detail, noise, noise_kind}]: a, b, c-T,
                          c-eNTK, c-overlap, d per noise setting, e-noise across settings at equal
                          kept mass; Holm over the family.
  config.json             the exact settings, the setting hashes and the wall time.
  settings/<hash>.json    one finished noise setting; reused when --out is run again.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from stingy.io import write_csv, write_json
from stingy.progress import bar_disabled
from stingy.simulations.config import SimulationConfig, read_setting, setting_hash
from stingy.simulations.summary import summarize
from stingy.simulations.sweep import run_setting, student_specs
from stingy.simulations.training import SPARSE_METHODS
from stingy.simulations.verdicts import all_verdicts


def run_sweep(config: SimulationConfig, out: str | Path = "runs/simulate",
              progress: bool = True) -> dict:
    """Run (or reuse) every noise setting of ``config`` (from
    :func:`stingy.simulations.config.load_config`), write all files into ``out`` and return
    {"runs", "summary", "verdicts", "wall_time_s"}. ``progress``: a progress bar (on a
    terminal only, stingy.progress)."""
    out = Path(out)
    start = time.time()
    noise_settings = [(rate, kind) for kind in config.noise.kinds for rate in config.noise.rates]
    steps = config.student.steps  # the progress bar counts training steps
    runs, trajectory, rates, hashes = [], [], [], {}
    bar = tqdm(total=len(noise_settings) * steps, desc="simulate", unit="step",
               disable=bar_disabled(progress))
    for rate, kind in noise_settings:
        key = setting_hash(config, rate, kind)
        hashes[f"{kind}:{rate}"] = key
        path = out / "settings" / f"{key}.json"
        result = read_setting(path)
        if result is not None:
            bar.update(steps)
        else:
            bar.set_postfix_str(f"noise {rate} {kind}")
            result = run_setting(config, rate, kind, bar)
            write_json(path, result)
        runs += result["runs"]
        trajectory += result["gap_trajectory"]
        rates += result["drive_rates"]
    bar.close()
    ratio = config.intermediate_ratio
    verdicts = all_verdicts(runs, rates, ratio, config.checks.recovery_fraction,
                            config.checks.no_deficit_tolerance)
    summary = summarize(runs)
    write_csv(out / "runs.csv", runs)
    write_json(out / "runs.json", runs)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "gap_trajectory.csv", trajectory)
    write_csv(out / "drive_rates.csv", rates)
    write_json(out / "verdicts.json", verdicts)
    write_json(out / "config.json", {
        "config": config.to_table(), "setting_hashes": hashes, "intermediate_ratio": ratio,
        "students_per_setting": len(student_specs(config)), "wall_time_s": time.time() - start,
        "torch_threads": torch.get_num_threads(),
        "sparse_methods": list(SPARSE_METHODS)})
    return {"runs": runs, "summary": summary, "verdicts": verdicts,
            "wall_time_s": time.time() - start}


def format_verdicts(verdicts: list[dict]) -> str:
    """One paragraph per verdict: check, verdict, setting, prediction and measurement."""
    lines = []
    for v in verdicts:
        low, high = v["ci95"]
        setting = (f" noise {v['noise']} {v['noise_kind']}" if "noise" in v else "")
        lines.append(f"({v['check']}) [{v['verdict'].upper()}]{setting}: {v['statement']}; "
                     f"predicted {v['predicted']}, "
                     f"measured {v['measured']:.4f} [{low:.4f}, {high:.4f}]\n      {v['detail']}")
    return "\n".join(lines)


def failed_checks(verdicts: list[dict]) -> list[dict]:
    """The verdicts that did not pass."""
    return [v for v in verdicts if v["verdict"] == "fail"]
