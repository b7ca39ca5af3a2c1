"""`resbench list`: the registered entries, their architecture, budget columns and the paper's
figures.

`describe_entry` gives an entry's row as plain values. A module of its own so that listing
imports the registry and pandas only: no MLflow, report or jobs (parameters and FLOPs are
formulas over each entry's config, resnet/model.py and flops.py).
"""

from __future__ import annotations

import json

import click

from benchmarks import registry
from benchmarks.registry import BUDGET, Entry
from resnet.flops import flops_per_image


def describe_entry(e: Entry) -> dict:
    """One entry as plain values: architecture, budget columns, recipe and the paper's figures."""
    m, flops = e.model, flops_per_image(e.model)
    return {
        "name": e.name,
        "group": e.group,
        "N": m.layers,
        "blocks": list(m.blocks),
        "channels": list(m.channels),
        "F": list(m.conv_kernel),
        "K": list(m.skip_kernel),
        "P": m.pool_kernel,
        "optimizer": e.train.optimizer,
        "epochs": e.train.epochs,
        "params": e.param_count,
        "fits_5M": e.param_count <= BUDGET,
        "mflops": round(flops.forward / 1e6, 1),
        "train_gflops": round(flops.train / 1e9, 3),
        "paper_params": e.paper.params,
        "paper_acc": e.paper.accuracy,
        "paper_acc_printed": e.paper.accuracy_text,
        "paper_metric": e.paper.metric,
        "description": e.description,
    }


@click.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--max-params",
    type=click.FloatRange(min=0),
    default=None,
    help="Only entries with at most this many parameters, e.g. 5e6 (the paper's budget).",
)
@click.option("--group", "groups", multiple=True, help="Only entries of this group (repeatable).")
def list_cmd(fmt, max_params, groups):
    """Every registered entry: architecture, parameters, FLOPs and the paper's figures."""
    import pandas as pd

    rows = [
        r
        for r in (describe_entry(e) for e in registry.entries())
        if (max_params is None or r["params"] <= max_params)
        and (not groups or r["group"] in groups)
    ]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no entries match")
        return
    df = pd.DataFrame(rows).drop(columns=["description", "group", "train_gflops", "paper_acc"])
    for col in ("blocks", "channels", "F", "K"):
        df[col] = df[col].map(
            lambda v, c=col: (
                ",".join(map(str, v))
                if len(set(v)) > 1 or c in ("blocks", "channels")
                else str(v[0])
            )
        )
    df["params"] = df["params"].map("{:,}".format)
    df["fits_5M"] = df["fits_5M"].map({True: "yes", False: "NO"})
    printed = df.pop("paper_acc_printed")  # as the paper printed it: 84.8%, 89.10%
    df.insert(len(df.columns) - 1, "paper_acc", printed.map(lambda v: f"{v}%" if v else ""))
    df = df.fillna("")
    click.echo(df.to_string(index=False))
