#!/usr/bin/env bash
# The CUDA path in one command, within 5 minutes on one GPU: the test suite on CUDA, then bench/gpu_check.py (both
# modes fresh, --occlude, interrupt and resume, checkpoints moved between CPU and GPU, determinism, TF32 on against
# off, a 128-px run's seconds per epoch and peak GPU memory). Without a GPU it says so in one line and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: skipped: no CUDA GPU here (torch.cuda.is_available() is False)"
  exit 0
fi
python -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
timeout 180 python -m pytest -q -p no:cacheprovider
echo "gpu_check: pytest on CUDA exited $?"
timeout 120 python bench/gpu_check.py
