"""Tail-bucket KD: the stingy target plus one "tail" cell holding the teacher's dropped mass.

Setting. p = softmax(z/T), q = softmax(s/T), M the teacher's top-k classes, m = sum_M p,
r = k/K, u = z - s. The tail-bucket target lives on the k + 1 cells (M, tail):

    b = (p(i) for i in M, 1 - m),      q_b = (q(i) for i in M, Q = sum_{i not in M} q(i)),

and the loss is T^2 KL(b || q_b) (stingy.theory.topk.kd_loss_topk, tail="bucket").

Exact form (chain rule of KL, :func:`tail_bucket_terms`):

    T^2 KL(p || q) = T^2 KL(b || q_b) + T^2 (1 - m) KL(p|Mc || q|Mc),

with p|Mc, q|Mc the distributions renormalised on the dropped set. So the tail-bucket loss is
normal KD minus the mismatch *inside* the tail; it is <= normal KD, with equality exactly when
the student's tail is proportional to the teacher's (u constant on Mc), and it equals normal
KD when k = K or k = K - 1.

Expansion in 1/T (Statement TB; sympy: :func:`derive_tail_bucket_expansion`):

    T^2 KL(b || q_b) = (1/2) Var_K(P u) + O(1/T),

where P u equals u on M and the tail mean ubar_Mc on Mc. Both cells' distributions tend to the
same coarse-grained uniform one, (1/K on M, 1 - r), so there is no T^2 log(K/k) term and no
order-T drive: what survives when the drive disappears is Hinton's logit matching on M plus
the matching of the tail mean. By the law of total variance
Var_K(u) = Var_K(P u) + (1 - r) Var_Mc(u), so the order-1 term is normal KD's (1/2) Var_K(u)
minus the within-tail part (1/2)(1 - r) Var_Mc(z - s). (The stingy target, T4, has
T^2 log(K/k) - T(1 - r)(sbar_M - sbar_Mc) on top of its order-1 term.)

Gradient (:func:`tail_bucket_gradient`). d/ds of T^2 KL(b || q_b) is T(q - bhat), where bhat = p
on M and bhat(j) = (1 - m) q(j)/Q on Mc (the teacher's tail mass spread as the student's tail):
normal KD's T(q - p) with the teacher's tail shape replaced by the student's.

What it needs from the teacher: the top-k logits and one number per row and temperature, the
tail mass 1 - m (equivalently the log-partition LSE(z/T), since m = sum_M e^{z/T - LSE}).
As a defence, the Stingy Teacher hides the tail mass; revealing it (one float per row) removes
the T^2 log(K/k) term and the order-T drive, i.e. undoes the defence to the order shown above.
"""

from __future__ import annotations

import torch

from stingy.theory.moments import population_var
from stingy.theory.operators import numpy_in_numpy_out
from stingy.theory.sparse_target import checked_teacher
from stingy.theory.validation import as_tensor, check_logits, check_same_shape


def _split_logs(teacher, student, kept, temperature):
    """log p, log q and the per-row log-masses of Mc under p and under q."""
    log_p = torch.log_softmax(teacher / temperature, dim=-1)
    log_q = torch.log_softmax(student / temperature, dim=-1)
    minus_inf = float("-inf")
    log_tail_p = torch.logsumexp(log_p.masked_fill(kept, minus_inf), dim=-1)
    log_tail_q = torch.logsumexp(log_q.masked_fill(kept, minus_inf), dim=-1)
    return log_p, log_q, log_tail_p, log_tail_q


def _kl_terms(log_a, log_b, mask):
    """sum over ``mask`` of a (log a - log b), 0 log 0 = 0."""
    a = log_a.exp()
    terms = torch.where(mask & (a > 0), a * (log_a - log_b), torch.zeros_like(a))
    return terms.sum(dim=-1)


def _checked_pair(teacher_logits, student_logits, k, temperature):
    teacher, k, temperature, kept = checked_teacher(teacher_logits, k, temperature,
                                                    name="teacher_logits")
    student = check_logits(as_tensor(student_logits, "student_logits"), "student_logits")
    check_same_shape(teacher, student, "teacher_logits", "student_logits")
    return teacher, student, k, temperature, kept


def tail_mean_projection(values: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """P v: v on M, the mean of v over Mc on Mc (v itself where Mc is empty)."""
    dropped = ~kept
    count = dropped.sum(dim=-1, keepdim=True).clamp_min(1)
    tail_mean = values.masked_fill(kept, 0).sum(dim=-1, keepdim=True) / count
    return torch.where(dropped, tail_mean, values)


@numpy_in_numpy_out
def tail_bucket_terms(teacher_logits, student_logits, k: int, temperature: float) -> dict:
    """Statement TB per row (leading dims of the logits).

    Keys: ``exact`` = T^2 KL(b || q_b); ``order_1`` = (1/2) Var_K(P(z - s));
    ``remainder`` = exact - order_1 = O(1/T); ``normal_kd`` = T^2 KL(p || q);
    ``within_tail`` = T^2 (1 - m) KL(p|Mc || q|Mc) (normal_kd - exact, computed on its own);
    ``tail_mass`` = 1 - m.
    """
    teacher, student, k, temperature, kept = _checked_pair(teacher_logits, student_logits, k,
                                                           temperature)
    log_p, log_q, log_tail_p, log_tail_q = _split_logs(teacher, student, kept, temperature)
    tail_mass = log_tail_p.exp()
    tail_cell = torch.where(tail_mass > 0, tail_mass * (log_tail_p - log_tail_q),
                            torch.zeros_like(tail_mass))
    exact = temperature**2 * (_kl_terms(log_p, log_q, kept) + tail_cell)
    conditional = _kl_terms(log_p - log_tail_p[..., None], log_q - log_tail_q[..., None], ~kept)
    within_tail = temperature**2 * tail_mass * conditional
    order_1 = 0.5 * population_var(tail_mean_projection(teacher - student, kept))
    return {"exact": exact, "order_1": order_1, "remainder": exact - order_1,
            "normal_kd": temperature**2 * _kl_terms(log_p, log_q, torch.ones_like(kept)),
            "within_tail": within_tail, "tail_mass": tail_mass}


@numpy_in_numpy_out
def tail_bucket_gradient(teacher_logits, student_logits, k: int,
                         temperature: float) -> torch.Tensor:
    """d/ds T^2 KL(b || q_b) = T (q - bhat): bhat = p on M, (1 - m) q(j)/Q on Mc."""
    teacher, student, k, temperature, kept = _checked_pair(teacher_logits, student_logits, k,
                                                           temperature)
    log_p, log_q, log_tail_p, log_tail_q = _split_logs(teacher, student, kept, temperature)
    spread_tail = (log_q + (log_tail_p - log_tail_q)[..., None]).exp()
    target = torch.where(kept, log_p.exp(), spread_tail)
    return temperature * (log_q.exp() - target)


def derive_tail_bucket_expansion(num_classes: int = 4, k: int = 2) -> dict:
    """Statement TB, symbolically: Taylor coefficients of KL(b || q_b) in eps = 1/T.

    For symbolic z, s (K = num_classes, M = the first k classes) the eps^0 and eps^1
    coefficients vanish (no T^2 and no order-T term of T^2 KL) and the eps^2 coefficient equals
    (1/2) Var_K(P(z - s)); the chain-rule identity KL(p||q) = KL(b||q_b) + (1-m) KL(p|Mc||q|Mc)
    reduces to 0. Returns a record like stingy.theory.derivations' (id "TB").
    """
    import sympy as sp

    from stingy.theory.symbolic import FAILED, is_zero, proved_instance, taylor_coefficients

    z = sp.symbols(f"z1:{num_classes + 1}", real=True)
    s = sp.symbols(f"s1:{num_classes + 1}", real=True)
    eps = sp.symbols("epsilon", positive=True)
    p_weights = [sp.exp(eps * v) for v in z]
    q_weights = [sp.exp(eps * v) for v in s]
    p = [w / sum(p_weights) for w in p_weights]
    q = [w / sum(q_weights) for w in q_weights]
    tail_p, tail_q = sum(p[k:]), sum(q[k:])
    bucket = sum(p[i] * sp.log(p[i] / q[i]) for i in range(k)) + tail_p * sp.log(tail_p / tail_q)
    coefficients = taylor_coefficients(bucket, eps, 3)
    u = [a - b for a, b in zip(z, s)]
    tail_mean = sum(u[k:]) / (num_classes - k)
    projected = list(u[:k]) + [tail_mean] * (num_classes - k)
    centre = sum(projected) / num_classes
    half_var = sum((v - centre) ** 2 for v in projected) / (2 * num_classes)
    ok = is_zero(coefficients[0]) and is_zero(coefficients[1])
    ok = ok and is_zero(sp.expand(coefficients[2] - half_var))
    # chain rule, with the weights as positive symbols (rational algebra, any eps)
    a = sp.symbols(f"a1:{num_classes + 1}", positive=True)
    c = sp.symbols(f"c1:{num_classes + 1}", positive=True)
    pa, qc = [v / sum(a) for v in a], [v / sum(c) for v in c]
    full = sum(x * sp.log(x / y) for x, y in zip(pa, qc))
    ta, tc = sum(pa[k:]), sum(qc[k:])
    coarse = sum(pa[i] * sp.log(pa[i] / qc[i]) for i in range(k)) + ta * sp.log(ta / tc)
    inner = sum((pa[i] / ta) * sp.log((pa[i] / ta) / (qc[i] / tc)) for i in range(k, num_classes))
    chain = sp.expand_log(full - coarse - ta * inner, force=True)
    chain_ok = is_zero(chain)
    # numerical check of the general-K statement: remainder * T bounded as T grows
    teacher = 3 * torch.randn(3, 40, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)
    student = torch.randn(3, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scaled = [float((tail_bucket_terms(teacher, student, 5, t)["remainder"] * t).abs().max())
              for t in (100.0, 1000.0, 10000.0)]
    numeric_ok = max(scaled) < 2 * min(scaled) + 1e-9
    status = proved_instance(num_classes, k) if ok and chain_ok and numeric_ok else FAILED
    symbolic = "reduced to 0" if ok else "NOT reduced"
    chain_state = "reduced to 0" if chain_ok else "NOT reduced"
    detail = (f"Taylor coefficients of KL(b||q_b) in eps=1/T for symbolic z, s with "
              f"K={num_classes}, k={k}: c0 = c1 = 0 and c2 = (1/2)Var_K(P(z-s)) ({symbolic}); "
              f"chain rule KL(p||q) = KL(b||q_b) + (1-m)KL(p|Mc||q|Mc) ({chain_state}, symbolic "
              f"positive weights). General K checked numerically (K=40, k=5, 3 random rows): "
              f"|remainder|*T = {', '.join(f'{v:.4g}' for v in scaled)} at T = 1e2, 1e3, 1e4.")
    return {"id": "TB", "statement": "T^2 KL(b||q_b) = (1/2)Var_K(P(z-s)) + O(1/T): no "
            "T^2 log(K/k) term and no order-T drive", "status": status, "detail": detail,
            "latex": r"T^2\,\mathrm{KL}(b\,\|\,q_b) = \tfrac12\mathrm{Var}_K(P(z-s)) + O(T^{-1})"}
