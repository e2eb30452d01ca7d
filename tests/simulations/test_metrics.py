"""Test metrics of stingy.simulations.sweep.evaluate on hand-made cases whose answers are known:
accuracy within the teacher's kept set M, the final logit gap sbar_M - sbar_Mc, agreement."""

from __future__ import annotations

import pytest
import torch

from stingy.simulations.sweep import evaluate
from stingy.simulations.training import build_specs


def linear_models_with_logits(logits: torch.Tensor) -> list[torch.Tensor]:
    """Linear models (hidden = 0) whose logits on the one-hot inputs eye(N) are ``logits``
    [n, N, C]: W = logits, b = 0."""
    return [logits.clone(), torch.zeros(logits.shape[0], 1, logits.shape[2])]


def case():
    """4 classes, 4 test examples, one seed; the teacher's top-2 set M per example is
    {0,1}, {1,2}, {2,3}, {0,3}."""
    teacher = torch.tensor([[5., 4., 0., -1.], [0., 5., 4., -1.], [-1., 0., 5., 4.],
                            [4., -1., 0., 5.]])[None]
    labels = torch.tensor([1, 0, 3, 3])  # label in M for examples 0, 2, 3; not for 1
    student = torch.tensor([[1., 2., 9., 0.],    # argmax 2, argmax over M {0,1} is 1 = label
                            [3., 2., 1., 0.],    # label 0 not in M {1,2}: not counted
                            [0., 0., 2., 1.],    # argmax over M {2,3} is 2, label 3: wrong
                            [0., 5., 1., 2.]])   # argmax over M {0,3} is 3 = label
    setting = {"test_x": torch.eye(4)[None], "test_y": labels[None], "test_teacher": teacher}
    specs = build_specs(["stingy_kd"], [0.5], [4.0], 0.9, 1, 4)  # k = 2
    return linear_models_with_logits(student[None]), specs, setting, student, labels


def test_accuracy_within_m_counts_only_examples_whose_label_is_kept():
    params, specs, setting, _, _ = case()
    metrics = evaluate(params, specs, setting, chunk=3)  # chunks split the examples
    assert metrics["accuracy_within_m"][0] == pytest.approx(2 / 3)


def test_accuracy_and_teacher_agreement_use_the_full_argmax():
    params, specs, setting, _, _ = case()
    metrics = evaluate(params, specs, setting)
    # student argmax 2, 0, 2, 1; labels 1, 0, 3, 3; teacher argmax 0, 1, 2, 3
    assert metrics["accuracy"][0] == pytest.approx(1 / 4)
    assert metrics["teacher_agreement"][0] == pytest.approx(1 / 4)


def test_final_logit_gap_is_mean_over_m_minus_mean_over_the_rest():
    params, specs, setting, student, _ = case()
    metrics = evaluate(params, specs, setting)
    kept = [[0, 1], [1, 2], [2, 3], [0, 3]]
    gaps = [student[i, m].mean() - student[i, [c for c in range(4) if c not in m]].mean()
            for i, m in enumerate(kept)]  # -3, 0, 1.5, -2 -> mean -0.875
    assert metrics["final_logit_gap"][0] == pytest.approx(float(torch.stack(gaps).mean()))
    assert metrics["final_logit_gap"][0] == pytest.approx(-0.875)


def test_log_loss_is_the_mean_cross_entropy_on_clean_labels():
    params, specs, setting, student, labels = case()
    metrics = evaluate(params, specs, setting)
    expected = torch.nn.functional.cross_entropy(student, labels)
    assert metrics["log_loss"][0] == pytest.approx(float(expected), rel=1e-6)
