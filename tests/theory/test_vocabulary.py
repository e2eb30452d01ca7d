"""T1-T5 from stored top-k rows equal the same quantities from the dense rows; the T3 worst
case is attained by two-level rows and exceeded one step past its range."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from stingy.testing import stored_topk_rows
from stingy.theory.approximation import (
    mass_shift_error,
    tanh_bound_attaining_range,
    tv_to_uniform,
    two_level_logits,
)
from stingy.theory.operators import kept_mass
from stingy.theory.signal import signal_to_drive, signal_to_drive_exact
from stingy.theory.topk import topk_teacher
from stingy.theory.vocabulary import (
    heavy_tailed_logits,
    stored_rows_theory,
    vocabulary_table,
)


@settings(max_examples=100, deadline=None)
@given(stored_topk_rows())
def test_stored_row_quantities_equal_dense_row_quantities(case):
    teacher, k, temperature = torch.tensor(case["teacher"]), case["k"], case["temperature"]
    stored = topk_teacher(teacher, k, (temperature,))
    values = stored_rows_theory(stored, temperature)
    m = kept_mass(teacher, k, temperature)
    assert torch.allclose(values["kept_mass"], m, rtol=1e-9, atol=1e-12)
    assert torch.allclose(values["tail_mass"], 1 - m, rtol=1e-6, atol=1e-12)
    assert torch.allclose(values["bias_kl"], -torch.log(m), rtol=1e-6, atol=1e-12)
    assert torch.allclose(values["tv_to_uniform"], tv_to_uniform(teacher, k, temperature),
                          atol=1e-12)
    assert torch.allclose(values["mass_shift_error"], mass_shift_error(teacher, k, temperature),
                          atol=1e-10)
    ratio = signal_to_drive(teacher, k, temperature)
    finite = torch.isfinite(ratio)
    assert bool((torch.isfinite(values["signal_to_drive"]) == finite).all())
    assert torch.allclose(values["signal_to_drive"][finite], ratio[finite], rtol=1e-6,
                          atol=1e-9)
    exact = signal_to_drive_exact(teacher, k, temperature)
    assert torch.allclose(values["signal_to_drive_exact"], exact, rtol=1e-6, atol=1e-9)
    assert bool((values["tv_to_uniform"] <= values["tv_worst_case"] + 1e-12).all())
    assert bool((values["tv_worst_case"] <= values["tv_to_uniform_bound"] + 1e-12).all())


@pytest.mark.parametrize("k,top_count", [(4, 1), (6, 2), (10, 3)])
def test_worst_case_attained_at_two_level_rows_and_exceeded_one_step_past(k, top_count):
    temperature = 2.0
    spread = tanh_bound_attaining_range(k, top_count) * temperature
    row = two_level_logits(k, top_count, spread, num_classes=k + 5)
    values = stored_rows_theory(topk_teacher(row, k, (temperature,)), temperature)
    worst = float(values["tv_worst_case"])
    assert math.isclose(float(values["tv_to_uniform"]), worst, rel_tol=1e-12)
    assert math.isclose(worst, math.tanh(spread / (4 * temperature)), rel_tol=1e-12)
    past = two_level_logits(k, top_count, spread * 1.01, num_classes=k + 5)
    assert float(tv_to_uniform(past, k, temperature)) > worst


def test_vocabulary_table_is_labelled_synthetic_and_kept_mass_grows_with_k():
    table = vocabulary_table(class_counts=(4096,), keep_counts=(1, 8, 64), rows=4)
    assert {row["model"] for row in table} == {"synthetic"} and len(table) == 6
    for temperature in (1.0, 2.0):
        masses = [row["kept_mass"] for row in table if row["temperature"] == temperature]
        assert masses == sorted(masses) and all(0 < m <= 1 for m in masses)


def test_heavy_tailed_logits_are_seeded():
    a, b = heavy_tailed_logits(2, 100, 3), heavy_tailed_logits(2, 100, 3)
    assert torch.equal(a, b) and not torch.equal(a, heavy_tailed_logits(2, 100, 4))
    assert np.isfinite(a.numpy()).all()
