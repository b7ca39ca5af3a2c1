"""Secrets of the tracking store: kept out of everything shown, and handed to workers in the open
nowhere.

`redact` masks the password in any URI inside a text (`postgresql://u:pw@db/x`, `http://u:pw@host`,
`http://alice@lab.org:pw@host`, `?password=...`): reports, run links, error messages and logs show
its result, never the raw URI;
`printed_redacted` does it to what MLflow itself prints.
`Credentials` carries the driver's MLflow credentials and TLS settings to a Ray task as an argument
whose repr names the variables but never their values; the task sets them in its environment for
the job and puts the previous values back afterwards. Ray's `runtime_env` would write them into
its own log files, readable by every user of the machine.
"""

from __future__ import annotations

import io
import os
import re
import sys
import urllib.parse
from contextlib import contextmanager, redirect_stdout

# what MLflow's client reads to reach an authenticated (and TLS) server
FORWARDED = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)
MASK = "***"
# scheme://... up to the next space: a URI (or the start of one) inside a message
_URI = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://(?P<rest>\S+)")
# SQLAlchemy's reading of a database URI: the user up to a ':' (an '@' allowed in it), the password
# up to the next '@' (a '/' allowed in it)
_DB_USERINFO = re.compile(r"[^:/\s]*:(?P<password>[^@\s]*)@")
# libpq and friends also take the password (or a token) as a query parameter
_QUERY = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|token|access_token|secret)=)[^&#\s]*", re.I
)


def _password_end(rest: str) -> int | None:
    """Where the password ends in `rest` (a URI after its `scheme://`), or None without one; it
    starts after the first ':'. Both readings count, so neither parser's view of it shows:
    urllib's (userinfo up to the authority's last '@') and SQLAlchemy's."""
    ends = []
    try:
        netloc = urllib.parse.urlsplit("x://" + rest).netloc
    except ValueError:  # a malformed IPv6 host: the authority up to the first / ? #
        netloc = re.match(r"[^/?#]*", rest).group()
    userinfo, at, _ = netloc.rpartition("@")
    if at and ":" in userinfo:
        ends.append(len(userinfo))
    sqlalchemy = _DB_USERINFO.match(rest)
    if sqlalchemy:
        ends.append(sqlalchemy.end("password"))
    return max(ends) if ends else None


def _masked_uri(m: re.Match) -> str:
    rest = m.group("rest")
    end = _password_end(rest)
    if end is not None:
        rest = f"{rest[: rest.index(':') + 1]}{MASK}{rest[end:]}"
    return m.group(0)[: m.start("rest") - m.start()] + rest


def redact(text: str) -> str:
    """`text` (a URI, or a message holding some) with every password in a URI replaced by ***."""
    if not text:
        return text
    return _QUERY.sub(rf"\g<head>{MASK}", _URI.sub(_masked_uri, text))


@contextmanager
def printed_redacted():
    """What the block prints on stdout, with passwords masked: MLflow prints each ended run's link
    (`View run ... at: URI`) with the tracking URI as given, password and all."""
    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            yield
    finally:
        sys.stdout.write(redact(buffer.getvalue()))


class Credentials:
    """MLflow credentials and TLS settings for a worker; shown (repr, str) by variable name only."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str] | None = None):
        self._values = dict(values or {})

    @classmethod
    def from_environ(cls, environ=None) -> Credentials:
        """The `FORWARDED` variables set in `environ` (default: this process's environment)."""
        environ = os.environ if environ is None else environ
        return cls({k: environ[k] for k in FORWARDED if k in environ})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._values))

    def __repr__(self) -> str:
        return f"Credentials({', '.join(self.names) or 'none'}; values hidden)"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._values)

    @contextmanager
    def applied(self):
        """Set the credentials in `os.environ` for the block, then restore what was there (or
        nothing)."""
        previous = {k: os.environ.get(k) for k in self._values}
        os.environ.update(self._values)
        try:
            yield
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
