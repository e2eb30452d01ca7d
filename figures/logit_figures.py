"""F6-F7: what the teachers' logits look like and what stingy KD does to the student's logits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from figures.inputs import group_mean, read_rows, require
from figures.style import FULL_WIDTH, GREY, SEQUENCE, TEACHER_COLOURS, save_figure
from figures.theory_figures import pick_evenly
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
    count = min(images, logits["normal"].shape[0])
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
    missing = "" if "nasty" in logits else " No nasty teacher was in the file: normal and stingy only."
    fig.suptitle(f"Teacher responses softmax(z/T), T={temperature:g}", y=1.0)
    paths = save_figure(fig, out_stem)
    caption = (f"Tempered teacher outputs softmax(z/T) at T={temperature:g} on {count} CIFAR-10 "
               "test images (columns; true class outlined). Rows: " + ", ".join(logits) +
               " teacher. The stingy teacher keeps only its top-k logits, so its output is zero "
               f"off the kept set and nearly flat on it at high T.{missing}")
    return {**paths, "caption": caption}


def _empirical_gap(metrics_jsonl):
    """(epochs, logit gaps, predicted gap or None) from a stingy student's metrics.jsonl; the
    prediction T(1-r) comes from the records or the run's recipe.json beside it."""
    path = require(metrics_jsonl, STINGY_LOG)
    records = [r for r in read_jsonl(path) if r.get("logit_gap") is not None]
    if not records:
        raise ValueError(f"{path} has no records with a logit_gap")
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    gaps = [r["logit_gap"] for r in records]
    predicted = records[-1].get("predicted_gap")
    recipe = Path(path).with_name("recipe.json")
    if predicted is None and recipe.is_file():
        method = json.loads(recipe.read_text()).get("method", {})
        ratio, temperature = method.get("ratio"), method.get("temperature")
        if method.get("k") and not ratio:
            ratio = method["k"] / 10  # the recipe's k on CIFAR-10 (K = 10)
        if ratio and temperature:
            predicted = temperature * (1 - ratio)
    return epochs, gaps, predicted


def draw_logit_gap(gap_trajectory_csv, out_stem, stingy_metrics_jsonl=None, max_lines=4) -> dict:
    """F7: the student's logit gap sbar_M - sbar_Mc during stingy KD against the prediction
    (simulations, clean labels, mean over seeds; and the empirical stingy run when given)."""
    rows = read_rows(gap_trajectory_csv, GAP_TRAJECTORY,
                     ("step", "noise", "method", "ratio", "temperature", "logit_gap",
                      "predicted_gap"))
    methods = {row["method"] for row in rows}
    method = "stingy_kd" if "stingy_kd" in methods else sorted(methods)[0]
    noise = min(row["noise"] for row in rows)
    rows = [row for row in rows if row["method"] == method and row["noise"] == noise]
    empirical = _empirical_gap(stingy_metrics_jsonl) if stingy_metrics_jsonl else None
    fig, axes = plt.subplots(1, 2 if empirical else 1,
                             figsize=(FULL_WIDTH if empirical else FULL_WIDTH * 0.6, 2.5),
                             squeeze=False)
    ax = axes[0][0]
    settings = sorted({(row["ratio"], row["temperature"]) for row in rows})
    for colour, (ratio, temperature) in zip(SEQUENCE, pick_evenly(settings, max_lines)):
        chosen = [row for row in rows if row["ratio"] == ratio and row["temperature"] == temperature]
        table = group_mean(chosen, ("step",), ("logit_gap", "predicted_gap"))
        steps = [row["step"] for row in table]
        ax.plot(steps, [row["logit_gap"] for row in table], color=colour,
                label=f"r={ratio:.0%}, T={temperature:g}")
        ax.plot(steps, [row["predicted_gap"] for row in table], color=colour, ls="--", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("student logit gap s_M - s_Mc")
    ax.set_title(f"Simulation ({'clean labels' if noise == 0 else f'noise {noise:g}'})")
    ax.legend(loc="best", title="solid: measured, dashed: predicted")
    note = ""
    if empirical:
        epochs, gaps, predicted = empirical
        right = axes[0][1]
        right.plot(epochs, gaps, color=SEQUENCE[1], marker="o", ms=3, label="measured")
        if predicted is not None:
            right.axhline(predicted, color=GREY, ls="--", lw=1, label=f"T(1-r) = {predicted:g}")
        right.set_xlabel("epoch")
        right.set_title("CIFAR-10 stingy student")
        right.legend(loc="best")
        note = " Right: the CIFAR-10 stingy student (quick profile) per epoch."
    paths = save_figure(fig, out_stem)
    caption = ("Mean student logit on the teacher's kept set minus on the dropped set during "
               f"{method.replace('_', ' ')} training (solid; simulation mean over seeds) against the "
               f"prediction (dashed).{note}")
    return {**paths, "caption": caption}
