"""Saving and loading training state safely: atomic writes, weights-only loads."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def save_atomic(obj, path: str | os.PathLike) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | os.PathLike) -> dict:
    """A checkpoint or weights file; only tensors and plain containers load, never code."""
    return torch.load(path, map_location="cpu", weights_only=True)
