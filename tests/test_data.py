"""CIFAR-10 on disk: verification, errors that say what to do, the safe unpickler, generated data."""
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from resnet import data
from tests.conftest import SHARED_DATA, write_batches


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


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    with pytest.raises(data.DataError, match="downloading .* failed .*--data-dir"):
        data.load_cifar10(tmp_path, download=True)


def test_default_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_DATA_DIR, str(tmp_path))
    assert data.default_data_dir() == tmp_path


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="the JPEG-rebuilt CIFAR-10 archive is not beside the checkout")
def test_jpeg_rebuild_is_named_as_such(tmp_path):
    script = SHARED_DATA.with_name("make_cifar10_batches.py")
    subprocess.run([sys.executable, str(script), str(SHARED_DATA), str(tmp_path)], check=True, capture_output=True)
    ds = data.load_cifar10(tmp_path, download=False)
    assert ds.source == "cifar10-jpeg-rebuild"
    assert ds.train_x.shape == (50000, 3, 32, 32) and ds.test_x.shape == (10000, 3, 32, 32)
    assert np.bincount(ds.test_y).tolist() == [1000] * 10
    shutil.rmtree(tmp_path / "cifar-10-batches-py")
