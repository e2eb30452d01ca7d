"""F1-F3: the theory layer's grids drawn against temperature and sparse ratio.

Inputs are tidy rows of ``stingy.theory.sweep.theory_grid`` (columns k, ratio, num_classes,
temperature, kept_mass, ..., signal_to_drive_bound); several rows per (k, T) are averaged.
Colours are the sparse ratio's (``style.ratio_colour``). Curves that rest on a 1/T expansion
are drawn only where T is at least the logit range they assume small against T: the full
range D for the kept-mass expansion, the kept range D_M for the T4 terms and the T5 asymptote.
Both ranges are read back from the grid's own bound columns (T2: m <= 1/(1 + (K-k)/k e^{-D/T}),
T3: tanh(D_M / 4T)), so the mask uses the logits the grid was computed on. Dotted vertical
lines mark the temperatures a caller names (a run's students, else the paper's settings), and
legends sit outside the panels.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from stingy.figures.inputs import group_mean, read_rows, source_name
from stingy.figures.paper_numbers import paper_temperatures
from stingy.figures.style import (
    BLACK,
    FULL_WIDTH,
    GREY,
    mark_temperatures,
    marked_text,
    plot_finite,
    ratio_axis,
    ratio_colour,
    ratio_label,
    ratio_legend,
    save_figure,
)

THEORY_GRID = "theory grid, written by the theory stage of `stingy reproduce`"
TEACHER_THEORY = "theory grid on a trained teacher's test logits, written by `stingy quick`"
PAPER_SETTINGS = "the paper's CIFAR-10 settings"
BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.28)}  # a legend under its panel


def pick_evenly(values: list, count: int) -> list:
    """At most ``count`` of the sorted ``values``, evenly spread, first and last included."""
    values = sorted(values)
    if len(values) <= count:
        return values
    index = np.unique(np.round(np.linspace(0, len(values) - 1, count)).astype(int))
    return [values[i] for i in index]


def proper_keep_counts(rows: list[dict], num_classes: int) -> list:
    """The k values in ``rows`` below K (k = K keeps everything: m = 1, no error)."""
    ks = {row["k"] for row in rows}
    return sorted(k for k in ks if k < num_classes) or sorted(ks)


def largest_class_count(rows: list[dict]) -> int:
    return max(int(row["num_classes"]) for row in rows)


def _series(rows, k, column):
    chosen = sorted((row for row in rows if row["k"] == k), key=lambda row: row["temperature"])
    return (np.array([row["temperature"] for row in chosen]),
            np.array([row[column] for row in chosen], dtype=float))


def _median_finite(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.median(values)) if values.size else math.nan


def full_range(rows: list[dict], num_classes: int) -> float:
    """The logit range D implied by the grid's T2 upper bound m <= 1/(1 + (K-k)/k e^{-D/T}),
    median over the (k, T) rows where the bound is informative (0 < 1/m_up - 1)."""
    values = []
    for row in rows:
        k, upper, temperature = row["k"], row["kept_mass_upper"], row["temperature"]
        if 0 < k < num_classes and 0 < upper < 1 - 1e-9:
            values.append(temperature * math.log((num_classes - k) / k / (1 / upper - 1)))
    return _median_finite(values)


def kept_range(rows: list[dict], k) -> float:
    """The kept logit range D_M implied by the grid's T3 bound tanh(D_M / 4T) for this k."""
    values = [4 * row["temperature"] * math.atanh(row["tv_to_uniform_bound"]) for row in rows
              if row["k"] == k and 0 < row["tv_to_uniform_bound"] < 1 - 1e-9]
    return _median_finite(values)


def masked_below(temperature, values, threshold):
    """``values`` with nan where T < threshold (a nan threshold masks nothing)."""
    values = np.asarray(values, dtype=float)
    if math.isnan(threshold):
        return values
    return np.where(np.asarray(temperature) >= threshold, values, np.nan)


def _kept_mass_panel(ax, rows, title, max_lines, temperatures):
    num_classes = largest_class_count(rows)
    rows = [row for row in rows if int(row["num_classes"]) == num_classes]
    columns = ("kept_mass", "kept_mass_lower", "kept_mass_upper", "kept_mass_expansion")
    table = group_mean(rows, ("k", "temperature"), columns)
    logit_range = full_range(table, num_classes)
    ks = pick_evenly(proper_keep_counts(table, num_classes), max_lines)
    for k in ks:
        colour = ratio_colour(k / num_classes)
        temperature, mass = _series(table, k, "kept_mass")
        ax.plot(temperature, mass, color=colour, label=ratio_label(k / num_classes))
        ax.plot(*_series(table, k, "kept_mass_upper"), color=colour, ls="--", lw=1)
        expansion = _series(table, k, "kept_mass_expansion")[1]
        plot_finite(ax, temperature, masked_below(temperature, expansion, logit_range), color=colour,
                ls=":", lw=1.2)
        ax.plot(*_series(table, k, "kept_mass_lower"), color=colour, ls="-.", lw=0.8)
    if not math.isnan(logit_range):
        ax.axvspan(min(r["temperature"] for r in table), logit_range, color=GREY, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel("kept mass m")
    ax.set_title(f"{title}, K={num_classes}")
    mark_temperatures(ax, temperatures)
    return num_classes, ks, logit_range


def _style_legend(fig, entries):
    handles = [Line2D([], [], color=GREY, ls=style, lw=lw, label=label)
               for style, lw, label in entries]
    return fig.legend(handles=handles, loc="outside lower center", ncol=len(entries))



def draw_kept_mass(theory_grid, out_stem, teacher_theory=None,
                   theory_label="representative synthetic logits", teacher_label=None,
                   temperatures=None, temperature_source=PAPER_SETTINGS, max_lines=6) -> dict:
    """F1: kept mass m(T) for several k with its T2 bounds and 1/T expansion (masked at T < D),
    on synthetic logits and, when ``teacher_theory`` is given, on a trained teacher's test
    logits (``teacher_label`` names the teacher). Dotted lines mark ``temperatures`` ({method
    label: T}, named by ``temperature_source``; default: the paper's settings)."""
    temperatures = temperatures or paper_temperatures()
    columns = ("k", "num_classes", "temperature", "kept_mass", "kept_mass_lower",
               "kept_mass_upper", "kept_mass_expansion")
    rows = read_rows(theory_grid, THEORY_GRID, columns)
    teacher_rows = read_rows(teacher_theory, TEACHER_THEORY, columns) if teacher_theory else None
    fig, axes = plt.subplots(1, 2 if teacher_rows else 1, sharey=True, squeeze=False,
                             figsize=(FULL_WIDTH if teacher_rows else FULL_WIDTH * 0.6, 2.9))
    left = axes[0][0]
    num_classes, ks, logit_range = _kept_mass_panel(left, rows, "Synthetic logits", max_lines,
                                                    temperatures)
    if teacher_rows:
        right = axes[0][1]
        teacher_classes, teacher_ks, teacher_range = _kept_mass_panel(
            right, teacher_rows, "Trained teacher", max_lines, temperatures)
        right.set_ylabel("")
        name = teacher_label or "a trained teacher"
        teacher_text = (f"right: the same quantities on the test logits of {name} "
                        f"({source_name(teacher_theory)}, K={teacher_classes}, k = "
                        f"{', '.join(f'{k:g}' for k in teacher_ks)}; D = {teacher_range:.3g})")
    else:
        teacher_text = "no trained teacher's logits were available (teacher_theory.csv missing)"
    ratio_legend(fig, axes[0])
    _style_legend(fig, (("-", 1.4, "exact m"), ("--", 1, "T2 upper bound"),
                        ("-.", 0.8, "lower bound r=k/K"), (":", 1.2, "1/T expansion (T >= D)")))
    record = save_figure(fig, out_stem)
    record["caption"] = (
        "Kept mass m (the dense tempered teacher's mass on its top-k classes) against "
        "temperature, log T axis; colour = sparse ratio r = k/K. Solid: exact; dashed and "
        "dash-dot: the T2 bounds k/K <= m <= 1/(1+((K-k)/k)e^{-D/T}); dotted: the 1/T "
        "expansion, drawn only at T >= D (the grey band is T < D, where the expansion's "
        f"assumption fails). Left: {theory_label} ({source_name(theory_grid)}, K={num_classes}, "
        f"k = {', '.join(f'{k:g}' for k in ks)}; mean logit range D = {logit_range:.3g}); "
        f"{teacher_text}. " + marked_text(temperatures, temperature_source)
        + " m falls to r only when T is much larger than D.")
    return record


def draw_approximation_error(theory_grid, out_stem, theory_label="representative synthetic logits",
                             student_label=None, max_lines=6) -> dict:
    """F2: the paper's approximation error against T (TV to uniform on M with its tanh bound,
    mass-shift error with its bound) and, when present, the T4 expansion terms (masked at
    T < D_M); dotted lines at the paper's temperatures."""
    temperatures = paper_temperatures()
    columns = ("k", "num_classes", "temperature", "tv_to_uniform", "tv_to_uniform_bound",
               "mass_shift_error", "mass_shift_error_bound")
    rows = read_rows(theory_grid, THEORY_GRID, columns)
    num_classes = largest_class_count(rows)
    rows = [row for row in rows if int(row["num_classes"]) == num_classes]
    terms = ("exact", "order_t2", "order_t", "order_1", "remainder")
    has_terms = all(name in rows[0] for name in terms)
    fig, axes = plt.subplots(1, 3 if has_terms else 2, figsize=(FULL_WIDTH, 3.4))
    table = group_mean(rows, ("k", "temperature"),
                       columns[3:] + tuple(c for c in ("tv_to_uniform_worst_case",) if c in rows[0]))
    proper = proper_keep_counts(table, num_classes)
    zero_tv = [k for k in proper if not np.any(_series(table, k, "tv_to_uniform")[1] > 0)]
    ks = pick_evenly([k for k in proper if k not in zero_tv], max_lines)
    for ax, (value, bound, name) in zip(axes, (
            ("tv_to_uniform", "tv_to_uniform_bound", "(a) TV to uniform on M"),
            ("mass_shift_error", "mass_shift_error_bound", "(b) mass-shift error"))):
        worst = "tv_to_uniform_worst_case"
        extra = ((worst, ":"),) if value == "tv_to_uniform" and worst in rows[0] else ()
        for k in ks:
            colour = ratio_colour(k / num_classes)
            for column, style in ((value, "-"), (bound, "--"), *extra):
                temperature, values = _series(table, k, column)
                ax.plot(temperature, np.where(values > 0, values, np.nan), color=colour, ls=style,
                        lw=1.4 if style == "-" else 1,
                        label=ratio_label(k / num_classes) if style == "-" else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("temperature T (log scale)")
        ax.set_ylabel("error (log scale)")
        ax.set_title(name)
        mark_temperatures(ax, temperatures)
    axes[0].legend(title="sparse ratio", ncol=2, **BELOW)
    legend = [("-", 1.4, "value"), ("--", 1, "bound")]
    if "tv_to_uniform_worst_case" in rows[0]:
        legend.append((":", 1, "exact worst case (T3, given D_M)"))
    note = ""
    if has_terms:
        note = _draw_t4_terms(axes[2], rows, table, ks[len(ks) // 2], num_classes, student_label,
                              temperatures)
    axes[1].legend(handles=[Line2D([], [], color=GREY, ls=s, lw=w, label=label)
                            for s, w, label in legend], title="(a) and (b)", **BELOW)
    missing = ""
    if zero_tv:
        missing = (" Not drawn in (a)-(b): " + ", ".join(f"k={k:g}" for k in zero_tv)
                   + ", where the TV to uniform on M is exactly 0 (one kept class), which a "
                   "log axis cannot show.")
    record = save_figure(fig, out_stem)
    record["caption"] = (
        "How far the paper's approximation (p~ uniform on the kept set M, delta(i) = (1-r)/k) "
        "is from the exact sparse target, against temperature (log-log axes), on "
        f"{theory_label} ({source_name(theory_grid)}, K={num_classes}, k = "
        f"{', '.join(f'{k:g}' for k in ks)}); colour = sparse ratio. "
        "(a) total variation to the uniform distribution on M with its T3 bound tanh(D_M/(4T)) "
        "(dashed)" + (", and the exact worst case over logits with the same kept range (dotted; "
                      "tanh(D_M/4T) is reached only at isolated ranges)"
                      if "tv_to_uniform_worst_case" in rows[0] else "")
        + "; (b) the mass-shift error with its T3b bound (dashed)." + missing + note + " "
        + marked_text(temperatures, PAPER_SETTINGS))
    return record


def _draw_t4_terms(ax, rows, table, k, num_classes, student_label, temperatures) -> str:
    """Panel (c) of F2: |T4 terms| of k against T, masked at T < D_M; returns its caption."""
    terms = ("exact", "order_t2", "order_t", "order_1", "remainder")
    d_m = kept_range(table, k)
    term_rows = group_mean([row for row in rows if row["k"] == k], ("temperature",), terms)
    temperature = np.array([row["temperature"] for row in term_rows])
    styles = {"exact": ("-", None, r"$T^2\,$KL (exact)"),
              "order_t2": ("--", None, r"$T^2 \log(K/k)$"),
              "order_t": ("-.", None, r"order $T$: drive"),
              "order_1": (":", None, "order 1"),
              "remainder": ("none", "o", "remainder")}
    for name in terms:
        values = np.abs([row[name] for row in term_rows])
        style, marker, label = styles[name]
        shown = values if name == "exact" else masked_below(temperature, values, d_m)
        plot_finite(ax, temperature, np.where(shown > 0, shown, np.nan),
                    color=ratio_colour(k / num_classes), ls=style, marker=marker, ms=2.5,
                    label=label)
    if not math.isnan(d_m):
        ax.axvspan(temperature.min(), d_m, color=GREY, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel("|term| (log scale)")
    ax.set_title(f"(c) T4 terms, {ratio_label(k / num_classes)}")
    ax.legend(ncol=2, handlelength=1.8, **BELOW)
    mark_temperatures(ax, temperatures)
    students = student_label or "the grid's student logits"
    return (f" (c): absolute values of the T4 terms of T^2 KL(p~||q) for k={k:g}, one "
            f"colour (its ratio), one line style per term; student logits: {students}. The "
            f"expansion terms are drawn only at T >= D_M = {d_m:.3g} (grey band: T < D_M).")


def _draw_ratio_against_r(ax, table, drawn, ranges, exact, num_classes, value, marked):
    """Panel (b) of F3: the ratio against r at the grid temperatures nearest the ``marked``
    ones; returns (those temperatures, the ones drawn)."""
    temperatures = sorted({row["temperature"] for row in table})
    nearest = sorted({_nearest(temperatures, t) for t in marked.values()})
    shown = []
    for temperature, style, marker in zip(nearest, ("-", "--"), ("o", "s")):
        chosen = sorted((row for row in table if row["temperature"] == temperature
                         and row["k"] in drawn and (exact or temperature >= ranges[row["k"]])),
                        key=lambda row: row["k"])
        if not chosen:
            continue
        shown.append(temperature)
        left_ratio = [row["k"] / num_classes for row in chosen]
        ax.plot(left_ratio, [row[value] for row in chosen], color=BLACK, ls=style, lw=1,
                   label=f"T={temperature:.3g}")
        ax.scatter(left_ratio, [row[value] for row in chosen], marker=marker, s=18,
                      c=[ratio_colour(r) for r in left_ratio], zorder=3, edgecolors=BLACK,
                      linewidths=0.5)
    ratio_axis(ax, [k / num_classes for k in drawn])
    ax.set_yscale("log")
    ax.set_ylabel("signal / drive (log scale)")
    ax.set_title("(b) against r near the paper's T")
    ax.legend(loc="best")
    return nearest, shown


def _nearest(values, target):
    return min(values, key=lambda value: abs(math.log(value / target)))


def draw_signal_to_drive(theory_grid, out_stem, theory_label="representative synthetic logits",
                         max_lines=6) -> dict:
    """F3: the T5 signal-to-drive ratio against T for every r (its high-T asymptote dashed,
    drawn only at T >= D_M), and against r at the grid temperatures nearest the paper's. The
    dashed curve is the grid's 1/T asymptote column when it has one (grids that store the exact
    ratio beside it), else its bound column."""
    temperatures = paper_temperatures()
    value = "signal_to_drive"
    columns = ("ratio", "k", "num_classes", "temperature", value, "signal_to_drive_bound",
               "tv_to_uniform_bound")
    rows = read_rows(theory_grid, THEORY_GRID, columns)
    exact = "signal_to_drive_asymptote" in rows[0]  # then signal_to_drive is the exact ratio
    dashed = "signal_to_drive_asymptote" if exact else "signal_to_drive_bound"
    num_classes = largest_class_count(rows)
    rows = [row for row in rows if int(row["num_classes"]) == num_classes
            and not math.isnan(row[value])]
    if not rows:
        raise ValueError(f"{theory_grid} has no finite {value} values")
    table = group_mean(rows, ("k", "temperature"),
                       (value, dashed, "tv_to_uniform_bound", "ratio"))
    ks = sorted({row["k"] for row in table if row["k"] < num_classes})
    zero = [k for k in ks if not np.any(_series(table, k, value)[1] > 0)]
    drawn = pick_evenly([k for k in ks if k not in zero], max_lines)
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.7))
    ranges = {}
    for k in drawn:
        colour = ratio_colour(k / num_classes)
        temperature, ratio = _series(table, k, value)
        ranges[k] = kept_range(table, k)
        if not exact:  # the 1/T form: drawn only where its expansion holds
            ratio = masked_below(temperature, ratio, ranges[k])
        plot_finite(left, temperature, ratio, color=colour, label=ratio_label(k / num_classes))
        asymptote = masked_below(temperature, _series(table, k, dashed)[1], ranges[k])
        plot_finite(left, temperature, np.where(asymptote > 0, asymptote, np.nan), color=colour,
                  ls="--", lw=1)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("temperature T (log scale)")
    left.set_ylabel("signal / drive (log scale)")
    left.set_title("(a) against T")
    ratio_legend(fig, [left])
    mark_temperatures(left, temperatures)
    nearest, shown = _draw_ratio_against_r(right, table, drawn, ranges, exact, num_classes,
                                           value, temperatures)
    record = save_figure(fig, out_stem)
    quantity = ("the exact ratio ||p~ - U_M|| / sqrt(1/k - 1/K); dashed: its 1/T asymptote, "
                "drawn only at T >= D_M" if exact else
                "the grid's signal_to_drive column, the high-temperature form sqrt(Var_M z) / "
                "(T sqrt(1-r)), so it and the dashed T5 bound are drawn only at T >= D_M, where "
                "that form holds; T and r points below D_M are left out of (b) too")
    zero_text = ("; ".join(f"k={k:g} (r={100 * k / num_classes:.3g}%)" for k in zero)
                 + ": the ratio is exactly 0 (one kept class, no ranking inside M), so it has "
                 "no line on these log axes. " if zero else "")
    ranges_text = ", ".join(f"k={k:g}: {ranges[k]:.3g}" for k in drawn if not math.isnan(ranges[k]))
    record["caption"] = (
        "T5: ratio of the teacher-dependent signal to the order-T drive of the stingy KD "
        f"gradient ({quantity}) on {theory_label} ({source_name(theory_grid)}, K={num_classes}, "
        f"k = {', '.join(f'{k:g}' for k in drawn)}); "
        f"colour = sparse ratio. (a) against T (D_M per k: {ranges_text}); (b) against r at T = "
        + " and ".join(f"{t:.3g}" for t in shown) + " (of "
        + ", ".join(f"{t:.3g}" for t in nearest) + ", the grid temperatures nearest the "
        f"paper's). {zero_text}Small values mean the gradient is mostly 'kept vs dropped' and "
        "little of the teacher's ranking inside M. " + marked_text(temperatures, PAPER_SETTINGS))
    return record
