"""FLOPs per image of a model configuration, counted by torch.utils.flop_counter.

FlopCounterMode counts the matrix work (convolutions and the linear layer, forward and
backward) at 2 FLOPs per multiply-add; BatchNorm, ReLU, pooling and the optimiser are
not counted, by the usual convention. The model is built on the meta device, so counting
allocates nothing and takes milliseconds even for the largest entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from resnet.model import IMAGE_SIZE, ResNet, ResNetConfig

# Counts are exactly linear in the batch; two images keep BatchNorm's training path valid.
_BATCH = 2


@dataclass(frozen=True)
class Flops:
    forward: int  # one image through the network (a test step)
    train: int    # forward + backward of one image (a training step, the optimiser excluded)


def _count(cfg: ResNetConfig, backward: bool) -> int:
    with torch.device("meta"):
        model = ResNet(cfg)
        x = torch.empty(_BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)
        y = torch.zeros(_BATCH, dtype=torch.long)
    model.train(backward)
    counter = FlopCounterMode(display=False)
    with counter, torch.set_grad_enabled(backward):
        loss = F.cross_entropy(model(x), y)
        if backward:
            loss.backward()
    total = counter.get_total_flops()
    if total % _BATCH:
        raise AssertionError(f"FLOP count {total} is not a multiple of the batch {_BATCH}")
    return total // _BATCH


def flops_per_image(cfg: ResNetConfig) -> Flops:
    """Forward and training-step FLOPs per 32x32 image (input gradients are not computed)."""
    return Flops(forward=_count(cfg, backward=False), train=_count(cfg, backward=True))
