"""The difference of two rows' means, its 90% interval, and what it shows.

Two samples of one metric (per-seed values, or a report's mean, standard deviation and n) give
a difference first − second with the report's interval level (`verdicts.LEVEL`, 90%):
- paired t when both sides carry per-seed values and share at least two seeds: the t interval
  of the per-seed differences over those seeds (`verdicts.interval`), the seeds of one side alone
  left out and named;
- Welch's t otherwise, from each side's mean, standard deviation and n, with the
  Welch–Satterthwaite degrees of freedom (quantiles from `scipy.stats.t`).
An interval wholly above zero shows the first side higher, wholly below lower; one that holds
zero shows no difference. A side with one run gives no interval: too few seeds, never a verdict.
`Difference.settle` says how many seeds per side would settle an open interval at the observed
spread (with one run on a side, at the other side's spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks.report.verdicts import ALPHA, LEVEL, Interval, interval, t_quantile

PAIRED, WELCH = "paired t", "Welch t"
HIGHER, LOWER, NO_DIFFERENCE, TOO_FEW = "higher", "lower", "no difference shown", "too few seeds"
SETTLE_LIMIT = 1000  # seeds per side beyond which "settles" is not worth a number


@dataclass(frozen=True)
class Sample:
    """One side's values of a metric: per seed when known, else only its summary."""

    n: int
    mean: float | None
    std: float | None  # sample standard deviation (n − 1); None for n < 2
    by_seed: dict[int, float] | None = None  # seed -> value; None when only the summary is known

    @classmethod
    def of(cls, by_seed: dict[int, float]) -> Sample:
        iv = interval(by_seed.values())
        return cls(iv.n, iv.mean, iv.std, dict(by_seed))

    def without(self, seeds) -> Sample | None:
        """The sample less `seeds`; None when only the summary is known."""
        if self.by_seed is None:
            return None
        return Sample.of({s: v for s, v in self.by_seed.items() if s not in set(seeds)})

    @property
    def interval(self) -> Interval:
        """The side's own mean with its LEVEL t-interval, as the report gives a row's."""
        if self.by_seed is not None:
            return interval(self.by_seed.values())
        if self.n < 2 or self.std is None:
            return Interval(self.n, self.mean, None, None, None)
        half = t_quantile(self.n - 1) * self.std / math.sqrt(self.n)
        return Interval(self.n, self.mean, self.std, self.mean - half, self.mean + half)


@dataclass(frozen=True)
class Difference:
    """first − second with its LEVEL interval (None when there is none), the test and its seeds."""

    test: str | None  # PAIRED, WELCH, or None: too few seeds
    mean: float | None
    low: float | None
    high: float | None
    n_first: int
    n_second: int
    seeds: tuple[int, ...] = ()  # the seeds a paired test used
    left_out: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # seeds of one side only (paired)
    settle: int | None = None  # seeds per side that would settle an open interval, if any would

    @property
    def outcome(self) -> str:
        if self.low is None:
            return TOO_FEW
        if self.low > 0:
            return HIGHER
        if self.high < 0:
            return LOWER
        return NO_DIFFERENCE

    @property
    def half(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2


def _t(df: float) -> float:
    from scipy import stats  # here: it takes longer to import than a command takes to answer

    return float(stats.t.ppf(1 - ALPHA, df))


def _welch_df(var_first: float, n_first: int, var_second: float, n_second: int) -> float:
    a, b = var_first / n_first, var_second / n_second
    if a + b == 0:
        return float(n_first + n_second - 2)
    return (a + b) ** 2 / (a**2 / (n_first - 1) + b**2 / (n_second - 1))


def _smallest(settles) -> int | None:
    """The smallest n in [2, SETTLE_LIMIT] for which `settles(n)` holds (it stays true as n
    grows), by bisection; None when even SETTLE_LIMIT does not."""
    if not settles(SETTLE_LIMIT):
        return None
    low, high = 2, SETTLE_LIMIT
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if settles(mid) else (mid + 1, high)
    return low


def _settle_paired(mean: float, std: float) -> int | None:
    return _smallest(lambda n: _t(n - 1) * std / math.sqrt(n) < abs(mean))


def _settle_welch(mean: float, var_first: float, var_second: float) -> int | None:
    return _smallest(
        lambda n: (
            _t(_welch_df(var_first, n, var_second, n)) * math.sqrt((var_first + var_second) / n)
            < abs(mean)
        )
    )


def difference(first: Sample, second: Sample) -> Difference:
    """first − second at LEVEL: paired over shared seeds when both sides have them, else Welch."""
    if first.by_seed is not None and second.by_seed is not None:
        shared = sorted(set(first.by_seed) & set(second.by_seed))
        if len(shared) >= 2:
            iv = interval(first.by_seed[s] - second.by_seed[s] for s in shared)
            only = tuple(tuple(sorted(set(side.by_seed) - set(shared))) for side in (first, second))
            settle = None
            if iv.low <= 0 <= iv.high and iv.mean and iv.std:
                settle = _settle_paired(iv.mean, iv.std)
            return Difference(
                PAIRED, iv.mean, iv.low, iv.high, first.n, second.n, tuple(shared), only, settle
            )
    if first.n < 2 or second.n < 2:
        mean = first.mean - second.mean if first.n and second.n else None
        # the one spread known (a side with two runs or more) stands for both
        spread = next((s.std for s in (first, second) if s.n >= 2 and s.std), None)
        settle = _settle_welch(mean, spread**2, spread**2) if mean and spread else None
        return Difference(None, mean, None, None, first.n, second.n, settle=settle)
    mean = first.mean - second.mean
    var_first, var_second = first.std**2, second.std**2
    se = math.sqrt(var_first / first.n + var_second / second.n)
    half = _t(_welch_df(var_first, first.n, var_second, second.n)) * se
    low, high = mean - half, mean + half
    settle = None
    if low <= 0 <= high and mean and se:
        settle = _settle_welch(mean, var_first, var_second)
    return Difference(WELCH, mean, low, high, first.n, second.n, settle=settle)


def describe(d: Difference, unit: str = "points") -> str:
    """The difference as one phrase, e.g. "+1.20 points, 90% interval [+0.40, +2.00] (paired t over
    seeds 0, 1, 2)"."""
    if d.mean is None:
        return "no difference: a side has no finished run"
    if d.test is None:
        return f"{d.mean:+.2f} {unit}, no interval (n={d.n_first} and n={d.n_second})"
    n = (
        f"over seeds {', '.join(map(str, d.seeds))}"
        if d.test == PAIRED
        else f"n={d.n_first} and n={d.n_second}"
    )
    return (
        f"{d.mean:+.2f} {unit}, {LEVEL:.0%} interval [{d.low:+.2f}, {d.high:+.2f}] ({d.test} {n})"
    )
