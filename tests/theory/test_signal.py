"""T5: exact gradient decomposition and ratio, the 1/T asymptote and its bounds."""

import math

import numpy as np

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.testing import logit_rows
from stingy.theory.approximation import two_level_logits
from stingy.theory.examples import REFERENCE_SETTINGS, representative_logits
from stingy.theory.operators import top_k_mask
from stingy.theory.signal import (
    drive_norm,
    gradient_decomposition,
    max_std_fraction,
    signal_norm,
    signal_to_drive,
    signal_to_drive_bound,
    signal_to_drive_exact,
)

rows = logit_rows()


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
    if k > 1:  # one step past: the same split with a 1% larger range exceeds the bound at 6
        wider = two_level_logits(k, k // 2, 6.06, num_classes=k + 4)
        assert float(signal_to_drive(wider, k, 2.0)) > float(
            signal_to_drive_bound(logits, k, 2.0))


def test_no_drive_at_k_equals_K_and_no_signal_at_k_equals_one():
    logits = representative_logits(10)
    assert drive_norm(10, 10, 4.0) == 0.0
    assert math.isinf(float(signal_to_drive(logits, 10, 4.0)))
    assert float(signal_norm(logits, 1)) == 0.0 and float(signal_to_drive(logits, 1, 4.0)) == 0.0


@pytest.mark.parametrize("name", sorted(REFERENCE_SETTINGS))
def test_reference_settings_asymptote_below_its_bound(name):
    setting = REFERENCE_SETTINGS[name]
    logits = representative_logits(setting["num_classes"])
    ratio = float(signal_to_drive(logits, setting["k"], setting["temperature"]))
    assert ratio <= float(signal_to_drive_bound(logits, setting["k"], setting["temperature"]))


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="k"):
        drive_norm(0, 10, 1.0)
    with pytest.raises(ValueError, match="temperature"):
        drive_norm(2, 10, 0.0)
    with pytest.raises(ValueError, match="k"):
        signal_norm(torch.zeros(4), 5)


def _exact_ratio_by_hand(teacher, k, temperature):
    """||p~ - U_M|| / sqrt(1/k - 1/K) from the definition in NumPy (stable top-k by sorting)."""
    z = np.asarray(teacher, dtype=float)
    kept = np.sort(z)[::-1][:k]
    weights = np.exp((kept - kept.max()) / temperature)
    target = weights / weights.sum()
    return np.linalg.norm(target - 1 / k) / math.sqrt(1 / k - 1 / len(z))


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 30), st.data(), st.floats(0.2, 100), st.integers(0, 10_000))
def test_exact_ratio_matches_numpy_and_gradient_parts(num_classes, data, temperature, seed):
    k = data.draw(st.integers(1, num_classes - 1))
    generator = torch.Generator().manual_seed(seed)
    teacher = 4 * torch.randn(num_classes, generator=generator, dtype=torch.float64)
    student = torch.randn(num_classes, generator=generator, dtype=torch.float64)
    exact = float(signal_to_drive_exact(teacher, k, temperature))
    assert math.isclose(exact, _exact_ratio_by_hand(teacher.numpy(), k, temperature),
                        rel_tol=1e-9, abs_tol=1e-12)
    parts = gradient_decomposition(teacher, student, k, temperature)
    assert abs(float(parts["drive"] @ parts["signal"])) < 1e-10 * temperature**2
    assert math.isclose(float(parts["drive"].norm()), drive_norm(k, num_classes, temperature),
                        rel_tol=1e-12)
    norm_ratio = float(parts["signal"].norm() / parts["drive"].norm())
    assert math.isclose(norm_ratio, exact, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_gradient_parts_sum_to_autograd_gradient(k):
    generator = torch.Generator().manual_seed(k)
    teacher = 3 * torch.randn(4, 20, generator=generator, dtype=torch.float64)
    student = torch.randn(4, 20, generator=generator, dtype=torch.float64, requires_grad=True)
    kept = top_k_mask(teacher, k)
    target = torch.softmax(teacher.masked_fill(~kept, float("-inf")) / 5.0, -1)
    loss = -25.0 * (target * torch.log_softmax(student / 5.0, -1)).sum()
    (gradient,) = torch.autograd.grad(loss, student)
    parts = gradient_decomposition(teacher, student.detach(), k, 5.0)
    assert torch.allclose(parts["student"] + parts["drive"] + parts["signal"], gradient)
    assert torch.allclose(parts["total"], gradient)


def test_exact_ratio_tends_to_asymptote_with_third_cumulant_correction():
    teacher = representative_logits(100)
    kept = teacher.sort(descending=True).values[:10]
    centred = kept - kept.mean()
    variance, third = float(centred.pow(2).mean()), float(centred.pow(3).mean())
    for temperature in (200.0, 2000.0):
        exact = float(signal_to_drive_exact(teacher, 10, temperature))
        two_terms = (variance / temperature**2 + third / temperature**3) / 0.9
        assert abs(exact**2 - two_terms) < 50 * variance**2 / temperature**4
        assert math.isclose(exact, float(signal_to_drive(teacher, 10, temperature)),
                            rel_tol=10 * abs(third) / variance / temperature)


def test_exact_ratio_differs_from_asymptote_at_the_cifar100_reference():
    setting = REFERENCE_SETTINGS["cifar100"]
    teacher = representative_logits(setting["num_classes"])
    exact = float(signal_to_drive_exact(teacher, setting["k"], setting["temperature"]))
    asymptote = float(signal_to_drive(teacher, setting["k"], setting["temperature"]))
    assert math.isclose(exact, 0.2332, abs_tol=5e-4) and math.isclose(asymptote, 0.1883,
                                                                          abs_tol=5e-4)


def test_exact_ratio_limits_and_bad_arguments():
    logits = representative_logits(10)
    assert float(signal_to_drive_exact(logits, 1, 4.0)) == 0.0
    assert math.isinf(float(signal_to_drive_exact(logits, 10, 4.0)))
    assert isinstance(signal_to_drive_exact(logits.numpy(), 2, 4.0), np.ndarray)
    with pytest.raises(ValueError, match="temperature"):
        signal_to_drive_exact(logits, 2, -1.0)
    with pytest.raises(ValueError, match="student_logits"):
        gradient_decomposition(logits, logits[:5], 2, 1.0)


def test_reference_ratio_draws_match_the_two_class_closed_form_and_grow_with_the_top_gap():
    from stingy.theory.examples import reference_ratio_draws

    rows = reference_ratio_draws(draws=20, top_gaps=(5.0, 10.0))
    cifar10 = {r["top_gap"]: r for r in rows if r["setting"] == "cifar10"}
    for gap, row in cifar10.items():  # k = 2 of 10: the ratio depends on the top gap only
        kept_top = 1 / (1 + math.exp(-gap / 20.0))
        closed_form = math.sqrt(2) * (kept_top - 0.5) / math.sqrt(1 / 2 - 1 / 10)
        assert row["exact_q025"] == pytest.approx(closed_form, rel=1e-9)
        assert row["exact_q975"] == pytest.approx(closed_form, rel=1e-9)
    cifar100 = {r["top_gap"]: r for r in rows if r["setting"] == "cifar100"}
    for row in cifar100.values():
        assert row["exact_q025"] < row["exact_median"] < row["exact_q975"]
    assert cifar100[5.0]["exact_q975"] < cifar100[10.0]["exact_median"]
