"""Settings that matter on a GPU, checked on a CPU: what each precision allows (TensorFloat-32),
cuBLAS's workspace under --deterministic, and `--devices` read through CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from benchmarks.jobs.executor import ExecutorConfig, ExecutorError
from benchmarks.jobs.local import run_children, visible_device
from benchmarks.jobs.spec import JobSpec
from benchmarks.jobs.tags import precision_tags
from resnet.checkpoint import rng_state, set_rng_state
from resnet.config import PRECISIONS, ExecConfig, TrainConfig
from resnet.data import synthetic
from resnet.model import ResNetConfig
from resnet.setup import setup
from tracking import names

TINY = ResNetConfig(layers=1, blocks=1, channels=4, conv_kernel=3, skip_kernel=1, pool_kernel=4)
CUDA = torch.device("cuda")  # only named: nothing here touches a GPU


def tf32_flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize(
    "precision, tf32",
    [("tf32", True), ("fp32", False), ("bf16", False), ("auto", False), ("fp32", False)],
)
def test_only_tf32_allows_tensorfloat32(precision, tf32):
    # fp32 after tf32 (and the reverse) in one process: each run sets the flags both ways
    setup(
        TINY,
        TrainConfig(batch_size=4),
        synthetic(4, 4),
        ExecConfig(device="cpu", precision=precision),
    )
    assert tf32_flags() == (tf32, tf32)


def test_runs_record_their_precision_and_tf32():
    assert set(PRECISIONS) == {"auto", "bf16", "tf32", "fp32"}
    expected = {
        ("auto", CUDA): ("bf16", "off"),
        ("auto", torch.device("cpu")): ("fp32", "off"),
        ("fp32", CUDA): ("fp32", "off"),
        ("tf32", CUDA): ("tf32", "on"),
        ("bf16", CUDA): ("bf16", "off"),
    }
    for (precision, device), (resolved, tf32) in expected.items():
        tags = precision_tags(ExecConfig(precision=precision), device)
        assert tags == {names.TAG_PRECISION: resolved, names.TAG_TF32: tf32}
    # the reference pipeline never autocasts
    assert ExecConfig(pipeline="reference").resolved_precision(CUDA) == "fp32"
    assert ExecConfig(precision="tf32").dtype(CUDA) == torch.float32


def test_deterministic_sets_the_cublas_workspace_before_the_device_is_touched(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []
    resolve = ExecConfig.torch_device
    monkeypatch.setattr(
        ExecConfig,
        "torch_device",
        lambda self: seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG")) or resolve(self),
    )
    data = synthetic(4, 4)
    try:
        setup(TINY, TrainConfig(batch_size=4), data, ExecConfig(device="cpu", deterministic=True))
    finally:
        torch.use_deterministic_algorithms(False)
    assert seen == [":4096:8"]
    # a workspace the user chose is kept
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    try:
        setup(TINY, TrainConfig(batch_size=4), data, ExecConfig(device="cpu", deterministic=True))
    finally:
        torch.use_deterministic_algorithms(False)
    assert seen[-1] == ":16:8"


def test_devices_count_within_the_parents_visible_set(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    spec = JobSpec(entry="test/tiny", tracking_uri="sqlite:///unused.db")
    lines = []
    failed = run_children(
        ExecutorConfig(devices=(1, 0)),
        [spec.job("test/tiny", s) for s in range(2)],
        lines.append,
        command=lambda path: [
            sys.executable,
            "-c",
            "import os; print('child sees', os.environ['CUDA_VISIBLE_DEVICES'])",
        ],
    )
    assert failed == [] and "on GPU(s) 3,2" in lines[0]
    assert sorted(line.split()[-1] for line in lines[1:]) == ["2", "3"]
    assert visible_device(1, {"CUDA_VISIBLE_DEVICES": "GPU-a1, GPU-b2"}) == "GPU-b2"
    assert visible_device(1, {}) == "1"  # no visible set: indices are the machine's
    with pytest.raises(ExecutorError, match="sees 1 GPU"):
        visible_device(1, {"CUDA_VISIBLE_DEVICES": "5"})


class CudaGenerator:
    """A stand-in for a generator on the run's GPU, cuda:1 of a two-GPU process."""

    device = torch.device("cuda", 1)

    def get_state(self):
        return torch.zeros(4, dtype=torch.uint8)

    def set_state(self, state):
        pass


def test_a_checkpoint_keeps_the_rng_of_the_runs_own_gpu_only(monkeypatch):
    calls = []

    def every_gpu(*args):
        raise AssertionError("every visible GPU's state read or restored")

    monkeypatch.setattr(torch.cuda, "get_rng_state_all", every_gpu)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", every_gpu)
    monkeypatch.setattr(
        torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or torch.ones(8)
    )
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", device, state))
    )
    state = rng_state(CudaGenerator())
    assert torch.equal(state["cuda"], torch.ones(8))
    set_rng_state(state, CudaGenerator())
    assert [c[:2] for c in calls] == [("get", CudaGenerator.device), ("set", CudaGenerator.device)]
    assert "cuda" not in rng_state(torch.Generator())  # a CPU run keeps none
