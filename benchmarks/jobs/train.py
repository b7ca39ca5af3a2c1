"""`train_job`: the one function that trains a job and logs it to MLflow as one run.

`resbench run`, `reproduce` in this process, its local child processes (`python -m benchmarks.jobs`)
and its Ray tasks all call it, so every run is opened, resumed, logged and failed the same way:
params and tags once (jobs/tags.py), one batched metrics call per epoch, then the summary metrics
and the artifacts (config.json and learning_curve.png through MLflow's log_dict/log_figure), and
last the network as the run's MLflow model. Every epoch is checkpointed (jobs/checkpoints.py)
before it is logged; a run killed part way is continued by the next call with the same run key
(benchmarks/runkey.py: its mode included), on this machine or (from the checkpoint kept in the
store) another, and never has a second unfinished run beside it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from benchmarks import collapse, registry, runkey, selection
from benchmarks.jobs import checkpoints, curve, tags
from benchmarks.jobs.spec import JobSpec
from benchmarks.registry import Entry
from benchmarks.runkey import RunKey
from resnet.config import TrainConfig
from resnet.data import Dataset
from resnet.pipeline import DeviceLoader
from resnet.train import Diverged, EpochStats, TrainResult, train
from tracking import handover, names
from tracking.credentials import redact
from tracking.runlogger import RunLogger
from tracking.store import TrackingError
from tracking.tracker import Tracker, connect


class JobFailed(RuntimeError):
    """This job failed, and only this one: its MLflow run is FAILED. The message is one line."""


def one_line(err: BaseException) -> str:
    """The error's first line, any password in a URI it quotes masked (it is shown, and tagged on
    the run)."""
    return redact((str(err).strip().splitlines() or [type(err).__name__])[0])


def train_job(spec: JobSpec, data: Dataset | None = None) -> str:
    """Train the job `spec` describes and log it; returns the MLflow run id.

    `data` is the spec's data when the caller has already loaded it (for many jobs in one
    process); otherwise it is loaded here. Errors are handled the same on every path: a store
    that fails (TrackingError) stops the caller, since nothing after it could be logged either;
    Ctrl-C (KeyboardInterrupt) marks the run KILLED and stops the caller; anything else fails
    this job alone, leaves its run FAILED (a divergence: tagged, and never resumed) and is
    raised as JobFailed, one line.
    """
    try:
        return _train(spec, data)
    except (TrackingError, JobFailed):
        raise
    except Exception as err:
        raise JobFailed(one_line(err)) from None


@contextmanager
def _uninterrupted():
    """Hold Ctrl-C back until the block is done, then deliver it.

    A SIGINT landing inside a store write can leave the store's connection unusable, so the
    run could not be marked KILLED and would stay RUNNING; held back, it lands between writes.
    """
    # signals reach the main thread only
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            # what the signal would have done (KeyboardInterrupt, as a rule), called here: a SIGINT
            # raised again through the OS is swallowed by hosts that ignore it at the C level, Ray's
            # workers among them, and ray.cancel's interrupt would be lost
            previous(signal.SIGINT, None)


def _held(write: Callable, *args, **kwargs):
    """One store write, with Ctrl-C held back until it is done (and not a moment longer)."""
    with _uninterrupted():
        return write(*args, **kwargs)


def _input_example(data: Dataset) -> np.ndarray:
    """Two images as the network takes them (the test pipeline's normalised float32 batch, N x 3 x
    32 x 32), for the logged model; a training image makes up the pair when the test set holds
    one."""
    images = np.concatenate([data.test_x[:2], data.train_x[:2]])[:2]
    labels = np.concatenate([data.test_y[:2], data.train_y[:2]])[:2]
    batch, _ = next(iter(DeviceLoader(images, labels, 2, torch.device("cpu"), train=False)))
    return batch.numpy()


def _open_run(
    tracker: Tracker,
    slot: checkpoints.Slot,
    spec: JobSpec,
    record: tags.Record,
    system_metrics: bool,
) -> tuple[RunLogger, dict | None]:
    """The run to log into and the state to resume from: the unfinished run of this key and seed
    (this machine's, or one another machine left in the store: checkpoints.resume_point), or a new
    one. Any other unfinished run of it is closed KILLED as superseded: one key and seed, one run.
    An unfinished run of the same entry and seed in another mode is left alone, and said so."""
    key = record.key
    found = key.resume_tags(spec.seed)
    run_id, state = checkpoints.resume_point(tracker, slot, found)
    if run_id is not None:
        run = tracker.reopen(run_id, system_metrics=system_metrics)
    else:
        _note_other_modes(spec, key)
        with _uninterrupted():  # the run and the slot's record of it, both or neither
            run = tracker.start_run(
                record.name,
                record.params,
                record.tags,
                source=tags.source(),
                system_metrics=system_metrics,
            )
            slot.bind(run.run_id)
    handover.supersede(
        tracker, [r for r in handover.unfinished(tracker, found) if r != run.run_id], run.run_id
    )
    return run, state


def _note_other_modes(spec: JobSpec, key: RunKey) -> None:
    """One line for each unfinished run of this entry and seed that differs from `key` in its mode
    alone: it is not resumed, this job starts its own run."""
    runs = selection.load_runs(spec.tracking_uri, spec.experiment, entries=[key.entry])
    mine = runs[
        runs["seed"].eq(spec.seed)
        & runs["status"].isin(handover.UNFINISHED)
        & ~runs["diverged"]
        & runs["superseded_by"].isna()
        & runkey.differ(runs, key).eq(frozenset({runkey.MODE}))
    ]
    for other, status in zip(mine["key"], mine["status"], strict=True):
        print(
            f"note: {spec.name}: a {other.mode.describe()} run exists ({status}); this "
            f"{key.mode.describe()} job starts its own run",
            file=sys.stderr,
            flush=True,
        )


def _train(spec: JobSpec, data: Dataset | None) -> str:
    entry = registry.get(spec.entry)
    cfg = spec.variant.train(entry)
    device = spec.ex.torch_device()
    tracker = connect(spec.tracking_uri, spec.experiment)
    data = data if data is not None else spec.data.load()
    record = tags.record(
        entry, spec, tags.DataFacts.of(data), tags.Machine.of(device), tags.git_version()
    )
    slot = checkpoints.Slot(
        spec.checkpoint_dir or checkpoints.default_dir(), record.key.slot(spec.seed)
    )
    with slot:
        # MLflow's system-metrics monitor: on by default where GPU use is worth watching
        system_metrics = (
            spec.system_metrics if spec.system_metrics is not None else device.type == "cuda"
        )
        run, state = _open_run(tracker, slot, spec, record, system_metrics)
        with run:
            # again on a resume: MLflow keeps one of each
            _held(run.log_datasets, tags.data_input(spec, data))
            accs: list[float] = []  # test accuracy per epoch, for the collapse judgement
            # epochs this run already logged: a state from the store may be older, and an epoch is
            # logged once
            logged = run.logged_steps("test_acc")
            if state is not None:  # the kill may have come between checkpoint and log
                for h in state["history"]:
                    if h["epoch"] not in logged:
                        run.log_metrics(EpochStats(**h).metrics(), step=h["epoch"])
                accs = [h["test_acc"] for h in state["history"]]
                _tag_collapse(run, accs)  # the kill may have come between an epoch's log and tag

            def on_epoch(stats: EpochStats, snapshot) -> None:
                with _uninterrupted():
                    # here, and now and then in the store for another machine
                    slot.save(snapshot(), run)
                    if stats.epoch not in logged:
                        run.log_metrics(stats.metrics(), step=stats.epoch)
                    accs.append(stats.test_acc)
                    if collapse.shape(accs) != collapse.shape(accs[:-1]):
                        _tag_collapse(run, accs)

            try:
                result = train(
                    entry.model,
                    cfg,
                    data,
                    seed=spec.seed,
                    ex=spec.ex,
                    on_epoch=on_epoch,
                    resume=state,
                    on_fallback=lambda why: _held(run.set_tags, {names.TAG_COMPILE_FALLBACK: why}),
                )
            except Diverged as e:
                run.set_tags({names.TAG_DIVERGED_EPOCH: e.epoch})
                # a diverged run is rerun from scratch, not resumed into the same NaN
                slot.clear(run)
                raise
            _tag_collapse(run, [h.test_acc for h in result.history])  # the whole curve
            # Ctrl-C between its writes: the run is KILLED
            _log_results(run, entry, cfg, spec, data, result)
            _held(run.finish, "FINISHED")
        slot.clear(run)
        return run.run_id


def _tag_collapse(run: RunLogger, accs: list[float]) -> None:
    """Tag the shape of the run's curve so far (benchmarks/collapse.py) and whether it is
    collapsed; nothing while it is shorter than K epochs. Called when the shape changes and at the
    end, so a killed run keeps the shape of its epochs so far."""
    shape_tags = collapse.tags(accs)
    if shape_tags:
        run.set_tags(shape_tags)


def _log_results(
    run: RunLogger,
    entry: Entry,
    cfg: TrainConfig,
    spec: JobSpec,
    data: Dataset,
    result: TrainResult,
) -> None:
    epochs = [asdict(s) for s in result.history]
    _held(run.log_metrics, tags.summary(result.param_count, epochs))
    config = {
        "entry": entry.name,
        "model": entry.model.flat(),
        "train": asdict(cfg),
        "exec": asdict(spec.ex),
        "seed": spec.seed,
        "data": asdict(spec.data) | {"source": data.source, "checksum": data.checksum},
    }
    _held(run.log_dict, config, names.ARTIFACT_CONFIG)
    fig = curve.learning_curve(pd.DataFrame(epochs), spec.name)
    try:
        _held(run.log_figure, fig, names.ARTIFACT_CURVE, dpi=110, bbox_inches="tight")
    finally:
        curve.close(fig)
    # last: the network as the run's MLflow model, linked to the metrics above (seconds:
    # torch.export). It is the run's one copy of the weights (its state_dict loads into
    # resnet.network.build_model). Should logging it fail, the job fails and the slot keeps the
    # last epoch's checkpoint: a slot is cleared only once its run has finished.
    _held(run.log_model, result.model, _input_example(data), step=result.history[-1].epoch)
