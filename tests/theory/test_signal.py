"""T5: drive norm T sqrt(1/k - 1/K), signal norm sqrt(Var_M z / k), their ratio and bounds."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.theory.approximation import two_level_logits
from stingy.theory.examples import REFERENCE_SETTINGS, representative_logits
from stingy.theory.operators import top_k_mask
from stingy.theory.signal import (
    drive_norm,
    max_std_fraction,
    signal_norm,
    signal_to_drive,
    signal_to_drive_bound,
)

rows = st.lists(st.floats(-40, 40), min_size=2, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 50), st.data(), st.floats(0.1, 100), st.integers(0, 1000))
def test_drive_gradient_matches_autograd(num_classes, data, temperature, seed):
    k = data.draw(st.integers(1, num_classes))
    generator = torch.Generator().manual_seed(seed)
    teacher = torch.randn(num_classes, generator=generator, dtype=torch.float64)
    student = torch.randn(num_classes, generator=generator, dtype=torch.float64,
                          requires_grad=True)
    kept = top_k_mask(teacher, k)
    ratio = k / num_classes
    gap = student[kept].mean() - (student[~kept].mean() if k < num_classes else 0.0)
    (gradient,) = torch.autograd.grad(-temperature * (1 - ratio) * gap, student)
    assert math.isclose(float(gradient.norm()), drive_norm(k, num_classes, temperature),
                        rel_tol=1e-9, abs_tol=1e-12)
    if k < num_classes:
        assert torch.allclose(gradient[kept], torch.full((k,), -temperature * (1 - ratio) / k,
                                                         dtype=torch.float64))


@settings(max_examples=60, deadline=None)
@given(rows, st.data())
def test_signal_gradient_matches_autograd(row, data):
    teacher = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row)))
    kept = top_k_mask(teacher, k)
    student = torch.zeros(len(row), dtype=torch.float64, requires_grad=True)
    z, s = teacher[kept], student[kept]
    covariance = ((z - z.mean()) * (s - s.mean())).mean()
    (gradient,) = torch.autograd.grad(-covariance, student)
    assert math.isclose(float(gradient.norm()), float(signal_norm(teacher, k)),
                        rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(rows, st.floats(0.1, 100), st.data())
def test_signal_to_drive_never_above_sharp_bound_never_above_popoviciu(row, temperature, data):
    logits = torch.tensor(row, dtype=torch.float64)
    k = data.draw(st.integers(1, len(row) - 1))
    ratio = float(signal_to_drive(logits, k, temperature))
    sharp = float(signal_to_drive_bound(logits, k, temperature))
    popoviciu = float(signal_to_drive_bound(logits, k, temperature, sharp=False))
    assert ratio <= sharp * (1 + 1e-9) + 1e-12
    assert sharp <= popoviciu * (1 + 1e-12)
    if k % 2 == 0:
        assert math.isclose(sharp, popoviciu, rel_tol=1e-12)
    expected = signal_norm(logits, k) / drive_norm(k, len(row), temperature)
    assert math.isclose(ratio, float(expected), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 7, 8])
def test_sharp_bound_attained_by_two_level_logits(k):
    logits = two_level_logits(k, k // 2, 6.0, num_classes=k + 4)
    ratio = float(signal_to_drive(logits, k, 2.0))
    assert math.isclose(ratio, float(signal_to_drive_bound(logits, k, 2.0)), rel_tol=1e-12,
                        abs_tol=1e-15)
    assert math.isclose(max_std_fraction(k), math.sqrt((k // 2) * (k - k // 2)) / k)
    if k % 2 == 1:
        assert math.isclose(max_std_fraction(k) ** 2, (k * k - 1) / (4 * k * k))
        if k > 1:  # Popoviciu is not attained for odd k
            assert ratio < float(signal_to_drive_bound(logits, k, 2.0, sharp=False))


def test_no_drive_at_k_equals_K_and_no_signal_at_k_equals_one():
    logits = representative_logits(10)
    assert drive_norm(10, 10, 4.0) == 0.0
    assert math.isinf(float(signal_to_drive(logits, 10, 4.0)))
    assert float(signal_norm(logits, 1)) == 0.0 and float(signal_to_drive(logits, 1, 4.0)) == 0.0


@pytest.mark.parametrize("name", sorted(REFERENCE_SETTINGS))
def test_reference_settings_drive_dominates_for_representative_logits(name):
    setting = REFERENCE_SETTINGS[name]
    logits = representative_logits(setting["num_classes"])
    ratio = float(signal_to_drive(logits, setting["k"], setting["temperature"]))
    assert 0 < ratio < 0.5  # the teacher's signal is well below the drive at T = 20
    assert ratio <= float(signal_to_drive_bound(logits, setting["k"], setting["temperature"]))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="k"):
        drive_norm(0, 10, 1.0)
    with pytest.raises(ValueError, match="temperature"):
        drive_norm(2, 10, 0.0)
    with pytest.raises(ValueError, match="k"):
        signal_norm(torch.zeros(4), 5)
