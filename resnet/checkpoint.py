"""Saving and loading training state safely: atomic writes, weights-only loads."""
from __future__ import annotations

import os

import torch

from resnet.files import atomic_write


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save through `atomic_write`: never a half-written checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load(path: str | os.PathLike) -> dict:
    """A checkpoint or weights file; only tensors and plain containers load, never code."""
    return torch.load(path, map_location="cpu", weights_only=True)
