"""Everything that touches MLflow: connecting, logging runs, reading them back, the UI.

It is handed plain data (dicts, lists, file paths) and never imports `benchmarks` or `resnet`.
Import what you use from its modules (`tracking.store`, `tracking.query`, `tracking.names`, ...):
this file re-exports nothing, so `from tracking import names` does not pull in MLflow. MLflow's
private and internal API is used in `tracking.internals` alone.
"""
