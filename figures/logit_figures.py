"""Logit figures: F6 (teacher responses), F7 (the simulated student's logit gap against the
early-drive prediction), the CIFAR stingy student's T4 terms and logit gap per epoch, and the
mechanism diagram (dense target, sparse target, drive and signal on one example, computed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from stingy.figures.captions import failing_text, mechanism_setting
from stingy.figures.inputs import group_mean, read_rows, require, source_name
from stingy.figures.style import (
    BLACK,
    FULL_WIDTH,
    GREY,
    TEACHER_METHODS,
    method_colour,
    method_label,
    ratio_colour,
    ratio_label,
    ratio_legend,
    save_figure,
)
from stingy.intervals import t_interval
from stingy.io import read_jsonl

TEACHER_LOGITS = "teachers' test logits, written by `stingy quick`"
GAP_TRAJECTORY = "student logit-gap trajectories, written by `stingy simulate`"
MECHANISM_ROWS = "mechanism sweep rows, written by the simulations' mechanism sweeps"
STINGY_LOG = "a stingy student's per-epoch metrics (metrics.jsonl)"
TEACHERS = ("normal", "nasty", "stingy")
T4_TERMS = ("t4_order_t2", "t4_order_t", "t4_order_1")


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


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) = sum_i p_i log(p_i / q_i) over the last axis (0 log 0 = 0)."""
    safe = np.where(p > 0, p, 1.0)
    return np.sum(np.where(p > 0, p * (np.log(safe) - np.log(q)), 0.0), axis=-1)


def distinct_label_images(labels, available: int, count: int) -> list[int]:
    """Indices of up to ``count`` images, the first image of each label first (test sets are
    often sorted by class), then the remaining images in order."""
    if labels is None:
        return list(range(min(count, available)))
    first = list({int(label): index for index, label in reversed(list(enumerate(labels)))}.values())
    order = sorted(first) + [i for i in range(available) if i not in first]
    return order[:count]


def load_teacher_logits(path):
    """(logits by teacher, labels or None, class names, k or None) from teacher_logits.npz."""
    path = require(path, TEACHER_LOGITS)
    with np.load(path, allow_pickle=False) as archive:
        logits = {name: _teacher_logits(archive, name) for name in TEACHERS}
        logits = {name: value for name, value in logits.items() if value is not None}
        if "normal" not in logits or "stingy" not in logits:
            raise ValueError(f"{path} must hold 'normal' and 'stingy' logit arrays, has "
                             f"{', '.join(archive.files)}")
        labels = np.asarray(archive["labels"]) if "labels" in archive.files else None
        names = ([str(n) for n in archive["class_names"]] if "class_names" in archive.files
                 else [str(i) for i in range(logits["normal"].shape[-1])])
        k = int(archive["k"]) if "k" in archive.files else None
    return logits, labels, names, k


def draw_logit_responses(teacher_logits_npz, out_stem, temperatures, images=4,
                         teacher_label="the trained teacher") -> dict:
    """F6: softmax(z/T) per class for the normal, nasty (if in the file) and stingy teacher on
    a few test images, each row at the temperature the run distilled its students at
    (``temperatures``: teacher -> T, normal and stingy required). A teacher no student learnt
    from (no entry) is drawn at the normal teacher's temperature, and the caption says so."""
    logits, labels, names, k = load_teacher_logits(teacher_logits_npz)
    missing = [name for name in ("normal", "stingy") if name not in temperatures]
    if missing:
        raise ValueError(f"no distillation temperature for the {' and '.join(missing)} teacher")
    unused = [name for name in logits if name not in temperatures]
    temperatures = {name: temperatures.get(name, temperatures["normal"]) for name in logits}
    shown = distinct_label_images(labels, logits["normal"].shape[0], images)
    count = len(shown)
    fig, axes = plt.subplots(len(logits), count, figsize=(FULL_WIDTH, 1.25 * len(logits) + 0.7),
                             sharex=True, sharey=True, squeeze=False)
    classes = np.arange(len(names))
    for row, (teacher, values) in enumerate(logits.items()):
        probabilities = tempered_softmax(values[shown], temperatures[teacher])
        colour = method_colour(TEACHER_METHODS[teacher])
        for column in range(count):
            ax = axes[row][column]
            bars = ax.bar(classes, probabilities[column], color=colour, width=0.8)
            if labels is not None:
                bars[int(labels[shown[column]])].set_edgecolor(BLACK)
                bars[int(labels[shown[column]])].set_linewidth(1.0)
            ax.set_ylim(0, 1)
            if column == 0:
                student = " (no student)" if teacher in unused else ""
                ax.set_ylabel(f"{teacher}{student}, T={temperatures[teacher]:g}\n"
                              r"$\mathrm{softmax}(z/T)$")
            if row == 0 and labels is not None:
                ax.set_title(f"true: {names[int(labels[shown[column]])]}")
    for ax in axes[-1]:
        ax.set_xticks(classes, names, rotation=90)
    nasty_text = " No nasty teacher was in the file: normal and stingy only."
    if "nasty" in logits:
        t = temperatures["nasty"]
        divergence = kl_divergence(tempered_softmax(logits["nasty"], t),
                                   tempered_softmax(logits["normal"], t))
        agree = float(np.mean(logits["nasty"].argmax(-1) == logits["normal"].argmax(-1)))
        nasty_text = (f" The nasty row is measured, not idealised: over all "
                      f"{len(divergence)} stored test images KL(nasty || normal) at T={t:g} is "
                      f"{np.mean(divergence):.3g} on average (max {np.max(divergence):.3g}) and "
                      f"the two agree on the top class for {agree:.0%} of them, so a nasty row "
                      "that looks like the normal one is what this teacher does.")
    record = save_figure(fig, out_stem)
    k_text = f"k={k}" if k is not None else "its top-k"
    unused_text = "".join(f" No student of this run learnt from the {name} teacher, so its row "
                          f"is drawn at the normal teacher's T={temperatures[name]:g}."
                          for name in unused)
    record["caption"] = (
        f"Tempered outputs softmax(z/T) of {teacher_label} on {count} CIFAR-10 test images "
        f"({source_name(teacher_logits_npz)}; columns, true class outlined). Each row is drawn "
        "at the temperature the run distilled its students at: "
        + ", ".join(f"{t} T={temperatures[t]:g}" for t in logits if t not in unused)
        + f".{unused_text} The stingy teacher keeps {k_text} logits, so its output is zero off "
        f"the kept set and close to flat on it at T={temperatures['stingy']:g}." + nasty_text)
    return record


# --- F7 ---

def early_ratio(rows) -> float:
    """Measured over predicted gap growth over the steps the prediction covers (mean over
    seeds): (gap(s_end) - gap(0)) / (pred(s_end) - pred(0))."""
    predicted = [row for row in rows if not math.isnan(row["predicted_gap"])]
    if not predicted:
        return math.nan
    last = max(row["step"] for row in predicted)
    table = {row["step"]: row for row in group_mean(predicted, ("step",),
                                                     ("logit_gap", "predicted_gap"))}
    first = min(table)
    rise = table[last]["predicted_gap"] - table[first]["predicted_gap"]
    return (table[last]["logit_gap"] - table[first]["logit_gap"]) / rise if rise else math.nan


def _seed_band(rows):
    """(steps, low, high): the 95% t-interval of the logit gap over seeds at each step."""
    by_step = {}
    for row in rows:
        by_step.setdefault(row["step"], []).append(row["logit_gap"])
    steps = sorted(by_step)
    bounds = [t_interval(by_step[step])[1:] for step in steps]
    return np.array(steps, dtype=float), [b[0] for b in bounds], [b[1] for b in bounds]


def _gap_lines(ax, rows, key, style_of, label_of, colour_of):
    """Measured gap (mean over seeds, with its 95% band where there are several seeds) and
    the prediction (dashed), one series per value of ``key``; returns measured/predicted
    growth per value."""
    ratios = {}
    for value in sorted({row[key] for row in rows}):
        chosen = [row for row in rows if row[key] == value]
        table = group_mean(chosen, ("step",), ("logit_gap", "predicted_gap"))
        steps = np.array([row["step"] for row in table], dtype=float)
        colour, marker = colour_of(value), style_of(value)
        ax.plot(steps, [row["logit_gap"] for row in table], color=colour, marker=marker, ms=2.5,
                label=label_of(value))
        band_steps, low, high = _seed_band(chosen)
        if np.any(np.isfinite(low)):
            ax.fill_between(band_steps, low, high, color=colour, alpha=0.2, lw=0)
        ax.plot(steps, [row["predicted_gap"] for row in table], color=colour, ls="--", lw=1.1,
                marker=marker, ms=2.5, mfc="white")
        ratios[value] = early_ratio(chosen)
    return ratios


def _mechanism_gaps(ax, rows_csv, run_json, letter) -> str:
    """The last panel of F7: the logit gap of normal KD and stingy KD (with and without labels)
    after the mechanism run's short and long training (the cases that differ in steps only),
    mean over task draws x seeds with 95% t-intervals; returns its caption."""
    rows = read_rows(rows_csv, MECHANISM_ROWS, ("case", "method", "steps", "hidden",
                                                "train_size", "k", "logit_gap"))
    base = next(r for r in rows if r["case"] == "long")
    rows = [r for r in rows if (r["hidden"], r["train_size"]) == (base["hidden"],
                                                                   base["train_size"])]
    parts = []
    for method in ("normal_kd", "stingy_kd", "stingy_kd_alpha1"):
        steps = sorted({r["steps"] for r in rows if r["method"] == method})
        if not steps:
            continue
        stats = [t_interval([r["logit_gap"] for r in rows
                             if r["method"] == method and r["steps"] == step]) for step in steps]
        means = [m for m, _, _ in stats]
        no_labels = method == "stingy_kd_alpha1"
        ax.errorbar(steps, means, yerr=[[m - lo for m, lo, _ in stats],
                                        [hi - m for m, _, hi in stats]],
                    color=method_colour(method), marker="o", ms=3.5, capsize=2,
                    ls="--" if no_labels else "-", mfc="white" if no_labels else None,
                    label=method_label(method))
        parts.append(f"{method_label(method)} " + ", ".join(
            f"{m:.3g} after {step:g} steps" for m, step in zip(means, steps)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    steps = sorted({r["steps"] for r in rows})
    ax.set_xticks(steps, [f"{step:g}" for step in steps])
    ax.minorticks_off()
    ax.set_xlim(steps[0] / 1.5, steps[-1] * 1.5)
    ax.set_xlabel("training steps (log scale)")
    ax.set_title(f"{letter} normal against stingy KD")
    setting = mechanism_setting(run_json)
    return (f"{letter} Normal KD's logit gap on the teacher's top k={base['k']:g} beside "
            f"stingy KD's, from the mechanism run ({source_name(rows_csv)}"
            + (f"; {setting}" if setting else "") + "; mean over task draws x seeds, 95% "
            "t-intervals; its files do not record the temperature): " + "; ".join(parts)
            + ". The simulations record the gap trajectory of the sparse targets only, so "
            "normal KD's gap comes from this run.")


def draw_logit_gap(gap_trajectory_csv, out_stem, verdicts_json=None, mechanism_csv=None,
                   run_json=None, mechanism_verdicts_json=None) -> dict:
    """F7: the student's logit gap sbar_M - sbar_Mc under stingy KD (simulations, lowest noise,
    mean over seeds) against the early-drive prediction: the SGD probe at several T (linear
    step axis) and the main training over r (log-log axes, step >= 1, so that the prediction
    over the first steps shows); with ``mechanism_csv``, normal KD's gap beside stingy KD's
    after the mechanism run's short and long training."""
    rows = read_rows(gap_trajectory_csv, GAP_TRAJECTORY,
                     ("step", "noise", "method", "ratio", "temperature", "logit_gap",
                      "predicted_gap"))
    noise = min(row["noise"] for row in rows)
    rows = [row for row in rows if row["method"] == "stingy_kd" and row["noise"] == noise]
    if not rows:
        raise ValueError(f"{gap_trajectory_csv} has no stingy_kd rows")
    probe = [row for row in rows if row.get("phase") == "probe"]
    train = [row for row in rows if row.get("phase", "train") == "train"]
    panels = ["probe"] * bool(probe) + ["train"] * bool(train) + ["normal"] * bool(mechanism_csv)
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(FULL_WIDTH, 2.8),
                             gridspec_kw={"width_ratios": [1.6 if p == "train" else 1
                                                           for p in panels]})
    axes = dict(zip(panels, axes[0]))
    noise_text = "clean labels" if noise == 0 else f"label noise {noise:g}"
    letters = {panel: f"({'abc'[index]})" for index, panel in enumerate(panels)}
    parts = []
    if probe:
        ratio = sorted({row["ratio"] for row in probe})[len({row["ratio"] for row in probe}) // 2]
        chosen = [row for row in probe if row["ratio"] == ratio]
        markers = dict(zip(sorted({row["temperature"] for row in chosen}), "os^Dv<>"))
        ratios = _gap_lines(axes["probe"], chosen, "temperature", markers.get,
                            lambda t: f"T={t:g}", lambda _: ratio_colour(ratio))
        axes["probe"].set_title(f"{letters['probe']} SGD drive probe, {ratio_label(ratio)}")
        axes["probe"].set_xlabel("training step (linear)")
        axes["probe"].legend(loc="upper left", title="temperature (marker)")
        parts.append(f"{letters['probe']} The SGD drive probe at {ratio_label(ratio)}, "
                     "measured/predicted growth: " + ", ".join(
                         f"T={t:g}: {v:.2g}x" for t, v in ratios.items()) + ".")
    if train:
        temperature = sorted({row["temperature"] for row in train})[
            len({row["temperature"] for row in train}) // 2]
        chosen = [row for row in train if row["temperature"] == temperature and row["step"] >= 1]
        ratios = _gap_lines(axes["train"], chosen, "ratio", lambda _: None, ratio_label,
                            ratio_colour)
        axes["train"].set_xscale("log")
        axes["train"].set_yscale("log")
        axes["train"].set_xlabel("training step (log scale, from step 1)")
        axes["train"].set_title(f"{letters['train']} stingy KD, T={temperature:g}, {noise_text}")
        ratio_legend(fig, [axes["train"]])
        parts.append(f"{letters['train']} Stingy KD in the simulations "
                     f"({source_name(gap_trajectory_csv)}, {noise_text}, T={temperature:g}, "
                     "log-log axes), measured/predicted growth over the predicted steps: "
                     + ", ".join(f"{ratio_label(r)}: {v:.2g}x" for r, v in ratios.items()) + ".")
    if mechanism_csv:
        parts.append(_mechanism_gaps(axes["normal"], mechanism_csv, run_json, letters["normal"]))
    for panel, ax in axes.items():
        ax.set_ylabel(r"student logit gap $\bar s_M - \bar s_{M^c}$"
                      + ("" if panel == "probe" else " (log scale)"))
    handles = [Line2D([], [], color=GREY), Line2D([], [], color=GREY, ls="--", lw=1.1)]
    labels = ["measured (mean over seeds)", "early-drive prediction"]
    if mechanism_csv:
        for handle, label in zip(*axes["normal"].get_legend_handles_labels()):
            handles.append(handle)
            labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3))
    record = save_figure(fig, out_stem)
    record["caption"] = (
        "The student's mean logit on the teacher's kept set M minus on the dropped set. Solid: "
        "measured, mean over seeds with 95% t-bands where there are several; dashed: the "
        "early-drive prediction gap(0) + kappa a T/k lr step, defined for the first steps "
        "only; colour = sparse ratio. " + " ".join(parts) + " A factor far from 1x means the "
        "prediction misses the measurement by that factor." + failing_text(verdicts_json, ("c",))
        + (failing_text(mechanism_verdicts_json, ("P1",), "mechanism") if mechanism_csv else ""))
    return record


# --- T4 terms and logit gap per epoch on CIFAR ---

def _metrics(path):
    records = [r for r in read_jsonl(require(path, STINGY_LOG)) if r.get("t4_exact") is not None
               or r.get("logit_gap") is not None]
    if not records:
        raise ValueError(f"{path} has no records with t4_exact or logit_gap")
    return records


def draw_cifar_t4_terms(runs: list, out_stem) -> dict:
    """Per epoch of each CIFAR stingy run (``runs``: (name, metrics.jsonl, recipe dict)): the
    T4 terms of T^2 KL(p~ || q) (order T^2, the order-T drive, order 1, remainder), the exact
    value against the expansion, and the student's logit gap against T (the expansion assumes
    the student's logit range is small against T). Colour = sparse ratio; runs sharing a
    ratio (seeds, students) share a colour and one legend entry. Legends sit below the
    panels."""
    fig, axes = plt.subplots(1, 3, figsize=(FULL_WIDTH, 2.9))
    terms_ax, exact_ax, gap_ax = axes
    parts, labelled = [], set()
    count = {}
    for _, _, recipe in runs:
        ratio = recipe.get("method", {}).get("ratio", math.nan)
        count[ratio] = count.get(ratio, 0) + 1
    term_styles = (("t4_order_t2", "--", r"$T^2 \log(K/k)$"), ("t4_order_t", "-.", "order T: drive"),
                   ("t4_order_1", ":", "order 1"), ("t4_remainder", (0, (1, 3)), "remainder"))
    for name, path, recipe in runs:
        method = recipe.get("method", {})
        ratio, temperature = method.get("ratio", math.nan), method.get("temperature", math.nan)
        colour = ratio_colour(ratio) if ratio and not math.isnan(ratio) else GREY
        first = ratio not in labelled
        labelled.add(ratio)
        label = (f"{ratio_label(ratio)}, T={temperature:g}"
                 + (f", {count[ratio]} runs" if count[ratio] > 1 else "")) if first else None
        records = _metrics(path)
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
        short = Path(name).name
        if all(r.get("t4_exact") is not None for r in records):
            for column, style, term in term_styles:
                values = [r.get(column, math.nan) for r in records]
                terms_ax.plot(epochs, values, color=colour, ls=style,
                              label=term if first and len(labelled) == 1 else None)
            exact = np.array([r["t4_exact"] for r in records])
            expansion = np.array([sum(r[t] for t in T4_TERMS) for r in records])
            exact_ax.plot(epochs, exact, color=colour, marker="o", ms=3, label=label)
            exact_ax.plot(epochs, expansion, color=colour, ls="--", marker="s", ms=3, mfc="white")
            error = np.abs(exact - expansion) / np.abs(exact)
            parts.append(f"{short}: the three-term expansion is off by {100 * error.min():.2g}"
                         f"-{100 * error.max():.2g}% of the exact value")
        gaps = [r.get("logit_gap", math.nan) for r in records]
        gap_ax.plot(epochs, gaps, color=colour, marker="o", ms=3)
        if not math.isnan(temperature):
            gap_ax.axhline(temperature, color=colour, ls=":", lw=1)
            above = [e for e, g in zip(epochs, gaps) if g > temperature]
            parts.append(f"{short}: the gap {'exceeds' if above else 'stays below'} "
                         f"T={temperature:g}" + (f" from epoch {above[0]}" if above else ""))
    terms_ax.axhline(0, color=GREY, lw=0.6)
    terms_ax.set_title("(a) T4 terms")
    terms_ax.set_ylabel("term (train batches)")
    exact_ax.set_title("(b) exact (solid) vs expansion")
    exact_ax.set_ylabel(r"$T^2\,$KL (train batches)")
    term_handles, term_labels = terms_ax.get_legend_handles_labels()
    run_handles, run_labels = exact_ax.get_legend_handles_labels()
    fig.legend(term_handles + run_handles, term_labels + run_labels, loc="outside lower center",
               ncol=len(term_labels + run_labels))
    gap_ax.set_title("(c) logit gap; dotted: T")
    gap_ax.set_ylabel(r"logit gap $\bar s_M - \bar s_{M^c}$ (test)")
    for ax in axes:
        ax.set_xlabel("epoch")
    record = save_figure(fig, out_stem)
    settings = sorted({(recipe.get("method", {}).get("ratio", math.nan),
                        recipe.get("method", {}).get("temperature", math.nan))
                       for _, _, recipe in runs})
    shown = ", ".join(f"{ratio_label(r)} at T={t:g}" for r, t in settings)
    colour_text = (f"colour = sparse ratio: {shown}" if len(count) > 1 else
                   f"one sparse ratio, so one colour: {shown}")
    record["caption"] = (
        "CIFAR-10 stingy students during training, per epoch (" + ", ".join(
            f"{name}/{Path(path).name}" for name, path, _ in runs) + f"; {colour_text}). "
        "(a) the T4 terms of T^2 KL(p~ || q): T^2 log(K/k), the order-T drive "
        "-T(1-r)(gap), order 1 and the remainder; (b) the exact T^2 KL (solid) against the "
        "sum of the first three terms (dashed); (c) the student's logit gap with the "
        "temperature T (dotted): the expansion in 1/T assumes the student's logits vary "
        "little against T. " + "; ".join(parts) + ".")
    return record


# --- mechanism diagram ---

def mechanism_terms(logits: np.ndarray, k: int, temperature: float) -> dict:
    """For one logit vector z, at a uniform student (s = 0): the dense target p = softmax(z/T),
    the sparse target p~ (softmax over the top-k set M), and the descent direction of
    T^2 KL(p~ || softmax(s/T)), T (p~ - U_K), split into the drive T (U_M - U_K) and the signal
    T (p~ - U_M), with U_M uniform on M and U_K uniform on every class."""
    z = np.asarray(logits, dtype=float)
    kept = np.argsort(-z)[:k]
    sparse_logits = np.full_like(z, -np.inf)
    sparse_logits[kept] = z[kept]
    dense, sparse = tempered_softmax(z, temperature), tempered_softmax(sparse_logits, temperature)
    uniform_m = np.zeros_like(z)
    uniform_m[kept] = 1.0 / k
    drive = temperature * (uniform_m - 1.0 / len(z))
    signal = temperature * (sparse - uniform_m)
    return {"dense": dense, "sparse": sparse, "drive": drive, "signal": signal, "kept": kept}


def draw_mechanism(teacher_logits_npz, out_stem, temperature, k=None,
                   teacher_label="the trained teacher") -> dict:
    """The mechanism on one example at the stingy students' ``temperature``, every value
    computed: the dense and the sparse target per class, and the descent direction at a
    uniform student split into drive and signal, drawn as arrows per class. ``k``: the
    file's own k unless given."""
    logits, labels, names, stored_k = load_teacher_logits(teacher_logits_npz)
    k = k or stored_k
    if k is None:
        raise ValueError(f"{teacher_logits_npz} stores no k; pass k")
    z = logits["normal"][0]
    terms = mechanism_terms(z, k, temperature)
    order = np.argsort(-z)
    classes = np.arange(len(z))
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.8))
    left.bar(classes - 0.2, terms["dense"][order], 0.4, color=method_colour("normal_kd"),
             label=r"dense target $\mathrm{softmax}(z/T)$")
    left.bar(classes + 0.2, terms["sparse"][order], 0.4, color=method_colour("stingy_kd"),
             label=rf"sparse target $\tilde p$ (top-{k})")
    left.set_xticks(classes, [names[i] for i in order], rotation=90)
    left.set_ylabel("probability")
    left.set_title(f"(a) targets, T={temperature:g}")
    left.legend(loc="upper right")
    drive, signal = terms["drive"][order], terms["signal"][order]
    right.quiver(classes - 0.15, np.zeros_like(drive), np.zeros_like(drive), drive, angles="xy",
                 scale_units="xy", scale=1, color=BLACK, width=0.012, label=r"drive $T(U_M - U_K)$")
    right.quiver(classes + 0.15, np.zeros_like(signal), np.zeros_like(signal), signal,
                 angles="xy", scale_units="xy", scale=1, color=GREY, width=0.012,
                 label=r"signal $T(\tilde p - U_M)$")
    top = max(np.abs(drive).max(), np.abs(signal).max()) * 1.15
    right.set_ylim(-top, top)
    right.set_xlim(-0.7, len(z) - 0.3)
    right.axhline(0, color=GREY, lw=0.6)
    right.set_xticks(classes, [names[i] for i in order], rotation=90)
    right.set_ylabel("descent direction on the student logit")
    right.set_title("(b) the gradient at a uniform student")
    right.legend(loc="upper right")
    ratio = np.linalg.norm(terms["signal"]) / np.linalg.norm(terms["drive"])
    cosine = float(terms["signal"] @ terms["drive"]) / (
        np.linalg.norm(terms["signal"]) * np.linalg.norm(terms["drive"]) or 1.0)
    record = save_figure(fig, out_stem)
    true = f", true class {names[int(labels[0])]}" if labels is not None else ""
    record["caption"] = (
        f"The mechanism on one example, computed: the first test image's logits z of "
        f"{teacher_label} ({source_name(teacher_logits_npz)}{true}), classes sorted by z, "
        f"K={len(z)}, k={k}, T={temperature:g}. (a) the dense target and the sparse target "
        "(zero off the kept set M). (b) the descent direction of T^2 KL(p~ || q) at a uniform "
        "student, T(p~ - U_K), split into the drive T(U_M - U_K) (raise every kept class "
        "equally, lower every dropped one) and the signal T(p~ - U_M) (the teacher's ranking "
        f"inside M). Here ||signal|| / ||drive|| = {ratio:.3g} and cos(signal, drive) = "
        f"{cosine:.2g}" + (": the drive, which is the same for every kept class, is most of "
                           "the gradient." if ratio < 1 else "."))
    return record
