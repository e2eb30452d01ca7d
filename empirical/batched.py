"""Several students of one architecture trained at once on the same batches.

The G students' parameters and buffers are stacked (``torch.func.stack_module_state``) into
leaf tensors of shape [G, ...]; one SGD optimizer steps them all (SGD, momentum and weight
decay act elementwise, so this is G independent optimizers). ``mode="vmap"`` runs the G
forward passes as one ``torch.func.vmap`` over ``functional_call``; ``mode="loop"`` runs them
one after another on slices of the same tensors (the baseline the benchmark compares). Batch
norm updates each student's own running statistics in both modes.

Every student reads its teacher's logits from a :class:`stingy.empirical.bank.LogitBank`
(no teacher forward pass while students train): all K logits, or the top-k rows for the
sparse methods. Each student's loss is its method's objective (stingy.objective), built once,
so the step itself has no validation and no host-device sync: the batch order moves to the
device once per epoch, and the losses are summed on the device and read once per epoch.
channels_last on every device (1.3x on the CPU CNN, docs/benchmarks.md); on CUDA also bf16
autocast; ``compile`` = "default" (torch.compile) or "cuda-graphs" (torch.compile mode
"reduce-overhead"; on CPU plain compile).

A group checkpoints after every epoch (``group.pt``: stacked state, optimizer, EMA, history);
the batches are a pure function of (seed, epoch, batch), so resuming needs no random state.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from stingy.empirical.engine import RunControl
from stingy.empirical.models import build_model
from stingy.empirical.model_names import MODEL_NAMES
from stingy.empirical.runs import Diverged
from stingy.io import load_torch, save_torch
from stingy.methods import METHODS, MethodSettings, names
from stingy.settings import (BATCH_SIZE, EPOCHS, LEARNING_RATE, MOMENTUM, OPEN_FRACTION,
                             WEIGHT_DECAY, Choice, Flag, Number, Settings, setting)

MODES = ("vmap", "loop")
COMPILE_MODES = ("off", "default", "cuda-graphs")
TARGET_METHODS = names("cifar", data_free=False)  # the registry methods a group can train
GROUP_CHECKPOINT = "group.pt"


@dataclass(frozen=True)
class Student:
    """One student: its label, its method with the method's numbers (stingy.methods), and the
    name of the logit bank it reads (None for a method without a teacher)."""

    label: str
    method: MethodSettings
    teacher: str | None = None

    def __post_init__(self):
        if self.method.name not in TARGET_METHODS:
            raise ValueError(f"method must be one of {', '.join(TARGET_METHODS)}, got "
                             f"{self.method.name!r}")
        if self.method.entry.needs_teacher != (self.teacher is not None):
            raise ValueError(f"student {self.label!r}: teacher must be given exactly when the "
                             f"method needs one")


@dataclass(frozen=True)
class GroupSettings(Settings):
    """How a group trains: SGD (nesterov) with a one-cycle learning rate (linear warm-up over
    ``warmup_fraction`` of the steps, then linear decay to 0), optional label smoothing on the
    CE term and an EMA of the weights (``ema_decay`` 0: none) used for evaluation."""

    model: str = setting(rule=Choice(MODEL_NAMES))
    epochs: int = setting(rule=EPOCHS)
    batch_size: int = setting(rule=BATCH_SIZE)
    lr: float = setting(rule=LEARNING_RATE)
    momentum: float = setting(0.9, MOMENTUM)
    weight_decay: float = setting(5e-4, WEIGHT_DECAY)
    warmup_fraction: float = setting(0.15, OPEN_FRACTION)
    label_smoothing: float = setting(0.0, Number(0, 1, open_high=True))
    ema_decay: float = setting(0.0, Number(0, 1, open_high=True))
    mode: str = setting("vmap", Choice(MODES))
    compile: str = setting("off", Choice(COMPILE_MODES))
    bf16: bool = setting(True, Flag())
    channels_last: bool = setting(True, Flag())
    eval_batch_size: int = setting(1000, BATCH_SIZE)


def lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    """One-cycle: (step + 1) / w for step < w = max(1, round(warmup_fraction * total)), then
    linear decay to 0 at ``total``."""
    peak = max(1, round(warmup_fraction * total))
    if step < peak:
        return (step + 1) / peak
    return max(0.0, 1 - (step - peak) / max(1, total - peak))


class StudentGroup:
    """G models of one architecture as stacked tensors, all initialised from ``init_seed``
    (so methods are compared from the same start, paired by seed)."""

    def __init__(self, settings: GroupSettings, count: int, num_classes: int, init_seed: int,
                 device):
        torch.manual_seed(init_seed)
        model = build_model(settings.model, num_classes)
        models = [copy.deepcopy(model) for _ in range(count)]
        self.settings, self.count, self.device = settings, count, torch.device(device)
        on_cuda = self.device.type == "cuda"
        self.autocast = on_cuda and settings.bf16
        self.channels_last = settings.channels_last
        params, buffers = stack_module_state(models)
        self.params = {n: p.detach().to(self.device).requires_grad_() for n, p in params.items()}
        self.buffers = {n: b.to(self.device) for n, b in buffers.items()}
        averaged = {**self.params, **{n: b for n, b in self.buffers.items()
                                      if torch.is_floating_point(b)}}
        self.ema = ({n: t.detach().clone() for n, t in averaged.items()}
                    if settings.ema_decay else None)
        self.base = model.to("meta")
        self.optimizer = torch.optim.SGD(list(self.params.values()), lr=settings.lr,
                                         momentum=settings.momentum, nesterov=True,
                                         weight_decay=settings.weight_decay)
        self.forward = self._compiled(self._forward_all)

    def _compiled(self, function):
        mode = self.settings.compile
        if mode == "off":
            return function
        if mode == "cuda-graphs" and self.device.type == "cuda":
            return torch.compile(function, mode="reduce-overhead")
        return torch.compile(function)

    def _forward_one(self, params, buffers, images):
        return functional_call(self.base, (params, buffers), (images,))

    def _forward_all(self, params, buffers, images):
        if self.settings.mode == "vmap":
            return vmap(self._forward_one, in_dims=(0, 0, None), randomness="different")(
                params, buffers, images)
        return torch.stack([
            self._forward_one({n: p[g] for n, p in params.items()},
                              {n: b[g] for n, b in buffers.items()}, images)
            for g in range(self.count)])

    def logits(self, images: torch.Tensor, params=None, buffers=None) -> torch.Tensor:
        """[G, N, K] logits of every student on ``images``."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.forward(self.params if params is None else params,
                                self.buffers if buffers is None else buffers, images)

    def evaluated_state(self) -> tuple[dict, dict]:
        """(params, buffers) used for evaluation: the EMA of weights and float buffers (batch
        norm statistics) when kept, else the live ones."""
        if self.ema is None:
            return self.params, self.buffers
        return ({n: self.ema[n] for n in self.params},
                {n: self.ema.get(n, b) for n, b in self.buffers.items()})

    @torch.inference_mode()
    def predict(self, data) -> torch.Tensor:
        """[G, N, K] float32 test logits (the evaluated state), in data order."""
        self.base.eval()
        params, buffers = self.evaluated_state()
        outputs = []
        for start in range(0, len(data), self.settings.eval_batch_size):
            index = torch.arange(start, min(start + self.settings.eval_batch_size, len(data)))
            images, _ = data.batch(index, channels_last=self.channels_last)
            outputs.append(self.logits(images, params, buffers).float())
        self.base.train()
        return torch.cat(outputs, dim=1)

    @torch.inference_mode()
    def finite_outputs(self, images: torch.Tensor) -> torch.Tensor:
        """[G] whether each student's outputs on ``images`` (the evaluated state, as
        :meth:`predict` runs it) are finite: the last step of an epoch can make the weights
        too large after its loss was computed."""
        self.base.eval()
        params, buffers = self.evaluated_state()
        logits = self.logits(images, params, buffers)
        self.base.train()
        return torch.isfinite(logits).reshape(self.count, -1).all(1)

    def update_ema(self) -> None:
        """ema <- ema + (1 - decay) (live - ema) for weights and float buffers."""
        if self.ema is not None:
            live = {**self.params, **self.buffers}
            with torch.no_grad():
                torch._foreach_lerp_(list(self.ema.values()), [live[n] for n in self.ema],
                                     1 - self.settings.ema_decay)

    def state(self) -> dict:
        return {"params": {n: p.detach() for n, p in self.params.items()},
                "buffers": self.buffers, "ema": self.ema,
                "optimizer": self.optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        with torch.no_grad():
            for name, value in state["params"].items():
                self.params[name].copy_(value)
            for name, value in state["buffers"].items():
                self.buffers[name].copy_(value)
            if self.ema is not None:
                for name, value in state["ema"].items():
                    self.ema[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])

    def model_state(self, index: int) -> dict:
        """A plain ``state_dict`` of student ``index`` (the evaluated state) for build_model."""
        params, buffers = self.evaluated_state()
        return {n: t[index].detach().cpu().clone() for n, t in {**params, **buffers}.items()}


def train_group(settings: GroupSettings, students: list[Student], train, stream, banks: dict,
                *, num_classes: int, init_seed: int, device,
                directory: str | Path | None = None, control: RunControl = RunControl()) -> dict:
    """Train ``students`` together; return {"history", "group", "finished", "seconds",
    "images_per_second_per_student"} (``group.predict(test)`` gives their test logits).

    ``train`` is an engine.DeviceData, ``stream`` an AugmentStream (its batch size is the
    students'), ``banks`` maps a teacher name to a LogitBank of that stream. Each student's
    objective is built once from its method (stingy.objective). With ``directory`` the group
    resumes from and checkpoints to ``directory/group.pt``; ``control.stop_after_epochs`` (a
    test hook) returns after that many epochs of this call, ``control.on_epoch`` hears each
    epoch's record. A non-finite mean training loss, or non-finite outputs on the first batch
    of training images (un-augmented), of any student raise ``Diverged`` before the epoch is
    saved.
    """
    check_banks(students, stream, banks, num_classes)
    objectives = [s.method.entry.objective(s.method, num_classes, settings.label_smoothing)
                  for s in students]
    group = StudentGroup(settings, len(students), num_classes, init_seed, device)
    steps = stream.steps(len(train))
    total = settings.epochs * steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        group.optimizer, lambda step: lr_factor(step, total, settings.warmup_fraction))
    start_epoch, history = 0, []
    path = Path(directory) / GROUP_CHECKPOINT if directory is not None else None
    if path is not None and path.is_file():
        saved = load_torch(path, "a group checkpoint", map_location=group.device)
        group.load_state(saved["group"])
        scheduler.load_state_dict(saved["scheduler"])
        start_epoch, history = saved["epoch"], saved["history"]
    first = torch.arange(min(len(train), stream.batch_size), device=train.images.device)
    probe, _ = train.batch(first, channels_last=group.channels_last)
    began, epochs_here = time.perf_counter(), 0
    for epoch in range(start_epoch, settings.epochs):
        if control.stop_after_epochs is not None and epochs_here >= control.stop_after_epochs:
            break
        epoch_began = time.perf_counter()
        bank_epochs = {name: bank.epoch(epoch, group.device) for name, bank in banks.items()}
        loss_sums = train_epoch(group, students, objectives, train, stream, bank_epochs, epoch,
                                scheduler)
        mean_losses, finite = torch.stack(  # the epoch's one read
            [loss_sums / len(train), group.finite_outputs(probe).float()]).tolist()
        check_finite(students, mean_losses, finite, epoch)
        record = {"epoch": epoch + 1, "train_loss": mean_losses,
                  "seconds": time.perf_counter() - epoch_began,
                  "bank_epochs_built": sum(b.built_epochs for b in banks.values())}
        history.append(record)
        epochs_here += 1
        if path is not None:
            save_torch(path, {"group": group.state(), "scheduler": scheduler.state_dict(),
                              "epoch": epoch + 1, "history": history})
        if control.on_epoch is not None:
            control.on_epoch(record)
    seconds = time.perf_counter() - began
    return {"history": history, "group": group, "finished": len(history) == settings.epochs,
            "seconds": seconds,
            "images_per_second_per_student": (epochs_here * len(train) / max(seconds, 1e-9))
            if epochs_here else math.nan}


def check_finite(students: list[Student], mean_losses: list[float], finite: list[float],
                 epoch: int) -> None:
    """``Diverged`` naming the students whose mean loss or outputs are not finite."""
    bad = {s.label: loss for s, loss, outputs in zip(students, mean_losses, finite)
           if not (math.isfinite(loss) and outputs)}
    if bad:
        raise Diverged(f"diverged at epoch {epoch + 1}: the mean training loss or the outputs "
                       f"of {', '.join(bad)} are not finite (mean losses {bad})")


def check_banks(students: list[Student], stream, banks: dict, num_classes: int) -> None:
    """Every student's bank exists, follows the students' stream, and holds what its
    objective reads (a top-k bank: k <= its top_k, and no method needing the dense teacher)."""
    if not students:
        raise ValueError("students must not be empty")
    missing = {s.teacher for s in students if s.teacher is not None} - set(banks)
    if missing:
        raise ValueError(f"no logit bank for teacher(s) {sorted(missing)}")
    for name, bank in banks.items():
        if bank.stream != stream:
            raise ValueError(f"the logit bank of {name!r} was made with {bank.stream}, but the "
                             f"students use {stream}: they would not see the bank's batches")
    for student in students:
        bank = banks.get(student.teacher)
        if bank is None or bank.top_k is None:
            continue
        objective = student.method.entry.objective(student.method, num_classes)
        if objective.needs_dense_teacher or objective.k > bank.top_k:
            raise ValueError(f"student {student.label!r} ({student.method.name}) needs the "
                             f"teacher's dense logits or more than its stored top "
                             f"{bank.top_k}: give it a bank with all logits")


def train_epoch(group: StudentGroup, students, objectives, train, stream, bank_epochs: dict,
                epoch: int, scheduler) -> torch.Tensor:
    """One epoch of steps of every student; returns each student's summed loss [G] on the
    device. The batch order moves to the device once; a step reads nothing to the host."""
    order = stream.order(epoch, len(train)).to(group.device)
    loss_sums = torch.zeros(len(students), device=group.device)
    for step in range(stream.steps(len(train))):
        images, labels = stream.batch(train, order, epoch, step, group.channels_last)
        logits = group.logits(images)
        losses = torch.stack([
            objective(logits[g], bank_epochs[s.teacher].teacher(step) if s.teacher else None,
                      labels)
            for g, (s, objective) in enumerate(zip(students, objectives))])
        group.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        group.optimizer.step()
        scheduler.step()
        group.update_ema()
        loss_sums += losses.detach() * len(labels)
    return loss_sums
