"""Stingy KD loss, forward + backward: the training loops' unchecked core
(stingy.theory.operators.kd_loss_unchecked) and the public, validated kd_loss, against the
reference code's pattern, each against a plain copy of the logits (the memory-traffic floor).

The reference (github.com/HowieMa/stingy-teacher) sparsifies with torch.topk, a row index built
by a Python list comprehension, and fancy-index assignment into a -inf tensor, then applies
    (1 - a) CE(s, y) + a T^2 KLDivLoss(batchmean)(log_softmax(s/T), softmax(z_sparse/T)).

Timing: CPU time of the calling thread (``time.thread_time``, steadier than wall time on a
shared machine), median of ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up
included). The methods are timed in turn, ``rounds`` times; each time is the median over the
rounds and each ratio the median of the per-round ratios. Library function for
``stingy bench``; ``python -m stingy.benchmarks.bench_kd_loss`` prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from stingy.theory.operators import kd_loss, kd_loss_unchecked

TEMPERATURE, ALPHA, RATIO = 20.0, 0.9, 0.1
SIZES = ((128, 10), (128, 100), (1024, 100), (256, 1000))  # (batch, K)
STATEMENTS = {
    "ours": "kd_loss_unchecked(student, teacher, labels, T, a, k).backward()",
    "validated": "kd_loss(student, teacher, labels, T, a, k).backward()",
    "reference": "reference_kd_loss(student, teacher, labels, T, a, k).backward()",
    "copy": "teacher.clone()",
}


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


def check_agreement(student, teacher, labels, k) -> None:
    """The core's loss and gradient equal the reference's (AssertionError otherwise)."""
    ours = kd_loss_unchecked(student, teacher, labels, TEMPERATURE, ALPHA, k)
    theirs = reference_kd_loss(student, teacher, labels, TEMPERATURE, ALPHA, k)
    (our_grad,) = torch.autograd.grad(ours, student)
    (their_grad,) = torch.autograd.grad(theirs, student)
    if not (torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)
            and torch.allclose(our_grad, their_grad, rtol=1e-4, atol=1e-6)):
        raise AssertionError(f"loss or gradient differs from the reference at batch "
                             f"{student.shape[0]}, K {student.shape[1]}: "
                             f"{ours.item()} vs {theirs.item()}")


def _cpu_seconds(statement, env, min_run_time):
    timer = Timer(stmt=statement, globals=env, num_threads=torch.get_num_threads(),
                  timer=time.thread_time)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def _median_ratio(numerators, denominators):
    return statistics.median(a / b for a, b in zip(numerators, denominators))


def run(sizes=SIZES, min_run_time=0.3, rounds=3) -> list[dict]:
    """One row per (batch, K): median CPU microseconds of ours (the unchecked core), the
    validated kd_loss, the reference and a copy, and the median ratios."""
    rows = []
    for batch, classes in sizes:
        student, teacher, labels = _inputs(batch, classes)
        k = max(1, int(RATIO * classes))
        check_agreement(student, teacher, labels, k)
        env = {"kd_loss": kd_loss, "kd_loss_unchecked": kd_loss_unchecked,
               "reference_kd_loss": reference_kd_loss, "student": student,
               "teacher": teacher, "labels": labels, "k": k, "T": TEMPERATURE, "a": ALPHA}
        times = {name: [] for name in STATEMENTS}
        for _ in range(rounds):
            for name, statement in STATEMENTS.items():
                times[name].append(_cpu_seconds(statement, env, min_run_time))

        row = {"batch": batch, "num_classes": classes, "k": k, "rounds": rounds}
        row.update({f"{name}_us": statistics.median(values) * 1e6
                    for name, values in times.items()})
        row.update({"reference_over_ours": _median_ratio(times["reference"], times["ours"]),
                    "reference_over_validated": _median_ratio(times["reference"],
                                                              times["validated"]),
                    "ours_over_copy": _median_ratio(times["ours"], times["copy"]),
                    "reference_over_copy": _median_ratio(times["reference"], times["copy"])})
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    header = ("| batch x K | k | ours, unchecked (us) | kd_loss, validated (us) | reference (us) "
              "| reference / ours | reference / validated |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['batch']} x {row['num_classes']} | {row['k']} | "
                     f"{row['ours_us']:.0f} | {row['validated_us']:.0f} | "
                     f"{row['reference_us']:.0f} | {row['reference_over_ours']:.2f} | "
                     f"{row['reference_over_validated']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-run-time", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(markdown(run(min_run_time=args.min_run_time, rounds=args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
