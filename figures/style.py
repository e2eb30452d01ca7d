"""One look for every figure: paper-width sizes, fonts >= 8 pt, a colour-blind-safe palette
(Okabe & Ito 2008) with one fixed colour per method, and PNG + PDF output written atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stingy.io import atomic_write  # noqa: E402

FULL_WIDTH = 6.75  # inches, a two-column paper's text width
COLUMN_WIDTH = 3.25

# Okabe-Ito colours; yellow is left out (too light on white).
BLACK, ORANGE, SKY, GREEN, BLUE, VERMILLION, PURPLE, GREY = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#999999")
SEQUENCE = [BLUE, VERMILLION, GREEN, PURPLE, ORANGE, SKY, BLACK, GREY]

METHOD_COLOURS = {
    "scratch": BLACK,
    "normal_kd": BLUE,
    "stingy_kd": VERMILLION,
    "reversed_kd": PURPLE,
    "within_m_kd": GREEN,
    "label_smoothing": ORANGE,
    "nasty_kd": SKY,
}
METHOD_LABELS = {
    "scratch": "Scratch",
    "normal_kd": "Normal KD",
    "stingy_kd": "Stingy KD",
    "reversed_kd": "Reversed logits",
    "within_m_kd": "Within-M KD",
    "label_smoothing": "Label smoothing",
    "nasty_kd": "Nasty KD",
}
TEACHER_COLOURS = {"normal": BLUE, "nasty": SKY, "stingy": VERMILLION}

plt.rcParams.update({
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
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


def method_colour(method: str) -> str:
    return METHOD_COLOURS.get(method, GREY)


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method.replace("_", " "))


def save_figure(fig, out_stem: str | Path) -> dict[str, Path]:
    """Save ``fig`` as ``<out_stem>.png`` and ``<out_stem>.pdf`` (atomically) and close it."""
    out_stem = Path(out_stem)
    paths = {}
    for fmt in ("png", "pdf"):
        path = out_stem.with_name(out_stem.name + f".{fmt}")
        atomic_write(path, lambda f, fmt=fmt: fig.savefig(f, format=fmt), binary=True)
        paths[fmt] = path
    plt.close(fig)
    return paths
