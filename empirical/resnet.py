"""CIFAR ResNet-18/34 (post-activation) and PreResNet-20/32 (pre-activation).

ResNet: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, in the CIFAR
form used by the Nasty-Teacher / stingy-teacher reference (kuangliu/pytorch-cifar style):
3x3 stem with 64 channels and stride 1, no max-pool, four stages of BasicBlocks with
64/128/256/512 channels, 1x1 conv + BN projection shortcuts, global average pool, linear.
ResNet-18 has about 11.2M parameters for 10 classes.

PreResNet: He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016, CIFAR form
(depth 6n+2, three stages of n BasicBlocks with 16/32/64 channels): BN-ReLU-conv inside each
block, a plain 1x1 conv projection on the raw input where the shape changes (as in the
reference's preresnet.py), a final BN-ReLU, global average pool, linear. PreResNet-20 has about
0.27M parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet with BasicBlocks; ``blocks_per_stage`` (2,2,2,2) is ResNet-18."""

    def __init__(self, blocks_per_stage: tuple[int, ...], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_channels = [], 64
        for index, (channels, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
            stride = 1 if index == 0 else 2
            layers = []
            for block_index in range(blocks):
                layers.append(BasicBlock(in_channels, channels, stride if block_index == 0 else 1))
                in_channels = channels
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(512, num_classes)
        self.feature_dim = 512

    def forward(self, x: torch.Tensor, return_features: bool = False):
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        features = F.adaptive_avg_pool2d(out, 1).flatten(1)
        logits = self.linear(features)
        return (logits, features) if return_features else logits


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the (raw-input) shortcut; no final ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class PreResNet(nn.Module):
    """CIFAR pre-activation ResNet of depth 6n+2 (20 -> n=3, 32 -> n=5)."""

    def __init__(self, depth: int, num_classes: int):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        layers, in_channels = [], 16
        for index, channels in enumerate((16, 32, 64)):
            for block_index in range(n):
                stride = 2 if index > 0 and block_index == 0 else 1
                layers.append(PreActBlock(in_channels, channels, stride))
                in_channels = channels
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(64)
        self.linear = nn.Linear(64, num_classes)
        self.feature_dim = 64
        for module in self.modules():  # He init, as in the reference (fb.resnet.torch)
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))

    def forward(self, x: torch.Tensor, return_features: bool = False):
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        features = F.adaptive_avg_pool2d(out, 1).flatten(1)
        logits = self.linear(features)
        return (logits, features) if return_features else logits


def resnet18(num_classes: int) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes)


def resnet34(num_classes: int) -> ResNet:
    return ResNet((3, 4, 6, 3), num_classes)


def preresnet20(num_classes: int) -> PreResNet:
    return PreResNet(20, num_classes)


def preresnet32(num_classes: int) -> PreResNet:
    return PreResNet(32, num_classes)
