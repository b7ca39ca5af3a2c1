"""scripts/gpu_check.sh on a CPU: every stage end to end at tiny sizes, the budget's skips, the
files it leaves (the GPU host returns at most 8), and `make gpu-kit`'s settings.

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

from benchmarks import collapse
from tests.conftest import ROOT, write_batches

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STAGES = ["tests", "speed", "full", "fp32", "packed", "collapse"]
OUT_FILES = {"gpu_check.log", "env.txt", "summary.json", "summary.md", "results.tgz"}
MAX_FILES = 8  # what the GPU host returns from $OUT


def gpu_check(tmp_path, *args: str, **settings: str):
    """Run the script in its CPU smoke mode; returns (process, $OUT, $WORK)."""
    data = write_batches(tmp_path / "data", n_train=16, n_test=32)  # 80 training images, 32 test
    out, work = tmp_path / "out", tmp_path / "work"
    env = {
        **os.environ,
        "ALLOW_CPU": "1",
        "PYTHON": sys.executable,
        "DATA": str(data),
        "OUT": str(out),
        "WORK": str(work),
        "RESBENCH_ENTRIES_PATH": str(ROOT / "tests" / "entries"),
        "ENTRY": "test/tiny",
        "EXTRA": "--device cpu",
        "LIMIT_TRAIN": "64",
        "LIMIT_TEST": "32",
        **settings,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=1800
    )
    return proc, out, work


def results(out, tmp_path):
    """$OUT's files, at most MAX_FILES; results.tgz unpacked: returns its results/ folder."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= MAX_FILES and {p.name for p in files} == OUT_FILES, files
    with tarfile.open(out / "results.tgz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    return tmp_path / "unpacked" / "results"


def rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stages(res) -> dict[str, str]:
    return {
        line.split("\t")[0]: line.split("\t")[1]
        for line in (res / "stages.tsv").read_text().splitlines()
    }


@pytest.mark.slow
def test_every_stage_runs_and_leaves_its_results(tmp_path):
    proc, out, work = gpu_check(
        tmp_path,
        "--budget",
        "3000",
        EPOCHS="2",
        SPEED_MODES="off fp32-off",
        SPEED_STEPS="2",
        SPEED_WARMUP="1",
        PACK_SEEDS="2",
        PACK_EPOCHS="1",
        PACK_JOBS="2",
        COLLAPSE_ENTRY="test/tiny",
        COLLAPSE_SEEDS="2",
        GPU_TESTS="tests/test_pipeline.py",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    res = results(out, tmp_path)
    assert stages(res) == dict.fromkeys(STAGES, "ran")
    assert f"s of the 3000 s budget: {' '.join(STAGES)}\n" in proc.stdout
    env = (out / "env.txt").read_text()
    assert "torch" in env and "cudnn" in env and "startup_s" in env and "tf32 defaults" in env
    assert "1 skipped" in (out / "gpu_check.log").read_text()  # pytest -m gpu found the GPU test

    # the reference pipeline is timed once, in the first mode's process; both modes use it
    speed = rows(res / "speed.csv")
    assert [(r["mode"], r["reference_timed_here"]) for r in speed] == [
        ("off", "True"),
        ("fp32-off", "False"),
    ]
    assert speed[0]["ref_train_images_per_second"] == speed[1]["ref_train_images_per_second"]
    assert all(float(r["speedup_train"]) > 0 for r in speed)
    printed = (res / "speed.txt").read_text().splitlines()
    assert sum(line.split()[:1] == ["reference"] for line in printed) == 1

    runs = {r["stage"]: r for r in rows(res / "runs.csv")}
    assert set(runs) == {"full", "fp32"}
    assert runs["fp32"]["precision"] == "fp32" and runs["fp32"]["tf32"] == "off"
    assert all(r["status"] == "FINISHED" and r["epochs_logged"] == "2" for r in runs.values())
    assert 0 <= float(runs["fp32"]["test_acc"]) <= float(runs["fp32"]["best_test_acc"]) <= 100
    curves = rows(res / "curves.csv")
    assert sorted((r["stage"], r["epoch"]) for r in curves) == [
        ("fp32", "0"),
        ("fp32", "1"),
        ("full", "0"),
        ("full", "1"),
    ]

    packed = {r["mode"]: r for r in rows(res / "packed.csv")}
    assert set(packed) == {"sequential", "jobs=2"}
    assert all(
        r["finished"] == "2" and float(r["images_per_s_per_gpu"]) > 0 for r in packed.values()
    )

    # 2 seeds x 3 epochs (the default COLLAPSE_EPOCHS), each run tagged by collapse.py's definition
    by_seed = {}
    for r in rows(res / "collapse.csv"):
        by_seed.setdefault(r["seed"], []).append(r)
    assert list(rows(res / "collapse.csv")[0]) == [
        "seed",
        "epoch",
        "train_loss",
        "train_acc",
        "test_acc",
        "test_loss",
        "collapsed",
    ]
    assert sorted(by_seed) == ["0", "1"] and all(
        [r["epoch"] for r in e] == ["0", "1", "2"] for e in by_seed.values()
    )
    for epochs in by_seed.values():
        expected = str(collapse.collapsed([float(r["test_acc"]) for r in epochs])).lower()
        assert {r["collapsed"] for r in epochs} == {expected}

    summary = json.loads((out / "summary.json").read_text())
    assert [s["stage"] for s in summary["stages"]] == STAGES
    assert summary["targets"]["full_run_process_s (target <= 40)"] > 0
    n = sum(r["collapsed"] == "true" for r in summary["collapse"])
    assert summary["targets"]["collapsed_of_judged_seeds"] == f"{n} of 2"
    assert summary["epoch_s"]["collapse"] > 0  # a later window's estimate starts from it
    assert (
        "## Packed runs" in (out / "summary.md").read_text()
        and "## Collapse" in (out / "summary.md").read_text()
    )
    assert sorted(p.name for p in (res / "mlflow").iterdir()) == [
        "collapse.db",
        "fp32.db",
        "full.db",
        "jobs.db",
        "seq.db",
        "speed.db",
    ]
    # everything summary.json holds is also in the tables: each stage's rows, and the stages
    assert len(summary["speed"]) == 2 and len(summary["runs"]) == 2 and len(summary["packed"]) == 2


@pytest.mark.slow
def test_a_stage_over_the_budget_is_skipped_and_reported_not_run(tmp_path):
    # a million epochs at the prior images/s: far more than the 60 s budget
    proc, out, work = gpu_check(tmp_path, "--budget", "60", "full", EPOCHS="1000000")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "skip full: estimate" in proc.stdout and "skipped (over the budget): full" in proc.stdout
    assert "budget: no stage (skipped: full)" in proc.stdout  # not listed as done
    res = results(out, tmp_path)
    assert stages(res) == {"full": "skipped"}
    assert not (work / "full.db").exists() and not (res / "runs.csv").exists()
    assert (res / "walls.tsv").read_text() == ""  # no command was started
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["stages"][0]["status"] == "skipped" and int(summary["stages"][0]["estimate_s"]) > 60
    )


def test_the_collapse_estimate_scales_the_full_runs_epochs_by_the_entries_flops(tmp_path):
    def estimate(**settings: str) -> float:
        env = {
            **os.environ,
            "GC_OUT": str(tmp_path),
            "GC_ENTRY": "paper/final",
            "GC_COLLAPSE_ENTRY": "table1/row1",
            "GC_COLLAPSE_SEEDS": "4",
            "GC_COLLAPSE_EPOCHS": "3",
            "GC_RUN_SETUP": "5",
            "GC_EPOCH_FIXED": "0",
            "GC_REPORT_S": "10",
            "GC_STARTUP": "1",
            "GC_PRIOR_SETUP": "1",
            **settings,
        }
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "gpu_estimate.py"), "collapse"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return float(proc.stdout.split("\t")[0])

    # full measured 10 s per epoch and 5 s beyond its epochs; row1 has 191.7 of paper/final's 618.3
    # MFLOPs
    (tmp_path / "summary.json").write_text(
        json.dumps({"epoch_s": {"full": 10.0}, "run_overhead_s": 5.0})
    )
    flops = {"GC_MFLOPS": "618.3", "GC_COLLAPSE_MFLOPS": "191.7"}
    assert estimate(**flops) == round(5 + 3 * 5 + 4 * 3 * 10 * 191.7 / 618.3 + 10)  # 67 s
    assert estimate() == 5 + 3 * 5 + 4 * 3 * 10 + 10  # FLOPs unknown: as many as full's entry
    # once the stage has run, its own seconds per epoch replace the scaled ones
    (tmp_path / "summary.json").write_text(
        json.dumps({"epoch_s": {"full": 10.0, "collapse": 1.0}, "run_overhead_s": 5.0})
    )
    assert estimate(**flops) == 5 + 3 * 5 + 4 * 3 * 1 + 10


def test_make_gpu_kit_takes_its_inputs_from_explicit_settings(tmp_path):
    def make(*settings: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "-s", "gpu-kit", f"KIT={tmp_path / 'kit'}", *settings],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    missing = make()
    assert missing.returncode != 0 and "error: JPEG_ARCHIVE is not set" in missing.stderr
    archive = tmp_path / "a.tar.xz"
    archive.write_bytes(b"")
    absent = make(
        f"JPEG_ARCHIVE={archive}", "BATCH_SCRIPT=/nonexistent/rebuild.py", "WHEELS_FROM=."
    )
    assert absent.returncode != 0
    assert "error: BATCH_SCRIPT: no such file or folder: /nonexistent/rebuild.py" in absent.stderr
    assert not (tmp_path / "kit").exists()  # nothing made, nothing installed


def test_no_product_file_refers_to_a_folder_beside_the_checkout():
    beside = ["../" + "shared", 'parent / "' + 'shared"']  # split, so this file names neither
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".py", ".sh", ".md", ".toml", ".cfg", "") and path.is_file():
            text = path.read_text(errors="replace")
            assert not any(b in text for b in beside), name


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args, message in (
        (["--budget", "soon"], "error: --budget expects whole seconds"),
        (["warp"], "error: unknown argument 'warp'"),
    ):
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OUT": str(tmp_path / "out")},
        )
        assert (
            proc.returncode == 2
            and proc.stderr.strip().startswith(message)
            and "\n" not in proc.stderr.strip()
        )


@pytest.mark.slow
def test_a_stage_at_the_budgets_end_is_stopped_and_its_epochs_come_back(tmp_path):
    # priors that make the estimate tiny, then far more epochs than the budget holds: the run
    # is stopped at BUDGET + GRACE (SIGINT; killed 20 s later if it has not ended), marked KILLED
    # with its epochs kept, and the command ends with its results collected
    budget, grace = 120, 5
    proc, out, work = gpu_check(
        tmp_path,
        "--budget",
        str(budget),
        "full",
        EPOCHS="100000",
        GRACE=str(grace),
        PRIOR_SETUP="0",
        RUN_SETUP="0",
        EPOCH_FIXED="0",
        PRIOR_TRAIN_IPS="1e12",
        PRIOR_TEST_IPS="1e12",
    )
    assert proc.returncode == 1 and "FAILED: full" in proc.stdout, proc.stdout[-3000:]
    assert "stopped: full reached the budget's end" in proc.stdout
    res = results(out, tmp_path)
    (run,) = rows(res / "runs.csv")
    assert run["status"] == "KILLED" and int(run["epochs_logged"]) >= 1
    ended = int(proc.stdout.split("== ")[-1].split("+")[1].split("s")[0])  # the summary's "+Ns"
    assert budget + grace <= ended <= budget + grace + 20 + 30
