#!/usr/bin/env bash
# Runs on the lent GPU machine (no Rust there), from the repository root, with .device/ carried
# (see scripts/prepare-gpu-check.sh). Prints: the card, the CPU-vs-CUDA one-step check of the 12
# networks, allconv's throughput and PyTorch's on the same card. Builds nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .device/on-device.sh
xz -dc .device/allconv.xz > /tmp/allconv && chmod +x /tmp/allconv
xz -dc .device/cuda_vs_cpu.xz > /tmp/cuda_vs_cpu && chmod +x /tmp/cuda_vs_cpu
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== correctness: one training step (dropout off), CPU vs CUDA, all 12 networks =="
timeout 240 /tmp/cuda_vs_cpu --nocapture || echo "!! correctness check failed (exit $?)"
echo "== allconv bench --device cuda (batch 128, fp32) =="
timeout 150 /tmp/allconv bench --device cuda --models model-a,model-c,all-cnn-c --batch 128 --iters 20 \
  || echo "!! allconv bench failed (exit $?)"
echo "== PyTorch on the same card (batch 128) =="
timeout 150 /opt/torch/.venv/bin/python scripts/bench_pytorch.py --device cuda \
  --models model-a model-c all-cnn-c --iters 50 --tf32 both || echo "!! PyTorch bench failed (exit $?)"
