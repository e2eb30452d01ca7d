"""Sub-commands of the figures layer.

    stingy reproduce [--profile quick|paper] [--out DIR] [--data PATH] [--force]
    stingy figures --results DIR [--out DIR]
    stingy lab [--out lab.html] [--results DIR]
"""

from __future__ import annotations

from pathlib import Path


def run_reproduce(args) -> int:
    from stingy.figures.reproduce import reproduce

    reproduce(profile=args.profile, out=args.out, data=args.data, force=args.force)
    return 0


def run_figures(args) -> int:
    from stingy.figures.draw import draw_all

    drawn, skipped = draw_all(args.results, args.out)
    out = Path(args.out) if args.out else Path(args.results) / "figures"
    print(f"drew {len(drawn)} figure(s) into {out}; skipped {len(skipped)} (inputs missing)")
    return 0


def run_lab(args) -> int:
    from stingy.figures.lab import write_lab

    print(f"wrote {write_lab(args.out, args.results)}")
    return 0


def register(subparsers) -> None:
    from stingy.figures.reproduce import profile_names

    reproduce = subparsers.add_parser(
        "reproduce", help="the main job: derivations, theory grid, simulations, CIFAR-10, "
        "figures and REPORT.md, reusing finished stages")
    reproduce.add_argument("--profile", default="quick", choices=profile_names(),
                           help="quick: CPU laptop, <= 15 min (default); paper: the reference's "
                           "configurations (GPU)")
    reproduce.add_argument("--out", default="results", help="results folder (default: results)")
    reproduce.add_argument("--data", default=None, help="CIFAR-10 archive or folder (default: "
                           "$STINGY_DATA, the data cache, or a download)")
    reproduce.add_argument("--force", action="store_true",
                           help="redo every stage even if its finished result exists")
    reproduce.set_defaults(run=run_reproduce)

    figures = subparsers.add_parser("figures", help="redraw every figure whose inputs exist "
                                    "in a results folder")
    figures.add_argument("--results", required=True, help="results folder (e.g. results)")
    figures.add_argument("--out", default=None, help="figure folder (default: RESULTS/figures)")
    figures.set_defaults(run=run_figures)

    lab = subparsers.add_parser("lab", help="write the teaching page: one self-contained HTML "
                                "file with live T1-T5 panels and a toy student")
    lab.add_argument("--out", default="lab.html", help="HTML file to write (default: lab.html)")
    lab.add_argument("--results", default=None, help="results folder whose simulation and CIFAR "
                     "accuracies and teacher logits the page embeds")
    lab.set_defaults(run=run_lab)
