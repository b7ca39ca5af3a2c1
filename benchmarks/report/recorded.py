"""What a report row's runs recorded, as card text: one value, or each distinct value with its run
count, "not recorded" where a run has no such tag, and the hardware line built from them."""

from __future__ import annotations

import pandas as pd

NOT_RECORDED = "not recorded"


def _text(v, count: bool = False) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)) or v == "":
        return NOT_RECORDED
    return f"{int(v):,}" if count and str(v).isdigit() else str(v)


def values(runs: pd.DataFrame, col: str, count: bool = False) -> str:
    """The runs' value of `col` (`count`: a number of things, shown 50,000): one value, or each
    distinct value with its run count."""
    if col not in runs:  # a column older stores' runs never recorded
        return NOT_RECORDED
    vals = runs[col].map(lambda v: _text(v, count))
    counts = vals.value_counts()
    if len(counts) <= 1:
        return counts.index[0] if len(counts) else NOT_RECORDED
    return ", ".join(f"{v} ({c} run{'s' * (c > 1)})" for v, c in counts.items())


def bf16(run: pd.Series) -> bool:
    """Whether the run trained under bf16 autocast (its precision as it ran, from its key)."""
    return str(run.get("precision")) == "bf16"


def hardware(runs: pd.DataFrame) -> str:
    cpu_only = runs["device"].fillna("cpu").eq("cpu").all()
    where = (
        f"CPU {values(runs, 'cpu')}, no GPU"
        if cpu_only
        else (
            f"GPU {values(runs, 'device')} ({values(runs, 'gpu_count')} visible), CPU "
            f"{values(runs, 'cpu')}"
        )
    )
    stack = f"torch built for CUDA {values(runs, 'cuda')}, cuDNN {values(runs, 'cudnn')}"
    if cpu_only:
        return f"{where}; {values(runs, 'platform')} ({stack}, unused)"
    return (
        f"{where}; NVIDIA driver {values(runs, 'gpu_driver')}, {stack}; {values(runs, 'platform')}"
    )
