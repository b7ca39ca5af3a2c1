"""End to end: `resbench ui` starts the real MLflow server on the store, it serves the runs, Ctrl-C
stops it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from benchmarks import registry
from benchmarks.jobs.spec import DataSpec, JobSpec
from benchmarks.jobs.train import train_job
from benchmarks.registry import Entry, Paper, arch
from resnet.config import ExecConfig, TrainConfig
from tracking import names, ui
from tracking.store import TrackingError
from tracking.tracker import connect


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding one finished run, made through the real run path."""
    tmp = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    entry = Entry(
        "tiny/ui",
        "tiny entry for the UI test",
        arch(layers=2, blocks=(1, 1), channels=(8, 16)),
        TrainConfig(epochs=1),
        Paper(accuracy=50.0),
    )
    spec = JobSpec(
        entry=entry.name,
        data=DataSpec("synthetic", limit_train=64, limit_test=32),
        ex=ExecConfig(device="cpu"),
        tracking_uri=uri,
        experiment="ui-test",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the default artifact location is ./mlruns
        tracker = connect(uri, "ui-test")
        with registry.temporary([entry]):
            run_id = train_job(spec)
    return uri, tracker.experiment_id, run_id


@pytest.mark.slow
def test_resbench_ui_serves_the_runs_and_stops_on_ctrl_c(store, tmp_path):
    uri, experiment_id, run_id = store
    port = ui.free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    MlflowClient(uri).set_experiment_tag(
        experiment_id, names.TAG_EXPERIMENT_KIND, "genai_development_inferred"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.cli",
            "ui",
            "--port",
            str(port),
            "--tracking-uri",
            uri,
            "--experiment",
            "ui-test",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # printed once the server answers
        url = f"http://127.0.0.1:{port}"
        assert url in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        # the runs table in the training view, whatever the browser's GenAI / Model training switch
        # says
        assert (
            proc.stdout.readline()
            .strip()
            .endswith(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
        )
        kind = MlflowClient(uri).get_experiment(experiment_id).tags[names.TAG_EXPERIMENT_KIND]
        # set again by `resbench ui`, after MLflow's UI had marked it
        assert kind == names.EXPERIMENT_KIND
        found = requests.post(
            f"{url}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [experiment_id]},
            timeout=10,
        ).json()["runs"]
        assert [r["info"]["run_id"] for r in found] == [run_id]
        assert (
            found[0]["info"]["run_name"] == "tiny/ui seed=0"
            and found[0]["info"]["status"] == "FINISHED"
        )
        files = requests.get(
            f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}, timeout=10
        ).json()
        assert "config.json" in {
            f["path"] for f in files["files"]
        }  # artifacts of existing runs are readable
        root = requests.get(url + "/", timeout=10)
        assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.5)
    with socket.socket() as s:  # the server went with it
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_busy_port_and_remote_store_are_one_line_errors(store):
    uri, _, _ = store
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(TrackingError, match="pick another --port"):
            ui.start(uri, port=s.getsockname()[1])
    with pytest.raises(TrackingError, match="already a server"):
        ui.server_command("http://127.0.0.1:5000", "127.0.0.1", 5000)


def test_server_command_binds_localhost_and_keeps_artifacts_beside_the_store(store):
    uri, _, _ = store
    cmd = ui.server_command(uri, "127.0.0.1", 5001)
    db = uri.removeprefix("sqlite:///")
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5001"
    assert cmd[cmd.index("--backend-store-uri") + 1] == f"sqlite:///{db}"
    assert cmd[cmd.index("--default-artifact-root") + 1] == str(Path(db).parent / "mlruns")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10", "example.org"])
def test_a_network_host_needs_public(tmp_path, host):
    from tests.conftest import fresh_uri

    with pytest.raises(
        TrackingError,
        match=r"would serve the MLflow UI, which has no login, to the network: "
        r"add --public",
    ) as err:
        ui.server_command(fresh_uri(tmp_path), host, 5001)
    assert "\n" not in str(err.value)
    assert ui.server_command(fresh_uri(tmp_path), host, 5001, public=True)[-4:-3] == [
        "--allowed-hosts"
    ]


@pytest.mark.parametrize(
    "host, names",
    [
        ("127.0.0.1", ["127.0.0.1"]),
        ("localhost", ["localhost"]),
        ("::1", ["[::1]"]),
        ("127.0.0.2", ["127.0.0.2"]),
        ("192.0.2.10", ["192.0.2.10"]),
        ("0.0.0.0", [socket.gethostname()]),
    ],
)
def test_allowed_hosts_and_origins_are_the_chosen_host_and_port(tmp_path, host, names):
    from tests.conftest import fresh_uri

    cmd = ui.server_command(fresh_uri(tmp_path), host, 5001, public=True)
    hosts = cmd[cmd.index("--allowed-hosts") + 1].split(",")
    origins = cmd[cmd.index("--cors-allowed-origins") + 1].split(",")
    for name in [*names, "127.0.0.1", "localhost"]:  # loopback keeps working whatever is bound
        assert {name, f"{name}:5001"} <= set(hosts) and f"http://{name}:5001" in origins
    assert not any("*" in h for h in hosts + origins) and "example.org:5001" not in hosts


@pytest.mark.slow
def test_the_server_answers_to_its_own_name_and_no_other(tmp_path):
    """On 127.0.0.2 (loopback, but not a name MLflow trusts by default) the UI only works
    because resbench passes that name: reads and writes from it pass, other names get 403."""
    from tests.conftest import fresh_uri

    port = ui.free_port("127.0.0.2")
    proc, url = ui.start(fresh_uri(tmp_path), "127.0.0.2", port)
    try:
        search = f"{url}/api/2.0/mlflow/experiments/search"
        assert (
            requests.post(
                search, json={"max_results": 1}, headers={"Origin": url}, timeout=10
            ).status_code
            == 200
        )
        assert (
            requests.post(
                f"{url}/ajax-api/2.0/mlflow/experiments/create",
                json={"name": "from-the-ui"},
                headers={"Origin": url},
                timeout=10,
            ).status_code
            == 200
        )
        rebinding = requests.get(search, headers={"Host": f"attacker.example:{port}"}, timeout=10)
        assert rebinding.status_code == 403
        cross_site = requests.post(
            f"{url}/ajax-api/2.0/mlflow/experiments/create",
            json={"name": "csrf"},
            headers={"Origin": "http://attacker.example"},
            timeout=10,
        )
        assert cross_site.status_code == 403
    finally:
        ui.stop(proc)


def test_resbench_ui_refuses_a_network_host_without_public(tmp_path):
    from click.testing import CliRunner

    from benchmarks.cli.main import main
    from tests.conftest import fresh_uri

    r = CliRunner().invoke(
        main,
        ["ui", "--host", "0.0.0.0", "--port", str(ui.free_port())]
        + ["--tracking-uri", fresh_uri(tmp_path)],
    )
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "error: --host 0.0.0.0 would serve the MLflow UI, which has no login, to the network: "
        "add --public to mean it, or keep the default 127.0.0.1"
    ]
