#!/usr/bin/env bash
# Builds, here (no GPU needed), everything scripts/gpu-check.sh runs on a lent GPU machine, into
# .device/ (listed in .git/info/exclude; carry it with the device tool's `carry: [".device"]`).
#   bash scripts/prepare-gpu-check.sh && (device) bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '.device/' .git/info/exclude 2>/dev/null || echo '.device/' >> .git/info/exclude
cargo fetch
# shellcheck disable=SC1091
source ../shared/cuda/env.sh
cargo build --release --features cuda -p allconv
test_bin=$(cargo test --release --features cuda -p allconv-models --test cuda_vs_cpu --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*cuda_vs_cpu[^"]*\)".*/\1/p' | tail -1)
[ -n "$test_bin" ] || { echo "could not find the cuda_vs_cpu test binary" >&2; exit 1; }
mkdir -p .device
strip -o .device/allconv target/release/allconv
strip -o .device/cuda_vs_cpu "$test_bin"
xz -T2 -6 -f .device/allconv .device/cuda_vs_cpu
cp ../shared/cuda/on-device.sh .device/
ls -l .device
