"""Runs one entry for one seed and logs it to MLflow as one run.

The runner turns an entry plus the user's overrides into configs, loads the data once,
trains through `resnet.train`, and hands `tracking` plain dicts: the flat params, the
tags that make runs easy to find, one batched metrics call per epoch, and the artifacts
(config JSON, learning-curve PNG, final weights).
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import torch

from benchmarks import checkpoints, environment, figures
from benchmarks.registry import Entry
from benchmarks.selection import apply_overrides
from resnet.data import Dataset
from resnet.data import load as load_data
from resnet.train import Diverged, EpochStats, ExecConfig, TrainConfig, train
from tracking import Tracker, names

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class DataSpec:
    source: str = "cifar10"       # cifar10 | synthetic
    data_dir: str | None = None   # None: $RESBENCH_DATA_DIR or ~/.cache/resbench/data
    limit_train: int = 0          # first N training images; 0 = all 50,000
    limit_test: int = 0           # first N test images; 0 = all 10,000
    download: bool = True         # fetch CIFAR-10 (MD5-checked) when it is missing

    def load(self) -> Dataset:
        return load_data(self.source, self.data_dir, self.limit_train, self.limit_test, self.download)


def overridden(entry: Entry, cfg: TrainConfig, spec: DataSpec) -> list[str]:
    """Fields in which this run differs from the entry as registered (limits included)."""
    diff = [k for k, v in asdict(cfg).items() if getattr(entry.train, k) != v]
    return diff + [k for k in ("limit_train", "limit_test") if getattr(spec, k)]


@lru_cache(maxsize=1)
def git_version() -> tuple[str, bool]:
    """(commit, dirty) of the checkout the code runs from; ("unknown", False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def run_name(entry: Entry, seed: int) -> str:
    return f"{entry.name} seed={seed}"


def describe(entry: Entry) -> str:
    p = entry.paper
    claim = []
    if p.accuracy is not None:
        claim.append(f"{p.accuracy:.2f}% test accuracy")
    if p.params:
        claim.append(f"{p.params} parameters")
    if p.epochs:
        claim.append(f"{p.epochs} epochs")
    return f"{entry.name}: {entry.description}" + (f" Paper: {', '.join(claim)}." if claim else "")


def build_tags(entry: Entry, cfg: TrainConfig, seed: int, data: Dataset, spec: DataSpec, device) -> dict:
    commit, dirty = git_version()
    p = entry.paper
    tags = {
        names.TAG_ENTRY: entry.name, names.TAG_GROUP: entry.group, names.TAG_SEED: seed,
        names.TAG_KIND: "train",
        names.TAG_CONFIG_HASH: entry.config_hash(cfg), names.TAG_ENTRY_HASH: entry.config_hash(),
        names.TAG_OVERRIDES: ",".join(overridden(entry, cfg, spec)),
        names.TAG_DATA_SOURCE: data.source, names.TAG_DATA_CHECKSUM: data.checksum,
        names.TAG_IDENTITY: entry.identity(cfg, data.checksum, spec.limit_train, spec.limit_test),
        names.TAG_ENTRY_VERSION: entry.version,
        names.TAG_GIT_COMMIT: commit, names.TAG_GIT_DIRTY: dirty,
        **environment.describe(device),  # hardware and software, for the report's reproducibility cards
        names.TAG_DESCRIPTION: describe(entry),
    }
    for tag, value in ((names.TAG_PAPER_ACCURACY, p.accuracy), (names.TAG_PAPER_PARAMS, p.params),
                       (names.TAG_PAPER_EPOCHS, p.epochs), (names.TAG_PAPER_TEST_LOSS, p.test_loss)):
        if value is not None:
            tags[tag] = value
    return tags


def slot_key(entry: Entry, cfg: TrainConfig, data: Dataset, spec: DataSpec, seed: int) -> str:
    """One checkpoint slot per run identity and seed: a bumped entry version never resumes old state."""
    return f"{entry.name}-{entry.identity(cfg, data.checksum, spec.limit_train, spec.limit_test)}-s{seed}"


def _open_run(tracker: Tracker, slot: checkpoints.Slot, params: dict, tags: dict, name: str):
    """The run to log into and the state to resume from: an unfinished run in the slot, or a new one."""
    run_id = slot.run_id
    if run_id and tracker.run_status(run_id) in ("RUNNING", "KILLED", "FAILED"):
        return tracker.reopen(run_id), slot.state()  # no state: it died in its first epoch
    slot.clear()
    run = tracker.start_run(name, params, tags)
    slot.bind(run.run_id)
    return run, None


def run_entry(entry: Entry, tracker: Tracker, data: Dataset, spec: DataSpec, *, seed: int = 0,
              overrides: dict | None = None, ex: ExecConfig = ExecConfig(), progress: bool | None = None,
              checkpoint_dir: str | Path | None = None) -> str:
    """Train `entry` once and log it; returns the MLflow run id.

    Every epoch is checkpointed before it is logged; a run killed part way is continued
    by the next call with the same identity, and each epoch is logged exactly once.
    Failures leave a FAILED run (Ctrl-C: KILLED), never one stuck in RUNNING.
    """
    cfg = apply_overrides(entry.train, overrides or {})
    device = ex.torch_device()
    params = {**entry.model.flat(), **asdict(cfg), **asdict(ex), "seed": seed, "data": data.source,
              "limit_train": spec.limit_train, "limit_test": spec.limit_test,
              "train_images": len(data.train_y), "test_images": len(data.test_y)}
    tags = build_tags(entry, cfg, seed, data, spec, device)
    slot = checkpoints.Slot(checkpoint_dir or checkpoints.default_dir(), slot_key(entry, cfg, data, spec, seed))
    with slot:
        run, state = _open_run(tracker, slot, params, tags, run_name(entry, seed))
        with run:
            if state is not None:  # the kill may have come between checkpoint and log
                logged = run.logged_steps("test_acc")
                for h in state["history"]:
                    if h["epoch"] not in logged:
                        run.log_metrics(EpochStats(**h).metrics(), step=h["epoch"])

            def on_epoch(stats: EpochStats, snapshot) -> None:
                slot.save(snapshot())
                run.log_metrics(stats.metrics(), step=stats.epoch)

            try:
                result = train(entry.model, cfg, data, seed=seed, ex=ex, progress=progress, on_epoch=on_epoch,
                               resume=state)
            except Diverged as e:
                run.set_tags({names.TAG_DIVERGED_EPOCH: e.epoch})
                slot.clear()  # a diverged run is rerun from scratch, not resumed into the same NaN
                raise
            _log_results(run, entry, cfg, ex, seed, data, spec, result)
        slot.clear()
        return run.run_id


def _log_results(run, entry, cfg, ex, seed, data, spec, result) -> None:
    history = pd.DataFrame([asdict(s) for s in result.history])
    last = result.history[-1]
    run.log_metrics({
        names.PARAM_COUNT: result.param_count, names.TEST_ACCURACY: last.test_acc,
        names.BEST_TEST_ACCURACY: history["test_acc"].max(), names.TEST_LOSS: last.test_loss,
        names.WALL_SECONDS: history["epoch_seconds"].sum(),
    })
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / names.ARTIFACT_CONFIG).write_text(json.dumps(
            {"entry": entry.name, "model": entry.model.flat(), "train": asdict(cfg), "exec": asdict(ex),
             "seed": seed, "data": asdict(spec) | {"source": data.source, "checksum": data.checksum}},
            indent=2))
        figures.learning_curve(history, tmp / names.ARTIFACT_CURVE, run_name(entry, seed))
        weights = tmp / Path(names.ARTIFACT_WEIGHTS).name
        torch.save({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, weights)
        run.log_artifact(tmp / names.ARTIFACT_CONFIG)
        run.log_artifact(tmp / names.ARTIFACT_CURVE)
        run.log_artifact(weights, str(Path(names.ARTIFACT_WEIGHTS).parent))
