"""Wall time of the default `stingy simulate` sweep (not part of the test suite).

Runs the sweep of simulations/default.toml (or --config) into a fresh temporary folder, so no
finished setting is reused, and prints a table: wall time, per-setting time, students trained,
student-steps per second, CPU time of this process (time.process_time, all its threads;
less sensitive to other load than the wall time), torch threads and the machine's load average at start and end (the
target is under 2 minutes on 2 CPU cores; a loaded machine inflates the time). Writes the
numbers as JSON to --out. With --keep DIR the sweep's result files are kept there.

    python benchmarks/bench_simulation.py --out bench_simulation.json
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from stingy.io import write_json
from stingy.simulations.config import load_config
from stingy.simulations.runner import run_sweep
from stingy.simulations.sweep import student_specs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file for the measurements")
    parser.add_argument("--config", help="TOML override of simulations/default.toml")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--keep", help="folder to keep the sweep's result files in")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.keep) if args.keep else Path(scratch)
        start, cpu_start = time.perf_counter(), time.process_time()
        run_sweep(config, out, progress=True)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    load_end = os.getloadavg()
    settings = len(config.noise.rates) * len(config.noise.kinds)
    students = settings * len(student_specs(config))
    steps = config.student.steps
    result = {
        "benchmark": "default simulate sweep", "wall_time_s": wall, "cpu_time_s": cpu,
        "target_s": 120.0,
        "settings": settings, "students": students, "steps": steps,
        "student_steps_per_s": students * steps / wall,
        "seconds_per_setting": wall / settings, "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average_start": load_start,
        "load_average_end": load_end, "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    write_json(args.out, result)
    width = max(map(len, result))
    for key, value in result.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")


if __name__ == "__main__":
    main()
