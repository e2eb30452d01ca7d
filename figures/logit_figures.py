"""F6-F7: what the teachers' logits look like and what stingy KD does to the student's logits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from stingy.figures.inputs import group_mean, read_rows, require
from stingy.figures.style import FULL_WIDTH, GREY, SEQUENCE, TEACHER_COLOURS, save_figure
from stingy.figures.theory_figures import pick_evenly
from stingy.io import read_jsonl

TEACHER_LOGITS = "teachers' test logits, written by `stingy quick`"
GAP_TRAJECTORY = "student logit-gap trajectories, written by `stingy simulate`"
STINGY_LOG = "a stingy student's per-epoch metrics (metrics.jsonl), written by `stingy quick`"
TEACHERS = ("normal", "nasty", "stingy")


def _teacher_logits(archive, name):
    for key in (name, f"{name}_logits", f"{name}_teacher"):
        if key in archive.files:
            return np.asarray(archive[key], dtype=np.float64)
    return None


def tempered_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(z/T) over the last axis; -inf logits (a stingy teacher's dropped classes) get 0."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    weights = np.exp(scaled)
    return weights / weights.sum(axis=-1, keepdims=True)


def distinct_label_images(labels, available: int, count: int) -> list[int]:
    """Indices of up to ``count`` images, the first image of each label first (test sets are
    often sorted by class), then the remaining images in order."""
    if labels is None:
        return list(range(min(count, available)))
    first = list({int(label): index for index, label in reversed(list(enumerate(labels)))}.values())
    order = sorted(first) + [i for i in range(available) if i not in first]
    return order[:count]


def draw_logit_responses(teacher_logits_npz, out_stem, images=4, temperature=None) -> dict:
    """F6: bar charts of softmax(z/T) per class for a normal, a nasty (if in the file) and a
    stingy teacher on a few test images (rows: teachers, columns: images)."""
    path = require(teacher_logits_npz, TEACHER_LOGITS)
    with np.load(path, allow_pickle=False) as archive:
        logits = {name: _teacher_logits(archive, name) for name in TEACHERS}
        logits = {name: value for name, value in logits.items() if value is not None}
        if "normal" not in logits or "stingy" not in logits:
            raise ValueError(f"{path} must hold 'normal' and 'stingy' logit arrays, has "
                             f"{', '.join(archive.files)}")
        labels = np.asarray(archive["labels"]) if "labels" in archive.files else None
        names = ([str(n) for n in archive["class_names"]] if "class_names" in archive.files
                 else [str(i) for i in range(logits["normal"].shape[-1])])
        if temperature is None:
            temperature = float(archive["temperature"]) if "temperature" in archive.files else 4.0
    shown = distinct_label_images(labels, logits["normal"].shape[0], images)
    logits = {name: values[shown] for name, values in logits.items()}
    labels = labels[shown] if labels is not None else None
    count = len(shown)
    fig, axes = plt.subplots(len(logits), count, figsize=(FULL_WIDTH, 1.25 * len(logits) + 0.6),
                             sharex=True, sharey=True, squeeze=False)
    classes = np.arange(len(names))
    for row, (teacher, values) in enumerate(logits.items()):
        probabilities = tempered_softmax(values[:count], temperature)
        for column in range(count):
            ax = axes[row][column]
            colours = [TEACHER_COLOURS[teacher]] * len(names)
            bars = ax.bar(classes, probabilities[column], color=colours, width=0.8)
            if labels is not None:
                bars[int(labels[column])].set_edgecolor("black")
                bars[int(labels[column])].set_linewidth(1.0)
            ax.set_ylim(0, 1)
            if column == 0:
                ax.set_ylabel(f"{teacher}\nsoftmax(z/T)")
            if row == 0 and labels is not None:
                ax.set_title(f"true: {names[int(labels[column])]}")
    for ax in axes[-1]:
        ax.set_xticks(classes, names, rotation=90)
    missing = ("" if "nasty" in logits
               else " No nasty teacher was in the file: normal and stingy only.")
    fig.suptitle(f"Teacher responses softmax(z/T), T={temperature:g}")
    paths = save_figure(fig, out_stem)
    caption = (f"Tempered teacher outputs softmax(z/T) at T={temperature:g} on {count} CIFAR-10 "
               "test images (columns; true class outlined). Rows: " + ", ".join(logits) +
               " teacher. The stingy teacher keeps only its top-k logits, so its output is zero "
               f"off the kept set and nearly flat on it at high T.{missing}")
    return {**paths, "caption": caption}


def _empirical_gap(metrics_jsonl):
    """(epochs, logit gaps) from a CIFAR-10 stingy student's metrics.jsonl."""
    path = require(metrics_jsonl, STINGY_LOG)
    records = [r for r in read_jsonl(path) if r.get("logit_gap") is not None]
    if not records:
        raise ValueError(f"{path} has no records with a logit_gap")
    return [r.get("epoch", i + 1) for i, r in enumerate(records)], [r["logit_gap"] for r in records]


def _gap_lines(ax, rows, key, label, max_lines):
    """Mean over seeds of logit_gap (solid) and predicted_gap (dashed) against step, one colour
    per value of ``key``."""
    for colour, value in zip(SEQUENCE, pick_evenly(sorted({row[key] for row in rows}), max_lines)):
        table = group_mean([row for row in rows if row[key] == value], ("step",),
                           ("logit_gap", "predicted_gap"))
        steps = np.array([row["step"] for row in table])
        ax.plot(steps, [row["logit_gap"] for row in table], color=colour, label=label(value))
        ax.plot(steps, [row["predicted_gap"] for row in table], color=colour, ls="--", lw=1.2)
    ax.set_xlabel("training step")


def draw_logit_gap(gap_trajectory_csv, out_stem, stingy_metrics_jsonl=None, max_lines=4) -> dict:
    """F7: the student's logit gap sbar_M - sbar_Mc under stingy KD (simulations, lowest noise,
    mean over seeds) against the early-drive prediction: the SGD probe at several T (when the
    file has a probe phase), the main training over r, and the CIFAR-10 stingy student's gap
    per epoch when ``stingy_metrics_jsonl`` is given."""
    rows = read_rows(gap_trajectory_csv, GAP_TRAJECTORY,
                     ("step", "noise", "method", "ratio", "temperature", "logit_gap",
                      "predicted_gap"))
    noise = min(row["noise"] for row in rows)
    rows = [row for row in rows if row["method"] == "stingy_kd" and row["noise"] == noise]
    if not rows:
        raise ValueError(f"{gap_trajectory_csv} has no stingy_kd rows")
    probe = [row for row in rows if row.get("phase") == "probe"]
    train = [row for row in rows if row.get("phase", "train") == "train"]
    empirical = _empirical_gap(stingy_metrics_jsonl) if stingy_metrics_jsonl else None
    panels = ["probe"] * bool(probe) + ["train"] * bool(train) + ["cifar"] * bool(empirical)
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(FULL_WIDTH * min(1.0, 0.4 * len(panels) + 0.2), 2.6))
    axes = dict(zip(panels, axes[0]))
    noise_text = "clean labels" if noise == 0 else f"label noise {noise:g}"
    if probe:
        ratio = _middle(sorted({row["ratio"] for row in probe}))
        chosen = [row for row in probe if row["ratio"] == ratio]
        _gap_lines(axes["probe"], chosen, "temperature", lambda t: f"T={t:g}", max_lines)
        axes["probe"].set_title(f"SGD drive probe, r={ratio:.0%}")
        axes["probe"].legend(loc="upper left")
    if train:
        temperature = _middle(sorted({row["temperature"] for row in train}))
        chosen = [row for row in train if row["temperature"] == temperature]
        _gap_lines(axes["train"], chosen, "ratio", lambda r: f"r={r:.0%}", max_lines)
        axes["train"].set_xscale("symlog", linthresh=10, linscale=0.8)
        axes["train"].set_title(f"Training, T={temperature:g}, {noise_text}")
        axes["train"].legend(loc="best")
    fig.legend([Line2D([], [], color=GREY), Line2D([], [], color=GREY, ls="--", lw=1.2)],
               ["measured (mean over seeds)", "early-drive prediction"],
               loc="outside lower center", ncol=2)
    axes[panels[0]].set_ylabel(r"student logit gap $\bar s_M - \bar s_{M^c}$")
    note = ""
    if empirical:
        epochs, gaps = empirical
        axes["cifar"].plot(epochs, gaps, color=SEQUENCE[1], marker="o", ms=3)
        axes["cifar"].set_xlabel("epoch")
        axes["cifar"].set_title("CIFAR-10 stingy student")
        note = (" Right: the CIFAR-10 stingy student's gap on test images per epoch (no "
                "prediction is drawn: the linear drive prediction holds for the first steps only).")
    paths = save_figure(fig, out_stem)
    probe_text = (" Left: stingy students trained by plain SGD for a few steps at several T, "
                  "whose early growth the drive predicts to be linear with rate kappa a T/k lr."
                  if probe else "")
    caption = ("Mean student logit on the teacher's kept set M minus on the dropped set during "
               f"stingy KD in the simulations ({noise_text}; solid: measured, mean over seeds; "
               "dashed: the early-drive prediction gap(0) + kappa a T/k lr step, given for the "
               "first steps only; the training panel's step axis is linear up to 10, then "
               f"log).{probe_text}{note}")
    return {**paths, "caption": caption}


def _middle(values):
    return values[len(values) // 2]
