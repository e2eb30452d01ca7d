"""The public API: what ``from stingy import ...`` gives, that importing it stays light, and
StingyKDLoss (settings checked once, the same loss as kd_loss)."""

import subprocess
import sys

import pytest
import torch

import stingy
from stingy import StingyKDLoss, kd_loss
from stingy.theory import operators, topk

PUBLIC = ("kd_loss", "sparsify_logits", "sparse_target", "kept_mass", "keep_count",
          "reverse_logits", "StingyKDLoss")


def test_top_level_names_are_the_operators():
    for name in PUBLIC:
        assert getattr(stingy, name) is getattr(operators, name)
    assert set(PUBLIC) | {"kd_loss_topk"} == set(stingy.__all__)
    assert stingy.kd_loss_topk is topk.kd_loss_topk
    with pytest.raises(AttributeError, match="no_such_name"):
        stingy.no_such_name  # noqa: B018


def test_importing_the_api_loads_neither_sympy_nor_matplotlib():
    code = ("import sys, stingy\n"
            "assert 'torch' not in sys.modules, 'import stingy alone loads torch'\n"
            "from stingy import " + ", ".join(PUBLIC) + "\n"
            "heavy = [m for m in ('sympy', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def _batch(seed=0, batch=6, classes=10):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=generator)
    teacher = torch.randn(batch, classes, generator=generator)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return student, teacher, labels


@pytest.mark.parametrize("size", [{"k": 3}, {"ratio": 0.3}])
@pytest.mark.parametrize("within_kept", [False, True])
@pytest.mark.parametrize("reduction", ["batchmean", "mean", "sum", "none"])
def test_module_equals_kd_loss(size, within_kept, reduction):
    student, teacher, labels = _batch()
    criterion = StingyKDLoss(**size, temperature=4.0, alpha=0.7, within_kept=within_kept,
                             reduction=reduction)
    expected = kd_loss(student, teacher, labels, 4.0, 0.7, 3, within_kept, reduction=reduction)
    torch.testing.assert_close(criterion(student, teacher, labels), expected)


def test_ratio_is_resolved_per_call_from_the_number_of_classes():
    criterion = StingyKDLoss(ratio=0.2, temperature=4.0, alpha=1.0)
    assert criterion.kept_classes(10) == 2 and criterion.kept_classes(100) == 20
    student, teacher, _ = _batch(classes=100)
    torch.testing.assert_close(criterion(student, teacher),
                               kd_loss(student, teacher, None, 4.0, 1.0, 20))


def test_labels_optional_only_when_alpha_is_one():
    student, teacher, _ = _batch()
    assert torch.isfinite(StingyKDLoss(k=2, temperature=4.0, alpha=1.0)(student, teacher))
    with pytest.raises(ValueError, match="labels"):
        StingyKDLoss(k=2, temperature=4.0, alpha=0.9)(student, teacher)


def test_unvalidated_module_gives_the_same_loss_and_gradient():
    student, teacher, labels = _batch()
    checked, unchecked = student.clone().requires_grad_(), student.clone().requires_grad_()
    settings = {"k": 3, "temperature": 4.0, "alpha": 0.7}
    StingyKDLoss(**settings)(checked, teacher, labels).backward()
    StingyKDLoss(**settings, validate=False)(unchecked, teacher, labels).backward()
    assert torch.equal(checked.grad, unchecked.grad)


def test_repr_shows_the_settings():
    assert repr(StingyKDLoss(k=2, temperature=20.0, alpha=0.9)) == (
        "StingyKDLoss(k=2, temperature=20.0, alpha=0.9, within_kept=False, "
        "reduction='batchmean')")


GOOD_SETTINGS = {"k": 2, "temperature": 4.0, "alpha": 0.9}
INVALID_SETTINGS = [  # (change to GOOD_SETTINGS, the argument the error must name)
    ({"ratio": 0.5}, "exactly one of k"),
    ({"k": None}, "exactly one of k"),
    ({"k": 0}, "k must be an integer >= 1"),
    ({"k": 2.0}, "k must be an integer >= 1"),
    ({"k": True}, "k must be an integer >= 1"),
    ({"k": None, "ratio": 0.0}, "ratio"),
    ({"k": None, "ratio": 1.5}, "ratio"),
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"alpha": -0.1}, "alpha"),
    ({"alpha": "0.9"}, "alpha"),
    ({"within_kept": "yes"}, "within_kept"),
    ({"reduction": "elementwise_mean"}, "reduction"),
    ({"validate": None}, "validate"),
]


@pytest.mark.parametrize("change,message", INVALID_SETTINGS)
def test_bad_setting_is_refused_when_built_naming_it(change, message):
    with pytest.raises(ValueError, match=message):
        StingyKDLoss(**dict(GOOD_SETTINGS, **change))


def test_k_larger_than_the_number_of_classes_is_refused_at_the_call():
    student, teacher, labels = _batch(classes=10)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 10\]"):
        StingyKDLoss(k=11, temperature=4.0, alpha=0.9)(student, teacher, labels)


def test_convention_table_in_docs_methods_maps_alpha_and_temperature():
    """The table in docs/methods.md: this package's (alpha, T) against each project's loss,
    written here from its formula (torchdistill KDLoss: alpha CE + beta T^2 KL(batchmean),
    beta = 1 - alpha; mdistiller KD: CE_WEIGHT CE + KD_WEIGHT T^2 KL summed over classes, mean
    over the batch; RepDistiller: gamma CE + alpha DistillKL, DistillKL = T^2 KL(sum) / batch),
    at the settings of the table's last row (T = 4, alpha = 0.9)."""
    from pathlib import Path

    import torch.nn.functional as F

    table = (Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text()
    paper_row = next(line for line in table.splitlines()
                     if line.startswith("| the paper's CIFAR-10 KD (T=4, alpha=0.9) |"))
    for theirs in ("`temperature=4, alpha=0.1, beta=0.9`",
                   "`TEMPERATURE=4, CE_WEIGHT=0.1, KD_WEIGHT=0.9`",
                   "`--kd_T 4 -r 0.1 -a 0.9 -b 0`"):
        assert theirs in paper_row

    student, teacher, labels = _batch(seed=7, batch=8, classes=10)
    alpha, temperature = 0.9, 4.0
    log_q = F.log_softmax(student / temperature, dim=1)
    p = F.softmax(teacher / temperature, dim=1)
    ce = F.cross_entropy(student, labels)
    torchdistill = ((1 - alpha) * ce + alpha * temperature**2
                    * F.kl_div(log_q, p, reduction="batchmean"))  # their alpha = 1 - ours
    mdistiller = (1 - alpha) * ce + alpha * temperature**2 * F.kl_div(
        log_q, p, reduction="none").sum(1).mean()  # CE_WEIGHT = 1 - alpha, KD_WEIGHT = alpha
    repdistiller = (1 - alpha) * ce + alpha * F.kl_div(
        log_q, p, reduction="sum") * temperature**2 / student.shape[0]  # -r 1-alpha, -a alpha
    ours = StingyKDLoss(ratio=1.0, temperature=temperature, alpha=alpha)(student, teacher, labels)
    for theirs in (torchdistill, mdistiller, repdistiller):
        torch.testing.assert_close(ours, theirs)
