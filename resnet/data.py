"""CIFAR-10 on disk (find, download, verify, load) and a generated CIFAR-shaped source.

Everything is returned as uint8 NCHW arrays plus int64 labels; augmentation and
normalisation belong to the training pipelines. CIFAR-10's python files are pickles,
so they are read with an unpickler that only builds numpy arrays and plain containers.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
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


# Bounds for untrusted batch files, from what an official batch holds: 10,000 images of
# 3 x 32 x 32 bytes (~31 MB on disk). Anything larger is refused before it is read or built.
MAX_FILE_BYTES = 64 << 20
MAX_IMAGES = 10_000
IMAGE_BYTES = 3 * 32 * 32
MAX_ARRAY_BYTES = MAX_IMAGES * IMAGE_BYTES


def _checked_layout(shape, dtype) -> int:
    """The byte size of an array of `shape` and `dtype`, refused before anything is allocated
    unless it is a plain numeric array no bigger than one batch."""
    if not (
        isinstance(dtype, np.dtype)
        and dtype.kind in "biuf"
        and dtype.subdtype is None
        and dtype.names is None
    ):
        raise pickle.UnpicklingError(f"refusing an array of dtype {dtype!r}")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"refusing an array of shape {shape!r}")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if nbytes > MAX_ARRAY_BYTES:
        raise pickle.UnpicklingError(
            f"refusing an array of shape {shape} ({nbytes:,} bytes; "
            f"a batch holds at most {MAX_ARRAY_BYTES:,})"
        )
    return nbytes


class _NdarrayName:
    """Stands for numpy.ndarray in a pickle: only `_reconstruct` may use it, so the pickle
    cannot call ndarray(shape) itself and allocate an array of any size."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("refusing numpy.ndarray(...) outside _reconstruct")


class _CheckedArray(np.ndarray):
    """The arrays a batch builds: their pickled state is checked before numpy fills them."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise pickle.UnpicklingError("refusing an array state that is not numpy's")
        shape, dtype, _, raw = state[-4:]
        nbytes = _checked_layout(shape, dtype)
        if not isinstance(raw, (bytes, str)) or len(raw) != nbytes:
            raise pickle.UnpicklingError(f"array data of shape {shape} is not {nbytes} raw bytes")
        super().__setstate__(state)


def _reconstruct(subtype, shape, dtype):
    if subtype is not _NdarrayName:
        raise pickle.UnpicklingError(f"refusing _reconstruct of {subtype!r}")
    _checked_layout(shape, dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))
    return np.ndarray.__new__(_CheckedArray, shape, dtype)


def _latin1(text, encoding):
    # numpy's Python 2 pickles carry raw bytes as latin-1 text; other codecs (hex, base64,
    # zlib) could blow a few bytes up into gigabytes, so only this one is allowed.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    """Builds only what CIFAR-10 batches hold: bounded numeric arrays and builtin containers."""

    _ALLOWED = {
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1,
        ("numpy", "ndarray"): _NdarrayName,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "scalar"): None,
        ("numpy._core.multiarray", "scalar"): None,
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self._ALLOWED[module, name] or super().find_class(module, name)


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError(
            f"{path} is {size:,} bytes, more than a CIFAR-10 batch "
            f"(at most {MAX_FILE_BYTES:,}); delete it to download a fresh copy"
        )


def _checked_batch(d) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of an unpickled batch, refused unless they are what a batch holds."""
    if not isinstance(d, dict) or "data" not in d or "labels" not in d:
        raise ValueError("not a dict with 'data' and 'labels'")
    x, labels = d["data"], d["labels"]
    if not (
        isinstance(x, np.ndarray)
        and x.dtype == np.uint8
        and x.ndim == 2
        and x.shape[1] == IMAGE_BYTES
        and 0 < x.shape[0] <= MAX_IMAGES
    ):
        raise ValueError(
            f"'data' is not a uint8 array of at most {MAX_IMAGES} rows of {IMAGE_BYTES} bytes"
        )
    # Length first, then types: a short pickle can nest lists that expand enormously if converted.
    if not isinstance(labels, (list, tuple)) or len(labels) != len(x):
        raise ValueError(f"'labels' is not a list of {len(x)} labels, one per image")
    if not all(type(v) is int and 0 <= v <= 9 for v in labels):
        raise ValueError("'labels' holds something other than the integers 0-9")
    return np.asarray(x).reshape(-1, 3, 32, 32), np.array(labels, dtype=np.int64)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    _check_size(path)
    try:
        with open(path, "rb") as f:
            return _checked_batch(_ArrayUnpickler(f, encoding="latin1").load())
    except Exception as e:  # truncated or foreign files fail in many ways
        why = " ".join(str(e).split())  # one line, whatever the parser said
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch ({type(e).__name__}: {why}); "
            f"delete it to download a fresh copy"
        ) from None


def _download(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, str(root), filename=ARCHIVE, md5=ARCHIVE_MD5)
    except Exception as e:
        raise DataError(
            f"CIFAR-10 is not in {root / FOLDER} and downloading {URL} failed ({type(e).__name__}: "
            f"{e}); "
            f"copy cifar-10-batches-py/ there, or point --data-dir / ${ENV_DATA_DIR} at a copy"
        ) from None


def load_cifar10(data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """The 50,000 + 10,000 images from `data_dir/cifar-10-batches-py`, downloading if missing.

    Files that match the official MD5s load as source "cifar10". Files that parse but
    do not match (for example the JPEG rebuild) load under another source name, so no
    figure made from them can pass for the original data.
    """
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    folder = root / FOLDER
    missing = [n for n in FILE_MD5 if not (folder / n).is_file()]
    if missing and download:
        _download(root)
        missing = [n for n in FILE_MD5 if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 files missing in {folder}: {', '.join(missing)}; "
            f"point --data-dir / ${ENV_DATA_DIR} at a folder holding {FOLDER}/"
        )
    from torchvision.datasets.utils import calculate_md5

    for n in FILE_MD5:
        _check_size(folder / n)
    digests = {n: calculate_md5(folder / n) for n in FILE_MD5}
    if digests == FILE_MD5:
        source = "cifar10"
    else:
        readme = folder / "readme.txt"
        rebuilt = readme.is_file() and "JPEG" in readme.read_text(errors="replace")
        source = "cifar10-jpeg-rebuild" if rebuilt else "cifar10-unverified"
    train = [_read_batch(folder / n) for n in TRAIN_FILES]
    test_x, test_y = _read_batch(folder / "test_batch")
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
