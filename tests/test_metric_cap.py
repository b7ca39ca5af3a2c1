"""A run that logged far more points than it has epochs: its history is left out unread and
named, and other runs' histories keep only the epochs they declare."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from benchmarks import storegen
from benchmarks.cli.main import main
from tests.conftest import fresh_uri
from tests.shared_server import answers, free_port, wait_until
from tracking import internals, query

FLAGS = ["--data", "synthetic", "--limit-train", "64", "--limit-test", "32", "--epochs", "3"]


@pytest.fixture(scope="module")
def flooded(tmp_path_factory):
    uri = fresh_uri(tmp_path_factory.mktemp("flood"))
    spec = storegen.StoreSpec(runs=2, epochs=3, entries=("table1/row1",))
    big, small = storegen.generate(uri, "f", spec)
    client = MlflowClient(uri)
    client.log_batch(big, [Metric("test_acc", 50.0, 0, s) for s in range(3, 503)])
    client.log_batch(small, [Metric("test_acc", 99.0, 0, s) for s in (3, 7, -1)])
    return uri, big, small


@pytest.mark.parametrize("bulk", [True, False])
def test_a_run_over_the_cap_is_named_and_left_out(flooded, bulk):
    uri, big, small = flooded
    h = query.metric_histories(
        uri, [big, small], ("test_acc", "lr"), bulk, epochs={big: 3, small: 3}, max_points=100
    )
    assert h.attrs[query.OVER_CAP] == {big: "test_acc"}
    assert set(h["run_id"]) == {small}
    assert h["epoch"].tolist() == [0, 1, 2] and (h["test_acc"] < 99).all()  # declared epochs only


def test_the_report_says_which_curves_it_left_out(flooded, monkeypatch):
    uri, big, small = flooded
    monkeypatch.setattr(query, "MAX_POINTS", 100)
    res = CliRunner().invoke(
        main, ["report", "--tracking-uri", uri, "--experiment", "f", *FLAGS, "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    assert f"more than 100 values of one metric: {big} (test_acc)" in res.output
    assert small not in res.output.split("Curves left out")[1].split("\n")[0]


@pytest.mark.slow
def test_over_http_a_run_over_the_cap_is_asked_for_no_more(flooded, tmp_path, monkeypatch):
    """Through a tracking server's bulk endpoint: the flooded run is asked for at most
    max_points + 1 values, then named and left out."""
    uri, big, small = flooded
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
        + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    asked: list[int] = []
    real = internals.http_metric_values

    def counting(store, run_ids, key, cap):
        got = real(store, run_ids, key, cap)
        asked.append(len(got or []))
        return got

    try:
        wait_until(lambda: answers(url + "/health"), "the MLflow server")
        monkeypatch.setattr(internals, "http_metric_values", counting)
        monkeypatch.setattr(query, "HTTP_CAP", 60)  # answers that fill it: halves asked again
        h = query.metric_histories(
            url, [big, small], ("test_acc",), epochs={big: 3, small: 3}, max_points=100
        )
        assert h.attrs[query.OVER_CAP] == {big: "test_acc"} and set(h["run_id"]) == {small}
        assert max(asked) <= 101
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers
        server.wait(timeout=60)
