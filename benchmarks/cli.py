"""The `resbench` command line (click). Known failures print one line and exit non-zero."""
from __future__ import annotations

import dataclasses
import json
import sys
from functools import wraps

import click
import pandas as pd

from benchmarks import registry
from benchmarks.registry import RegistryError
from benchmarks.runner import DataSpec, run_entry
from resnet.data import DataError
from resnet.model import ConfigError
from resnet.train import Diverged, ExecConfig, TrainConfig
from tracking import TrackingError, connect, names

EXPECTED = (ConfigError, DataError, RegistryError, TrackingError, OSError)


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
        click.option("--compile/--no-compile", default=False, show_default=True, help="torch.compile the model."),
    ]):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """resbench: the paper's Table 1 as benchmarks, trained and tracked in MLflow."""


@main.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@one_line_errors
def list_cmd(fmt):
    """Every registered entry with its architecture and parameter count."""
    rows = []
    for e in registry.entries():
        m = e.model
        rows.append({
            "name": e.name, "N": m.layers, "blocks": list(m.blocks), "channels": list(m.channels),
            "F": list(m.conv_kernel), "K": list(m.skip_kernel), "P": m.pool_kernel, "epochs": e.train.epochs,
            "params": e.param_count, "paper_params": e.paper.params, "paper_acc": e.paper.accuracy,
            "description": e.description,
        })
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    df = pd.DataFrame(rows).drop(columns="description")
    for col in ("blocks", "channels", "F", "K"):
        df[col] = df[col].map(lambda v: ",".join(map(str, v)) if len(set(v)) > 1 or col in ("blocks", "channels")
                              else str(v[0]))
    df["params"] = df["params"].map("{:,}".format)
    df["paper_acc"] = df["paper_acc"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}%")
    df = df.fillna("")
    click.echo(df.to_string(index=False))


@main.command()
@click.argument("names_", metavar="NAME...", nargs=-1, required=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the entry's epochs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
              help="Override any training field, e.g. --set lr=0.01 --set optimizer=sgd.")
@data_options
@exec_options
@tracking_options
@one_line_errors
def run(names_, epochs, seed, sets, data_source, data_dir, download, limit_train, limit_test, device, pipeline,
        precision, compile, tracking_uri, experiment):
    """Train each entry NAME (names or globs such as 'table1/*') and log it to MLflow."""
    overrides = parse_sets(sets)
    if epochs is not None:
        overrides["epochs"] = epochs
    chosen = registry.select(names_)
    for e in chosen:  # check every override before anything trains
        dataclasses.replace(e.train, **overrides)
    ex = ExecConfig(pipeline=pipeline, precision=precision, compile=compile, device=device)
    ex.torch_device()
    spec = DataSpec(data_source, data_dir, limit_train or 0, limit_test or 0, download)
    tracker = connect(tracking_uri, experiment)
    data = spec.load()
    failed = 0
    for e in chosen:
        click.echo(f"{e.name} seed={seed}: training on {data.source} ({len(data.train_y)} train images)", err=True)
        try:
            run_id = run_entry(e, tracker, data, spec, seed=seed, overrides=overrides, ex=ex)
        except Diverged as err:
            failed += 1
            click.echo(f"error: {e.name}: {err}; run marked FAILED", err=True)
            continue
        click.echo(f"{e.name} seed={seed}: finished run {run_id}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
