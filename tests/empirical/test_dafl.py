"""DAFL: the generator's losses by hand, the generator, and short data-free KD runs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from stingy.empirical.dafl import Generator, dafl_generator_losses, distill_data_free
from stingy.empirical.recipes import build_recipe, load_recipe
from stingy.theory.operators import sparsify_logits


def test_losses_match_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    features = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    losses = dafl_generator_losses(logits, features, onehot_weight=0.5, activation_weight=0.1,
                                   entropy_weight=5.0)
    onehot = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    p1 = [1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))]
    p2 = [1 / (1 + math.exp(1)), 1 / (1 + math.exp(-1))]
    mean = [(a + b) / 2 for a, b in zip(p1, p2)]
    entropy = sum(p * math.log10(p) for p in mean)  # = -H10(mean)
    assert losses["onehot"].item() == pytest.approx(onehot, rel=1e-6)
    assert losses["activation"].item() == pytest.approx(-1.5)
    assert losses["entropy"].item() == pytest.approx(entropy, rel=1e-6)
    assert losses["total"].item() == pytest.approx(0.5 * onehot - 0.15 + 5 * entropy, rel=1e-6)


def test_entropy_term_is_minus_log10_k_for_balanced_pseudo_labels():
    # each image confidently one class, classes equally often: p_bar uniform, -H10 = -log10 K
    logits = 50.0 * torch.eye(4)
    losses = dafl_generator_losses(logits, torch.zeros(4, 3))
    assert losses["entropy"].item() == pytest.approx(-math.log10(4), rel=1e-5)
    assert losses["onehot"].item() == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6))
def test_sparse_released_logits_give_finite_losses_and_gradients(seed, k):
    generator = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(5, 6, generator=generator)).requires_grad_(True)
    features = torch.randn(5, 4, generator=generator).requires_grad_(True)
    losses = dafl_generator_losses(sparsify_logits(logits, k), features)
    losses["total"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.isfinite(logits.grad).all() and torch.isfinite(features.grad).all()
    if k == 1:  # every released distribution is one-hot: nothing for the one-hot loss to do
        assert losses["onehot"].item() == pytest.approx(0.0, abs=1e-6)


def test_losses_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="same N"):
        dafl_generator_losses(torch.zeros(3, 2), torch.zeros(4, 2))


def test_generator_output_shape_and_per_channel_standardisation():
    torch.manual_seed(0)
    generator = Generator(latent_dim=20).train()
    images = generator(torch.randn(16, 20))
    assert images.shape == (16, 3, 32, 32)
    per_channel = images.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-4, rtol=0)
    # variance v / (v + eps) with BN's eps = 1e-5 and a small tanh-output variance v
    torch.testing.assert_close(per_channel.var(1, unbiased=False), torch.ones(3), atol=1e-2,
                               rtol=0)


def test_dafl_cifar_settings_are_the_reference_commands():
    cifar10, cifar100 = load_recipe("cifar10-dafl"), load_recipe("cifar100-dafl")
    assert (cifar10.dafl.latent_dim, cifar10.dafl.batch_size) == (1000, 1024)
    assert cifar10.dafl.steps == 2000 * 120
    assert (cifar10.dafl.onehot_weight, cifar10.dafl.entropy_weight,
            cifar10.dafl.activation_weight) == (0.05, 5.0, 0.01)
    assert (cifar100.dafl.onehot_weight, cifar100.dafl.entropy_weight,
            cifar100.dafl.activation_weight) == (0.5, 20.0, 0.1)
    for recipe in (cifar10, cifar100):  # DAFL's student: SGD 0.1, momentum 0.9, wd 5e-4; T = 1
        assert (recipe.optim.name, recipe.optim.lr, recipe.optim.momentum,
                recipe.optim.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
        assert (recipe.method.temperature, recipe.method.alpha) == (1.0, 1.0)
    assert load_recipe("cifar10-dafl-stingy").entry.objective(
        load_recipe("cifar10-dafl-stingy").method, 10).k == 2


class TinyNet(nn.Module):
    """A small 32x32 classifier with features, fast enough for unit tests."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.linear = nn.Linear(8, num_classes)
        self.forward_modes: list[bool] = []

    def forward(self, x, return_features=False):
        self.forward_modes.append(self.training)
        features = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        logits = self.linear(features)
        return (logits, features) if return_features else logits


def tiny_recipe(**dafl):
    """A dafl_kd recipe for a few steps on tiny nets: student lr 0.05, T = 4."""
    sizes = {"steps": 4, "batch_size": 4, "latent_dim": 16, "generator_lr": 1e-3,
             "log_every": 1, **dafl}
    sparse = {"ratio": sizes.pop("ratio")} if "ratio" in sizes else {}
    return build_recipe({"method": {"name": "dafl_kd", "temperature": 4.0, "alpha": 1.0,
                                    **sparse},
                         "optim": {"lr": 0.05}, "train": {"progress": False},
                         "dafl": sizes})


def tiny_run(teacher, student, image_size=16, generator=None, checkpoint_path=None,
             on_step=None, seed=0, **dafl):
    """A few DAFL steps; 16x16 generated images keep it fast (TinyNet pools globally)."""
    recipe = tiny_recipe(**dafl).replace(seed=seed)
    if generator is None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            generator = Generator(recipe.dafl.latent_dim, image_size=image_size)
    return distill_data_free(teacher, student, recipe, num_classes=6, generator=generator,
                             checkpoint_path=checkpoint_path, on_step=on_step)


def test_tiny_run_trains_the_student_and_never_the_teacher():
    torch.manual_seed(0)
    teacher, student = TinyNet(), TinyNet()
    teacher.train()  # the caller's mode is restored afterwards, but never used
    before_teacher = {k: v.clone() for k, v in teacher.state_dict().items()}
    before_student = {k: v.clone() for k, v in student.state_dict().items()}
    result = tiny_run(teacher, student, image_size=32)  # DAFL's CIFAR image size
    assert teacher.forward_modes and not any(teacher.forward_modes)  # eval on every call
    for key, value in teacher.state_dict().items():  # weights and BN running stats
        assert torch.equal(value, before_teacher[key]), key
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.requires_grad for p in teacher.parameters()) and teacher.training
    assert any(not torch.equal(v, before_student[k]) for k, v in student.state_dict().items())
    assert [r["step"] for r in result["history"]] == [1, 2, 3, 4]
    assert set(result["final"]) == {"step", "onehot", "activation", "entropy", "generator_loss",
                                    "kd_loss", "agreement", "student_lr"}
    assert all(math.isfinite(v) for v in result["final"].values())


def test_generator_is_updated_by_its_own_losses():
    torch.manual_seed(0)
    generator = Generator(latent_dim=16, image_size=16)
    before = [p.clone() for p in generator.parameters()]
    tiny_run(TinyNet(), TinyNet(), generator=generator, steps=2)
    assert any(not torch.equal(a, b) for a, b in zip(before, generator.parameters()))


def test_stingy_teacher_releases_only_k_finite_logits_to_both_losses(monkeypatch):
    from stingy.empirical import dafl

    released = []
    losses = dafl.dafl_generator_losses

    def spy(logits, features, **weights):
        released.append(logits.detach())
        return losses(logits, features, **weights)

    monkeypatch.setattr(dafl, "dafl_generator_losses", spy)
    torch.manual_seed(0)
    result = tiny_run(TinyNet(), TinyNet(), steps=3, ratio=0.34)  # k = 2 of 6
    assert result["released_k"] == 2 and len(released) == 3
    for logits in released:
        assert (torch.isfinite(logits).sum(1) == 2).all()
    assert all(math.isfinite(r["kd_loss"]) and math.isfinite(r["entropy"])
               for r in result["history"])


def test_same_seed_gives_the_same_run():
    def run():
        torch.manual_seed(1)
        teacher, student = TinyNet(), TinyNet()
        return tiny_run(teacher, student, seed=3)["history"]

    assert run() == run()


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    def fresh():
        torch.manual_seed(2)
        return TinyNet(), TinyNet()

    teacher, student = fresh()
    straight = tiny_run(teacher, student, steps=4)["history"]
    teacher, student = fresh()
    path = tmp_path / "dafl.pt"

    def killed_after_step_2(step, record):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_run(teacher, student, steps=4, checkpoint_path=path, checkpoint_every=1,
                 on_step=killed_after_step_2)
    resumed_student = fresh()[1]
    resumed = tiny_run(teacher, resumed_student, steps=4, checkpoint_path=path)["history"]
    assert resumed == straight


@pytest.mark.parametrize("name,bad", [("steps", 0), ("batch_size", -1), ("latent_dim", 2.5),
                                      ("log_every", True), ("lr_milestone_fractions", "ab"),
                                      ("foo", 1)])
def test_bad_dafl_settings_are_refused_by_name(name, bad):
    with pytest.raises(ValueError, match=f"dafl.{name}"):
        tiny_recipe(**{name: bad})


def test_dafl_refuses_labels_it_does_not_have():
    with pytest.raises(ValueError, match="method.alpha must be 1"):
        build_recipe({"method": {"name": "dafl_kd", "alpha": 0.9}})


def test_mismatched_latent_dim_is_refused():
    with pytest.raises(ValueError, match="latent_dim"):
        tiny_run(TinyNet(), TinyNet(), generator=Generator(latent_dim=8, image_size=16))


def test_weights_that_turn_non_finite_between_logs_are_never_checkpointed(tmp_path):
    torch.manual_seed(0)
    teacher, student = TinyNet(), TinyNet()
    recipe = build_recipe({"method": {"name": "dafl_kd", "temperature": 4.0, "alpha": 1.0},
                           "optim": {"name": "sgd", "lr": 3e38}, "train": {"progress": False},
                           "dafl": {"steps": 3, "batch_size": 4, "latent_dim": 16,
                                    "log_every": 3, "checkpoint_every": 1}})
    path = tmp_path / "dafl.pt"
    with pytest.raises(FloatingPointError, match="diverged at step 2: the student's weights"):
        distill_data_free(teacher, student, recipe, num_classes=6,
                          generator=Generator(16, image_size=16), checkpoint_path=path)
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 1
    assert all(torch.isfinite(value).all() for value in saved["student"].values()
               if torch.is_floating_point(value))
