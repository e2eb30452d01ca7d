"""T4: the sparse KD term expanded in 1/T.

Statement (T4). With p~ the sparse target (T1), q = softmax(s/T), r = k/K and moments over
M (kept), Mc (dropped) and all K classes,

    T^2 KL(p~ || q) = T^2 log(K/k)                                   (order T^2, constant)
                      - T (1 - r)(sbar_M - sbar_Mc)                  (order T: the drive)
                      + (1/2)[Var_M(z) - 2 Cov_M(z, s) + Var_K(s)]   (order 1)
                      + (1/T)[kappa3_M(z)/3 - kappa_M(z,z,s)/2 + kappa3_K(s)/6]
                      + O(1/T^2),

with kappa3_A(v) = (1/|A|) sum_A (v - vbar_A)^3 and kappa_M(z,z,s) = (1/k) sum_M
(z - zbar_M)^2 (s - sbar_M), the third (joint) cumulants under the uniform law on A.

Derivation for all K, k (the cumulant expansion; checked by sympy in stingy.theory.derivations,
T4a). Let L(a, b) = log mean_M e^{a z + b s} (the joint cumulant generating function of (z, s)
under U_M) and L_K(b) = log mean_K e^{b s}; eps = 1/T. Then log p~(i) = eps z(i) - log k
- L(eps, 0), log q(i) = eps s(i) - log K - L_K(eps), E_p~[z] = dL/da(eps, 0) and
E_p~[s] = dL/db(eps, 0), so exactly

    KL(p~ || q) = log(K/k) + eps L_a(eps, 0) - L(eps, 0) - eps L_b(eps, 0) + L_K(eps),

and the Taylor coefficients of L are the joint cumulants: L_a - L/eps gives
sum_n (n - 1) kappa_n(z) eps^n / n!, eps L_b gives sbar_M eps + Cov_M(z, s) eps^2
+ kappa_M(z, z, s) eps^3 / 2 + ..., L_K gives sbar eps + Var_K(s) eps^2/2 + kappa3_K(s) eps^3/6.

An earlier form of the argument: log p~(i) = z(i)/T - log k - zbar_M/T - Var_M(z)/(2T^2) + O(T^-3) on M, so
sum_M p~ log p~ = -log k + Var_M(z)/(2T^2) + O(T^-3); sum_M p~(i) s(i) = sbar_M + Cov_M(z,s)/T
+ O(T^-2); LSE(s/T) = log K + sbar/T + Var_K(s)/(2T^2) + O(T^-3); and
KL = sum_M p~ log p~ - (1/T) sum_M p~ s + LSE(s/T), with sbar - sbar_M = -(1-r)(sbar_M - sbar_Mc).

The ``remainder`` (exact minus the orders T^2, T, 1) is O(1/T) and T * remainder tends to
the bracket above; ``order_inv_t`` is the bracket / T.

The order-1 term splits into ``teacher_matching`` = (1/2)[Var_M(z) - 2 Cov_M(z, s)], the only
place the teacher's logit values enter (matching s to z inside M), and ``student_spread`` =
(1/2) Var_K(s). The order-T drive does not depend on the teacher's logits at all, only on M:
it pushes the student's kept logits up and dropped logits down, equally within each set.

Special cases: k = K gives Hinton's (1/2) Var_K(z - s) (the drive vanishes); k = 1 gives exactly
T^2 KL = T^2 (-log q(top)), a tempered cross-entropy on the teacher's top-1 class.

What the paper's last line keeps: -(1/k) sum_M log q(i) = log K - (1 - r)(sbar_M - sbar_Mc)/T
+ Var_K(s)/(2T^2) + O(T^-3). It keeps the order-T drive and the student spread and drops the
teacher-dependent matching inside M, (1/2)Var_M(z) - Cov_M(z, s).
"""

from __future__ import annotations

import math

import torch

from stingy.theory.moments import (
    masked_mean,
    population_cov,
    population_var,
    split_kept,
    third_cumulant,
)
from stingy.theory.operators import numpy_in_numpy_out
from stingy.theory.sparse_target import checked_teacher
from stingy.theory.validation import as_tensor, check_logits, check_same_shape


@numpy_in_numpy_out
def logit_gap(student_logits, kept_mask) -> torch.Tensor:
    """sbar_M - sbar_Mc: mean student logit on the kept set minus on the dropped set (T4).

    The order-T drive is -T (1 - r) * logit_gap. nan where M or Mc is empty (k = K); note
    (1 - r) logit_gap = sbar_M - sbar, which is 0 there.
    """
    student_logits = check_logits(as_tensor(student_logits, "student_logits"), "student_logits")
    kept_mask = as_tensor(kept_mask, "kept_mask")
    if kept_mask.dtype != torch.bool:
        raise ValueError(f"kept_mask must be a boolean array, got dtype {kept_mask.dtype}")
    check_same_shape(student_logits, kept_mask, "student_logits", "kept_mask")
    return masked_mean(student_logits, kept_mask) - masked_mean(student_logits, ~kept_mask)


def terms_from_split(teacher_kept: torch.Tensor, student_kept: torch.Tensor,
                     kept_log_q: torch.Tensor, student_logits: torch.Tensor,
                     temperature: float) -> dict:
    """The T4 terms from z, s and log q = log_softmax(s/T) on M ((..., k) tensors) and s on
    all K classes. Shared by :func:`expansion_terms` and stingy.theory.sweep."""
    k, num_classes = teacher_kept.shape[-1], student_logits.shape[-1]
    log_target = torch.log_softmax(teacher_kept / temperature, dim=-1)
    exact = temperature**2 * (log_target.exp() * (log_target - kept_log_q)).sum(dim=-1)
    order_t2 = torch.full_like(exact, temperature**2 * math.log(num_classes / k))
    # (1 - r)(sbar_M - sbar_Mc) = sbar_M - sbar, defined also when k = K (then 0)
    order_t = -temperature * (student_kept.mean(dim=-1) - student_logits.mean(dim=-1))
    teacher_matching = (0.5 * population_var(teacher_kept)
                        - population_cov(teacher_kept, student_kept))
    student_spread = 0.5 * population_var(student_logits)
    order_1 = teacher_matching + student_spread
    order_inv_t = (third_cumulant(teacher_kept, teacher_kept, teacher_kept) / 3
                   - third_cumulant(teacher_kept, teacher_kept, student_kept) / 2
                   + third_cumulant(student_logits, student_logits, student_logits) / 6
                   ) / temperature
    return {
        "exact": exact,
        "order_t2": order_t2,
        "order_t": order_t,
        "order_1": order_1,
        "remainder": exact - order_t2 - order_t - order_1,
        "order_inv_t": order_inv_t,
        "teacher_matching": teacher_matching,
        "student_spread": student_spread,
        "paper_last_line": -temperature**2 * kept_log_q.mean(dim=-1),
    }


@numpy_in_numpy_out
def expansion_terms(teacher_logits, student_logits, k: int, temperature: float) -> dict:
    """The T4 expansion of T^2 KL(p~ || q), per row (leading dims of the logits).

    Keys: ``exact`` = T^2 KL(p~ || softmax(s/T)); ``order_t2`` = T^2 log(K/k);
    ``order_t`` = -T (1 - r)(sbar_M - sbar_Mc); ``order_1`` = (1/2)[Var_M(z) - 2 Cov_M(z, s)
    + Var_K(s)]; ``remainder`` = exact - order_t2 - order_t - order_1 = O(1/T);
    ``teacher_matching`` = (1/2)[Var_M(z) - 2 Cov_M(z, s)]; ``student_spread`` = (1/2) Var_K(s);
    ``paper_last_line`` = T^2 * (-(1/k) sum_M log q(i)), the paper's final approximation
    (a cross-entropy; see the module docstring for what it keeps).
    """
    teacher_logits, k, temperature, kept = checked_teacher(teacher_logits, k, temperature,
                                                           name="teacher_logits")
    student_logits = check_logits(as_tensor(student_logits, "student_logits"), "student_logits")
    check_same_shape(teacher_logits, student_logits, "teacher_logits", "student_logits")
    log_q = torch.log_softmax(student_logits / temperature, dim=-1)
    return terms_from_split(split_kept(teacher_logits, kept)[0],
                            split_kept(student_logits, kept)[0],
                            split_kept(log_q, kept)[0], student_logits, temperature)
