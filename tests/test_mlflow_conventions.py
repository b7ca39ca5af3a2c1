"""MLflow's own conventions as a run fills them in, read back through MlflowClient as the UI reads
them: the experiment kind, the standard source tags, dataset inputs, the logged model, system
metrics."""

import dataclasses
import json

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from benchmarks.registry import arch
from resnet.network import build_model
from tracking import names
from tracking.conventions import DataInput, Source
from tracking.tracker import connect

KIND = {names.TAG_EXPERIMENT_KIND: names.EXPERIMENT_KIND}


@pytest.fixture
def tracker(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts of a SQLite store go to ./mlruns
    return connect(store, "conventions")


def test_new_and_existing_experiments_open_on_their_training_runs(store, tracker):
    client = MlflowClient(store)
    assert client.get_experiment(tracker.experiment_id).tags.items() >= KIND.items()
    # made before resbench set the kind, or marked GenAI by MLflow's UI: fixed the next time it is
    # opened
    plain = client.create_experiment("older")
    marked = client.create_experiment(
        "marked", tags={names.TAG_EXPERIMENT_KIND: "genai_development_inferred"}
    )
    for name, exp_id in (("older", plain), ("marked", marked)):
        assert connect(store, name).experiment_id == exp_id
        assert (
            client.get_experiment(exp_id).tags[names.TAG_EXPERIMENT_KIND] == names.EXPERIMENT_KIND
        )


def test_standard_source_tags_beside_resbench_tags(tracker):
    source = Source(
        "resbench run", "0123abcd" * 5, "https://someone:TOKEN@github.com/owner/resbench.git"
    )
    with tracker.start_run(
        "e seed=0",
        {"lr": 0.1},
        {names.TAG_ENTRY: "e", names.TAG_GIT_COMMIT: "0123abcd" * 5},
        source=source,
    ) as run:
        pass
    tags = tracker.client.get_run(run.run_id).data.tags
    assert tags[names.TAG_SOURCE_NAME] == "resbench run" and tags[names.TAG_SOURCE_TYPE] == "LOCAL"
    assert tags[names.TAG_SOURCE_COMMIT] == "0123abcd" * 5
    assert tags[names.TAG_SOURCE_REPO] == "https://github.com/owner/resbench.git"  # no credentials
    assert tags[names.TAG_ENTRY] == "e" and tags[names.TAG_GIT_COMMIT] == "0123abcd" * 5
    with tracker.start_run("outside git", {}, {}, source=Source("resbench run", "unknown")) as run:
        pass
    tags = tracker.client.get_run(run.run_id).data.tags
    assert names.TAG_SOURCE_COMMIT not in tags and names.TAG_SOURCE_REPO not in tags


def _datasets(client, run_id) -> dict:
    """{context: dataset} of a run's dataset inputs."""
    out = {}
    for d in client.get_run(run_id).inputs.dataset_inputs:
        (context,) = [t.value for t in d.tags if t.key == names.TAG_DATASET_CONTEXT]
        out[context] = d.dataset
    return out


def test_training_and_test_sets_are_dataset_inputs(tracker):
    checksum = "c58f30108f718f92721af3b95e74349a"
    full = DataInput(
        "cifar10",
        checksum,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        50_000,
        10_000,
    )
    cut = DataInput("cifar10", checksum, full.source, 500, 100, limit_train=500, limit_test=100)
    ids = []
    for data in (full, cut):
        with tracker.start_run("r", {}, {}) as run:
            run.log_datasets(data)
        ids.append(run.run_id)
    sets = _datasets(tracker.client, ids[0])
    assert set(sets) == {names.CONTEXT_TRAINING, names.CONTEXT_EVALUATION}
    train, test = sets[names.CONTEXT_TRAINING], sets[names.CONTEXT_EVALUATION]
    assert train.name == test.name == "cifar10"
    assert train.digest.startswith(checksum[:8]) and train.digest != test.digest
    assert train.source_type == "http" and json.loads(train.source) == {"url": full.source}
    assert json.loads(train.profile) == {
        "split": "train",
        "images": 50_000,
        "labels": 50_000,
        "checksum": checksum,
    }
    assert json.loads(test.profile)["images"] == 10_000
    assert "mlflow_tensorspec" in json.loads(train.schema)
    # a limited run is another dataset in MLflow's eyes, with its own counts and limits
    cut_sets = _datasets(tracker.client, ids[1])
    profile = json.loads(cut_sets[names.CONTEXT_TRAINING].profile)
    assert profile["images"] == 500 and profile["limit"] == 500
    assert json.loads(cut_sets[names.CONTEXT_EVALUATION].profile)["limit"] == 100
    assert cut_sets[names.CONTEXT_TRAINING].digest != train.digest
    assert tracker.client.search_runs(
        [tracker.experiment_id], "dataset.name = 'cifar10'", max_results=5
    )


def test_folder_and_generated_sources(tracker):
    with tracker.start_run("r", {}, {}) as run:
        run.log_datasets(
            DataInput(
                "cifar10-jpeg-rebuild", "ab" * 16, "/data/cifar-10-batches-py", 50_000, 10_000
            )
        )
    with tracker.start_run("s", {}, {}) as syn:
        syn.log_datasets(
            DataInput("synthetic", "synthetic-64-32-0", "resnet.data.synthetic", 64, 32)
        )
    folder = _datasets(tracker.client, run.run_id)[names.CONTEXT_TRAINING]
    assert folder.source_type == "local" and json.loads(folder.source) == {
        "uri": "/data/cifar-10-batches-py"
    }
    generated = _datasets(tracker.client, syn.run_id)[names.CONTEXT_EVALUATION]
    assert generated.name == "synthetic" and generated.source_type == "code"
    assert json.loads(generated.profile)["checksum"] == "synthetic-64-32-0"


def test_logged_model_loads_back_with_the_same_outputs(store, tracker):
    torch.manual_seed(0)
    net = build_model(arch(layers=2, blocks=(1, 1), channels=(8, 16)))
    net.train()
    net(torch.randn(16, 3, 32, 32))  # moves BatchNorm's running statistics off their defaults
    net.eval()
    example = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with tracker.start_run("m seed=0", {"lr": 0.1}, {}) as run:
        run.log_metrics({"test_acc": 40.0}, step=0)
        run.log_metrics({"test_acc": 55.0}, step=1)
        run.log_metrics({names.TEST_ACCURACY: 55.0})
        model_id = run.log_model(net, example, step=1)
    client = tracker.client
    logged = client.get_logged_model(model_id)
    assert (
        logged.name == names.MODEL_NAME
        and logged.source_run_id == run.run_id
        and logged.status == "READY"
    )
    assert {m.key: m.value for m in logged.metrics} == {"test_acc": 55.0, names.TEST_ACCURACY: 55.0}
    assert [o.model_id for o in client.get_run(run.run_id).outputs.model_outputs] == [model_id]
    assert [m.value for m in client.get_metric_history(run.run_id, "test_acc")] == [
        40.0,
        55.0,
    ]  # no duplicates
    batch = torch.randn(5, 3, 32, 32)  # another batch size than the example's
    with torch.no_grad():
        expected = net(batch)
    with _use_tracking_uri(store):
        for uri in (f"runs:/{run.run_id}/model", f"models:/{model_id}"):
            loaded = mlflow.pytorch.load_model(uri)
            with torch.no_grad():
                assert torch.allclose(loaded(batch), expected, atol=1e-6), uri
        requirements = mlflow.pyfunc.get_model_dependencies(f"models:/{model_id}")
    with open(requirements) as f:
        assert f"torch=={torch.__version__.split('+')[0]}" in f.read().split()


def test_model_needs_a_batch_example(tracker):
    net = build_model(arch(layers=2, blocks=(1, 1), channels=(8, 16)))
    with tracker.start_run("m", {}, {}) as run, pytest.raises(ValueError, match="at least 2"):
        run.log_model(net, np.zeros((1, 3, 32, 32), np.float32))


def test_system_metrics_switch(tracker, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    import time

    runs = {}
    for on in (True, False):
        with tracker.start_run(f"system={on}", {}, {}, system_metrics=on) as run:
            time.sleep(1.0)
        runs[on] = tracker.client.get_run(run.run_id).data.metrics
    system = {k for k in runs[True] if k.startswith(names.SYSTEM_METRICS_PREFIX)}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
    assert not any(k.startswith(names.SYSTEM_METRICS_PREFIX) for k in runs[False])


# Through the one train function (benchmarks/jobs/train.py), as `resbench run` trains.


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished job with system metrics switched on (every 0.2 s), and one left at the CPU default
    (off)."""
    from benchmarks import registry
    from benchmarks.jobs.spec import DataSpec, JobSpec
    from benchmarks.jobs.train import train_job
    from benchmarks.registry import Entry, Paper
    from resnet.train import ExecConfig, TrainConfig
    from tests.conftest import fresh_uri

    tmp = tmp_path_factory.mktemp("job")
    uri = fresh_uri(tmp)
    entry = Entry(
        "tiny/conventions",
        "tiny entry for the conventions test",
        arch(layers=2, blocks=(1, 1), channels=(8, 16)),
        TrainConfig(epochs=2),
        Paper(accuracy=50.0),
    )
    spec = JobSpec(
        entry=entry.name,
        data=DataSpec("synthetic", limit_train=64, limit_test=32),
        ex=ExecConfig(device="cpu"),
        tracking_uri=uri,
        experiment="job",
        checkpoint_dir=str(tmp / "ckpt"),
    )
    with pytest.MonkeyPatch.context() as mp, registry.temporary([entry]):
        mp.chdir(tmp)
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        on = train_job(dataclasses.replace(spec, seed=0, system_metrics=True))
        default = train_job(dataclasses.replace(spec, seed=1))
    return uri, entry, MlflowClient(uri), on, default


def test_a_trained_run_fills_in_mlflows_fields(trained):
    uri, _, client, run_id, _ = trained
    run = client.get_run(run_id)
    tags = run.data.tags
    assert tags[names.TAG_SOURCE_NAME] == "resbench run" and tags[names.TAG_SOURCE_TYPE] == "LOCAL"
    # "unknown" outside git
    assert tags.get(names.TAG_SOURCE_COMMIT, "unknown") == tags[names.TAG_GIT_COMMIT]
    sets = _datasets(client, run_id)
    assert {d.name for d in sets.values()} == {"synthetic"}
    assert json.loads(sets[names.CONTEXT_TRAINING].profile)["images"] == 64
    assert json.loads(sets[names.CONTEXT_EVALUATION].profile)["limit"] == 32
    assert (
        json.loads(sets[names.CONTEXT_TRAINING].profile)["checksum"]
        == tags[names.TAG_DATA_CHECKSUM]
    )
    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.status == "READY" and output.step == 1  # the last epoch
    assert {m.key: m.value for m in logged.metrics}[names.TEST_ACCURACY] == run.data.metrics[
        names.TEST_ACCURACY
    ]


def _model_id(client: MlflowClient, run_id: str) -> str:
    (output,) = client.get_run(run_id).outputs.model_outputs
    return output.model_id


def test_the_logged_model_is_the_trained_network(trained):
    """On the run's own test images, through the test pipeline, the logged model scores exactly the
    test accuracy the run logged for its last epoch."""
    from resnet.data import synthetic
    from resnet.pipeline import DeviceLoader

    uri, _, client, run_id, _ = trained
    with _use_tracking_uri(uri):
        model = mlflow.pytorch.load_model(f"models:/{_model_id(client, run_id)}")
    test = synthetic(64, 32)
    loader = DeviceLoader(test.test_x, test.test_y, 128, torch.device("cpu"), train=False)
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    accuracy = client.get_run(run_id).data.metrics[names.TEST_ACCURACY]
    assert 100.0 * correct / len(test.test_y) == pytest.approx(accuracy)


def test_mlflow_client_alone_lists_every_artifact_of_a_run(trained, tmp_path, monkeypatch):
    """No process-wide tracking URI (it names another, empty store here): the run's artifacts and
    its model's files are listed and fetched through `MlflowClient(uri)` alone."""
    uri, _, _, run_id, _ = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client = MlflowClient(uri)

    def walk(path=None):
        for a in client.list_artifacts(run_id, path):
            yield from walk(a.path) if a.is_dir else [a.path]

    with _use_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}"):
        assert sorted(walk()) == sorted([names.ARTIFACT_CONFIG, names.ARTIFACT_CURVE])
        model_id = _model_id(client, run_id)
        files = {a.path for a in client.list_logged_model_artifacts(model_id)}
        assert {"MLmodel", "requirements.txt", "input_example.json"} <= files
        local = client.download_artifacts(run_id, "", str(tmp_path / "run"))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(walk())
    assert local


def test_the_load_snippet_in_the_docs_works_as_written(trained):
    """docs/TRACKING.md's code, run with only the store and run id put in, gives the trained
    network's predictions, and its plain nn.Module gives the same outputs."""
    import re

    from benchmarks import registry
    from tests.conftest import ROOT

    uri, entry, _, run_id, _ = trained
    doc = (ROOT / "docs" / "TRACKING.md").read_text()
    section = doc[doc.index("## Loading a trained model") : doc.index("## Runs survive crashes")]
    load, plain = re.findall(r"```python\n(.*?)```", section, re.S)
    load = load.replace('"sqlite:///mlflow.db", "RUN_ID"', f"{uri!r}, {run_id!r}")
    plain = plain.replace('"table1/row1"', repr(entry.name))
    scope: dict = {}
    with _use_tracking_uri(mlflow.get_tracking_uri()), registry.temporary([entry]):
        exec(compile(load, "docs/TRACKING.md", "exec"), scope)
        exec(compile(plain, "docs/TRACKING.md", "exec"), scope)
    model, net, images = scope["model"], scope["net"], scope["images"]
    assert scope["predicted"].shape == (8,)
    with pytest.raises(NotImplementedError):  # as the snippet says: the exported graph refuses it
        model.eval()
    with torch.no_grad():
        assert torch.allclose(net(images), model(images), atol=1e-5)
        assert torch.equal(model(images), model(images))  # inference mode: no statistics move


def test_system_metrics_follow_the_jobs_switch(trained):
    _, _, client, on, default = trained
    assert any(k.startswith(names.SYSTEM_METRICS_PREFIX) for k in client.get_run(on).data.metrics)
    assert not any(
        k.startswith(names.SYSTEM_METRICS_PREFIX) for k in client.get_run(default).data.metrics
    )
