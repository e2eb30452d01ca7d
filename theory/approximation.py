"""T3: when is the paper's approximation delta(i) ~ (1 - r)/k, p~ ~ uniform on M, right?

The paper replaces the mass moved onto kept class i, delta(i) = p(i)(1/m - 1) (T1), by its
value for a flat teacher, (1 - r)/(rK) = (1 - r)/k, so that p~ becomes uniform on M.

Statement (T3a, exact worst case, all k). With d = D_M/T the range of the kept logits in units
of T, the largest TV(p~, U_M) over all kept logit vectors of range D_M is

    W_k(d) = max_{j = 1..k-1} V_j(d),   V_j(d) = j e^d / (j e^d + k - j) - j/k,

the value at the two-level vector with j kept classes on top (:func:`tv_worst_case`).
Proof. TV = max_A (p~(A) - |A|/k) over A in M. For fixed A, d p~(A)/dz(i) = p~(i)(1 - p~(A))/T
> 0 for i in A and -p~(i)p~(A)/T < 0 for i not in A, so over the box of kept vectors with range
<= D_M the maximum is at z(i) = top for i in A and bottom otherwise: a two-level vector, whose
range is exactly D_M when 1 <= |A| <= k - 1; so the sup over range = D_M equals the sup over
range <= D_M and is max_j V_j(d).

Statement (T3b, the relaxed bound). V_j(d) = x(1 - x)c/(1 + cx) with x = j/k, c = e^d - 1,
concave in x with maximum tanh(d/4) at x* = 1/(1 + e^{d/2}); hence W_k(d) <= tanh(D_M/(4T)),
with equality exactly when k x* = k/(1 + e^{d/2}) is an integer j, i.e. at the isolated ranges
d = 2 log(k/j - 1), j = 1..floor(k/2) - (k/2 only at d = 0). Between them the bound is not
attained. k = 2 (CIFAR-10's 2 of 10): W_2(d) = tanh(d/2)/2 = t/(1 + t^2) with t = tanh(d/4),
so tanh(d/4) - W_2(d) = t^3/(1 + t^2) > 0 for every D_M > 0: the tanh bound is never reached.
k = 1: W_1 = 0.

Statement (T3d). delta(i) - (1 - r)/k = (p~(i) - 1/k)(1 - m) + (r - m)/k, hence

    max_{i in M} |delta(i) - (1 - r)/k| <= (1 - r) e_M + (m_upper - r)/k,

where m_upper is the upper bound of T2 and e_M = max deviation of p~(i) from 1/k allowed by
p~(i) in [1/(1 + (k-1)e^{D_M/T}), 1/(1 + (k-1)e^{-D_M/T})].

Both errors vanish only when T >> D_M and T >> D (then m -> r and p~ -> U_M). A trained
CIFAR-10 teacher has a top-1 vs top-2 logit gap of roughly 5 to 15, so at T = 4 the sparse
target with k = 2 is far from uniform (see :func:`approximation_errors`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from stingy.theory.kept_mass import kept_mass_upper_bound
from stingy.theory.moments import split_kept, value_range
from stingy.theory.operators import numpy_in_numpy_out, sparse_target
from stingy.theory.sparse_target import checked_teacher, mass_shift
from stingy.theory.validation import check_keep_count, check_temperature


def paper_mass_shift(k: int, num_classes: int) -> float:
    """The paper's delta(i) ~ (1 - r)/(rK) = (1 - r)/k with r = k/K (Ma et al. 2022, poster)."""
    k = check_keep_count(k, num_classes)
    return (1 - k / num_classes) / k


def error_from_kept_shift(kept_shift: torch.Tensor, num_classes: int) -> torch.Tensor:
    """max_{i in M} |delta(i) - (1 - r)/k| from delta on M, a (..., k) tensor (T3d)."""
    k = kept_shift.shape[-1]
    return (kept_shift - paper_mass_shift(k, num_classes)).abs().amax(dim=-1)


def error_bound_from_ranges(full_range: torch.Tensor, kept_range: torch.Tensor, k: int,
                            num_classes: int, temperature: float) -> torch.Tensor:
    """(1 - r) e_M + (m_upper - r)/k from D and D_M (T3d).

    e_M = max(1/k - lo, hi - 1/k) with p~(i) in [lo, hi] = [1/(1 + (k-1)e^{D_M/T}),
    1/(1 + (k-1)e^{-D_M/T})]; m_upper = 1/(1 + ((K-k)/k) e^{-D/T}) (T2).
    """
    ratio = k / num_classes
    lowest = 1 / (1 + (k - 1) * torch.exp(kept_range / temperature))
    highest = 1 / (1 + (k - 1) * torch.exp(-kept_range / temperature))
    deviation = torch.maximum(1 / k - lowest, highest - 1 / k)
    upper = kept_mass_upper_bound(full_range, k, num_classes, temperature)
    return (1 - ratio) * deviation + (upper - ratio) / k


def tv_from_kept_target(kept_target: torch.Tensor) -> torch.Tensor:
    """TV(p~, U_M) = (1/2) sum_{i in M} |p~(i) - 1/k| from p~ on M, a (..., k) tensor (T3a)."""
    return 0.5 * (kept_target - 1 / kept_target.shape[-1]).abs().sum(dim=-1)


def tv_bound_from_range(kept_range: torch.Tensor, temperature: float) -> torch.Tensor:
    """tanh(D_M / (4T)) from the kept logits' range D_M (T3b)."""
    return torch.tanh(kept_range / (4 * temperature))


@numpy_in_numpy_out
def mass_shift_error(logits, k: int, temperature: float) -> torch.Tensor:
    """max_{i in M} |delta(i) - (1 - r)/k|, the paper approximation's error (T3d)."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    kept_shift, _ = split_kept(mass_shift(logits, k, temperature), kept)
    return error_from_kept_shift(kept_shift, logits.shape[-1])


@numpy_in_numpy_out
def mass_shift_error_bound(logits, k: int, temperature: float) -> torch.Tensor:
    """(1 - r) e_M + (m_upper - r)/k >= max_M |delta(i) - (1 - r)/k| (T3d)."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    kept_range = value_range(split_kept(logits, kept)[0])
    return error_bound_from_ranges(value_range(logits), kept_range, k, logits.shape[-1],
                                   temperature)


@numpy_in_numpy_out
def tv_to_uniform(logits, k: int, temperature: float) -> torch.Tensor:
    """TV(p~, U_M) = (1/2) sum_{i in M} |p~(i) - 1/k|, p~ the sparse target (T3a)."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    return tv_from_kept_target(split_kept(sparse_target(logits, k, temperature), kept)[0])


@numpy_in_numpy_out
def tv_to_uniform_bound(logits, k: int, temperature: float) -> torch.Tensor:
    """tanh(D_M / (4T)) >= TV(p~, U_M); attained only at isolated ranges (T3b)."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    return tv_bound_from_range(value_range(split_kept(logits, kept)[0]), temperature)


def tv_two_level(k: int, top_count, kept_range, temperature: float):
    """V_j(d) = j e^d/(j e^d + k - j) - j/k, d = D_M/T: TV(p~, U_M) of the two-level kept
    logits with j = top_count classes at the top (T3a). Broadcasts over top_count, kept_range."""
    top = np.asarray(top_count, dtype=float)
    lowered = (k - top) * np.exp(-np.asarray(kept_range, dtype=float) / temperature)
    return top / (top + lowered) - top / k


def tv_worst_case(k: int, kept_range, temperature: float):
    """W_k(D_M/T) = max_{j=1..k-1} V_j: the exact maximum of TV(p~, U_M) over kept logits whose
    range is ``kept_range`` (T3a); 0 for k = 1. NumPy in, NumPy out (float for scalars)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    temperature = check_temperature(temperature)
    kept_range = np.asarray(kept_range, dtype=float)
    if not np.isfinite(kept_range).all() or (kept_range < 0).any():
        raise ValueError("kept_range must be finite and >= 0")
    if k == 1:
        return np.zeros_like(kept_range)[()]
    tops = np.arange(1, k).reshape((-1,) + (1,) * kept_range.ndim)
    return tv_two_level(k, tops, kept_range[None], temperature).max(axis=0)[()]


def two_level_logits(k: int, top_count: int, kept_range: float, num_classes: int | None = None,
                     dtype=torch.float64) -> torch.Tensor:
    """The extremal logits of T3a: ``top_count`` kept classes at ``kept_range``, the other
    k - top_count kept classes at 0, and (if num_classes > k) dropped classes at -1 - kept_range
    (strictly below M, so M is exactly the first k classes)."""
    num_classes = k if num_classes is None else num_classes
    check_keep_count(k, num_classes)
    if not 0 <= top_count <= k:
        raise ValueError(f"top_count must be an integer in [0, {k}], got {top_count}")
    logits = torch.full((num_classes,), -1.0 - kept_range, dtype=dtype)
    logits[:k] = 0.0
    logits[:top_count] = kept_range
    return logits


def tanh_bound_attaining_range(k: int, top_count: int) -> float:
    """d = D_M/T = 2 log(k/j - 1), where k/(1 + e^{d/2}) = j: two-level logits with j = top_count
    classes on top attain TV = tanh(d/4) exactly (T3b). Needs 1 <= j <= k/2."""
    if not 1 <= top_count <= k / 2:
        raise ValueError(f"top_count must be an integer in [1, k/2] = [1, {k / 2}], "
                         f"got {top_count}")
    return 2 * math.log(k / top_count - 1)


def approximation_errors(logits, k: int, temperatures) -> list[dict]:
    """T3 errors of the paper's approximation for given logits at several temperatures.

    One dict per T: temperature, the paper's delta (1 - r)/k, and tv_to_uniform,
    tv_to_uniform_bound, mass_shift_error, mass_shift_error_bound (means over the logit rows).
    """
    logits = torch.as_tensor(logits)
    rows = []
    for temperature in temperatures:
        rows.append({
            "temperature": float(temperature),
            "paper_mass_shift": paper_mass_shift(k, logits.shape[-1]),
            "tv_to_uniform": float(tv_to_uniform(logits, k, temperature).mean()),
            "tv_to_uniform_bound": float(tv_to_uniform_bound(logits, k, temperature).mean()),
            "mass_shift_error": float(mass_shift_error(logits, k, temperature).mean()),
            "mass_shift_error_bound": float(mass_shift_error_bound(logits, k, temperature).mean()),
        })
    return rows
