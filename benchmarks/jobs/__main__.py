"""`python -m benchmarks.jobs SPEC.json`: train the one job a JSON spec describes (a local child's
entry point).

stdout gets `NAME: finished run ID`; a failure one `error: ...` line on stderr. Exit status: 0 done,
1 the job failed (its run is FAILED), 2 the spec or the store cannot be used, 130 interrupted
(KILLED). The store's URI comes from $RESBENCH_JOB_TRACKING_URI when set (local.URI_ENV: the parent
puts it there, credentials included, and a masked copy in the spec file).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.jobs.local import URI_ENV
from benchmarks.jobs.spec import JobSpec
from benchmarks.jobs.train import JobFailed, one_line, train_job
from tracking.store import TrackingError


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.jobs SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = JobSpec.from_json(Path(argv[0]).read_text())
        if os.environ.get(URI_ENV):
            spec = replace(spec, tracking_uri=os.environ[URI_ENV])
        print(f"{spec.name}: finished run {train_job(spec)}", flush=True)
        return 0
    except JobFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (
        TrackingError,
        OSError,
        ValueError,
        TypeError,
    ) as err:  # the store, or a spec that is not one
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the run is marked KILLED and keeps its last epoch; rerun to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
