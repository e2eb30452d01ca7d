"""Data-free knowledge distillation with DAFL, against a teacher that may release sparse logits.

Chen et al., "Data-Free Learning of Student Networks", ICCV 2019 (arXiv 1904.01186); public
code: github.com/huawei-noah/Efficient-Computing, Data-Efficient-Model-Compression/DAFL
(DAFL-train.py and its README). A generator G maps Gaussian noise z to images; the fixed
teacher acts as the discriminator. Every step:

1. x = G(z), z ~ N(0, I) of size [batch, latent_dim];
2. the teacher gives logits t(x) and penultimate features f(x); the adversary sees only the
   released logits t' = teacher_transform(t) (the identity for a normal or nasty teacher,
   ``sparsify_logits(., k)`` for a Stingy Teacher);
3. G takes a step on L_G = w_oh * L_oh + w_a * L_a + w_ie * L_ie
   (:func:`dafl_generator_losses`, computed from t' and f);
4. the student S takes a step on KD from the released logits on the same images (detached):
   L_S = T^2 * KL(softmax(t'/T) || softmax(S(x)/T)), averaged over the batch.

The teacher stays in eval mode and is never updated. The generator stays in train mode (its
batch norms use batch statistics), as in the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stingy.empirical.runs import load_torch_file
from stingy.io import save_torch
from stingy.progress import bar_disabled
from stingy.theory.operators import distillation_kl
from stingy.theory.validation import check_temperature

# DAFL's CIFAR settings from its public code (README commands and DAFL-train.py): 2000 epochs
# of 120 iterations = 240,000 steps, batch 1024, latent 1000, generator Adam lr 0.02 (default
# betas), student SGD lr 0.1, momentum 0.9, weight decay 5e-4, student lr x0.1 after epochs
# 800 and 1600, KD at temperature 1. Loss weights (oh, a, ie): CIFAR-10 0.05, 0.01, 5;
# CIFAR-100 0.5, 0.1, 20. The entropy term uses log10, as the code does (see
# dafl_generator_losses). The stingy paper's DAFL runs use a ResNet-34 teacher (its PAPER.md
# table); DAFL's own CIFAR student is ResNet-18. A smaller batch (e.g. 256) or fewer steps is
# a compute budget choice, to be stated next to any result.
DAFL_SETTINGS = {
    "cifar10": {"steps": 240_000, "batch_size": 1024, "latent_dim": 1000,
                "generator_lr": 0.02, "student_lr": 0.1, "student_momentum": 0.9,
                "student_weight_decay": 5e-4, "lr_milestones": [96_000, 192_000],
                "lr_gamma": 0.1, "temperature": 1.0, "onehot_weight": 0.05,
                "activation_weight": 0.01, "entropy_weight": 5.0},
    "cifar100": {"steps": 240_000, "batch_size": 1024, "latent_dim": 1000,
                 "generator_lr": 0.02, "student_lr": 0.1, "student_momentum": 0.9,
                 "student_weight_decay": 5e-4, "lr_milestones": [96_000, 192_000],
                 "lr_gamma": 0.1, "temperature": 1.0, "onehot_weight": 0.5,
                 "activation_weight": 0.1, "entropy_weight": 20.0},
}


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


def distill_data_free(teacher: nn.Module, student: nn.Module, *,
                      teacher_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      steps: int, batch_size: int = 1024, latent_dim: int = 1000,
                      generator_lr: float = 0.02, student_lr: float = 0.1,
                      student_momentum: float = 0.9, student_weight_decay: float = 5e-4,
                      lr_milestones: list[int] | tuple[int, ...] = (), lr_gamma: float = 0.1,
                      temperature: float = 1.0, onehot_weight: float = 1.0,
                      activation_weight: float = 0.1, entropy_weight: float = 5.0,
                      device: str | torch.device = "cpu", seed: int = 0, amp: bool = False,
                      generator: Generator | None = None,
                      checkpoint_path: str | Path | None = None, checkpoint_every: int = 1000,
                      log_every: int = 100, progress: bool = True,
                      on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Train a DAFL generator against ``teacher`` and ``student`` by KD on its images.

    ``teacher_transform`` maps the teacher's logits to what it releases (None: the identity;
    ``lambda z: sparsify_logits(z, k)`` for a Stingy Teacher); the generator's losses and the
    student's KD target both use the released logits, the activation loss the teacher's
    features. Both networks must accept ``return_features=True`` (the teacher) and the
    generator's [N, 3, 32, 32] images. ``amp`` autocasts to bfloat16 on CUDA.

    Every ``log_every`` steps (and at the last) a record {step, onehot, activation, entropy,
    generator_loss, kd_loss, agreement (student argmax == released-teacher argmax on the
    batch), student_lr} is appended to the history and passed to ``on_step(step, record)``.
    With ``checkpoint_path``, the generator, student, optimizers, scheduler, random states and
    history are saved atomically every ``checkpoint_every`` steps and at the end, and a run
    finding that file resumes from it. Returns {"steps", "history", "final"} (plain data); the
    student (and ``generator``, if given) are trained in place.
    """
    temperature = check_temperature(temperature)
    for name, value in (("steps", steps), ("batch_size", batch_size), ("latent_dim", latent_dim),
                        ("checkpoint_every", checkpoint_every), ("log_every", log_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    device = torch.device(device)
    transform = teacher_transform or (lambda logits: logits)
    if generator is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = Generator(latent_dim)
    if generator.latent_dim != latent_dim:
        raise ValueError(f"latent_dim ({latent_dim}) must match the generator's "
                         f"({generator.latent_dim})")
    generator, student, teacher = generator.to(device), student.to(device), teacher.to(device)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=generator_lr)
    optimizer_s = torch.optim.SGD(student.parameters(), lr=student_lr, momentum=student_momentum,
                                  weight_decay=student_weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer_s, list(lr_milestones), lr_gamma)
    noise = torch.Generator(device=device).manual_seed(seed)
    start, history = 0, []
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        state = load_torch_file(Path(checkpoint_path), "DAFL checkpoint")
        generator.load_state_dict(state["generator"])
        student.load_state_dict(state["student"])
        optimizer_g.load_state_dict(state["optimizer_generator"])
        optimizer_s.load_state_dict(state["optimizer_student"])
        scheduler.load_state_dict(state["scheduler"])
        noise.set_state(state["noise_rng"])
        torch.set_rng_state(state["cpu_rng"])
        start, history = state["step"], state["history"]

    def save(step: int) -> None:
        save_torch(checkpoint_path, {
            "step": step, "generator": generator.state_dict(), "student": student.state_dict(),
            "optimizer_generator": optimizer_g.state_dict(),
            "optimizer_student": optimizer_s.state_dict(), "scheduler": scheduler.state_dict(),
            "noise_rng": noise.get_state(), "cpu_rng": torch.get_rng_state(),
            "history": history})

    teacher_was_training = teacher.training
    teacher_flags = [p.requires_grad for p in teacher.parameters()]
    teacher.eval().requires_grad_(False)
    generator.train()
    student.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=amp and device.type == "cuda")
    try:
        for step in tqdm(range(start + 1, steps + 1), desc="DAFL", disable=bar_disabled(progress),
                         initial=start, total=steps):
            z = torch.randn(batch_size, latent_dim, device=device, generator=noise)
            with autocast:
                images = generator(z)
                teacher_logits, teacher_features = teacher(images, return_features=True)
                released = transform(teacher_logits.float())
                losses = dafl_generator_losses(released, teacher_features.float(),
                                               onehot_weight=onehot_weight,
                                               activation_weight=activation_weight,
                                               entropy_weight=entropy_weight)
                student_logits = student(images.detach()).float()
            target = torch.log_softmax(released.detach() / temperature, dim=1)
            kd = temperature ** 2 * distillation_kl(student_logits, target, temperature).mean()
            optimizer_g.zero_grad(set_to_none=True)
            optimizer_s.zero_grad(set_to_none=True)
            (losses["total"] + kd).backward()  # disjoint graphs: G gets L_G, S gets L_S
            optimizer_g.step()
            optimizer_s.step()
            scheduler.step()
            if step % log_every == 0 or step == steps:
                record = {"step": step, **{k: v.item() for k, v in losses.items() if k != "total"},
                          "generator_loss": losses["total"].item(), "kd_loss": kd.item(),
                          "agreement": float((student_logits.argmax(1) ==
                                              released.argmax(1)).float().mean()),
                          "student_lr": optimizer_s.param_groups[0]["lr"]}
                if not all(math.isfinite(v) for v in record.values()):
                    raise FloatingPointError(f"DAFL diverged at step {step}: {record}")
                history.append(record)
                if on_step is not None:
                    on_step(step, record)
            if checkpoint_path is not None and (step % checkpoint_every == 0 or step == steps):
                save(step)
    finally:
        teacher.train(teacher_was_training)
        for param, flag in zip(teacher.parameters(), teacher_flags):
            param.requires_grad_(flag)
    return {"steps": steps, "history": history, "final": history[-1] if history else {}}
