"""The CIFAR-10 download, end to end against a loopback HTTP server standing in for a mirror.

The served archive is generated (tests/conftest.py's batches, tarred as the official one is) and
the official MD5s are patched to its own, so the verified path runs without the real archive:
download, MD5, extraction, load as `cifar10`; a truncated download; a wrong archive; two processes
at once. And which files the `cifar10` name needs: every one of the six must match.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from resnet import data, download
from tests.conftest import ROOT, write_batches


def md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[bytes, dict[str, str]]:
    """(a generated cifar-10-python.tar.gz, the MD5 of each batch file in it)."""
    folder = write_batches(tmp_path_factory.mktemp("batches"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder / download.FOLDER, arcname=download.FOLDER)
    digests = {n: md5((folder / download.FOLDER / n).read_bytes()) for n in data.FILE_MD5}
    return buf.getvalue(), digests


class Mirror:
    """A loopback HTTP server serving `body` at /cifar-10-python.tar.gz; `cut` sends only that
    many bytes of it (with the full Content-Length) for the next request; `delay` stalls each
    response, so that concurrent clients overlap."""

    def __init__(self, body: bytes):
        self.body, self.cut, self.delay, self.gets = body, None, 0.0, 0
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.gets += 1
                time.sleep(mirror.delay)
                body, mirror.cut = mirror.body[: mirror.cut], None
                self.send_response(200)
                self.send_header("Content-Length", str(len(mirror.body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{download.ARCHIVE}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(archive, monkeypatch):
    body, digests = archive
    served = Mirror(body)
    monkeypatch.setenv(download.ENV_URL, served.url)
    monkeypatch.setattr(download, "ARCHIVE_MD5", md5(body))
    monkeypatch.setattr(data, "FILE_MD5", digests)
    yield served
    served.close()


def test_download_verifies_extracts_and_loads_as_cifar10(mirror, tmp_path):
    ds = data.load_cifar10(tmp_path / "d", download=True)
    assert ds.source == "cifar10"
    assert ds.train_x.shape == (250, 3, 32, 32) and ds.test_x.shape == (20, 3, 32, 32)
    assert mirror.gets == 1
    # nothing left behind but the files and the lock
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(
        [download.FOLDER, download.LOCK]
    )
    data.load_cifar10(tmp_path / "d", download=True)  # found in place: no second download
    assert mirror.gets == 1


def test_truncated_download_is_one_line_leaves_nothing_and_the_next_call_succeeds(mirror, tmp_path):
    mirror.cut = len(mirror.body) // 2
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(tmp_path, download=True)
    message = str(err.value)
    assert "\n" not in message
    assert "127.0.0.1" in message and download.ENV_URL in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [download.LOCK]  # nothing half-extracted
    assert data.load_cifar10(tmp_path, download=True).source == "cifar10"
    assert mirror.gets == 2


def test_an_archive_that_is_not_the_official_one_is_refused(mirror, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(data.DataError, match="not CIFAR-10's official archive"):
        data.load_cifar10(tmp_path, download=True)
    assert not (tmp_path / download.FOLDER).exists()


def test_an_unreachable_mirror_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(download.ENV_URL, "http://user:secret@127.0.0.1:9/cifar.tar.gz")
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(tmp_path, download=True)
    message = str(err.value)
    assert "downloading http://127.0.0.1:9/cifar.tar.gz failed" in message
    assert "secret" not in message and "\n" not in message and "--data-dir" in message


def test_two_processes_at_once_download_once_and_both_load(mirror, archive, tmp_path):
    mirror.delay = 1.0  # the second process asks while the first is downloading
    body, digests = archive
    script = textwrap.dedent(
        f"""
        from resnet import data, download
        download.ARCHIVE_MD5 = {md5(body)!r}
        data.FILE_MD5 = {digests!r}
        print(data.load_cifar10({str(tmp_path)!r}, download=True).source)
        """
    )
    env = {"PYTHONPATH": str(ROOT), download.ENV_URL: mirror.url, "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["cifar10", "cifar10"]
    assert mirror.gets == 1


@pytest.mark.parametrize("wrong", list(data.FILE_MD5))
def test_every_file_must_match_for_the_name_cifar10(tmp_path, monkeypatch, wrong):
    folder = write_batches(tmp_path) / download.FOLDER
    digests = {n: md5((folder / n).read_bytes()) for n in data.FILE_MD5}
    monkeypatch.setattr(data, "FILE_MD5", digests)
    assert data.load_cifar10(tmp_path, download=False).source == "cifar10"
    monkeypatch.setattr(data, "FILE_MD5", {**digests, wrong: "0" * 32})
    assert data.load_cifar10(tmp_path, download=False).source == "cifar10-unverified"


def test_the_official_archive_url_is_the_default(monkeypatch):
    monkeypatch.delenv(download.ENV_URL, raising=False)
    assert download.archive_url() == download.URL
    assert Path(download.URL).name == download.ARCHIVE
