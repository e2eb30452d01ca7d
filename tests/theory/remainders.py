"""Shared by the T4 and tail-bucket expansion tests: seeded teacher/student logit pairs and
how an expansion's remainder shrinks with T."""

from __future__ import annotations

import numpy as np
import torch



def logit_pair(num_classes: int, seed: int, rows: int | None = None):
    """Teacher logits 3 N(0, 1) and student logits N(0, 1), float64, from one seeded
    generator; shape (num_classes,) or (rows, num_classes)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (num_classes,) if rows is None else (rows, num_classes)
    teacher = 3 * torch.randn(shape, generator=generator, dtype=torch.float64)
    student = torch.randn(shape, generator=generator, dtype=torch.float64)
    return teacher, student


def remainder_slope_and_spread(terms, teacher, student, k: int) -> tuple[float, float]:
    """``terms(teacher, student, k, T)["remainder"]`` at 9 temperatures from 10^1.5 to 10^3.5:
    the log-log slope of |remainder| against T, and max/min of remainder * T (bounded when the
    remainder is O(1/T) with a converging coefficient)."""
    temperatures = np.logspace(1.5, 3.5, 9)
    remainders = np.array([abs(float(terms(teacher, student, k, t)["remainder"]))
                           for t in temperatures])
    slope = np.polyfit(np.log(temperatures), np.log(remainders), 1)[0]
    scaled = remainders * temperatures
    return float(slope), float(scaled.max() / scaled.min())
