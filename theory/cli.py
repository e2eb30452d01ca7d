"""``stingy theory`` (T1-T5 for given or seeded logits) and ``stingy derive`` (all derivations).

stingy theory --classes K (--k k | --ratio r) --temperature T [--logits FILE.npy | --seed N]
              [--student-logits FILE.npy] [--json]
    Teacher logits from a 1-D (K,) or 2-D (N, K) .npy file, or one seeded random row
    Normal(0, 3^2) (stingy.theory.examples.RANDOM_LOGIT_SCALE: ranges like a trained CIFAR
    classifier's). Student logits from --student-logits (same shape) or seeded random
    Normal(0, 1) with seed N + 1 (a student early in training). Prints each T1-T5 quantity
    (for N rows: the mean over rows); --json prints {"settings", "per_row", "mean"} with
    snake_case keys, per_row holding one value (or list) per row; inf (signal_to_drive at
    k = K) is written as null.

stingy derive [--latex PATH]
    Runs every derivation of stingy.theory.derivations, prints "status  id  statement", optionally
    writes the LaTeX file, exits 1 if any derivation failed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

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

# (key, label, section) in print order
ROWS = [
    ("kept_mass", "kept mass m", "T2"),
    ("kept_mass_lower", "  lower bound k/K", "T2"),
    ("kept_mass_upper", "  upper bound 1/(1+((K-k)/k)e^{-D/T})", "T2"),
    ("kept_mass_expansion", "  expansion r(1+(zbar_M-zbar)/T)", "T2"),
    ("mass_shift_mean_kept", "mean exact delta on M, (1-m)/k", "T1"),
    ("paper_mass_shift", "paper delta (1-r)/k", "T3"),
    ("mass_shift_error", "max_M |delta - (1-r)/k|", "T3"),
    ("mass_shift_error_bound", "  bound (1-r)e_M + (m_up-r)/k", "T3"),
    ("tv_to_uniform", "TV(p~, U_M)", "T3"),
    ("tv_to_uniform_worst_case", "  exact worst case for D_M (max_j two-level)", "T3"),
    ("tv_to_uniform_bound", "  bound tanh(D_M/4T)", "T3"),
    ("exact", "T^2 KL(p~||q) exact", "T4"),
    ("order_t2", "  T^2 log(K/k)", "T4"),
    ("order_t", "  -T(1-r)(sbar_M - sbar_Mc)", "T4"),
    ("order_1", "  order 1", "T4"),
    ("teacher_matching", "    (Var_M z)/2 - Cov_M(z,s)", "T4"),
    ("student_spread", "    (Var_K s)/2", "T4"),
    ("remainder", "  remainder O(1/T)", "T4"),
    ("order_inv_t", "  its leading term (1/T)[k3_M z/3 - k_M(z,z,s)/2 + k3_K s/6]", "T4"),
    ("paper_last_line", "paper's last line -T^2/k sum_M log q", "T4"),
    ("drive_norm", "drive norm T sqrt(1/k-1/K)", "T5"),
    ("signal_norm", "signal norm sqrt(Var_M z / k)", "T5"),
    ("signal_to_drive_exact", "signal / drive (exact) |p~-U_M|/sqrt(1/k-1/K)", "T5"),
    ("signal_to_drive", "  1/T asymptote sqrt(Var_M z)/(T sqrt(1-r))", "T5"),
    ("signal_to_drive_bound", "    bound on the asymptote (sharp)", "T5"),
    ("signal_to_drive_popoviciu", "    bound on the asymptote (Popoviciu)", "T5"),
]


def register(subparsers, common) -> None:
    theory = subparsers.add_parser("theory", parents=[common],
                                   help="T1-T5 quantities for given or seeded logits")
    theory.add_argument("--classes", type=int, help="number of classes K (not with --topk)")
    keep = theory.add_mutually_exclusive_group()
    keep.add_argument("--k", type=int, help="kept classes k in [1, K]")
    keep.add_argument("--ratio", type=float, help="sparse ratio r in (0, 1]; k = floor(r K)")
    theory.add_argument("--temperature", type=float, required=True, help="temperature T > 0")
    source = theory.add_mutually_exclusive_group()
    source.add_argument("--logits", type=Path, help="teacher logits .npy, shape (K,) or (N, K)")
    source.add_argument("--seed", type=int, default=0, help="seed of random logits (default 0)")
    theory.add_argument("--student-logits", type=Path, help="student logits .npy, same shape")
    theory.add_argument("--topk", type=Path, help="stored top-k teacher rows (.npz) instead "
                        "of --classes, --k/--ratio and the logits")
    theory.add_argument("--json", action="store_true", help="print JSON instead of a table")
    theory.set_defaults(run=run_theory)

    derive = subparsers.add_parser("derive", parents=[common],
                                   help="run every T1-T5 derivation")
    derive.add_argument("--latex", type=Path, help="also write the derivations as LaTeX")
    derive.set_defaults(run=run_derive)


def _load_logits(path: Path, num_classes: int, name: str) -> torch.Tensor:
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


def _finite_or_none(value: float):
    return value if math.isfinite(value) else None


def run_stored_rows(args) -> int:
    """``stingy theory --topk FILE``: stored_rows_theory's per-row means (or JSON)."""
    from stingy.theory.topk import load_topk_teacher
    from stingy.theory.vocabulary import stored_rows_theory

    given = [flag for flag, value in (("--classes", args.classes), ("--k", args.k),
                                      ("--ratio", args.ratio), ("--logits", args.logits),
                                      ("--student-logits", args.student_logits))
             if value is not None]
    if given:
        raise ValueError(f"--topk takes K, k and the teacher from the file; drop {given[0]}")
    temperature = check_temperature(args.temperature, "--temperature")
    teacher = load_topk_teacher(args.topk)
    values = stored_rows_theory(teacher, temperature)
    mean = {key: _finite_or_none(float(value.mean())) for key, value in values.items()}
    settings = {"num_classes": teacher.num_classes, "k": teacher.k,
                "ratio": teacher.k / teacher.num_classes, "temperature": temperature,
                "rows": int(teacher.values.reshape(-1, teacher.k).shape[0]),
                "topk": str(args.topk), "log_partition_temperatures": list(teacher.temperatures)}
    if args.json:
        per_row = {key: [_finite_or_none(float(v)) for v in value]
                   for key, value in values.items()}
        print(json.dumps({"settings": settings, "per_row": per_row, "mean": mean}, indent=2))
        return 0
    print(f"K={teacher.num_classes} k={teacher.k} T={temperature:g}  stored rows: {args.topk} "
          f"(means over {settings['rows']} rows)")
    if "kept_mass" not in values:
        print(f"no log-partition at T={temperature:g} stored: kept mass, tail mass, bias and "
              "mass-shift error need it")
    width = max(len(key) for key in values)
    for key, value in mean.items():
        print(f"{key:<{width}}  {'inf' if value is None else f'{value:.6g}':>12}")
    return 0


def run_theory(args) -> int:
    if args.topk is not None:
        return run_stored_rows(args)
    num_classes = args.classes
    if num_classes is None:
        raise ValueError("--classes is required (or --topk FILE)")
    if args.k is None and args.ratio is None:
        raise ValueError("one of --k or --ratio is required (or --topk FILE)")
    if num_classes < 1:
        raise ValueError(f"--classes must be an integer >= 1, got {num_classes}")
    k = (check_keep_count(args.k, num_classes, "--k") if args.k is not None
         else keep_count(args.ratio, num_classes))
    temperature = check_temperature(args.temperature, "--temperature")
    if args.logits is not None:
        teacher = _load_logits(args.logits, num_classes, "--logits")
        teacher_source = str(args.logits)
    else:
        teacher = random_logits((num_classes,), args.seed)
        teacher_source = f"seeded Normal(0, 3^2), seed {args.seed}"
    if args.student_logits is not None:
        student = _load_logits(args.student_logits, num_classes, "--student-logits")
        if student.shape != teacher.shape:
            raise ValueError(f"--student-logits must have the teacher logits' shape "
                             f"{tuple(teacher.shape)}, got {tuple(student.shape)}")
        student_source = str(args.student_logits)
    else:
        seed = (args.seed if args.logits is None else 0) + 1
        student = random_logits(tuple(teacher.shape), seed, scale=1.0)
        student_source = f"seeded Normal(0, 1), seed {seed}"
    teacher2d, student2d = teacher.reshape(-1, num_classes), student.reshape(-1, num_classes)
    values = theory_values(teacher2d, student2d, k, temperature)
    settings = {"num_classes": num_classes, "k": k, "ratio": k / num_classes,
                "temperature": temperature, "rows": teacher2d.shape[0],
                "logits": teacher_source, "student_logits": student_source}
    per_row = {key: [_finite_or_none(float(v)) for v in value] for key, value in values.items()}
    mean = {key: _finite_or_none(float(value.double().mean())) for key, value in values.items()}
    per_row["mass_shift_kept"] = split_kept(
        mass_shift(teacher2d, k, temperature), top_k_mask(teacher2d, k))[0].tolist()
    if args.json:
        print(json.dumps({"settings": settings, "per_row": per_row, "mean": mean}, indent=2))
        return 0
    rows = teacher2d.shape[0]
    print(f"K={num_classes} k={k} r={k / num_classes:g} T={temperature:g}  teacher: "
          f"{teacher_source}  student: {student_source}"
          + (f"  (means over {rows} rows)" if rows > 1 else ""))
    width = max(len(label) for _, label, _ in ROWS)
    for key, label, section in ROWS:
        value = mean[key]
        shown = "inf" if value is None else f"{value:.6g}"
        print(f"{section}  {label:<{width}}  {shown:>12}")
    return 0


def run_derive(args) -> int:
    from stingy.theory.derivations import FAILED, run_all, write_latex  # sympy loads slowly

    records = run_all()
    for record in records:
        print(f"{record['status']:<20}  {record['id']:<4}  {record['statement']}")
    if args.latex is not None:
        write_latex(args.latex, records)
        print(f"wrote {args.latex}")
    failed = [record["id"] for record in records if record["status"] == FAILED]
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0
