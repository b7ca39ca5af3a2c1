"""One side of a comparison: what a report says about one row, read from the report's JSON.

Both kinds of input arrive as the dictionary `resbench report --format json` writes: a report
file read by `read`, or the report of the current store built in memory (benchmarks/cli/compare.py).
`sides` turns its rows into `Side`s: the metric a row is judged on and its values per seed (or
only the mean, standard deviation and n a report without per-seed columns keeps), its collapsed
and diverged seeds, its size and cost, and what makes it comparable (`Identity`).
`identity_changes` is the one place that says whether two sides computed the same thing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks.compare.stats import Sample
from benchmarks.registry import FINAL, METRICS

JUDGED = "judged"  # each row on the metric its verdict is judged on (the report's verdict_metric)
MAX_BYTES = 64 * 2**20  # a report file larger than this is not a report


class CompareError(ValueError):
    """An input that cannot be compared: a missing or malformed report, an impossible request."""


@dataclass(frozen=True)
class Identity:
    """What must agree for two runs of one entry to be the same computation."""

    identity: str | None  # the report's identity string over all of these
    config_hash: str | None
    entry_version: int | None
    data: str | None  # the data source, e.g. cifar10, synthetic
    data_checksum: str | None
    variant: str  # the report's overrides and data limits, as it printed them ("" for none)


@dataclass(frozen=True)
class Side:
    entry: str
    metric: str  # registry.BEST or FINAL
    sample: Sample
    collapsed: tuple[int, ...]  # counted seeds that collapsed: in the sample, and named
    diverged: tuple[str, ...]  # runs that diverged: no accuracy to pool, named
    params: int | None
    mflops: float | None  # forward pass, per image
    wall: float | None  # mean seconds per counted run
    git_commit: str | None
    identity: Identity

    @property
    def n(self) -> int:
        return self.sample.n


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _split(value) -> list[str]:
    return [x for x in str(value or "").split(",") if x]


def _sample(record: dict, metric: str) -> Sample:
    """Per-seed values where the report kept them (<metric>_by_seed), else its summary."""
    seeds, values = _split(record.get("seeds")), _split(record.get(f"{metric}_by_seed"))
    if seeds and len(seeds) == len(values):
        try:
            by_seed = {int(s): float(v) for s, v in zip(seeds, values, strict=True)}
        except ValueError:
            by_seed = {}
        if by_seed and all(math.isfinite(v) for v in by_seed.values()):
            return Sample.of(by_seed)
    n = int(_number(record.get("n")) or 0)
    return Sample(n, _number(record.get(f"{metric}_mean")), _number(record.get(f"{metric}_std")))


def _diverged(report: dict, entry: str) -> tuple[str, ...]:
    """The entry's runs of the row's own identity that diverged (left out for no other reason)."""
    return tuple(
        str(r.get("run_name") or r.get("run_id"))
        for r in report.get("other_runs") or []
        if isinstance(r, dict)
        and r.get("entry") == entry
        and r.get("status") == "DIVERGED"
        and r.get("why") == "diverged"
    )


def side(report: dict, record: dict, metric: str = JUDGED) -> Side:
    """The `Side` of one row record of `report`, on `metric` (JUDGED, BEST or FINAL)."""
    chosen = record.get("verdict_metric") if metric == JUDGED else metric
    chosen = chosen if chosen in METRICS else FINAL
    version = _number(record.get("entry_version"))
    return Side(
        entry=str(record["entry"]),
        metric=chosen,
        sample=_sample(record, chosen),
        collapsed=tuple(int(s) for s in _split(record.get("collapsed_seeds")) if s.isdigit()),
        diverged=_diverged(report, str(record["entry"])),
        params=None if _number(record.get("params")) is None else int(record["params"]),
        mflops=_number(record.get("mflops")),
        wall=_number(record.get("wall_seconds")),
        git_commit=record.get("git_commit"),
        identity=Identity(
            identity=record.get("identity"),
            config_hash=record.get("config_hash"),
            entry_version=None if version is None else int(version),
            data=report.get("data"),
            data_checksum=record.get("data_checksum"),
            variant=str(report.get("overrides") or ""),
        ),
    )


def sides(report: dict, metric: str = JUDGED) -> dict[str, Side]:
    """Every row of `report` by entry name."""
    return {str(r["entry"]): side(report, r, metric) for r in report["rows"]}


def _short(checksum: str) -> str:
    """A checksum as people compare it: a digest's first 12 characters, a short name whole."""
    return checksum if len(checksum) <= 24 else checksum[:12]


def identity_changes(first: Side, second: Side, same_entry: bool = True) -> tuple[str, ...]:
    """What differs in how the two sides computed, each named: config (for one entry's two
    versions), data (source, files or limits). Empty when they are comparable."""
    a, b = first.identity, second.identity
    changes = []
    if same_entry and (a.config_hash, a.entry_version) != (b.config_hash, b.entry_version):
        changes.append("config")
    if a.data != b.data:
        changes.append(f"data: {a.data} vs {b.data}")
    elif a.data_checksum != b.data_checksum and a.data_checksum and b.data_checksum:
        changes.append(f"data: files {_short(a.data_checksum)} vs {_short(b.data_checksum)}")
    if a.variant != b.variant:
        changes.append(f"variant: {a.variant or 'none'} vs {b.variant or 'none'}")
    elif same_entry and not changes and a.identity != b.identity and a.identity and b.identity:
        changes.append("identity (data limits or checksum)")
    return tuple(changes)


def read(path: str) -> dict:
    """The report JSON at `path`, checked to be one; any other file is refused in one line."""
    p = Path(path)
    if not p.is_file():
        raise CompareError(f"{path}: no such file")
    if p.stat().st_size > MAX_BYTES:
        raise CompareError(f"{path}: {p.stat().st_size} bytes, larger than any report")
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CompareError(f"{path}: not a text file") from None
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None
    rows = report.get("rows") if isinstance(report, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("entry"), str) and "n" in r for r in rows
    ):
        raise CompareError(
            f"{path}: not a report JSON (no rows of entries); "
            "`resbench report --format json` writes one"
        )
    return report
