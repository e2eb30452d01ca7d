"""Data-free knowledge distillation with DAFL, against a teacher that may release sparse logits.

Chen et al., "Data-Free Learning of Student Networks", ICCV 2019 (arXiv 1904.01186); public
code: github.com/huawei-noah/Efficient-Computing, Data-Efficient-Model-Compression/DAFL
(DAFL-train.py and its README). A generator G maps Gaussian noise z to images; the fixed
teacher acts as the discriminator. Every step:

1. x = G(z), z ~ N(0, I) of size [batch, latent_dim];
2. the teacher gives logits t(x) and penultimate features f(x); the adversary sees only the
   released logits t' = teacher_transform(t) (the identity for a normal or nasty teacher,
   its top-k logits and -inf elsewhere for a Stingy Teacher, ``Objective.release``);
3. G takes a step on L_G = w_oh * L_oh + w_a * L_a + w_ie * L_ie
   (:func:`dafl_generator_losses`, computed from t' and f);
4. the student S takes a step on KD from the released logits on the same images (detached):
   L_S = T^2 * KL(softmax(t'/T) || softmax(S(x)/T)), averaged over the batch: the ``dafl_kd``
   registry method's objective (stingy.objective).

DAFL's CIFAR settings from its public code are the defaults of a recipe's ``[dafl]`` section
(stingy.empirical.recipes.DaflSettings). The stingy paper's DAFL runs use a ResNet-34 teacher;
DAFL's own CIFAR student is ResNet-18. A smaller batch or fewer steps is a compute budget
choice, to be stated next to any result.

The teacher stays in eval mode and is never updated. The generator stays in train mode (its
batch norms use batch statistics), as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stingy.io import load_torch, save_torch
from stingy.progress import bar_disabled

class Generator(nn.Module):
    """DAFL's CIFAR generator: z [N, latent_dim] -> images [N, channels, 32, 32].

    Linear to 128 x 8 x 8, BN, x2 nearest upsampling, conv3x3 128 -> 128, BN, LeakyReLU(0.2),
    x2 upsampling, conv3x3 128 -> 64, BN, LeakyReLU(0.2), conv3x3 64 -> channels, tanh, and a
    final BatchNorm without affine parameters, so in train mode every output channel has
    mean 0 and variance 1 over the batch: the images land in the scale of normalised inputs.
    The two inner BNs use eps = 0.8, as DAFL-train.py writes ``BatchNorm2d(128, 0.8)``.
    """

    def __init__(self, latent_dim: int = 1000, image_size: int = 32, channels: int = 3):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        self.latent_dim, self.init_size = latent_dim, image_size // 4
        self.project = nn.Linear(latent_dim, 128 * self.init_size ** 2)
        self.bn0 = nn.BatchNorm2d(128)
        self.block1 = nn.Sequential(nn.Conv2d(128, 128, 3, 1, 1), nn.BatchNorm2d(128, eps=0.8),
                                    nn.LeakyReLU(0.2, inplace=True))
        self.block2 = nn.Sequential(nn.Conv2d(128, 64, 3, 1, 1), nn.BatchNorm2d(64, eps=0.8),
                                    nn.LeakyReLU(0.2, inplace=True),
                                    nn.Conv2d(64, channels, 3, 1, 1), nn.Tanh(),
                                    nn.BatchNorm2d(channels, affine=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.project(z).view(len(z), 128, self.init_size, self.init_size)
        out = F.interpolate(self.bn0(out), scale_factor=2)
        out = F.interpolate(self.block1(out), scale_factor=2)
        return self.block2(out)


def dafl_generator_losses(teacher_logits: torch.Tensor, teacher_features: torch.Tensor, *,
                          onehot_weight: float = 1.0, activation_weight: float = 0.1,
                          entropy_weight: float = 5.0) -> dict[str, torch.Tensor]:
    """DAFL's generator losses (Chen et al. 2019, Eq. 2, 3, 5 and 6; DAFL-train.py).

    With t the (released) teacher logits of a batch of N generated images, f their features:

        onehot     = (1/N) sum_j CE(t_j, argmax_i t_j(i))         (pseudo-label confidence)
        activation = -(1/(N*d)) sum_j ||f_j||_1                    (large feature activations)
        entropy    = -H10(p_bar),  p_bar = (1/N) sum_j softmax(t_j),
                     H10(p) = -sum_i p(i) log10 p(i)               (balanced classes)
        total      = onehot_weight * onehot + activation_weight * activation
                     + entropy_weight * entropy

    The entropy is in log base 10 as in the released code (the paper writes H without a
    base), so its published weights apply unchanged. Logits may hold -inf (a Stingy Teacher's
    released logits): classes with p_bar(i) = 0 add 0 (0 log 0 = 0) and no nan reaches the
    value or the gradients.
    """
    if teacher_logits.ndim != 2 or teacher_features.ndim != 2 or \
            len(teacher_logits) != len(teacher_features):
        raise ValueError(f"teacher_logits [N, K] and teacher_features [N, d] must be 2-D with the "
                         f"same N, got {tuple(teacher_logits.shape)} and "
                         f"{tuple(teacher_features.shape)}")
    onehot = F.cross_entropy(teacher_logits, teacher_logits.argmax(dim=1))
    activation = -teacher_features.abs().mean()
    mean_probs = torch.softmax(teacher_logits, dim=1).mean(dim=0)
    positive = mean_probs > 0
    safe = torch.where(positive, mean_probs, torch.ones_like(mean_probs))
    entropy = torch.where(positive, mean_probs * torch.log10(safe), torch.zeros_like(safe)).sum()
    total = onehot_weight * onehot + activation_weight * activation + entropy_weight * entropy
    return {"onehot": onehot, "activation": activation, "entropy": entropy, "total": total}


@dataclass
class DaflState:
    """What a DAFL run trains and saves: the generator, the student, their optimizers, the
    student's lr schedule, the noise generator and the history of logged records."""

    generator: Generator
    student: nn.Module
    optimizer_generator: torch.optim.Optimizer
    optimizer_student: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.MultiStepLR
    noise: torch.Generator
    history: list = field(default_factory=list)
    step: int = 0

    def save(self, path: Path) -> None:
        save_torch(path, {
            "step": self.step, "generator": self.generator.state_dict(),
            "student": self.student.state_dict(),
            "optimizer_generator": self.optimizer_generator.state_dict(),
            "optimizer_student": self.optimizer_student.state_dict(),
            "scheduler": self.scheduler.state_dict(), "noise_rng": self.noise.get_state(),
            "cpu_rng": torch.get_rng_state(), "history": self.history})

    def load(self, path: Path) -> None:
        saved = load_torch(path, "DAFL checkpoint")
        self.generator.load_state_dict(saved["generator"])
        self.student.load_state_dict(saved["student"])
        self.optimizer_generator.load_state_dict(saved["optimizer_generator"])
        self.optimizer_student.load_state_dict(saved["optimizer_student"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.noise.set_state(saved["noise_rng"])
        torch.set_rng_state(saved["cpu_rng"])
        self.step, self.history = saved["step"], saved["history"]


def build_state(student: nn.Module, recipe, device: torch.device,
                generator: Generator | None = None) -> DaflState:
    """A fresh DAFL state: the generator (seeded by ``recipe.seed`` unless given), Adam on it,
    the recipe's optimizer on the student, its lr x ``lr_gamma`` at each milestone fraction."""
    from stingy.empirical.engine import build_optimizer

    settings = recipe.dafl
    if generator is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            generator = Generator(settings.latent_dim)
    if generator.latent_dim != settings.latent_dim:
        raise ValueError(f"dafl.latent_dim ({settings.latent_dim}) must match the generator's "
                         f"({generator.latent_dim})")
    generator, student = generator.to(device), student.to(device)
    optimizer_student = build_optimizer(student.parameters(), recipe.optim)
    milestones = [round(fraction * settings.steps) for fraction in settings.lr_milestone_fractions]
    return DaflState(
        generator, student,
        torch.optim.Adam(generator.parameters(), lr=settings.generator_lr, fused=True),
        optimizer_student,
        torch.optim.lr_scheduler.MultiStepLR(optimizer_student, milestones, settings.lr_gamma),
        torch.Generator(device=device).manual_seed(recipe.seed))


def distill_data_free(teacher: nn.Module, student: nn.Module, recipe, *, num_classes: int,
                      device: str | torch.device = "cpu", generator: Generator | None = None,
                      checkpoint_path: str | Path | None = None,
                      on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train a DAFL generator against ``teacher`` and ``student`` by KD on its images.

    ``recipe`` (stingy.empirical.recipes.Recipe, method ``dafl_kd``) gives everything: its
    ``dafl`` section the generator, steps, batch and loss weights; its ``optim`` the student's
    optimizer; its ``method`` the objective (T, and k when ``method.k`` or ``method.ratio`` is
    set: the teacher then releases its top-k logits only, a Stingy Teacher); ``seed``;
    ``train.bf16`` (autocast on CUDA) and ``train.progress``. The generator's losses and the
    student's KD target both use the released logits, the activation loss the teacher's
    features; the teacher must accept ``return_features=True`` and give ``num_classes``
    logits.

    Every ``dafl.log_every`` steps (and at the last) a record {step, onehot, activation,
    entropy, generator_loss, kd_loss, agreement (student argmax == released-teacher argmax on
    the batch), student_lr} is appended to the history and passed to ``on_step(step,
    record)``. With ``checkpoint_path`` the state is saved atomically every
    ``dafl.checkpoint_every`` steps and at the end, and a run finding that file resumes from
    it. A non-finite logged loss, or non-finite weights at a checkpoint or at the end, raise
    FloatingPointError before anything of them is saved (weights that are finite but too large
    show in the caller's test outputs). Returns {"steps", "released_k",
    "history", "final"}; the student (and ``generator``, if given) are trained in place.
    """
    if not recipe.entry.data_free:
        raise ValueError(f"method.name must be a data-free method (dafl_kd), got "
                         f"{recipe.method.name!r}")
    device = torch.device(device)
    objective = recipe.entry.objective(recipe.method, num_classes)
    state = build_state(student, recipe, device, generator)
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        state.load(Path(checkpoint_path))
    settings = recipe.dafl
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=recipe.train.bf16 and device.type == "cuda")
    with frozen(teacher):
        state.generator.train()
        state.student.train()
        for step in tqdm(range(state.step + 1, settings.steps + 1), desc="DAFL",
                         disable=bar_disabled(recipe.train.progress), initial=state.step,
                         total=settings.steps):
            losses, kd, agreement = dafl_step(state, teacher, objective, settings, autocast,
                                              device)
            state.step = step
            if step % settings.log_every == 0 or step == settings.steps:
                record = log_record(state, step, losses, kd, agreement)
                if on_step is not None:
                    on_step(step, record)
            if checkpoint_path is not None and (step % settings.checkpoint_every == 0
                                                or step == settings.steps):
                check_finite_weights(state, step)
                state.save(Path(checkpoint_path))
    check_finite_weights(state, state.step)
    return {"steps": settings.steps, "released_k": objective.k, "history": state.history,
            "final": state.history[-1] if state.history else {}}


def dafl_step(state: DaflState, teacher, objective, settings, autocast, device):
    """One step of both networks; returns (generator losses, KD loss, agreement), tensors on
    the device (no host read)."""
    z = torch.randn(settings.batch_size, settings.latent_dim, device=device,
                    generator=state.noise)
    with autocast:
        images = state.generator(z)
        teacher_logits, teacher_features = teacher(images, return_features=True)
        teacher_logits = teacher_logits.float()
        released = objective.release(teacher_logits)
        losses = dafl_generator_losses(released, teacher_features.float(),
                                       onehot_weight=settings.onehot_weight,
                                       activation_weight=settings.activation_weight,
                                       entropy_weight=settings.entropy_weight)
        student_logits = state.student(images.detach()).float()
    kd = objective(student_logits, teacher_logits.detach())
    state.optimizer_generator.zero_grad(set_to_none=True)
    state.optimizer_student.zero_grad(set_to_none=True)
    (losses["total"] + kd).backward()  # disjoint graphs: G gets L_G, S gets L_S
    state.optimizer_generator.step()
    state.optimizer_student.step()
    state.scheduler.step()
    agreement = (student_logits.argmax(1) == released.argmax(1)).float().mean()
    return losses, kd, agreement


def log_record(state: DaflState, step: int, losses: dict, kd, agreement) -> dict:
    """The logged record of ``step`` (reads the losses to the host); FloatingPointError when
    any is not finite."""
    record = {"step": step, **{k: v.item() for k, v in losses.items() if k != "total"},
              "generator_loss": losses["total"].item(), "kd_loss": kd.item(),
              "agreement": agreement.item(),
              "student_lr": state.optimizer_student.param_groups[0]["lr"]}
    if not all(math.isfinite(v) for v in record.values()):
        raise FloatingPointError(f"DAFL diverged at step {step}: {record}")
    state.history.append(record)
    return record


def check_finite_weights(state: DaflState, step: int) -> None:
    """FloatingPointError when the student's or the generator's weights are not finite (the
    logged losses are read before a step's update, and only every ``log_every`` steps)."""
    for name, model in (("student", state.student), ("generator", state.generator)):
        tensors = [t for t in (*model.parameters(), *model.buffers())
                   if torch.is_floating_point(t)]
        if not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            raise FloatingPointError(f"DAFL diverged at step {step}: the {name}'s weights "
                                     f"are not finite")


@contextmanager
def frozen(teacher: nn.Module):
    """The teacher in eval mode with no gradients, restored afterwards."""
    was_training = teacher.training
    flags = [p.requires_grad for p in teacher.parameters()]
    teacher.eval().requires_grad_(False)
    try:
        yield teacher
    finally:
        teacher.train(was_training)
        for param, flag in zip(teacher.parameters(), flags):
            param.requires_grad_(flag)

