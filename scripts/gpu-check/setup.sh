#!/usr/bin/env bash
# One step of every gpu-check stage (run by scripts/gpu-check/common.sh's setup_step, under its
# timeout): unpacks the carried CUDA allconv (and with "tests" the CUDA test binaries) into
# $STATE once per machine, then checks that every library they load at start-up is found
# (scripts/gpu-check/device-libs.sh). In the CPU rehearsal ($REHEARSAL=1) there is nothing to
# unpack: the library check runs on the CPU build, with the C library as its requirement.
set -uo pipefail
# shellcheck source=scripts/gpu-check/common.sh
source scripts/gpu-check/common.sh
if [ "$REHEARSAL" = 1 ]; then
  [ -x "$ALLCONV_BIN" ] || { echo "MISSING: the CPU build $ALLCONV_BIN (cargo build first)"; exit 1; }
  LIBS_REQUIRED="libc.so.6" CUDNN_SUBLIBS="" exec bash scripts/gpu-check/device-libs.sh "$ALLCONV_BIN"
fi
for f in .device/allconv.xz ${1:+.device/cuda-tests.tar.xz}; do
  [ -f "$f" ] || { echo "MISSING: $f (run scripts/prepare-gpu-check.sh here, carry .device)"; exit 1; }
done
command -v xz > /dev/null || echo "no xz on this machine: unpacking with Python's lzma"
bin=$(unpacked .device/allconv.xz allconv) || exit 1
echo "allconv: $bin ($(stat -c %s "$bin") bytes)"
if [ "${1:-}" = tests ]; then
  tests=$STATE/tests
  sum=$(cksum < .device/cuda-tests.tar.xz)
  if [ "$(cat "$tests.cksum" 2>/dev/null)" != "$sum" ]; then
    rm -rf "$tests" && untar_xz .device/cuda-tests.tar.xz "$tests" && echo "$sum" > "$tests.cksum" \
      || exit 1
  fi
  echo "CUDA test binaries in $tests: $(cd "$tests" && echo *)"
fi
exec bash scripts/gpu-check/device-libs.sh "$bin"
