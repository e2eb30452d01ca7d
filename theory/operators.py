"""The Stingy Teacher's operators and the KD loss, in PyTorch.

All functions work on the last (class) dimension, are batched over any leading dimensions,
differentiable, and run on any device. NumPy arrays are accepted too; then NumPy comes back.

Notation (Ma et al. 2022, "Sparse Logits Suffice to Fail Knowledge Distillation"):
z teacher logits over K classes, k kept classes, M = top-k set of z, T temperature,
p = softmax(z/T), p~ = softmax(z_sparse/T), m = sum_{i in M} p(i).

Tie rule of :func:`sparsify_logits`: exactly k classes are kept. Every class whose logit is
strictly greater than the k-th largest value is kept; among the classes equal to the k-th
largest value, the ones with the lowest class index fill the remaining places. (The reference
code's ``torch.topk`` leaves the choice among ties unspecified.)
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from stingy.theory.validation import (
    as_tensor,
    check_alpha,
    check_keep_count,
    check_labels,
    check_logits,
    check_ratio,
    check_same_shape,
    check_temperature,
)


def numpy_in_numpy_out(func):
    """Let ``func`` take NumPy arrays: convert them to tensors and convert tensors back
    (a returned tensor, or the tensors in a returned tuple or dict)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        given_numpy = any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values()))
        args = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
        kwargs = {key: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                  for key, v in kwargs.items()}
        result = func(*args, **kwargs)
        if not given_numpy:
            return result
        if isinstance(result, tuple):
            return tuple(_to_numpy(item) for item in result)
        if isinstance(result, dict):
            return {key: _to_numpy(item) for key, item in result.items()}
        return _to_numpy(result)

    return wrapper


def _to_numpy(value):
    """A tensor as a NumPy array; anything else unchanged."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def keep_count(ratio: float, num_classes: int) -> int:
    """Kept classes for sparse ratio r: k = floor(r*K), refusing k < 1.

    The reference computes ``int(r * K)``; floating point makes that one short for some
    ratios (``int(0.29 * 100) == 28``, ``int(0.57 * 100) == 56``), so the product is rounded
    to 9 decimals before the floor. Source: stingy-teacher params.json ("sparse ratio").
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    ratio = check_ratio(ratio)
    k = int(np.floor(round(ratio * num_classes, 9)))
    if k < 1:
        raise ValueError(f"ratio must be at least 1/num_classes = {1 / num_classes:.6g} so that "
                         f"int(ratio*num_classes) >= 1, got ratio={ratio}")
    return k


def top_k_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the kept set M (exactly k True per row; ties to the lowest index)."""
    kth_value = logits.topk(k, dim=-1).values[..., -1:]
    above = logits > kth_value
    tied = logits == kth_value
    places_left = k - above.sum(dim=-1, keepdim=True)
    return above | (tied & (tied.cumsum(dim=-1) <= places_left))


@numpy_in_numpy_out
def sparsify_logits(logits, k: int) -> torch.Tensor:
    """z_sparse(i) = z(i) for i in M (the top-k classes), -inf elsewhere."""
    logits = check_logits(as_tensor(logits, "logits"))
    k = check_keep_count(k, logits.shape[-1])
    return logits.masked_fill(~top_k_mask(logits, k), float("-inf"))


@numpy_in_numpy_out
def sparse_target(logits, k: int, temperature: float) -> torch.Tensor:
    """p~ = softmax(z_sparse / T): p~(i) = p(i)/m on M and 0 off M (T1)."""
    return torch.softmax(sparsify_logits(logits, k) / check_temperature(temperature), dim=-1)


@numpy_in_numpy_out
def kept_mass(logits, k: int, temperature: float) -> torch.Tensor:
    """m = sum_{i in M} softmax(z/T)(i), the dense teacher's mass on its top-k classes (T2)."""
    logits = check_logits(as_tensor(logits, "logits"))
    k = check_keep_count(k, logits.shape[-1])
    temperature = check_temperature(temperature)
    log_p = torch.log_softmax(logits / temperature, dim=-1)
    kept = top_k_mask(logits, k)
    return torch.logsumexp(log_p.masked_fill(~kept, float("-inf")), dim=-1).exp()


def distillation_kl(student_logits: torch.Tensor, target_log_probs: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """Per-example KL(p_target || softmax(s/T)), with 0*log 0 = 0 where the target is zero.

    ``target_log_probs`` may hold -inf (sparse targets); no nan reaches the value or the
    gradients of either argument.
    """
    support = torch.isfinite(target_log_probs)
    log_q = torch.log_softmax(student_logits / temperature, dim=-1)
    zero = torch.zeros_like(target_log_probs)
    safe_log_target = torch.where(support, target_log_probs, zero)
    terms = safe_log_target.exp() * (safe_log_target - log_q)
    return torch.where(support, terms, zero).sum(dim=-1)


@numpy_in_numpy_out
def kd_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float,
            k: int | None = None, within_kept: bool = False) -> torch.Tensor:
    """Hinton KD loss with an optional Stingy Teacher, averaged over the batch.

        L = (1 - a) * CE(s, y) + a * T^2 * KL(softmax(z_k / T) || softmax(s / T))

    with z_k = sparsify_logits(z, k) (k=None: the dense teacher, normal KD).
    ``within_kept=True`` is within-M KD: the student's tempered softmax is renormalised over
    the teacher's kept set M, KL(p~ || softmax(s_M / T)), which removes the order-T drive of
    the stingy target (T4) and equals the ordinary loss when k = K. CE and KL are
    means over every leading dimension ("batchmean"), as in the reference's
    ``nn.KLDivLoss(reduction="batchmean")``. Gradients flow into the student only; the teacher
    logits are treated as constants (detached).
    """
    student_logits = check_logits(as_tensor(student_logits, "student_logits"), "student_logits")
    teacher_logits = check_logits(as_tensor(teacher_logits, "teacher_logits"), "teacher_logits")
    check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
    labels = check_labels(as_tensor(labels, "labels"), student_logits)
    temperature = check_temperature(temperature)
    alpha = check_alpha(alpha)
    num_classes = student_logits.shape[-1]
    teacher_logits = teacher_logits.detach()
    distill_logits = student_logits
    if k is not None:
        kept = top_k_mask(teacher_logits, check_keep_count(k, num_classes))
        teacher_logits = teacher_logits.masked_fill(~kept, float("-inf"))
        if within_kept:
            distill_logits = student_logits.masked_fill(~kept, float("-inf"))
    elif within_kept:
        raise ValueError("within_kept=True needs k (the kept set M), got k=None")
    target_log_probs = torch.log_softmax(teacher_logits / temperature, dim=-1)
    distill = distillation_kl(distill_logits, target_log_probs, temperature).mean()
    hard = F.cross_entropy(student_logits.reshape(-1, num_classes), labels.reshape(-1))
    return (1 - alpha) * hard + alpha * temperature**2 * distill


@numpy_in_numpy_out
def reverse_logits(logits) -> torch.Tensor:
    """The reference's "reversed logits" ablation: keep the top-1 logit, reverse the rest.

    With v(1) >= v(2) >= ... >= v(K) the sorted logits and c(j) the class holding v(j), the
    output gives c(1) the value v(1) and c(j) the value v(K + 2 - j) for j >= 2: the second
    most likely class gets the smallest logit and the least likely gets the second largest.
    The argmax, and the multiset of values, are unchanged. Ties sort by class index.
    """
    logits = check_logits(as_tensor(logits, "logits"))
    values, classes = logits.sort(dim=-1, descending=True, stable=True)
    reordered = torch.cat([values[..., :1], values[..., 1:].flip(-1)], dim=-1)
    return torch.empty_like(logits).scatter(-1, classes, reordered)
