"""The `resbench report` command lines that tabulate given runs.

`report_command` is the report over one variant and data source: what `run` and `reproduce`
print for the runs they trained. `other_variants` answers, for a table with no run of its own
variant, which variants the store does hold for the table's entries and how many runs each
command would tabulate, most runs first. A run's variant is read back from what it recorded: its
overridden training fields (with their logged values), its data limits and its data source.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping

import pandas as pd

from benchmarks.registry import Entry
from benchmarks.selection import Variant, matching
from resnet.config import TrainConfig
from resnet.model import ConfigError
from tracking import names
from tracking.credentials import redact

_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def report_command(
    variant: Variant,
    source: str,
    uri: str = names.DEFAULT_URI,
    experiment: str = names.DEFAULT_EXPERIMENT,
    group: str | None = None,
    mode: Mapping[str, str] | None = None,
) -> str:
    """The `resbench report` line whose table is about `variant` on `source` in that store, in
    `mode` (runkey.Mode's fields: precision, pipeline, compile) when given (its password masked:
    the line is printed)."""
    args = ["resbench", "report"]
    for key, value in variant.overrides:
        args += ["--epochs", str(value)] if key == "epochs" else ["--set", f"{key}={value}"]
    args += ["--limit-train", str(variant.limit_train)] if variant.limit_train else []
    args += ["--limit-test", str(variant.limit_test)] if variant.limit_test else []
    args += ["--data", source] if source != "cifar10" else []
    args += ["--group", group] if group else []
    for field, value in (mode or {}).items():
        args += [f"--{field}", value]
    args += ["--tracking-uri", redact(uri)] if uri != names.DEFAULT_URI else []
    args += ["--experiment", experiment] if experiment != names.DEFAULT_EXPERIMENT else []
    return shlex.join(args)


def _value(key: str, raw: str) -> object:
    kind = _TYPES[key]
    if kind == "bool":
        return raw.lower() in ("true", "1", "yes")
    return {"int": int, "float": float, "str": str}[kind](raw)


def run_variant(overrides: str, limit_train: int, limit_test: int) -> Variant | None:
    """The variant a run belongs to, from its recorded overrides ("epochs=2, limit_train=64", the
    values it logged) and limits; None when they are not training fields of this code."""
    pairs = [part.partition("=") for part in overrides.split(", ") if part]
    pairs = [(key, sep, raw) for key, sep, raw in pairs if key not in ("limit_train", "limit_test")]
    try:
        return Variant.of(
            {key: _value(key, raw) for key, _, raw in pairs}, int(limit_train), int(limit_test)
        )
    except (KeyError, ValueError, ConfigError):
        return None


def other_variants(
    runs: pd.DataFrame, entries: list[Entry], variant: Variant, source: str
) -> list[tuple[Variant, str, int]]:
    """(variant, data source, runs its table counts in) for every variant of the entries' runs
    other than (`variant`, `source`), most runs first; variants none of whose runs a table would
    take (an entry changed since they ran, say) are left out."""
    names_ = {e.name for e in entries}
    mine = runs[runs["entry"].isin(names_)]
    keys = mine[["overrides", "limit_train", "limit_test", "data"]].dropna().drop_duplicates()
    found: dict[tuple[Variant, str], int] = {}
    for overrides, limit_train, limit_test, data in keys.itertuples(index=False):
        other = run_variant(overrides, limit_train, limit_test)
        if other is None or (other, data) == (variant, source) or (other, data) in found:
            continue
        found[other, data] = sum(_matches(mine, e, other, data) for e in entries)
    ranked = sorted(found.items(), key=lambda item: -item[1])
    return [(other, data, n) for (other, data), n in ranked if n]


def _matches(runs: pd.DataFrame, entry: Entry, variant: Variant, source: str) -> int:
    try:
        return int(matching(runs, entry, variant, source, None).sum())
    except ConfigError:  # an override this entry refuses: no run of it is in that table
        return 0
