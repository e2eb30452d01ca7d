"""The transformers of ``stingy lm`` and their one training loop.

:class:`CausalTransformer`: token and position embeddings, pre-norm blocks of causal
self-attention (``scaled_dot_product_attention``) and a 4x GELU MLP, a final LayerNorm and an
output layer tied to the token embedding. :func:`train_model` runs AdamW with a linear
warm-up and a cosine decay to 0, gradient norm clipped at 1, on the batches a caller hands it
and the loss a caller computes, so the teacher (cross-entropy) and every student (the
registry's objective) train through the same loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stingy.io import Diverged
from stingy.progress import bar_disabled

CHECK_EVERY = 50  # steps between loss read-backs (a host-device synchronisation each)


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.projection = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).split(width, dim=-1)
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.projection(attended.transpose(1, 2).reshape(batch, length, width))
        return x + self.mlp(self.mlp_norm(x))


class CausalTransformer(nn.Module):
    """tokens [B, C] -> next-token logits [B, C, V]."""

    def __init__(self, vocab_size: int, context: int, settings):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, settings.width)
        self.position = nn.Embedding(context, settings.width)
        self.blocks = nn.ModuleList(Block(settings.width, settings.heads)
                                    for _ in range(settings.layers))
        self.norm = nn.LayerNorm(settings.width)
        self.head = nn.Linear(settings.width, vocab_size, bias=False)
        self.head.weight = self.embedding.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        x = self.embedding(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def build_model(vocab_size: int, context: int, settings, seed: int, device) -> CausalTransformer:
    """A fresh model whose initial weights depend on ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CausalTransformer(vocab_size, context, settings)
    return model.to(device)


def learning_rate(step: int, training) -> float:
    """Linear warm-up to ``training.learning_rate``, then a cosine decay to 0 at the end."""
    warm = min(1.0, (step + 1) / (training.warmup_steps + 1))
    return training.learning_rate * warm * 0.5 * (1 + math.cos(math.pi * step / training.steps))


def train_model(model: nn.Module, batch_at, loss_of, training, label: str) -> list[float]:
    """Train ``model`` for ``training.steps`` steps on ``batch_at(step)`` with the loss
    ``loss_of(model, batch)``; the mean loss of each ``CHECK_EVERY`` steps. Diverged when a
    loss is not finite."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": training.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}],
                                  lr=training.learning_rate, betas=(0.9, 0.95))
    model.train()
    losses, window = [], []
    for step in tqdm(range(training.steps), desc=label, leave=False, disable=bar_disabled()):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, training)
        loss = loss_of(model, batch_at(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        window.append(loss.detach())
        if len(window) == CHECK_EVERY or step == training.steps - 1:
            mean = float(torch.stack(window).mean())
            if not math.isfinite(mean):
                raise Diverged(f"{label}: the training loss is {mean} by step {step + 1}")
            losses.append(mean)
            window = []
    model.eval()
    return losses
