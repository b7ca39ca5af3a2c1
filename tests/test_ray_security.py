"""Credentials through Ray: a canary password reaches each task and lands in no file anyone could
read.

A local Ray with its own temp folder (its session directory: logs, runtime-env agent, spilled
objects) and an `mlflow server --app-name basic-auth` whose admin password is the canary, so a
run lands only if its worker authenticated with it. Ray is started before the canary enters the
driver's environment: its workers inherit nothing and get the credentials only as the task's
argument. After `reproduce` trains on Ray, the canary is in no file under the Ray session
directory, in no param or tag of any run, in no artifact on the server and nowhere in the report
or the log lines. Once as MLFLOW_TRACKING_USERNAME/PASSWORD, once inside the URI itself.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from benchmarks import registry
from benchmarks.jobs.executor import ExecutorConfig
from benchmarks.jobs.spec import DataSpec, JobSettings
from benchmarks.reproduce import reproduce
from resnet.train import ExecConfig
from tests.conftest import ROOT
from tests.shared_server import answers, free_port, stop, wait_until
from tracking import names
from tracking.credentials import FORWARDED, Credentials

CANARY = f"canary-{uuid.uuid4().hex}"
TINY_ENTRIES = ROOT / "tests" / "entries"
TINY = DataSpec("synthetic", None, limit_train=64, limit_test=32)

pytestmark = pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")


def test_credentials_show_their_names_never_their_values(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", CANARY)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    creds = Credentials.from_environ()
    for shown in (repr(creds), str(creds), f"{creds!r} {[creds]} {creds}"):
        assert CANARY not in shown and "MLFLOW_TRACKING_PASSWORD" in shown
    assert pickle.loads(pickle.dumps(creds)).names == (
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_USERNAME",
    )

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "the worker's own")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    with creds.applied():  # the driver's, for the task only
        assert (
            os.environ["MLFLOW_TRACKING_PASSWORD"] == CANARY
            and os.environ["MLFLOW_TRACKING_USERNAME"] == "admin"
        )
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "the worker's own"  # put back
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ  # and removed
    with pytest.raises(RuntimeError), creds.applied():
        raise RuntimeError("a failing job restores them too")
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A basic-auth MLflow server whose only user is admin, password CANARY; anonymous requests get
    401."""
    home = tmp_path_factory.mktemp("auth-server")
    (home / "basic_auth.ini").write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = "
        f"sqlite:///{home}/auth.db\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(home / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": CANARY,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for k in FORWARDED:
        env.pop(k, None)
    log = open(home / "server.log", "w")  # noqa: SIM115 (kept open for the server process it logs)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            f"sqlite:///{home}/mlflow.db",
            "--artifacts-destination",
            str(home / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (home / "server.log").read_text()[-2000:]
        return answers(f"{url}/health")

    try:
        wait_until(up, "mlflow server (basic-auth)")
        yield url, home / "artifacts"
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray in its own short temp folder, started with no credentials in its environment."""
    ray = pytest.importorskip("ray", reason="Ray is missing: pip install -e '.[ray]'")
    # short: Ray's socket paths must fit 107 bytes
    temp = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.ENV_PATH, str(TINY_ENTRIES))  # workers find test/tiny
        for k in FORWARDED:
            mp.delenv(k, raising=False)
        ray.init(
            num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, _temp_dir=str(temp)
        )
    yield ray, temp
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def tiny():
    with registry.temporary():
        registry.load_file(TINY_ENTRIES / "tiny.py")
        yield registry.get("test/tiny")


def files_holding(folder: Path, secret: str) -> list[str]:
    """Every regular file under `folder` (links not followed) whose bytes hold `secret`."""
    needle, hits = secret.encode(), []
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                try:
                    if needle in path.read_bytes():
                        hits.append(str(path))
                except OSError:  # a socket or a file Ray removed meanwhile
                    pass
    return hits


def assert_nowhere(
    secret: str,
    ray_temp: Path,
    uri: str,
    experiment: str,
    artifacts: Path,
    out: Path,
    log: list[str],
) -> None:
    sessions = list(ray_temp.glob("session_2*"))
    # the folder Ray really wrote its logs to
    assert sessions and any((s / "logs").is_dir() for s in sessions)
    assert files_holding(ray_temp, secret) == []
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    for run in client.search_runs([exp.experiment_id]):
        shown = [
            *run.data.params.items(),
            *run.data.tags.items(),
            run.info.artifact_uri,
            run.info.run_name,
        ]
        assert secret not in repr(shown)
    assert list(artifacts.rglob("*.json")) and files_holding(artifacts, secret) == []
    assert {p.name for p in out.iterdir()} >= {"report.md", "report.csv"} and files_holding(
        out, secret
    ) == []
    assert not [ln for ln in log if secret in ln]


def reproduce_on_ray(tiny, uri: str, experiment: str, epochs: int, tmp_path) -> list[str]:
    """One seed of `tiny` through `reproduce` on Ray into `uri`; the lines it logged (it must not
    fail)."""
    shared = JobSettings.of(
        {"epochs": epochs},
        data=TINY,
        ex=ExecConfig(device="cpu"),
        tracking_uri=uri,
        experiment=experiment,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    log: list[str] = []
    _, failed = reproduce(
        [tiny],
        1,
        shared,
        tmp_path / "out",
        placement=ExecutorConfig(kind="ray"),
        check=False,
        log=log.append,
    )
    assert failed == [], log
    return log


@pytest.mark.slow
def test_credentials_reach_ray_tasks_as_an_argument_and_land_in_no_file(
    ray_session, server, tmp_path, monkeypatch, tiny
):
    ray, ray_temp = ray_session
    url, artifacts = server
    assert (
        requests.get(
            f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10
        ).status_code
        == 401
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", CANARY)
    log = reproduce_on_ray(tiny, url, "canary-env", 2, tmp_path)
    client = MlflowClient(url)
    (run,) = client.search_runs([client.get_experiment_by_name("canary-env").experiment_id])
    # the worker created and finished it on a server that refuses anyone without the canary
    assert run.info.status == "FINISHED" and run.data.tags[names.TAG_ENTRY] == "test/tiny"
    assert [
        a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")
    ] == []  # dropped once finished
    # outside a task the workers hold no credentials: they were set for the task and put back
    assert ray.get(ray.remote(lambda: [k for k in FORWARDED if k in os.environ]).remote()) == []
    assert_nowhere(CANARY, ray_temp, url, "canary-env", artifacts, tmp_path / "out", log)


@pytest.mark.slow
def test_a_password_inside_the_tracking_uri_is_shown_nowhere(
    ray_session, server, tmp_path, monkeypatch, tiny
):
    ray, ray_temp = ray_session
    url, artifacts = server
    monkeypatch.chdir(tmp_path)
    for k in FORWARDED:
        monkeypatch.delenv(k, raising=False)
    with_password = url.replace("http://", f"http://admin:{CANARY}@")
    log = reproduce_on_ray(tiny, with_password, "canary-uri", 1, tmp_path)
    report = (tmp_path / "out" / "report.md").read_text()
    # where the runs are, shown masked
    assert f"http://admin:***@{url.removeprefix('http://')}" in report
    assert_nowhere(CANARY, ray_temp, with_password, "canary-uri", artifacts, tmp_path / "out", log)


# What `reproduce --executor ray` starts without --address, in a fresh process as the CLI would be:
# the address of every socket its processes listen on, and the auth mode each process runs with.
LOCAL_RAY = r"""
import json, psutil
from benchmarks.jobs.executor import ExecutorConfig, check
from benchmarks.jobs.ray import start_ray
from resnet.config import ExecConfig
cfg = ExecutorConfig(kind="ray")
check(cfg, ExecConfig(device="cpu"), "sqlite:///x.db")
start_ray(cfg)
import ray
ray.get(ray.remote(lambda: 1).remote())  # a worker process too
driver = psutil.Process()
listening, modes = [], set()
for p in [driver, *driver.children(recursive=True)]:
    try:
        listening += [(p.name(), c.laddr.ip) for c in p.net_connections("inet")
                      if c.status == psutil.CONN_LISTEN]
        if p.name() in ("gcs_server", "raylet"):  # the cluster's API and each node's
            modes.add(p.environ().get("RAY_AUTH_MODE"))
    except psutil.Error:
        pass
ray.shutdown()
print(json.dumps({"listening": listening, "modes": sorted(map(str, modes))}))
"""


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only_and_asks_for_a_token(tmp_path):
    pytest.importorskip("ray", reason="Ray is missing: pip install -e '.[ray]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    done = subprocess.run(
        [sys.executable, "-c", LOCAL_RAY],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["listening"], "found no listening Ray process"
    assert [
        (name, ip)
        for name, ip in seen["listening"]
        if ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    ] == []
    assert seen["modes"] == ["token"]
