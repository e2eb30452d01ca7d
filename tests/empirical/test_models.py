"""The CIFAR models: shapes, features, parameter counts, channels_last, backward."""

from __future__ import annotations

import pytest
import torch

from stingy.empirical.models import MODEL_NAMES, build_model, count_parameters

# Published / reference sizes for 10 classes (millions): ResNet-18 11.17 and ResNet-34 21.28
# (kuangliu/pytorch-cifar), PreResNet-20 0.27 and -32 0.46 (He et al. 2016, Table 6),
# the reference CNN 0.36 (computed from its net.py), MobileNetV2 ~2.24 and ShuffleNetV2 ~1.26
# (the reference's CIFAR layouts, without conv bias before BN).
EXPECTED_MILLIONS_K10 = {"cnn": 0.358, "preresnet20": 0.27, "preresnet32": 0.46,
                         "resnet18": 11.17, "resnet34": 21.28, "mobilenetv2": 2.24,
                         "shufflenetv2": 1.26}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_matches_the_reference_size(name):
    millions = count_parameters(build_model(name, 10)) / 1e6
    assert millions == pytest.approx(EXPECTED_MILLIONS_K10[name], rel=0.03)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_hundred_classes_adds_exactly_one_linear_row_per_extra_class(name):
    small, large = build_model(name, 10), build_model(name, 100)
    assert count_parameters(large) - count_parameters(small) == 90 * (small.feature_dim + 1)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_and_features_have_the_documented_shapes(name, num_classes=100):
    torch.manual_seed(0)
    model = build_model(name, num_classes).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        logits_again, features = model(images, return_features=True)
    assert logits.shape == (2, num_classes)
    assert features.shape == (2, model.feature_dim)
    torch.testing.assert_close(logits, logits_again)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_training_step_gives_finite_gradients_everywhere(name):
    # 16x16 inputs keep this fast; all but the CNN pool adaptively (the CNN's FC needs 32x32).
    torch.manual_seed(0)
    size = 32 if name == "cnn" else 16
    model = build_model(name, 10).to(memory_format=torch.channels_last).train()
    images = torch.randn(4, 3, size, size).to(memory_format=torch.channels_last)
    logits, features = model(images, return_features=True)
    assert logits.shape == (4, 10) and features.shape == (4, model.feature_dim)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    (loss - 1e-3 * features.abs().mean()).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
    assert any(param.grad.abs().sum() > 0 for param in model.parameters())


def test_channels_last_gives_the_same_logits_as_contiguous():
    torch.manual_seed(0)
    model = build_model("preresnet20", 10).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        got = model(images.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", ["resnet", "ResNet18", "", None])
def test_unknown_model_name_is_refused_with_the_allowed_names(bad):
    with pytest.raises(ValueError, match="model name must be one of cnn"):
        build_model(bad, 10)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, "10"])
def test_bad_class_count_is_refused(bad):
    with pytest.raises(ValueError, match="num_classes"):
        build_model("cnn", bad)
