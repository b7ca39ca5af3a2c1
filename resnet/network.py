"""The network itself: the torch modules a ResNetConfig (resnet/model.py) describes.

The kuangliu-style CIFAR ResNet the authors used: a 3x3 stem, N layers of BasicBlocks (the first
block of every layer after the first at stride 2, with a K_i x K_i conv + BatchNorm shortcut where
the shape changes), average pooling over P x P and one linear layer. `resnet.model.block_shapes`
lays the blocks out the same way; tests check the parameter count against this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resnet.model import ResNetConfig


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, conv_kernel: int, skip_kernel: int):
        super().__init__()
        pad = conv_kernel // 2
        self.conv1 = nn.Conv2d(c_in, c_out, conv_kernel, stride, pad, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, conv_kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, skip_kernel, stride, 0, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(3, cfg.channels[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.channels[0])
        layers, c_in = [], cfg.channels[0]
        for i in range(cfg.layers):
            blocks = []
            for j in range(cfg.blocks[i]):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    BasicBlock(
                        c_in, cfg.channels[i], stride, cfg.conv_kernel[i], cfg.skip_kernel[i]
                    )
                )
                c_in = cfg.channels[i]
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cfg.pooled_features, cfg.num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.avg_pool2d(out, self.cfg.pool_kernel)
        return self.linear(torch.flatten(out, 1))


def build_model(cfg: ResNetConfig) -> ResNet:
    """The network for `cfg`, on the CPU in fp32."""
    return ResNet(cfg)
