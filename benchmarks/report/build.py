"""The report: Table 1 regenerated from the runs in MLflow, beside what the paper printed.

`build` reads the experiment's runs (a DataFrame from `selection.load_runs`) and the counted
runs' histories; `tabulate` turns runs into one `Row` per entry (benchmarks/report/rows.py)
and lists every other run of the table's entries under "other runs" with the reason it was
left out. The `Report` holds the rows as values, the other runs, the curves and what the table
is about (data source, variant, group), with its header and one-line summary. Cards, figures
and the renderers (cards.py, figures.py, render.py) read it; nothing here writes a file.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property

import pandas as pd

from benchmarks import registry, runkey
from benchmarks.registry import Entry, RegistryError
from benchmarks.report.commands import other_variants, report_command
from benchmarks.report.rows import Row, row
from benchmarks.report.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    NOT_RUN,
    PAPER_DATA,
    PERCENT,
    REPRODUCED,
)
from benchmarks.runkey import Mode, RunKey
from benchmarks.selection import SOURCES, Variant, matching, resolve_mode, resolve_source
from tracking import query
from tracking.credentials import redact
from tracking.store import sqlite_path

CURVE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "test_loss_batchmean")


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
        return (
            f"sqlite:///{db.resolve()}" if db is not None else redact(self.uri)
        )  # never a password

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


def _why(run: pd.Series, entry: Entry | None, template: RunKey, counted: RunKey | None) -> str:
    """Why `run` is not counted in its entry's row: how its key differs from the row's (`counted`,
    or the `template` of the table's configuration, data and mode, when nothing counts), and its
    status."""
    if entry is None:
        return "entry not in the registry"
    why = []
    differs = template.differs(run["key"])
    if runkey.DATA in differs:
        why.append(f"other data ({run['data']})")
    if differs & {runkey.CONFIG, runkey.LIMITS}:
        why.append(
            "other configuration" if run["overrides"] else "the entry changed since this run"
        )
    elif runkey.VERSION in differs:
        why.append(f"entry version {run['entry_version']} (now {entry.version})")
    if runkey.MODE in differs and run["key"] is not None:
        why.append(f"other mode ({run['key'].mode.describe()})")
    if not why and counted is not None and runkey.CHECKSUM in counted.differs(run["key"]):
        why.append(f"another identity (data checksum {str(run['data_checksum'])[:8]})")
    if run["status"] != "FINISHED":
        why.append(
            "diverged"
            if run["diverged"]
            else f"{run['status'].lower()}: {run['failure'][:80]}"
            if run["failure"]
            else run["status"].lower()
        )
    return "; ".join(why) or "an earlier run of the same seed"


def group_entries(group: str | None) -> list[Entry]:
    """Every registered entry, or those of one group (an unknown group fails with the known
    ones)."""
    entries = registry.entries()
    if group is None:
        return entries
    chosen = [e for e in entries if e.group == group]
    if not chosen:
        groups = ", ".join(dict.fromkeys(e.group for e in entries))
        raise RegistryError(f"no entries in group {group!r} (groups: {groups})")
    return chosen


def tabulate(
    runs: pd.DataFrame,
    variant: Variant,
    source: str,
    entries: list[Entry],
    ui_url: str | None = None,
    group: str | None = None,
    rank: bool = False,
    mode: Mode | None = None,
    planned: int | None = None,
) -> tuple[list[Row], pd.DataFrame]:
    """(rows, other runs) from `runs` alone: no store is read. Each row counts runs in `mode`
    (None, when no run of the table finished: any mode); `planned` seeds (0..planned-1) of each
    entry were asked for, None: the seeds that ran."""
    rows = [
        row(e, variant, runs[matching(runs, e, variant, source, mode)], source, ui_url, planned)
        for e in entries
    ]
    if rank:  # best first, rows that did not run last; ties keep registry order
        rows = sorted(rows, key=lambda r: (r.interval.mean is None, -(r.interval.mean or 0.0)))
        rows = [dataclasses.replace(r, rank=i + 1 if r.n else None) for i, r in enumerate(rows)]
    used_ids = {i for r in rows for i in r.run_ids}
    known = {e.name: e for e in entries}
    templates = {e.name: variant.key(e, source, mode=mode or Mode()) for e in entries}
    counted_keys = {r.entry.name: r.key for r in rows}
    registered = {e.name for e in registry.entries()}
    # runs of registered entries outside this table are another table's business
    mine = runs["entry"].isin(known) | (
        ~runs["entry"].isin(registered)
        & (runs["entry"].str.startswith(f"{group}/") if group else True)
    )
    rest = runs[mine & ~runs["run_id"].isin(used_ids)].copy()
    rest["why"] = [
        _why(r, known.get(r["entry"]), templates.get(r["entry"]), counted_keys.get(r["entry"]))
        for _, r in rest.iterrows()
    ]
    rest["status"] = rest["status"].where(
        ~(rest["diverged"] & rest["status"].eq("FAILED")), "DIVERGED"
    )
    # a finished run that never took off (benchmarks/collapse.py) has a status of its own, as a
    # diverged one has
    rest["status"] = rest["status"].where(
        ~(rest["collapsed"].astype(bool) & rest["status"].eq("FINISHED")), "COLLAPSED"
    )
    other = rest[
        ["entry", "run_name", "overrides", "data", "status", "acc", "why", "run_id"]
    ].reset_index(drop=True)
    return rows, other


def build(
    runs: pd.DataFrame,
    uri: str,
    experiment: str,
    variant: Variant = Variant(),
    data: str = "cifar10",
    entries: list[Entry] | None = None,
    *,
    group: str | None = None,
    rank: bool = False,
    ui_url: str | None = None,
    mode: Mapping[str, str] | None = None,
    planned: int | None = None,
) -> Report:
    """The report over `runs` (from load_runs); histories are read for the counted runs only.

    Its rows count runs of one mode (selection.resolve_mode): the one `mode` names (fields of
    runkey.Mode: precision, pipeline, compile), or the one with the most finished runs among
    those agreeing with it. Run links point into `ui_url`, by default the tracking URI when it is
    an MLflow server.
    """
    entries = entries if entries is not None else group_entries(group)
    ui_url = redact(
        ui_url or (uri if uri.startswith(("http://", "https://")) else None)
    )  # links show no password
    source = resolve_source(runs, entries, variant, data)
    chosen = resolve_mode(runs, entries, variant, source, mode)
    rows, other = tabulate(runs, variant, source, entries, ui_url, group, rank, chosen, planned)
    ids = [(r.entry.name, i) for r in rows for i in r.run_ids]
    epochs = {i: r.train.epochs for r in rows for i in r.run_ids}
    curves = query.metric_histories(uri, [i for _, i in ids], CURVE_KEYS, epochs=epochs)
    over = curves.attrs.get(query.OVER_CAP, {})
    curves.insert(0, "entry", curves["run_id"].map({i: name for name, i in ids}))
    elsewhere = []
    if not any(matching(runs, e, variant, source, None).any() for e in entries):
        elsewhere = [
            (report_command(v, data, uri, experiment, group), n)
            for v, data, n in other_variants(runs, entries, variant, source)
        ]
    return Report(
        experiment,
        uri,
        source,
        variant,
        rows,
        other,
        curves,
        group,
        rank,
        ui_url,
        chosen,
        elsewhere=elsewhere,
        over_cap=over,
    )
