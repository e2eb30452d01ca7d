"""Visual regression on the figure objects (not pixels): every figure renders from the
committed synthetic fixture, every plotted series has data, every legend entry names something
plotted (or is a line-style key matching a plotted line), every labelled series is in a legend,
and methods and sparse ratios have the same colour in every figure."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from figures_synthetic import write_results
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.quiver import Quiver

from stingy.figures.draw import FIGURES, draw_all
from stingy.figures.style import METHODS, ratio_colour


@pytest.fixture(scope="module", params=["quick", pytest.param("sweep", marks=pytest.mark.slow)])
def figures(request, tmp_path_factory, drawn_results):
    """Every figure drawn from the fixture, kept open: {figure_id: (figure, caption)}; the
    'quick' folder is the shared one, 'sweep' adds a CIFAR sweep with several ratios."""
    if request.param == "quick":
        _, drawn, skipped = drawn_results
    else:
        folder = write_results(tmp_path_factory.mktemp("sweep") / "results", gpu=True,
                               sweep=True)
        drawn, skipped = draw_all(folder, log=lambda *_: None, keep_figures=True)
    assert skipped == []
    yield {record["figure_id"]: (record["figure"], record["caption"]) for record in drawn}
    if request.param == "sweep":
        for record in drawn:
            plt.close(record["figure"])


def _series(fig):
    """(artist, label, point count) for every data artist on the figure's axes."""
    out = []
    for ax in fig.axes:
        for line in ax.lines:
            x, y = (np.asarray(v, dtype=float) for v in line.get_data())
            out.append((line, line.get_label(), int(np.sum(np.isfinite(x) & np.isfinite(y)))))
        for collection in ax.collections:
            if isinstance(collection, Quiver):
                count = int(np.sum(np.isfinite(collection.V)))
            elif isinstance(collection, PathCollection):
                count = len(collection.get_offsets())
            elif isinstance(collection, PolyCollection):
                count = sum(len(path.vertices) for path in collection.get_paths())
            else:
                count = len(collection.get_paths())
            out.append((collection, collection.get_label(), count))
        for container in ax.containers:
            out.append((container, container.get_label(), len(container)))
    return out


def _legend_entries(fig):
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [(text.get_text(), handle) for legend in legends
            for text, handle in zip(legend.get_texts(), legend.legend_handles)]


def test_every_figure_is_drawn_with_a_caption(figures):
    assert set(figures) == {spec.figure_id for spec in FIGURES}
    for figure_id, (fig, caption) in figures.items():
        assert fig.axes, figure_id
        assert len(caption) > 80, figure_id


def test_no_plotted_series_is_empty(figures):
    for figure_id, (fig, _) in figures.items():
        series = _series(fig)
        assert series, f"{figure_id} plots nothing"
        empty = [label for _, label, count in series if count == 0]
        assert not empty, f"{figure_id}: empty series {empty}"
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>":
                assert ax.lines or ax.collections or ax.patches, f"{figure_id}: empty panel"


def test_legend_entries_match_what_is_plotted(figures):
    for figure_id, (fig, _) in figures.items():
        series = _series(fig)
        plotted = {label for _, label, count in series if count and not label.startswith("_")}
        styles = {line.get_linestyle() for artist, _, count in series if count
                  for line in [artist] if isinstance(artist, Line2D)}
        entries = _legend_entries(fig)
        for label, handle in entries:
            if label in plotted:
                continue
            # a style key (solid = value, dashed = bound, ...) drawn with a proxy line
            assert isinstance(handle, Line2D) and handle.get_linestyle() in styles, \
                f"{figure_id}: legend entry {label!r} matches nothing plotted"
        listed = {label for label, _ in entries}
        assert plotted <= listed, f"{figure_id}: plotted but not in a legend: {plotted - listed}"


def _colour_of(artist):
    if isinstance(artist, Line2D):
        return to_rgba(artist.get_color())
    if isinstance(artist, PathCollection):
        return tuple(artist.get_edgecolor()[0])
    return None


def test_methods_and_ratios_have_one_colour_in_every_figure(figures):
    labels = {label: to_rgba(colour) for label, colour in METHODS.values()}
    checked = 0
    for figure_id, (fig, _) in figures.items():
        for artist, label, count in _series(fig):
            colour = _colour_of(artist)
            if colour is None or not count:
                continue
            if label in labels:
                assert colour == labels[label], f"{figure_id}: {label} has colour {colour}"
                checked += 1
            match = re.fullmatch(r"r=([\d.]+)%( \(k=\d+\))?", label)
            if match:
                assert np.allclose(colour, ratio_colour(float(match.group(1)) / 100)), \
                    f"{figure_id}: {label} has colour {colour}"
                checked += 1
    assert checked > 20


def test_captions_state_source_and_failing_predictions(figures):
    caption = figures["F4_simulation_accuracy"][1]
    assert "simulations/summary.csv" in caption and "5 seeds" in caption
    assert "FAILING" not in caption  # the fixture's failing verdict is check (c), not F4's
    gap_caption = figures["F7_logit_gap"][1]
    assert "FAILING" not in gap_caption  # the fixture gives F7 no verdicts file
    assert "Reversed logits: 4.5% (below the axis)" in caption


def test_the_expansion_is_not_drawn_below_the_logit_range(figures):
    fig, caption = figures["F1_kept_mass"]
    dotted = [line for line in fig.axes[0].lines if line.get_linestyle() == ":"]
    bound = float(re.search(r"mean logit range D = ([\d.]+)", caption).group(1))
    for line in dotted:
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        assert np.all(np.isnan(y[x < bound]))
        assert np.any(np.isfinite(y[x >= bound]))
