"""T5: the teacher's signal against the sparse target's drive, exactly and asymptotically.

Statement (T5a, exact decomposition, all K, k, s, T). With q = softmax(s/T), p~ the sparse
target, U_K uniform on all K classes and U_M uniform on M (0 off M), the student gradient of
the distillation term is

    grad_s T^2 KL(p~ || q) = T (q - p~)
                           = T (q - U_K)      (student part: depends on s only)
                           + T (U_K - U_M)    (drive: depends on M only)
                           + T (U_M - p~)     (teacher signal: supported on M, sums to 0)

and the drive and the signal are exactly orthogonal at every s:
<U_K - U_M, U_M - p~> = (1/K - 1/k) sum_M (1/k - p~(i)) = 0. The drive is -T(1 - r)/k on M and
+T/K on Mc, norm T sqrt(1/k - 1/K) (:func:`drive_norm`), the gradient of the order-T term of T4.

Statement (T5b, exact ratio). signal / drive = ||p~ - U_M||_2 / sqrt(1/k - 1/K)
(:func:`signal_to_drive_exact`), independent of s; with Lambda(e) = log mean_M e^{e z},
||p~ - U_M||_2^2 = (exp(Lambda(2/T) - 2 Lambda(1/T)) - 1)/k, so

    (signal / drive)^2 = (exp(Lambda(2/T) - 2 Lambda(1/T)) - 1) / (1 - r)
                       = Var_M(z) / (T^2 (1 - r)) + kappa3_M(z) / (T^3 (1 - r)) + O(T^-4).

The 1/T form sqrt(Var_M(z)) / (T sqrt(1 - r)) (:func:`signal_to_drive`, the ratio of the
gradient norms of the order-T drive and of -Cov_M(z, s) in T4) is its large-T asymptote; it is
inf at k = K (no drive) and 0 at k = 1 (no signal), like the exact ratio. By Popoviciu the
asymptote is at most D_M / (2 T sqrt(1 - r)); sharpened, k values in a range D_M have
variance at most D_M^2 floor(k/2) ceil(k/2) / k^2 (Var is convex in each value, d^2 Var /
dz(i)^2 = 2(k - 1)/k^2 > 0, so its maximum over the box is at a vertex, a two-level vector with
j values on top, where it is D_M^2 j(k - j)/k^2, a concave quadratic in j maximal at
j = floor(k/2)). :func:`signal_to_drive_bound` bounds the asymptote (not the exact ratio).

Statement (T5c, the free-logit minimiser). Over unconstrained student logits s,
inf_s KL(p~ || softmax(s/T)) = 0, approached exactly when q -> p~: s(i) - s(j) -> z(i) - z(j)
on M and s(i) - max_M s -> -inf off M. It is not attained (q > 0 everywhere); the target keeps
the teacher's ranking inside M, so a free student is not pushed to confuse the classes of M.
Along the way the gradient on a dropped class, T q(i), vanishes as s(i) sinks: the sparse
target has no restoring force on Mc, while a dense target (k = K) gives T(q(i) - p(i)), which
anchors every logit at z(i) + const.
"""

from __future__ import annotations

import math

import torch

from stingy.theory.moments import population_var, split_kept, value_range
from stingy.theory.operators import numpy_in_numpy_out, sparse_target
from stingy.theory.sparse_target import checked_teacher
from stingy.theory.validation import (
    as_tensor,
    check_keep_count,
    check_logits,
    check_same_shape,
    check_temperature,
)


def drive_norm(k: int, num_classes: int, temperature: float) -> float:
    """T sqrt(1/k - 1/K): norm of the student gradient of -T(1 - r)(sbar_M - sbar_Mc) (T5)."""
    k = check_keep_count(k, num_classes)
    temperature = check_temperature(temperature)
    return temperature * math.sqrt(max(1 / k - 1 / num_classes, 0.0))


def signal_norm_from_variance(kept_variance: torch.Tensor, k: int) -> torch.Tensor:
    """sqrt(Var_M(z) / k) from the kept logits' population variance (T5)."""
    return (kept_variance.clamp_min(0) / k).sqrt()


@numpy_in_numpy_out
def signal_norm(logits, k: int) -> torch.Tensor:
    """sqrt(Var_M(z) / k): norm of the student gradient of -Cov_M(z, s) (T5)."""
    logits, k, _, kept = checked_teacher(logits, k)
    return signal_norm_from_variance(population_var(split_kept(logits, kept)[0]), k)


def ratio_from_variance(kept_variance: torch.Tensor, k: int, num_classes: int,
                        temperature: float) -> torch.Tensor:
    """sqrt(Var_M(z)) / (T sqrt(1 - r)); inf at k = K (T5)."""
    spread = kept_variance.clamp_min(0).sqrt()
    if k == num_classes:
        return torch.full_like(spread, float("inf"))
    return spread / (temperature * math.sqrt(1 - k / num_classes))


def max_std_fraction(k: int) -> float:
    """max sqrt(Var) / range over k values: sqrt(floor(k/2) ceil(k/2)) / k (1/2 for even k)."""
    return math.sqrt((k // 2) * (k - k // 2)) / k


def ratio_bound_from_range(kept_range: torch.Tensor, k: int, num_classes: int,
                           temperature: float, sharp: bool = True) -> torch.Tensor:
    """c D_M / (T sqrt(1 - r)) with c = max_std_fraction(k) (sharp) or 1/2 (Popoviciu) (T5)."""
    if k == num_classes:
        return torch.full_like(kept_range, float("inf"))
    fraction = max_std_fraction(k) if sharp else 0.5
    return fraction * kept_range / (temperature * math.sqrt(1 - k / num_classes))


@numpy_in_numpy_out
def signal_to_drive(logits, k: int, temperature: float) -> torch.Tensor:
    """sqrt(Var_M(z)) / (T sqrt(1 - r)): the large-T asymptote of
    :func:`signal_to_drive_exact` (T5b); inf at k = K."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    kept_variance = population_var(split_kept(logits, kept)[0])
    return ratio_from_variance(kept_variance, k, logits.shape[-1], temperature)


@numpy_in_numpy_out
def signal_to_drive_bound(logits, k: int, temperature: float, sharp: bool = True):
    """Upper bound on :func:`signal_to_drive` (T5).

    sharp=False: Popoviciu, D_M / (2 T sqrt(1 - r)). sharp=True (default):
    D_M sqrt(floor(k/2) ceil(k/2)) / (k T sqrt(1 - r)), equal for even k, smaller for odd k.
    inf at k = K.
    """
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    kept_range = value_range(split_kept(logits, kept)[0])
    return ratio_bound_from_range(kept_range, k, logits.shape[-1], temperature, sharp)


def exact_ratio_from_kept_target(kept_target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """||p~ - U_M||_2 / sqrt(1/k - 1/K) from p~ on M, a (..., k) tensor; inf at k = K (T5b)."""
    k = kept_target.shape[-1]
    distance = (kept_target - 1 / k).square().sum(dim=-1).sqrt()
    if k == num_classes:
        return torch.full_like(distance, float("inf"))
    return distance / math.sqrt(1 / k - 1 / num_classes)


@numpy_in_numpy_out
def signal_to_drive_exact(logits, k: int, temperature: float) -> torch.Tensor:
    """||p~ - U_M||_2 / sqrt(1/k - 1/K): exact ratio of the teacher-signal and drive gradient
    norms at any student logits (T5b); inf at k = K, 0 at k = 1."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    kept_target = torch.softmax(split_kept(logits, kept)[0] / temperature, dim=-1)
    return exact_ratio_from_kept_target(kept_target, logits.shape[-1])


@numpy_in_numpy_out
def gradient_decomposition(teacher_logits, student_logits, k: int, temperature: float) -> dict:
    """grad_s T^2 KL(p~ || softmax(s/T)) = student + drive + signal (T5a), per row.

    ``student`` = T (q - U_K), ``drive`` = T (U_K - U_M), ``signal`` = T (U_M - p~) (0 off M),
    ``total`` = T (q - p~); all of the logits' shape.
    """
    teacher_logits, k, temperature, kept = checked_teacher(teacher_logits, k, temperature,
                                                           name="teacher_logits")
    student_logits = check_logits(as_tensor(student_logits, "student_logits"), "student_logits")
    check_same_shape(teacher_logits, student_logits, "teacher_logits", "student_logits")
    num_classes = teacher_logits.shape[-1]
    target = sparse_target(teacher_logits, k, temperature)
    q = torch.softmax(student_logits / temperature, dim=-1)
    uniform_kept = kept.to(target.dtype) / k
    return {
        "student": temperature * (q - 1 / num_classes),
        "drive": temperature * (1 / num_classes - uniform_kept),
        "signal": temperature * (uniform_kept - target),
        "total": temperature * (q - target),
    }
