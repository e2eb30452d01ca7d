"""Sub-command of the pipeline (it parses, calls stingy.pipeline and prints).

    stingy reproduce [--profile quick|paper|smoke] [--out DIR] [--data PATH] [--force]
                     [--reference DIR | --no-reference]
"""

from __future__ import annotations

import tomllib
from pathlib import Path

PROFILES_FILE = Path(__file__).with_name("profiles.toml")  # stingy.pipeline's profiles


def run_reproduce(args) -> int:
    from stingy.pipeline import reproduce

    # neither --reference nor --no-reference: reproduce's default reference run
    compare = {"reference": args.reference} if args.reference or args.no_reference else {}
    reproduce(profile=args.profile, out=args.out, data=args.data, force=args.force,
              log=lambda line: print(line, flush=True), **compare)
    return 0


def register(subparsers, common) -> None:
    with open(PROFILES_FILE, "rb") as f:
        profiles = list(tomllib.load(f))  # read here: stingy.pipeline loads torch
    reproduce = subparsers.add_parser(
        "reproduce", parents=[common], help="the main job: derivations, theory grid, "
        "simulations, CIFAR-10, figures and REPORT.md (with this run vs the reference run)")
    reproduce.add_argument("--profile", default="quick", choices=profiles,
                           help="quick: CPU laptop, <= 15 min (default); paper: the reference's "
                           "configurations (GPU); smoke: seconds, checks the pipeline only")
    reproduce.add_argument("--out", default="runs/reproduce",
                           help="run folder (default: runs/reproduce); finished stages in it "
                           "are reused")
    reproduce.add_argument("--data", default=None, help="CIFAR-10 archive or folder (default: "
                           "$STINGY_DATA, the data cache, or a download)")
    reproduce.add_argument("--force", action="store_true",
                           help="redo every stage even if its finished result exists")
    reference = reproduce.add_mutually_exclusive_group()
    reference.add_argument("--reference", type=Path, help="the reference run to compare with "
                           "(default: the checkout's committed results/)")
    reference.add_argument("--no-reference", action="store_true",
                           help="no comparison with a reference run")
    reproduce.set_defaults(run=run_reproduce)
