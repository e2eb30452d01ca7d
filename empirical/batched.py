"""Several students of one architecture trained at once on the same batches.

The G students' parameters and buffers are stacked (``torch.func.stack_module_state``) into
leaf tensors of shape [G, ...]; one SGD optimizer steps them all (SGD, momentum and weight
decay act elementwise, so this is G independent optimizers). ``mode="vmap"`` runs the G
forward passes as one ``torch.func.vmap`` over ``functional_call``; ``mode="loop"`` runs them
one after another on slices of the same tensors (the baseline the benchmark compares). Batch
norm updates each student's own running statistics in both modes.

Every student reads its teacher's logits from a :class:`stingy.empirical.bank.LogitBank`
(no teacher forward pass while students train); reversed logits are made once per epoch, and
the losses use ``stingy.theory.operators.kd_loss_unchecked``, so the step itself has no
validation and no host-device sync: losses are summed on the device and read once per
epoch. On CUDA: bf16 autocast, channels_last, and
``compile`` = "default" (torch.compile) or "cuda-graphs" (torch.compile mode
"reduce-overhead"); on CPU "cuda-graphs" is skipped (plain compile) and bf16/channels_last
are off.

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
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from stingy.empirical.models import MODEL_NAMES, build_model
from stingy.io import save_torch
from stingy.methods import METHODS, names
from stingy.theory.operators import kd_loss_unchecked, reverse_logits

MODES = ("vmap", "loop")
COMPILE_MODES = ("off", "default", "cuda-graphs")
# the registry's (stingy.methods) CIFAR methods whose target the bank can build
TARGET_METHODS = tuple(name for name in names("cifar", data_free=False)
                       if METHODS[name].target != "uniform" and not METHODS[name].tail_bucket)
GROUP_CHECKPOINT = "group.pt"


@dataclass(frozen=True)
class Student:
    """One student: its method (a name of the registry, stingy.methods), the bank it reads and
    the method's numbers. ``k`` is the kept count of a sparse target (stingy / within-M)."""

    label: str
    method: str
    teacher: str | None = None
    temperature: float = 4.0
    alpha: float = 0.9
    k: int | None = None
    nasty_weight: float = 0.04

    def __post_init__(self):
        if self.method not in TARGET_METHODS:
            raise ValueError(f"method must be one of {', '.join(TARGET_METHODS)}, got "
                             f"{self.method!r}")
        entry = METHODS[self.method]
        if entry.needs_teacher != (self.teacher is not None):
            raise ValueError(f"student {self.label!r}: teacher must be given exactly when the "
                             f"method needs one")
        if entry.sparse_target and not (isinstance(self.k, int) and self.k >= 1):
            raise ValueError(f"student {self.label!r}: method {self.method} needs k >= 1")
        if not self.temperature > 0 or not 0 <= self.alpha <= 1:
            raise ValueError(f"student {self.label!r}: temperature must be > 0 and alpha in "
                             f"[0, 1], got {self.temperature}, {self.alpha}")

    def target_key(self):
        """Students with equal keys share one epoch of teacher logits (reversed or not)."""
        entry = METHODS[self.method]
        return None if not entry.distils else (self.teacher, entry.target == "reversed")


@dataclass(frozen=True)
class GroupSettings:
    """How a group trains: SGD (nesterov) with a one-cycle learning rate (linear warm-up over
    ``warmup_fraction`` of the steps, then linear decay to 0), optional label smoothing on the
    CE term and an EMA of the weights (``ema_decay`` 0: none) used for evaluation."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    mode: str = "vmap"
    compile: str = "off"
    bf16: bool = True
    channels_last: bool = True
    eval_batch_size: int = 1000

    def __post_init__(self):
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {', '.join(MODEL_NAMES)}, got {self.model!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got "
                             f"{self.compile!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.lr > 0 or not 0 <= self.ema_decay < 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError("lr must be > 0, ema_decay in [0, 1) and label_smoothing in [0, 1)")


def student_loss(student: Student, student_logits, teacher_logits, labels,
                 label_smoothing: float = 0.0) -> torch.Tensor:
    """The loss of ``student`` on one batch, unchecked (no host-device sync):

    scratch   CE_eps(s, y) (label smoothing eps);
    normal_kd, stingy_kd, within_m_kd, reversed_kd (registry names, stingy.methods)
              kd_loss_unchecked(s, z, y, T, a, k, within_kept) = (1 - a) CE(s, y)
              + a T^2 KL(softmax(z_k / T) || softmax(s / T)) (within-M: over M only), where z is
              already reversed for "reversed" (see :func:`epoch_teacher_logits`);
    nasty_teacher  CE(s, y) - w T^2 KL(softmax(z / T) || softmax(s / T)) (Nasty Teacher).
    """
    student_logits = student_logits.float()
    entry = METHODS[student.method]
    if not entry.distils:
        return F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if entry.sign < 0:
        divergence = kd_loss_unchecked(student_logits, teacher_logits, None,
                                       student.temperature, 1.0)
        return F.cross_entropy(student_logits, labels) - student.nasty_weight * divergence
    k = student.k if entry.sparse_target else None
    return kd_loss_unchecked(student_logits, teacher_logits, labels, student.temperature,
                             student.alpha, k, entry.within_kept)


def epoch_teacher_logits(bank_logits: torch.Tensor, key) -> torch.Tensor:
    """One epoch of a bank's logits as float32, reversed (``reverse_logits``) for the
    reversed-logits students: done once per epoch, outside the steps."""
    logits = bank_logits.float()
    return reverse_logits(logits) if key[1] else logits


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
        self.channels_last = on_cuda and settings.channels_last
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


def train_group(settings: GroupSettings, students: list[Student], train, test, stream,
                banks: dict, *, num_classes: int, init_seed: int, device,
                directory: str | Path | None = None, stop_after_epochs: int | None = None,
                on_epoch=None) -> dict:
    """Train ``students`` together; return {"history", "test_logits" [G, N, K], "group",
    "finished", "seconds"}.

    ``train`` / ``test`` are engine.DeviceData, ``stream`` an AugmentStream (its batch size is
    the students'), ``banks`` maps a teacher name to a LogitBank of that stream. With
    ``directory`` the group resumes from and checkpoints to ``directory/group.pt``.
    ``stop_after_epochs`` (a test hook) returns after that many epochs of this call.
    """
    if not students:
        raise ValueError("students must not be empty")
    missing = {s.teacher for s in students if s.teacher is not None} - set(banks)
    if missing:
        raise ValueError(f"no logit bank for teacher(s) {sorted(missing)}")
    for name, bank in banks.items():
        if bank.stream != stream:
            raise ValueError(f"the logit bank of {name!r} was made with {bank.stream}, but the "
                             f"students use {stream}: they would not see the bank's batches")
    group = StudentGroup(settings, len(students), num_classes, init_seed, device)
    steps = stream.steps(len(train))
    total = settings.epochs * steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        group.optimizer, lambda step: lr_factor(step, total, settings.warmup_fraction))
    start_epoch, history = 0, []
    path = Path(directory) / GROUP_CHECKPOINT if directory is not None else None
    if path is not None and path.is_file():
        saved = torch.load(path, map_location=group.device, weights_only=True)
        group.load_state(saved["group"])
        scheduler.load_state_dict(saved["scheduler"])
        start_epoch, history = saved["epoch"], saved["history"]
    keys = sorted({s.target_key() for s in students if s.target_key() is not None}, key=repr)
    began, epochs_here = time.perf_counter(), 0
    for epoch in range(start_epoch, settings.epochs):
        if stop_after_epochs is not None and epochs_here >= stop_after_epochs:
            break
        epoch_began = time.perf_counter()
        bank_epochs = {name: banks[name].epoch(epoch, group.device)
                       for name in {key[0] for key in keys}}
        targets = {key: epoch_teacher_logits(bank_epochs[key[0]].dense, key) for key in keys}
        order = stream.order(epoch, len(train))
        loss_sums = torch.zeros(len(students), device=group.device)
        for step in range(steps):
            images, labels = stream.batch(train, order, epoch, step, group.channels_last)
            logits = group.logits(images)
            rows = slice(step * stream.batch_size, step * stream.batch_size + len(labels))
            losses = torch.stack([
                student_loss(s, logits[g], targets[s.target_key()][rows] if s.target_key()
                             else None, labels, settings.label_smoothing)
                for g, s in enumerate(students)])
            group.optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            group.optimizer.step()
            scheduler.step()
            group.update_ema()
            loss_sums += losses.detach() * len(labels)
        record = {"epoch": epoch + 1, "train_loss": (loss_sums / len(train)).tolist(),
                  "seconds": time.perf_counter() - epoch_began,
                  "bank_epochs_built": sum(b.built_epochs for b in banks.values())}
        history.append(record)
        epochs_here += 1
        if path is not None:
            save_torch(path, {"group": group.state(), "scheduler": scheduler.state_dict(),
                              "epoch": epoch + 1, "history": history})
        if on_epoch is not None:
            on_epoch(record)
    finished = len(history) == settings.epochs
    test_logits = group.predict(test) if finished else None
    return {"history": history, "test_logits": test_logits, "group": group,
            "finished": finished, "seconds": time.perf_counter() - began,
            "images_per_second_per_student": (epochs_here * len(train)
                                              / max(time.perf_counter() - began, 1e-9))
            if epochs_here else math.nan}
