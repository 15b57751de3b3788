# shellcheck shell=bash
# shellcheck disable=SC2034  # STAGE_TITLE, STEPS and the T_* numbers are read by common.sh
# Stage 1 of scripts/gpu-check.sh (sourced by it): correctness. The card; `allconv check` in every
# setting training can use (fp32 and TF32, cuDNN's deterministic and free algorithm sets, our own
# and candle's convolution engine), remembered in $STATE/check-record for stage 3's training; the
# carried CUDA test binaries (offset views, unaligned inputs, NaNs, plan caching, determinism,
# our kernels bit for bit, the quick check in every setting), one of them under
# compute-sanitizer's memcheck.

STAGE_TITLE="correctness: the card, allconv check in every training setting, the CUDA test binaries, memcheck"
# Timeouts in seconds; their sum is the stage's worst case (scripts/gpu-check.sh --plan).
T_SETUP=25
T_CARD=10
T_CHECK=120
T_TEST_CONV=20
T_TEST_KERNELS=10
T_TEST_RELU=10
T_TEST_VS_CPU=20
T_MEMCHECK=20
T_PACK=5
STEPS="setup=${T_SETUP}x1 card=${T_CARD}x1 check=${T_CHECK}x1 test-conv=${T_TEST_CONV}x1 test-kernels=${T_TEST_KERNELS}x1 test-relu=${T_TEST_RELU}x1 test-vs-cpu=${T_TEST_VS_CPU}x1 memcheck=${T_MEMCHECK}x1 pack=${T_PACK}x1"
[ "${GPU_CHECK_PLAN:-0}" = 1 ] && return 0

stage_begin
setup_step tests

if [ "$REHEARSAL" = 1 ]; then
  run_step card "$T_CARD" card.txt -- lscpu
  say "card: none, CPU rehearsal ($(awk -F': *' '/^Model name/ { print $2; exit }' "$WORK/card.txt"))"
else
  run_step card "$T_CARD" card.txt -- nvidia-smi \
    --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
  say "card: $(head -1 "$WORK/card.txt")"
fi

# The check: every setting, the full check on CUDA (the quick one on the CPU), remembered.
if [ "$REHEARSAL" = 1 ]; then
  check_flags=(--device cpu --precision fp32 --quick)
else
  check_flags=(--device cuda --precision "fp32,tf32")
fi
mkdir -p "$STATE/check-record"
run_step check "$T_CHECK" check.txt -- "$BIN" check "${check_flags[@]}" \
  --deterministic both --conv-engine both --runs "$STATE/check-record"
log=$WORK/check.txt
if grep -q "^device check on .*cases" "$log"; then
  say "allconv check ${check_flags[*]} --deterministic both --conv-engine both:"
  say "  $(grep "^device check on .*cases" "$log" | tail -1)"
  # One line per setting: PASS, or FAIL with the failing ops.
  grep -E "^  (fp32|tf32), " "$log" | while read -r line; do say "  $line"; done
  failed=$(grep -c " FAIL$" "$log")
  if [ "$failed" -gt 0 ]; then
    say "  first failing rows (op shape type prec alg engine max-abs max-rel tolerance):"
    grep " FAIL$" "$log" | head -6 | while read -r line; do say "    ${line% FAIL}"; done
  fi
else
  rows=$(grep -cE " (PASS|FAIL)$" "$log")
  say "allconv check did not finish (status $STEP_STATUS) after $rows rows; its last lines:"
  tail -4 "$log" | while read -r line; do say "  $line"; done
fi
record=$(awk '/^recorded in / { print $3; exit }' "$log")
[ -n "$record" ] && say "  remembered for stage 3 in $record"
# cuDNN's choices (CUDA only): how many shapes, and the unusual ones: a heuristic fallback
# (timing impossible), bias + ReLU not fused, TF32 math in an fp32 plan, fp16 down-conversion,
# a non-deterministic algorithm in a deterministic-only plan.
plans=$(sed -n '/^cuDNN.s choices per convolution shape:/,/^device check on/p' "$log" | grep -c '^  x ')
if [ "$plans" -gt 0 ]; then
  unusual=$(grep '^  x ' "$log" | grep -E 'heuristic|not fused|ALLOW_CONVERSION|fp32.*TENSOR_OP_MATH|deterministic-only.*non-deterministic')
  say "  cuDNN plans: $plans shapes; unusual choices: $(grep -c . <<< "$unusual")"
  head -4 <<< "$unusual" | while read -r line; do say "    $line"; done
fi

# The CUDA test binaries, then memcheck on our own kernels' tests.
if [ "$REHEARSAL" = 1 ]; then
  say "CUDA test binaries and memcheck: not run (CPU rehearsal: they need a GPU)"
else
  test_step() {
    local name=$1 seconds=$2
    if [ ! -x "$TESTS/$name" ]; then
      say "$name: MISSING from .device/cuda-tests.tar.xz"
      return
    fi
    run_step "$name" "$seconds" "test-$name.txt" -- "$TESTS/$name"
    local result
    result=$(grep -E "^test result:" "$WORK/test-$name.txt" | tail -1 | cut -d. -f1-3)
    if [ "$STEP_STATUS" = 0 ]; then
      say "$name: ok ($result), $STEP_SECONDS s"
    else
      say "$name: FAILED (status $STEP_STATUS; ${result:-no result}): $(grep -E '^test .* FAILED$' "$WORK/test-$name.txt" | awk '{print $2}' | tr '\n' ' ')"
    fi
  }
  test_step cuda_conv "$T_TEST_CONV"
  test_step cuda_kernels "$T_TEST_KERNELS"
  test_step cuda_relu_rules "$T_TEST_RELU"
  test_step cuda_vs_cpu "$T_TEST_VS_CPU"
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$sanitizer" ]; then
    say "memcheck: compute-sanitizer not found (PATH, /usr/local/cuda*/bin)"
  elif [ -x "$TESTS/cuda_kernels" ]; then
    run_step memcheck "$T_MEMCHECK" memcheck.txt -- "$sanitizer" --tool memcheck \
      --error-exitcode 99 --print-limit 20 "$TESTS/cuda_kernels"
    say "memcheck on cuda_kernels (our kernels): $(grep -o 'ERROR SUMMARY: .*' "$WORK/memcheck.txt" | tail -1 || true), status $STEP_STATUS, $STEP_SECONDS s"
  fi
fi
stage_end
