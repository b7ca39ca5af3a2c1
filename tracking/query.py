"""Reading runs back: a search into a pandas DataFrame and per-epoch metric histories.

The search is MLflow's own `mlflow.search_runs` (columns `run_id`, `status`, `start_time`,
`params.*`, `metrics.*`, `tags.*`); histories come from `MlflowClient.get_metric_history`.
Reading never creates a store: a missing SQLite file or experiment is an error, not an
empty database left behind.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from tracking.store import TrackingError, resolve_uri, sqlite_path


def _check_exists(uri: str) -> None:
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(f"no tracking store at {db.resolve()}: run `resbench reproduce` (or `resbench run`) "
                            f"here first, or point --tracking-uri at an existing store")


@contextmanager
def _using(uri: str):
    """mlflow.search_runs reads the global tracking URI; set it for this call only."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:  # MLflow mirrors the global into the environment; put the user's value back
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env


def _client(uri: str) -> MlflowClient:
    """A client of the store at `uri`; one that cannot be opened (a file that is no database) is a TrackingError."""
    try:
        return MlflowClient(uri)
    except Exception as e:  # drivers' and SQL errors alike: this store cannot be read
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise TrackingError(f"tracking store {uri} cannot be read: {type(e).__name__}: {first}") from None


def search_runs(uri: str | None, experiment: str, filter_string: str = "") -> pd.DataFrame:
    """Every run of `experiment` (all statuses, newest first) as one DataFrame row each."""
    uri = resolve_uri(uri)
    _check_exists(uri)
    client = _client(uri)
    try:
        if client.get_experiment_by_name(experiment) is None:
            known = [e.name for e in client.search_experiments()]
            raise TrackingError(f"no experiment {experiment!r} in {uri} (experiments: {', '.join(known) or 'none'})")
        with _using(uri):
            return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string,
                                      order_by=["attributes.start_time DESC"], output_format="pandas")
    except MlflowException as e:
        raise TrackingError(f"tracking store {uri}: {e.message.splitlines()[0]}") from None


def metric_histories(uri: str | None, run_ids: list[str], keys: tuple[str, ...]) -> pd.DataFrame:
    """Per-step values of `keys` for each run: columns run_id, epoch (the step) and one per key."""
    client = MlflowClient(resolve_uri(uri))
    rows = []
    try:
        for run_id in run_ids:
            for key in keys:
                rows += [{"run_id": run_id, "epoch": m.step, "key": key, "value": m.value}
                         for m in client.get_metric_history(run_id, key)]
    except MlflowException as e:
        raise TrackingError(f"reading metric histories: {e.message.splitlines()[0]}") from None
    if not rows:
        return pd.DataFrame(columns=["run_id", "epoch", *keys])
    wide = (pd.DataFrame(rows).pivot_table(index=["run_id", "epoch"], columns="key", values="value", aggfunc="last")
            .reset_index())
    wide.columns.name = None
    return wide.reindex(columns=["run_id", "epoch", *keys])
