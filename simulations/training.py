"""Train many students at once, each with its own method, seed, k and temperature.

Every model m minimises its method's loss, the objective of
``stingy.methods.METHODS[method].objective(...)`` (:mod:`stingy.objective`), written per model:

    L_m = (1 - a_m) CE(s, y~) + a_m T_m^2 KL(target_m || softmax(s_M / T_m))

with the target built from the teacher's logits z of model m's seed:
``scratch``           a = 0 (labels only);
``normal_kd``         target softmax(z / T);
``stingy_kd``         target softmax(z_k / T), z_k = z off M set to -inf (top_k_mask);
``reversed_kd``       target softmax(reverse_logits(z) / T). With a sharp teacher this fails
                      completely, and that is expected, not a bug: at noise 0 the oracle's logits
                      span ~64, so the reversed target gives the teacher's least likely class the
                      second largest logit and the runner-up the smallest. Which class is on top
                      depends on x, so a smooth student fits the other 99 classes as s ~ -z and
                      ends predicting classes the teacher ranks ~93rd of 100 (accuracy ~5%, the
                      true class ranked ~9th by the student, logits correlated -0.6 with the
                      teacher's). With label noise the noisy posterior is floored at
                      log(rate/(C-1)) (range ~5 at rate 0.3), the reversal moves almost no mass,
                      and reversed KD lands near normal KD;
``within_m_kd``       stingy target, and the student's logits off M also set to -inf, so the
                      student's softmax is renormalised over M (kd_loss(..., within_kept=True));
``tail_bucket_kd``    the stingy teacher plus its tail mass: target p = softmax(z / T) on M and one
                      tail cell 1 - m, student (q on M, Q = sum_{Mc} q)
                      (stingy.theory.tail_bucket, kd_loss_topk(..., tail="bucket"));
``uniform_floor_kd``  the stingy target at mass r = k/K on M and 1/K on each dropped class,
                      U_K + r (p~ - U_M): nothing beyond the sparse row, and no drive;
``sampled_kd``        target counts / k of k classes drawn once per example with replacement
                      from softmax(z / T) (random-sampling KD, unbiased in expectation);
``label_smoothing``   target uniform at T = 1: (1-a) CE(s, y) + a KL(u || softmax(s)), i.e.
                      label smoothing with epsilon = a (up to a constant).

:class:`TargetBank` and :func:`per_model_losses` are a vectorised form of those objectives for
hundreds of models at once (tests/simulations/test_objective_equivalence.py holds them equal,
model by model, for every method). All models step together (one optimizer on stacked
parameters); models of the same seed share the data, initial weights and batch order, so method
comparisons are paired by seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stingy.io import Diverged
from stingy.methods import METHODS as REGISTRY
from stingy.methods import names
from stingy.objective import SampledRows, sample_rows
from stingy.simulations.config import StudentSettings
from stingy.simulations.students import init_mlp, make_optimizer, mlp_forward
from stingy.theory.expansion import logit_gap
from stingy.theory.operators import keep_count, reverse_logits, top_k_mask

METHODS = names("simulations")
SPARSE_METHODS = names("simulations", sparse_target=True)


@dataclass
class ModelSpecs:
    """One entry per model: its method, seed index, k (K for dense), temperature, alpha."""

    method: list[str]
    seed_index: torch.Tensor
    k: torch.Tensor
    temperature: torch.Tensor
    alpha: torch.Tensor
    ratio: list[float]  # nan for dense methods

    def __len__(self) -> int:
        return len(self.method)


def build_specs(methods: Sequence[str], ratios: Sequence[float], temperatures: Sequence[float],
                alpha: float, num_seeds: int, num_classes: int) -> ModelSpecs:
    """The (method x ratio x temperature x seed) grid; sparse methods get every ratio. Label
    smoothing runs at T = 1 and scratch with alpha = 0 (labels only)."""
    rows = []
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        for temperature in temperatures:
            entry = REGISTRY[method]
            if entry.target == "uniform":
                temperature = 1.0
            model_alpha = alpha if entry.distils else 0.0
            for ratio in (ratios if method in SPARSE_METHODS else [float("nan")]):
                k = keep_count(ratio, num_classes) if method in SPARSE_METHODS else num_classes
                rows += [(method, seed, k, temperature, model_alpha, ratio)
                         for seed in range(num_seeds)]
            if entry.target in ("labels", "uniform"):
                break  # these do not depend on the distillation temperature
    method, seed, k, temperature, model_alpha, ratio = zip(*rows)
    return ModelSpecs(list(method), torch.tensor(seed), torch.tensor(k),
                      torch.tensor(temperature, dtype=torch.float32),
                      torch.tensor(model_alpha, dtype=torch.float32), list(ratio))


class TargetBank:
    """Each model's tempered target, precomputed per distinct target.

    A target is fixed by (teacher source, k, T): the normal or reversed teacher, or the
    uniform distribution (label smoothing), sparsified to its top-k set M with
    :func:`stingy.theory.operators.top_k_mask`. Per distinct target U, seed S and training example N
    the bank holds the probabilities p = softmax(z_k / T) [U, S, N, C] (0 off M), the constant
    sum_i p(i) log p(i) [U, S, N] (0 log 0 = 0) and M itself [U, S, N, C] (used by within-M KD).
    A tail-bucket target keeps the dense p on M (not renormalised), its tail mass 1 - m
    [U, S, N] (0 for the other targets) and adds (1 - m) log(1 - m) to the constant. A
    uniform-floor target is (k/K) p on M and 1/K off it. A sampled target is the counts / k
    of k classes drawn once per example from the dense p (stingy.objective.sample_rows).
    """

    def __init__(self, teacher_logits: torch.Tensor, specs: ModelSpecs,
                 within_spread: float = 1.0):
        """teacher_logits [S, N, C] float32: every seed's teacher on that seed's examples.
        ``within_spread`` c (an intervention; 1 = none) builds the sparse targets other than
        the tail bucket from softmax(c z_M / T): c = 0 is uniform on M."""
        sources = {"labels": "teacher"}  # alpha = 0: the target is never used
        keys = [(sources.get(REGISTRY[m].target, REGISTRY[m].target), k, t,
                 REGISTRY[m].tail_bucket, REGISTRY[m].uniform_floor, REGISTRY[m].sampled)
                for m, k, t in zip(specs.method, specs.k.tolist(), specs.temperature.tolist())]
        distinct = sorted(set(keys))
        logits = {"teacher": teacher_logits, "reversed": reverse_logits(teacher_logits),
                  "uniform": torch.zeros_like(teacher_logits)}
        num_classes = teacher_logits.shape[-1]
        masks = {(source, k): top_k_mask(logits[source], k) if k < num_classes
                 else torch.ones_like(teacher_logits, dtype=torch.bool)
                 for source, k, *_ in distinct}
        self.kept = torch.stack([masks[source, k] for source, k, *_ in distinct])
        dense = torch.stack([torch.softmax(logits[source] / temperature, dim=-1)
                             for source, _, temperature, *_ in distinct])
        bucket = torch.tensor([key[3] for key in distinct])[:, None, None]
        floor = torch.tensor([key[4] for key in distinct])[:, None, None, None]
        share = torch.tensor([key[1] / num_classes for key in distinct])[:, None, None, None]
        self.tail = torch.where(bucket, dense.masked_fill(self.kept, 0).sum(-1), 0.0)
        self.probs = torch.stack([torch.softmax(
            (logits[source] * (within_spread if k < num_classes else 1.0)).masked_fill(
                ~masks[source, k], float("-inf")) / temperature, dim=-1)
            for source, k, temperature, *_ in distinct])
        self.probs = torch.where(bucket[..., None], dense.masked_fill(~self.kept, 0), self.probs)
        self.probs = torch.where(floor, torch.where(self.kept, share * self.probs,
                                                    1.0 / num_classes), self.probs)
        self.samples = {}  # distinct target -> sampled classes [S, N, k], drawn once
        for index, (source, k, temperature, *_, sampled) in enumerate(distinct):
            if sampled:
                rows = sample_rows(logits[source], k, temperature,
                                   torch.Generator().manual_seed(index))
                self.samples[index] = rows.indices
                self.probs[index] = torch.zeros_like(self.probs[index]).scatter_add_(
                    -1, rows.indices, rows.weights.to(self.probs.dtype))
        self.neg_entropy = (torch.special.xlogy(self.probs, self.probs).sum(-1)
                            + torch.special.xlogy(self.tail, self.tail))
        self.target_index = torch.tensor([distinct.index(key) for key in keys])
        self.within_m = torch.tensor([REGISTRY[m].within_kept for m in specs.method])
        self.within_index = self.within_m.nonzero().flatten()
        self.bucket = torch.tensor([REGISTRY[m].tail_bucket for m in specs.method])
        self.bucket_index = self.bucket.nonzero().flatten()
        self.sparse_index = torch.tensor([REGISTRY[m].sparse_target for m in specs.method]
                                         ).nonzero().flatten()
        self.seed_index = specs.seed_index

    def sampled_rows(self, model: int) -> SampledRows:
        """The sampled rows [N, k] a sampled-KD ``model`` trains on (its seed's draw)."""
        indices = self.samples[int(self.target_index[model])][int(self.seed_index[model])]
        return SampledRows(indices, torch.full(indices.shape, 1.0 / indices.shape[-1]))

    def kept_of(self, models: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The kept sets M [len(models), B, C] of ``models`` on their rows of ``batch`` [n, B]."""
        return self.kept[self.target_index[models, None], self.seed_index[models, None],
                         batch[models]]

    def targets(self, batch: torch.Tensor) -> dict:
        """The targets of each model on its batch [n, B]: probs [n, B, C], neg_entropy [n, B],
        kept [n_within, B, C], M of the within-M models only, and for the tail-bucket models
        bucket_kept [n_bucket, B, C] (M) and tail [n_bucket, B] (1 - m)."""
        target, seed = self.target_index[:, None], self.seed_index[:, None]
        within, bucket = self.within_m, self.bucket
        return {"probs": self.probs[target, seed, batch],
                "neg_entropy": self.neg_entropy[target, seed, batch],
                "kept": self.kept[target[within], seed[within], batch[within]],
                "bucket_kept": self.kept[target[bucket], seed[bucket], batch[bucket]],
                "tail": self.tail[target[bucket], seed[bucket], batch[bucket]]}


def per_model_losses(student_logits: torch.Tensor, labels: torch.Tensor, targets: dict,
                     within_index: torch.Tensor, temperature: torch.Tensor,
                     alpha: torch.Tensor, bucket_index: torch.Tensor | None = None) -> dict:
    """Each model's KD loss (module docstring), shape [n], batch means.

    Each model's value is its method's objective (module docstring), with the KL written so
    that the constant and the student-dependent parts separate (one log-sum-exp, no mask of
    the target per step):

        KL(p || softmax(s_S / T)) = sum_i p(i) log p(i) + logsumexp_{i in S}(s(i) / T)
                                    - sum_i p(i) s(i) / T,

    with S the classes the student's softmax runs over: M for the models in ``within_index``
    (``targets["kept"]``), all classes otherwise; p = 0 off M, so the last sum runs over M.
    The models in ``bucket_index`` (tail-bucket KD) subtract (1 - m) logsumexp_{i not in M}(s(i)/T)
    more (their neg_entropy holds the tail cell's (1 - m) log(1 - m)); M is masked with the
    dtype's lowest finite value, so an empty tail (k = K, 1 - m = 0) adds 0 with a finite
    gradient. No data-dependent Python branch: ``torch.compile`` traces it whole.
    """
    num_models, batch_size, num_classes = student_logits.shape
    hard = F.cross_entropy(student_logits.reshape(-1, num_classes), labels.reshape(-1),
                           reduction="none").view(num_models, batch_size).mean(1)
    scaled = student_logits / temperature[:, None, None]
    normaliser = torch.logsumexp(scaled, dim=-1)
    within = scaled.index_select(0, within_index).masked_fill(~targets["kept"], float("-inf"))
    normaliser = normaliser.index_copy(0, within_index, torch.logsumexp(within, dim=-1))
    cross = (targets["probs"] * scaled).sum(-1)
    if bucket_index is not None:
        tail = scaled.index_select(0, bucket_index).masked_fill(
            targets["bucket_kept"], torch.finfo(scaled.dtype).min)
        cross = cross.index_add(0, bucket_index,
                                targets["tail"] * torch.logsumexp(tail, dim=-1))
    distill = (targets["neg_entropy"] + normaliser - cross).mean(1)
    total = (1 - alpha) * hard + alpha * temperature**2 * distill
    return {"total": total, "hard": hard, "distill": distill}


@dataclass(frozen=True)
class GapProbe:
    """Where and when :func:`train_students` logs each model's logit gap: the probe inputs
    [n, P, D] and the teacher's kept sets M on them [n, P, C] of each model, and the steps."""

    inputs: torch.Tensor
    kept: torch.Tensor
    steps: frozenset[int]


def train_students(specs: ModelSpecs, inputs: torch.Tensor, labels: torch.Tensor,
                   teacher_logits: torch.Tensor, student: StudentSettings,
                   generator: torch.Generator, probe: GapProbe | None = None, progress=None,
                   within_spread: float = 1.0):
    """Train every model; return (params, gap log {step: gap [n, probe] mean -> [n]}, empty
    without a ``probe``).

    inputs [S, N, D], noisy labels [S, N], teacher_logits [S, N, C] are per seed.
    ``student``: the MLP's width, the optimizer, batch size and steps; the learning rate
    decays from ``student.lr`` to 0 on a cosine; ``student.gap_cap`` > 0 adds the gap penalty
    (:func:`gap_penalty`) to the sparse-target models. ``within_spread``: see
    :class:`TargetBank`. ``progress``: a tqdm bar, one update a step.
    A non-finite loss at any step, or non-finite outputs after the last step, of any model
    raise :class:`~stingy.io.Diverged` (nothing is returned, so no result is written).
    """
    num_seeds, num_examples, input_dim = inputs.shape
    num_classes = teacher_logits.shape[-1]
    seed_params = init_mlp(num_seeds, input_dim, student.hidden, num_classes, generator)
    params = [p.detach()[specs.seed_index].clone().requires_grad_() for p in seed_params]
    optimizer = make_optimizer(params, student.optimizer, student.lr, student.momentum,
                               student.weight_decay)
    bank = TargetBank(teacher_logits, specs, within_spread)
    batch_size, steps = student.batch_size, student.steps
    per_epoch = num_examples // batch_size
    gaps = {}
    order = None
    first_bad = torch.full((len(specs),), -1, device=inputs.device)  # first non-finite loss
    for step in range(steps + 1):
        if probe is not None and step in probe.steps:
            with torch.no_grad():
                gaps[step] = logit_gap(mlp_forward(params, probe.inputs), probe.kept).mean(1)
        if step == steps:
            break
        if step % per_epoch == 0:
            order = torch.argsort(torch.rand(num_seeds, num_examples, generator=generator), 1)
        seed_batch = order[:, (step % per_epoch) * batch_size:][:, :batch_size]
        batch = seed_batch[specs.seed_index]
        rows = specs.seed_index[:, None]
        logits = mlp_forward(params, inputs[rows, batch])
        losses = per_model_losses(logits, labels[rows, batch], bank.targets(batch),
                                  bank.within_index, specs.temperature, specs.alpha,
                                  bank.bucket_index)
        total = losses["total"]
        if student.gap_cap > 0:
            total = total.index_add(0, bank.sparse_index, gap_penalty(
                logits.index_select(0, bank.sparse_index),
                bank.kept_of(bank.sparse_index, batch), student.gap_cap))
        optimizer.zero_grad(set_to_none=True)
        total.sum().backward()
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(student.lr, step, steps)
        optimizer.step()
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(losses["total"].detach()),
                                step, first_bad)
        if progress is not None:
            progress.update(1)
    with torch.no_grad():  # the last update can make the weights too large after its loss
        outputs = mlp_forward(params, inputs[rows, batch])
    check_finite(specs, first_bad, torch.isfinite(outputs).reshape(len(specs), -1).all(1),
                 per_epoch)
    return [p.detach() for p in params], gaps


def gap_penalty(logits: torch.Tensor, kept: torch.Tensor, cap: float) -> torch.Tensor:
    """Per model [n], the batch mean of relu(gap - cap)^2, with gap = mean of the logits on M
    minus their mean off M (logits [n, B, C], M as ``kept`` [n, B, C]): an intervention that
    holds the kept-vs-dropped gap near ``cap`` without touching the target."""
    kept = kept.to(logits.dtype)
    inside = (logits * kept).sum(-1) / kept.sum(-1)
    outside = (logits * (1 - kept)).sum(-1) / (1 - kept).sum(-1).clamp_min(1)
    return F.relu(inside - outside - cap).square().mean(1)


def check_finite(specs: ModelSpecs, first_bad: torch.Tensor, finite_outputs: torch.Tensor,
                 per_epoch: int) -> None:
    """``Diverged`` naming the methods whose loss turned non-finite at some step (at the
    first such epoch), or whose outputs on the last batch after the last update are not."""
    bad = (first_bad >= 0) | ~finite_outputs
    if not bool(bad.any()):
        return
    methods = sorted({specs.method[m] for m in bad.nonzero().flatten().tolist()})
    steps = first_bad[first_bad >= 0]
    when = f"epoch {int(steps.min()) // per_epoch + 1}" if len(steps) else "the last epoch"
    raise Diverged(f"diverged at {when}: the loss or the outputs of {', '.join(methods)} are "
                   f"not finite (lower student.lr)")


def cosine_lr(peak: float, step: int, steps: int) -> float:
    """Cosine decay from ``peak`` at step 0 to 0 at ``steps``."""
    return 0.5 * peak * (1 + math.cos(math.pi * step / steps))


def early_rate(steps: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Least-squares slope of gap against step, per model (gaps [n_steps, n_models])."""
    centred = steps - steps.mean()
    return centred @ (gaps - gaps.mean(0)) / (centred @ centred)
