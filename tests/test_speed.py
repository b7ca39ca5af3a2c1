"""`resbench speed` and the FLOP counts it reports (timings are printed, never asserted)."""

import csv

import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import registry
from benchmarks.cli.main import main
from benchmarks.speed import SpeedConfig, parse_pipelines
from resnet.flops import flops_per_image
from resnet.model import ConfigError, ResNetConfig, _conv_out
from tracking import names


def analytic_flops(cfg: ResNetConfig) -> tuple[int, int]:
    """(forward, first conv) FLOPs per image by hand: 2 per multiply-add of every conv and the
    linear layer."""

    def conv(c_in, c_out, k, side_out):
        return 2 * c_in * c_out * k * k * side_out * side_out

    first = conv(3, cfg.channels[0], 3, 32)
    total, side, c_in = first, 32, cfg.channels[0]
    for i in range(cfg.layers):
        for j in range(cfg.blocks[i]):
            stride = 2 if i > 0 and j == 0 else 1
            out = _conv_out(side, cfg.conv_kernel[i], stride, cfg.conv_kernel[i] // 2)
            total += conv(c_in, cfg.channels[i], cfg.conv_kernel[i], out) + conv(
                cfg.channels[i], cfg.channels[i], cfg.conv_kernel[i], out
            )
            if stride != 1 or c_in != cfg.channels[i]:
                total += conv(c_in, cfg.channels[i], cfg.skip_kernel[i], out)
            side, c_in = out, cfg.channels[i]
    return total + 2 * cfg.pooled_features * cfg.num_classes, first


@pytest.mark.parametrize("name", ["table1/row1", "table1/row4", "table1/row5", "paper/final"])
def test_flops_match_a_hand_count(name):
    cfg = registry.get(name).model
    forward, first = analytic_flops(cfg)
    f = flops_per_image(cfg)
    assert f.forward == forward
    # Backward: a weight gradient per layer, an input gradient per layer but the first (its input is
    # data).
    assert f.train == 3 * forward - first


def test_paper_final_matches_the_issue_floor():
    f = flops_per_image(registry.get("paper/final").model)
    total = 80 * (50_000 * f.train + 10_000 * f.forward)  # 80 epochs of training plus test passes
    assert total == pytest.approx(7.9e15, rel=0.01)


def test_speed_config_checks_pipelines():
    assert parse_pipelines(" fast , reference,") == ("fast", "reference")
    for bad in [("fast", "bogus"), (), ("fast", "fast")]:
        with pytest.raises(ConfigError, match="^pipelines:"):
            SpeedConfig(pipelines=bad)


@pytest.mark.slow
def test_speed_command_prints_and_logs_a_speed_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # In process (test_cli_errors runs the console entry point itself): saves the imports.
    result = CliRunner().invoke(
        main,
        [
            "speed",
            "table1/row1",
            "--data",
            "synthetic",
            "--limit-train",
            "32",
            "--limit-test",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--batch-size",
            "8",
            "--device",
            "cpu",
            "--tracking-uri",
            uri,
            "--experiment",
            "speed",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["pipeline", "device"] and "x reference" in lines[0]
    assert lines[1].split()[:3] == ["fast", "cpu", "fp32"] and lines[2].split()[:3] == [
        "reference",
        "cpu",
        "fp32",
    ]
    assert "FLOPs per image" in result.stdout

    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("speed").experiment_id],
        f"tags.`{names.TAG_KIND}` = '{names.KIND_SPEED}'",
    )
    assert run.info.status == "FINISHED" and run.info.run_name == "speed table1/row1"
    assert (
        run.data.tags[names.TAG_ENTRY] == "table1/row1" and run.data.tags[names.TAG_DEVICE] == "cpu"
    )
    p, m = run.data.params, run.data.metrics
    assert p["steps"] == "2" and p["batch_size"] == "8" and p["pipelines"] == "fast,reference"
    f = flops_per_image(registry.get("table1/row1").model)
    assert m[names.FLOPS_FORWARD] == f.forward and m[names.FLOPS_TRAIN] == f.train
    for pipeline in ("fast", "reference"):
        for key in names.SPEED_METRICS:
            assert m[f"{pipeline}.{key}"] > 0, (pipeline, key)
    ratio = m["fast.train_images_per_second"] / m["reference.train_images_per_second"]
    assert m[names.SPEEDUP_TRAIN] == pytest.approx(ratio)
    table = client.download_artifacts(run.info.run_id, names.ARTIFACT_SPEED_TABLE, str(tmp_path))
    with open(table) as fh:
        assert [r["pipeline"] for r in csv.DictReader(fh)] == ["fast", "reference"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--pipelines", "fast,slow"],
            "error: pipelines: expected distinct names from fast, reference, got fast,slow",
        ),
        (
            ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"],
            "error: device: ",
        ),
        (["table1/row99"], "error: unknown entry 'table1/row99'"),
    ],
)
def test_speed_rejects_bad_input_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(
        main,
        ["speed", *args, "--data", "synthetic", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"],
    )
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message)
    assert not (tmp_path / "m.db").exists()  # rejected before anything was created
