"""MobileNetV2 for 32x32 inputs.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018, in the
CIFAR layout of the Nasty-Teacher / stingy-teacher reference (its model/mobilenetv2.py):
a 32-channel stem at stride 1, inverted-residual stages (expansion t, out channels, repeats,
stride) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,1) (6,320,1,1), a
1x1 conv to 1280 channels, global average pool and a linear classifier (the reference's 1x1
conv on the pooled map is the same map). Identity shortcut only where stride is 1 and the
channel count is unchanged. Differences from the reference, both deliberate: the stem is a
3x3 conv with padding 1 (the reference uses a 1x1 conv with padding 1, which grows the image
to 34x34 with a constant border), and convolutions followed by BatchNorm have no bias.
About 2.3M parameters for 100 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 1), (6, 320, 1, 1))


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
            groups: int = 1, relu6: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(out_channels)]
    if relu6:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand (t times) - 3x3 depthwise - 1x1 linear projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.body = nn.Sequential(
            conv_bn(in_channels, hidden, 1),
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, out_channels, 1, relu6=False),
        )
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.use_shortcut else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        layers, in_channels = [conv_bn(3, 32, 3)], 32
        for expansion, channels, repeats, stride in STAGES:
            for index in range(repeats):
                layers.append(InvertedResidual(in_channels, channels, stride if index == 0 else 1,
                                               expansion))
                in_channels = channels
        layers.append(conv_bn(in_channels, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(1280, num_classes)
        self.feature_dim = 1280

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        logits = self.linear(features)
        return (logits, features) if return_features else logits


def mobilenetv2(num_classes: int) -> MobileNetV2:
    return MobileNetV2(num_classes)
