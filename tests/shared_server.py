"""The shared tracking server of docs/DEPLOY.md, started for tests: its code blocks run with only
names, ports and paths substituted (`deploy_block`, `deploy_setup`, `start_server`), and TLS in
front of it: Caddy with the document's site block when Caddy is installed, else a small Python
reverse proxy that does what that block does (HTTPS for the public name, each request passed on
unchanged, Host header included, to the server on 127.0.0.1)."""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

DEPLOY = (Path(__file__).resolve().parent.parent / "docs" / "DEPLOY.md").read_text()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(check, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"{what} did not come up in {timeout:.0f}s"
        time.sleep(0.5)


def answers(url: str, **kw) -> bool:
    try:
        return requests.get(url, timeout=2, **kw).ok
    except requests.RequestException:
        return False


def deploy_block(marker: str) -> str:
    """The one docs/DEPLOY.md code block holding `marker`."""
    (block,) = [b for b in re.findall(r"```\w*\n(.*?)```", DEPLOY, re.S) if marker in b]
    return block


def substituted(text: str, subs: list[tuple[str, str]]) -> str:
    for old, new in subs:
        assert old in text, f"docs/DEPLOY.md does not hold {old!r}"
        text = text.replace(old, new)
    return text


def deploy_setup(home: Path, pg_port: int, db_password: str, admin_password: str) -> dict:
    """docs/DEPLOY.md's setup lines from `umask 077` on, in bash with `home` as $HOME and working
    folder, the passwords typed at its prompts; returns the environment they export."""
    block = deploy_block("cat > basic_auth.ini")
    script = substituted(
        block[block.index("umask 077") :],
        [("localhost:5432", f"127.0.0.1:{pg_port}"), ("@localhost/", f"@127.0.0.1:{pg_port}/")],
    )
    subprocess.run(
        ["bash", "-euc", f"{script}\nenv -0 > exported"],
        cwd=home,
        check=True,
        capture_output=True,
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        input=f"{db_password}\n{admin_password}\n",
        text=True,
    )
    exported = dict(
        v.split("=", 1) for v in (home / "exported").read_text().split("\0") if "=" in v
    )
    (home / "exported").unlink()
    return {k: v for k, v in exported.items() if k.startswith(("MLFLOW_", "HOME"))}


@dataclass
class Server:
    url: str  # what workers pass as --tracking-uri
    port: int  # the server's own port
    proc: subprocess.Popen
    home: Path
    artifacts: Path


def start_server(
    marker: str, subs: list, home: Path, env: dict, port: int, workers: int
) -> subprocess.Popen:
    """docs/DEPLOY.md's `mlflow server` command (the block holding `marker`), `--workers` added to
    spare the CPU."""
    artifacts = home / "artifacts"
    argv = shlex.split(
        substituted(
            deploy_block(marker),
            [("--port 5000", f"--port {port}"), ("/srv/mlflow/artifacts", str(artifacts)), *subs],
        ).replace("\\\n", " ")
    )
    assert argv[:2] == ["mlflow", "server"]
    log = open(home / "server.log", "w")  # noqa: SIM115 (kept open for the server process it logs)
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv, "--workers", str(workers)],
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    host = argv[argv.index("--host") + 1]

    def up() -> bool:
        assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
        return answers(f"http://{host}:{port}/health")

    try:
        wait_until(up, "mlflow server")
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


# headers about one connection, not the request (RFC 9110 7.6.1): never forwarded
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (its own CA, as MLFLOW_TRACKING_SERVER_CERT_PATH would name) and its
    key."""
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_caddy(site_block: str, folder: Path) -> subprocess.Popen:
    """Caddy serving `site_block` on 127.0.0.1, with no admin endpoint and state kept in
    `folder`."""
    config = folder / "Caddyfile"
    config.write_text(
        "{\n\tadmin off\n\tauto_https disable_redirects\n\tdefault_bind 127.0.0.1\n"
        f"\tstorage file_system {folder / 'caddy-data'}\n}}\n{site_block}"
    )
    log = open(folder / "caddy.log", "w")  # noqa: SIM115 (kept open for the server process it logs)
    return subprocess.Popen(
        [shutil.which("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def start_python_proxy(cert: Path, key: Path, port: int, backend_port: int) -> ThreadingHTTPServer:
    """HTTPS on 127.0.0.1:`port` forwarding every request to http://127.0.0.1:`backend_port`."""

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _body(self) -> bytes | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else None

        def forward(self):
            body = self._body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["X-Forwarded-Proto"] = "https"
            upstream = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=120)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                resp = upstream.getresponse()
                data = resp.read()
            finally:
                upstream.close()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = forward

        def log_message(self, *args):  # quiet: the server's own log says what happened
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", port), Forward)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
