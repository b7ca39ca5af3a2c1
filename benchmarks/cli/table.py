"""The options that say which table `report` builds, built once into a `TableRequest`.

`table_options` adds --epochs/--set/--limit-* (the variant, from `variant_options`), --data,
--group, --rank, the mode to count (--precision, --pipeline, --compile), --seeds and --ui-url to
a command, and hands it `table`: the frozen TableRequest (benchmarks/report/table.py) they make.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import wraps

import click

from benchmarks.cli.group import group
from benchmarks.cli.variant import variant_options
from benchmarks.report.table import TableRequest
from resnet.config import PIPELINES

TABLE = [
    click.option(
        "--data",
        "data_source",
        default="cifar10",
        show_default=True,
        help="Data source of the runs to tabulate: cifar10 (the official files, else a rebuilt "
        "copy), synthetic, or a source name such as cifar10-jpeg-rebuild.",
    ),
    click.option(
        "--group", default=None, help="Only the entries of this group (a sweep's group, say)."
    ),
    click.option("--rank", is_flag=True, help="Sort the rows by measured accuracy, best first."),
    click.option(
        "--precision",
        default=None,
        help="Count runs that ran in this precision (fp32, bf16) [default: the mode with the most "
        "finished runs].",
    ),
    click.option(
        "--pipeline",
        type=click.Choice(PIPELINES),
        default=None,
        help="Count runs of this input pipeline [default: as --precision says].",
    ),
    click.option(
        "--compile",
        "compiled",
        default=None,
        metavar="MODE",
        help="Count runs whose step this compiled: off, cudagraph, inductor, ... "
        "[default: as --precision says].",
    ),
    click.option(
        "--seeds",
        type=click.IntRange(min=1),
        default=None,
        help="Seeds planned per entry (0..N-1, as `reproduce --seeds N`): a seed with no run "
        "reads 'never started' [default: the seeds that ran].",
    ),
    click.option(
        "--ui-url",
        default=None,
        metavar="URL",
        help="MLflow UI to link runs into, e.g. http://127.0.0.1:5000 from `resbench ui` "
        "[default: the tracking URI when it is an http(s) server].",
    ),
]


def _request(data_source, group, rank, precision, pipeline, compiled, seeds, ui_url) -> dict:
    mode = (("precision", precision), ("pipeline", pipeline), ("compile", compiled))
    return {
        "table": TableRequest(
            data=data_source,
            group=group,
            rank=rank,
            mode=tuple((k, v) for k, v in mode if v is not None),
            planned=seeds,
            ui_url=ui_url,
        )
    }


def table_options(limits: str = "Tabulate runs limited to") -> Callable:
    """The variant's options and TABLE's, as `table` (TableRequest, its variant included)."""

    def decorate(fn):
        @wraps(fn)
        def command(*args, variant, table, **kwargs):
            return fn(*args, **kwargs, table=dataclasses.replace(table, variant=variant))

        return variant_options(limits)(group(TABLE, _request)(command))

    return decorate
