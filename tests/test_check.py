"""The pre-flight: a tiny entry passes, one whose model breaks at forward time is caught before
training."""

import pytest
from click.testing import CliRunner

from benchmarks import check, registry
from benchmarks.check import CheckError
from benchmarks.cli.main import main
from benchmarks.jobs import train as train_mod
from benchmarks.jobs.spec import DataSpec, JobSettings
from benchmarks.registry import Entry, Paper, arch
from benchmarks.report import build, render
from benchmarks.reproduce import reproduce
from resnet.config import ExecConfig, TrainConfig
from resnet.network import ResNet

CPU = ExecConfig(device="cpu")
GOOD = Entry(
    "tiny/good",
    "a tiny entry",
    arch(layers=2, blocks=(1, 1), channels=(8, 16)),
    TrainConfig(epochs=2, batch_size=16),
    Paper(params="7,666"),
)
BROKEN = Entry(
    "tiny/broken",
    "a tiny entry whose model breaks at forward time",
    arch(layers=2, blocks=(1, 1), channels=(12, 16)),
    TrainConfig(epochs=2, batch_size=16),
)


@pytest.fixture
def broken_forward(monkeypatch):
    """BROKEN's model (12 channels first) raises when called, as a shape bug would; the others
    run."""
    forward = ResNet.forward

    def patched(self, x):
        if self.cfg.channels[0] == 12:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (planted)")
        return forward(self, x)

    monkeypatch.setattr(ResNet, "forward", patched)


def test_estimate_is_steps_per_epoch_times_epochs():
    # 50,000 / 128 -> 391 steps of 0.1 s and 10,000 / 128 -> 79 test batches of 0.05 s, 50 epochs
    assert check.estimate_seconds(0.1, 0.05, 50_000, 10_000, 128, 50) == pytest.approx(
        50 * (39.1 + 3.95)
    )


def test_a_good_entry_passes_and_a_broken_one_is_caught(broken_forward):
    df = check.run_checks([GOOD, BROKEN], lambda e: e.train, CPU, steps=2, n_train=160, n_test=40)
    good, bad = df.set_index("entry").loc[GOOD.name], df.set_index("entry").loc[BROKEN.name]
    assert (
        good["status"] == "ok" and good["params vs print"] == "matches" and good["device"] == "cpu"
    )
    assert good["train step (ms)"] > 0 and good["estimate (s)"] == pytest.approx(
        check.estimate_seconds(
            good["train step (ms)"] / 1000, good["test batch (ms)"] / 1000, 160, 40, 16, 2
        )
    )
    assert bad["status"] == "BROKEN" and "RuntimeError: mat1 and mat2" in bad["problem"]
    text = check.format_table(df, 2)
    assert "total: 2 run(s) of 2 entries" in text and "broken: tiny/broken: RuntimeError" in text


@pytest.fixture
def tiny_registered():
    with registry.temporary([GOOD, BROKEN]):
        yield


def test_check_command_exits_non_zero_on_a_broken_entry(broken_forward, tiny_registered):
    cli = CliRunner()
    res = cli.invoke(
        main,
        [
            "check",
            "tiny/*",
            "--device",
            "cpu",
            "--steps",
            "1",
            "--limit-train",
            "64",
            "--limit-test",
            "16",
        ],
    )
    assert res.exit_code == 1 and "error: 1 broken entry: tiny/broken" in res.output
    assert "tiny/good" in res.output and "BROKEN" in res.output
    res = cli.invoke(
        main, ["check", "tiny/good", "--device", "cpu", "--steps", "1", "--limit-train", "64"]
    )
    assert res.exit_code == 0 and "1 run(s) of 1 entry" in res.output
    assert cli.invoke(main, ["check"]).exit_code == 2  # names or --all


def test_reproduce_stops_before_training_a_broken_entry(
    broken_forward, tiny_registered, monkeypatch, store, tmp_path
):
    trained = []
    monkeypatch.setattr(train_mod, "train", lambda *args, **kwargs: trained.append(1) or 1 / 0)
    monkeypatch.setattr(build, "build", lambda *args, **kwargs: None)  # the report is not at issue
    monkeypatch.setattr(render, "write", lambda *args, **kwargs: [])
    shared = JobSettings(
        data=DataSpec("synthetic", limit_train=64, limit_test=16),
        ex=CPU,
        tracking_uri=store,
        experiment="t",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    with pytest.raises(
        CheckError, match="pre-flight: 1 broken entry, nothing trained; tiny/broken"
    ):
        reproduce([GOOD, BROKEN], 1, shared, tmp_path / "out", log=lambda m: None)
    assert not trained
    # skipped, the pre-flight lets both through to training
    _, failed = reproduce(
        [GOOD, BROKEN], 1, shared, tmp_path / "out", log=lambda m: None, check=False
    )
    assert len(trained) == 2 and failed == ["tiny/good seed=0", "tiny/broken seed=0"]
