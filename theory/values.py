"""Every T1-T5 quantity for given or seeded logits: the library side of ``stingy theory``.

:func:`theory_values` computes the quantities per row of (N, K) logits; :func:`theory_report`
resolves k, the temperature and the logits (a file's or seeded ones) like the command does
and returns ``{"settings", "per_row", "mean"}`` (inf written as None, JSON-ready).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from stingy.settings import CLASS_COUNT
from stingy.theory.approximation import (
    mass_shift_error,
    mass_shift_error_bound,
    paper_mass_shift,
    tv_to_uniform,
    tv_to_uniform_bound,
    tv_worst_case,
)
from stingy.theory.examples import random_logits
from stingy.theory.expansion import expansion_terms
from stingy.theory.kept_mass import kept_mass_bounds, kept_mass_expansion
from stingy.theory.moments import split_kept, value_range
from stingy.theory.operators import keep_count, kept_mass, top_k_mask
from stingy.theory.signal import (
    drive_norm,
    signal_norm,
    signal_to_drive,
    signal_to_drive_bound,
    signal_to_drive_exact,
)
from stingy.theory.sparse_target import mass_shift
from stingy.theory.validation import check_keep_count, check_temperature


def load_logits(path: str | Path, num_classes: int, name: str) -> torch.Tensor:
    """A (K,) or (N, K) float64 tensor from a .npy file (no pickles); ValueError naming ``name``."""
    array = np.load(path, allow_pickle=False)
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be a 1-D (K,) or 2-D (N, K) array, got shape {array.shape}")
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.shape[-1] != num_classes:
        raise ValueError(f"--classes is {num_classes} but {name} has {array.shape[-1]} classes "
                         f"(last dimension of shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no nan or inf)")
    return torch.from_numpy(array.astype(np.float64))


def theory_values(teacher: torch.Tensor, student: torch.Tensor, k: int,
                  temperature: float) -> dict:
    """Every T1-T5 quantity per row of (N, K) logits, as {key: (N,) tensor or list}."""
    num_classes = teacher.shape[-1]
    lower, upper = kept_mass_bounds(teacher, k, temperature)
    m = kept_mass(teacher, k, temperature)
    kept_shift, _ = split_kept(mass_shift(teacher, k, temperature), top_k_mask(teacher, k))
    values = {
        "kept_mass": m,
        "kept_mass_lower": lower,
        "kept_mass_upper": upper,
        "kept_mass_expansion": kept_mass_expansion(teacher, k, temperature),
        "mass_shift_mean_kept": kept_shift.mean(dim=-1),
        "paper_mass_shift": torch.full_like(m, paper_mass_shift(k, num_classes)),
        "mass_shift_error": mass_shift_error(teacher, k, temperature),
        "mass_shift_error_bound": mass_shift_error_bound(teacher, k, temperature),
        "tv_to_uniform": tv_to_uniform(teacher, k, temperature),
        "tv_to_uniform_worst_case": torch.from_numpy(np.asarray(tv_worst_case(
            k, value_range(split_kept(teacher, top_k_mask(teacher, k))[0]).numpy(),
            temperature), dtype=np.float64).reshape(-1)),
        "tv_to_uniform_bound": tv_to_uniform_bound(teacher, k, temperature),
    }
    values.update(expansion_terms(teacher, student, k, temperature))
    values.update({
        "drive_norm": torch.full_like(m, drive_norm(k, num_classes, temperature)),
        "signal_norm": signal_norm(teacher, k),
        "signal_to_drive_exact": signal_to_drive_exact(teacher, k, temperature),
        "signal_to_drive": signal_to_drive(teacher, k, temperature),
        "signal_to_drive_bound": signal_to_drive_bound(teacher, k, temperature),
        "signal_to_drive_popoviciu": signal_to_drive_bound(teacher, k, temperature, sharp=False),
    })
    return values


def finite_or_none(value: float):
    """``value``, or None where it is inf or nan (JSON has no inf)."""
    return value if math.isfinite(value) else None


def theory_report(num_classes: int, temperature: float, *, k: int | None = None,
                  ratio: float | None = None, logits: str | Path | None = None,
                  student_logits: str | Path | None = None, seed: int = 0) -> dict:
    """``stingy theory``'s result: settings, per-row values and their means over rows.

    Teacher logits from the .npy file ``logits`` or one seeded Normal(0, 3^2) row; student
    logits from ``student_logits`` (same shape) or seeded Normal(0, 1) with seed + 1.
    Give ``k`` or ``ratio`` (k = keep_count(ratio, K)).
    """
    CLASS_COUNT.check(num_classes, "--classes")
    if (k is None) == (ratio is None):
        raise ValueError("give exactly one of --k and --ratio")
    k = (check_keep_count(k, num_classes, "--k") if k is not None
         else keep_count(ratio, num_classes))
    temperature = check_temperature(temperature, "--temperature")
    if logits is not None:
        teacher = load_logits(logits, num_classes, "--logits")
        teacher_source = str(logits)
    else:
        teacher = random_logits((num_classes,), seed)
        teacher_source = f"seeded Normal(0, 3^2), seed {seed}"
    if student_logits is not None:
        student = load_logits(student_logits, num_classes, "--student-logits")
        if student.shape != teacher.shape:
            raise ValueError(f"--student-logits must have the teacher logits' shape "
                             f"{tuple(teacher.shape)}, got {tuple(student.shape)}")
        student_source = str(student_logits)
    else:
        student_seed = (seed if logits is None else 0) + 1
        student = random_logits(tuple(teacher.shape), student_seed, scale=1.0)
        student_source = f"seeded Normal(0, 1), seed {student_seed}"
    teacher2d, student2d = teacher.reshape(-1, num_classes), student.reshape(-1, num_classes)
    values = theory_values(teacher2d, student2d, k, temperature)
    settings = {"num_classes": num_classes, "k": k, "ratio": k / num_classes,
                "temperature": temperature, "rows": teacher2d.shape[0],
                "logits": teacher_source, "student_logits": student_source}
    per_row = {key: [finite_or_none(float(v)) for v in value] for key, value in values.items()}
    mean = {key: finite_or_none(float(value.double().mean())) for key, value in values.items()}
    per_row["mass_shift_kept"] = split_kept(
        mass_shift(teacher2d, k, temperature), top_k_mask(teacher2d, k))[0].tolist()
    return {"settings": settings, "per_row": per_row, "mean": mean}
