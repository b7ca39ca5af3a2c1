"""The child processes scripts/bench_tracking.py measures and needs: `resbench` as this checkout
defines it, one command's wall time and peak memory (os.wait4), a generated store made once, an
`mlflow server` on loopback, and a line describing the machine."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import tomllib

ROOT = Path(__file__).resolve().parent.parent


def resbench_command() -> list[str]:
    """`resbench` as this checkout's pyproject.toml defines it (an installed script may point
    elsewhere)."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["resbench"]
    module, func = target.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


def measure(cmd: list[str], cwd: Path, timeout: float = 900) -> dict:
    """Wall seconds, peak RSS (MB, reaped with os.wait4: this child's own) and output of one child
    process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = cwd / "last-output.txt"
    start = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.02)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = log.read_text(errors="replace")
    return {
        "wall": wall,
        "rss_mb": usage.ru_maxrss / 1024,
        "rc": proc.returncode,
        "tail": (out.strip().splitlines() or [""])[-1][:200],
        "out": out,
    }


def ensure_store(workdir: Path, n: int, experiment: str) -> str:
    """sqlite URI of a store with n generated runs in `experiment`, made once (a marker file says it
    is complete)."""
    folder = workdir / f"store-{n}"
    db, done = folder / "mlflow.db", folder / "complete"
    # made in a child: this process stays small, or each child's peak would include it
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        start = time.perf_counter()
        make = (
            "import sys; from benchmarks.storegen import StoreSpec, generate; "
            "generate(sys.argv[1], sys.argv[2], StoreSpec(runs=int(sys.argv[3])), log=print)"
        )
        # the experiment's default artifact root is relative to the working directory: the store's
        # folder
        subprocess.run(
            [sys.executable, "-c", make, f"sqlite:///{db}", experiment, str(n)],
            cwd=folder,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        done.write_text(f"{n} runs generated in {time.perf_counter() - start:.0f} s\n")
    return f"sqlite:///{db}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: str, folder: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` over the store, on loopback; returns once /health answers."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    cmd = [
        str(mlflow),
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    log = open(folder / "server.log", "w")  # noqa: SIM115 (kept open for the server process it logs)
    proc = subprocess.Popen(
        cmd,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            raise click.ClickException(f"mlflow server exited: see {folder / 'server.log'}")
        time.sleep(0.5)
    stop_server(proc)
    raise click.ClickException("mlflow server did not answer /health within 5 minutes")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server `start_server` started, and its workers."""
    os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers, nothing else
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def machine() -> str:
    """Cores, CPU model and load average, for the table's machine line."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores ({cpu}), load average {os.getloadavg()[0]:.1f}"
