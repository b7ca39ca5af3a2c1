"""Every seed of a row accounted for, and what the seeds that did not train well do to its verdict.

A row counts the latest finished run of each seed of one run key; the rest of the key's runs say
what became of the other seeds. `account` sorts each seed into one fate (finished, diverged,
killed, failed, running, never started) and marks the finished ones that collapsed or started
slowly (benchmarks/collapse.py). A seed that ever diverged stays *diverged* in the account even
when a later run of it finished: the row counts that later run, and names the divergence.

`qualify` rewrites a verdict so that it never reads plainly "reproduced" over diverged or
collapsed seeds: the text names them, and the reason says what they do to the interval (the
diverged ones are outside it, so it describes the runs that trained; the collapsed ones are
inside it, and it is given without them too) instead of promising that more seeds narrow it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from benchmarks import collapse
from benchmarks.report.verdicts import PERCENT, REPRODUCED, Interval, Verdict


@dataclass(frozen=True)
class Seeds:
    planned: tuple[int, ...]  # the seeds asked for, else every seed with a run of the key
    finished: tuple[int, ...]  # counted: a finished run (the latest one)
    collapsed: tuple[int, ...]  # finished, and collapsed (never took off, or fell to chance)
    slow: tuple[int, ...]  # finished after a slow start (not collapsed)
    diverged: tuple[int, ...]  # a run of the seed diverged, whatever came after
    killed: tuple[int, ...]  # no finished run; the latest was killed
    failed: tuple[int, ...]  # no finished run; the latest failed without diverging
    running: tuple[int, ...]
    never: tuple[int, ...]  # planned, and no run at all
    retried: tuple[int, ...]  # diverged, and later finished: counted on the later run

    def text(self) -> str:
        """ "4 seeds planned: 3 finished (1 collapsed), 1 diverged, 0 killed" and the rest."""
        inner = ", ".join(
            f"{len(v)} {k}"
            for k, v in (("collapsed", self.collapsed), ("slow start", self.slow))
            if v
        )
        out = [f"{len(self.finished)} finished" + (f" ({inner})" if inner else "")]
        diverged = [s for s in self.diverged if s not in self.retried]
        out += [f"{len(diverged)} diverged", f"{len(self.killed)} killed"]
        out += [
            f"{len(v)} {k}"
            for k, v in (
                ("failed", self.failed),
                ("running", self.running),
                ("never started", self.never),
                ("finished only on a rerun after diverging", self.retried),
            )
            if v
        ]
        n = len(self.planned)
        return f"{n} seed{'s' * (n != 1)} planned: " + ", ".join(out)

    def short(self) -> str:
        """What went wrong, for a row's status: "1 diverged, 1 collapsed of 4"; "" when nothing."""
        lost = [s for s in self.diverged if s not in self.retried]
        parts = [
            f"{len(v)} {k}"
            for k, v in (
                ("diverged", lost),
                ("collapsed", self.collapsed),
                ("killed", self.killed),
                ("failed", self.failed),
                ("never started", self.never),
                ("rerun after diverging", self.retried),
            )
            if v
        ]
        return f"{', '.join(parts)} of {len(self.planned)}" if parts else ""

    def record(self) -> dict:
        """The counts as CSV and JSON columns."""
        lost = [s for s in self.diverged if s not in self.retried]
        return {
            "seeds_planned": len(self.planned),
            "seeds_finished": len(self.finished),
            "seeds_collapsed": len(self.collapsed),
            "seeds_diverged": len(self.diverged),
            "seeds_diverged_not_rerun": len(lost),
            "seeds_killed": len(self.killed),
            "seeds_failed": len(self.failed),
            "seeds_never_started": len(self.never),
        }


def _seeds(runs: pd.DataFrame) -> tuple[int, ...]:
    return tuple(sorted({int(s) for s in runs["seed"].dropna()}))


def account(same: pd.DataFrame, used: pd.DataFrame, planned: int | None = None) -> Seeds:
    """The fate of every seed of a row: `same` are the runs of its key (any status), `used` the
    ones it counts; `planned` is how many seeds (0..planned-1) were asked for, None: those seen."""
    seen = set(_seeds(same))
    wanted = set(range(planned)) if planned else set()
    finished = set(_seeds(used))
    diverged = set(_seeds(same[same["diverged"].astype(bool)]))
    rest = same[~same["seed"].isin(finished)].sort_values("start_time")
    latest = rest.drop_duplicates("seed", keep="last").set_index("seed")["status"]
    fate = {int(s): status for s, status in latest.items() if not pd.isna(s)}
    shape = used.get("shape", pd.Series("", index=used.index)).fillna("")
    return Seeds(
        planned=tuple(sorted(wanted | seen)),
        finished=tuple(sorted(finished)),
        collapsed=_seeds(used[used["collapsed"].astype(bool)]),
        slow=_seeds(used[shape.eq(collapse.SLOW_START)]),
        diverged=tuple(sorted(diverged)),
        killed=tuple(sorted(s for s, st in fate.items() if st == "KILLED" and s not in diverged)),
        failed=tuple(sorted(s for s, st in fate.items() if st == "FAILED" and s not in diverged)),
        running=tuple(sorted(s for s, st in fate.items() if st == "RUNNING")),
        never=tuple(sorted(wanted - seen)),
        retried=tuple(sorted(diverged & finished)),
    )


def _names(seeds) -> str:
    return f"seed{'s' * (len(seeds) != 1)} {', '.join(map(str, seeds))}"


def qualify(verdict: Verdict, seeds: Seeds, values: pd.Series, interval_of) -> Verdict:
    """The verdict named for the seeds that did not train well: never plainly "reproduced" over a
    diverged or collapsed seed. `values` are the counted runs' judged accuracies by seed and
    `interval_of` the function that makes an Interval of them."""
    lost = [s for s in seeds.diverged if s not in seeds.retried]
    if not (lost or seeds.collapsed or seeds.retried):
        return verdict
    n = len(seeds.planned)
    first = verdict.why.replace("; more seeds narrow it", "") if seeds.collapsed else verdict.why
    marks, why = [], [first]
    if lost:
        marks.append(f"{len(lost)} of {n} diverged")
        why.append(
            f"{_names(lost)} diverged and {'are' if len(lost) > 1 else 'is'} not in the interval: "
            f"it describes the {len(seeds.finished)} seeds that trained, not how often a seed "
            f"trains; a single run as the paper made fails {len(lost)} time"
            f"{'s' * (len(lost) > 1)} in {n} here"
        )
    if seeds.retried:
        marks.append(f"{len(seeds.retried)} rerun after diverging")
        why.append(
            f"{_names(seeds.retried)} diverged and finished only on a rerun, which is the run "
            f"counted"
        )
    if seeds.collapsed:
        marks.append(f"{len(seeds.collapsed)} of {n} collapsed")
        kept: Interval = interval_of(values[~values.index.isin(seeds.collapsed)])
        without = (
            f"[{kept.low:.2f}, {kept.high:.2f}]"
            if kept.n >= 2
            else f"{kept.mean:.2f} (one run)"
            if kept.n
            else "empty"
        )
        many = len(seeds.collapsed) > 1
        why.append(
            f"{_names(seeds.collapsed)} collapsed and {'are' if many else 'is'} counted: the "
            f"{PERCENT} interval without {'them' if many else 'it'} is {without}; while runs "
            "collapse, more seeds do not narrow it"
        )
    text = (
        "reproduced on the seeds that trained"
        if verdict.code == REPRODUCED and lost
        else verdict.text
    )
    return dataclasses.replace(verdict, text=f"{text} ({', '.join(marks)})", why="; ".join(why))
