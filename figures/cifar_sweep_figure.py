"""F5: the CIFAR-10 sweep's student accuracy against k, from its per-seed rows.csv.

Left: test accuracy against the number of kept logits k (of 10), stingy KD at T = 20 (the
paper's setting) with 95% t-intervals over seeds; labels only and normal KD at T = 4 as bands
(mean and 95% interval); the other students as points at their k (within-M and tail-bucket
KD at k = 2, T = 20; the temperature ablation: stingy KD at T = 4, normal KD at T = 20; KD
from the Nasty Teacher). Right: stingy KD minus labels only against r = k/K, paired by seed,
beside the paper's sparse-ratio ablation (stingy minus scratch; the paper reports no CIFAR-10
ratio sweep, so its shape is CIFAR-100's, read off a plot to +-0.5)."""

from __future__ import annotations

import math
from collections import defaultdict

import matplotlib.pyplot as plt

from stingy.figures.inputs import read_rows, source_name
from stingy.figures.paper_numbers import load_paper_numbers
from stingy.figures.style import BLACK, FULL_WIDTH, GREY, method_colour, save_figure
from stingy.intervals import paired, t_interval

SWEEP_ROWS = "CIFAR-10 sweep runs (one row per seed), written by `stingy sweep collect`"
COLUMNS = ("model", "seed", "noise", "label", "method", "teacher", "k", "temperature",
           "test_accuracy")
STINGY_T = 20.0  # the paper's CIFAR-10 stingy temperature
NORMAL_T = 4.0  # the paper's CIFAR-10 normal-KD temperature


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


def _stingy_curve(rows, temperature) -> dict:
    """{k: {seed: accuracy %}} of stingy KD from the normal teacher at ``temperature``."""
    curve = defaultdict(dict)
    for r in rows:
        if r["method"] == "stingy_kd" and r["teacher"] == "teacher" and \
                r["temperature"] == temperature:
            curve[int(r["k"])][int(r["seed"])] = 100.0 * float(r["test_accuracy"])
    return dict(sorted(curve.items()))


def accuracy_against_k(ax, rows) -> None:
    """The left panel (see the module docstring)."""
    span = []
    span += _band(ax, _by_seed(rows, method="scratch").values(), GREY, "labels only", ":")
    span += _band(ax, _by_seed(rows, label=f"kd-T{NORMAL_T}").values(),
                  method_colour("normal_kd"), f"normal KD T={NORMAL_T:g}")
    curve = _stingy_curve(rows, STINGY_T)
    stats = [_interval(seeds.values()) for seeds in curve.values()]
    means = [s[0] for s in stats]
    errors = [[m - s[1] for m, s in zip(means, stats)], [s[2] - m for m, s in zip(means, stats)]]
    ax.errorbar(list(curve), means, yerr=errors, color=method_colour("stingy_kd"), marker="o",
                ms=4, capsize=2, lw=1.4, label=f"stingy KD T={STINGY_T:g}", zorder=5)
    span += [v for s in stats for v in s if not math.isnan(v)]
    ks = sorted({int(r["k"]) for r in rows if r["method"] != "stingy_kd" and r["k"] > 0})
    others = [(dict(method="within_m_kd"), "within_m_kd", "s", "within-M KD"),
              (dict(method="tail_bucket_kd"), "tail_bucket_kd", "D", "tail-bucket KD")]
    for offset, (match, colour, marker, label) in enumerate(others, start=1):
        for k in ks:
            span += _point(ax, k + 0.12 * offset, _by_seed(rows, k=k, **match).values(),
                           method_colour(colour), marker, f"{label} k={k}")
    for temperature in sorted({r["temperature"] for r in rows if r["method"] == "stingy_kd"}
                              - {STINGY_T}):
        for k, seeds in _stingy_curve(rows, temperature).items():
            span += _point(ax, k - 0.12, seeds.values(), method_colour("stingy_kd"), "v",
                           f"stingy KD T={temperature:g}, k={k}")
    for temperature in sorted({r["temperature"] for r in rows if r["method"] == "normal_kd"
                               and r["teacher"] == "teacher"} - {NORMAL_T}):
        span += _band(ax, _by_seed(rows, label=f"kd-T{temperature}").values(),
                      method_colour("normal_kd"), f"normal KD T={temperature:g}", "-.")
    span += _band(ax, _by_seed(rows, teacher="nasty").values(), method_colour("nasty_kd"),
                  "KD from the Nasty Teacher", (0, (1, 1)))
    ax.set_xticks(list(curve) or [1])
    ax.set_xlabel("k, logits the stingy teacher keeps (of 10)")
    ax.set_ylabel("test accuracy (%)")
    if span:
        pad = max(1.0, 0.06 * (max(span) - min(span)))
        ax.set_ylim(min(span) - pad, max(span) + pad)


def shape_against_ratio(ax, rows, paper: dict, num_classes: int = 10) -> None:
    """The right panel: stingy minus labels only against r, ours and the paper's."""
    ax.axhline(0, color=BLACK, lw=0.8)
    ablation = paper["sparse_ratio_ablation"]
    for (name, values), marker in zip(
            [(n, v) for n, v in ablation.items() if isinstance(v, dict) and "stingy" in v],
            ("^", "v", "P")):
        ax.plot(ablation["ratios"], [v - values["scratch"] for v in values["stingy"]],
                color=GREY, marker=marker, ms=3.5, lw=1, ls="--",
                label=f"paper CIFAR-100 {name.replace('_to_', '->')}")
    scratch = _by_seed(rows, method="scratch")
    ours = []
    for k, seeds in _stingy_curve(rows, STINGY_T).items():
        difference = paired(seeds, scratch)
        if len(difference):
            ours.append((k / num_classes, *_interval(difference)))
    if ours:
        ratios, means, lows, highs = zip(*ours)
        ax.errorbar(ratios, means, yerr=[[m - lo for m, lo in zip(means, lows)],
                                         [h - m for m, h in zip(means, highs)]],
                    color=method_colour("stingy_kd"), marker="o", ms=4, capsize=2, lw=1.4,
                    label=f"ours CIFAR-10, T={STINGY_T:g}")
    ax.set_xscale("log")
    ax.set_xticks(ablation["ratios"], [f"{100 * r:g}" for r in ablation["ratios"]])
    ax.minorticks_off()
    ax.set_xlabel("r = k / K (%)")
    ax.set_ylabel("stingy minus labels only (points)")
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2))


def draw_cifar_k_curve(rows_csv, out_stem, paper_numbers=None) -> dict:
    """F5 (see the module docstring) from the sweep's rows.csv at noise 0, one student model
    (the first in the file)."""
    rows = read_rows(rows_csv, SWEEP_ROWS, COLUMNS)
    model = rows[0]["model"]
    rows = [r for r in rows if r["model"] == model and r["noise"] == 0]
    for r in rows:
        r["k"] = 0 if isinstance(r["k"], str) or math.isnan(r["k"]) else int(r["k"])
    seeds = sorted({int(r["seed"]) for r in rows})
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 4.2),
                                      gridspec_kw={"width_ratios": [1.5, 1]})
    accuracy_against_k(left, rows)
    left.set_title(f"CIFAR-10, {model} students, {len(seeds)} seeds")
    left.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    shape_against_ratio(right, rows, paper_numbers or load_paper_numbers())
    right.set_title("stingy minus labels only, against r")
    record = save_figure(fig, out_stem)
    record["caption"] = (
        f"CIFAR-10 (JPEG q75 mirror) {model} students distilled from the logit bank "
        f"({source_name(rows_csv)}, noise 0; {len(seeds)} seeds, bars and bands are 95% "
        f"t-intervals over seeds). Left: accuracy against k; stingy KD at the paper's T = "
        f"{STINGY_T:g} as a curve, labels only and normal KD at T = {NORMAL_T:g} as bands, the "
        "other students as points at their k, the temperature ablation included. Right: "
        "stingy minus labels only, paired by seed, against r = k/K, beside the paper's "
        "sparse-ratio ablation (stingy minus scratch), which the paper reports for CIFAR-100 "
        "only (read off a plot, +-0.5 points): its shape, not its level, is comparable.")
    return record
