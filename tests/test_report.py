"""The regenerated table over a store of known runs, made through the real run path on generated
data.

Tiny entries (registered only while the store is made) keep it fast: A finishes for seeds 0 and 1,
and also runs with an override, on another data source and once failing; B never runs; C fails;
D diverges.
"""

import json
import statistics
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import registry, selection, text
from benchmarks.cli.main import main
from benchmarks.jobs import train as train_mod
from benchmarks.jobs.spec import DataSpec, JobSettings
from benchmarks.jobs.train import JobFailed, train_job
from benchmarks.registry import Entry, Paper, arch
from benchmarks.report import build as report
from benchmarks.report import display, figures, render, verdicts
from benchmarks.report.table import Report, TableRequest
from benchmarks.reproduce import plan
from benchmarks.reproduce import reproduce as reproduce_all
from benchmarks.runkey import RunKey
from resnet.config import ExecConfig, TrainConfig
from resnet.train import Diverged
from tests.conftest import fresh_uri
from tracking import names

SPEC = DataSpec("synthetic", limit_train=64, limit_test=32)
CPU = ExecConfig(device="cpu")
PAPER_CONFIG = selection.Variant.of({}, 64, 32)  # the entries' own configs, on the limited data


def tiny(name: str, **paper) -> Entry:
    return Entry(
        f"tiny/{name}",
        f"tiny entry {name}",
        arch(layers=2, blocks=(1, 1), channels=(8, 16)),
        TrainConfig(epochs=1),
        Paper(**paper),
    )


A, B, C, D = (
    tiny("a", num=1, accuracy=50.0, params="1.0M"),
    tiny("b", num=2, accuracy=60.0),
    tiny("c", num=3),
    tiny("d"),
)
ENTRIES = [A, B, C, D]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    uri = fresh_uri(tmp)
    ids = {}
    shared = JobSettings(
        data=SPEC, ex=CPU, tracking_uri=uri, experiment="t", checkpoint_dir=str(tmp / "checkpoints")
    )
    with pytest.MonkeyPatch.context() as mp, registry.temporary(ENTRIES):
        mp.chdir(tmp)  # artifacts stay in the temporary folder
        data = SPEC.load()
        for seed in (0, 1):
            ids[f"a{seed}"] = train_job(shared.job(A.name, seed), data)
        ids["override"] = train_job(replace(shared, overrides=(("lr", 0.01),)).job(A.name, 0), data)
        ids["other_data"] = train_job(
            shared.job(A.name, 0), replace(data, source="cifar10-unverified")
        )

        def boom(*args, **kwargs):
            raise RuntimeError("out of memory")

        def diverge(*args, **kwargs):
            raise Diverged(0, float("nan"))

        mp.setattr(train_mod, "train", boom)
        for entry, seed in ((C, 0), (A, 2)):
            with pytest.raises(JobFailed, match="out of memory"):
                train_job(shared.job(entry.name, seed), data)
        mp.setattr(train_mod, "train", diverge)
        with pytest.raises(JobFailed):
            train_job(shared.job(D.name, 0), data)
    return uri, ids


def build(store, variant=PAPER_CONFIG, data="synthetic") -> Report:
    uri, _ = store
    runs = selection.load_runs(uri, "t")
    return report.build(runs, uri, "t", TableRequest(variant, data), entries=ENTRIES)


def row(r: Report, entry: Entry) -> pd.Series:
    return r.table.set_index("entry").loc[entry.name]


def test_finished_runs_give_mean_and_std_over_seeds(store):
    uri, ids = store
    client = MlflowClient(uri)
    accs = [client.get_run(ids[k]).data.metrics[names.TEST_ACCURACY] for k in ("a0", "a1")]
    bests = [client.get_run(ids[k]).data.metrics[names.BEST_TEST_ACCURACY] for k in ("a0", "a1")]
    r = build(store)
    a = row(r, A)
    # seed 2 failed (out of memory): the row counts seeds 0 and 1 and accounts for seed 2
    assert a["status"] == "finished (1 failed of 3)" and a["n"] == 2 and a["seeds"] == "0,1"
    assert (a["seeds_planned"], a["seeds_finished"], a["seeds_failed"]) == (3, 2, 1)
    assert set(a["run_ids"].split(",")) == {ids["a0"], ids["a1"]}
    kept = r.rows[0]  # the row itself keeps runs, interval and verdict as values
    assert kept.entry == A and set(kept.run_ids) == {ids["a0"], ids["a1"]} and kept.seeds == (0, 1)
    assert kept.interval == verdicts.interval(accs) and kept.verdict.code == a["verdict"]
    assert a["final_mean"] == pytest.approx(statistics.mean(accs))
    assert a["final_std"] == pytest.approx(statistics.stdev(accs))
    assert (
        a["best_mean"] == pytest.approx(statistics.mean(bests)) and a["verdict_metric"] == "final"
    )
    assert a["delta"] == pytest.approx(statistics.mean(accs) - 50.0)
    assert a["epochs"] == 1 and a["params"] == 7666
    assert (
        "disagrees with the paper's 1.0M" in a["notes"] and "1 failed run not counted" in a["notes"]
    )
    # t(0.95, 1) s / sqrt(n): the 90% interval TOST uses
    half = 6.313752 * statistics.stdev(accs) / 2**0.5
    assert a["final_ci_low"] == pytest.approx(statistics.mean(accs) - half, abs=1e-3)
    assert a["verdict"] == "other data"  # generated data can never reproduce the paper
    shown = display.display_table(r).set_index("entry").loc[A.name]
    assert (
        shown["final-epoch acc (%), mean ± 90% CI"]
        == f"{statistics.mean(accs):.2f} ± {half:.2f} (n=2)"
    )
    assert shown["judged on"] == "final epoch"
    assert display.display_arch(r).set_index("entry").loc[A.name, "#params"] == "7,666 *"


def test_rows_not_run_failed_and_diverged(store):
    r = build(store)
    assert list(r.table["entry"]) == [e.name for e in ENTRIES]  # registry order
    for entry, status in ((B, "not run"), (C, "failed"), (D, "diverged")):
        got = row(r, entry)
        assert got["status"] == status and got["n"] == 0 and pd.isna(got["final_mean"]), entry.name
    shown = display.display_table(r).set_index("entry")
    assert shown.loc[B.name, "final-epoch acc (%), mean ± 90% CI"] == "—"
    assert shown.loc[B.name, "Δ vs paper"] == "—"
    assert shown.loc[B.name, "verdict"] == "not run"


def test_override_and_other_data_runs_are_kept_apart(store):
    _, ids = store
    r = build(store)
    other = r.other.set_index("run_id")
    assert ids["override"] in other.index and ids["other_data"] in other.index
    assert other.loc[ids["override"], "why"] == "other configuration"
    assert other.loc[ids["override"], "overrides"] == "lr=0.01, limit_train=64, limit_test=32"
    assert "other data (cifar10-unverified)" in other.loc[ids["other_data"], "why"]
    assert not {ids["a0"], ids["a1"]} & set(other.index)
    assert sorted(other["status"]) == ["DIVERGED", "FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert "runs with overrides: limit_train=64, limit_test=32, data: synthetic" in r.header()[0]


def test_the_table_of_an_override_variant(store):
    _, ids = store
    r = build(store, selection.Variant.of({"lr": 0.01}, 64, 32))
    a = row(r, A)
    assert a["n"] == 1 and a["run_ids"] == ids["override"]
    assert (
        "runs with overrides: lr=0.01, limit_train=64, limit_test=32, data: synthetic — not the "
        "paper's "
        "configuration" in r.header()[0]
    )
    assert {ids["a0"], ids["a1"]} <= set(r.other["run_id"])


def test_cifar10_means_the_copy_that_was_run(store):
    _, ids = store
    r = build(store, data="cifar10")
    assert r.source == "cifar10-unverified" and row(r, A)["run_ids"] == ids["other_data"]
    assert "cifar10-unverified" in r.header()[1]


def test_reproduce_skips_what_is_finished(store):
    uri, _ = store
    runs = selection.load_runs(uri, "t")
    checksum = SPEC.load().checksum
    todo, done = plan([A, B], 2, runs, PAPER_CONFIG, "synthetic", force=False, checksum=checksum)
    assert done == 2 and [(j.entry.name, j.seed) for j in todo] == [(B.name, 0), (B.name, 1)]
    todo, done = plan([A], 3, runs, PAPER_CONFIG, "synthetic", force=True, checksum=checksum)
    assert done == 0 and [j.seed for j in todo] == [0, 1, 2]
    # another identity: a new entry version, or other data files under the same source name
    for entry, digest in ((replace(A, version=2), checksum), (A, "another-checksum")):
        todo, done = plan([entry], 2, runs, PAPER_CONFIG, "synthetic", force=False, checksum=digest)
        assert done == 0 and [(j.seed, j.why) for j in todo] == [
            (0, "identity changed"),
            (1, "identity changed"),
        ]


def test_runs_carry_their_identity(store):
    uri, ids = store
    tags = MlflowClient(uri).get_run(ids["a0"]).data.tags
    expected = RunKey.of(A, A.train, "synthetic", SPEC.load().checksum, (64, 32)).identity
    assert tags[names.TAG_IDENTITY] == expected and tags[names.TAG_ENTRY_VERSION] == "1"
    assert selection.load_runs(uri, "t").set_index("run_id").loc[ids["a0"], "identity"] == expected
    for tag in (
        names.TAG_PYTHON,
        names.TAG_TORCHVISION,
        names.TAG_MLFLOW,
        names.TAG_CUDNN,
        names.TAG_GPU_DRIVER,
    ):
        assert tags[tag], tag


def test_reproduce_reruns_an_entry_whose_version_was_bumped(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri, _ = store
    data = SPEC.load()
    shared = JobSettings(
        data=SPEC,
        ex=CPU,
        tracking_uri=uri,
        experiment="ident",
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    logs = []
    # the report reproduce writes at the end is another test's business (and takes seconds)
    monkeypatch.setattr(report, "build", lambda *args, **kwargs: None)
    monkeypatch.setattr(render, "write", lambda *args, **kwargs: [])
    with registry.temporary([A]):
        old = train_job(shared.job(A.name, 0), data)
        reproduce_all([A], 1, shared, tmp_path / "out", log=logs.append)
    assert "1 already finished, 0 to run" in logs[0]
    bumped = replace(A, version=2)
    logs.clear()
    with registry.temporary([bumped]):
        reproduce_all([bumped], 1, shared, tmp_path / "out", log=logs.append)
    monkeypatch.undo()
    assert "0 already finished, 1 to run (1 because their identity changed)" in logs[0]
    assert any(line.startswith("pre-flight:") for line in logs)
    runs = selection.load_runs(uri, "ident")
    r = report.build(runs, uri, "ident", TableRequest(PAPER_CONFIG, "synthetic"), entries=[bumped])
    row = r.table.iloc[0]
    assert row["n"] == 1 and row["run_ids"] != old and row["entry_version"] == 2
    assert (
        row["identity"] == RunKey.of(bumped, A.train, "synthetic", data.checksum, (64, 32)).identity
    )
    assert row["identity"] != RunKey.of(A, A.train, "synthetic", data.checksum, (64, 32)).identity
    assert r.other.set_index("run_id").loc[old, "why"] == "entry version 1 (now 2)"


def test_every_format_is_written(store, tmp_path):
    r = build(store)
    written = render.write(r, tmp_path)
    assert {p.name for p in written} == {
        "report.md",
        "report.html",
        "report.csv",
        "report.json",
        figures.FIG_PANELS,
    }
    assert "identity" in render.render(r, "csv").splitlines()[0]
    assert {p.name for p in tmp_path.iterdir()} == {
        p.name for p in written
    }  # no temporary file left
    csv = pd.read_csv(tmp_path / "report.csv")
    assert list(csv["entry"]) == [e.name for e in ENTRIES] and list(csv["n"]) == [2, 0, 0, 0]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["data"] == "synthetic" and len(data["rows"]) == 4 and len(data["other_runs"]) == 5
    html = (tmp_path / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1 and "tiny/a" in html
    md = (tmp_path / "report.md").read_text()
    assert f"]({figures.FIG_PANELS})" in md and "## Other runs" in md and "| tiny/b" in md


@pytest.mark.parametrize(
    "printed,computed,agrees",
    [
        ("4.9M", 4_903_242, True),
        ("4.9M", 4_902_186, True),
        ("1.9M", 1_922_074, True),
        ("4,902,186", 4_902_186, True),
        ("4,902,186", 4_902_187, False),
        ("5.4M", 11_690_058, False),
        ("2.79M", 2_797_610, False),
        (None, 123, True),
    ],
)
def test_params_note_compares_at_the_printed_precision(printed, computed, agrees):
    assert (text.params_note(printed, computed) == "") == agrees


def test_report_command_errors_are_one_line(store, tmp_path):
    uri, _ = store
    cli = CliRunner()
    res = cli.invoke(main, ["report", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert (
        res.exit_code == 2
        and "error: no tracking store" in res.output
        and not (tmp_path / "none.db").exists()
    )
    res = cli.invoke(main, ["report", "--tracking-uri", uri, "--experiment", "nope"])
    assert res.exit_code == 2 and "error: no experiment 'nope'" in res.output
    res = cli.invoke(
        main, ["report", "--tracking-uri", uri, "--experiment", "t", "--format", "csv"]
    )
    assert res.exit_code == 0 and res.output.startswith("num,entry,")


def test_report_of_one_group_ranked(store):
    uri, _ = store
    cli = CliRunner()
    res = cli.invoke(
        main, ["report", "--tracking-uri", uri, "--experiment", "t", "--group", "nope"]
    )
    assert (
        res.exit_code == 2
        and "error: no entries in group 'nope' (groups: table1, paper" in res.output
    )
    res = cli.invoke(
        main,
        [
            "report",
            "--tracking-uri",
            uri,
            "--experiment",
            "t",
            "--group",
            "table1",
            "--rank",
            "--format",
            "json",
            "--ui-url",
            "http://ui:5000",
        ],
    )
    data = json.loads(res.output)
    assert (
        res.exit_code == 0
        and data["group"] == "table1"
        and data["ranked"]
        and data["ui_url"] == "http://ui:5000"
    )
    assert [row["entry"] for row in data["rows"]] == [
        e.name for e in registry.entries() if e.group == "table1"
    ]  # nothing run: as listed
    assert len(data["rows"]) == 8  # rows 1-7, row 5 both ways
    assert data["other_runs"] == []  # the tiny entries' runs belong to no table of this group


def test_reproduce_end_to_end(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = store[0]  # an existing store (in its own experiment) spares the schema's creation
    args = [
        "reproduce",
        "--no-check",
        "--experiment",
        "e2e",
        "--only",
        "table1/row1",
        "--epochs",
        "1",
        "--data",
        "synthetic",
        "--limit-train",
        "32",
        "--limit-test",
        "16",
        "--device",
        "cpu",
        "--tracking-uri",
        uri,
        "--output",
        "out",
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "0 already finished, 1 to run" in res.output
    table = pd.read_csv(tmp_path / "out" / "report.csv").set_index("entry")
    assert table.loc["table1/row1", "n"] == 1 and table.loc["table1/row1", "status"] == "finished"
    assert (table.drop(index="table1/row1")["status"] == "not run").all()
    md = (tmp_path / "out" / "report.md").read_text()
    # Markdown escapes the underscores (benchmarks/report/escape.py)
    assert r"runs with overrides: epochs=1, limit\_train=32, limit\_test=16, data: synthetic" in md
    assert (tmp_path / "out" / figures.FIG_FINAL).stat().st_size > 0
    again = CliRunner().invoke(main, args)  # a rerun trains nothing
    assert again.exit_code == 0 and "1 already finished, 0 to run" in again.output
