"""The machine a result was measured on: CPU model, cores, torch version, GPU, date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                  else os.cpu_count()),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": gpu,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def describe(info: dict) -> str:
    """One line: 'AMD EPYC, 2 cores, torch 2.13.0+cpu, no GPU'."""
    gpu = info.get("gpu") or "no GPU"
    return f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, {gpu}"


def git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` when it has uncommitted changes), or None."""
    try:
        run = {"capture_output": True, "text": True, "timeout": 10, "check": True,
               "cwd": Path(__file__).resolve().parent}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if commit and dirty else commit or None


def stamp() -> dict:
    """When and from which commit a record is written: {"written", "commit"}."""
    return {"written": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": git_commit()}


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the platform has none)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
