"""T3: TV(p~, U_M) <= W_k (exact worst case) <= tanh(D_M/4T), the mass-shift error bound, and where the paper's
approximation delta ~ (1-r)/k holds or fails."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.testing import logit_rows, two_level_cases
from stingy.theory.approximation import (
    approximation_errors,
    mass_shift_error,
    mass_shift_error_bound,
    paper_mass_shift,
    tanh_bound_attaining_range,
    tv_to_uniform,
    tv_to_uniform_bound,
    tv_worst_case,
    two_level_logits,
)
from stingy.theory.examples import representative_logits
from stingy.theory.operators import kept_mass, top_k_mask
from stingy.theory.sparse_target import mass_shift

rows = logit_rows()
temperatures = st.floats(0.05, 500)


@settings(max_examples=200, deadline=None)
@given(rows, temperatures, st.data())
def test_tv_to_uniform_never_above_tanh_bound(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    assert float(tv_to_uniform(logits, k, temperature)) <= float(
        tv_to_uniform_bound(logits, k, temperature)) + 1e-12


@settings(max_examples=200, deadline=None)
@given(two_level_cases(), temperatures)
def test_tv_to_uniform_never_above_tanh_bound_on_two_level_logits(case, temperature):
    logits, k = case
    tv = float(tv_to_uniform(logits, k, temperature))
    assert tv <= float(tv_to_uniform_bound(logits, k, temperature)) + 1e-12


@settings(max_examples=100, deadline=None)
@given(two_level_cases(), st.floats(0.2, 20))
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
@given(two_level_cases(), temperatures)
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


def _tv_by_hand(kept_logits, temperature):
    """TV(p~, U_M) straight from the definition, in plain Python floats."""
    weights = [math.exp((z - max(kept_logits)) / temperature) for z in kept_logits]
    total = sum(weights)
    return 0.5 * sum(abs(w / total - 1 / len(weights)) for w in weights)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=1, max_size=9), st.floats(0.1, 50))
def test_tv_never_above_exact_worst_case_for_its_range(kept, temperature):
    kept_range = max(kept) - min(kept)
    assert _tv_by_hand(kept, temperature) <= float(tv_worst_case(len(kept), kept_range,
                                                                 temperature)) + 1e-12


@pytest.mark.parametrize("k", [2, 3, 4, 7, 10])
@pytest.mark.parametrize("kept_range", [0.3, 2.0, 9.0])
def test_exact_worst_case_attained_and_exceeded_one_step_past(k, kept_range):
    temperature = 2.0
    worst = float(tv_worst_case(k, kept_range, temperature))
    values = [_tv_by_hand([kept_range] * j + [0.0] * (k - j), temperature) for j in range(1, k)]
    assert math.isclose(max(values), worst, rel_tol=1e-12)
    # one step past: the same best split with a slightly larger range beats the worst case
    best = 1 + max(range(k - 1), key=values.__getitem__)
    past = [kept_range * 1.01] * best + [0.0] * (k - best)
    assert _tv_by_hand(past, temperature) > worst


@pytest.mark.parametrize("d", [0.1, 1.0, 3.0, 10.0])
def test_k_equals_two_worst_case_is_half_tanh_and_below_the_tanh_bound(d):
    worst = float(tv_worst_case(2, d, 1.0))
    assert math.isclose(worst, math.tanh(d / 2) / 2, rel_tol=1e-12)
    assert worst < math.tanh(d / 4)


@pytest.mark.parametrize("k,top_count", [(4, 1), (6, 2), (10, 3)])
def test_tanh_bound_attained_only_at_its_range(k, top_count):
    d = tanh_bound_attaining_range(k, top_count)
    assert math.isclose(float(tv_worst_case(k, d, 1.0)), math.tanh(d / 4), rel_tol=1e-12)
    for off in (0.9 * d, 1.1 * d):  # one step either side: strictly below tanh
        assert float(tv_worst_case(k, off, 1.0)) < math.tanh(off / 4) - 1e-6


def test_worst_case_vectorised_zero_at_k_one_and_bad_arguments():
    ranges = [0.0, 1.0, 5.0]
    assert tv_worst_case(3, ranges, 1.0).shape == (3,)
    assert float(tv_worst_case(3, 0.0, 1.0)) == 0.0
    assert list(tv_worst_case(1, ranges, 1.0)) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="k"):
        tv_worst_case(0, 1.0, 1.0)
    with pytest.raises(ValueError, match="kept_range"):
        tv_worst_case(2, -1.0, 1.0)
    with pytest.raises(ValueError, match="temperature"):
        tv_worst_case(2, 1.0, 0.0)
