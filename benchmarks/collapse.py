"""The shape of a run's test-accuracy curve near chance: took off, slow start, never took off, fell
to chance. The last two are *collapsed*.

With Adam at lr 0.1 (the authors' recipe) some runs sit at chance (train loss about ln 10 = 2.303,
test accuracy about 10%) for a while, and a run could in principle fall back to it. The whole
curve is judged, with two lines (hysteresis, so one noisy epoch near chance does not count as
taking off):

- at chance: at most THRESHOLD = 12.5% (chance, 10%, plus 2.5 points);
- took off: some epoch above TAKEOFF = 15% (chance plus 5 points).

Shapes, for a curve of at least EPOCHS = 3 epochs (shorter ones are not judged):

- *never took off*: no epoch above 15%: its best accuracy stayed at chance;
- *fell to chance*: it took off, and its last epoch is at chance;
- *slow start*: its first epoch at chance, it took off, and it did not end at chance;
- *took off*: anything else.

The lines rest on the measurements in docs/collapse-measurements.csv (docs/FIDELITY.md says how
each was made); `python -m benchmarks.collapse docs/collapse-measurements.csv` prints every
measured curve's shape and the margins the lines leave. Every epoch measured at chance was at
most 10.3%; every run that took off was above 18.9% after its first epoch off chance, except the
slow start that passed 14.24% on its way (10.10, 14.24, 22.32%), which the band between the lines
holds. `benchmarks/jobs/train.py` tags a run's shape from its K-th epoch on, again whenever the
shape changes and at its last epoch (tracking/names.py: TAG_COLLAPSED, TAG_COLLAPSE_SHAPE,
TAG_COLLAPSE_EPOCHS); the report counts collapsed runs in their rows' verdicts and names them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

CHANCE = 10.0  # percent: CIFAR-10's ten classes
MARGIN = 2.5  # points above chance still counted as chance (measured at chance: 9.2-10.3)
THRESHOLD = CHANCE + MARGIN  # 12.5 %: at or below is at chance
TAKEOFF = CHANCE + 5.0  # 15 %: above it the run has taken off (measured: >= 18.9, or 14.24 rising)
EPOCHS = 3  # K: the fewest epochs judged

TOOK_OFF, SLOW_START, NEVER, FELL = "took-off", "slow-start", "never-took-off", "fell-to-chance"
# Runs tagged collapsed before whole curves were judged: at chance through their first 3 epochs.
FIRST_EPOCHS = "first-epochs-at-chance"
COLLAPSED = (NEVER, FELL, FIRST_EPOCHS)  # the shapes that count as collapsed
WORDS = {
    TOOK_OFF: "took off",
    SLOW_START: "slow start: at chance at first, then took off",
    NEVER: "never took off: its best epoch stayed at chance",
    FELL: "fell to chance: took off, then ended at chance",
    FIRST_EPOCHS: "at chance through its first 3 epochs (tagged before whole curves were judged)",
}


def shape(test_accuracies: Sequence[float]) -> str | None:
    """The shape of a curve of per-epoch test accuracies (percent, epoch 0 first); None while
    fewer than EPOCHS epochs are done (not judged)."""
    accs = list(test_accuracies)
    if len(accs) < EPOCHS:
        return None
    if max(accs) <= TAKEOFF:
        return NEVER
    if accs[-1] <= THRESHOLD:
        return FELL
    return SLOW_START if accs[0] <= THRESHOLD else TOOK_OFF


def collapsed(test_accuracies: Sequence[float]) -> bool | None:
    """Whether the curve is collapsed (never took off, or fell to chance); None: not judged."""
    s = shape(test_accuracies)
    return None if s is None else s in COLLAPSED


def tags(test_accuracies: Sequence[float]) -> dict[str, object]:
    """The tags that record a curve's shape (tracking/names.py); {} while it is not judged."""
    from tracking import names

    s = shape(test_accuracies)
    if s is None:
        return {}
    return {
        names.TAG_COLLAPSED: str(s in COLLAPSED).lower(),
        names.TAG_COLLAPSE_SHAPE: s,
        names.TAG_COLLAPSE_EPOCHS: len(test_accuracies),
    }


def describe() -> str:
    """The definition in one sentence, for the report and the cards."""
    return (
        f"a run is collapsed when its whole test-accuracy curve never took off (no epoch above "
        f"{TAKEOFF:g}%, chance {CHANCE:g}% plus {TAKEOFF - CHANCE:g} points) or fell to chance "
        f"(took off, then its last epoch at most {THRESHOLD:g}%); a slow start (first epoch at "
        f"most {THRESHOLD:g}%, then took off) is named but not collapsed; runs shorter than "
        f"{EPOCHS} epochs are not judged"
    )


def _curves(path: str) -> dict[tuple, list[tuple[int, float]]]:
    """(epoch, test_acc) per measured run of a CSV: its run columns (measurement, entry, seed,
    limit_train) name a run; a file without them (benchmarks/reference/) is one run."""
    import pandas as pd

    df = pd.read_csv(path)
    keys = [c for c in ("measurement", "entry", "seed", "limit_train") if c in df]
    groups = df.groupby(keys, sort=False) if keys else [((path,), df)]
    return {
        (k if isinstance(k, tuple) else (k,)): sorted(zip(g["epoch"], g["test_acc"], strict=True))
        for k, g in groups
    }


def main(paths: list[str]) -> None:
    """Print each measured curve's shape, then the margins the two lines leave."""
    at_chance, first_off, between = [], [], []
    for path in paths:
        for key, points in _curves(path).items():
            epochs, accs = [e for e, _ in points], [a for _, a in points]
            whole = epochs == list(range(len(epochs)))
            label = (
                f"partial curve (epochs {epochs}): not judged"
                if not whole
                else shape(accs) or f"shorter than {EPOCHS} epochs: not judged"
            )
            shown = [f"{a:g}" for a in accs]
            shown = shown if len(shown) <= 8 else [*shown[:5], "...", *shown[-2:]]
            print(f"{' '.join(map(str, key))}: {', '.join(shown)} -> {label}")
            at_chance += [a for a in accs if a <= THRESHOLD]
            between += [a for a in accs if THRESHOLD < a <= TAKEOFF]
            off = [a for a in accs if a > TAKEOFF]
            first_off += off[:1]
    print(
        f"at chance (<= {THRESHOLD:g}%): {len(at_chance)} epochs, highest "
        f"{max(at_chance, default=float('nan')):g}%; first epoch above {TAKEOFF:g}% of each run "
        f"that took off: lowest {min(first_off, default=float('nan')):g}%; epochs between the "
        f"lines: {', '.join(f'{a:g}' for a in between) or 'none'}"
    )


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/collapse-measurements.csv"])
