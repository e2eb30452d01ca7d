"""CPU training throughput of the reference CNN: images/s for forward + backward + SGD step on
32x32 RGB inputs (stingy.empirical.models.build_model("cnn", 10)), and the speed levers a CPU
sweep could pull (a larger batch, channels_last, torch.compile), each timed against the same
baseline in interleaved rounds."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

LEVERS = {
    "baseline (batch 128)": {"batch": 128},
    "batch 256": {"batch": 256},
    "batch 64": {"batch": 64},
    "channels_last": {"batch": 128, "channels_last": True},
    "torch.compile": {"batch": 128, "compile": True},
    "channels_last + torch.compile": {"batch": 128, "channels_last": True, "compile": True},
    "channels_last, batch 256": {"batch": 256, "channels_last": True},
}


class _Trainer:
    """One CNN, its optimizer and a fixed random batch: ``step()`` times one training step."""

    def __init__(self, batch: int = 128, channels_last: bool = False, compile: bool = False):
        from stingy.empirical.models import build_model

        torch.manual_seed(0)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = build_model("cnn", 10).train().to(memory_format=memory_format)
        self.forward = torch.compile(self.model) if compile else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=memory_format)
        self.labels = torch.randint(0, 10, (batch,))

    def step(self) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(self.forward(self.images), self.labels).backward()
        self.optimizer.step()
        return time.perf_counter() - start


def bench_cnn_throughput(batch=128, warmup=3, steps=10) -> dict:
    trainer = _Trainer(batch)
    times = [trainer.step() for _ in range(warmup + steps)][warmup:]
    median = statistics.median(times)
    return {"model": "cnn", "batch": batch, "steps": steps, "median_step_seconds": median,
            "images_per_second": batch / median}


def bench_cnn_levers(rounds: int = 5, steps: int = 8, warmup: int = 3) -> list[dict]:
    """Images/s of each lever in LEVERS: ``rounds`` interleaved rounds of ``steps`` timed steps
    each (after ``warmup`` steps, which include compilation); the median per-image time over
    rounds, and the median per-round speed-up against the baseline."""
    trainers = {name: _Trainer(**options) for name, options in LEVERS.items()}
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.step()
    per_image = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            seconds = sum(trainer.step() for _ in range(steps))
            per_image[name].append(seconds / (steps * len(trainer.labels)))
    baseline = per_image["baseline (batch 128)"]
    return [{"lever": name, "images_per_second": 1 / statistics.median(times),
             "speedup": statistics.median(b / t for b, t in zip(baseline, times))}
            for name, times in per_image.items()]


if __name__ == "__main__":
    import os

    from stingy.machine import load_average

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    before = load_average()
    for row in bench_cnn_levers():
        print(f"| {row['lever']} | {row['images_per_second']:.0f} | {row['speedup']:.2f}x |")
    print(f"threads {torch.get_num_threads()}, load average {before} -> {load_average()}")
