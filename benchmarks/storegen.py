"""Synthetic tracking stores: N finished training runs shaped like the ones `resbench run` writes.

By default each run is what `resbench run ENTRY --data synthetic --epochs 80 --limit-train 64
--limit-test 32 --seed S` records on a GPU (bf16, the fast pipeline, not compiled), so `report`
and `reproduce` with those flags count it; its name, params and tags come from the same
function as a real run's (benchmarks/jobs/tags.py's `record`).

For benchmarks and tests of the reading side (`list`, `report`, `reproduce`'s plan) at scale,
without training anything. Each run carries the tags and params a real run records (entry,
identity, config hash, data source and checksum, machine and software) and a deterministic,
plausible learning curve of the per-epoch metrics, written through `tracking` with one
`log_batch` per 1,000 values; no artifacts. Runs go round-robin over the chosen entries with
one seed per lap, so every run is a distinct (entry, seed) that a report counts. `StoreSpec.fates`
gives runs other fates (a slow start, a collapse, a divergence, a kill) for tests of how the report
accounts for them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from benchmarks import collapse, registry
from benchmarks.jobs import tags
from benchmarks.jobs.spec import DataSpec, JobSpec
from benchmarks.registry import Entry
from resnet.config import ExecConfig
from tracking import names
from tracking.tracker import connect

GROUPS = ("table1", "paper")  # the paper's own entries: Table 1 and the final model's figures
CIFAR10_CHECKSUM = "c58f30108f718f92721af3b95e74349a"  # stands in for the official files' digest
# What a run on one GPU machine would record about itself (environment.describe's tags).
MACHINE = {
    names.TAG_DEVICE: "NVIDIA H100 80GB HBM3",
    names.TAG_GPU_DRIVER: "570.86.15",
    names.TAG_GPU_COUNT: "1",
    names.TAG_CUDA: "13.0",
    names.TAG_CUDNN: "9.24.0",
    names.TAG_CPU: "AMD EPYC",
    names.TAG_PLATFORM: "Linux-6.8-x86_64-with-glibc2.36",
    names.TAG_PYTHON: "3.11.7",
    names.TAG_TORCH: "2.14.1+cu130",
    names.TAG_TORCHVISION: "0.29.1",
    names.TAG_MLFLOW: "3.17.2",
}
COMMIT = ("0" * 40, False)  # the code version the runs record (commit, dirty)


@dataclass(frozen=True)
class StoreSpec:
    """What to generate: `runs` runs of `epochs` epochs (None: each entry's own) over `entries`."""

    runs: int
    epochs: int | None = 80
    entries: tuple[str, ...] = ()  # entry names; () = every entry of GROUPS, in registry order
    data: str = "synthetic"  # or "cifar10" (with CIFAR10_CHECKSUM)
    limit_train: int = 64
    limit_test: int = 32
    seed: int = 0  # of the curves' noise
    precision: str = "auto"  # --precision of the runs (auto: bf16, on the GPU they record)
    fates: tuple[str, ...] = ()  # run i's fate, one of FATES; runs past the end take off
    first_seed: int = 0  # the first lap's seed (a second call with a higher one writes reruns)

    def __post_init__(self):
        unknown = set(self.fates) - set(FATES)
        if unknown:
            raise ValueError(f"fates: {sorted(unknown)[0]!r} is not one of {', '.join(FATES)}")

    @property
    def checksum(self) -> str:
        """The data checksum `resnet.data.load` gives these flags (generated data: its settings)."""
        if self.data == "synthetic":
            return f"synthetic-{self.limit_train or 50_000}-{self.limit_test or 10_000}-0"
        return CIFAR10_CHECKSUM


def chosen(spec: StoreSpec) -> list[Entry]:
    return (
        registry.select(spec.entries)
        if spec.entries
        else [e for e in registry.entries() if e.group in GROUPS]
    )


def job(entry: Entry, seed: int, spec: StoreSpec) -> JobSpec:
    """The job `resbench run` would train for `entry` at `seed` with the spec's flags, on a GPU."""
    return JobSpec.of(
        {"epochs": spec.epochs} if spec.epochs is not None else None,
        entry=entry.name,
        seed=seed,
        data=DataSpec(spec.data, limit_train=spec.limit_train, limit_test=spec.limit_test),
        ex=ExecConfig(device="cuda", precision=spec.precision),
    )


def run_record(entry: Entry, seed: int, spec: StoreSpec) -> tags.Record:
    """The name, params and tags `resbench run` logs for `entry` at `seed` with the spec's flags
    (benchmarks/jobs/tags.py's record, on the GPU machine MACHINE describes)."""
    facts = tags.DataFacts(
        spec.data, spec.checksum, spec.limit_train or 50_000, spec.limit_test or 10_000
    )
    return tags.record(entry, job(entry, seed, spec), facts, tags.Machine("cuda", MACHINE), COMMIT)


# What becomes of a generated run: a curve shape (benchmarks/collapse.py), or a run that stops
# halfway, diverged (FAILED and tagged, as train_job leaves one) or killed.
FATES = (
    collapse.TOOK_OFF,
    collapse.SLOW_START,
    collapse.NEVER,
    collapse.FELL,
    "diverged",
    "killed",
)


def _level(fate: str, e: int, epochs: int) -> float:
    """How far (0 to 1) a run of this fate has risen from chance towards its target at epoch e:
    a slow start sits at chance for its first third, a fall to chance spends its last third
    there, a run that never took off stays there."""
    third = max(1, epochs // 3)
    if fate == collapse.NEVER or (fate == collapse.FELL and e >= epochs - third):
        return 0.0
    if fate == collapse.SLOW_START:
        if e < third:
            return 0.0
        e -= third
    return 1 - math.exp(-(e + 1) / (epochs / 5))


def curve(
    epochs: int, target: float, images: int, rng: random.Random, fate: str = collapse.TOOK_OFF
) -> list[dict[str, float]]:
    """The per-epoch metrics (names.EPOCH_METRICS) rising towards `target`% test accuracy as
    `fate` has it (FATES); lr cosine from 0.1."""
    rows = []
    for e in range(epochs):
        rise = _level(fate, e, epochs)
        test_acc = collapse.CHANCE + (target - collapse.CHANCE) * rise + rng.gauss(0, 0.4)
        train_acc = min(99.9, test_acc + 8 * rise + rng.gauss(0, 0.3))
        seconds = 11.0 + rng.gauss(0, 0.2)
        test_loss = 2.3 * (1 - rise) + 0.3 + abs(rng.gauss(0, 0.02))
        rows.append(
            {
                "train_loss": 2.3 * (1 - rise) + 0.05 + abs(rng.gauss(0, 0.01)),
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "lr": 0.05 * (1 + math.cos(math.pi * e / 200)),
                "epoch_seconds": seconds,
                "images_per_second": images / seconds,
                names.TEST_LOSS_BATCHMEAN: test_loss * 1.01,
            }
        )
    return rows


def _write(run, entry: Entry, history: list[dict[str, float]], fate: str) -> None:
    """Log one run as train_job leaves a run of this fate: its curve and shape tags; a diverged
    or killed one stops halfway, FAILED (tagged diverged) or KILLED, with no summary metrics."""
    if fate in ("diverged", "killed"):
        history = history[: max(1, len(history) // 2)]
    run.log_epochs(history)
    shape = collapse.tags([h["test_acc"] for h in history])
    if shape:
        run.set_tags(shape)
    if fate == "diverged":
        epoch = len(history)
        run.set_tags(
            {
                names.TAG_DIVERGED_EPOCH: epoch,
                names.TAG_FAILURE: f"Diverged: training diverged at epoch {epoch}: train loss nan",
            }
        )
        run.finish("FAILED")
    elif fate == "killed":
        run.finish("KILLED")
    else:
        run.log_metrics(tags.summary(entry.param_count, history))


def generate(uri: str, experiment: str, spec: StoreSpec, log=None) -> list[str]:
    """Write spec.runs runs into `experiment` at `uri` (created if needed), finished unless
    spec.fates stops them; their run ids."""
    tracker, entries, rng = connect(uri, experiment), chosen(spec), random.Random(spec.seed)
    ids = []
    for i in range(spec.runs):
        entry, seed = entries[i % len(entries)], spec.first_seed + i // len(entries)
        fate = spec.fates[i] if i < len(spec.fates) else collapse.TOOK_OFF
        rec = run_record(entry, seed, spec)
        history = curve(
            int(rec.params["epochs"]),
            entry.paper.accuracy or 88.0,
            rec.params["train_images"],
            rng,
            fate,
        )
        with tracker.start_run(rec.name, rec.params, rec.tags) as run:
            _write(run, entry, history, fate)
        ids.append(run.run_id)
        if log and (i + 1) % 100 == 0:
            log(f"{i + 1}/{spec.runs} runs written")
    return ids
