"""The machine and software a run executes on, as plain strings keyed by their tag names.

Every training run records them as tags (jobs/tags.py), so each row's reproducibility
card in the report can say which GPU, driver, CUDA, cuDNN and library versions produced its
numbers; `resbench check` prints the same facts before a long run starts.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata

import torch

from resnet.train import device_name
from tracking import names
from tracking.store import mlflow_version


@lru_cache(maxsize=1)
def gpu_driver() -> str:
    """The NVIDIA driver version, from nvidia-smi (torch only knows the CUDA driver API level)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out[0] if out else "unknown"


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cudnn_text(version: int | None) -> str:
    """cuDNN's version number as people write it: 90100 -> 9.1.0, 8902 -> 8.9.2."""
    if not version:
        return "none"
    if version >= 90000:
        return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return f"{version // 1000}.{version // 100 % 10}.{version % 100}"


def describe(device: torch.device) -> dict[str, str]:
    """Hardware and software facts for a run on `device`, keyed by tracking tag name."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        names.TAG_DEVICE: device_name(device),
        names.TAG_GPU_DRIVER: gpu_driver() if gpus else "none",
        names.TAG_GPU_COUNT: str(gpus),
        names.TAG_CUDA: torch.version.cuda or "none",
        names.TAG_CUDNN: cudnn_text(cudnn),
        names.TAG_CPU: cpu_model(),
        names.TAG_PLATFORM: platform.platform(terse=True),
        names.TAG_PYTHON: platform.python_version(),
        names.TAG_TORCH: torch.__version__,
        names.TAG_TORCHVISION: _version("torchvision"),
        names.TAG_MLFLOW: mlflow_version(),
    }
