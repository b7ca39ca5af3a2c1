"""The variant of a command's entries: `--set FIELD=VALUE` parsing (a click ParamType checked
against TrainConfig's fields), --epochs and --limit-*, built once as a `Variant`; `checked`
applies it to the entries a command selected, once, before anything runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import click

from benchmarks.cli.group import group
from benchmarks.registry import Entry
from benchmarks.selection import Variant
from resnet.config import TrainConfig


class Assignment(click.ParamType):
    """--set FIELD=VALUE: a TrainConfig field and its value, converted to the field's type."""

    name = "FIELD=VALUE"

    def convert(self, value, param, ctx) -> tuple[str, object]:
        if isinstance(value, tuple):
            return value
        fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
        key, sep, raw = value.partition("=")
        if not sep or key not in fields:
            self.fail(
                f"{value!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}", param, ctx
            )
        kind = fields[key].type
        try:
            if kind == "bool":
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return key, raw.lower() in ("true", "1", "yes")
            return key, {"int": int, "float": float, "str": str}[kind](raw)
        except ValueError:
            self.fail(f"{key} expects {kind}, got {raw!r}", param, ctx)


def overrides_of(epochs, sets) -> dict:
    """The TrainConfig overrides of --epochs and --set."""
    return dict(sets) | ({"epochs": epochs} if epochs is not None else {})


def override_options(epochs_help: str) -> list:
    """--epochs and --set, as click options."""
    return [
        click.option("--epochs", type=click.IntRange(min=1), default=None, help=epochs_help),
        click.option(
            "--set",
            "sets",
            type=Assignment(),
            multiple=True,
            metavar="FIELD=VALUE",
            help=(
                "Override a training field of every entry, e.g. --set lr=0.01 --set optimizer=sgd."
            ),
        ),
    ]


def checked(entries: list[Entry], variant: Variant) -> list[Entry]:
    """`entries`, once `variant` is known to apply to each: a bad override (a value an entry's
    configuration refuses) is an error before anything runs."""
    for entry in entries:
        variant.train(entry)
    return entries


def limit_options(what: str) -> list:
    """--limit-train and --limit-test, as click options; `what` opens their help."""
    return [
        click.option(
            "--limit-train",
            type=click.IntRange(min=1),
            default=None,
            help=f"{what} the first N training images.",
        ),
        click.option(
            "--limit-test",
            type=click.IntRange(min=1),
            default=None,
            help=f"{what} the first N test images.",
        ),
    ]


def variant_options(limits: str = "Tabulate runs limited to") -> Callable:
    """--epochs, --set and --limit-*, as `variant`: what a table or pre-flight is about."""
    return group(
        override_options("Override every entry's epochs.") + limit_options(limits),
        lambda epochs, sets, limit_train, limit_test: {
            "variant": Variant.of(overrides_of(epochs, sets), limit_train, limit_test)
        },
    )
