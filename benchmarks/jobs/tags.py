"""What a run records about itself in MLflow: its name, flat params and tags (`record`).

Params are the model's and the recipe's fields, the execution options, the seed and the data;
tags make runs easy to find and compare (the run key: entry, version, config hash, data source
and checksum, identity, mode; then seed, group, overrides, code version, hardware and software,
what the paper printed). `train_job`, the synthetic store generator (benchmarks/storegen.py) and
`resbench speed` all build their runs' records here. Also MLflow's source and dataset inputs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from benchmarks import environment
from benchmarks.jobs.spec import JobSpec
from benchmarks.registry import Entry
from benchmarks.runkey import RunKey
from resnet import data as data_mod
from resnet.config import ExecConfig, TrainConfig
from resnet.data import Dataset
from resnet.setup import tf32_allowed
from tracking import names
from tracking.conventions import DataInput, Source

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def git_version() -> tuple[str, bool]:
    """(commit, dirty) of the checkout the code runs from; ("unknown", False) outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            != ""
        )
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


@lru_cache(maxsize=1)
def git_remote() -> str:
    """The checkout's `origin` remote, "" where there is none (tracking drops any credentials in
    it)."""
    try:
        return subprocess.run(
            ["git", "config", "--get", "remote.origin.url"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def source() -> Source:
    """MLflow's source tags for a run of this checkout: the runs table's Source column."""
    return Source("resbench run", git_version()[0], git_remote())


def data_input(spec: JobSpec, data: Dataset) -> DataInput:
    """The run's training and test sets, for MLflow's dataset inputs: from the official download
    (its URL), from files found in a folder (that folder), or generated."""
    if data.source == data_mod.SYNTHETIC:
        where = "resnet.data.synthetic"
    elif data.source == "cifar10":
        where = data_mod.URL
    else:
        root = (
            Path(spec.data.data_dir).expanduser()
            if spec.data.data_dir
            else data_mod.default_data_dir()
        )
        where = str((root / data_mod.FOLDER).resolve())
    return DataInput(
        data.source,
        data.checksum,
        where,
        len(data.train_y),
        len(data.test_y),
        spec.data.limit_train,
        spec.data.limit_test,
    )


def describe(entry: Entry) -> str:
    """The entry and what the paper claimed for it, in one sentence (the run's description in the
    UI)."""
    p = entry.paper
    claim = []
    if p.accuracy is not None:
        claim.append(f"{p.accuracy_text}% test accuracy")
    if p.params:
        claim.append(f"{p.params} parameters")
    if p.epochs:
        claim.append(f"{p.epochs} epochs")
    return f"{entry.name}: {entry.description}" + (f" Paper: {', '.join(claim)}." if claim else "")


@dataclass(frozen=True)
class DataFacts:
    """What a run records about its data: the source, its checksum and the images it read."""

    source: str
    checksum: str
    train_images: int
    test_images: int

    @classmethod
    def of(cls, data: Dataset) -> DataFacts:
        return cls(data.source, data.checksum, len(data.train_y), len(data.test_y))


@dataclass(frozen=True)
class Machine:
    """Where a run trains: the device type ("cpu", "cuda") and its hardware and software tags."""

    device_type: str
    tags: Mapping[str, str]

    @classmethod
    def of(cls, device: torch.device) -> Machine:
        return cls(device.type, environment.describe(device))


def precision_tags(ex: ExecConfig, device: torch.device | str) -> dict:
    """The arithmetic a run used: its resolved precision, and whether TF32 was allowed."""
    precision = ex.resolved_precision(device)
    return {
        names.TAG_PRECISION: precision,
        names.TAG_TF32: "on" if tf32_allowed(precision) else "off",
    }


@dataclass(frozen=True)
class Record:
    """A run's name, params and tags, as it records them once when it starts."""

    name: str
    params: dict
    tags: dict
    key: RunKey


def overridden(entry: Entry, cfg: TrainConfig, spec: JobSpec) -> list[str]:
    """Fields in which this run differs from the entry as registered (limits included)."""
    diff = [k for k, v in asdict(cfg).items() if getattr(entry.train, k) != v]
    return diff + [k for k in ("limit_train", "limit_test") if getattr(spec.data, k)]


def record(
    entry: Entry, spec: JobSpec, data: DataFacts, machine: Machine, commit: tuple[str, bool]
) -> Record:
    """What the run of `spec` (its entry `entry`, as registered) on `data` and `machine` records:
    params are the model's and the recipe's fields, the execution options, the seed and the data;
    tags its key (benchmarks/runkey.py), seed, group, overrides, code version (`commit`: commit,
    dirty), machine and the paper's figures."""
    cfg = spec.variant.train(entry)
    key = spec.key(entry, data.source, data.checksum, machine.device_type)
    params = {
        **entry.model.flat(),
        **asdict(cfg),
        **asdict(spec.ex),
        "seed": spec.seed,
        "data": data.source,
        "limit_train": spec.data.limit_train,
        "limit_test": spec.data.limit_test,
        "train_images": data.train_images,
        "test_images": data.test_images,
    }
    p = entry.paper
    tags = {
        **key.tags(),
        names.TAG_GROUP: entry.group,
        names.TAG_SEED: spec.seed,
        names.TAG_KIND: "train",
        names.TAG_ENTRY_HASH: entry.config_hash(),
        names.TAG_OVERRIDES: ",".join(overridden(entry, cfg, spec)),
        names.TAG_TF32: "on" if tf32_allowed(key.mode.precision) else "off",
        names.TAG_GIT_COMMIT: commit[0],
        names.TAG_GIT_DIRTY: commit[1],
        **machine.tags,  # hardware and software, for the report's reproducibility cards
        names.TAG_DESCRIPTION: describe(entry),
    }
    for tag, value in (
        (names.TAG_PAPER_ACCURACY, p.accuracy),
        (names.TAG_PAPER_PARAMS, p.params),
        (names.TAG_PAPER_EPOCHS, p.epochs),
        (names.TAG_PAPER_TEST_LOSS, p.test_loss),
    ):
        if value is not None:
            tags[tag] = value
    return Record(f"{entry.name} seed={spec.seed}", params, tags, key)


def summary(param_count: int, history: list[Mapping]) -> dict[str, float]:
    """A finished run's summary metrics from its epochs (`EpochStats` fields, one mapping each):
    the last epoch's test accuracy and losses (what the paper reports), the best epoch's
    accuracy, the parameter count and the wall time."""
    last = history[-1]
    batchmean = last.get(names.TEST_LOSS_BATCHMEAN)
    return {
        names.PARAM_COUNT: param_count,
        names.TEST_ACCURACY: last["test_acc"],
        names.BEST_TEST_ACCURACY: max(h["test_acc"] for h in history),
        names.TEST_LOSS: last["test_loss"],
        **({} if batchmean is None else {names.TEST_LOSS_BATCHMEAN_FINAL: batchmean}),
        names.WALL_SECONDS: sum(h["epoch_seconds"] for h in history),
    }
