"""Bad input ends in one line on stderr and a non-zero exit, never a traceback.

In this process through click's CliRunner (the error handling is the command group's own), except
where the process boundary is the point: the console entry point itself, and entries files read
when the process starts.
"""

import socket
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from benchmarks.cli.main import main
from tests.conftest import fresh_uri, resbench, write_batches


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # tests name their store
    monkeypatch.chdir(tmp_path)  # anything a command writes lands in the test's folder


def cli(*args: str) -> SimpleNamespace:
    """`resbench ARGS` in this process; an exception the command group lets through fails the
    test with its traceback."""
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return SimpleNamespace(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(proc, *fragments):
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert any(all(f in line for f in fragments) for line in err), proc.stderr


def test_list_shows_every_entry():
    proc = resbench("list")  # the installed console entry point, in a process of its own
    assert proc.returncode == 0
    assert (
        "4,902,186" in proc.stdout and "table1/row7" in proc.stdout and "paper/final" in proc.stdout
    )


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["run", "table1/row99"], ["unknown entry 'table1/row99'"]),
        (["run", "table1/row1", "--epochs", "0"], ["--epochs"]),
        (["run", "table1/row1", "--set", "lr=fast"], ["lr expects float"]),
        (["run", "table1/row1", "--set", "lr=-1"], ["lr: must be positive"]),
        (["run", "table1/row1", "--set", "optimizer=rmsprop"], ["optimizer: must be one of"]),
        (["run", "table1/row1", "--set", "nosuch=1"], ["FIELD=VALUE"]),
        (["run", "table1/row1", "--limit-train", "-5"], ["--limit-train"]),
        (["run", "table1/row1", "--device", "tpu"], ["device"]),
    ],
)
def test_bad_arguments(args, fragments, tmp_path):
    one_line_error(cli(*args, "--data", "synthetic"), *fragments)


def test_missing_data(tmp_path):
    proc = cli(
        "run",
        "table1/row1",
        "--data-dir",
        str(tmp_path / "nowhere"),
        "--no-download",
        "--tracking-uri",
        fresh_uri(tmp_path),
    )
    one_line_error(proc, "missing in", "--data-dir")


def test_corrupt_data(tmp_path):
    write_batches(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    proc = cli(
        "run",
        "table1/row1",
        "--data-dir",
        str(tmp_path),
        "--no-download",
        "--tracking-uri",
        fresh_uri(tmp_path),
    )
    one_line_error(proc, "test_batch is not a readable CIFAR-10 batch")


def test_unreachable_tracking_server(tmp_path):
    proc = cli(
        "run",
        "table1/row1",
        "--data",
        "synthetic",
        "--tracking-uri",
        f"http://127.0.0.1:{free_port()}",
    )
    one_line_error(proc, "unreachable")


def test_mistyped_tracking_uri(tmp_path):
    proc = cli("run", "table1/row1", "--data", "synthetic", "--tracking-uri", "sqlit:/x.db")
    one_line_error(proc, "tracking")


def test_report_on_a_file_that_is_not_a_database(tmp_path):
    db = tmp_path / "notadb.db"
    db.write_text("these are notes, not an MLflow store\n")
    proc = cli("report", "--tracking-uri", f"sqlite:///{db}")
    assert proc.returncode == 2
    one_line_error(proc, "error: tracking store", "cannot be read", "file is not a database")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert db.read_text() == "these are notes, not an MLflow store\n"  # left as it was


def test_an_entries_file_with_a_syntax_error(tmp_path):
    (tmp_path / "mine.py").write_text(
        'from benchmarks.registry import arch, entry\n\n@entry("mine/x"\ndef x():\n'
    )
    proc = resbench("list", cwd=tmp_path, env={"RESBENCH_ENTRIES_PATH": str(tmp_path)})
    assert proc.returncode == 2
    one_line_error(proc, f"error: {tmp_path / 'mine.py'}:3: SyntaxError: ")
    assert len(proc.stderr.strip().splitlines()) == 1
