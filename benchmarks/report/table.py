"""What a table is asked to show (`TableRequest`) and what it shows (`Report`).

A `TableRequest` is the table's question as plain values, built once where a command reads its
options: the variant, the data source, the group, ranking, the mode to count and the seeds
planned, and the MLflow UI to link runs into. A `Report` is the answer benchmarks/report/build.py
makes from the runs: the rows as values (benchmarks/report/rows.py), the other runs, the curves
and what the table is about, with its header, notice and one-line summary. Cards, figures and the
renderers read it; nothing here reads a store or writes a file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property

import pandas as pd

from benchmarks.report.rows import Row
from benchmarks.report.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    PAPER_DATA,
    PERCENT,
    REPRODUCED,
)
from benchmarks.runkey import Mode
from benchmarks.selection import SOURCES, Variant
from tracking import query
from tracking.credentials import redact
from tracking.store import sqlite_path

CURVE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "test_loss_batchmean")


@dataclass(frozen=True)
class TableRequest:
    """Which table to build: the runs of `variant` on `data`, the entries of `group` (None: every
    registered entry), ranked or in registry order, counting the mode whose fields agree with
    `mode` ((field, value) pairs of runkey.Mode; empty: the mode with the most finished runs),
    with `planned` seeds per entry (None: the seeds that ran) and run links into `ui_url` (None:
    the tracking URI when it is an MLflow server)."""

    variant: Variant = Variant()
    data: str = "cifar10"
    group: str | None = None
    rank: bool = False
    mode: tuple[tuple[str, str], ...] = ()
    planned: int | None = None
    ui_url: str | None = None

    @classmethod
    def of(cls, variant: Variant = Variant(), data: str = "cifar10", **fields) -> TableRequest:
        """A request whose `mode` may be given as a mapping of runkey.Mode's fields."""
        mode = fields.pop("mode", None) or {}
        pairs = tuple(mode.items()) if isinstance(mode, Mapping) else tuple(mode)
        return cls(variant, data, mode=pairs, **fields)


@dataclass
class Report:
    experiment: str
    uri: str
    source: str
    variant: Variant
    rows: list[Row]  # one per entry, in registry order or ranked
    other: pd.DataFrame  # runs not counted in any row, with the reason
    curves: pd.DataFrame  # per-epoch histories of the counted runs (+ entry)
    group: str | None = None
    ranked: bool = False
    ui_url: str | None = None  # the MLflow UI the run links point into
    mode: Mode | None = None  # the mode the rows count runs of; None: no run finished
    # with no run of this table's variant: (report command, runs it tabulates) for the others
    elsewhere: list[tuple[str, int]] = field(default_factory=list)
    over_cap: dict[str, str] = field(default_factory=dict)  # runs whose curves were left unread
    generated: str = field(
        default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )

    @cached_property
    def table(self) -> pd.DataFrame:
        """The rows flattened, one record each (`Row.record`): what CSV and JSON carry."""
        table = pd.DataFrame([r.record() for r in self.rows]).astype({"num": "Int64"})
        if self.ranked:
            table.insert(0, "rank", pd.array([r.rank for r in self.rows], dtype="Int64"))
        return table

    def header(self) -> list[str]:
        config = self.variant.describe()
        if config:
            what = (
                f"runs with overrides: {config}, data: {self.source} — not the paper's "
                f"configuration"
            )
        elif self.source != "cifar10":
            what = f"the entries' own configurations, data: {self.source} — not the paper's data"
        else:
            what = "each entry's own registered configuration, on CIFAR-10"
        scope = f"Rows: group {self.group!r}" if self.group else "Rows: every registered entry"
        scope += ", ranked by measured accuracy." if self.ranked else ", in registry order."
        return [
            f"Configuration: {what}.",
            f"Data: {SOURCES.get(self.source, self.source)}.",
            f"Mode: {self.mode.describe() if self.mode else 'none (no run finished)'}; runs "
            f"in another mode are listed under Other runs.",
            scope,
            f"Runs: experiment {self.experiment!r} in {self.where()}; generated {self.generated}.",
            f"Measured accuracy is the test accuracy at the last epoch (final) and at the best "
            f"epoch (best), each "
            f"the mean over seeds (the latest finished run of each) with its {PERCENT} t-interval; "
            f"a row's verdict "
            f"is on the one the paper's figure is (the judged-on column). A row counts only "
            f"finished runs of one "
            f"run key (configuration, entry version, data checksum, mode), collapsed ones "
            f"included and named; every "
            f"other run is listed under Other runs.",
        ] + self.over_cap_note()

    def over_cap_note(self) -> list[str]:
        """A line naming the counted runs whose curves were left out: each holds more values of
        one metric than a run can log."""
        if not self.over_cap:
            return []
        runs = ", ".join(f"{i} ({key})" for i, key in sorted(self.over_cap.items()))
        return [
            f"Curves left out, unread: {len(self.over_cap)} counted run(s) hold more than "
            f"{query.MAX_POINTS:,} values of one metric: {runs}."
        ]

    def notice(self) -> list[str]:
        """The report's first lines when the store has no run of its variant but has others: what
        was asked for, and the command that tabulates each other variant, most runs first."""
        if not self.elsewhere:
            return []
        asked = self.variant.describe() or "each entry's own configuration"
        total = sum(n for _, n in self.elsewhere)
        return [
            f"No run in this store is of the variant this table is about ({asked}; data: "
            f"{self.source}). It holds {total} run(s) of the table's entries in other variants; "
            f"each command below tabulates one:",
            *(f"{cmd}   # {n} run(s)" for cmd, n in self.elsewhere),
        ]

    def where(self) -> str:
        db = sqlite_path(self.uri)
        # never a password
        return f"sqlite:///{db.resolve()}" if db is not None else redact(self.uri)

    def summary(self) -> str:
        """One line: how many rows with a paper figure reproduced, and what became of the others."""
        claimed = [r for r in self.rows if r.entry.paper.accuracy is not None]
        counts = Counter(r.verdict.code for r in claimed)
        ran = sum(r.n > 0 for r in claimed)
        overrides = self.variant.describe()
        if self.source != PAPER_DATA:
            line = (
                f"No row can count as reproduced: the runs are on {self.source}, not the paper's "
                f"CIFAR-10 "
                f"({ran} of {len(claimed)} rows with a paper figure ran on it)"
            )
        elif overrides:
            line = (
                f"No row can count as reproduced: the runs use overrides ({overrides}), not the "
                f"paper's "
                f"configuration ({ran} of {len(claimed)} rows with a paper figure ran)"
            )
        else:
            rest = [
                f"{counts[c]} {c}" for c in (NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN) if counts[c]
            ]
            # reproduced over diverged or collapsed seeds is said apart, never plainly
            marked = [
                r.entry.name
                for r in claimed
                if r.verdict.code == REPRODUCED and r.seeds_of and r.seeds_of.short()
            ]
            plain = counts[REPRODUCED] - len(marked)
            line = (
                f"{plain} of {len(claimed)} rows reproduced on CIFAR-10"
                + (
                    f", {len(marked)} more only on the seeds that trained ({', '.join(marked)})"
                    if marked
                    else ""
                )
                + (", " + ", ".join(rest) if rest else "")
            )
        printed = [r for r in self.rows if r.params_verdict != "not printed"]
        if printed:
            ok = sum(r.params_verdict.startswith("matches") for r in printed)
            differ = [r.entry.name for r in printed if r.params_verdict == "differs"]
            line += f". Parameter counts: {ok} of {len(printed)} match the paper's print" + (
                f"; {', '.join(differ)} differ{'s' * (len(differ) == 1)}" if differ else ""
            )
        return line + "".join(f". {r}" for r in self.readings()) + "."

    def readings(self) -> list[str]:
        """For each Table 1 row judged in more than one reading (row 5: as printed and as its
        parameter count reads), which reading the parameter-count check supports."""
        by_num: dict[int, list[Row]] = {}
        for r in self.rows:
            if r.entry.paper.num is not None:
                by_num.setdefault(r.entry.paper.num, []).append(r)
        out = []
        for num, rows in by_num.items():
            if len(rows) < 2:
                continue
            counts = ", ".join(f"{r.entry.name} {r.entry.param_count:,}" for r in rows)
            ok = [r.entry.name for r in rows if r.params_verdict.startswith("matches")]
            out.append(
                f"Table 1 row {num} is judged in {len(rows)} readings ({counts} parameters, "
                f"printed {rows[0].entry.paper.params}): the parameter-count check supports "
                + (" and ".join(ok) if ok else "none of them")
            )
        return out
