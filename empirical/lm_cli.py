"""The ``stingy lm`` sub-command (it parses, calls stingy.empirical.lm.run_lm and prints).

    stingy lm [--profile toy|default|gpu] [--set key=value ...] [--out DIR] [--cache DIR]
              [--device cpu|cuda]
"""

from __future__ import annotations


def run_lm_command(args) -> int:
    from stingy.empirical.lm_settings import load_lm_settings

    settings = load_lm_settings(args.profile, args.overrides)
    from stingy.empirical.data import default_cache_dir
    from stingy.empirical.lm import run_lm

    cache = args.cache or default_cache_dir() / "lm"
    result = run_lm(settings, args.out, cache, device=args.device,
                    log=lambda line: print(line, flush=True))
    teacher = result["teacher"]
    print(f"{'teacher':>20}  cross-entropy {teacher['cross_entropy']:.3f}  ECE "
          f"{teacher['ece']:.3f}")
    for row in result["summary"]:
        print(f"{row['student']:>20}  cross-entropy {row['cross_entropy']:.3f}  KL "
              f"{row['kl_to_teacher']:.3f}  agreement {row['top1_agreement']:.3f}  ECE "
              f"{row['ece']:.3f}  ({row['seeds']} seeds)")
    for verdict in result["verdicts"]:
        print(f"{verdict['check']} {verdict['student']}: {verdict['outcome']} (predicted "
              f"{verdict['predicted']})")
    print(f"wrote {args.out} in {result['wall_s']:.0f} s")
    return 0


def register(subparsers, common) -> None:
    lm = subparsers.add_parser("lm", parents=[common], help="sparse logits on real text: a "
                               "small LM distilled from stored top-k and sampled teacher rows")
    lm.add_argument("--profile", default="default", help="toy (seconds), default (about 15 "
                    "min on 2 CPU cores) or gpu (default: default)")
    lm.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="override a setting, e.g. distill.seeds=5 "
                    "(repeatable; the value is read as TOML)")
    lm.add_argument("--out", default="runs/lm", help="results folder (default: runs/lm)")
    lm.add_argument("--cache", default=None, help="tokenizer, teacher and rows cache "
                    "(default: $STINGY_CACHE/lm, else ~/.cache/stingy/lm)")
    lm.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    lm.set_defaults(run=run_lm_command)
