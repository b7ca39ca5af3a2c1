"""Reading runs back as plain columns: a search into pandas DataFrames, per-epoch metric histories.

A search (`run_table`) gives one row per run with the columns a caller names, each a tag, param
or metric (`tag`, `param`, `metric`), so MLflow's `tags.`/`params.`/`metrics.` layout stays here.
Histories are read in bulk: from a database store, every key of many runs in one query on MLflow's
own metrics table (what its `get_metric_history_bulk` runs); over HTTP, the `get-history-bulk`
endpoint the MLflow UI's charts use (one request per key and 100 runs); from other stores, one
`get_metric_history` per run and key. A run holding more values of a key than any run could log
(`MAX_POINTS`) is left out and named, unread where the store can count first, so one run with
millions of points cannot make a report slow or big. Reading never creates a store: a missing
SQLite file or experiment is an error, not an empty database left behind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tracking import internals
from tracking.store import TrackingError, check_server, client, resolve_uri, sqlite_path

PAGE = 10_000  # runs per search request (MLflow's own page for a DataFrame)
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own tag holding a run's name


def _check_exists(uri: str) -> None:
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"no tracking store at {db.resolve()}: run `resbench reproduce` (or `resbench run`) "
            f"here first, or point --tracking-uri at an existing store"
        )


def _client(uri: str) -> MlflowClient:
    """A client of the store at `uri`; one that cannot be opened (a file that is no database, a
    server that does not answer as MLflow's /health does) is a TrackingError."""
    check_server(uri)
    try:
        return client(uri)
    except Exception as e:  # drivers' and SQL errors alike: this store cannot be read
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise TrackingError(
            f"tracking store {uri} cannot be read: {type(e).__name__}: {first}"
        ) from None


@dataclass(frozen=True)
class Field:
    """One value a run may have recorded, by its MLflow name: a tag, a param or a metric."""

    kind: str  # "tags" | "params" | "metrics"
    name: str


def tag(name: str) -> Field:
    return Field("tags", name)


def param(name: str) -> Field:
    return Field("params", name)


def metric(name: str) -> Field:
    return Field("metrics", name)


def glob_filter(key: str, pattern: str) -> str | None:
    """An MLflow filter string for tag `key` matching glob `pattern` ('*', '?'); None when it cannot
    be written (a quote in it). LIKE's own wildcards in the pattern widen the match: filter the
    answer again."""
    if "'" in pattern or '"' in pattern:
        return None
    like = pattern.replace("*", "%").replace("?", "_")
    return f"tags.\"{key}\" {'LIKE' if like != pattern else '='} '{like}'"


def _search(reader: MlflowClient, experiment_id: str, filter_string: str) -> list:
    """The active runs of `experiment_id` that match `filter_string`, newest first, page by page."""
    found, token = [], None
    while True:
        page = reader.search_runs(
            [experiment_id],
            filter_string,
            ViewType.ACTIVE_ONLY,
            PAGE,
            ["attributes.start_time DESC"],
            token,
        )
        found += page
        token = page.token
        if not token:
            return found


def _runs(uri: str | None, experiment: str, filters: list[str]) -> list:
    """The runs of `experiment` matching any of `filters` (MLflow filter strings; every run for
    []), each once, newest first."""
    uri = resolve_uri(uri)
    _check_exists(uri)
    reader = _client(uri)
    try:
        exp = reader.get_experiment_by_name(experiment)
        if exp is None:
            known = [e.name for e in reader.search_experiments()]
            raise TrackingError(
                f"no experiment {experiment!r} in {uri} (experiments: {', '.join(known) or 'none'})"
            )
        found = {}
        for one in dict.fromkeys(filters or [""]):  # MLflow's filters have no OR: one search each
            found |= {r.info.run_id: r for r in _search(reader, exp.experiment_id, one)}
    except MlflowException as e:
        raise TrackingError(f"tracking store {uri}: {e.message.splitlines()[0]}") from None
    return sorted(found.values(), key=lambda r: r.info.start_time or 0, reverse=True)


def _value(run, field: Field):
    if field.kind == "tags":
        return run.data.tags.get(field.name)
    if field.kind == "params":
        return run.data.params.get(field.name)
    if field.kind == "metrics":
        return run.data.metrics.get(field.name, np.nan)
    raise ValueError(f"{field.kind!r}: not a kind of run field (tags, params, metrics)")


def run_table(
    uri: str | None, experiment: str, columns: Mapping[str, Field], filters: list[str]
) -> pd.DataFrame:
    """The runs matching any of `filters` (all runs for []), newest first, with plain columns:
    run_id, run_name, status, experiment_id, start_time and one per item of `columns` (None
    where a run did not record it; metrics as numbers, NaN where missing)."""
    return _table(_runs(uri, experiment, filters), columns)


def _table(found: list, columns: Mapping[str, Field]) -> pd.DataFrame:
    start = pd.Series([r.info.start_time for r in found], dtype="Int64")
    table = {
        "run_id": [r.info.run_id for r in found],
        "run_name": [r.data.tags.get(RUN_NAME_TAG) for r in found],
        "status": [r.info.status for r in found],
        "experiment_id": [r.info.experiment_id for r in found],
        "start_time": pd.to_datetime(start, unit="ms", utc=True),
    }
    for name, field in columns.items():
        values = [_value(r, field) for r in found]
        table[name] = pd.Series(values, dtype=float if field.kind == "metrics" else object)
    return pd.DataFrame(table, index=pd.RangeIndex(len(found)))


# MLflow's own limits on the HTTP endpoint: run ids per request, values per answer.
HTTP_RUNS, HTTP_CAP = 100, 25_000
HTTP_THREADS = 4  # requests in flight at once
SQL_RUNS = 500  # run ids per query, well under SQLite's bound-parameter limit
Value = internals.Value  # run_id, key, step, value
# values of one key one run may hold before its history is left out unread: an entry trains for
# at most a few hundred epochs, and a resumed run may log a step twice
MAX_POINTS = 10_000
OVER_CAP = "over_cap"  # the attrs key naming the runs left out


def _one_by_one(reader: MlflowClient, run_ids: list[str], keys: tuple[str, ...]) -> list[Value]:
    return [
        (run_id, key, m.step, m.value)
        for run_id in run_ids
        for key in keys
        for m in reader.get_metric_history(run_id, key)
    ]


def _http_all(
    store, reader: MlflowClient, run_ids: list[str], key: str, max_points: int
) -> list[Value]:
    """`key` for `run_ids` over HTTP: an answer that fills the cap may be cut short, so halves are
    asked for again, down to one run, of which at most `max_points` + 1 values are asked for."""
    one = len(run_ids) == 1
    got = internals.http_metric_values(store, run_ids, key, max_points + 1 if one else HTTP_CAP)
    if got is None:
        return _one_by_one(reader, run_ids, (key,))
    if one or len(got) < HTTP_CAP:
        return got
    half = len(run_ids) // 2
    return _http_all(store, reader, run_ids[:half], key, max_points) + _http_all(
        store, reader, run_ids[half:], key, max_points
    )


def _values(
    uri: str, run_ids: list[str], keys: tuple[str, ...], bulk: bool, max_points: int
) -> tuple[list[Value], dict[str, str]]:
    """(run_id, key, step, value) for `run_ids`, each run's values of a key in the order they were
    logged, and the runs holding more than `max_points` values of a key (run id: key). A database
    store counts first and leaves those runs unread; a server answers at most `max_points` + 1
    values of one run and key."""
    reader = _client(uri)
    store = internals.store(uri) if bulk else None
    over = {}
    if store is not None and internals.is_sql(store):
        counts = internals.sql_metric_counts(store, run_ids, keys, SQL_RUNS)
        over = {run_id: key for (run_id, key), n in counts.items() if n > max_points}
        kept = [i for i in run_ids if i not in over]
        values = internals.sql_metric_values(store, kept, keys, SQL_RUNS) if kept else []
    elif store is not None and internals.is_rest(store):
        # the server answers a few requests at once: its time dominates
        asks = [
            (run_ids[i : i + HTTP_RUNS], key)
            for key in keys
            for i in range(0, len(run_ids), HTTP_RUNS)
        ]
        with ThreadPoolExecutor(HTTP_THREADS) as pool:
            answers = pool.map(lambda ask: _http_all(store, reader, *ask, max_points), asks)
            values = [v for answer in answers for v in answer]
    else:
        values = _one_by_one(reader, run_ids, keys)
    counts = Counter((run_id, key) for run_id, key, _, _ in values)
    over |= {run_id: key for (run_id, key), n in counts.items() if n > max_points}
    return [v for v in values if v[0] not in over], over


def metric_histories(
    uri: str | None,
    run_ids: list[str],
    keys: tuple[str, ...],
    bulk: bool = True,
    epochs: Mapping[str, int] | None = None,
    max_points: int | None = None,
) -> pd.DataFrame:
    """Per-step values of `keys` for each run: columns run_id, epoch (the step) and one per key.

    `bulk=False` asks one run and key at a time (the reference the bulk read is tested against).
    A step logged twice keeps its last value, in the order MLflow returns them (timestamp, then
    value). With `epochs` (run id: the epochs it declares), steps outside 0..epochs-1 are left
    out. A run holding more than `max_points` (default MAX_POINTS) values of a key has no history
    here: it is named in the result's `attrs[OVER_CAP]` (run id: key) instead.
    """
    uri = resolve_uri(uri)
    run_ids = list(dict.fromkeys(run_ids))
    cap = max_points or MAX_POINTS
    try:
        values, over = (
            _values(uri, run_ids, tuple(keys), bulk, cap) if run_ids and keys else ([], {})
        )
    except MlflowException as e:
        raise TrackingError(f"reading metric histories: {e.message.splitlines()[0]}") from None
    long = pd.DataFrame(values, columns=["run_id", "key", "epoch", "value"])
    if epochs is not None:
        declared = long["run_id"].map(epochs)
        long = long[(long["epoch"] >= 0) & ((long["epoch"] < declared) | declared.isna())]
    if not len(long):
        empty = pd.DataFrame(columns=["run_id", "epoch", *keys])
        empty.attrs[OVER_CAP] = over
        return empty
    wide = long.pivot_table(
        index=["run_id", "epoch"], columns="key", values="value", aggfunc="last"
    ).reset_index()
    wide.columns.name = None
    wide = wide.reindex(columns=["run_id", "epoch", *keys])
    wide.attrs[OVER_CAP] = over
    return wide
