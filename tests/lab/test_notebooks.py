"""The course material: every notebook and its solutions run top to bottom (jupytext ->
nbclient) and train as many students as the lecture notes say, and every claim of the lecture
plan is backed by the committed results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
TEACHING = ROOT / "docs" / "teaching.md"
RESULTS = ROOT / "results"
FILES = sorted(NOTEBOOKS.glob("*.py")) + sorted((NOTEBOOKS / "solutions").glob("*.py"))
# `folder/check holds` or `folder/check fails` (a verdict), `theory/T5a` (a statement)
REFERENCE = re.compile(r"`([\w/]+)/([\w-]+)(?: (holds|fails))?`")


def test_every_notebook_has_its_solutions():
    names = {path.stem for path in NOTEBOOKS.glob("*.py")}
    solved = {path.stem.removesuffix("_solutions") for path in (NOTEBOOKS / "solutions").glob("*.py")}
    assert len(names) >= 2 and names == solved


def _printed(notebook) -> str:
    return "".join(output.get("text", "") for cell in notebook.cells
                   for output in cell.get("outputs", []) if output.get("output_type") == "stream")


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
    printed = _printed(notebook)
    assert not re.search(r"=\s*nan\b", printed), "a setting printed as nan"
    trained = re.search(r"(\d+) students trained", printed)
    if trained:  # the notebook table of teaching.md states the count
        row = next(line for line in TEACHING.read_text().splitlines()
                   if f"`notebooks/{path.name}`" in line)
        assert f"{trained.group(1)}-student" in row


def _plan_rows() -> list[list[str]]:
    plan = TEACHING.read_text().split("## A 45-minute lecture plan")[1]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in plan.splitlines()
            if line.startswith("| ") and not line.startswith("| min")]


def test_the_lecture_plan_opens_with_the_real_image_figure():
    assert "F5" in _plan_rows()[0][2]


def test_every_claim_of_the_lecture_plan_is_backed_by_the_committed_results():
    """Each row names what backs what it asks the lecturer to say: a theory statement that
    did not fail, or a verdict whose outcome after Holm's correction is the one named in
    every setting it was checked in."""
    statements = {entry["id"]: entry["status"] for entry in
                  json.loads((RESULTS / "theory" / "derivations.json").read_text())}
    for row in _plan_rows():
        references = REFERENCE.findall(row[-1])
        assert references, f"nothing backs: {row[1]}"
        for folder, check, outcome in references:
            if folder == "theory":
                assert "fail" not in statements[check], check
                continue
            assert outcome, f"{folder}/{check}: say whether it holds or fails"
            verdicts = [v for v in json.loads((RESULTS / folder / "verdicts.json").read_text())
                        if v["check"] == check]
            assert verdicts, f"{folder} has no check {check}"
            wanted = "pass" if outcome == "holds" else "fail"
            assert {v["verdict_holm"] for v in verdicts} == {wanted}, f"{folder}/{check}"
