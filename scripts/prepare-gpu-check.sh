#!/usr/bin/env bash
# Builds, here (no GPU needed), everything scripts/gpu-check.sh runs on a lent GPU machine, into
# .device/ (ignored by git), and is what CI uses to make the CUDA build, so that it cannot rot:
#   .device/allconv.xz             the CUDA build of allconv, stripped (its `allconv check` is
#                                  the correctness check)
#   .device/cuda-tests.tar.xz      the CUDA test binaries cuda_conv, cuda_kernels,
#                                  cuda_relu_rules, cuda_vs_cpu (crates/models/tests), stripped
#   .device/cifar-10-smoke.tar.xz  the gpu-smoke subset (5,000 training + 1,000 test images)
#   .device/on-device.sh           ../shared/cuda/on-device.sh (the CUDA libraries' folders there)
# Then carry it with the device tool: run(command="bash scripts/gpu-check.sh 1 2",
# carry=[".device"]), and `bash scripts/gpu-check.sh 3` (see `bash scripts/gpu-check.sh --plan`).
#
#   bash scripts/prepare-gpu-check.sh                   # ~20 min on 2 cores the first time
#   bash scripts/prepare-gpu-check.sh --synthetic-data --clippy    # what CI runs
#
# --synthetic-data packs a synthetic stand-in of the gpu-smoke subset (scripts/gpu-check/
# synthetic_cifar.py) instead of the real one, which needs CIFAR-10 here (fetched once, 163 MB).
# --clippy also runs the CUDA build's lints. The build, the test binaries and the lints share one
# target folder, $ALLCONV_CUDA_TARGET_DIR (default target/cuda), away from the CPU build's.
# ../shared/cuda/env.sh ($ALLCONV_CUDA_ENV) sets up the CUDA 13 toolkit from pip wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

synthetic=0
clippy=0
for arg in "$@"; do
  case $arg in
    --synthetic-data) synthetic=1 ;;
    --clippy) clippy=1 ;;
    *) echo "prepare-gpu-check.sh: unknown argument '$arg' (--synthetic-data, --clippy)" >&2; exit 2 ;;
  esac
done
start=$(date +%s)
step() { echo "== prepare-gpu-check ($(( $(date +%s) - start )) s): $*"; }
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cargo fetch
rm -rf .device && mkdir -p .device

step "the gpu-smoke data"
if [ "$synthetic" = 1 ]; then
  python3 scripts/gpu-check/synthetic_cifar.py "$staging/cifar-10-smoke" --per-file 1000 --test 1000
else
  # The real subset, made with the CPU build (fetching CIFAR-10 once if it is not here).
  smoke=data/cifar-10-smoke
  if [ ! -f "$smoke/test_batch.bin" ]; then
    cargo run --quiet -p allconv -- data fetch --no-progress
    cargo run --quiet -p allconv -- data subset --per-file 1000 --test 1000 --out "$smoke"
  fi
  cp -r "$smoke" "$staging/cifar-10-smoke"
fi
tar -C "$staging" -cf - cifar-10-smoke | xz -T2 -6 > .device/cifar-10-smoke.tar.xz

step "the CUDA build environment"
# env.sh is written for an interactive shell: on an empty wheel cache its probes for wheels not
# yet downloaded may fail (ls of a missing file inside a pipeline), which under this script's
# `set -euo pipefail` would end it there with no message. So it runs with errexit, pipefail and
# nounset off, and its own status decides.
cuda_env=${ALLCONV_CUDA_ENV:-../shared/cuda/env.sh}
[ -f "$cuda_env" ] || { echo "$cuda_env not found: no CUDA build environment" >&2; exit 1; }
set +euo pipefail
# shellcheck disable=SC1090
source "$cuda_env"
cuda_env_status=$?
set -euo pipefail
if [ "$cuda_env_status" -ne 0 ]; then
  echo "$cuda_env failed (status $cuda_env_status): no CUDA build environment" >&2
  exit 1
fi
export CARGO_TARGET_DIR=${ALLCONV_CUDA_TARGET_DIR:-target/cuda}

# One cargo invocation for the binary and the test binaries, and the lints with the same
# packages and features: separate invocations resolve different features for shared
# dependencies (allconv-train's serde_json float_roundtrip, allconv-models' dev-dependencies) and
# would build candle, its CUDA kernels included, twice.
packages=(-p allconv -p allconv-models --features allconv/cuda,allconv-models/cuda)
tests=(cuda_conv cuda_kernels cuda_relu_rules cuda_vs_cpu)
step "cargo build --release: allconv and the CUDA test binaries (target folder $CARGO_TARGET_DIR)"
cargo build --release "${packages[@]}" --bin allconv "${tests[@]/#/--test=}" \
  --message-format=json-render-diagnostics > "$staging/build.json"
if [ "$clippy" = 1 ]; then
  step "cargo clippy --release --all-targets (allconv, allconv-models; CUDA)"
  cargo clippy --release "${packages[@]}" --all-targets -- -D warnings
fi

step "packing .device"
strip -o "$staging/allconv" "$CARGO_TARGET_DIR/release/allconv"
# Every library the binary links beyond the C and C++ runtime must be one that
# scripts/gpu-check/device-libs.sh checks on the GPU machine.
known=" $(bash scripts/gpu-check/device-libs.sh --list) "
for lib in $(readelf -d "$staging/allconv" | awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }'); do
  case $lib in
    libc.so.*|libm.so.*|libgcc_s.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libstdc++.so.*|ld-linux*) ;;
    *) case $known in *" $lib "*) ;; *)
      echo "the CUDA allconv links $lib, which scripts/gpu-check/device-libs.sh does not check" >&2
      exit 1 ;; esac ;;
  esac
done
# xz's fastest preset with a 64 MiB window: as small as -6 within 10% and five times faster
# here, and the window spans whole binaries, so the test binaries' common bytes (candle and
# its kernels) are stored once in their archive (220 MB -> 8 MB in 8 s, against 9 MB in 128 s
# at -9). Unpacking needs 64 MiB of memory, in xz or Python's lzma.
fast_xz=(xz -T1 --lzma2=preset=1,dict=64MiB)
"${fast_xz[@]}" -c "$staging/allconv" > .device/allconv.xz
mkdir -p "$staging/tests"
python3 - "$staging/build.json" "${tests[@]}" > "$staging/tests.txt" <<'EOF'
import json, sys
wanted = set(sys.argv[2:])
found = {}
for line in open(sys.argv[1]):
    m = json.loads(line)
    target = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") and target.get("name") in wanted \
            and "test" in target.get("kind", []):
        found[target["name"]] = m["executable"]
missing = wanted - set(found)
if missing:
    sys.exit(f"cargo build built no test binary {sorted(missing)}")
for name, path in sorted(found.items()):
    print(name, path)
EOF
while read -r name path; do
  strip -o "$staging/tests/$name" "$path"
done < "$staging/tests.txt"
tar -C "$staging/tests" -cf - . | "${fast_xz[@]}" > .device/cuda-tests.tar.xz
cp ../shared/cuda/on-device.sh .device/
ls -l .device
total=$(du -cb .device/* | tail -1 | cut -f1)
awk -v t="$total" 'BEGIN { printf "carry total %.1f MiB (limit 64)\n", t / 1048576 }'
if [ "$total" -ge $((64 * 1048576)) ]; then
  echo ".device is over the 64 MiB that may travel with a command" >&2
  exit 1
fi
step "done"
