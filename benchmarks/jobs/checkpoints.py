"""Checkpoint slots: where a run keeps its state between epochs, and who may resume it.

A slot is a folder per run identity (entry, config hash, data, limits, seed) holding the
MLflow run id, the last completed epoch's state and a lock. The lock (`filelock`, an flock
on Unix) is held while a process trains: a killed process releases it, so a later `run` or
`reproduce` can continue that MLflow run, while a live one is never resumed twice.

A slot lives on one machine's disk, so each epoch's state also goes to the store as the run's
checkpoint artifact (tracking/handover.py): `resume_point` continues this machine's run, or,
with no slot here, the unfinished run of the same identity and seed another machine left.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from filelock import FileLock, Timeout

from resnet import checkpoint
from resnet.files import atomic_write
from tracking import RunLogger, Tracker, handover, names

ENV_DIR = "RESBENCH_CHECKPOINT_DIR"
DEFAULT_DIR = ".resbench/checkpoints"


class SlotBusy(RuntimeError):
    """Another live process is training this run."""


def default_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


class Slot:
    def __init__(self, root: str | os.PathLike, key: str):
        self.path = Path(root) / re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)
        self.file = self.path / names.ARTIFACT_CHECKPOINT.rsplit("/", 1)[1]
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
        return checkpoint.load(self.file) if self.file.is_file() else None

    def save(self, state: dict, run: RunLogger | None = None) -> None:
        """The epoch's state, atomically; with `run`, also as its checkpoint artifact, for another machine."""
        checkpoint.save_atomic(state, self.file)
        if run is not None:
            handover.share(run, self.file)

    def clear(self, run: RunLogger | None = None) -> None:
        """Forget the state and run; with `run` (finished, or diverged), its checkpoint artifact too."""
        for f in (self.file, self.path / "run_id"):
            f.unlink(missing_ok=True)
        if run is not None:
            handover.drop(run)


def identity_tags(run_tags: dict) -> dict[str, str]:
    """The tags that make two runs the same (entry, identity, seed): never two unfinished runs of them."""
    return {k: str(run_tags[k]) for k in (names.TAG_ENTRY, names.TAG_IDENTITY, names.TAG_SEED)}


def _fetched(tracker: Tracker, slot: Slot, run_id: str, logged: int) -> dict | None:
    """`run_id`'s checkpoint artifact, if it holds every epoch the run logged (else resuming would log one twice)."""
    path = handover.fetch(tracker, run_id, slot.path)
    if path is None:
        return None
    try:
        state = checkpoint.load(path)
    except Exception:  # noqa: BLE001 -- truncated or not a checkpoint: as good as none
        return None
    finally:
        path.unlink(missing_ok=True)
    return state if isinstance(state, dict) and state.get("epoch", -1) >= logged else None


def resume_point(tracker: Tracker, slot: Slot, identity: dict[str, str]) -> tuple[str | None, dict | None]:
    """(run id, state) to continue, or (None, None) for a new run.

    This machine's run when the slot has one still unfinished, from the slot's state (or the
    store's, when another machine took the run further since); else the newest unfinished run of
    `identity` in the store whose checkpoint artifact can be resumed. A run died in its first
    epoch (no state anywhere) continues from scratch only from its own slot.
    """
    run_id = slot.run_id
    if run_id and handover.resumable(tracker, run_id):
        logged, state = handover.last_epoch(tracker, run_id), slot.state()
        if state is None and logged < 0:
            return run_id, None
        if state is None or state["epoch"] < logged:
            state = _fetched(tracker, slot, run_id, logged)
        if state is not None:
            return run_id, state
    slot.clear()
    for run_id in handover.unfinished(tracker, identity):
        state = _fetched(tracker, slot, run_id, handover.last_epoch(tracker, run_id))
        if state is not None:
            slot.bind(run_id)
            return run_id, state
    return None, None
