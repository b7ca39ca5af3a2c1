"""The tracking store itself: its URI, reaching and probing it, and its errors.

With nothing configured the store is MLflow's embedded SQLite default (mlflow.db in the
working directory); MLFLOW_TRACKING_URI or an explicit URI (an `mlflow server` URL, say)
take precedence. `client` is the one place resbench builds an MlflowClient; runs are written
through it (tracking/tracker.py, tracking/runlogger.py), so no global active-run state leaks.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tracking import names
from tracking.credentials import redact

SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "databricks")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message says which and why.

    Messages name the store by its URI, and drivers' errors may quote it: any password in it is
    masked."""

    def __init__(self, message: str):
        super().__init__(redact(str(message)))


def mlflow_version() -> str:
    """The MLflow client's version (MLflow is imported only inside tracking/)."""
    import mlflow

    return mlflow.__version__


def client(uri: str) -> MlflowClient:
    """An MLflow client of the store at `uri`: the one place resbench builds one."""
    return MlflowClient(tracking_uri=uri)


def resolve_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or names.DEFAULT_URI


def require_shared_store(uri: str, where: str) -> None:
    """Refuse `uri` when runs execute on `where` (other machines) and could not all log to it.

    A SQLite file or file store lives on this machine only; a database URI reaches the
    metrics but leaves each run's artifacts on the disk of whichever worker trained it.
    A tracking server (`mlflow server ... --artifacts-destination`) takes both over HTTP.
    """
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme in ("http", "https", "databricks") or uri.startswith("databricks"):
        return
    what = (
        "a database, whose artifacts would stay on each worker's own disk"
        if scheme in ("postgresql", "mysql", "mssql")
        else "a file on this machine"
    )
    raise TrackingError(
        f"runs on {where} cannot log to {uri} ({what}); start `mlflow server` on a machine they "
        f"reach and pass --tracking-uri https://HOST (docs/DEPLOY.md)"
    )


def check_server(uri: str) -> None:
    """Refuse, within seconds, an http(s) `uri` whose server is unreachable or answers /health
    with an error (not an MLflow server): MLflow's own client would retry with backoff for
    minutes. Other stores pass unchecked."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests
    from mlflow.environment_variables import (
        MLFLOW_TRACKING_INSECURE_TLS,
        MLFLOW_TRACKING_SERVER_CERT_PATH,
    )

    # the TLS settings MLflow's own client honours: a private CA's certificate, or no check at all
    verify = MLFLOW_TRACKING_SERVER_CERT_PATH.get() or not MLFLOW_TRACKING_INSECURE_TLS.get()
    try:
        r = requests.get(uri.rstrip("/") + "/health", timeout=5, verify=verify)
    except requests.RequestException as e:
        raise TrackingError(f"tracking server {uri} is unreachable ({type(e).__name__})") from None
    if r.status_code >= 400:
        raise TrackingError(
            f"tracking server {uri} answered {r.status_code} on /health; is it an MLflow server?"
        )


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI (relative to the working directory), else
    None."""
    prefix = "sqlite:///"
    path = uri[len(prefix) :] if uri.startswith(prefix) else ""
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def creation_lock(uri: str):
    """Serialise first contact with a SQLite store across processes.

    MLflow creates and migrates the schema on first use; two processes doing it at
    once race ("table already exists"). A file lock beside the database file orders them.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    if not db.parent.is_dir():
        raise TrackingError(f"tracking store {uri}: folder {db.parent} does not exist")
    with FileLock(db.with_name(db.name + ".lock")):
        yield


@contextmanager
def store_errors(where: str):
    """MLflow's failures mid-run become TrackingError, which callers treat as "the store is
    gone"."""
    try:
        yield
    except MlflowException as e:
        raise TrackingError(
            f"tracking store {where}: {(e.message.splitlines() or [''])[0]}"
        ) from None
