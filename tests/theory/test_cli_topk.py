"""``stingy theory --topk FILE``: stored rows in, the stored-row theory out; bad input exits 2."""

import json

import numpy as np
import pytest
import torch

from stingy.cli import main
from stingy.theory.operators import kept_mass
from stingy.theory.topk import save_topk_teacher, topk_teacher


@pytest.fixture
def stored_file(tmp_path):
    teacher = 3 * torch.randn(5, 50, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)
    path = save_topk_teacher(tmp_path / "teacher.npz", topk_teacher(teacher, 4, (2.0,)))
    return teacher, path


def test_json_reports_kept_mass_without_full_rows(stored_file, capsys):
    teacher, path = stored_file
    assert main(["theory", "--topk", str(path), "--temperature", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["settings"]["num_classes"] == 50 and result["settings"]["k"] == 4
    assert np.allclose(result["per_row"]["kept_mass"], kept_mass(teacher, 4, 2.0).numpy())
    assert np.allclose(result["per_row"]["tail_mass"], 1 - kept_mass(teacher, 4, 2.0).numpy())


def test_table_without_log_partition_at_T_says_what_is_missing(stored_file, capsys):
    _, path = stored_file
    assert main(["theory", "--topk", str(path), "--temperature", "3"]) == 0
    out = capsys.readouterr().out
    assert "no log-partition at T=3" in out and "tv_to_uniform" in out
    assert "kept_mass" not in out.split("need it")[1]


def test_bad_input_is_one_line_and_exit_2(stored_file, tmp_path, capsys):
    _, path = stored_file
    assert main(["theory", "--topk", str(path), "--temperature", "2", "--k", "3"]) == 2
    assert "--k" in capsys.readouterr().err
    assert main(["theory", "--topk", str(tmp_path / "none.npz"), "--temperature", "2"]) == 2
    assert "none.npz" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["theory", "--topk", str(tmp_path / "junk.npz"), "--temperature", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "junk.npz" in err
    assert main(["theory", "--temperature", "2", "--k", "2"]) == 2
    assert "--classes" in capsys.readouterr().err
