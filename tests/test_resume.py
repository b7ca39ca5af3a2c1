"""Runs survive kills, Ctrl-C, full disks, divergence and concurrent writers without losing results,
and a run killed on one machine is continued (or, without a checkpoint in the store, replaced) on
another."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import registry
from benchmarks.cli.main import main
from resnet import checkpoint
from tests.conftest import ROOT, fresh_uri, resbench
from tracking import names
from tracking.runlogger import RunLogger

ARGS = [
    "test/tiny",
    "--epochs",
    "3",
    "--data",
    "synthetic",
    "--limit-train",
    "256",
    "--limit-test",
    "64",
    "--device",
    "cpu",
    "--deterministic",
]
TINY = ROOT / "tests" / "entries"
ENV = {**os.environ, registry.ENV_PATH: str(TINY), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def tiny_registered():
    with registry.temporary():
        registry.load_file(TINY / "tiny.py")
        yield


def runs(uri, experiment):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id]) if exp else []


def curves(client, run_id):
    return {
        k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
        for k in ("train_loss", "test_loss", "test_acc")
    }


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run, the reference every resumed run must match bit for bit."""
    tmp = tmp_path_factory.mktemp("straight")
    uri = fresh_uri(tmp)
    proc = resbench("run", *ARGS, "--tracking-uri", uri, cwd=tmp, env=ENV)
    assert proc.returncode == 0, proc.stderr
    client, (run,) = runs(uri, names.DEFAULT_EXPERIMENT)
    return curves(client, run.info.run_id), run.data.metrics


def start_and_interrupt(tmp, uri, sig):
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.cli", "run", *ARGS, "--tracking-uri", uri],
        cwd=tmp,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not list(tmp.glob(".resbench/checkpoints/*/state.pt")):
        assert child.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    child.send_signal(sig)  # mid-way through epoch 1: epoch 0 is checkpointed
    _, err = child.communicate(timeout=60)
    return child.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGKILL, "RUNNING"), (signal.SIGINT, "KILLED")])
def test_interrupted_run_resumes_into_the_same_run(tmp_path, straight, sig, status):
    uri = fresh_uri(tmp_path)
    code, err = start_and_interrupt(tmp_path, uri, sig)
    client, (run,) = runs(uri, names.DEFAULT_EXPERIMENT)
    # SIGKILL leaves no chance to say anything; Ctrl-C marks KILLED
    assert run.info.status == status
    if sig == signal.SIGINT:
        assert code == 130 and "rerun to resume" in err and "Traceback" not in err
    proc = resbench("run", *ARGS, "--tracking-uri", uri, cwd=tmp_path, env=ENV)
    assert proc.returncode == 0, proc.stderr
    client, (resumed,) = runs(uri, names.DEFAULT_EXPERIMENT)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    reference_curves, reference_metrics = straight
    got = curves(client, resumed.info.run_id)
    assert [s for s, _ in got["test_acc"]] == [0, 1, 2]  # exactly one point per epoch
    assert got == reference_curves  # bitwise, with --deterministic on CPU
    assert resumed.data.metrics[names.TEST_ACCURACY] == reference_metrics[names.TEST_ACCURACY]
    assert not list(tmp_path.glob(".resbench/checkpoints/*/state.pt"))  # cleared once finished


@pytest.mark.slow
@pytest.mark.parametrize("store_has_checkpoint", [True, False])
def test_a_run_killed_on_one_machine_is_continued_on_another(
    tmp_path, straight, store_has_checkpoint
):
    """Two "machines": two checkpoint folders against one store. Machine a is killed once epoch 0 is
    in the store; `reproduce` on machine b continues that run from the store's checkpoint, or, when
    the store has none, closes it KILLED (superseded by the new run) and trains anew. Either way the
    report counts one run."""
    uri = fresh_uri(tmp_path)
    machine = lambda name: {**ENV, "RESBENCH_CHECKPOINT_DIR": str(tmp_path / name)}  # noqa: E731
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.cli", "run", *ARGS, "--tracking-uri", uri],
        cwd=tmp_path,
        env=machine("a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client, deadline = MlflowClient(uri), time.time() + 180
    while True:  # until epoch 0 is logged: its checkpoint went to the store just before
        assert child.poll() is None and time.time() < deadline, "epoch 0 never reached the store"
        found = runs(uri, names.DEFAULT_EXPERIMENT)[1]
        if found and client.get_metric_history(found[0].info.run_id, "test_acc"):
            break
        time.sleep(0.05)
    child.kill()
    child.communicate(timeout=60)
    (first,) = runs(uri, names.DEFAULT_EXPERIMENT)[1]
    artifacts = Path(first.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / names.ARTIFACT_CHECKPOINT).is_file()
    if not store_has_checkpoint:
        shutil.rmtree(artifacts / "checkpoint")

    proc = resbench(
        "reproduce",
        "--only",
        "test/tiny",
        "--seeds",
        "1",
        *ARGS[1:],
        "--no-check",
        "--tracking-uri",
        uri,
        "--output",
        str(tmp_path / "out"),
        cwd=tmp_path,
        env=machine("b"),
    )
    assert proc.returncode == 0, proc.stderr
    client, found = runs(uri, names.DEFAULT_EXPERIMENT)
    done = [r for r in found if r.info.status == "FINISHED"]
    # bitwise, every epoch once
    assert len(done) == 1 and curves(client, done[0].info.run_id) == straight[0]
    if store_has_checkpoint:
        assert [r.info.run_id for r in found] == [first.info.run_id]  # the same run, continued
    else:
        old = client.get_run(first.info.run_id)
        assert len(found) == 2 and old.info.status == "KILLED"
        assert old.data.tags[names.TAG_SUPERSEDED_BY] == done[0].info.run_id
    assert not (Path(done[0].info.artifact_uri.removeprefix("file://")) / "checkpoint").exists()
    table = pd.read_csv(tmp_path / "out" / "report.csv").set_index("entry")
    assert table.loc["test/tiny", "n"] == 1


@pytest.mark.slow
def test_full_disk_while_checkpointing(tmp_path, monkeypatch, straight, tiny_registered):
    monkeypatch.chdir(tmp_path)
    uri = fresh_uri(tmp_path)
    real_save, calls = checkpoint.torch.save, []

    def save(obj, f):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    result = CliRunner().invoke(main, ["run", *ARGS, "--tracking-uri", uri])
    assert result.exit_code == 1  # the run failed; bad input would be 2
    assert (
        "error: test/tiny seed=0: [Errno 28] No space left on device" in result.stderr.splitlines()
    )
    client, (run,) = runs(uri, names.DEFAULT_EXPERIMENT)
    assert run.info.status == "FAILED" and "No space left" in run.data.tags[names.TAG_FAILURE]
    (state,) = tmp_path.glob(".resbench/checkpoints/*/state.pt")
    assert checkpoint.load(state)["epoch"] == 0  # the last good checkpoint survives intact
    assert not list(tmp_path.glob(".resbench/checkpoints/*/*.tmp"))

    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    result = CliRunner().invoke(main, ["run", *ARGS, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    client, (resumed,) = runs(uri, names.DEFAULT_EXPERIMENT)
    assert resumed.info.status == "FINISHED" and names.TAG_FAILURE not in resumed.data.tags
    assert curves(client, resumed.info.run_id) == straight[0]


def test_ctrl_c_inside_a_store_write_lands_after_it(tmp_path, monkeypatch, tiny_registered):
    """The interrupt waits for the epoch's write to finish, so the run can always be marked
    KILLED."""
    monkeypatch.chdir(tmp_path)
    uri = fresh_uri(tmp_path)
    real_log = RunLogger.log_metrics

    def interrupted(self, metrics, step=0):
        if step == 0:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives while epoch 0 is being written
        real_log(self, metrics, step)

    monkeypatch.setattr(RunLogger, "log_metrics", interrupted)
    result = CliRunner().invoke(main, ["run", *ARGS, "--tracking-uri", uri])
    assert result.exit_code == 130 and "rerun to resume" in result.stderr
    client, (run,) = runs(uri, names.DEFAULT_EXPERIMENT)
    assert run.info.status == "KILLED"
    assert [s for s, _ in curves(client, run.info.run_id)["test_acc"]] == [
        0
    ]  # the write went in whole


def test_divergence_fails_the_run_at_once(tmp_path, monkeypatch, tiny_registered):
    monkeypatch.chdir(tmp_path)
    uri = fresh_uri(tmp_path)
    result = CliRunner().invoke(main, ["run", *ARGS, "--set", "lr=1e30", "--tracking-uri", uri])
    assert result.exit_code == 1 and "diverged at epoch 0" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    client, (run,) = runs(uri, names.DEFAULT_EXPERIMENT)
    assert run.info.status == "FAILED" and run.data.tags[names.TAG_DIVERGED_EPOCH] == "0"
    assert names.TEST_ACCURACY not in run.data.metrics
    assert not list(tmp_path.glob(".resbench/checkpoints/*/state.pt"))


@pytest.mark.slow
def test_concurrent_runs_on_a_fresh_sqlite_store(tmp_path):
    """Processes that create the store at the same moment: none crashes, no point is lost."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    args = [
        "test/tiny",
        "--epochs",
        "2",
        "--data",
        "synthetic",
        "--limit-train",
        "128",
        "--limit-test",
        "32",
        "--device",
        "cpu",
        "--tracking-uri",
        uri,
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.cli", "run", *args, "--seed", str(s)],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    client, found = runs(uri, names.DEFAULT_EXPERIMENT)
    assert sorted(r.data.tags[names.TAG_SEED] for r in found) == ["0", "1", "2"]
    for r in found:
        assert r.info.status == "FINISHED"
        for key in names.EPOCH_METRICS:
            assert sorted(m.step for m in client.get_metric_history(r.info.run_id, key)) == [0, 1]


def test_full_disk_while_writing_the_report(tmp_path, monkeypatch):
    """The old report survives whole; no temporary file is left; one line says why."""
    monkeypatch.chdir(tmp_path)
    uri = fresh_uri(tmp_path)
    args = [
        "report",
        "--data",
        "synthetic",
        "--tracking-uri",
        uri,
        "--experiment",
        "Default",
        "--format",
        "html",
        "--output",
        "out.html",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    before = (tmp_path / "out.html").read_text()

    def full(fd):  # the disk fills as the written report is flushed to it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = CliRunner().invoke(main, args)
    monkeypatch.undo()
    assert (
        result.exit_code == 2
        and result.stderr.strip() == "error: [Errno 28] No space left on device"
    )
    assert (tmp_path / "out.html").read_text() == before
    assert not list(tmp_path.glob("*.tmp"))


def test_unwritable_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--data",
            "synthetic",
            "--tracking-uri",
            fresh_uri(tmp_path),
            "--experiment",
            "Default",
            "--output",
            str(tmp_path / "a-file" / "results") + "/",
        ],
    )
    assert result.exit_code == 2 and "Not a directory" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.slow
def test_a_run_is_resumed_only_in_its_own_mode(tmp_path, monkeypatch, straight, tiny_registered):
    """A bf16 job fails after epoch 0; the fp32 job of the same entry and seed starts its own run
    and says so; the bf16 job then continues its own run. Each run finishes in its mode."""
    monkeypatch.chdir(tmp_path)
    uri = fresh_uri(tmp_path)
    real_save, calls = checkpoint.torch.save, []

    def save(obj, f):
        calls.append(1)
        if len(calls) == 2:  # epoch 1's checkpoint
            raise OSError(errno.EIO, "injected crash")
        real_save(obj, f)

    bf16 = ["run", *ARGS, "--precision", "bf16", "--tracking-uri", uri]
    monkeypatch.setattr(checkpoint.torch, "save", save)
    assert CliRunner().invoke(main, bf16).exit_code == 1
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    _, (crashed,) = runs(uri, names.DEFAULT_EXPERIMENT)
    assert crashed.info.status == "FAILED"

    result = CliRunner().invoke(main, ["run", *ARGS, "--precision", "fp32", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert (
        "note: test/tiny seed=0: a bf16, fast pipeline, not compiled run exists (FAILED); "
        "this fp32, fast pipeline, not compiled job starts its own run"
    ) in result.stderr.splitlines()
    result = CliRunner().invoke(main, bf16)
    assert result.exit_code == 0, result.output
    assert "note:" not in result.stderr

    client, found = runs(uri, names.DEFAULT_EXPERIMENT)
    by_precision = {r.data.params["precision"]: r for r in found}
    assert sorted(by_precision) == ["bf16", "fp32"] and len(found) == 2
    assert by_precision["bf16"].info.run_id == crashed.info.run_id  # continued, not replaced
    for precision, run in by_precision.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags[names.TAG_PRECISION] == precision
        assert [s for s, _ in curves(client, run.info.run_id)["test_acc"]] == [0, 1, 2]
    # the fp32 run is the uninterrupted fp32 run, bit for bit: nothing of the bf16 run in it
    assert curves(client, by_precision["fp32"].info.run_id) == straight[0]
    assert curves(client, crashed.info.run_id) != straight[0]
