"""The shared-server setup the README documents: `mlflow server --app-name basic-auth` on PostgreSQL.

A throwaway PostgreSQL cluster and tracking server per module: concurrent writers lose no
metric point, a run's artifacts go through the server (workers need no shared filesystem),
and a writer without credentials is refused with one clear line.
"""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient

from benchmarks.cli import main
from tracking import TrackingError, connect, names

_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
PG_BIN = Path(_BIN[-1]).parent if _BIN[-1] else None
pytestmark = [pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL is not installed (initdb, pg_ctl): "
                                 "apt-get install -y postgresql, as .ci/run does"),
              pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")]
psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is missing: pip install -e '.[server]'")

ADMIN_PASSWORD = secrets.token_urlsafe(16)
# a user the admin creates, as the README does for each person; default_permission EDIT lets it log
CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": "worker", "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(16)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"{what} did not come up in {timeout:.0f}s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster on 127.0.0.1 with databases `mlflow` and `mlflow_auth`; yields its base URI."""
    base = Path(tempfile.mkdtemp(prefix="resbench-pg-", dir="/tmp"))  # pytest's tmp is root-only
    as_owner = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    pg_ctl = [*as_owner, str(PG_BIN / "pg_ctl"), "-D", str(base / "data")]
    subprocess.run([*as_owner, str(PG_BIN / "initdb"), "-D", str(base / "data"), "-U", "resbench", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*pg_ctl, "-l", str(base / "log"), "-w", "-t", "60", "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        uri = f"postgresql+psycopg2://resbench@127.0.0.1:{port}"
        conn = psycopg2.connect(f"postgresql://resbench@127.0.0.1:{port}/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE mlflow")
            cur.execute("CREATE DATABASE mlflow_auth")
        conn.close()
        yield uri
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """`mlflow server --app-name basic-auth` on PostgreSQL with proxied artifacts, as the README starts it."""
    tmp = tmp_path_factory.mktemp("server")
    config = tmp / "basic_auth.ini"
    config.write_text("[mlflow]\ndefault_permission = EDIT\n"
                      f"database_uri = {postgres}/mlflow_auth\nadmin_username = admin\n"
                      "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                      "auth_cache_ttl_seconds = 60\n")
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                             "--backend-store-uri", f"{postgres}/mlflow", "--artifacts-destination",
                             str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
        try:
            return requests.get(f"{url}/health", timeout=2).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, "mlflow server")
        old = {k: os.environ.get(k) for k in CREDENTIALS}
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD)
        get_app_client("basic-auth", tracking_uri=url).create_user(
            CREDENTIALS["MLFLOW_TRACKING_USERNAME"], CREDENTIALS["MLFLOW_TRACKING_PASSWORD"])
        os.environ.update(CREDENTIALS)  # what each worker exports
        yield url, tmp / "artifacts"
    finally:
        for k, v in locals().get("old", {}).items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_concurrent_writers_lose_no_metric_point(server):
    url, _ = server
    writers, epochs = 4, 10

    def writer(i: int) -> str:
        tracker = connect(url, "concurrent")
        with tracker.start_run(f"writer {i}", {"writer": i}, {names.TAG_SEED: i}) as run:
            for epoch in range(epochs):  # one batched call per epoch, as training does
                run.log_metrics({k: 1000 * i + epoch + j / 10 for j, k in enumerate(names.EPOCH_METRICS)},
                                step=epoch)
            return run.run_id

    client = MlflowClient(url)

    def history(i: int, j: int) -> list:
        return sorted((m.step, m.value) for m in client.get_metric_history(run_ids[i], names.EPOCH_METRICS[j]))

    with ThreadPoolExecutor(writers) as pool:
        run_ids = list(pool.map(writer, range(writers)))
        pairs = [(i, j) for i in range(writers) for j in range(len(names.EPOCH_METRICS))]
        got = dict(zip(pairs, pool.map(lambda p: history(*p), pairs)))
    assert all(client.get_run(run_id).info.status == "FINISHED" for run_id in run_ids)
    for (i, j), points in got.items():
        assert points == [(e, 1000 * i + e + j / 10) for e in range(epochs)], (i, names.EPOCH_METRICS[j])


def test_a_run_keeps_its_artifacts_on_the_server_not_the_worker(server, tmp_path, monkeypatch):
    url, artifacts = server
    monkeypatch.chdir(tmp_path)  # a worker's own disk
    res = CliRunner().invoke(main, ["run", "table1/row1", "--epochs", "1", "--data", "synthetic", "--limit-train",
                                    "64", "--limit-test", "32", "--device", "cpu", "--tracking-uri", url,
                                    "--experiment", "artifacts", "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert res.exit_code == 0, res.output
    client = MlflowClient(url)
    (run,) = client.search_runs([client.get_experiment_by_name("artifacts").experiment_id])
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert len(client.get_metric_history(run.info.run_id, "test_acc")) == 1
    assert list(artifacts.rglob(names.ARTIFACT_WEIGHTS.split("/")[-1]))  # on the server's disk
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_writer_without_credentials_is_refused(server, monkeypatch):
    url, _ = server
    for k in CREDENTIALS:
        monkeypatch.delenv(k)
    with pytest.raises(TrackingError, match="cannot be used") as err:
        connect(url, "anonymous")
    assert "\n" not in str(err.value)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(TrackingError, match="cannot be used"):
        connect(url, "anonymous")
