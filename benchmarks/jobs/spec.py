"""What one job is: `JobSpec`, a frozen, JSON-serialisable description of one (entry, seed) run.

Built once at the command line's edge and passed down whole: to `train_job` in this process, as
a JSON file to a child process, or pickled to a Ray task. It holds plain values only (the entry
by name), so every path trains exactly the same run. `DataSpec` says which data a job reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from benchmarks.selection import Variant
from resnet.config import ExecConfig
from resnet.data import Dataset
from resnet.data import load as load_data
from tracking import names


@dataclass(frozen=True)
class DataSpec:
    source: str = "cifar10"  # cifar10 | synthetic
    data_dir: str | None = None  # None: $RESBENCH_DATA_DIR or ~/.cache/resbench/data
    limit_train: int = 0  # first N training images; 0 = all 50,000
    limit_test: int = 0  # first N test images; 0 = all 10,000
    download: bool = True  # fetch CIFAR-10 (MD5-checked) when it is missing

    def load(self) -> Dataset:
        """The data, downloaded first when missing (once per data folder: resnet/download.py)."""
        return load_data(
            self.source, self.data_dir, self.limit_train, self.limit_test, self.download
        )


@dataclass(frozen=True)
class JobSpec:
    """One run: which entry and seed, with which overrides, data, execution, store and checkpoints.

    A command builds one with what all its jobs share (entry and seed left at their defaults)
    and `job(entry, seed)` completes it for each.
    """

    entry: str = ""  # the registered entry's name
    seed: int = 0
    overrides: tuple[tuple[str, object], ...] = ()  # TrainConfig fields, sorted by name
    data: DataSpec = field(default_factory=DataSpec)
    ex: ExecConfig = field(default_factory=ExecConfig)
    tracking_uri: str = field(
        default=names.DEFAULT_URI, repr=False
    )  # may hold a password: never shown
    experiment: str = names.DEFAULT_EXPERIMENT
    checkpoint_dir: str | None = None  # None: $RESBENCH_CHECKPOINT_DIR or .resbench/checkpoints
    system_metrics: bool | None = None  # MLflow's system metrics; None: on when the run uses CUDA

    @classmethod
    def of(cls, overrides: dict | None = None, **fields) -> JobSpec:
        return cls(overrides=tuple(sorted((overrides or {}).items())), **fields)

    def job(self, entry: str, seed: int) -> JobSpec:
        return replace(self, entry=entry, seed=seed)

    @property
    def name(self) -> str:
        return f"{self.entry} seed={self.seed}"

    @property
    def variant(self) -> Variant:
        """The overrides and data limits, as the run selection (and the report) knows them."""
        return Variant.of(dict(self.overrides), self.data.limit_train, self.data.limit_test)

    def to_json(self) -> str:
        d = asdict(self)
        d["overrides"] = dict(self.overrides)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        d = json.loads(text)
        return cls.of(
            d.pop("overrides"), data=DataSpec(**d.pop("data")), ex=ExecConfig(**d.pop("ex")), **d
        )
