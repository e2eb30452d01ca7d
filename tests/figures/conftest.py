"""Synthetic results folders for the figure, report and reproduce tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import matplotlib
import pytest

# The figure tests check figure objects and files, not pixels: a low resolution keeps them fast.
matplotlib.rcParams["savefig.dpi"] = 60
matplotlib.rcParams["figure.max_open_warning"] = 0  # the shared fixture keeps figures open

_spec = importlib.util.spec_from_file_location("figures_synthetic",
                                               Path(__file__).with_name("synthetic.py"))
synthetic = importlib.util.module_from_spec(_spec)
sys.modules["figures_synthetic"] = synthetic
_spec.loader.exec_module(synthetic)


@pytest.fixture
def results(tmp_path) -> Path:
    """A full synthetic results folder (with a GPU check file)."""
    return synthetic.write_results(tmp_path / "results", gpu=True)


@pytest.fixture(scope="session")
def drawn_results(tmp_path_factory):
    """A full synthetic results folder with every figure drawn once and kept open:
    (folder, drawn, skipped)."""
    import matplotlib.pyplot as plt

    from stingy.figures.draw import draw_all

    folder = synthetic.write_results(tmp_path_factory.mktemp("drawn") / "results", gpu=True)
    drawn, skipped = draw_all(folder, log=lambda *_: None, keep_figures=True)
    yield folder, drawn, skipped
    for record in drawn:
        plt.close(record["figure"])
