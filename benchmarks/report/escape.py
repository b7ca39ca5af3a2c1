"""Store values as text in each report format.

Run names, tags and params come from a store that anyone with edit rights on a shared server can
write, so the report never lets one act as markup, a link or a formula: `md_text` escapes HTML's
characters and Markdown's own and folds the newlines and pipes that would break a table,
`csv_text` quotes a text cell that a spreadsheet would take for a formula, and `safe_url` lets a
link point only at an http(s) URL.
"""

from __future__ import annotations

import html
import re
import urllib.parse


def safe_url(url) -> str | None:
    """`url` as a link target when it is an http(s) URL, with every character that could end the
    link or the attribute quoted; None (no link) otherwise, `javascript:` and `data:` included."""
    if not url:
        return None
    url = str(url).strip()
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return urllib.parse.quote(url, safe="/:?#@!$&*+,;=%~") if scheme in ("http", "https") else None


_MD_ESCAPE = re.compile(r"([\\`*_\[\]|~#])")


def md_text(value) -> str:
    """`value` as Markdown that renders as that text: on one line, HTML's <, > and & as entities
    (no tags, no autolinks), and Markdown's emphasis, code, link, heading and table characters
    backslash-escaped."""
    text = " ".join(str(value).split())
    return _MD_ESCAPE.sub(r"\\\1", html.escape(text, quote=False))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value):
    """A text cell a spreadsheet would read as a formula, with a ' in front; anything else as it
    is (numbers, negative ones included, are numbers)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value
