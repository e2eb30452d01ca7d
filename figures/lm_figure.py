"""The language-model figure of ``stingy lm``, from its summary.csv and rows.json.

Four panels, one row per student (labels only, full KD, stingy KD at each k, tail-bucket and
uniform-floor KD, sampled KD at each count), each a mean over seeds with its 95% t-interval:
held-out cross-entropy against the true next token, KL to the full teacher, top-1 agreement
with the teacher and expected calibration error. Full KD's interval is shaded across each
panel, so a student inside the band is within full KD's interval. The caption gives the
stored bytes per token of each rows file and the teacher's kept mass at each k.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from stingy.figures.inputs import read_json, read_rows, source_name
from stingy.figures.style import FULL_WIDTH, method_colour, save_figure

SUMMARY = "lm summary (one row per student), written by `stingy lm`"
PANELS = (("cross_entropy", "cross-entropy\n(nats/token)"),
          ("kl_to_teacher", "KL to the teacher\n(nats/token)"),
          ("top1_agreement", "top-1 agreement\nwith the teacher"),
          ("ece", "expected calibration\nerror"))
FULL = "normal_kd"


def _panel(ax, rows, metric: str, title: str) -> None:
    full = next((r for r in rows if r["student"] == FULL), None)
    if full is not None and not math.isnan(full[f"{metric}_low"]):
        ax.axvspan(full[f"{metric}_low"], full[f"{metric}_high"], color=method_colour(FULL),
                   alpha=0.15, lw=0)
    for y, row in enumerate(rows):
        mean, low, high = row[metric], row[f"{metric}_low"], row[f"{metric}_high"]
        error = None if math.isnan(low) else [[mean - low], [high - mean]]
        ax.errorbar([mean], [y], xerr=error, color=method_colour(row["method"]), marker="o",
                    ms=4, capsize=2, lw=1)
    ax.set_yticks(range(len(rows)), [row["student"] for row in rows])
    ax.set_title(title)


def draw_lm(summary_csv, rows_json, out_stem) -> dict:
    """The figure (see the module docstring) as ``out_stem``.png and .pdf."""
    rows = read_rows(summary_csv, SUMMARY, ("student", "method", *(
        f"{metric}{end}" for metric, _ in PANELS for end in ("", "_low", "_high"))))
    stored = read_json(rows_json, "lm rows report (rows.json), written by `stingy lm`")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(FULL_WIDTH, 2.8), sharey=True)
    for ax, (metric, title) in zip(axes, PANELS):
        _panel(ax, rows, metric, title)
    axes[0].invert_yaxis()  # the axes share y: the first student on top
    seeds = sorted({int(row["seeds"]) for row in rows})
    record = save_figure(fig, out_stem)
    sizes = ", ".join(f"{entry['rows']} {entry['bytes_per_token']:.0f}"
                      for entry in stored["bytes_per_token"])
    kept = ", ".join(f"k = {entry['k']}: {entry['kept_mass_mean']:.2f}"
                     for entry in stored["statistics"])
    record["caption"] = (
        f"A small transformer student distilled from a larger one on the Python standard "
        f"library's source ({source_name(summary_csv)}; {'/'.join(map(str, seeds))} seeds, "
        f"bars are 95% t-intervals over seeds, the band is full KD's). Stored bytes per "
        f"token: {sizes}. The teacher's mean kept mass at T = {stored['temperature']:g}: "
        f"{kept}.")
    return record
