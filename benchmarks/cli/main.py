"""The `resbench` group and the one error handler every command runs under.

Expected failures (bad input, missing or corrupt data, an unusable store, a busy checkpoint,
impossible executor options, file-system errors) print one `error: ...` line on stderr and exit
with status 2; Ctrl-C exits 130 (the run it stopped is KILLED and resumes on the next call).
A command whose runs failed says so and exits 1.
"""

from __future__ import annotations

import importlib
import re

import click

# name: (module, function, one-line help). A command's module (torch, MLflow, pandas) is imported
# only when that command runs or shows its own help, so `resbench --help` answers at once;
# tests/test_tracking_scale.py checks each line against the command's docstring.
COMMANDS = {
    "check": (
        "benchmarks.cli.measure",
        "check_cmd",
        "Pre-flight: build each entry NAME (or --all), compare its "
        "parameter count with the paper's print, run one training and one test batch of generated "
        "data on the "
        "device, and estimate the full run's wall time from a few timed steps.",
    ),
    "compare": (
        "benchmarks.cli.compare",
        "compare",
        "Is one row better than another, and did a change move any row?",
    ),
    "deviations": (
        "benchmarks.cli.browse",
        "deviations",
        "Every known way a run departs from the authors' run, "
        "with its measured effect and the command that measured it, or \"not measured\".",
    ),
    "list": (
        "benchmarks.cli.catalog",
        "list_cmd",
        "Every registered entry: architecture, parameters, FLOPs and the paper's figures.",
    ),
    "report": (
        "benchmarks.cli.browse",
        "report",
        "Regenerate Table 1 from the runs in MLflow, beside what the paper printed.",
    ),
    "reproduce": (
        "benchmarks.cli.runs",
        "reproduce",
        "Train every entry and seed not yet finished in this configuration, then write the report.",
    ),
    "run": (
        "benchmarks.cli.runs",
        "run",
        "Train each entry NAME (names or globs such as 'table1/*') and log it to MLflow.",
    ),
    "speed": (
        "benchmarks.cli.measure",
        "speed",
        "Time training steps and a test pass of NAME per pipeline, print "
        "the table, log a speed run.",
    ),
    "sweep": (
        "benchmarks.cli.runs",
        "sweep",
        "Generate entries varying one hyperparameter at a time around BASE "
        "under a parameter budget.",
    ),
    "ui": ("benchmarks.cli.browse", "ui", "Browse the runs in the MLflow UI (runs until Ctrl-C)."),
}


def expected() -> tuple[type[Exception], ...]:
    """The failures that print one line; imported once one is raised (the command has loaded them by
    then)."""
    from benchmarks.compare.sides import CompareError
    from benchmarks.jobs.checkpoints import SlotBusy
    from benchmarks.jobs.executor import ExecutorError
    from benchmarks.registry import RegistryError
    from resnet.data import DataError
    from resnet.model import ConfigError
    from tracking.store import TrackingError

    return (
        CompareError,
        ConfigError,
        DataError,
        RegistryError,
        TrackingError,
        SlotBusy,
        ExecutorError,
        OSError,
    )


class Resbench(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, function, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), function)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, from COMMANDS' help lines: listing the commands imports none of them."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        with formatter.section("Commands"):
            formatter.write_dl(
                [
                    (name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit))
                    for name in self.list_commands(ctx)
                ]
            )

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: usage errors and exits, as click prints them
        except KeyboardInterrupt:
            click.echo(
                "interrupted: the run is marked KILLED and keeps its last epoch; rerun to resume",
                err=True,
            )
            ctx.exit(130)
        except Exception as e:
            if not isinstance(e, expected()):
                raise
            from tracking.credentials import redact

            click.echo(redact(f"error: {first_line(str(e)) or type(e).__name__}"), err=True)
            ctx.exit(2)


def first_line(text: str, limit: int = 500) -> str:
    """The first non-blank line of `text`, cut at `limit` characters: read in place, so a huge
    message is never copied whole."""
    line = re.match(r"\s*([^\r\n]*)", text[: limit + 1000]).group(1).rstrip()
    return line if len(line) <= limit else line[:limit] + "..."


@click.group(cls=Resbench, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """resbench: the paper's Table 1 as benchmarks, trained and tracked in MLflow."""
