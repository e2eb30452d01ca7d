"""F5: the CIFAR-10 sweep's student accuracy against k, from its per-seed rows.csv.

Left: test accuracy against the number of kept logits k (of K), stingy KD at the temperature
the sweep ran it at the most k with 95% t-intervals over seeds; labels only, normal KD at each
of its temperatures and KD from the Nasty Teacher as bands (mean and 95% interval); the other
students as points at their k (within-M and tail-bucket KD, stingy KD at its other
temperatures). Right: that stingy curve minus labels only against r = k/K, paired by seed,
beside the paper's sparse-ratio ablation (stingy minus scratch; the paper reports no CIFAR-10
ratio sweep, so its shape is CIFAR-100's, read off a plot to +-0.5). Every temperature, K and
teacher is read from the sweep's own files."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt

from stingy.figures.inputs import read_rows, source_name
from stingy.figures.paper_numbers import load_paper_numbers
from stingy.figures.style import BLACK, FULL_WIDTH, GREY, method_colour, save_figure
from stingy.intervals import paired, t_interval

SWEEP_ROWS = "CIFAR-10 sweep runs (one row per seed), written by `stingy sweep collect`"
SWEEP_TEACHERS = "CIFAR-10 sweep teachers, written by `stingy sweep collect`"
COLUMNS = ("model", "seed", "noise", "label", "method", "teacher", "k", "ratio", "temperature",
           "test_accuracy")
BAND_STYLES = ("--", "-.", (0, (3, 1, 1, 1)))


def _by_seed(rows, **match) -> dict:
    """{seed: accuracy in %} of the rows whose columns equal ``match``."""
    return {int(r["seed"]): 100.0 * float(r["test_accuracy"]) for r in rows
            if all(r.get(key) == value for key, value in match.items())}


def _interval(values) -> tuple[float, float, float]:
    values = list(values)
    return t_interval(values) if len(values) >= 2 else (
        (values[0], math.nan, math.nan) if values else (math.nan,) * 3)


def _band(ax, values, colour, label, style="--") -> list[float]:
    mean, low, high = _interval(values)
    if math.isnan(mean):
        return []
    ax.axhline(mean, color=colour, ls=style, lw=1.2, label=f"{label} {mean:.1f}%")
    if not math.isnan(low):
        ax.axhspan(low, high, color=colour, alpha=0.12, lw=0)
    return [v for v in (mean, low, high) if not math.isnan(v)]


def _point(ax, k, values, colour, marker, label) -> list[float]:
    mean, low, high = _interval(values)
    if math.isnan(mean):
        return []
    error = None if math.isnan(low) else [[mean - low], [high - mean]]
    ax.errorbar([k], [mean], yerr=error, color=colour, marker=marker, ms=5, ls="none",
                capsize=2, lw=1, label=f"{label} {mean:.1f}%", zorder=4)
    return [v for v in (mean, low, high) if not math.isnan(v)]


def _temperatures(rows, **match) -> list[float]:
    return sorted({r["temperature"] for r in rows
                   if all(r.get(key) == value for key, value in match.items())})


def _stingy_curve(rows, temperature) -> dict:
    """{k: {seed: accuracy %}} of stingy KD from the normal teacher at ``temperature``."""
    curve = defaultdict(dict)
    for r in rows:
        if r["method"] == "stingy_kd" and r["teacher"] == "teacher" and \
                r["temperature"] == temperature:
            curve[int(r["k"])][int(r["seed"])] = 100.0 * float(r["test_accuracy"])
    return dict(sorted(curve.items()))


def curve_temperature(rows) -> float:
    """The temperature of the stingy curve: the one stingy KD from the normal teacher ran at
    the most k (the higher one on a tie)."""
    ks = defaultdict(set)
    for r in rows:
        if r["method"] == "stingy_kd" and r["teacher"] == "teacher":
            ks[r["temperature"]].add(r["k"])
    if not ks:
        raise ValueError("the sweep has no stingy KD rows")
    return max(ks, key=lambda t: (len(ks[t]), t))


def class_count(rows) -> int:
    """K, from a sparse row's k and ratio."""
    row = next(r for r in rows if r["k"] > 0 and not math.isnan(r["ratio"]))
    return round(row["k"] / row["ratio"])


def accuracy_against_k(ax, rows, stingy_t, num_classes) -> tuple[list[str], list[str]]:
    """The left panel (see the module docstring); returns the bands and the points it drew,
    for the caption."""
    bands, points, span = ["labels only"], [], []
    span += _band(ax, _by_seed(rows, method="scratch").values(), GREY, "labels only", ":")
    for temperature, style in zip(_temperatures(rows, method="normal_kd", teacher="teacher"),
                                  BAND_STYLES):
        span += _band(ax, _by_seed(rows, method="normal_kd", teacher="teacher",
                                   temperature=temperature).values(),
                      method_colour("normal_kd"), f"normal KD T={temperature:g}", style)
        bands.append(f"normal KD at T={temperature:g}")
    curve = _stingy_curve(rows, stingy_t)
    stats = [_interval(seeds.values()) for seeds in curve.values()]
    means = [s[0] for s in stats]
    errors = [[m - s[1] for m, s in zip(means, stats)], [s[2] - m for m, s in zip(means, stats)]]
    ax.errorbar(list(curve), means, yerr=errors, color=method_colour("stingy_kd"), marker="o",
                ms=4, capsize=2, lw=1.4, label=f"stingy KD T={stingy_t:g}", zorder=5)
    span += [v for s in stats for v in s if not math.isnan(v)]
    others = (("within_m_kd", "s", "within-M KD"), ("tail_bucket_kd", "D", "tail-bucket KD"))
    for offset, (method, marker, label) in enumerate(others, start=1):
        for k in sorted({r["k"] for r in rows if r["method"] == method}):
            for temperature in _temperatures(rows, method=method, k=k):
                span += _point(ax, k + 0.12 * offset,
                               _by_seed(rows, method=method, k=k, temperature=temperature).values(),
                               method_colour(method), marker, f"{label} k={k}, T={temperature:g}")
                points.append(f"{label} at k={k}, T={temperature:g}")
    for temperature in _temperatures(rows, method="stingy_kd", teacher="teacher"):
        if temperature == stingy_t:
            continue
        for k, seeds in _stingy_curve(rows, temperature).items():
            span += _point(ax, k - 0.12, seeds.values(), method_colour("stingy_kd"), "v",
                           f"stingy KD k={k}, T={temperature:g}")
            points.append(f"stingy KD at k={k}, T={temperature:g}")
    for temperature in _temperatures(rows, teacher="nasty"):
        span += _band(ax, _by_seed(rows, teacher="nasty", temperature=temperature).values(),
                      method_colour("nasty_kd"), f"KD from the Nasty Teacher T={temperature:g}",
                      (0, (1, 1)))
        bands.append(f"KD from the Nasty Teacher at T={temperature:g}")
    ax.set_xticks(list(curve) or [1])
    ax.set_xlabel(f"k, logits the stingy teacher keeps (of {num_classes})")
    ax.set_ylabel("test accuracy (%)")
    if span:
        pad = max(1.0, 0.06 * (max(span) - min(span)))
        ax.set_ylim(min(span) - pad, max(span) + pad)
    return bands, points


def shape_against_ratio(ax, rows, paper: dict, stingy_t, num_classes) -> None:
    """The right panel: stingy minus labels only against r, ours and the paper's."""
    ax.axhline(0, color=BLACK, lw=0.8)
    ablation = paper["sparse_ratio_ablation"]
    paper_t = paper["settings"]["cifar100"]["stingy_kd"]["temperature"]
    for (name, values), marker in zip(
            [(n, v) for n, v in ablation.items() if isinstance(v, dict) and "stingy" in v],
            ("^", "v", "P")):
        ax.plot(ablation["ratios"], [v - values["scratch"] for v in values["stingy"]],
                color=GREY, marker=marker, ms=3.5, lw=1, ls="--",
                label=f"paper CIFAR-100 {name.replace('_to_', '->')}, T={paper_t:g}")
    scratch = _by_seed(rows, method="scratch")
    ours = []
    for k, seeds in _stingy_curve(rows, stingy_t).items():
        difference = paired(seeds, scratch)
        if len(difference):
            ours.append((k / num_classes, *_interval(difference)))
    if ours:
        ratios, means, lows, highs = zip(*ours)
        ax.errorbar(ratios, means, yerr=[[m - lo for m, lo in zip(means, lows)],
                                         [h - m for m, h in zip(means, highs)]],
                    color=method_colour("stingy_kd"), marker="o", ms=4, capsize=2, lw=1.4,
                    label=f"ours CIFAR-10, T={stingy_t:g}")
    ax.set_xscale("log")
    ax.set_xticks(ablation["ratios"], [f"{100 * r:g}" for r in ablation["ratios"]])
    ax.minorticks_off()
    ax.set_xlabel("r = k / K (%)")
    ax.set_ylabel("stingy minus labels only (points)")
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2))


def teacher_text(teachers_csv) -> str:
    """The sweep's teachers at noise 0 with their test accuracy, from its teachers.csv."""
    if teachers_csv is None or not Path(teachers_csv).is_file():
        return "the sweep's teachers (teachers.csv absent)"
    rows = [r for r in read_rows(teachers_csv, SWEEP_TEACHERS, ("kind", "model", "test_accuracy"))
            if r.get("noise", 0) == 0]
    names = {"teacher": "teacher", "nasty": "Nasty Teacher"}
    return " and ".join(f"the {r['model']} {names.get(r['kind'], r['kind'])} "
                        f"({100 * r['test_accuracy']:.1f}% test accuracy)" for r in rows)


def draw_cifar_k_curve(rows_csv, out_stem, paper_numbers=None, teachers_csv=None) -> dict:
    """F5 (see the module docstring) from the sweep's rows.csv at noise 0, one student model
    (the first in the file); ``teachers_csv`` names its teachers."""
    rows = read_rows(rows_csv, SWEEP_ROWS, COLUMNS)
    model = rows[0]["model"]
    rows = [r for r in rows if r["model"] == model and r["noise"] == 0]
    for r in rows:
        r["k"] = 0 if isinstance(r["k"], str) or math.isnan(r["k"]) else int(r["k"])
    seeds = sorted({int(r["seed"]) for r in rows})
    stingy_t, num_classes = curve_temperature(rows), class_count(rows)
    paper = paper_numbers or load_paper_numbers()
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 4.2),
                                      gridspec_kw={"width_ratios": [1.5, 1]})
    bands, points = accuracy_against_k(left, rows, stingy_t, num_classes)
    left.set_title(f"CIFAR-10, {model} students, {len(seeds)} seeds")
    left.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    shape_against_ratio(right, rows, paper, stingy_t, num_classes)
    right.set_title("stingy minus labels only, against r")
    record = save_figure(fig, out_stem)
    paper_t = paper["settings"]["cifar100"]["stingy_kd"]["temperature"]
    record["caption"] = (
        f"CIFAR-10 (JPEG q75 mirror) {model} students distilled from the logit bank of "
        f"{teacher_text(teachers_csv)} ({source_name(rows_csv)}, noise 0; {len(seeds)} seeds, "
        "bars and bands are 95% t-intervals over seeds). Left: accuracy against k (of "
        f"K={num_classes}); stingy KD at T={stingy_t:g} as a curve; bands: " + ", ".join(bands)
        + (f"; points at their k: {', '.join(points)}" if points else "")
        + ". Right: stingy KD at "
        f"T={stingy_t:g} minus labels only, paired by seed, against r = k/K, beside the "
        f"paper's sparse-ratio ablation (stingy minus scratch, T={paper_t:g}), which the paper "
        "reports for CIFAR-100 only (read off a plot, +-0.5 points): its shape, not its level, "
        "is comparable.")
    return record
