"""How resbench's numbers read beside the paper's: parameter counts against the paper's print,
durations.

Shared by the pre-flight (`resbench check`) and the report, which both show them, so neither
reaches into the other.
"""

from __future__ import annotations

import pandas as pd


def params_note(printed: str | None, computed: int) -> str:
    """Empty when the computed count agrees with the print at the print's own precision."""
    if not printed:
        return ""
    text = printed.strip()
    if text.endswith("M"):
        digits = len(text[:-1].partition(".")[2])
        value = float(text[:-1])
        if round(computed / 1e6, digits) == value:
            return ""
        shown = f"{computed / 1e6:.{digits}f}M"
        if int(computed / 10 ** (6 - digits)) / 10**digits == value:
            return f"computed {computed:,} is {shown}; the paper's {text} truncates it"
        return f"computed {computed:,} ({shown}) disagrees with the paper's {text}"
    if int(text.replace(",", "")) == computed:
        return ""
    return f"computed {computed:,} disagrees with the paper's {text}"


def params_verdict(printed: str | None, computed: int) -> str:
    """matches | matches (truncated print) | differs | not printed."""
    if not printed:
        return "not printed"
    note = params_note(printed, computed)
    return (
        "matches" if not note else "matches (truncated print)" if "truncates" in note else "differs"
    )


def duration(seconds) -> str:
    """Seconds as people read them: 45 s, 12.5 min, 3.2 h; "—" for none."""
    if seconds is None or pd.isna(seconds):
        return "—"
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.1f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )
