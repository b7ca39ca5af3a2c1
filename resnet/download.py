"""Fetching CIFAR-10's official archive into a data folder: from its published URL or a mirror.

`$RESBENCH_CIFAR10_URL` names a mirror (an internal server behind a firewall, a `file://` path);
whatever serves it, the archive must match the official MD5 before anything is extracted, so a
mirror cannot change the data. The download goes to a temporary folder inside the data folder,
the archive is checked, extracted there (tarfile's `data` filter: no links out, no absolute
paths), and each missing file is then moved into `cifar-10-batches-py/` with one rename: an
interrupted or truncated download leaves nothing half-written behind, and the next call starts
over. A file lock on the data folder makes processes that start together download once: the
others wait, then find the files in place.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from filelock import FileLock
from tqdm import tqdm

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ENV_URL = "RESBENCH_CIFAR10_URL"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
LOCK = ".resbench-download.lock"
TIMEOUT = (30, 120)  # seconds to connect, and between two reads


class DownloadError(RuntimeError):
    """The archive could not be fetched, or it is not the official one; nothing was extracted."""


def archive_url() -> str:
    return os.environ.get(ENV_URL) or URL


def shown(url: str) -> str:
    """`url` without a user name or password, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def file_md5(path: Path) -> str:
    """The MD5 hex digest of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: Path) -> None:
    if url.startswith("file://"):  # a mirror on a shared disk
        with open(urlsplit(url).path, "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        return
    with requests.get(url, stream=True, timeout=TIMEOUT) as response:
        response.raise_for_status()
        size = int(response.headers.get("content-length") or 0) or None
        with (
            open(dest, "wb") as out,
            tqdm(total=size, unit="B", unit_scale=True, leave=False) as bar,
        ):
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def fetch(root: Path, wanted: list[str]) -> None:
    """Download the archive into `root` and put the files of `wanted` that are missing from
    `root/cifar-10-batches-py` in place; raises DownloadError (one line) when it cannot."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / FOLDER
    with FileLock(root / LOCK):
        if all((folder / name).is_file() for name in wanted):
            return  # another process put them there while this one waited
        url = archive_url()
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            archive = Path(tmp) / ARCHIVE
            try:
                _fetch(url, archive)
            except (OSError, requests.RequestException) as e:
                why = " ".join(str(e).split())
                raise DownloadError(
                    f"downloading {shown(url)} failed ({type(e).__name__}: {why})"
                ) from None
            got = file_md5(archive)
            if got != ARCHIVE_MD5:
                raise DownloadError(
                    f"{shown(url)} served {archive.stat().st_size:,} bytes with MD5 {got}, not "
                    f"CIFAR-10's official archive (MD5 {ARCHIVE_MD5}): truncated, or another file"
                )
            with tarfile.open(archive) as tar:
                tar.extractall(Path(tmp) / "x", filter="data")
            extracted = Path(tmp) / "x" / FOLDER
            folder.mkdir(exist_ok=True)
            for path in sorted(extracted.iterdir()):
                if not (folder / path.name).exists():
                    os.replace(path, folder / path.name)
