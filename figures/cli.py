"""Sub-commands of the figures layer (they parse, call the library and print).

    stingy reproduce [--profile quick|paper|smoke] [--out DIR] [--data PATH] [--force]
                     [--reference DIR | --no-reference]
    stingy figures --results DIR [--out DIR]
    stingy lab [--out runs/lab/lab.html] [--results DIR]
"""

from __future__ import annotations

from pathlib import Path

import tomllib


def run_reproduce(args) -> int:
    from stingy.figures.reproduce import reproduce

    # neither --reference nor --no-reference: reproduce's default reference run
    compare = {"reference": args.reference} if args.reference or args.no_reference else {}
    reproduce(profile=args.profile, out=args.out, data=args.data, force=args.force,
              log=lambda line: print(line, flush=True), **compare)
    return 0


def run_figures(args) -> int:
    from stingy.figures.draw import draw_all

    drawn, skipped = draw_all(args.results, args.out)
    print(f"drew {len(drawn)} figure(s) into {args.out}; skipped {len(skipped)} (inputs missing)")
    return 0


def run_lab(args) -> int:
    from stingy.figures.lab import write_lab

    print(f"wrote {write_lab(args.out, args.results)}")
    return 0


def register(subparsers, common) -> None:
    with open(Path(__file__).with_name("profiles.toml"), "rb") as f:
        profiles = list(tomllib.load(f))  # stingy.figures.reproduce's, read here: it loads torch
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

    figures = subparsers.add_parser("figures", parents=[common], help="redraw every figure "
                                    "whose inputs exist in a results folder")
    required = figures.add_argument_group("required arguments")
    required.add_argument("--results", required=True, help="results folder (e.g. results)")
    figures.add_argument("--out", default="runs/figures",
                         help="figure folder (default: runs/figures)")
    figures.set_defaults(run=run_figures)

    lab = subparsers.add_parser("lab", parents=[common], help="write the teaching page: one "
                                "self-contained HTML file with live T1-T5 panels and a toy "
                                "student")
    lab.add_argument("--out", default="runs/lab/lab.html",
                     help="HTML file to write (default: runs/lab/lab.html)")
    lab.add_argument("--results", default=None, help="results folder whose simulation and CIFAR "
                     "accuracies and teacher logits the page embeds")
    lab.set_defaults(run=run_lab)
