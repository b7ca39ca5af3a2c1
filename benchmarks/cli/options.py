"""The command line's shared option groups for running entries, each building its spec object once,
at the edge: `data` (DataSpec), `ex` (ExecConfig, with the options a command offers, its device
checked on this machine), the store (`tracking_uri`, `experiment`), `job` (JobSettings: all of
them plus the variant's overrides, system metrics and checkpoints) and `placement`
(ExecutorConfig). Choices come from the constants of `resnet`; the variant's own options live in
benchmarks/cli/variant.py.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from benchmarks.cli.group import group, param_names
from benchmarks.cli.variant import limit_options, override_options, overrides_of
from benchmarks.jobs.executor import KINDS, ExecutorConfig, parse_devices
from benchmarks.jobs.spec import DataSpec, JobSettings
from resnet.config import COMPILE_MODES, PIPELINES, PRECISIONS, ExecConfig
from resnet.data import SYNTHETIC
from tracking import names
from tracking.store import resolve_uri

DATA = [
    click.option(
        "--data",
        "data_source",
        type=click.Choice(["cifar10", SYNTHETIC]),
        default="cifar10",
        show_default=True,
        help="cifar10 (downloaded if missing) or generated test data.",
    ),
    click.option(
        "--data-dir",
        envvar="RESBENCH_DATA_DIR",
        default=None,
        help="Folder holding cifar-10-batches-py/ [default: ~/.cache/resbench/data].",
    ),
    click.option(
        "--download/--no-download",
        default=True,
        show_default=True,
        help="Download CIFAR-10 (MD5-checked) when it is missing.",
    ),
    *limit_options("Use"),
]


def _data(data_source, data_dir, download, limit_train, limit_test) -> DataSpec:
    return DataSpec(data_source, data_dir, limit_train or 0, limit_test or 0, download)


data_options = group(DATA, lambda **raw: {"data": _data(**raw)})

# ExecConfig's fields as options; a command offers those it uses, with its own help where it
# differs.
EXEC = {
    "device": lambda h: click.option(
        "--device", default="auto", show_default=True, help=h or "auto, cpu, cuda or cuda:N."
    ),
    "pipeline": lambda h: click.option(
        "--pipeline",
        type=click.Choice(PIPELINES),
        default="fast",
        show_default=True,
        help=h or "Device-resident input pipeline, or the authors' DataLoader.",
    ),
    "precision": lambda h: click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help=h
        or "auto: bf16 autocast on CUDA with the fast pipeline, fp32 otherwise; fp32 is IEEE "
        "float32, tf32 lets CUDA convolutions and matmuls use TensorFloat-32.",
    ),
    "compile": lambda h: click.option(
        "--compile/--no-compile",
        default=False,
        show_default=True,
        help=h
        or "Compile the step: whole-step CUDA graphs on CUDA (fast pipeline, "
        "Adam), else torch.compile; see docs/PERFORMANCE.md.",
    ),
    "compile_mode": lambda h: click.option(
        "--compile-mode",
        type=click.Choice(COMPILE_MODES),
        default="auto",
        show_default=True,
        help=h or "auto: cudagraph on CUDA, inductor elsewhere; see docs/PERFORMANCE.md.",
    ),
    "channels_last": lambda h: click.option(
        "--channels-last/--no-channels-last",
        default=True,
        show_default=True,
        help=h or "NHWC activations in the fast pipeline.",
    ),
    "num_workers": lambda h: click.option(
        "--workers",
        "num_workers",
        type=click.IntRange(min=0),
        default=2,
        show_default=True,
        help=h or "Reference pipeline's DataLoader workers (the authors used 2).",
    ),
    "deterministic": lambda h: click.option(
        "--deterministic",
        is_flag=True,
        help=h or "Deterministic kernels: bitwise-repeatable runs and resumes.",
    ),
}
RUN_EXEC = ("device", "pipeline", "precision", "compile", "deterministic")


def _here(ex: ExecConfig) -> ExecConfig:
    """`ex`, once its device is known to be there on this machine (a CUDA GPU for cuda)."""
    ex.torch_device()
    return ex


def exec_options(
    fields: tuple[str, ...] = RUN_EXEC, fixed: dict | None = None, **helps: str
) -> Callable:
    """The ExecConfig `fields` as options (help overridden by `helps`), plus `fixed` values, as
    `ex`, for this machine's device."""
    return group(
        [EXEC[f](helps.get(f)) for f in fields],
        lambda **raw: {"ex": _here(ExecConfig(**raw, **(fixed or {})))},
    )


TRACKING = [
    click.option(
        "--tracking-uri",
        default=None,
        envvar="MLFLOW_TRACKING_URI",
        help=f"MLflow store or server [default: {names.DEFAULT_URI}].",
    ),
    click.option(
        "--experiment",
        default=names.DEFAULT_EXPERIMENT,
        show_default=True,
        help="MLflow experiment name.",
    ),
]
tracking_options = group(
    TRACKING,
    lambda tracking_uri, experiment: {
        "tracking_uri": resolve_uri(tracking_uri),
        "experiment": experiment,
    },
)
SYSTEM_METRICS = click.option(
    "--system-metrics/--no-system-metrics",
    default=None,
    help="Log CPU, memory and GPU use (MLflow's system metrics) [default: on for CUDA runs].",
)
CHECKPOINTS = click.option(
    "--checkpoint-dir",
    envvar="RESBENCH_CHECKPOINT_DIR",
    default=None,
    help="Where runs keep per-epoch checkpoints for resuming [default: .resbench/checkpoints].",
)


def job_options(
    exec_fields: tuple[str, ...] = RUN_EXEC,
    checkpoints: bool = True,
    epochs_help: str = "Override every entry's epochs.",
    here: bool = True,
) -> Callable:
    """Everything the jobs of a command share, as `job` (JobSettings); with `here`, the jobs run on
    this machine and its device is checked. A command whose jobs may run elsewhere (Ray) checks
    the device itself once it knows where they run."""
    ex = [EXEC[f](None) for f in exec_fields]
    options = (
        override_options(epochs_help)
        + DATA
        + ex
        + ([CHECKPOINTS] if checkpoints else [])
        + [SYSTEM_METRICS]
        + TRACKING
    )

    def build(**raw) -> dict:
        data = _data(**{n: raw.pop(n) for n in param_names(DATA)})
        overrides = overrides_of(raw.pop("epochs"), raw.pop("sets"))
        store = {
            "tracking_uri": resolve_uri(raw.pop("tracking_uri")),
            "experiment": raw.pop("experiment"),
        }
        checkpoint_dir, system_metrics = raw.pop("checkpoint_dir", None), raw.pop("system_metrics")
        ex = ExecConfig(**raw)
        return {
            "job": JobSettings.of(
                overrides,
                data=data,
                ex=_here(ex) if here else ex,
                checkpoint_dir=checkpoint_dir,
                system_metrics=system_metrics,
                **store,
            )
        }

    return group(options, build)


EXECUTOR = [
    click.option(
        "--jobs",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help=(
            "Runs at once, as child processes (several runs can share one GPU); per GPU with "
            "--devices."
        ),
    ),
    click.option(
        "--executor",
        "kind",
        type=click.Choice(KINDS),
        default="local",
        show_default=True,
        help="local: child processes on this machine; ray: one Ray task per run.",
    ),
    click.option(
        "--devices",
        default=None,
        metavar="0,1,...",
        help="local: spread runs over these CUDA GPUs, --jobs at a time on each.",
    ),
    click.option(
        "--address",
        default=None,
        help="ray: an existing cluster ('auto', or ray://HOST:10001) [default: start a local Ray].",
    ),
    click.option(
        "--gpus-per-run",
        type=click.FloatRange(0, 1, min_open=True),
        default=1.0,
        show_default=True,
        help="ray: share of a GPU each run asks for (0.25: four small runs per GPU).",
    ),
    click.option(
        "--cpus-per-run",
        type=click.FloatRange(0, min_open=True),
        default=1.0,
        show_default=True,
        help="ray: CPUs each run asks for.",
    ),
    click.option(
        "--max-retries",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        help="ray: resubmissions of a run whose worker died (it resumes from its checkpoint "
        "when it lands on the same machine).",
    ),
]
executor_options = group(
    EXECUTOR,
    lambda devices, **raw: {"placement": ExecutorConfig(devices=parse_devices(devices), **raw)},
)
