"""Passwords inside tracking URIs are shown nowhere: errors, logs, child command lines and spec
files.

The report and run links over a real server are checked in tests/test_ray_security.py (the URI
canary); here, the one helper (tracking.credentials.redact) and each place a URI is shown or
handed on.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from click.testing import CliRunner

from benchmarks.cli.main import main
from benchmarks.jobs import local
from benchmarks.jobs.executor import ExecutorConfig
from benchmarks.jobs.spec import JobSpec
from tracking import ui
from tracking.credentials import redact
from tracking.store import TrackingError
from tracking.tracker import connect

SECRET = "s3cret-Pa55"


@pytest.mark.parametrize(
    "uri, shown",
    [
        (
            f"postgresql://mlflow:{SECRET}@db.lab:5432/mlflow",
            "postgresql://mlflow:***@db.lab:5432/mlflow",
        ),
        (
            f"postgresql+psycopg2://mlflow:{SECRET}@db/mlflow",
            "postgresql+psycopg2://mlflow:***@db/mlflow",
        ),
        (f"http://alice:{SECRET}@mlflow.lab:5000", "http://alice:***@mlflow.lab:5000"),
        (
            f"https://alice:{SECRET}:x@y@mlflow.lab/",
            "https://alice:***@mlflow.lab/",
        ),  # : and @ typed in it
        (
            f"postgresql://db/mlflow?sslmode=require&password={SECRET}",
            "postgresql://db/mlflow?sslmode=require&password=***",
        ),
        (
            "postgresql+psycopg2://mlflow@localhost/mlflow",
            "postgresql+psycopg2://mlflow@localhost/mlflow",
        ),  # no password
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        # user names with an @ in them (an e-mail; Azure's user@server logins): the userinfo runs
        # to the authority's last @
        (f"http://alice@lab.org:{SECRET}@mlflow.lab", "http://alice@lab.org:***@mlflow.lab"),
        (
            f"postgresql://mlflow@server:{SECRET}@server.postgres.example/mlflow",
            "postgresql://mlflow@server:***@server.postgres.example/mlflow",
        ),
        (
            f"https://alice@lab.org:{SECRET}@mlflow.lab/#/experiments/1/runs/abc",
            "https://alice@lab.org:***@mlflow.lab/#/experiments/1/runs/abc",
        ),
        (f"postgresql://u:{SECRET}/x@db/m", "postgresql://u:***@db/m"),  # a / in it (SQLAlchemy)
        ("http://alice@lab.org@mlflow.lab:5000/", "http://alice@lab.org@mlflow.lab:5000/"),
        # query parameters, whatever their case
        (f"postgresql://db/m?PASSWORD={SECRET}", "postgresql://db/m?PASSWORD=***"),
        (
            f"postgresql://db/m?sslmode=require&Token={SECRET}",
            "postgresql://db/m?sslmode=require&Token=***",
        ),
        (f"http://h/api?Access_Token={SECRET}#x", "http://h/api?Access_Token=***#x"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        (
            f"error: cannot reach http://a:{SECRET}@h:1 or sqlite:///m.db",
            "error: cannot reach http://a:***@h:1 or sqlite:///m.db",
        ),
    ],
)
def test_redact_masks_the_password_and_keeps_the_rest(uri, shown):
    assert redact(uri) == shown


def test_a_store_error_never_quotes_the_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrackingError) as err:
        connect(f"http://alice:{SECRET}@127.0.0.1:1", "x")
    assert SECRET not in str(err.value) and "http://alice:***@127.0.0.1:1" in str(err.value)
    with pytest.raises(TrackingError) as err:  # a database driver's own message
        connect(f"postgresql://alice:{SECRET}@127.0.0.1:1/none", "x")
    assert SECRET not in str(err.value)

    res = CliRunner().invoke(
        main, ["report", "--tracking-uri", f"postgresql://alice:{SECRET}@127.0.0.1:1/none"]
    )
    assert res.exit_code == 2 and SECRET not in res.output
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: ") and "postgresql://alice:***@127.0.0.1:1/none" in line


def test_children_get_the_uri_through_their_environment_not_their_command_line_or_spec_file(
    tmp_path,
):
    """What `ps` shows (the argv) and the spec file on disk hold the URI masked; the child's
    environment, which only its user can read, holds it whole, and the child trains with that
    one."""
    uri = f"postgresql://alice:{SECRET}@db.lab/mlflow"
    probe = (
        "import json, os, sys; spec = json.load(open(sys.argv[1]));"
        "print(json.dumps({'argv': sys.argv, 'spec': spec, 'env': os.environ.get(sys.argv[2])}))"
    )
    seen: list[str] = []
    failed = local.run_children(
        ExecutorConfig(jobs=1),
        [JobSpec(entry="table1/row1", tracking_uri=uri)],
        seen.append,
        lambda path: [sys.executable, "-c", probe, str(path), local.URI_ENV],
    )
    assert failed == []
    got = json.loads(seen[-1].split("] ", 1)[1])
    assert SECRET not in " ".join(got["argv"]) and SECRET not in json.dumps(got["spec"])
    assert (
        got["spec"]["tracking_uri"] == "postgresql://alice:***@db.lab/mlflow" and got["env"] == uri
    )


def test_a_child_trains_against_the_uri_in_its_environment(tmp_path, monkeypatch):
    """`python -m benchmarks.jobs SPEC.json` takes the store from $RESBENCH_JOB_TRACKING_URI over
    the spec's."""
    from benchmarks.jobs.__main__ import main as child_main

    spec = JobSpec(entry="table1/row1", tracking_uri="sqlite:///masked-in-the-file.db")
    (tmp_path / "spec.json").write_text(spec.to_json())
    used = []
    monkeypatch.setattr(
        "benchmarks.jobs.__main__.train_job", lambda s: used.append(s.tracking_uri) or "id"
    )
    monkeypatch.setenv(local.URI_ENV, f"sqlite:///{tmp_path}/real.db")
    assert child_main([str(tmp_path / "spec.json")]) == 0
    assert used == [f"sqlite:///{tmp_path}/real.db"]


def test_a_job_spec_never_shows_its_uri():
    spec = JobSpec(entry="table1/row1", tracking_uri=f"http://alice:{SECRET}@h")
    assert SECRET not in repr(spec) and SECRET not in str(spec)


@pytest.mark.parametrize(
    "uri",
    [f"postgresql://alice:{SECRET}@db.lab/mlflow", f"postgresql://alice@srv:{SECRET}@db.lab/m"],
)
def test_the_ui_server_takes_a_database_password_from_its_environment(uri):
    cmd = ui.server_command(uri, "127.0.0.1", 5001)
    assert SECRET not in " ".join(cmd) and "--backend-store-uri" not in cmd
    assert ui.server_env(uri) == {"MLFLOW_BACKEND_STORE_URI": uri}
    assert ui.server_env("postgresql://alice@db.lab/mlflow") == {}
    assert "--backend-store-uri" in ui.server_command(
        "postgresql://alice@db.lab/mlflow", "127.0.0.1", 5001
    )


def test_a_failed_runs_tag_masks_the_password(tmp_path):
    from tests.conftest import fresh_uri
    from tracking import names

    tracker = connect(fresh_uri(tmp_path), "x")
    run = tracker.start_run("r", {}, {})
    with pytest.raises(RuntimeError), run:
        raise RuntimeError(f"lost postgresql://u:{SECRET}@db/x")
    assert (
        tracker.client.get_run(run.run_id).data.tags[names.TAG_FAILURE]
        == "RuntimeError: lost postgresql://u:***@db/x"
    )
    assert os.environ.get(local.URI_ENV) is None
