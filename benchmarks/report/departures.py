"""Where a report row departs from the paper: as configured (data, overrides, schedule, parameter
count, epochs), as run (statistic, precision, input pipeline, compilation), and the known
departures (benchmarks/deviations.py) it assumes, each with its measured effect."""

from __future__ import annotations

import math

import pandas as pd

from benchmarks import deviations as known_deviations
from benchmarks.registry import Entry
from benchmarks.report.recorded import bf16, values
from benchmarks.report.verdicts import METRIC_TEXT
from benchmarks.selection import SOURCES
from benchmarks.text import params_note


def deviations(
    entry: Entry, train, variant_text: str, source: str, runs: pd.DataFrame
) -> list[str]:
    """Where this row, as configured and as run, departs from what the paper describes."""
    p, out = entry.paper, []
    from_paper = any(v is not None for v in (p.accuracy, p.params, p.epochs, p.num))
    if not from_paper:
        out.append(
            "not one of the paper's experiments: a configuration of this suite, with no paper "
            "figure"
        )
    if source != "cifar10":
        out.append(f"data: {SOURCES.get(source, source)}")
    if variant_text:
        out.append(f"overrides applied to every row of this table: {variant_text}")
    if from_paper and train.t_max != train.epochs:
        cosine = (1 + math.cos(math.pi * (train.epochs - 1) / train.t_max)) / 2
        last = train.eta_min + (train.lr - train.eta_min) * cosine  # the rate of the last epoch
        out.append(
            f"learning-rate schedule: CosineAnnealingLR(T_max={train.t_max}) stepped per epoch, as "
            f"the "
            f"authors' code has it (the paper only says 'cosine annealing'); over {train.epochs} "
            f"epochs the "
            f"rate only falls from {train.lr:g} to {last:.4g}"
        )
    note = params_note(p.params, entry.param_count)
    if note:
        out.append(f"parameter count: {note}")
    if p.num is None and p.epochs is not None and train.epochs != p.epochs:
        out.append(f"epochs: {train.epochs}, where the paper ran {p.epochs}")
    if from_paper and len(runs):
        out.append(
            f"statistic: the paper reports one run (seed not given) and its "
            f"{METRIC_TEXT[p.metric]}; this row "
            f"is the mean of {len(runs)} seed{'s' * (len(runs) > 1)}"
        )
    if len(runs):
        if runs.apply(bf16, axis=1).any():
            out.append(
                "precision: bf16 autocast on the GPU (the authors trained in fp32; --precision "
                "fp32 "
                "runs as they did)"
            )
        if runs["pipeline"].eq("fast").any():
            out.append(
                "input pipeline: device-resident crop and flip, the same distribution as the "
                "authors' "
                "torchvision transforms, drawn from a different random stream"
            )
        compiled = runs[runs["compile"].fillna("off").ne("off")]
        if len(compiled):
            out.append(
                "execution: the training step was compiled, mode "
                f"{values(compiled, 'compile')} (same mathematics, different kernels)"
            )
    applicable = known_deviations.applicable(entry)
    out += [
        f"assumed, {d.name}: {d.resbench}; the authors: {d.authors}; measured: {d.effect} "
        f"({d.command})"
        for d in applicable
        if d.assumed
    ]
    out.append(
        f"every known departure from the authors' run, with its measured effect: `resbench "
        f"deviations "
        f"{entry.name}` and docs/FIDELITY.md (here: "
        f"{', '.join(d.name for d in applicable)})"
    )
    return out
