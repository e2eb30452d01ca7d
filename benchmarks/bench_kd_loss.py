"""Stingy KD loss, forward + backward: ours (stingy.theory.operators.kd_loss) against the reference
code's pattern, each against a plain copy of the logits (the memory-traffic floor).

The reference (github.com/HowieMa/stingy-teacher) sparsifies with torch.topk, a row index built
by a Python list comprehension, and fancy-index assignment into a -inf tensor, then applies
    (1 - a) CE(s, y) + a T^2 KLDivLoss(batchmean)(log_softmax(s/T), softmax(z_sparse/T)).
Times are medians of torch.utils.benchmark.Timer.blocked_autorange (warm-up included).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from stingy.theory.operators import kd_loss

TEMPERATURE, ALPHA, RATIO = 20.0, 0.9, 0.1


def reference_kd_loss(student, teacher, labels, temperature, alpha, k):
    """The reference's stingy KD loss, written the way its code builds the sparse logits."""
    values, index = torch.topk(teacher, k, dim=1)
    rows = [[i] * k for i in range(teacher.shape[0])]
    sparse = torch.ones_like(teacher) * float("-inf")
    sparse[rows, index] = values
    distill = torch.nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(student / temperature, dim=1), F.softmax(sparse / temperature, dim=1))
    return distill * alpha * temperature**2 + F.cross_entropy(student, labels) * (1 - alpha)


def _inputs(batch, classes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=generator).requires_grad_(True)
    teacher = torch.randn(batch, classes, generator=generator)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return student, teacher, labels


def _median_seconds(statement, env, min_run_time):
    timer = Timer(stmt=statement, globals=env, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def bench_kd_loss(batches=(128, 1024), class_counts=(10, 100, 1000),
                  min_run_time=0.3) -> list[dict]:
    """One row per (batch, K): median seconds of ours, the reference and a copy, and ratios."""
    rows = []
    for batch in batches:
        for classes in class_counts:
            student, teacher, labels = _inputs(batch, classes)
            k = max(1, int(RATIO * classes))
            env = {"kd_loss": kd_loss, "reference_kd_loss": reference_kd_loss,
                   "student": student, "teacher": teacher, "labels": labels, "k": k,
                   "T": TEMPERATURE, "a": ALPHA}
            ours_value = kd_loss(student, teacher, labels, TEMPERATURE, ALPHA, k=k)
            reference_value = reference_kd_loss(student, teacher, labels, TEMPERATURE, ALPHA, k)
            if not torch.allclose(ours_value, reference_value, rtol=1e-4, atol=1e-4):
                raise AssertionError(f"losses differ at batch {batch}, K {classes}: "
                                     f"{float(ours_value)} vs {float(reference_value)}")
            ours = _median_seconds("kd_loss(student, teacher, labels, T, a, k=k).backward()",
                                   env, min_run_time)
            reference = _median_seconds(
                "reference_kd_loss(student, teacher, labels, T, a, k).backward()", env,
                min_run_time)
            copy = _median_seconds("teacher.clone()", env, min_run_time)
            rows.append({"batch": batch, "num_classes": classes, "k": k,
                         "ours_us": ours * 1e6, "reference_us": reference * 1e6,
                         "copy_us": copy * 1e6, "reference_over_ours": reference / ours,
                         "ours_over_copy": ours / copy, "reference_over_copy": reference / copy})
    return rows
