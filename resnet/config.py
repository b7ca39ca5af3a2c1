"""What a run is configured with: the training recipe (TrainConfig) and its execution (ExecConfig).

Frozen dataclasses of plain values, built once at the command line's edge and passed down whole.
TrainConfig holds what changes the mathematics and defaults to the authors' code: Adam lr 0.1,
default betas, no weight decay, CosineAnnealingLR(T_max=200) stepped per epoch, batch 128,
crop+flip. ExecConfig holds what must not change it: the input pipeline, precision,
compilation, the device. Both check their values when built.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from resnet.model import ConfigError

# torch is imported where a device is resolved: configs alone (the registry, `list`) need none
if TYPE_CHECKING:
    import torch

OPTIMIZERS = ("adam", "sgd")
PIPELINES = ("fast", "reference")
# auto = bf16 on CUDA with the fast pipeline, else fp32; bf16 = autocast; fp32 = IEEE float32
# (TensorFloat-32 off); tf32 = float32 tensors whose CUDA convolutions and matmuls may use TF32
PRECISIONS = ("auto", "bf16", "tf32", "fp32")
# What --compile does: auto = cudagraph on CUDA with the fast pipeline and Adam, else inductor;
# cudagraph = resnet.graphs (whole step, no compiler); the rest name torch.compile modes.
COMPILE_MODES = ("auto", "cudagraph", "inductor", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80  # passes over the training set
    batch_size: int = 128  # images per step, train and test
    optimizer: str = "adam"  # adam | sgd
    lr: float = 0.1  # initial learning rate
    momentum: float = 0.0  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = 0.0  # L2, as the optimiser's own weight_decay
    t_max: int = 200  # CosineAnnealingLR period in epochs (the authors' 200, not `epochs`)
    eta_min: float = 0.0  # CosineAnnealingLR floor
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    crop_padding: int = 4  # RandomCrop(32, padding=crop_padding); 0 disables the crop
    hflip: bool = True  # RandomHorizontalFlip(p=0.5)

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
            raise ConfigError(
                f"optimizer: must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError("nesterov: needs optimizer=sgd and momentum > 0")
        if not math.isfinite(self.lr):
            raise ConfigError(f"lr: must be finite, got {self.lr!r}")


@dataclass(frozen=True)
class ExecConfig:
    pipeline: str = "fast"  # fast (device-resident) | reference (the authors' DataLoader)
    precision: str = "auto"  # one of PRECISIONS
    compile: bool = False  # compile the step (see compile_mode; docs/PERFORMANCE.md)
    compile_mode: str = "auto"  # one of COMPILE_MODES
    channels_last: bool = True  # NHWC activations (fast pipeline)
    num_workers: int = 2  # reference pipeline's DataLoader workers
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    deterministic: bool = False  # deterministic kernels: bitwise-repeatable runs and resumes

    def __post_init__(self):
        if self.pipeline not in PIPELINES:
            raise ConfigError(
                f"pipeline: must be one of {', '.join(PIPELINES)}, got {self.pipeline!r}"
            )
        if self.compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"compile_mode: must be one of {', '.join(COMPILE_MODES)}, got "
                f"{self.compile_mode!r}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision: must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: must be >= 0, got {self.num_workers!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(
                f"device: unknown device {self.device!r}; use auto, cpu, cuda or cuda:N"
            )

    def torch_device(self) -> torch.device:
        """The device, resolved (`auto`: a CUDA GPU when there is one); a CUDA device this machine
        lacks is a ConfigError."""
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dev = torch.device(self.device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: {self.device} asked for but no CUDA GPU is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device: {self.device} asked for but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s)"
            )
        return dev

    def resolved_precision(self, device: torch.device | str) -> str:
        """The precision a run on `device` (or a device of this type: "cpu", "cuda") computes in:
        `auto` is bf16 on CUDA with the fast pipeline, else fp32; bf16, tf32 and fp32 are
        themselves."""
        if self.precision != "auto":
            return self.precision
        kind = getattr(device, "type", device)
        return "bf16" if kind == "cuda" and self.pipeline == "fast" else "fp32"

    def resolved_compile(self, device: torch.device | str, optimizer: str) -> str:
        """What compiles the step on `device` (or a device of this type) with this optimizer:
        "off", the mode asked for, or the one `auto` stands for there (cudagraph on CUDA with the
        fast pipeline and Adam, else inductor)."""
        if not self.compile:
            return "off"
        if self.compile_mode != "auto":
            return self.compile_mode
        kind = getattr(device, "type", device)
        graphable = kind == "cuda" and self.pipeline == "fast" and optimizer == "adam"
        return "cudagraph" if graphable else "inductor"

    def dtype(self, device: torch.device) -> torch.dtype:
        import torch

        return torch.bfloat16 if self.resolved_precision(device) == "bf16" else torch.float32
