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
# # 3 · Real CIFAR-10: a trained teacher, a stingy student and a within-M student
#
# By default this notebook reads the committed CPU reference run in `results/cifar10_quick/`
# (a small CNN teacher and students, 5 epochs on 4,000 images; the `quick` profile of
# `stingy reproduce`). To make your own run instead, set `STINGY_NOTEBOOK_QUICK=1` in the
# environment before starting Jupyter: the quick profile then runs into `runs/notebook-quick`
# (up to about 15 minutes on a laptop CPU; it needs the CIFAR-10 archive, see
# `stingy reproduce --help`). Solutions: `solutions/03_real_cifar_solutions.py`.

# %%
import json
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from stingy.figures.inputs import read_rows
from stingy.theory import kept_mass, sparse_target, top_k_mask, tv_to_uniform, two_level_logits

RESULTS = Path("..") / "results"
if os.environ.get("STINGY_NOTEBOOK_QUICK") == "1":
    from stingy.pipeline import reproduce

    RESULTS = Path("..") / "runs" / "notebook-quick"
    reproduce(profile="quick", out=RESULTS)
QUICK = RESULTS / "cifar10_quick"
summary = read_rows(QUICK / "summary.csv", "stingy reproduce")
for row in summary:
    # k and T are empty (nan) for a student that learns from labels only
    settings = [f"{name} = {row[key]:g}" for name, key in (("k", "k"), ("T", "temperature"))
                if not math.isnan(row[key])]
    print(f"{row['method']:>11}: test accuracy {100 * row['test_accuracy']:.1f} %  "
          f"({', '.join(settings or ['labels only'])}, final logit gap {row['logit_gap']:.2f})")

# %% [markdown]
# ## Accuracy of each student
#
# The stingy teacher keeps the top k of the 10 classes; within-M KD uses the same sparse
# target without the drive. The printed settings above say which k and which temperature T
# each student of this run used.

# %%
teacher_accuracy = summary[0]["teacher_accuracy"]
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar([row["method"] for row in summary], [row["test_accuracy"] for row in summary])
ax.axhline(teacher_accuracy, color="k", ls="--", label="teacher")
ax.set_ylabel("test accuracy")
ax.legend()
plt.show()

# %% [markdown]
# ## The drive in a real network: the logit gap per epoch
#
# The gap s̄_M - s̄_Mc on the test set (M = the teacher's top-k) of each student, per epoch:
# compare the stingy student's with the within-M student's.

# %%
gap_rows = read_rows(QUICK / "logit_gap.csv", "stingy reproduce")
fig, ax = plt.subplots(figsize=(6, 3))
for method in sorted({row["method"] for row in gap_rows}):
    rows = [row for row in gap_rows if row["method"] == method]
    ax.plot([row["epoch"] for row in rows], [row["logit_gap"] for row in rows], "o-", label=method)
ax.set_xlabel("epoch")
ax.set_ylabel("logit gap")
ax.legend()
plt.show()

# %% [markdown]
# ## T4 during training
#
# The stingy run logs the T4 terms of its distillation loss each epoch: the order-T drive
# term -T(1 - r)(s̄_M - s̄_Mc) falls as the gap grows, pulling the exact loss down with it.

# %%
metrics = [json.loads(line) for line in
           (QUICK / "runs" / "quick-stingy" / "metrics.jsonl").read_text().splitlines()]
fig, ax = plt.subplots(figsize=(6, 3))
for key in ("t4_exact", "t4_order_t2", "t4_order_t", "t4_order_1"):
    ax.plot([m["epoch"] for m in metrics], [m[key] for m in metrics], "o-", label=key)
ax.set_xlabel("epoch")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## T2, T3 and T5 on the real teacher's test logits
#
# 16 test images' dense teacher logits are stored with the run, with the run's k. For each,
# at that k and at T = 1 and the run's distillation temperatures: the kept mass m, the TV of
# p~ to uniform on M against T3's exact worst case for its kept range, and T5's exact
# signal-to-drive ratio ‖p~ - U_M‖ / √(1/k - 1/K). With k = 2 the kept logits are always
# two-level, so each image's TV *is* the worst case for its range, tanh(D_M/2T)/2.

# %%
archive = np.load(QUICK / "teacher_logits.npz")
logits = torch.tensor(archive["normal"], dtype=torch.float64)
K, k = logits.shape[1], int(archive["k"])


def worst_case_tv(kept_range, temperature):
    return max(float(tv_to_uniform(two_level_logits(k, j, kept_range), k, temperature))
               for j in range(1, k))


def exact_ratio(z, temperature):
    kept = top_k_mask(z, k).double()
    return float((sparse_target(z, k, temperature) - kept / k).norm()
                 / math.sqrt(1 / k - 1 / K))


temperatures = {1.0} | {row["temperature"] for row in summary if not math.isnan(row["temperature"])}
for temperature in sorted(temperatures):
    masses = kept_mass(logits, k, temperature)
    tvs = tv_to_uniform(logits, k, temperature)
    kept_ranges = [float(z.topk(k).values[0] - z.topk(k).values[-1]) for z in logits]
    worst = [worst_case_tv(d, temperature) for d in kept_ranges]
    ratios = [exact_ratio(z, temperature) for z in logits]
    print(f"T = {temperature:>4}: mean m = {float(masses.mean()):.3f} (r = {k / K}), "
          f"mean TV = {float(tvs.mean()):.3f} (worst case {np.mean(worst):.3f}), "
          f"mean signal/drive = {np.mean(ratios):.3f}")

# %% [markdown]
# **Exercise 1.** For the real teacher's logits and the run's k, find (to a factor of 1.1) the
# temperature at which the mean exact signal-to-drive ratio falls below 0.1.
#
# **Exercise 2.** How much of normal KD's gain over the stingy student does within-M KD
# recover in this run: (within - stingy) / (kd - stingy)? Compare with labels only
# (`scratch`): which students beat it?
#
# **Exercise 3.** The paper approximates p~ by the uniform distribution on M. For which of the
# 16 images is that approximation good (TV < 0.05) at T = 4, and why those?
