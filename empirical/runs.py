"""Run directories, checkpoints, random states, and the integrity of a run.

One directory per run, ``<out>/<name>`` with name ``<recipe>-<YYYYmmdd-HHMMSS>`` unless
given (a plain name: letters, digits, ``.``, ``_``, ``-``). It holds ``run.json`` (the run id,
its state ``running`` / ``finished`` / ``failed`` and the recipe, data and teacher
fingerprints), ``recipe.json`` (the resolved recipe), ``metrics.jsonl`` (one line per
epoch), ``checkpoint.pt`` (everything needed to resume, rewritten atomically every epoch),
``model.pt`` (the final weights plus what a student needs to use it as a teacher),
``summary.json`` and ``.lock``. An existing directory is never reused unless ``resume`` is
asked for (or ``--force``, which starts its run over); resuming refuses a folder whose state
cannot be established (no or an unreadable ``run.json`` beside run files, metrics that do not
read line by line) and a run whose fingerprints or run id differ, and starts a run with no
checkpoint over. A run refused before it begins removes only the folders it created, each
only while empty, so never one another run writes in. Every ``.pt`` file holds only tensors
and plain types and is read with ``torch.load(weights_only=True)``, so a planted pickle runs
no code.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import random
import time
import uuid
from pathlib import Path

import numpy as np
import torch

from stingy.io import (  # noqa: F401 - Diverged is raised by the training loops via runs
    Diverged,
    ExclusiveLock,
    file_digest,
    load_torch,
    plain_name,
    read_jsonl,
    remove_stale_temps,
    save_torch,
    strict_json,
    write_json,
    write_text,
)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
METRICS = "metrics.jsonl"
RECIPE = "recipe.json"
SUMMARY = "summary.json"
STATE = "run.json"
LOCK = ".lock"
RUN_FILES = (CHECKPOINT, METRICS, MODEL, SUMMARY, RECIPE)  # what starting over deletes


def check_run_name(name: str) -> str:
    """A run name is a plain folder name, so a run never writes outside ``--out``."""
    return plain_name(name, "--name")


def run_directory(out: str | Path, recipe_name: str, name: str | None, resume: bool,
                  replace: bool = False) -> tuple[Path, list[Path]]:
    """(the run's directory, the folders this call created, innermost first). A new run's
    directory is created here, and only if it does not exist yet (two writers cannot both
    create it); ``replace`` (``--force``) accepts an existing one, whose run is then started
    over. ValueError for a clash or a missing resume target."""
    out = Path(out)
    if resume or replace:
        flag = "--resume" if resume else "--force"
        if not name:
            raise ValueError(f"{flag} needs --name NAME (the run directory under --out)")
        directory = out / check_run_name(name)
        if resume and not directory.is_dir():
            raise ValueError(f"--resume: no run directory {directory} (check --out and --name)")
        if directory.is_dir():
            return directory, []
    name = check_run_name(f"{recipe_name}-{time.strftime('%Y%m%d-%H%M%S')}" if name is None
                          else name)
    directory = out / name
    missing = list(itertools.takewhile(lambda folder: not folder.exists(),
                                       (directory, *directory.parents)))
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        raise ValueError(f"run directory {directory} already exists; choose another --name or "
                         f"--out, pass --resume to continue it or --force to start it "
                         f"over") from None
    return directory, missing


def random_states(generators: dict[str, torch.Generator]) -> dict:
    """Every random state a run depends on (Python, NumPy, torch, CUDA and ours), as tensors
    and plain types, so a checkpoint loads with ``weights_only=True``."""
    version, python_state, gauss = random.getstate()
    key, numpy_state, position, has_gauss, cached = np.random.get_state()
    states = {
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"key": key, "state": torch.from_numpy(numpy_state.astype(np.int64)),
                  "pos": int(position), "has_gauss": int(has_gauss), "gauss": float(cached)},
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict, generators: dict[str, torch.Generator]) -> None:
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = states["numpy"]
    np.random.set_state((numpy["key"], numpy["state"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(states["torch"])
    for name, generator in generators.items():
        generator.set_state(states["generators"][name])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(directory: Path, *, epoch: int, model, optimizer, scheduler,
                    generators: dict, best_accuracy: float, run_id: str) -> None:
    """Atomically write the state after ``epoch`` epochs (1-based) to ``checkpoint.pt``."""
    save_torch(directory / CHECKPOINT, {
        "run_id": run_id,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "random": random_states(generators),
        "best_accuracy": best_accuracy,
    })


def load_checkpoint(directory: Path, run_id: str | None = None) -> dict:
    """The checkpoint of the run in ``directory``; ValueError when it belongs to another run."""
    state = load_torch(directory / CHECKPOINT, "--resume: checkpoint")
    if not isinstance(state, dict) or "epoch" not in state or "model" not in state:
        raise ValueError(f"--resume: {directory / CHECKPOINT} is not a checkpoint written by "
                         f"stingy")
    if run_id is not None and state.get("run_id") != run_id:
        raise ValueError(f"--resume: {directory / CHECKPOINT} belongs to another run "
                         f"(run id {state.get('run_id')!r}, this run is {run_id!r})")
    return state


def check_same_recipe(directory: Path, recipe) -> None:
    """Resuming with a different recipe (stingy.empirical.recipes.Recipe) would mix two runs:
    refuse."""
    path = directory / RECIPE
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        saved = None
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {path} is unreadable or not a recipe; start the run over "
                         f"with --force instead of --resume")
    recipe = recipe.to_table()
    if saved != recipe:
        changed = sorted(key for key in set(saved) | set(recipe) if saved.get(key) != recipe.get(key))
        raise ValueError(f"--resume: the recipe differs from the one in {path} "
                         f"(sections {', '.join(changed)}); resume with the same recipe and --set")


def read_metrics(directory: Path) -> list[dict]:
    """A resumed run's ``metrics.jsonl``, read strictly: a line that does not read is a
    ValueError naming the file and the line, and saying how to start over."""
    path = directory / METRICS
    try:
        return read_jsonl(path) if path.is_file() else []
    except ValueError as err:
        raise ValueError(f"--resume: {err}; repair it, or start the run over with --force "
                         f"instead of --resume") from None


def metrics_up_to(directory: Path, epoch: int) -> list[dict]:
    """The logged epochs 1..``epoch`` of a resumed run (later ones, logged before a kill
    cut off their checkpoint, are run again). Records that are not epochs 1..``epoch`` in
    order are refused with one line: resuming never truncates what it cannot explain."""
    records = read_metrics(directory)
    kept = [record.get("epoch") for record in records[:epoch]]
    if kept != list(range(1, epoch + 1)):
        raise ValueError(f"--resume: {directory / METRICS} logs epochs {kept}, not 1..{epoch} "
                         f"as its checkpoint says; start the run over with --force instead of "
                         f"--resume")
    return records[:epoch]


def rewrite_metrics(directory: Path, records: list[dict]) -> None:
    """Atomically replace ``metrics.jsonl`` with ``records`` (used when resuming)."""
    write_text(directory / METRICS, "".join(strict_json(record) + "\n" for record in records))


def save_model(path: Path, model, *, model_name: str, num_classes: int, dataset: str,
               recipe, test_accuracy: float) -> None:
    """The final weights with what is needed to rebuild the model (a teacher for ``distill``)."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    save_torch(path, {"model_name": model_name, "num_classes": num_classes, "dataset": dataset,
                      "state_dict": state, "recipe": recipe.to_table(), "test_accuracy": test_accuracy})


def load_model_file(path: str | Path) -> dict:
    """Read a ``model.pt`` (or a run directory holding one); ValueError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise ValueError(f"--teacher must be a model.pt file or a run directory holding one, "
                         f"got {str(path)!r} (not found)")
    saved = load_torch(path, "--teacher")
    if not isinstance(saved, dict) or "state_dict" not in saved or "model_name" not in saved:
        raise ValueError(f"--teacher {str(path)!r} is not a model file written by `stingy train`")
    return saved


def write_summary(directory: Path, summary: dict) -> None:
    write_json(directory / SUMMARY, summary)


# ----------------------------------------------------------------------------- integrity

def recipe_fingerprint(recipe) -> str:
    """sha256 (16 hex digits) of a recipe's settings (stingy.empirical.recipes.Recipe)."""
    return hashlib.sha256(strict_json(recipe.to_table(), sort_keys=True).encode()).hexdigest()[:16]


def dataset_fingerprint(dataset) -> str:
    """sha256 of the dataset's content: class names, images and labels of both splits."""
    digest = hashlib.sha256(json.dumps(list(dataset.classes)).encode())
    for array in (dataset.train_images, dataset.train_labels, dataset.test_images,
                  dataset.test_labels):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


def teacher_fingerprint(teacher: str | Path | None) -> str | None:
    if teacher is None:
        return None
    path = Path(teacher)
    return file_digest(path / MODEL if path.is_dir() else path)


def read_state(directory: Path) -> dict | None:
    """``run.json``, or None when the run never got that far (or it is unreadable)."""
    try:
        state = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def established_state(directory: Path) -> dict | None:
    """The state of a run to resume: its ``run.json``, or None for a folder holding none of a
    run's files (killed before its state was written: nothing to lose). A folder whose state
    cannot be established (``run.json`` missing beside run files, or unreadable) is a
    ValueError that says how to start over."""
    path = directory / STATE
    if not path.exists():
        present = [name for name in RUN_FILES if (directory / name).exists()]
        if not present:
            return None
        raise ValueError(f"--resume: {directory} holds {', '.join(present)} but no {STATE}, "
                         f"so what it holds cannot be checked; start the run over with --force "
                         f"instead of --resume (its run files are then replaced)")
    state = read_state(directory)
    if state is None or not isinstance(state.get("run_id"), str) \
            or not isinstance(state.get("fingerprints"), dict):
        raise ValueError(f"--resume: {path} is unreadable or not a run record; start the run "
                         f"over with --force instead of --resume (its run files are then "
                         f"replaced)")
    return state


def write_state(directory: Path, record: dict, **changes) -> dict:
    record = {**record, **changes,
             "updated": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    write_json(directory / STATE, record)
    return record


class RunLock:
    """The run's lock (``<run>/.lock``), taken before anything in the directory is written;
    a second live writer fails at once, a lock left by a dead process is taken over."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.lock = ExclusiveLock(directory / LOCK, f"run {directory}")
        remove_stale_temps(directory)

    def release(self) -> None:
        self.lock.release()


def begin_run(directory: Path, recipe, fingerprints: dict, resume: bool,
              restart_changed: bool = False) -> tuple[dict, bool]:
    """Mark the run ``running`` and return (state, whether to resume from a checkpoint).

    On resume the run's state must be established (:func:`established_state`), its metrics
    must read (:func:`read_metrics`) and its recipe and fingerprints must equal the recorded
    ones: a ValueError says what is wrong before the state changes, or with
    ``restart_changed`` the run starts over. A run with no checkpoint (killed or failed
    before its first) starts over.
    """
    previous = None
    if resume:
        try:
            previous = established_state(directory)
            if previous is not None:
                check_same_inputs(directory, recipe, fingerprints, previous)
                read_metrics(directory)  # refused before the run is marked running
        except ValueError:
            if not restart_changed:
                raise
            previous = None
    if previous is None or not (directory / CHECKPOINT).is_file():
        for stale in RUN_FILES:
            (directory / stale).unlink(missing_ok=True)
        previous = {"run_id": uuid.uuid4().hex, "fingerprints": fingerprints}
        resume = False
    return write_state(directory, previous, state="running"), resume


def check_same_inputs(directory: Path, recipe, fingerprints: dict, previous: dict) -> None:
    """The recipe and the recorded fingerprints of a resumed run equal this call's."""
    if (directory / RECIPE).is_file():
        check_same_recipe(directory, recipe)
    recorded = previous["fingerprints"]
    for key, value in fingerprints.items():
        if recorded.get(key) != value:
            raise ValueError(
                f"--resume: the {key} differs from the one the run started with "
                f"(fingerprint {recorded.get(key)}, now {value}); resume with the same "
                f"recipe, --set, --data and --teacher")
