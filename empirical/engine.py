"""The training loop: one recipe, one student (and maybe a teacher), one run directory.

Speed: the whole dataset lives on the device as uint8; batches are indexed there, augmented
there (random crop with padding 4 and horizontal flip, ``stingy.empirical.augment``) and normalised
there. On CUDA: bf16 autocast, channels_last, optional ``torch.compile`` (recipe flags).

Reliability: ``checkpoint.pt`` is rewritten atomically after every epoch (every
``train.checkpoint_every`` epochs, and after the last) with the model,
optimizer, scheduler, epoch and every random state (Python, NumPy, torch, CUDA, the
data-order and augmentation generators), so a resumed run reproduces an uninterrupted one
exactly (same device and thread count). ``metrics.jsonl`` gets one line per epoch.

Distributed: under ``torchrun`` (WORLD_SIZE > 1) the student is wrapped in
DistributedDataParallel (gloo on CPU, nccl on CUDA); every rank draws the same permutation
and takes every world_size-th image of each global batch, so ``train.batch_size`` is the
global batch. Rank 0 writes the files; every rank evaluates the (small) test set.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from stingy.empirical import augment
from stingy.empirical.distill import Distiller
from stingy.empirical.objectives import kept_classes
from stingy.empirical.runs import (
    METRICS,
    MODEL,
    RECIPE,
    Diverged,
    check_same_recipe,
    load_checkpoint,
    metrics_up_to,
    restore_random_states,
    rewrite_metrics,
    save_checkpoint,
    save_model,
    write_summary,
)
from stingy.io import append_jsonl, write_json
from stingy.progress import bar_disabled
from stingy.theory.expansion import logit_gap
from stingy.theory.operators import top_k_mask
from stingy.theory.sweep import theory_grid

# ----------------------------------------------------------------------------- data

class DeviceData:
    """Images (uint8, NHWC) and labels of one split, resident on ``device``."""

    def __init__(self, images, labels, mean, std, device):
        self.images = torch.as_tensor(images).to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
        self.mean, self.std = mean, std
        self.black = [-m / s for m, s in zip(mean, std)]  # a 0 pixel after normalisation

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor, augment_generator=None, channels_last=False):
        """Normalised NCHW float images (augmented if a generator is given) and labels."""
        index = index.to(self.images.device)
        images = augment.to_float_normalised(self.images[index], self.mean, self.std)
        if augment_generator is not None:  # pad with black, as torchvision pads the uint8 image
            images = augment.random_crop_flip(images, padding=4, generator=augment_generator,
                                              fill=self.black)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return images.contiguous(memory_format=memory_format), self.labels[index]


def balanced_subset(labels, size: int, seed: int) -> torch.Tensor:
    """Indices of ``size`` examples, as equal per class as possible, chosen with ``seed``."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if size == 0 or size >= len(labels):
        return torch.arange(len(labels))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    classes = int(labels.max()) + 1
    rank_in_class = torch.zeros(len(labels), dtype=torch.int64)
    seen = torch.zeros(classes, dtype=torch.int64)
    for position in order.tolist():  # a loop over <= 60k ints: ~50 ms
        label = int(labels[position])
        rank_in_class[position] = seen[label]
        seen[label] += 1
    # take round-robin over classes: every class's 1st pick, then every class's 2nd, ...
    keys = rank_in_class * len(labels) + torch.argsort(order)
    return torch.sort(torch.argsort(keys)[:size]).values


def device_splits(dataset, recipe: dict, device, mean, std) -> tuple[DeviceData, DeviceData]:
    data = recipe["data"]
    train_index = balanced_subset(dataset.train_labels, data["train_subset"], recipe["seed"])
    test_index = balanced_subset(dataset.test_labels, data["test_subset"], recipe["seed"])
    as_tensor = torch.as_tensor
    train = DeviceData(as_tensor(dataset.train_images)[train_index],
                       as_tensor(dataset.train_labels)[train_index], mean, std, device)
    test = DeviceData(as_tensor(dataset.test_images)[test_index],
                      as_tensor(dataset.test_labels)[test_index], mean, std, device)
    return train, test


# ----------------------------------------------------------------------------- optimisation

def build_optimizer(parameters, optim: dict) -> torch.optim.Optimizer:
    if optim["name"] == "sgd":
        return torch.optim.SGD(parameters, lr=optim["lr"], momentum=optim["momentum"],
                               nesterov=optim["nesterov"], weight_decay=optim["weight_decay"])
    return torch.optim.Adam(parameters, lr=optim["lr"], weight_decay=optim["weight_decay"])


def lr_factor(step: int, steps_per_epoch: int, schedule: dict) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based).

    multistep: gamma ** (number of milestones <= current epoch), epochs 0-based (the reference's
    MultiStepLR stepped once per epoch). onecycle: linear rise from 0 over warmup_fraction of the
    steps, then linear fall to final_lr_fraction. constant: 1.
    """
    if schedule["name"] == "multistep":
        epoch = step // steps_per_epoch
        return schedule["gamma"] ** sum(epoch >= m for m in schedule["milestones"])
    if schedule["name"] == "onecycle":
        total = schedule["epochs"] * steps_per_epoch
        peak = max(1, round(schedule["warmup_fraction"] * total))
        if step < peak:
            return (step + 1) / peak
        final = schedule["final_lr_fraction"]
        return 1 - (1 - final) * min(1.0, (step - peak) / max(1, total - peak))
    return 1.0


# ----------------------------------------------------------------------------- evaluation

@torch.inference_mode()
def predict(model, data: DeviceData, batch_size: int, autocast: bool, channels_last: bool):
    """Float32 logits of ``model`` (in eval mode) on every example of ``data``, in order."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)))
        images, _ = data.batch(index, channels_last=channels_last)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
            outputs.append(model(images).float())
    model.train(was_training)
    return torch.cat(outputs)


def accuracy_and_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    accuracy = float((logits.argmax(dim=-1) == labels).float().mean())
    return accuracy, float(F.cross_entropy(logits, labels))


def drive_record(student_logits, teacher_logits, k: int, temperature: float) -> dict:
    """The student's logit gap sbar_M - sbar_Mc (M: the teacher's top k) and the T4 terms.

    ``t4_order_t`` = -T (1 - r)(sbar_M - sbar_Mc) is the order-T drive of T^2 KL(p~ || q)
    (stingy.theory.expansion); ``t4_exact`` the exact T^2 KL; both averaged over the test set.
    """
    gap = logit_gap(student_logits, top_k_mask(teacher_logits, k)).mean()
    row = theory_grid(teacher_logits, [k], [temperature], student_logits=student_logits)[0]
    terms = ("exact", "order_t2", "order_t", "order_1", "remainder", "drive_norm",
             "signal_norm", "signal_to_drive")
    return {"logit_gap": float(gap), **{f"t4_{name}": row[name] for name in terms}}


# ----------------------------------------------------------------------------- distributed

def distributed_context() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def average_buffers(model: torch.nn.Module) -> None:
    """Average floating buffers (batch-norm running statistics) over the ranks, so every rank
    holds the same model after an epoch (DDP keeps parameters in step, not buffers)."""
    if not dist.is_initialized():
        return
    for buffer in model.buffers():
        if torch.is_floating_point(buffer):
            dist.all_reduce(buffer)
            buffer /= dist.get_world_size()


def all_sum(values: list[float], device) -> list[float]:
    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# ----------------------------------------------------------------------------- the loop

def fit(recipe: dict, dataset, student: torch.nn.Module, teacher: torch.nn.Module | None,
        run_dir: str | Path, *, mean, std, device="cpu", resume: bool = False,
        stop_after_epochs: int | None = None, deadline: float | None = None,
        on_epoch=None, run_id: str | None = None,
        teacher_logits: torch.Tensor | None = None) -> dict:
    """Train ``student`` by ``recipe`` on ``dataset``; return the summary (also saved).

    ``stop_after_epochs`` (a test hook) returns after that many epochs in this call, as if the
    process had been killed after writing the checkpoint. ``deadline`` (a ``time.monotonic()``
    value) stops before an epoch when the mean epoch time so far says the remaining epochs
    would end after it (the checkpoint stays, so ``resume`` can finish the run later).
    ``on_epoch(record)`` is called with every metrics record (progress output for scripts).
    ``run_id`` is stored in each checkpoint; resuming refuses a checkpoint of another run.
    A non-finite mean training loss after an epoch raises ``Diverged("diverged at epoch E")``
    before anything of that epoch is saved.
    ``teacher_logits`` (training images x classes, in the dataset's order) replaces the teacher
    model: each batch takes its rows.
    """
    run_dir = Path(run_dir)
    device = torch.device(device)
    rank, world = distributed_context()
    train_cfg, schedule, method = recipe["train"], recipe["schedule"], recipe["method"]
    on_cuda = device.type == "cuda"
    autocast = on_cuda and train_cfg["bf16"]
    channels_last = on_cuda and train_cfg["channels_last"]
    torch.manual_seed(recipe["seed"])

    train_data, test_data = device_splits(dataset, recipe, device, mean, std)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    student = student.to(device, memory_format=memory_format)
    if teacher is not None:
        teacher = teacher.to(device, memory_format=memory_format).eval()
    forward_student = torch.compile(student) if train_cfg["compile"] else student
    if world > 1:
        forward_student = torch.nn.parallel.DistributedDataParallel(
            forward_student, device_ids=[device.index] if on_cuda else None)
    distiller = Distiller(forward_student, teacher, method, train_cfg["label_smoothing"],
                          precomputed=teacher_logits is not None)
    if teacher_logits is not None:
        train_rows = balanced_subset(dataset.train_labels, recipe["data"]["train_subset"],
                                     recipe["seed"])
        teacher_logits = teacher_logits[train_rows].to(device)

    batch_size = train_cfg["batch_size"]
    steps_per_epoch = max(1, math.ceil(len(train_data) / batch_size))
    optimizer = build_optimizer(student.parameters(), recipe["optim"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, schedule))
    generators = {"data_order": torch.Generator().manual_seed(recipe["seed"]),
                  "augment": torch.Generator(device=device).manual_seed(recipe["seed"] + 1)}

    start_epoch, history, best = 0, [], 0.0
    if resume:
        check_same_recipe(run_dir, recipe)
        state = load_checkpoint(run_dir, run_id)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_random_states(state["random"], generators)
        start_epoch, best = state["epoch"], state["best_accuracy"]
        history = metrics_up_to(run_dir, start_epoch)
        if rank == 0:
            rewrite_metrics(run_dir, history)
    elif rank == 0:
        write_json(run_dir / RECIPE, recipe)

    k = kept_classes(method, dataset_classes(dataset))
    teacher_test_logits = None
    if k is not None and teacher is not None:
        teacher_test_logits = predict(teacher, test_data, train_cfg["eval_batch_size"],
                                      autocast, channels_last)

    stop_reason, seconds_here = None, []  # epoch times of this call
    for epoch in range(start_epoch, schedule["epochs"]):
        if stop_after_epochs is not None and len(seconds_here) >= stop_after_epochs:
            stop_reason = "stop_after_epochs"
        elif deadline is not None and seconds_here:
            steady = seconds_here[1:] or seconds_here  # the first epoch includes warm-up
            mean_seconds = sum(steady) / len(steady)
            if time.monotonic() + mean_seconds * (schedule["epochs"] - epoch) > deadline:
                stop_reason = "deadline"
        if stop_reason:
            break
        began = time.perf_counter()
        distiller.train()
        order = torch.randperm(len(train_data), generator=generators["data_order"])
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        batches = tqdm(range(steps_per_epoch), desc=f"{recipe['recipe']} epoch {epoch + 1}"
                       f"/{schedule['epochs']}", leave=False, dynamic_ncols=True,
                       disable=bar_disabled(train_cfg["progress"] and rank == 0))
        lr = optimizer.param_groups[0]["lr"]
        for step in batches:
            global_batch = order[step * batch_size:(step + 1) * batch_size]
            if len(global_batch) < world:
                continue
            index = global_batch[rank::world]
            images, labels = train_data.batch(
                index, generators["augment"] if train_cfg["augment"] else None, channels_last)
            rows = None if teacher_logits is None else teacher_logits[index.to(device)]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                _, losses = distiller(images, labels, rows)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            scheduler.step()
            for name, value in losses.items():  # summed on the device: no sync per step
                sums[name] = sums.get(name, 0.0) + value.detach().float() * len(labels)
            seen += len(labels)
            if step % 50 == 0 or step == steps_per_epoch - 1:
                batches.set_postfix(loss=f"{float(sums['loss']) / seen:.4f}")
        average_buffers(student)
        names = sorted(sums)
        totals = all_sum([float(sums[name]) for name in names] + [seen], device)
        means = {name: total / totals[-1] for name, total in zip(names, totals)}
        if not math.isfinite(means["loss"]):
            raise Diverged(f"diverged at epoch {epoch + 1}: the mean training loss is "
                           f"{means['loss']} (lower optim.lr or check the recipe)")
        test_logits = predict(student, test_data, train_cfg["eval_batch_size"], autocast,
                              channels_last)
        accuracy, test_loss = accuracy_and_loss(test_logits, test_data.labels)
        best = max(best, accuracy)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": means.pop("loss"),
                  **{f"train_{name}": value for name, value in means.items()},
                  "test_accuracy": accuracy, "test_loss": test_loss,
                  "seconds": time.perf_counter() - began, "images": int(totals[-1])}
        if teacher_test_logits is not None:
            record.update(drive_record(test_logits.cpu(), teacher_test_logits.cpu(), k,
                                       method["temperature"]))
        history.append(record)
        seconds_here.append(record["seconds"])
        if rank == 0:
            if (epoch + 1) % train_cfg["checkpoint_every"] == 0 or epoch + 1 == schedule["epochs"]:
                save_checkpoint(run_dir, epoch=epoch + 1, model=student, optimizer=optimizer,
                                scheduler=scheduler, generators=generators, best_accuracy=best,
                                run_id=run_id)
            append_jsonl(run_dir / METRICS, record)
            if on_epoch is not None:
                on_epoch(record)

    summary = {"recipe": recipe["recipe"], "run_dir": str(run_dir), "device": str(device),
               "world_size": world, "epochs_done": len(history), "epochs": schedule["epochs"],
               "finished": stop_reason is None, "stop_reason": stop_reason,
               "test_accuracy": history[-1]["test_accuracy"] if history else None,
               "best_test_accuracy": best,
               "train_seconds": sum(record["seconds"] for record in history)}
    if rank == 0 and stop_reason is None:
        save_model(run_dir / MODEL, student, model_name=recipe["model"]["name"],
                   num_classes=dataset_classes(dataset), dataset=recipe["data"]["dataset"],
                   recipe=recipe, test_accuracy=summary["test_accuracy"])
        write_summary(run_dir, summary)
    if dist.is_initialized():
        dist.barrier()
    return summary


def dataset_classes(dataset) -> int:
    return len(dataset.classes)
