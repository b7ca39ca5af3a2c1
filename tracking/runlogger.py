"""Logging one run (RunLogger): params once, one batched call per epoch, artifacts, tags, and the
run's end status (an exception marks it FAILED, Ctrl-C KILLED, never left RUNNING)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from tracking import conventions, internals, names
from tracking.credentials import printed_redacted, redact
from tracking.store import store_errors


class RunLogger:
    """One run. A context manager: an exception marks it FAILED (Ctrl-C: KILLED), never RUNNING."""

    def __init__(self, client: MlflowClient, run_id: str, uri: str):
        self.client, self.run_id, self.uri = client, run_id, uri
        self.status: str | None = None
        self.monitor = None  # MLflow's SystemMetricsMonitor, while it runs

    def monitor_system(self, resume: bool = False) -> None:
        """Sample CPU, memory, disk, network and (with pynvml) GPU use into `system/*` metrics until
        the run finishes: MLflow's own monitor, a background thread (every 10 s unless
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL says otherwise); `resume` continues its steps."""
        self.monitor = internals.system_metrics_monitor(self.run_id, self.uri, resume)
        self.monitor.start()

    def log_datasets(self, data: conventions.DataInput) -> None:
        """The training and test sets as the run's dataset inputs (the UI's Dataset column)."""
        with store_errors(self.run_id):
            self.client.log_inputs(self.run_id, datasets=conventions.dataset_inputs(data))

    def log_model(self, model, input_example, step: int = 0) -> str:
        """The trained network as the run's logged model (tracking/models.py); returns its model id.

        Log the final metrics first: the model is linked to the run's latest values."""
        # torch and mlflow.pytorch: only a run that trained a model needs them
        from tracking import (
            models,
        )

        with store_errors(self.run_id):
            return models.log_model(self.client, self.run_id, model, input_example, step)

    def log_params(self, params: dict) -> None:
        items = [
            Param(k, json.dumps(v) if isinstance(v, (list, tuple)) else str(v))
            for k, v in params.items()
        ]
        with store_errors(self.run_id):
            for i in range(0, len(items), 100):  # MLflow's per-call parameter limit
                self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        """All of `metrics` at one step, in one call."""
        ts = int(time.time() * 1000)
        with store_errors(self.run_id):
            self.client.log_batch(
                self.run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()]
            )

    def log_epochs(
        self, history: list[dict[str, float]], first_step: int = 0, timestamp_ms: int | None = None
    ) -> None:
        """Many epochs at once (an imported or generated run): steps first_step.., 1,000 values a
        call.

        1,000 is MLflow's per-call metric limit; one call per epoch would cost a round trip each.
        """
        ts = timestamp_ms or int(time.time() * 1000)
        items = [
            Metric(k, float(v), ts + i, first_step + i)
            for i, row in enumerate(history)
            for k, v in row.items()
        ]
        with store_errors(self.run_id):
            for i in range(0, len(items), 1000):
                self.client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def set_tags(self, tags: dict) -> None:
        with store_errors(self.run_id):
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def logged_steps(self, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def delete_artifacts(self, path: str) -> None:
        """Delete the run's artifact folder `path`. A store that cannot delete artifacts raises
        NotImplementedError; one that cannot be reached, TrackingError; the disk, OSError."""
        with store_errors(self.run_id):
            artifact_uri = self.client.get_run(self.run_id).info.artifact_uri
            internals.delete_artifacts(artifact_uri, self.uri, path)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        with store_errors(self.run_id):
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        """`data` as a JSON (or YAML, by the suffix) artifact, written by MLflow without a file of
        ours."""
        with store_errors(self.run_id):
            self.client.log_dict(self.run_id, data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        with store_errors(self.run_id):
            self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure, artifact_file: str, **save_kwargs) -> None:
        """A matplotlib figure as an image artifact; `save_kwargs` go to its savefig (dpi, say)."""
        with store_errors(self.run_id):
            self.client.log_figure(
                self.run_id, figure, artifact_file, save_kwargs=save_kwargs or None
            )

    def finish(self, status: str = "FINISHED") -> None:
        if self.monitor is not None:  # its last samples go in before the run ends
            self.monitor.finish()
            self.monitor = None
        # MLflow prints the run's link: no password in it
        with (
            store_errors(self.run_id),
            printed_redacted(),
        ):
            self.client.set_terminated(self.run_id, status=status)
        self.status = status

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.status is not None:
            return False
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            try:
                self.set_tags({names.TAG_FAILURE: redact(f"{exc_type.__name__}: {exc}")[:500]})
            finally:
                self.finish("FAILED")
        return False
