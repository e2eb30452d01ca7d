"""Batched training: converges on an easy task; the within-M loss equals the full loss at k = K."""

from __future__ import annotations

import torch

from stingy.simulations import data
from stingy.simulations.students import init_mlp, mlp_forward, predict
from stingy.simulations.training import TargetBank, build_specs, per_model_losses, train_students
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


def test_batched_losses_match_kd_loss_per_model_for_every_method():
    generator = torch.Generator().manual_seed(1)
    classes, seeds = 10, 2
    specs = build_specs(["scratch", "normal_kd", "stingy_kd", "within_m_kd", "reversed_kd"],
                        [0.2, 0.5], [5.0], 0.9, seeds, classes)
    teacher = torch.randn(seeds, 16, classes, generator=generator)
    bank = TargetBank(teacher, specs)
    batch = torch.arange(16).expand(len(specs), 16)
    student = torch.randn(len(specs), 16, classes, generator=generator)
    labels = torch.randint(classes, (seeds, 16), generator=generator)[specs.seed_index]
    losses = per_model_losses(student, labels, bank.targets(batch), bank.within_index,
                              specs.temperature, specs.alpha)["total"]
    from stingy.theory.operators import reverse_logits
    for m, method in enumerate(specs.method):
        z = teacher[specs.seed_index[m]]
        k = int(specs.k[m]) if method in ("stingy_kd", "within_m_kd") else None
        if method == "reversed_kd":
            z = reverse_logits(z)
        expected = kd_loss(student[m], z, labels[m], 5.0, float(specs.alpha[m]), k=k,
                           within_kept=method == "within_m_kd")
        assert torch.allclose(losses[m], expected, atol=1e-5), method


def test_training_converges_on_an_easy_task():
    task = data.make_task(10, 2, 8, 8, 3.0, 1.5, 0)
    generator = torch.Generator().manual_seed(0)
    x, y = data.sample(task, 3000, generator)
    test_x, test_y = data.sample(task, 1000, generator)
    teacher = data.clean_log_posterior(task, x).float()[None]
    specs = build_specs(["scratch", "normal_kd"], [0.5], [4.0], 0.9, 1, 10)
    settings = dict(hidden=0, optimizer="adam", lr=0.1, momentum=0.0, weight_decay=0.0,
                    batch_size=100, steps=300)  # a linear student can represent the Bayes rule
    params, _ = train_students(specs, x.float()[None], y[None], teacher, settings,
                               test_x[:10].float(), torch.ones(2, 10, 10, dtype=torch.bool),
                               set(), generator)
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
