"""The run key decides which runs are the same: every field of the recipe and of the key counts,
runs logged before the mode was tagged are read from their params, and a report over runs of one
entry in two precisions counts one of them, naming the mode, and lists the other apart."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks import registry, selection
from benchmarks.registry import arch
from benchmarks.report import build
from benchmarks.report.table import Report, TableRequest
from benchmarks.runkey import Mode, RunKey, from_record
from benchmarks.storegen import StoreSpec, generate
from resnet.config import TrainConfig
from tests.conftest import fresh_uri

ENTRY = registry.Entry("t/a", "a", arch(layers=2, blocks=(1, 1), channels=(8, 16)), TrainConfig())
# SGD with momentum, so that nesterov (and every other field) can change and stay valid
BASE = TrainConfig(optimizer="sgd", momentum=0.9)


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.125
    return {"sgd": "adam", "adam": "sgd"}[value]


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_every_training_field_changes_the_key(name):
    other = dataclasses.replace(BASE, **{name: changed(getattr(BASE, name))})
    a, b = (RunKey.of(ENTRY, cfg, "cifar10", "c0ffee") for cfg in (BASE, other))
    assert a != b and a.identity != b.identity and a.slot(0) != b.slot(0)


OTHER = {
    "entry": "t/b",
    "version": 2,
    "config_hash": "def",
    "data": "synthetic",
    "checksum": "beef",
    "limit_train": 1000,
    "limit_test": 100,
    "mode": Mode("bf16"),
}


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RunKey)])
def test_every_field_of_the_key_changes_its_identity(name):
    key = RunKey.of(ENTRY, BASE, "cifar10", "c0ffee", (0, 0), Mode())
    moved = dataclasses.replace(key, **{name: OTHER[name]})
    assert moved.identity != key.identity and moved.slot(0) != key.slot(0)
    assert key.differs(moved) and not key.differs(key)


@pytest.mark.parametrize(
    "mode", [Mode("tf32"), Mode("bf16"), Mode(pipeline="reference"), Mode(compile="inductor")]
)
def test_each_mode_is_a_key_of_its_own(mode):
    fp32 = RunKey.of(ENTRY, BASE, "cifar10", "c0ffee", mode=Mode("fp32"))
    other = dataclasses.replace(fp32, mode=mode)
    assert other.identity != fp32.identity and other.resume_tags(0) != fp32.resume_tags(0)


def test_runs_logged_before_the_mode_was_tagged_are_read_from_their_params():
    old = {"entry": "t/a", "config_hash": "abc", "data": "cifar10", "data_checksum": "c0ffee"}
    gpu = {"device": "NVIDIA H100 80GB HBM3", "param_optimizer": "adam"}
    assert from_record(old).mode == Mode("fp32", "fast", "off")  # nothing recorded: the defaults
    assert from_record(old | gpu | {"param_precision": "auto"}).mode == Mode("bf16")
    assert from_record(old | {"device": "cpu", "param_precision": "auto"}).mode == Mode("fp32")
    ref = {"param_precision": "auto", "param_pipeline": "reference"}
    assert from_record(old | gpu | ref).mode == Mode("fp32", "reference")
    compiled = {"param_compile": "True", "param_compile_mode": "auto"}
    assert from_record(old | gpu | compiled).mode.compile == "cudagraph"
    assert from_record(old | {"device": "cpu"} | compiled).mode.compile == "inductor"
    tagged = {"key_precision": "bf16", "key_pipeline": "fast", "key_compile": "off"}
    assert from_record(old | tagged | {"param_precision": "fp32"}).mode == Mode("bf16")
    assert from_record({"entry": "t/a"}) is None  # no configuration recorded: no key


def store(folder, **runs: int) -> tuple[str, dict[str, list[str]]]:
    """table1/row1 on 64 generated images, 2 epochs: `runs[precision]` seeds in each precision,
    one precision after another."""
    uri = fresh_uri(folder)
    spec = StoreSpec(runs=1, epochs=2, entries=("table1/row1",))
    ids = {
        precision: generate(uri, "t", dataclasses.replace(spec, runs=n, precision=precision))
        for precision, n in runs.items()
    }
    return uri, ids


def report(uri, mode=None) -> Report:
    variant = selection.Variant.of({"epochs": 2}, 64, 32)
    runs = selection.load_runs(uri, "t")
    entries = [registry.get("table1/row1")]
    return build.build(runs, uri, "t", TableRequest.of(variant, "synthetic", mode=mode), entries)


def test_a_report_over_two_precisions_counts_one(tmp_path):
    uri, ids = store(tmp_path, bf16=3, fp32=3)
    r = report(uri)
    (row,) = r.rows
    # a tie of finished runs goes to the mode that finished last: fp32
    assert r.mode == Mode("fp32") and sorted(row.run_ids) == sorted(ids["fp32"]) and row.n == 3
    assert any(line.startswith("Mode: fp32, fast pipeline, not compiled") for line in r.header())
    other = r.other.set_index("run_id")
    assert set(other.index) == set(ids["bf16"])
    assert set(other["why"]) == {"other mode (bf16, fast pipeline, not compiled)"}
    assert r.table.iloc[0]["mode"] == "fp32, fast pipeline, not compiled"

    r = report(uri, {"precision": "bf16"})
    assert r.mode == Mode("bf16") and sorted(r.rows[0].run_ids) == sorted(ids["bf16"])
    assert set(r.other["run_id"]) == set(ids["fp32"])


def test_the_mode_with_more_finished_runs_is_the_default(tmp_path):
    uri, ids = store(tmp_path, bf16=4, fp32=3)
    r = report(uri)
    assert r.mode == Mode("bf16") and sorted(r.rows[0].run_ids) == sorted(ids["bf16"])
