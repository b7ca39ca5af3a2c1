"""One table row per entry, its values kept as values: the counted runs, their intervals and
verdict.

A row counts only FINISHED runs of one run key (`selection.row_key`, benchmarks/runkey.py): the
latest finished one's key, the latest run of each seed (`selection.counted`). The row holds
those runs (a DataFrame, by seed), their UI links, an `Interval` of the final-epoch and one of
the best-epoch test accuracy, the `Verdict` on the one the paper's claim is (`Paper.metric`),
and what was left out as notes. Collapsed runs (benchmarks/collapse.py) count like any
finished run; the row's status, notes and verdict name them. `record()` flattens the row into
the columns CSV and JSON carry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache

import pandas as pd

from benchmarks import collapse, registry, runkey
from benchmarks.registry import BEST, Entry
from benchmarks.report.seeds import Seeds, account, qualify
from benchmarks.report.verdicts import LEVEL, Interval, Verdict, accuracy_verdict, interval
from benchmarks.runkey import RunKey
from benchmarks.selection import Variant, counted, row_key
from benchmarks.text import params_note, params_verdict
from resnet.config import TrainConfig
from resnet.flops import flops_per_image


@dataclass(frozen=True, eq=False)
class Row:
    entry: Entry
    train: TrainConfig  # the entry's configuration with the table's overrides
    runs: pd.DataFrame  # the counted runs, one per seed, by seed
    urls: tuple[str | None, ...]  # each counted run's page in the MLflow UI (None: no UI known)
    final: Interval  # of the last epoch's test accuracy (metric test_accuracy)
    best: Interval  # of the best epoch's (best_test_accuracy)
    verdict: Verdict  # on `interval`, the paper's metric
    status: str  # finished [(n collapsed of N)] | running | diverged | failed | killed | not run
    notes: tuple[str, ...]  # what the row does not count, and a disagreeing parameter count
    key: RunKey | None  # of the counted runs; None when nothing counts
    config_hash: str
    mflops: float
    seeds_of: Seeds | None = None  # what became of every seed of the row's key
    rank: int | None = None  # position by measured accuracy, in a ranked table that ran

    @property
    def identity(self) -> str | None:
        return self.key.identity if self.key else None

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def interval(self) -> Interval:
        """The interval of the metric the paper's claim is, the one the verdict judged."""
        return self.best if self.entry.paper.metric == BEST else self.final

    @property
    def collapsed(self) -> pd.DataFrame:
        """The counted runs that collapsed (benchmarks/collapse.py): counted, and named."""
        return self.runs[self.runs["collapsed"].astype(bool)]

    @property
    def run_ids(self) -> tuple[str, ...]:
        return tuple(self.runs["run_id"])

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.runs["seed"])

    @property
    def params_verdict(self) -> str:
        return params_verdict(self.entry.paper.params, self.entry.param_count)

    @property
    def params_agree(self) -> bool:
        """The count matches the print (truncated prints too), or nothing was printed."""
        return self.params_verdict != "differs"

    @property
    def gpu_hours(self) -> float | None:
        if not self.n:
            return None
        return self.runs.loc[self.runs["device"].fillna("cpu").ne("cpu"), "wall"].sum() / 3600

    @property
    def git_dirty(self) -> bool | None:
        return (
            bool(self.runs["git_dirty"].astype(str).str.lower().eq("true").any())
            if self.n
            else None
        )

    def mean_of(self, column: str) -> float | None:
        return self.runs[column].mean() if self.n else None

    def record(self) -> dict:
        """The row as CSV and JSON carry it: plain columns, run ids and links comma-joined."""
        e, p, m, iv, n = self.entry, self.entry.paper, self.entry.model, self.interval, self.n
        k = self.key
        kernel = lambda v: v[0] if len(set(v)) == 1 else "[" + ",".join(map(str, v)) + "]"  # noqa: E731
        return {
            "num": p.num,
            "entry": e.name,
            "paper_accuracy": p.accuracy,
            "tolerance": p.tolerance,
            "paper_params": p.params,
            "params": e.param_count,
            "params_agree": self.params_agree,
            "params_verdict": self.params_verdict,
            "mflops": self.mflops,
            "fits_5m": e.param_count <= registry.BUDGET,
            "layers": m.layers,
            "blocks": "[" + ",".join(map(str, m.blocks)) + "]",
            "channels": "[" + ",".join(map(str, m.channels)) + "]",
            "conv_kernel": kernel(m.conv_kernel),
            "skip_kernel": kernel(m.skip_kernel),
            "pool_kernel": m.pool_kernel,
            "epochs": self.train.epochs,
            "n": n,
            "ci_level": LEVEL,
            **_columns("final", self.final),
            **_columns("best", self.best),
            "verdict_metric": p.metric,
            "delta": iv.mean - p.accuracy if n and p.accuracy is not None else None,
            "verdict": self.verdict.code,
            "verdict_text": self.verdict.text,
            "verdict_why": self.verdict.why,
            "collapsed": len(self.collapsed),
            "collapsed_seeds": ",".join(str(int(s)) for s in self.collapsed["seed"]),
            "test_loss": self.mean_of("loss"),
            "test_loss_batchmean": self.mean_of("loss_batchmean"),
            "paper_test_loss": p.test_loss,
            "wall_seconds": self.mean_of("wall"),
            "gpu_hours": self.gpu_hours,
            "status": self.status,
            **(self.seeds_of.record() if self.seeds_of else {}),
            "seeds_account": self.seeds_of.text() if self.seeds_of else None,
            "seeds": ",".join(map(str, self.seeds)),
            # each seed's value, in the order of `seeds`: what a paired comparison needs
            "final_by_seed": ",".join(map(repr, map(float, self.runs["acc"]))),
            "best_by_seed": ",".join(map(repr, map(float, self.runs["best"]))),
            "notes": "; ".join(self.notes),
            "run_ids": ",".join(self.run_ids),
            "run_urls": ",".join(u for u in self.urls if u),
            "identity": self.identity,
            "mode": self.key.mode.describe() if self.key else None,
            # the rest of the counted runs' key, as runkey.from_record reads it back
            "data": k and k.data,
            "limit_train": k and k.limit_train,
            "limit_test": k and k.limit_test,
            "key_precision": k and k.mode.precision,
            "key_pipeline": k and k.mode.pipeline,
            "key_compile": k and k.mode.compile,
            "config_hash": self.config_hash,
            "entry_version": e.version,
            "data_checksum": _distinct(self.runs["data_checksum"]) or None,
            "git_commit": _distinct(self.runs["git_commit"]) or None,
            "git_dirty": self.git_dirty,
        }


def _columns(prefix: str, iv: Interval) -> dict:
    """An interval as CSV columns: <prefix>_mean, _std, _ci_low, _ci_high (the LEVEL interval)."""
    return {
        f"{prefix}_mean": iv.mean,
        f"{prefix}_std": iv.std,
        f"{prefix}_ci_low": iv.low,
        f"{prefix}_ci_high": iv.high,
    }


def run_url(ui_url: str | None, experiment_id, run_id: str) -> str | None:
    """The run's page in the MLflow UI at `ui_url` (None: no UI known)."""
    if not ui_url or experiment_id is None or pd.isna(experiment_id):
        return None
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@cache
def _flops(model):
    """Counted once per architecture and process: a count takes a fraction of a second."""
    return flops_per_image(model)


def _status(runs: pd.DataFrame, used: pd.DataFrame, seeds: Seeds) -> str:
    """finished (with what went wrong for the other seeds: "1 diverged, 1 collapsed of 4"), or
    why nothing counts."""
    statuses, n = set(runs["status"]), len(used)
    if n:
        return f"finished ({seeds.short()})" if seeds.short() else "finished"
    if "RUNNING" in statuses:
        return "running"
    if runs["diverged"].any():
        return "diverged"
    if "FAILED" in statuses:
        return "failed"
    return "killed" if "KILLED" in statuses else "not run"


def _naming_collapsed(verdict: Verdict, gone: pd.DataFrame, n: int) -> Verdict:
    """The verdict with the collapsed runs it counted named: they are never left out silently."""
    if not len(gone):
        return verdict
    named = ", ".join(
        f"seed {int(r['seed'])} ({shape_words(r)}; {r['acc']:.2f}% at the end, "
        f"run {str(r['run_id'])[:8]})"
        for _, r in gone.iterrows()
    )
    return dataclasses.replace(
        verdict,
        why=f"{verdict.why}; it counts {len(gone)} collapsed run"
        f"{'s' * (len(gone) > 1)} of {n}: {named}",
    )


def shape_words(run: pd.Series) -> str:
    """The shape of a run's curve in words (benchmarks/collapse.py); "" when not judged."""
    return collapse.WORDS.get(str(run.get("shape") or ""), "")


def _distinct(values) -> str:
    return ",".join(dict.fromkeys(str(v) for v in values if v is not None and not pd.isna(v)))


def row(
    entry: Entry,
    variant: Variant,
    runs: pd.DataFrame,
    source: str,
    ui_url: str | None,
    planned: int | None = None,
) -> Row:
    """The row of `entry` from `runs`, the runs matching it in this variant, data source and mode
    (any status); `planned` seeds (0..planned-1) were asked for, None: the seeds that ran."""
    key = row_key(runs)
    same = runs[runkey.same(runs, key)]
    use = counted(same)
    p = entry.paper
    final, best = interval(use["acc"]), interval(use["best"])
    verdict = accuracy_verdict(
        best if p.metric == BEST else final,
        p.accuracy,
        p.tolerance,
        source,
        variant.describe(),
        p.metric,
        p.accuracy_text,
    )
    seeds = account(same, use, planned)
    judged = use.set_index("seed")["best" if p.metric == BEST else "acc"]
    verdict = qualify(verdict, seeds, judged, interval)
    gone = use[use["collapsed"].astype(bool)]
    verdict = _naming_collapsed(verdict, gone, len(use))
    notes = [params_note(p.params, entry.param_count)]
    if len(gone):
        notes.append(
            f"{len(gone)} collapsed of {len(use)} counted: "
            + ", ".join(f"seed {int(r['seed'])} ({shape_words(r)})" for _, r in gone.iterrows())
            + " (counted in the verdict)"
        )
    slow = use[use["shape"].eq(collapse.SLOW_START)]
    if len(slow):
        notes.append(
            f"{len(slow)} slow start{'s' * (len(slow) > 1)} of {len(use)} counted (at chance at "
            f"first, then took off; not collapsed): seed{'s' * (len(slow) > 1)} "
            f"{', '.join(str(int(x)) for x in slow['seed'])}"
        )
    left = same[~same["run_id"].isin(use["run_id"])]
    fates = left["status"].astype(str).str.lower().where(~left["diverged"].astype(bool), "diverged")
    for status, count in fates.value_counts().items():
        if status != "finished":
            notes.append(f"{count} {status} run{'s' * (count > 1)} not counted")
    foreign = len(runs) - len(same)
    if foreign:
        notes.append(
            f"{foreign} run{'s' * (foreign > 1)} of another identity (data checksum) not counted"
        )
    return Row(
        entry,
        variant.train(entry),
        use,
        tuple(
            run_url(ui_url, e, i) for e, i in zip(use["experiment_id"], use["run_id"], strict=False)
        ),
        final,
        best,
        verdict,
        _status(same, use, seeds),
        tuple(x for x in notes if x),
        key if len(use) else None,
        variant.key(entry, source).config_hash,
        round(_flops(entry.model).forward / 1e6, 1),
        seeds,
    )
