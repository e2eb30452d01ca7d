"""Argument checks shared by every layer.

Each check raises ``ValueError`` whose message names the argument and the allowed range, so
that the CLI can print it as one line and exit with code 2.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from stingy.settings import ALPHA, RATIO, TEMPERATURE


def check_keep_count(k, num_classes: int, name: str = "k") -> int:
    """k must be an integer in [1, K]."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [1, {num_classes}], got {k!r}")
    if not 1 <= int(k) <= num_classes:
        raise ValueError(f"{name} must be an integer in [1, {num_classes}], got {k}")
    return int(k)


def check_positive_integer(value, name: str) -> int:
    """An integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_flag(value, name: str) -> bool:
    """A bool (True or False)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


REDUCTIONS = ("batchmean", "mean", "sum", "none")


def check_reduction(reduction, name: str = "reduction") -> str:
    """A loss reduction: one of REDUCTIONS."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, REDUCTIONS))}, "
                         f"got {reduction!r}")
    return reduction


def check_temperature(temperature, name: str = "temperature") -> float:
    """T by the one temperature rule (stingy.settings.TEMPERATURE)."""
    TEMPERATURE.check(temperature, name)
    return float(temperature)


def check_alpha(alpha, name: str = "alpha") -> float:
    """alpha by the one rule (stingy.settings.ALPHA): a number in [0, 1]."""
    ALPHA.check(alpha, name)
    return float(alpha)


def check_ratio(ratio, name: str = "ratio") -> float:
    """A sparse ratio r by the one rule (stingy.settings.RATIO): a number in (0, 1]."""
    RATIO.check(ratio, name)
    return float(ratio)


def check_logits(logits: torch.Tensor, name: str = "logits", finite: bool = True) -> torch.Tensor:
    """Logits are a floating tensor with at least one dimension (classes last), all finite."""
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"{name} must have a last (class) dimension of size >= 1, got shape "
                         f"{tuple(logits.shape)}")
    if not torch.is_floating_point(logits):
        raise ValueError(f"{name} must be a floating-point array, got dtype {logits.dtype}")
    if finite and not bool(torch.isfinite(logits).all()):
        raise ValueError(f"{name} must be finite (no nan or inf)")
    return logits


def check_nonempty_batch(logits: torch.Tensor, name: str = "logits") -> torch.Tensor:
    """At least one example: a loss averaged over an empty batch would be nan."""
    if logits[..., 0].numel() == 0:
        raise ValueError(f"{name} must hold at least one example, got shape "
                         f"{tuple(logits.shape)}")
    return logits


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


def check_labels(labels: torch.Tensor, logits: torch.Tensor, name: str = "labels") -> torch.Tensor:
    """Labels are integers in [0, K) (any integer dtype) with the logits' shape minus the
    class dimension."""
    num_classes = logits.shape[-1]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"{name} must have shape {tuple(logits.shape[:-1])} (the logits' shape "
                         f"without the class dimension), got {tuple(labels.shape)}")
    if torch.is_floating_point(labels) or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be integers in [0, {num_classes}), got dtype {labels.dtype}")
    if labels.numel() and not bool(((labels >= 0) & (labels < num_classes)).all()):
        raise ValueError(f"{name} must be integers in [0, {num_classes})")
    return labels


def as_tensor(x, name: str) -> torch.Tensor:
    """Accept a tensor, a NumPy array or a nested list; floats become float32 or stay float64."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        array = np.asarray(x)
    except Exception as err:  # noqa: BLE001 - report any conversion failure the same way
        raise ValueError(f"{name} must be an array of numbers ({err})") from None
    if array.dtype == object or array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be an array of numbers, got dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))
