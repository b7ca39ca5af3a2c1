"""A newcomer's first report: after one small run, `report` with no options names the command that
tabulates that run, and that command does; `run` and `reproduce` print it themselves."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from benchmarks.cli.main import main
from benchmarks.storegen import StoreSpec, generate
from tests.conftest import fresh_uri

SMALL = ["--epochs", "1", "--limit-train", "64", "--limit-test", "32", "--data", "synthetic"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def command_args(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[:2] == ["resbench", "report"], command
    return argv[2:]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, monkeypatch_module):
    tmp = tmp_path_factory.mktemp("first")
    monkeypatch_module.chdir(tmp)  # checkpoints under the test's folder
    uri = fresh_uri(tmp)
    result = invoke(
        "run", "table1/row1", *SMALL, "--device", "cpu", "--tracking-uri", uri, "--experiment", "e"
    )
    assert result.exit_code == 0, result.output
    return uri, result.output


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield mp


def test_run_prints_the_command_that_tabulates_it(small_run):
    uri, output = small_run
    (line,) = [x for x in output.splitlines() if x.startswith("tabulate: ")]
    args = command_args(line.removeprefix("tabulate: "))
    report = json.loads(invoke("report", *args, "--format", "json").stdout)
    row1 = next(r for r in report["rows"] if r["entry"] == "table1/row1")
    assert row1["n"] == 1
    assert report["elsewhere"] == []


def test_first_report_names_the_command_and_that_command_tabulates_the_run(small_run):
    uri, run_output = small_run
    result = invoke("report", "--tracking-uri", uri, "--experiment", "e")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "# Table 1, regenerated"
    assert lines[2].startswith("**No run in this store is of the variant this table is about")
    command, _, count = lines[4].strip().partition("   # ")
    assert count == "1 run(s)"
    # the same command `run` printed, and repeated on stderr where a terminal shows it last
    assert f"tabulate: {command}" in run_output
    assert command in result.stderr
    args = command_args(command)
    assert args == [*SMALL, "--tracking-uri", uri, "--experiment", "e"]
    report = json.loads(invoke("report", *args, "--format", "json").stdout)
    row1 = next(r for r in report["rows"] if r["entry"] == "table1/row1")
    assert row1["n"] == 1 and row1["status"].startswith("finished")


def test_commands_are_listed_most_runs_first(tmp_path):
    uri = fresh_uri(tmp_path)
    generate(uri, "e", StoreSpec(runs=1, epochs=3, entries=("table1/row1",)))
    generate(uri, "e", StoreSpec(runs=3, epochs=5, entries=("table1/row2",), limit_train=128))
    report = json.loads(
        invoke("report", "--tracking-uri", uri, "--experiment", "e", "--format", "json").stdout
    )
    assert [(shlex.split(x["command"])[2:6], x["runs"]) for x in report["elsewhere"]] == [
        (["--epochs", "5", "--limit-train", "128"], 3),
        (["--epochs", "3", "--limit-train", "64"], 1),
    ]
    for x in report["elsewhere"]:
        counted = json.loads(
            invoke("report", *command_args(x["command"]), "--format", "json").stdout
        )
        assert sum(r["n"] for r in counted["rows"]) == x["runs"]


def test_no_notice_when_the_table_has_runs_of_its_variant(small_run):
    uri, _ = small_run
    result = invoke("report", *SMALL, "--tracking-uri", uri, "--experiment", "e")
    assert "No run in this store" not in result.output
