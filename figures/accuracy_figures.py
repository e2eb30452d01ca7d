"""Student accuracy figures: F4 (simulations against r), F5 without a sweep (CIFAR-10 at
one ratio), the paper overlay
(accuracy minus scratch against r: paper, simulations, CIFAR-10), the superclass-noise sweep
beside the symmetric one, and the mechanism sweeps (accuracy against steps, width, label rank).

Sparse methods are curves over r (log axis, labelled); dense baselines are horizontal lines.
Every mean with seeds has its 95% interval. A baseline far below the others (reversed logits
at 4.5% in the clean simulation) is not allowed to stretch the axis: it is named, with its
value, in a note on the panel and in the caption."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stingy.figures.captions import (
    failing_text,
    mechanism_setting,
    simulation_settings,
    temperature_text,
)
from stingy.figures.cifar_sweep_figure import curve_temperature
from stingy.figures.inputs import read_json, read_rows, source_name
from stingy.figures.paper_numbers import load_paper_numbers
from stingy.figures.style import (
    BLACK,
    FULL_WIDTH,
    GREY,
    METHODS,
    canonical_method,
    method_colour,
    method_label,
    ratio_axis,
    save_figure,
)
from stingy.formatting import is_missing
from stingy.intervals import paired, t_interval
from stingy.methods import names

SIMULATION_SUMMARY = "simulation summary, written by `stingy simulate`"
SIMULATION_RUNS = "simulation runs (one row per seed), written by `stingy simulate`"
CIFAR_SUMMARY = "CIFAR-10 summary, written by `stingy quick` or `stingy sweep collect`"
CIFAR_RUNS = "CIFAR-10 sweep runs (one row per seed), written by `stingy sweep collect`"
MECHANISM_SUMMARY = "mechanism sweep summary, written by the simulations' mechanism sweeps"
GPU_CHECK = "GPU check results, written by empirical/gpu_check.py"
SPARSE_METHODS = names(sparse_target=True)
METHOD_ORDER = tuple(METHODS)
OUTLIER_MARGIN = 15.0  # percentage points below the other series' lowest interval


def _order(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _percent_scale(rows, column) -> float:
    values = [row[column] for row in rows if not is_missing(row.get(column))]
    return 100.0 if values and max(values) <= 1.0 else 1.0


def _value(row, column, scale):
    value = row.get(column)
    return math.nan if is_missing(value) or value == "" else float(value) * scale


def accuracy_panel(ax, rows, value="accuracy_mean", low="accuracy_ci95_low",
                   high="accuracy_ci95_high", references=True) -> list[str]:
    """One panel: sparse methods as curves over r (log x) with 95% bands, dense methods as
    horizontal lines with their bands, the Bayes and teacher accuracies as grey lines. The
    y-axis covers every interval except a series more than OUTLIER_MARGIN points below the
    rest, which is named in a note. Returns notes on off-axis series."""
    scale = _percent_scale(rows, value)
    by_method = defaultdict(list)
    for row in rows:
        by_method[canonical_method(row["method"])].append(row)
    levels = {}  # method -> (mean, low, high) of dense baselines
    span = []
    for method in sorted(by_method, key=_order):
        chosen = by_method[method]
        colour, label = method_colour(method), method_label(method)
        finite = [r for r in chosen if not is_missing(r.get("ratio"))]
        if method in SPARSE_METHODS and finite:
            finite.sort(key=lambda r: r["ratio"])
            ratios = [r["ratio"] for r in finite]
            means = [_value(r, value, scale) for r in finite]
            ax.plot(ratios, means, color=colour, marker="o", ms=3.5, label=label, zorder=3)
            lows = [_value(r, low, scale) for r in finite]
            highs = [_value(r, high, scale) for r in finite]
            if not all(math.isnan(v) for v in lows):
                ax.fill_between(ratios, lows, highs, color=colour, alpha=0.2, lw=0)
            span += [v for v in lows + highs + means if not math.isnan(v)]
        else:
            row = chosen[0]
            levels[method] = (_value(row, value, scale), _value(row, low, scale),
                              _value(row, high, scale))
    if references:
        for column, style, label in (("bayes_accuracy", ":", "Bayes accuracy"),
                                     ("teacher_accuracy", "-.", "teacher")):
            values = [_value(r, column, scale) for r in rows if not is_missing(r.get(column))]
            if values:
                ax.axhline(float(np.mean(values)), color=GREY, ls=style, lw=1, label=label)
                span.append(float(np.mean(values)))
    reference = span or [level[0] for level in levels.values() if not math.isnan(level[0])]
    floor = min(reference) - OUTLIER_MARGIN if reference else -math.inf
    notes, kept = [], list(span)
    for method, (mean, lo, hi) in levels.items():
        if mean < floor:
            notes.append(f"{method_label(method)}: {mean:.1f}% (below the axis)")
            continue
        ax.axhline(mean, color=method_colour(method), ls="--", lw=1.2, label=method_label(method))
        if not math.isnan(lo):
            ax.axhspan(lo, hi, color=method_colour(method), alpha=0.1, lw=0)
        kept += [v for v in (mean, lo, hi) if not math.isnan(v)]
    if kept:
        bottom, top = min(kept), max(kept)
        pad = max(1.0, 0.08 * (top - bottom))
        ax.set_ylim(max(0.0, bottom - pad), min(100.0, top + pad))
    if notes:
        ax.text(0.02, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=6.5,
                va="bottom", color=BLACK)
    ratios = sorted({r["ratio"] for r in rows if not is_missing(r.get("ratio"))})
    if ratios:
        ratio_axis(ax, ratios)
    return notes


def _noise_title(noise, kind) -> str:
    if is_missing(noise) or noise == 0:
        return "clean labels"
    kind = "" if is_missing(kind) else f" {kind}"
    return f"label noise {noise:g}{kind}"


def figure_legend(fig, axes, ncol=5):
    """One legend for the figure: each label once, from what the panels drew."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=min(len(handles), ncol))


def _summary_rows(summary_csv):
    return read_rows(summary_csv, SIMULATION_SUMMARY,
                     ("noise", "method", "ratio", "accuracy_mean", "accuracy_ci95_low",
                      "accuracy_ci95_high"))


def _noise_panels(rows):
    return sorted({(row["noise"], str(row.get("noise_kind", ""))) for row in rows})


def _seeds(rows) -> str:
    seeds = sorted({int(row["n_seeds"]) for row in rows if not is_missing(row.get("n_seeds"))})
    return "/".join(map(str, seeds)) if seeds else "unknown"


def draw_simulation_accuracy(summary_csv, out_stem, config_json=None, verdicts_json=None) -> dict:
    """F4: simulated student accuracy against r, one panel per label-noise level, mean over
    seeds with 95% intervals; dense baselines, the Bayes and teacher accuracy as lines."""
    rows = _summary_rows(summary_csv)
    panels = _noise_panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(FULL_WIDTH, 2.8), squeeze=False)
    notes = []
    for ax, (noise, kind) in zip(axes[0], panels):
        chosen = [r for r in rows if r["noise"] == noise and str(r.get("noise_kind", "")) == kind]
        notes += [f"{_noise_title(noise, kind)}: {n}" for n in accuracy_panel(ax, chosen)]
        ax.set_title(_noise_title(noise, kind))
    axes[0][0].set_ylabel("student test accuracy (%)")
    figure_legend(fig, axes[0])
    record = save_figure(fig, out_stem)
    off_axis = (" Off the axis (so the other gaps stay readable): " + "; ".join(notes) + "."
                if notes else "")
    record["caption"] = (
        f"Simulations ({source_name(summary_csv)}; {simulation_settings(config_json)}; "
        f"{temperature_text(rows)}): student "
        f"test accuracy against the sparse ratio r, one panel per label-noise level, mean over "
        f"{_seeds(rows)} seeds with 95% t-intervals (bands). Stingy and within-M KD are curves "
        "over r (log axis); the dense baselines are dashed lines with their bands; grey: Bayes "
        f"and teacher accuracy.{off_axis} The paper's CIFAR-100 curve is in the paper overlay "
        "figure (different data, so only differences to scratch are compared)."
        + failing_text(verdicts_json, ("a", "b", "d")))
    return record


def draw_superclass_accuracy(symmetric_csv, superclass_csv, out_stem,
                             verdicts_json=None, superclass_verdicts_json=None) -> dict:
    """The superclass-noise sweep beside the symmetric one: one column per noise level, top
    row symmetric, bottom row superclass noise (labels flipped within the superclass)."""
    symmetric, superclass = _summary_rows(symmetric_csv), _summary_rows(superclass_csv)
    noises = sorted({r["noise"] for r in symmetric} | {r["noise"] for r in superclass})
    fig, axes = plt.subplots(2, len(noises), figsize=(FULL_WIDTH, 4.6), squeeze=False,
                             sharey="row")
    notes = []
    for row_index, (name, rows) in enumerate((("symmetric", symmetric),
                                              ("superclass", superclass))):
        for ax, noise in zip(axes[row_index], noises):
            chosen = [r for r in rows if r["noise"] == noise]
            if not chosen:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"no {name} run at noise {noise:g}", ha="center",
                        transform=ax.transAxes)
                continue
            notes += [f"{name} noise {noise:g}: {n}" for n in accuracy_panel(ax, chosen)]
            ax.set_title(f"{name} noise {noise:g}" if noise else "clean labels")
        axes[row_index][0].set_ylabel(f"{name}\nstudent test accuracy (%)")
    figure_legend(fig, axes.ravel())
    record = save_figure(fig, out_stem)
    harm = _harm_table(symmetric, superclass)
    off_axis = " Off the axis: " + "; ".join(notes) + "." if notes else ""
    record["caption"] = (
        f"Symmetric (top, {source_name(symmetric_csv)}) against superclass label noise "
        f"(bottom, {source_name(superclass_csv)}) in the simulations, mean over "
        f"{_seeds(symmetric + superclass)} seeds with 95% intervals, same task and students, "
        f"{temperature_text(symmetric + superclass)}. "
        f"Stingy harm at r=10% (normal KD minus stingy KD, points): {harm}.{off_axis}"
        + failing_text(verdicts_json, ("b",), "symmetric-noise")
        + failing_text(superclass_verdicts_json, ("b",), "superclass-noise"))
    return record


def _harm_table(symmetric, superclass, ratio=0.1) -> str:
    parts = []
    for name, rows in (("symmetric", symmetric), ("superclass", superclass)):
        for noise in sorted({r["noise"] for r in rows}):
            chosen = {canonical_method(r["method"]): r for r in rows if r["noise"] == noise
                      and (is_missing(r["ratio"]) or math.isclose(r["ratio"], ratio))}
            if "normal_kd" in chosen and "stingy_kd" in chosen:
                scale = _percent_scale(rows, "accuracy_mean")
                harm = (chosen["normal_kd"]["accuracy_mean"]
                        - chosen["stingy_kd"]["accuracy_mean"]) * scale
                parts.append(f"{name} {noise:g}: {harm:+.1f}")
    return ", ".join(parts) or "not available"


# --- CIFAR-10 ---

def gpu_check_rows(gpu_check: dict) -> list[dict]:
    """The students of gpu_check.json as rows (model, method, test_accuracy, finished)."""
    return [{"model": run.get("model"), "method": canonical_method(run["method"]),
             "test_accuracy": run.get("test_accuracy"), "finished": bool(run.get("finished"))}
            for run in gpu_check.get("students") or [] if run.get("test_accuracy") is not None]


def dot_panel(ax, entries, teacher=None) -> None:
    """Points (no bars: a bar's length would need a zero baseline) for entries
    (group, method, value %, low, high, filled), one x group per student, methods side by
    side; open markers are unfinished runs."""
    groups = list(dict.fromkeys(entry[0] for entry in entries))
    methods = sorted({entry[1] for entry in entries}, key=_order)
    width = 0.8 / max(len(methods), 1)
    values = []
    for index, method in enumerate(methods):
        chosen = [e for e in entries if e[1] == method]
        x = [groups.index(e[0]) - 0.4 + width * (index + 0.5) for e in chosen]
        y = [e[2] for e in chosen]
        colour = method_colour(method)
        ax.scatter(x, y, color=colour, s=22, zorder=3, label=method_label(method),
                   facecolors=[colour if e[5] else "white" for e in chosen], edgecolors=colour)
        for xi, e in zip(x, chosen):
            if not (math.isnan(e[3]) or math.isnan(e[4])):
                ax.errorbar(xi, e[2], yerr=[[e[2] - e[3]], [e[4] - e[2]]], color=colour,
                            capsize=2, lw=1)
                values += [e[3], e[4]]
        values += y
    if teacher is not None:
        ax.axhline(teacher[0], color=GREY, ls="-.", lw=1, label=teacher[1])
        values.append(teacher[0])
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    if values:
        bottom, top = min(values), max(values)
        pad = max(2.0, 0.1 * (top - bottom))
        ax.set_ylim(max(0.0, bottom - pad), min(100.0, top + pad))


# The sweep's column names (stingy.empirical.sweep.summarise) -> the figures' names.
SWEEP_COLUMNS = {"model": "student", "accuracy_ci_low": "accuracy_ci95_low",
                 "accuracy_ci_high": "accuracy_ci95_high", "seeds": "n_seeds"}


def cifar_method(row: dict) -> str:
    """The table's method name of a CIFAR row: KD from the Nasty Teacher (the sweep's
    'kd-from-nasty' label, or teacher 'nasty') is nasty_kd."""
    if "nasty" in str(row.get("label", "")) or str(row.get("teacher", "")) == "nasty":
        return "nasty_kd"
    return canonical_method(row["method"])


def cifar_rows(summary_csv):
    rows = read_rows(summary_csv, CIFAR_SUMMARY, ("method",))
    rows = [{SWEEP_COLUMNS.get(key, key): value for key, value in row.items()} for row in rows]
    column = next((c for c in ("accuracy_mean", "test_accuracy") if c in rows[0]), None)
    if column is None:
        raise ValueError(f"{summary_csv} has neither accuracy_mean nor test_accuracy")
    out = []
    for row in rows:
        method = cifar_method(row)
        ratio = row.get("ratio", math.nan)
        ratio = ratio if method in SPARSE_METHODS and not is_missing(ratio) and ratio > 0 \
            else math.nan
        renamed = {**row, "method": method, "ratio": ratio, "accuracy_mean": row[column]}
        for side in ("low", "high"):
            renamed.setdefault(f"accuracy_ci95_{side}", math.nan)
        out.append(renamed)
    return out


def _noise(row) -> float:
    noise = row.get("noise", 0.0)
    return 0.0 if is_missing(noise) or noise == "" else float(noise)


def draw_cifar_accuracy(summary_csv, out_stem, gpu_check_json=None, quick_json=None) -> dict:
    """CIFAR-10 student accuracy of one run per method at one sparse ratio (the quick profile
    or the reference recipes): points per method, labelled with that ratio; the GPU check's
    students as a second panel when given. A sweep over k is drawn by
    stingy.figures.cifar_sweep_figure instead."""
    rows = cifar_rows(summary_csv)
    ratios = sorted({r["ratio"] for r in rows if not is_missing(r["ratio"])})
    gpu = read_json(gpu_check_json, GPU_CHECK) if gpu_check_json else None
    gpu_rows = gpu_check_rows(gpu) if gpu else []
    panels = 1 + bool(gpu_rows)
    fig, axes = plt.subplots(1, panels, figsize=(min(FULL_WIDTH, 3.0 * panels + 0.6), 2.8),
                             squeeze=False)
    axes = list(axes[0])
    seeds = _seeds(rows) if "n_seeds" in rows[0] else "1"
    scale = _percent_scale(rows, "accuracy_mean")
    teacher_values = [r["teacher_accuracy"] * scale for r in rows
                      if not is_missing(r.get("teacher_accuracy"))]
    ratio_text = ", ".join(f"r={100 * ratio:.3g}%" for ratio in ratios)
    ratio_text = f" ({ratio_text})" if ratio_text else ""
    entries = [(str(r.get("student", "")), r["method"], r["accuracy_mean"] * scale,
                _value(r, "accuracy_ci95_low", scale), _value(r, "accuracy_ci95_high", scale),
                True) for r in rows]
    teacher = (float(np.mean(teacher_values)), "teacher") if teacher_values else None
    dot_panel(axes[0], entries, teacher)
    axes[0].set_title(f"sparse ratio{ratio_text}, "
                      f"{'one seed' if seeds == '1' else seeds + ' seeds'}")
    axes[0].set_xlabel("student")
    axes[0].set_ylabel("test accuracy (%)")
    if gpu_rows:
        entries = [(r["model"], r["method"], r["test_accuracy"] * 100, math.nan, math.nan,
                    r["finished"]) for r in gpu_rows]
        teacher = (gpu or {}).get("teacher") or {}
        line = ((teacher["test_accuracy"] * 100, f"teacher ({teacher.get('model', '')})")
                if teacher.get("test_accuracy") is not None else None)
        dot_panel(axes[-1], entries, line)
        toy = " (toy run)" if gpu.get("toy") else ""
        axes[-1].set_title(f"GPU check{toy}: {gpu.get('device_name', gpu.get('device', 'GPU'))}")
        axes[-1].set_xlabel("student")
    figure_legend(fig, axes)
    record = save_figure(fig, out_stem)
    profile = ""
    if quick_json and Path(quick_json).is_file():
        profile = read_json(quick_json, "quick summary").get("profile", "")
    models = sorted({str(r["teacher"]) for r in rows if r.get("teacher") not in (None, "")
                     and not is_missing(r.get("teacher"))})
    teacher_text = (f"; {'/'.join(models) + ' ' if models else ''}teacher "
                    f"{np.mean(teacher_values):.1f}%" if teacher_values else "")
    gpu_text = (" Right: the GPU check's students (gpu_check.json, one seed, short schedules; "
                "open markers did not finish in the budget; grey: its teacher)."
                if gpu_rows else " No GPU check results were found.")
    interval = ("95% intervals over seeds" if seeds not in ("1", "unknown")
                else "one seed, so no interval")
    record["caption"] = (
        f"CIFAR-10 (JPEG q75 mirror) student test accuracy at one sparse ratio{ratio_text} "
        f"({source_name(summary_csv)}{'; ' + profile if profile else ''}{teacher_text}; "
        f"{temperature_text(rows)}; {interval}). Points, not bars: the axis need not start "
        "at 0." + gpu_text)
    return record


# --- the paper overlay ---

def differences_to_scratch(run_rows, method="stingy_kd", value="accuracy") -> list[dict]:
    """Per ratio: mean of (method at r) - scratch over the seeds both have, in points, with a
    95% t-interval over seeds (paired by seed)."""
    scratch = {int(r["seed"]): float(r[value]) for r in run_rows
               if canonical_method(r["method"]) == "scratch"}
    out = []
    for ratio in sorted({r["ratio"] for r in run_rows
                         if canonical_method(r["method"]) == method and not is_missing(r["ratio"])}):
        chosen = {int(r["seed"]): float(r[value]) for r in run_rows
                  if canonical_method(r["method"]) == method and r["ratio"] == ratio}
        differences = paired(chosen, scratch)
        if differences.size == 0:
            continue
        scale = 100.0 if max(chosen.values()) <= 1 else 1.0
        mean, low, high = t_interval(differences * scale)
        out.append({"ratio": ratio, "mean": mean, "low": low, "high": high,
                    "seeds": len(differences)})
    return out


def _paper_series(paper: dict):
    ablation = paper["sparse_ratio_ablation"]
    for name, values in ablation.items():
        if isinstance(values, dict) and "stingy" in values:
            yield name.replace("_to_", " -> "), ablation["ratios"], [
                v - values["scratch"] for v in values["stingy"]]


def _draw_cifar_sweep(ax, cifar_runs_csv) -> str:
    """The CIFAR-10 sweep's stingy students minus scratch, one series per student model at
    the temperature of its stingy curve, with paired 95% intervals; the caption's words."""
    cifar = read_rows(cifar_runs_csv, CIFAR_RUNS, ("method", "ratio", "seed", "temperature"))
    value = "accuracy" if "accuracy" in cifar[0] else "test_accuracy"
    clean = [{**r, "method": cifar_method(r)} for r in cifar if _noise(r) == 0]
    shown = []
    for student, marker in zip(sorted({str(r.get("model", r.get("student", "")))
                                       for r in clean}), "os^v"):
        rows = [r for r in clean if str(r.get("model", r.get("student", ""))) == student]
        temperature = curve_temperature(rows)
        series = differences_to_scratch(
            [r for r in rows if r["method"] == "scratch" or r["temperature"] == temperature],
            value=value)
        if series:
            ratios = [s["ratio"] for s in series]
            ax.errorbar(ratios, [s["mean"] for s in series],
                        yerr=[[s["mean"] - s["low"] for s in series],
                              [s["high"] - s["mean"] for s in series]], color=BLACK,
                        marker=marker, ms=4, lw=1.2, capsize=2,
                        label=f"CIFAR-10 sweep, {student}, T={temperature:g}")
            shown.append(f"{student} students, stingy KD at T={temperature:g}")
    return (f"CIFAR-10 sweep ({source_name(cifar_runs_csv)}: " + "; ".join(shown)
            + "; paired 95% intervals)")


def draw_paper_overlay(simulation_runs_csv, out_stem, paper_numbers=None, cifar_runs_csv=None,
                       cifar_summary_csv=None) -> dict:
    """Student accuracy minus scratch against r on one axis: the paper's CIFAR-100 points
    (three teacher -> student pairs, read off a plot, +-0.5), the simulations (each symmetric
    noise level, paired 95% intervals over seeds) and CIFAR-10 (the sweep's runs with
    intervals, at the temperature of its stingy curve only, else the quick profile's single
    seed). Every series is at one temperature, which the caption names."""
    paper = paper_numbers or load_paper_numbers()
    runs = read_rows(simulation_runs_csv, SIMULATION_RUNS,
                     ("noise", "method", "ratio", "seed", "accuracy"))
    runs = [r for r in runs if str(r.get("noise_kind", "symmetric")) == "symmetric"]
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 3.2))
    ax.axhline(0, color=BLACK, lw=0.8, label="scratch (0)")
    for (name, ratios, values), marker in zip(_paper_series(paper), ("^", "v", "D")):
        ax.errorbar(ratios, values, yerr=0.5, color=GREY, marker=marker, ms=4, lw=1, ls="--",
                    capsize=1.5, label=f"paper CIFAR-100, {name}")
    simulated = []
    for noise, style in zip(sorted({r["noise"] for r in runs}), ("-", "--", ":", "-.")):
        series = differences_to_scratch([r for r in runs if r["noise"] == noise])
        if not series:
            continue
        ratios = [s["ratio"] for s in series]
        ax.plot(ratios, [s["mean"] for s in series], color=method_colour("stingy_kd"), ls=style,
                marker="o", ms=3, label=f"simulation, noise {noise:g}")
        ax.fill_between(ratios, [s["low"] for s in series], [s["high"] for s in series],
                        color=method_colour("stingy_kd"), alpha=0.15, lw=0)
        simulated.append((noise, series))
    cifar_text = "no CIFAR-10 result"
    if cifar_runs_csv:
        cifar_text = _draw_cifar_sweep(ax, cifar_runs_csv)
    elif cifar_summary_csv:
        rows = cifar_rows(cifar_summary_csv)
        scratch = [r["accuracy_mean"] for r in rows if r["method"] == "scratch"]
        stingy = [r for r in rows if r["method"] == "stingy_kd"]
        if scratch and stingy:
            scale = _percent_scale(rows, "accuracy_mean")
            ax.plot([r["ratio"] for r in stingy],
                    [(r["accuracy_mean"] - scratch[0]) * scale for r in stingy], color=BLACK,
                    marker="*", ms=8, ls="none", label="CIFAR-10 quick CPU (1 seed)")
            cifar_text = (f"CIFAR-10 quick CPU profile ({source_name(cifar_summary_csv)}, "
                          f"{temperature_text(stingy)}, one seed: no interval)")
    ratios = paper["sparse_ratio_ablation"]["ratios"]
    paper_t = paper["settings"]["cifar100"]["stingy_kd"]["temperature"]
    ratio_axis(ax, ratios)
    ax.set_ylabel("stingy student minus scratch (points)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    record = save_figure(fig, out_stem)
    minima = [f"paper {name}: r={100 * rs[int(np.argmin(vs))]:.3g}%"
              for name, rs, vs in _paper_series(paper)]
    minima += [f"simulation noise {noise:g}: r={100 * min(s, key=lambda x: x['mean'])['ratio']:.3g}%"
               for noise, s in simulated]
    record["caption"] = (
        "The paper overlay: stingy-student accuracy minus the scratch student's against the "
        "sparse ratio r (log axis), 0 = as good as training on labels alone. Grey dashed: the "
        f"paper's CIFAR-100 points ({paper['sparse_ratio_ablation']['source']}; stingy KD at "
        f"T={paper_t:g} in the paper's settings; error bars +-0.5 reading error); vermilion: the "
        f"simulations ({source_name(simulation_runs_csv)}, {temperature_text(runs)}, paired "
        "differences by seed with 95% t-intervals), one line style per symmetric noise level; "
        f"black: {cifar_text}. Lowest point: "
        + "; ".join(minima) + ". The data sets differ (CIFAR-100, synthetic, CIFAR-10), so only "
        "the shape and sign are compared.")
    return record


# --- mechanism sweeps ---

MECHANISM_FACTORS = (("steps", "training steps"), ("hidden", "hidden units"),
                     ("train_size", "training examples"))
HARMED = ("stingy_kd", "stingy_kd_alpha1")


def _units(rows, case, method, column="accuracy") -> dict:
    return {(int(r["task_seed"]), int(r["seed"])): float(r[column]) for r in rows
            if r["case"] == case and r["method"] == method}


def harm_series(rows, factor, base="long") -> dict:
    """method -> [(factor value, mean, low, high, units)]: the harm normal_kd - method
    (accuracy points, paired by (task draw, seed), 95% t-interval) for the cases that differ
    from the ``base`` case in ``factor`` only."""
    settings = {r["case"]: {f: r[f] for f, _ in MECHANISM_FACTORS} for r in rows}
    if base not in settings:
        return {}
    cases = [case for case, values in settings.items()
             if all(values[f] == settings[base][f] for f, _ in MECHANISM_FACTORS if f != factor)]
    if len({settings[case][factor] for case in cases}) < 2:
        return {}
    out = {}
    for method in HARMED:
        series = []
        for case in sorted(cases, key=lambda c: settings[c][factor]):
            harm = paired(_units(rows, case, "normal_kd"), _units(rows, case, method))
            if harm.size:
                mean, low, high = t_interval(100 * harm)
                series.append((settings[case][factor], mean, low, high, harm.size))
        if series:
            out[method] = series
    return out


def draw_mechanism_sweeps(rows_csv, out_stem, verdicts_json=None, run_json=None) -> dict:
    """The mechanism sweeps: the stingy harm (normal KD minus stingy KD, points) against
    training steps, student width and training-set size, each varied alone from the long run,
    with and without labels (alpha = 1); and accuracy by where the label ranks in the
    teacher's kept set (top class vs 2nd..k-th). The x positions are categories, so each
    method is a set of points side by side, never joined by lines; ``run_json`` gives the
    run's settings for the caption."""
    rows = read_rows(rows_csv, MECHANISM_SUMMARY,
                     ("case", "task_seed", "seed", "method", "steps", "hidden", "train_size",
                      "accuracy"))
    panels = [(factor, name, harm_series(rows, factor)) for factor, name in MECHANISM_FACTORS]
    panels = [panel for panel in panels if panel[2]]
    has_rank = "accuracy_label_top" in rows[0] and "accuracy_label_inside" in rows[0]
    count = len(panels) + has_rank
    columns = 2 if count == 4 else count
    fig, axes = plt.subplots((count + columns - 1) // columns, columns, squeeze=False,
                             figsize=(FULL_WIDTH, 2.4 * ((count + columns - 1) // columns) + 0.4))
    axes = list(axes.ravel())
    summary = []
    for ax, (factor, name, series) in zip(axes, panels):
        values = sorted({point[0] for points in series.values() for point in points})
        for index, (method, points) in enumerate(series.items()):
            x = [values.index(p[0]) + (index - 0.5) * 0.2 for p in points]
            ax.errorbar(x, [p[1] for p in points], yerr=[[p[1] - p[2] for p in points],
                                                         [p[3] - p[1] for p in points]],
                        color=method_colour("stingy_kd"), marker="o", ms=3.5, capsize=2,
                        ls="none", mfc=None if method == "stingy_kd" else "white",
                        label=method_label(method))
            summary.append(f"{name}, {method_label(method)}: " + ", ".join(
                f"{p[0]:g}: {p[1]:+.1f} [{p[2]:+.1f}, {p[3]:+.1f}]" for p in points))
        ax.axhline(0, color=GREY, lw=0.6)
        ax.set_xticks(range(len(values)), ["linear" if factor == "hidden" and v == 0
                                           else f"{v:g}" for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xlabel(name + (" (linear = 0 hidden units)" if factor == "hidden" else ""))
        ax.set_ylabel("harm (points)")
        ax.set_title(f"harm against {name}")
    if has_rank:
        ax = axes[-1]
        for index, method in enumerate(("normal_kd", "stingy_kd")):
            means = []
            for column in ("accuracy_label_top", "accuracy_label_inside"):
                values = list(_units(rows, "long", method, column).values())
                means.append(t_interval(100 * np.array(values)) if values else (math.nan,) * 3)
            x = np.arange(2) + (index - 0.5) * 0.2
            ax.errorbar(x, [m[0] for m in means], yerr=[[m[0] - m[1] for m in means],
                                                        [m[2] - m[0] for m in means]],
                        color=method_colour(method), marker="o", ms=3.5, capsize=2, ls="none",
                        label=method_label(method))
            summary.append(f"label rank, {method_label(method)}: top {means[0][0]:.1f}, "
                           f"2nd..k-th {means[1][0]:.1f}")
        ax.set_xticks([0, 1], ["top class", "2nd..k-th"])
        ax.set_xlim(-0.5, 1.5)
        ax.set_xlabel("true label's rank in the teacher's kept set")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("accuracy by label rank (long run)")
    figure_legend(fig, axes)
    record = save_figure(fig, out_stem)
    units = len({(r["task_seed"], r["seed"]) for r in rows})
    tasks = len({r["task_seed"] for r in rows})
    setting = mechanism_setting(run_json)
    record["caption"] = (
        f"Mechanism sweeps in the simulations ({source_name(rows_csv)}"
        + (f", {setting}" if setting else "") + ", k = "
        + ", ".join(f"{k:g}" for k in sorted({r["k"] for r in rows})) + f"; {tasks} task "
        f"draws x {units // max(tasks, 1)} seeds = {units} paired units, 95% t-intervals; the "
        "run's files do not record its temperature; x positions are categories, so points "
        "are not joined): the stingy harm, normal KD minus stingy KD accuracy in points (open "
        "markers: stingy KD with alpha = 1, no labels), with one factor varied from the long "
        "run at a time; and accuracy by where the true label ranks in the teacher's kept set. "
        + "; ".join(summary) + "." + failing_text(verdicts_json))
    return record
