"""The kuangliu-style CIFAR ResNet over the paper's six hyperparameters.

N residual layers (``len(blocks)``), B_i blocks per layer, C_i channels, F_i conv
kernel, K_i skip-connection kernel and P average-pool kernel. The definition follows
the authors' published code, so row 6 of Table 1 has exactly 4,902,186 parameters.

This module is the configuration and its arithmetic (feature-map sizes, block shapes, the
parameter count); it imports no torch, so listing and checking entries is instant. The torch
modules themselves are resnet/network.py's, built by `resnet.network.build_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

IMAGE_SIZE = 32  # CIFAR-10 images are 32x32


class ConfigError(ValueError):
    """An invalid model or training configuration; the message names the field."""


def _per_layer(value, n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected an int or a list of {n} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * n
    try:
        out = tuple(value)
    except TypeError:
        raise ConfigError(f"{name}: expected an int or a list of {n} ints, got {value!r}") from None
    if len(out) != n:
        raise ConfigError(f"{name}: has {len(out)} values but layers (N) is {n}")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        raise ConfigError(f"{name}: every value must be an int, got {list(out)!r}")
    return out


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class ResNetConfig:
    """One architecture. Scalars for F, K are broadcast to every layer."""

    layers: int = 4  # N: residual layers
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # B_i: blocks in layer i
    channels: tuple[int, ...] = (64, 128, 256, 512)  # C_i: channels of layer i
    conv_kernel: tuple[int, ...] = (3, 3, 3, 3)  # F_i: conv kernel in layer i (odd)
    skip_kernel: tuple[int, ...] = (1, 1, 1, 1)  # K_i: shortcut conv kernel in layer i
    pool_kernel: int = 4  # P: average-pool kernel (and stride)
    num_classes: int = 10

    def __post_init__(self):
        n = self.layers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"layers: must be a positive int, got {n!r}")
        for name in ("blocks", "channels", "conv_kernel", "skip_kernel"):
            object.__setattr__(self, name, _per_layer(getattr(self, name), n, name))
        for name in ("pool_kernel", "num_classes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{name}: must be an int, got {v!r}")
        for name in (
            "blocks",
            "channels",
            "conv_kernel",
            "skip_kernel",
            "pool_kernel",
            "num_classes",
        ):
            values = getattr(self, name)
            if any(v < 1 for v in (values if isinstance(values, tuple) else (values,))):
                raise ConfigError(f"{name}: sizes must be positive, got {values!r}")
        if any(f % 2 == 0 for f in self.conv_kernel):
            raise ConfigError(
                f"conv_kernel: must be odd so padding F//2 keeps the size, got {self.conv_kernel}"
            )
        size = IMAGE_SIZE
        for i in range(1, n):
            main = _conv_out(size, self.conv_kernel[i], 2, self.conv_kernel[i] // 2)
            skip = _conv_out(size, self.skip_kernel[i], 2, 0)
            if main < 1 or skip != main:
                raise ConfigError(
                    f"skip_kernel: K={self.skip_kernel[i]} in layer {i + 1} gives a {skip}x{skip} "
                    f"shortcut "
                    f"for a {main}x{main} block output on a {size}x{size} input"
                )
            size = main
        if self.pool_kernel > size:
            raise ConfigError(
                f"pool_kernel: P={self.pool_kernel} is larger than the last feature map "
                f"({size}x{size})"
            )

    @property
    def final_map(self) -> int:
        """Side of the last feature map before pooling (each later layer's first conv has stride
        2)."""
        size = IMAGE_SIZE
        for f in self.conv_kernel[1:]:
            size = _conv_out(size, f, 2, f // 2)
        return size

    @property
    def pooled_features(self) -> int:
        side = _conv_out(self.final_map, self.pool_kernel, self.pool_kernel, 0)
        return self.channels[-1] * side * side

    def flat(self) -> dict[str, object]:
        """Plain values for logging and tables: tuples as lists."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
        }


@dataclass(frozen=True)
class BlockShape:
    """One BasicBlock as ResNet builds it: channels in and out, stride, kernels, and its input's
    side."""

    c_in: int
    c_out: int
    stride: int
    conv_kernel: int
    skip_kernel: int
    side: int  # of the square input feature map

    @property
    def projected(self) -> bool:
        """Whether the shortcut is a conv + BatchNorm (else the identity)."""
        return self.stride != 1 or self.c_in != self.c_out

    @property
    def out_side(self) -> int:
        return _conv_out(self.side, self.conv_kernel, self.stride, self.conv_kernel // 2)


def block_shapes(cfg: ResNetConfig) -> list[BlockShape]:
    """Every block of the network `cfg` describes, in order, exactly as ResNet.__init__ lays them
    out."""
    shapes, c_in, side = [], cfg.channels[0], IMAGE_SIZE
    for i in range(cfg.layers):
        for j in range(cfg.blocks[i]):
            shape = BlockShape(
                c_in,
                cfg.channels[i],
                2 if i > 0 and j == 0 else 1,
                cfg.conv_kernel[i],
                cfg.skip_kernel[i],
                side,
            )
            shapes.append(shape)
            c_in, side = cfg.channels[i], shape.out_side
    return shapes


def count_parameters(model_or_cfg: nn.Module | ResNetConfig) -> int:
    """Trainable parameters of a built model, or of a config by formula (nothing is built).

    The formula follows ResNet.__init__ (convs without bias, BatchNorm's weight and bias, the
    linear layer with bias); tests/test_model.py checks it against a model built on the meta device.
    """
    if not isinstance(model_or_cfg, ResNetConfig):
        return sum(math.prod(p.shape) for p in model_or_cfg.parameters() if p.requires_grad)
    cfg = model_or_cfg
    total = 3 * cfg.channels[0] * 3 * 3 + 2 * cfg.channels[0]  # stem conv + BatchNorm
    for b in block_shapes(cfg):
        total += (b.c_in + b.c_out) * b.c_out * b.conv_kernel**2 + 2 * 2 * b.c_out
        if b.projected:
            total += b.c_in * b.c_out * b.skip_kernel**2 + 2 * b.c_out
    return total + cfg.pooled_features * cfg.num_classes + cfg.num_classes
