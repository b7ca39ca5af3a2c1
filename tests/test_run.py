"""End to end: `resbench run` trains through the real CLI (in this process, with click's runner)
and MLflow holds everything it logged."""

import json
import re
import subprocess

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks.cli.main import main
from tests.conftest import ROOT, fresh_uri
from tracking import names


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    uri = fresh_uri(tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # checkpoints and anything else written land in the test's folder
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = CliRunner().invoke(
            main,
            [
                "run",
                "table1/row1",
                "--epochs",
                "2",
                "--data",
                "synthetic",
                "--limit-train",
                "256",
                "--limit-test",
                "128",
                "--device",
                "cpu",
                "--seed",
                "3",
                "--tracking-uri",
                uri,
                "--experiment",
                "e2e",
            ],
            catch_exceptions=False,
        )
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e")
    (run,) = client.search_runs([exp.experiment_id])
    return client, run


def test_run_is_finished_and_named(finished_run):
    client, run = finished_run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "table1/row1 seed=3"


def test_params_are_flat_model_and_training_fields(finished_run):
    _, run = finished_run
    p = run.data.params
    assert json.loads(p["blocks"]) == [2, 2, 2, 2] and json.loads(p["channels"]) == [
        16,
        32,
        64,
        128,
    ]
    assert json.loads(p["conv_kernel"]) == [5, 5, 5, 5] and p["pool_kernel"] == "4"
    assert p["optimizer"] == "adam" and float(p["lr"]) == 0.1 and p["t_max"] == "200"
    assert p["epochs"] == "2" and p["batch_size"] == "128" and p["seed"] == "3"
    assert p["weight_decay"] == "0.0" and p["data"] == "synthetic"


def test_tags(finished_run):
    _, run = finished_run
    t = run.data.tags
    assert t[names.TAG_ENTRY] == "table1/row1" and t[names.TAG_GROUP] == "table1"
    assert t[names.TAG_PAPER_ACCURACY] == "84.8" and t[names.TAG_PAPER_PARAMS] == "1.9M"
    assert t[names.TAG_DEVICE] == "cpu" and t[names.TAG_TORCH]
    assert t[names.TAG_PRECISION] == "fp32" and t[names.TAG_TF32] == "off"  # auto, on a CPU
    assert set(t[names.TAG_OVERRIDES].split(",")) == {"epochs", "limit_train", "limit_test"}
    assert t[names.TAG_CONFIG_HASH] != t[names.TAG_ENTRY_HASH]
    assert "Paper: 84.8% test accuracy" in t[names.TAG_DESCRIPTION]  # as printed
    commit = t[
        names.TAG_GIT_COMMIT
    ]  # a commit of this checkout (others may have landed since the run)
    assert re.fullmatch("[0-9a-f]{40}", commit), commit
    assert (
        subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT).returncode == 0
    )


def test_curves_have_one_point_per_epoch(finished_run):
    client, run = finished_run
    for key in names.EPOCH_METRICS:
        hist = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in hist) == [0, 1], key
    lrs = [
        m.value
        for m in sorted(client.get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)
    ]
    assert lrs[0] == pytest.approx(0.1) and lrs[1] < lrs[0]  # cosine, stepped once per epoch


def test_summary_metrics(finished_run):
    client, run = finished_run
    m = run.data.metrics
    assert m[names.PARAM_COUNT] == 1_922_074
    last = max(client.get_metric_history(run.info.run_id, "test_acc"), key=lambda x: x.step).value
    assert m[names.TEST_ACCURACY] == last
    assert m[names.BEST_TEST_ACCURACY] >= last
    assert 0 <= m[names.TEST_ACCURACY] <= 100 and m[names.WALL_SECONDS] > 0


def test_artifacts(finished_run, tmp_path):
    client, run = finished_run
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert top == {names.ARTIFACT_CONFIG, names.ARTIFACT_CURVE}  # the network is the logged model
    mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        dst_path=str(tmp_path),
        tracking_uri=client._tracking_client.tracking_uri,
    )
    cfg = json.loads((tmp_path / names.ARTIFACT_CONFIG).read_text())
    assert cfg["entry"] == "table1/row1" and cfg["train"]["epochs"] == 2
    assert (tmp_path / names.ARTIFACT_CURVE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
