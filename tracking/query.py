"""Reading runs back: a search into a pandas DataFrame and per-epoch metric histories.

The search is MLflow's own `mlflow.search_runs` (columns `run_id`, `status`, `start_time`,
`params.*`, `metrics.*`, `tags.*`), narrowed by MLflow filter strings. Histories are read in
bulk, one request per metric key for many runs: a database store's `get_metric_history_bulk`
(one SQL query), or over HTTP the `get-history-bulk` endpoint the MLflow UI's charts use
(100 runs a request); other stores, one `get_metric_history` per run and key. Reading never
creates a store: a missing SQLite file or experiment is an error, not an empty database left behind.
"""
from __future__ import annotations

import os
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


def glob_filter(key: str, pattern: str) -> str | None:
    """An MLflow filter string for tag `key` matching glob `pattern` ('*', '?'); None when it cannot be
    written (a quote in it). LIKE's own wildcards in the pattern widen the match: filter the answer again."""
    if "'" in pattern or '"' in pattern:
        return None
    like = pattern.replace("*", "%").replace("?", "_")
    return f"tags.\"{key}\" {'LIKE' if like != pattern else '='} '{like}'"


def search_any(uri: str | None, experiment: str, filters: list[str]) -> pd.DataFrame:
    """The runs matching any of `filters` (MLflow filter strings; it has no OR), each once, newest first."""
    found = [search_runs(uri, experiment, f) for f in dict.fromkeys(filters)] or [search_runs(uri, experiment)]
    hits = [df for df in found if len(df)]
    if len(hits) <= 1:
        return (hits or found)[0]
    both = pd.concat(hits, ignore_index=True).drop_duplicates("run_id")
    return both.sort_values("start_time", ascending=False, kind="stable").reset_index(drop=True)


# MLflow's own limits on the HTTP endpoint: run ids per request, values per answer.
HTTP_RUNS, HTTP_CAP = 100, 25_000
HISTORY_BULK = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
SQL_RUNS, SQL_CAP = 500, 1_000_000  # well under SQLite's bound-parameter limit; a cap that is never reached


def _one_by_one(client: MlflowClient, run_ids: list[str], key: str) -> list[tuple[str, int, float]]:
    return [(run_id, m.step, m.value) for run_id in run_ids for m in client.get_metric_history(run_id, key)]


def _sql(store, run_ids: list[str], key: str, cap: int) -> list[tuple[str, int, float]]:
    return [(m.run_id, m.step, m.value) for m in store.get_metric_history_bulk(run_ids, key, cap)]


def _http(store, run_ids: list[str], key: str, cap: int) -> list[tuple[str, int, float]] | None:
    """The UI's bulk endpoint, with the store's credentials; None when the server has no such endpoint."""
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    response = http_request(store.get_host_creds(), HISTORY_BULK, "GET",
                            params={"run_id": run_ids, "metric_key": key, "max_results": cap})
    if response.status_code == 404:
        return None
    verify_rest_response(response, HISTORY_BULK)
    return [(m["run_id"], int(m.get("step", 0)), float(m["value"])) for m in response.json().get("metrics", [])]


def _capped(fetch, client, run_ids: list[str], key: str, cap: int) -> list[tuple[str, int, float]]:
    """fetch(run_ids) in full: an answer that fills the cap may be cut short, so ask for halves again."""
    got = fetch(run_ids, key, cap)
    if got is None or len(got) < cap:
        return got
    if len(run_ids) == 1:
        return _one_by_one(client, run_ids, key)
    half = len(run_ids) // 2
    return _capped(fetch, client, run_ids[:half], key, cap) + _capped(fetch, client, run_ids[half:], key, cap)


def _values(uri: str, run_ids: list[str], key: str, bulk: bool) -> list[tuple[str, int, float]]:
    """(run_id, step, value) of `key` for `run_ids`, each run's values in the order they were logged."""
    client = MlflowClient(uri)
    store = _get_store(uri) if bulk else None
    if hasattr(store, "get_metric_history_bulk"):  # a database: as the server's own handler decides
        fetch, size, cap = (lambda ids, k, c: _sql(store, ids, k, c)), SQL_RUNS, SQL_CAP
    elif hasattr(store, "get_host_creds") and uri.startswith(("http://", "https://")):
        fetch, size, cap = (lambda ids, k, c: _http(store, ids, k, c)), HTTP_RUNS, HTTP_CAP
    else:
        return _one_by_one(client, run_ids, key)
    out = []
    for i in range(0, len(run_ids), size):
        chunk = run_ids[i:i + size]
        got = _capped(fetch, client, chunk, key, cap)
        out += _one_by_one(client, chunk, key) if got is None else got
    return out


def metric_histories(uri: str | None, run_ids: list[str], keys: tuple[str, ...], bulk: bool = True) -> pd.DataFrame:
    """Per-step values of `keys` for each run: columns run_id, epoch (the step) and one per key.

    `bulk=False` asks one run and key at a time (the reference the bulk read is tested against).
    A step logged twice keeps its last value, in the order MLflow returns them (timestamp, then value).
    """
    uri = resolve_uri(uri)
    run_ids = list(dict.fromkeys(run_ids))
    cols: dict[str, list] = {"run_id": [], "epoch": [], "key": [], "value": []}
    try:
        for key in keys:
            values = _values(uri, run_ids, key, bulk) if run_ids else []
            for name, column in zip(("run_id", "epoch", "value"), zip(*values) if values else ((), (), ())):
                cols[name] += column
            cols["key"] += [key] * len(values)
    except MlflowException as e:
        raise TrackingError(f"reading metric histories: {e.message.splitlines()[0]}") from None
    if not cols["run_id"]:
        return pd.DataFrame(columns=["run_id", "epoch", *keys])
    wide = (pd.DataFrame(cols).pivot_table(index=["run_id", "epoch"], columns="key", values="value", aggfunc="last")
            .reset_index())
    wide.columns.name = None
    return wide.reindex(columns=["run_id", "epoch", *keys])
