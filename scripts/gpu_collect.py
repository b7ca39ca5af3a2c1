"""scripts/gpu_check.sh's stores read back, one stage at a time: each stage's table (speed.csv;
runs.csv and curves.csv; packed.csv; collapse.csv) written under $GC_RESULTS, and what the
estimates learn from it (scripts/gpu_estimate.py) put into the summary's state.

Stores are read through tracking.query; MLflow is imported only when a stage left a store.
"""

from __future__ import annotations

import csv
from pathlib import Path

from gpu_estimate import ENV, IPS, TEST_IPS, num, timed_work

from resnet.files import atomic_write

OUT, WORK = Path(ENV.get("GC_OUT", ".")), Path(ENV.get("GC_WORK", "."))
RESULTS = Path(ENV.get("GC_RESULTS", OUT))


def tsv(name: str) -> list[list[str]]:
    """The rows of gpu_check.sh's tab-separated file `name` under $GC_RESULTS (none if absent)."""
    path = RESULTS / name
    return [line.rstrip("\n").split("\t") for line in path.open()] if path.is_file() else []


def walls() -> dict[str, float]:
    """Process wall seconds of each timed command, by label (gpu_check.sh's walls.tsv)."""
    return {label: float(sec) for label, sec, *_ in tsv("walls.tsv")}


def search(store: str, columns: dict):
    """The store's runs, newest first, with tracking.query's plain columns and `columns` (a name
    for each tag, param or metric wanted); None when the stage never created the store.

    MLflow is imported only when there is a store to read: a stage without one is summarised
    quickly."""
    if not (WORK / store).is_file():
        return None
    from tracking import names
    from tracking.query import run_table

    return run_table(f"sqlite:///{WORK / store}", names.DEFAULT_EXPERIMENT, columns, [])


def mode_of(params: dict) -> str:
    """gpu_check.sh's name for a speed run's fast-pipeline mode: off, cudagraph, fp32-cudagraph,
    ..."""
    mode = params["compile_mode"] if params["compile"] == "True" else "off"
    return f"fp32-{mode}" if params["precision"] == "fp32" else mode


def collect_speed(st: dict) -> None:
    from tracking import names
    from tracking.query import metric, param, tag

    measured = {
        prefix + key: metric(f"{pipeline}.{key}")
        for prefix, pipeline in (("", "fast"), ("ref_", "reference"))
        for key in names.SPEED_METRICS
    } | {key: metric(key) for key in (names.SPEEDUP_TRAIN, names.SPEEDUP_TEST)}
    modes = {k: param(k) for k in ("compile", "compile_mode", "precision")}
    df = search("speed.db", {"device": tag(names.TAG_DEVICE)} | modes | measured)
    if df is None:
        return
    rows, w, reference = [], walls(), {}
    ref_keys = ["ref_" + key for key in names.SPEED_METRICS]
    for _, r in df.iloc[::-1].iterrows():  # oldest first: the order the modes ran in
        mode = mode_of({k: r[k] for k in modes})
        row = {"mode": mode, "device": r["device"]} | {k: float(r[k]) for k in measured}
        # the reference is timed once, in the first mode's process; every mode is compared with it
        row["reference_timed_here"] = row["ref_" + IPS] == row["ref_" + IPS]  # not NaN
        if row["reference_timed_here"] and not reference:
            reference = {k: row[k] for k in ref_keys}
        row |= reference or dict.fromkeys(ref_keys, float("nan"))
        row[names.SPEEDUP_TRAIN] = row[IPS] / row["ref_" + IPS]
        row[names.SPEEDUP_TEST] = row[TEST_IPS] / row["ref_" + TEST_IPS]
        rows.append(row | {"process_s": w.get(f"speed:{mode}")})
    st["speed"] = rows
    write_csv("speed.csv", rows)
    # what each process spent beyond its timed work is the start-up every later estimate charges
    spent = [
        r["process_s"] - timed_work(r, r["reference_timed_here"]) for r in rows if r["process_s"]
    ]
    if spent:
        st["overhead_s"] = max(1.0, sorted(spent)[len(spent) // 2])
    # `run --compile` means cudagraph on CUDA and inductor on a CPU: only those and eager are
    # candidates
    runnable = [
        r
        for r in rows
        if not r["mode"].startswith("fp32-")
        and r["mode"] in ("off", "auto", "inductor" if r["device"] == "cpu" else "cudagraph")
    ]
    if runnable:
        best = max(runnable, key=lambda r: r[IPS])
        st["choice"] = {"mode": best["mode"], IPS: best[IPS]}


def collect_full(st: dict) -> None:
    """runs.csv and curves.csv: the full and fp32 runs, each stage's from its own store."""
    import pandas as pd

    from tracking import names
    from tracking.query import metric, metric_histories, param, tag

    results = {
        "train_s": metric(names.WALL_SECONDS),
        "test_acc": metric(names.TEST_ACCURACY),
        "best_test_acc": metric(names.BEST_TEST_ACCURACY),
        "test_loss": metric(names.TEST_LOSS),
    }
    columns = (
        {
            "entry": tag(names.TAG_ENTRY),
            "device": tag(names.TAG_DEVICE),
            "precision": tag(names.TAG_PRECISION),
            "tf32": tag(names.TAG_TF32),
        }
        | {k: param(k) for k in ("seed", "epochs", "compile")}
        | results
    )
    rows, w, curves = [], walls(), []
    for stage in ("full", "fp32"):
        df = search(f"{stage}.db", columns)
        if df is None or not len(df):
            continue
        r = df.iloc[0]  # the newest: a rerun's run replaces the earlier one
        rows.append(
            {
                "stage": stage,
                "run_id": r["run_id"],
                "status": r["status"],
                "entry": r["entry"],
                "seed": r["seed"],
                "epochs": r["epochs"],
                "compile": r["compile"],
                "device": r["device"] or "",
                "precision": r["precision"] or "",
                "tf32": r["tf32"] or "",
                "process_s": w.get(stage),
            }
            | {k: float(r[k]) for k in results}
        )
        history = metric_histories(
            f"sqlite:///{WORK / f'{stage}.db'}", [r["run_id"]], names.EPOCH_METRICS
        )
        history.insert(0, "stage", stage)
        curves.append(history)
    if not rows:
        return
    curves = pd.concat(curves, ignore_index=True)
    with atomic_write(RESULTS / "curves.csv") as f:
        curves.to_csv(f, index=False)
    for r in rows:  # a finished run's own seconds per epoch, and beyond them, serve later estimates
        r["epochs_logged"] = int(curves["run_id"].eq(r["run_id"]).sum())
        if r["status"] == "FINISHED" and r["process_s"] and r["epochs_logged"]:
            st.setdefault("epoch_s", {})[r["stage"]] = r["train_s"] / r["epochs_logged"]
            # the largest a run has taken beyond its epochs: estimates must not come out short
            beyond = max(r["process_s"] - r["train_s"], 1.0)
            st["run_overhead_s"] = max(st.get("run_overhead_s") or 0.0, beyond)
    st["runs"] = rows
    write_csv("runs.csv", rows)


def collect_packed(st: dict) -> None:
    from tracking.query import metric_histories

    rows, w = [], walls()
    for label, store, wall in (
        ("sequential", "seq.db", w.get("packed:sequential")),
        (f"jobs={ENV['GC_PACK_JOBS']}", "jobs.db", w.get("packed:jobs")),
    ):
        df = search(store, {})
        if df is None:
            continue
        ids = list(df["run_id"])
        h = metric_histories(f"sqlite:///{WORK / store}", ids, ("images_per_second",))
        steady = h[h["epoch"] > 0] if (h["epoch"] > 0).any() else h  # epoch 0 carries the warm-up
        per_run = steady.groupby("run_id")["images_per_second"].median()
        images = num("N_TRAIN") * len(h)  # training images of every logged epoch
        rows.append(
            {
                "mode": label,
                "runs": len(ids),
                "finished": int(df["status"].eq("FINISHED").sum()),
                "epochs_logged": len(h),
                "wall_s": wall,
                "images_per_s_per_gpu": images / wall if wall else None,
                # one at a time: a run's own rate; packed: the runs' rates add up
                "steady_images_per_s": per_run.mean() if label == "sequential" else per_run.sum(),
            }
        )
    if rows:
        st["packed"] = rows
        write_csv("packed.csv", rows)


def collect_collapse(st: dict) -> None:
    """collapse.csv: each seed's epochs and whether train_job tagged the run collapsed
    (benchmarks/collapse.py's definition; empty: not judged, a run stopped before its K-th epoch);
    summary.json: one row per seed, and their epochs' seconds for a later window's estimate."""
    from tracking import names
    from tracking.query import metric_histories, param, tag

    df = search("collapse.db", {"seed": param("seed"), "collapsed": tag(names.TAG_COLLAPSED)})
    if df is None:
        return
    latest = {}
    for _, r in df.iloc[::-1].iterrows():  # oldest first: a later run of a seed replaces it
        latest[int(r["seed"])] = r
    keys = ("train_loss", "train_acc", "test_acc", "test_loss", "epoch_seconds")
    h = metric_histories(
        f"sqlite:///{WORK / 'collapse.db'}", [r["run_id"] for r in latest.values()], keys
    )
    rows, seeds = [], []
    for seed, r in sorted(latest.items()):
        collapsed = r["collapsed"] if isinstance(r["collapsed"], str) else ""
        epochs = h[h["run_id"].eq(r["run_id"])].sort_values("epoch")
        rows += [
            {
                "seed": seed,
                "epoch": int(e["epoch"]),
                **{k: e[k] for k in keys[:4]},
                "collapsed": collapsed,
            }
            for _, e in epochs.iterrows()
        ]
        seeds.append(
            {
                "seed": seed,
                "status": r["status"],
                "epochs_logged": len(epochs),
                "collapsed": collapsed,
                "test_acc_per_epoch": " / ".join(f"{a:.2f}" for a in epochs["test_acc"]),
            }
        )
    if len(h):
        st.setdefault("epoch_s", {})["collapse"] = float(h["epoch_seconds"].mean())
    st["collapse"] = seeds
    write_csv("collapse.csv", rows)


def write_csv(name: str, rows: list[dict]) -> None:
    """`rows` as the CSV file `name` under $GC_RESULTS, written whole or not at all."""
    if not rows:  # a store whose every run crashed before it started
        return
    with atomic_write(RESULTS / name) as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
