"""Option groups: the decorator that adds a group of click options to a command and hands the
command what the group builds from their values, instead of the raw values."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import click


def param_names(options: list) -> list[str]:
    """The parameter names click gives `options`, read from a throwaway command they decorate."""

    def probe():
        pass

    for opt in options:
        probe = opt(probe)
    return [param.name for param in click.command()(probe).params]


def group(options: list, build: Callable[..., dict]) -> Callable:
    """A decorator adding `options` to a command, whose values `build(**values)` turns into its
    arguments."""
    names_ = param_names(options)

    def decorate(fn):
        @wraps(fn)
        def command(*args, **kwargs):
            built = build(**{n: kwargs.pop(n) for n in names_})
            return fn(*args, **kwargs, **built)

        for opt in reversed(options):
            command = opt(command)
        return command

    return decorate
