#!/usr/bin/env bash
# Builds, here (no GPU needed), everything scripts/gpu-check.sh runs on a lent GPU machine, into
# .device/ (listed in .git/info/exclude): the CUDA build of allconv (whose `allconv check` is
# the correctness check), the gpu-smoke data subset, and on-device.sh; all .xz.
# Then carry it with the device tool: run(command="bash scripts/gpu-check.sh", carry=[".device"]).
#   bash scripts/prepare-gpu-check.sh        # ~10-25 min on 2 cores the first time
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '.device/' .git/info/exclude 2>/dev/null || echo '.device/' >> .git/info/exclude
cargo fetch
rm -rf .device && mkdir -p .device

# The gpu-smoke subset (5,000 training + 1,000 test images), made with the CPU build.
smoke=data/cifar-10-smoke
if [ ! -f "$smoke/test_batch.bin" ]; then
  cargo run --quiet -p allconv -- data fetch --no-progress
  cargo run --quiet -p allconv -- data subset --per-file 1000 --test 1000 --to "$smoke"
fi
tar -C data -cf - cifar-10-smoke | xz -T2 -6 > .device/cifar-10-smoke.tar.xz

# shellcheck disable=SC1091
source ../shared/cuda/env.sh
# The CUDA build has its own target folder (as in .ci/run), so the CPU build is left alone.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
cargo build --release --features cuda -p allconv
strip -o .device/allconv "$CARGO_TARGET_DIR/release/allconv"
xz -T2 -6 -f .device/allconv
cp ../shared/cuda/on-device.sh scripts/gpu_ratio.py .device/
ls -l .device
du -cb .device/* | tail -1 | awk '{ printf "carry total %.1f MiB (limit 64)\n", $1 / 1048576 }'
