"""The MLflow UI over resbench's store: `mlflow server` as a child process, local by default.

For a SQLite store the server gets that database as its backend and, as the artifact root
for experiments created through it, the `mlruns/` folder beside the database: where
MLflow's client puts artifacts by default (`./mlruns/<experiment>/<run>/artifacts`) when
the store is the default `sqlite:///mlflow.db`. Existing runs keep the absolute artifact
locations they were logged with, which the server reads directly.

The UI has no login, so it binds loopback unless the caller says `public`; either way the server
gets `--allowed-hosts` and `--cors-allowed-origins` for the names it can be reached by, so MLflow's
Host and Origin checks (DNS rebinding, cross-site edits) pass for those names and no others.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tracking import conventions
from tracking.credentials import redact
from tracking.store import TrackingError, client, resolve_uri, sqlite_path

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


def reachable_names(host: str) -> list[str]:
    """The names a browser may use for a server bound to `host`: loopback, plus `host` itself
    or, for every interface, this machine's host names and addresses."""
    names = set(LOOPBACK_NAMES)
    if host not in ANY_ADDRESS:
        names.add(host.strip("[]"))
    else:
        hostname = socket.gethostname()
        names |= {hostname, socket.getfqdn()}
        with contextlib.suppress(OSError):  # a host name that does not resolve adds no address
            names.update(socket.gethostbyname_ex(hostname)[2])
    return sorted(names)


def security_options(host: str, port: int) -> list[str]:
    """`--allowed-hosts` (Host headers, with and without the port) and `--cors-allowed-origins`
    for the names a server on `host`:`port` is reached by."""
    shown = [f"[{n}]" if ":" in n else n for n in reachable_names(host)]
    hosts = [h for n in shown for h in (n, f"{n}:{port}")]
    return [
        "--allowed-hosts",
        ",".join(hosts),
        "--cors-allowed-origins",
        ",".join(f"http://{n}:{port}" for n in shown),
    ]


def server_command(
    uri: str, host: str, port: int, workers: int = 1, public: bool = False
) -> list[str]:
    """The `mlflow server` command line for the store at `uri`; a network `host` needs `public`."""
    if not (public or is_loopback(host)):
        raise TrackingError(
            f"--host {host or '(all interfaces)'} would serve the MLflow UI, which has no login, "
            f"to the network: add --public to mean it, or keep the default 127.0.0.1"
        )
    if uri.startswith(("http://", "https://")):
        raise TrackingError(f"the tracking URI {uri} is already a server: open it in a browser")
    db = sqlite_path(uri)
    if db is not None:
        if not db.is_file():
            raise TrackingError(
                f"no tracking store at {db.resolve()}: run `resbench reproduce` (or `resbench "
                f"run`) "
                f"first, or point --tracking-uri at an existing store"
            )
        backend, artifacts = f"sqlite:///{db.resolve()}", db.resolve().parent / "mlruns"
    elif uri.startswith("file:") or "://" not in uri:
        folder = Path(uri.removeprefix("file://").removeprefix("file:")).resolve()
        backend, artifacts = folder.as_uri(), folder
    else:  # another database URL; MLflow's own defaults apply
        backend, artifacts = uri, Path("mlruns").resolve()
    # a database URI with a password goes in the server's environment (server_env), never on its
    # command line (ps)
    store = ["--backend-store-uri", backend] if redact(backend) == backend else []
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        *store,
        "--default-artifact-root",
        str(artifacts),
        "--artifacts-destination",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        *security_options(host, port),
    ]


def server_env(uri: str) -> dict[str, str]:
    """What the server's environment adds for the store at `uri`: one whose URI holds a password."""
    return {"MLFLOW_BACKEND_STORE_URI": uri} if redact(uri) != uri else {}


def runs_link(url: str, experiment_id: str) -> str:
    """The experiment's runs table in MLflow's UI.

    MLflow 3.17's UI picks an experiment's landing page by its sidebar switch (GenAI | Model
    training, kept per browser, GenAI until changed), not by the experiment's kind tag; the
    `workflowType` parameter opens the training view whatever the switch says.
    """
    return f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # as the server binds: connections of a UI stopped a moment ago (TIME_WAIT) do not hold the
        # port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise TrackingError(
                f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port"
            ) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _own_group_dying_with_parent() -> None:
    """Runs in the server's process before exec.

    Its own session, so stop() ends the whole group (MLflow's uvicorn workers too); and on
    Linux a SIGTERM when the process that started it dies, however abruptly, so no server
    outlives its `resbench ui`.
    """
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _tail(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    lines = [ln for ln in proc.log.read().decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {proc.returncode}"


def start(
    uri: str | None,
    host: str = "127.0.0.1",
    port: int = 5000,
    timeout: float = 120.0,
    public: bool = False,
) -> tuple[subprocess.Popen, str]:
    """Start the server and wait until it answers on /health; returns (process, URL).

    The server's own output goes to a temporary file (`proc.log`), read back if it fails.
    """
    cmd = server_command(resolve_uri(uri), host, port, public=public)
    _check_port_free(host, port)
    log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the server process it logs)
    # MLflow's GenAI job runner is of no use for browsing runs and would only add processes.
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **server_env(resolve_uri(uri)),
    }
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=_own_group_dying_with_parent,
    )
    proc.log = log
    url = url_for(host, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = _tail(proc)
            log.close()
            raise TrackingError(f"mlflow server stopped before answering: {msg}")
        try:
            if requests.get(url + "/health", timeout=2).ok:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(proc)
    raise TrackingError(f"mlflow server did not answer on {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Terminate the server's process group (and wait); kill it if it does not go."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group of the server we started, workers included
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.log.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(
    uri: str | None,
    host: str = "127.0.0.1",
    port: int = 5000,
    experiment: str | None = None,
    echo=print,
    public: bool = False,
) -> None:
    """Run the UI until Ctrl-C (or SIGTERM) or until the server exits by itself; links
    `experiment`'s runs.

    A `host` other than loopback needs `public`: the UI has no login."""
    proc, url = start(uri, host, port, public=public)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server as Ctrl-C does
    try:
        echo(f"MLflow UI for {redact(resolve_uri(uri))} at {url}  (Ctrl-C stops it)")
        if not is_loopback(host):
            echo(
                f"public: anyone who can reach port {port} here can read and edit these runs, with "
                f"no login"
            )
        reader = client(resolve_uri(uri))
        found = reader.get_experiment_by_name(experiment) if experiment else None
        if found is not None:
            conventions.mark_experiment(reader, found)
            echo(f"runs of {experiment!r}: {runs_link(url, found.experiment_id)}")
        code = proc.wait()
        if code != 0:
            raise TrackingError(f"mlflow server exited with status {code}: {_tail(proc)}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop(proc)
