#!/usr/bin/env bash
# The GPU check, in stages that fit a lent GPU machine (at most 10 minutes per command, 15 minutes
# of machine time in all, the last 12,000 characters of output and at most 8 files back). Runs on
# that machine (no Rust there) from the repository root with .device/ carried (made here by
# scripts/prepare-gpu-check.sh); builds nothing.
#
#   bash scripts/gpu-check.sh --plan        # every stage with its worst case in seconds
#   bash scripts/gpu-check.sh 1 2           # stages 1 and 2 in one command (480 s worst case)
#   bash scripts/gpu-check.sh 3             # one stage
#   bash scripts/gpu-check.sh --rehearse    # every stage on the CPU build, tiny sizes (CI)
#
# Stages (scripts/gpu-check/stage<N>.sh; each step has its own timeout, and a stage's worst case
# is their sum, at most 240 s; all three at most 780 s, to fit one cold start in 15 minutes):
#   1. correctness: the card; `allconv check` in fp32 and TF32 x cuDNN's deterministic and free
#      algorithms x our own and candle's convolution engine (remembered for stage 3); the CUDA
#      test binaries cuda_conv, cuda_kernels, cuda_relu_rules, cuda_vs_cpu; memcheck on one.
#   2. speed: allconv bench and PyTorch on the same card (fp32, TF32, channels_last, training's
#      default setting, candle's engine), ratios, the total of 1, 2, 4 concurrent runs.
#   3. pipeline: reproduce --preset gpu-smoke end to end (no second check), one full-size epoch.
# Each stage writes two files into $OUT (stage<N>-summary.txt, stage<N>-logs.tar.xz) and prints
# its summary (at most 60 lines) last; after several stages every summary is printed again, so
# the tail of the output holds them all. Between commands the machine keeps $GPU_CHECK_STATE
# (default /tmp/allconv-gpu-check): the unpacked binaries and stage 1's check record.
#
# --rehearse runs the same stage scripts with the CPU build ($ALLCONV_BIN, default
# ${CARGO_TARGET_DIR:-target}/debug/allconv), `--device cpu`, tiny synthetic data, a temporary
# $OUT and state, and no GPU-only step (nvidia-smi, the CUDA test binaries, memcheck, PyTorch
# where it is missing); it fails if a step fails, a stage writes more than 8 files, prints a
# summary over 60 lines (or one that the last 12,000 characters of its output do not hold), or
# overruns its worst case.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

REHEARSAL=0
PLAN=0
stages=()
for arg in "$@"; do
  case $arg in
    --plan) PLAN=1 ;;
    --rehearse) REHEARSAL=1 ;;
    1|2|3) stages+=("$arg") ;;
    *) echo "gpu-check.sh: unknown argument '$arg' (stages 1 2 3, --plan, --rehearse)" >&2; exit 2 ;;
  esac
done
[ ${#stages[@]} -gt 0 ] || stages=(1 2 3)

# shellcheck source=scripts/gpu-check/common.sh
source scripts/gpu-check/common.sh

# Each stage's worst case, from the timeouts its own script defines.
budget_of() {
  # shellcheck disable=SC1090,SC2030,SC2031  # the stage scripts, read for their numbers
  (export GPU_CHECK_PLAN=1; source "scripts/gpu-check/stage$1.sh"; echo "$(stage_budget) $STAGE_TITLE")
}

if [ "$PLAN" = 1 ]; then
  total=0
  for s in 1 2 3; do
    read -r seconds title <<< "$(budget_of "$s")"
    # shellcheck disable=SC1090
    steps=$(export GPU_CHECK_PLAN=1; source "scripts/gpu-check/stage$s.sh"; echo "$STEPS")
    printf 'stage %s: %3d s worst case (limit 240): %s\n' "$s" "$seconds" "$title"
    printf '         timeouts, s x times: %s\n' "$steps"
    total=$((total + seconds))
    [ "$seconds" -le 240 ] || { echo "stage $s: over its 240 s" >&2; over=1; }
  done
  printf 'all stages: %d s worst case (limit 780; one command may run 600 s: "gpu-check.sh 1 2", then "gpu-check.sh 3")\n' "$total"
  [ "$total" -le 780 ] || { echo "all stages: over 780 s" >&2; over=1; }
  exit "${over:-0}"
fi

export REHEARSAL
if [ "$REHEARSAL" = 1 ]; then
  export DEVICE=cpu
  target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$PWD/$target ;; esac
  export ALLCONV_BIN=${ALLCONV_BIN:-$target/debug/allconv}
  export STATE=${GPU_CHECK_STATE:-$(mktemp -d)}
  export OUT=${OUT:-$(mktemp -d)}
else
  export DEVICE=cuda
  export STATE=${GPU_CHECK_STATE:-/tmp/allconv-gpu-check}
  export OUT=${OUT:-$STATE/out}
fi
mkdir -p "$STATE" "$OUT"

failed=0
for STAGE in "${stages[@]}"; do
  export STAGE
  read -r budget _ <<< "$(budget_of "$STAGE")"
  start=$(date +%s)
  files_before=$(find "$OUT" -maxdepth 1 -type f | wc -l)
  # shellcheck disable=SC1090
  if [ "$REHEARSAL" = 1 ]; then
    # The stage's whole output, to check that its last 12,000 characters hold the summary.
    (source "scripts/gpu-check/stage$STAGE.sh") 2>&1 | tee "$STATE/stage$STAGE-output.txt"
  else
    (source "scripts/gpu-check/stage$STAGE.sh")
  fi
  wall=$(( $(date +%s) - start ))
  [ "$REHEARSAL" = 1 ] || continue
  summary=$OUT/stage$STAGE-summary.txt
  written=$(( $(find "$OUT" -maxdepth 1 -type f | wc -l) - files_before ))
  lines=$(wc -l < "$summary" 2>/dev/null || echo 0)
  chars=$(wc -c < "$summary" 2>/dev/null || echo 0)
  tail -c 12000 "$STATE/stage$STAGE-output.txt" > "$STATE/tail.txt"
  problems=""
  [ -s "$summary" ] || problems+=" no summary;"
  [ "$written" -le 8 ] || problems+=" $written files written (limit 8);"
  [ "$lines" -le "$SUMMARY_MAX_LINES" ] || problems+=" summary of $lines lines (limit $SUMMARY_MAX_LINES);"
  [ "$chars" -le "$SUMMARY_MAX_CHARS" ] || problems+=" summary of $chars characters (limit $SUMMARY_MAX_CHARS);"
  # The whole summary, as printed last, within the last 12,000 characters of the output.
  python3 -c 'import sys; sys.exit(open(sys.argv[1]).read() not in open(sys.argv[2]).read())' \
    "$summary" "$STATE/tail.txt" 2>/dev/null || problems+=" summary not in the output's last 12,000 characters;"
  [ "$wall" -le "$budget" ] || problems+=" $wall s (worst case $budget s);"
  [ -s "$STATE/stage$STAGE-failed-steps" ] \
    && problems+=" failed steps: $(tr '\n' ' ' < "$STATE/stage$STAGE-failed-steps");"
  if [ -n "$problems" ]; then
    echo "REHEARSAL FAILED, stage $STAGE:$problems" >&2
    failed=1
  else
    echo "rehearsal stage $STAGE: $wall s of $budget s, $written files, summary $lines lines / $chars characters"
  fi
done

if [ ${#stages[@]} -gt 1 ]; then
  echo
  echo "==== all summaries ===="
  for STAGE in "${stages[@]}"; do
    cat "$OUT/stage$STAGE-summary.txt" 2>/dev/null || echo "stage $STAGE: no summary"
  done
fi
if [ "$REHEARSAL" = 1 ]; then
  [ -n "${GPU_CHECK_STATE:-}" ] || rm -rf "$STATE"
  exit $failed
fi
