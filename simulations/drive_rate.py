"""Check (c): the first-step growth rate of the logit gap, against a linearised-student prediction.

Measurement. For each seed (the unit of replication; with ``task.draw_per_seed`` each seed is
also its own task draw), each temperature T and sparse ratio r, a fresh student (the sweep's MLP
at its initialisation) takes one plain SGD step of size ``lr`` on the stingy KD objective
(stingy.methods) of one batch of B training examples, and the rate is (change of the mean probe
gap) / lr, where the gap is sbar_M(x') - sbar_Mc(x') on P test inputs x' with the teacher's
kept set M(x'). One step at a small lr is the derivative at step 0: no acceleration enters.

Prediction (linearised student, empirical NTK). One SGD step moves the student's logits by
Delta s_c(x') = -lr sum_x sum_c' Theta_cc'(x', x) dL/ds_c'(x), Theta the eNTK at initialisation.
For the one-hidden-layer MLP (pre-activation u, activation a = relu(u), readout W2)

    Theta_cc'(x', x) = delta_cc' (a(x').a(x) + 1)
                       + (x'.x + 1) sum_h W2[h, c] W2[h, c'] 1[u_h(x') > 0] 1[u_h(x) > 0].

Keep its class-diagonal mean kappa(x', x) = (1/C) sum_c Theta_cc(x', x) and only the drive
part of the gradient, (a T / B)(1/K - 1[c in M(x)]/k) (T5a). The gap then grows at

    rate = (a T / (k (1 - r))) (1/B) sum_x mean_x' kappa(x', x) (o(x, x')/k - r),

with o(x, x') = |M(x) & M(x')| the overlap of the kept sets of a training and a probe input.
With identical kept sets (o = k, the free-logit case) this is (a T / k) mean kappa; with
unrelated kept sets (o/k ~ r) it vanishes. So the rate is linear in T at fixed overlap, but its
dependence on r goes through the overlap, not through a fixed power of (1 - r) or 1/k.

The teacher-signal part of the gradient, (a T / B)(U_M(x) - p~(x)) on M(x), moves the gap
under the same kernel too. Its entries sum to 0, so its mass on M(x') is minus its mass off
M(x'), and it adds

    signal = (a T / (k (1 - r))) (1/B) sum_x mean_x' kappa(x', x) (p~_x(M(x')) - o(x, x')/k),

with p~_x(M(x')) the mass the sparse target of x puts on the probe's kept set. Drive and
signal together give (a T / (k (1 - r))) (1/B) sum_x mean_x' kappa (p~_x(M(x')) - r): the
overlap fraction o/k is replaced by the target's mass on M(x'). Per example the signal is
orthogonal to the drive (T5a), but across examples it still moves the gap wherever kept
sets overlap.

Direct test of the overlap explanation: the same step with the batch's teacher logits shuffled
across the batch (every kept set M(x) moved to another input) changes the overlap and nothing
else; the prediction and the measurement must change by the same factor.
"""

from __future__ import annotations

import torch

from stingy.methods import METHODS, MethodSettings
from stingy.objective import Objective
from stingy.simulations.config import SimulationConfig
from stingy.simulations.students import init_mlp, mlp_forward
from stingy.theory.operators import keep_count, sparse_target, top_k_mask


def diagonal_ntk(params: list[torch.Tensor], probe: torch.Tensor, batch: torch.Tensor):
    """kappa(x', x) = (1/C) sum_c Theta_cc(x', x) for one stacked one-hidden-layer MLP
    (params of :func:`init_mlp` with one model), [P, B]."""
    first, first_bias, readout = params[0][0], params[1][0], params[2][0]
    hidden_probe = probe @ first + first_bias
    hidden_batch = batch @ first + first_bias
    active_probe, active_batch = (hidden_probe > 0).to(probe.dtype), (hidden_batch > 0).to(
        probe.dtype)
    readout_power = readout.square().mean(dim=1)  # (1/C) sum_c W2[h, c]^2, [H]
    top = hidden_probe.relu() @ hidden_batch.relu().T + 1
    bottom = (probe @ batch.T + 1) * ((active_probe * readout_power) @ active_batch.T)
    return top + bottom


def overlap_prediction(kappa: torch.Tensor, probe_kept: torch.Tensor, batch_target: torch.Tensor,
                       alpha: float, temperature: float) -> dict:
    """The linearised drive rate, the signal part's rate (module docstring) and their parts,
    per unit lr; ``batch_target`` is the batch's sparse target p~ [B, C] (0 off M)."""
    num_classes = probe_kept.shape[-1]
    k = int(probe_kept[0].sum())
    ratio = k / num_classes
    probe_kept = probe_kept.to(kappa.dtype)
    overlap = probe_kept @ (batch_target > 0).to(kappa.dtype).T  # [P, B]
    target_mass = probe_kept @ batch_target.to(kappa.dtype).T  # p~_x(M(x')), [P, B]
    batch_size = batch_target.shape[0]
    scale = alpha * temperature / (k * (1 - ratio)) / batch_size
    return {"predicted_rate": float(scale * (kappa * (overlap / k - ratio)).sum(1).mean()),
            "signal_rate": float(scale * (kappa * (target_mass - overlap / k)).sum(1).mean()),
            "free_logit_rate": float(alpha * temperature / k / batch_size * kappa.sum(1).mean()),
            "mean_overlap": float((overlap / k).mean())}


def _gap(params, probe, probe_kept) -> torch.Tensor:
    logits = mlp_forward(params, probe[None])[0]
    k = int(probe_kept[0].sum())
    kept_mean = logits.masked_fill(~probe_kept, 0).sum(-1) / k
    dropped_mean = logits.masked_fill(probe_kept, 0).sum(-1) / (logits.shape[-1] - k)
    return (kept_mean - dropped_mean).mean()


def measured_rate(params, batch, labels, teacher, probe, probe_kept, objective: Objective,
                  lr: float) -> float:
    """(gap after one SGD step - gap before) / lr on ``objective`` (stingy KD) of the batch."""
    params = [p.detach().clone().requires_grad_() for p in params]
    logits = mlp_forward(params, batch[None])[0]
    gradients = torch.autograd.grad(objective(logits, teacher, labels), params)
    with torch.no_grad():
        before = _gap(params, probe, probe_kept)
        stepped = [p - lr * g for p, g in zip(params, gradients)]
        after = _gap(stepped, probe, probe_kept)
    return float((after - before) / lr)


def stingy_objective(k: int, alpha: float, temperature: float, num_classes: int) -> Objective:
    """The stingy KD objective (stingy.methods) at k, alpha and T."""
    settings = MethodSettings(name="stingy_kd", temperature=temperature, alpha=alpha, k=k)
    return METHODS["stingy_kd"].objective(settings, num_classes)


def first_step_rates(setting: dict, config: SimulationConfig, common: dict,
                     generator: torch.Generator) -> list[dict]:
    """One row per (seed, T, r, kept sets true/shuffled): measured and predicted rates, for
    ``config.distill``'s ratios and alpha at ``config.probe``'s temperatures and lr. No rows at
    alpha = 0 (labels only): there is no drive to predict, so check (c) is not made."""
    batch_size, classes = config.student.batch_size, config.task.classes
    alpha, lr, probe_size = config.distill.alpha, config.probe.lr, config.log.probe_examples
    if config.student.hidden == 0:
        raise ValueError("the eNTK drive prediction needs an MLP student (student.hidden > 0)")
    if alpha == 0:
        return []
    rows = []
    for seed in range(setting["inputs"].shape[0]):
        params = [p.detach().double() for p in init_mlp(1, setting["inputs"].shape[-1],
                                                         config.student.hidden, classes,
                                                         generator)]
        batch = setting["inputs"][seed, :batch_size].double()
        labels = setting["noisy"][seed, :batch_size]
        teacher = setting["train_teacher"][seed, :batch_size].double()
        shuffled = teacher[torch.randperm(batch_size, generator=generator)]
        probe = setting["test_x"][seed, :probe_size].double()
        probe_teacher = setting["test_teacher"][seed, :probe_size].double()
        kappa = diagonal_ntk(params, probe, batch)
        for ratio in config.distill.ratios:
            k = keep_count(ratio, classes)
            if k == classes:
                continue
            probe_kept = top_k_mask(probe_teacher, k)
            for temperature in config.probe.temperatures:
                objective = stingy_objective(k, alpha, temperature, classes)
                for kept_sets, logits in (("true", teacher), ("shuffled", shuffled)):
                    prediction = overlap_prediction(kappa, probe_kept,
                                                    sparse_target(logits, k, temperature),
                                                    alpha, temperature)
                    rate = measured_rate(params, batch, labels, logits, probe, probe_kept,
                                         objective, lr)
                    rows.append({**common, "seed": seed, "temperature": float(temperature),
                                 "ratio": ratio, "k": k, "alpha": alpha, "lr": lr,
                                 "kept_sets": kept_sets, "measured_rate": rate, **prediction})
    return rows
