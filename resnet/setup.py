"""Everything a run is built from before its first step (`setup` and its parts), and its passes.

`train` builds its run here, and so do the callers that time or try steps without training
(`resbench speed`, `resbench check`), so all of them step with exactly the same model,
optimiser, schedule, loss, loaders and (under --compile) compiled step, through the same
`Setup.train_pass` and `Setup.eval_pass`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resnet.config import ExecConfig, TrainConfig
from resnet.data import Dataset
from resnet.graphs import CompiledStep, GraphedStep, float32_lr
from resnet.model import ConfigError, ResNetConfig
from resnet.network import build_model
from resnet.passes import PassStats, run_pass
from resnet.pipeline import DeviceLoader, reference_loader


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """The recipe's optimiser (Adam fused on CUDA); every step reads its rate rounded to float32,
    the value a captured step reads from the device (resnet.graphs.float32_lr)."""
    if cfg.optimizer == "adam":
        return float32_lr(
            torch.optim.Adam(
                params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
            )
        )
    return float32_lr(
        torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    )


def set_float32_math(precision: str) -> None:
    """TensorFloat-32 for float32 convolutions and matmuls on CUDA: allowed for `tf32` only, so
    `fp32` is IEEE float32 (PyTorch's default allows it for cuDNN convolutions). Process-wide,
    set both ways, so one run's choice does not carry into the next."""
    allowed = tf32_allowed(precision)
    torch.backends.cudnn.allow_tf32 = allowed
    torch.backends.cuda.matmul.allow_tf32 = allowed


def tf32_allowed(precision: str) -> bool:
    """Whether a run of resolved `precision` (bf16, tf32 or fp32) allows TensorFloat-32."""
    return precision == "tf32"


# cuBLAS is deterministic only with a fixed workspace, which it reads when it starts
CUBLAS_WORKSPACE = ":4096:8"


def set_deterministic(on: bool) -> None:
    """Deterministic kernels, or PyTorch's fastest (process-wide, set both ways). On, cuBLAS gets
    its fixed workspace unless one is set already: set before the process's first CUDA matmul
    (as `setup` does), else PyTorch raises on cuBLAS calls."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on


def _loaders(data: Dataset, cfg: TrainConfig, ex: ExecConfig, device, gen: torch.Generator):
    if ex.pipeline == "reference":
        pin = device.type == "cuda"
        return (
            reference_loader(
                data.train_x,
                data.train_y,
                cfg.batch_size,
                train=True,
                pad=cfg.crop_padding,
                flip=cfg.hflip,
                num_workers=ex.num_workers,
                pin_memory=pin,
            ),
            reference_loader(
                data.test_x,
                data.test_y,
                cfg.batch_size,
                train=False,
                num_workers=ex.num_workers,
                pin_memory=pin,
            ),
        )
    cl = ex.channels_last
    return (
        DeviceLoader(
            data.train_x,
            data.train_y,
            cfg.batch_size,
            device,
            train=True,
            pad=cfg.crop_padding,
            flip=cfg.hflip,
            generator=gen,
            channels_last=cl,
        ),
        DeviceLoader(
            data.test_x, data.test_y, cfg.batch_size, device, train=False, channels_last=cl
        ),
    )


def resolve_compile_mode(
    ex: ExecConfig, device: torch.device, optimizer: torch.optim.Optimizer
) -> str:
    """The mode `auto` stands for here: cudagraph where it applies (CUDA, fast pipeline, Adam), else
    inductor."""
    name = "adam" if isinstance(optimizer, torch.optim.Adam) else type(optimizer).__name__.lower()
    return ex.resolved_compile(device, name)


def compile_step(
    model: nn.Module,
    ex: ExecConfig,
    device: torch.device,
    dtype: torch.dtype,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    on_fallback: Callable[[str], None] | None = None,
):
    """What a pass steps with under --compile: a GraphedStep or a CompiledStep (torch.compile),
    either of which turns eager, calling `on_fallback(reason)`, if compiling or capturing fails.

    Shapes are static (dynamic=False): an epoch has at most two batch sizes (the full
    one and the last partial one), each compiled once, rather than slower symbolic kernels.
    """
    mode = resolve_compile_mode(ex, device, optimizer)
    if mode == "cudagraph":
        if ex.pipeline != "fast":
            raise ConfigError(
                "compile_mode: cudagraph needs the fast pipeline (the reference one feeds the "
                "GPU from worker threads); use inductor"
            )
        return GraphedStep(model, criterion, optimizer, dtype, on_fallback=on_fallback)
    compiled = torch.compile(model, mode=None if mode == "inductor" else mode, dynamic=False)
    return CompiledStep(model, compiled, criterion, optimizer, dtype, on_fallback)


@dataclass
class Setup:
    """What `train` steps with, before its first epoch, and its two kinds of pass."""

    model: nn.Module
    step_model: object  # the model, or a resnet.graphs.Step (CompiledStep or GraphedStep)
    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    train_loader: object
    test_loader: object
    device: torch.device
    dtype: torch.dtype
    sync_each_step: bool  # the reference pipeline reads the loss every step, as the authors did
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # the device generator the fast pipeline's shuffles and crops use

    def train_pass(self, loader=None) -> PassStats:
        """A training pass over `loader` (by default the training loader): a step per batch."""
        return run_pass(
            self.step_model,
            self.train_loader if loader is None else loader,
            self.criterion,
            self.device,
            self.dtype,
            self.optimizer,
            self.sync_each_step,
        )

    def eval_pass(self, loader=None) -> PassStats:
        """An evaluation pass over `loader` (by default the test loader): no step, no gradient."""
        return run_pass(
            self.step_model,
            self.test_loader if loader is None else loader,
            self.criterion,
            self.device,
            self.dtype,
        )


def setup(
    model_cfg: ResNetConfig,
    cfg: TrainConfig,
    data: Dataset,
    ex: ExecConfig,
    seed: int = 0,
    on_fallback: Callable[[str], None] | None = None,
) -> Setup:
    """The pieces built as `train` builds them, for callers that time steps (`resbench speed`).

    `on_fallback(reason)` is called if a compiled step fails and turns eager (resnet/graphs.py).
    """
    if len(data.train_y) == 0 or len(data.test_y) == 0:
        raise ConfigError("data: the training and test sets must each hold at least one image")
    # Process-wide switches: set both ways, so one run's choice does not bind later ones; the
    # cuBLAS workspace before anything touches the device.
    set_deterministic(ex.deterministic)
    device = ex.torch_device()
    dtype = ex.dtype(device)
    set_float32_math(ex.resolved_precision(device))
    seed_everything(seed)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not ex.deterministic
    model = build_model(model_cfg).to(device)
    if ex.channels_last and ex.pipeline == "fast":
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters(), cfg, device)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=cfg.t_max, eta_min=cfg.eta_min
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    step_model = (
        compile_step(model, ex, device, dtype, optimizer, criterion, on_fallback)
        if ex.compile
        else model
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    train_loader, test_loader = _loaders(data, cfg, ex, device, gen)
    return Setup(
        model,
        step_model,
        optimizer,
        criterion,
        train_loader,
        test_loader,
        device,
        dtype,
        ex.pipeline == "reference",
        scheduler,
        gen,
    )
