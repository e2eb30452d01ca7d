"""Teachers for the synthetic task: the exact noisy-label posterior, or a trained wide MLP.

A Stingy Teacher sparsifies either one; that happens in :mod:`stingy.simulations.training`, which
builds the targets with :func:`stingy.theory.operators.top_k_mask`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stingy.simulations.data import noisy_log_posterior
from stingy.simulations.students import init_mlp, make_optimizer, mlp_forward, predict


def mean_logit_range(logits: torch.Tensor) -> torch.Tensor:
    """Mean over examples of max_i z(i) - min_i z(i)."""
    return (logits.amax(dim=-1) - logits.amin(dim=-1)).mean()


def oracle_logits(clean_log_probs: torch.Tensor, transition: torch.Tensor,
                  logit_range: float | None = None) -> torch.Tensor:
    """The oracle teacher: z = log p(y~ | x), the exact posterior of the noisy labels.

    With ``logit_range`` the logits are multiplied by one constant so that their mean range
    (max - min per example) equals it, e.g. a trained CIFAR teacher's; the argmax, the kept sets
    and the order of classes are unchanged, only the teacher's sharpness at a given T changes.
    """
    logits = noisy_log_posterior(clean_log_probs, transition)
    if logit_range is not None:
        if not logit_range > 0:
            raise ValueError(f"teacher_logit_range must be a number > 0, got {logit_range!r}")
        logits = logits * (logit_range / mean_logit_range(logits))
    return logits


def train_teacher(inputs: torch.Tensor, labels: torch.Tensor, hidden: int, epochs: int,
                  batch_size: int, lr: float, weight_decay: float,
                  generator: torch.Generator) -> list[torch.Tensor]:
    """One wide MLP per seed (inputs [S, N, D], noisy labels [S, N]) trained by Adam on CE."""
    num_seeds, num_examples, input_dim = inputs.shape
    num_classes = int(labels.max()) + 1
    params = init_mlp(num_seeds, input_dim, hidden, num_classes, generator)
    optimizer = make_optimizer(params, "adam", lr, 0.0, weight_decay)
    rows = torch.arange(num_seeds)[:, None]
    for _ in range(epochs):
        order = torch.argsort(torch.rand(num_seeds, num_examples, generator=generator), dim=1)
        for start in range(0, num_examples - batch_size + 1, batch_size):
            batch = order[:, start:start + batch_size]
            logits = mlp_forward(params, inputs[rows, batch])
            loss = F.cross_entropy(logits.reshape(-1, num_classes), labels[rows, batch].reshape(-1),
                                   reduction="sum") / batch_size
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return [p.detach() for p in params]


def trained_teacher_logits(params: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """Logits [S, N, C] of each seed's teacher on its own inputs [S, N, D]."""
    return torch.stack([predict([p[s:s + 1] for p in params], inputs[s])[0]
                        for s in range(inputs.shape[0])])
