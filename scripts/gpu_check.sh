#!/usr/bin/env bash
# The GPU measurements behind docs/PERFORMANCE.md, on one CUDA host, written under $OUT.
#
#   bash scripts/gpu_check.sh [STAGE...]     stages: test speed fast reference (default: all four)
#
#   test       the GPU equivalence test (CUDA-graph steps == eager steps) and the pipeline tests   ~1 min
#   speed      `resbench speed paper/final` per fast-pipeline mode in SPEED_MODES, each against
#              the reference pipeline in the same process                                      ~2 min
#   fast       full paper/final runs, fast pipeline with --compile (auto: CUDA graphs), seeds 0 1   ~2 min
#   reference  full paper/final runs, the authors' pipeline, seeds 0 and 1 side by side          ~5-8 min
# SPEED_MODES (default "off cudagraph fp32-cudagraph"): off = eager bf16, a --compile-mode name,
# or fp32-MODE; add "inductor reduce-overhead max-autotune" where time allows (each compiles
# for one to several minutes).
#
# The host needs python3 with torch (CUDA), torchvision, numpy, pandas, matplotlib, click, tqdm,
# pillow and pytest. MLflow and the data come from a kit made beforehand where pip works, from
# the repository root (results/ is git-ignored):
#   mkdir -p results/gpu-kit
#   cp ../shared/data/cifar10-jpeg.tar.xz ../shared/data/make_cifar10_batches.py results/gpu-kit/
#   bash ../shared/gpu/fetch-mlflow-wheels.sh results/gpu-kit/wheels
# With the device tool, carry the kit: run(command="bash scripts/gpu_check.sh test speed fast",
# carry=["results/gpu-kit"]), then the same with "reference" (see docs/PERFORMANCE.md).
#
# Writes $OUT/gpu_check.log (everything), env.txt, speed.txt (the tables), runs.csv (one line per
# full run) and mlflow.tgz (the stores, without artifacts). OUT defaults to results/gpu.
# A smoke test of the script itself on a CPU (tiny and meaningless numbers):
#   ALLOW_CPU=1 DATA=/tmp/cifar ENTRY=table1/row1 SPEED_MODES=off EXTRA="--device cpu --limit-train 64
#   --limit-test 32" RUN_EXTRA="--epochs 1" SPEED_EXTRA="--steps 2 --warmup 1" bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KIT=${KIT:-$ROOT/results/gpu-kit}
OUT=${OUT:-$ROOT/results/gpu}
WORK=${WORK:-/tmp/resbench-gpu}
PY=${PYTHON:-python3}
SPEED_MODES=${SPEED_MODES:-"off cudagraph fp32-cudagraph"}
ENTRY=${ENTRY:-paper/final}
read -r -a EXTRA <<< "${EXTRA:-}"; read -r -a RUN_EXTRA <<< "${RUN_EXTRA:-}"
read -r -a SPEED_EXTRA <<< "${SPEED_EXTRA:-}"
STAGES=${*:-test speed fast reference}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
failed=()

say() { printf '\n== %s  %s\n' "$(date +%T)" "$*"; }

export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! "$PY" -c "import mlflow" 2>/dev/null; then
  say "installing mlflow from $KIT/wheels"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$KIT"/wheels/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:$WORK/site
fi
if [ -z "${ALLOW_CPU:-}" ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU visible')" || exit 1
fi

DATA=${DATA:-$WORK/data}
if [ ! -f "$DATA/cifar-10-batches-py/test_batch" ]; then
  say "rebuilding CIFAR-10 batches from the JPEG archive"
  archive=$KIT/cifar10-jpeg.tar.xz
  [ -f "$archive" ] || archive=$ROOT/../shared/data/cifar10-jpeg.tar.xz
  builder=$KIT/make_cifar10_batches.py
  [ -f "$builder" ] || builder=$ROOT/../shared/data/make_cifar10_batches.py
  "$PY" "$builder" "$archive" "$DATA" || exit 1
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  "$PY" -c "import torch, torchvision, mlflow; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cudnn', torch.backends.cudnn.version(), 'torchvision', torchvision.__version__, 'mlflow', mlflow.__version__)"
  nproc; git -C "$ROOT" rev-parse HEAD 2>/dev/null; git -C "$ROOT" status --porcelain 2>/dev/null | head -20
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

resbench() { (cd "$WORK" && "$PY" -m benchmarks.cli "$@"); }
COMMON=(--data-dir "$DATA" --no-download "${EXTRA[@]}")

for stage in $STAGES; do
  case $stage in
  test)
    say "tests: CUDA-graph equivalence and the pipeline tests"
    (cd "$ROOT" && "$PY" -m pytest -q -p no:cacheprovider tests/test_pipeline.py tests/test_speed.py) \
      || failed+=(test)
    ;;
  speed)
    for mode in $SPEED_MODES; do
      case $mode in
        off) flags=(--no-compile) ;;
        fp32-*) flags=(--precision fp32 --compile --compile-mode "${mode#fp32-}") ;;
        *) flags=(--compile --compile-mode "$mode") ;;
      esac
      say "speed $ENTRY ${flags[*]}"
      resbench speed "$ENTRY" --steps 300 --warmup 30 "${flags[@]}" "${COMMON[@]}" "${SPEED_EXTRA[@]}" \
        --tracking-uri "sqlite:///$WORK/speed.db" | tee -a "$OUT/speed.txt" || failed+=("speed:$mode")
    done
    ;;
  fast)
    for seed in 0 1; do
      say "$ENTRY, fast pipeline, --compile, seed $seed"
      t0=$(date +%s%N)
      resbench run "$ENTRY" --pipeline fast --compile --seed "$seed" "${COMMON[@]}" "${RUN_EXTRA[@]}" \
        --checkpoint-dir "$WORK/ckpt-fast" --tracking-uri "sqlite:///$WORK/fast.db" || failed+=("fast:$seed")
      echo "process wall time: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    done
    ;;
  reference)
    say "$ENTRY, reference pipeline, seeds 0 and 1 side by side"
    pids=()
    for seed in 0 1; do
      resbench run "$ENTRY" --pipeline reference --seed "$seed" "${COMMON[@]}" "${RUN_EXTRA[@]}" --checkpoint-dir \
        "$WORK/ckpt-ref$seed" --tracking-uri "sqlite:///$WORK/ref$seed.db" > "$WORK/ref$seed.log" 2>&1 &
      pids+=($!)
    done
    for i in 0 1; do wait "${pids[$i]}" || failed+=("reference:$i"); tail -3 "$WORK/ref$i.log"; done
    ;;
  *) echo "error: unknown stage $stage (use test, speed, fast, reference)"; exit 2 ;;
  esac
done

say "summary"
"$PY" - "$WORK" "$OUT/runs.csv" <<'EOF'
import sys
from pathlib import Path

import pandas as pd

from tracking import names
from tracking.query import search_runs

work, dest = Path(sys.argv[1]), sys.argv[2]
frames = []
for db in sorted(work.glob("*.db")):
    if db.name == "speed.db":
        continue
    df = search_runs(f"sqlite:///{db}", names.DEFAULT_EXPERIMENT)
    if len(df):
        frames.append(df.assign(store=db.name))
if frames:
    df = pd.concat(frames)
    cols = {"store": "store", "params.pipeline": "pipeline", "params.compile": "compile",
            "params.compile_mode": "compile_mode", "params.precision": "precision", "params.seed": "seed",
            "status": "status", f"metrics.{names.TEST_ACCURACY}": "test_acc",
            f"metrics.{names.TEST_LOSS}": "test_loss", f"metrics.{names.WALL_SECONDS}": "wall_seconds",
            "tags.resbench.device": "device"}
    out = df[[c for c in cols if c in df]].rename(columns=cols)
    out.to_csv(dest, index=False)
    print(out.to_string(index=False))
EOF
(cd "$WORK" && tar czf "$OUT/mlflow.tgz" ./*.db 2>/dev/null)
if [ ${#failed[@]} -gt 0 ]; then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "all stages passed: $STAGES"
