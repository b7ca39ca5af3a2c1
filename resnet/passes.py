"""One pass over a loader, training or evaluating, and the one stats value it gives.

Every caller that steps a model (`train`, `resbench speed`, `resbench check`) goes through
`run_pass`, usually by way of a set-up run's `train_pass` and `eval_pass` (resnet/setup.py).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from resnet.graphs import Step


@dataclass(frozen=True)
class PassStats:
    """What one pass measured."""

    loss: float  # mean cross-entropy per image
    acc: float  # percent of images classified correctly
    # The mean over batches of each batch's mean loss: how the authors' code averaged its losses
    # (`test_loss / len(testloader)`); it differs from `loss` when the last batch is short.
    loss_batchmean: float


def run_pass(
    model, loader, criterion, device, dtype, optimizer=None, sync_each_step=False
) -> PassStats:
    """One pass of `model` over `loader`; with an `optimizer` every batch is a training step.

    Sums stay on the device and are read once at the end, unless `sync_each_step` reads each
    step's loss as the authors' loop did (`.item()` per step).
    """
    training = optimizer is not None
    model.train(training)
    loss_sum, batch_sum, batches = torch.zeros((), device=device), torch.zeros((), device=device), 0
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    with torch.set_grad_enabled(training):
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if isinstance(model, Step):  # a compiled or graphed step, eager if that failed
                loss, out = model.step(x, y, training)
            else:
                with autocast:
                    out = model(x)
                    loss = criterion(out, y)
                if training:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            n = y.shape[0]
            seen, batches = seen + n, batches + 1
            batch_loss = loss.item() if sync_each_step else loss.detach().float()
            loss_sum += batch_loss * n
            batch_sum += batch_loss
            correct += (out.argmax(1) == y).sum()
    return PassStats(
        loss_sum.item() / seen, 100.0 * correct.item() / seen, batch_sum.item() / batches
    )
