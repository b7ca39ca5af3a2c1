"""`resbench check`: a pre-flight of entries, run before any long training (and first in
`reproduce`).

For each entry: build the model and compare its parameter count with the paper's print, then,
on generated data and the chosen device, set it up exactly as training does (resnet.train.setup),
run one training batch (its loss must be finite), then time a few more training steps and one
test batch. From those the full run's wall time is estimated: epochs × (steps per
epoch × step time + test batches × test-batch time), data loading and compilation excluded.
An entry that raises anywhere on the way is broken; `preflight` refuses to start training then.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import replace
from itertools import islice

import pandas as pd
import torch

from benchmarks.registry import Entry, RegistryError
from benchmarks.text import duration, params_verdict
from resnet.config import ExecConfig, TrainConfig
from resnet.data import synthetic
from resnet.setup import setup
from resnet.train import device_name, synchronize

OK, BROKEN = "ok", "BROKEN"
FULL_TRAIN, FULL_TEST = 50_000, 10_000  # CIFAR-10's sizes, when no limit says otherwise


class CheckError(RegistryError):
    """The pre-flight found a broken entry; nothing was trained."""


def estimate_seconds(
    step_s: float, test_batch_s: float, n_train: int, n_test: int, batch: int, epochs: int
) -> float:
    """Wall time of a full run: every epoch's training steps and its test pass."""
    return epochs * (math.ceil(n_train / batch) * step_s + math.ceil(n_test / batch) * test_batch_s)


def _timed(fn, device: torch.device) -> tuple[float, float]:
    """(seconds, loss) of fn(), a pass, the device synchronised on both sides."""
    synchronize(device)
    t0 = time.perf_counter()
    loss = fn().loss
    synchronize(device)
    return time.perf_counter() - t0, loss


def check_entry(
    entry: Entry,
    cfg: TrainConfig,
    ex: ExecConfig,
    steps: int = 5,
    n_train: int = FULL_TRAIN,
    n_test: int = FULL_TEST,
) -> dict:
    """One row of the pre-flight table for `entry` trained with `cfg`."""
    row = {
        "entry": entry.name,
        "params": entry.param_count,
        "paper params": entry.paper.params or "",
        "params vs print": params_verdict(entry.paper.params, entry.param_count),
        "device": "",
        "batch": min(cfg.batch_size, n_train),
        "epochs": cfg.epochs,
        "train step (ms)": None,
        "test batch (ms)": None,
        "estimate (s)": None,
        "status": OK,
        "problem": "",
    }
    s = None
    try:
        batch, test_batch = row["batch"], min(cfg.batch_size, n_test)
        data = synthetic(n_train=batch * (steps + 1), n_test=test_batch, seed=0)
        s = setup(entry.model, replace(cfg, batch_size=batch), data, ex, seed=0)
        row["device"] = device_name(s.device)
        batches = iter(s.train_loader)

        def train(n):
            return lambda: s.train_pass(islice(batches, n))

        _, first = _timed(train(1), s.device)  # one training batch, which also warms up
        if not math.isfinite(first):
            raise FloatingPointError(f"the first training batch's loss is {first}")
        step_s = _timed(train(steps), s.device)[0] / steps
        test_s = _timed(s.eval_pass, s.device)[0]  # one test batch, warm from the training steps
        row.update(
            {
                "train step (ms)": 1000 * step_s,
                "test batch (ms)": 1000 * test_s,
                "estimate (s)": estimate_seconds(
                    step_s, test_s, n_train, n_test, batch, cfg.epochs
                ),
            }
        )
    except (
        Exception
    ) as e:  # anything an entry can raise: a bad config, a shape error, out of memory
        row.update(
            status=BROKEN, problem=f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        )
    finally:
        s = None  # the model, optimiser and batches go before the next entry's
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return row


def run_checks(
    entries: list[Entry],
    train_of,
    ex: ExecConfig,
    steps: int = 5,
    n_train: int = FULL_TRAIN,
    n_test: int = FULL_TEST,
    runs_of=lambda e: 1,
    log=None,
) -> pd.DataFrame:
    """The pre-flight table: one row per entry; `train_of(entry)` is the TrainConfig it will run and
    `runs_of(entry)` how many runs of it are planned (the total multiplies by it)."""
    rows = []
    for i, e in enumerate(entries, 1):
        if log:
            log(f"check [{i}/{len(entries)}] {e.name}")
        row = check_entry(e, train_of(e), ex, steps, n_train, n_test)
        row["runs"] = runs_of(e)
        rows.append(row)
    return pd.DataFrame(rows)


def total_seconds(df: pd.DataFrame) -> float:
    return float((df["estimate (s)"].fillna(0) * df["runs"]).sum())


def format_table(df: pd.DataFrame, steps: int) -> str:
    """The table as printed, with a total line and one line per broken entry."""
    show = pd.DataFrame(
        {
            "entry": df["entry"],
            "params": df["params"].map("{:,}".format),
            "paper": df["paper params"],
            "params vs print": df["params vs print"],
            "device": df["device"],
            "batch": df["batch"],
            "train step": df["train step (ms)"].map(
                lambda v: "—" if pd.isna(v) else f"{v:,.1f} ms"
            ),
            "test batch": df["test batch (ms)"].map(
                lambda v: "—" if pd.isna(v) else f"{v:,.1f} ms"
            ),
            "epochs": df["epochs"],
            "est. per run": df["estimate (s)"].map(duration),
            "runs": df["runs"],
            "status": df["status"],
        }
    )
    broken = df[df["status"] == BROKEN]
    device = ", ".join(sorted(set(df["device"]) - {""})) or "the device"
    lines = [
        show.to_string(index=False),
        f"total: {int(df['runs'].sum())} run(s) of {len(df)} entr{'y' if len(df) == 1 else 'ies'}, "
        f"about "
        f"{duration(total_seconds(df))} on {device} (from {steps} timed steps each; data loading "
        f"and "
        f"compilation not included)",
    ]
    lines += [f"broken: {r['entry']}: {r['problem']}" for _, r in broken.iterrows()]
    return "\n".join(lines)


def preflight(
    entries: list[Entry],
    train_of,
    ex: ExecConfig,
    n_train: int,
    n_test: int,
    runs_of=lambda e: 1,
    steps: int = 3,
    log=print,
) -> pd.DataFrame:
    """Check `entries` before training them: log the table and total; raise CheckError on a broken
    one."""
    if not entries:
        return pd.DataFrame()
    df = run_checks(entries, train_of, ex, steps, n_train, n_test, runs_of)
    log("pre-flight:\n" + format_table(df, steps))
    broken = df[df["status"] == BROKEN]
    if len(broken):
        first = broken.iloc[0]
        raise CheckError(
            f"pre-flight: {len(broken)} broken entr{'y' if len(broken) == 1 else 'ies'}, nothing "
            f"trained; {first['entry']}: {first['problem']}"
        )
    return df
