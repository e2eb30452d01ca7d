"""F1-F3: the theory layer's grids drawn against temperature and sparse ratio.

Inputs are tidy rows of ``stingy.theory.sweep.theory_grid`` (columns k, ratio, num_classes,
temperature, kept_mass, ..., signal_to_drive_bound); several rows per (k, T) are averaged.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from stingy.figures.inputs import group_mean, read_rows
from stingy.figures.style import COLUMN_WIDTH, FULL_WIDTH, GREY, SEQUENCE, save_figure

THEORY_GRID = "theory grid, written by the theory stage of `stingy reproduce`"
TEACHER_THEORY = "theory grid on a trained teacher's test logits, written by `stingy quick`"


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
    chosen = [row for row in rows if row["k"] == k]
    return (np.array([row["temperature"] for row in chosen]),
            np.array([row[column] for row in chosen], dtype=float))


def _kept_mass_panel(ax, rows, title, max_lines):
    num_classes = largest_class_count(rows)
    rows = [row for row in rows if int(row["num_classes"]) == num_classes]
    columns = ("kept_mass", "kept_mass_lower", "kept_mass_upper", "kept_mass_expansion")
    table = group_mean(rows, ("k", "temperature"), columns)
    for colour, k in zip(SEQUENCE, pick_evenly(proper_keep_counts(table, num_classes), max_lines)):
        temperature, mass = _series(table, k, "kept_mass")
        ax.plot(temperature, mass, color=colour, label=f"k={k:g} (r={k / num_classes:.0%})")
        ax.plot(*_series(table, k, "kept_mass_upper"), color=colour, ls="--", lw=1)
        ax.plot(*_series(table, k, "kept_mass_expansion"), color=colour, ls=":", lw=1.2)
        ax.plot(*_series(table, k, "kept_mass_lower"), color=colour, ls="-.", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("temperature T")
    ax.set_ylabel("kept mass m")
    ax.set_title(f"{title}, K={num_classes}")
    return num_classes


def _style_legend(fig):
    handles = [Line2D([], [], color=GREY, ls=style, lw=lw, label=label) for style, lw, label in (
        ("-", 1.4, "exact m"), ("--", 1, "upper bound"), ("-.", 0.8, "lower bound k/K"),
        (":", 1.2, "1/T expansion"))]
    return fig.legend(handles=handles, loc="outside lower center", ncol=4)


def draw_kept_mass(theory_grid, out_stem, teacher_theory=None, theory_label="representative logits",
                   max_lines=4) -> dict:
    """F1: kept mass m(T) for several k with its T2 bounds and 1/T expansion, in theory and,
    when ``teacher_theory`` is given, on a trained teacher's test logits."""
    columns = ("k", "num_classes", "temperature", "kept_mass", "kept_mass_lower",
               "kept_mass_upper", "kept_mass_expansion")
    rows = read_rows(theory_grid, THEORY_GRID, columns)
    teacher_rows = read_rows(teacher_theory, TEACHER_THEORY, columns) if teacher_theory else None
    if teacher_rows:
        fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.8), sharey=True)
    else:
        fig, left = plt.subplots(figsize=(COLUMN_WIDTH * 1.6, 2.6))
    _kept_mass_panel(left, rows, "Theory", max_lines)
    left.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), title=None if teacher_rows else
                "theory only:\nno trained teacher")
    if teacher_rows:
        _kept_mass_panel(right, teacher_rows, "Measured: trained teacher", max_lines)
        right.set_ylabel("")
        right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        measured = ("right: the same quantities on a trained teacher's test logits "
                    "(teacher_theory.csv)")
    else:
        measured = ("theory only: no trained teacher's logits were available "
                    "(teacher_theory.csv missing; run `stingy quick` with CIFAR-10 data)")
    _style_legend(fig)
    paths = save_figure(fig, out_stem)
    caption = ("Kept mass m = sum of the dense tempered teacher over its top-k classes against "
               "temperature (solid), with the T2 bounds k/K <= m <= 1/(1+((K-k)/k)e^{-D/T}) "
               "(dash-dot, dashed) and the 1/T expansion (dotted). "
               f"Left: {theory_label}; {measured}. "
               "m falls to r = k/K only when T is much larger than the logit range.")
    return {**paths, "caption": caption}


def draw_approximation_error(theory_grid, out_stem, theory_label="representative logits",
                             max_lines=4) -> dict:
    """F2: the paper's approximation error against T (TV to uniform with its tanh bound,
    mass-shift error with its bound) and, when present, the T4 expansion terms."""
    columns = ("k", "num_classes", "temperature", "tv_to_uniform", "tv_to_uniform_bound",
               "mass_shift_error", "mass_shift_error_bound")
    rows = read_rows(theory_grid, THEORY_GRID, columns)
    num_classes = largest_class_count(rows)
    rows = [row for row in rows if int(row["num_classes"]) == num_classes]
    terms = ("exact", "order_t2", "order_t", "order_1", "remainder")
    has_terms = all(name in rows[0] for name in terms)
    fig, axes = plt.subplots(1, 3 if has_terms else 2, figsize=(FULL_WIDTH, 2.5))
    table = group_mean(rows, ("k", "temperature"), columns[3:])
    ks = pick_evenly(proper_keep_counts(table, num_classes), max_lines)
    for ax, (value, bound, name) in zip(axes, (
            ("tv_to_uniform", "tv_to_uniform_bound", "(a) TV to uniform on M"),
            ("mass_shift_error", "mass_shift_error_bound", "(b) mass-shift error"))):
        for colour, k in zip(SEQUENCE, ks):
            for column, style, label in ((value, "-", f"k={k:g}"), (bound, "--", None)):
                temperature, values = _series(table, k, column)
                ax.plot(temperature, np.where(values > 0, values, np.nan), color=colour, ls=style,
                        lw=1.4 if style == "-" else 1, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("temperature T")
        ax.set_title(name)
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], color=GREY, lw=1.4), Line2D([], [], color=GREY, ls="--", lw=1)]
    fig.legend(handles, labels + ["value", "bound"], loc="outside lower center",
               ncol=len(ks) + 2)
    axes[0].set_ylabel("error")
    note = ""
    if has_terms:
        k = _middle_k(ks)
        term_rows = group_mean([row for row in rows if row["k"] == k], ("temperature",), terms)
        temperature = np.array([row["temperature"] for row in term_rows])
        labels = {"exact": r"$T^2\,$KL (exact)", "order_t2": r"$T^2 \log(K/k)$",
                  "order_t": r"$-T(1-r)(\bar s_M - \bar s_{M^c})$", "order_1": "order 1",
                  "remainder": "remainder"}
        styles = {"exact": ("#000000", "-"), "order_t2": (SEQUENCE[0], "--"),
                  "order_t": (SEQUENCE[1], "-"), "order_1": (SEQUENCE[2], "-"),
                  "remainder": (SEQUENCE[3], ":")}
        for name in terms:
            values = np.abs([row[name] for row in term_rows])
            colour, style = styles[name]
            axes[2].plot(temperature, np.where(values > 0, values, np.nan), color=colour, ls=style,
                         label=labels[name])
        axes[2].set_xscale("log")
        axes[2].set_yscale("log")
        axes[2].set_xlabel("temperature T")
        axes[2].set_title(f"(c) T4 terms, |value|, k={k:g}")
        axes[2].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), handlelength=1.5)
        note = (f" Right: absolute values of the T4 terms of T^2 KL(p~||q) for k={k:g} "
                "(order T^2, the order-T drive, order 1 and the O(1/T) remainder).")
    paths = save_figure(fig, out_stem)
    caption = ("How far the paper's approximation (p~ uniform on the kept set M, delta(i) = "
               "(1-r)/k) is from the exact sparse target, against temperature, on "
               f"{theory_label} (K={num_classes}): total variation to the uniform distribution "
               "on M with the bound tanh(D_M/(4T)) (T3b: attained only at isolated ranges "
               "D_M/T = 2 log(k/j - 1); the exact worst case for a given range is the best "
               "two-level value, for k = 2 tanh(D_M/(2T))/2, always below tanh), and the "
               f"mass-shift error with its T3d bound (dashed).{note}")
    return {**paths, "caption": caption}


def _middle_k(ks):
    return ks[len(ks) // 2]


def _edges(centres, log=False):
    """Cell edges around sorted centres (geometric midpoints when ``log``)."""
    centres = np.asarray(centres, dtype=float)
    values = np.log(centres) if log else centres
    if len(values) == 1:
        mids = np.array([values[0] - 0.5, values[0] + 0.5])
    else:
        inner = (values[1:] + values[:-1]) / 2
        mids = np.concatenate([[2 * values[0] - inner[0]], inner, [2 * values[-1] - inner[-1]]])
    return np.exp(mids) if log else mids


def draw_signal_to_drive(theory_grid, out_stem, theory_label="representative logits",
                         max_lines=4) -> dict:
    """F3: the T5 signal-to-drive ratio over (r, T) as a heatmap (log T), and against T for a
    few r with its bound."""
    columns = ("ratio", "num_classes", "temperature", "signal_to_drive", "signal_to_drive_bound")
    rows = read_rows(theory_grid, THEORY_GRID, columns)
    num_classes = largest_class_count(rows)
    rows = [row for row in rows if int(row["num_classes"]) == num_classes
            and not math.isnan(row["signal_to_drive"])]
    if not rows:
        raise ValueError(f"{theory_grid} has no finite signal_to_drive values")
    table = group_mean(rows, ("ratio", "temperature"), columns[3:])
    ratios = sorted({row["ratio"] for row in table})
    temperatures = sorted({row["temperature"] for row in table})
    grid = np.full((len(ratios), len(temperatures)), np.nan)
    for row in table:
        grid[ratios.index(row["ratio"]), temperatures.index(row["temperature"])] = \
            row["signal_to_drive"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.6),
                                      gridspec_kw={"width_ratios": [1.15, 1]})
    positive = grid[np.isfinite(grid) & (grid > 0)]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    mesh = left.pcolormesh(_edges(temperatures, log=True), np.arange(len(ratios) + 1) - 0.5,
                           np.ma.masked_invalid(grid), norm=norm, cmap="viridis", shading="flat")
    left.set_xscale("log")
    left.set_yticks(range(len(ratios)), [f"{r:.0%}" if r >= 0.01 else f"{r:.1%}" for r in ratios])
    left.set_xlabel("temperature T")
    left.set_ylabel("sparse ratio r")
    left.set_title("signal / drive")
    fig.colorbar(mesh, ax=left, pad=0.02).set_label("signal-to-drive ratio")
    for colour, ratio in zip(SEQUENCE, pick_evenly(ratios, max_lines)):
        chosen = [row for row in table if row["ratio"] == ratio]
        temperature = [row["temperature"] for row in chosen]
        right.plot(temperature, [row["signal_to_drive"] for row in chosen], color=colour,
                   label=f"r={ratio:.0%}")
        right.plot(temperature, [row["signal_to_drive_bound"] for row in chosen], color=colour,
                   ls="--", lw=1)
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("temperature T")
    right.set_title("against T (dashed: bound)")
    right.legend(loc="best")
    zero_rows = [ratio for ratio in ratios if not np.any(grid[ratios.index(ratio)] > 0)]
    for ratio in zero_rows:
        left.text(np.sqrt(temperatures[0] * temperatures[-1]), ratios.index(ratio),
                  "signal = 0 (k = 1: no ranking inside M)", ha="center", va="center")
    paths = save_figure(fig, out_stem)
    caption = ("T5: exact ratio ||p~ - U_M|| / sqrt(1/k - 1/K) of the teacher-signal and drive "
               "parts of the stingy KD gradient (they are orthogonal; the ratio does not depend "
               f"on the student) over sparse ratio r and temperature T, on {theory_label} "
               f"(K={num_classes}). Left: heatmap (log colour); right: the ratio against T for "
               "a few r, dashed: the sharp bound on its 1/T asymptote sqrt(Var_M z)/(T sqrt(1-r))"
               " (a bound on the asymptote, not on the exact ratio). With k = 1 there is no "
               "ranking inside M and the signal is 0 (blank row, no line).")
    return {**paths, "caption": caption}
