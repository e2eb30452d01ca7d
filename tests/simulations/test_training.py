"""Batched training: converges on an easy task; the within-M loss equals the full loss at k = K
(test_objective_equivalence.py holds every method's batched loss equal to its objective)."""

from __future__ import annotations

import pytest
import torch

from stingy.simulations import data
from stingy.simulations.config import StudentSettings
from stingy.simulations.students import init_mlp, mlp_forward, predict
from stingy.simulations.training import build_specs, per_model_losses, train_students
from stingy.theory.operators import kd_loss


def test_within_m_loss_equals_full_loss_when_k_is_K():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(3, 8, 6, generator=generator)
    teacher = torch.randn(3, 8, 6, generator=generator)
    labels = torch.randint(6, (3, 8), generator=generator)
    temperature = torch.full((3,), 4.0)
    alpha = torch.full((3,), 0.7)
    log_target = torch.log_softmax(teacher / 4.0, dim=-1)
    targets = {"probs": log_target.exp(), "neg_entropy": (log_target.exp() * log_target).sum(-1),
               "kept": torch.ones_like(student, dtype=torch.bool)}  # k = K: M is every class
    full = per_model_losses(student, labels, dict(targets, kept=targets["kept"][:0]),
                            torch.arange(0), temperature, alpha)["total"]
    within = per_model_losses(student, labels, targets, torch.arange(3),
                              temperature, alpha)["total"]
    assert torch.allclose(within, full)
    for m in range(3):  # and each model's loss is stingy.theory.operators.kd_loss
        assert torch.allclose(full[m], kd_loss(student[m], teacher[m], labels[m], 4.0, 0.7))


def test_training_converges_on_an_easy_task():
    task = data.make_task(10, 2, 8, 8, 3.0, 1.5, 0)
    generator = torch.Generator().manual_seed(0)
    x, y = data.sample(task, 3000, generator)
    test_x, test_y = data.sample(task, 1000, generator)
    teacher = data.clean_log_posterior(task, x).float()[None]
    specs = build_specs(["scratch", "normal_kd"], [0.5], [4.0], 0.9, 1, 10)
    student = StudentSettings(seeds=2, hidden=0, optimizer="adam", lr=0.1, momentum=0.0,
                              weight_decay=0.0, batch_size=100, steps=300)  # linear: Bayes rule
    params, _ = train_students(specs, x.float()[None], y[None], teacher, student, generator)
    bayes = (data.clean_log_posterior(task, test_x).argmax(1) == test_y).float().mean()
    accuracy = (predict(params, test_x.float()).argmax(-1) == test_y).float().mean(1)
    assert bayes > 0.9
    assert bool((accuracy > bayes - 0.05).all()), (accuracy, bayes)


def test_models_of_one_seed_start_identical_and_train_independently():
    generator = torch.Generator().manual_seed(0)
    params = init_mlp(2, 4, 5, 3, generator)
    x = torch.randn(2, 7, 4)
    out = mlp_forward(params, x)
    out[0].sum().backward()
    assert params[0].grad[1].abs().sum() == 0  # model 1 gets no gradient from model 0's loss


def _easy_task(steps=300):
    task = data.make_task(10, 2, 8, 8, 3.0, 1.5, 0)
    generator = torch.Generator().manual_seed(0)
    x, y = data.sample(task, 2000, generator)
    teacher = data.clean_log_posterior(task, x).float()[None] * 3
    student = StudentSettings(seeds=2, hidden=16, optimizer="adam", lr=0.05, momentum=0.0,
                              weight_decay=0.0, batch_size=100, steps=steps)
    return x.float()[None], y[None], teacher, student, generator


def test_within_spread_rescales_the_sparse_targets_on_m_only():
    from stingy.simulations.training import TargetBank

    teacher = torch.randn(1, 5, 10, generator=torch.Generator().manual_seed(1)) * 3
    specs = build_specs(["normal_kd", "stingy_kd"], [0.3], [4.0], 0.9, 1, 10)
    kept = teacher[0].argsort(-1, descending=True)[:, :3]
    for spread in (0.0, 0.5, 2.0):
        bank = TargetBank(teacher, specs, spread)
        probs = bank.targets(torch.arange(5).expand(2, 5))["probs"]
        torch.testing.assert_close(probs[0], torch.softmax(teacher[0] / 4.0, -1))  # dense: same
        on_m = torch.softmax(spread * teacher[0].gather(-1, kept) / 4.0, -1)
        torch.testing.assert_close(probs[1].gather(-1, kept), on_m)
        assert float(probs[1].sum(-1).sub(1).abs().max()) < 1e-6  # nothing off M
    assert torch.allclose(on_m.new_tensor(1 / 3), TargetBank(teacher, specs, 0.0).targets(
        torch.arange(5).expand(2, 5))["probs"][1].gather(-1, kept))  # c = 0: uniform on M


def test_gap_penalty_is_the_squared_excess_of_the_kept_minus_dropped_mean():
    from stingy.simulations.training import gap_penalty

    logits = torch.tensor([[[5.0, 3.0, 0.0, -2.0], [1.0, 1.0, 1.0, 1.0]]])
    kept = torch.tensor([[[True, True, False, False], [True, False, False, False]]])
    # gaps: (5 + 3)/2 - (0 - 2)/2 = 5 and 1 - 1 = 0; cap 2: (3^2 + 0) / 2
    assert float(gap_penalty(logits, kept, 2.0)[0]) == 4.5
    assert float(gap_penalty(logits, kept, 5.0)[0]) == 0.0  # at the cap: free


def test_a_gap_cap_holds_the_stingy_students_gap_and_leaves_the_others_alone():
    from stingy.simulations.training import TargetBank
    from stingy.theory.expansion import logit_gap

    x, y, teacher, student, _ = _easy_task()
    specs = build_specs(["normal_kd", "stingy_kd"], [0.2], [20.0], 0.9, 1, 10)
    kept = TargetBank(teacher, specs).kept_of(torch.arange(2), torch.arange(500).expand(2, 500))
    gaps, outputs = {}, {}
    for cap in (0.0, 2.0):
        capped = StudentSettings(**{**student.__dict__, "gap_cap": cap})
        params, _ = train_students(specs, x, y, teacher, capped, torch.Generator().manual_seed(0))
        outputs[cap] = mlp_forward(params, x[:, :500].expand(2, -1, -1))
        gaps[cap] = logit_gap(outputs[cap][1:], kept[1:]).mean()
    assert gaps[0.0] > 50 and gaps[2.0] < 0.1 * gaps[0.0]  # the stingy gap is held
    torch.testing.assert_close(outputs[2.0][0], outputs[0.0][0])  # normal KD: untouched


def test_a_diverging_student_fails_instead_of_returning_weights():
    from stingy.io import Diverged

    task = data.make_task(10, 2, 8, 8, 3.0, 1.5, 0)
    generator = torch.Generator().manual_seed(0)
    x, y = data.sample(task, 200, generator)
    teacher = data.clean_log_posterior(task, x).float()[None]
    specs = build_specs(["scratch", "normal_kd"], [0.5], [4.0], 0.9, 1, 10)
    student = StudentSettings(seeds=2, hidden=8, optimizer="sgd", lr=1e30, momentum=0.0,
                              weight_decay=0.0, batch_size=50, steps=8)
    with pytest.raises(Diverged, match="diverged at epoch 1: .* of normal_kd, scratch are not"):
        train_students(specs, x.float()[None], y[None], teacher, student, generator)
