"""Held-out metrics of a language model against the true next token and the full teacher.

Per held-out token, with q the model's softmax, p the teacher's (T = 1) and y the next token:

    cross_entropy    -log q(y), nats per token
    kl_to_teacher    KL(p || q) = sum_i p(i) (log p(i) - log q(i)), nats per token
    top1_agreement   share of tokens where argmax q = argmax p
    accuracy         share of tokens where argmax q = y
    ece              expected calibration error of the top-1 prediction: sum over ``bins``
                     equal-width confidence bins of |sum (confidence - correct)| / tokens
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class HeldOut(NamedTuple):
    """Held-out ``inputs`` and ``targets`` [blocks, C] and the teacher's log-softmax on them,
    [blocks * C, V] (float32, on the models' device)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    teacher_log_probs: torch.Tensor


@torch.no_grad()
def held_out_reference(teacher, inputs: torch.Tensor, targets: torch.Tensor, batch: int,
                       device) -> HeldOut:
    inputs, targets = inputs.to(device), targets.to(device)
    parts = [torch.log_softmax(teacher(inputs[start:start + batch]).flatten(0, 1).float(), -1)
             for start in range(0, len(inputs), batch)]
    return HeldOut(inputs, targets, torch.cat(parts))


def calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int) -> float:
    """Expected calibration error over ``bins`` equal-width confidence bins."""
    index = (confidence * bins).long().clamp_(0, bins - 1)
    gap = torch.zeros(bins, dtype=torch.float64, device=confidence.device)
    gap.index_add_(0, index, confidence.double() - correct.double())
    return float(gap.abs().sum() / len(confidence))


@torch.no_grad()
def evaluate(model, held_out: HeldOut, batch: int, bins: int) -> dict:
    """The metrics of the module docstring over every held-out token."""
    model.eval()
    totals = {"cross_entropy": 0.0, "kl_to_teacher": 0.0, "top1_agreement": 0.0,
              "accuracy": 0.0}
    confidences, corrects = [], []
    tokens = held_out.targets.numel()
    width = held_out.inputs.shape[-1]
    for start in range(0, len(held_out.inputs), batch):
        log_q = torch.log_softmax(model(held_out.inputs[start:start + batch]).flatten(0, 1)
                                  .float(), dim=-1)
        target = held_out.targets[start:start + batch].flatten()
        log_p = held_out.teacher_log_probs[start * width:(start + batch) * width]
        confidence, prediction = log_q.max(dim=-1)
        totals["cross_entropy"] -= float(log_q.gather(-1, target[:, None]).sum())
        totals["kl_to_teacher"] += float((log_p.exp() * (log_p - log_q)).sum())
        totals["top1_agreement"] += float((prediction == log_p.argmax(-1)).sum())
        totals["accuracy"] += float((prediction == target).sum())
        confidences.append(confidence.exp())
        corrects.append(prediction == target)
    metrics = {name: value / tokens for name, value in totals.items()}
    metrics["ece"] = calibration_error(torch.cat(confidences), torch.cat(corrects), bins)
    return metrics
