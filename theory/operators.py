"""The Stingy Teacher's operators and the KD loss, in PyTorch.

All functions work on the last (class) dimension, are batched over any leading dimensions,
differentiable, and run on any device. NumPy arrays are accepted too; then NumPy comes back.

Notation (Ma et al. 2022, "Sparse Logits Suffice to Fail Knowledge Distillation"):
z teacher logits over K classes, k kept classes, M = top-k set of z, T temperature,
p = softmax(z/T), p~ = softmax(z_sparse/T), m = sum_{i in M} p(i).

Tie rule of :func:`sparsify_logits`: exactly k classes are kept. Every class whose logit is
strictly greater than the k-th largest value is kept; among the classes equal to the k-th
largest value, the ones with the lowest class index fill the remaining places. (The reference
code's ``torch.topk`` leaves the choice among ties unspecified.)

Precision: everything is computed in at least float32 (float16 and bfloat16 inputs are
promoted), so the stability guarantees hold for every floating input dtype. The operators
return the input dtype; :func:`kd_loss` returns the promoted dtype (float32 for float16 and
bfloat16 inputs, as ``torch.autocast`` does for losses: T^2 KL can exceed float16's largest
value 65504) and gives the student's gradient in the student's dtype.

Validation: the public functions check their arguments (``validate=True``) and raise
``ValueError`` naming the argument. Training loops call :func:`kd_loss_unchecked`, which has
no data-dependent Python branch and no host-device synchronisation.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from stingy.theory.validation import (
    as_tensor,
    check_alpha,
    check_flag,
    check_keep_count,
    check_labels,
    check_logits,
    check_nonempty_batch,
    check_positive_integer,
    check_ratio,
    check_reduction,
    check_same_shape,
    check_temperature,
)


def numpy_in_numpy_out(func):
    """Let ``func`` take NumPy arrays: convert them to tensors and convert tensors back
    (a returned tensor, or the tensors in a returned tuple or dict)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        given_numpy = any(isinstance(a, np.ndarray) for a in (*args, *kwargs.values()))
        args = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]
        kwargs = {key: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                  for key, v in kwargs.items()}
        result = func(*args, **kwargs)
        if not given_numpy:
            return result
        if isinstance(result, tuple):
            return tuple(_to_numpy(item) for item in result)
        if isinstance(result, dict):
            return {key: _to_numpy(item) for key, item in result.items()}
        return _to_numpy(result)

    return wrapper


def _to_numpy(value):
    """A tensor as a NumPy array; anything else unchanged."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype the arithmetic runs in: the tensors' promoted dtype, at least float32."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def keep_count(ratio: float, num_classes: int) -> int:
    """Kept classes for sparse ratio r: k = floor(r*K), refusing k < 1.

    The reference computes ``int(r * K)``; floating point makes that one short for some
    ratios (``int(0.29 * 100) == 28``, ``int(0.57 * 100) == 56``), so the product is rounded
    to 9 decimals before the floor. Source: stingy-teacher params.json ("sparse ratio").

    >>> keep_count(0.1, 100), keep_count(0.29, 100), keep_count(0.2, 10)
    (10, 29, 2)
    """
    num_classes = check_positive_integer(num_classes, "num_classes")
    ratio = check_ratio(ratio)
    k = int(np.floor(round(ratio * num_classes, 9)))
    if k < 1:
        raise ValueError(f"ratio must be at least 1/num_classes = {1 / num_classes:.6g} so that "
                         f"int(ratio*num_classes) >= 1, got ratio={ratio}")
    return k


def top_k_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the kept set M (exactly k True per row; ties to the lowest index)."""
    kth_value = logits.topk(k, dim=-1).values[..., -1:]
    above = logits > kth_value
    tied = logits == kth_value
    places_left = k - above.sum(dim=-1, keepdim=True)
    return above | (tied & (tied.cumsum(dim=-1) <= places_left))


@numpy_in_numpy_out
def sparsify_logits(logits, k: int) -> torch.Tensor:
    """z_sparse(i) = z(i) for i in M (the top-k classes), -inf elsewhere.

    >>> import torch
    >>> sparsify_logits(torch.tensor([1.0, 3.0, 2.0, 0.5]), k=2)
    tensor([-inf, 3., 2., -inf])
    >>> sparsify_logits(torch.tensor([1.0, 3.0, 3.0, 3.0]), k=2)  # ties: lowest index kept
    tensor([-inf, 3., 3., -inf])
    """
    logits = check_logits(as_tensor(logits, "logits"))
    k = check_keep_count(k, logits.shape[-1])
    return logits.masked_fill(~top_k_mask(logits, k), float("-inf"))


@numpy_in_numpy_out
def sparse_target(logits, k: int, temperature: float) -> torch.Tensor:
    """p~ = softmax(z_sparse / T): p~(i) = p(i)/m on M and 0 off M (T1).

    >>> import torch
    >>> sparse_target(torch.tensor([2.0, 0.0, 2.0, -1.0]), k=2, temperature=1.0)
    tensor([0.5000, 0.0000, 0.5000, 0.0000])
    """
    logits = check_logits(as_tensor(logits, "logits"))
    k = check_keep_count(k, logits.shape[-1])
    temperature = check_temperature(temperature)
    promoted = logits.to(compute_dtype(logits))
    sparse = promoted.masked_fill(~top_k_mask(logits, k), float("-inf"))
    return torch.softmax(sparse / temperature, dim=-1).to(logits.dtype)


@numpy_in_numpy_out
def kept_mass(logits, k: int, temperature: float) -> torch.Tensor:
    """m = sum_{i in M} softmax(z/T)(i), the dense teacher's mass on its top-k classes (T2).

    >>> import torch
    >>> kept_mass(torch.tensor([[0.0, 0.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0]]), k=1, temperature=1.0)
    tensor([0.2500, 0.9996])
    """
    logits = check_logits(as_tensor(logits, "logits"))
    k = check_keep_count(k, logits.shape[-1])
    temperature = check_temperature(temperature)
    log_p = torch.log_softmax(logits.to(compute_dtype(logits)) / temperature, dim=-1)
    kept = top_k_mask(logits, k)
    return torch.logsumexp(log_p.masked_fill(~kept, float("-inf")), dim=-1).exp().to(logits.dtype)


def distillation_kl(student_logits: torch.Tensor, target_log_probs: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """Per-example KL(p_target || softmax(s/T)), with 0*log 0 = 0 where the target is zero.

    ``target_log_probs`` may hold -inf (sparse targets); no nan reaches the value or the
    gradients of either argument. (Plain autograd; :func:`kd_loss_unchecked` is the fast
    closed-form-gradient version of the whole loss.)
    """
    support = torch.isfinite(target_log_probs)
    log_q = torch.log_softmax(student_logits / temperature, dim=-1)
    zero = torch.zeros_like(target_log_probs)
    safe_log_target = torch.where(support, target_log_probs, zero)
    terms = safe_log_target.exp() * (safe_log_target - log_q)
    return torch.where(support, terms, zero).sum(dim=-1)


def kept_indices(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The kept set M of each row of [N, K] logits as [N, k] class indices (in no particular
    order), by the tie rule of :func:`sparsify_logits`, without a sort.

    For float16, bfloat16 and float32 logits one ``topk`` runs on an integer key that orders
    by value and then by lower class index: the float's bits made monotone (-0.0 first
    becomes +0.0, which it equals), times K, plus K - 1 - index. float64 logits take the mask
    of :func:`top_k_mask` and a stable sort of it.
    """
    num_classes = logits.shape[-1]
    if k == 1:  # argmax returns the first (lowest-index) maximum
        return logits.argmax(dim=-1, keepdim=True)
    if logits.dtype == torch.float64:
        kept = top_k_mask(logits, k).to(torch.uint8)
        return kept.argsort(dim=-1, descending=True, stable=True)[:, :k]
    bits = (logits.to(torch.float32) + 0.0).view(torch.int32)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    lower_index_first = torch.arange(num_classes - 1, -1, -1, device=logits.device)
    key = ordered.to(torch.int64) * num_classes + lower_index_first
    return key.topk(k, dim=-1, sorted=False).indices


def _log_softmax(x: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last dimension; spelled out on the CPU for rows of 2 to 63
    entries, where PyTorch's kernel is several times slower than these operations (21 us
    against 14 us for 128 x 10, 160 us against 44 us for 1024 x 10, on the benchmark
    machine)."""
    if x.shape[-1] >= 64 or x.shape[-1] == 1 or x.device.type != "cpu":
        return torch.log_softmax(x, dim=-1)
    shifted = x - x.amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log_()


class _KDLossFunction(torch.autograd.Function):
    """The KD loss with its gradient in closed form (see :func:`kd_loss_unchecked`).

    Per example, with q = softmax(s_S / T) (S = M for within-M KD, else all classes; q = 0
    off S), p~ the (sparse) target and r = softmax(s):

        dL/ds = a T (q - p~) + (1 - a) (r - onehot(y))

    since d/ds [T^2 KL(p~ || q)] = T^2 (q - p~) / T and d/ds CE(s, y) = r - onehot(y);
    "mean" and "batchmean" divide by the number of examples N. The target lives on the k kept
    classes only (gathered by :func:`kept_indices`). The forward pass stores the gradient, so
    the backward pass is one multiplication.
    """

    @staticmethod
    def forward(ctx, student, teacher, labels, temperature, alpha, k, within_kept, reduction):
        num_classes = student.shape[-1]
        dtype = compute_dtype(student, teacher)
        student_rows = student.reshape(-1, num_classes).to(dtype)
        teacher_rows = teacher.reshape(-1, num_classes)
        scale = 1.0 if reduction in ("sum", "none") else 1.0 / max(student_rows.shape[0], 1)
        if k is None:
            log_p = _log_softmax(teacher_rows.to(dtype) / temperature)
            p = log_p.exp()
            log_q = _log_softmax(student_rows / temperature)
            kl = (p * (log_p - log_q)).sum(dim=-1)
            kd_grad = log_q.exp_().sub_(p)
        else:
            kept = kept_indices(teacher_rows, k)
            log_p = _log_softmax(teacher_rows.gather(-1, kept).to(dtype) / temperature)
            p = log_p.exp()
            if within_kept:
                log_q = _log_softmax(student_rows.gather(-1, kept) / temperature)
                kl = (p * (log_p - log_q)).sum(dim=-1)
                kd_grad = torch.zeros_like(student_rows).scatter_(-1, kept, log_q.exp_().sub_(p))
            else:
                log_q = _log_softmax(student_rows / temperature)
                kl = (p * (log_p - log_q.gather(-1, kept))).sum(dim=-1)
                kd_grad = log_q.exp_().scatter_add_(-1, kept, p.neg_())
        loss = kl * (alpha * temperature**2)
        if alpha < 1:
            rows = labels.reshape(-1, 1).to(torch.int64)
            log_r = _log_softmax(student_rows)
            loss = loss.sub_(log_r.gather(-1, rows).squeeze(-1), alpha=1 - alpha)
        if ctx.needs_input_grad[0]:
            gradient = kd_grad.mul_(alpha * temperature * scale)
            if alpha < 1:
                hard = log_r.exp_().scatter_add_(-1, rows, torch.full_like(rows, -1, dtype=dtype))
                gradient = gradient.add_(hard, alpha=(1 - alpha) * scale)
            ctx.save_for_backward(gradient)
        ctx.student_shape, ctx.student_dtype, ctx.reduction = student.shape, student.dtype, reduction
        if reduction == "none":
            return loss.reshape(student.shape[:-1])
        return loss.sum() * scale

    @staticmethod
    def backward(ctx, grad_output):
        (gradient,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grad_output = grad_output.reshape(-1, 1)
        grad = (gradient * grad_output).reshape(ctx.student_shape).to(ctx.student_dtype)
        return grad, None, None, None, None, None, None, None


def kd_loss_unchecked(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor | None, temperature: float, alpha: float,
                      k: int | None = None, within_kept: bool = False,
                      reduction: str = "batchmean") -> torch.Tensor:
    """:func:`kd_loss` without any argument check, for training loops.

    The same formula and conventions as :func:`kd_loss`, with the gradient with respect to the
    student in closed form (one custom autograd function). It has no data-dependent Python
    branch and no host-device synchronisation, so ``torch.compile`` traces it whole. The
    caller guarantees what :func:`kd_loss` checks: tensors of the same shape [..., K], finite
    logits, integer labels in [0, K) (any integer dtype; ``None`` only when alpha == 1), a
    non-empty batch, T > 0, alpha in [0, 1], k in [1, K] or None, and reduction one of
    "batchmean", "mean", "sum", "none". Only first derivatives are available.

    >>> import torch
    >>> s, z = torch.tensor([[2.0, 1.0, 0.0]]), torch.tensor([[3.0, 1.0, -1.0]])
    >>> round(kd_loss_unchecked(s, z, torch.tensor([0]), 4.0, 0.9, k=2).item(), 4)
    4.3734
    """
    return _KDLossFunction.apply(student_logits, teacher_logits.detach(), labels, temperature,
                                 alpha, k, within_kept, reduction)


@numpy_in_numpy_out
def kd_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float,
            k: int | None = None, within_kept: bool = False, *, reduction: str = "batchmean",
            validate: bool = True) -> torch.Tensor:
    """Hinton KD loss with an optional Stingy Teacher.

        L = (1 - a) * CE(s, y) + a * T^2 * KL(softmax(z_k / T) || softmax(s / T))

    per example, with z_k = sparsify_logits(z, k) (k=None: the dense teacher, normal KD).
    ``within_kept=True`` is within-M KD: the student's tempered softmax is renormalised over
    the teacher's kept set M, KL(p~ || softmax(s_M / T)), which removes the order-T drive of
    the stingy target (T4) and equals the ordinary loss when k = K.

    ``reduction``: "batchmean" (default) and "mean" both average the per-example loss over
    every leading dimension; with [B, K] logits this is the reference's
    ``nn.KLDivLoss(reduction="batchmean")`` plus ``F.cross_entropy``. (It is not
    ``KLDivLoss``'s "mean", which also divides by K.) "sum" sums it; "none" returns it with
    the logits' shape minus the class dimension.

    ``labels`` may be None when alpha == 1 (no cross-entropy term); any integer dtype is
    accepted. Gradients flow into the student only; the teacher logits are treated as
    constants (detached). Dtypes: see the module docstring. ``validate=False`` skips the
    argument checks (:func:`kd_loss_unchecked`).

    >>> import torch
    >>> student = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    >>> teacher = torch.tensor([[3.0, 1.0, -1.0], [1.0, 2.0, 0.0]])
    >>> labels = torch.tensor([0, 1], dtype=torch.int32)
    >>> loss = kd_loss(student, teacher, labels, temperature=4.0, alpha=0.9, k=1)
    >>> round(loss.item(), 4)
    13.0685
    >>> loss.backward()
    >>> student.grad.shape
    torch.Size([2, 3])
    >>> kd_loss(student, teacher, labels, 0.0, 0.9)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be a finite number > 0 and <= 1e+06, got 0.0
    """
    if validate:
        student_logits = check_logits(as_tensor(student_logits, "student_logits"),
                                      "student_logits")
        teacher_logits = check_logits(as_tensor(teacher_logits, "teacher_logits"),
                                      "teacher_logits")
        check_same_shape(student_logits, teacher_logits, "student_logits", "teacher_logits")
        check_nonempty_batch(student_logits, "student_logits")
        temperature = check_temperature(temperature)
        alpha = check_alpha(alpha)
        if labels is None and alpha < 1:
            raise ValueError(f"labels are needed when alpha < 1 (the cross-entropy term has "
                             f"weight 1 - alpha), got labels=None and alpha={alpha}")
        if labels is not None:
            labels = check_labels(as_tensor(labels, "labels"), student_logits)
        if k is not None:
            k = check_keep_count(k, student_logits.shape[-1])
        if check_flag(within_kept, "within_kept") and k is None:
            raise ValueError("within_kept=True needs k (the kept set M), got k=None")
        reduction = check_reduction(reduction)
    return kd_loss_unchecked(student_logits, teacher_logits, labels, temperature, alpha, k,
                             within_kept, reduction)


class StingyKDLoss(nn.Module):
    """The KD loss of :func:`kd_loss` as a module, with its settings checked once.

    Give exactly one of ``k`` (kept classes) or ``ratio`` (k = keep_count(ratio, K), from the
    logits' K at each call; ratio=1.0 is normal KD). ``temperature`` T > 0 and ``alpha`` in
    [0, 1] weight a * T^2 * KL + (1 - a) * CE; ``within_kept`` selects within-M KD;
    ``reduction`` is "batchmean", "mean", "sum" or "none". ``validate=False`` skips the
    per-call checks of the tensors (for training loops and ``torch.compile``).
    Labels are optional when alpha == 1.

    >>> import torch
    >>> criterion = StingyKDLoss(ratio=0.5, temperature=4.0, alpha=0.9)
    >>> criterion
    StingyKDLoss(ratio=0.5, temperature=4.0, alpha=0.9, within_kept=False, reduction='batchmean')
    >>> student = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    >>> teacher = torch.tensor([[3.0, 1.0, -1.0, 0.0]])
    >>> round(criterion(student, teacher, torch.tensor([0])).item(), 4)
    6.9784
    >>> StingyKDLoss(k=2, ratio=0.5, temperature=4.0, alpha=0.9)
    Traceback (most recent call last):
    ...
    ValueError: give exactly one of k (an integer >= 1) or ratio (a number in (0, 1]), got k=2 and ratio=0.5
    """

    def __init__(self, *, k: int | None = None, ratio: float | None = None,
                 temperature: float, alpha: float, within_kept: bool = False,
                 reduction: str = "batchmean", validate: bool = True):
        super().__init__()
        if (k is None) == (ratio is None):
            raise ValueError(f"give exactly one of k (an integer >= 1) or ratio (a number in "
                             f"(0, 1]), got k={k!r} and ratio={ratio!r}")
        self.k = None if k is None else check_positive_integer(k, "k")
        self.ratio = None if ratio is None else check_ratio(ratio)
        self.temperature = check_temperature(temperature)
        self.alpha = check_alpha(alpha)
        self.within_kept = check_flag(within_kept, "within_kept")
        self.reduction = check_reduction(reduction)
        self.validate = check_flag(validate, "validate")

    def kept_classes(self, num_classes: int) -> int:
        """k for logits over ``num_classes`` classes."""
        return self.k if self.ratio is None else keep_count(self.ratio, num_classes)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        k = self.kept_classes(student_logits.shape[-1])
        return kd_loss(student_logits, teacher_logits, labels, self.temperature, self.alpha, k,
                       self.within_kept, reduction=self.reduction, validate=self.validate)

    def extra_repr(self) -> str:
        size = f"k={self.k}" if self.ratio is None else f"ratio={self.ratio}"
        return (f"{size}, temperature={self.temperature}, alpha={self.alpha}, "
                f"within_kept={self.within_kept}, reduction={self.reduction!r}")


@numpy_in_numpy_out
def reverse_logits(logits, *, validate: bool = True) -> torch.Tensor:
    """The reference's "reversed logits" ablation: keep the top-1 logit, reverse the rest.

    With v(1) >= v(2) >= ... >= v(K) the sorted logits and c(j) the class holding v(j), the
    output gives c(1) the value v(1) and c(j) the value v(K + 2 - j) for j >= 2: the second
    most likely class gets the smallest logit and the least likely gets the second largest.
    The argmax, and the multiset of values, are unchanged. Ties sort by class index.
    ``validate=False`` skips the finiteness check (for training loops).

    >>> import torch
    >>> reverse_logits(torch.tensor([2.0, 5.0, 1.0, 3.0, 4.0]))
    tensor([3., 5., 4., 2., 1.])
    """
    if validate:
        logits = check_logits(as_tensor(logits, "logits"))
    values, classes = logits.sort(dim=-1, descending=True, stable=True)
    reordered = torch.cat([values[..., :1], values[..., 1:].flip(-1)], dim=-1)
    return torch.empty_like(logits).scatter(-1, classes, reordered)
