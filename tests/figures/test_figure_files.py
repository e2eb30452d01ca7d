"""Each figure function draws non-empty PNG and PDF files from a small synthetic result file,
and names the missing file when its input is absent."""

from __future__ import annotations

import numpy as np
import pytest
from figures_synthetic import write_results

from stingy.figures.draw import FIGURES, draw_all
from stingy.figures.logit_figures import draw_logit_responses
from stingy.figures.theory_figures import draw_kept_mass, draw_signal_to_drive
from stingy.io import write_csv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEMPERATURES = {"normal": 4.0, "stingy": 20.0}


def _check_files(record):
    assert record["png"].read_bytes()[:8] == PNG_SIGNATURE
    assert record["pdf"].read_bytes()[:5] == b"%PDF-"
    assert record["png"].stat().st_size > 10_000
    assert record["caption"]


def test_figure_functions_take_their_input_files_directly(results, tmp_path):
    spec = next(spec for spec in FIGURES if spec.figure_id == "F4_simulation_accuracy")
    record = spec.draw(results / "simulations/summary.csv", tmp_path / "out" / spec.figure_id)
    _check_files(record)
    assert record["png"].parent == tmp_path / "out"


def test_draw_all_draws_every_figure_from_a_full_results_folder(drawn_results):
    _, drawn, skipped = drawn_results
    assert [r["figure_id"] for r in drawn] == [spec.figure_id for spec in FIGURES]
    assert skipped == []
    for record in drawn:
        _check_files(record)


def test_draw_all_skips_figures_whose_inputs_are_missing_and_names_them(tmp_path):
    results = write_results(tmp_path / "results", quick=False, mechanism=False)
    drawn, skipped = draw_all(results, log=lambda *_: None)
    assert {r["figure_id"] for r in skipped} == {
        "F5_cifar_accuracy", "F6_logit_responses", "F10_cifar_t4_terms", "F11_training_curves",
        "F12_mechanism", "F13_mechanism_sweeps"}
    assert any("teacher_logits.npz" in name for r in skipped for name in r["missing"])
    assert any("mechanism/rows.csv" in name for r in skipped
               for name in r["missing"])
    kept_mass = next(r for r in drawn if r["figure_id"] == "F1_kept_mass")
    assert "no trained teacher" in kept_mass["caption"]
    overlay = next(r for r in drawn if r["figure_id"] == "F8_paper_overlay")
    assert "no CIFAR-10 result" in overlay["caption"]


def test_missing_input_raises_an_error_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "theory_grid.csv"
    with pytest.raises(FileNotFoundError, match="theory_grid.csv"):
        draw_kept_mass(missing, tmp_path / "F1")
    with pytest.raises(FileNotFoundError, match="teacher_logits.npz"):
        draw_logit_responses(tmp_path / "teacher_logits.npz", tmp_path / "F6", TEMPERATURES)


def test_missing_column_raises_a_value_error_naming_file_and_column(tmp_path):
    path = write_csv(tmp_path / "grid.csv", [{"ratio": 0.1, "num_classes": 10, "temperature": 1}])
    with pytest.raises(ValueError, match="signal_to_drive"):
        draw_signal_to_drive(path, tmp_path / "F3")


def test_logit_responses_measure_the_nasty_teacher_or_say_it_is_absent(drawn_results, tmp_path):
    _, drawn, _ = drawn_results
    record = next(r for r in drawn if r["figure_id"] == "F6_logit_responses")
    assert "KL(nasty || normal) at T=4" in record["caption"]
    # the fixture's run distils no student from the nasty teacher: its row is at normal's T
    assert "No student of this run learnt from the nasty teacher" in record["caption"]
    normal = np.zeros((2, 10))
    np.savez(tmp_path / "teacher_logits.npz", normal=normal, stingy=normal)
    record = draw_logit_responses(tmp_path / "teacher_logits.npz", tmp_path / "F6", TEMPERATURES)
    assert "No nasty teacher" in record["caption"]
    with pytest.raises(ValueError, match="stingy teacher"):
        draw_logit_responses(tmp_path / "teacher_logits.npz", tmp_path / "F6", {"normal": 4.0})


def test_logit_responses_show_distinct_classes_first_when_the_file_is_sorted_by_class():
    from stingy.figures.logit_figures import distinct_label_images

    labels = np.array([0, 0, 0, 1, 1, 2])
    assert distinct_label_images(labels, 6, 4) == [0, 3, 5, 1]
    assert distinct_label_images(None, 2, 4) == [0, 1]


def test_theory_figures_draw_grids_without_the_exact_columns(tmp_path):
    from figures_synthetic import theory_grid_rows

    from stingy.figures.theory_figures import draw_approximation_error

    path = write_csv(tmp_path / "grid.csv", theory_grid_rows(exact_columns=False))
    record = draw_signal_to_drive(path, tmp_path / "F3")
    assert "dashed T5 bound are drawn only at T >= D_M" in record["caption"]
    record = draw_approximation_error(path, tmp_path / "F2")
    assert "exact worst case" not in record["caption"]


def test_logit_figures_take_temperatures_and_teacher_from_the_folder_of_their_logits(tmp_path):
    """F1, F6 and F12 draw the quick run's teacher, so their temperatures and teacher come
    from the quick run's summary, not from a sweep that lists normal KD at T = 20 first; the
    quick run distils no student from its nasty teacher, so that teacher has no temperature."""
    results = write_results(tmp_path / "results", sweep=True)
    specs = {spec.figure_id[:3]: spec for spec in FIGURES}
    quick_teacher = "the CPU quick profile resnet18 teacher, 81.0% test accuracy"
    args, kwargs = specs["F6_"].inputs(results)
    assert args[0].parent.name == "cifar10_quick"
    assert kwargs["temperatures"] == {"normal": 4.0, "stingy": 20.0}
    assert kwargs["teacher_label"] == quick_teacher
    assert specs["F12"].inputs(results)[1]["temperature"] == 20.0
    args, kwargs = specs["F1_"].inputs(results)
    assert kwargs["teacher_theory"].parent.name == "cifar10_quick"
    assert kwargs["teacher_label"] == quick_teacher
    assert kwargs["temperatures"] == {"normal KD": 4.0, "stingy KD": 20.0}
    assert "cifar10_quick" in kwargs["temperature_source"]
