#!/usr/bin/env bash
# Fetch what bench/gpu_check.sh needs on a machine without a network that has torch, numpy, scipy,
# matplotlib, pytest and rich but not Hydra, OmegaConf, MLflow or Optuna (the lent GPU machine):
# their wheels, at the versions installed here (the set the test suite passed with), for that machine's
# Python — plus MNIST's four IDX files, gzipped, from the local data cache. About 33 MB in all; the
# device tool carries at most 64 MiB with the working tree.
#
#   bash bench/gpu_wheels.sh [DEST=.whl] [PYTHON_VERSION=3.12]
#
# The list is what a job, a report and the sweeper import (measured: the distributions behind
# sys.modules after `python -m bn_study -m +experiment=bn_vs_none` and `python -m bn_study.report`),
# minus what that machine already has (../.library/device/KINDS.md lists its packages).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PYVER=${2:-3.12}
DISTS="Mako SQLAlchemy alembic annotated-types cachetools cffi pycparser colorlog cryptography databricks-sdk
  fastapi google-auth hydra-core hydra-joblib-launcher hydra-submitit-launcher submitit importlib_metadata
  mlflow-skinny mlflow-tracing omegaconf opentelemetry-api opentelemetry-proto opentelemetry-sdk
  opentelemetry-semantic-conventions optuna pydantic pydantic_core sniffio sqlparse starlette typing-inspection"
mkdir -p "$DEST/mnist"
# shellcheck disable=SC2086
SPECS=$(python - $DISTS <<'EOF'
import importlib.metadata as md, sys
print(" ".join(f"{n}=={md.version(n)}" for n in sys.argv[1:]))
EOF
)
PLATFORMS=()
for p in manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
  manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
# shellcheck disable=SC2086
python -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" $SPECS
# antlr4-python3-runtime 4.9.3 (OmegaConf's parser) is an sdist only: built into a pure-python wheel
python -m pip wheel -q --no-deps -w "$DEST" "antlr4-python3-runtime==$(python -c 'import importlib.metadata as m; print(m.version("antlr4-python3-runtime"))')"
DATA=${BN_STUDY_DATA:-data}
for f in "$DATA"/MNIST/raw/*-ubyte; do gzip -9 -c "$f" >"$DEST/mnist/$(basename "$f").gz"; done
du -sh "$DEST"
