#!/usr/bin/env bash
# Short GPU check (< 5 minutes): the benchmarks on a GPU, for sessions lent a GPU machine.
# Usage (repo root, on the GPU machine): bash benchmarks/gpu_check.sh [OUT_DIR]
# Needs TensorFlow with CUDA there: uses it if importable, else installs from wheels in
# ./.whl (carried by the caller) or from PyPI (tensorflow[and-cuda]==2.21.*).
set -euo pipefail
out=${1:-${OUT:-/tmp/l2l_gpu}}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
if ! python3 -c "import tensorflow" 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
  else
    python3 -m pip install -q "tensorflow[and-cuda]==2.21.*" tensorflow-datasets==4.9.10 importlib_resources absl-py matplotlib \
      || { echo "gpu_check: TensorFlow is not installed here and cannot be installed; nothing measured" >&2; exit 3; }
  fi
fi
python3 -c "import tensorflow as tf; print('GPUs:', tf.config.list_physical_devices('GPU'))" | tee -a "$out/gpu.txt"
PYTHONPATH=.:${PYTHONPATH:-} timeout 280 python3 -m benchmarks.run --quick --output="$out/results.json" 2>&1 | tee "$out/log.txt"
