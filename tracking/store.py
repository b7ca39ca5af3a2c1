"""Connecting to a tracking store and logging one run: params once, one batched call per epoch.

With nothing configured the store is MLflow's embedded SQLite default (mlflow.db in the
working directory); MLFLOW_TRACKING_URI or an explicit URI (an `mlflow server` URL, say)
take precedence. Runs are written through MlflowClient, so no global active-run state leaks.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tracking import conventions, internals, names
from tracking.credentials import printed_redacted, redact

SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "databricks")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message says which and why.

    Messages name the store by its URI, and drivers' errors may quote it: any password in it is
    masked."""

    def __init__(self, message: str):
        super().__init__(redact(str(message)))


def mlflow_version() -> str:
    """The MLflow client's version (MLflow is imported only inside tracking/)."""
    import mlflow

    return mlflow.__version__


def client(uri: str) -> MlflowClient:
    """An MLflow client of the store at `uri`: the one place resbench builds one."""
    return MlflowClient(tracking_uri=uri)


def resolve_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or names.DEFAULT_URI


def require_shared_store(uri: str, where: str) -> None:
    """Refuse `uri` when runs execute on `where` (other machines) and could not all log to it.

    A SQLite file or file store lives on this machine only; a database URI reaches the
    metrics but leaves each run's artifacts on the disk of whichever worker trained it.
    A tracking server (`mlflow server ... --artifacts-destination`) takes both over HTTP.
    """
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme in ("http", "https", "databricks") or uri.startswith("databricks"):
        return
    what = (
        "a database, whose artifacts would stay on each worker's own disk"
        if scheme in ("postgresql", "mysql", "mssql")
        else "a file on this machine"
    )
    raise TrackingError(
        f"runs on {where} cannot log to {uri} ({what}); start `mlflow server` on a machine they "
        f"reach and pass --tracking-uri https://HOST (docs/DEPLOY.md)"
    )


def check_server(uri: str) -> None:
    """Refuse, within seconds, an http(s) `uri` whose server is unreachable or answers /health
    with an error (not an MLflow server): MLflow's own client would retry with backoff for
    minutes. Other stores pass unchecked."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests
    from mlflow.environment_variables import (
        MLFLOW_TRACKING_INSECURE_TLS,
        MLFLOW_TRACKING_SERVER_CERT_PATH,
    )

    # the TLS settings MLflow's own client honours: a private CA's certificate, or no check at all
    verify = MLFLOW_TRACKING_SERVER_CERT_PATH.get() or not MLFLOW_TRACKING_INSECURE_TLS.get()
    try:
        r = requests.get(uri.rstrip("/") + "/health", timeout=5, verify=verify)
    except requests.RequestException as e:
        raise TrackingError(f"tracking server {uri} is unreachable ({type(e).__name__})") from None
    if r.status_code >= 400:
        raise TrackingError(
            f"tracking server {uri} answered {r.status_code} on /health; is it an MLflow server?"
        )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI (relative to the working directory), else
    None."""
    prefix = "sqlite:///"
    path = uri[len(prefix) :] if uri.startswith(prefix) else ""
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def _creation_lock(uri: str):
    """Serialise first contact with a SQLite store across processes.

    MLflow creates and migrates the schema on first use; two processes doing it at
    once race ("table already exists"). A file lock beside the database file orders them.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    if not db.parent.is_dir():
        raise TrackingError(f"tracking store {uri}: folder {db.parent} does not exist")
    with FileLock(db.with_name(db.name + ".lock")):
        yield


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
            with _creation_lock(uri):
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


@contextmanager
def store_errors(where: str):
    """MLflow's failures mid-run become TrackingError, which callers treat as "the store is
    gone"."""
    try:
        yield
    except MlflowException as e:
        raise TrackingError(
            f"tracking store {where}: {(e.message.splitlines() or [''])[0]}"
        ) from None


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
        from tracking import (
            models,
        )  # torch and mlflow.pytorch: only a run that trained a model needs them

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
        with (
            store_errors(self.run_id),
            printed_redacted(),
        ):  # MLflow prints the run's link: no password in it
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
