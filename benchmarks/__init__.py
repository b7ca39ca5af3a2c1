"""The benchmark suite: registered entries, the jobs that train them, the report and the `resbench`
CLI.

A run is one `JobSpec` (`benchmarks.jobs.spec`), made from the `JobSettings` built once at the
command line's edge (`benchmarks.cli.options`) and trained by `benchmarks.jobs.train.train_job`,
whichever way it runs: `resbench run`, `reproduce` in this process, its child processes or its Ray
tasks.

The report is one package, `benchmarks.report`: a `TableRequest` (`report.table`) and the runs
(from `benchmarks.selection.load_runs`) → rows (`report.rows`, verdicts from `report.verdicts`) →
the `Report` (`report.build`) → cards and figures → Markdown, HTML, CSV and JSON
(`report.render`). It imports nothing of the jobs or CLI.

Uses `resnet` for models and training and `tracking` for MLflow; nothing imports it back.
"""
