"""The one objective: each registry method's loss, built once from its settings, against an
independent reference formula written here with plain softmaxes (not the cores it calls)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.empirical.recipes import load_recipe
from stingy.methods import METHODS, MethodSettings, names
from stingy.objective import TopKRows
from stingy.theory.operators import reverse_logits


def batch(seed, n=6, classes=10):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, classes, generator=g, dtype=torch.float64) * 3,
            torch.randn(n, classes, generator=g, dtype=torch.float64) * 5,
            torch.randint(0, classes, (n,), generator=g))


def objective(name, classes=10, label_smoothing=0.0, **numbers):
    numbers = {"temperature": 4.0, "alpha": 0.9, **numbers}
    return METHODS[name].objective(MethodSettings(name, **numbers), classes, label_smoothing)


def top_k_set(teacher, k):
    """M by the tie rule (lowest class index first), through a stable sort."""
    order = teacher.sort(dim=-1, descending=True, stable=True).indices[:, :k]
    return torch.zeros_like(teacher, dtype=torch.bool).scatter_(-1, order, True)


def reference(name, student, teacher, labels, temperature=4.0, alpha=0.9, k=None,
              weight=0.04):
    """Each method's loss from its formula (stingy.methods' docstring), batch mean."""
    t = temperature
    ce = F.cross_entropy(student, labels)
    log_q = torch.log_softmax(student / t, -1)
    if name == "nasty_teacher":
        p = torch.softmax(teacher / t, -1)
        return ce - weight * t**2 * (p * (p.log() - log_q)).sum(-1).mean()
    if name == "reversed_kd":
        teacher = reverse_logits(teacher)
    kept = top_k_set(teacher, k) if k else torch.ones_like(teacher, dtype=torch.bool)
    if name == "tail_bucket_kd":
        p = torch.softmax(teacher / t, -1)
        q = log_q.exp()
        target = torch.cat([p * kept, (p * ~kept).sum(-1, keepdim=True)], -1)
        model = torch.cat([q * kept, (q * ~kept).sum(-1, keepdim=True)], -1)
    else:
        target = torch.softmax(teacher.masked_fill(~kept, -torch.inf) / t, -1)
        if name == "uniform_floor_kd":
            classes = teacher.shape[-1]
            target = torch.where(kept, k / classes * target, 1 / classes)
        scaled = student.masked_fill(~kept, -torch.inf) if name == "within_m_kd" else student
        model = torch.softmax(scaled / t, -1)
    kl = torch.where(target > 0, target * (target.log() - model.log()), 0.0).sum(-1).mean()
    return (1 - alpha) * ce + alpha * t**2 * kl


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 10), temperature=st.floats(0.5, 30),
       alpha=st.floats(0, 1),
       name=st.sampled_from(["normal_kd", "reversed_kd", "stingy_kd", "within_m_kd",
                             "tail_bucket_kd", "uniform_floor_kd"]))
def test_each_distilling_method_is_its_formula(seed, k, temperature, alpha, name):
    student, teacher, labels = batch(seed)
    sparse = METHODS[name].sparse_target
    loss = objective(name, temperature=temperature, alpha=alpha, k=k if sparse else 0)(
        student, teacher, labels)
    expected = reference(name, student, teacher, labels, temperature, alpha,
                         k if sparse else None)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-4, atol=1e-4)


def test_ratio_gives_k_from_keep_count_and_k_wins_over_it():
    assert objective("stingy_kd", ratio=0.2).k == 2
    assert objective("stingy_kd", ratio=0.2, k=3).k == 3
    assert objective("normal_kd", ratio=0.2).k is None
    assert objective("stingy_kd", ratio=0.29, classes=100).k == 29


def test_nasty_scratch_and_label_smoothing_follow_their_formulas():
    student, teacher, labels = batch(3)
    torch.testing.assert_close(objective("nasty_teacher")(student, teacher, labels).double(),
                               reference("nasty_teacher", student, teacher, labels))
    scratch = objective("scratch", label_smoothing=0.1)(student, None, labels)
    torch.testing.assert_close(scratch.double(),
                               F.cross_entropy(student, labels, label_smoothing=0.1))
    smoothing = objective("label_smoothing", alpha=0.3)(student, None, labels)
    uniform = torch.full_like(student, 0.1)
    expected = 0.7 * F.cross_entropy(student, labels) + 0.3 * (
        uniform * (uniform.log() - torch.log_softmax(student, -1))).sum(-1).mean()
    torch.testing.assert_close(smoothing.double(), expected)


def test_dafl_is_all_distillation_and_sparse_only_when_k_or_ratio_is_set():
    student, teacher, labels = batch(4)
    dense = objective("dafl_kd", alpha=1.0, temperature=1.0)
    assert dense.k is None and dense.alpha == 1.0
    torch.testing.assert_close(dense(student, teacher).double(),
                               reference("normal_kd", student, teacher, labels, 1.0, 1.0))
    sparse = objective("dafl_kd", alpha=1.0, temperature=1.0, ratio=0.2)
    released = sparse.release(teacher)
    assert sparse.k == 2 and torch.equal(torch.isfinite(released), top_k_set(teacher, 2))
    torch.testing.assert_close(sparse(student, teacher).double(),
                               reference("stingy_kd", student, teacher, labels, 1.0, 1.0, 2))


@pytest.mark.parametrize("name", ["stingy_kd", "within_m_kd", "uniform_floor_kd"])
def test_stored_top_k_rows_give_the_dense_teachers_loss(name):
    student, teacher, labels = batch(5)
    values, indices = teacher.sort(dim=-1, descending=True, stable=True)
    rows = TopKRows(indices[:, :5], values[:, :5])
    loss = objective(name, k=3)
    torch.testing.assert_close(loss(student, rows, labels), loss(student, teacher, labels))


def test_tail_bucket_from_rows_with_their_log_partition_gives_the_dense_teachers_loss():
    student, teacher, labels = batch(5)
    values, indices = teacher.sort(dim=-1, descending=True, stable=True)
    loss = objective("tail_bucket_kd", k=3)
    log_partition = torch.logsumexp(teacher / loss.temperature, dim=-1)
    rows = TopKRows(indices[:, :5], values[:, :5], log_partition)
    torch.testing.assert_close(loss(student, rows, labels), loss(student, teacher, labels))
    with pytest.raises(ValueError, match="log-partition"):
        loss(student, TopKRows(indices[:, :5], values[:, :5]), labels)


def test_a_student_equal_to_the_teacher_pays_only_the_stingy_targets_dropped_mass():
    """At s = z the tail bucket's loss is 0 and stingy KD's is T^2 mean(-log m), since
    KL(p~ || p) = sum_M (p/m) log(1/m)."""
    _, teacher, labels = batch(6)
    kept_mass = (torch.softmax(teacher / 4.0, -1) * top_k_set(teacher, 2)).sum(-1)
    bucket = objective("tail_bucket_kd", alpha=1.0, k=2)(teacher, teacher, labels)
    stingy = objective("stingy_kd", alpha=1.0, k=2)(teacher, teacher, labels)
    torch.testing.assert_close(bucket, torch.zeros((), dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(stingy, 16 * (-kept_mass.log()).mean())


def test_gradients_reach_the_student_only():
    student, teacher, labels = batch(7)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    for name in names(data_free=False):
        student.grad = None
        objective(name, k=2 if METHODS[name].sparse_target else 0)(
            student, teacher, labels).backward()
        assert torch.isfinite(student.grad).all(), name
    assert teacher.grad is None


def test_a_k_above_the_class_count_is_refused_when_the_objective_is_built():
    with pytest.raises(ValueError, match="method.k must be in"):
        objective("stingy_kd", k=11)


def test_every_packaged_recipe_builds_its_objective():
    from stingy.empirical.recipes import packaged_recipes

    for name in packaged_recipes():
        recipe = load_recipe(name)
        built = recipe.entry.objective(recipe.method, 100 if "100" in name else 10)
        assert built.method == recipe.method.name
        if recipe.entry.sparse_target:
            assert built.k >= 1


def test_the_uniform_floor_is_a_fixed_instance_and_has_no_drive():
    """K = 4, k = 2, T = 1: the sparse target on M = {0, 1} is softmax(2, 0) = (0.8808,
    0.1192); the floor scales it by k/K = 0.5 and puts 1/K = 0.25 on each dropped class, so
    its mean over M equals its mean off M (the drive U_M - U_K is gone). At alpha = 1 the loss
    is KL(floor || softmax(s)) against a uniform student: sum floor log(4 floor)."""
    teacher = torch.tensor([[2.0, 0.0, -1.0, -3.0]], dtype=torch.float64)
    student = torch.zeros_like(teacher)
    floor = torch.tensor([0.5 * 0.8807970779778823, 0.5 * 0.11920292202211755, 0.25, 0.25],
                         dtype=torch.float64)
    assert floor[:2].mean() == pytest.approx(floor[2:].mean())
    loss = objective("uniform_floor_kd", classes=4, k=2, temperature=1.0, alpha=1.0)(
        student, teacher, torch.tensor([0]))
    assert float(loss) == pytest.approx(float((floor * (4 * floor).log()).sum()), rel=1e-12)
    assert float(loss) == pytest.approx(0.16390666, rel=1e-6)


def test_sampled_kd_is_the_kd_loss_against_the_sampled_counts():
    from stingy.objective import SampledRows

    student, _, labels = batch(6, n=2, classes=4)
    rows = SampledRows(torch.tensor([[0, 0, 2], [3, 1, 3]]), torch.full((2, 3), 1 / 3))
    target = torch.tensor([[2 / 3, 0, 1 / 3, 0], [0, 1 / 3, 0, 2 / 3]], dtype=torch.float64)
    t, alpha = 4.0, 0.9
    log_q = torch.log_softmax(student / t, -1)
    kl = torch.where(target > 0, target * (target.log() - log_q), 0.0).sum(-1).mean()
    expected = (1 - alpha) * F.cross_entropy(student, labels) + alpha * t**2 * kl
    loss = objective("sampled_kd", classes=4, k=3, temperature=t, alpha=alpha)(
        student, rows, labels)
    torch.testing.assert_close(loss, expected)


def test_sampled_rows_are_unbiased_for_the_teachers_softmax_and_its_gradient():
    """The mean of many sampled targets is softmax(z / T), so the mean gradient of sampled KD
    is normal KD's (at alpha = 1 both are T (q - target))."""
    from stingy.objective import sample_rows

    _, teacher, _ = batch(7, n=1, classes=5)
    draws = 40_000
    rows = sample_rows(teacher.expand(draws, 5), 4, 4.0, torch.Generator().manual_seed(0))
    counts = torch.zeros(draws, 5).scatter_add_(-1, rows.indices, rows.weights).mean(0)
    torch.testing.assert_close(counts.double(), torch.softmax(teacher[0] / 4.0, -1),
                               atol=6e-3, rtol=0)
    assert not torch.allclose(counts.double(), torch.softmax(teacher[0], -1), atol=6e-3)
    student = torch.zeros(draws, 5, requires_grad=True)
    objective("sampled_kd", classes=5, k=4, alpha=1.0)(student, rows, None).backward()
    dense = torch.zeros(1, 5, dtype=torch.float64, requires_grad=True)
    objective("normal_kd", classes=5, alpha=1.0)(dense, teacher, None).backward()
    # T = 4 times the sampling error of the counts above
    torch.testing.assert_close(student.grad.sum(0).double(), dense.grad[0], atol=4 * 6e-3,
                               rtol=0)
