"""Shared fixtures: a throwaway MLflow store, small generated data, the CLI as a subprocess."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# CIFAR-10 as JPEG files (.tar.xz) and the script that rebuilds the python batches from it, for the
# tests that rebuild the real data set; they skip when RESBENCH_TEST_JPEG_ARCHIVE is not set.
JPEG_ARCHIVE = Path(os.environ.get("RESBENCH_TEST_JPEG_ARCHIVE") or "/nonexistent")
BATCH_SCRIPT = Path(
    os.environ.get("RESBENCH_TEST_BATCH_SCRIPT")
    or JPEG_ARCHIVE.with_name("make_cifar10_batches.py")
)


def gpu(test):
    """Marks a test `gpu` (`pytest -m gpu` selects them, as scripts/gpu_check.sh does) and skips it
    without a CUDA GPU."""
    return pytest.mark.gpu(
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test)
    )


_TEMPLATE: list[Path] = []


def fresh_uri(folder: Path, name: str = "mlflow.db") -> str:
    """A new SQLite store in `folder`, copied from one migrated once per session.

    MLflow spends seconds creating its schema; tests that are not about creation copy it.
    """
    from mlflow.tracking import MlflowClient

    if not _TEMPLATE:
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="resbench-template-")) / "template.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()
        _TEMPLATE.append(template)
    shutil.copyfile(_TEMPLATE[0], folder / name)
    return f"sqlite:///{folder / name}"


@pytest.fixture
def store(tmp_path) -> str:
    """A fresh SQLite tracking URI; artifacts land beside it."""
    return fresh_uri(tmp_path)


def write_batches(folder: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """A CIFAR-10 python-layout folder of generated images (5 train batches + test)."""
    rng = np.random.default_rng(seed)
    dest = folder / "cifar-10-batches-py"
    dest.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_train
        d = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, n).tolist(),
            "batch_label": name,
            "filenames": [f"{i}.png" for i in range(n)],
        }
        with open(dest / name, "wb") as f:
            pickle.dump(d, f)
    return folder


def resbench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run the real console entry point in a child process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    full_env.pop("MLFLOW_TRACKING_URI", None)  # tests name their store explicitly
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
