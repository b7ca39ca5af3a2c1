"""Pins on the recipe and the counting that nothing else fails without: the learning rate after one
epoch (T_max = 200, not the run's length), every training image once per epoch (no dropped last
batch), and the latest run of a seed as the one a row counts.
"""

import math
from dataclasses import replace

import numpy as np
import pytest

from benchmarks import selection
from benchmarks.registry import arch, get
from benchmarks.report import build
from resnet.config import ExecConfig, TrainConfig
from resnet.data import synthetic
from resnet.pipeline import MEAN, STD
from resnet.setup import setup
from resnet.train import train
from tests.test_verdicts import fake_runs

TINY = arch(layers=2, blocks=(1, 1), channels=(8, 16))


def test_the_lr_after_one_epoch_is_the_authors_cosine_over_200():
    # CosineAnnealingLR(T_max=200) stepped once: 0.1 * (1 + cos(pi / 200)) / 2 = 0.09999383...
    # (T_max = epochs would give 0.05 after one of 2 epochs)
    result = train(
        TINY, TrainConfig(epochs=2), synthetic(32, 16, seed=0), ex=ExecConfig(device="cpu")
    )
    lrs = [h.lr for h in result.history]
    assert lrs[0] == pytest.approx(0.1, rel=1e-6)
    assert lrs[1] == pytest.approx(0.05 * (1 + math.cos(math.pi / 200)), rel=1e-6)
    assert lrs[1] == pytest.approx(0.0999938316, rel=1e-6)


@pytest.mark.parametrize("pipeline", ["fast", "reference"])
def test_an_epoch_sees_every_training_image_once(pipeline):
    # 70 images in batches of 16: 4 full batches and one of 6, which a drop_last would lose.
    # Image i is the constant i, so the centre pixel names it through any crop and flip.
    data = synthetic(70, 8, seed=0)
    data = replace(
        data, train_x=np.repeat(np.arange(70, dtype=np.uint8), 3 * 32 * 32).reshape(70, 3, 32, 32)
    )
    ex = ExecConfig(device="cpu", pipeline=pipeline, num_workers=0)
    s = setup(TINY, TrainConfig(epochs=1, batch_size=16), data, ex)
    seen, sizes = [], []
    for x, _ in s.train_loader:
        pixel = x[:, 0, 16, 16].float() * STD[0] + MEAN[0]
        seen += [round(v) for v in (pixel * 255).tolist()]
        sizes.append(len(x))
    assert sizes == [16, 16, 16, 16, 6]
    assert sorted(seen) == list(range(70))


def test_the_latest_run_of_each_seed_counts():
    # seed 0 ran twice; the later run (listed first here) is the one counted, whatever the order
    row1 = get("table1/row1")
    runs = fake_runs((row1, 0, 70.0), (row1, 0, 50.0), (row1, 1, 60.0))
    runs.loc[0, "start_time"] = runs["start_time"].max() + np.timedelta64(1, "h")
    rows, other = build.tabulate(runs, selection.Variant(), "cifar10", [row1])
    assert rows[0].seeds == (0, 1)
    assert list(rows[0].runs["acc"]) == [70.0, 60.0]
    assert list(other["run_id"]) == [runs["run_id"][1]]
    assert other["why"][0] == "an earlier run of the same seed"
