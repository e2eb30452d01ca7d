"""Per-method losses agree with stingy.theory.operators and the Nasty Teacher formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.empirical.objectives import method_losses
from stingy.theory.operators import kd_loss, reverse_logits


def method(name, **kwargs):
    base = {"name": name, "temperature": 4.0, "alpha": 0.9, "ratio": 0.0, "k": 0,
            "nasty_weight": 0.04}
    return {**base, **kwargs}


def batch(seed, n=6, classes=10):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, classes, generator=g) * 3, torch.randn(n, classes, generator=g) * 5,
            torch.randint(0, classes, (n,), generator=g))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 10),
       temperature=st.floats(0.5, 30), alpha=st.floats(0, 1))
def test_kd_stingy_within_totals_equal_theory_kd_loss(seed, k, temperature, alpha):
    student, teacher, labels = batch(seed)
    cases = [(method("normal_kd", temperature=temperature, alpha=alpha), {}),
             (method("stingy_kd", temperature=temperature, alpha=alpha, k=k), {"k": k}),
             (method("within_m_kd", temperature=temperature, alpha=alpha, k=k),
              {"k": k, "within_kept": True})]
    for config, kwargs in cases:
        losses = method_losses(config, student, teacher, labels)
        expected = kd_loss(student, teacher, labels, temperature, alpha, **kwargs)
        torch.testing.assert_close(losses["loss"], expected, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(losses["ce"], F.cross_entropy(student, labels))


def test_stingy_ratio_gives_k_from_keep_count():
    student, teacher, labels = batch(1)
    losses = method_losses(method("stingy_kd", temperature=20.0, ratio=0.2), student, teacher, labels)
    torch.testing.assert_close(losses["loss"], kd_loss(student, teacher, labels, 20.0, 0.9, k=2))


def test_reversed_is_kd_from_reversed_logits():
    student, teacher, labels = batch(2)
    losses = method_losses(method("reversed_kd"), student, teacher, labels)
    expected = kd_loss(student, reverse_logits(teacher), labels, 4.0, 0.9)
    torch.testing.assert_close(losses["loss"], expected)
    assert not torch.allclose(losses["loss"], kd_loss(student, teacher, labels, 4.0, 0.9))


def test_nasty_loss_is_ce_minus_weighted_tempered_kl():
    student, teacher, labels = batch(3)
    losses = method_losses(method("nasty_teacher", temperature=4.0, nasty_weight=0.04),
                           student, teacher, labels)
    log_q = F.log_softmax(student / 4, dim=-1)
    p = F.softmax(teacher / 4, dim=-1)
    kl = (p * (p.log() - log_q)).sum(-1).mean()
    expected = F.cross_entropy(student, labels) - 0.04 * 16 * kl
    torch.testing.assert_close(losses["loss"], expected, rtol=1e-5, atol=1e-5)
    assert set(losses) == {"loss", "ce", "divergence"}


def test_scratch_label_smoothing_and_no_teacher_needed():
    student, _, labels = batch(4)
    losses = method_losses(method("scratch"), student, None, labels, label_smoothing=0.1)
    torch.testing.assert_close(losses["loss"],
                               F.cross_entropy(student, labels, label_smoothing=0.1))


def test_gradients_reach_the_student_only():
    student, teacher, labels = batch(5)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    method_losses(method("stingy_kd", k=2, temperature=20.0), student, teacher, labels)["loss"].backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert teacher.grad is None


def test_stingy_k_above_classes_is_refused():
    student, teacher, labels = batch(6)
    with pytest.raises(ValueError, match="method.k"):
        method_losses(method("stingy_kd", k=11), student, teacher, labels)
