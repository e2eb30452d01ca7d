"""The simulations' tail_bucket_kd method: its batched loss is kd_loss_topk(..., tail="bucket")."""

import math

import torch

from stingy.simulations.training import TargetBank, build_specs, per_model_losses
from stingy.theory.operators import kd_loss
from stingy.theory.topk import kd_loss_topk, topk_teacher


def test_batched_tail_bucket_loss_matches_kd_loss_topk_and_leaves_other_methods_unchanged():
    generator = torch.Generator().manual_seed(3)
    classes, seeds, examples = 10, 2, 16
    specs = build_specs(["normal_kd", "stingy_kd", "tail_bucket_kd"], [0.2, 0.5, 1.0], [5.0],
                        0.9, seeds, classes)
    teacher = 3 * torch.randn(seeds, examples, classes, generator=generator)
    bank = TargetBank(teacher, specs)
    batch = torch.arange(examples).expand(len(specs), examples)
    student = torch.randn(len(specs), examples, classes, generator=generator,
                          requires_grad=True)
    labels = torch.randint(classes, (seeds, examples), generator=generator)[specs.seed_index]
    losses = per_model_losses(student, labels, bank.targets(batch), bank.within_index,
                              specs.temperature, specs.alpha, bank.bucket_index)["total"]
    (gradient,) = torch.autograd.grad(losses.sum(), student)
    assert bool(torch.isfinite(gradient).all())  # also for k = K (empty tail)
    student = student.detach()
    checked = set()
    for m, method in enumerate(specs.method):
        z, k = teacher[specs.seed_index[m]], int(specs.k[m])
        if method == "tail_bucket_kd":
            stored = topk_teacher(z, k, (5.0,))
            expected = kd_loss_topk(student[m], stored.indices, stored.values, labels[m],
                                    temperature=5.0, alpha=0.9, tail="bucket",
                                    teacher_logsumexp=stored.logsumexp_at(5.0))
            if k == classes:  # nothing dropped: normal KD
                assert torch.allclose(losses[m], kd_loss(student[m], z, labels[m], 5.0, 0.9),
                                      atol=1e-5)
        else:
            expected = kd_loss(student[m], z, labels[m], 5.0, 0.9,
                               k=k if method == "stingy_kd" else None)
        assert torch.allclose(losses[m], expected, atol=1e-5), (method, k)
        checked.add((method, k))
    assert ("tail_bucket_kd", 2) in checked and ("tail_bucket_kd", 10) in checked


def _rows(bucket_accuracy):
    means = {("normal_kd", None): 0.9, ("stingy_kd", 0.1): 0.5, ("tail_bucket_kd", 0.1):
             bucket_accuracy}
    return [{"noise": 0.0, "noise_kind": "symmetric", "method": method, "seed": seed,
             "ratio": float("nan") if ratio is None else ratio,
             "accuracy": mean + 0.004 * (seed - 2) * (1 if method != "normal_kd" else -1)}
            for (method, ratio), mean in means.items() for seed in range(5)]


def test_check_f_passes_when_tail_bucket_recovers_and_fails_when_it_does_not():
    from stingy.simulations.verdicts import check_d

    recovered = check_d(_rows(0.88), 0.1, method="tail_bucket_kd")
    assert recovered["check"] == "f" and recovered["verdict"] == "pass"
    assert math.isclose(recovered["measured"], 0.95, rel_tol=0.05)
    failed = check_d(_rows(0.55), 0.1, method="tail_bucket_kd")
    assert failed["verdict"] == "fail" and "tail_bucket_kd - normal" in failed["detail"]
