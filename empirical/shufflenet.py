"""ShuffleNetV2 (width 1x) for 32x32 inputs.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018, in the CIFAR layout of the Nasty-Teacher / stingy-teacher reference (its
model/shufflenetv2.py): a 3x3 stem conv with 24 channels at stride 1 and no max-pool, three
stages of 116/232/464 channels with 4/8/4 units (the first of each at stride 2), a 1x1 conv to
1024 channels, global average pool, linear. A stride-1 unit splits the channels in half, sends
one half through 1x1-dw3x3-1x1 and concatenates it with the untouched half; a stride-2 unit
sends the whole input through both branches. Channel shuffle with 2 groups follows each unit.
Convolutions followed by BatchNorm have no bias (the reference keeps PyTorch's default bias).
About 1.3M parameters for 100 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_CHANNELS = (116, 232, 464)
STAGE_UNITS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups: [a0 a1 b0 b1] -> [a0 b0 a1 b1]."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
            groups: int = 1, relu: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups,
                        bias=False), nn.BatchNorm2d(out_channels)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ShuffleUnit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.downsample = stride != 1 or in_channels != out_channels
        branch_in = in_channels if self.downsample else in_channels // 2
        branch_out = out_channels // 2
        self.residual = nn.Sequential(
            *conv_bn(branch_in, branch_in, 1),
            *conv_bn(branch_in, branch_in, 3, stride, groups=branch_in, relu=False),
            *conv_bn(branch_in, branch_out, 1),
        )
        self.shortcut = nn.Sequential()
        if self.downsample:
            self.shortcut = nn.Sequential(
                *conv_bn(in_channels, in_channels, 3, stride, groups=in_channels, relu=False),
                *conv_bn(in_channels, branch_out, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            kept, transformed = x, x
        else:
            kept, transformed = x.chunk(2, dim=1)
        out = torch.cat([self.shortcut(kept), self.residual(transformed)], dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        layers, in_channels = conv_bn(3, 24, 3, relu=False), 24
        for channels, units in zip(STAGE_CHANNELS, STAGE_UNITS):
            for index in range(units):
                layers.append(ShuffleUnit(in_channels, channels, 2 if index == 0 else 1))
                in_channels = channels
        layers += conv_bn(in_channels, 1024, 1)
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(1024, num_classes)
        self.feature_dim = 1024

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        logits = self.linear(features)
        return (logits, features) if return_features else logits


def shufflenetv2(num_classes: int) -> ShuffleNetV2:
    return ShuffleNetV2(num_classes)
