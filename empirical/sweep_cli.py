"""``stingy sweep``: parse and print only; the work is in stingy.empirical.sweep.

    stingy sweep plan --profile NAME|PATH [--set KEY=VALUE ...] [--data PATH] [--out DIR]
                      [--device cpu|cuda]
    stingy sweep run --out DIR --index I [--lock-timeout SECONDS]
    stingy sweep collect --out DIR
    stingy sweep all --profile NAME|PATH [--set KEY=VALUE ...] [--data PATH] [--out DIR]
                     [--device D] [--budget-seconds S]
"""

from __future__ import annotations

import json

DEFAULT_OUT = "runs/sweep"


def _plan(args) -> int:
    from stingy.empirical.sweep import load_profile, plan_sweep

    profile = load_profile(args.profile, args.overrides)
    jobs = plan_sweep(profile, args.out, data=args.data, device=args.device)
    for index, job in enumerate(jobs):
        print(f"{index:4d}  {job['id']}")
    print(f"wrote {args.out}/plan.json: {len(jobs)} jobs; run each with "
          f"`stingy sweep run --out {args.out} --index I` (I = 0..{len(jobs) - 1}), then "
          f"`stingy sweep collect --out {args.out}`; on SLURM: `sbatch {args.out}/sweep.sbatch`")
    return 0


def _run(args) -> int:
    from stingy.empirical.sweep import run_index

    from stingy.settings import Number

    if args.lock_timeout is not None:
        Number(0, 1e9).check(args.lock_timeout, "--lock-timeout")
    result = run_index(args.out, args.index, lock_wait_seconds=args.lock_timeout)
    print(f"job {args.index} ({result['id']}) done")
    return 0


def _print_collected(collected: dict, out: str) -> None:
    for verdict in collected["verdicts"]:
        if "ci95" not in verdict:
            print(f"{verdict['model']:>12}: {verdict['verdict']} ({verdict['detail']})")
            continue
        low, high = verdict["ci95"]
        print(f"{verdict['model']:>12} noise={verdict['noise']} ({verdict['check']}) "
              f"{verdict['verdict']}, Holm {verdict.get('verdict_holm', '-')}: measured "
              f"{verdict['measured']:+.4f} [{low:+.4f}, {high:+.4f}]")
    for check in collected["prediction_check"]:
        if "spearman" in check:
            low, high = check["ci95"]
            print(f"{check['model']:>12} predicted against measured harm: Spearman "
                  f"{check['spearman']:+.2f} [{low:+.2f}, {high:+.2f}]")
    if collected["nasty"]:
        print("nasty teacher: " + json.dumps(collected["nasty"]))
    if collected["missing"]:
        failed = f" (failed: {', '.join(collected['failed'])})" if collected["failed"] else ""
        print(f"not finished: {', '.join(collected['missing'])}{failed}")
    print(f"wrote {out}/rows.csv, summary.csv, teachers.csv, verdicts.json, nasty.json, "
          "ablation.json, prediction_check.json")


def _collect(args) -> int:
    from stingy.empirical.sweep import collect

    _print_collected(collect(args.out), args.out)
    return 0


def _all(args) -> int:
    from stingy.empirical.sweep import load_profile, plan_sweep, run_all

    plan_sweep(load_profile(args.profile, args.overrides), args.out, data=args.data,
               device=args.device)
    _print_collected(run_all(args.out, budget_seconds=args.budget_seconds), args.out)
    return 0


def register(subparsers, common) -> None:
    sweep = subparsers.add_parser("sweep", help="CIFAR sweep over sparse ratio x T x seeds x "
                                  "student, sharded: plan, run --index I, collect (or all)")
    commands = sweep.add_subparsers(dest="sweep_command", metavar="STEP",
                                    parser_class=type(sweep))
    commands.required = True
    for name, run, text in (("plan", _plan, "write the job list"),
                            ("all", _all, "plan, run every job in order, collect")):
        parser = commands.add_parser(name, parents=[common], help=text)
        required = parser.add_argument_group("required arguments")
        required.add_argument("--profile", required=True, help="gpu-10min, cpu-30min, quick or "
                              "a .toml path")
        parser.add_argument("--set", dest="overrides", action="append", default=[],
                            metavar="KEY=VALUE", help="override a profile key, e.g. mode=loop "
                            "(repeatable; the value is read as TOML)")
        parser.add_argument("--data", default=None, help="CIFAR-10 archive or folder")
        parser.add_argument("--out", default=DEFAULT_OUT, help=f"sweep folder ({DEFAULT_OUT})")
        parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if "
                            "present)")
        parser.set_defaults(run=run)
    commands.choices["all"].add_argument("--budget-seconds", type=float, default=None,
                                         help="start no job after this many seconds")
    run_parser = commands.add_parser("run", parents=[common],
                                     help="run one job (idempotent, resumable)")
    run_parser.add_argument("--out", default=DEFAULT_OUT)
    required = run_parser.add_argument_group("required arguments")
    required.add_argument("--index", type=int, required=True, help="job index in plan.json")
    run_parser.add_argument("--lock-timeout", type=float, default=None, metavar="SECONDS",
                            help="how long to wait for a job (a teacher) another process is "
                            "running before giving up with one line (default: six hours)")
    run_parser.set_defaults(run=_run)
    collect = commands.add_parser("collect", parents=[common],
                                  help="merge finished jobs; verdicts")
    collect.add_argument("--out", default=DEFAULT_OUT)
    collect.set_defaults(run=_collect)
