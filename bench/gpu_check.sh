#!/usr/bin/env bash
# The GPU part of the CUDA-graph engine's verification, in one run of at most ~9 minutes.
#
# Written for the lent GPU machine (Python 3.12, torch 2.11, no Hydra/OmegaConf/MLflow/Optuna, no
# network): those come as wheels in .whl/ (bench/gpu_wheels.sh fetches them, ~22 MB), MNIST as its four
# gzipped IDX files in .whl/mnist/ (~11 MB; the job's "local" source checks their sha256 after gunzip).
# In order, each stage with its own time limit, so a slow one costs only itself:
#   1. the environment (GPU, driver, torch) and the wheels installed into a private --target dir;
#   2. the CUDA tests (tests/test_engines.py and the CUDA data test): graph vs eager, BN statistics,
#      the book's shape, resume after capture, optimizer state swapped, a real capture failure;
#   3. bench/step.py --device cuda for K = 1, 8, 32 seeds, article b128 and book b1;
#   4. the seed studies end to end through the real entry point with MLflow on (bench/study.py,
#      device=cuda), bn_vs_none and book_ch3 first, then the others while time is left;
#   5. each study's report, and bench/gpu_agreement.py: its final metrics against the committed CPU
#      reports (reports/<study>/README.md), within the seed-to-seed spread.
# Everything lands in $OUT: summary.txt (the stages, their exit codes and seconds, the agreement) and
# results.tgz (every log, the JSON rows, the reports, mlflow.db) — the device tool returns 8 files at most.
#
#   run: bash bench/gpu_check.sh                 (carry .whl; $OUT set by the tool)
#   rehearsal on a CPU machine, same stages at smoke size:  REHEARSE=1 PYTHON=<python> bash bench/gpu_check.sh
set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OUT=${OUT:-$REPO/gpu_check_out}
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-$REPO/.whl}
WORK=${WORK:-/tmp/bn_study_gpu_check}
BUDGET_S=${BUDGET_S:-540}   # the whole script; a stage that would start with too little left is skipped
REHEARSE=${REHEARSE:-0}
rm -rf "$WORK" && mkdir -p "$WORK/logs" "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
T0=$SECONDS

say() { echo "[$(date -u +%T) +$((SECONDS - T0))s] $*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET_S - (SECONDS - T0))); }
# stage NAME LIMIT_S COMMAND...: runs with a time limit (never past the budget), output to logs/NAME.log
stage() {
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  local remaining
  remaining=$(left)
  if ((remaining < 20)); then say "SKIP $name: ${remaining}s of the budget left"; return 99; fi
  ((limit > remaining)) && limit=$remaining
  say "start $name (limit ${limit}s)"
  timeout -k 5 "$limit" "$@" >"$WORK/logs/$name.log" 2>&1
  rc=$?
  say "end   $name rc=$rc in $((SECONDS - start))s$( ((rc == 124)) && echo ' (TIME LIMIT)')"
  return $rc
}
pack() {
  cp "$WORK/logs/"*.log "$WORK/" 2>/dev/null
  tar -czf "$OUT/results.tgz" -C "$WORK" --exclude='./data' --exclude='./site' --exclude='./studies/mlruns' --exclude='*.ckpt' . 2>/dev/null
  say "packed $(du -h "$OUT/results.tgz" | cut -f1) into results.tgz"
}
trap pack EXIT

# -- 1. environment and wheels -------------------------------------------------------------------------
say "repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') rehearse=$REHEARSE budget=${BUDGET_S}s"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import platform, torch; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
} | tee -a "$SUMMARY"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if ! "$PY" -c 'import hydra, omegaconf, mlflow, optuna' 2>/dev/null; then
  stage install 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$WHEELS"/*.whl || { say "wheels did not install: see logs/install.log"; exit 1; }
  export PYTHONPATH="$WORK/site:$REPO"
else
  export PYTHONPATH="$REPO"
fi
stage imports 60 "$PY" -c 'import hydra, omegaconf, mlflow, optuna, bn_study.app, hydra_plugins.bn_study_sweepers.optuna_sweeper; print("imports ok")' \
  || { say "imports failed: see logs/imports.log"; exit 1; }

export BN_STUDY_DATA=$WORK/data
mkdir -p "$BN_STUDY_DATA/MNIST/raw"
if [ -d "$WHEELS/mnist" ]; then
  for f in "$WHEELS"/mnist/*-ubyte.gz; do gunzip -c "$f" >"$BN_STUDY_DATA/MNIST/raw/$(basename "$f" .gz)"; done
elif [ -d "$REPO/data/MNIST/raw" ]; then
  cp "$REPO"/data/MNIST/raw/*-ubyte "$BN_STUDY_DATA/MNIST/raw/"
fi
say "data: $(ls "$BN_STUDY_DATA/MNIST/raw" | tr '\n' ' ')"

if [ "$REHEARSE" = 1 ]; then
  DEVICE=auto STEP_DEVICE=cpu SEEDS="1 2" STEP_ARGS=(--article-limit 2000 --book-steps 300 --repeats 1 --variants tutorial eager auto batched)
  STUDY_ARGS=(--quick) STUDIES="bn_vs_none book_ch3"
else
  DEVICE=cuda STEP_DEVICE=cuda SEEDS="1 8 32" STEP_ARGS=(--book-steps 5000 --repeats 3 --variants tutorial eager graph batched)
  STUDY_ARGS=() STUDIES="bn_vs_none book_ch3 adam_vs_bn bn_layers batch_size"
fi

# -- 2. the CUDA tests ----------------------------------------------------------------------------------
stage cuda_tests 180 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_engines.py \
  "tests/test_data.py::test_splits_land_on_the_requested_device"
tail -n 3 "$WORK/logs/cuda_tests.log" | sed 's/^/  /' | tee -a "$SUMMARY"

# -- 3. one training step: bench/step.py ----------------------------------------------------------------
# shellcheck disable=SC2086
stage step 150 "$PY" bench/step.py --device "$STEP_DEVICE" --workload both --seeds $SEEDS "${STEP_ARGS[@]}" \
  --json "$WORK/step.json"
grep -E "K=|^article|^book|^device" "$WORK/logs/step.log" | head -n 40 | sed 's/^/  /' | tee -a "$SUMMARY"

# -- 4. the studies end to end, then 5. their reports and the agreement with the CPU --------------------
mkdir -p "$WORK/studies"
for name in $STUDIES; do
  stage "study_$name" 200 "$PY" bench/study.py --experiments "$name" --no-overhead --launch-dir "$WORK/studies" \
    --override "device=$DEVICE" "${STUDY_ARGS[@]}" --json "$WORK/study_$name.json" || continue
  grep -E "^\s+$name " "$WORK/logs/study_$name.log" | sed 's/^/  /' | tee -a "$SUMMARY"
  (cd "$WORK/studies" && stage "report_$name" 90 "$PY" -m bn_study.report "$name" --out "$WORK/reports" --no-artifacts)
done
if [ -d "$WORK/reports" ]; then
  stage agreement 30 "$PY" bench/gpu_agreement.py --gpu "$WORK/reports" --cpu "$REPO/reports" \
    --markdown "$WORK/agreement.md"
  cat "$WORK/logs/agreement.log" | tee -a "$SUMMARY"
fi
say "done"
