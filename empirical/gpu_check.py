"""One-GPU check: a fast CIFAR-10 ResNet-18 teacher, then as many students of the reference's
CIFAR-10 table as the time budget allows.

    stingy gpu-check --data PATH [--out DIR] --budget-seconds 540 [--commit SHA]
                     [--teacher-epochs 35] [--student-epochs 15]
    stingy gpu-check --toy --out DIR      # CPU, synthetic data, seconds

(:func:`run_gpu_check` is the library function behind the command.)

Teacher: recipe ``cifar10-teacher-fast`` (ResNet-18, bs 512, SGD nesterov, one-cycle, label
smoothing 0.1). Students (recipes cifar10-scratch / -kd / -stingy with the fast student
schedule :data:`STUDENT_FAST`: bs 512, SGD nesterov lr 0.2, one-cycle, 15 epochs), in the order
of :data:`STUDENT_ORDER`: PreResNet-20 scratch / normal KD (T=4, a=0.9) / stingy KD (k=2, T=20,
a=0.9) first, then the CNN, PreResNet-32 and ResNet-18. A student whose predicted end (mean
epoch time so far) falls after the budget stops and is recorded as unfinished; the next one
is still tried.

``DIR/gpu_check.json`` is rewritten atomically after the teacher and after every student:
device name, torch and CUDA versions, date, git commit, and per run the model, method, test
accuracy, epochs done / planned, seconds, images/s and achieved TFLOP/s, where

    FLOPs per training image = 3 * F_student + F_teacher (distillation) or 3 * F_student,

F = 2 * (multiply-accumulates of every Conv2d and Linear in one forward pass of one 32x32
image), counted by :func:`forward_flops` with forward hooks (backward ~ 2x forward; batch norm,
activations, pooling and the optimizer are not counted). For the teacher also the time
(training seconds and wall seconds since start) at which the test accuracy first reached 93%.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stingy.empirical.engine import RunControl
from stingy.empirical.models import build_model
from stingy.empirical.recipes import load_recipe
from stingy.empirical.runs import MODEL
from stingy.empirical.train import resolve_device, train_recipe
from stingy.io import write_json
from stingy.machine import git_commit
from stingy.methods import method as method_entry
from stingy.settings import EPOCHS, Number

TEACHER_RECIPE = "cifar10-teacher-fast"
TARGET_ACCURACY = 0.93
STUDENT_FAST = ["optim.lr=0.2", "optim.nesterov=true", "schedule.name=onecycle",
                "schedule.warmup_fraction=0.15", "schedule.final_lr_fraction=0.0",
                "train.batch_size=512"]
STUDENT_ORDER = [(model, method) for model in ("preresnet20", "cnn", "preresnet32", "resnet18")
                 for method in ("scratch", "normal_kd", "stingy_kd")]
METHOD_RECIPES = {"scratch": "cifar10-scratch", "normal_kd": "cifar10-kd",
                  "stingy_kd": "cifar10-stingy"}
TOY = ["data.train_subset=0", "data.test_subset=0", "train.batch_size=32",
       "train.eval_batch_size=64", "model.name=cnn"]


def forward_flops(model: nn.Module, image_size: int = 32) -> int:
    """2 x multiply-accumulates of the Conv2d and Linear layers for one 3 x 32 x 32 image."""
    macs = []

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * \
                module.kernel_size[1]
            macs.append(output.numel() * per_output)
        elif isinstance(module, nn.Linear):
            macs.append(output.numel() * module.in_features)

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return 2 * sum(macs)


def toy_dataset(train: int = 64, test: int = 32, seed: int = 0):
    """Synthetic CIFAR-shaped data whose colour depends on the label (for --toy)."""
    from stingy.empirical.data import ImageDataset

    rng = np.random.default_rng(seed)

    def split(n):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = np.clip(labels[:, None, None, None] * 25 + rng.integers(0, 60, (n, 32, 32, 3)),
                         0, 255).astype(np.uint8)
        return images, labels.astype(np.int64)

    return ImageDataset("cifar10", [f"class{i}" for i in range(10)], *split(train), *split(test))


def run_entry(summary: dict, history: list[dict], *, model: str, method: str,
              flops_per_image: int) -> dict:
    """One row of gpu_check.json from a run's summary and metrics records."""
    seconds = sum(record["seconds"] for record in history)
    images = sum(record["images"] for record in history)
    rate = images / seconds if seconds else None
    return {"model": model, "method": method, "test_accuracy": summary.get("test_accuracy"),
            "best_test_accuracy": summary.get("best_test_accuracy"),
            "epochs_done": len(history), "epochs": summary.get("epochs"),
            "finished": summary.get("finished"), "stop_reason": summary.get("stop_reason"),
            "seconds": seconds, "images_per_second": rate,
            "flops_per_training_image": flops_per_image,
            "tflops_per_second": rate * flops_per_image / 1e12 if rate else None,
            "run_dir": summary.get("run_dir")}


def time_to_accuracy(history: list[dict], target: float) -> dict | None:
    elapsed = 0.0
    for record in history:
        elapsed += record["seconds"]
        if record["test_accuracy"] >= target:
            return {"epoch": record["epoch"], "train_seconds": elapsed}
    return None


def run_gpu_check(out: str | Path, *, data: str | None = None, budget_seconds: float = 540.0,
                  commit: str | None = None, device: str | None = None,
                  teacher_epochs: int | None = None, student_epochs: int = 15,
                  compile: bool = False, toy: bool = False, log=print) -> dict:
    """The GPU check (``stingy gpu-check``): write ``out/gpu_check.json`` after every run and
    return its content. ``toy``: synthetic data, CNN models, 1 epoch each (CPU, seconds)."""
    Number(0, open_low=True).check(budget_seconds, "--budget-seconds")
    EPOCHS.check(student_epochs, "--student-epochs")
    if teacher_epochs is not None:
        EPOCHS.check(teacher_epochs, "--teacher-epochs")
    began = time.monotonic()
    deadline = began + budget_seconds
    device = resolve_device(device or (None if not toy else "cpu"))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out {out} is not empty; give a new folder")
    # a checkpoint every 10 epochs: ResNet-18's ~90 MB (weights + momentum) fsynced every
    # epoch would cost seconds of the budget; the last epoch always writes one.
    common = [f"train.compile={'true' if compile else 'false'}", "train.progress=false",
              "train.checkpoint_every=10"]
    if toy:
        common += TOY
        student_epochs, teacher_epochs = 1, 1
        students = [("cnn", method) for method in METHOD_RECIPES]
        dataset = toy_dataset()
    else:
        from stingy.empirical.data import load_dataset

        students = STUDENT_ORDER
        dataset = load_dataset("cifar10", data=data)
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit or git_commit(), "toy": toy,
        "data": "synthetic (toy)" if toy else "CIFAR-10 (JPEG q75 mirror or as given)",
        "budget_seconds": budget_seconds,
        "data_seconds": time.monotonic() - began,
        "flops_count": "2*MACs of Conv2d+Linear per 32x32 image; train = 3*student (+ teacher)",
        "teacher": None, "students": [], "skipped": []}
    path = out / "gpu_check.json"
    write_json(path, report)

    teacher_overrides = common + ([f"schedule.epochs={teacher_epochs}"] if teacher_epochs else [])
    teacher_recipe = load_recipe(TEACHER_RECIPE, teacher_overrides)
    teacher_flops = forward_flops(build_model(teacher_recipe.model.name, 10))
    summary = train_recipe(teacher_recipe, dataset=dataset, out=out / "runs", name="teacher",
                           device=device,
                           control=RunControl(deadline=deadline,
                                              on_epoch=epoch_logger("teacher", began, log)))
    history = _metrics(summary)
    report["teacher"] = {
        **run_entry(summary, history, model=teacher_recipe.model.name, method="scratch",
                    flops_per_image=3 * teacher_flops),
        "recipe": TEACHER_RECIPE, "time_to_93": time_to_accuracy(history, TARGET_ACCURACY),
        "wall_seconds_at_end": time.monotonic() - began}
    write_json(path, report)
    teacher_path = out / "runs" / "teacher" / MODEL
    if not summary["finished"]:
        report["skipped"] = [f"{m}-{k}: teacher unfinished" for m, k in students]
        write_json(path, report)
        log("teacher did not finish in the budget; no students")
        return report
    run = StudentRuns(out, dataset, device, teacher_path, teacher_flops, began, deadline, log)
    for model, method in students:
        run.train(report, path, model, method,
                  STUDENT_FAST + common + [f"model.name={model}",
                                           f"schedule.epochs={student_epochs}"])
    report["wall_seconds"] = time.monotonic() - began
    write_json(path, report)
    log(f"wrote {path}")
    return report


def epoch_logger(label: str, began: float, log):
    """A RunControl.on_epoch that logs one line per epoch."""
    def show(record):
        log(f"[{time.monotonic() - began:6.0f} s] {label} epoch {record['epoch']}: "
            f"loss {record['train_loss']:.4f} test_accuracy {record['test_accuracy']:.4f} "
            f"({record['seconds']:.1f} s)")
    return show


@dataclass(frozen=True)
class StudentRuns:
    """What every student run of the check shares: data, device, teacher, clock and log."""

    out: Path
    dataset: object
    device: torch.device
    teacher_path: Path
    teacher_flops: int
    began: float
    deadline: float
    log: object

    def train(self, report: dict, path: Path, model: str, method: str,
              overrides: list[str]) -> None:
        """Train one student (or record why not) into ``report``, written to ``path``."""
        if time.monotonic() > self.deadline - 5:
            report["skipped"].append(f"{model}-{method}: budget spent")
            write_json(path, report)
            return
        recipe = load_recipe(METHOD_RECIPES[method], overrides)
        distils = method_entry(method).needs_teacher
        flops = (3 * forward_flops(build_model(recipe.model.name, 10))
                 + (self.teacher_flops if distils else 0))
        control = RunControl(deadline=self.deadline,
                             on_epoch=epoch_logger(f"{model}-{method}", self.began, self.log))
        try:
            summary = train_recipe(recipe, dataset=self.dataset, out=self.out / "runs",
                                   name=f"{model}-{method}", device=self.device,
                                   teacher=self.teacher_path if distils else None,
                                   control=control)
        except Exception as err:  # noqa: BLE001 - record it and go on to the next student
            report["students"].append({"model": model, "method": method,
                                       "error": f"{type(err).__name__}: {err}"})
            write_json(path, report)
            self.log(f"{model}-{method} failed: {type(err).__name__}: {err}")
            return
        report["students"].append(run_entry(summary, _metrics(summary), model=model,
                                            method=method, flops_per_image=flops))
        report["wall_seconds"] = time.monotonic() - self.began
        write_json(path, report)
        self.log(f"{model}-{method}: test_accuracy {summary['test_accuracy']} "
                 f"finished {summary['finished']}")


def _metrics(summary: dict) -> list[dict]:
    from stingy.io import read_jsonl

    return read_jsonl(Path(summary["run_dir"]) / "metrics.jsonl")

