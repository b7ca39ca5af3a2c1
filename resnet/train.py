"""The training loop: one call of `train` is one run of a TrainConfig (resnet/config.py).

`train` builds the run with resnet/setup.py, then steps it epoch by epoch (`run_pass` is one
pass over a loader), evaluating the test set after every epoch; each epoch is reported through
`on_epoch` so callers can log or checkpoint it. A non-finite training loss stops it (Diverged).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
from torch import nn

from resnet.checkpoint import rng_state, set_rng_state
from resnet.config import ExecConfig, TrainConfig
from resnet.data import Dataset
from resnet.graphs import Step
from resnet.model import ResNetConfig, count_parameters
from resnet.setup import setup


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 0-based, as the authors' notebook counts
    train_loss: float  # mean cross-entropy per training image
    train_acc: float  # percent
    test_loss: float  # mean cross-entropy per test image
    test_acc: float  # percent
    lr: float  # learning rate used during this epoch
    epoch_seconds: float  # train + test wall time
    images_per_second: float  # training images per second
    # The authors' test loss: each batch's mean cross-entropy averaged over batches, so the short
    # last batch weighs as much as a full one (None in checkpoints written before it was kept).
    test_loss_batchmean: float | None = None

    def metrics(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "epoch" and v is not None}


@dataclass
class TrainResult:
    model: nn.Module
    history: list[EpochStats]
    param_count: int
    device: torch.device
    dtype: torch.dtype


class Diverged(RuntimeError):
    def __init__(self, epoch: int, loss: float):
        super().__init__(f"training diverged at epoch {epoch}: train loss {loss}")
        self.epoch, self.loss = epoch, loss


def device_name(device: torch.device) -> str:
    """The card's name, or "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a timer read after it measures that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_epoch(model, loader, criterion, device, dtype, optimizer=None, sync_each_step=False):
    """One pass: (mean loss per image, accuracy in percent)."""
    return run_pass(model, loader, criterion, device, dtype, optimizer, sync_each_step)[:2]


def run_pass(model, loader, criterion, device, dtype, optimizer=None, sync_each_step=False):
    """One pass: (mean loss per image, accuracy in percent, mean over batches of each batch's mean
    loss).

    The last is how the authors' code averaged its losses (`test_loss / len(testloader)`); it
    differs from the per-image mean when the last batch is short. Sums stay on the device and
    are read once at the end.
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
            batch_loss = (
                loss.item() if sync_each_step else loss.detach().float()
            )  # the authors' loop: .item() per step
            loss_sum += batch_loss * n
            batch_sum += batch_loss
            correct += (out.argmax(1) == y).sum()
    return loss_sum.item() / seen, 100.0 * correct.item() / seen, batch_sum.item() / batches


def train(
    model_cfg: ResNetConfig,
    cfg: TrainConfig,
    data: Dataset,
    *,
    seed: int = 0,
    ex: ExecConfig = ExecConfig(),
    on_epoch: Callable[[EpochStats, Callable[[], dict]], None] | None = None,
    progress: bool | None = None,
    resume: dict | None = None,
    on_fallback: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train from scratch, or from `resume` (a state `on_epoch`'s snapshot returned) onwards.

    `on_epoch(stats, snapshot)` runs after every epoch; `snapshot()` gives the full state
    (weights, optimiser, scheduler, every RNG, the history so far) for a checkpoint.
    `on_fallback(reason)` runs if a compiled step fails and the run goes on eagerly.
    """
    s = setup(model_cfg, cfg, data, ex, seed, on_fallback)
    model, optimizer, scheduler, gen = s.model, s.optimizer, s.scheduler, s.generator
    history: list[EpochStats] = []
    if resume is not None:  # before the first step, so a CUDA graph captures the restored state
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        set_rng_state(resume["rng"], gen)
        history = [EpochStats(**h) for h in resume["history"]]

    def snapshot() -> dict:
        return {
            "epoch": history[-1].epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(gen),
            "history": [asdict(h) for h in history],
        }

    from tqdm.auto import tqdm

    bar = tqdm(
        range(len(history), cfg.epochs),
        desc="epochs",
        unit="ep",
        leave=False,
        initial=len(history),
        total=cfg.epochs,
        disable=not (sys.stderr.isatty() if progress is None else progress),
    )
    with bar:  # closed on every exit, a divergence or Ctrl-C included
        for epoch in bar:
            lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            train_loss, train_acc = run_epoch(
                s.step_model,
                s.train_loader,
                s.criterion,
                s.device,
                s.dtype,
                optimizer,
                s.sync_each_step,
            )
            t_train = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise Diverged(epoch, train_loss)
            test_loss, test_acc, test_batchmean = run_pass(
                s.step_model, s.test_loader, s.criterion, s.device, s.dtype
            )
            scheduler.step()
            stats = EpochStats(
                epoch,
                train_loss,
                train_acc,
                test_loss,
                test_acc,
                lr,
                time.perf_counter() - t0,
                len(data.train_y) / t_train,
                test_batchmean,
            )
            history.append(stats)
            bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.2f}")
            if on_epoch:
                on_epoch(stats, snapshot)
    return TrainResult(model, history, count_parameters(model), s.device, s.dtype)
