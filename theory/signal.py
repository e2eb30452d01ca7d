"""T5: the teacher's signal against the sparse target's drive.

In the T4 expansion the student gradient of the order-T term -T(1 - r)(sbar_M - sbar_Mc) is
-T(1 - r)/k on each kept class and +T(1 - r)/(K - k) on each dropped class, whose norm is

    drive_norm = T sqrt(1/k - 1/K).

The only term carrying the teacher's logit values, -Cov_M(z, s), has gradient
-(z(i) - zbar_M)/k on M (0 off M), whose norm is

    signal_norm = sqrt(Var_M(z) / k).

Statement (T5). signal_norm / drive_norm = sqrt(Var_M(z)) / (T sqrt(1 - r)): infinite at k = K
(no drive), 0 at k = 1 (no signal), and by Popoviciu (Var <= D_M^2 / 4)

    signal_to_drive <= D_M / (2 T sqrt(1 - r)).

Sharpened: k values in a range D_M have variance at most D_M^2 floor(k/2) ceil(k/2) / k^2
(the variance is convex in each value, so its maximum over the box is at a two-level vector
with j values on top, where it is D_M^2 j(k - j)/k^2), i.e. D_M^2 (k^2 - 1)/(4k^2) for odd k
(k = 1: 0) and Popoviciu's D_M^2/4 for even k. :func:`signal_to_drive_bound` uses the sharp
form by default.
"""

from __future__ import annotations

import math

import torch

from stingy.theory.moments import population_var, split_kept, value_range
from stingy.theory.operators import numpy_in_numpy_out
from stingy.theory.sparse_target import checked_teacher
from stingy.theory.validation import check_keep_count, check_temperature


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
    """sqrt(Var_M(z)) / (T sqrt(1 - r)) = signal_norm / drive_norm; inf at k = K (T5)."""
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
