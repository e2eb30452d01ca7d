"""theory_grid: tidy rows per (k, T) equal to the per-quantity functions, averaged over rows."""

import math

import pytest
import torch

from stingy.theory.approximation import (
    mass_shift_error,
    mass_shift_error_bound,
    tv_to_uniform,
    tv_to_uniform_bound,
)
from stingy.theory.expansion import expansion_terms
from stingy.theory.kept_mass import kept_mass_bounds, kept_mass_expansion
from stingy.theory.operators import kept_mass
from stingy.theory.signal import drive_norm, signal_norm, signal_to_drive, signal_to_drive_bound
from stingy.theory.sweep import EXPANSION_COLUMNS, theory_grid

COLUMNS = ["k", "ratio", "num_classes", "temperature", "kept_mass", "kept_mass_lower",
           "kept_mass_upper", "kept_mass_expansion", "mass_shift_error", "mass_shift_error_bound",
           "tv_to_uniform", "tv_to_uniform_bound", "drive_norm", "signal_norm", "signal_to_drive",
           "signal_to_drive_bound"]


def _logits():
    generator = torch.Generator().manual_seed(11)
    teacher = 3 * torch.randn(40, 12, generator=generator, dtype=torch.float64)
    teacher[0, :4] = teacher[0, 4]  # a tied row: the tie rule must agree
    student = torch.randn(40, 12, generator=generator, dtype=torch.float64)
    return teacher, student


def test_grid_rows_and_columns():
    teacher, student = _logits()
    rows = theory_grid(teacher, [1, 3, 12], [0.5, 4.0], student)
    assert [(row["k"], row["temperature"]) for row in rows] == [
        (1, 0.5), (1, 4.0), (3, 0.5), (3, 4.0), (12, 0.5), (12, 4.0)]
    assert all(set(COLUMNS + EXPANSION_COLUMNS) <= set(row) for row in rows)
    assert all(not set(EXPANSION_COLUMNS) & set(row) for row in theory_grid(teacher, [3], [1.0]))


@pytest.mark.parametrize("k", [1, 2, 5, 11, 12])
@pytest.mark.parametrize("temperature", [0.3, 4.0, 50.0])
def test_grid_matches_single_quantity_functions(k, temperature):
    teacher, student = _logits()
    row = theory_grid(teacher, [k], [temperature], student)[0]
    lower, upper = kept_mass_bounds(teacher, k, temperature)
    expected = {
        "kept_mass": kept_mass(teacher, k, temperature).mean(),
        "kept_mass_lower": lower.mean(),
        "kept_mass_upper": upper.mean(),
        "kept_mass_expansion": kept_mass_expansion(teacher, k, temperature).mean(),
        "mass_shift_error": mass_shift_error(teacher, k, temperature).mean(),
        "mass_shift_error_bound": mass_shift_error_bound(teacher, k, temperature).mean(),
        "tv_to_uniform": tv_to_uniform(teacher, k, temperature).mean(),
        "tv_to_uniform_bound": tv_to_uniform_bound(teacher, k, temperature).mean(),
        "drive_norm": drive_norm(k, 12, temperature),
        "signal_norm": signal_norm(teacher, k).mean(),
        "signal_to_drive": signal_to_drive(teacher, k, temperature).mean(),
        "signal_to_drive_bound": signal_to_drive_bound(teacher, k, temperature).mean(),
        "signal_to_drive_popoviciu": signal_to_drive_bound(teacher, k, temperature,
                                                           sharp=False).mean(),
    }
    terms = expansion_terms(teacher, student, k, temperature)
    expected.update({name: terms[name].mean() for name in EXPANSION_COLUMNS})
    for name, value in expected.items():
        value = float(value)
        if math.isinf(value):
            assert math.isinf(row[name]), name
        else:
            assert math.isclose(row[name], value, rel_tol=1e-9, abs_tol=1e-11), name


def test_grid_rejects_bad_k_temperature_and_shapes():
    teacher, student = _logits()
    with pytest.raises(ValueError, match="ks"):
        theory_grid(teacher, [13], [1.0])
    with pytest.raises(ValueError, match="temperatures"):
        theory_grid(teacher, [2], [0.0])
    with pytest.raises(ValueError, match="student_logits"):
        theory_grid(teacher, [2], [1.0], student[:, :5])
