"""The deviation table (benchmarks/deviations.py) rendered: Markdown as docs/FIDELITY.md keeps
it, a terminal's text, and JSON-ready records."""

from __future__ import annotations

from dataclasses import asdict

from benchmarks.deviations import DEVIATIONS, Deviation


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
        f"{d.scope} |"
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
    """The rows as dicts of plain values (`when` as what the table says of it)."""
    return [{**asdict(d), "when": d.when[0] if d.when else None} for d in devs]
