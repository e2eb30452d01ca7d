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
# # Solutions · 3 · Real CIFAR-10

# %%
import math
from pathlib import Path

import numpy as np
import torch
from stingy.figures.inputs import read_rows
from stingy.theory import sparse_target, top_k_mask, tv_to_uniform

QUICK = Path("..") / ".." / "results" / "cifar10_quick"
archive = np.load(QUICK / "teacher_logits.npz")
logits = torch.tensor(archive["normal"], dtype=torch.float64)
K, k = logits.shape[1], int(archive["k"])


def mean_exact_ratio(temperature):
    kept = top_k_mask(logits, k).double()
    gaps = (sparse_target(logits, k, temperature) - kept / k).norm(dim=-1)
    return float(gaps.mean() / math.sqrt(1 / k - 1 / K))


# %% [markdown]
# **Exercise 1.** The exact ratio falls with T (p~ tends to U_M); step T up by 10 %.

# %%
temperature = 1.0
while mean_exact_ratio(temperature) >= 0.1:
    temperature *= 1.1
print(f"mean signal/drive < 0.1 from T = {temperature:.2f} "
      f"(ratio {mean_exact_ratio(temperature):.4f}; at T/1.1: "
      f"{mean_exact_ratio(temperature / 1.1):.4f})")

# %% [markdown]
# **Exercise 2.** Share of the gain recovered, from the run's summary.

# %%
accuracy = {row["method"]: row["test_accuracy"]
            for row in read_rows(QUICK / "summary.csv", "stingy reproduce")}
recovered = ((accuracy["within_m_kd"] - accuracy["stingy_kd"])
             / (accuracy["normal_kd"] - accuracy["stingy_kd"]))
print(f"within-M recovers {100 * recovered:.0f} % of the kd - stingy gap")
print("beat labels only:", [m for m, a in accuracy.items() if a > accuracy["scratch"]])

# %% [markdown]
# **Exercise 3.** TV is small when the teacher's kept logits are close: D_M/T small
# (T3's worst case grows with D_M/T).

# %%
tv = tv_to_uniform(logits, k, 4.0)
kept = logits.topk(k).values
for i in range(len(logits)):
    flag = "good" if float(tv[i]) < 0.05 else "    "
    kept_range = float(kept[i, 0] - kept[i, -1])
    print(f"image {i:>2}: D_M = {kept_range:5.2f}, TV = {float(tv[i]):.3f} {flag}")
