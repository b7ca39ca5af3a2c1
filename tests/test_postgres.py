"""The shared-server setup docs/DEPLOY.md documents (1. The tracking server),
run from its own code blocks, with only names, ports and paths substituted.

A throwaway PostgreSQL cluster that asks for passwords (the server finds its password in
~/.pgpass, never on a command line), docs/DEPLOY.md's setup lines (files mode 0600), and both
variants: behind TLS (Caddy with docs/DEPLOY.md's site block if Caddy is installed, else a small
Python TLS proxy doing the same) on 127.0.0.1, and on a private address (127.0.0.2 standing in for
10.0.0.5). The public names resolve to those addresses inside this module only. What cannot be
tested here: a real certificate authority, another machine, and the clear-text risk of plain HTTP.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from click.testing import CliRunner
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient

from benchmarks.cli.main import main
from tests.shared_server import (
    Server,
    answers,
    deploy_block,
    deploy_setup,
    free_port,
    self_signed,
    start_caddy,
    start_python_proxy,
    start_server,
    stop,
    substituted,
    wait_until,
)
from tracking import names
from tracking.store import TrackingError
from tracking.tracker import connect

_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
PG_BIN = Path(_BIN[-1]).parent if _BIN[-1] else None
pytestmark = [
    pytest.mark.slow,  # a PostgreSQL cluster and MLflow servers: `make test-all`
    pytest.mark.skipif(
        PG_BIN is None,
        reason="PostgreSQL is not installed (initdb, pg_ctl): "
        "apt-get install -y postgresql, as .ci/run does",
    ),
    pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the test certificate"),
    pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated"),
]
psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is missing: pip install -e '.[server]'")

NAME = "mlflow.lab.example"  # docs/DEPLOY.md's public name
PRIVATE_NAME = "mlflow-private.lab.example"  # the same, for the private-network server
PRIVATE_IP = "127.0.0.2"  # stands for docs/DEPLOY.md's 10.0.0.5
RESOLVE = {NAME: "127.0.0.1", PRIVATE_NAME: PRIVATE_IP}
ADMIN_PASSWORD = secrets.token_urlsafe(16)
USERS = {
    "alice": secrets.token_urlsafe(16),
    "bob": secrets.token_urlsafe(16),
}  # one per person, as docs/DEPLOY.md
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture(scope="module", autouse=True)
def lab_names():
    """docs/DEPLOY.md's names resolve to this machine's loopback addresses, in this module only."""
    real = socket.getaddrinfo
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            socket, "getaddrinfo", lambda host, *a, **k: real(RESOLVE.get(host, host), *a, **k)
        )
        yield


@pytest.fixture(scope="module")
def postgres():
    """A cluster on 127.0.0.1 asking for passwords over TCP, with docs/DEPLOY.md's role `mlflow`
    (its password returned) owning databases `mlflow` and `mlflow_auth`; yields (port, password)."""
    base = Path(tempfile.mkdtemp(prefix="resbench-pg-", dir="/tmp"))  # pytest's tmp is root-only
    as_owner = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(base, "postgres", "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port, password = free_port(), secrets.token_urlsafe(16)
    pg_ctl = [*as_owner, str(PG_BIN / "pg_ctl"), "-D", str(base / "data")]
    subprocess.run(
        [
            *as_owner,
            str(PG_BIN / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "resbench",
            "-E",
            "UTF8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *pg_ctl,
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:  # what `createuser --pwprompt mlflow` and `createdb -O mlflow` do, over the local socket
        conn = psycopg2.connect(host=str(base), port=port, user="resbench", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE ROLE mlflow LOGIN PASSWORD %s", (password,))
            cur.execute("CREATE DATABASE mlflow OWNER mlflow")
            cur.execute("CREATE DATABASE mlflow_auth OWNER mlflow")
        conn.close()
        yield port, password
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _db(postgres):
    return [
        (
            "postgresql+psycopg2://mlflow@localhost/",
            f"postgresql+psycopg2://mlflow@127.0.0.1:{postgres[0]}/",
        )
    ]


@pytest.fixture(scope="module")
def tls_server(postgres, tmp_path_factory):
    """The default variant: the server on 127.0.0.1 behind TLS as https://mlflow.lab.example:PORT;
    users alice and bob created by the admin; alice's credentials exported, as each worker does."""
    home = tmp_path_factory.mktemp("tls")
    env = deploy_setup(home, *postgres, ADMIN_PASSWORD)
    port, proxy_port = free_port(), free_port()
    public = f"{NAME}:{proxy_port}"  # docs/DEPLOY.md's name, on the test's port
    proc = start_server(
        "--host 127.0.0.1", [*_db(postgres), (NAME, public)], home, env, port, workers=2
    )
    cert, key = self_signed(home, NAME)
    if shutil.which("caddy"):
        site = substituted(
            deploy_block("reverse_proxy 127.0.0.1:5000"),
            [
                (f"/etc/ssl/{NAME}.crt", str(cert)),
                (f"/etc/ssl/{NAME}.key", str(key)),
                (f"{NAME} {{", f"{public} {{"),
                ("127.0.0.1:5000", f"127.0.0.1:{port}"),
            ],
        )
        proxy = start_caddy(site, home)
    else:
        proxy = start_python_proxy(cert, key, proxy_port, port)
    url = f"https://{public}"
    with pytest.MonkeyPatch.context() as mp:
        # as docs/DEPLOY.md says for your own CA
        mp.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
        try:
            wait_until(lambda: answers(f"{url}/health", verify=cert), "the TLS proxy", 60)
            mp.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
            auth = get_app_client("basic-auth", tracking_uri=url)
            for user, password in USERS.items():
                auth.create_user(user, password)
            mp.setenv("MLFLOW_TRACKING_USERNAME", "alice")
            mp.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
            yield Server(url, port, proc, home, home / "artifacts")
        finally:
            proxy.terminate() if isinstance(proxy, subprocess.Popen) else proxy.shutdown()
            stop(proc)


def test_setup_files_are_mode_0600_and_hold_no_password_but_pgpass(tls_server, postgres):
    home, (_, db_password) = tls_server.home, postgres
    for f in (home / ".pgpass", home / "basic_auth.ini"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert "default_permission = READ" in (home / "basic_auth.ini").read_text()
    assert db_password not in (home / "basic_auth.ini").read_text()
    assert (home / ".pgpass").read_text().strip().endswith(f":mlflow:{db_password}")


def test_no_password_on_the_servers_command_lines(tls_server, postgres):
    _, db_password = postgres
    server = psutil.Process(tls_server.proc.pid)
    procs = [server, *server.children(recursive=True)]
    assert len(procs) >= 3  # the server and its two workers
    for p in procs:
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes().decode()
        assert db_password not in cmdline and ADMIN_PASSWORD not in cmdline
        assert db_password not in Path(f"/proc/{p.pid}/environ").read_bytes().decode(
            errors="replace"
        )
    assert "postgresql+psycopg2://mlflow@127.0.0.1" in " ".join(server.cmdline())
    # ... and the database does ask for one: it came from ~/.pgpass
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(
            f"postgresql://mlflow@127.0.0.1:{postgres[0]}/mlflow", passfile="/nonexistent"
        )


def test_concurrent_writers_lose_no_metric_point(tls_server):
    url, writers, epochs = tls_server.url, 4, 10

    def writer(i: int) -> str:
        tracker = connect(url, "concurrent")
        with tracker.start_run(f"writer {i}", {"writer": i}, {names.TAG_SEED: i}) as run:
            for epoch in range(epochs):  # one batched call per epoch, as training does
                run.log_metrics(
                    {k: 1000 * i + epoch + j / 10 for j, k in enumerate(names.EPOCH_METRICS)},
                    step=epoch,
                )
            return run.run_id

    client = MlflowClient(url)

    def history(i: int, j: int) -> list:
        return sorted(
            (m.step, m.value) for m in client.get_metric_history(run_ids[i], names.EPOCH_METRICS[j])
        )

    with ThreadPoolExecutor(writers) as pool:
        run_ids = list(pool.map(writer, range(writers)))
        pairs = [(i, j) for i in range(writers) for j in range(len(names.EPOCH_METRICS))]
        got = dict(zip(pairs, pool.map(lambda p: history(*p), pairs), strict=False))
    assert all(client.get_run(run_id).info.status == "FINISHED" for run_id in run_ids)
    for (i, j), points in got.items():
        assert points == [(e, 1000 * i + e + j / 10) for e in range(epochs)], (
            i,
            names.EPOCH_METRICS[j],
        )


def test_a_run_keeps_its_artifacts_on_the_server_not_the_worker(tls_server, tmp_path, monkeypatch):
    url = tls_server.url
    monkeypatch.chdir(tmp_path)  # a worker's own disk
    res = CliRunner().invoke(
        main,
        [
            "run",
            "table1/row1",
            "--epochs",
            "1",
            "--data",
            "synthetic",
            "--limit-train",
            "64",
            "--limit-test",
            "32",
            "--device",
            "cpu",
            "--tracking-uri",
            url,
            "--experiment",
            "artifacts",
            "--checkpoint-dir",
            str(tmp_path / "ckpt"),
        ],
    )
    assert res.exit_code == 0, res.output
    client = MlflowClient(url)
    (run,) = client.search_runs([client.get_experiment_by_name("artifacts").experiment_id])
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert len(client.get_metric_history(run.info.run_id, "test_acc")) == 1
    assert list(tls_server.artifacts.rglob(names.ARTIFACT_CURVE))  # on the server's disk
    assert list(tls_server.artifacts.rglob("MLmodel"))  # the logged model's files too
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_writer_without_credentials_is_refused(tls_server, monkeypatch):
    for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(k)
    with pytest.raises(TrackingError, match="cannot be used") as err:
        connect(tls_server.url, "anonymous")
    assert "\n" not in str(err.value)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    with pytest.raises(TrackingError, match="cannot be used"):
        connect(tls_server.url, "anonymous")


def test_everyone_reads_but_only_those_granted_edit_write(tls_server, monkeypatch):
    url = tls_server.url
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    shared = connect(url, "shared").experiment_id  # the admin's, as in docs/DEPLOY.md
    get_app_client("basic-auth", tracking_uri=url).grant_user_permission(
        "alice", "experiment", shared, "EDIT"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["alice"])
    with connect(url, "shared").start_run("granted", {}, {}) as run:
        run.log_metrics({"test_acc": 0.5})
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USERS["bob"])
    (seen,) = MlflowClient(url).search_runs([shared])  # bob reads alice's run
    assert seen.info.run_id == run.run_id and seen.info.status == "FINISHED"
    with pytest.raises(TrackingError, match="cannot create a run in .*403"):
        connect(url, "shared").start_run("not granted", {}, {})
    refused = requests.post(
        f"{url}/api/2.0/mlflow/runs/update",
        json={"run_id": run.run_id, "status": "KILLED"},
        auth=("bob", USERS["bob"]),
        verify=os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"],
    )
    assert (
        refused.status_code == 403
        and MlflowClient(url).get_run(run.run_id).info.status == "FINISHED"
    )


def _status(url: str, method: str = "GET", **kw) -> int:
    return requests.request(
        method, url, auth=("alice", USERS["alice"]), timeout=30, **kw
    ).status_code


def test_behind_tls_only_the_public_name_and_its_pages_get_through(tls_server):
    url, port = tls_server.url, tls_server.port
    cert = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    direct = f"http://127.0.0.1:{port}{SEARCH}"
    # what the proxy passes on
    assert _status(direct, headers={"Host": url.removeprefix("https://")}) == 200
    assert _status(direct) == 403 and _status(direct, headers={"Host": "attacker.example"}) == 403
    create = f"{url}/api/2.0/mlflow/experiments/create"
    assert (
        _status(
            create,
            "POST",
            json={"name": "from its pages, tls"},
            headers={"Origin": url},
            verify=cert,
        )
        == 200
    )
    assert (
        _status(
            create,
            "POST",
            json={"name": "csrf"},
            headers={"Origin": "https://attacker.example"},
            verify=cert,
        )
        == 403
    )
    with socket.socket() as s:  # loopback only: nothing else reaches it but the proxy
        assert s.connect_ex((PRIVATE_IP, port)) != 0


@pytest.fixture(scope="module")
def private_server(postgres, tls_server, tmp_path_factory):
    """The private-network variant on the same database (users made by `tls_server`)."""
    home = tmp_path_factory.mktemp("private")
    port = free_port(PRIVATE_IP)
    proc = start_server(
        "--host 10.0.0.5",
        [*_db(postgres), ("10.0.0.5", PRIVATE_IP), (f"{NAME}:5000", f"{PRIVATE_NAME}:{port}")],
        home,
        deploy_setup(home, *postgres, ADMIN_PASSWORD),
        port,
        workers=1,
    )
    try:
        yield Server(f"http://{PRIVATE_NAME}:{port}", port, proc, home, home / "artifacts")
    finally:
        stop(proc)


def test_on_a_private_network_the_same_rules_hold_over_http(private_server):
    url, port = private_server.url, private_server.port
    with connect(url, "private").start_run("over http", {}, {}) as run:  # alice, as exported
        run.log_metrics({"test_acc": 0.5})
    assert MlflowClient(url).get_run(run.run_id).info.status == "FINISHED"
    assert _status(f"{url}{SEARCH}") == 200
    assert _status(f"http://{PRIVATE_IP}:{port}{SEARCH}") == 403  # only the name in --allowed-hosts
    create = f"{url}/api/2.0/mlflow/experiments/create"
    assert (
        _status(create, "POST", json={"name": "from its pages, private"}, headers={"Origin": url})
        == 200
    )
    assert (
        _status(
            create, "POST", json={"name": "csrf"}, headers={"Origin": "http://attacker.example"}
        )
        == 403
    )
    with socket.socket() as s:  # bound to the private address only
        assert s.connect_ex(("127.0.0.1", port)) != 0
