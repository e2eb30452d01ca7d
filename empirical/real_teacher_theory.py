"""The theory (T2 kept mass, T3 approximation errors, T5 signal-to-drive) on a real teacher.

Evaluates :func:`stingy.theory.sweep.theory_grid` on a trained teacher's logits over the whole test
set, at the reference's (k, T) and over a grid of k and a log grid of T.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stingy.empirical.engine import DeviceData, accuracy_and_loss, predict
from stingy.io import write_csv, write_json
from stingy.theory.operators import keep_count
from stingy.theory.sweep import theory_grid

# The reference's stingy (k, T) and normal-KD T per dataset (stingy-teacher params.json).
REFERENCE = {
    "cifar10": {"ratio": 0.2, "stingy_temperature": 20.0, "normal_temperature": 4.0},
    "cifar100": {"ratio": 0.1, "stingy_temperature": 20.0, "normal_temperature": 20.0},
}
GRID_TEMPERATURES = [float(t) for t in np.round(np.geomspace(0.5, 100.0, 16), 4)]


def grid_keep_counts(num_classes: int) -> list[int]:
    """k in {1, 2, 5, 10, 20, 50} up to K, and K itself."""
    return sorted({k for k in (1, 2, 5, 10, 20, 50) if k <= num_classes} | {num_classes})


def reference_points(dataset_name: str, num_classes: int) -> list[tuple[int, float]]:
    """(k, T) of the reference's stingy KD and, with the same k, its normal-KD temperature."""
    settings = REFERENCE.get(dataset_name, REFERENCE["cifar100"])
    k = keep_count(settings["ratio"], num_classes)
    return sorted({(k, settings["stingy_temperature"]), (k, settings["normal_temperature"])})


def test_logits(model, dataset, mean, std, device, batch_size: int = 1000) -> torch.Tensor:
    """The model's float32 test-set logits (CPU tensor)."""
    test = DeviceData(dataset.test_images, dataset.test_labels, mean, std, device)
    return predict(model.to(device), test, batch_size, False, False).cpu()


def theory_report(logits: torch.Tensor, labels, dataset_name: str,
                  temperatures=GRID_TEMPERATURES, ks=None) -> dict:
    """Grid rows and reference rows of theory_grid on ``logits`` (N, K)."""
    num_classes = logits.shape[-1]
    ks = ks or grid_keep_counts(num_classes)
    grid = theory_grid(logits, ks, temperatures)
    reference = [theory_grid(logits, [k], [t])[0] for k, t in
                 reference_points(dataset_name, num_classes)]
    accuracy, loss = accuracy_and_loss(logits, torch.as_tensor(labels))
    return {"test_accuracy": accuracy, "test_loss": loss, "examples": int(logits.shape[0]),
            "reference": reference, "grid": grid}


def teacher_theory(teacher: str | Path, *, data=None, out="out/teacher-theory", device=None,
                   dataset=None) -> dict:
    """``stingy teacher-theory``: writes ``teacher_theory.csv`` (grid rows, one per (k, T))
    and ``teacher_theory.json`` (teacher, accuracy, reference rows, grid rows)."""
    from stingy.empirical import data as data_module
    from stingy.empirical.runs import load_model_file
    from stingy.empirical.engine import normalisation
    from stingy.empirical.train import load_teacher, resolve_device

    device = resolve_device(device)
    saved = load_model_file(teacher)
    dataset_name = saved["dataset"]
    if dataset is None:
        dataset = data_module.load_dataset(dataset_name, data=data)
    model, info = load_teacher(teacher, len(dataset.classes))
    mean, std = normalisation(dataset_name)
    logits = test_logits(model, dataset, mean, std, device)
    report = {"teacher": {"path": str(teacher), **info}, "dataset": dataset_name,
              **theory_report(logits, dataset.test_labels, dataset_name)}
    out = Path(out)
    write_csv(out / "teacher_theory.csv", report["grid"])
    write_json(out / "teacher_theory.json", report)
    return report
