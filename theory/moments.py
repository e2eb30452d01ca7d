"""Splitting logits into the kept set M and the dropped set Mc, and means over a mask.

Every T1-T5 quantity is a symmetric function of the values on M and on Mc, so it is computed
from the (..., k) kept values and the (..., K - k) dropped values. Population moments:
Var_M(z) = (1/k) sum_M (z - zbar_M)^2, Cov_M(z, s) = (1/k) sum_M (z - zbar_M)(s - sbar_M).
"""

from __future__ import annotations

import torch


def split_kept(values: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values on M, values on Mc) as (..., k) and (..., K - k) tensors, in class order.

    ``kept`` must hold the same number k of True in every row (as top_k_mask's does).
    """
    k = int(kept[(0,) * (kept.ndim - 1)].sum()) if kept.numel() else 0
    batch = values.shape[:-1]
    return (values[kept].reshape(*batch, k),
            values[~kept].reshape(*batch, values.shape[-1] - k))


def population_cov(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(1/n) sum (a - abar)(b - bbar) over the last dimension (n = its size)."""
    return ((a - a.mean(dim=-1, keepdim=True)) * (b - b.mean(dim=-1, keepdim=True))).mean(dim=-1)


def third_cumulant(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(1/n) sum (a - abar)(b - bbar)(c - cbar) over the last dimension: the joint third
    cumulant under the uniform law on the n entries."""
    def centred(v):
        return v - v.mean(dim=-1, keepdim=True)
    return (centred(a) * centred(b) * centred(c)).mean(dim=-1)


def population_var(values: torch.Tensor) -> torch.Tensor:
    """(1/n) sum (v - vbar)^2 over the last dimension."""
    return population_cov(values, values)


def value_range(values: torch.Tensor) -> torch.Tensor:
    """max - min over the last dimension (D for all classes, D_M for the kept values)."""
    return values.amax(dim=-1) - values.amin(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/|A|) sum_{i in A} v(i) for the set A given by ``mask`` (any count per row);
    nan where A is empty."""
    count = mask.sum(dim=-1).to(values.dtype)
    return values.masked_fill(~mask, 0).sum(dim=-1) / count
