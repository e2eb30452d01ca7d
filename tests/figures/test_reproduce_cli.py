"""`stingy reproduce` and `stingy figures` on the command line, and the profile's stages."""

from __future__ import annotations

import figures_synthetic as synthetic

from stingy.pipeline import build_stages, profile_names
from stingy.cli import main


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
    assert "drew 5 figure(s)" in capsys.readouterr().out  # F4, F7, F8, F9, F13


def test_figures_command_on_a_missing_folder_exits_2(tmp_path, capsys):
    assert main(["figures", "--results", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err


def test_profiles_define_quick_and_paper_with_distinct_stages(tmp_path):
    assert {"quick", "paper", "smoke"} <= set(profile_names())
    quick = [stage.name for stage in build_stages("quick", tmp_path, None)]
    paper = [stage.name for stage in build_stages("paper", tmp_path, None)]
    assert quick == ["derivations", "theory_grid", "simulations", "cifar10_quick"]
    assert paper[:3] == quick[:3] and "cifar10_teacher" in paper
    assert paper[-1] == "cifar10_paper_summary"


def test_reproduce_runs_fake_stages_then_reuses_them_and_writes_the_report(tmp_path, monkeypatch):
    from stingy import pipeline
    from stingy.stages import Stage, StageUnavailable

    calls = []

    def fake_stages(profile, results_dir, data):
        def simulate():
            calls.append("simulations")
            synthetic.write_results(results_dir, quick=False)
            return {"pass": 1, "fail": 1}

        def no_data():
            calls.append("cifar10_quick")
            raise StageUnavailable("CIFAR-10 data not found: pass --data PATH")
        return [Stage("simulations", {"seeds": 2}, simulate, ("simulations/summary.csv",)),
                Stage("cifar10_quick", {"data": data}, no_data, ("cifar10_quick/summary.csv",))]

    monkeypatch.setattr(pipeline, "build_stages", fake_stages)
    lines = []
    out = tmp_path / "results"
    first = pipeline.reproduce("quick", out, reference=None, log=lines.append)
    assert [r["status"] for r in first] == ["done", "unavailable"]
    report = (out / "REPORT.md").read_text()
    assert "unavailable" in report and "CIFAR-10 data not found" in report
    assert "F4_simulation_accuracy.png" in report and "Not drawn: its input" in report
    second = pipeline.reproduce("quick", out, reference=None, log=lines.append)
    assert [r["status"] for r in second] == ["reused", "unavailable"]
    assert calls == ["simulations", "cifar10_quick", "cifar10_quick"]
    assert sum("CIFAR-10 data not found" in line for line in lines) == 2


def test_paper_runs_are_summarised_in_the_quick_summary_columns(tmp_path):
    from stingy.pipeline import PAPER_DIR, summarise_paper_runs
    from stingy.io import write_json

    runs = [{"name": "scratch", "recipe": "cifar10-scratch"},
            {"name": "stingy-r0.2", "recipe": "cifar10-stingy", "teacher": "teacher"},
            {"name": "unfinished", "recipe": "cifar10-kd", "teacher": "teacher"}]
    for name, method, accuracy in (("scratch", {"name": "scratch"}, 0.9228),
                                   ("stingy-r0.2", {"name": "stingy_kd", "ratio": 0.2, "k": 0,
                                                    "temperature": 20.0, "alpha": 0.9}, 0.5544)):
        folder = tmp_path / PAPER_DIR / "runs" / name
        write_json(folder / "summary.json", {"test_accuracy": accuracy, "train_seconds": 10.0,
                                             "device": "cuda"})
        write_json(folder / "recipe.json", {"method": method, "model": {"name": "preresnet20"}})
    assert summarise_paper_runs(tmp_path, runs, None) == {"runs": 2}
    text = (tmp_path / PAPER_DIR / "summary.csv").read_text()
    assert "stingy_kd,stingy-r0.2,teacher,preresnet20,0,0.2,20.0,0.9,0.5544" in text
    assert "unfinished" not in text


def test_cifar_stage_with_a_missing_data_path_prints_one_line_on_providing_data(tmp_path):
    from stingy.stages import run_stage

    stage = next(s for s in build_stages("quick", tmp_path, str(tmp_path / "absent.tar.gz"))
                 if s.name == "cifar10_quick")
    lines = []
    record = run_stage(stage, tmp_path, log=lines.append)
    assert record["status"] == "unavailable"
    hint = [line for line in lines if "not run" in line]
    assert len(hint) == 1 and "--data PATH" in hint[0] and "STINGY_DATA" in hint[0]
