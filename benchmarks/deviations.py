"""Every known way a resbench run departs from the authors' run, with its measured effect: one
table, as data.

The authors' run is their published code (github.com/Fieldwater/pytorch_cifar_resnet: main.py,
project1_model.py, Project1.ipynb) and what the paper says of it. Each `Deviation` says what
they did, what resbench does, the effect measured so far and the command that measured it,
or "not measured" (and then the command that would). `resbench deviations [NAME]` prints it
(for one entry, the rows that apply to it), `markdown()` renders the table docs/FIDELITY.md
keeps (a test holds the two equal), and each report card names the rows that apply.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass

from benchmarks.registry import Entry

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Deviation:
    name: str  # short, as cards list it
    authors: str  # what the authors' run did
    resbench: str  # what a resbench run does, and when
    effect: str  # the measured effect, or NOT_MEASURED (with what is known)
    command: str  # what measured it; where nothing did, what would ("would: ...")
    entries: tuple[str, ...] = ("*",)  # glob patterns of the entries it applies to

    def applies_to(self, entry: Entry) -> bool:
        return any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in self.entries)


DEVIATIONS = (
    Deviation(
        "bf16 autocast",
        "fp32 throughout",
        "bf16 autocast on CUDA with the fast pipeline (`--precision auto`, the default); "
        "BatchNorm, parameters and "
        "Adam's state stay fp32; fp32 on CPU, with `--precision fp32` and with `--pipeline "
        "reference`",
        f"{NOT_MEASURED} (no GPU run yet)",
        "would: `bash scripts/gpu_check.sh full fp32` (paper/final, seed 0, bf16 against fp32; "
        "docs/PERFORMANCE.md)",
    ),
    Deviation(
        "channels_last",
        "NCHW activations",
        "NHWC activations and weights with the fast pipeline (`--no-channels-last` for NCHW)",
        "one epoch, fp32 on CPU, lr 1e-3: losses within 1e-3 relative of NCHW (measured 1.4e-5), "
        "the CPU picking "
        "other convolution kernels; at lr 0.1 Adam grows that rounding to ~1e-3 within 8 steps, so "
        "a run drifts "
        "apart as another seed would; effect on final accuracy not measured",
        "`.venv/bin/python -m pytest -q tests/test_pipeline.py -k channels_last`",
    ),
    Deviation(
        "fused Adam",
        "`optim.Adam(lr=0.1)`, PyTorch's default implementation",
        "`Adam(fused=True)` on CUDA (the same update, one kernel); the default on CPU",
        f"{NOT_MEASURED}: rounding only, by construction",
        "would: a GPU run with `fused=False` against one with it (no switch exists: "
        "resnet/train.py make_optimizer)",
    ),
    Deviation(
        "device-side augmentation (fast pipeline)",
        "torchvision RandomCrop(32, padding=4) and RandomHorizontalFlip in 2 DataLoader workers, "
        "RandomSampler",
        "crop offsets, flips and the shuffle drawn on the device from the run's own generator: the "
        "same "
        "distribution, another random stream (`--pipeline reference` runs the authors' DataLoader)",
        "fp32 on CPU, augmentation off, the same image order, NCHW: one epoch bitwise equal to the "
        "reference "
        "pipeline (losses, accuracies, the test pass, every weight); the draws match torchvision's "
        "distribution "
        "(chi-square and two-sample tests, p > 1e-3); the other random stream's effect on accuracy "
        "is that of a "
        "change of seed, not measured apart",
        "`.venv/bin/python -m pytest -q tests/test_pipeline.py -k 'fast_equals_reference or "
        "matches_torchvision'`",
    ),
    Deviation(
        "data source",
        "torchvision's official CIFAR-10 download",
        "the official files when given (`cifar10`, MD5-verified); otherwise a rebuild from JPEG "
        "files (quality 75), "
        "named `cifar10-jpeg-rebuild` and never counted as reproduced",
        f"{NOT_MEASURED}: the JPEG round trip costs accuracy (shared/README.md: 'somewhat below'), "
        f"by how much is "
        "not measured",
        "would: the same entry and seeds on both, e.g. `resbench reproduce --only paper/final "
        "--seeds 3 "
        "--data-dir OFFICIAL` and `--data-dir REBUILD`, then `resbench report --data "
        "cifar10-jpeg-rebuild`",
    ),
    Deviation(
        "epochs: prose against code",
        "the paper: Table 1's rows ran 'around 50 epochs'; main.py at the commits that build row 3 "
        "(bc5e69a, "
        "73e5de9): `num_epoch = 100`, with CosineAnnealingLR(T_max=200), so the last rate is "
        "0.051, not 0.086",
        "Table 1's rows train exactly 50 epochs; `authors/row3-100ep` trains row 3 for 100",
        f"{NOT_MEASURED} (dcc500b, the commit the issue cites, is not in the stored snapshot and "
        f"could not be checked)",
        "would: `resbench reproduce --only table1/row3 --only authors/row3-100ep --seeds 3`, then "
        "`resbench report`",
        ("table1/*", "authors/*"),
    ),
    Deviation(
        "best or last epoch",
        "Table 1 prints each row's highest test accuracy over its epochs (§2.1: 'the highest "
        "accuracies', 'the best "
        "test accuracy we obtained'); the final model's 90.86% is its last epoch, also its best "
        "in the notebook",
        "logs both (`test_accuracy`, last epoch; `best_test_accuracy`, the maximum over epochs) "
        "and judges each claim "
        "on its own: Table 1's rows on the best epoch, paper/final on the last",
        "measured for every run: the report's final and best columns; in the authors' notebook "
        "they are equal "
        "(90.86% at epoch 79, benchmarks/reference/final-model-curve.csv)",
        "`resbench report` (columns final and best, and the judged-on column)",
    ),
    Deviation(
        "DataParallel",
        "`torch.nn.DataParallel(net)` whenever CUDA is available: on more than one GPU each "
        "replica normalises its "
        "share of the batch with its own BatchNorm statistics; how many GPUs they had is unknown",
        "one device: BatchNorm over the whole batch of 128",
        f"{NOT_MEASURED}: the authors' GPU count is unknown (on one GPU DataParallel changes "
        f"nothing)",
        "would: `--device` has no multi-GPU mode; a DataParallel run on 2+ GPUs against one device",
    ),
    Deviation(
        "loss definitions",
        "losses averaged over batches: each batch's mean, summed, divided by the number of batches "
        "(the last test "
        "batch holds 16 images, the last training batch 80)",
        "logs the test loss both ways (`test_loss` per image, `test_loss_batchmean` as the authors "
        "computed it); the "
        "report compares the paper's 0.42 (notebook 0.4283) with the batch mean; the training "
        "loss per image only",
        "measured for every run: both test losses are logged per epoch and in the report; the "
        "training loss's "
        "difference is not measured",
        "`resbench report` (columns test loss and the authors' batch mean)",
    ),
    Deviation(
        "seeds",
        "one run per configuration, unseeded",
        "every random stream seeded (`--seed`); a row is the mean over seeds with its 90% "
        "t-interval",
        "measured for every row with two or more seeds: the interval's spread is the seed-to-seed "
        "variation",
        "`resbench report` (the cards' Statistic)",
    ),
    Deviation(
        "SGD settings",
        "the paper's Figures 3-6 compare SGD with Adam 'with the same setting of learning rate'; "
        "the authors never "
        "published their SGD momentum or weight decay",
        "plain SGD: momentum 0, no weight decay, lr 0.1 and the same schedule",
        f"{NOT_MEASURED}: unknowable without the authors' settings",
        "would: `resbench run paper/sgd --set momentum=0.9` and other guesses against the paper's "
        "'below 80%'",
        ("paper/sgd",),
    ),
)


def applicable(entry: Entry) -> list[Deviation]:
    """The deviations that apply to `entry`, in table order."""
    return [d for d in DEVIATIONS if d.applies_to(entry)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(devs: tuple[Deviation, ...] | list[Deviation] = DEVIATIONS) -> str:
    """The table as Markdown, as docs/FIDELITY.md keeps it."""
    lines = [
        "| deviation | the authors' run | resbench | measured effect | measured by | applies to |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {' | '.join(_cell(v) for v in (d.name, d.authors, d.resbench, d.effect, d.command))} | "
        f"{', '.join(f'`{p}`' for p in d.entries)} |"
        for d in devs
    ]
    return "\n".join(lines) + "\n"


def text(devs: list[Deviation]) -> str:
    """The table for a terminal: one block per deviation."""
    blocks = [
        f"{d.name}\n  authors:  {d.authors}\n  resbench: {d.resbench}\n  effect:   {d.effect}\n"
        f"  command:  {d.command}"
        for d in devs
    ]
    return "\n\n".join(blocks) + "\n"


def records(devs: list[Deviation]) -> list[dict]:
    return [asdict(d) for d in devs]
