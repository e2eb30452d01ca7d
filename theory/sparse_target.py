"""T1: the sparse target is the dense one renormalised on the kept set.

Statement (T1). With p = softmax(z/T), M the top-k classes of z and m = sum_M p,

    p~(i) = p(i) / m  for i in M,     p~(i) = 0  for i not in M,

so the mass moved onto kept class i is delta(i) = p~(i) - p(i) = p(i) (1/m - 1) >= 0 on M and
delta(i) = -p(i) off M (the dropped mass 1 - m is shared among M in proportion to p).
Because M contains the argmax of z, the sparse target has the same argmax: the teacher's
top-1 prediction (and accuracy) is unchanged.
"""

from __future__ import annotations

import torch

from stingy.theory.operators import numpy_in_numpy_out, sparse_target, top_k_mask
from stingy.theory.validation import as_tensor, check_keep_count, check_logits, check_temperature


def checked_teacher(logits, k, temperature=None, name: str = "logits"):
    """Validate (logits, k, T) and return (logits tensor, k, T, kept mask M)."""
    logits = check_logits(as_tensor(logits, name), name)
    k = check_keep_count(k, logits.shape[-1])
    if temperature is not None:
        temperature = check_temperature(temperature)
    return logits, k, temperature, top_k_mask(logits, k)


@numpy_in_numpy_out
def mass_shift(logits, k: int, temperature: float) -> torch.Tensor:
    """delta(i) = p~(i) - p(i) (T1), computed from the definition.

    Equals p(i) (1/m - 1) on M and -p(i) off M (see :func:`mass_shift_closed_form`).
    """
    logits, k, temperature, _ = checked_teacher(logits, k, temperature)
    return sparse_target(logits, k, temperature) - torch.softmax(logits / temperature, dim=-1)


@numpy_in_numpy_out
def mass_shift_closed_form(logits, k: int, temperature: float) -> torch.Tensor:
    """delta(i) = p(i) (1/m - 1) for i in M and -p(i) for i not in M (T1, closed form)."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    p = torch.softmax(logits / temperature, dim=-1)
    m = torch.where(kept, p, torch.zeros_like(p)).sum(dim=-1, keepdim=True)
    return torch.where(kept, p * (1 / m - 1), -p)


@numpy_in_numpy_out
def sparse_target_from_dense(logits, k: int, temperature: float) -> torch.Tensor:
    """p~(i) = p(i)/m on M, 0 off M (T1): the dense tempered teacher renormalised on M."""
    logits, k, temperature, kept = checked_teacher(logits, k, temperature)
    p = torch.softmax(logits / temperature, dim=-1)
    m = torch.where(kept, p, torch.zeros_like(p)).sum(dim=-1, keepdim=True)
    return torch.where(kept, p / m, torch.zeros_like(p))
