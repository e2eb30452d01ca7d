"""summary.csv: one row per (noise, noise_kind, method, ratio) with seed means and t-intervals."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from stingy.intervals import t_interval

MEAN_METRICS = ("log_loss", "excess_log_loss", "teacher_agreement", "accuracy_within_m",
                "kept_mass", "signal_to_drive", "final_logit_gap")


def _ratio_key(ratio) -> float:
    ratio = float(ratio)
    return -1.0 if math.isnan(ratio) else ratio


def summarize(run_rows: list[dict]) -> list[dict]:
    """Seed means per group; accuracy with its 95% Student-t interval over seeds."""
    groups = defaultdict(list)
    for row in run_rows:
        groups[float(row["noise"]), row["noise_kind"], row["method"],
               _ratio_key(row["ratio"])].append(row)
    order = {m: i for i, m in enumerate(("scratch", "normal_kd", "stingy_kd", "reversed_kd",
                                         "within_m_kd", "label_smoothing", "tail_bucket_kd"))}
    summary = []
    for key in sorted(groups, key=lambda k: (k[1], k[0], order.get(k[2], 99), k[3])):
        rows = groups[key]
        mean, low, high = t_interval([r["accuracy"] for r in rows])
        summary.append({
            "noise": key[0], "noise_kind": key[1], "method": key[2],
            "ratio": rows[0]["ratio"], "k": rows[0]["k"], "temperature": rows[0]["temperature"],
            "n_seeds": len(rows), "accuracy_mean": mean, "accuracy_ci95_low": low,
            "accuracy_ci95_high": high,
            **{f"{m}_mean": float(np.mean([r[m] for r in rows])) for m in MEAN_METRICS},
            "bayes_accuracy": rows[0]["bayes_accuracy"],
            "teacher_accuracy": rows[0]["teacher_accuracy"],
        })
    return summary


def _optional(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"


def format_table(summary: list[dict]) -> str:
    """A fixed-width text table of the summary (accuracy in %, with the 95% interval)."""
    lines = [f"{'noise':>6} {'kind':<10} {'method':<16} {'r':>5} {'k':>4} "
             f"{'acc %':>6} {'95% CI':>15} {'excess LL':>9} {'m':>6} {'sig/drv':>7}"]
    for row in summary:
        ratio = "" if math.isnan(float(row["ratio"])) else f"{float(row['ratio']):g}"
        lines.append(
            f"{row['noise']:>6g} {row['noise_kind']:<10} {row['method']:<16} {ratio:>5} "
            f"{row['k']:>4} {100 * row['accuracy_mean']:6.1f} "
            f"[{100 * row['accuracy_ci95_low']:5.1f}, {100 * row['accuracy_ci95_high']:5.1f}] "
            f"{row['excess_log_loss_mean']:9.3f} "
            f"{_optional(row['kept_mass_mean']):>6} {_optional(row['signal_to_drive_mean']):>7}")
    return "\n".join(lines)
