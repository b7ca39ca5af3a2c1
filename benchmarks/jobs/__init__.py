"""Jobs: one (entry, seed) run as a frozen spec, the one function that trains it, and where it
trains.

`spec` holds `JobSpec` (all a run needs, JSON-serialisable), `JobSettings` (what a command's jobs
share) and `DataSpec`; `train.train_job` trains
one spec and logs it to MLflow; `checkpoints` keeps its per-epoch state; `local` runs specs in this
process or as `python -m benchmarks.jobs SPEC.json` children, `ray` as Ray tasks, and `executor`
holds what both share (the placement options and their checks).
"""
