"""One look for every figure: paper-width sizes, fonts >= 8 pt, a colour-blind-safe palette
(Okabe & Ito 2008) with one fixed colour per method and one per sparse ratio (the same in every
figure), and PNG + PDF output written atomically.

``METHODS`` is the single table of method names (as the result files spell them), legend
labels and colours; it is to be pointed at the method registry ``stingy.methods`` when that
lands. Sparse ratios get colours from one sequential map on log r, so r = 10% has the same
colour in the theory, simulation and CIFAR figures."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import colormaps  # noqa: E402

from stingy.io import atomic_write  # noqa: E402
from stingy.methods import BLACK, GREY, SKY, VERMILLION  # noqa: E402
from stingy.methods import METHODS as REGISTRY  # noqa: E402

FULL_WIDTH = 6.75  # inches, a two-column paper's text width

# name in the result files -> (legend label, colour): every method of the registry
# (stingy.methods), then the series only figures draw (a variant; KD from the Nasty Teacher)
METHODS = {name: (method.label, method.colour) for name, method in REGISTRY.items()}
METHODS.update({
    "stingy_kd_alpha1": ("Stingy KD, alpha=1 (no labels)", VERMILLION),  # drawn dashed
    "nasty_kd": ("Nasty KD", SKY),
})
# Method names of result files written before the registry.
METHOD_ALIASES = {"kd": "normal_kd", "stingy": "stingy_kd", "within": "within_m_kd",
                  "reversed": "reversed_kd", "nasty": "nasty_kd"}
# Teachers drawn in F6: the method whose target each one is.
TEACHER_METHODS = {"normal": "normal_kd", "nasty": "nasty_kd", "stingy": "stingy_kd"}

# Sparse ratios: the paper's six ratios evenly spaced along one sequential map (so that
# neighbours such as 10% and 20% are told apart); other ratios fall in between on log r.
RATIO_MAP = "viridis"
STANDARD_RATIOS = (0.01, 0.05, 0.1, 0.2, 0.5, 0.7)
RATIO_MAP_RANGE = (0.0, 0.88)  # the map's light-yellow end is too faint on white

plt.rcParams.update({
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "savefig.dpi": 220,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.4,
    "pdf.fonttype": 42,  # embed TrueType, editable text in the PDF
})


def canonical_method(name: str) -> str:
    """The table's name for a method (older quick-profile names mapped)."""
    return METHOD_ALIASES.get(name, name)


def method_colour(method: str) -> str:
    return METHODS.get(canonical_method(method), (None, GREY))[1]


def method_label(method: str) -> str:
    method = canonical_method(method)
    return METHODS[method][0] if method in METHODS else method.replace("_", " ")


def ratio_colour(ratio: float) -> tuple:
    """The colour of sparse ratio r = k/K, the same in every figure: the paper's ratios sit
    evenly along the sequential map (darkest at 1%, lightest at 70%), others are placed by
    log r between them (clipped at the ends)."""
    import numpy as np

    low, high = RATIO_MAP_RANGE
    position = np.interp(math.log(max(ratio, 1e-6)), [math.log(r) for r in STANDARD_RATIOS],
                         np.linspace(low, high, len(STANDARD_RATIOS)))
    return colormaps[RATIO_MAP](float(position))


def ratio_label(ratio: float, k=None) -> str:
    text = f"r={ratio * 100:.3g}%"
    return text + (f" (k={int(k)})" if k is not None else "")


def save_figure(fig, out_stem: str | Path) -> dict:
    """Save ``fig`` as ``<out_stem>.png`` and ``<out_stem>.pdf`` (atomically); the figure is
    returned open in the record (``draw_all`` closes it) so tests can inspect its artists."""
    out_stem = Path(out_stem)
    paths = {}
    for fmt in ("png", "pdf"):
        path = out_stem.with_name(out_stem.name + f".{fmt}")
        atomic_write(path, lambda f, fmt=fmt: fig.savefig(f, format=fmt), binary=True)
        paths[fmt] = path
    return {**paths, "figure": fig}


def mark_temperatures(ax, temperatures: dict) -> None:
    """Thin vertical lines at the temperatures ``temperatures`` ({method label: T}) names."""
    for temperature in sorted(set(temperatures.values())):
        ax.axvline(temperature, color=GREY, lw=0.6, ls=(0, (1, 2)), zorder=0)
        ax.text(temperature, 1.0, f" T={temperature:g}", transform=ax.get_xaxis_transform(),
                fontsize=6.5, color=GREY, va="top", ha="left")


def marked_text(temperatures: dict, source: str) -> str:
    """The caption sentence for :func:`mark_temperatures`' lines."""
    return (f"Vertical dotted lines: the temperatures of {source}: "
            + ", ".join(f"{name} T={t:g}" for name, t in temperatures.items()) + ".")


def ratio_legend(fig, axes):
    """One 'sparse ratio' legend right of the panels: each ratio the axes label, once."""
    entries = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label.startswith("r="):
                entries.setdefault(label, handle)
    return fig.legend(list(entries.values()), list(entries), loc="outside right upper",
                      title="sparse ratio")


def ratio_axis(ax, ratios) -> None:
    """A log-scale sparse-ratio x-axis with a tick at each ratio (percent, slanted so that
    neighbours like 50% and 70% stay apart)."""
    ax.set_xscale("log")
    ax.set_xticks(list(ratios), [f"{100 * r:.3g}%" for r in ratios], rotation=45)
    ax.minorticks_off()
    ax.set_xlabel("sparse ratio r (log scale)")


def plot_finite(ax, x, y, **style):
    """ax.plot(x, y) unless y has no finite value (a curve masked everywhere is left out
    rather than drawn as an empty line); returns the line or None."""
    import numpy as np

    y = np.asarray(y, dtype=float)
    if not np.any(np.isfinite(y)):
        return None
    return ax.plot(x, y, **style)[0]
