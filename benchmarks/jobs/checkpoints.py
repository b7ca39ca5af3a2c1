"""Checkpoint slots: where a run keeps its state between epochs, and who may resume it.

A slot is a folder per run identity (entry, config hash, data, limits, seed) holding the
MLflow run id, the last completed epoch's state and a lock. The lock (`filelock`, an flock
on Unix) is held while a process trains: a killed process releases it, so a later `run` or
`reproduce` can continue that MLflow run, while a live one is never resumed twice.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from filelock import FileLock, Timeout

from resnet import checkpoint
from resnet.files import atomic_write

ENV_DIR = "RESBENCH_CHECKPOINT_DIR"
DEFAULT_DIR = ".resbench/checkpoints"


class SlotBusy(RuntimeError):
    """Another live process is training this run."""


def default_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


class Slot:
    def __init__(self, root: str | os.PathLike, key: str):
        self.path = Path(root) / re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)
        self._lock = FileLock(self.path / "lock")

    def __enter__(self) -> "Slot":
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            raise SlotBusy(f"this run is being trained by another process right now ({self.path})") from None
        return self

    def __exit__(self, *exc):
        self._lock.release()
        return False

    @property
    def run_id(self) -> str | None:
        f = self.path / "run_id"
        return f.read_text().strip() if f.is_file() else None

    def bind(self, run_id: str) -> None:
        with atomic_write(self.path / "run_id") as f:
            f.write(run_id)

    def state(self) -> dict | None:
        f = self.path / "state.pt"
        return checkpoint.load(f) if f.is_file() else None

    def save(self, state: dict) -> None:
        checkpoint.save_atomic(state, self.path / "state.pt")

    def clear(self) -> None:
        for name in ("state.pt", "run_id"):
            (self.path / name).unlink(missing_ok=True)
