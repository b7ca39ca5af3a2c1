"""CIFAR-10 on disk (find, download, verify, load) and a generated CIFAR-shaped source.

Everything is returned as uint8 NCHW arrays plus int64 labels; augmentation and
normalisation belong to the training pipelines. CIFAR-10's python files are pickles, read by
`resnet.batchfile` without an unpickler.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resnet import download as remote
from resnet.batchfile import MAX_FILE_BYTES
from resnet.batchfile import read as read_batch_file
from resnet.batchpickle import BatchError

FOLDER = remote.FOLDER
# The official per-file MD5s (as torchvision's CIFAR10 lists them).
FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
ENV_DATA_DIR = "RESBENCH_DATA_DIR"
SYNTHETIC = "synthetic"


class DataError(RuntimeError):
    """Data that is missing, truncated or fails its checksum; the message says what to do."""


@dataclass(frozen=True)
class Dataset:
    train_x: np.ndarray  # uint8 [N, 3, 32, 32]
    train_y: np.ndarray  # int64 [N]
    test_x: np.ndarray
    test_y: np.ndarray
    source: str  # "cifar10", "cifar10-jpeg-rebuild", "cifar10-unverified", "synthetic"
    checksum: str  # digest of the files (or generator settings) the arrays came from

    def limit(self, train: int | None, test: int | None) -> Dataset:
        """The first `train` / `test` images (None or 0 keeps all)."""
        tr = slice(None, train or None)
        te = slice(None, test or None)
        return Dataset(
            self.train_x[tr],
            self.train_y[tr],
            self.test_x[te],
            self.test_y[te],
            self.source,
            self.checksum,
        )


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "resbench" / "data"


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path} is {size:,} bytes, more than a CIFAR-10 batch "
            f"(at most {MAX_FILE_BYTES:,}); delete it to download a fresh copy"
        )


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one batch file, or a one-line DataError saying what to do."""
    _check_size(path)
    try:
        return read_batch_file(path)
    except (BatchError, OSError) as e:  # BatchError's text names types and sizes only
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {e}); "
            f"delete it to download a fresh copy"
        ) from None


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """The 50,000 + 10,000 images from `data_dir/cifar-10-batches-py`, downloading the official
    archive (resnet/download.py) when files are missing and `download` is true.

    Files that match the official MD5s load as source "cifar10". Files that parse but
    do not match (for example the JPEG rebuild) load under another source name, so no
    figure made from them can pass for the original data.
    """
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    folder = root / FOLDER
    missing = [n for n in FILE_MD5 if not (folder / n).is_file()]
    if missing and download:
        try:
            remote.fetch(root, list(FILE_MD5))
        except remote.DownloadError as e:
            raise DataError(
                f"CIFAR-10 is not in {folder}: {e}; copy {FOLDER}/ there, point --data-dir / "
                f"${ENV_DATA_DIR} at a copy, or ${remote.ENV_URL} at a mirror of the archive"
            ) from None
        missing = [n for n in FILE_MD5 if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 files missing in {folder}: {', '.join(missing)}; "
            f"point --data-dir / ${ENV_DATA_DIR} at a folder holding {FOLDER}/"
        )
    for n in FILE_MD5:
        _check_size(folder / n)
    digests = {n: remote.file_md5(folder / n) for n in FILE_MD5}
    if digests == FILE_MD5:
        source = "cifar10"
    else:
        readme = folder / "readme.txt"
        rebuilt = readme.is_file() and "JPEG" in readme.read_text(errors="replace")
        source = "cifar10-jpeg-rebuild" if rebuilt else "cifar10-unverified"
    train = [read_batch(folder / n) for n in TRAIN_FILES]
    test_x, test_y = read_batch(folder / "test_batch")
    checksum = hashlib.md5("".join(digests[n] for n in sorted(digests)).encode()).hexdigest()
    return Dataset(
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        test_x,
        test_y,
        source,
        checksum,
    )


def synthetic(n_train: int = 50_000, n_test: int = 10_000, seed: int = 0) -> Dataset:
    """A learnable CIFAR-shaped source: each class is a coloured pattern plus noise.

    Small, deterministic and offline, for tests and CI; never a stand-in for real accuracy.
    """
    rng = np.random.default_rng(seed)
    protos = rng.integers(40, 216, size=(10, 3, 8, 8)).repeat(4, axis=2).repeat(4, axis=3)

    def make(n):
        y = rng.integers(0, 10, size=n)
        noise = rng.normal(0, 40, size=(n, 3, 32, 32))
        return np.clip(protos[y] + noise, 0, 255).astype(np.uint8), y.astype(np.int64)

    train_x, train_y = make(n_train)
    test_x, test_y = make(n_test)
    return Dataset(
        train_x, train_y, test_x, test_y, SYNTHETIC, f"synthetic-{n_train}-{n_test}-{seed}"
    )


def load(
    data: str,
    data_dir=None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    download: bool = True,
) -> Dataset:
    """The named source ("cifar10" or "synthetic"), cut to the limits."""
    if data == SYNTHETIC:
        return synthetic(limit_train or 50_000, limit_test or 10_000)
    if data != "cifar10":
        raise DataError(f"unknown data source {data!r}: use cifar10 or synthetic")
    return load_cifar10(data_dir, download).limit(limit_train, limit_test)
