#!/usr/bin/env bash
# A timed evidence run for an offline GPU host: the measurements behind docs/PERFORMANCE.md in one
# command with a wall-clock budget, every result in at most five files under $OUT.
#
#   bash scripts/gpu_check.sh [--budget SECONDS] [STAGE...]     (BUDGET=420; default: all six stages)
#
# Stages, in order of value. Before each one the script prints its estimate and skips it, saying
# so, when it does not fit what is left of the budget; after each one it writes what it measured.
# (Times: guesses for paper/final on an H100, until the first measurement replaces them.)
#   tests   the GPU-marked tests (pytest -m gpu: CUDA-graph steps equal eager steps)           ~60 s
#   speed   `resbench speed ENTRY` per mode in SPEED_MODES (eager bf16, cudagraph bf16,
#           cudagraph fp32); the reference pipeline is timed once, with the first mode       ~1 min
#   full    one ENTRY run of EPOCHS epochs, seed 0, JPEG rebuild, fast pipeline in the fastest
#           bf16 mode `speed` found (eager without it): wall, final and best accuracy, curve   ~1-2 min
#   fp32    the same run in IEEE fp32 (TF32 off), store of its own: bf16 against fp32         ~2 min
#   packed  PACK_SEEDS seeds x PACK_EPOCHS epochs one after another (reproduce --jobs 1), then
#           reproduce --jobs PACK_JOBS on the one GPU: training images/s per GPU of each       ~2 min
#   collapse  COLLAPSE_SEEDS seeds x COLLAPSE_EPOCHS epochs of COLLAPSE_ENTRY, in full's mode
#           (reproduce --jobs 1): per epoch losses and accuracies, the resbench.collapsed tag   ~1 min
# Estimates scale with the sizes below and learn as they go: process start-up from the first
# import, images/s from `speed`, seconds per epoch from `full`. A running stage is stopped
# (SIGINT: its MLflow run is marked KILLED and keeps its epochs) at BUDGET + GRACE seconds, killed
# 20 s later; the last collect then takes under 30 s, so the whole command ends within
# BUDGET + GRACE + 50 s: 500 s by default. Give the host's command limit at least that.
#
# Under $OUT (default results/gpu), rewritten after every stage, so a command killed at its limit
# still returns what was measured; five files, however many stages ran:
#   gpu_check.log  everything printed
#   env.txt        card, driver, torch, CUDA, cuDNN, TF32 defaults, versions, missing packages
#   summary.json   every result: stages, walls, speed rows, full runs, packed, collapse, targets
#   summary.md     the same as tables
#   results.tgz    results/: stages.tsv (stage, ran|failed|skipped, estimate s, actual s, note),
#                  walls.tsv (process wall of each command), speed.txt and speed.csv (one row per
#                  mode: images/s, ms/step, TFLOP/s, reference, ratio), runs.csv and curves.csv
#                  (full runs and their per-epoch curves), packed.csv, collapse.csv (seed, epoch,
#                  losses, accuracies, collapsed); mlflow/: the SQLite stores, no artifacts
#
# Settings (environment): ENTRY (paper/final), EPOCHS (80), SPEED_MODES ("off cudagraph
# fp32-cudagraph": off = eager, a --compile-mode name, fp32-MODE; inductor modes compile for
# minutes), SPEED_STEPS (200), SPEED_WARMUP (20), PACK_SEEDS (3), PACK_EPOCHS (5), PACK_JOBS (3),
# COLLAPSE_ENTRY (table1/row1), COLLAPSE_SEEDS (4), COLLAPSE_EPOCHS (3),
# LIMIT_TRAIN and LIMIT_TEST (0: all), COMPILE (on|off: the runs' --compile instead of what `speed`
# found, e.g. for `bash scripts/gpu_check.sh fp32 packed` in a later window), EXTRA (flags for every
# resbench command), GPU_TESTS (tests), GRACE (30), DATA, KIT, WORK, OUT, PYTHON; the estimates'
# priors are in the defaults below.
#
# The host needs python3 with torch (CUDA), torchvision, numpy, pandas, matplotlib, click, tqdm,
# pillow and pytest. MLflow and the data come from the kit in KIT (default results/gpu-kit), made
# where pip works and carried to the host with the repository:
#   make gpu-kit JPEG_ARCHIVE=FILE BATCH_SCRIPT=FILE WHEELS_FROM=DIR|SCRIPT   (docs/PERFORMANCE.md)
# A smoke test of the script on a CPU (tiny, meaningless numbers; tests/test_gpu_check.py runs one):
#   ALLOW_CPU=1 DATA=/tmp/cifar ENTRY=table1/row1 EPOCHS=1 LIMIT_TRAIN=64 LIMIT_TEST=32 SPEED_MODES=off \
#   SPEED_STEPS=2 SPEED_WARMUP=1 PACK_SEEDS=2 PACK_EPOCHS=1 PACK_JOBS=2 COLLAPSE_SEEDS=2 EXTRA="--device cpu" \
#   bash scripts/gpu_check.sh
set -uo pipefail
{  # read whole before it runs: editing or updating this file during a run cannot change that run
ms() { local t=${EPOCHREALTIME:-}; [ -n "$t" ] && echo $(( ${t//[.,]/} / 1000 )) || date +%s%3N; }  # bash < 5: date
T0=$(ms)
CALLER=$PWD
abs() { case $1 in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }  # relative paths: from where it was called
cd "$(dirname "$0")/.."
ROOT=$PWD
ALL_STAGES="tests speed full fp32 packed collapse"
BUDGET=${BUDGET:-420}
stages=()
while [ $# -gt 0 ]; do
  case $1 in
    --budget) BUDGET=${2:-}; shift 2 || shift ;;
    --budget=*) BUDGET=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    tests|speed|full|fp32|packed|collapse) stages+=("$1"); shift ;;
    *) echo "error: unknown argument '$1' (stages: $ALL_STAGES; --budget SECONDS)" >&2; exit 2 ;;
  esac
done
[[ $BUDGET =~ ^[0-9]+$ ]] || { echo "error: --budget expects whole seconds, got '$BUDGET'" >&2; exit 2; }
[[ ${COMPILE:-on} =~ ^(on|off)$ ]] || { echo "error: COMPILE must be on or off, got '$COMPILE'" >&2; exit 2; }
[ ${#stages[@]} -gt 0 ] || read -r -a stages <<< "$ALL_STAGES"

# Every setting, exported as GC_<NAME> for scripts/gpu_estimate.py and scripts/gpu_results.py.
# Priors stand in for what this machine has not measured; they are guesses for paper/final on an H100.
for kv in ENTRY=paper/final EPOCHS=80 BATCH=128 LIMIT_TRAIN=0 LIMIT_TEST=0 \
    SPEED_MODES="off cudagraph fp32-cudagraph" SPEED_STEPS=200 SPEED_WARMUP=20 \
    PACK_SEEDS=3 PACK_EPOCHS=5 PACK_JOBS=3 COLLAPSE_ENTRY=table1/row1 COLLAPSE_SEEDS=4 COLLAPSE_EPOCHS=3 \
    GRACE=30 TESTS_S=60 COLLECT_S=10 \
    PRIOR_SETUP=8 RUN_SETUP=5 EPOCH_FIXED=0.15 REPORT_S=10 PRIOR_FP32=0.5 \
    PRIOR_TRAIN_IPS=20000 PRIOR_TEST_IPS=60000 PRIOR_REF_IPS=5000 PRIOR_REF_TEST_IPS=10000; do
  k=${kv%%=*}; v=${!k:-${kv#*=}}; printf -v "$k" %s "$v"; export "GC_$k=$v"
done
KIT=$(abs "${KIT:-$ROOT/results/gpu-kit}")
OUT=$(abs "${OUT:-$ROOT/results/gpu}")
WORK=$(abs "${WORK:-/tmp/resbench-gpu}")
PY=${PYTHON:-python3}; [[ $PY != */* ]] || PY=$(abs "$PY")
DATA=$(abs "${DATA:-$WORK/data}")
read -r -a EXTRA <<< "${EXTRA:-}"
export GC_OUT=$OUT GC_WORK=$WORK GC_BUDGET=$BUDGET GC_COMPILE=${COMPILE:-} GC_N_TRAIN=$(( LIMIT_TRAIN > 0 ? LIMIT_TRAIN : 50000 ))
export GC_N_TEST=$(( LIMIT_TEST > 0 ? LIMIT_TEST : 10000 ))
RES=$WORK/results  # what results.tgz holds: the tables, and the stores under mlflow/
export GC_RESULTS=$RES
rm -rf "$RES"  # summary.json stays: the estimates of a later call on this $OUT start from it
mkdir -p "$OUT" "$WORK" "$RES/mlflow"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

say() { printf '\n== %s  +%ss  %s\n' "$(date +%T)" "$(elapsed)" "$*"; }
elapsed() { echo $(( ($(ms) - T0) / 1000 )); }
seconds() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }
estimate() { "$PY" "$ROOT/scripts/gpu_estimate.py" "$@"; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RES/stages.tsv"; }

# timed LABEL DIR CMD...: run CMD in DIR, stopped at BUDGET + GRACE (killed 20 s later); its wall
# goes to walls.tsv.
timed() {
  local label=$1 dir=$2 t rc left; shift 2
  left=$(( BUDGET + GRACE - $(elapsed) )); (( left > 0 )) || left=1
  t=$(ms)
  (cd "$dir" && exec timeout -s INT -k 20 "$left" "$@"); rc=$?
  printf '%s\t%s\t%s\n' "$label" "$(seconds $(( $(ms) - t )))" "$rc" >> "$RES/walls.tsv"
  case $rc in
    124) echo "stopped: $label reached the budget's end (BUDGET + GRACE = $(( BUDGET + GRACE )) s)" ;;
    137) echo "stopped: $label reached the budget's end (BUDGET + GRACE = $(( BUDGET + GRACE )) s), killed 20 s later" ;;
  esac
  return $rc
}

# Results of STAGE: its tables under $RES, summary.json and summary.md under $OUT, then $RES and
# the stores as $OUT/results.tgz (written beside it, then renamed: a kill leaves the last whole
# one); the time it takes is reserved before each stage.
collect() {
  local t db; t=$(ms)
  GC_ELAPSED=$(elapsed) "$PY" "$ROOT/scripts/gpu_results.py" "$@" || echo "warning: collecting ${1:-the summary} failed"
  for db in "$WORK"/*.db; do [ -f "$db" ] && cp -p "$db" "$RES/mlflow/"; done
  tar czf "$OUT/.results.tgz.partial" -C "$WORK" results && mv -f "$OUT/.results.tgz.partial" "$OUT/results.tgz"
  COLLECT_S=$(( ($(ms) - t) / 1000 + 1 ))
}
trap 'record "${CURRENT:-setup}" killed "" "" "interrupted at +$(elapsed) s"; collect; exit 130' INT TERM

# $WORK/site: MLflow installed from the kit, by this call or an earlier one on the same machine
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}:$WORK/site PYTHONUNBUFFERED=1
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('mlflow') is None)"; then
  say "installing mlflow from $KIT/wheels"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$KIT"/wheels/*.whl || exit 1
fi

REBUILD=
if [ ! -f "$DATA/cifar-10-batches-py/test_batch" ]; then
  archive=$KIT/cifar10-jpeg.tar.xz builder=$KIT/make_cifar10_batches.py
  [ -f "$archive" ] && [ -f "$builder" ] || { echo "error: no data at $DATA and no JPEG archive in $KIT (make gpu-kit)"; exit 2; }
  say "rebuilding CIFAR-10 batches from the JPEG archive, in the background"
  rm -rf "$WORK/data.partial"
  ( "$PY" "$builder" "$archive" "$WORK/data.partial" > "$WORK/rebuild.log" 2>&1 && mkdir -p "$DATA" &&
    rm -rf "$DATA/cifar-10-batches-py" && mv "$WORK/data.partial/cifar-10-batches-py" "$DATA/" ) &
  REBUILD=$!
fi
need_data() {
  [ -n "$REBUILD" ] || return 0
  wait "$REBUILD" || { cat "$WORK/rebuild.log"; echo "error: rebuilding the data failed"; exit 1; }
  REBUILD=
}

say "environment"
(
  { command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm \
      --format=csv; } || echo "no nvidia-smi"
  GC_ALLOW_CPU=${ALLOW_CPU:-} "$PY" - <<'EOF'
import os, platform, re, sys, time, tomllib
from importlib.metadata import PackageNotFoundError, version
t = time.perf_counter()
import torch, torchvision
import benchmarks.cli.main  # what every resbench process imports before it starts work
startup = time.perf_counter() - t
cuda = torch.cuda.is_available()
# PyTorch's own TF32 defaults; every resbench run sets both: on for --precision tf32 only
print("tf32 defaults: cudnn.allow_tf32", torch.backends.cudnn.allow_tf32,
      "cuda.matmul.allow_tf32", torch.backends.cuda.matmul.allow_tf32,
      "| resbench: fp32 and bf16 runs off (IEEE float32), tf32 runs on")
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "torchvision", torchvision.__version__, "mlflow", version("mlflow"))
print("device", torch.cuda.get_device_name(0) if cuda else "cpu", "count", torch.cuda.device_count())
def installed(dist):
    try:
        return bool(version(dist))
    except PackageNotFoundError:
        return False
project = tomllib.load(open("pyproject.toml", "rb"))["project"]  # what resbench and its tests declare
wanted = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in
          project["dependencies"] + project["optional-dependencies"].get("test", [])]
print("missing packages:", " ".join(d for d in wanted if not installed(d)) or "none")
print(f"startup_s {startup:.2f}")
try:  # forward MFLOPs per image of ENTRY and COLLAPSE_ENTRY: the collapse estimate scales full's epochs by them
    from benchmarks import registry
    from resnet.flops import flops_per_image
    print("mflops", *(round(flops_per_image(registry.get(os.environ[k]).model).forward / 1e6, 1)
                      for k in ("GC_ENTRY", "GC_COLLAPSE_ENTRY")))
except Exception as e:  # an unknown entry fails its own stage; the estimate then assumes equal FLOPs
    print("no mflops:", e)
if not cuda and not os.environ.get("GC_ALLOW_CPU"):
    sys.exit("error: no CUDA GPU visible (ALLOW_CPU=1 runs the smoke mode on a CPU)")
EOF
  ok=$?
  echo "cpus $(nproc)"; git -C "$ROOT" rev-parse HEAD 2>/dev/null; git -C "$ROOT" status --porcelain 2>/dev/null | head -20
  exit $ok
) > "$OUT/env.txt" 2>&1
ok=$?
cat "$OUT/env.txt"
[ $ok -eq 0 ] || exit 1
export GC_STARTUP GC_MFLOPS GC_COLLAPSE_MFLOPS; GC_STARTUP=$(awk '$1 == "startup_s" {print $2}' "$OUT/env.txt")
read -r GC_MFLOPS GC_COLLAPSE_MFLOPS < <(awk '$1 == "mflops" {print $2, $3}' "$OUT/env.txt")

LIMITS=()
(( LIMIT_TRAIN > 0 )) && LIMITS+=(--limit-train "$LIMIT_TRAIN")
(( LIMIT_TEST > 0 )) && LIMITS+=(--limit-test "$LIMIT_TEST")
COMMON=(--data-dir "$DATA" --no-download "${LIMITS[@]}" "${EXTRA[@]}")
cli() { local label=$1 store=$2; shift 2; timed "$label" "$WORK" "$PY" -m benchmarks.cli "$@" --tracking-uri "sqlite:///$WORK/$store"; }

stage_tests() {
  # a test module that cannot be imported here (a package the host lacks) must not hide the GPU tests
  timed tests "$ROOT" "$PY" -m pytest -q -p no:cacheprovider --continue-on-collection-errors -m gpu $GPU_TESTS
  local rc=$?
  [ $rc -ne 5 ] || echo "error: no test is marked gpu: pytest -m gpu selected nothing"
  return $rc
}

stage_speed() {
  local mode flags bad=0 pipelines=fast,reference  # the reference (fp32, eager) once, with the first mode
  rm -f "$WORK/speed.db"  # a fresh measurement: the mode choice reads every run in the store
  for mode in $SPEED_MODES; do
    case $mode in
      off) flags=(--no-compile) ;;
      fp32-off) flags=(--precision fp32 --no-compile) ;;
      fp32-*) flags=(--precision fp32 --compile --compile-mode "${mode#fp32-}") ;;
      *) flags=(--compile --compile-mode "$mode") ;;
    esac
    say "speed $ENTRY ${flags[*]}"
    cli "speed:$mode" speed.db speed "$ENTRY" --steps "$SPEED_STEPS" --warmup "$SPEED_WARMUP" "${flags[@]}" \
      --pipelines "$pipelines" "${COMMON[@]}" | tee -a "$RES/speed.txt"
    if [ "${PIPESTATUS[0]}" -eq 0 ]; then pipelines=fast; else bad=1; fi
  done
  return $bad
}

stage_full() {  # full | fp32: the same run, in the chosen mode's precision or in IEEE fp32, each in a store of its own
  local precision=(); [ "$1" = fp32 ] && precision=(--precision fp32)
  cli "$1" "$1.db" run "$ENTRY" --seed 0 --epochs "$EPOCHS" --pipeline fast "$(estimate choose)" "${precision[@]}" \
    "${COMMON[@]}" --checkpoint-dir "$WORK/ckpt-$1"
}

stage_packed() {
  local rc=0 args=(--only "$ENTRY" --seeds "$PACK_SEEDS" --epochs "$PACK_EPOCHS" --no-check --pipeline fast
                       "$(estimate choose)" "${COMMON[@]}")
  rm -rf "$WORK"/seq.db "$WORK"/jobs.db "$WORK"/ckpt-seq "$WORK"/ckpt-jobs  # else reproduce finds them done
  say "packed: $PACK_SEEDS seeds x $PACK_EPOCHS epochs, one after another"
  cli packed:sequential seq.db reproduce "${args[@]}" --jobs 1 --output "$WORK/report-seq" \
    --checkpoint-dir "$WORK/ckpt-seq" || rc=1
  say "packed: the same as reproduce --jobs $PACK_JOBS on one device"
  cli packed:jobs jobs.db reproduce "${args[@]}" --jobs "$PACK_JOBS" --output "$WORK/report-jobs" \
    --checkpoint-dir "$WORK/ckpt-jobs" || rc=1
  return $rc
}

stage_collapse() {  # how often COLLAPSE_ENTRY sits at chance through its first epochs, in full's mode
  rm -rf "$WORK"/collapse.db "$WORK"/ckpt-collapse  # else reproduce finds them done
  cli collapse collapse.db reproduce --only "$COLLAPSE_ENTRY" --seeds "$COLLAPSE_SEEDS" --epochs "$COLLAPSE_EPOCHS" \
    --no-check --pipeline fast "$(estimate choose)" "${COMMON[@]}" --jobs 1 --output "$WORK/report-collapse" \
    --checkpoint-dir "$WORK/ckpt-collapse"
}

GPU_TESTS=${GPU_TESTS:-tests}
: > "$RES/stages.tsv"; : > "$RES/walls.tsv"
failed=() skipped=() ran=()
for stage in "${stages[@]}"; do
  CURRENT=$stage
  [ "$stage" = tests ] || need_data
  IFS=$'\t' read -r est how < <(estimate "$stage")
  left=$(( BUDGET - $(elapsed) - COLLECT_S ))
  if [ -z "$est" ] || (( est > left )); then
    say "skip $stage: estimate ${est:-?} s ($how) > $left s left of the ${BUDGET} s budget"
    record "$stage" skipped "$est" "" "estimate over the $left s left"
    skipped+=("$stage")
  else
    say "$stage: estimate $est s ($how); $left s left"
    t=$(ms)
    case $stage in tests) stage_tests ;; speed) stage_speed ;; full|fp32) stage_full "$stage" ;;
                   packed) stage_packed ;; collapse) stage_collapse ;; esac
    rc=$?
    status=ran; [ $rc -eq 0 ] && ran+=("$stage") || { status=failed; failed+=("$stage"); }
    record "$stage" "$status" "$est" "$(( ($(ms) - t) / 1000 ))" "exit $rc"
  fi
  collect "$stage"
done
CURRENT=summary

say "summary"
cat "$OUT/summary.md" 2>/dev/null
[ ${#skipped[@]} -eq 0 ] || echo "skipped (over the budget): ${skipped[*]}"
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "done in $(elapsed) s of the $BUDGET s budget: ${ran[*]:-no stage}${skipped:+ (skipped: ${skipped[*]})}"
exit 0
}
