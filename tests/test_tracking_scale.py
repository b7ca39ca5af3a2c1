"""The tracking side at scale: generated stores, bulk metric histories, filtered
searches, and the report they feed, which must not change; parameters and FLOPs by formula.

The timings themselves are benchmarks (scripts/bench_tracking.py), not tests.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from benchmarks import registry, selection
from benchmarks.runkey import Mode
from benchmarks.storegen import StoreSpec, generate
from resnet import flops
from resnet.model import ResNetConfig, count_parameters
from tests.conftest import fresh_uri, resbench
from tracking import names, query
from tracking.tracker import connect

EPOCHS = 3
SPEC = StoreSpec(runs=22, epochs=EPOCHS)  # 11 entries (table1/*, paper/*) x seeds 0 and 1
VARIANT = selection.Variant.of({"epochs": EPOCHS}, SPEC.limit_train, SPEC.limit_test)
KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")
GPU_DEFAULT = Mode("bf16", "fast", "off")  # what --precision auto runs in on a GPU


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A store of SPEC's runs, two runs on other data, and one run whose last epoch was logged
    twice."""
    tmp = tmp_path_factory.mktemp("scale")
    uri = fresh_uri(tmp)
    cwd = os.getcwd()
    os.chdir(tmp)  # the experiment's artifact root is relative to the working directory
    try:
        ids = generate(uri, "t", SPEC)
        other = generate(
            uri, "t", dataclasses.replace(SPEC, runs=2, data="cifar10", limit_train=0, limit_test=0)
        )
        logger = connect(uri, "t").reopen(ids[0])
        # a step logged again
        logger.log_metrics({"test_acc": 12.5, "train_loss": float("nan")}, step=EPOCHS - 1)
        logger.finish("FINISHED")
    finally:
        os.chdir(cwd)
    return uri, ids, other


def test_generated_runs_are_finished_runs_of_their_entries(generated):
    uri, ids, _ = generated
    runs = selection.load_runs(uri, "t")
    assert set(ids) <= set(runs["run_id"]) and runs["status"].eq("FINISHED").all()
    for e in [e for e in registry.entries() if e.group in ("table1", "paper")]:
        mine = runs[selection.matching(runs, e, VARIANT, "synthetic", GPU_DEFAULT)]
        assert sorted(selection.counted(mine)["seed"]) == [0, 1], e.name
        assert set(mine["key"]) == {VARIANT.key(e, "synthetic", SPEC.checksum, GPU_DEFAULT)}
    history = MlflowClient(uri).get_metric_history(ids[1], "test_acc")
    assert [m.step for m in history] == list(range(EPOCHS))


@pytest.mark.slow
def test_generated_run_records_what_a_real_run_records(tmp_path):
    """Same params, resbench tags and metrics as `resbench run` writes, and the same key (in the
    precision the CPU run computed in)."""
    uri = fresh_uri(tmp_path)
    real = resbench(
        "run",
        "table1/row1",
        "--data",
        "synthetic",
        "--epochs",
        "2",
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--device",
        "cpu",
        "--tracking-uri",
        uri,
        "--experiment",
        "t",
        cwd=tmp_path,
    )
    assert real.returncode == 0, real.stderr
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        spec = StoreSpec(runs=1, epochs=2, entries=("table1/row1",), precision="fp32")
        [made] = generate(uri, "t", spec)
    finally:
        os.chdir(cwd)
    client = MlflowClient(uri)
    [real_run] = [
        r
        for r in client.search_runs([client.get_experiment_by_name("t").experiment_id])
        if r.info.run_id != made
    ]
    gen = client.get_run(made).data
    ours = lambda tags: {k: v for k, v in tags.items() if k.startswith(("resbench.", "paper."))}  # noqa: E731
    assert set(gen.params) == set(real_run.data.params)
    assert set(ours(gen.tags)) == set(ours(real_run.data.tags))
    assert set(gen.metrics) == {k for k in real_run.data.metrics if not k.startswith("system/")}
    for tag in (
        names.TAG_CONFIG_HASH,
        names.TAG_ENTRY_HASH,
        names.TAG_IDENTITY,
        names.TAG_OVERRIDES,
        names.TAG_DATA_SOURCE,
        names.TAG_DATA_CHECKSUM,
        names.TAG_ENTRY_VERSION,
        names.TAG_DESCRIPTION,
    ):
        assert gen.tags[tag] == real_run.data.tags[tag], tag


def test_bulk_histories_equal_one_by_one(generated):
    uri, ids, other = generated
    wanted = [*ids, *other, ids[0]]  # a repeated id, a step logged twice, a NaN
    bulk = query.metric_histories(uri, wanted, KEYS)
    assert bulk.equals(query.metric_histories(uri, wanted, KEYS, bulk=False))
    assert len(bulk) == len(ids + other) * EPOCHS
    assert bulk.set_index(["run_id", "epoch"]).loc[(ids[0], EPOCHS - 1), "test_acc"] == 12.5


def test_bulk_histories_in_several_queries(generated, monkeypatch):
    uri, ids, _ = generated
    expected = query.metric_histories(uri, ids, KEYS, bulk=False)
    monkeypatch.setattr(query, "SQL_RUNS", 3)
    assert query.metric_histories(uri, ids, KEYS).equals(expected)


def test_histories_of_no_runs_and_no_values(generated):
    uri, ids, _ = generated
    assert list(query.metric_histories(uri, [], KEYS).columns) == ["run_id", "epoch", *KEYS]
    assert query.metric_histories(uri, ids[:2], ("never_logged",)).empty


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_bulk_histories_over_http_equal_one_by_one(generated, tmp_path, monkeypatch):
    uri, ids, other = generated
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(480):
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        wanted = [*ids, *other]
        expected = query.metric_histories(uri, wanted, KEYS, bulk=False)
        assert query.metric_histories(url, wanted, KEYS).equals(expected)
        monkeypatch.setattr(query, "HTTP_RUNS", 7)  # several requests
        monkeypatch.setattr(query, "HTTP_CAP", EPOCHS * 5)  # answers that fill the cap
        assert query.metric_histories(url, wanted, KEYS).equals(expected)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_filtered_search_finds_exactly_the_wanted_runs(generated):
    uri, _, _ = generated
    everything = selection.load_runs(uri, "t")
    for entries, data in (
        (["table1/row1"], None),
        (["table1/*"], "synthetic"),
        (["paper/final", "paper/sgd"], None),
        (None, "cifar10"),
        (["table1/row1", "table1/row2", "table1/row3", "table1/row4"], None),
        (["nothing/here"], None),
    ):
        got = selection.load_runs(uri, "t", entries=entries, data=data)
        keep = everything["entry"].map(
            lambda n, entries=entries: (
                entries is None or any(fnmatch.fnmatchcase(n, p) for p in entries)
            )
        )
        want = everything[keep & (everything["data"].eq(data) if data else True)].reset_index(
            drop=True
        )
        assert len(want) or entries == ["nothing/here"]
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_report_is_unchanged_by_bulk_reads_and_filtered_search(generated, monkeypatch):
    """The report over the same store: bulk histories against one-by-one, filtered search against
    all runs."""
    from benchmarks.report import build, render
    from benchmarks.report.table import TableRequest

    uri, _, _ = generated
    runs = selection.load_runs(uri, "t")
    new = build.build(runs, uri, "t", TableRequest(VARIANT, "synthetic"))
    narrowed = build.build(
        selection.load_runs(uri, "t", entries=["table1/*"]),
        uri,
        "t",
        TableRequest(VARIANT, "synthetic", group="table1"),
    )
    whole_group = build.build(runs, uri, "t", TableRequest(VARIANT, "synthetic", group="table1"))
    one_by_one = query.metric_histories
    monkeypatch.setattr(
        query, "metric_histories", lambda u, i, k, **kw: one_by_one(u, i, k, bulk=False, **kw)
    )
    old = dataclasses.replace(
        build.build(runs, uri, "t", TableRequest(VARIANT, "synthetic")), generated=new.generated
    )
    assert new.curves.equals(old.curves) and len(new.curves) == SPEC.runs * EPOCHS
    for fmt in ("markdown", "json", "csv", "html"):
        assert render.render(new, fmt) == render.render(old, fmt)
        assert render.render(narrowed, fmt) == render.render(
            dataclasses.replace(whole_group, generated=narrowed.generated), fmt
        )


@pytest.mark.parametrize("name", [e.name for e in registry.entries()])
def test_parameters_and_flops_by_formula_match_counting(name):
    """`list` counts without building a model; the formulas agree with the meta-device model and
    FlopCounterMode."""
    cfg = registry.get(name).model
    assert count_parameters(cfg) == count_parameters(_meta_model(cfg))
    assert flops.flops_per_image(cfg) == flops.counted(cfg)


def test_formulas_on_odd_shapes():
    for cfg in (
        ResNetConfig(
            layers=3,
            blocks=(1, 3, 2),
            channels=(8, 16, 32),
            conv_kernel=(3, 5, 7),
            skip_kernel=1,
            pool_kernel=2,
        ),
        ResNetConfig(
            layers=2,
            blocks=(2, 1),
            channels=(4, 4),
            conv_kernel=(1, 3),
            skip_kernel=1,
            pool_kernel=1,
        ),
        ResNetConfig(
            layers=1,
            blocks=(2,),
            channels=(6,),
            conv_kernel=(5,),
            skip_kernel=(3,),
            pool_kernel=8,
            num_classes=7,
        ),
    ):
        assert count_parameters(cfg) == count_parameters(_meta_model(cfg))
        assert flops.flops_per_image(cfg) == flops.counted(cfg)


def _meta_model(cfg: ResNetConfig):
    import torch

    from resnet.network import build_model

    with torch.device("meta"):
        return build_model(cfg)


def _imported_by(code: str, modules: tuple[str, ...]) -> set[str]:
    """Which of `modules` a fresh interpreter has imported after running `code` (output
    discarded)."""
    probe = (
        f"import sys, io, contextlib\nwith contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        {code}\n    except SystemExit:\n        pass\n"
        f"print(','.join(m for m in {modules!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return set(filter(None, out.stdout.rstrip("\n").split("\n")[-1].split(",")))


def test_help_and_list_import_neither_torch_nor_mlflow():
    """`resbench --help` and `resbench list` answer at once: no torch, MLflow, pandas (help) or
    report."""
    heavy = ("torch", "mlflow", "pandas", "matplotlib", "benchmarks.report.build")
    assert _imported_by("from benchmarks.cli.main import main; main(['--help'])", heavy) == set()
    assert _imported_by("from benchmarks.cli.main import main; main(['list'])", heavy) == {"pandas"}


def test_report_to_stdout_imports_no_torch_and_draws_nothing(generated, tmp_path):
    uri, _, _ = generated
    args = [
        "report",
        "--data",
        "synthetic",
        "--epochs",
        str(EPOCHS),
        "--limit-train",
        "64",
        "--limit-test",
        "32",
        "--tracking-uri",
        uri,
        "--experiment",
        "t",
    ]
    assert (
        _imported_by(
            f"from benchmarks.cli.main import main; main({args!r})", ("torch", "matplotlib")
        )
        == set()
    )


def test_command_list_matches_the_commands():
    """`--help` lists the commands from main.COMMANDS without importing them: the lines must be
    theirs."""
    import click

    from benchmarks.cli.main import COMMANDS, main

    ctx = click.Context(main)
    for name, (_, _, line) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command.name == name
        assert click.Command(name, help=line).get_short_help_str(300) == command.get_short_help_str(
            300
        ), name
