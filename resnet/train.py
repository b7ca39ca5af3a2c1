"""The training recipe (TrainConfig), how it is executed (ExecConfig) and the loop.

TrainConfig holds what changes the mathematics and defaults to the authors' code:
Adam lr 0.1, default betas, no weight decay, CosineAnnealingLR(T_max=200) stepped per
epoch, batch 128, crop+flip. ExecConfig holds what must not change it: the input
pipeline, precision, compilation, the device. One call of `train` is one run; each
epoch is reported through `on_epoch` so callers can log or checkpoint it.
"""
from __future__ import annotations

import math
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from typing import Callable

import numpy as np
import torch
from torch import nn

from resnet.data import Dataset
from resnet.graphs import GraphedStep
from resnet.model import ConfigError, ResNetConfig, build_model, count_parameters
from resnet.pipeline import DeviceLoader, reference_loader

OPTIMIZERS = ("adam", "sgd")
PIPELINES = ("fast", "reference")
PRECISIONS = ("auto", "bf16", "fp32")
# What --compile does: auto = cudagraph on CUDA with the fast pipeline and Adam, else inductor;
# cudagraph = resnet.graphs (whole step, no compiler); the rest name torch.compile modes.
COMPILE_MODES = ("auto", "cudagraph", "inductor", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80              # passes over the training set
    batch_size: int = 128         # images per step, train and test
    optimizer: str = "adam"       # adam | sgd
    lr: float = 0.1               # initial learning rate
    momentum: float = 0.0         # SGD only
    nesterov: bool = False        # SGD only
    weight_decay: float = 0.0     # L2, as the optimiser's own weight_decay
    t_max: int = 200              # CosineAnnealingLR period in epochs (the authors' 200, not `epochs`)
    eta_min: float = 0.0          # CosineAnnealingLR floor
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    crop_padding: int = 4         # RandomCrop(32, padding=crop_padding); 0 disables the crop
    hflip: bool = True            # RandomHorizontalFlip(p=0.5)

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "bool": bool, "str": str}[f.type]
            if isinstance(v, bool) != (f.type == "bool") or not isinstance(v, want):
                raise ConfigError(f"{f.name}: expected {f.type}, got {v!r}")
        positive = ("epochs", "batch_size", "lr", "t_max")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)!r}")
        for name in ("momentum", "weight_decay", "eta_min", "crop_padding"):
            if getattr(self, name) < 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing: must be in [0, 1), got {self.label_smoothing!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError("nesterov: needs optimizer=sgd and momentum > 0")
        if not math.isfinite(self.lr):
            raise ConfigError(f"lr: must be finite, got {self.lr!r}")


@dataclass(frozen=True)
class ExecConfig:
    pipeline: str = "fast"        # fast (device-resident) | reference (the authors' DataLoader)
    precision: str = "auto"       # auto = bf16 autocast on CUDA with the fast pipeline, else fp32
    compile: bool = False         # compile the step (see compile_mode; docs/PERFORMANCE.md)
    compile_mode: str = "auto"    # one of COMPILE_MODES
    channels_last: bool = True    # NHWC activations (fast pipeline)
    num_workers: int = 2          # reference pipeline's DataLoader workers
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    deterministic: bool = False   # deterministic kernels: bitwise-repeatable runs and resumes

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ConfigError(f"pipeline: must be one of {', '.join(PIPELINES)}, got {self.pipeline!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"compile_mode: must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: must be >= 0, got {self.num_workers!r}")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(self.device)
        except RuntimeError:
            raise ConfigError(f"device: unknown device {self.device!r}; use auto, cpu or cuda") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {self.device} asked for but no CUDA GPU is available")
        if dev.type not in ("cpu", "cuda"):
            raise ConfigError(f"device: unsupported device {self.device!r}; use auto, cpu or cuda")
        return dev

    def dtype(self, device: torch.device) -> torch.dtype:
        if self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda"
                                         and self.pipeline == "fast"):
            return torch.bfloat16
        return torch.float32


@dataclass(frozen=True)
class EpochStats:
    epoch: int                # 0-based, as the authors' notebook counts
    train_loss: float         # mean cross-entropy per training image
    train_acc: float          # percent
    test_loss: float          # mean cross-entropy per test image
    test_acc: float           # percent
    lr: float                 # learning rate used during this epoch
    epoch_seconds: float      # train + test wall time
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                fused=device.type == "cuda")
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def _loaders(data: Dataset, cfg: TrainConfig, ex: ExecConfig, device, gen: torch.Generator):
    if ex.pipeline == "reference":
        pin = device.type == "cuda"
        return (reference_loader(data.train_x, data.train_y, cfg.batch_size, train=True, pad=cfg.crop_padding,
                                 flip=cfg.hflip, num_workers=ex.num_workers, pin_memory=pin),
                reference_loader(data.test_x, data.test_y, cfg.batch_size, train=False,
                                 num_workers=ex.num_workers, pin_memory=pin))
    cl = ex.channels_last
    return (DeviceLoader(data.train_x, data.train_y, cfg.batch_size, device, train=True, pad=cfg.crop_padding,
                         flip=cfg.hflip, generator=gen, channels_last=cl),
            DeviceLoader(data.test_x, data.test_y, cfg.batch_size, device, train=False, channels_last=cl))


def run_epoch(model, loader, criterion, device, dtype, optimizer=None, sync_each_step=False):
    """One pass: (mean loss per image, accuracy in percent)."""
    return run_pass(model, loader, criterion, device, dtype, optimizer, sync_each_step)[:2]


def run_pass(model, loader, criterion, device, dtype, optimizer=None, sync_each_step=False):
    """One pass: (mean loss per image, accuracy in percent, mean over batches of each batch's mean loss).

    The last is how the authors' code averaged its losses (`test_loss / len(testloader)`); it
    differs from the per-image mean when the last batch is short. Sums stay on the device and
    are read once at the end.
    """
    training = optimizer is not None
    model.train(training)
    loss_sum, batch_sum, batches = torch.zeros((), device=device), torch.zeros((), device=device), 0
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext())
    with torch.set_grad_enabled(training):
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if isinstance(model, GraphedStep):  # the same step, replayed from a CUDA graph
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
            batch_loss = loss.item() if sync_each_step else loss.detach().float()  # the authors' loop: .item() per step
            loss_sum += batch_loss * n
            batch_sum += batch_loss
            correct += (out.argmax(1) == y).sum()
    return loss_sum.item() / seen, 100.0 * correct.item() / seen, batch_sum.item() / batches


def resolve_compile_mode(ex: ExecConfig, device: torch.device, optimizer: torch.optim.Optimizer) -> str:
    """The mode `auto` stands for here: cudagraph where it applies (CUDA, fast pipeline, Adam), else inductor."""
    if ex.compile_mode != "auto":
        return ex.compile_mode
    graphable = device.type == "cuda" and ex.pipeline == "fast" and isinstance(optimizer, torch.optim.Adam)
    return "cudagraph" if graphable else "inductor"


def compile_step(model: nn.Module, ex: ExecConfig, device: torch.device, dtype: torch.dtype,
                 optimizer: torch.optim.Optimizer, criterion: nn.Module):
    """What run_epoch steps with under --compile: a GraphedStep or a torch.compile'd model.

    Shapes are static (dynamic=False): an epoch has at most two batch sizes (the full
    one and the last partial one), each compiled once, rather than slower symbolic kernels.
    """
    mode = resolve_compile_mode(ex, device, optimizer)
    if mode == "cudagraph":
        if ex.pipeline != "fast":
            raise ConfigError("compile_mode: cudagraph needs the fast pipeline (the reference one feeds the "
                              "GPU from worker threads); use inductor")
        return GraphedStep(model, criterion, optimizer, dtype)
    return torch.compile(model, mode=None if mode == "inductor" else mode, dynamic=False)


@dataclass
class Setup:
    """What `train` steps with, before its first epoch."""
    model: nn.Module
    step_model: object        # the model, a torch.compile'd model or a GraphedStep
    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    train_loader: object
    test_loader: object
    device: torch.device
    dtype: torch.dtype
    sync_each_step: bool      # the reference pipeline reads the loss every step, as the authors did
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # the device generator the fast pipeline's shuffles and crops draw from


def setup(model_cfg: ResNetConfig, cfg: TrainConfig, data: Dataset, ex: ExecConfig, seed: int = 0) -> Setup:
    """The pieces built as `train` builds them, for callers that time steps (`resbench speed`)."""
    device = ex.torch_device()
    dtype = ex.dtype(device)
    seed_everything(seed)
    if len(data.train_y) == 0 or len(data.test_y) == 0:
        raise ConfigError("data: the training and test sets must each hold at least one image")
    # Process-wide switches: set both ways, so one deterministic run does not bind later ones.
    torch.use_deterministic_algorithms(ex.deterministic)
    torch.backends.cudnn.deterministic = ex.deterministic
    torch.backends.cudnn.benchmark = device.type == "cuda" and not ex.deterministic
    model = build_model(model_cfg).to(device)
    if ex.channels_last and ex.pipeline == "fast":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), cfg, device)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.t_max, eta_min=cfg.eta_min)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    step_model = compile_step(model, ex, device, dtype, optimizer, criterion) if ex.compile else model
    gen = torch.Generator(device=device).manual_seed(seed)
    train_loader, test_loader = _loaders(data, cfg, ex, device, gen)
    return Setup(model, step_model, optimizer, criterion, train_loader, test_loader, device, dtype,
                 ex.pipeline == "reference", scheduler, gen)


def rng_state(gen: torch.Generator) -> dict:
    """Every random stream a run draws from, in types `torch.load(weights_only=True)` accepts."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "generator": gen.get_state(), "python": random.getstate(),
             "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["generator"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(model_cfg: ResNetConfig, cfg: TrainConfig, data: Dataset, *, seed: int = 0,
          ex: ExecConfig = ExecConfig(), on_epoch: Callable[[EpochStats, Callable[[], dict]], None] | None = None,
          progress: bool | None = None, resume: dict | None = None) -> TrainResult:
    """Train from scratch, or from `resume` (a state `on_epoch`'s snapshot returned) onwards.

    `on_epoch(stats, snapshot)` runs after every epoch; `snapshot()` gives the full state
    (weights, optimiser, scheduler, every RNG, the history so far) for a checkpoint.
    """
    s = setup(model_cfg, cfg, data, ex, seed)
    model, optimizer, scheduler, gen = s.model, s.optimizer, s.scheduler, s.generator
    history: list[EpochStats] = []
    if resume is not None:  # before the first step, so a CUDA graph captures the restored state
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        set_rng_state(resume["rng"], gen)
        history = [EpochStats(**h) for h in resume["history"]]

    def snapshot() -> dict:
        return {"epoch": history[-1].epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(gen),
                "history": [asdict(h) for h in history]}

    from tqdm.auto import tqdm

    bar = tqdm(range(len(history), cfg.epochs), desc="epochs", unit="ep", leave=False,
               initial=len(history), total=cfg.epochs,
               disable=not (sys.stderr.isatty() if progress is None else progress))
    with bar:  # closed on every exit, a divergence or Ctrl-C included
        for epoch in bar:
            lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            train_loss, train_acc = run_epoch(s.step_model, s.train_loader, s.criterion, s.device, s.dtype, optimizer,
                                              s.sync_each_step)
            t_train = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise Diverged(epoch, train_loss)
            test_loss, test_acc, test_batchmean = run_pass(s.step_model, s.test_loader, s.criterion, s.device,
                                                           s.dtype)
            scheduler.step()
            stats = EpochStats(epoch, train_loss, train_acc, test_loss, test_acc, lr,
                               time.perf_counter() - t0, len(data.train_y) / t_train, test_batchmean)
            history.append(stats)
            bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.2f}")
            if on_epoch:
                on_epoch(stats, snapshot)
    return TrainResult(model, history, count_parameters(model), s.device, s.dtype)
