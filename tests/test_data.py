"""CIFAR-10 on disk: verification, errors that say what to do, the safe unpickler, generated
data."""

import pickle
import shutil
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from resnet import data
from tests.conftest import BATCH_SCRIPT, JPEG_ARCHIVE, write_batches


def test_synthetic_is_cifar_shaped_and_deterministic():
    a, b = data.synthetic(64, 32), data.synthetic(64, 32)
    assert a.train_x.shape == (64, 3, 32, 32) and a.train_x.dtype == np.uint8
    assert a.test_x.shape == (32, 3, 32, 32) and a.train_y.dtype == np.int64
    assert np.array_equal(a.train_x, b.train_x) and a.source == "synthetic"


def test_generated_batches_load_as_unverified(tmp_path):
    write_batches(tmp_path, n_train=10, n_test=7)
    ds = data.load_cifar10(tmp_path, download=False)
    assert ds.train_x.shape == (50, 3, 32, 32) and ds.test_x.shape == (7, 3, 32, 32)
    assert ds.source == "cifar10-unverified" and len(ds.checksum) == 32
    assert ds.limit(20, 3).train_x.shape[0] == 20


def test_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(data.DataError, match=r"missing in .*cifar-10-batches-py.*--data-dir"):
        data.load_cifar10(tmp_path, download=False)


def test_truncated_file_is_a_clear_error(tmp_path):
    write_batches(tmp_path)
    f = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(data.DataError, match="data_batch_3 is not a readable CIFAR-10 batch"):
        data.load_cifar10(tmp_path, download=False)


class Evil:
    def __reduce__(self):
        return (subprocess.call, (["touch", "/tmp/resbench-pwned"],))


def test_pickles_cannot_run_code(tmp_path):
    write_batches(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f)
    with pytest.raises(data.DataError, match="refusing to load subprocess.call"):
        data.load_cifar10(tmp_path, download=False)


class Reduce:
    """Pickles as `func(*args)` (then `BUILD state`): the opcodes a hostile batch file would
    hold."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) + (() if self.state is None else (self.state,))


def _nested(depth: int, width: int = 10):
    """`width ** depth` zeros that pickle to a few hundred bytes: each level repeats one list."""
    level = [0] * width
    for _ in range(depth - 1):
        level = [level] * width
    return level


def _load_batch(tmp_path, batch: dict, protocol: int = 2):
    """Load a CIFAR folder whose test batch is `batch`; returns (outcome, peak bytes, seconds, file
    size)."""
    write_batches(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    import torchvision.datasets.utils  # noqa: F401  (its first import would count as the loader's memory)

    tracemalloc.start()  # numpy reports its array allocations to tracemalloc too
    start = time.perf_counter()
    try:
        outcome = data.load_cifar10(tmp_path, download=False)
    except data.DataError as e:
        outcome = e
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, peak, seconds, path.stat().st_size


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1, np.uint8))[0]


@pytest.mark.parametrize(
    "hostile",
    [
        Reduce(
            _RECONSTRUCT, (np.ndarray, (100_000, 100_000), b"b")
        ),  # numpy's own reconstruct, any shape
        Reduce(np.ndarray, ((100_000, 100_000), np.dtype("u1"))),  # ndarray(shape) called directly
        Reduce(
            _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (10**8,), np.dtype("O"), False, [0])
        ),  # object fill
    ],
    ids=["reconstruct", "ndarray-call", "object-state"],
)
def test_a_tiny_pickle_cannot_build_a_huge_array(tmp_path, hostile):
    err, peak, _, size = _load_batch(tmp_path, {"data": hostile, "labels": [0]})
    assert size < 300  # a 10 GB array costs the attacker a few hundred bytes
    assert isinstance(err, data.DataError) and "test_batch is not a readable CIFAR-10 batch" in str(
        err
    )
    assert "\n" not in str(err) and peak < 2_000_000  # refused before numpy allocates


@pytest.mark.parametrize("field", ["data", "labels"])
def test_nested_lists_are_refused_fast_and_small(tmp_path, field):
    batch = {"data": np.zeros((20, 3072), np.uint8), "labels": [0] * 20}
    batch[field] = _nested(8)  # 10**8 zeros from a few hundred bytes
    assert len(pickle.dumps(batch[field], protocol=2)) < 500
    err, peak, seconds, _ = _load_batch(tmp_path, batch)
    assert isinstance(err, data.DataError)
    assert f"'{field}'" in str(err) and peak < 2_000_000 and seconds < 5


@pytest.mark.parametrize(
    "labels, why",
    [
        (["cat"] * 20, "integers 0-9"),
        ([0.0] * 20, "integers 0-9"),
        ([True] * 20, "integers 0-9"),
        ([10] * 20, "integers 0-9"),
        ([[0]] * 20, "integers 0-9"),
        ([0] * 19, "list of 20 labels"),
        ({i: 0 for i in range(20)}, "list of 20 labels"),
        ("0" * 20, "list of 20 labels"),
    ],
)
def test_labels_of_the_wrong_type_or_length_are_refused(tmp_path, labels, why):
    err, *_ = _load_batch(tmp_path, {"data": np.zeros((20, 3072), np.uint8), "labels": labels})
    assert isinstance(err, data.DataError) and why in str(err)


def test_codecs_other_than_latin1_are_refused(tmp_path):
    import _codecs

    # hex doubles what it is given: nested calls would grow a few bytes into gigabytes
    err, *_ = _load_batch(tmp_path, {"data": Reduce(_codecs.encode, (b"00", "hex")), "labels": [0]})
    assert isinstance(err, data.DataError) and "_codecs.encode other than on text to latin1" in str(
        err
    )


def test_python2_style_batches_still_load(tmp_path):
    x = np.arange(20 * 3072, dtype=np.uint64).astype(np.uint8).reshape(20, 3072)
    ds, *_ = _load_batch(
        tmp_path, {"data": x, "labels": list(range(10)) * 2, "batch_label": "t"}, protocol=2
    )
    assert (
        np.array_equal(ds.test_x.reshape(20, 3072), x) and ds.test_y.tolist() == list(range(10)) * 2
    )


def test_files_bigger_than_a_batch_are_refused_before_reading(tmp_path):
    write_batches(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_2", "r+b") as f:
        f.truncate(data.MAX_FILE_BYTES + 1)  # sparse: no disk is used
    with pytest.raises(
        data.DataError, match=r"data_batch_2 is 67,108,865 bytes, more than a CIFAR-10 batch"
    ):
        data.load_cifar10(tmp_path, download=False)


def test_default_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    assert data.default_data_dir() == tmp_path


@pytest.mark.slow
@pytest.mark.skipif(
    not JPEG_ARCHIVE.is_file(),
    reason="RESBENCH_TEST_JPEG_ARCHIVE does not name the CIFAR-10 JPEG archive",
)
def test_jpeg_rebuild_is_named_as_such(tmp_path):
    subprocess.run(
        [sys.executable, str(BATCH_SCRIPT), str(JPEG_ARCHIVE), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    ds = data.load_cifar10(tmp_path, download=False)
    assert ds.source == "cifar10-jpeg-rebuild"
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert np.bincount(ds.test_y).tolist() == [1000] * 10
    shutil.rmtree(tmp_path / "cifar-10-batches-py")
