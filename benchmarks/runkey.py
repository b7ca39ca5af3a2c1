"""The run key: what makes two runs the same run, decided here and nowhere else.

A `RunKey` holds everything that must agree for two runs to be comparable: the entry and its
code version, the hash of the configuration that ran (model and recipe), the data source and its
checksum, the data limits, and the execution `Mode` that changes the numbers (the precision as
it ran, `auto` resolved; the input pipeline; what compiled the step). It gives the identity
string (a hash of all of it), the tags a run records it by, the checkpoint slot of a seed, and it
is read back from a stored run (`from_record`, a row of `selection.load_runs`). Planning,
resuming, counting a row and "not counted because" all compare keys, through `differs`.

Runs logged before the mode was tagged are read from their params: `precision` (`auto`
resolved by the rule ExecConfig applies, on the device the run recorded), `pipeline`, and
`compile`/`compile_mode`; where those are missing too, fp32, the fast pipeline and no
compilation. Their identity is recomputed from the key, whatever identity tag they carry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from benchmarks.registry import Entry, config_hash
from resnet.config import ExecConfig, TrainConfig
from resnet.model import ConfigError
from tracking import names

# The fields of a key, as `differs` names them.
ENTRY, VERSION, CONFIG, DATA, CHECKSUM, LIMITS, MODE = (
    "entry",
    "version",
    "config",
    "data",
    "checksum",
    "limits",
    "mode",
)
FIELDS = (ENTRY, VERSION, CONFIG, DATA, CHECKSUM, LIMITS, MODE)


@dataclass(frozen=True)
class Mode:
    """How a run computed, where it changes the numbers: precision, input pipeline, compilation."""

    precision: str = "fp32"  # as it ran: fp32 | bf16 | ... (never `auto`)
    pipeline: str = "fast"  # fast | reference
    compile: str = "off"  # off | cudagraph | inductor | a torch.compile mode

    @classmethod
    def of(cls, ex: ExecConfig, device_type: str, optimizer: str) -> Mode:
        """The mode a run with `ex` computes in on a device of this type with this optimizer."""
        return cls(
            ex.resolved_precision(device_type),
            ex.pipeline,
            ex.resolved_compile(device_type, optimizer),
        )

    def describe(self) -> str:
        """E.g. "bf16, fast pipeline, not compiled"."""
        compiled = "not compiled" if self.compile == "off" else f"compiled ({self.compile})"
        return f"{self.precision}, {self.pipeline} pipeline, {compiled}"


@dataclass(frozen=True)
class RunKey:
    """What makes two runs the same run (see the module docstring)."""

    entry: str
    version: int
    config_hash: str
    data: str  # the data source: cifar10 | cifar10-jpeg-rebuild | synthetic | ...
    checksum: str
    limit_train: int = 0
    limit_test: int = 0
    mode: Mode = field(default_factory=Mode)

    @classmethod
    def of(
        cls,
        entry: Entry,
        train: TrainConfig,
        data: str,
        checksum: str,
        limits: tuple[int, int] = (0, 0),
        mode: Mode = Mode(),
    ) -> RunKey:
        """The key of a run of `entry` trained with `train` on this data, in this mode."""
        return cls(
            entry.name,
            entry.version,
            config_hash(entry.model, train),
            data,
            checksum,
            int(limits[0] or 0),
            int(limits[1] or 0),
            mode,
        )

    @property
    def identity(self) -> str:
        """The key as one short string (a hash of every field)."""
        blob = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def tags(self) -> dict[str, str]:
        """The tags a run records its key by (its limits are its params `limit_train` and
        `limit_test`)."""
        return {
            names.TAG_ENTRY: self.entry,
            names.TAG_ENTRY_VERSION: str(self.version),
            names.TAG_CONFIG_HASH: self.config_hash,
            names.TAG_DATA_SOURCE: self.data,
            names.TAG_DATA_CHECKSUM: self.checksum,
            names.TAG_IDENTITY: self.identity,
            names.TAG_PRECISION: self.mode.precision,
            names.TAG_PIPELINE: self.mode.pipeline,
            names.TAG_COMPILE: self.mode.compile,
        }

    def resume_tags(self, seed: int) -> dict[str, str]:
        """The tags that find a run of this key and seed in the store (the identity is the key)."""
        return {
            names.TAG_ENTRY: self.entry,
            names.TAG_IDENTITY: self.identity,
            names.TAG_SEED: str(seed),
        }

    def slot(self, seed: int) -> str:
        """The checkpoint slot of this key and seed: never shared with another key."""
        return f"{self.entry}-{self.identity}-s{seed}"

    def differs(self, other: RunKey | None) -> frozenset[str]:
        """The FIELDS in which `other` is not this key (all of them for None)."""
        if other is None:
            return frozenset(FIELDS)
        pairs = {
            ENTRY: (self.entry, other.entry),
            VERSION: (self.version, other.version),
            CONFIG: (self.config_hash, other.config_hash),
            DATA: (self.data, other.data),
            CHECKSUM: (self.checksum, other.checksum),
            LIMITS: ((self.limit_train, self.limit_test), (other.limit_train, other.limit_test)),
            MODE: (self.mode, other.mode),
        }
        return frozenset(k for k, (a, b) in pairs.items() if a != b)


def _text(value, default: str) -> str:
    return default if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _int(value) -> int:
    number = pd.to_numeric(value, errors="coerce")
    return 0 if pd.isna(number) else int(number)


def _mode(rec: Mapping) -> Mode:
    """A run's mode: its mode tags, or (runs logged before them) its params, as the docstring
    says."""
    if _text(rec.get("key_precision"), ""):
        return Mode(
            _text(rec.get("key_precision"), "fp32"),
            _text(rec.get("key_pipeline"), "fast"),
            _text(rec.get("key_compile"), "off"),
        )
    pipeline, precision = (
        _text(rec.get("param_pipeline"), "fast"),
        _text(rec.get("param_precision"), "fp32"),
    )
    try:
        ex = ExecConfig(
            pipeline=pipeline,
            precision=precision,
            compile=_text(rec.get("param_compile"), "False").lower() == "true",
            compile_mode=_text(rec.get("param_compile_mode"), "auto"),
        )
    except ConfigError:  # values this code does not know: kept as recorded, never equal to ours
        return Mode(precision, pipeline, _text(rec.get("param_compile_mode"), "off"))
    device = "cpu" if _text(rec.get("device"), "cpu") == "cpu" else "cuda"
    return Mode.of(ex, device, _text(rec.get("param_optimizer"), "adam"))


def from_record(rec: Mapping) -> RunKey | None:
    """The key of a stored run, from its plain columns (`selection.load_runs`); None for a run
    that recorded no entry or configuration."""
    entry, config = _text(rec.get("entry"), ""), _text(rec.get("config_hash"), "")
    if not entry or not config:
        return None
    return RunKey(
        entry,
        _int(rec.get("entry_version")) or 1,
        config,
        _text(rec.get("data"), ""),
        _text(rec.get("data_checksum"), ""),
        _int(rec.get("limit_train")),
        _int(rec.get("limit_test")),
        _mode(rec),
    )


def differ(runs: pd.DataFrame, key: RunKey | None) -> pd.Series:
    """For each run (a `key` column), the FIELDS in which its key is not `key`."""
    if key is None:
        return pd.Series([frozenset(FIELDS)] * len(runs), index=runs.index, dtype=object)
    return runs["key"].map(key.differs)


def same(runs: pd.DataFrame, key: RunKey | None, but: tuple[str, ...] = ()) -> pd.Series:
    """Which runs have `key`, the fields in `but` aside."""
    return differ(runs, key).map(lambda d: not (d - set(but))).astype(bool)
