"""Which runs are which: a run's variant and key, and which runs count for an entry.

Below both `reproduce` (what is still to train) and the report (what a row counts). It reads
the runs through `tracking` into a DataFrame with plain column names and each run's `RunKey`
(`load_runs`), and answers from it alone, by comparing keys (benchmarks/runkey.py): the runs of
an entry in one variant, data source and mode (`matching`), the key a row counts (`row_key`),
the runs that count (`counted`), and the data source and mode a table is about
(`resolve_source`, `resolve_mode`). A `Variant` is what a table or a reproduction is about: the
same training overrides and data limits applied to every entry.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from benchmarks import collapse, runkey
from benchmarks.registry import Entry
from benchmarks.runkey import Mode, RunKey
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
# What each run recorded about itself, carried into the rows and cards: plain column -> field.
RECORDED = {
    "entry": query.tag(names.TAG_ENTRY),
    "kind": query.tag(names.TAG_KIND),
    "seed": query.tag(names.TAG_SEED),
    "config_hash": query.tag(names.TAG_CONFIG_HASH),
    "overrides": query.tag(names.TAG_OVERRIDES),
    "data": query.tag(names.TAG_DATA_SOURCE),
    "diverged_epoch": query.tag(names.TAG_DIVERGED_EPOCH),
    "collapsed": query.tag(names.TAG_COLLAPSED),  # benchmarks/collapse.py
    "shape": query.tag(names.TAG_COLLAPSE_SHAPE),
    "tf32": query.tag(names.TAG_TF32),  # whether TF32 was allowed (the cards show it)
    "failure": query.tag(names.TAG_FAILURE),
    "superseded_by": query.tag(names.TAG_SUPERSEDED_BY),
    "entry_version": query.tag(names.TAG_ENTRY_VERSION),
    "data_checksum": query.tag(names.TAG_DATA_CHECKSUM),
    "key_precision": query.tag(names.TAG_PRECISION),
    "key_pipeline": query.tag(names.TAG_PIPELINE),
    "key_compile": query.tag(names.TAG_COMPILE),
    "git_commit": query.tag(names.TAG_GIT_COMMIT),
    "git_dirty": query.tag(names.TAG_GIT_DIRTY),
    "device": query.tag(names.TAG_DEVICE),
    "gpu_count": query.tag(names.TAG_GPU_COUNT),
    "gpu_driver": query.tag(names.TAG_GPU_DRIVER),
    "cuda": query.tag(names.TAG_CUDA),
    "cudnn": query.tag(names.TAG_CUDNN),
    "cpu": query.tag(names.TAG_CPU),
    "platform": query.tag(names.TAG_PLATFORM),
    "python": query.tag(names.TAG_PYTHON),
    "torch": query.tag(names.TAG_TORCH),
    "torchvision": query.tag(names.TAG_TORCHVISION),
    "mlflow": query.tag(names.TAG_MLFLOW),
    "acc": query.metric(names.TEST_ACCURACY),
    "best": query.metric(names.BEST_TEST_ACCURACY),
    "loss": query.metric(names.TEST_LOSS),
    "loss_batchmean": query.metric(names.TEST_LOSS_BATCHMEAN_FINAL),
    "wall": query.metric(names.WALL_SECONDS),
    **{
        f"param_{p}": query.param(p)
        for p in (
            "limit_train",
            "limit_test",
            "pipeline",
            "precision",
            "compile",
            "compile_mode",
            "channels_last",
            "deterministic",
            "train_images",
            "test_images",
            *(f.name for f in dataclasses.fields(TrainConfig)),
        )
    },
}
# Columns under their param's name (the cards show them); the mode's are the key's, as it ran.
PARAM_COLUMNS = ("channels_last", "deterministic", "train_images", "test_images")


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

    def key(
        self, entry: Entry, source: str, checksum: str = "", mode: Mode | None = None
    ) -> RunKey:
        """The key of `entry`'s runs in this variant, on this data, in this mode (default: fp32,
        the fast pipeline, not compiled)."""
        limits = (self.limit_train, self.limit_test)
        return RunKey.of(entry, self.train(entry), source, checksum, limits, mode or Mode())

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
    df = with_keys(query.run_table(uri, experiment, RECORDED, _filters(entries, data)))
    keep = df["entry"].notna() & df["kind"].fillna("train").eq("train")
    if entries is not None:
        keep &= df["entry"].map(
            lambda name: any(fnmatch.fnmatchcase(str(name), p) for p in entries)
        )
    if data is not None:
        keep &= df["data"].eq(data)
    return df[keep].reset_index(drop=True)


def with_keys(df: pd.DataFrame) -> pd.DataFrame:
    """The runs read back (RECORDED's columns) with their types, their overrides as field=value,
    their `key` (runkey.from_record), identity and the mode they ran in (precision, pipeline,
    compile)."""
    df = df.copy()
    df["seed"] = pd.to_numeric(df["seed"], errors="coerce")
    for limit in ("limit_train", "limit_test"):
        df[limit] = pd.to_numeric(df[f"param_{limit}"], errors="coerce").fillna(0).astype(int)
    df["entry_version"] = pd.to_numeric(df["entry_version"], errors="coerce").fillna(1).astype(int)
    df["diverged"] = df["diverged_epoch"].notna()
    df["collapsed"] = df["collapsed"].fillna("").eq("true")
    df["shape"] = df["shape"].fillna("")
    # runs tagged collapsed before shapes were: at chance through their first 3 epochs
    df.loc[df["collapsed"] & df["shape"].eq(""), "shape"] = collapse.FIRST_EPOCHS
    df["failure"] = df["failure"].fillna("")
    # the overridden fields with the values the run used, from its params
    df["overrides"] = [
        ", ".join(
            f"{k}={rec.get('param_' + k)}" for k in str(rec["overrides"] or "").split(",") if k
        )
        for rec in df.to_dict("records")
    ]
    keys = [runkey.from_record(rec) for rec in df.to_dict("records")]
    df["key"] = pd.Series(keys, index=df.index, dtype=object)
    df["identity"] = [k.identity if k else None for k in keys]
    for column in ("precision", "pipeline", "compile"):
        df[column] = [getattr(k.mode, column) if k else None for k in keys]
    for column in PARAM_COLUMNS:
        df[column] = df[f"param_{column}"]
    return df


def matching(
    runs: pd.DataFrame, entry: Entry, variant: Variant, source: str, mode: Mode | None
) -> pd.Series:
    """Runs of `entry` in exactly this configuration, code version, data source and mode (any
    data checksum, any status); with mode None, in any mode."""
    but = (runkey.CHECKSUM,) + ((runkey.MODE,) if mode is None else ())
    return runkey.same(runs, variant.key(entry, source, mode=mode or Mode()), but)


def row_key(runs: pd.DataFrame) -> RunKey | None:
    """The key a row counts: that of the latest finished run, else of the latest run."""
    if runs.empty:
        return None
    done = runs[runs["status"].eq("FINISHED")]
    return (done if len(done) else runs).sort_values("start_time")["key"].iloc[-1]


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
        mask |= runkey.same(runs, variant.key(e, data), _CONFIG_ONLY)
    seen = runs[
        mask & runs["status"].eq("FINISHED") & runs["data"].fillna("").str.startswith("cifar10")
    ]["data"]
    return "cifar10" if seen.empty or "cifar10" in set(seen) else seen.value_counts().index[0]


_CONFIG_ONLY = (runkey.VERSION, runkey.DATA, runkey.CHECKSUM, runkey.LIMITS, runkey.MODE)


def resolve_mode(
    runs: pd.DataFrame,
    entries: list[Entry],
    variant: Variant,
    source: str,
    want: Mapping[str, str] | None = None,
) -> Mode | None:
    """The mode a table is about: of the modes whose fields agree with `want` (precision,
    pipeline, compile; {} = any), the one with the most finished runs of these entries in this
    variant and data source, ties going to the one that finished last; None when none ran.
    Asked for in full (all three fields), the mode itself."""
    want = dict(want or {})
    if set(want) == {f.name for f in dataclasses.fields(Mode)}:
        return Mode(**want)
    mask = pd.Series(False, index=runs.index)
    for e in entries:
        mask |= matching(runs, e, variant, source, None)
    done = runs[mask & runs["status"].eq("FINISHED")].sort_values("start_time")
    modes = [k.mode for k in done["key"]]
    modes = [m for m in modes if all(getattr(m, f) == v for f, v in want.items())]
    if not modes:
        return Mode(**want) if want else None
    counts = Counter(modes)
    latest = {m: i for i, m in enumerate(modes)}
    return max(counts, key=lambda m: (counts[m], latest[m]))
