"""Run every benchmark; write a JSON file and a Markdown table for the README.

    stingy bench [--out runs/bench/benchmarks.json] [--quick] [--skip-simulation] [--threads N]

(:func:`run_benchmarks` is the library function behind the command.)

Benchmarks: the stingy KD loss against the reference's pattern (bench_kd_loss), the KD loss
from stored top-k rows at B=512, K=131072, k=64 against the dense path (bench_kd_loss_topk), the
default simulation sweep's wall time (benchmarks/bench_simulation.py), the CNN's CPU training
throughput (bench_throughput) and, when results/gpu_check.json exists, the GPU check's
time to 93% for the CIFAR-10 ResNet-18 teacher, images/s and TFLOP/s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from stingy.benchmarks import bench_kd_loss
from stingy.benchmarks.bench_kd_loss_topk import bench_kd_loss_topk
from stingy.benchmarks.bench_students import bench_students, students_markdown
from stingy.benchmarks.bench_throughput import bench_cnn_throughput
from stingy.formatting import fmt, percent
from stingy.io import write_json
from stingy.machine import describe, machine_info


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


def find_gpu_check(given: str | Path | None) -> Path:
    """The GPU check's JSON: ``given``, else results/gpu_check.json or results/gpu/gpu_check.json."""
    if given is not None:
        return Path(given)
    return next((Path(p) for p in ("results/gpu_check.json", "results/gpu/gpu_check.json")
                 if Path(p).is_file()), Path("results/gpu_check.json"))


def run_benchmarks(out: str | Path, *, quick: bool = False, skip_simulation: bool = False,
                   skip_topk: bool = False, threads: int | None = None,
                   gpu_check: str | Path | None = None, log=print) -> dict:
    """Time the KD loss, the CNN's CPU throughput and (unless skipped) the default simulation
    sweep; add the GPU check's numbers; write the result to ``out`` (JSON) and return it."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be an integer >= 1, got {threads}")
        torch.set_num_threads(threads)
    result = {"machine": machine_info()}
    log("kd_loss forward + backward ...")
    result["kd_loss"] = bench_kd_loss.run(min_run_time=0.1 if quick else 0.5)
    if not skip_topk:
        log("kd_loss_topk at B=512, K=131072, k=64 ...")
        result["kd_loss_topk"] = bench_kd_loss_topk(repeats=1 if quick else 3)
    log("CNN training throughput ...")
    result["cnn_throughput"] = bench_cnn_throughput(steps=5 if quick else 20)
    log("student throughput (bank, batched) ...")
    result["students"] = bench_students(images=256 if quick else 1024, epochs=1 if quick else 2)
    if not skip_simulation:
        log("default simulation sweep ...")
        result["simulation"] = bench_simulation_sweep(torch.get_num_threads())
    result["gpu_check"] = gpu_numbers(find_gpu_check(gpu_check))
    write_json(out, result)
    return result
