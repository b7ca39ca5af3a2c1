"""What one job is: `JobSpec`, a frozen, JSON-serialisable description of one (entry, seed) run.

A command builds `JobSettings` (what all its jobs share) once at the command line's edge, and
`JobSettings.job(entry, seed)` makes each JobSpec, passed down whole: to `train_job` in this
process, as a JSON file to a child process, or pickled to a Ray task. It holds plain values only
(the entry by name), so every path trains exactly the same run. `DataSpec` says which data a job
reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from benchmarks.registry import Entry
from benchmarks.runkey import Mode, RunKey
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
class JobSettings:
    """What every job of a command shares: overrides, data, execution, store and checkpoints.

    Built once at the command line's edge; `job(entry, seed)` makes each job's JobSpec from it.
    """

    overrides: tuple[tuple[str, object], ...] = ()  # TrainConfig fields, sorted by name
    data: DataSpec = field(default_factory=DataSpec)
    ex: ExecConfig = field(default_factory=ExecConfig)
    # may hold a password: never shown
    tracking_uri: str = field(default=names.DEFAULT_URI, repr=False)
    experiment: str = names.DEFAULT_EXPERIMENT
    checkpoint_dir: str | None = None  # None: $RESBENCH_CHECKPOINT_DIR or .resbench/checkpoints
    system_metrics: bool | None = None  # MLflow's system metrics; None: on when the run uses CUDA

    @classmethod
    def of(cls, overrides: dict | None = None, **values):
        return cls(overrides=tuple(sorted((overrides or {}).items())), **values)

    def job(self, entry: str, seed: int) -> JobSpec:
        """The job of `entry` (a registered entry's name) and `seed`, with these settings."""
        shared = {f.name: getattr(self, f.name) for f in fields(JobSettings)}
        return JobSpec(entry=entry, seed=seed, **shared)

    @property
    def variant(self) -> Variant:
        """The overrides and data limits, as the run selection (and the report) knows them."""
        return Variant.of(dict(self.overrides), self.data.limit_train, self.data.limit_test)

    def key(self, entry: Entry, source: str, checksum: str, device_type: str) -> RunKey:
        """The key of a run of `entry` (its registered self) with these settings on data of this
        source and checksum, on a device of this type: what the run is resumed by and counted
        as."""
        mode = Mode.of(self.ex, device_type, self.variant.train(entry).optimizer)
        return self.variant.key(entry, source, checksum, mode)


@dataclass(frozen=True)
class JobSpec(JobSettings):
    """One run: an entry and seed, with the settings it trains under."""

    entry: str = field(kw_only=True)  # the registered entry's name
    seed: int = field(default=0, kw_only=True)

    def __post_init__(self):
        if not self.entry:
            raise ValueError("a job names its entry: JobSettings.job(entry, seed) makes one")

    @property
    def name(self) -> str:
        return f"{self.entry} seed={self.seed}"

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
