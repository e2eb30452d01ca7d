"""The theory on a grid of (k, T): tidy rows for the figures and the empirical layer.

:func:`theory_grid` evaluates T1-T5 for every (k, T) on a batch of teacher logits (N, K),
vectorised over the N rows, and averages each quantity over the rows (one dict per (k, T)).
Each row of logits is sorted once, descending and stable (ties in class order, the tie rule of
top_k_mask), so for every k the kept set M is the first k columns; the formulas are the same
helpers the single-quantity functions use.
"""

from __future__ import annotations

import torch

from stingy.theory.approximation import (
    error_bound_from_ranges,
    error_from_kept_shift,
    paper_mass_shift,
    tv_bound_from_range,
    tv_from_kept_target,
    tv_worst_case,
)
from stingy.theory.expansion import terms_from_split
from stingy.theory.kept_mass import expansion_from_mean_gap, kept_mass_upper_bound
from stingy.theory.moments import population_var, value_range
from stingy.theory.signal import (
    drive_norm,
    exact_ratio_from_kept_target,
    ratio_bound_from_range,
    ratio_from_variance,
    signal_norm_from_variance,
)
from stingy.theory.validation import (
    as_tensor,
    check_keep_count,
    check_logits,
    check_same_shape,
    check_temperature,
)

EXPANSION_COLUMNS = ["exact", "order_t2", "order_t", "order_1", "remainder", "order_inv_t",
                     "teacher_matching", "student_spread", "paper_last_line"]


def _mean(values: torch.Tensor) -> float:
    return float(values.to(torch.float64).mean())


def theory_grid(logits, ks, temperatures, student_logits=None) -> list[dict]:
    """One row per (k, T) with T1-T5 quantities averaged over the logit rows.

    Columns: k, ratio, num_classes, temperature, kept_mass, kept_mass_lower, kept_mass_upper,
    kept_mass_expansion, paper_mass_shift, mass_shift_error, mass_shift_error_bound,
    tv_to_uniform, tv_to_uniform_worst_case (exact max for the row's D_M, T3a),
    tv_to_uniform_bound (tanh, T3b), drive_norm, signal_norm, signal_to_drive (exact, T5b),
    signal_to_drive_asymptote (the 1/T form), signal_to_drive_bound (sharp) and
    signal_to_drive_popoviciu (bounds on the asymptote); with ``student_logits``
    (same shape) also the T4 terms of :data:`EXPANSION_COLUMNS` (per-row values, averaged).
    signal_to_drive, its asymptote and the bounds are inf at k = K.
    """
    logits = check_logits(as_tensor(logits, "logits"), "logits")
    num_classes = logits.shape[-1]
    if student_logits is not None:
        student_logits = check_logits(as_tensor(student_logits, "student_logits"),
                                      "student_logits")
        check_same_shape(logits, student_logits, "logits", "student_logits")
        student_logits = student_logits.reshape(-1, num_classes)
    logits = logits.reshape(-1, num_classes)
    ks = [check_keep_count(k, num_classes, "ks") for k in ks]
    temperatures = [check_temperature(t, "temperatures") for t in temperatures]
    ordered, order = logits.sort(dim=-1, descending=True, stable=True)
    if student_logits is not None:
        student_ordered = student_logits.gather(-1, order)
    full_range = value_range(logits)
    # T-free moments of the kept set, once per k: (D_M, Var_M(z), zbar_M - zbar)
    kept_moments = {k: (ordered[:, 0] - ordered[:, k - 1], population_var(ordered[:, :k]),
                        ordered[:, :k].mean(dim=-1) - ordered.mean(dim=-1)) for k in ks}
    rows = []
    for temperature in temperatures:
        p = torch.softmax(ordered / temperature, dim=-1)
        if student_logits is not None:
            log_q = torch.log_softmax(student_ordered / temperature, dim=-1)
        for k in ks:
            kept_range, kept_variance, mean_gap = kept_moments[k]
            m = p[:, :k].sum(dim=-1)
            kept_target = p[:, :k] / m.unsqueeze(-1)
            row = {
                "k": k,
                "ratio": k / num_classes,
                "num_classes": num_classes,
                "temperature": temperature,
                "kept_mass": _mean(m),
                "kept_mass_lower": k / num_classes,
                "kept_mass_upper": _mean(kept_mass_upper_bound(full_range, k, num_classes,
                                                               temperature)),
                "kept_mass_expansion": _mean(expansion_from_mean_gap(mean_gap, k, num_classes,
                                                                     temperature)),
                "paper_mass_shift": paper_mass_shift(k, num_classes),
                "mass_shift_error": _mean(error_from_kept_shift(kept_target - p[:, :k],
                                                                num_classes)),
                "mass_shift_error_bound": _mean(error_bound_from_ranges(
                    full_range, kept_range, k, num_classes, temperature)),
                "tv_to_uniform": _mean(tv_from_kept_target(kept_target)),
                "tv_to_uniform_worst_case": float(tv_worst_case(
                    k, kept_range.numpy(), temperature).mean()),
                "tv_to_uniform_bound": _mean(tv_bound_from_range(kept_range, temperature)),
                "drive_norm": drive_norm(k, num_classes, temperature),
                "signal_norm": _mean(signal_norm_from_variance(kept_variance, k)),
                "signal_to_drive": _mean(exact_ratio_from_kept_target(kept_target,
                                                                      num_classes)),
                "signal_to_drive_asymptote": _mean(ratio_from_variance(
                    kept_variance, k, num_classes, temperature)),
                "signal_to_drive_bound": _mean(ratio_bound_from_range(
                    kept_range, k, num_classes, temperature)),
                "signal_to_drive_popoviciu": _mean(ratio_bound_from_range(
                    kept_range, k, num_classes, temperature, sharp=False)),
            }
            if student_logits is not None:
                terms = terms_from_split(ordered[:, :k], student_ordered[:, :k], log_q[:, :k],
                                         student_ordered, temperature)
                row.update({name: _mean(terms[name]) for name in EXPANSION_COLUMNS})
            rows.append(row)
    rows.sort(key=lambda row: (ks.index(row["k"]), temperatures.index(row["temperature"])))
    return rows
