"""`stingy lab` writes one self-contained HTML file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stingy.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_lab_command_writes_a_self_contained_page(tmp_path, capsys):
    out = tmp_path / "lab.html"
    assert main(["lab", "--out", str(out)]) == 0
    html = out.read_text()
    assert "wrote" in capsys.readouterr().out
    assert "/*LAB_CORE*/" not in html and "/*LAB_DATA*/" not in html
    assert not re.search(r"(src|href)\s*=", html), "the page must not load any file"
    assert not re.search(r"https?://", html), "the page must not name any network address"
    assert "var LAB_DATA = {};" in html


def test_results_folder_is_embedded():
    from stingy.figures.lab import lab_data

    data = lab_data(REPO / "results")
    assert {"simulations", "cifar", "teacher_logits"} <= data.keys()
    assert data["simulations"]["noise"] == [0.0, 0.15, 0.3]
    assert any(row["method"] == "stingy_kd" and row["ratio"] == 0.2
               for row in data["cifar"]["rows"])


@pytest.mark.parametrize("flag", ["--results", "--out"])
def test_bad_argument_is_one_line_naming_it_and_exit_2(tmp_path, capsys, flag):
    out, results = tmp_path / "lab.html", tmp_path / "nowhere"
    if flag == "--out":
        out, results = tmp_path, REPO / "results"
    assert main(["lab", "--out", str(out), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag in err
    assert list(tmp_path.iterdir()) == []
