"""scripts/gpu_check.sh's estimates and mode choice, before every stage (so nothing heavy is
imported).

    python scripts/gpu_estimate.py STAGE    prints "SECONDS<TAB>how it was reckoned"
    python scripts/gpu_estimate.py choose   prints the runs' --compile flag

Sizes and priors come from the GC_* variables gpu_check.sh exports (with the entries' forward
MFLOPs per image); what earlier stages measured (process start-up, images/s per mode, a full run's
seconds per epoch and beyond its epochs, the collapse runs' seconds per epoch) from
$GC_OUT/summary.json, which scripts/gpu_results.py keeps.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ENV = os.environ
SUMMARY = Path(ENV.get("GC_OUT", ".")) / "summary.json"
# speed rows' keys are tracking.names.SPEED_METRICS (reference: "ref_" + key); MLflow is not
# imported here
IPS, TEST_IPS = "train_images_per_second", "test_images_per_second"


def num(name: str) -> float:
    return float(ENV[f"GC_{name}"])


def state() -> dict:
    return json.loads(SUMMARY.read_text()) if SUMMARY.is_file() else {}


def timed_work(row: dict, reference: bool = True) -> float:
    """Seconds a `resbench speed` process trains and tests at a speed row's rates: warm-up and
    timed steps, then two test passes, of the fast pipeline and (in the first mode's process
    only) the reference."""
    images = (num("SPEED_STEPS") + num("SPEED_WARMUP")) * min(num("BATCH"), num("N_TRAIN"))
    pipelines = ("", "ref_") if reference else ("",)
    return sum(images / row[p + IPS] + 2 * num("N_TEST") / row[p + TEST_IPS] for p in pipelines)


def overhead(st: dict) -> float:
    """Seconds one resbench process spends outside its timed work: imports, data, store, device."""
    return st.get("overhead_s") or num("STARTUP") + num("PRIOR_SETUP")


def rates(st: dict, mode: str) -> dict:
    """The speed row of `mode` (images/s of the fast pipeline and the reference): measured, else
    an fp32 mode's bf16 twin measured and scaled by the fp32 prior, else the priors."""
    measured = {r["mode"]: r for r in st.get("speed", [])}
    if mode in measured:
        return measured[mode]
    fp32, twin = mode.startswith("fp32-"), mode.removeprefix("fp32-")
    scale = num("PRIOR_FP32") if fp32 else 1.0
    base = measured.get(twin) if fp32 else None
    base = base or {
        IPS: num("PRIOR_TRAIN_IPS"),
        TEST_IPS: num("PRIOR_TEST_IPS"),
        "ref_" + IPS: num("PRIOR_REF_IPS"),
        "ref_" + TEST_IPS: num("PRIOR_REF_TEST_IPS"),
    }
    return {**base, IPS: base[IPS] * scale, TEST_IPS: base[TEST_IPS] * scale}


def run_mode(st: dict, stage: str) -> str:
    """The speed-table mode a full run of `stage` runs in: full = $COMPILE's, else the fastest bf16
    mode `speed` found, else eager; fp32 = its fp32 twin."""
    forced = {"on": "cudagraph", "off": "off"}.get(ENV.get("GC_COMPILE", ""))
    mode = forced or st.get("choice", {}).get("mode", "off")
    return mode if stage == "full" else f"fp32-{mode}"


def flops_ratio() -> float:
    """COLLAPSE_ENTRY's forward FLOPs per image over ENTRY's (1 when either is unknown). A smaller
    model uses a GPU less well, so the scaled time is a lower bound until `collapse` measures its
    own."""
    mflops, collapse = ENV.get("GC_MFLOPS"), ENV.get("GC_COLLAPSE_MFLOPS")
    return float(collapse) / float(mflops) if mflops and collapse else 1.0


def epoch_seconds(st: dict, stage: str) -> tuple[float, str]:
    """Seconds of one full-size epoch (train and test) of `stage` (full, fp32 or collapse): a
    finished run's own, else the full run's scaled by the speed table (fp32) or by the entries'
    FLOPs (collapse, which runs in full's mode), else from images/s."""
    seen = st.get("epoch_s", {})
    if stage in seen:
        return seen[stage], f"{seen[stage]:.2f} s/epoch measured"
    if stage == "collapse":
        spe, how = epoch_seconds(st, "full")
        entries = f"{ENV['GC_COLLAPSE_ENTRY']} over {ENV['GC_ENTRY']}"
        return spe * flops_ratio(), f"{how} x {flops_ratio():.2f} (FLOPs per image, {entries})"
    compute = {
        s: num("N_TRAIN") / r[IPS] + num("N_TEST") / r[TEST_IPS]
        for s, r in ((s, rates(st, run_mode(st, s))) for s in ("full", "fp32"))
    }
    if stage == "fp32" and "full" in seen:
        spe = seen["full"] * compute["fp32"] / compute["full"]
        return spe, f"{spe:.2f} s/epoch (the full run's, scaled by the speed table's fp32/bf16)"
    where = "measured" if st.get("speed") else "prior"
    return compute[stage], f"{compute[stage]:.2f} s/epoch ({where} images/s)"


def run_overhead(st: dict, epochs: float) -> float:
    """A run's seconds outside its epochs (process start-up, set-up, checkpoints, artifacts):
    what a finished full run took beyond its epochs, else reckoned from the priors."""
    return st.get("run_overhead_s") or overhead(st) + num("RUN_SETUP") + epochs * num("EPOCH_FIXED")


def estimate(stage: str) -> tuple[float, str]:
    st = state()
    start = f"{overhead(st):.0f} s start-up per process"
    if stage == "tests":
        return num("TESTS_S"), "fixed allowance"
    if stage == "speed":
        modes, total = ENV["GC_SPEED_MODES"].split(), 0.0
        for i, mode in enumerate(modes):
            row = rates(st, mode)
            compiled = not mode.endswith("off")  # compiling times the rest of the warm-up epoch too
            total += overhead(st) + timed_work(row, i == 0) + compiled * num("N_TRAIN") / row[IPS]
        return total, f"{len(modes)} mode(s), the reference timed with the first; {start}"
    if stage in ("full", "fp32"):
        spe, how = epoch_seconds(st, stage)
        epochs = num("EPOCHS")
        extra = run_overhead(st, epochs)
        return (
            extra + epochs * spe,
            f"{epochs:.0f} epochs x {how} + {extra:.0f} s outside the epochs",
        )
    if stage == "packed":
        spe, how = epoch_seconds(st, "full")
        seeds, epochs = num("PACK_SEEDS"), num("PACK_EPOCHS")
        work = seeds * epochs * (spe + num("EPOCH_FIXED"))
        seq = run_overhead(st, 0) + (seeds - 1) * num("RUN_SETUP") + work + num("REPORT_S")
        # no gain from packing assumed
        jobs = run_overhead(st, 0) + overhead(st) + work + num("REPORT_S")
        return seq + jobs, f"{seeds:.0f} seeds x {epochs:.0f} epochs, twice, at {how}; {start}"
    if stage == "collapse":  # as packed's sequential half: one process, its runs one after another
        spe, how = epoch_seconds(st, "collapse")
        seeds, epochs = num("COLLAPSE_SEEDS"), num("COLLAPSE_EPOCHS")
        total = (
            run_overhead(st, 0)
            + (seeds - 1) * num("RUN_SETUP")
            + seeds * epochs * (spe + num("EPOCH_FIXED"))
        )
        return total + num("REPORT_S"), f"{seeds:.0f} seeds x {epochs:.0f} epochs at {how}; {start}"
    raise SystemExit(f"error: unknown stage {stage!r}")


def choose() -> str:
    """--compile or --no-compile for the runs: $COMPILE, else the fastest bf16 mode `speed` found,
    else eager."""
    return "--no-compile" if run_mode(state(), "full") == "off" else "--compile"


if __name__ == "__main__":
    if sys.argv[1:] == ["choose"]:
        print(choose())
    elif len(sys.argv) == 2:
        print("{:.0f}\t{}".format(*estimate(sys.argv[1])))
    else:
        raise SystemExit("usage: gpu_estimate.py STAGE | choose")
