"""Model registry, and the small CNN of the Nasty-Teacher / stingy-teacher reference.

Every model maps NCHW float images of size 32x32 to logits; ``forward(x,
return_features=True)`` returns ``(logits, features)`` with ``features`` the penultimate
activations, pooled and flattened ([N, model.feature_dim]), which DAFL's activation loss uses.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from stingy.empirical.mobilenet import mobilenetv2
from stingy.empirical.model_names import MODEL_NAMES
from stingy.empirical.resnet import preresnet20, preresnet32, resnet18, resnet34
from stingy.empirical.shufflenet import shufflenetv2


class SmallCNN(nn.Module):
    """The reference's ``Net`` with num_channels=32 (its model/net.py and params.json).

    Three blocks conv3x3 (32, 64, 128 channels, with bias) - BN - 2x2 max-pool - ReLU, then
    FC 128*4*4 -> 128 - BN1d - ReLU - dropout - FC 128 -> classes. The reference's CIFAR-10
    runs set dropout_rate 0.0, the default here.
    """

    def __init__(self, num_classes: int, channels: int = 32, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        widths = (3, channels, 2 * channels, 4 * channels)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 1, 1) for a, b in itertools.pairwise(widths))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for b in widths[1:])
        self.fc1 = nn.Linear(4 * 4 * widths[-1], widths[-1])
        self.fc_bn = nn.BatchNorm1d(widths[-1])
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(widths[-1], num_classes)
        self.feature_dim = widths[-1]

    def forward(self, x: torch.Tensor, return_features: bool = False):
        for conv, bn in zip(self.convs, self.bns):
            x = F.relu(F.max_pool2d(bn(conv(x)), 2))
        features = self.dropout(F.relu(self.fc_bn(self.fc1(x.flatten(1)))))
        logits = self.fc2(features)
        return (logits, features) if return_features else logits


BUILDERS = {
    "cnn": SmallCNN,
    "preresnet20": preresnet20,
    "preresnet32": preresnet32,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "mobilenetv2": mobilenetv2,
    "shufflenetv2": shufflenetv2,
}


def build_model(name: str, num_classes: int) -> nn.Module:
    """A freshly initialised model ``name`` (one of MODEL_NAMES) with ``num_classes`` outputs."""
    if name not in BUILDERS:
        raise ValueError(f"model name must be one of {', '.join(MODEL_NAMES)}; got {name!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return BUILDERS[name](num_classes)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
