"""The training loop: one recipe, one student (and maybe a teacher), one run directory.

Speed: the whole dataset lives on the device as uint8; batches are indexed there, augmented
there (random crop with padding 4 and horizontal flip, ``stingy.empirical.augment``) and normalised
there. channels_last on every device, bf16 autocast on CUDA, optional ``torch.compile`` (recipe
flags).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from stingy.empirical import augment
from stingy.empirical.data import CHANNEL_MEAN, CHANNEL_STD
from stingy.empirical.distill import Distiller
from stingy.empirical.recipes import OptimSettings, Recipe, ScheduleSettings
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
    """Images (uint8, NHWC) and labels of one split, resident on ``device``; the per-channel
    ``mean`` and ``std`` are checked once here and kept on the device, so a batch needs no
    host-device transfer or synchronisation."""

    def __init__(self, images, labels, mean, std, device):
        if len(mean) != len(std) or not all(value > 0 for value in std):
            raise ValueError(f"std must be positive for every channel of mean, got mean "
                             f"{list(mean)} and std {list(std)}")
        self.images = torch.as_tensor(images).to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(device)
        self.mean, self.std = mean, std
        self.shift = torch.tensor([255.0 * m for m in mean], device=device).view(1, -1, 1, 1)
        self.scale = torch.tensor([255.0 * s for s in std], device=device).view(1, -1, 1, 1)
        # a 0 pixel after normalisation (torchvision pads the uint8 image with black)
        self.black = torch.tensor([-m / s for m, s in zip(mean, std)], device=device)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor, augment_generator=None, channels_last=False):
        """Normalised NCHW float images (augmented if a generator is given) and labels;
        ``index`` lives on the data's device."""
        images = (self.images[index].permute(0, 3, 1, 2).float() - self.shift) / self.scale
        if augment_generator is not None:
            images = augment.random_crop_flip(images, padding=4, generator=augment_generator,
                                              fill=self.black)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return images.contiguous(memory_format=memory_format), self.labels[index]


def batch_count(size: int, batch_size: int, smallest: int = 2) -> int:
    """The batches of an epoch of ``size`` examples: ceil(size / batch_size), less one when
    the last would hold fewer than ``smallest`` examples (batch norm needs two to train), whose
    examples then join the batch before it."""
    count = -(-size // batch_size)
    if count > 1 and 0 < size % batch_size < smallest:
        count -= 1
    return count


def batch_rows(step: int, size: int, batch_size: int, smallest: int = 2) -> slice:
    """The positions, in an epoch's order, of batch ``step`` (:func:`batch_count`)."""
    last = step == batch_count(size, batch_size, smallest) - 1
    return slice(step * batch_size, size if last else (step + 1) * batch_size)


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


def device_splits(dataset, recipe: Recipe, device) -> tuple[DeviceData, DeviceData]:
    """The recipe's class-balanced train and test subsets, on ``device``."""
    mean, std = normalisation(recipe.data.dataset)
    train_index = balanced_subset(dataset.train_labels, recipe.data.train_subset, recipe.seed)
    test_index = balanced_subset(dataset.test_labels, recipe.data.test_subset, recipe.seed)
    as_tensor = torch.as_tensor
    train = DeviceData(as_tensor(dataset.train_images)[train_index],
                       as_tensor(dataset.train_labels)[train_index], mean, std, device)
    test = DeviceData(as_tensor(dataset.test_images)[test_index],
                      as_tensor(dataset.test_labels)[test_index], mean, std, device)
    return train, test


def normalisation(dataset_name: str) -> tuple:
    """The per-channel (mean, std) of a dataset's training images."""
    return CHANNEL_MEAN[dataset_name], CHANNEL_STD[dataset_name]


# ----------------------------------------------------------------------------- optimisation

def build_optimizer(parameters, optim: OptimSettings) -> torch.optim.Optimizer:
    """SGD, or Adam with its fused kernel (no read of its step counters to the host)."""
    if optim.name == "sgd":
        return torch.optim.SGD(parameters, lr=optim.lr, momentum=optim.momentum,
                               nesterov=optim.nesterov, weight_decay=optim.weight_decay)
    return torch.optim.Adam(parameters, lr=optim.lr, weight_decay=optim.weight_decay,
                            fused=True)


def lr_factor(step: int, steps_per_epoch: int, schedule: ScheduleSettings) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based).

    multistep: gamma ** (number of milestones <= current epoch), epochs 0-based (the reference's
    MultiStepLR stepped once per epoch). onecycle: linear rise from 0 over warmup_fraction of the
    steps, then linear fall to final_lr_fraction. constant: 1.
    """
    if schedule.name == "multistep":
        epoch = step // steps_per_epoch
        return schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    if schedule.name == "onecycle":
        total = schedule.epochs * steps_per_epoch
        peak = max(1, round(schedule.warmup_fraction * total))
        if step < peak:
            return (step + 1) / peak
        final = schedule.final_lr_fraction
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
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.images.device)
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

@dataclass(frozen=True)
class RunControl:
    """When a ``fit`` call returns before the run ends, and who hears about each epoch.

    ``stop_after_epochs`` (a test hook) returns after that many epochs of this call, as if the
    process had been killed after writing the checkpoint. ``deadline`` (a ``time.monotonic()``
    value) stops before an epoch when the mean epoch time so far says the remaining epochs
    would end after it (the checkpoint stays, so a resume can finish the run later).
    ``on_epoch(record)`` is called with every metrics record."""

    stop_after_epochs: int | None = None
    deadline: float | None = None
    on_epoch: Callable[[dict], None] | None = None

    def stop_reason(self, seconds_here: list[float], epochs_left: int) -> str | None:
        if self.stop_after_epochs is not None and len(seconds_here) >= self.stop_after_epochs:
            return "stop_after_epochs"
        if self.deadline is not None and seconds_here:
            steady = seconds_here[1:] or seconds_here  # the first epoch includes warm-up
            if time.monotonic() + sum(steady) / len(steady) * epochs_left > self.deadline:
                return "deadline"
        return None


@dataclass
class Run:
    """What one ``fit`` call builds once and every epoch reads."""

    recipe: Recipe
    run_dir: Path
    run_id: str | None
    device: torch.device
    rank: int
    world: int
    autocast: bool
    channels_last: bool
    train_data: DeviceData
    test_data: DeviceData
    student: torch.nn.Module
    distiller: Distiller
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generators: dict
    teacher_rows: torch.Tensor | None       # precomputed teacher logits of the training subset
    teacher_test_logits: torch.Tensor | None  # for the drive record of a sparse method
    steps_per_epoch: int


def fit(recipe: Recipe, dataset, student: torch.nn.Module, teacher, run_dir: str | Path, *,
        device="cpu", resume: bool = False, run_id: str | None = None,
        control: RunControl = RunControl()) -> dict:
    """Train ``student`` by ``recipe`` on ``dataset``; return the summary (also saved).

    ``teacher`` is None, a model, or a table of precomputed teacher logits (training images x
    classes, in the dataset's order: each batch takes its rows). ``run_id`` is stored in each
    checkpoint; resuming refuses a checkpoint of another run. A non-finite mean training loss
    or non-finite test outputs after an epoch raise ``Diverged("diverged at epoch E")`` before
    anything of that epoch is saved.
    """
    run = setup_run(recipe, dataset, student, teacher, Path(run_dir), torch.device(device),
                    run_id)
    start_epoch, best, history = restore(run) if resume else (0, 0.0, [])
    if not resume and run.rank == 0:
        write_json(run.run_dir / RECIPE, recipe.to_table())
    epochs = recipe.schedule.epochs
    stop_reason, seconds_here = None, []  # epoch times of this call
    for epoch in range(start_epoch, epochs):
        stop_reason = control.stop_reason(seconds_here, epochs - epoch)
        if stop_reason:
            break
        began = time.perf_counter()
        means, images = train_epoch(run, epoch)
        record = evaluate(run, epoch, means, images)
        record["seconds"] = time.perf_counter() - began
        best = max(best, record["test_accuracy"])
        history.append(record)
        seconds_here.append(record["seconds"])
        if run.rank == 0:  # the metrics first: a resumed run finds every checkpointed epoch
            append_jsonl(run.run_dir / METRICS, record)
            if (epoch + 1) % recipe.train.checkpoint_every == 0 or epoch + 1 == epochs:
                save_checkpoint(run.run_dir, epoch=epoch + 1, model=run.student,
                                optimizer=run.optimizer, scheduler=run.scheduler,
                                generators=run.generators, best_accuracy=best, run_id=run_id)
            if control.on_epoch is not None:
                control.on_epoch(record)
    return finish(run, history, best, stop_reason, len(dataset.classes))


def setup_run(recipe: Recipe, dataset, student, teacher, run_dir: Path, device: torch.device,
              run_id: str | None) -> Run:
    """The data on the device, the student (compiled, DDP-wrapped), its objective, optimizer,
    scheduler and generators."""
    rank, world = distributed_context()
    on_cuda = device.type == "cuda"
    autocast = on_cuda and recipe.train.bf16
    channels_last = recipe.train.channels_last
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(recipe.seed)
    train_data, test_data = device_splits(dataset, recipe, device)
    num_classes = len(dataset.classes)
    student = student.to(device, memory_format=memory_format)
    teacher_model = teacher if isinstance(teacher, torch.nn.Module) else None
    teacher_rows = None
    if isinstance(teacher, torch.Tensor):
        rows = balanced_subset(dataset.train_labels, recipe.data.train_subset, recipe.seed)
        teacher_rows = teacher[rows].to(device)
    if teacher_model is not None:
        teacher_model = teacher_model.to(device, memory_format=memory_format).eval()
    forward_student = torch.compile(student) if recipe.train.compile else student
    if world > 1:
        forward_student = torch.nn.parallel.DistributedDataParallel(
            forward_student, device_ids=[device.index] if on_cuda else None)
    objective = recipe.entry.objective(recipe.method, num_classes, recipe.train.label_smoothing)
    distiller = Distiller(forward_student, teacher_model, objective)
    steps_per_epoch = max(1, batch_count(len(train_data), recipe.train.batch_size, 2 * world))
    optimizer = build_optimizer(student.parameters(), recipe.optim)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, recipe.schedule))
    generators = {"data_order": torch.Generator(device=device).manual_seed(recipe.seed),
                  "augment": torch.Generator(device=device).manual_seed(recipe.seed + 1)}
    teacher_test_logits = None
    if objective.k is not None and teacher_model is not None:
        teacher_test_logits = predict(teacher_model, test_data, recipe.train.eval_batch_size,
                                      autocast, channels_last)
    return Run(recipe, run_dir, run_id, device, rank, world, autocast, channels_last,
               train_data, test_data, student, distiller, optimizer, scheduler, generators,
               teacher_rows, teacher_test_logits, steps_per_epoch)


def restore(run: Run) -> tuple[int, float, list[dict]]:
    """Load the checkpoint of a resumed run: (start epoch, best accuracy, metrics so far)."""
    check_same_recipe(run.run_dir, run.recipe)
    state = load_checkpoint(run.run_dir, run.run_id)
    run.student.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    restore_random_states(state["random"], run.generators)
    history = metrics_up_to(run.run_dir, state["epoch"])
    if run.rank == 0:
        rewrite_metrics(run.run_dir, history)
    return state["epoch"], state["best_accuracy"], history


def train_epoch(run: Run, epoch: int) -> tuple[dict, int]:
    """One epoch of steps; returns ({"train_loss", "lr"}, images seen over all ranks). The
    batch order is drawn on the device and the loss summed there: no host-device
    synchronisation in a step (the progress bar's postfix reads the loss only when drawn).
    A last batch too small for batch norm joins the one before it (:func:`batch_count`)."""
    recipe, batch_size = run.recipe, run.recipe.train.batch_size
    run.distiller.train()
    order = torch.randperm(len(run.train_data), generator=run.generators["data_order"],
                           device=run.device)
    augment_generator = run.generators["augment"] if recipe.train.augment else None
    loss_sum = torch.zeros((), device=run.device)
    seen = 0
    batches = tqdm(range(run.steps_per_epoch),
                   desc=f"{recipe.recipe} epoch {epoch + 1}/{recipe.schedule.epochs}",
                   leave=False, dynamic_ncols=True,
                   disable=bar_disabled(recipe.train.progress and run.rank == 0))
    lr = run.optimizer.param_groups[0]["lr"]
    for step in batches:
        global_batch = order[batch_rows(step, len(order), batch_size, 2 * run.world)]
        if len(global_batch) < run.world:
            continue
        index = global_batch[run.rank::run.world]
        images, labels = run.train_data.batch(index, augment_generator, run.channels_last)
        rows = None if run.teacher_rows is None else run.teacher_rows[index]
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.autocast):
            _, loss = run.distiller(images, labels, rows)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        loss_sum += loss.detach().float() * len(labels)
        seen += len(labels)
        if not batches.disable and (step % 50 == 0 or step == run.steps_per_epoch - 1):
            batches.set_postfix(loss=f"{float(loss_sum) / seen:.4f}")
    average_buffers(run.student)
    total_loss, images = all_sum([float(loss_sum), seen], run.device)
    mean_loss = total_loss / images
    if not math.isfinite(mean_loss):
        raise Diverged(f"diverged at epoch {epoch + 1}: the mean training loss is "
                       f"{mean_loss} (lower optim.lr or check the recipe)")
    return {"lr": lr, "train_loss": mean_loss}, int(images)


def evaluate(run: Run, epoch: int, means: dict, images: int) -> dict:
    """The epoch's metrics record: test accuracy and loss, and for a sparse method the
    student's logit gap and the T4 terms against the teacher's test logits. Non-finite test
    outputs raise ``Diverged`` (the epoch's loss was finite, its last update was not)."""
    test_logits = predict(run.student, run.test_data, run.recipe.train.eval_batch_size,
                          run.autocast, run.channels_last)
    if not bool(torch.isfinite(test_logits).all()):  # weights huge after the epoch's last step
        raise Diverged(f"diverged at epoch {epoch + 1}: the outputs on the test images are not "
                       f"finite (lower optim.lr or check the recipe)")
    accuracy, test_loss = accuracy_and_loss(test_logits, run.test_data.labels)
    record = {"epoch": epoch + 1, **means, "test_accuracy": accuracy, "test_loss": test_loss,
              "images": images}
    if run.teacher_test_logits is not None:
        record.update(drive_record(test_logits.cpu(), run.teacher_test_logits.cpu(),
                                   run.distiller.objective.k, run.recipe.method.temperature))
    return record


def finish(run: Run, history: list[dict], best: float, stop_reason: str | None,
           num_classes: int) -> dict:
    """The summary; a finished run also saves its model and summary.json."""
    recipe = run.recipe
    summary = {"recipe": recipe.recipe, "run_dir": str(run.run_dir), "device": str(run.device),
               "world_size": run.world, "epochs_done": len(history),
               "epochs": recipe.schedule.epochs, "finished": stop_reason is None,
               "stop_reason": stop_reason,
               "test_accuracy": history[-1]["test_accuracy"] if history else None,
               "best_test_accuracy": best,
               "train_seconds": sum(record["seconds"] for record in history)}
    if run.rank == 0 and stop_reason is None:
        save_model(run.run_dir / MODEL, run.student, model_name=recipe.model.name,
                   num_classes=num_classes, dataset=recipe.data.dataset, recipe=recipe,
                   test_accuracy=summary["test_accuracy"])
        write_summary(run.run_dir, summary)
    if dist.is_initialized():
        dist.barrier()
    return summary
