"""The regenerated table over a store of known runs, made through the real run path on generated data.

Tiny entries (not registered) keep it fast: A finishes for seeds 0 and 1, and also runs with an
override, on another data source and once failing; B never runs; C fails; D diverges.
"""
import json
import statistics
from dataclasses import replace

import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import report, runner, selection
from benchmarks.cli import main
from benchmarks.cli_options import parse_sets
from benchmarks.registry import Entry, Paper, arch, get
from benchmarks.reproduce import Job, child_command, plan
from benchmarks import reproduce as reproduce_mod
from benchmarks.reproduce import reproduce as reproduce_all
from benchmarks.runner import DataSpec, run_entry
from resnet.train import Diverged, ExecConfig, TrainConfig
from tests.conftest import fresh_uri
from tracking import connect, names

SPEC = DataSpec("synthetic", limit_train=64, limit_test=32)
CPU = ExecConfig(device="cpu")
PAPER_CONFIG = selection.Variant.of({}, 64, 32)  # the entries' own configs, on the limited data


def tiny(name: str, **paper) -> Entry:
    return Entry(f"tiny/{name}", f"tiny entry {name}", arch(layers=2, blocks=(1, 1), channels=(8, 16)),
                 TrainConfig(epochs=1), Paper(**paper))


A, B, C, D = (tiny("a", num=1, accuracy=50.0, params="1.0M"), tiny("b", num=2, accuracy=60.0), tiny("c", num=3),
              tiny("d"))
ENTRIES = [A, B, C, D]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    uri = fresh_uri(tmp)
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # artifacts and checkpoints stay in the temporary folder
        tracker = connect(uri, "t")
        data = SPEC.load()
        for seed in (0, 1):
            ids[f"a{seed}"] = run_entry(A, tracker, data, SPEC, seed=seed, ex=CPU)
        ids["override"] = run_entry(A, tracker, data, SPEC, seed=0, overrides={"lr": 0.01}, ex=CPU)
        ids["other_data"] = run_entry(A, tracker, replace(data, source="cifar10-unverified"), SPEC, seed=0, ex=CPU)

        def boom(*args, **kwargs):
            raise RuntimeError("out of memory")

        def diverge(*args, **kwargs):
            raise Diverged(0, float("nan"))

        mp.setattr(runner, "train", boom)
        for entry, seed in ((C, 0), (A, 2)):
            with pytest.raises(RuntimeError):
                run_entry(entry, tracker, data, SPEC, seed=seed, ex=CPU)
        mp.setattr(runner, "train", diverge)
        with pytest.raises(Diverged):
            run_entry(D, tracker, data, SPEC, seed=0, ex=CPU)
    return uri, ids


def build(store, variant=PAPER_CONFIG, data="synthetic") -> report.Report:
    uri, _ = store
    return report.build(selection.load_runs(uri, "t"), uri, "t", variant, data, entries=ENTRIES)


def row(r: report.Report, entry: Entry) -> pd.Series:
    return r.table.set_index("entry").loc[entry.name]


def test_finished_runs_give_mean_and_std_over_seeds(store):
    uri, ids = store
    client = MlflowClient(uri)
    accs = [client.get_run(ids[k]).data.metrics[names.TEST_ACCURACY] for k in ("a0", "a1")]
    bests = [client.get_run(ids[k]).data.metrics[names.BEST_TEST_ACCURACY] for k in ("a0", "a1")]
    r = build(store)
    a = row(r, A)
    assert a["status"] == "finished" and a["n"] == 2 and a["seeds"] == "0,1"
    assert set(a["run_ids"].split(",")) == {ids["a0"], ids["a1"]}
    assert a["acc_mean"] == pytest.approx(statistics.mean(accs))
    assert a["acc_std"] == pytest.approx(statistics.stdev(accs))
    assert a["best_mean"] == pytest.approx(statistics.mean(bests))
    assert a["delta"] == pytest.approx(statistics.mean(accs) - 50.0)
    assert a["epochs"] == 1 and a["params"] == 7666
    assert "disagrees with the paper's 1.0M" in a["notes"] and "1 failed run not counted" in a["notes"]
    half = 12.7062 * statistics.stdev(accs) / 2 ** 0.5  # t(0.975, 1) s / sqrt(n)
    assert a["ci_low"] == pytest.approx(statistics.mean(accs) - half, abs=1e-3)
    assert a["verdict"] == "other data"  # generated data can never reproduce the paper
    shown = report.display_table(r).set_index("entry").loc[A.name]
    assert shown["final test acc (%), mean ± 95% CI"] == f"{statistics.mean(accs):.2f} ± {half:.2f} (n=2)"
    assert report.display_arch(r).set_index("entry").loc[A.name, "#params"] == "7,666 *"


def test_rows_not_run_failed_and_diverged(store):
    r = build(store)
    assert list(r.table["entry"]) == [e.name for e in ENTRIES]  # registry order
    for entry, status in ((B, "not run"), (C, "failed"), (D, "diverged")):
        got = row(r, entry)
        assert got["status"] == status and got["n"] == 0 and pd.isna(got["acc_mean"]), entry.name
    shown = report.display_table(r).set_index("entry")
    assert shown.loc[B.name, "final test acc (%), mean ± 95% CI"] == "—"
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
    assert "runs with overrides: lr=0.01, limit_train=64, limit_test=32, data: synthetic — not the paper's " \
           "configuration" in r.header()[0]
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
        assert done == 0 and [(j.seed, j.why) for j in todo] == [(0, "identity changed"), (1, "identity changed")]


def test_runs_carry_their_identity(store):
    uri, ids = store
    tags = MlflowClient(uri).get_run(ids["a0"]).data.tags
    expected = A.identity(A.train, SPEC.load().checksum, 64, 32)
    assert tags[names.TAG_IDENTITY] == expected and tags[names.TAG_ENTRY_VERSION] == "1"
    assert selection.load_runs(uri, "t").set_index("run_id").loc[ids["a0"], "identity"] == expected
    for tag in (names.TAG_PYTHON, names.TAG_TORCHVISION, names.TAG_MLFLOW, names.TAG_CUDNN, names.TAG_GPU_DRIVER):
        assert tags[tag], tag


def test_reproduce_reruns_an_entry_whose_version_was_bumped(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri, _ = store
    data = SPEC.load()
    old = run_entry(A, connect(uri, "ident"), data, SPEC, seed=0, ex=CPU)
    logs = []
    # the report reproduce writes at the end is another test's business (and takes seconds)
    monkeypatch.setattr(reproduce_mod.report, "build", lambda *args, **kwargs: None)
    monkeypatch.setattr(reproduce_mod.report, "write", lambda *args, **kwargs: [])
    reproduce_all([A], 1, {}, SPEC, CPU, uri, "ident", tmp_path / "out", log=logs.append)
    assert "1 already finished, 0 to run" in logs[0]
    bumped = replace(A, version=2)
    logs.clear()
    reproduce_all([bumped], 1, {}, SPEC, CPU, uri, "ident", tmp_path / "out", log=logs.append)
    monkeypatch.undo()
    assert "0 already finished, 1 to run (1 because their identity changed)" in logs[0]
    assert any(line.startswith("pre-flight:") for line in logs)
    r = report.build(selection.load_runs(uri, "ident"), uri, "ident", PAPER_CONFIG, "synthetic", entries=[bumped])
    row = r.table.iloc[0]
    assert row["n"] == 1 and row["run_ids"] != old and row["entry_version"] == 2
    assert row["identity"] == bumped.identity(A.train, data.checksum, 64, 32)
    assert row["identity"] != A.identity(A.train, data.checksum, 64, 32)
    assert r.other.set_index("run_id").loc[old, "why"] == "entry version 1 (now 2)"


def test_every_format_is_written(store, tmp_path):
    r = build(store)
    written = report.write(r, tmp_path)
    assert {p.name for p in written} == {"report.md", "report.html", "report.csv", "report.json", report.FIG_PANELS}
    assert "identity" in report.render(r, "csv").splitlines()[0]
    assert not list(tmp_path.glob("*.tmp"))
    csv = pd.read_csv(tmp_path / "report.csv")
    assert list(csv["entry"]) == [e.name for e in ENTRIES] and list(csv["n"]) == [2, 0, 0, 0]
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["data"] == "synthetic" and len(data["rows"]) == 4 and len(data["other_runs"]) == 5
    html = (tmp_path / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 1 and "tiny/a" in html
    md = (tmp_path / "report.md").read_text()
    assert f"]({report.FIG_PANELS})" in md and "## Other runs" in md and "| tiny/b" in md


@pytest.mark.parametrize("printed,computed,agrees", [
    ("4.9M", 4_903_242, True), ("4.9M", 4_902_186, True), ("1.9M", 1_922_074, True),
    ("4,902,186", 4_902_186, True), ("4,902,186", 4_902_187, False), ("5.4M", 11_690_058, False),
    ("2.79M", 2_797_610, False), (None, 123, True),
])
def test_params_note_compares_at_the_printed_precision(printed, computed, agrees):
    assert (report.params_note(printed, computed) == "") == agrees


def test_report_command_errors_are_one_line(store, tmp_path):
    uri, _ = store
    cli = CliRunner()
    res = cli.invoke(main, ["report", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert res.exit_code == 2 and "error: no tracking store" in res.output and not (tmp_path / "none.db").exists()
    res = cli.invoke(main, ["report", "--tracking-uri", uri, "--experiment", "nope"])
    assert res.exit_code == 2 and "error: no experiment 'nope'" in res.output
    res = cli.invoke(main, ["report", "--tracking-uri", uri, "--experiment", "t", "--format", "csv"])
    assert res.exit_code == 0 and res.output.startswith("num,entry,")


def test_report_of_one_group_ranked(store):
    uri, _ = store
    cli = CliRunner()
    res = cli.invoke(main, ["report", "--tracking-uri", uri, "--experiment", "t", "--group", "nope"])
    assert res.exit_code == 2 and "error: no entries in group 'nope' (groups: table1, paper" in res.output
    res = cli.invoke(main, ["report", "--tracking-uri", uri, "--experiment", "t", "--group", "table1", "--rank",
                            "--format", "json", "--ui-url", "http://ui:5000"])
    data = json.loads(res.output)
    assert res.exit_code == 0 and data["group"] == "table1" and data["ranked"] and data["ui_url"] == "http://ui:5000"
    assert [row["entry"] for row in data["rows"]] == [f"table1/row{i}" for i in range(1, 8)]  # nothing run: as listed
    assert data["other_runs"] == []  # the tiny entries' runs belong to no table of this group


def test_reproduce_end_to_end(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = store[0]  # an existing store (in its own experiment) spares the schema's creation
    args = ["reproduce", "--no-check", "--experiment", "e2e", "--only", "table1/row1", "--epochs", "1",
            "--data", "synthetic", "--limit-train", "32", "--limit-test", "16", "--device", "cpu",
            "--tracking-uri", uri, "--output", "out"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "0 already finished, 1 to run" in res.output
    table = pd.read_csv(tmp_path / "out" / "report.csv").set_index("entry")
    assert table.loc["table1/row1", "n"] == 1 and table.loc["table1/row1", "status"] == "finished"
    assert (table.drop(index="table1/row1")["status"] == "not run").all()
    md = (tmp_path / "out" / "report.md").read_text()
    assert "runs with overrides: epochs=1, limit_train=32, limit_test=16, data: synthetic" in md
    assert (tmp_path / "out" / report.FIG_FINAL).stat().st_size > 0
    again = CliRunner().invoke(main, args)  # a rerun trains nothing
    assert again.exit_code == 0 and "1 already finished, 0 to run" in again.output


def test_child_command_is_the_same_run(tmp_path):
    """--jobs N hands each run to `resbench run`: its arguments must mean what reproduce meant."""
    spec = DataSpec("cifar10", "/data", limit_train=64, limit_test=0, download=False)
    ex = ExecConfig(device="cuda:1", pipeline="reference", precision="fp32", compile=True)
    cmd = child_command(Job(get("table1/row3"), 2), "sqlite:///x.db", "exp", {"epochs": 3, "hflip": False},
                        spec, ex, tmp_path)
    assert cmd[1:4] == ["-m", "benchmarks.cli", "run"]
    ctx = main.commands["run"].make_context("run", cmd[4:])
    p = ctx.params
    assert p["names_"] == ("table1/row3",) and p["seed"] == 2 and parse_sets(p["sets"]) == {"epochs": 3, "hflip": False}
    assert (p["data_source"], p["data_dir"], p["download"], p["limit_train"], p["limit_test"]) == \
        ("cifar10", "/data", False, 64, None)
    assert (p["device"], p["pipeline"], p["precision"], p["compile"]) == ("cuda:1", "reference", "fp32", True)
    assert (p["tracking_uri"], p["experiment"], p["checkpoint_dir"]) == ("sqlite:///x.db", "exp", str(tmp_path))
