"""Runs that move between machines: the unfinished run of one identity, its checkpoint kept in the
store.

A checkpoint slot lives on the disk of the machine that wrote it, so a Ray retry or a later
`reproduce` that lands on another machine finds none. The store is what every machine shares:
the checkpoint is also logged (`share`, as often as the caller's budget allows) as the run's
artifact `names.ARTIFACT_CHECKPOINT` (the same path each time, so only the latest is kept), and
`unfinished` finds the runs of one identity left RUNNING, KILLED or FAILED (not diverged) for a
new machine to resume from it. Checkpoints load weights-only: one from the store runs no code.
Runs it cannot resume are closed KILLED with `names.TAG_SUPERSEDED_BY` naming the run that
replaces them, so one identity and seed never has two runs going.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from tracking import names
from tracking.credentials import redact
from tracking.runlogger import RunLogger
from tracking.store import TrackingError
from tracking.tracker import StoredRun, Tracker

UNFINISHED = ("RUNNING", "KILLED", "FAILED")
log = logging.getLogger(__name__)


def _open(run: StoredRun) -> bool:
    return (
        run.status in UNFINISHED
        and names.TAG_DIVERGED_EPOCH not in run.tags
        and names.TAG_SUPERSEDED_BY not in run.tags
    )


def resumable(tracker: Tracker, run_id: str) -> bool:
    """Whether `run_id` is a run to continue: unfinished, not diverged, not superseded by
    another."""
    run = tracker.run(run_id)
    return run is not None and _open(run)


def last_epoch(tracker: Tracker, run_id: str) -> int:
    """The last epoch `run_id` logged (the step of its last test accuracy); -1 before its first."""
    return max(tracker.metric_steps(run_id, "test_acc"), default=-1)


def unfinished(tracker: Tracker, tags: dict[str, str]) -> list[str]:
    """The ids of the runs left unfinished with exactly these tags (identity, seed, ...), newest
    first."""
    return [r.run_id for r in tracker.runs_tagged(tags) if _open(r)]


def share(run: RunLogger, checkpoint: Path) -> None:
    """Log the epoch's checkpoint file as the run's checkpoint artifact, replacing the previous
    epoch's."""
    folder, name = names.ARTIFACT_CHECKPOINT.rsplit("/", 1)
    if checkpoint.name != name:
        raise ValueError(f"a checkpoint artifact is a file named {name}, not {checkpoint.name}")
    run.log_artifact(checkpoint, folder)


def fetch(tracker: Tracker, run_id: str, into: Path) -> Path | None:
    """Download `run_id`'s checkpoint artifact into the folder `into`; None when it has none."""
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=into))
    try:
        got = tracker.download_artifact(run_id, names.ARTIFACT_CHECKPOINT, tmp)
        dest = into / f"{run_id}-{got.name}"
        got.replace(dest)
        return dest
    except (TrackingError, OSError):  # no checkpoint logged (it died in its first epoch)
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def drop(run: RunLogger) -> None:
    """Delete the run's checkpoint artifact (it is finished, or diverged and never resumed); a store
    that cannot delete artifacts keeps it, with a warning: the run itself is done either way."""
    try:
        run.delete_artifacts(names.ARTIFACT_CHECKPOINT.rsplit("/", 1)[0])
    except (TrackingError, OSError, NotImplementedError) as e:
        log.warning(
            "run %s keeps its checkpoint artifact (%s)",
            run.run_id,
            redact(f"{type(e).__name__}: {e}")[:300],
        )


def supersede(tracker: Tracker, run_ids: list[str], by: str) -> None:
    """Close `run_ids` as KILLED, each tagged as superseded by the run `by`."""
    for run_id in run_ids:
        tracker.close(run_id, "KILLED", {names.TAG_SUPERSEDED_BY: by})
