"""Every use of MLflow's private or internal API, in one place.

MLflow's public client has no call for these: the store object behind a tracking URI and its
SQL metrics table (bulk metric histories), the UI's bulk-history HTTP endpoint, a run's latest
metrics with their steps and timestamps, a dataset source's type name, deleting a run's
artifacts, and the system-metrics monitor outside `mlflow.start_run`. An MLflow upgrade may
change any of them without notice; tests/test_mlflow_internals.py checks each against the
installed MLflow, so such a change fails there, by name, rather than somewhere in a run.
"""

from __future__ import annotations

import logging

# The UI's bulk metric-history endpoint (what its charts read), relative to the server's URL.
HISTORY_BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
Value = tuple[str, str, int, float]  # run_id, key, step, value


def store(uri: str):
    """The tracking store object MLflow's client uses for `uri`."""
    from mlflow.tracking._tracking_service.utils import _get_store

    return _get_store(uri)


def is_sql(tracking_store) -> bool:
    """Whether `tracking_store` is a database store (SQLite, PostgreSQL, MySQL, ...)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return isinstance(tracking_store, SqlAlchemyStore)


def is_rest(tracking_store) -> bool:
    """Whether `tracking_store` talks to a tracking server over HTTP."""
    from mlflow.store.tracking.rest_store import RestStore

    return isinstance(tracking_store, RestStore)


def sql_metric_values(
    sql_store, run_ids: list[str], keys: tuple[str, ...], per_query: int
) -> list[Value]:
    """Every key of many runs, `per_query` runs a query, on the store's own session and table.

    What `get_metric_history_bulk` runs, less its ORM objects: building one per value costs tens
    of times the query itself, seconds for a thousand runs. Each run's values of a key come in
    get_metric_history's order (timestamp, step, value); NaN is stored as a flag, as MLflow reads
    it.
    """
    from mlflow.entities.entity_type import EntityAssociationType
    from mlflow.store.tracking.dbmodels.models import SqlMetric as M

    out = []
    with sql_store.ManagedSessionMaker() as session:
        for i in range(0, len(run_ids), per_query):
            ids = sql_store._filter_entity_ids(
                session, EntityAssociationType.RUN, run_ids[i : i + per_query]
            )
            rows = (
                session.query(M.run_uuid, M.key, M.step, M.value, M.is_nan)
                .filter(M.key.in_(keys), M.run_uuid.in_(ids))
                .order_by(M.run_uuid, M.key, M.timestamp, M.step, M.value)
                .all()
            )
            out += [
                (run_id, key, step, float("nan") if nan else value)
                for run_id, key, step, value, nan in rows
            ]
    return out


def sql_metric_counts(
    sql_store, run_ids: list[str], keys: tuple[str, ...], per_query: int
) -> dict[tuple[str, str], int]:
    """How many values each (run, key) holds, counted in the database without reading them."""
    from mlflow.store.tracking.dbmodels.models import SqlMetric as M
    from sqlalchemy import func

    counts = {}
    with sql_store.ManagedSessionMaker() as session:
        for i in range(0, len(run_ids), per_query):
            rows = (
                session.query(M.run_uuid, M.key, func.count())
                .filter(M.key.in_(keys), M.run_uuid.in_(run_ids[i : i + per_query]))
                .group_by(M.run_uuid, M.key)
                .all()
            )
            counts |= {(run_id, key): n for run_id, key, n in rows}
    return counts


def http_metric_values(rest_store, run_ids: list[str], key: str, cap: int) -> list[Value] | None:
    """`key` of `run_ids` from the server's bulk endpoint (at most `cap` values), with the store's
    credentials; None when the server has no such endpoint."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(
        rest_store.get_host_creds(),
        HISTORY_BULK,
        "GET",
        params={"run_id": run_ids, "metric_key": key, "max_results": cap},
    )
    if response.status_code == 404:
        return None
    verify_rest_response(response, HISTORY_BULK)
    return [
        (m["run_id"], key, int(m.get("step", 0)), float(m["value"]))
        for m in response.json().get("metrics", [])
    ]


def latest_metrics(run) -> list:
    """A run's latest value of each metric as MLflow `Metric`s, with their steps and timestamps
    (`run.data.metrics` keeps the values only)."""
    return list(run.data._metric_objs)


def source_type(source) -> str:
    """The type name MLflow records for a dataset source ("http", "local", "code", ...)."""
    return source._get_source_type()


def delete_artifacts(artifact_uri: str, tracking_uri: str, path: str) -> None:
    """Delete the folder `path` of the run whose artifacts are at `artifact_uri`.

    `tracking_uri` resolves `mlflow-artifacts:/` locations against the tracking server. A store
    that cannot delete raises NotImplementedError (or MLflow's or the OS's error)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    get_artifact_repository(artifact_uri, tracking_uri=tracking_uri).delete_artifacts(path)


def system_metrics_monitor(run_id: str, tracking_uri: str, resume: bool):
    """MLflow's system-metrics monitor for `run_id`, not yet started: `start()` samples CPU,
    memory, disk, network (and GPU, with pynvml) into `system/*` metrics on a background thread,
    `finish()` logs the last samples and stops it; `resume` continues the run's steps."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor  # needs psutil

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no lines per run
    return SystemMetricsMonitor(run_id, resume_logging=resume, tracking_uri=tracking_uri)
