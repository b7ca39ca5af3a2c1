"""A connection to one store and one experiment (Tracker): starting, finding, reopening and closing
runs, and reading back what a run stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from tracking import conventions, names
from tracking.credentials import printed_redacted
from tracking.runlogger import RunLogger
from tracking.store import (
    SCHEMES,
    TrackingError,
    check_server,
    client,
    creation_lock,
    resolve_uri,
    store_errors,
)


@dataclass(frozen=True)
class StoredRun:
    """What the store holds about a run's state: its id, status and tags."""

    run_id: str
    status: str  # FINISHED, RUNNING, FAILED or KILLED
    tags: dict[str, str] = field(default_factory=dict)


def _stored(run) -> StoredRun:
    return StoredRun(run.info.run_id, run.info.status, dict(run.data.tags))


class Tracker:
    """A connection to one store and one experiment."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment = uri, experiment
        if uri.startswith(("http://", "https://")):
            check_server(uri)
        else:
            scheme = urlparse(uri).scheme.split("+")[0]
            if scheme not in SCHEMES:
                raise TrackingError(
                    f"tracking URI {uri!r}: unknown scheme {scheme or '(none)'!r}; "
                    f"use sqlite:///PATH.db, postgresql://..., file:PATH or http://HOST:PORT"
                )
        try:
            with creation_lock(uri):
                self.client = client(uri)
                self.experiment_id = self._experiment_id(experiment)
        except TrackingError:
            raise
        except Exception as e:  # drivers, SQL and HTTP errors all mean "this store can't be used"
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise TrackingError(
                f"tracking store {uri} cannot be used: {type(e).__name__}: {first}"
            ) from None

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, creating it if need be; either way it carries MLflow's experiment
        kind."""
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(name, tags=conventions.experiment_tags())
            except MlflowException:  # another process created it first
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        conventions.mark_experiment(self.client, exp)
        return exp.experiment_id

    def start_run(
        self,
        run_name: str,
        params: dict,
        tags: dict,
        source: conventions.Source | None = None,
        system_metrics: bool = False,
    ) -> RunLogger:
        """A new RUNNING run; `source` fills MLflow's source tags, `system_metrics` starts MLflow's
        monitor."""
        tags = {**tags, **(source.tags() if source else {})}
        try:
            run = self.client.create_run(
                self.experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()}
            )
        except MlflowException as e:
            raise TrackingError(
                f"cannot create a run in {self.uri}: {e.message.splitlines()[0]}"
            ) from None
        logger = RunLogger(self.client, run.info.run_id, self.uri)
        try:
            logger.log_params(params)
        except TrackingError:  # never leave a run RUNNING that nobody will finish
            logger.finish("FAILED")
            raise
        if system_metrics:
            logger.monitor_system()
        return logger

    def run(self, run_id: str) -> StoredRun | None:
        """The run `run_id`; None when the store has no such run (a store that was wiped, say)."""
        try:
            return _stored(self.client.get_run(run_id))
        except MlflowException:
            return None

    def runs_tagged(self, tags: dict[str, str], limit: int = 1000) -> list[StoredRun]:
        """This experiment's runs (any status) with exactly these tags, newest first, at most
        `limit`."""
        # what a filter string cannot quote is left to the exact comparison below
        exact = [
            f"tags.`{k}` = '{v}'" for k, v in tags.items() if "'" not in str(v) and "`" not in k
        ]
        with store_errors(self.uri):
            found = self.client.search_runs(
                [self.experiment_id],
                " and ".join(exact),
                order_by=["attributes.start_time DESC"],
                max_results=limit,
            )
        return [
            _stored(r) for r in found if all(r.data.tags.get(k) == str(v) for k, v in tags.items())
        ]

    def metric_steps(self, run_id: str, key: str) -> list[int]:
        """The steps at which `run_id` logged `key`, in the order logged."""
        with store_errors(self.uri):
            return [m.step for m in self.client.get_metric_history(run_id, key)]

    def download_artifact(self, run_id: str, path: str, into: Path) -> Path:
        """Download `run_id`'s artifact `path` into the folder `into`; returns where it lies.

        TrackingError when the run has no such artifact or the store cannot be read."""
        with store_errors(self.uri):
            return Path(self.client.download_artifacts(run_id, path, str(into)))

    def close(self, run_id: str, status: str, tags: dict[str, str]) -> None:
        """End `run_id` with `status` (FINISHED, FAILED or KILLED), tagged with `tags` first."""
        with store_errors(self.uri), printed_redacted():
            self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
            self.client.set_terminated(run_id, status=status)

    def reopen(self, run_id: str, system_metrics: bool = False) -> RunLogger:
        """Continue an unfinished run (after a crash or Ctrl-C): it is RUNNING again."""
        with store_errors(self.uri):
            self.client.update_run(run_id, status="RUNNING")
            if names.TAG_FAILURE in self.client.get_run(run_id).data.tags:
                self.client.delete_tag(run_id, names.TAG_FAILURE)
        logger = RunLogger(self.client, run_id, self.uri)
        if system_metrics:
            logger.monitor_system(resume=True)
        return logger


def connect(uri: str | None = None, experiment: str = names.DEFAULT_EXPERIMENT) -> Tracker:
    return Tracker(resolve_uri(uri), experiment)
