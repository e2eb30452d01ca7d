"""Illustrative logits and the paper's reference settings, for the theory's worked numbers.

These logits are synthetic, chosen to look like a trained classifier's (not taken from a
network); the empirical layer evaluates the same quantities on a real trained teacher.
"""

from __future__ import annotations

import torch

# The paper's public code (params.json): kept N of K at sparse ratio r, stingy temperature.
REFERENCE_SETTINGS = {
    "cifar10": {"num_classes": 10, "k": 2, "temperature": 20.0, "normal_kd_temperature": 4.0},
    "cifar100": {"num_classes": 100, "k": 10, "temperature": 20.0, "normal_kd_temperature": 20.0},
}

# Standard deviation of the seeded random logits: 3 gives logit ranges of about 9 over
# 10 classes and 15 over 100 classes, the scale of a trained CIFAR classifier's logits.
RANDOM_LOGIT_SCALE = 3.0


def random_logits(shape, seed: int, scale: float = RANDOM_LOGIT_SCALE,
                  dtype=torch.float64) -> torch.Tensor:
    """Logits drawn i.i.d. from Normal(0, scale^2) with a seeded generator."""
    generator = torch.Generator().manual_seed(int(seed))
    return scale * torch.randn(tuple(shape), generator=generator, dtype=dtype)


def representative_logits(num_classes: int, top_gap: float = 10.0, spread: float = 2.0,
                          seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """One confident, trained-classifier-like logit vector: the non-top logits are
    Normal(0, spread^2) (seeded) and the top class sits ``top_gap`` above the second.

    A trained CIFAR-10 ResNet-18 has top-1 vs top-2 gaps of roughly 5 to 15; top_gap=10 is the
    middle of that range.
    """
    others = random_logits((num_classes - 1,), seed, spread, dtype)
    top = others.max() + top_gap
    return torch.cat([top.reshape(1), others])


def reference_ratio_draws(draws: int = 200, top_gaps=(5.0, 10.0, 15.0),
                          spread: float = 2.0) -> list[dict]:
    """The exact T5 signal-to-drive ratio at each reference setting as a distribution over
    ``draws`` representative teacher-logit vectors (seeds 0..draws-1) per top gap: one row per
    (setting, top gap) with the 2.5%, 50% and 97.5% quantiles of the exact ratio and the median
    of its large-T asymptote."""
    from stingy.theory.signal import signal_to_drive, signal_to_drive_exact

    rows = []
    for name, setting in REFERENCE_SETTINGS.items():
        for top_gap in top_gaps:
            teachers = torch.stack([representative_logits(setting["num_classes"], top_gap, spread,
                                                          seed) for seed in range(draws)])
            arguments = (teachers, setting["k"], setting["temperature"])
            exact = signal_to_drive_exact(*arguments).double()
            low, median, high = torch.quantile(exact, torch.tensor([0.025, 0.5, 0.975],
                                                                  dtype=exact.dtype)).tolist()
            rows.append({"setting": name, "k": setting["k"], "classes": setting["num_classes"],
                         "temperature": setting["temperature"], "top_gap": top_gap,
                         "spread": spread, "draws": draws, "exact_q025": low,
                         "exact_median": median, "exact_q975": high,
                         "asymptote_median": float(signal_to_drive(*arguments).median())})
    return rows
