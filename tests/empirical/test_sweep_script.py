"""The prepared GPU script, run on CPU at toy size: results, provenance and the fetch copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .tiny import write_image_folder

SCRIPT = Path(__file__).resolve().parents[2] / "empirical" / "sweeps" / "run-gpu.sh"
TOY = """seeds = [0, 1]
ratios = [0.2, 0.5, 0.7]
noise = [0.0]
within_ratios = [0.5]
extras = []
student_models = ["cnn"]
student_epochs = 1
student_batch_size = 16
teacher_model = "cnn"
teacher_epochs = 1
teacher_batch_size = 16
mode = "loop"
"""


@pytest.mark.slow  # ~20 s: a fresh interpreter runs a whole toy sweep
def test_gpu_script_runs_a_toy_sweep_and_leaves_results_for_fetching(tmp_path):
    profile = tmp_path / "toy.toml"
    profile.write_text(TOY)
    images = write_image_folder(tmp_path / "images")
    env = {**os.environ, "PROFILE": str(profile), "DATA": str(images), "DEVICE": "cpu",
           "SWEEP_OUT": str(tmp_path / "sweep"), "OUT": str(tmp_path / "fetch"),
           "PYTHON": sys.executable, "STINGY_COMMIT": "abc", "OMP_NUM_THREADS": "1",
           "STINGY_CACHE": str(tmp_path / "cache"), "BENCH_IMAGES": "32", "MODE": "loop"}
    done = subprocess.run(["sh", str(SCRIPT)], check=False, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    provenance = json.loads((tmp_path / "sweep" / "provenance.json").read_text())
    assert provenance["commit"] == "abc" and provenance["device"] == "cpu"
    fetched = {path.name for path in (tmp_path / "fetch" / "sweep").iterdir()}
    assert {"rows.csv", "summary.csv", "verdicts.json", "provenance.json",
            "students_bench.json", "teacher-n0.0.json"} <= fetched
    plan = json.loads((tmp_path / "sweep" / "plan.json").read_text())
    assert plan["profile"]["mode"] == "loop"
