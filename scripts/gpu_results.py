"""scripts/gpu_check.sh's summary: after every stage, what its MLflow stores hold.

    python scripts/gpu_results.py [STAGE]   STAGE's tables under $GC_RESULTS (speed.csv; runs.csv
                                            and curves.csv; packed.csv; collapse.csv), then
                                            summary.json and summary.md under $GC_OUT

The stages' stores are read by scripts/gpu_collect.py. summary.json also keeps what the estimates
learn (scripts/gpu_estimate.py), so it comes back with the results.
"""

from __future__ import annotations

import json
import sys

from gpu_collect import OUT, collect_collapse, collect_full, collect_packed, collect_speed, tsv
from gpu_estimate import ENV, SUMMARY, num, state

from resnet.files import atomic_write


def targets(st: dict) -> dict:
    """The issue's targets against what was measured (None: not measured)."""
    done = {r["stage"]: r for r in st.get("runs", []) if r["status"] == "FINISHED"}
    best = max((r["speedup_train"] for r in st.get("speed", [])), default=None)
    full, fp32 = done.get("full"), done.get("fp32")
    judged = [r["collapsed"] for r in st.get("collapse", []) if r["collapsed"] in ("true", "false")]
    return {
        "speedup_train_best (target >= 8)": best,
        "full_run_process_s (target <= 40)": full["process_s"] if full else None,
        "full_run_train_s": full["train_s"] if full else None,
        "full_minus_fp32_test_acc": full["test_acc"] - fp32["test_acc"] if full and fp32 else None,
        "collapsed_of_judged_seeds": f"{judged.count('true')} of {len(judged)}" if judged else None,
    }


def markdown(st: dict) -> str:
    import pandas as pd

    parts = [f"# gpu_check summary\n\nbudget {st['budget_s']} s, elapsed {st['elapsed_s']:.0f} s\n"]
    for title, key in (
        ("Stages", "stages"),
        ("Speed (fast pipeline against the reference)", "speed"),
        ("Full runs", "runs"),
        ("Packed runs", "packed"),
        ("Collapse (test accuracy per epoch, resbench.collapsed)", "collapse"),
    ):
        if st.get(key):
            parts.append(
                f"## {title}\n\n```\n{pd.DataFrame(st[key]).to_string(index=False)}\n```\n"
            )
    parts.append("## Targets\n\n" + "".join(f"- {k}: {v}\n" for k, v in targets(st).items()))
    return "\n".join(parts)


def collect(stage: str | None) -> None:
    st = state()
    # what a stage left that cannot be read is said, and the summary still written
    try:
        {
            "speed": collect_speed,
            "full": collect_full,
            "fp32": collect_full,
            "packed": collect_packed,
            "collapse": collect_collapse,
        }.get(stage, lambda st: None)(st)
    except Exception as e:
        print(
            f"warning: reading {stage}'s results: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        )
    st["budget_s"], st["elapsed_s"] = int(num("BUDGET")), float(ENV.get("GC_ELAPSED", "0"))
    st["stages"] = [
        dict(zip(("stage", "status", "estimate_s", "actual_s", "note"), row, strict=False))
        for row in tsv("stages.tsv")
    ]
    st["targets"] = targets(st)
    with atomic_write(SUMMARY) as f:  # a kill mid-write leaves the previous summary whole
        json.dump(st, f, indent=2, default=str)
    with atomic_write(OUT / "summary.md") as f:
        f.write(markdown(st))


if __name__ == "__main__":
    if len(sys.argv) > 2:
        raise SystemExit("usage: gpu_results.py [STAGE]")
    collect(sys.argv[1] if len(sys.argv) == 2 else None)
