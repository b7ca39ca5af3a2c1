"""`resbench speed`: training and test throughput of one entry per input pipeline, in one process.

Each pipeline is set up exactly as `train` sets it up (resnet.train.setup), warmed up (a
test pass, `warmup` training steps and, when compiling, the rest of that epoch so every
batch shape is compiled), then timed: `steps` consecutive training steps, then one full
test pass. The device is synchronised only at the ends of each timed stretch, so what is
timed is what a training epoch does, per-step host syncs of the reference pipeline
included. The reference pipeline always runs as the authors ran it (fp32, no compilation);
precision, compilation and layout options apply to the fast one.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass

import pandas as pd
import torch

from benchmarks.jobs import tags
from benchmarks.jobs.spec import DataSpec, JobSpec
from benchmarks.jobs.tags import describe, git_version
from benchmarks.registry import Entry
from resnet.config import PIPELINES, ExecConfig
from resnet.data import Dataset
from resnet.flops import Flops, flops_per_image
from resnet.model import ConfigError
from resnet.setup import resolve_compile_mode, setup
from resnet.train import device_name, synchronize
from tracking import names
from tracking.speedlog import log_speed_run
from tracking.tracker import Tracker


@dataclass(frozen=True)
class SpeedConfig:
    steps: int = 100  # timed training steps per pipeline
    warmup: int = 20  # untimed training steps first
    batch_size: int = 0  # 0: the entry's own
    pipelines: tuple[str, ...] = ("fast", "reference")
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.warmup < 1 or self.batch_size < 0:
            raise ConfigError("steps and warmup must be >= 1 and batch_size >= 0")
        bad = [p for p in self.pipelines if p not in PIPELINES]
        if bad or not self.pipelines or len(set(self.pipelines)) != len(self.pipelines):
            raise ConfigError(
                f"pipelines: expected distinct names from {', '.join(PIPELINES)}, "
                f"got {','.join(self.pipelines) or '(none)'}"
            )


def parse_pipelines(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def exec_for(pipeline: str, fast: ExecConfig) -> ExecConfig:
    """The fast pipeline runs as asked; the reference one as the authors ran it, on the same
    device."""
    if pipeline == "fast":
        return dataclasses.replace(fast, pipeline="fast")
    return ExecConfig(
        pipeline="reference",
        precision="fp32",
        compile=False,
        device=fast.device,
        num_workers=fast.num_workers,
    )


class _Stream:
    """Training batches one after another across epoch boundaries, as `train` draws them."""

    def __init__(self, loader):
        self.loader, self.it, self.images, self.at_epoch_end = loader, iter(loader), 0, False

    def _next(self):
        try:
            x, y = next(self.it)
        except StopIteration:
            # a new epoch: reshuffle (and, for the reference, new workers)
            self.it = iter(self.loader)
            x, y = next(self.it)
        self.images += len(y)
        return x, y

    def take(self, n: int):
        for _ in range(n):
            yield self._next()

    def rest_of_epoch(self):
        for x, y in self.it:
            self.images += len(y)
            yield x, y


def measure(entry: Entry, data: Dataset, ex: ExecConfig, sc: SpeedConfig, flops: Flops) -> dict:
    """Time one pipeline; returns one row of the table."""
    cfg = (
        entry.train
        if not sc.batch_size
        else dataclasses.replace(entry.train, batch_size=sc.batch_size)
    )
    s = setup(entry.model, cfg, data, ex, seed=sc.seed)

    stream = _Stream(s.train_loader)
    s.eval_pass()  # starts workers, compiles or captures the test shapes
    s.train_pass(stream.take(sc.warmup))
    if ex.compile:
        s.train_pass(stream.rest_of_epoch())
    synchronize(s.device)
    start, t0 = stream.images, time.perf_counter()
    s.train_pass(stream.take(sc.steps))
    synchronize(s.device)
    t_train = time.perf_counter() - t0
    images = stream.images - start
    t0 = time.perf_counter()
    s.eval_pass()
    synchronize(s.device)
    t_test = time.perf_counter() - t0
    train_ips, test_ips = images / t_train, len(data.test_y) / t_test
    row = {
        "pipeline": ex.pipeline,
        "device": device_name(s.device),
        "precision": ex.resolved_precision(s.device),
        "compile": resolve_compile_mode(ex, s.device, s.optimizer) if ex.compile else "off",
        "channels_last": ex.channels_last and ex.pipeline == "fast",
        "batch": cfg.batch_size,
        "steps": sc.steps,
        "train_images_per_second": train_ips,
        "ms_per_step": 1000 * t_train / sc.steps,
        "test_images_per_second": test_ips,
        "train_tflops": flops.train * train_ips / 1e12,
        "run_seconds_estimate": cfg.epochs
        * (len(data.train_y) / train_ips + len(data.test_y) / test_ips),
    }
    del s, stream
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def speed_table(
    entry: Entry, data: Dataset, fast: ExecConfig, sc: SpeedConfig
) -> tuple[pd.DataFrame, Flops]:
    """One row per pipeline, plus the fast/reference ratios on the fast row."""
    flops = flops_per_image(entry.model)
    rows = [measure(entry, data, exec_for(p, fast), sc, flops) for p in sc.pipelines]
    df = pd.DataFrame(rows)
    if {"fast", "reference"} <= set(sc.pipelines):
        ref = df.set_index("pipeline").loc["reference"]
        df["speedup_train"] = df["train_images_per_second"] / ref["train_images_per_second"]
        df["speedup_test"] = df["test_images_per_second"] / ref["test_images_per_second"]
    return df, flops


def format_table(df: pd.DataFrame, flops: Flops) -> str:
    show = pd.DataFrame(
        {
            "pipeline": df["pipeline"],
            "device": df["device"],
            "precision": df["precision"],
            "compile": df["compile"],
            "batch": df["batch"],
            "train img/s": df["train_images_per_second"].map("{:,.0f}".format),
            "ms/step": df["ms_per_step"].map("{:.2f}".format),
            "test img/s": df["test_images_per_second"].map("{:,.0f}".format),
            "GFLOP/img": f"{flops.train / 1e9:.3f}",
            "TFLOP/s": df["train_tflops"].map("{:.2f}".format),
            "est. run s": df["run_seconds_estimate"].map("{:,.0f}".format),
        }
    )
    if "speedup_train" in df:
        show["x reference"] = df["speedup_train"].map("{:.2f}x".format)
    note = (
        f"FLOPs per image (torch.utils.flop_counter): forward {flops.forward / 1e9:.3f} G, "
        f"training step (forward + backward) {flops.train / 1e9:.3f} G"
    )
    return show.to_string(index=False) + "\n" + note


def log_speed(
    tracker: Tracker,
    entry: Entry,
    data: Dataset,
    spec: DataSpec,
    fast: ExecConfig,
    sc: SpeedConfig,
    df: pd.DataFrame,
    flops: Flops,
) -> str:
    job = JobSpec.of(
        {"batch_size": sc.batch_size} if sc.batch_size else None,
        entry=entry.name,
        seed=sc.seed,
        data=spec,
        ex=fast,
    )
    device = fast.torch_device()
    rec = tags.record(entry, job, tags.DataFacts.of(data), tags.Machine.of(device), git_version())
    params = {
        **{k: v for k, v in rec.params.items() if k != "pipeline"},  # both pipelines are timed
        "entry": entry.name,
        "batch_size": int(df["batch"].iloc[0]),
        "steps": sc.steps,
        "warmup": sc.warmup,
        "pipelines": ",".join(sc.pipelines),
    }
    # a speed run is no training run of its key: without the identity, nothing resumes it as one
    run_tags = {k: v for k, v in rec.tags.items() if k != names.TAG_IDENTITY}
    run_tags[names.TAG_DESCRIPTION] = f"Speed of {describe(entry)}"
    metrics = {names.FLOPS_FORWARD: flops.forward, names.FLOPS_TRAIN: flops.train}
    for row in df.to_dict("records"):
        metrics.update({f"{row['pipeline']}.{m}": row[m] for m in names.SPEED_METRICS})
    if "speedup_train" in df:
        fast_row = df.set_index("pipeline").loc["fast"]
        metrics[names.SPEEDUP_TRAIN] = fast_row["speedup_train"]
        metrics[names.SPEEDUP_TEST] = fast_row["speedup_test"]
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in df.to_dict("records")
    ]
    return log_speed_run(tracker, f"speed {entry.name}", params, run_tags, metrics, rows)
