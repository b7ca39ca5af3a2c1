"""Every command that reads a store refuses a server that is not there, or is not MLflow, within
seconds, in one line naming the URI with its password masked (MLflow's client alone would retry
for minutes)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from benchmarks.cli.main import main
from tests.conftest import resbench
from tests.shared_server import free_port
from tracking import query
from tracking.store import TrackingError

SECRET = "s3cret-Pa55"


class NotMlflow(BaseHTTPRequestHandler):
    """A web server that is something else: every path is a 404 page."""

    def do_GET(self):
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"<html>not here</html>")

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def other_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.parametrize("what", ["closed-port", "not-mlflow"])
def test_report_refuses_a_store_that_is_not_there_within_seconds(what, other_server):
    port = free_port() if what == "closed-port" else other_server
    uri = f"http://alice@lab.org:{SECRET}@127.0.0.1:{port}"
    start = time.monotonic()  # in this process, where the imports are done: the refusal alone
    res = CliRunner().invoke(main, ["report", "--tracking-uri", uri])
    assert res.exit_code == 2 and time.monotonic() - start < 10, res.output
    # the real command, imports and all (MLflow's retries alone took minutes)
    done = resbench("report", "--tracking-uri", uri, timeout=60)
    assert done.returncode == 2, done.stderr[-500:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: tracking server http://alice@lab.org:***@127.0.0.1:")
    assert SECRET not in done.stderr + done.stdout
    assert ("unreachable" if what == "closed-port" else "answered 404") in line


@pytest.mark.parametrize("what", ["closed-port", "not-mlflow"])
def test_every_read_of_a_store_probes_it_first(what, other_server):
    port = free_port() if what == "closed-port" else other_server
    uri = f"http://alice:{SECRET}@127.0.0.1:{port}"
    for read in (
        lambda: query.run_table(uri, "x", {"entry": query.tag("entry")}, []),
        lambda: query.metric_histories(uri, ["0" * 32], ("test_acc",)),
    ):
        start = time.monotonic()
        with pytest.raises(TrackingError) as err:
            read()
        assert time.monotonic() - start < 10 and SECRET not in str(err.value)
        assert str(err.value).startswith("tracking server http://alice:***@127.0.0.1:")
