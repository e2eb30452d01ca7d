"""Stored sparse teachers and the KD loss computed from them, without dense teacher rows.

A *stored top-k teacher* keeps, per row, the k largest teacher logits (values) and their class
indices, plus optionally the teacher's tempered log-partition LSE(z/T) = log sum_K e^{z/T} at a
few temperatures T. That one number per row and temperature gives the kept mass
m = sum_M e^{z(i)/T - LSE(z/T)} and so the dropped ("tail") mass 1 - m.

File format (:func:`save_topk_teacher` / :func:`load_topk_teacher`): a NumPy ``.npz`` written
atomically and read with ``allow_pickle=False`` (no code runs on load) holding
``indices`` (N, k) int64, ``values`` (N, k) float, ``num_classes`` () int64, and, when present,
``log_partition`` (N, len(temperatures)) float with ``temperatures`` (t,) float.

Loss (:func:`kd_loss_topk`), with p = softmax(z/T), q = softmax(s/T), M the stored classes:

    tail="drop":   L = (1-a) CE(s, y) + a T^2 KL(p~ || q),   p~ = softmax of the stored values
                   on M and 0 off M: the Stingy Teacher's target, equal to ``kd_loss(..., k=k)``.
    tail="bucket": L = (1-a) CE(s, y) + a T^2 KL(b || q_b) over the k + 1 cells (M, tail),
                   b = (p on M, 1 - m), q_b = (q on M, Q = sum_{Mc} q); see
                   stingy.theory.tail_bucket for its expansion and gradient.
    tail="within": L = (1-a) CE(s, y) + a T^2 KL(p~ || softmax(s_M / T)): within-M KD, the
                   student's softmax renormalised over M too, equal to
                   ``kd_loss(..., k=k, within_kept=True)``.

The student's log-partitions (over all K classes at T = 1 and T, over Mc at T) are computed in
row chunks by one autograd function whose backward writes a single gradient of the student's
size, so the loss needs about the student's logits plus their gradient, whatever k is.
"""

from __future__ import annotations

import math
import numbers
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stingy.io import atomic_write, verify_checksum, write_checksum
from stingy.theory.validation import (
    as_tensor,
    check_alpha,
    check_keep_count,
    check_labels,
    check_logits,
    check_temperature,
)

TAILS = ("drop", "bucket", "within")
CHUNK_ELEMENTS = 1 << 22  # rows per chunk * K: 16 MiB of float32 per temporary


@dataclass(frozen=True)
class TopKTeacher:
    """A stored sparse teacher: per-row top-k ``indices`` and ``values`` over ``num_classes``
    classes, and optionally ``log_partition[:, j]`` = LSE(z / temperatures[j])."""

    indices: torch.Tensor
    values: torch.Tensor
    num_classes: int
    log_partition: torch.Tensor | None = None
    temperatures: tuple[float, ...] = ()

    def __post_init__(self):
        check_topk_rows(self.indices, self.values, self.num_classes)
        if (self.log_partition is None) != (len(self.temperatures) == 0):
            raise ValueError("log_partition and temperatures must be given together")
        if self.log_partition is not None:
            expected = (*self.values.shape[:-1], len(self.temperatures))
            if tuple(self.log_partition.shape) != expected:
                raise ValueError(f"log_partition must have shape {expected} (rows, "
                                 f"temperatures), got {tuple(self.log_partition.shape)}")
            for temperature in self.temperatures:
                check_temperature(temperature, "temperatures")

    @property
    def k(self) -> int:
        return self.values.shape[-1]

    def logsumexp_at(self, temperature: float) -> torch.Tensor:
        """LSE(z/T) per row at a stored temperature; a ValueError names the stored ones."""
        for column, stored in enumerate(self.temperatures):
            if math.isclose(stored, temperature, rel_tol=1e-9):
                return self.log_partition[..., column]
        raise ValueError(f"temperature {temperature} has no stored log-partition (stored: "
                         f"{list(self.temperatures) or 'none'})")


def topk_teacher(logits, k: int, temperatures=()) -> TopKTeacher:
    """The stored form of dense teacher logits: top-k values and indices (ties to the lowest
    index, the kept set of stingy.theory.operators.top_k_mask, values in descending order) and
    LSE(z/T) at each of ``temperatures``."""
    logits = check_logits(as_tensor(logits, "logits"), "logits")
    k = check_keep_count(k, logits.shape[-1])
    values, indices = logits.sort(dim=-1, descending=True, stable=True)
    temperatures = tuple(check_temperature(t, "temperatures") for t in temperatures)
    log_partition = (torch.stack([torch.logsumexp(logits / t, dim=-1) for t in temperatures],
                                 dim=-1) if temperatures else None)
    return TopKTeacher(indices[..., :k].contiguous(), values[..., :k].contiguous(),
                       logits.shape[-1], log_partition, temperatures)


def save_topk_teacher(path, teacher: TopKTeacher) -> Path:
    """Write ``teacher`` as an .npz (atomically; see the module docstring for the fields)."""
    arrays = {"indices": teacher.indices.cpu().numpy().astype(np.int64),
              "values": teacher.values.detach().cpu().numpy(),
              "num_classes": np.int64(teacher.num_classes)}
    if teacher.log_partition is not None:
        arrays["log_partition"] = teacher.log_partition.detach().cpu().numpy()
        arrays["temperatures"] = np.asarray(teacher.temperatures, dtype=np.float64)
    path = atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)
    write_checksum(path)
    return path


def load_topk_teacher(path) -> TopKTeacher:
    """Read a stored top-k teacher (``allow_pickle=False``) after checking it against its
    ``.sha256``; bad or changed content is a ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"top-k teacher file {str(path)!r} does not exist")
    verify_checksum(path, "top-k teacher file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, KeyError, MemoryError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a top-k teacher .npz ({err})") from None
    missing = {"indices", "values", "num_classes"} - set(arrays)
    if missing:
        raise ValueError(f"{path} lacks the arrays {sorted(missing)} of a top-k teacher")
    num_classes = arrays["num_classes"]
    if num_classes.shape != () or num_classes.dtype.kind not in "iu":
        raise ValueError(f"{path}: num_classes must be one integer")
    log_partition = arrays.get("log_partition")
    temperatures = arrays.get("temperatures", np.zeros(0))
    values = as_tensor(arrays["values"], "values")
    indices = arrays["indices"]
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{path}: indices must be integers, got {indices.dtype}")
    if indices.size and indices.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{path}: indices must be class indices below num_classes")
    return TopKTeacher(as_tensor(indices.astype(np.int64), "indices"), values, int(num_classes),
                       None if log_partition is None else as_tensor(log_partition,
                                                                    "log_partition"),
                       tuple(float(t) for t in np.asarray(temperatures).reshape(-1)))


def check_topk_rows(indices: torch.Tensor, values: torch.Tensor, num_classes) -> None:
    """indices: integers in [0, K), distinct within a row; values: finite floats, same shape."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    check_logits(values, "topk_values")
    if tuple(indices.shape) != tuple(values.shape):
        raise ValueError(f"topk_indices and topk_values must have the same shape, got "
                         f"{tuple(indices.shape)} and {tuple(values.shape)}")
    if torch.is_floating_point(indices) or indices.dtype == torch.bool:
        raise ValueError(f"topk_indices must be integers in [0, {num_classes}), got dtype "
                         f"{indices.dtype}")
    check_keep_count(values.shape[-1], num_classes, "topk_indices.shape[-1] (k)")
    if indices.numel() and not bool(((indices >= 0) & (indices < num_classes)).all()):
        raise ValueError(f"topk_indices must be integers in [0, {num_classes})")
    ordered = indices.sort(dim=-1).values
    if bool((ordered[..., 1:] == ordered[..., :-1]).any()):
        raise ValueError("topk_indices must be distinct within each row")


class _StudentLogPartitions(torch.autograd.Function):
    """Per row of s (N, K): LSE(s), LSE(s/T) and LSE_{i not in M}(s(i)/T), in row chunks.

    Outputs that are not wanted are returned as zeros. The backward pass writes one (N, K)
    gradient, g_1 softmax(s) + (g_T/T) softmax(s/T) + (g_tail/T) softmax_Mc(s/T), chunk by chunk.
    """

    @staticmethod
    def forward(ctx, student, temperature, kept_indices, want_hard, want_tail):
        ctx.save_for_backward(student, kept_indices)
        ctx.settings = (temperature, want_hard, want_tail)
        outputs = [student.new_zeros(student.shape[0]) for _ in range(3)]
        for rows, chunk in _chunks(student):
            for slot, scaled in enumerate(_scaled_chunks(chunk, temperature, kept_indices[rows],
                                                         want_hard, want_tail)):
                if scaled is not None:
                    outputs[slot][rows] = torch.logsumexp(scaled, dim=-1)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, grad_hard, grad_all, grad_tail):
        student, kept_indices = ctx.saved_tensors
        temperature, want_hard, want_tail = ctx.settings
        gradient = torch.empty_like(student)
        weights = (grad_hard, grad_all / temperature, grad_tail / temperature)
        for rows, chunk in _chunks(student):
            total = torch.zeros_like(chunk)
            for weight, scaled in zip(weights, _scaled_chunks(
                    chunk, temperature, kept_indices[rows], want_hard, want_tail)):
                if scaled is not None:
                    total.add_(torch.softmax(scaled, dim=-1).mul_(weight[rows, None]))
            gradient[rows] = total
        return gradient, None, None, None, None


def _chunks(student: torch.Tensor):
    step = max(1, CHUNK_ELEMENTS // max(student.shape[-1], 1))
    for start in range(0, student.shape[0], step):
        rows = slice(start, start + step)
        yield rows, student[rows]


def _scaled_chunks(chunk, temperature, kept_indices, want_hard, want_tail):
    """(s, s/T, s/T with M at -inf) for one chunk; None for the ones not wanted."""
    scaled = chunk / temperature
    tail = scaled.scatter(-1, kept_indices, float("-inf")) if want_tail else None
    return (chunk if want_hard else None), scaled, tail


def _topk_target(topk_values, temperature, tail, teacher_logsumexp):
    """(log target on M, tail mass 1 - m or None): the stored rows' target at T."""
    scaled = topk_values / temperature
    if tail != "bucket":
        return torch.log_softmax(scaled, dim=-1), None
    log_target = scaled - teacher_logsumexp[..., None]
    log_kept_mass = torch.logsumexp(log_target, dim=-1)
    return log_target, -torch.expm1(log_kept_mass.clamp_max(0.0))


def kd_loss_topk(student_logits, topk_indices, topk_values, labels=None, *,
                 temperature: float, alpha: float, tail: str = "drop",
                 teacher_logsumexp=None) -> torch.Tensor:
    """KD loss from stored top-k teacher rows, averaged over the batch; no dense teacher row.

        L = (1 - a) CE(s, y) + a T^2 KL(target || student)

    tail="drop":   target p~(i) = softmax(topk_values/T)(i) on the stored classes M, 0 off M,
                   student q = softmax(s/T): equals ``kd_loss(s, z, y, T, a, k=k)``.
    tail="bucket": target b = (p(i) = e^{z(i)/T - LSE(z/T)} on M, tail 1 - m), student
                   q_b = (q(i) on M, Q = sum_{i not in M} q(i)); needs ``teacher_logsumexp``
                   = LSE(z/T) (the teacher's log-partition *at this temperature*), shape
                   ``student_logits.shape[:-1]``. With k = K it equals normal KD.
    tail="within": target p~ as for "drop", student softmax(s_M / T) over M only: equals
                   ``kd_loss(s, z, y, T, a, k=k, within_kept=True)``.

    student_logits (..., K); topk_indices (..., k) distinct integers in [0, K); topk_values
    (..., k), the teacher's logits at those classes; labels (...,) integers, needed when
    alpha < 1. Gradients flow into the student only. Per-row KL:
        drop:   sum_M p~ log p~ + LSE(s/T) - sum_M p~ s/T
        bucket: sum_M p log p + (1-m) log(1-m) + LSE(s/T) - sum_M p s/T - (1-m) LSE_Mc(s/T)

    >>> import torch
    >>> student = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 1.0, 0.0, 0.5]], requires_grad=True)
    >>> teacher = torch.tensor([[3.0, 1.0, -1.0, 0.0], [1.0, 2.0, 0.0, -2.0]])
    >>> labels = torch.tensor([0, 1])
    >>> stored = topk_teacher(teacher, 2, temperatures=(4.0,))
    >>> stored.indices.tolist(), stored.values.tolist()
    ([[0, 1], [1, 0]], [[3.0, 1.0], [2.0, 1.0]])
    >>> loss = kd_loss_topk(student, stored.indices, stored.values, labels, temperature=4.0,
    ...                     alpha=0.9)
    >>> round(loss.item(), 4)  # = kd_loss(student, teacher, labels, 4.0, 0.9, k=2)
    8.2806
    >>> bucket = kd_loss_topk(student, stored.indices, stored.values, labels, temperature=4.0,
    ...                       alpha=0.9, tail="bucket", teacher_logsumexp=stored.logsumexp_at(4.0))
    >>> round(bucket.item(), 4)  # normal KD (dense teacher) gives 0.5602 here
    0.3621
    """
    student = check_logits(as_tensor(student_logits, "student_logits"), "student_logits")
    indices = as_tensor(topk_indices, "topk_indices")
    values = as_tensor(topk_values, "topk_values")
    check_topk_rows(indices, values, student.shape[-1])
    if indices.shape[:-1] != student.shape[:-1]:
        raise ValueError(f"topk_indices must have shape {(*student.shape[:-1], 'k')} (the "
                         f"student's rows), got {tuple(indices.shape)}")
    temperature = check_temperature(temperature)
    alpha = check_alpha(alpha)
    if tail not in TAILS:
        raise ValueError(f"tail must be one of {', '.join(TAILS)}, got {tail!r}")
    if labels is None and alpha < 1:
        raise ValueError(f"labels are needed when alpha < 1 (got alpha={alpha})")
    if labels is not None:
        labels = check_labels(as_tensor(labels, "labels"), student)
    num_classes, k = student.shape[-1], values.shape[-1]
    rows = student.reshape(-1, num_classes)
    values = values.detach().reshape(-1, k).to(student.dtype)
    indices = indices.reshape(-1, k).long()
    lse_teacher = None
    if tail == "bucket":
        if teacher_logsumexp is None:
            raise ValueError("tail='bucket' needs teacher_logsumexp, the teacher's LSE(z/T) "
                             "per row at this temperature")
        lse_teacher = check_logits(as_tensor(teacher_logsumexp, "teacher_logsumexp"),
                                   "teacher_logsumexp").detach()
        if tuple(lse_teacher.shape) != tuple(student.shape[:-1]):
            raise ValueError(f"teacher_logsumexp must have shape {tuple(student.shape[:-1])} "
                             f"(one per row), got {tuple(lse_teacher.shape)}")
        lse_teacher = lse_teacher.reshape(-1).to(student.dtype)
        kept_lse = torch.logsumexp(values / temperature, dim=-1)
        slack = 1e-4 * kept_lse.abs().clamp_min(1.0)
        if bool((lse_teacher < kept_lse - slack).any()):
            raise ValueError("teacher_logsumexp must be >= logsumexp(topk_values / temperature) "
                             "in every row (the kept mass cannot exceed 1)")
    return kd_loss_topk_unchecked(rows, indices, values, labels, temperature, alpha, tail,
                                  lse_teacher)


def kd_loss_topk_unchecked(rows: torch.Tensor, indices: torch.Tensor, values: torch.Tensor,
                           labels: torch.Tensor | None, temperature: float, alpha: float,
                           tail: str = "drop", teacher_logsumexp: torch.Tensor | None = None
                           ) -> torch.Tensor:
    """:func:`kd_loss_topk` without any argument check, for training loops (same formula).

    No data-dependent Python branch and no host-device synchronisation. The caller guarantees
    what :func:`kd_loss_topk` checks: rows (N, K) finite student logits; indices (N, k) int64,
    distinct, in [0, K); values (N, k) finite teacher logits (detached, the student's dtype);
    labels (N,) integers (None only when alpha == 1); teacher_logsumexp (N,) with
    LSE(z/T) >= LSE(values/T), given when tail == "bucket"; T > 0; alpha in [0, 1].
    """
    num_classes, k = rows.shape[-1], values.shape[-1]
    want_hard = alpha < 1
    want_tail = tail == "bucket" and k < num_classes
    kept_student = rows.gather(-1, indices) / temperature
    if tail == "within":  # the student's normaliser runs over M only
        lse_all = torch.logsumexp(kept_student, dim=-1)
        lse_hard = torch.logsumexp(rows, dim=-1) if want_hard else None
    else:
        lse_hard, lse_all, lse_tail = _StudentLogPartitions.apply(rows, temperature, indices,
                                                                 want_hard, want_tail)
    log_target, tail_mass = _topk_target(values, temperature, tail, teacher_logsumexp)
    target = log_target.exp()
    kl = (target * (log_target - kept_student)).sum(-1) + lse_all
    if want_tail:
        kl = kl + torch.special.xlogy(tail_mass, tail_mass) - tail_mass * lse_tail
    loss = alpha * temperature**2 * kl.mean()
    if want_hard:
        picked = rows.gather(-1, labels.reshape(-1, 1).long()).squeeze(-1)
        loss = loss + (1 - alpha) * (lse_hard - picked).mean()
    return loss
