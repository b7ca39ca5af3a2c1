"""A reproducibility card per report row: what produced its numbers, and where it departs from the
paper.

Built from a `Row` (benchmarks/report/rows.py): its entry, interval and verdict, and the tags and
params its counted runs recorded (hardware, software, code and data versions, the execution
settings): claim and verdict, the statistic and its runs, the seeds and what became of them,
identity, code, data, hardware, software, every hyperparameter, cost, and the deviations from the
paper (benchmarks/report/departures.py). Recorded values read as benchmarks/report/recorded.py
writes them: those that differ between a row's runs are listed with counts; values a run did not
record (runs older than the tag) read "not recorded".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import pandas as pd

from benchmarks import collapse
from benchmarks.registry import BEST, BUDGET, FINAL
from benchmarks.report.departures import deviations
from benchmarks.report.recorded import NOT_RECORDED, bf16, hardware, values
from benchmarks.report.rows import Row, shape_words
from benchmarks.report.verdicts import ALPHA, METRIC_TEXT, PERCENT, Interval, t_quantile
from benchmarks.selection import SOURCES
from benchmarks.text import duration


@dataclass(frozen=True)
class Card:
    entry: str
    anchor: str  # HTML id, "card-" + the entry name made safe
    headline: str  # verdict and run count, one line
    fields: list[tuple[str, str]]  # (label, text), in reading order
    runs: list[tuple[str, str | None, str]]  # (run id, UI URL or None, "seed 0: 90.12%")
    deviations: list[str]


def anchor(name: str) -> str:
    return "card-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _statistic(what: str, iv: Interval, seeds: str) -> str:
    """One metric's interval over the seeds, with the numbers that make it."""
    if iv.n >= 2:
        return (
            f"{what}, mean of {iv.n} seeds ({seeds}) with its {PERCENT} t-interval: {iv.mean:.2f} "
            f"[{iv.low:.2f}, {iv.high:.2f}] (s = {iv.std:.3f}, t({1 - ALPHA:g}, {iv.n - 1}) = "
            f"{t_quantile(iv.n - 1):.4g})"
        )
    return (
        f"{what} of one run (seed {seeds}): {iv.mean:.2f}; no interval"
        if iv.n
        else "no finished run"
    )


def _loss(row: Row) -> str:
    """The test loss both ways, beside the paper's figure, which is the authors' mean over
    batches."""
    p = row.entry.paper
    paper = (
        f"; the paper printed {p.test_loss:g} (the authors' mean over batches)"
        if p.test_loss is not None
        else ""
    )
    mean, batches = row.mean_of("loss"), row.mean_of("loss_batchmean")
    if mean is None or pd.isna(mean):
        return "no finished run" + paper
    authors = NOT_RECORDED if batches is None or pd.isna(batches) else f"{batches:.4f}"
    return (
        f"last epoch, mean over seeds: {mean:.4f} per image, {authors} as the authors averaged "
        f"(over batches)" + paper
    )


def _collapsed(row: Row) -> str:
    gone, runs = row.collapsed, row.runs
    slow = runs[runs["shape"].eq(collapse.SLOW_START)]
    slow_text = (
        "; slow start, not collapsed: "
        + ", ".join(f"seed {int(r['seed'])}" for _, r in slow.iterrows())
        if len(slow)
        else ""
    )
    if not len(gone):
        return f"none of {row.n} counted runs{slow_text} ({collapse.describe()})"
    seeds = ", ".join(f"seed {int(r['seed'])}: {shape_words(r)}" for _, r in gone.iterrows())
    return (
        f"{len(gone)} collapsed of {row.n} ({seeds}), counted in the verdict{slow_text}; "
        f"{collapse.describe()}"
    )


def _seeds(row: Row) -> str:
    """Every seed of the row's key and what became of it."""
    sd = row.seeds_of
    named = [
        f"{what}: {', '.join(map(str, seeds))}"
        for what, seeds in (
            ("finished", sd.finished),
            ("diverged", sd.diverged),
            ("collapsed", sd.collapsed),
            ("killed", sd.killed),
            ("failed", sd.failed),
            ("running", sd.running),
            ("never started", sd.never),
        )
        if seeds
    ]
    rerun = (
        f"; seeds {', '.join(map(str, sd.retried))} diverged and finished on a rerun (the rerun "
        "counts; the divergence stays on the row)"
        if sd.retried
        else ""
    )
    return f"{sd.text()} ({'; '.join(named)}){rerun}"


def _run_label(r: pd.Series) -> str:
    """One counted run's line on the card: its accuracies and, where it has one, its shape."""
    mark = (
        f" (collapsed: {shape_words(r)})"
        if r["collapsed"]
        else " (slow start)"
        if r.get("shape") == collapse.SLOW_START
        else ""
    )
    return f"seed {int(r['seed'])}: final {r['acc']:.2f}%, best {r['best']:.2f}%{mark}"


def card(row: Row, variant_text: str, source: str) -> Card:
    """The card of one table row, in a table of `source` data with overrides `variant_text`."""
    entry, train, runs = row.entry, row.train, row.runs
    p, n = entry.paper, row.n
    seeds = ",".join(map(str, row.seeds))
    points = f"±{p.tolerance:g} point{'s' * (p.tolerance != 1)}"
    claim = [
        None
        if p.accuracy is None
        else f"{p.accuracy_text}% {METRIC_TEXT[p.metric]} (tolerance {points})",
        f"{p.params} parameters" if p.params else None,
        f"{p.epochs} epochs" if p.epochs else None,
    ]
    where = f"Table 1 row {p.num}" if p.num is not None else "no Table 1 row"
    claimed = ", ".join(c for c in claim if c)
    fields = [
        ("Paper", f"{claimed} ({where})" if claimed else "no figure printed for this entry"),
        ("Verdict", f"{row.verdict.text}, judged on {row.verdict.judged_on}: {row.verdict.why}"),
    ]
    if p.notes:
        fields.append(("Sources and caveats", "; ".join(p.notes)))
    judged_first = sorted(((FINAL, row.final), (BEST, row.best)), key=lambda mv: mv[0] != p.metric)
    fields.append(
        (
            "Statistic",
            "; ".join(_statistic(METRIC_TEXT[m], v, seeds) for m, v in judged_first)
            if n
            else "no finished run",
        )
    )
    fields.append(("Test loss", _loss(row)))
    if row.seeds_of is not None and row.seeds_of.planned:
        fields.append(("Seeds", _seeds(row)))
    if n:
        fields.append(("Collapsed runs", _collapsed(row)))
    fits = "within" if entry.param_count <= BUDGET else "over"
    printed = (
        f"the paper's print {p.params}: {row.params_verdict}"
        if p.params
        else "no print in the paper"
    )
    fields.append(
        (
            "Budget",
            f"{entry.param_count:,} parameters ({printed}); {row.mflops:,.1f} forward MFLOPs "
            f"per image; {fits} the 5M budget",
        )
    )
    if n:
        fields += [
            (
                "Identity",
                f"{row.identity} = hash(config {row.config_hash}, data checksum and limits, "
                f"entry version {entry.version}, mode: {row.key.mode.describe()})",
            ),
            (
                "Code",
                f"git {values(runs, 'git_commit')}"
                + (" with uncommitted changes" if row.git_dirty else ", clean checkout"),
            ),
            (
                "Data",
                f"{SOURCES.get(source, source)}; checksum {values(runs, 'data_checksum')}; "
                f"{values(runs, 'train_images', True)} training and "
                f"{values(runs, 'test_images', True)} test images",
            ),
            ("Hardware", hardware(runs)),
            (
                "Software",
                f"Python {values(runs, 'python')}, torch {values(runs, 'torch')}, torchvision "
                f"{values(runs, 'torchvision')}, MLflow {values(runs, 'mlflow')}",
            ),
        ]
    m = entry.model
    fields.append(
        (
            "Model",
            f"N={m.layers}, B={list(m.blocks)}, C={list(m.channels)}, F={list(m.conv_kernel)}, "
            f"K={list(m.skip_kernel)}, P={m.pool_kernel}",
        )
    )
    fields.append(("Training", ", ".join(f"{k}={v}" for k, v in asdict(train).items())))
    if n:
        fields.append(
            (
                "Execution",
                ", ".join(
                    f"{k}={values(runs, k)}"
                    for k in (
                        "pipeline",
                        "precision",
                        "tf32",
                        "compile",
                        "channels_last",
                        "deterministic",
                    )
                )
                + (" (bf16 autocast)" if runs.apply(bf16, axis=1).any() else ""),
            )
        )
        wall = runs["wall"].dropna()
        gpu = "CPU only, no GPU time" if not row.gpu_hours else f"{row.gpu_hours:.2f} GPU-hours"
        fields.append(
            (
                "Cost",
                f"wall time {duration(wall.mean())} per run, {duration(wall.sum())} in all; {gpu}"
                if len(wall)
                else NOT_RECORDED,
            )
        )
    run_list = [
        (
            r["run_id"],
            url,
            _run_label(r),
        )
        for (_, r), url in zip(runs.iterrows(), row.urls, strict=False)
    ]
    judged = f" on {row.verdict.judged_on}" if n and p.accuracy is not None else ""
    headline = f"{row.verdict.text}{judged} — {n} run{'s' * (n != 1)}" + (
        f" on {source}" if n else ""
    )
    return Card(
        entry.name,
        anchor(entry.name),
        headline,
        fields,
        run_list,
        deviations(entry, train, variant_text, source, runs),
    )
