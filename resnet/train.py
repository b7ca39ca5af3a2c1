"""The training loop: one call of `train` is one run of a TrainConfig (resnet/config.py).

`train` builds the run with resnet/setup.py, then steps it epoch by epoch (the set-up run's
`train_pass`), evaluating the test set after every epoch (`eval_pass`); each epoch is reported
through `on_epoch` so callers can log or checkpoint it. A non-finite training loss stops it
(Diverged).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from resnet.checkpoint import rng_state, set_rng_state
from resnet.config import ExecConfig, TrainConfig
from resnet.data import Dataset
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
            trained = s.train_pass()
            t_train = time.perf_counter() - t0
            if not math.isfinite(trained.loss):
                raise Diverged(epoch, trained.loss)
            tested = s.eval_pass()
            scheduler.step()
            stats = EpochStats(
                epoch,
                trained.loss,
                trained.acc,
                tested.loss,
                tested.acc,
                lr,
                time.perf_counter() - t0,
                len(data.train_y) / t_train,
                tested.loss_batchmean,
            )
            history.append(stats)
            bar.set_postfix(loss=f"{trained.loss:.3f}", test_acc=f"{tested.acc:.2f}")
            if on_epoch:
                on_epoch(stats, snapshot)
    return TrainResult(model, history, count_parameters(model), s.device, s.dtype)
