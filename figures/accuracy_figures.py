"""F4-F5: student accuracy against the sparse ratio r, laid out like the paper's sparse-ratio
ablation (curves over r for the sparse methods, horizontal lines for the dense baselines)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from stingy.figures.inputs import is_missing, read_json, read_rows
from stingy.figures.style import FULL_WIDTH, GREY, method_colour, method_label, save_figure

SIMULATION_SUMMARY = "simulation summary, written by `stingy simulate`"
QUICK_SUMMARY = "CIFAR-10 quick comparison summary, written by `stingy quick`"
GPU_CHECK = "GPU check results, written by empirical/gpu_check.py"
SPARSE_METHODS = ("stingy_kd", "within_m_kd")
METHOD_ORDER = ("scratch", "normal_kd", "label_smoothing", "reversed_kd", "nasty_kd",
                "stingy_kd", "within_m_kd")


def _order(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def accuracy_panel(ax, rows, value="accuracy_mean", low=None, high=None, scale=1.0):
    """Draw one panel: a method with several finite ratios is a curve over r (categorical
    positions, 95% CI band when ``low``/``high`` are given), any other method a horizontal line
    (with its CI as a light band). Returns the ratios used as x positions."""
    by_method = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    curves = {method for method, chosen in by_method.items()
              if method in SPARSE_METHODS or _has_curve(chosen)}
    ratios = sorted({row["ratio"] for row in rows
                     if not is_missing(row["ratio"]) and row["method"] in curves})
    if not ratios:
        ratios = sorted({row["ratio"] for row in rows if not is_missing(row["ratio"])})
    ratios = ratios or [math.nan]
    x = np.arange(len(ratios))
    for method in sorted(by_method, key=_order):
        chosen = by_method[method]
        colour, label = method_colour(method), method_label(method)
        if method in SPARSE_METHODS or _has_curve(chosen):
            chosen = sorted((r for r in chosen if r["ratio"] in ratios), key=lambda r: r["ratio"])
            positions = [ratios.index(r["ratio"]) for r in chosen]
            ax.plot(positions, [r[value] * scale for r in chosen], color=colour, marker="o",
                    ms=3.5, label=label, zorder=3)
            if low and high:
                ax.fill_between(positions, [r[low] * scale for r in chosen],
                                [r[high] * scale for r in chosen], color=colour, alpha=0.2, lw=0)
        else:
            mean = float(np.mean([r[value] for r in chosen])) * scale
            ax.axhline(mean, color=colour, ls="--", lw=1.2, label=label)
            if low and high and len(chosen) == 1 and not is_missing(chosen[0][low]):
                ax.axhspan(chosen[0][low] * scale, chosen[0][high] * scale, color=colour,
                           alpha=0.07, lw=0)
    bottom, top = ax.get_ylim()
    ax.set_ylim(max(bottom, 0.0), min(top, 100.0))  # percent
    ax.set_xticks(x, [_ratio_label(r) for r in ratios])
    ax.set_xlim(-0.3, len(ratios) - 0.7)
    ax.set_xlabel("sparse ratio r")
    return ratios


def _has_curve(rows) -> bool:
    return len({row["ratio"] for row in rows if not is_missing(row["ratio"])}) > 1


def _ratio_label(ratio) -> str:
    if is_missing(ratio):
        return "-"
    return f"{ratio * 100:g}%"


def _noise_title(noise, kind) -> str:
    if is_missing(noise) or noise == 0:
        return "clean labels"
    kind = "" if is_missing(kind) else f" ({kind})"
    return f"label noise {noise:g}{kind}"


def draw_simulation_accuracy(summary_csv, out_stem) -> dict:
    """F4: simulated student accuracy against r, one panel per label-noise level, with 95% CI
    bands; dense baselines as horizontal lines."""
    rows = read_rows(summary_csv, SIMULATION_SUMMARY,
                     ("noise", "method", "ratio", "accuracy_mean", "accuracy_ci95_low",
                      "accuracy_ci95_high"))
    panels = sorted({(row["noise"], row.get("noise_kind", math.nan)) for row in rows},
                    key=lambda item: (item[0], str(item[1])))
    scale = 100.0 if max(row["accuracy_mean"] for row in rows) <= 1.0 else 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(FULL_WIDTH, 2.5), sharey=True,
                             squeeze=False)
    for ax, (noise, kind) in zip(axes[0], panels):
        chosen = [row for row in rows if row["noise"] == noise
                  and str(row.get("noise_kind", math.nan)) == str(kind)]
        accuracy_panel(ax, chosen, "accuracy_mean", "accuracy_ci95_low", "accuracy_ci95_high",
                       scale)
        ax.set_title(_noise_title(noise, kind))
    axes[0][0].set_ylabel("student test accuracy (%)")
    _figure_legend(fig, axes[0])
    paths = save_figure(fig, out_stem)
    caption = ("Simulations (synthetic data): student accuracy against the sparse ratio r, "
               "one panel per label-noise level, mean over seeds with 95% CI bands. Stingy KD "
               "and within-M KD are curves over r; scratch, normal KD, reversed logits (and "
               "label smoothing) do not depend on r and are dashed horizontal lines. Layout as "
               "the paper's sparse-ratio ablation (CIFAR-100).")
    return {**paths, "caption": caption}


def _figure_legend(fig, axes):
    handles, labels = {}, {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    labels = list(handles)
    fig.legend([handles[label] for label in labels], labels, loc="outside upper center",
               ncol=min(len(labels), 6))


QUICK_METHODS = {"scratch": "scratch", "kd": "normal_kd", "stingy": "stingy_kd",
                 "within": "within_m_kd", "reversed": "reversed_kd", "nasty": "nasty_kd"}


def _quick_rows(rows):
    """Quick summary rows with method names mapped to the figure's method keys and accuracy
    as a fraction or percent, left as given."""
    out = []
    for row in rows:
        method = QUICK_METHODS.get(row["method"], row["method"])
        ratio = row.get("ratio", math.nan)
        if method not in SPARSE_METHODS or is_missing(ratio) or ratio <= 0:
            ratio = ratio if method in SPARSE_METHODS else math.nan
        out.append({**row, "method": method, "ratio": ratio})
    return out


def gpu_check_rows(gpu_check: dict) -> list[dict]:
    """The students of results/gpu_check.json as rows (model, method key, test_accuracy,
    finished), in file order."""
    return [{"model": run.get("model"), "method": QUICK_METHODS.get(run["method"], run["method"]),
             "test_accuracy": run.get("test_accuracy"), "finished": bool(run.get("finished"))}
            for run in gpu_check.get("students") or [] if run.get("test_accuracy") is not None]


def gpu_panel(ax, gpu_check: dict, rows: list[dict]) -> None:
    """Grouped bars: student models on x, one bar per method (unfinished runs hatched), the
    teacher's accuracy as a grey line."""
    models = list(dict.fromkeys(row["model"] for row in rows))
    methods = sorted({row["method"] for row in rows}, key=_order)
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        for row in rows:
            if row["method"] != method:
                continue
            x = models.index(row["model"]) - 0.4 + width * (index + 0.5)
            ax.bar(x, row["test_accuracy"] * 100, width, color=method_colour(method),
                   hatch=None if row["finished"] else "///", edgecolor="white",
                   label=method_label(method))
    teacher = gpu_check.get("teacher") or {}
    if teacher.get("test_accuracy") is not None:
        ax.axhline(teacher["test_accuracy"] * 100, color=GREY, lw=1,
                   label=f"teacher ({teacher.get('model', '')})")
    if not all(row["finished"] for row in rows):
        ax.bar(0, 0, 0, color="white", edgecolor=GREY, hatch="///", label="unfinished (budget)")
    ax.set_xticks(range(len(models)), models)
    ax.set_xlim(-0.5, len(models) - 0.5)
    ax.set_xlabel("student")
    low = min(row["test_accuracy"] for row in rows) * 100
    ax.set_ylim(max(0.0, low - 10), 100)


def draw_cifar_accuracy(quick_summary_csv, out_stem, gpu_check_json=None) -> dict:
    """F5: CIFAR-10 student accuracy against r from the quick comparison, and from the GPU
    check's full-size runs when ``gpu_check_json`` is given."""
    rows = _quick_rows(read_rows(quick_summary_csv, QUICK_SUMMARY,
                                 ("method", "ratio", "test_accuracy")))
    gpu, gpu_rows = None, []
    if gpu_check_json:
        gpu = read_json(gpu_check_json, GPU_CHECK)
        gpu_rows = gpu_check_rows(gpu)
    source = "Reference recipes" if "paper" in Path(quick_summary_csv).parent.name else \
        "CPU quick profile"
    fig, axes = plt.subplots(1, 2 if gpu_rows else 1,
                             figsize=(FULL_WIDTH if gpu_rows else FULL_WIDTH * 0.6, 2.6),
                             squeeze=False)
    ax = axes[0][0]
    scale = 100.0 if max(r["test_accuracy"] for r in rows) <= 1.0 else 1.0
    accuracy_panel(ax, rows, "test_accuracy", scale=scale)
    students = sorted({str(r.get("student")) for r in rows if not is_missing(r.get("student"))})
    ax.set_title(source + (f": {', '.join(students)}" if students else ""))
    ax.set_ylabel("student test accuracy (%)")
    if gpu_rows:
        gpu_panel(axes[0][1], gpu, gpu_rows)
        toy = " (toy run)" if gpu.get("toy") else ""
        axes[0][1].set_title(f"GPU check: {gpu.get('device_name', gpu.get('device', 'GPU'))}{toy}")
    _figure_legend(fig, axes[0])
    paths = save_figure(fig, out_stem)
    gpu_note = (" Right: the GPU check's students (results/gpu_check.json; fast one-cycle "
                "schedules, stingy at r=0.2, hatched bars did not finish in the budget) with "
                "the teacher's accuracy as a grey line." if gpu_rows
                else " No GPU check results were found.")
    caption = ("CIFAR-10 (JPEG q75 mirror): student test accuracy against the sparse ratio r "
               "for stingy KD, with the dense baselines (scratch, normal KD, ...) as dashed "
               f"lines. {'Left: ' if gpu_rows else ''}{source} (one seed, no error bars; the "
               "quick profile uses "
               f"a small CNN, few epochs and subsampled data).{gpu_note}")
    return {**paths, "caption": caption}
