"""Sub-commands of the figures layer (they parse, call the library and print).

    stingy figures --results DIR [--out DIR]
    stingy lab [--out runs/lab/lab.html] [--results DIR]
"""

from __future__ import annotations


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
