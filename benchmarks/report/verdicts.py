"""Whether a row reproduced the paper: 90% t-intervals over seeds and the verdict rule (TOST at α =
0.05).

A row's measured accuracy is the mean over its seeds of the metric the paper's claim is
(`Paper.metric`: the best epoch's test accuracy for Table 1, the last epoch's for the final
model), with a two-sided 90% Student-t interval, mean ± t(0.95, n-1)·s/√n (quantiles from
`scipy.stats.t`). The rule is the standard equivalence test, two one-sided t-tests (TOST) at
α = 0.05 against the paper's figure ± the entry's tolerance: both one-sided tests reject
exactly when the 90% interval lies wholly inside the band, so that interval is the one
reported everywhere. `RULE` states it in words for the report. Parameter counts are checked
against the paper's print at the print's own precision. Nothing here knows about runs or rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from benchmarks import collapse
from benchmarks.registry import BEST, FINAL

# Verdict codes, in the order the summary line counts them.
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_RUN, NO_CLAIM, OTHER_DATA, OTHER_CONFIG = (
    "not run",
    "no claim",
    "other data",
    "other configuration",
)
CODES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN, OTHER_DATA, OTHER_CONFIG, NO_CLAIM)
PAPER_DATA = "cifar10"

ALPHA = 0.05  # each one-sided test's level in TOST
LEVEL = 1 - 2 * ALPHA  # 0.90: the two-sided interval whose ends are those two tests
PERCENT = f"{LEVEL:.0%}"  # "90%", as every table, card and rule says it
# What a paper figure is, as the report names it (registry.Paper.metric).
METRIC_TEXT = {BEST: "best-epoch test accuracy", FINAL: "final-epoch test accuracy"}

RULE = (
    f"Verdict rule: each row is judged on the metric its paper figure is: Table 1's rows (and the "
    f"authors' "
    f"code variants of them) on the best epoch's test accuracy (the paper printed its highest "
    f"accuracies), the "
    f"final model on the last epoch's, as are entries with no such statement; the table shows "
    f"both, and the "
    f"*judged on* column says which one a verdict used. The test is TOST, two "
    f"one-sided t-tests at α = {ALPHA:g} against the paper's figure ± the entry's tolerance "
    f"(default ±1.0 "
    f"point), which comes to the {PERCENT} Student-t interval of the mean over seeds "
    f"(mean ± t({1 - ALPHA:g}, n−1)·s/√n): "
    f"*reproduced* when that interval lies wholly within the band (equivalence shown at α = "
    f"{ALPHA:g}), *not "
    f"reproduced* when it lies wholly outside (above counts too), and *inconclusive* when it "
    f"straddles a band "
    f"edge or there is a single run (n = 1: no interval). Every interval in this report is that "
    f"{PERCENT} "
    f"interval. Verdicts use every finished run, collapsed ones included and named "
    f"({collapse.describe()}). Every seed of a row is accounted for (planned, finished, "
    f"collapsed, diverged, killed); over diverged or collapsed seeds a verdict never reads "
    f"plainly reproduced: diverged seeds are outside the interval (*reproduced on the seeds that "
    f"trained*), collapsed ones inside it, and a rerun does not erase a divergence. "
    f"Only finished runs of the entry's own configuration on the official CIFAR-10 files can be "
    f"reproduced; on "
    f"other data or with overrides the verdict names the data or the overrides instead. *Not run*: "
    f"no finished "
    f"run. Parameter counts must match the paper's print at the print's own precision (rounded, or "
    f"truncated as "
    f"the paper sometimes printed)."
)


def t_quantile(df: int) -> float:
    """t(1 − ALPHA, df) = t(0.95, df): the quantile of the two-sided 90% Student-t interval."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    # here, not at the top: it takes longer to import than a CLI command to run
    from scipy import (
        stats,
    )

    return float(stats.t.ppf(1 - ALPHA, df))


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float | None
    std: float | None  # sample standard deviation (n-1); None for n < 2
    low: float | None  # 90% t-interval (LEVEL); None for n < 2
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
    """Mean and 90% t-interval (LEVEL) of `values` (NaNs dropped)."""
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
    code: str  # one of CODES
    text: str  # as shown in the table
    why: str  # one sentence for the card, naming the metric
    metric: str = FINAL  # the metric judged: registry.BEST or FINAL

    @property
    def judged_on(self) -> str:
        return METRIC_TEXT[self.metric]


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


_SAYS = {
    "within": "lies within",
    "below": "lies wholly below",
    "above": "lies wholly above",
    "straddles": "straddles an edge of",
    "one run": "is a single run, no interval, against",
}


def accuracy_verdict(
    iv: Interval,
    paper: float | None,
    tolerance: float,
    source: str,
    overrides: str = "",
    metric: str = FINAL,
    printed: str | None = None,
) -> Verdict:
    """The row's verdict from its interval of `metric` (registry.BEST or FINAL), the paper's figure,
    the data it ran on and the table's overrides (TOST at ALPHA: see RULE)."""
    what = METRIC_TEXT[metric]
    if iv.n == 0:
        return Verdict(
            NOT_RUN, NOT_RUN, "no finished run of this configuration on this data", metric
        )
    if paper is None:
        return Verdict(
            NO_CLAIM, "no paper figure", "the paper printed no accuracy for this entry", metric
        )
    pos = _position(iv, paper, tolerance)
    band = f"the paper's {printed or f'{paper:g}'} ± {tolerance:g}"
    the = f"the {PERCENT} interval of the {what}"
    if source != PAPER_DATA:
        return Verdict(
            OTHER_DATA,
            f"other data: {source}",
            f"ran on {source}, not the paper's CIFAR-10, so it cannot count as reproduced "
            f"(on that data {the} {_SAYS[pos]} {band})",
            metric,
        )
    if overrides:
        return Verdict(
            OTHER_CONFIG,
            f"other configuration: {overrides}",
            f"ran with {overrides}, not the paper's configuration ({the} {_SAYS[pos]} {band})",
            metric,
        )
    if pos == "within":
        return Verdict(
            REPRODUCED,
            REPRODUCED,
            f"the whole {PERCENT} interval of the {what} lies within {band}: "
            f"equivalent at α = {ALPHA:g} (TOST)",
            metric,
        )
    if pos in ("below", "above"):
        return Verdict(
            NOT_REPRODUCED,
            f"{NOT_REPRODUCED} ({pos})",
            f"the whole {PERCENT} interval of the {what} lies {pos} {band}",
            metric,
        )
    if pos == "one run":
        return Verdict(
            INCONCLUSIVE,
            f"{INCONCLUSIVE} (one run)",
            f"one run gives no interval of the {what}; run more seeds",
            metric,
        )
    return Verdict(
        INCONCLUSIVE,
        INCONCLUSIVE,
        f"{the} straddles an edge of {band}; more seeds narrow it",
        metric,
    )
