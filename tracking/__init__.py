"""Everything that touches MLflow: connecting, logging runs, reading them back, the UI.

It is handed plain data (dicts, lists, file paths) and never imports `benchmarks`.
"""
from tracking.store import RunLogger, Tracker, TrackingError, connect, resolve_uri

__all__ = ["RunLogger", "Tracker", "TrackingError", "connect", "resolve_uri"]
