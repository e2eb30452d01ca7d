"""CPU training throughput of the reference CNN: images/s for forward + backward + SGD step at
batch 128 on 32x32 RGB inputs (stingy.empirical.models.build_model("cnn", 10))."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F


def bench_cnn_throughput(batch=128, warmup=3, steps=10) -> dict:
    from stingy.empirical.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", 10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batch,))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"model": "cnn", "batch": batch, "steps": steps, "median_step_seconds": median,
            "images_per_second": batch / median}
