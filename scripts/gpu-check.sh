#!/usr/bin/env bash
# Runs on the lent GPU machine (no Rust there), from the repository root, with .device/ carried
# (see scripts/prepare-gpu-check.sh). Builds nothing. Prints, in order:
#   1. the card; 2. correctness: `allconv check --device cuda` in fp32 and TF32 (every op the
#   networks use and one training step of all 12, against the CPU path); 3. allconv bench (fp32 and TF32) and
#   PyTorch's on the same card, with the ratio; 4. total throughput of N = 1, 2, 4 concurrent
#   All-CNN-C trainings on the card; 5. `allconv reproduce --preset gpu-smoke` end to end.
# Budget: about 8 minutes; every step has its own timeout so one failure does not eat the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .device/on-device.sh
bin=/tmp/allconv-check && mkdir -p $bin
xz -dc .device/allconv.xz > $bin/allconv && chmod +x $bin/allconv
out=${OUT:-/tmp/allconv-out} && mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/card.txt"

echo "== 1. correctness: allconv check --device cuda (fp32 and TF32, against the CPU path) =="
# The whole table and cuDNN's choices are in $out/check.txt; print the failures, the choices
# that are unusual (heuristic, unfused ReLU) and the summary.
start=$(date +%s)
timeout 180 $bin/allconv check --device cuda --precision fp32,tf32 > "$out/check.txt" 2>&1 \
  || echo "!! allconv check failed (exit $?)"
grep -E "FAIL|heuristic|not fused|^device check|^Error" "$out/check.txt" | head -60
echo "check wall time: $(( $(date +%s) - start )) s"

echo "== 2. throughput, batch 128: allconv (fp32, TF32) and PyTorch eager on the same card =="
timeout 150 $bin/allconv bench --device cuda --models model-a,model-c,all-cnn-c --iters 30 \
  --plans > "$out/allconv-bench.txt" 2>&1 || echo "!! allconv bench failed (exit $?)"
grep -v "^  x \[" "$out/allconv-bench.txt"
# What cuDNN chose at batch 128 (whole list in $out/allconv-bench.txt): any unfused ReLU or
# heuristic fallback, then the All-CNN-C shapes.
grep -E "not fused|heuristic" "$out/allconv-bench.txt" | head -10
grep -E "^  x \[128, (3|96|192), 32, 32\]" "$out/allconv-bench.txt" | head -8
timeout 120 /opt/torch/.venv/bin/python scripts/bench_pytorch.py --device cuda \
  --models model-a model-c all-cnn-c --iters 50 --tf32 both | tee "$out/torch-bench.csv" \
  || echo "!! PyTorch bench failed (exit $?)"
timeout 60 /opt/torch/.venv/bin/python scripts/bench_pytorch.py --device cuda \
  --models all-cnn-c --iters 50 --tf32 on --channels-last | tail -n +3 | tee -a "$out/torch-bench.csv"
/opt/torch/.venv/bin/python .device/gpu_ratio.py "$out/allconv-bench.txt" "$out/torch-bench.csv" \
  || echo "!! ratio table failed"

echo "== 3. several runs per GPU: total All-CNN-C training img/s of N concurrent processes (TF32) =="
for n in 1 2 4; do
  for i in $(seq "$n"); do
    timeout 120 $bin/allconv bench --device cuda --models all-cnn-c --precision tf32 --iters 200 \
      > "$out/jobs-$n-$i.txt" 2>&1 &
  done
  wait
  awk -v n="$n" '/^all-cnn-c/ { s += $NF ~ /cpu-s/ ? $(NF-1) : $NF; k++ }
    END { printf "jobs %d: %d processes reported, total train %.0f img/s\n", n, k, s }' "$out"/jobs-"$n"-*.txt
done

echo "== 4. allconv reproduce --preset gpu-smoke (2 models, 4 epochs, 5,000 images) =="
mkdir -p data && xz -dc .device/cifar-10-smoke.tar.xz | tar -C data -xf -
timeout 240 $bin/allconv reproduce --preset gpu-smoke --jobs 2 --out "$out/gpu-smoke" \
  || echo "!! gpu-smoke failed (exit $?)"
[ -f "$out/gpu-smoke/report/report.md" ] && sed -n 1,60p "$out/gpu-smoke/report/report.md"
