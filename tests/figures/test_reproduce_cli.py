"""`stingy reproduce` and `stingy figures` on the command line, and the profile's stages."""

from __future__ import annotations

import figures_synthetic as synthetic
from stingy.cli import main

from figures.reproduce import build_stages, profile_names


def test_reproduce_with_a_bad_profile_exits_2_with_one_line(capsys):
    assert main(["reproduce", "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--profile" in err and "quick" in err


def test_figures_command_redraws_what_its_inputs_allow(tmp_path, capsys):
    results = synthetic.write_results(tmp_path / "results", quick=False)
    (results / "theory" / "theory_grid.csv").unlink()
    assert main(["figures", "--results", str(results), "--out", str(results / "redrawn")]) == 0
    assert (results / "redrawn" / "F4_simulation_accuracy.png").is_file()
    assert not (results / "redrawn" / "F1_kept_mass.png").exists()
    assert "drew 2 figure(s)" in capsys.readouterr().out


def test_figures_command_on_a_missing_folder_exits_2(tmp_path, capsys):
    assert main(["figures", "--results", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err


def test_profiles_define_quick_and_paper_with_distinct_stages(tmp_path):
    assert {"quick", "paper"} <= set(profile_names())
    quick = [stage.name for stage in build_stages("quick", tmp_path, None)]
    paper = [stage.name for stage in build_stages("paper", tmp_path, None)]
    assert quick == ["derivations", "theory_grid", "simulations", "cifar10_quick"]
    assert paper[:3] == quick[:3] and "cifar10_teacher" in paper
    assert paper[-1] == "cifar10_paper_summary"
