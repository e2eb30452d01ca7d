"""Every course notebook and its solutions run top to bottom (jupytext -> nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FILES = sorted(NOTEBOOKS.glob("*.py")) + sorted((NOTEBOOKS / "solutions").glob("*.py"))


def test_every_notebook_has_its_solutions():
    names = {path.stem for path in NOTEBOOKS.glob("*.py")}
    solved = {path.stem.removesuffix("_solutions") for path in (NOTEBOOKS / "solutions").glob("*.py")}
    assert len(names) >= 2 and names == solved


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = jupytext.read(path)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert errors == []
