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

stingy theory --topk FILE.npz --temperature T [--json]
    The quantities of stored top-k teacher rows (stingy.theory.vocabulary.stored_rows_report),
    with K and k taken from the file.

stingy derive [--latex PATH]
    Runs every derivation of stingy.theory.derivations, prints "status  id  statement", optionally
    writes the LaTeX file, exits 1 if any derivation failed.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    theory = subparsers.add_parser(
        "theory", parents=[common], help="T1-T5 quantities for given or seeded logits",
        description="T1-T5 quantities for --classes K with --k or --ratio (teacher logits from "
        "--logits or --seed), or for the stored top-k rows of --topk FILE.")
    required = theory.add_argument_group("required arguments")
    required.add_argument("--temperature", type=float, required=True, help="temperature T > 0")
    theory.add_argument("--classes", type=int, help="number of classes K (required unless --topk)")
    keep = theory.add_mutually_exclusive_group()
    keep.add_argument("--k", type=int, help="kept classes k in [1, K] (--k or --ratio is "
                      "required unless --topk)")
    keep.add_argument("--ratio", type=float, help="sparse ratio r in (0, 1]; k = floor(r K)")
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


def _show(report: dict, as_json: bool, print_table) -> int:
    """Print ``report`` as JSON or with ``print_table``; the exit status 0."""
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


def run_stored_rows(args) -> int:
    """``stingy theory --topk FILE``: stored_rows_report's per-row means (or JSON)."""
    from stingy.theory.vocabulary import stored_rows_report

    given = [flag for flag, value in (("--classes", args.classes), ("--k", args.k),
                                      ("--ratio", args.ratio), ("--logits", args.logits),
                                      ("--student-logits", args.student_logits))
             if value is not None]
    if given:
        raise ValueError(f"--topk takes K, k and the teacher from the file; drop {given[0]}")
    report = stored_rows_report(args.topk, args.temperature)
    return _show(report, args.json, _print_stored_rows_table)


def _print_stored_rows_table(report: dict) -> None:
    settings, mean = report["settings"], report["mean"]
    temperature = settings["temperature"]
    print(f"K={settings['num_classes']} k={settings['k']} T={temperature:g}  stored rows: "
          f"{settings['topk']} (means over {settings['rows']} rows)")
    if "kept_mass" not in mean:
        print(f"no log-partition at T={temperature:g} stored: kept mass, tail mass, bias and "
              "mass-shift error need it")
    width = max(len(key) for key in mean)
    for key, value in mean.items():
        print(f"{key:<{width}}  {'inf' if value is None else f'{value:.6g}':>12}")


def run_theory(args) -> int:
    from stingy.theory.values import theory_report

    if args.topk is not None:
        return run_stored_rows(args)
    if args.classes is None:
        raise ValueError("--classes is required (or --topk FILE)")
    if args.k is None and args.ratio is None:
        raise ValueError("one of --k or --ratio is required (or --topk FILE)")
    report = theory_report(args.classes, args.temperature, k=args.k, ratio=args.ratio,
                           logits=args.logits, student_logits=args.student_logits,
                           seed=args.seed)
    return _show(report, args.json, _print_theory_table)


def _print_theory_table(report: dict) -> None:
    settings, mean = report["settings"], report["mean"]
    rows = settings["rows"]
    print(f"K={settings['num_classes']} k={settings['k']} r={settings['ratio']:g} "
          f"T={settings['temperature']:g}  teacher: {settings['logits']}  student: "
          f"{settings['student_logits']}" + (f"  (means over {rows} rows)" if rows > 1 else ""))
    width = max(len(label) for _, label, _ in ROWS)
    for key, label, section in ROWS:
        value = mean[key]
        shown = "inf" if value is None else f"{value:.6g}"
        print(f"{section}  {label:<{width}}  {shown:>12}")


def run_derive(args) -> int:
    from stingy.theory.derivations import run_all, write_latex  # sympy loads slowly
    from stingy.theory.symbolic import FAILED

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
