"""Sub-commands of the empirical layer.

    stingy train RECIPE [--set key=value ...] [--data PATH] [--out DIR] [--name NAME]
                        [--device cpu|cuda] [--resume | --force]
    stingy distill RECIPE --teacher TEACHER [--arch NAME] [same options]
    stingy teacher-theory --teacher MODEL_PT [--data PATH] [--out DIR] [--device cpu|cuda]
    stingy quick [--data PATH] [--out DIR] [--device cpu|cuda]
    stingy gpu-check [--data PATH | --toy] [--out DIR] [--budget-seconds S] ...
    stingy lm [--profile toy|default|gpu] [--set key=value ...] [--out DIR] [--cache DIR]

RECIPE is a packaged recipe name (a file stem in empirical/recipes) or a path to a TOML file.
TEACHER is a model.pt written by `stingy train` (or its run directory), a plain state_dict
``.pt`` with ``--arch NAME`` (a model of stingy.empirical.models), or precomputed logits
(``.npy``, one row per training image). Outputs go under runs/<command> by default.
"""

from __future__ import annotations

import json

from stingy.empirical.model_names import MODEL_NAMES
from stingy.empirical.recipes import packaged_recipes


def _run_options(parser) -> None:
    """The options `stingy train` and `stingy distill` share."""
    parser.add_argument("recipe", help="packaged recipe name (" + ", ".join(packaged_recipes())
                        + ") or a path to a .toml recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a recipe key, e.g. optim.lr=0.05 "
                        "(repeatable; the value is read as TOML)")
    parser.add_argument("--data", default=None, help="dataset archive or folder (default: the "
                        "data module's cache / download)")
    parser.add_argument("--out", default=f"runs/{parser.prog.split()[-1]}",
                        help="parent folder of run directories (default: runs/<command>)")
    parser.add_argument("--name", default=None, help="run directory name (default: "
                        "<recipe>-<timestamp>; required with --resume, --force and under torchrun)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    restart = parser.add_mutually_exclusive_group()
    restart.add_argument("--resume", action="store_true",
                         help="continue the run --out/--name from its last checkpoint")
    restart.add_argument("--force", action="store_true",
                         help="start the run --out/--name over, replacing its run files")


def run_train(args) -> int:
    from stingy.empirical.recipes import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.command == "train" and recipe.needs_teacher:
        raise ValueError(f"recipe {args.recipe!r} uses method {recipe.method.name!r}, "
                         f"which needs a teacher: use `stingy distill {args.recipe} --teacher ...`")
    if args.command == "distill" and not recipe.needs_teacher:
        raise ValueError(f"recipe {args.recipe!r} trains from scratch: use `stingy train`")
    from stingy.empirical.engine import RunControl
    from stingy.empirical.train import train_recipe

    summary = train_recipe(recipe, dataset=args.data, out=args.out, name=args.name,
                           device=args.device, resume=args.resume, teacher=args.teacher,
                           teacher_arch=args.arch, control=RunControl(on_epoch=_print_epoch),
                           restart="always" if args.force else "never")
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


def run_gpu_check(args) -> int:
    from stingy.empirical.gpu_check import run_gpu_check as gpu_check

    gpu_check(args.out, data=args.data, budget_seconds=args.budget_seconds, commit=args.commit,
              device=args.device, teacher_epochs=args.teacher_epochs,
              student_epochs=args.student_epochs, compile=args.compile, toy=args.toy,
              log=lambda line: print(line, flush=True))
    return 0


def register(subparsers, common) -> None:
    train = subparsers.add_parser("train", parents=[common],
                                  help="train a model from a recipe (from scratch)")
    _run_options(train)
    train.set_defaults(run=run_train, teacher=None, arch=None)

    distill = subparsers.add_parser("distill", parents=[common], help="train a student from a teacher: normal, "
                                    "stingy, within-M, reversed, nasty-teacher or DAFL")
    _run_options(distill)
    required = distill.add_argument_group("required arguments")
    required.add_argument("--teacher", required=True, help="the teacher: a model.pt of `stingy "
                          "train` (or its run directory), a state_dict .pt with --arch, or "
                          "logits .npy (one row per training image)")
    distill.add_argument("--arch", default=None, help="the teacher's architecture, required when "
                         "--teacher is a plain state_dict (" + ", ".join(MODEL_NAMES) + ")")
    distill.set_defaults(run=run_train)

    theory = subparsers.add_parser("teacher-theory", parents=[common], help="T2 kept mass, T3 approximation "
                                   "error, T5 signal-to-drive of a trained teacher's test logits")
    required = theory.add_argument_group("required arguments")
    required.add_argument("--teacher", required=True, help="the teacher's model.pt")
    theory.add_argument("--data", default=None, help="dataset archive or folder")
    theory.add_argument("--out", default="runs/teacher-theory",
                        help="output folder (default: runs/teacher-theory)")
    theory.add_argument("--device", default=None, help="cpu or cuda")
    theory.set_defaults(run=run_teacher_theory)

    quick = subparsers.add_parser("quick", parents=[common], help="CPU profile: small CNN teacher, then scratch, "
                                  "normal, stingy and within-M KD students (<= 10 min, 2 cores)")
    quick.add_argument("--data", default=None, help="CIFAR-10 archive or folder")
    quick.add_argument("--out", default="runs/quick", help="output folder (default: runs/quick)")
    quick.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    quick.set_defaults(run=run_quick)

    gpu = subparsers.add_parser("gpu-check", parents=[common], help="one-GPU check: a fast "
                                "ResNet-18 teacher, then the reference's students in a budget")
    source = gpu.add_mutually_exclusive_group()
    source.add_argument("--data", default=None, help="CIFAR-10 archive or folder")
    source.add_argument("--toy", action="store_true",
                        help="synthetic data, CNN models, 1 epoch each: checks the pipeline")
    gpu.add_argument("--out", default="runs/gpu-check",
                     help="a new or empty output folder (default: runs/gpu-check)")
    gpu.add_argument("--budget-seconds", type=float, default=540.0,
                     help="wall-clock budget from start, data loading included (default 540)")
    gpu.add_argument("--commit", default=None, help="git commit to record (default: git)")
    gpu.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    gpu.add_argument("--teacher-epochs", type=int, default=None,
                     help="override the teacher recipe's epochs (40)")
    gpu.add_argument("--student-epochs", type=int, default=15, help="student epochs (15)")
    gpu.add_argument("--compile", action="store_true", help="torch.compile the models")
    gpu.set_defaults(run=run_gpu_check)

    from stingy.empirical import lm_cli, sweep_cli  # each registers its own sub-commands

    sweep_cli.register(subparsers, common)
    lm_cli.register(subparsers, common)
