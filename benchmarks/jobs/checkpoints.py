"""Checkpoint slots: where a run keeps its state between epochs, and who may resume it.

A slot is a folder per run key and seed (benchmarks/runkey.py) holding the
MLflow run id, the last completed epoch's state and a lock. The lock (`filelock`, an flock
on Unix) is held while a process trains: a killed process releases it, so a later `run` or
`reproduce` can continue that MLflow run, while a live one is never resumed twice.

A slot lives on one machine's disk, so the state also goes to the store as the run's checkpoint
artifact (tracking/handover.py), as often as SHARE_BUDGET allows (an upload of paper/final's
59 MB over HTTP can take seconds): `resume_point` continues this machine's run, or, with no
slot here, the unfinished run of the same key and seed another machine left. A state from
the store may be a few epochs old; those epochs are trained again but not logged again.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from filelock import FileLock, Timeout

from resnet import checkpoint
from resnet.files import atomic_write
from tracking import handover, names
from tracking.runlogger import RunLogger
from tracking.tracker import Tracker

ENV_DIR = "RESBENCH_CHECKPOINT_DIR"
DEFAULT_DIR = ".resbench/checkpoints"
SHARE_BUDGET = 0.05  # the most of a run's time its checkpoint uploads to the store may take


class SlotBusy(RuntimeError):
    """Another live process is training this run."""


def default_dir() -> Path:
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


class Slot:
    def __init__(self, root: str | os.PathLike, key: str):
        self.path = Path(root) / re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)
        self.file = self.path / names.ARTIFACT_CHECKPOINT.rsplit("/", 1)[1]
        self._lock = FileLock(self.path / "lock")
        self._shared_at, self._share_cost = float("-inf"), 0.0  # the first epoch is always shared

    def __enter__(self) -> Slot:
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(blocking=False)
        except Timeout:
            raise SlotBusy(
                f"this run is being trained by another process right now ({self.path})"
            ) from None
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
        """The epoch's state, atomically; with `run`, also as its checkpoint artifact for another
        machine, unless the last upload was so recent that this one would take more than
        SHARE_BUDGET of the time."""
        checkpoint.save_atomic(state, self.file)
        if (
            run is not None
            and time.monotonic() - self._shared_at >= self._share_cost / SHARE_BUDGET
        ):
            start = time.monotonic()
            handover.share(run, self.file)
            self._shared_at = time.monotonic()
            self._share_cost = self._shared_at - start

    def clear(self, run: RunLogger | None = None) -> None:
        """Forget the state and run; with `run` (finished, or diverged), its checkpoint artifact
        too."""
        for f in (self.file, self.path / "run_id"):
            f.unlink(missing_ok=True)
        if run is not None:
            handover.drop(run)


def _fetched(tracker: Tracker, slot: Slot, run_id: str) -> dict | None:
    """`run_id`'s checkpoint artifact, loaded; None when it has none that loads."""
    path = handover.fetch(tracker, run_id, slot.path)
    if path is None:
        return None
    try:
        state = checkpoint.load(path)
    except Exception:  # noqa: BLE001 -- a truncated upload fails in many ways: as good as none
        return None
    finally:
        path.unlink(missing_ok=True)
    return state if isinstance(state, dict) and isinstance(state.get("epoch"), int) else None


def resume_point(
    tracker: Tracker, slot: Slot, found: dict[str, str]
) -> tuple[str | None, dict | None]:
    """(run id, state) to continue, or (None, None) for a new run.

    This machine's run when the slot has one still unfinished, from the newer of the slot's state
    and the store's (another machine may have taken the run further since), or from scratch when
    it has neither (it died in its first epoch); else the newest unfinished run with the tags
    `found` (RunKey.resume_tags: its key and seed) in the store whose checkpoint artifact loads.
    """
    run_id = slot.run_id
    if run_id and handover.resumable(tracker, run_id):
        state = slot.state()
        if state is None or state["epoch"] < handover.last_epoch(tracker, run_id):
            remote = _fetched(tracker, slot, run_id)
            if remote is not None and (state is None or remote["epoch"] > state["epoch"]):
                state = remote
        return run_id, state
    slot.clear()
    for run_id in handover.unfinished(tracker, found):
        state = _fetched(tracker, slot, run_id)
        if state is not None:
            slot.bind(run_id)
            return run_id, state
    return None, None
