"""Exact identities, bounds and expansions of knowledge distillation under sparse logits."""

from theory.operators import (
    kd_loss,
    keep_count,
    kept_mass,
    reverse_logits,
    sparse_target,
    sparsify_logits,
    top_k_mask,
)

__all__ = [
    "kd_loss",
    "keep_count",
    "kept_mass",
    "reverse_logits",
    "sparse_target",
    "sparsify_logits",
    "top_k_mask",
]
