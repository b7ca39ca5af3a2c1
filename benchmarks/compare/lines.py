"""The comparison's lines: two rows of one store, or every row of two result sets.

`rows` compares two entries' rows (first − second) and gives one `Line` with a verdict: better,
worse, no difference shown or too few seeds. `sets` compares a new result set with an old one,
row by row (new − old), one `Line` per row that ran in either, with a status: moved up or down,
unchanged within noise, too few seeds, new, gone, or identity changed (naming what changed).
`regressions` picks the lines a `--fail-on` gate fails on. Each line carries its notes: metrics
that differ, collapsed and diverged seeds, seeds one side alone ran, and the seeds that would
settle an open interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.compare.sides import Side, identity_changes
from benchmarks.compare.stats import (
    HIGHER,
    LOWER,
    NO_DIFFERENCE,
    TOO_FEW,
    Difference,
    describe,
    difference,
)
from benchmarks.report.verdicts import METRIC_TEXT, PERCENT

BETTER, WORSE = "better", "worse"
MOVED_UP, MOVED_DOWN, UNCHANGED, NEW, GONE, IDENTITY = (
    "moved up",
    "moved down",
    "unchanged within noise",
    "new",
    "gone",
    "identity changed",
)
VERDICTS = {HIGHER: BETTER, LOWER: WORSE, NO_DIFFERENCE: NO_DIFFERENCE, TOO_FEW: TOO_FEW}
STATUSES = {HIGHER: MOVED_UP, LOWER: MOVED_DOWN, NO_DIFFERENCE: UNCHANGED, TOO_FEW: TOO_FEW}


@dataclass(frozen=True)
class Line:
    name: str  # the entry (sets), or "first vs second" (rows)
    first: Side | None  # the first entry, or the new result set's row
    second: Side | None  # the second entry, or the old result set's row
    difference: Difference | None  # first − second
    status: str
    changes: tuple[str, ...] = ()  # how the two sides computed differently (identity_changes)
    notes: tuple[str, ...] = ()

    @property
    def comparable(self) -> bool:
        return self.difference is not None and not self.changes


def _seeds(seeds) -> str:
    return ", ".join(str(s) for s in seeds)


def _side_notes(label: str, s: Side) -> list[str]:
    """What one side's seeds and report say: its seed account, collapsed and diverged runs."""
    notes = [f"{label}: {s.account}"] if s.account and s.troubled else []
    if s.collapsed:
        notes.append(
            f"{label}: {len(s.collapsed)} collapsed of {s.n} counted "
            f"(seed{'s' * (len(s.collapsed) > 1)} {_seeds(s.collapsed)}), in the difference"
        )
    if s.diverged:
        notes.append(f"{label}: diverged, not pooled: {', '.join(s.diverged)}")
    if not s.keyed:
        notes.append(
            f"{label}: its report records no run mode or data limits; compared on "
            "configuration and data alone"
        )
    return notes


def _notes(first: Side, second: Side, d: Difference, labels: tuple[str, str]) -> list[str]:
    notes = []
    if first.metric != second.metric:
        notes.append(
            f"judged on different metrics: {labels[0]} on its {METRIC_TEXT[first.metric]}, "
            f"{labels[1]} on its {METRIC_TEXT[second.metric]}"
        )
    for label, s in zip(labels, (first, second), strict=True):
        notes += _side_notes(label, s)
    for label, only in zip(labels, d.left_out, strict=True):
        if only:
            notes.append(
                f"{label}'s seed{'s' * (len(only) > 1)} {_seeds(only)} left out: "
                "the other side did not run " + ("them" if len(only) > 1 else "it")
            )
    collapsed = bool(first.collapsed or second.collapsed)
    if collapsed:
        # a collapsed seed sits at chance: it, not the number of seeds, sets the spread
        kept = [s.sample.without(s.collapsed) for s in (first, second)]
        without = difference(*kept) if None not in kept else None
        notes.append(
            "collapsed seeds set the spread, so no number of seeds is given that would settle it"
            + (
                f"; without them: {describe(without)}"
                if without and without.mean is not None
                else ""
            )
        )
    if d.test is None:
        few = [
            f"{label} has {'1 run' if s.n else 'no finished run'}"
            for label, s in zip(labels, (first, second), strict=True)
            if s.n < 2
        ]
        notes.append(
            f"{' and '.join(few)}: no interval; run at least 2 seeds on each side"
            + (
                f" (about {d.settle} per side would settle a difference of this size at the "
                "other side's spread)"
                if d.settle and not collapsed
                else ""
            )
        )
    elif d.low == d.high == 0:
        notes.append("no spread: the two sides agree on every value compared")
    elif d.outcome == NO_DIFFERENCE and not collapsed:
        notes.append(
            f"about {d.settle} seeds per side would settle it at the observed spread"
            if d.settle
            else f"no number of seeds settles a difference this small at the observed spread; "
            f"differences beyond the {PERCENT} interval are ruled out"
        )
    return notes


def rows(first: Side, second: Side) -> Line:
    """first − second, each on its own metric, over the seeds both finished when they share two."""
    d = difference(first.sample, second.sample)
    changes = identity_changes(first, second, same_entry=first.entry == second.entry)
    notes = _notes(first, second, d, (first.entry, second.entry))
    verdict = VERDICTS[d.outcome]
    if changes:  # never across data or modes unsaid: the verdict itself names them
        verdict += f" (compared across {', '.join(changes)})"
    return Line(
        f"{first.entry} vs {second.entry}", first, second, d, verdict, changes, tuple(notes)
    )


def _set_line(name: str, old: Side | None, new: Side | None) -> Line:
    if old is None or not old.n:
        return Line(name, new, old, None, NEW, notes=("no finished run in the old set",))
    if new is None or not new.n:
        return Line(name, new, old, None, GONE, notes=("no finished run in the new set",))
    d = difference(new.sample, old.sample)
    changes = identity_changes(old, new)  # named old first: "data: synthetic vs cifar10"
    status = f"{IDENTITY} ({', '.join(changes)})" if changes else STATUSES[d.outcome]
    return Line(name, new, old, d, status, changes, tuple(_notes(new, old, d, ("new", "old"))))


def sets(old: dict[str, Side], new: dict[str, Side]) -> tuple[list[Line], list[str]]:
    """One line per row that ran in either set, old's order first; and the rows that ran in
    neither (listed by both, no finished run on either side)."""
    names = list(dict.fromkeys([*old, *new]))
    ran = [n for n in names if (n in old and old[n].n) or (n in new and new[n].n)]
    return [_set_line(n, old.get(n), new.get(n)) for n in ran], [n for n in names if n not in ran]


def regressions(lines: list[Line], points: float) -> list[Line]:
    """Comparable lines whose first side is lower than the second by more than `points` with
    confidence: the whole interval of first − second lies below −points."""
    return [
        line
        for line in lines
        if line.comparable and line.difference.high is not None and line.difference.high < -points
    ]
