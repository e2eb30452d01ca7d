"""Per-method training losses: pure functions of (student logits, teacher logits, labels).

Each returns a dict of scalar tensors: ``"loss"`` (what is minimised) and its terms, so the
training loop can log per-term means. Teacher logits are constants (no gradient).

Methods (stingy.methods.METHODS; Ma et al. 2022 and its public code,
github.com/HowieMa/stingy-teacher):
    scratch          CE(s, y) (optionally label-smoothed)
    normal_kd        (1 - a) CE(s, y) + a T^2 KL(softmax(z/T) || softmax(s/T))     (Hinton)
    stingy_kd        the same with z replaced by the top-k sparsified logits z_k
    within_m_kd      the KL restricted to the teacher's kept set M (theory.kd_loss)
    tail_bucket_kd   the stingy target plus one tail cell holding the teacher's dropped mass
                     1 - m (theory.topk.kd_loss_topk_unchecked, tail="bucket"; theory.tail_bucket)
    reversed_kd      normal KD from reverse_logits(z) (the reference's reversed-logits ablation)
    label_smoothing  normal KD from the uniform target (z = 0) at T = 1
    nasty_teacher    CE(s, y) - w T_A^2 KL(softmax(z/T_A) || softmax(s/T_A))   (Ma et al. 2021,
                     "Undistillable", self-undermining KD; s is the nasty teacher being trained)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stingy.methods import method as method_entry
from stingy.theory.operators import kd_loss_unchecked, keep_count, reverse_logits
from stingy.theory.topk import kd_loss_topk_unchecked


def kept_classes(method: dict, num_classes: int) -> int | None:
    """k for stingy / within-M KD: ``method.k`` if set, else keep_count(ratio, K)."""
    if not method_entry(method["name"]).sparse_target:
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
        teacher = teacher_logits.detach()
        values, indices = teacher.sort(dim=-1, descending=True, stable=True)  # as topk_teacher
        distill = kd_loss_topk_unchecked(
            student_logits, indices[..., :k], values[..., :k], None, temperature, 1.0, "bucket",
            torch.logsumexp(teacher / temperature, dim=-1))
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
    """The loss of ``method["name"]``'s registry entry (stingy.methods), built from its
    target, sparse_target, within_kept and sign; logits are cast to float32."""
    entry = method_entry(method["name"])
    student_logits = student_logits.float()
    if not entry.distils:
        return scratch_losses(student_logits, labels, label_smoothing)
    if entry.data_free:
        raise ValueError(f"method.name {entry.name!r} has no per-batch loss: it trains "
                         "without data (stingy.empirical.dafl)")
    if entry.target == "uniform":
        return distillation_losses(student_logits, torch.zeros_like(student_logits), labels,
                                   temperature=1.0, alpha=method["alpha"])
    teacher_logits = teacher_logits.float()
    if entry.sign < 0:
        return nasty_losses(student_logits, teacher_logits, labels,
                            temperature=method["temperature"], weight=method["nasty_weight"])
    return distillation_losses(
        student_logits, teacher_logits, labels, temperature=method["temperature"],
        alpha=method["alpha"], k=kept_classes(method, student_logits.shape[-1]),
        within_kept=entry.within_kept, reverse=entry.target == "reversed",
        tail_bucket=entry.tail_bucket)
