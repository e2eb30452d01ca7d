"""Per-method training losses: pure functions of (student logits, teacher logits, labels).

Each returns a dict of scalar tensors: ``"loss"`` (what is minimised) and its terms, so the
training loop can log per-term means. Teacher logits are constants (no gradient).

Methods (Ma et al. 2022 and its public code, github.com/HowieMa/stingy-teacher):
    scratch   CE(s, y) (optionally label-smoothed)
    kd        (1 - a) CE(s, y) + a T^2 KL(softmax(z/T) || softmax(s/T))           (Hinton)
    stingy    the same with z replaced by the top-k sparsified logits z_k
    within    within-M KD: the KL restricted to the teacher's kept set M (theory.kd_loss)
    bucket    tail-bucket KD: the stingy target plus one tail cell holding the teacher's dropped
              mass 1 - m (theory.topk.kd_loss_topk, tail="bucket"; theory.tail_bucket)
    reversed  normal KD from reverse_logits(z) (the reference's reversed-logits ablation)
    nasty     CE(s, y) - w T_A^2 KL(softmax(z/T_A) || softmax(s/T_A))   (Ma et al. 2021,
              "Undistillable", self-undermining KD; s is the nasty teacher being trained)
"""

from __future__ import annotations

import torch.nn.functional as F

from stingy.theory.operators import kd_loss_unchecked, keep_count, reverse_logits
from stingy.theory.topk import kd_loss_topk, topk_teacher

DISTILLING_METHODS = ("kd", "stingy", "within", "reversed", "bucket")
SPARSE_METHODS = ("stingy", "within", "bucket")


def kept_classes(method: dict, num_classes: int) -> int | None:
    """k for stingy / within-M / tail-bucket KD: ``method.k`` if set, else keep_count(ratio, K)."""
    if method["name"] not in SPARSE_METHODS:
        return None
    if method["k"]:
        if method["k"] > num_classes:
            raise ValueError(f"method.k must be in [1, {num_classes}], got {method['k']}")
        return int(method["k"])
    return keep_count(method["ratio"], num_classes)


def scratch_losses(student_logits, labels, label_smoothing: float = 0.0) -> dict:
    """L = CE(s, y) with label smoothing eps: targets (1 - eps) one-hot + eps / K."""
    ce = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    return {"loss": ce, "ce": ce}


def distillation_losses(student_logits, teacher_logits, labels, *, temperature: float,
                        alpha: float, k: int | None = None, within_kept: bool = False,
                        reverse: bool = False, tail_bucket: bool = False) -> dict:
    """L = (1 - a) CE(s, y) + a T^2 KL(p_teacher || softmax(s/T))  (stingy.theory.operators.kd_loss).

    The distillation term is ``kd_loss_unchecked`` with alpha = 1 (= T^2 KL; the recipe was
    checked when loaded, so the training step runs no checks), reported as "distill";
    k sparsifies the teacher (stingy), ``within_kept`` restricts the KL to M, ``reverse``
    applies ``reverse_logits`` to the teacher first, ``tail_bucket`` keeps the teacher's
    tail mass 1 - m as one more cell (needs k).
    """
    if reverse:
        teacher_logits = reverse_logits(teacher_logits, validate=False)
    ce = F.cross_entropy(student_logits, labels)
    if tail_bucket:
        stored = topk_teacher(teacher_logits.detach(), k, (temperature,))
        distill = kd_loss_topk(student_logits, stored.indices, stored.values,
                               temperature=temperature, alpha=1.0, tail="bucket",
                               teacher_logsumexp=stored.logsumexp_at(temperature))
    else:
        distill = kd_loss_unchecked(student_logits, teacher_logits, None, temperature, 1.0, k=k,
                                    within_kept=within_kept)
    return {"loss": (1 - alpha) * ce + alpha * distill, "ce": ce, "distill": distill}


def nasty_losses(student_logits, teacher_logits, labels, *, temperature: float,
                 weight: float) -> dict:
    """L = CE(s, y) - w T_A^2 KL(softmax(z/T_A) || softmax(s/T_A)) (Nasty Teacher, ICLR 2021).

    The student s becomes the nasty teacher: accurate, but with tempered outputs pushed away
    from the normal teacher z. Reference: w = 0.04, T_A = 4 (CIFAR-10); w = 0.005, T_A = 20
    (CIFAR-100).
    """
    ce = F.cross_entropy(student_logits, labels)
    divergence = kd_loss_unchecked(student_logits, teacher_logits, None, temperature, 1.0)
    return {"loss": ce - weight * divergence, "ce": ce, "divergence": divergence}


def method_losses(method: dict, student_logits, teacher_logits, labels,
                  label_smoothing: float = 0.0) -> dict:
    """Dispatch on ``method["name"]`` (a recipe's [method] table); logits are cast to float32."""
    name = method["name"]
    student_logits = student_logits.float()
    if name == "scratch":
        return scratch_losses(student_logits, labels, label_smoothing)
    teacher_logits = teacher_logits.float()
    if name == "nasty":
        return nasty_losses(student_logits, teacher_logits, labels,
                            temperature=method["temperature"], weight=method["nasty_weight"])
    if name in DISTILLING_METHODS:
        return distillation_losses(
            student_logits, teacher_logits, labels, temperature=method["temperature"],
            alpha=method["alpha"], k=kept_classes(method, student_logits.shape[-1]),
            within_kept=name == "within", reverse=name == "reversed",
            tail_bucket=name == "bucket")
    raise ValueError(f"method.name {name!r} has no per-batch loss (allowed: scratch, nasty, "
                     f"{', '.join(DISTILLING_METHODS)})")
