"""T3: TV(p~, U_M) <= tanh(D_M/4T) (tight), the mass-shift error bound, and where the paper's
approximation delta ~ (1-r)/k holds or fails."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.theory.approximation import (
    approximation_errors,
    mass_shift_error,
    mass_shift_error_bound,
    paper_mass_shift,
    tanh_bound_attaining_range,
    tv_to_uniform,
    tv_to_uniform_bound,
    two_level_logits,
)
from stingy.theory.examples import representative_logits
from stingy.theory.operators import kept_mass, top_k_mask
from stingy.theory.sparse_target import mass_shift

rows = st.lists(st.floats(-40, 40), min_size=2, max_size=12)
temperatures = st.floats(0.05, 500)


@st.composite
def adversarial_rows(draw):
    """Two-level kept logits (any split) with dropped logits below: the extremal family."""
    num_classes = draw(st.integers(2, 12))
    k = draw(st.integers(1, num_classes))
    top_count = draw(st.integers(0, k))
    logit_range = draw(st.floats(0.0, 30.0))
    return two_level_logits(k, top_count, logit_range, num_classes), k


@settings(max_examples=200, deadline=None)
@given(rows, temperatures, st.data())
def test_tv_to_uniform_never_above_tanh_bound(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    assert float(tv_to_uniform(logits, k, temperature)) <= float(
        tv_to_uniform_bound(logits, k, temperature)) + 1e-12


@settings(max_examples=200, deadline=None)
@given(adversarial_rows(), temperatures)
def test_tv_to_uniform_never_above_tanh_bound_on_two_level_logits(case, temperature):
    logits, k = case
    tv = float(tv_to_uniform(logits, k, temperature))
    assert tv <= float(tv_to_uniform_bound(logits, k, temperature)) + 1e-12


@settings(max_examples=100, deadline=None)
@given(adversarial_rows(), st.floats(0.2, 20))
def test_two_level_tv_equals_closed_form(case, temperature):
    logits, k = case
    d = float(logits[:k].max() - logits[:k].min()) / temperature
    top_count = int((logits[:k] == logits[:k].max()).sum()) if d > 0 else 0
    x, c = top_count / k, math.expm1(d)
    expected = x * (1 - x) * c / (1 + c * x)
    assert math.isclose(float(tv_to_uniform(logits, k, temperature)), expected,
                        rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("k,top_count", [(4, 1), (6, 1), (6, 2), (9, 2), (10, 3), (12, 1)])
@pytest.mark.parametrize("temperature", [0.5, 4.0])
def test_tanh_bound_attained_by_two_level_logits(k, top_count, temperature):
    d = tanh_bound_attaining_range(k, top_count)
    logits = two_level_logits(k, top_count, d * temperature, num_classes=k + 3)
    tv = float(tv_to_uniform(logits, k, temperature))
    assert math.isclose(tv, math.tanh(d / 4), rel_tol=1e-12)
    assert math.isclose(tv, float(tv_to_uniform_bound(logits, k, temperature)), rel_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(rows, temperatures, st.data())
def test_mass_shift_error_never_above_bound(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    assert float(mass_shift_error(logits, k, temperature)) <= float(
        mass_shift_error_bound(logits, k, temperature)) + 1e-12


@settings(max_examples=200, deadline=None)
@given(adversarial_rows(), temperatures)
def test_mass_shift_error_never_above_bound_on_two_level_logits(case, temperature):
    logits, k = case
    assert float(mass_shift_error(logits, k, temperature)) <= float(
        mass_shift_error_bound(logits, k, temperature)) + 1e-12


@settings(max_examples=100, deadline=None)
@given(rows, temperatures, st.data())
def test_mass_shift_error_decomposition(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    ratio, m = k / len(row), float(kept_mass(logits, k, temperature))
    kept = top_k_mask(logits, k)
    target = torch.softmax(logits[kept] / temperature, -1)
    decomposition = (target - 1 / k) * (1 - m) + (ratio - m) / k
    delta = mass_shift(logits, k, temperature)[kept]
    assert torch.allclose(delta - (1 - ratio) / k, decomposition, atol=1e-12)


def test_paper_mass_shift_values():
    assert math.isclose(paper_mass_shift(2, 10), 0.4)
    assert math.isclose(paper_mass_shift(10, 100), 0.09)
    assert paper_mass_shift(5, 5) == 0.0


def test_paper_approximation_fails_for_confident_teacher_at_low_temperature():
    logits = representative_logits(10, top_gap=10.0)  # top-2 gap 10, as a trained CIFAR-10 net
    errors = {row["temperature"]: row for row in approximation_errors(logits, 2, [4.0, 20.0, 1e3])}
    assert errors[4.0]["tv_to_uniform"] > 0.4  # p~ is nearly one-hot, not uniform on M
    assert errors[4.0]["mass_shift_error"] > 0.3  # vs the paper's 0.4
    assert errors[20.0]["tv_to_uniform"] > 0.1
    assert errors[1e3]["tv_to_uniform"] < 0.003  # holds once T >> D_M


def test_errors_vanish_as_temperature_grows():
    generator = torch.Generator().manual_seed(5)
    logits = 3 * torch.randn(20, 10, generator=generator, dtype=torch.float64)
    previous = math.inf
    for temperature in (1.0, 10.0, 100.0, 1000.0):
        bound = float(mass_shift_error_bound(logits, 3, temperature).max())
        assert float(mass_shift_error(logits, 3, temperature).max()) <= bound
        assert bound < previous
        previous = bound
    assert previous < 0.01
