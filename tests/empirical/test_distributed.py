"""Training under torchrun: 2 CPU processes, gloo backend, DistributedDataParallel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from stingy.io import read_jsonl

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    import torch.distributed as dist
    from stingy.empirical.engine import fit
    from stingy.empirical.models import build_model
    from stingy.empirical.recipes import load_recipe
    from tests.empirical.tiny import TINY, tiny_dataset

    torch.set_num_threads(1)
    out = sys.argv[1]
    os.makedirs(f"{out}/ddp", exist_ok=True)
    rank = int(os.environ["RANK"])
    torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
    student = build_model("cnn", 10)
    summary = fit(load_recipe("cifar10-cnn-scratch", TINY), tiny_dataset(), student, None,
                  f"{out}/ddp")
    checksum = sum(float(v.double().sum()) for v in student.state_dict().values())
    with open(f"{out}/rank{dist.get_rank()}.json", "w") as f:
        json.dump({"world_size": summary["world_size"], "checksum": checksum,
                   "test_accuracy": summary["test_accuracy"]}, f)
""")


def free_port() -> int:
    """A TCP port free now, so that two test runs on one machine do not collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_gloo_processes_train_one_model_in_step(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(free_port()), str(script), str(tmp_path / "runs")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "runs" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
    assert ranks[0]["test_accuracy"] == ranks[1]["test_accuracy"]
    records = read_jsonl(tmp_path / "runs" / "ddp" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]          # written once, by rank 0
    assert all(r["images"] == 48 for r in records)          # each image once per epoch
