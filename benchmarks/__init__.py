"""The benchmark suite: registered entries, the runner, the report and the `resbench` CLI.

Uses `resnet` for models and training and `tracking` for MLflow; nothing imports it back.
"""
