"""Sub-commands of the empirical layer.

    stingy train RECIPE [--set key=value ...] [--data PATH] [--out DIR] [--name NAME]
                        [--device cpu|cuda] [--resume]
    stingy distill RECIPE --teacher MODEL_PT [same options]
    stingy teacher-theory --teacher MODEL_PT [--data PATH] [--out DIR] [--device cpu|cuda]
    stingy quick [--data PATH] [--out DIR] [--device cpu|cuda]

RECIPE is a packaged recipe name (a file stem in empirical/recipes) or a path to a TOML file.
"""

from __future__ import annotations

import json

from stingy.empirical.recipes import load_recipe, needs_teacher, packaged_recipes


def _run_options(parser, teacher_required: bool) -> None:
    parser.add_argument("recipe", help="packaged recipe name (" + ", ".join(packaged_recipes())
                        + ") or a path to a .toml recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a recipe key, e.g. optim.lr=0.05 "
                        "(repeatable; the value is read as TOML)")
    parser.add_argument("--data", default=None, help="dataset archive or folder (default: the "
                        "data module's cache / download)")
    parser.add_argument("--out", default="runs", help="parent folder of run directories "
                        "(default: runs)")
    parser.add_argument("--name", default=None, help="run directory name (default: "
                        "<recipe>-<timestamp>)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run --out/--name from its last checkpoint")
    parser.add_argument("--teacher", required=teacher_required, default=None,
                        help="the teacher's model.pt (or its run directory)")


def run_train(args) -> int:
    recipe = load_recipe(args.recipe, args.overrides)
    if args.command == "train" and needs_teacher(recipe):
        raise ValueError(f"recipe {args.recipe!r} uses method {recipe['method']['name']!r}, "
                         f"which needs a teacher: use `stingy distill {args.recipe} --teacher ...`")
    if args.command == "distill" and not needs_teacher(recipe):
        raise ValueError(f"recipe {args.recipe!r} trains from scratch: use `stingy train`")
    from stingy.empirical.train import train_recipe

    summary = train_recipe(recipe, data=args.data, out=args.out, name=args.name,
                           device=args.device, resume=args.resume, teacher=args.teacher,
                           on_epoch=_print_epoch)
    print(json.dumps(summary, indent=2))
    return 0


def _print_epoch(record: dict) -> None:
    extra = f" logit_gap {record['logit_gap']:.3f}" if "logit_gap" in record else ""
    print(f"epoch {record['epoch']}: train_loss {record['train_loss']:.4f} "
          f"test_accuracy {record['test_accuracy']:.4f} ({record['seconds']:.1f} s){extra}",
          flush=True)


def run_teacher_theory(args) -> int:
    from stingy.empirical.real_teacher_theory import teacher_theory

    result = teacher_theory(args.teacher, data=args.data, out=args.out, device=args.device)
    print(json.dumps(result["reference"], indent=2))
    print(f"wrote {args.out}/teacher_theory.csv and teacher_theory.json")
    return 0


def run_quick(args) -> int:
    from stingy.empirical.quick import run_quick_profile

    rows = run_quick_profile(data=args.data, out=args.out, device=args.device)
    for row in rows:
        print(f"{row['method']:>10} {row['student']:>6}  test_accuracy {row['test_accuracy']:.4f}"
              f"  ({row['seconds']:.0f} s)")
    print(f"wrote {args.out}/summary.json, summary.csv, teacher_theory.csv, teacher_logits.npz")
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a model from a recipe (from scratch)")
    _run_options(train, teacher_required=False)
    train.set_defaults(run=run_train)

    distill = subparsers.add_parser("distill", help="train a student from a teacher: normal, "
                                    "stingy, within-M, reversed, nasty-teacher or DAFL")
    _run_options(distill, teacher_required=True)
    distill.set_defaults(run=run_train)

    theory = subparsers.add_parser("teacher-theory", help="T2 kept mass, T3 approximation "
                                   "error, T5 signal-to-drive of a trained teacher's test logits")
    theory.add_argument("--teacher", required=True, help="the teacher's model.pt")
    theory.add_argument("--data", default=None, help="dataset archive or folder")
    theory.add_argument("--out", default="out/teacher-theory", help="output folder")
    theory.add_argument("--device", default=None, help="cpu or cuda")
    theory.set_defaults(run=run_teacher_theory)

    quick = subparsers.add_parser("quick", help="CPU profile: small CNN teacher, then scratch, "
                                  "normal, stingy and within-M KD students (<= 10 min, 2 cores)")
    quick.add_argument("--data", default=None, help="CIFAR-10 archive or folder")
    quick.add_argument("--out", default="out/quick", help="output folder")
    quick.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    quick.set_defaults(run=run_quick)

    from stingy.empirical import sweep_cli  # the sweep registers its own sub-commands

    sweep_cli.register(subparsers)
