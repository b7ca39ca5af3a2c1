"""The paper's Table 1 regenerated from the runs in MLflow, beside what the paper printed.

A row counts only FINISHED runs of one identity: the entry's configuration (its own, or the
same overrides applied to every entry: a `Variant`), its code version, one data source and
checksum, the latest run per seed. When runs of several identities match, the latest
finished one's identity is the row's; everything else in the experiment is listed apart
under "other runs" with the reason it was left out. Each row carries a 95% interval and a
verdict (benchmarks/verdicts.py), links to its runs and a reproducibility card
(benchmarks/cards.py); benchmarks/pages.py writes it out as Markdown, HTML, CSV and JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache

import pandas as pd

from benchmarks import registry, verdicts
from benchmarks.registry import Entry, RegistryError
from benchmarks.selection import SOURCES, Variant, counted, matching, resolve_source, row_identity
from benchmarks.verdicts import params_note  # noqa: F401  (the report's API since issue 3)
from resnet.flops import flops_per_image
from tracking import names, query
from tracking.store import sqlite_path

CURVE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc")


@dataclass
class Report:
    experiment: str
    uri: str
    source: str
    variant: Variant
    table: pd.DataFrame                      # one row per entry, raw values
    other: pd.DataFrame                      # runs not counted in any row, with the reason
    curves: pd.DataFrame                     # per-epoch histories of the counted runs (+ entry)
    used: pd.DataFrame = field(default_factory=pd.DataFrame)  # the counted runs, every recorded column
    entries: list[Entry] = field(default_factory=list)
    group: str | None = None
    ranked: bool = False
    ui_url: str | None = None                # the MLflow UI the run links point into
    generated: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    def header(self) -> list[str]:
        config = self.variant.describe()
        if config:
            what = f"runs with overrides: {config}, data: {self.source} — not the paper's configuration"
        elif self.source != "cifar10":
            what = f"the entries' own configurations, data: {self.source} — not the paper's data"
        else:
            what = "each entry's own registered configuration, on CIFAR-10"
        scope = f"Rows: group {self.group!r}" if self.group else "Rows: every registered entry"
        scope += ", ranked by measured accuracy." if self.ranked else ", in registry order."
        return [f"Configuration: {what}.", f"Data: {SOURCES.get(self.source, self.source)}.", scope,
                f"Runs: experiment {self.experiment!r} in {self.where()}; generated {self.generated}.",
                "Measured accuracy is the test accuracy at the last epoch, as the paper reports it: the mean over "
                "seeds (the latest finished run of each) with its 95% t-interval. A row counts only finished runs "
                "of one identity (configuration, entry version, data checksum); every other run is listed under "
                "Other runs."]

    def where(self) -> str:
        db = sqlite_path(self.uri)
        return f"sqlite:///{db.resolve()}" if db is not None else self.uri

    def summary(self) -> str:
        return verdicts.summary(self.table, self.source, self.variant.describe())


def run_url(ui_url: str | None, experiment_id, run_id: str) -> str | None:
    """The run's page in the MLflow UI at `ui_url` (None: no UI known)."""
    if not ui_url or experiment_id is None or pd.isna(experiment_id):
        return None
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@lru_cache(maxsize=None)
def _flops(model):
    """Counted once per architecture and process: a count takes a fraction of a second."""
    return flops_per_image(model)


def _status(runs: pd.DataFrame, n: int) -> str:
    statuses = set(runs["status"])
    if n:
        return "finished"
    if "RUNNING" in statuses:
        return "running"
    if runs["diverged"].any():
        return "diverged"
    if "FAILED" in statuses:
        return "failed"
    return "killed" if "KILLED" in statuses else "not run"


def _distinct(values) -> str:
    return ",".join(dict.fromkeys(str(v) for v in values if v is not None and not pd.isna(v)))


def _row(entry: Entry, variant: Variant, runs: pd.DataFrame, source: str, ui_url: str | None) -> dict:
    ident = row_identity(runs)
    same = runs[runs["identity"].eq(ident)]
    use = counted(same)
    n, m, p = len(use), entry.model, entry.paper
    iv = verdicts.interval(use["acc"])
    verdict = verdicts.accuracy_verdict(iv, p.accuracy, p.tolerance, source, variant.describe())
    row_notes = [params_note(p.params, entry.param_count)]
    left = same[~same["run_id"].isin(use["run_id"])]
    for status, count in left["status"].value_counts().items():
        if status != "FINISHED":
            row_notes.append(f"{count} {status.lower()} run{'s' * (count > 1)} not counted")
    foreign = len(runs) - len(same)
    if foreign:
        row_notes.append(f"{foreign} run{'s' * (foreign > 1)} of another identity (data checksum) not counted")
    kernel = lambda v: v[0] if len(set(v)) == 1 else "[" + ",".join(map(str, v)) + "]"  # noqa: E731
    gpu_s = use.loc[use["device"].fillna("cpu").ne("cpu"), "wall"].sum()
    urls = [run_url(ui_url, e, i) for e, i in zip(use["experiment_id"], use["run_id"])]
    return {
        "num": p.num, "entry": entry.name, "paper_accuracy": p.accuracy, "tolerance": p.tolerance,
        "paper_params": p.params, "params": entry.param_count, "params_agree": not row_notes[0],
        "params_verdict": verdicts.params_verdict(p.params, entry.param_count),
        "mflops": round(_flops(m).forward / 1e6, 1), "fits_5m": entry.param_count <= registry.BUDGET,
        "layers": m.layers, "blocks": "[" + ",".join(map(str, m.blocks)) + "]",
        "channels": "[" + ",".join(map(str, m.channels)) + "]", "conv_kernel": kernel(m.conv_kernel),
        "skip_kernel": kernel(m.skip_kernel), "pool_kernel": m.pool_kernel, "epochs": variant.train(entry).epochs,
        "n": n, "acc_mean": iv.mean, "acc_std": iv.std, "ci_low": iv.low, "ci_high": iv.high,
        "best_mean": use["best"].mean() if n else None,
        "delta": iv.mean - p.accuracy if n and p.accuracy is not None else None,
        "verdict": verdict.code, "verdict_text": verdict.text, "verdict_why": verdict.why,
        "test_loss": use["loss"].mean() if n else None, "wall_seconds": use["wall"].mean() if n else None,
        "gpu_hours": gpu_s / 3600 if n else None,
        "status": _status(same, n), "seeds": ",".join(str(int(s)) for s in use["seed"]),
        "notes": "; ".join(x for x in row_notes if x), "run_ids": ",".join(use["run_id"]),
        "run_urls": ",".join(u for u in urls if u),
        "identity": ident if n else None, "config_hash": variant.config_hash(entry), "entry_version": entry.version,
        "data_checksum": _distinct(use["data_checksum"]) or None, "git_commit": _distinct(use["git_commit"]) or None,
        "git_dirty": bool(use["git_dirty"].astype(str).str.lower().eq("true").any()) if n else None,
    }


def _why(run: pd.Series, known: dict[str, Entry], variant: Variant, source: str, identities: dict) -> str:
    entry = known.get(run["entry"])
    if entry is None:
        return "entry not in the registry"
    why = []
    if run["data"] != source:
        why.append(f"other data ({run['data']})")
    if (run["config_hash"] != variant.config_hash(entry) or run["limit_train"] != variant.limit_train
            or run["limit_test"] != variant.limit_test):
        why.append("other configuration" if run["overrides"] else "the entry changed since this run")
    elif run["entry_version"] != entry.version:
        why.append(f"entry version {run['entry_version']} (now {entry.version})")
    elif not why and identities.get(entry.name) not in (None, run["identity"]):
        why.append(f"another identity (data checksum {str(run['data_checksum'])[:8]})")
    if run["status"] != "FINISHED":
        why.append("diverged" if run["diverged"] else
                   f"{run['status'].lower()}: {run['failure'][:80]}" if run["failure"] else run["status"].lower())
    return "; ".join(why) or "an earlier run of the same seed"


def group_entries(group: str | None) -> list[Entry]:
    """Every registered entry, or those of one group (an unknown group fails with the known ones)."""
    entries = registry.entries()
    if group is None:
        return entries
    chosen = [e for e in entries if e.group == group]
    if not chosen:
        groups = ", ".join(dict.fromkeys(e.group for e in entries))
        raise RegistryError(f"no entries in group {group!r} (groups: {groups})")
    return chosen


def tabulate(runs: pd.DataFrame, variant: Variant, source: str, entries: list[Entry], ui_url: str | None = None,
             group: str | None = None, rank: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(table, other runs, counted runs) from `runs` alone: no store is read."""
    rows, identities = [], {}
    for e in entries:
        row = _row(e, variant, runs[matching(runs, e, variant, source)], source, ui_url)
        identities[e.name] = row["identity"]
        rows.append(row)
    table = pd.DataFrame(rows).astype({"num": "Int64"})
    if rank:
        table = table.sort_values("acc_mean", ascending=False, na_position="last", kind="stable")
        table.insert(0, "rank", pd.array([i + 1 if n else None for i, n in enumerate(table["n"])], dtype="Int64"))
        table = table.reset_index(drop=True)
    used_ids = {i for ids in table["run_ids"] for i in ids.split(",") if i}
    used = runs[runs["run_id"].isin(used_ids)]
    known = {e.name: e for e in entries}
    registered = {e.name for e in registry.entries()}
    # runs of registered entries outside this table are another table's business
    mine = runs["entry"].isin(known) | (~runs["entry"].isin(registered)
                                        & (runs["entry"].str.startswith(f"{group}/") if group else True))
    rest = runs[mine & ~runs["run_id"].isin(used_ids)].copy()
    rest["why"] = [_why(r, known, variant, source, identities) for _, r in rest.iterrows()]
    rest["status"] = rest["status"].where(~(rest["diverged"] & rest["status"].eq("FAILED")), "DIVERGED")
    other = rest[["entry", "run_name", "overrides", "data", "status", "acc", "why", "run_id"]].reset_index(drop=True)
    return table, other, used


def build(runs: pd.DataFrame, uri: str, experiment: str, variant: Variant = Variant(), data: str = "cifar10",
          entries: list[Entry] | None = None, *, group: str | None = None, rank: bool = False,
          ui_url: str | None = None) -> Report:
    """The report over `runs` (from load_runs); histories are read for the counted runs only.

    Run links point into `ui_url`, by default the tracking URI when it is an MLflow server.
    """
    entries = entries if entries is not None else group_entries(group)
    ui_url = ui_url or (uri if uri.startswith(("http://", "https://")) else None)
    source = resolve_source(runs, entries, variant, data)
    table, other, used = tabulate(runs, variant, source, entries, ui_url, group, rank)
    ids = [(r["entry"], i) for _, r in table.iterrows() for i in filter(None, r["run_ids"].split(","))]
    curves = query.metric_histories(uri, [i for _, i in ids], CURVE_KEYS)
    curves.insert(0, "entry", curves["run_id"].map({i: name for name, i in ids}))
    return Report(experiment, uri, source, variant, table, other, curves, used, list(entries), group, rank, ui_url)


# The output side lives in benchmarks/pages.py and report_figures.py; these names are the report's API.
from benchmarks.pages import (  # noqa: E402,F401
    FORMATS, display_arch, display_other, display_table, notes, render, write, write_text)
from benchmarks.report_figures import FIG_FINAL, FIG_PANELS, figures_for  # noqa: E402,F401
