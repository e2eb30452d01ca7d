"""theory_grid: tidy rows per (k, T) equal to an independent NumPy implementation."""

import math

import numpy as np
import pytest
import torch

from stingy.theory.sweep import EXPANSION_COLUMNS, theory_grid

COLUMNS = ["k", "ratio", "num_classes", "temperature", "kept_mass", "kept_mass_lower",
           "kept_mass_upper", "kept_mass_expansion", "mass_shift_error", "mass_shift_error_bound",
           "tv_to_uniform", "tv_to_uniform_worst_case", "tv_to_uniform_bound", "drive_norm", "signal_norm", "signal_to_drive",
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


def _reference_row(teacher, student, k, temperature):
    """Every grid column for one logit row, from the definitions in plain NumPy (no stingy
    helper): the grid must agree with this independent implementation."""
    z, s = np.asarray(teacher, float), np.asarray(student, float)
    num_classes = len(z)
    order = np.argsort(-z, kind="stable")  # ties: lowest index first
    kept = order[:k]
    p = np.exp((z - z.max()) / temperature)
    p /= p.sum()
    m = p[kept].sum()
    target = p[kept] / m
    d = (z[kept].max() - z[kept].min()) / temperature
    ratio = k / num_classes
    log_q = (s - s.max()) / temperature - np.log(np.exp((s - s.max()) / temperature).sum())
    exact = temperature**2 * (target * (np.log(target) - log_q[kept])).sum()
    order_t = -temperature * (s[kept].mean() - s.mean())
    var_m = z[kept].var()
    matching = var_m / 2 - ((z[kept] - z[kept].mean()) * (s[kept] - s[kept].mean())).mean()
    order_1 = matching + s.var() / 2
    two_level = [j / (j + (k - j) * math.exp(-d)) - j / k for j in range(1, k)]
    drive = math.sqrt(1 / k - 1 / num_classes)
    inf = float("inf")
    return {
        "kept_mass": m,
        "kept_mass_upper": 1 / (1 + (num_classes - k) / k * math.exp(-(z.max() - z.min())
                                                                       / temperature)),
        "kept_mass_expansion": ratio * (1 + (z[kept].mean() - z.mean()) / temperature),
        "mass_shift_error": np.abs(target - p[kept] - (1 - ratio) / k).max(),
        "tv_to_uniform": 0.5 * np.abs(target - 1 / k).sum(),
        "tv_to_uniform_worst_case": max(two_level, default=0.0),
        "tv_to_uniform_bound": math.tanh(d / 4),
        "drive_norm": temperature * drive,
        "signal_norm": math.sqrt(var_m / k),
        "signal_to_drive": np.linalg.norm(target - 1 / k) / drive if k < num_classes else inf,
        "signal_to_drive_asymptote": (math.sqrt(var_m) / (temperature * math.sqrt(1 - ratio))
                                      if k < num_classes else inf),
        "exact": exact,
        "order_t2": temperature**2 * math.log(num_classes / k),
        "order_t": order_t,
        "order_1": order_1,
        "remainder": exact - temperature**2 * math.log(num_classes / k) - order_t - order_1,
        "teacher_matching": matching,
        "student_spread": s.var() / 2,
        "paper_last_line": -temperature**2 * log_q[kept].mean(),
    }


@pytest.mark.parametrize("k", [1, 2, 5, 11, 12])
@pytest.mark.parametrize("temperature", [0.3, 4.0, 50.0])
def test_grid_matches_an_independent_numpy_implementation(k, temperature):
    teacher, student = _logits()
    row = theory_grid(teacher, [k], [temperature], student)[0]
    references = [_reference_row(t, s, k, temperature)
                  for t, s in zip(teacher.numpy(), student.numpy())]
    for name in references[0]:
        value = float(np.mean([reference[name] for reference in references]))
        if math.isinf(value):
            assert math.isinf(row[name]), name
        else:
            assert math.isclose(row[name], value, rel_tol=1e-8, abs_tol=1e-9), name


def test_grid_rejects_bad_k_temperature_and_shapes():
    teacher, student = _logits()
    with pytest.raises(ValueError, match="ks"):
        theory_grid(teacher, [13], [1.0])
    with pytest.raises(ValueError, match="temperatures"):
        theory_grid(teacher, [2], [0.0])
    with pytest.raises(ValueError, match="student_logits"):
        theory_grid(teacher, [2], [1.0], student[:, :5])
