"""T2: how much of the dense tempered teacher the kept set M holds.

Statement (T2). With r = k/K, D = max z - min z and m = sum_{i in M} softmax(z/T)(i):

    k/K <= m <= 1 / (1 + ((K - k)/k) exp(-D/T)).

Lower: M holds the k largest p(i), so their mean m/k is at least the overall mean 1/K.
Upper: m = 1/(1 + S_Mc/S_M) with S_A = sum_A exp(z/T), and S_Mc/S_M >= (K-k) e^{min z/T} /
(k e^{max z/T}). The upper bound is attained exactly when every kept logit equals max z and
every dropped logit equals min z. The lower bound is attained when all logits are equal.

m is non-increasing in T: with beta = 1/T,
dm/dbeta = m (1 - m) (E_p[z | M] - E_p[z | Mc]) >= 0 because every z in M is >= every z in Mc.
m is non-decreasing in k (M grows), and m -> r as T -> inf with

    m = r (1 + (zbar_M - zbar)/T) + O(1/T^2).
"""

from __future__ import annotations

import torch

from stingy.theory.moments import split_kept
from stingy.theory.operators import kept_mass, numpy_in_numpy_out
from stingy.theory.sparse_target import checked_teacher

__all__ = [
    "kept_mass",
    "kept_mass_beta_derivative",
    "kept_mass_bounds",
    "kept_mass_expansion",
    "kept_mass_upper_bound",
]


def kept_mass_upper_bound(logit_range: torch.Tensor, k: int, num_classes: int,
                          temperature: float) -> torch.Tensor:
    """1 / (1 + ((K - k)/k) exp(-D/T)) for a range D (T2, upper bound)."""
    return 1 / (1 + ((num_classes - k) / k) * torch.exp(-logit_range / temperature))


@numpy_in_numpy_out
def kept_mass_bounds(logits, k: int, temperature: float):
    """(lower, upper) = (k/K, 1/(1 + ((K-k)/k) exp(-D/T))), each of the logits' batch shape (T2)."""
    logits, k, temperature, _ = checked_teacher(logits, k, temperature)
    num_classes = logits.shape[-1]
    logit_range = logits.amax(dim=-1) - logits.amin(dim=-1)
    upper = kept_mass_upper_bound(logit_range, k, num_classes, temperature)
    lower = torch.full_like(upper, k / num_classes)
    return lower, upper


@numpy_in_numpy_out
def kept_mass_expansion(logits, k: int, temperature: float) -> torch.Tensor:
    """m ~ r (1 + (zbar_M - zbar)/T), the first-order large-T expansion of the kept mass (T2)."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    mean_gap = split_kept(logits, kept)[0].mean(dim=-1) - logits.mean(dim=-1)
    return expansion_from_mean_gap(mean_gap, k, logits.shape[-1], temperature)


def expansion_from_mean_gap(mean_gap: torch.Tensor, k: int, num_classes: int,
                            temperature: float) -> torch.Tensor:
    """r (1 + (zbar_M - zbar)/T) from mean_gap = zbar_M - zbar (T2)."""
    return (k / num_classes) * (1 + mean_gap / temperature)


@numpy_in_numpy_out
def kept_mass_beta_derivative(logits, k: int, temperature: float) -> torch.Tensor:
    """dm/dbeta at beta = 1/T: m (1 - m) (E_p[z | M] - E_p[z | Mc]) >= 0 (T2).

    Computed without dividing by a possibly underflowing mass as
    (1 - m) sum_M p z - m sum_Mc p z, which is the same quantity (0 when k = K).
    """
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    p = torch.softmax(logits / temperature, dim=-1)
    zero = torch.zeros_like(p)
    m = torch.where(kept, p, zero).sum(dim=-1)
    dropped_mass = torch.where(kept, zero, p).sum(dim=-1)
    kept_moment = torch.where(kept, p * logits, zero).sum(dim=-1)
    dropped_moment = torch.where(kept, zero, p * logits).sum(dim=-1)
    return dropped_mass * kept_moment - m * dropped_moment
