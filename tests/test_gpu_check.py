"""scripts/gpu_check.sh on a CPU: every stage end to end at tiny sizes, and the budget's skips.

The script is the only GPU measurement there is; these runs keep it from breaking unseen
before a GPU is available. Data are generated CIFAR-layout batches, the entry is test/tiny.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import ROOT, write_batches

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STAGES = ["tests", "speed", "full", "fp32", "packed"]


def gpu_check(tmp_path, *args: str, **settings: str):
    """Run the script in its CPU smoke mode; returns (process, $OUT, $WORK)."""
    data = write_batches(tmp_path / "data", n_train=16, n_test=32)  # 80 training images, 32 test
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "ALLOW_CPU": "1", "PYTHON": sys.executable, "DATA": str(data), "OUT": str(out),
           "WORK": str(work), "RESBENCH_ENTRIES_PATH": str(ROOT / "tests" / "entries"), "ENTRY": "test/tiny",
           "EXTRA": "--device cpu", "LIMIT_TRAIN": "64", "LIMIT_TEST": "32", **settings}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1800)
    return proc, out, work


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stages(out) -> dict[str, str]:
    return {line.split("\t")[0]: line.split("\t")[1] for line in (out / "stages.tsv").read_text().splitlines()}


@pytest.mark.slow
def test_every_stage_runs_and_leaves_its_results(tmp_path):
    proc, out, work = gpu_check(tmp_path, "--budget", "3000", EPOCHS="2", SPEED_MODES="off", SPEED_STEPS="2",
                                SPEED_WARMUP="1", PACK_SEEDS="2", PACK_EPOCHS="1", PACK_JOBS="2",
                                GPU_TESTS="tests/test_pipeline.py")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert stages(out) == dict.fromkeys(STAGES, "ran")
    env = (out / "env.txt").read_text()
    assert "torch" in env and "cudnn" in env and "startup_s" in env
    assert "1 skipped" in (out / "gpu_check.log").read_text()  # pytest -m gpu found the GPU test

    speed = rows(out / "speed.csv")
    assert [r["mode"] for r in speed] == ["off"]
    assert float(speed[0]["train_images_per_second"]) > 0 and float(speed[0]["speedup_train"]) > 0

    runs = {r["stage"]: r for r in rows(out / "runs.csv")}
    assert set(runs) == {"full", "fp32"}
    assert all(r["status"] == "FINISHED" and r["epochs_logged"] == "2" for r in runs.values())
    assert 0 <= float(runs["fp32"]["test_acc"]) <= float(runs["fp32"]["best_test_acc"]) <= 100
    curves = rows(out / "curves.csv")
    assert sorted((r["stage"], r["epoch"]) for r in curves) == [("fp32", "0"), ("fp32", "1"), ("full", "0"),
                                                                ("full", "1")]

    packed = {r["mode"]: r for r in rows(out / "packed.csv")}
    assert set(packed) == {"sequential", "jobs=2"}
    assert all(r["finished"] == "2" and float(r["images_per_s_per_gpu"]) > 0 for r in packed.values())

    summary = json.loads((out / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert summary["targets"]["full_run_process_s (target <= 40)"] > 0
    assert "## Packed runs" in (out / "summary.md").read_text()
    with tarfile.open(out / "mlflow.tgz") as tar:
        assert sorted(tar.getnames()) == ["./full.db", "./jobs.db", "./seq.db", "./speed.db"]


def test_a_stage_over_the_budget_is_skipped_and_reported_not_run(tmp_path):
    # a million epochs at the prior images/s: far more than the 60 s budget
    proc, out, work = gpu_check(tmp_path, "--budget", "60", "full", EPOCHS="1000000")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "skip full: estimate" in proc.stdout and "skipped (over the budget): full" in proc.stdout
    assert stages(out) == {"full": "skipped"}
    assert not (work / "full.db").exists() and not (out / "runs.csv").exists()
    assert (out / "walls.tsv").read_text() == ""  # no command was started
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"][0]["status"] == "skipped" and int(summary["stages"][0]["estimate_s"]) > 60


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args, message in ((["--budget", "soon"], "error: --budget expects whole seconds"),
                          (["warp"], "error: unknown argument 'warp'")):
        proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "OUT": str(tmp_path / "out")})
        assert proc.returncode == 2 and proc.stderr.strip().startswith(message) and "\n" not in proc.stderr.strip()
