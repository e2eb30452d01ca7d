"""T2: k/K <= m <= upper bound (attained), monotone in T and k, m -> r with the 1/T expansion."""

import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.testing import logit_rows
from stingy.theory.kept_mass import kept_mass_beta_derivative, kept_mass_bounds, kept_mass_expansion
from stingy.theory.operators import kept_mass

rows = logit_rows()
temperatures = st.floats(0.05, 500)


@settings(max_examples=200, deadline=None)
@given(rows, temperatures, st.data())
def test_kept_mass_never_below_k_over_K(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    assert float(kept_mass(logits, k, temperature)) >= k / len(row) - 1e-12


@settings(max_examples=200, deadline=None)
@given(rows, temperatures, st.data())
def test_kept_mass_never_above_upper_bound(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    lower, upper = kept_mass_bounds(logits, k, temperature)
    m = float(kept_mass(logits, k, temperature))
    assert float(lower) == k / len(row)
    assert m <= float(upper) + 1e-12


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 20), st.data(), st.floats(0.1, 30), st.floats(0.1, 50))
def test_upper_bound_attained_by_two_level_logits(num_classes, data, logit_range, temperature):
    k = data.draw(st.integers(1, num_classes))
    logits = torch.full((num_classes,), -logit_range, dtype=torch.float64)
    logits[:k] = 0.0
    _, upper = kept_mass_bounds(logits, k, temperature)
    assert math.isclose(float(kept_mass(logits, k, temperature)), float(upper), rel_tol=1e-12)


def test_lower_bound_attained_by_equal_logits():
    assert math.isclose(float(kept_mass(torch.zeros(10, dtype=torch.float64), 3, 2.0)), 0.3)


@settings(max_examples=150, deadline=None)
@given(rows, temperatures, temperatures, st.data())
def test_kept_mass_non_increasing_in_temperature(row, t1, t2, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    low, high = min(t1, t2), max(t1, t2)
    assert float(kept_mass(logits, k, low)) >= float(kept_mass(logits, k, high)) - 1e-12


@settings(max_examples=100, deadline=None)
@given(rows, temperatures)
def test_kept_mass_non_decreasing_in_k(row, temperature):
    logits = torch.tensor(row, dtype=torch.float64)
    masses = [float(kept_mass(logits, k, temperature)) for k in range(1, len(row) + 1)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(masses))
    assert math.isclose(masses[-1], 1.0, rel_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(0.5, 50), st.data())
def test_beta_derivative_matches_autograd_and_is_non_negative(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    beta = torch.tensor(1 / temperature, dtype=torch.float64, requires_grad=True)
    kept = torch.zeros(len(row), dtype=torch.bool)
    kept[logits.sort(descending=True, stable=True).indices[:k]] = True
    mass = torch.softmax(logits * beta, -1)[kept].sum()
    (autograd,) = torch.autograd.grad(mass, beta)
    closed_form = kept_mass_beta_derivative(logits, k, temperature)
    assert float(closed_form) >= -1e-12
    assert math.isclose(float(closed_form), float(autograd), rel_tol=1e-8, abs_tol=1e-10)


def test_kept_mass_tends_to_ratio_with_first_order_expansion():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(50, 100, generator=generator, dtype=torch.float64)
    scaled_errors = []
    for temperature in (50.0, 200.0, 800.0, 3200.0):
        m = kept_mass(logits, 10, temperature)
        error = (m - kept_mass_expansion(logits, 10, temperature)).abs().max()
        scaled_errors.append(float(error) * temperature**2)
        # the first-order term itself, from the logits directly: (m - r) T -> r (zbar_M - zbar)
        top = logits.sort(dim=-1, descending=True).values[:, :10]
        first_order = 0.1 * (top.mean(-1) - logits.mean(-1))
        relative = ((m - 0.1) * temperature - first_order).abs() / first_order.abs()
        assert float(relative.max()) < 60 / temperature
    # error = O(1/T^2): error * T^2 converges (to the second-order coefficient)
    assert max(scaled_errors) < 2 * min(scaled_errors)
