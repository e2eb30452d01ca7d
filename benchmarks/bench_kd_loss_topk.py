"""KD loss from stored top-k teacher rows at vocabulary scale: time and peak memory.

:func:`bench_kd_loss_topk` times forward + backward of stingy.theory.topk.kd_loss_topk
(tail "drop" and "bucket") and, where it fits, of the dense path
stingy.theory.operators.kd_loss(..., k=k) on the full (B, K) teacher, and measures each one's
peak resident memory above what was resident before the call (the inputs already allocated).
Peak memory is Linux's VmHWM, reset through /proc/self/clear_refs before each measured call;
elsewhere it is reported as None. The student's own memory is B*K*4 bytes (float32 logits)
and its gradient as much again.

    python -m stingy.benchmarks.bench_kd_loss_topk [--batch 512] [--classes 131072] [--k 64]
                                                   [--no-dense] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from stingy.io import write_json
from stingy.theory.operators import kd_loss
from stingy.theory.topk import kd_loss_topk, topk_teacher
from stingy.theory.vocabulary import heavy_tailed_logits

MIB = 2**20


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_above_baseline(run) -> tuple[float | None, float]:
    """(peak resident MiB above the resident size before ``run()``, or None off Linux;
    wall seconds of ``run()``)."""
    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        before = None
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None, seconds
    return (peak - before) / 1024, seconds


def bench_kd_loss_topk(batch: int = 512, num_classes: int = 131072, k: int = 64,
                       temperature: float = 2.0, alpha: float = 0.9, dense: bool = True,
                       repeats: int = 3, seed: int = 0) -> dict:
    """Forward + backward of each path: best-of-``repeats`` seconds and peak MiB above baseline.

    Returns {"settings", "student_mib", "paths": [{"path", "seconds", "peak_mib",
    "peak_over_student", "loss"}]}; the dense path's loss must equal the drop path's (it is
    checked, rtol 1e-4), and the bucket path's is reported for comparison.
    """
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, num_classes, generator=generator).requires_grad_()
    labels = torch.randint(0, num_classes, (batch,), generator=generator)
    stored = _stored_rows(batch, num_classes, k, temperature)
    student_mib = student.numel() * student.element_size() / MIB

    def topk_path(tail):
        def run():
            loss = kd_loss_topk(student, stored.indices, stored.values, labels,
                                temperature=temperature, alpha=alpha, tail=tail,
                                teacher_logsumexp=stored.logsumexp_at(temperature))
            torch.autograd.grad(loss, student)
            values[tail] = loss.item()
        return run

    values: dict = {}
    paths = {"topk_drop": topk_path("drop"), "topk_bucket": topk_path("bucket")}
    if dense:
        teacher = _dense_teacher(stored, generator)

        def dense_run():
            loss = kd_loss(student, teacher, labels, temperature, alpha, k=k)
            torch.autograd.grad(loss, student)
            values["dense"] = loss.item()
        paths["dense_kd_loss"] = dense_run
    rows = []
    for name, run in paths.items():
        measured = [peak_memory_above_baseline(run) for _ in range(repeats)]
        peaks = [peak for peak, _ in measured if peak is not None]
        peak = max(peaks) if peaks else None
        rows.append({"path": name, "seconds": min(s for _, s in measured), "peak_mib": peak,
                     "peak_over_student": None if peak is None else peak / student_mib})
    for row in rows:
        row["loss"] = values[{"topk_drop": "drop", "topk_bucket": "bucket",
                              "dense_kd_loss": "dense"}[row["path"]]]
    if dense and abs(values["dense"] - values["drop"]) > 1e-4 * max(1.0, abs(values["dense"])):
        raise AssertionError(f"dense and top-k losses differ: {values['dense']} vs "
                             f"{values['drop']}")
    return {"settings": {"batch": batch, "num_classes": num_classes, "k": k,
                         "temperature": temperature, "alpha": alpha, "repeats": repeats,
                         "threads": torch.get_num_threads()},
            "student_mib": student_mib, "paths": rows}


def _stored_rows(batch, num_classes, k, temperature):
    """Stored rows of stingy.theory.vocabulary.heavy_tailed_logits (row i drawn with seed i),
    one row at a time: the full (B, K) teacher is never held."""
    indices, values, log_partition = [], [], []
    for row_index in range(batch):
        row = heavy_tailed_logits(1, num_classes, row_index, dtype=torch.float32)
        stored = topk_teacher(row, k, (temperature,))
        indices.append(stored.indices)
        values.append(stored.values)
        log_partition.append(stored.log_partition)
    return type(stored)(torch.cat(indices), torch.cat(values), num_classes,
                        torch.cat(log_partition), (temperature,))


def _dense_teacher(stored, generator):
    """A dense (B, K) teacher whose top-k rows are exactly ``stored``: the stored values at
    their classes, every other class strictly below the row's k-th value."""
    teacher = torch.rand(stored.values.shape[0], stored.num_classes, generator=generator)
    teacher = stored.values[:, -1:] - 1.0 - teacher
    return teacher.scatter(-1, stored.indices, stored.values)


def markdown(result: dict) -> str:
    settings = result["settings"]
    header = (f"B={settings['batch']}, K={settings['num_classes']}, k={settings['k']}, "
              f"T={settings['temperature']}, {settings['threads']} thread(s); student logits "
              f"{result['student_mib']:.0f} MiB.")
    lines = [header, "",
             "| path | forward+backward (s) | peak memory above inputs (MiB) | peak / student |",
             "|---|---|---|---|"]
    for row in result["paths"]:
        peak = "n/a" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        ratio = "n/a" if row["peak_over_student"] is None else f"{row['peak_over_student']:.2f}"
        lines.append(f"| {row['path']} | {row['seconds']:.3f} | {peak} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--classes", type=int, default=131072)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense path")
    parser.add_argument("--out", type=Path, help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = bench_kd_loss_topk(args.batch, args.classes, args.k, dense=not args.no_dense)
    if args.out:
        write_json(args.out, result)
    print(markdown(result))
    print(json.dumps(result["paths"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
