"""The CIFAR runs' tail-bucket method ("tail_bucket_kd"): its loss is kd_loss_topk(..., tail="bucket")."""

import torch

from stingy.empirical.objectives import kept_classes, method_losses
from stingy.empirical.recipes import load_recipe
from stingy.theory.operators import kd_loss
from stingy.theory.tail_bucket import tail_bucket_terms


def test_bucket_loss_is_ce_plus_tail_bucket_kl_and_differs_from_stingy():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(8, 10, generator=generator)
    teacher = 4 * torch.randn(8, 10, generator=generator)
    labels = torch.randint(0, 10, (8,), generator=generator)
    method = {"name": "tail_bucket_kd", "temperature": 4.0, "alpha": 0.9, "k": 2, "ratio": 0.2}
    losses = method_losses(method, student, teacher, labels)
    expected = tail_bucket_terms(teacher.double(), student.double(), 2, 4.0)["exact"].mean()
    assert torch.allclose(losses["distill"].double(), expected, rtol=1e-5)
    ce = kd_loss(student, teacher, labels, 4.0, 0.0)
    assert torch.allclose(losses["loss"], 0.1 * ce + 0.9 * losses["distill"])
    stingy = method_losses({**method, "name": "stingy_kd"}, student, teacher, labels)
    assert float(stingy["distill"]) > 5 * float(losses["distill"])  # T^2 log(K/k) = 25.8


def test_bucket_recipes_load():
    for name in ("quick-bucket", "cifar10-bucket", "cifar100-bucket"):
        recipe = load_recipe(name)
        assert recipe["method"]["name"] == "tail_bucket_kd"
        assert kept_classes(recipe["method"], 100 if "100" in name else 10) >= 1
