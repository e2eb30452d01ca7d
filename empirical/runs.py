"""Run directories, checkpoints and random states.

One directory per run, ``<out>/<name>`` with name ``<recipe>-<YYYYmmdd-HHMMSS>`` unless
given. It holds ``recipe.json`` (the resolved recipe), ``metrics.jsonl`` (one line per
epoch), ``checkpoint.pt`` (everything needed to resume, rewritten atomically every epoch),
``model.pt`` (the final weights plus what a student needs to use it as a teacher) and
``summary.json``. An existing directory is never reused unless ``resume`` is asked for.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from stingy.io import read_jsonl, save_torch, write_json, write_text

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.jsonl"
RECIPE = "recipe.json"
SUMMARY = "summary.json"


def run_directory(out: str | Path, recipe_name: str, name: str | None, resume: bool,
                  create: bool = True) -> Path:
    """The run's directory (created if new and ``create``); ValueError for a clash or a
    missing resume target."""
    out = Path(out)
    if resume:
        if not name:
            raise ValueError("--resume needs --name NAME (the run directory under --out to resume)")
        directory = out / name
        if not (directory / CHECKPOINT).is_file():
            raise ValueError(f"--resume: no checkpoint at {directory / CHECKPOINT} "
                             f"(check --out and --name)")
        return directory
    name = name or f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    directory = out / name
    if directory.exists():
        raise ValueError(f"run directory {directory} already exists; choose another --name or "
                         f"--out, or pass --resume to continue it")
    if create:
        directory.mkdir(parents=True)
    return directory


def random_states(generators: dict[str, torch.Generator]) -> dict:
    """Every random state a run depends on: Python, NumPy, torch (CPU, CUDA) and ours."""
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict, generators: dict[str, torch.Generator]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    for name, generator in generators.items():
        generator.set_state(states["generators"][name])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(directory: Path, *, epoch: int, model, optimizer, scheduler,
                    generators: dict, best_accuracy: float) -> None:
    """Atomically write the state after ``epoch`` epochs (1-based) to ``checkpoint.pt``."""
    save_torch(directory / CHECKPOINT, {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "random": random_states(generators),
        "best_accuracy": best_accuracy,
    })


def load_checkpoint(directory: Path) -> dict:
    return torch.load(directory / CHECKPOINT, map_location="cpu", weights_only=False)


def check_same_recipe(directory: Path, recipe: dict) -> None:
    """Resuming with a different recipe would mix two runs: refuse."""
    saved = json.loads((directory / RECIPE).read_text())
    if saved != json.loads(json.dumps(recipe)):
        changed = sorted(key for key in set(saved) | set(recipe) if saved.get(key) != recipe.get(key))
        raise ValueError(f"--resume: the recipe differs from the one in {directory / RECIPE} "
                         f"(sections {', '.join(changed)}); resume with the same recipe and --set")


def metrics_up_to(directory: Path, epoch: int) -> list[dict]:
    """The logged epochs <= ``epoch`` (a kill after logging but before the checkpoint
    would otherwise leave an epoch twice)."""
    path = directory / METRICS
    if not path.is_file():
        return []
    return [record for record in read_jsonl(path) if record["epoch"] <= epoch]


def rewrite_metrics(directory: Path, records: list[dict]) -> None:
    """Atomically replace ``metrics.jsonl`` with ``records`` (used when resuming)."""
    write_text(directory / METRICS, "".join(json.dumps(record) + "\n" for record in records))


def save_model(path: Path, model, *, model_name: str, num_classes: int, dataset: str,
               recipe: dict, test_accuracy: float) -> None:
    """The final weights with what is needed to rebuild the model (a teacher for ``distill``)."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    save_torch(path, {"model_name": model_name, "num_classes": num_classes, "dataset": dataset,
                      "state_dict": state, "recipe": recipe, "test_accuracy": test_accuracy})


def load_model_file(path: str | Path) -> dict:
    """Read a ``model.pt`` (or a run directory holding one); ValueError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise ValueError(f"--teacher must be a model.pt file or a run directory holding one, "
                         f"got {str(path)!r} (not found)")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or "state_dict" not in saved or "model_name" not in saved:
        raise ValueError(f"--teacher {str(path)!r} is not a model file written by `stingy train`")
    return saved


def write_summary(directory: Path, summary: dict) -> None:
    write_json(directory / SUMMARY, summary)
