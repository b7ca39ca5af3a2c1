"""The `resbench` group and the one error handler every command runs under.

Expected failures (bad input, missing or corrupt data, an unusable store, a busy checkpoint,
impossible executor options, file-system errors) print one `error: ...` line on stderr and exit
with status 2; Ctrl-C exits 130 (the run it stopped is KILLED and resumes on the next call).
A command whose runs failed says so and exits 1.
"""
from __future__ import annotations

import click

from benchmarks.cli import browse, measure, runs
from benchmarks.jobs.checkpoints import SlotBusy
from benchmarks.jobs.executor import ExecutorError
from benchmarks.registry import RegistryError
from resnet.data import DataError
from resnet.model import ConfigError
from tracking import TrackingError
from tracking.credentials import redact

EXPECTED = (ConfigError, DataError, RegistryError, TrackingError, SlotBusy, ExecutorError, OSError)


class Resbench(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EXPECTED as e:
            click.echo(redact(f"error: {(str(e).strip().splitlines() or [type(e).__name__])[0]}"), err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: the run is marked KILLED and keeps its last epoch; rerun to resume", err=True)
            ctx.exit(130)


@click.group(cls=Resbench, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """resbench: the paper's Table 1 as benchmarks, trained and tracked in MLflow."""


for command in (browse.list_cmd, runs.run, browse.report, runs.reproduce, browse.ui, measure.speed, runs.sweep,
                measure.check_cmd, browse.deviations):
    main.add_command(command)
