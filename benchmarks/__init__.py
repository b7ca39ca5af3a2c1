"""The benchmark suite: registered entries, the runner, the report and the `resbench` CLI.

The report is one package, `benchmarks.report`: runs (from `benchmarks.selection.load_runs`) →
rows (`report.rows`, verdicts from `report.verdicts`) → the `Report` (`report.build`) → cards and
figures → Markdown, HTML, CSV and JSON (`report.render`). It imports nothing of the jobs or CLI.

Uses `resnet` for models and training and `tracking` for MLflow; nothing imports it back.
"""
