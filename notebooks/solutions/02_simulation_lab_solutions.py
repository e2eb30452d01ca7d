# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Solutions · 2 · Simulation lab

# %%
import math
import tempfile
from pathlib import Path

import torch
from stingy.figures.inputs import read_rows
from stingy.simulations import run_sweep
from stingy.simulations.config import load_config
from stingy.theory import sparse_target, top_k_mask

# The students' matrices are small: one thread is as fast, and shares a busy machine well.
torch.set_num_threads(1)
RESULTS = Path("..") / ".." / "results"


def small_config(**flags):
    settings = {"noise.rates": [0.0, 0.3], "distill.ratios": [0.05, 0.2, 0.5],
                "student.seeds": 4, "student.steps": 200,
                "distill.methods": ["scratch", "normal_kd", "stingy_kd", "within_m_kd"],
                "task.train_size": 5000, "task.test_size": 2000}
    settings.update(flags)
    return load_config(None, settings)


# %% [markdown]
# **Exercise 1.** The deficit at T = 5 against T = 20, noise 0.3, r = 0.2. At lower T the
# exact signal-to-drive ratio is larger (T5), so the teacher's within-M information is a
# larger part of the gradient; the printed deficits say whether that shows here.

# %%
def deficit(temperature):
    config = small_config(**{"distill.temperature": temperature, "noise.rates": [0.3],
                             "distill.ratios": [0.2]})
    summary = run_sweep(config, Path(tempfile.mkdtemp()), progress=False)["summary"]
    accuracy = {row["method"]: row["accuracy_mean"] for row in summary}
    return accuracy["normal_kd"] - accuracy["stingy_kd"]


for temperature in (5.0, 20.0):
    print(f"T = {temperature}: normal KD - stingy KD = {100 * deficit(temperature):.1f} points")

# %% [markdown]
# **Exercise 2.** The deficit from the reference sweep.

# %%
rows = read_rows(RESULTS / "simulations" / "summary.csv", "stingy simulate")
worst = {}
for noise in sorted({row["noise"] for row in rows}):
    normal = next(row["accuracy_mean"] for row in rows
                  if row["noise"] == noise and row["method"] == "normal_kd")
    for row in rows:
        if row["noise"] == noise and row["method"] == "stingy_kd":
            gap = normal - row["accuracy_mean"]
            print(f"noise {noise}, r = {row['ratio']}: deficit {100 * gap:.1f} points")
            if gap > worst.get(noise, (-1, None))[0]:
                worst[noise] = (gap, row["ratio"])
print("largest deficit per noise level (points, r):",
      {noise: (round(100 * gap, 1), ratio) for noise, (gap, ratio) in worst.items()})

# %% [markdown]
# **Exercise 3.** The exact ratio for one teacher, against the large-T form. They agree once
# T is well above the kept range D_M, where the order-1 term dominates.

# %%
from stingy.theory import signal_to_drive
from stingy.theory.signal import signal_to_drive_exact

z = torch.randn(100, dtype=torch.float64) * 3
for k in (5, 20, 50):
    exact = float((sparse_target(z, k, 20.0) - top_k_mask(z, k).double() / k).norm()
                  / math.sqrt(1 / k - 1 / 100))
    assert abs(exact - float(signal_to_drive_exact(z, k, 20.0))) < 1e-9
    print(f"k = {k}: exact {exact:.4f}, large-T form {float(signal_to_drive(z, k, 20.0)):.4f}")
