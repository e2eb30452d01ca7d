"""The students of ``stingy lm``: one transformer per method and seed, trained through the
registry's objective (stingy.methods), so their loss is the code CIFAR students train with.

The teacher a student's objective gets is, per method: nothing (labels only), the teacher's
dense logits computed online on the same batch (full KD), the stored top-k rows with their
log-partition (stingy, tail-bucket and uniform-floor KD) or the stored sampled rows (sampled
KD). Every student of one seed starts from the same weights and sees the same batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from stingy.empirical.lm_metrics import HeldOut, evaluate
from stingy.empirical.lm_model import build_model, train_model
from stingy.empirical.lm_rows import load_sampled_rows, read_topk_rows, sampled_path
from stingy.empirical.lm_verdicts import student_label
from stingy.methods import MethodSettings, method
from stingy.objective import SampledRows, TopKRows


def students(distill) -> list[tuple[str, int]]:
    """(method, k) of every student: k is the kept count or the sample count, 0 if none."""
    return [("scratch", 0), ("normal_kd", 0), *(("stingy_kd", k) for k in distill.top_k),
            ("tail_bucket_kd", distill.fix_k), ("uniform_floor_kd", distill.fix_k),
            *(("sampled_kd", count) for count in distill.samples)]


@dataclass(frozen=True)
class Transfer:
    """What students train and are measured on: the training blocks [n, C + 1], the teacher,
    the rows folder, the held-out reference, the vocabulary size and the device."""

    blocks: torch.Tensor
    teacher: torch.nn.Module
    rows_folder: Path
    held_out: HeldOut
    vocab_size: int
    device: torch.device


def _rows(transfer: Transfer, name: str, k: int, temperature: float):
    """The stored rows ``name``'s objective reads, on the device; None for the other
    methods."""
    tokens = transfer.blocks.shape[0] * (transfer.blocks.shape[1] - 1)
    if name == "sampled_kd":
        rows = load_sampled_rows(sampled_path(transfer.rows_folder, k), transfer.vocab_size,
                                 temperature)
        if rows.indices.shape != (tokens, k):
            raise ValueError(f"{sampled_path(transfer.rows_folder, k)} does not hold {tokens} "
                             f"rows of {k} samples")
    elif method(name).sparse_target:
        rows = read_topk_rows(transfer.rows_folder, k, transfer.vocab_size, temperature, tokens)
    else:
        return None
    return type(rows)(*(part.to(transfer.device) for part in rows))


def _teacher_feed(transfer: Transfer, name: str, rows):
    """teacher_of(block ids, inputs) -> what the objective takes as its teacher."""
    width = transfer.blocks.shape[1] - 1
    offsets = torch.arange(width, device=transfer.device)

    def teacher_of(ids, inputs):
        if name == "scratch":
            return None
        if rows is None:
            with torch.no_grad():
                return transfer.teacher(inputs).flatten(0, 1)
        tokens = (ids[:, None] * width + offsets).flatten()
        if isinstance(rows, SampledRows):
            return SampledRows(rows.indices[tokens], rows.weights[tokens])
        return TopKRows(rows.indices[tokens], rows.values[tokens], rows.log_partition[tokens])

    return teacher_of


def train_student(settings, transfer: Transfer, name: str, k: int, seed: int) -> dict:
    """Train one student and measure it on the held-out text: its result row."""
    start, distill = time.time(), settings.distill
    objective = method(name).objective(MethodSettings(
        name=name, temperature=distill.temperature, alpha=distill.alpha, k=k),
        transfer.vocab_size)
    teacher_of = _teacher_feed(transfer, name, _rows(transfer, name, k, distill.temperature))
    blocks = transfer.blocks.to(transfer.device)
    count, batch = len(blocks), settings.student_training.batch_size
    generator = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(count, generator=generator) for _ in range(
        -(-settings.student_training.steps * batch // count))])

    def batch_at(step):
        return order[step * batch:(step + 1) * batch].to(transfer.device)

    def loss_of(model, ids):
        inputs = blocks[ids, :-1]
        return objective(model(inputs).flatten(0, 1), teacher_of(ids, inputs),
                         blocks[ids, 1:].flatten())

    model = build_model(transfer.vocab_size, settings.context, settings.student, seed,
                        transfer.device)
    label = student_label(name, k)
    losses = train_model(model, batch_at, loss_of, settings.student_training,
                         f"{label} seed {seed}")
    metrics = evaluate(model, transfer.held_out, settings.student_training.batch_size,
                       settings.evaluation.ece_bins)
    return {"student": label, "method": name, "k": k, "seed": seed, **metrics,
            "final_train_loss": losses[-1], "seconds": time.time() - start}
