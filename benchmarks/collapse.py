"""When a run counts as *collapsed*: it never took off, and sat at chance through its first epochs.

With Adam at lr 0.1 (the authors' recipe) some runs never leave chance: train loss about
ln 10 = 2.303 and test accuracy about 10%. The definition rests on these measurements (issue
13; this CPU, the JPEG rebuild, the fast pipeline in fp32; docs/FIDELITY.md keeps them):

- table1/row1 on the first 20,000 training images, test accuracy after 1 epoch, seeds 0-5:
  10.3, 18.9, 19.4, 22.75, 9.2, 23.6 %. The four that took off were at 18.9 % or more; the
  two that did not were within a point of 10 %.
- table1/row1, seed 0, after 2 epochs: 10.02 %: still at chance.
- paper/final on all 50,000 images, epoch 0: 32.75 % and 33.32 % (seeds 0, 1; the authors'
  notebook: 32.7 %).
- table1/row1 on all 50,000 images, 3 epochs, seeds 0-5: none collapsed; the lowest test
  accuracy at any of those epochs was 24.28 % (seed 1, epoch 0).
- table1/row1, seed 0, first 20,000 images, today's code: 10.10, 14.24, 22.32 % over 3 epochs,
  a slow start that a one-epoch rule would have called collapsed.

So a threshold 2.5 points above chance separates the two groups with room on both sides, and
three epochs at or below it (where a run that took off is at 19 % or more after one) is no
slow start. Runs shorter than K epochs are not judged. `benchmarks/jobs/train.py` tags each
run once its K-th epoch is done (tracking/names.py: TAG_COLLAPSED, TAG_COLLAPSE_EPOCHS); the
report counts collapsed runs in their rows' verdicts and names them.
"""

from __future__ import annotations

from collections.abc import Sequence

CHANCE = 10.0  # percent: CIFAR-10's ten classes
MARGIN = 2.5  # points above chance still counted as chance (measured: 9.2-10.3 vs >= 18.9)
THRESHOLD = CHANCE + MARGIN  # 12.5 %
EPOCHS = 3  # K: the first epochs that must all be at or below THRESHOLD


def collapsed(test_accuracies: Sequence[float]) -> bool | None:
    """Whether a run with these per-epoch test accuracies (percent, epoch 0 first) collapsed;
    None while fewer than EPOCHS epochs are done (not judged)."""
    if len(test_accuracies) < EPOCHS:
        return None
    return all(acc <= THRESHOLD for acc in test_accuracies[:EPOCHS])


def describe() -> str:
    """The definition in one sentence, for the report and the cards."""
    return (
        f"a run is collapsed when its test accuracy is still at most {THRESHOLD:g}% (chance, "
        f"{CHANCE:g}%, plus "
        f"{MARGIN:g} points) at every one of its first {EPOCHS} epochs; runs shorter than {EPOCHS} "
        f"epochs are "
        f"not judged"
    )
