"""One side of a comparison: what a report says about one row, read from the report's JSON.

Both kinds of input arrive as the dictionary `resbench report --format json` writes: a report
file read by `read`, or the report of the current store built in memory (benchmarks/cli/compare.py).
`sides` turns its rows into `Side`s: the metric a row is judged on and its values per seed (or
only the mean, standard deviation and n a report without per-seed columns keeps), its collapsed
and diverged seeds, its size and cost, and its run key (benchmarks/runkey.py), read back from the
row's columns by `runkey.from_record`.
`identity_changes` names how two sides' keys differ, through `RunKey.differs`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from benchmarks import runkey
from benchmarks.compare.stats import Sample
from benchmarks.registry import FINAL, METRICS
from benchmarks.runkey import RunKey

JUDGED = "judged"  # each row on the metric its verdict is judged on (the report's verdict_metric)
# the key's columns a report row carries beside entry, entry_version, config_hash, data_checksum
KEYED = {"data", "limit_train", "limit_test", "key_precision", "key_pipeline", "key_compile"}
MAX_BYTES = 64 * 2**20  # a report file larger than this is not a report


class CompareError(ValueError):
    """An input that cannot be compared: a missing or malformed report, an impossible request."""


@dataclass(frozen=True)
class Side:
    entry: str
    metric: str  # registry.BEST or FINAL
    sample: Sample
    collapsed: tuple[int, ...]  # counted seeds that collapsed: in the sample, and named
    diverged: tuple[str, ...]  # runs that diverged: no accuracy to pool, named
    account: str  # what became of every seed, as the report accounts for them; "" if it does not
    troubled: bool  # some seed did not simply finish: diverged, collapsed, killed, failed, ...
    params: int | None
    mflops: float | None  # forward pass, per image
    wall: float | None  # mean seconds per counted run
    git_commit: str | None
    data: str | None  # the data source
    variant: str  # the report's overrides and data limits, as it printed them ("" for none)
    key: RunKey | None  # the counted runs' key (benchmarks/runkey.py)
    keyed: bool  # the report recorded the whole key; else its mode and limits are unknown

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


def _troubled(record: dict) -> bool:
    """The report's seed account shows a seed that did not simply finish and take off."""
    planned, finished = _number(record.get("seeds_planned")), _number(record.get("seeds_finished"))
    return planned != finished or any(
        _number(record.get(f"seeds_{fate}")) for fate in ("collapsed", "diverged")
    )


def side(report: dict, record: dict, metric: str = JUDGED) -> Side:
    """The `Side` of one row record of `report`, on `metric` (JUDGED, BEST or FINAL)."""
    chosen = record.get("verdict_metric") if metric == JUDGED else metric
    chosen = chosen if chosen in METRICS else FINAL
    return Side(
        entry=str(record["entry"]),
        metric=chosen,
        sample=_sample(record, chosen),
        collapsed=tuple(int(s) for s in _split(record.get("collapsed_seeds")) if s.isdigit()),
        diverged=_diverged(report, str(record["entry"])),
        account=str(record.get("seeds_account") or ""),
        troubled=_troubled(record),
        params=None if _number(record.get("params")) is None else int(record["params"]),
        mflops=_number(record.get("mflops")),
        wall=_number(record.get("wall_seconds")),
        git_commit=record.get("git_commit"),
        data=record.get("data") or report.get("data"),
        variant=str(report.get("overrides") or ""),
        key=runkey.from_record({**record, "data": record.get("data") or report.get("data")}),
        keyed=set(record) >= KEYED,
    )


def sides(report: dict, metric: str = JUDGED) -> dict[str, Side]:
    """Every row of `report` by entry name."""
    return {str(r["entry"]): side(report, r, metric) for r in report["rows"]}


def _short(checksum: str) -> str:
    """A checksum as people compare it: a digest's first 12 characters, a short name whole."""
    return checksum if len(checksum) <= 24 else checksum[:12]


def _limits(key: RunKey) -> str:
    return f"train {key.limit_train or 'all'}, test {key.limit_test or 'all'}"


def identity_changes(first: Side, second: Side, same_entry: bool = True) -> tuple[str, ...]:
    """How the two sides' run keys differ (`RunKey.differs`), each named: config (one entry's
    configuration or code version), data (source, files, limits), mode. Empty when they are
    comparable. A report without the whole key is compared on configuration and data alone."""
    a, b = first.key, second.key
    if a is None or b is None:
        return ("run key unknown",)
    differs = a.differs(b)
    if not (first.keyed and second.keyed):
        differs -= {runkey.LIMITS, runkey.MODE}
    changes = []
    if same_entry and differs & {runkey.CONFIG, runkey.VERSION}:
        changes.append("config")
    if runkey.DATA in differs:
        changes.append(f"data: {a.data} vs {b.data}")
    elif runkey.CHECKSUM in differs:
        changes.append(f"data: files {_short(a.checksum)} vs {_short(b.checksum)}")
    if runkey.LIMITS in differs:
        changes.append(f"data limits: {_limits(a)} vs {_limits(b)}")
    if runkey.MODE in differs:
        changes.append(f"mode: {a.mode.describe()} vs {b.mode.describe()}")
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
