"""FLOPs per image of a model configuration, by formula, as torch.utils.flop_counter counts them.

FlopCounterMode's convention: the matrix work (convolutions and the linear layer, forward and
backward) at 2 FLOPs per multiply-add; BatchNorm, ReLU, pooling and the optimiser are not
counted. A convolution's forward, its input gradient and its weight gradient each cost
2·C_in·C_out·k²·H_out·W_out; the stem's input needs no gradient. The formula needs no model
and no torch, so `resbench list` answers at once; `counted` runs the counter itself on a model
built on the meta device, and tests/test_model.py checks the two agree on every entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from resnet.model import IMAGE_SIZE, ResNetConfig, block_shapes

# Counts are exactly linear in the batch; two images keep BatchNorm's training path valid.
_BATCH = 2


@dataclass(frozen=True)
class Flops:
    forward: int  # one image through the network (a test step)
    train: int  # forward + backward of one image (a training step, the optimiser excluded)


def _conv(c_in: int, c_out: int, kernel: int, out_side: int) -> int:
    return 2 * c_in * c_out * kernel * kernel * out_side * out_side


def flops_per_image(cfg: ResNetConfig) -> Flops:
    """Forward and training-step FLOPs per 32x32 image (input gradients are not computed)."""
    stem = _conv(3, cfg.channels[0], 3, IMAGE_SIZE)
    rest = 0
    for b in block_shapes(cfg):
        rest += _conv(b.c_in, b.c_out, b.conv_kernel, b.out_side) + _conv(
            b.c_out, b.c_out, b.conv_kernel, b.out_side
        )
        if b.projected:
            rest += _conv(b.c_in, b.c_out, b.skip_kernel, b.out_side)
    rest += 2 * cfg.pooled_features * cfg.num_classes  # the linear layer
    # backward: every layer's weight gradient, and the input gradient of all but the stem
    return Flops(forward=stem + rest, train=2 * stem + 3 * rest)


def counted(cfg: ResNetConfig) -> Flops:
    """The same, counted by torch.utils.flop_counter on a model built on the meta device (slow:
    imports torch)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from resnet.network import ResNet

    def count(backward: bool) -> int:
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

    return Flops(forward=count(False), train=count(True))
