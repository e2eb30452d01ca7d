"""Many small MLPs trained at once: stacked weights [n_models, ...] and batched matmuls.

Model m maps x [B, D] to logits [B, C] with one hidden ReLU layer of ``hidden`` units
(``hidden = 0``: a linear model). All models' parameters are stacked along a leading model
dimension, the forward pass is two ``torch.baddbmm`` calls, and one optimizer steps every
model; since the models share no parameter, the gradient of the summed loss is each model's
own gradient. Initialisation follows ``torch.nn.Linear`` (uniform, bound 1/sqrt(fan_in)).
"""

from __future__ import annotations

import math

import torch


def init_mlp(num_models: int, input_dim: int, hidden: int, num_classes: int,
             generator: torch.Generator) -> list[torch.Tensor]:
    """Stacked parameters [W1 [n, D, H], b1 [n, 1, H], W2 [n, H, C], b2 [n, 1, C]] (or linear)."""
    widths = [input_dim, hidden, num_classes] if hidden > 0 else [input_dim, num_classes]
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        bound = 1 / math.sqrt(fan_in)
        for shape in ((num_models, fan_in, fan_out), (num_models, 1, fan_out)):
            params.append(((torch.rand(shape, generator=generator) * 2 - 1) * bound)
                          .requires_grad_())
    return params


def mlp_forward(params: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """Logits [n, B, C] of every model on its own inputs [n, B, D] (or shared inputs [B, D])."""
    if inputs.ndim == 2:
        inputs = inputs.expand(params[0].shape[0], *inputs.shape)
    hidden = inputs
    for layer in range(0, len(params), 2):
        if layer:
            hidden = hidden.relu()
        hidden = torch.baddbmm(params[layer + 1], hidden, params[layer])
    return hidden


@torch.no_grad()
def predict(params: list[torch.Tensor], inputs: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Logits [n, N, C] on shared inputs [N, D], in chunks of examples."""
    return torch.cat([mlp_forward(params, inputs[i:i + chunk]) for i in
                      range(0, inputs.shape[0], chunk)], dim=1)


def make_optimizer(params: list[torch.Tensor], name: str, lr: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """One optimizer over the stacked parameters: ``sgd`` (with momentum) or ``adam``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")
