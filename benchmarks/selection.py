"""Which runs are which: a run's variant and identity, and which runs count for an entry.

Below both `reproduce` (what is still to train) and the report (what a row counts). It turns
the runs `tracking` found into a DataFrame with plain column names (`load_runs`), and answers
from it alone: the runs of an entry in one variant and data source (`matching`), the identity a
row reports (`row_identity`), the runs that count (`counted`) and the data source a table is about
(`resolve_source`). A `Variant` is what a table or a reproduction is about: the same training
overrides and data limits applied to every entry.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass

import pandas as pd

from benchmarks import collapse, registry
from benchmarks.registry import Entry
from resnet.config import TrainConfig
from resnet.data import DataError
from resnet.model import ConfigError
from tracking import names, query

SOURCES = {
    "cifar10": "CIFAR-10 (official files, MD5-verified)",
    "cifar10-jpeg-rebuild": (
        "cifar10-jpeg-rebuild: CIFAR-10 rebuilt from JPEG files, not the paper's data"
    ),
    "cifar10-unverified": "cifar10-unverified: files that do not match CIFAR-10's MD5 checksums",
    "synthetic": "synthetic: generated data, whose accuracies say nothing about the paper",
}
# What each run recorded about itself (tags and params), carried into the rows and cards.
TAG_COLUMNS = {
    "identity": names.TAG_IDENTITY,
    "entry_version": names.TAG_ENTRY_VERSION,
    "data_checksum": names.TAG_DATA_CHECKSUM,
    "git_commit": names.TAG_GIT_COMMIT,
    "git_dirty": names.TAG_GIT_DIRTY,
    "device": names.TAG_DEVICE,
    "gpu_count": names.TAG_GPU_COUNT,
    "gpu_driver": names.TAG_GPU_DRIVER,
    "cuda": names.TAG_CUDA,
    "cudnn": names.TAG_CUDNN,
    "cpu": names.TAG_CPU,
    "platform": names.TAG_PLATFORM,
    "python": names.TAG_PYTHON,
    "torch": names.TAG_TORCH,
    "torchvision": names.TAG_TORCHVISION,
    "mlflow": names.TAG_MLFLOW,
}
PARAM_COLUMNS = (
    "pipeline",
    "precision",
    "compile",
    "compile_mode",
    "channels_last",
    "deterministic",
    "train_images",
    "test_images",
)


def apply_overrides(base: TrainConfig, overrides: dict) -> TrainConfig:
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(
            f"{sorted(unknown)[0]}: not a training field "
            f"(fields: {', '.join(f.name for f in dataclasses.fields(TrainConfig))})"
        )
    return dataclasses.replace(base, **overrides)


@dataclass(frozen=True)
class Variant:
    """What a table is about: the same training overrides and data limits applied to every entry."""

    overrides: tuple[tuple[str, object], ...] = ()
    limit_train: int = 0
    limit_test: int = 0

    @classmethod
    def of(
        cls, overrides: dict | None = None, limit_train: int | None = 0, limit_test: int | None = 0
    ) -> Variant:
        return cls(tuple(sorted((overrides or {}).items())), limit_train or 0, limit_test or 0)

    def train(self, entry: Entry) -> TrainConfig:
        return apply_overrides(entry.train, dict(self.overrides))

    def config_hash(self, entry: Entry) -> str:
        return entry.config_hash(self.train(entry))

    def identity(self, entry: Entry, data_checksum: str) -> str:
        return entry.identity(self.train(entry), data_checksum, self.limit_train, self.limit_test)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.overrides] + [
            f"{k}={v}"
            for k, v in (("limit_train", self.limit_train), ("limit_test", self.limit_test))
            if v
        ]
        return ", ".join(parts)


def _filters(entries: list[str] | None, data: str | None) -> list[str]:
    """MLflow filter strings, any of which a wanted run matches; [] = every run. A group with many
    wanted entries is one query ("group/*"); the rows are filtered exactly afterwards."""
    by_group: dict[str, list[str]] = {}
    for pattern in entries or ["*"]:
        by_group.setdefault(pattern.split("/", 1)[0], []).append(pattern)
    patterns = [
        p for group, ps in by_group.items() for p in (ps if len(ps) <= 3 else [f"{group}/*"])
    ]
    where = [[] if p == "*" else [query.glob_filter(names.TAG_ENTRY, p)] for p in patterns]
    if data is not None:
        where = [w + [query.glob_filter(names.TAG_DATA_SOURCE, data)] for w in where]
    if any(None in w for w in where):  # a quote in a name: read everything, filter below
        return []
    return [" and ".join(w) for w in where if w]


def load_runs(
    uri: str | None, experiment: str, entries: list[str] | None = None, data: str | None = None
) -> pd.DataFrame:
    """resbench's training runs of `experiment`, one row each, with plain column names.

    `entries` (names or globs such as "sweep1/*") and `data` (a data source) narrow the search in
    the store itself, with MLflow filter strings; None reads every run.
    """
    raw = query.search_any(uri, experiment, _filters(entries, data))

    def col(name, default=None):
        return raw[name] if name in raw else pd.Series(default, index=raw.index)

    df = pd.DataFrame(
        {
            "run_id": raw["run_id"],
            "run_name": col("tags.mlflow.runName"),
            "status": raw["status"],
            "experiment_id": col("experiment_id"),
            "start_time": raw["start_time"],
            "entry": col(f"tags.{names.TAG_ENTRY}"),
            "kind": col(f"tags.{names.TAG_KIND}", "train"),
            "seed": pd.to_numeric(col(f"tags.{names.TAG_SEED}"), errors="coerce"),
            "config_hash": col(f"tags.{names.TAG_CONFIG_HASH}"),
            "overrides": col(f"tags.{names.TAG_OVERRIDES}", "").fillna(""),
            "data": col(f"tags.{names.TAG_DATA_SOURCE}"),
            "limit_train": pd.to_numeric(col("params.limit_train", 0), errors="coerce")
            .fillna(0)
            .astype(int),
            "limit_test": pd.to_numeric(col("params.limit_test", 0), errors="coerce")
            .fillna(0)
            .astype(int),
            "diverged": col(f"tags.{names.TAG_DIVERGED_EPOCH}").notna(),
            "collapsed": col(f"tags.{names.TAG_COLLAPSED}", "")
            .fillna("")
            .eq("true"),  # benchmarks/collapse.py
            "shape": col(f"tags.{names.TAG_COLLAPSE_SHAPE}", "").fillna(""),
            "failure": col(f"tags.{names.TAG_FAILURE}", "").fillna(""),
            **{
                key: pd.to_numeric(col(f"metrics.{metric}"), errors="coerce")
                for key, metric in (
                    ("acc", names.TEST_ACCURACY),
                    ("best", names.BEST_TEST_ACCURACY),
                    ("loss", names.TEST_LOSS),
                    ("loss_batchmean", names.TEST_LOSS_BATCHMEAN_FINAL),
                    ("wall", names.WALL_SECONDS),
                )
            },
            **{key: col(f"tags.{tag}") for key, tag in TAG_COLUMNS.items()},
            **{key: col(f"params.{key}") for key in PARAM_COLUMNS},
        }
    )
    # the overridden fields with the values the run used, from its params
    df["overrides"] = [
        ", ".join(f"{k}={rec.get('params.' + k)}" for k in tag.split(",") if k)
        for tag, rec in zip(df["overrides"], raw.to_dict("records"), strict=False)
    ]
    # runs tagged collapsed before shapes were: at chance through their first 3 epochs
    df.loc[df["collapsed"] & df["shape"].eq(""), "shape"] = collapse.FIRST_EPOCHS
    # runs logged before identities were tagged: the same hash, from what they did record (version
    # 1)
    df["entry_version"] = pd.to_numeric(df["entry_version"], errors="coerce").fillna(1).astype(int)
    missing = df["identity"].isna() & df["config_hash"].notna()
    df.loc[missing, "identity"] = [
        registry.identity(
            r.config_hash,
            r.data_checksum if isinstance(r.data_checksum, str) else "",
            r.entry_version,
            r.limit_train,
            r.limit_test,
        )
        for r in df[missing].itertuples()
    ]
    keep = df["entry"].notna() & df["kind"].fillna("train").eq("train")
    if entries is not None:
        keep &= df["entry"].map(
            lambda name: any(fnmatch.fnmatchcase(str(name), p) for p in entries)
        )
    if data is not None:
        keep &= df["data"].eq(data)
    return df[keep].reset_index(drop=True)


def matching(runs: pd.DataFrame, entry: Entry, variant: Variant, source: str) -> pd.Series:
    """Runs of `entry` in exactly this configuration, code version and data source (any status)."""
    return (
        runs["entry"].eq(entry.name)
        & runs["config_hash"].eq(variant.config_hash(entry))
        & runs["data"].eq(source)
        & runs["limit_train"].eq(variant.limit_train)
        & runs["limit_test"].eq(variant.limit_test)
        & runs["entry_version"].eq(entry.version)
    )


def row_identity(runs: pd.DataFrame) -> str | None:
    """The identity a row reports: that of the latest finished run, else of the latest run."""
    if runs.empty:
        return None
    done = runs[runs["status"].eq("FINISHED")]
    return (done if len(done) else runs).sort_values("start_time")["identity"].iloc[-1]


def counted(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs that count: the latest one of each seed."""
    done = runs[runs["status"].eq("FINISHED")].sort_values("start_time")
    return done.drop_duplicates("seed", keep="last").sort_values("seed")


def resolve_source(runs: pd.DataFrame, entries: list[Entry], variant: Variant, data: str) -> str:
    """The data source a table is about. "cifar10" means the official files when any run used
    them, else the CIFAR-10 copy (rebuilt or unverified) with the most finished runs."""
    if data != "cifar10":
        used = set(runs["data"].dropna())
        if data not in SOURCES and data not in used:
            raise DataError(
                f"data source {data!r}: no run used it (sources here: "
                f"{', '.join(sorted(used)) or 'none'})"
            )
        return data
    mask = pd.Series(False, index=runs.index)
    for e in entries:
        mask |= runs["entry"].eq(e.name) & runs["config_hash"].eq(variant.config_hash(e))
    seen = runs[
        mask & runs["status"].eq("FINISHED") & runs["data"].fillna("").str.startswith("cifar10")
    ]["data"]
    return "cifar10" if seen.empty or "cifar10" in set(seen) else seen.value_counts().index[0]
