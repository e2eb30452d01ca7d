"""Run every benchmark; write a JSON file and print a Markdown table for the README.

    python -m stingy.benchmarks.run [--out results/benchmarks.json] [--quick] [--skip-simulation]

Benchmarks: the stingy KD loss against the reference's pattern (bench_kd_loss), the KD loss
from stored top-k rows at B=512, K=131072, k=64 against the dense path (bench_kd_loss_topk), the
default simulation sweep's wall time (benchmarks/bench_simulation.py), the CNN's CPU training
throughput (bench_throughput) and, when results/gpu_check.json exists, the GPU check's
time to 93% for the CIFAR-10 ResNet-18 teacher, images/s and TFLOP/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from stingy.benchmarks import bench_kd_loss
from stingy.benchmarks.bench_kd_loss_topk import bench_kd_loss_topk
from stingy.benchmarks.bench_kd_loss_topk import markdown as topk_markdown
from stingy.benchmarks.bench_students import bench_students, students_markdown
from stingy.benchmarks.bench_throughput import bench_cnn_throughput
from stingy.figures.machine import describe, machine_info
from stingy.figures.report import fmt, percent
from stingy.io import write_json


def bench_simulation_sweep(threads: int) -> dict:
    """Wall time of the default simulation sweep: runs the simulations layer's
    benchmarks/bench_simulation.py (a fresh sweep, nothing reused) and returns its JSON."""
    script = Path(__file__).with_name("bench_simulation.py")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "bench_simulation.json"
        subprocess.run([sys.executable, str(script), "--out", str(out), "--threads",
                        str(threads)], check=True, cwd=script.parents[1])
        return json.loads(out.read_text())


def gpu_numbers(path: Path) -> dict | None:
    """The GPU check's headline numbers (empirical/gpu_check.py writes the file)."""
    if not path.is_file():
        return None
    gpu = json.loads(path.read_text())
    teacher = gpu.get("teacher") or {}
    reached = teacher.get("time_to_93") or {}
    return {"device": gpu.get("device_name", gpu.get("device")), "date": gpu.get("date"),
            "commit": gpu.get("commit"), "toy": gpu.get("toy"),
            "teacher_test_accuracy": teacher.get("test_accuracy"),
            "teacher_seconds_to_93": reached.get("train_seconds"),
            "teacher_images_per_second": teacher.get("images_per_second"),
            "teacher_tflops_per_second": teacher.get("tflops_per_second")}


def markdown(result: dict) -> str:
    machine = result["machine"]
    lines = [f"Machine: {describe(machine)}, {machine['torch_threads']} torch thread(s); "
             f"{machine['date']}.", "",
             "| batch | K | k | ours (us) | reference (us) | copy (us) | reference / ours "
             "| ours / copy |", "|---|---|---|---|---|---|---|---|"]
    for row in result["kd_loss"]:
        lines.append(f"| {row['batch']} | {row['num_classes']} | {row['k']} | "
                     f"{row['ours_us']:.1f} | {row['reference_us']:.1f} | {row['copy_us']:.1f} | "
                     f"{row['reference_over_ours']:.2f} | {row['ours_over_copy']:.0f} |")
    lines += ["", "| benchmark | value |", "|---|---|"]
    throughput = result.get("cnn_throughput")
    if throughput:
        lines.append(f"| CNN training, CPU, batch {throughput['batch']} (images/s) | "
                     f"{throughput['images_per_second']:.0f} |")
    simulation = result.get("simulation")
    if simulation:
        lines.append(f"| default simulation sweep, {simulation['students']} students "
                     f"(wall s) | {simulation['wall_time_s']:.1f} |")
    for key, value in (result.get("gpu_check") or {}).items():
        if "accuracy" in key:
            key, value = key + "_%", percent(value)
        shown = "not reached" if value is None and "to_93" in key else fmt(value, 2)
        lines.append(f"| GPU check: {key.replace('_', ' ')} | {shown} |")
    if result.get("students"):
        lines += ["", students_markdown(result["students"])]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks.json")
    parser.add_argument("--gpu-check", default=None, help="the GPU check's JSON (default: "
                        "results/gpu_check.json or results/gpu/gpu_check.json)")
    parser.add_argument("--quick", action="store_true", help="shorter timing runs")
    parser.add_argument("--skip-simulation", action="store_true")
    parser.add_argument("--skip-topk", action="store_true",
                        help="skip the vocabulary-scale top-k loss benchmark")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 is steadier on a busy "
                        "machine")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    result = {"machine": machine_info()}
    print("kd_loss forward + backward ...", flush=True)
    result["kd_loss"] = bench_kd_loss.run(min_run_time=0.1 if args.quick else 0.5)
    if not args.skip_topk:
        print("kd_loss_topk at B=512, K=131072, k=64 ...", flush=True)
        result["kd_loss_topk"] = bench_kd_loss_topk(repeats=1 if args.quick else 3)
    print("CNN training throughput ...", flush=True)
    result["cnn_throughput"] = bench_cnn_throughput(steps=5 if args.quick else 20)
    print("student throughput (bank, batched) ...", flush=True)
    result["students"] = bench_students(images=256 if args.quick else 1024,
                                        epochs=1 if args.quick else 2)
    if not args.skip_simulation:
        print("default simulation sweep ...", flush=True)
        result["simulation"] = bench_simulation_sweep(torch.get_num_threads())
    gpu_check = args.gpu_check or next(
        (p for p in ("results/gpu_check.json", "results/gpu/gpu_check.json") if Path(p).is_file()),
        "results/gpu_check.json")
    result["gpu_check"] = gpu_numbers(Path(gpu_check))
    write_json(args.out, result)
    print(markdown(result))
    if result.get("kd_loss_topk"):
        print("\n" + topk_markdown(result["kd_loss_topk"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
