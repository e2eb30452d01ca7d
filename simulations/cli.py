"""``stingy simulate``: the synthetic-task sweep, its summary and the theory's verdicts.

Files written to --out (atomically, via stingy.io):
  runs.csv / runs.json    one row per trained student: classes, noise, noise_kind, temperature,
                          alpha, method, ratio (NaN for dense methods), k, seed, accuracy,
                          log_loss, excess_log_loss (over the Bayes log-loss on the same clean test
                          set), teacher_agreement, accuracy_within_m (argmax over the teacher's M
                          equals the clean label, among test examples whose label is in M),
                          kept_mass (T2), signal_to_drive (T5), final_logit_gap (sbar_M - sbar_Mc
                          on the test set), plus bayes_accuracy, bayes_log_loss,
                          teacher_accuracy, teacher, noise_rate_realised. The last four sparse
                          metrics are NaN for methods without a kept set.
  summary.csv             per (noise, noise_kind, method, ratio): n_seeds, accuracy_mean,
                          accuracy_ci95_low/high (Student t over seeds), other metrics' means,
                          bayes_accuracy, teacher_accuracy.
  gap_trajectory.csv      step, noise, noise_kind, method, ratio, k, temperature, seed, phase
                          (train: the main students), logit_gap,
                          predicted_gap (the early drive prediction, see stingy.simulations.sweep).
  drive_rates.csv         per (seed, temperature, ratio, kept_sets true/shuffled): measured_rate
                          (first-step change of the probe gap / lr), predicted_rate (eNTK drive
                          with kept-set overlap), free_logit_rate (a T / k), mean_overlap
                          (stingy.simulations.drive_rate).
  verdicts.json           [{check, statement, predicted, measured, ci95, verdict, p_value, p_holm,
                          verdict_raw, verdict_holm, detail, noise, noise_kind}]: a, b, c-T,
                          c-eNTK, c-overlap, d per noise setting, e-noise across settings at equal
                          kept mass; Holm over the family.
  config.json             the exact settings, the setting hashes and the wall time.
  settings/<hash>.json    one finished noise setting; reused when --out is run again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from stingy.simulations.config import intermediate_ratio, load_config, read_setting, setting_hash
from stingy.simulations.summary import format_table, summarize
from stingy.simulations.sweep import run_setting
from stingy.simulations.training import SPARSE_METHODS, build_specs
from stingy.simulations.verdicts import all_verdicts
from stingy.io import write_csv, write_json

FLAGS = {"classes": "task.classes", "noise": "noise.rates", "noise_kind": "noise.kinds",
         "ratios": "distill.ratios", "temperature": "distill.temperature",
         "alpha": "distill.alpha", "seeds": "student.seeds", "steps": "student.steps",
         "teacher": "teacher.kind", "teacher_logit_range": "teacher.logit_range"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="synthetic task with an exact Bayes posterior: KD vs stingy KD sweep",
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
    parser.add_argument("--out", default="results/simulations", help="output folder")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    parser.set_defaults(run=main)

    mechanism = subparsers.add_parser(
        "mechanism", help="mechanism sweep: steps, width, data size, label rank, alpha=1")
    mechanism.add_argument("--profile", choices=["quick", "full"], default="full",
                           help="sizes (full: about 10 min on 2 shared cores)")
    mechanism.add_argument("--out", default="results/mechanism", help="output folder")
    mechanism.set_defaults(run=run_mechanism_command)

    separate = subparsers.add_parser(
        "separate", help="check (e): kept mass at fixed noise, noise at fixed kept mass")
    separate.add_argument("--seeds", type=int, default=5, help="seeds (task draws) per setting")
    separate.add_argument("--out", default="results/separation", help="output folder")
    separate.set_defaults(run=run_separation_command)


def progress_total(config: dict) -> int:
    """Training steps of one setting (the first-step rate check trains no probe)."""
    return config["student"]["steps"]


def simulate(config: dict, out: Path, quiet: bool = False) -> dict:
    """Run (or reuse) every noise setting, write all files, return the collected results."""
    start = time.time()
    settings = [(rate, kind) for kind in config["noise"]["kinds"]
                for rate in config["noise"]["rates"]]
    runs, trajectory, rates, hashes = [], [], [], {}
    bar = tqdm(total=len(settings) * progress_total(config), desc="simulate", unit="step",
               disable=quiet)
    for rate, kind in settings:
        key = setting_hash(config, rate, kind)
        hashes[f"{kind}:{rate}"] = key
        path = out / "settings" / f"{key}.json"
        result = read_setting(path)
        if result is not None:
            bar.update(progress_total(config))
        else:
            bar.set_postfix_str(f"noise {rate} {kind}")
            result = run_setting(config, rate, kind, bar)
            write_json(path, result)
        runs += result["runs"]
        trajectory += result["gap_trajectory"]
        rates += result["drive_rates"]
    bar.close()
    ratio = intermediate_ratio(config)
    verdicts = all_verdicts(runs, rates, ratio, config["checks"]["recovery_fraction"],
                            config["checks"]["no_deficit_tolerance"])
    summary = summarize(runs)
    write_csv(out / "runs.csv", runs)
    write_json(out / "runs.json", runs)
    write_csv(out / "summary.csv", summary)
    write_csv(out / "gap_trajectory.csv", trajectory)
    write_csv(out / "drive_rates.csv", rates)
    write_json(out / "verdicts.json", verdicts)
    students = len(build_specs(config["distill"]["methods"], config["distill"]["ratios"],
                               [config["distill"]["temperature"]], config["distill"]["alpha"],
                               config["student"]["seeds"], config["task"]["classes"]))
    write_json(out / "config.json", {
        "config": config, "setting_hashes": hashes, "intermediate_ratio": ratio,
        "students_per_setting": students, "wall_time_s": time.time() - start,
        "torch_threads": torch.get_num_threads(),
        "sparse_methods": list(SPARSE_METHODS)})
    return {"runs": runs, "summary": summary, "verdicts": verdicts,
            "wall_time_s": time.time() - start}


def format_verdicts(verdicts: list[dict]) -> str:
    lines = []
    for v in verdicts:
        low, high = v["ci95"]
        lines.append(f"({v['check']}) [{v['verdict'].upper()}] noise {v['noise']} "
                     f"{v['noise_kind']}: {v['statement']}; predicted {v['predicted']}, "
                     f"measured {v['measured']:.4f} [{low:.4f}, {high:.4f}]\n      {v['detail']}")
    return "\n".join(lines)


def run_mechanism_command(args) -> int:
    from stingy.simulations.mechanism import run_mechanism, write_mechanism

    result = run_mechanism(args.profile)
    write_mechanism(result, args.out)
    print(format_verdicts([dict(v, noise=0.3, noise_kind="symmetric", detail="")
                           for v in result["verdicts"]]))
    print(f"\nwall time {result['wall_s']:.1f} s; files in {args.out}")
    return 0


def run_separation_command(args) -> int:
    from stingy.simulations.separation import run_separation, write_separation

    if args.seeds < 2:
        raise ValueError(f"--seeds must be an integer >= 2, got {args.seeds}")
    result = run_separation(args.seeds)
    write_separation(result, args.out)
    print(format_verdicts(result["verdicts"]))
    print(f"\nwall time {result['wall_s']:.1f} s; files in {args.out}")
    return 0


def main(args) -> int:
    flags = {FLAGS[name]: getattr(args, name) for name in FLAGS}
    config = load_config(args.config, flags)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out must be a folder, got the file {args.out}")
    result = simulate(config, Path(args.out), quiet=args.json)
    if args.json:
        print(json.dumps(result["verdicts"], indent=2))
    else:
        print(format_table(result["summary"]))
        print()
        print(format_verdicts(result["verdicts"]))
        print(f"\nwall time {result['wall_time_s']:.1f} s; files in {args.out}")
    return 0
