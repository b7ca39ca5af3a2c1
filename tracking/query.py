"""Reading runs back: a search into a pandas DataFrame and per-epoch metric histories.

The search is MLflow's own `mlflow.search_runs` (columns `run_id`, `status`, `start_time`,
`params.*`, `metrics.*`, `tags.*`), narrowed by MLflow filter strings. Histories are read in
bulk: from a database store, every key of many runs in one query on MLflow's own metrics table
(what its `get_metric_history_bulk` runs); over HTTP, the `get-history-bulk` endpoint the MLflow
UI's charts use (one request per key and 100 runs); from other stores, one `get_metric_history`
per run and key. Reading never creates a store: a missing SQLite file or experiment is an error,
not an empty database left behind.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _get_store, _use_tracking_uri

from tracking.store import TrackingError, resolve_uri, sqlite_path


def _check_exists(uri: str) -> None:
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"no tracking store at {db.resolve()}: run `resbench reproduce` (or `resbench run`) "
            f"here first, or point --tracking-uri at an existing store"
        )


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
    """A client of the store at `uri`; one that cannot be opened (a file that is no database) is a
    TrackingError."""
    try:
        return MlflowClient(uri)
    except Exception as e:  # drivers' and SQL errors alike: this store cannot be read
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise TrackingError(
            f"tracking store {uri} cannot be read: {type(e).__name__}: {first}"
        ) from None


def search_runs(uri: str | None, experiment: str, filter_string: str = "") -> pd.DataFrame:
    """Every run of `experiment` (all statuses, newest first) as one DataFrame row each."""
    uri = resolve_uri(uri)
    _check_exists(uri)
    client = _client(uri)
    try:
        if client.get_experiment_by_name(experiment) is None:
            known = [e.name for e in client.search_experiments()]
            raise TrackingError(
                f"no experiment {experiment!r} in {uri} (experiments: {', '.join(known) or 'none'})"
            )
        with _using(uri):
            return mlflow.search_runs(
                experiment_names=[experiment],
                filter_string=filter_string,
                order_by=["attributes.start_time DESC"],
                output_format="pandas",
            )
    except MlflowException as e:
        raise TrackingError(f"tracking store {uri}: {e.message.splitlines()[0]}") from None


def glob_filter(key: str, pattern: str) -> str | None:
    """An MLflow filter string for tag `key` matching glob `pattern` ('*', '?'); None when it cannot
    be written (a quote in it). LIKE's own wildcards in the pattern widen the match: filter the
    answer again."""
    if "'" in pattern or '"' in pattern:
        return None
    like = pattern.replace("*", "%").replace("?", "_")
    return f"tags.\"{key}\" {'LIKE' if like != pattern else '='} '{like}'"


def search_any(uri: str | None, experiment: str, filters: list[str]) -> pd.DataFrame:
    """The runs matching any of `filters` (MLflow filter strings; it has no OR), each once, newest
    first."""
    found = [search_runs(uri, experiment, f) for f in dict.fromkeys(filters)] or [
        search_runs(uri, experiment)
    ]
    hits = [df for df in found if len(df)]
    if len(hits) <= 1:
        return (hits or found)[0]
    both = pd.concat(hits, ignore_index=True).drop_duplicates("run_id")
    return both.sort_values("start_time", ascending=False, kind="stable").reset_index(drop=True)


# MLflow's own limits on the HTTP endpoint: run ids per request, values per answer.
HTTP_RUNS, HTTP_CAP = 100, 25_000
HTTP_THREADS = 4  # requests in flight at once
HISTORY_BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
SQL_RUNS = 500  # run ids per query, well under SQLite's bound-parameter limit
Value = tuple[str, str, int, float]  # run_id, key, step, value


def _one_by_one(client: MlflowClient, run_ids: list[str], keys: tuple[str, ...]) -> list[Value]:
    return [
        (run_id, key, m.step, m.value)
        for run_id in run_ids
        for key in keys
        for m in client.get_metric_history(run_id, key)
    ]


def _sql(store, run_ids: list[str], keys: tuple[str, ...]) -> list[Value]:
    """Every key of many runs in one query on the store's own session and table, as plain rows.

    What `get_metric_history_bulk` runs, less its ORM objects: building one per value costs tens
    of times the query itself, seconds for a thousand runs. Each run's values of a key come in
    get_metric_history's order (timestamp, step, value); NaN is stored as a flag, as MLflow reads
    it.
    """
    from mlflow.entities.entity_type import EntityAssociationType
    from mlflow.store.tracking.dbmodels.models import SqlMetric as M

    out = []
    with store.ManagedSessionMaker() as session:
        for i in range(0, len(run_ids), SQL_RUNS):
            ids = store._filter_entity_ids(
                session, EntityAssociationType.RUN, run_ids[i : i + SQL_RUNS]
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


def _http(store, run_ids: list[str], key: str) -> list[Value] | None:
    """The UI's bulk endpoint, with the store's credentials; None when the server has no such
    endpoint."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(
        store.get_host_creds(),
        HISTORY_BULK,
        "GET",
        params={"run_id": run_ids, "metric_key": key, "max_results": HTTP_CAP},
    )
    if response.status_code == 404:
        return None
    verify_rest_response(response, HISTORY_BULK)
    return [
        (m["run_id"], key, int(m.get("step", 0)), float(m["value"]))
        for m in response.json().get("metrics", [])
    ]


def _http_all(store, client: MlflowClient, run_ids: list[str], key: str) -> list[Value]:
    """`key` for `run_ids` over HTTP in full: an answer that fills the cap may be cut short, so
    halves are asked for again, down to one run read page by page."""
    got = _http(store, run_ids, key)
    if got is None or (len(got) >= HTTP_CAP and len(run_ids) == 1):
        return _one_by_one(client, run_ids, (key,))
    if len(got) < HTTP_CAP:
        return got
    half = len(run_ids) // 2
    return _http_all(store, client, run_ids[:half], key) + _http_all(
        store, client, run_ids[half:], key
    )


def _values(uri: str, run_ids: list[str], keys: tuple[str, ...], bulk: bool) -> list[Value]:
    """(run_id, key, step, value) for `run_ids`, each run's values of a key in the order they were
    logged."""
    from mlflow.store.tracking.rest_store import RestStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    client = MlflowClient(uri)
    store = _get_store(uri) if bulk else None
    if isinstance(store, SqlAlchemyStore):
        return _sql(store, run_ids, keys)
    if isinstance(
        store, RestStore
    ):  # the server answers a few requests at once: its time dominates
        asks = [
            (run_ids[i : i + HTTP_RUNS], key)
            for key in keys
            for i in range(0, len(run_ids), HTTP_RUNS)
        ]
        with ThreadPoolExecutor(HTTP_THREADS) as pool:
            answers = pool.map(lambda ask: _http_all(store, client, *ask), asks)
            return [v for answer in answers for v in answer]
    return _one_by_one(client, run_ids, keys)


def metric_histories(
    uri: str | None, run_ids: list[str], keys: tuple[str, ...], bulk: bool = True
) -> pd.DataFrame:
    """Per-step values of `keys` for each run: columns run_id, epoch (the step) and one per key.

    `bulk=False` asks one run and key at a time (the reference the bulk read is tested against).
    A step logged twice keeps its last value, in the order MLflow returns them (timestamp, then
    value).
    """
    uri = resolve_uri(uri)
    run_ids = list(dict.fromkeys(run_ids))
    try:
        values = _values(uri, run_ids, tuple(keys), bulk) if run_ids and keys else []
    except MlflowException as e:
        raise TrackingError(f"reading metric histories: {e.message.splitlines()[0]}") from None
    if not values:
        return pd.DataFrame(columns=["run_id", "epoch", *keys])
    long = pd.DataFrame(values, columns=["run_id", "key", "epoch", "value"])
    wide = long.pivot_table(
        index=["run_id", "epoch"], columns="key", values="value", aggfunc="last"
    ).reset_index()
    wide.columns.name = None
    return wide.reindex(columns=["run_id", "epoch", *keys])
