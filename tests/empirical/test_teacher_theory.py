"""Theory on a trained teacher's logits: reference (k, T) points and the (k, T) grid."""

from __future__ import annotations

import itertools

import pytest
import torch

from stingy.empirical.real_teacher_theory import (
    GRID_TEMPERATURES,
    grid_keep_counts,
    reference_points,
    teacher_theory,
    theory_report,
)
from stingy.empirical.recipes import load_recipe
from stingy.empirical.train import train_recipe
from tests.empirical.tiny import TINY, single_thread, tiny_dataset  # noqa: F401 (fixture)


def test_reference_points_are_the_papers_k_and_temperatures():
    assert reference_points("cifar10", 10) == [(2, 4.0), (2, 20.0)]
    assert reference_points("cifar100", 100) == [(10, 20.0)]
    assert grid_keep_counts(10) == [1, 2, 5, 10]
    assert GRID_TEMPERATURES[0] == 0.5 and GRID_TEMPERATURES[-1] == 100.0


def test_report_kept_mass_grows_with_k_and_falls_with_temperature():
    logits = torch.randn(200, 10, generator=torch.Generator().manual_seed(0)) * 4
    report = theory_report(logits, torch.zeros(200, dtype=torch.int64), "cifar10")
    rows = {(row["k"], row["temperature"]): row for row in report["grid"]}
    assert len(rows) == 4 * len(GRID_TEMPERATURES)
    for t in GRID_TEMPERATURES:
        masses = [rows[(k, t)]["kept_mass"] for k in (1, 2, 5, 10)]
        assert masses == sorted(masses) and masses[-1] == pytest.approx(1.0)
    for k in (1, 2, 5):
        masses = [rows[(k, t)]["kept_mass"] for t in GRID_TEMPERATURES]
        assert all(a >= b - 1e-9 for a, b in itertools.pairwise(masses))
        assert masses[-1] == pytest.approx(k / 10, abs=0.02)  # T >> logit range: m -> k/K
    assert {"kept_mass", "mass_shift_error", "signal_to_drive"} <= set(report["reference"][0])


def test_teacher_theory_writes_csv_and_json_for_a_saved_teacher(tmp_path):
    dataset = tiny_dataset()
    train_recipe(load_recipe("cifar10-cnn-scratch", TINY), dataset=dataset, out=tmp_path,
                 name="teacher", device="cpu")
    report = teacher_theory(tmp_path / "teacher", out=tmp_path / "theory", device="cpu",
                            dataset=dataset)
    assert (tmp_path / "theory" / "teacher_theory.csv").is_file()
    assert (tmp_path / "theory" / "teacher_theory.json").is_file()
    assert report["examples"] == len(dataset.test_labels)
    assert report["teacher"]["model_name"] == "cnn"
