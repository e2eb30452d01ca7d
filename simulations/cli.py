"""``stingy simulate``: parses the sweep's flags, runs :func:`stingy.simulations.run_sweep` and
prints the summary table and the verdicts (the files it writes: stingy.simulations.runner).

``--strict`` exits 1 when any verdict fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from stingy.settings import Number


def register(subparsers, common) -> None:
    parser = subparsers.add_parser(
        "simulate", parents=[common],
        help="synthetic task with an exact Bayes posterior: KD vs stingy KD sweep",
        description="Train many small students on a Gaussian task whose noisy-label posterior "
        "is exact, with every method and sparse ratio, and check the theory's predictions.")
    parser.add_argument("--config", help="TOML file overriding simulations/default.toml")
    parser.add_argument("--classes", type=int, help="number of classes C (default 100)")
    parser.add_argument("--noise", type=float, nargs="+", metavar="RATE",
                        help="label-noise rates (default 0 0.15 0.3)")
    parser.add_argument("--noise-kind", nargs="+", choices=["symmetric", "superclass"],
                        help="uniform over all classes, or within the superclass")
    parser.add_argument("--ratios", type=float, nargs="+", metavar="R", help="sparse ratios r")
    parser.add_argument("--temperature", type=float, help="distillation temperature T")
    parser.add_argument("--alpha", type=float, help="KD weight a")
    parser.add_argument("--seeds", type=int, help="seeds per configuration")
    parser.add_argument("--steps", type=int, help="training steps per student")
    parser.add_argument("--teacher", choices=["oracle", "trained"], help="teacher kind")
    parser.add_argument("--teacher-logit-range", type=float,
                        help="rescale the teacher's mean logit range to this (0 = exact)")
    parser.add_argument("--out", default="runs/simulate", help="output folder "
                        "(default: runs/simulate)")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit with code 1 when a verdict fails")
    parser.set_defaults(run=main)

    mechanism = subparsers.add_parser(
        "mechanism", parents=[common],
        help="mechanism sweep: steps, width, data size, label rank, alpha=1")
    mechanism.add_argument("--profile", choices=["quick", "full"], default="full",
                           help="sizes (full: about 10 min on 2 shared cores)")
    mechanism.add_argument("--out", default="runs/mechanism",
                           help="output folder (default: runs/mechanism)")
    mechanism.set_defaults(run=run_mechanism_command)

    for name, help_text, run in (
            ("separate", "check (e): kept mass at fixed noise, noise at fixed kept mass",
             run_separation_command),
            ("fixes", "within-M, tail-bucket, uniform-floor and sampled KD at alpha 0.9 and 1, "
             "three noise levels, short and long training, with a prediction written first",
             run_fixes_command),
            ("interventions", "the mechanism by intervention: the signal-to-drive ratio at "
             "fixed k, the logit gap capped; a prediction written first",
             run_interventions_command),
            ("robustness", "the mechanism's headlines under a trained teacher, SGD, T = 4 and "
             "superclass noise, each against the default; a prediction written first",
             run_robustness_command),
            ("gap-growth", "a linear student's kept-vs-dropped gap under gradient descent on "
             "the stingy target against T log t (the T6 conjecture); a prediction written "
             "first", run_gap_growth_command),
            ("harm-model", "fit harm on the signal-to-drive ratio, kept mass, steps and noise "
             "on half the cells, predict the other half and the CIFAR cells; a prediction "
             "written first", run_harm_model_command)):
        seeded = _add_seeded(subparsers, common, name, help_text, run)
    # the last of them, harm-model, also predicts the cells of a CIFAR sweep
    seeded.add_argument("--cifar-sweep", default="results/cifar10_sweep_cpu",
                        help="a CIFAR sweep folder whose cells the harm model predicts "
                        "(default: results/cifar10_sweep_cpu; left out when absent)")


def _add_seeded(subparsers, common, name: str, help_text: str, run):
    """A command with --seeds (task draws per setting) and --out runs/<name>."""
    parser = subparsers.add_parser(name, parents=[common], help=help_text)
    parser.add_argument("--seeds", type=int, default=5, help="seeds (task draws) per setting")
    parser.add_argument("--out", default=f"runs/{name}",
                        help=f"output folder (default: runs/{name})")
    parser.set_defaults(run=run)
    return parser


def run_mechanism_command(args) -> int:
    from stingy.simulations.mechanism import run_mechanism, write_mechanism, write_prediction
    from stingy.simulations.runner import format_verdicts

    write_prediction(args.out)
    result = run_mechanism(args.profile)
    write_mechanism(result, args.out)
    print(format_verdicts([dict(v, noise=0.3, noise_kind="symmetric", detail="")
                           for v in result["verdicts"]]))
    print(f"\nwall time {result['wall_s']:.1f} s; files in {args.out}")
    return 0


def _check_seeds(args) -> None:
    Number(2, integer=True).check(args.seeds, "--seeds")


def run_separation_command(args) -> int:
    from stingy.simulations.runner import format_verdicts
    from stingy.simulations.separation import run_separation, write_separation

    _check_seeds(args)
    result = run_separation(args.seeds)
    write_separation(result, args.out)
    print(format_verdicts(result["verdicts"]))
    print(f"\nwall time {result['wall_s']:.1f} s; files in {args.out}")
    return 0


def _run_predicted(args, run, write, label=lambda verdict: verdict["check"]) -> int:
    """Run an experiment that writes its prediction first; print its verdicts (each under
    ``label``) and how many predictions held."""
    from stingy.simulations.runner import format_verdicts

    _check_seeds(args)
    result = run(args.out, args.seeds)
    write(result, args.out)
    print(format_verdicts([{**v, "check": label(v)} for v in result["verdicts"]]))
    held = sum(v["prediction_held"] for v in result["verdicts"])
    print(f"\npredictions held: {held} of {len(result['verdicts'])}; wall time "
          f"{result['wall_s']:.1f} s; files in {args.out}")
    return 0


def run_fixes_command(args) -> int:
    from stingy.simulations.fixes import run_fixes, write_fixes

    return _run_predicted(args, run_fixes, write_fixes,
                          lambda v: f"{v['check']} a={v['alpha']} {v['length']}")


def run_interventions_command(args) -> int:
    from stingy.simulations.interventions import run_interventions, write_interventions

    return _run_predicted(args, run_interventions, write_interventions)


def run_robustness_command(args) -> int:
    from stingy.simulations.robustness import run_robustness, write_robustness

    return _run_predicted(args, run_robustness, write_robustness,
                          lambda v: f"{v['check']} ({v['condition']})")


def run_gap_growth_command(args) -> int:
    from stingy.simulations.gap_growth import run_gap_growth, write_gap_growth

    return _run_predicted(args, run_gap_growth, write_gap_growth)


def run_harm_model_command(args) -> int:
    from stingy.simulations.harm_model import run_harm_model, write_harm_model

    return _run_predicted(args, lambda out, seeds: run_harm_model(
        out, seeds, cifar_sweep=args.cifar_sweep), write_harm_model)


def main(args) -> int:
    from stingy.simulations.config import flag_keys, load_config
    from stingy.simulations.runner import failed_checks, format_verdicts, run_sweep
    from stingy.simulations.summary import format_table
    from stingy.simulations.verdicts import left_out_checks

    flags = {key: getattr(args, flag.lstrip("-").replace("-", "_"))
             for flag, key in flag_keys().items()}
    config = load_config(args.config, flags)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out must be a folder, got the file {args.out}")
    left_out = left_out_checks(config.distill.methods, config.distill.ratios,
                               config.intermediate_ratio)
    for check, reason in left_out.items():
        print(f"stingy simulate: check ({check}) is left out: it {reason}", file=sys.stderr)
    result = run_sweep(config, args.out, progress=not args.json)
    if args.json:
        print(json.dumps(result["verdicts"], indent=2))
    else:
        print(format_table(result["summary"]))
        print()
        print(format_verdicts(result["verdicts"]))
        print(f"\nwall time {result['wall_time_s']:.1f} s; files in {args.out}")
    failed = failed_checks(result["verdicts"])
    if args.strict and failed:
        print(f"stingy simulate: {len(failed)} verdict(s) failed: "
              + ", ".join(f"({v['check']}) noise {v['noise']}" for v in failed), file=sys.stderr)
        return 1
    return 0
