"""Comparisons over seeds: paired differences and the 95% Student-t interval of a mean."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def t_interval(values) -> tuple[float, float, float]:
    """Mean and two-sided 95% Student-t interval: mean +- t_{0.975, n-1} s / sqrt(n)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def paired(a: dict, b: dict) -> np.ndarray:
    """a[seed] - b[seed] over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    return np.array([a[s] - b[s] for s in seeds])
