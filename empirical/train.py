"""One training run from a recipe: load the data, build the models, pick the run directory,
then train (``engine.fit``) or distil without data (``stingy.empirical.dafl``).

Used by ``stingy train`` / ``stingy distill``, the quick profile and the GPU check.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import numpy as np
import torch

from stingy.empirical import data as data_module
from stingy.empirical.engine import (
    DeviceData,
    RunControl,
    accuracy_and_loss,
    distributed_context,
    fit,
    normalisation,
    predict,
)
from stingy.empirical.models import build_model
from stingy.empirical.recipes import Recipe
from stingy.empirical.runs import (
    CHECKPOINT,
    LOCK,
    MODEL,
    RECIPE,
    Diverged,
    RunLock,
    begin_run,
    check_same_recipe,
    dataset_fingerprint,
    load_model_file,
    recipe_fingerprint,
    run_directory,
    save_model,
    teacher_fingerprint,
    write_state,
    write_summary,
)
from stingy.io import TEMP_SUFFIX, write_json


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | None) -> torch.device:
    """``None`` picks CUDA when present; asking for CUDA without one is a ValueError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = str(device)
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    return torch.device(device)


def load_teacher(path: str | Path, num_classes: int,
                 arch: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The model saved by a finished run (``model.pt``), in eval mode, and its metadata; with
    ``arch``, a plain state_dict ``.pt`` (read with ``weights_only=True``) for that model."""
    if arch is not None:
        return load_state_dict_teacher(path, num_classes, arch)
    saved = load_model_file(path)
    if saved.get("num_classes") != num_classes:
        raise ValueError(f"--teacher has {saved.get('num_classes')!r} classes but the recipe's "
                         f"dataset has {num_classes}")
    model = build_model(saved["model_name"], saved["num_classes"])
    try:
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"--teacher {str(path)!r}: its weights do not fit a "
                         f"{saved['model_name']!r} ({str(err).splitlines()[0][:200]})") from None
    info = {key: saved.get(key) for key in ("model_name", "num_classes", "dataset",
                                            "test_accuracy")}
    return model.eval(), info


def load_state_dict_teacher(path: str | Path, num_classes: int,
                            arch: str) -> tuple[torch.nn.Module, dict]:
    """``build_model(arch)`` with the state_dict at ``path``; ValueError when it does not fit."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--teacher must be a state_dict .pt file with --arch, "
                         f"got {str(path)!r} (not found)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        raise ValueError(f"--teacher {str(path)!r} is not a torch state_dict file "
                         f"({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--teacher {str(path)!r} with --arch must hold a state_dict "
                         "(parameter name -> tensor)")
    model = build_model(arch, num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"--teacher {str(path)!r} does not fit --arch {arch} with "
                         f"{num_classes} classes: {str(err).splitlines()[0]}") from None
    return model.eval(), {"model_name": arch, "num_classes": num_classes, "dataset": None,
                          "test_accuracy": None}


def load_teacher_logits(path: str | Path, num_images: int, num_classes: int) -> torch.Tensor:
    """Precomputed teacher logits from a ``.npy`` file (no pickles): shape (training images,
    classes), row i for training image i in the dataset's order; ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--teacher logits file {str(path)!r} not found")
    unreadable = f"--teacher {str(path)!r} is not a numeric .npy array"
    try:  # the header first: a claimed shape is checked before anything is allocated
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
    except (EOFError, OSError, ValueError) as err:
        raise ValueError(f"{unreadable} ({type(err).__name__}: {err})") from None
    if dtype.kind not in "iuf":
        raise ValueError(f"{unreadable} (dtype {dtype})")
    if shape != (num_images, num_classes):
        raise ValueError(f"--teacher logits must be numbers of shape (training images, classes) "
                         f"= ({num_images}, {num_classes}), got {dtype} {shape}")
    try:
        array = np.load(path, allow_pickle=False)
    except (EOFError, OSError, ValueError) as err:
        raise ValueError(f"{unreadable} ({type(err).__name__}: {err})") from None
    if not np.isfinite(array).all():
        raise ValueError(f"--teacher logits {str(path)!r} must be finite (no nan or inf)")
    return torch.from_numpy(array.astype(np.float32))


def is_logits_file(teacher) -> bool:
    return teacher is not None and Path(teacher).suffix == ".npy"


def load_any_teacher(teacher, dataset, arch: str | None = None) -> tuple:
    """(model, info, logits) of ``--teacher``: a model file (or a state_dict with ``arch``)
    gives the model, a ``.npy`` file the table of training-image logits."""
    num_classes = len(dataset.classes)
    if is_logits_file(teacher):
        table = load_teacher_logits(teacher, len(dataset.train_labels), num_classes)
        return None, {"logits": str(teacher)}, table
    model, info = load_teacher(teacher, num_classes, arch)
    return model, info, None


RESTART = ("never", "changed", "always")


def train_recipe(recipe: Recipe, *, dataset=None, out: str | Path = "runs",
                 name: str | None = None, device: str | None = None, resume: bool = False,
                 teacher: str | Path | None = None, teacher_arch: str | None = None,
                 control: RunControl = RunControl(), restart: str = "never") -> dict:
    """Run ``recipe`` (from :func:`stingy.empirical.recipes.load_recipe`); return its summary.

    ``dataset`` is an ImageDataset, or the ``--data`` path (or None: find it) to load
    ``recipe.data.dataset`` from. ``teacher`` is a ``model.pt`` (or its run directory), a plain
    state_dict ``.pt`` with ``teacher_arch``, or precomputed logits ``.npy`` (one row per
    training image, computed on un-augmented images); the registry's teacher methods need one.
    ``control`` stops a call early (stingy.empirical.engine.RunControl). The summary is also
    ``<run dir>/summary.json``.

    The run directory is locked while it runs (a second writer gets a ValueError-like
    ``LockHeld`` at once) and ``run.json`` records its state: ``running``, then ``finished``,
    or ``failed`` on any error (a non-finite loss raises :class:`~stingy.empirical.runs.Diverged`).
    ``resume`` continues a run whose state is established and whose recipe, data and teacher
    fingerprints match, and starts one with no checkpoint over. ``restart`` says what else
    starts over: ``"never"`` (a ValueError instead), ``"changed"`` (a run whose state or
    inputs differ) or ``"always"`` (``--force``: an existing run directory too). A run that
    fails before it begins removes the folders it created while they are empty, never one
    another writer uses.
    """
    if restart not in RESTART:
        raise ValueError(f"restart must be one of {', '.join(RESTART)}, got {restart!r}")
    device = resolve_device(device)
    check_teacher_given(recipe, teacher, teacher_arch)
    rank, world = distributed_context()
    if world > 1 and not name:
        raise ValueError("under torchrun give --name so every rank uses the same run directory")
    fresh = restart == "always"
    directory, created = (run_directory(out, recipe.recipe, name, resume and not fresh, fresh)
                          if rank == 0 else (Path(out) / name, []))
    lock, state = None, None
    try:
        lock = RunLock(directory) if rank == 0 else None
        if dataset is None or isinstance(dataset, (str, Path)):
            dataset = data_module.load_dataset(recipe.data.dataset, data=dataset)
        fingerprints = {"recipe": recipe_fingerprint(recipe),
                        "data": dataset_fingerprint(dataset),
                        "teacher": teacher_fingerprint(teacher)}
        if teacher is not None:  # a wrong teacher is refused before the run begins
            with torch.random.fork_rng(devices=[]):
                load_any_teacher(teacher, dataset, teacher_arch)
        if rank == 0:
            state, resume = begin_run(directory, recipe, fingerprints, resume and not fresh,
                                      restart != "never")
        summary = _train(recipe, dataset, directory, device, resume, (teacher, teacher_arch),
                         state, control, rank, world)
        if rank == 0:
            write_state(directory, state, state="finished" if summary.get("finished", True)
                        else "running")
        return summary
    except BaseException as err:
        if state is not None:
            write_state(directory, state, state="failed",
                        error=str(err).splitlines()[0] if str(err) else type(err).__name__)
        elif created and lock is not None:  # refused before it began: remove its folders
            lock.release()
            remove_created(created)
        raise
    finally:
        if lock is not None:
            lock.release()


def remove_created(folders: list[Path]) -> None:
    """Remove the folders a refused run created (its run directory first, then the parents
    it made), each only while empty: its lock and temporary files go, but a folder holding
    anything else (another writer's run) stays, and so do the folders above it."""
    for path in [folders[0] / LOCK, *folders[0].glob(f".*{TEMP_SUFFIX}")]:
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for folder in folders:
            folder.rmdir()


def check_teacher_given(recipe: Recipe, teacher, teacher_arch: str | None) -> None:
    """A teacher exactly when the method needs one, of a kind it can use; a bad model file is
    refused before any data loads."""
    if recipe.needs_teacher and teacher is None:
        raise ValueError(f"method {recipe.method.name!r} needs --teacher CHECKPOINT "
                         f"(a model.pt written by `stingy train`)")
    if not recipe.needs_teacher and teacher is not None:
        raise ValueError("--teacher was given but the recipe trains from scratch "
                         "(method.name = 'scratch')")
    if teacher is not None and teacher_arch is None and not is_logits_file(teacher):
        load_model_file(teacher)
    if is_logits_file(teacher) and recipe.entry.data_free:
        raise ValueError("--teacher logits (.npy) cannot drive data-free KD: it queries the "
                         "teacher on generated images; give a model")


def _train(recipe: Recipe, dataset, directory: Path, device, resume: bool, teacher_source,
           state, control: RunControl, rank: int, world: int) -> dict:
    num_classes = len(dataset.classes)
    if world > 1:
        torch.distributed.barrier()
    seed_everything(recipe.seed)
    student = build_model(recipe.model.name, num_classes)
    teacher, teacher_arch = teacher_source
    teacher_model, teacher_info, teacher_table = (
        load_any_teacher(teacher, dataset, teacher_arch) if teacher is not None
        else (None, None, None))
    run_id = state["run_id"] if state is not None else None
    if recipe.entry.data_free:
        summary = _data_free(recipe, dataset, student, teacher_model, directory, device, resume)
    else:
        summary = fit(recipe, dataset, student,
                      teacher_table if teacher_table is not None else teacher_model, directory,
                      device=device, resume=resume, run_id=run_id, control=control)
    if teacher_info is not None:
        summary["teacher"] = {"path": str(teacher), **teacher_info}
        if rank == 0 and summary.get("finished", True):
            write_summary(directory, summary)
    return summary


def _data_free(recipe: Recipe, dataset, student, teacher, directory: Path, device,
               resume: bool) -> dict:
    """DAFL (Chen et al. 2019) via ``stingy.empirical.dafl.distill_data_free``, then test
    accuracy. The teacher releases dense logits, or top-k sparse ones (a Stingy Teacher) when
    ``method.k`` or ``method.ratio`` is set. Resumable through the run's checkpoint; a
    divergence, or test outputs that are not finite, raise ``Diverged``."""
    from stingy.empirical import dafl

    if resume:
        check_same_recipe(directory, recipe)
    else:
        write_json(directory / RECIPE, recipe.to_table())
    try:
        result = dafl.distill_data_free(teacher.to(device), student.to(device), recipe,
                                        num_classes=len(dataset.classes), device=device,
                                        checkpoint_path=directory / CHECKPOINT)
    except FloatingPointError as err:
        raise Diverged(str(err)) from None
    mean, std = normalisation(recipe.data.dataset)
    test = DeviceData(dataset.test_images, dataset.test_labels, mean, std, device)
    logits = predict(student, test, recipe.train.eval_batch_size, False, False)
    if not bool(torch.isfinite(logits).all()):
        raise Diverged(f"diverged at step {result['steps']}: the student's outputs on the test "
                       f"images are not finite (lower optim.lr or check the recipe)")
    accuracy, test_loss = accuracy_and_loss(logits, test.labels)
    summary = {"recipe": recipe.recipe, "run_dir": str(directory), "device": str(device),
               "finished": True, "test_accuracy": accuracy, "test_loss": test_loss,
               "released_k": result["released_k"], "dafl_final": result["final"],
               "dafl_steps": result["steps"]}
    save_model(directory / MODEL, student, model_name=recipe.model.name,
               num_classes=len(dataset.classes), dataset=recipe.data.dataset,
               recipe=recipe, test_accuracy=accuracy)
    write_json(directory / "dafl_history.json", result["history"])
    write_summary(directory, summary)
    return summary
