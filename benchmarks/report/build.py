"""Building the report: Table 1 regenerated from the runs in MLflow, beside what the paper printed.

`build` answers a `TableRequest` (benchmarks/report/table.py) over the experiment's runs (a
DataFrame from `selection.load_runs`), reading the counted runs' histories; `tabulate` turns runs
into one `Row` per entry (benchmarks/report/rows.py) and lists every other run of the table's
entries under "other runs" with the reason it was left out. `group_entries` names the entries a
group's table holds.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from benchmarks import registry, runkey
from benchmarks.registry import Entry, RegistryError
from benchmarks.report.commands import other_variants, report_command
from benchmarks.report.rows import Row, row
from benchmarks.report.table import CURVE_KEYS, Report, TableRequest
from benchmarks.runkey import Mode, RunKey
from benchmarks.selection import Variant, matching, resolve_mode, resolve_source
from tracking import query
from tracking.credentials import redact


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
    request: TableRequest,
    entries: list[Entry] | None = None,
) -> Report:
    """The report `request` asks for over `runs` (from load_runs) of `experiment` in `uri`;
    histories are read for the counted runs only. `entries`: the table's rows [default: the
    request's group].

    Its rows count runs of one mode (selection.resolve_mode): the one the request's mode names
    (fields of runkey.Mode: precision, pipeline, compile), or the one with the most finished runs
    among those agreeing with it. Run links point into the request's UI, by default the tracking
    URI when it is an MLflow server.
    """
    variant = request.variant
    entries = entries if entries is not None else group_entries(request.group)
    # links show no password
    ui_url = redact(request.ui_url or (uri if uri.startswith(("http://", "https://")) else None))
    source = resolve_source(runs, entries, variant, request.data)
    chosen = resolve_mode(runs, entries, variant, source, dict(request.mode))
    rows, other = tabulate(
        runs, variant, source, entries, ui_url, request.group, request.rank, chosen, request.planned
    )
    ids = [(r.entry.name, i) for r in rows for i in r.run_ids]
    epochs = {i: r.train.epochs for r in rows for i in r.run_ids}
    curves = query.metric_histories(uri, [i for _, i in ids], CURVE_KEYS, epochs=epochs)
    over = curves.attrs.get(query.OVER_CAP, {})
    curves.insert(0, "entry", curves["run_id"].map({i: name for name, i in ids}))
    elsewhere = []
    if not any(matching(runs, e, variant, source, None).any() for e in entries):
        elsewhere = [
            (report_command(v, data, uri, experiment, request.group), n)
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
        request.group,
        request.rank,
        ui_url,
        chosen,
        elsewhere=elsewhere,
        over_cap=over,
    )
