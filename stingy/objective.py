"""The one objective: every registry method's loss, built once from its settings.

``build_objective(method, settings, num_classes)`` (or ``method.objective(settings,
num_classes)`` on a :class:`stingy.methods.Method`) resolves the temperature T, the weight a,
the kept count k and the method's flags once, and returns an :class:`Objective`, the callable
every training loop calls (the CIFAR engine, the batched students, DAFL; the simulations'
vectorised backend is tested equal to it):

    objective(student_logits, teacher, labels) -> loss (mean over the batch)

``teacher`` is the teacher's dense logits [B, K], or its stored top-k rows
(:class:`TopKRows`, values in descending order) for the sparse methods with k <= the stored
count (tail-bucket KD: rows stored with their log-partition), or its sampled rows
(:class:`SampledRows`) for sampled KD. With s the student's logits, z the teacher's, y the labels:

    labels   (scratch)          CE_eps(s, y), label smoothing eps
    uniform  (label smoothing)  (1 - a) CE(s, y) + a KL(u || softmax(s)), T = 1
    teacher  (normal KD)        (1 - a) CE(s, y) + a T^2 KL(softmax(z/T) || softmax(s/T))
    reversed                    the same with reverse_logits(z)
    sparse   (stingy)           the same with z off its top-k set M at -inf
    within_kept (within-M)      ... || softmax(s_M / T)), the student renormalised over M
    tail_bucket                 KL over (M, one tail cell) of (p on M, 1 - m) || (q on M, Q)
    uniform_floor               the same as sparse with target U_K + (k/K)(p~ - U_M): (k/K) p~
                                on M and 1/K on each dropped class (p~ the sparse target)
    sampled                     the same with target c/k: c counts k classes drawn with
                                replacement from softmax(z/T) (SampledRows; drawn each call
                                from a dense teacher)
    sign -1  (nasty teacher)    CE(s, y) - w T^2 KL(softmax(z/T) || softmax(s/T))
    data_free (DAFL)            T^2 KL(target || softmax(s/T)), a = 1, sparse when k is set

At the bottom there are two cores: the dense one, ``stingy.theory.operators.kd_loss_unchecked``
and the top-k one, ``stingy.theory.topk.kd_loss_topk_unchecked``. Calling an objective runs no
check and no host-device synchronisation: the settings were checked when they were built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from stingy.theory.operators import kd_loss_unchecked, keep_count, kept_indices, reverse_logits
from stingy.theory.topk import kd_loss_topk_unchecked


class SampledRows(NamedTuple):
    """A teacher's sampled rows: class ``indices`` [B, k] drawn with replacement from its
    tempered softmax, and their ``weights`` [B, k] (1/k each)."""

    indices: torch.Tensor
    weights: torch.Tensor


def sample_rows(teacher_logits: torch.Tensor, k: int, temperature: float,
                generator: torch.Generator | None = None) -> SampledRows:
    """k classes per row drawn with replacement from softmax(z / T), weight 1/k each: the
    counts / k equal softmax(z / T) in expectation (random-sampling KD)."""
    probs = torch.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    indices = torch.multinomial(flat, k, replacement=True, generator=generator)
    indices = indices.reshape(*probs.shape[:-1], k)
    return SampledRows(indices, torch.full(indices.shape, 1.0 / k, device=indices.device))


class TopKRows(NamedTuple):
    """A teacher's stored top-k rows: class ``indices`` [B, k] and logit ``values`` [B, k], in
    descending order of value (ties: lower class index first), so the first k' columns are
    the top-k' set for every k' <= k; and, where stored with them, the teacher's
    ``log_partition`` LSE(z / T) [B] at the objective's temperature, which tail-bucket KD
    needs for the dropped mass."""

    indices: torch.Tensor
    values: torch.Tensor
    log_partition: torch.Tensor | None = None


@dataclass(frozen=True)
class Objective:
    """One method's loss with everything resolved; see the module docstring for the formulas.

    ``k`` is None for a dense target; ``teacher_k`` is the kept count a stored top-k teacher
    must hold at least (None when the loss needs the dense teacher)."""

    method: str
    target: str
    temperature: float
    alpha: float
    k: int | None
    within_kept: bool
    tail_bucket: bool
    uniform_floor: bool
    sampled: bool
    sign: int
    nasty_weight: float
    label_smoothing: float

    @property
    def needs_dense_teacher(self) -> bool:
        return self.target in ("teacher", "reversed") and (self.k is None or self.tail_bucket
                                                          or self.sampled)

    def __call__(self, student_logits: torch.Tensor, teacher=None,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
        student = _at_least_float32(student_logits)
        if self.target == "labels":
            return F.cross_entropy(student, labels, label_smoothing=self.label_smoothing)
        if self.target == "uniform":
            return kd_loss_unchecked(student, torch.zeros_like(student), labels, 1.0, self.alpha)
        if self.sampled:
            rows = teacher if isinstance(teacher, SampledRows) else sample_rows(
                teacher, self.k, self.temperature)
            return self._from_samples(student, rows, labels)
        if isinstance(teacher, TopKRows):
            return self._from_rows(student, teacher, labels)
        teacher = _at_least_float32(teacher).detach()  # a constant: no gradient reaches it
        if self.target == "reversed":
            teacher = reverse_logits(teacher, validate=False)
        if self.sign < 0:
            divergence = kd_loss_unchecked(student, teacher, None, self.temperature, 1.0)
            return F.cross_entropy(student, labels) - self.nasty_weight * divergence
        if self.tail_bucket:
            kept = kept_indices(teacher, self.k)
            return kd_loss_topk_unchecked(
                student, kept, teacher.gather(-1, kept), labels, self.temperature, self.alpha,
                "bucket", torch.logsumexp(teacher / self.temperature, dim=-1))
        if self.uniform_floor:
            kept = kept_indices(teacher, self.k)
            teacher = self._floor_logits(teacher, kept, teacher.gather(-1, kept))
            return kd_loss_unchecked(student, teacher, labels, self.temperature, self.alpha)
        return kd_loss_unchecked(student, teacher, labels, self.temperature, self.alpha, self.k,
                                 self.within_kept)

    def _floor_logits(self, like: torch.Tensor, kept: torch.Tensor, values: torch.Tensor):
        """Logits whose tempered softmax is the uniform-floor target: T log(1/K) off the kept
        classes ``kept`` [B, k] and T log((k/K) softmax(values / T)) on them."""
        num_classes, t = like.shape[-1], self.temperature
        share = math.log(self.k / num_classes)
        floor = torch.full_like(like, -t * math.log(num_classes))
        return floor.scatter(-1, kept, t * (share + torch.log_softmax(values / t, dim=-1)))

    def _from_samples(self, student, rows: SampledRows, labels):
        """(1 - a) CE + a T^2 KL(target || softmax(s / T)), target = the rows' weights summed
        per class."""
        target = torch.zeros_like(student).scatter_add_(-1, rows.indices.long(),
                                                         rows.weights.to(student.dtype))
        log_q = torch.log_softmax(student / self.temperature, dim=-1)
        divergence = (torch.special.xlogy(target, target) - target * log_q).sum(-1).mean()
        hard = F.cross_entropy(student, labels) if self.alpha < 1 else 0.0
        return (1 - self.alpha) * hard + self.alpha * self.temperature ** 2 * divergence

    def _from_rows(self, student, rows: TopKRows, labels):
        """Stingy, within-M, tail-bucket (rows with their log-partition) and uniform-floor KD
        from stored rows, through the top-k core (the floor through the dense core: its
        target is dense but needs only the rows)."""
        if self.tail_bucket:
            if rows.log_partition is None:
                raise ValueError("tail-bucket KD from stored top-k rows needs their "
                                 "log-partition LSE(z / T)")
            return kd_loss_topk_unchecked(
                student, rows.indices[:, :self.k].long(),
                rows.values[:, :self.k].detach().to(student.dtype), labels, self.temperature,
                self.alpha, "bucket", rows.log_partition.detach().to(student.dtype))
        if self.uniform_floor:
            teacher = self._floor_logits(student, rows.indices[:, :self.k].long(),
                                         rows.values[:, :self.k].detach().to(student.dtype))
            return kd_loss_unchecked(student, teacher, labels, self.temperature, self.alpha)
        tail = "within" if self.within_kept else "drop"
        return kd_loss_topk_unchecked(student, rows.indices[:, :self.k].long(),
                                      rows.values[:, :self.k].detach().to(student.dtype), labels,
                                      self.temperature, self.alpha, tail)

    def release(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """What a teacher releases to this objective: its logits, or with k set the top-k
        ones and -inf elsewhere (the Stingy Teacher); unchecked."""
        if self.k is None:
            return teacher_logits
        kept = torch.zeros_like(teacher_logits, dtype=torch.bool).scatter_(
            -1, kept_indices(teacher_logits, self.k), True)
        return teacher_logits.masked_fill(~kept, float("-inf"))


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """float16 and bfloat16 logits (autocast's, a bank's) as float32; others unchanged."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def resolve_k(settings, num_classes: int) -> int:
    """The kept count of ``settings``: ``k`` if set, else keep_count(ratio, K); ValueError
    when k > K."""
    if settings.k:
        if settings.k > num_classes:
            raise ValueError(f"method.k must be in [1, {num_classes}], got {settings.k}")
        return settings.k
    return keep_count(settings.ratio, num_classes)


def build_objective(method, settings, num_classes: int, label_smoothing: float = 0.0
                    ) -> Objective:
    """The objective of registry entry ``method`` (stingy.methods.Method) with ``settings``
    (stingy.methods.MethodSettings) over ``num_classes`` classes."""
    sparse = method.sparse_target or (method.data_free and bool(settings.k or settings.ratio))
    k = resolve_k(settings, num_classes) if sparse else None
    return Objective(
        method=method.name, target=method.target, temperature=settings.temperature,
        alpha=1.0 if method.data_free else settings.alpha, k=k,
        within_kept=method.within_kept, tail_bucket=method.tail_bucket,
        uniform_floor=method.uniform_floor, sampled=method.sampled, sign=method.sign,
        nasty_weight=settings.nasty_weight, label_smoothing=label_smoothing)
