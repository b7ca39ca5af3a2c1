"""Logging one `resbench speed` measurement as an MLflow run tagged resbench.kind = speed.

Handed plain data: params, tags and metrics as dicts, the printed table as a list of row
dicts (saved as the run's speed.csv artifact). Metrics go in one batched call.
"""

from __future__ import annotations

import csv
import io

from tracking import names
from tracking.tracker import Tracker


def log_speed_run(
    tracker: Tracker,
    run_name: str,
    params: dict,
    tags: dict,
    metrics: dict[str, float],
    rows: list[dict],
) -> str:
    """One FINISHED speed run; returns its id."""
    with tracker.start_run(run_name, params, {**tags, names.TAG_KIND: names.KIND_SPEED}) as run:
        run.log_metrics(metrics)
        if rows:
            table = io.StringIO(newline="")
            writer = csv.DictWriter(table, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            run.log_text(table.getvalue(), names.ARTIFACT_SPEED_TABLE)
        return run.run_id
