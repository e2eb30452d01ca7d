"""``stingy quick``: the CPU profile. A small CNN teacher, then four CNN students on CIFAR-10:
from scratch, normal KD, stingy KD and within-M KD (recipes ``quick-*.toml``), and a Nasty
Teacher trained against the teacher (``quick-nasty``), whose logits figure F6 shows.

The profile is sized for about 10 minutes on 2 CPU cores: the teacher sees a class-balanced
8,000-image subset of the training set for 6 epochs; students see 4,000 of those images for
5 epochs (where a teacher that saw more data has something to teach); accuracy is measured on
a class-balanced 2,000-image subset of the test set. Numbers from it are small-scale and
noisy (one seed; +-1 point between seeds is normal): a smoke test of the whole pipeline that
shows the direction of a gap, not the paper's table.

Measured (CIFAR-10 JPEG q75 mirror, seed 0, 2k test subset; two runs gave identical numbers):
teacher 68.4%; students scratch 59.3%, normal KD 63.2%, stingy KD 45.1%, within-M KD 53.3%;
final logit gap sbar_M - sbar_Mc (M: teacher's top 2) 3.2, 4.1, 26.2, 1.6. Wall time on the
shared 2-core machine while other jobs ran: 14.1 min (load ~3.5), 31.8 min (load ~6.5); about
11.4 CPU-minutes of user time, so roughly 6-8 min on two idle cores (not measured).

Outputs in ``out``:
    summary.json, summary.csv    one row per student (columns :data:`SUMMARY_COLUMNS`)
    teacher_theory.csv           theory_grid on the teacher's test logits, k in {1, 2, 5, 10},
                                 T on a log grid 0.5..100
    teacher_logits.npz           normal, stingy (top-k, -inf elsewhere) and nasty logits of
                                 the first test image of each class (up to 16 images), labels,
                                 class_names
    logit_gap.csv                per epoch, for stingy and within-M KD: the student's logit gap
                                 sbar_M - sbar_Mc and the T4 terms (engine.drive_record)
    runs/quick-*/                the run directories (a rerun reuses finished runs and resumes
                                 interrupted ones)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from stingy.empirical.engine import (DeviceData, balanced_subset, drive_record, normalisation,
                                     predict)
from stingy.empirical.real_teacher_theory import GRID_TEMPERATURES
from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import (
    MODEL,
    SUMMARY,
    dataset_fingerprint,
    read_state,
    recipe_fingerprint,
    teacher_fingerprint,
)
from stingy.io import atomic_write, read_jsonl, write_csv, write_json
from stingy.theory.operators import sparsify_logits
from stingy.theory.sweep import theory_grid

STUDENT_RECIPES = ("quick-scratch", "quick-kd", "quick-stingy", "quick-within")
SUMMARY_COLUMNS = ("method", "teacher", "student", "k", "ratio", "temperature", "alpha",
                   "test_accuracy", "teacher_accuracy", "logit_gap", "seconds", "device")
LOGITS_SHOWN = 16


def first_of_each_class(labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the first example of each class, in class order, then the next ones, up to
    ``count`` (so a figure of a few images shows different classes)."""
    order = torch.argsort(labels, stable=True)
    first = order[torch.cat([torch.tensor([True]), labels[order][1:] != labels[order][:-1]])]
    is_first = torch.zeros(len(labels), dtype=torch.bool)
    is_first[first] = True
    return torch.cat([first, torch.nonzero(~is_first).flatten()])[:count]


def _run(recipe_name: str, *, dataset, out: Path, device, teacher=None, overrides=None) -> dict:
    """Train one quick recipe in ``out/runs/<name>``: reuse it if it finished with the same
    recipe, data and teacher (their fingerprints in run.json), else resume or start it over
    (a run killed at any point, or one made from other inputs)."""
    from stingy.empirical.train import train_recipe

    directory = out / "runs" / recipe_name
    recipe = load_recipe(recipe_name, overrides)
    state = read_state(directory)
    wanted = {"recipe": recipe_fingerprint(recipe), "data": dataset_fingerprint(dataset),
              "teacher": teacher_fingerprint(teacher)}
    if (state is not None and state.get("state") == "finished"
            and state.get("fingerprints") == wanted
            and (directory / SUMMARY).is_file() and (directory / MODEL).is_file()):
        # the folder it was found in, not a path read from the file
        return {**json.loads((directory / SUMMARY).read_text()), "run_dir": str(directory)}
    return train_recipe(recipe, dataset=dataset, out=out / "runs", name=recipe_name,
                        device=device, teacher=teacher, resume=directory.is_dir(),
                        restart="changed")


def run_quick_profile(*, data=None, out="runs/quick", device="cpu", dataset=None,
                      overrides: list[str] | None = None) -> list[dict]:
    """Run the profile; return the summary rows (also written to ``out``).

    ``overrides`` (``--set`` strings) apply to every quick recipe (tests shrink the profile).
    """
    from stingy.empirical import data as data_module
    from stingy.empirical.train import load_teacher, resolve_device

    began = time.perf_counter()
    out = Path(out)
    device = resolve_device(device)
    if dataset is None:
        dataset = data_module.load_dataset("cifar10", data=data)
    teacher_summary = _run("quick-teacher", dataset=dataset, out=out, device=device,
                           overrides=overrides)
    teacher_path = out / "runs" / "quick-teacher" / MODEL
    teacher_recipe = load_recipe("quick-teacher", overrides)
    num_classes = len(dataset.classes)
    mean, std = normalisation(teacher_recipe.data.dataset)
    index = balanced_subset(dataset.test_labels, teacher_recipe.data.test_subset,
                            teacher_recipe.seed)
    test = DeviceData(torch.as_tensor(dataset.test_images)[index],
                      torch.as_tensor(dataset.test_labels)[index], mean, std, device)
    teacher, _ = load_teacher(teacher_path, num_classes)
    teacher_logits = predict(teacher.to(device), test, 500, False, False).cpu()

    stingy_recipe = load_recipe("quick-stingy", overrides)
    gap_k = stingy_recipe.entry.objective(stingy_recipe.method, num_classes).k
    rows, gap_rows = [], []
    for name in STUDENT_RECIPES:
        recipe = load_recipe(name, overrides)
        method = recipe.method
        summary = _run(name, dataset=dataset, out=out, device=device,
                       teacher=teacher_path if recipe.needs_teacher else None,
                       overrides=overrides)
        student, _ = load_teacher(Path(summary["run_dir"]) / MODEL, num_classes)
        student_logits = predict(student.to(device), test, 500, False, False).cpu()
        k = recipe.entry.objective(method, num_classes).k
        distils = recipe.entry.distils
        rows.append({
            "method": method.name, "teacher": teacher_recipe.model.name,
            "student": recipe.model.name, "k": k,
            "ratio": k / num_classes if k else None,
            "temperature": method.temperature if distils else None,
            "alpha": method.alpha if distils else None,
            "test_accuracy": summary["test_accuracy"],
            "teacher_accuracy": teacher_summary["test_accuracy"],
            "logit_gap": drive_record(student_logits, teacher_logits, gap_k,
                                      stingy_recipe.method.temperature)["logit_gap"],
            "seconds": summary["train_seconds"], "device": str(device)})
        if k is not None:
            for record in read_jsonl(Path(summary["run_dir"]) / "metrics.jsonl"):
                gap_rows.append({"method": method.name, "epoch": record["epoch"],
                                 "test_accuracy": record["test_accuracy"],
                                 **{key: value for key, value in record.items()
                                    if key == "logit_gap" or key.startswith("t4_")}})

    write_csv(out / "teacher_theory.csv",
              theory_grid(teacher_logits, [k for k in (1, 2, 5, 10) if k <= num_classes],
                          GRID_TEMPERATURES))
    nasty_summary = _run("quick-nasty", dataset=dataset, out=out, device=device,
                         teacher=teacher_path, overrides=overrides)
    nasty, _ = load_teacher(Path(nasty_summary["run_dir"]) / MODEL, num_classes)
    shown = first_of_each_class(test.labels.cpu(), LOGITS_SHOWN)
    nasty_logits = predict(nasty.to(device), test, 500, False, False).cpu()[shown]
    arrays = {"normal": teacher_logits[shown].numpy(),
              "stingy": sparsify_logits(teacher_logits[shown], gap_k).numpy(),
              "nasty": nasty_logits.numpy(), "labels": test.labels.cpu()[shown].numpy(),
              "class_names": np.array(dataset.classes), "k": np.array(gap_k)}
    atomic_write(out / "teacher_logits.npz", lambda f: np.savez(f, **arrays), binary=True)
    write_csv(out / "logit_gap.csv", gap_rows)
    write_csv(out / "summary.csv", rows)
    write_json(out / "summary.json", {
        "profile": "quick (CPU): CNN teacher on 8k CIFAR-10 train images, CNN students on 4k; "
                   "accuracy on a class-balanced 2k test subset",
        "logit_gap_k": gap_k, "nasty_teacher_accuracy": nasty_summary["test_accuracy"],
        "wall_seconds": time.perf_counter() - began,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows})
    return rows

