# shellcheck shell=bash
# shellcheck disable=SC2034  # STAGE_TITLE, STEPS and the T_* numbers are read by common.sh
# Stage 2 of scripts/gpu-check.sh (sourced by it): speed on the card, batch 128. `allconv bench`
# with cuDNN's free algorithm choice in fp32 and TF32 (cuDNN's plans listed), in training's
# default setting (fp32, deterministic algorithms only), and on candle's convolution engine;
# PyTorch eager on the same card in the same settings and with channels_last; the ratios; and
# the total training throughput of 1, 2 and 4 concurrent All-CNN-C processes. Where PyTorch is
# missing (the CPU rehearsal in CI) its part says so and is skipped.

STAGE_TITLE="speed: allconv bench and PyTorch on the same card, and 1, 2, 4 concurrent runs"
# Timeouts in seconds; their sum is the stage's worst case (scripts/gpu-check.sh --plan).
T_SETUP=15
T_BENCH=45
T_BENCH_DEFAULT=15
T_BENCH_CANDLE=20
T_TORCH=35
T_TORCH_MORE=15
T_JOBS=22
T_RATIO=5
T_PACK=5
STEPS="setup=${T_SETUP}x1 bench=${T_BENCH}x1 bench-default=${T_BENCH_DEFAULT}x1 bench-candle=${T_BENCH_CANDLE}x1 torch=${T_TORCH}x1 torch-more=${T_TORCH_MORE}x2 jobs=${T_JOBS}x3 ratio=${T_RATIO}x1 pack=${T_PACK}x1"
[ "${GPU_CHECK_PLAN:-0}" = 1 ] && return 0

stage_begin
setup_step

if [ "$REHEARSAL" = 1 ]; then
  # Tiny sizes on the CPU; no TF32 there.
  models=all-cnn-c precisions=fp32 tf32=fp32 jobs_iters=1
  size=(--batch-size 4 --iters 1) candle_size=(--batch-size 4 --iters 1) jobs_size=(--batch-size 4)
else
  models=all-cnn-c,model-c,model-a precisions=fp32,tf32 tf32=tf32 jobs_iters=200
  size=(--iters 30) candle_size=(--iters 10) jobs_size=()
fi
plans=()
[ "$REHEARSAL" = 1 ] || plans=(--plans)
run_step bench "$T_BENCH" bench-free.txt -- "$BIN" bench --device "$DEVICE" --models "$models" \
  --precision "$precisions" --deterministic false "${size[@]}" "${plans[@]}"
bench_status="free $STEP_STATUS"
run_step bench-default "$T_BENCH_DEFAULT" bench-default.txt -- "$BIN" bench --device "$DEVICE" \
  --models all-cnn-c --precision fp32 --deterministic true "${size[@]}"
bench_status="$bench_status, training default $STEP_STATUS"
run_step bench-candle "$T_BENCH_CANDLE" bench-candle.txt -- "$BIN" bench --device "$DEVICE" \
  --models all-cnn-c --precision "$tf32" --deterministic false --conv-engine candle \
  "${candle_size[@]}"
bench_status="$bench_status, candle engine $STEP_STATUS"
say "allconv bench (status: $bench_status): $(head -1 "$WORK/bench-free.txt" | cut -d';' -f1)"

torch_python=${TORCH_PYTHON:-/opt/torch/.venv/bin/python}
if [ "$REHEARSAL" = 1 ] || ! "$torch_python" -c 'import torch' > /dev/null 2>&1; then
  say "PyTorch: not here ($torch_python cannot import torch): its part is skipped"
else
  run_step torch "$T_TORCH" torch.csv -- "$torch_python" scripts/bench_pytorch.py --device cuda \
    --models ${models//,/ } --iters 50 --tf32 both
  torch_status=$STEP_STATUS
  run_step torch-nhwc "$T_TORCH_MORE" torch-nhwc.csv -- "$torch_python" scripts/bench_pytorch.py \
    --device cuda --models all-cnn-c --iters 50 --tf32 on --channels-last
  run_step torch-det "$T_TORCH_MORE" torch-det.csv -- "$torch_python" scripts/bench_pytorch.py \
    --device cuda --models all-cnn-c --iters 50 --tf32 off --deterministic
  say "PyTorch: $(grep -m1 '^# torch' "$WORK/torch.csv" | cut -c3-) (status $torch_status)"
  tail -n +3 "$WORK/torch-nhwc.csv" >> "$WORK/torch.csv"
  tail -n +3 "$WORK/torch-det.csv" >> "$WORK/torch.csv"
fi
run_step ratio "$T_RATIO" ratio.md -- python3 scripts/gpu_ratio.py "$WORK/torch.csv" \
  "$WORK/bench-free.txt" "$WORK/bench-default.txt" "$WORK/bench-candle.txt"
say "train and eval img/s (ratio = allconv / PyTorch; alg: cuDNN's free or deterministic set):"
while read -r line; do say "$line"; done < "$WORK/ratio.md"
# cuDNN's choices at batch 128 (CUDA only): how many shapes, and the unusual ones.
shapes=$(grep -c '^  x ' "$WORK/bench-free.txt")
if [ "$shapes" -gt 0 ]; then
  unusual=$(grep '^  x ' "$WORK/bench-free.txt" | grep -E 'heuristic|not fused|ALLOW_CONVERSION|fp32.*TENSOR_OP_MATH')
  say "cuDNN plans at batch 128: $shapes shapes; unusual choices: $(grep -c . <<< "$unusual")"
  head -3 <<< "$unusual" | while read -r line; do say "  $line"; done
fi

# Several runs per card: the total training throughput of N concurrent All-CNN-C processes.
for n in 1 2 4; do
  start=$(date +%s)
  for i in $(seq "$n"); do
    timeout -k 2 $((T_JOBS - 2)) "$BIN" bench --device "$DEVICE" --models all-cnn-c \
      --precision "$tf32" --deterministic false --iters "$jobs_iters" "${jobs_size[@]}" \
      > "$WORK/jobs-$n-$i.txt" 2>&1 &
  done
  wait
  say "$(awk -v n="$n" -v p="$tf32" -v s="$(( $(date +%s) - start ))" '
    /^all-cnn-c/ { t += ($NF ~ /cpu-s/ ? $(NF-1) : $NF); k++ }
    END { printf "%d concurrent All-CNN-C (%s, free algorithms): %d of %d reported, total train %.0f img/s, %d s", n, p, k, n, t, s }' \
    "$WORK"/jobs-"$n"-*.txt)"
done
stage_end
