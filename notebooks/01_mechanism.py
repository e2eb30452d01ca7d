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
# # 1 · The mechanism: why a Stingy Teacher breaks distillation (T1-T5)
#
# A *Stingy Teacher* keeps its top-k logits and sets the other K - k to -inf. Its tempered
# softmax p~ is then the distillation target. This notebook takes the failure apart in five
# steps, each computed with `stingy.theory`:
#
# | step | statement |
# |---|---|
# | T1 | p~ is the dense target p renormalised on the kept set M |
# | T2 | the kept mass m = p(M) lies between k/K and 1/(1 + ((K-k)/k) e^{-D/T}) |
# | T3 | how far p~ is from uniform on M; the exact worst case is a two-level teacher |
# | T4 | T^2 KL(p~ ‖ q) = T^2 log(K/k) - T(1-r)(s̄_M - s̄_Mc) + O(1) |
# | T5 | the drive and the teacher's signal are orthogonal; their exact ratio is ‖p~ - U_M‖ / √(1/k - 1/K) |
#
# Exercises are marked **Exercise**; the solutions are in `solutions/01_mechanism_solutions.py`.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from stingy.theory import (
    drive_norm,
    expansion_terms,
    kept_mass,
    kept_mass_bounds,
    mass_shift,
    sparse_target,
    top_k_mask,
    tv_to_uniform,
    tv_to_uniform_bound,
    two_level_logits,
)
from stingy.theory.operators import distillation_kl

torch.set_default_dtype(torch.float64)
# A teacher on K = 10 classes, logits shaped like a trained CIFAR-10 network's.
z = torch.tensor([9.1, 4.3, 2.2, 1.5, 0.7, 0.1, -0.8, -1.6, -2.4, -3.5])
K, k, T = 10, 2, 4.0

# %% [markdown]
# ## T1 · the sparse target is the dense one renormalised on M
#
# p~(i) = p(i)/m on M and 0 elsewhere: the dropped mass 1 - m goes to the kept classes in
# proportion to p. The argmax does not move.

# %%
p = torch.softmax(z / T, -1)
p_sparse = sparse_target(z, k, T)
m = kept_mass(z, k, T)
kept = top_k_mask(z, k)
print(f"m = {float(m):.4f};  max |p~ - p/m on M| = "
      f"{float((p_sparse[kept] - p[kept] / m).abs().max()):.2e}")
print("mass moved onto each class (T1):", np.round(mass_shift(z, k, T).numpy(), 4))
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.bar(np.arange(K) - 0.2, p, width=0.4, label="dense p")
ax.bar(np.arange(K) + 0.2, p_sparse, width=0.4, label="sparse p~")
ax.set_xlabel("class (sorted by logit)")
ax.legend()
plt.show()

# %% [markdown]
# ## T2 · how much mass the kept set holds
#
# m falls towards r = k/K as T grows: at the temperatures used for distillation the sparse
# target throws away most of the dense teacher's mass.

# %%
temperatures = np.geomspace(0.5, 50, 60)
fig, ax = plt.subplots(figsize=(7, 3))
for kk in (1, 2, 5):
    masses = [float(kept_mass(z, kk, t)) for t in temperatures]
    lower, upper = zip(*[map(float, kept_mass_bounds(z, kk, t)) for t in temperatures])
    line, = ax.semilogx(temperatures, masses, label=f"m, k = {kk}")
    ax.fill_between(temperatures, lower, upper, color=line.get_color(), alpha=0.15)
ax.set_xlabel("temperature T")
ax.set_ylabel("kept mass m (band: T2 bounds)")
ax.legend()
plt.show()

# %% [markdown]
# **Exercise 1.** For this teacher and k = 2, find the smallest temperature (to 0.1) at which
# the kept mass drops below 1/2. Check that the T2 upper bound at that temperature is above 1/2.

# %%
# Your code here.

# %% [markdown]
# ## T3 · how far is p~ from uniform on M?
#
# The paper approximates p~ by the uniform distribution U_M on the kept set. The total
# variation TV(p~, U_M) depends on the kept logits' range D_M. Over all teachers with a given
# D_M/T the worst case is a *two-level* teacher: j kept classes at the top, k - j at the
# bottom. The exact worst case is the largest of those k - 1 values. The smooth curve
# tanh(D_M/4T) is an upper bound that is reached only at isolated ranges (where k/(1+e^{d/2})
# is a whole number); for k = 2 the exact worst case is tanh(D_M/2T)/2.

# %%
def worst_case_tv(k, kept_range, temperature):
    """max over j of TV(p~, U_M) for two-level logits with j classes on top."""
    return max(float(tv_to_uniform(two_level_logits(k, j, kept_range), k, temperature))
               for j in range(1, k))


ranges = np.linspace(0.01, 12, 120)
fig, ax = plt.subplots(figsize=(7, 3))
for kk in (2, 4, 8):
    line, = ax.plot(ranges, [worst_case_tv(kk, d, 1.0) for d in ranges], label=f"exact, k = {kk}")
ax.plot(ranges, np.tanh(ranges / 4), "k--", label="tanh(D_M / 4T)")
ax.plot(ranges, np.tanh(ranges / 2) / 2, "r:", label="tanh(D_M / 2T) / 2")
ax.set_xlabel("D_M / T")
ax.set_ylabel("worst TV(p~, U_M)")
ax.legend()
plt.show()
print("this teacher:", float(tv_to_uniform(z, k, T)), "<= exact worst",
      worst_case_tv(k, float(z[kept].max() - z[kept].min()), T),
      "<= tanh bound", float(tv_to_uniform_bound(z, k, T)))

# %% [markdown]
# **Exercise 2.** For k = 4 the tanh bound is reached at D_M/T = 2 log 3 with j = 1 class on
# top. Check this numerically, and show that one step past it (D_M/T = 2 log 3 + 0.5) the
# exact worst case is strictly below tanh(D_M/4T).

# %%
# Your code here.

# %% [markdown]
# ## T4 · the sparse KD term in powers of T
#
# For a student with logits s and q = softmax(s/T),
#
# T^2 KL(p~ ‖ q) = T^2 log(K/k) - T(1 - r)(s̄_M - s̄_Mc) + ½[Var_M z - 2 Cov_M(z, s) + Var_K s] + O(1/T).
#
# The order-T term is the **drive**: it rewards a large gap between the student's kept and
# dropped logits, whatever the teacher's logit values are.

# %%
s = torch.tensor(np.random.default_rng(0).standard_normal(K))
temps = np.geomspace(1, 100, 30)
rows = [{key: float(v) for key, v in expansion_terms(z, s, k, t).items()} for t in temps]
fig, ax = plt.subplots(figsize=(7, 3))
for key in ("exact", "order_t2", "order_t", "order_1"):
    ax.loglog(temps, [abs(r[key]) for r in rows], label=key)
ax.loglog(temps, [abs(r["remainder"]) for r in rows], "k--", label="|remainder| = O(1/T)")
ax.set_xlabel("temperature T")
ax.legend()
plt.show()

# %% [markdown]
# ## T5 · drive against signal, exactly
#
# The student gradient of T^2 KL(p~ ‖ q) is T(q - p~). Write the teacher's part as
#
# -T p~ = -T U_K  -  T(U_M - U_K)  -  T(p~ - U_M):  constant, the **drive**, the **signal**.
#
# The drive is constant on M and on Mc; the signal sums to zero on M and is zero off M. So the
# two are **exactly orthogonal**, and the signal-to-drive ratio is
# ‖p~ - U_M‖₂ / √(1/k - 1/K), which does not depend on the student's logits at all.

# %%
def drive_and_signal(z, k, T):
    kept = top_k_mask(z, k).double()
    drive = T * (kept / k - 1 / len(z))
    signal = T * (sparse_target(z, k, T) - kept / k)
    return drive, signal


drive, signal = drive_and_signal(z, k, T)
print(f"drive . signal = {float(drive @ signal):.2e}")
print(f"|drive| = {float(drive.norm()):.6f} = T sqrt(1/k - 1/K) = {drive_norm(k, K, T):.6f}")
print(f"signal / drive = {float(signal.norm() / drive.norm()):.6f}")

# autograd agrees: the gradient at any student s is T(q - U_K) - drive - signal
s = torch.randn(K, requires_grad=True)
log_target = torch.log_softmax(z.masked_fill(~kept, -math.inf) / T, -1)
(T**2 * distillation_kl(s, log_target, T)).backward()
q = torch.softmax(s.detach() / T, -1)
print("gradient split error:", float((s.grad - (T * (q - 1 / K) - drive - signal)).abs().max()))

fig, ax = plt.subplots(figsize=(7, 3))
for kk in (1, 2, 5, 9):
    ratios = [float(drive_and_signal(z, kk, t)[1].norm() / drive_and_signal(z, kk, t)[0].norm())
              for t in temperatures]
    ax.loglog(temperatures, np.maximum(ratios, 1e-12), label=f"k = {kk}")
ax.axhline(1, color="k", lw=0.8)
ax.set_xlabel("temperature T")
ax.set_ylabel("signal / drive")
ax.set_ylim(1e-4, 1e2)
ax.legend()
plt.show()

# %% [markdown]
# ## What the drive does: the free-logit minimiser
#
# With free logits (no network), KL(p~ ‖ q) is minimised only as q → p~ (T5c): the kept
# logits must differ as the teacher's do, and the dropped ones must go to -inf. Gradient
# descent on free logits therefore keeps pushing the dropped logits down: under gradient flow
# the gap s̄_M - s̄_Mc grows like T log t and has no limit (T6a in `docs/theory.md`), while q
# on M approaches p~. This is a statement about free logits: in the simulations' trained
# students the gap levels off within the run (figure F7a).

# %%
s = torch.zeros(K, requires_grad=True)
optimizer = torch.optim.SGD([s], lr=1.0)
gaps, errors = [], []
for step in range(2000):
    optimizer.zero_grad()
    (T**2 * distillation_kl(s, log_target, T)).backward()
    optimizer.step()
    gaps.append(float(s.detach()[kept].mean() - s.detach()[~kept].mean()))
    errors.append(float((torch.softmax(s.detach() / T, -1) - sparse_target(z, k, T)).abs().sum()))
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].semilogx(gaps)
axes[0].set_title("logit gap s̄_M - s̄_Mc")
axes[1].loglog(errors)
axes[1].set_title("‖q - p~‖₁")
plt.show()

# %% [markdown]
# **Exercise 3.** Show numerically that the exact signal-to-drive ratio does not change when the
# student's logits change, while the order-1 estimate √Var_M(z) / (T√(1 - r)) is only an
# approximation of it. Compare both at T = 1, 4 and 20 for this teacher with k = 2.
#
# **Exercise 4.** Open the lab page (`stingy lab --results results`, then open lab.html). With
# K = 10, k = 2, α = 0.9, press play at T = 20 and at T = 4. At which temperature does the
# stingy student fall behind, and what does the T5 panel say about that temperature?
