"""Shared pieces of the `resbench` command line: option groups, overrides, one-line errors."""
from __future__ import annotations

import dataclasses
import sys
from functools import wraps

import click

from benchmarks.checkpoints import SlotBusy
from benchmarks.executors import ExecutorError
from benchmarks.registry import RegistryError
from resnet.data import DataError
from resnet.model import ConfigError
from resnet.train import TrainConfig
from tracking import TrackingError, names

EXPECTED = (ConfigError, DataError, RegistryError, TrackingError, SlotBusy, ExecutorError, OSError)


def one_line_errors(fn):
    """Bad input and environment problems end as `error: ...` on stderr, exit status 2."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EXPECTED as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            click.echo(f"error: {msg}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: the run is marked KILLED and keeps its last epoch; rerun to resume", err=True)
            sys.exit(130)

    return wrapper


def _coerce(field: dataclasses.Field, raw: str):
    kind = field.type
    try:
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        return {"int": int, "float": float, "str": str}[kind](raw)
    except ValueError:
        raise click.BadParameter(f"{field.name} expects {kind}, got {raw!r}", param_hint="--set") from None


def parse_sets(pairs: tuple[str, ...]) -> dict:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in fields:
            raise click.BadParameter(f"{pair!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}",
                                     param_hint="--set")
        out[key] = _coerce(fields[key], raw)
    return out


def tracking_options(fn):
    fn = click.option("--tracking-uri", default=None, envvar="MLFLOW_TRACKING_URI",
                      help=f"MLflow store or server [default: {names.DEFAULT_URI}].")(fn)
    return click.option("--experiment", default=names.DEFAULT_EXPERIMENT, show_default=True,
                        help="MLflow experiment name.")(fn)


def data_options(fn):
    for opt in reversed([
        click.option("--data", "data_source", type=click.Choice(["cifar10", "synthetic"]), default="cifar10",
                     show_default=True, help="cifar10 (downloaded if missing) or generated test data."),
        click.option("--data-dir", envvar="RESBENCH_DATA_DIR", default=None,
                     help="Folder holding cifar-10-batches-py/ [default: ~/.cache/resbench/data]."),
        click.option("--download/--no-download", default=True, show_default=True,
                     help="Download CIFAR-10 (MD5-checked) when it is missing."),
        click.option("--limit-train", type=click.IntRange(min=1), default=None, help="Use the first N training images."),
        click.option("--limit-test", type=click.IntRange(min=1), default=None, help="Use the first N test images."),
    ]):
        fn = opt(fn)
    return fn


def exec_options(fn):
    for opt in reversed([
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--pipeline", type=click.Choice(["fast", "reference"]), default="fast", show_default=True,
                     help="Device-resident input pipeline, or the authors' DataLoader."),
        click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
                     help="auto: bf16 autocast on CUDA with the fast pipeline, fp32 otherwise."),
        click.option("--compile/--no-compile", default=False, show_default=True,
                     help="Compile the step: whole-step CUDA graphs on CUDA (fast pipeline, Adam), "
                          "else torch.compile; see docs/PERFORMANCE.md."),
        click.option("--deterministic", is_flag=True, help="Deterministic kernels: bitwise-repeatable runs and resumes."),
        click.option("--checkpoint-dir", envvar="RESBENCH_CHECKPOINT_DIR", default=None,
                     help="Where runs keep per-epoch checkpoints for resuming [default: .resbench/checkpoints]."),
    ]):
        fn = opt(fn)
    return fn


def variant_options(fn):
    """The overrides a report or reproduction is about: the same for every entry."""
    for opt in reversed([
        click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override every entry's epochs."),
        click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
                     help="Override a training field of every entry, e.g. --set lr=0.01."),
    ]):
        fn = opt(fn)
    return fn


def _overrides(epochs, sets) -> dict:
    overrides = parse_sets(sets)
    if epochs is not None:
        overrides["epochs"] = epochs
    return overrides
