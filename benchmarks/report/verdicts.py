"""Whether a row reproduced the paper: 95% t-intervals over seeds and the verdict rule.

A row's measured accuracy is the mean of its seeds' final test accuracies with a two-sided
95% Student-t interval, mean ± t(0.975, n-1)·s/√n (quantiles from `scipy.stats.t`). The
verdict compares that interval with the paper's figure widened by the entry's tolerance
(default ±1.0 point); `RULE` states it in words for the report. Parameter counts are checked
against the paper's print at the print's own precision. Nothing here knows about runs or rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

# Verdict codes, in the order the summary line counts them.
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_RUN, NO_CLAIM, OTHER_DATA, OTHER_CONFIG = "not run", "no claim", "other data", "other configuration"
CODES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN, OTHER_DATA, OTHER_CONFIG, NO_CLAIM)
PAPER_DATA = "cifar10"

RULE = ("Verdict rule: a row's interval is the 95% Student-t interval of the mean final test accuracy over its "
        "seeds (mean ± t(0.975, n−1)·s/√n). It is *reproduced* when the whole interval lies within the paper's "
        "figure ± the entry's tolerance (default ±1.0 point), *not reproduced* when the whole interval lies "
        "outside that band (above counts too), and *inconclusive* when the interval straddles a band edge or "
        "there is a single run (n = 1: no interval). Only finished runs of the entry's own configuration on the "
        "official CIFAR-10 files can be reproduced; on other data or with overrides the verdict names the data "
        "or the overrides instead. *Not run*: no finished run. Parameter counts must match the paper's print at "
        "the print's own precision (rounded, or truncated as the paper sometimes printed).")


def t_quantile(df: int) -> float:
    """t(0.975, df): the two-sided 95% Student-t quantile with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    from scipy import stats  # here, not at the top: it takes longer to import than a CLI command to run

    return float(stats.t.ppf(0.975, df))


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float | None
    std: float | None       # sample standard deviation (n-1); None for n < 2
    low: float | None       # 95% t-interval; None for n < 2
    high: float | None

    @property
    def half(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2

    def text(self, digits: int = 2) -> str:
        if self.n == 0:
            return "—"
        if self.n == 1:
            return f"{self.mean:.{digits}f} (one run)"
        return f"{self.mean:.{digits}f} ± {self.half:.{digits}f} (n={self.n})"


def interval(values) -> Interval:
    """Mean and 95% t-interval of `values` (NaNs dropped)."""
    xs = [float(v) for v in values if v is not None and not pd.isna(v)]
    n = len(xs)
    if n == 0:
        return Interval(0, None, None, None, None)
    mean = sum(xs) / n
    if n == 1:
        return Interval(1, mean, None, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Verdict:
    code: str   # one of CODES
    text: str   # as shown in the table
    why: str    # one sentence for the card


def _position(iv: Interval, paper: float, tol: float) -> str:
    """within | below | above | straddles | one run: where the interval lies against paper ± tol."""
    if iv.n == 1:
        return "one run"
    lo, hi = paper - tol, paper + tol
    if lo <= iv.low and iv.high <= hi:
        return "within"
    if iv.high < lo:
        return "below"
    if iv.low > hi:
        return "above"
    return "straddles"


_SAYS = {"within": "lies within", "below": "lies wholly below", "above": "lies wholly above",
         "straddles": "straddles an edge of", "one run": "is a single run, no interval, against"}


def accuracy_verdict(iv: Interval, paper: float | None, tolerance: float, source: str,
                     overrides: str = "") -> Verdict:
    """The row's verdict from its interval, the paper's figure, the data it ran on and the table's overrides."""
    if iv.n == 0:
        return Verdict(NOT_RUN, NOT_RUN, "no finished run of this configuration on this data")
    if paper is None:
        return Verdict(NO_CLAIM, "no paper figure", "the paper printed no accuracy for this entry")
    pos = _position(iv, paper, tolerance)
    band = f"the paper's {paper:.2f} ± {tolerance:g}"
    if source != PAPER_DATA:
        return Verdict(OTHER_DATA, f"other data: {source}",
                       f"ran on {source}, not the paper's CIFAR-10, so it cannot count as reproduced "
                       f"(on that data the interval {_SAYS[pos]} {band})")
    if overrides:
        return Verdict(OTHER_CONFIG, f"other configuration: {overrides}",
                       f"ran with {overrides}, not the paper's configuration (the interval {_SAYS[pos]} {band})")
    if pos == "within":
        return Verdict(REPRODUCED, REPRODUCED, f"the whole 95% interval lies within {band}")
    if pos in ("below", "above"):
        return Verdict(NOT_REPRODUCED, f"{NOT_REPRODUCED} ({pos})", f"the whole 95% interval lies {pos} {band}")
    if pos == "one run":
        return Verdict(INCONCLUSIVE, f"{INCONCLUSIVE} (one run)", "one run gives no interval; run more seeds")
    return Verdict(INCONCLUSIVE, INCONCLUSIVE, f"the 95% interval straddles an edge of {band}; more seeds narrow it")


def params_note(printed: str | None, computed: int) -> str:
    """Empty when the computed count agrees with the print at the print's own precision."""
    if not printed:
        return ""
    text = printed.strip()
    if text.endswith("M"):
        digits = len(text[:-1].partition(".")[2])
        value = float(text[:-1])
        if round(computed / 1e6, digits) == value:
            return ""
        shown = f"{computed / 1e6:.{digits}f}M"
        if int(computed / 10 ** (6 - digits)) / 10 ** digits == value:
            return f"computed {computed:,} is {shown}; the paper's {text} truncates it"
        return f"computed {computed:,} ({shown}) disagrees with the paper's {text}"
    if int(text.replace(",", "")) == computed:
        return ""
    return f"computed {computed:,} disagrees with the paper's {text}"


def params_verdict(printed: str | None, computed: int) -> str:
    """matches | matches (truncated print) | differs | not printed."""
    if not printed:
        return "not printed"
    note = params_note(printed, computed)
    return "matches" if not note else "matches (truncated print)" if "truncates" in note else "differs"
