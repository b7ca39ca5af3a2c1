"""The contract of tracking/internals.py with the installed MLflow: each private or internal API it
uses still exists and behaves as used. An MLflow upgrade that changes one fails here, by name."""

from __future__ import annotations

import inspect
import math
import time

import pytest
from mlflow.entities import Metric

from tracking import internals
from tracking.store import client
from tracking.tracker import connect


@pytest.fixture
def tracker(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a SQLite store's artifacts go to ./mlruns
    return connect(store, "internals")


def _run_with_metrics(tracker, history: list[dict[str, float]]) -> str:
    with tracker.start_run("r", {}, {}) as run:
        run.log_epochs(history, timestamp_ms=1_700_000_000_000)
    return run.run_id


def test_the_store_behind_a_uri_is_told_apart(store):
    sql = internals.store(store)
    assert internals.is_sql(sql) and not internals.is_rest(sql)
    rest = internals.store("http://127.0.0.1:1")  # built without a connection
    assert internals.is_rest(rest) and not internals.is_sql(rest)
    assert callable(rest.get_host_creds) and rest.get_host_creds().host == "http://127.0.0.1:1"


def test_sql_metric_values_are_what_get_metric_history_returns(tracker):
    first = _run_with_metrics(tracker, [{"a": 1.0, "b": 2.0}, {"a": float("nan"), "b": 3.0}])
    second = _run_with_metrics(tracker, [{"a": 5.0}])
    reader = client(tracker.uri)
    ids = [first, second]
    for per_query in (1, 500):  # one query per run, and both in one
        got = internals.sql_metric_values(internals.store(tracker.uri), ids, ("a", "b"), per_query)
        got = sorted(got, key=lambda v: v[:2])  # each run's values of a key stay in their order
        expected = [
            (run_id, key, m.step, m.value)
            for run_id in sorted(ids)
            for key in ("a", "b")
            for m in reader.get_metric_history(run_id, key)
        ]
        assert len(got) == len(expected) == 5
        for g, e in zip(got, expected, strict=True):
            assert g[:3] == e[:3] and (g[3] == e[3] or math.isnan(g[3]) and math.isnan(e[3]))


def test_the_bulk_history_endpoint_is_served_and_called_as_used():
    from mlflow.server import app
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    rules = {r.rule: r.methods for r in app.url_map.iter_rules()}
    assert "GET" in rules[internals.HISTORY_BULK]
    asked = inspect.signature(http_request).parameters
    assert list(asked)[:3] == ["host_creds", "endpoint", "method"] and "kwargs" in asked
    assert list(inspect.signature(verify_rest_response).parameters)[:2] == ["response", "endpoint"]


def test_latest_metrics_carry_their_steps_and_timestamps(tracker):
    run_id = _run_with_metrics(tracker, [{"a": 1.0}, {"a": 4.0}])
    latest = internals.latest_metrics(client(tracker.uri).get_run(run_id))
    assert all(isinstance(m, Metric) for m in latest)
    assert [(m.key, m.value, m.step, m.timestamp) for m in latest] == [
        ("a", 4.0, 1, 1_700_000_000_001)
    ]


def test_dataset_source_types():
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.sources import LocalArtifactDatasetSource

    assert internals.source_type(HTTPDatasetSource("https://example.org/x.tar.gz")) == "http"
    assert internals.source_type(LocalArtifactDatasetSource("/data")) == "local"
    assert internals.source_type(CodeDatasetSource({"generator": "synthetic"})) == "code"


def test_delete_artifacts_removes_one_folder(tracker, tmp_path):
    (tmp_path / "keep.txt").write_text("k")
    (tmp_path / "gone.txt").write_text("g")
    with tracker.start_run("r", {}, {}) as run:
        run.log_artifact(tmp_path / "keep.txt")
        run.log_artifact(tmp_path / "gone.txt", "folder")
    reader = client(tracker.uri)
    artifact_uri = reader.get_run(run.run_id).info.artifact_uri
    internals.delete_artifacts(artifact_uri, tracker.uri, "folder")
    assert [a.path for a in reader.list_artifacts(run.run_id)] == ["keep.txt"]


def test_system_metrics_monitor_logs_and_resumes_its_steps(tracker, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    key = "system/cpu_utilization_percentage"
    with tracker.start_run("r", {}, {}) as run:
        steps = []
        for resume in (False, True):  # the second monitor continues the first one's steps
            monitor = internals.system_metrics_monitor(run.run_id, tracker.uri, resume)
            monitor.start()
            time.sleep(0.8)
            monitor.finish()
            steps.append(sorted(run.logged_steps(key)))
    first, both = steps
    assert first and both[: len(first)] == first and len(both) > len(first)
    assert len(set(both)) == len(both)  # no step logged twice
