"""Executors: runs spread over GPUs by the local executor, and over Ray tasks (one local Ray per
module).

Every Ray run lands in MLflow and in the report; a run that raises or whose worker dies is
reported as failed and the next reproduce resumes it; a worker killed mid-run is retried by Ray
into the same run (on the same machine, or on another one from the store's checkpoint); Ctrl-C
cancels the submitted tasks, their runs end KILLED and the next call resumes them. An existing
cluster without token authentication is refused.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import registry
from benchmarks.cli.main import main
from benchmarks.jobs import executor, local
from benchmarks.jobs import ray as ray_jobs
from benchmarks.jobs.executor import ExecutorConfig, ExecutorError
from benchmarks.jobs.spec import DataSpec, JobSettings, JobSpec
from benchmarks.registry import get
from benchmarks.reproduce import reproduce
from resnet.config import ExecConfig
from tests.conftest import ROOT, fresh_uri, gpu
from tracking import names
from tracking.store import TrackingError, require_shared_store

ROW1 = get("table1/row1")
# test/tiny, which Ray workers find through $RESBENCH_ENTRIES_PATH
TINY_ENTRIES = ROOT / "tests" / "entries"
TINY = DataSpec("synthetic", None, limit_train=64, limit_test=32)
CPU = ExecConfig(device="cpu")


def runs_of(uri: str, experiment: str) -> tuple[MlflowClient, list]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


# ------------------------------------------------------------------------------- refused up front


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--executor", "ray", "--address", "ray://127.0.0.1:1"], "cannot log to sqlite:///"),
        (["--address", "auto"], "--address is for --executor ray"),
        (["--executor", "ray", "--jobs", "2"], "--jobs is for --executor local"),
        (["--executor", "ray", "--devices", "0"], "--devices is for --executor local"),
        (["--devices", "0", "--device", "cpu"], "cannot go with --device cpu"),
        (["--devices", "0,x"], "expected GPU indices"),
        (["--executor", "ray", "--device", "cuda:1"], "Ray picks each run's GPU"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_is_created(
    tmp_path, monkeypatch, args, fragment
):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "m.db"
    res = CliRunner().invoke(
        main,
        [
            "reproduce",
            "--only",
            "table1/row1",
            "--seeds",
            "1",
            "--data",
            "synthetic",
            "--tracking-uri",
            f"sqlite:///{db}",
            *args,
        ],
    )
    assert res.exit_code == 2, res.output
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert fragment in line and "Traceback" not in res.output
    assert not db.exists() and not (tmp_path / "results").exists()


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="this machine has the GPUs asked for")
def test_devices_this_machine_lacks_are_refused():
    with pytest.raises(ExecutorError, match=r"--devices 0,1: this machine has \d CUDA GPU"):
        executor.check(ExecutorConfig(devices=(0, 1)), ExecConfig(), "sqlite:///m.db")


def test_a_cluster_needs_a_tracking_server():
    where = "the Ray cluster at auto"
    for uri in ("http://mlflow.lab:5000", "https://mlflow.lab", "databricks"):
        require_shared_store(uri, where)
    with pytest.raises(
        TrackingError, match=r"a file on this machine.*mlflow server.*--tracking-uri https://"
    ):
        require_shared_store("sqlite:///mlflow.db", where)
    with pytest.raises(TrackingError, match="a file on this machine"):
        require_shared_store("file:///tmp/mlruns", where)
    with pytest.raises(TrackingError, match="artifacts would stay on each worker's own disk"):
        require_shared_store("postgresql+psycopg2://u@db/mlflow", where)


@pytest.mark.parametrize(
    "env, home_token, problem",
    [
        ({}, None, "RAY_AUTH_MODE is not set"),
        ({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "t"}, None, "RAY_AUTH_MODE is 'disabled'"),
        ({"RAY_AUTH_MODE": "token"}, None, "no token in RAY_AUTH_TOKEN or"),
        ({"RAY_AUTH_MODE": "token"}, "", "no token in RAY_AUTH_TOKEN or"),
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "t"}, None, None),
        ({"RAY_AUTH_MODE": "token"}, "t\n", None),
        ({"RAY_AUTH_MODE": "TOKEN", "RAY_AUTH_TOKEN_PATH": "{tmp}/elsewhere"}, None, None),
    ],
)
def test_ray_token_auth_is_on_only_with_the_mode_and_a_token(
    tmp_path, monkeypatch, env, home_token, problem
):
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(tmp=tmp_path))
    (tmp_path / "elsewhere").write_text("t")
    if home_token is not None:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text(home_token)
    got = executor.ray_auth_problem()
    assert got == problem if problem is None else problem in got
    cfg, uri = ExecutorConfig(kind="ray", address="ray://head:10001"), "https://mlflow.lab"
    if problem is None:
        executor.check(cfg, CPU, uri)
    else:
        with pytest.raises(ExecutorError, match="export RAY_AUTH_MODE=token") as err:
            executor.check(cfg, CPU, uri)
        assert "\n" not in str(err.value)
    # a local Ray, started for the command: not asked
    executor.check(ExecutorConfig(kind="ray"), CPU, uri)


def test_a_cluster_without_token_auth_is_refused_before_anything_is_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    res = CliRunner().invoke(
        main,
        [
            "reproduce",
            "--only",
            "table1/row1",
            "--seeds",
            "1",
            "--data",
            "synthetic",
            "--tracking-uri",
            "http://127.0.0.1:1",
            "--executor",
            "ray",
            "--address",
            "ray://127.0.0.1:1",
        ],
    )
    assert res.exit_code == 2, res.output
    (line,) = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: --address ray://127.0.0.1:1: Ray token authentication is off")
    assert "RAY_AUTH_MODE=token" in line and "ray get-auth-token --generate" in line
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- local


def test_a_spec_survives_its_json_round_trip():
    spec = JobSpec.of(
        {"epochs": 3, "hflip": False, "lr": 1e-3},
        entry="table1/row3",
        seed=2,
        data=DataSpec("cifar10", "/data", limit_train=64, download=False),
        ex=ExecConfig(device="cuda:1", pipeline="reference", precision="fp32", compile=True),
        tracking_uri="sqlite:///x.db",
        experiment="exp",
        checkpoint_dir="/ckpt",
    )
    again = JobSpec.from_json(spec.to_json())
    assert again == spec and again.name == "table1/row3 seed=2"
    assert dict(again.overrides) == {"epochs": 3, "hflip": False, "lr": 1e-3}
    assert again.variant.train(get("table1/row3")).epochs == 3


def test_local_executor_spreads_runs_over_devices(tmp_path):
    """Each child sees one GPU; never more than `jobs` children share one; failures are reported."""
    probe = (
        "import json, os, sys, time, pathlib; d = pathlib.Path(sys.argv[1]); gpu = "
        "os.environ['CUDA_VISIBLE_DEVICES'];"
        "seed = json.loads(pathlib.Path(sys.argv[2]).read_text())['seed'];"
        "me = d / f'{gpu}-{os.getpid()}'; me.touch(); n = len(list(d.glob(f'{gpu}-*'))); "
        "time.sleep(0.4);"
        "me.unlink(); print(f'seed={seed}: gpu {gpu} with {n} running', "
        "os.environ['OMP_NUM_THREADS']);"
        "sys.exit(seed == 5 and print('error: boom', file=sys.stderr) or seed == 5)"
    )
    specs = [JobSpec(entry=ROW1.name, seed=s) for s in range(8)]
    lines: list[str] = []
    failed = local.run_children(
        ExecutorConfig(jobs=2, devices=(0, 1)),
        specs,
        lines.append,
        lambda path: [sys.executable, "-c", probe, str(tmp_path), str(path)],
    )
    assert failed == ["table1/row1 seed=5"] and "error: table1/row1 seed=5: boom" in lines
    done = [ln.split("] ", 1)[1].split() for ln in lines if ln.startswith("[")]
    assert len(done) == 7
    assert {d[2] for d in done} == {"0", "1"} and max(int(d[4]) for d in done) <= 2
    assert {d[-1] for d in done} == {
        os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // 4)))
    }


@pytest.mark.slow
def test_a_child_process_trains_the_spec_it_is_given(tmp_path):
    """`python -m benchmarks.jobs SPEC.json`, for real: the run lands in MLflow; a failure comes
    back in one line."""
    uri = fresh_uri(tmp_path)
    shared = JobSettings.of(
        {"epochs": 1},
        data=TINY,
        ex=CPU,
        tracking_uri=uri,
        experiment="child",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    lines: list[str] = []
    failed = local.run_children(
        ExecutorConfig(jobs=2),
        [shared.job(ROW1.name, 4), shared.job("table1/row99", 0)],
        lines.append,
    )
    assert failed == ["table1/row99 seed=0"]
    assert any(
        ln.startswith("error: table1/row99 seed=0: unknown entry 'table1/row99'") for ln in lines
    ), lines
    assert any("table1/row1 seed=4: finished run" in ln for ln in lines), lines
    _, (run,) = runs_of(uri, "child")
    assert (
        run.info.status == "FINISHED"
        and run.data.tags[names.TAG_SEED] == "4"
        and run.data.params["epochs"] == "1"
    )


@gpu
def test_local_executor_trains_on_the_gpus_given(tmp_path):
    uri = fresh_uri(tmp_path)
    cfg = ExecutorConfig(jobs=2, devices=tuple(range(torch.cuda.device_count())))
    shared = JobSettings.of(
        {"epochs": 1},
        data=TINY,
        tracking_uri=uri,
        experiment="gpus",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    _, failed = reproduce([ROW1], 2, shared, tmp_path / "out", placement=cfg, check=False)
    assert failed == []
    _, runs = runs_of(uri, "gpus")
    assert len(runs) == 2
    assert all(r.info.status == "FINISHED" and r.data.tags[names.TAG_DEVICE] != "cpu" for r in runs)


# ------------------------------------------------------------------------------------------ ray


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="Ray is missing: pip install -e '.[ray]'")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.ENV_PATH, str(TINY_ENTRIES))  # the workers inherit it
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def tiny_job(tmp_path: Path, experiment: str, epochs: int = 3, images: int = 64) -> JobSettings:
    return JobSettings.of(
        {"epochs": epochs},
        data=DataSpec("synthetic", None, limit_train=images, limit_test=32),
        ex=CPU,
        tracking_uri=fresh_uri(tmp_path),
        experiment=experiment,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )


@pytest.mark.slow
def test_ray_runs_land_in_mlflow_and_the_report(ray_session, tmp_path):
    uri = fresh_uri(tmp_path)
    log: list[str] = []
    shared = JobSettings.of(
        {"epochs": 1},
        data=TINY,
        ex=CPU,
        tracking_uri=uri,
        experiment="ray",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    written, failed = reproduce(
        [ROW1],
        2,
        shared,
        tmp_path / "out",
        placement=ExecutorConfig(kind="ray"),
        check=False,
        log=log.append,
    )
    assert failed == [] and "submitted 2 runs to Ray (local), 1 CPU each" in log
    client, runs = runs_of(uri, "ray")
    assert sorted(r.data.tags[names.TAG_SEED] for r in runs) == ["0", "1"]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(r.info.run_id, "test_acc")] == [0]
    table = pd.read_csv(tmp_path / "out" / "report.csv").set_index("entry")
    assert table.loc["table1/row1", "n"] == 2 and table.loc["table1/row1", "seeds"] == "0,1"


@pytest.mark.slow
def test_a_failing_run_and_a_dead_worker_are_reported_then_resumed(ray_session, tmp_path):
    uri = fresh_uri(tmp_path)
    shared = JobSettings.of(
        {"epochs": 2},
        data=TINY,
        ex=CPU,
        tracking_uri=uri,
        experiment="fail",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )

    def flaky(spec):
        from benchmarks.jobs import checkpoints
        from benchmarks.jobs.train import train_job

        if spec.seed == 0:  # the worker process dies right after epoch 0's checkpoint
            save = checkpoints.Slot.save

            def save_then_die(self, state, run=None):
                save(self, state, run)
                os.kill(os.getpid(), signal.SIGKILL)

            checkpoints.Slot.save = save_then_die
        else:  # a real error inside training
            spec = replace(spec, overrides=(*spec.overrides, ("lr", 1e30)))
        return train_job(spec)

    log: list[str] = []
    failed = ray_jobs.run_ray(
        ExecutorConfig(kind="ray", max_retries=0),
        [shared.job(ROW1.name, s) for s in (0, 1)],
        log.append,
        task=flaky,
    )
    assert sorted(failed) == ["table1/row1 seed=0", "table1/row1 seed=1"]
    errors = sorted(ln for ln in log if ln.startswith("error:"))
    assert "seed=0: its Ray worker died" in errors[0] and "next reproduce resumes" in errors[0]
    assert "seed=1: " in errors[1] and "diverged at epoch" in errors[1]
    client, runs = runs_of(uri, "fail")
    by_seed = {r.data.tags[names.TAG_SEED]: r for r in runs}
    assert by_seed["0"].info.status == "RUNNING"  # killed outright: nothing could mark it
    assert (
        by_seed["1"].info.status == "FAILED" and names.TAG_DIVERGED_EPOCH in by_seed["1"].data.tags
    )

    log.clear()
    _, failed = reproduce(
        [ROW1],
        1,
        shared,
        tmp_path / "out",
        placement=ExecutorConfig(kind="ray"),
        check=False,
        log=log.append,
    )
    assert failed == [] and "0 already finished, 1 to run" in log[0]
    resumed = client.get_run(by_seed["0"].info.run_id)  # the same MLflow run, continued
    assert resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(resumed.info.run_id, "test_acc")) == [
        0,
        1,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("machine", ["same machine", "another machine"])
def test_ray_retries_a_killed_worker_into_the_same_run(ray_session, tmp_path, machine):
    """max_retries=1: the worker dies right after epoch 0 is logged; Ray's retry resumes that run,
    from this machine's slot or, landing on "another machine" (another checkpoint folder), from the
    store's checkpoint."""
    shared = tiny_job(tmp_path, "retry")
    marker, other = tmp_path / "died-once", machine == "another machine"

    def dies_once(spec):
        from benchmarks.jobs.train import train_job
        from tracking.runlogger import RunLogger

        first = not marker.exists()
        if other:
            spec = replace(
                spec, checkpoint_dir=str(Path(spec.checkpoint_dir) / ("a" if first else "b"))
            )
        if first:
            log_metrics = RunLogger.log_metrics

            def log_then_die(self, metrics, step=0):
                log_metrics(self, metrics, step)
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)  # the worker process, outright

            RunLogger.log_metrics = log_then_die
        return train_job(spec)

    log: list[str] = []
    failed = ray_jobs.run_ray(
        ExecutorConfig(kind="ray", max_retries=1),
        [shared.job("test/tiny", 0)],
        log.append,
        task=dies_once,
    )
    assert failed == [] and marker.exists(), log
    client, (run,) = runs_of(shared.tracking_uri, "retry")  # one run, no second one beside it
    assert run.info.status == "FINISHED" and names.TAG_SUPERSEDED_BY not in run.data.tags
    assert any(f"finished run {run.info.run_id}" in ln for ln in log), log
    for key in names.EPOCH_METRICS[:5]:  # every epoch logged once
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [
            0,
            1,
            2,
        ], key
    # machine a's slot still holds its epoch 0; b resumed from the store and cleared its own
    if other:
        assert len(list((tmp_path / "ckpt" / "a").glob("*/state.pt"))) == 1
        assert not list((tmp_path / "ckpt" / "b").glob("*/state.pt"))
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")] == []


@pytest.mark.slow
def test_ctrl_c_cancels_the_tasks_and_their_runs_end_killed_then_resume(ray_session, tmp_path):
    """Real (tiny) training jobs: Ctrl-C once two have checkpointed an epoch; those two end KILLED,
    the third never starts; the next call continues each KILLED run, every epoch logged once."""
    shared = tiny_job(tmp_path, "ctrl-c", epochs=6, images=512)
    specs = [shared.job("test/tiny", s) for s in range(3)]
    pressed: list[float] = []

    # the two running jobs train side by side, however late Ray starts the second worker
    def together(
        spec,
    ):
        from benchmarks.jobs.train import train_job

        (tmp_path / f"started-{spec.seed}").touch()
        deadline = time.time() + 120
        while len(list(tmp_path.glob("started-*"))) < 2 and time.time() < deadline:
            time.sleep(0.05)
        return train_job(spec)

    def log(msg: str) -> None:
        if msg.startswith("submitted"):  # Ctrl-C once the first two have checkpointed epoch 0
            # only a guard against a hang: on a loaded 2-core machine two Ray workers once took over
            # 240 s
            deadline = time.time() + 900
            while len(list((tmp_path / "ckpt").glob("*/state.pt"))) < 2:
                assert time.time() < deadline, "the runs never finished an epoch"
                time.sleep(0.1)
            pressed.append(time.time())
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ray_jobs.run_ray(ExecutorConfig(kind="ray"), specs, log, task=together)
    # they stopped when asked, not killed at the end
    assert time.time() - pressed[0] < ray_jobs.CANCEL_GRACE_S
    client, runs = runs_of(shared.tracking_uri, "ctrl-c")
    assert sorted(r.info.status for r in runs) == [
        "KILLED",
        "KILLED",
    ]  # two CPUs: the third was never started
    killed = {r.data.tags[names.TAG_SEED]: r.info.run_id for r in runs}

    lines: list[str] = []
    assert ray_jobs.run_ray(ExecutorConfig(kind="ray"), specs, lines.append) == []
    client, runs = runs_of(shared.tracking_uri, "ctrl-c")
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    by_seed = {r.data.tags[names.TAG_SEED]: r.info.run_id for r in runs}
    # continued, not replaced
    assert all(by_seed[seed] == run_id for seed, run_id in killed.items())
    for run_id in by_seed.values():
        assert sorted(m.step for m in client.get_metric_history(run_id, "test_acc")) == list(
            range(6)
        )
