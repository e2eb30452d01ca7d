"""``stingy bench``: parses the options, runs :func:`stingy.benchmarks.run.run_benchmarks` and
prints its Markdown table."""

from __future__ import annotations


def run_bench(args) -> int:
    from stingy.benchmarks.bench_kd_loss_topk import markdown as topk_markdown  # on demand
    from stingy.benchmarks.run import markdown, run_benchmarks

    result = run_benchmarks(args.out, quick=args.quick, skip_simulation=args.skip_simulation,
                            skip_topk=args.skip_topk, threads=args.threads,
                            gpu_check=args.gpu_check, log=lambda line: print(line, flush=True))
    print(markdown(result))
    if result.get("kd_loss_topk"):
        print("\n" + topk_markdown(result["kd_loss_topk"]))
    print(f"wrote {args.out}")
    return 0


def register(subparsers, common) -> None:
    bench = subparsers.add_parser(
        "bench", parents=[common], help="speed benchmarks: the KD loss against the reference's "
        "pattern, CNN throughput, the default simulation sweep")
    bench.add_argument("--out", default="runs/bench/benchmarks.json",
                       help="JSON file (default: runs/bench/benchmarks.json)")
    bench.add_argument("--gpu-check", default=None, help="the GPU check's JSON (default: "
                       "results/gpu_check.json or results/gpu/gpu_check.json)")
    bench.add_argument("--quick", action="store_true", help="shorter timing runs")
    bench.add_argument("--skip-simulation", action="store_true",
                       help="leave out the simulation sweep (minutes)")
    bench.add_argument("--skip-topk", action="store_true",
                       help="leave out the vocabulary-scale top-k loss benchmark")
    bench.add_argument("--threads", type=int, default=None,
                       help="torch threads (default: torch's choice); 1 is steadier on a busy "
                       "machine")
    bench.set_defaults(run=run_bench)
