# shellcheck shell=bash
# shellcheck disable=SC2034  # STAGE_TITLE, STEPS and the T_* numbers are read by common.sh
# Stage 3 of scripts/gpu-check.sh (sourced by it): the whole pipeline. `allconv reproduce --preset
# gpu-smoke` end to end (2 networks, 4 epochs, the carried 5,000-image subset) with stage 1's
# device check already remembered (no second check), then the seconds of one All-CNN-C epoch on
# 50,000 training images: CIFAR-10 itself if it is on the machine ($FULL_DATA, default
# data/cifar-10-batches-bin), else synthetic images of the same size, said so (speed does not
# depend on the pictures).

STAGE_TITLE="pipeline: reproduce --preset gpu-smoke end to end, and one full-size All-CNN-C epoch"
# Timeouts in seconds; their sum is the stage's worst case (scripts/gpu-check.sh --plan).
T_SETUP=15
T_DATA=10
T_SMOKE=150
T_SYNTH=10
T_EPOCH=45
T_REPORT=5
T_PACK=5
STEPS="setup=${T_SETUP}x1 data=${T_DATA}x1 smoke=${T_SMOKE}x1 synth=${T_SYNTH}x1 epoch=${T_EPOCH}x1 report=${T_REPORT}x1 pack=${T_PACK}x1"
[ "${GPU_CHECK_PLAN:-0}" = 1 ] && return 0

stage_begin
setup_step

# The gpu-smoke subset: carried (.device/cifar-10-smoke.tar.xz, unpacked once per machine); in
# the rehearsal a tiny synthetic set.
smoke_data=$STATE/data/cifar-10-smoke
if [ "$REHEARSAL" = 1 ]; then
  rm -rf "$STATE/data"
  run_step data "$T_DATA" data.txt -- python3 scripts/gpu-check/synthetic_cifar.py "$smoke_data" \
    --per-file 20 --test 20
elif [ -f "$smoke_data/test_batch.bin" ] && [ "$(cat "$STATE/data.cksum" 2>/dev/null)" = "$(cksum < .device/cifar-10-smoke.tar.xz)" ]; then
  STEP_STATUS=0
else
  rm -rf "$STATE/data"
  run_step data "$T_DATA" data.txt -- bash -c "source scripts/gpu-check/common.sh && untar_xz .device/cifar-10-smoke.tar.xz '$STATE/data' && cksum < .device/cifar-10-smoke.tar.xz > '$STATE/data.cksum'"
fi
[ "$STEP_STATUS" = 0 ] || say "gpu-smoke data: FAILED to unpack (status $STEP_STATUS; see data.txt)"

# A fresh runs root per attempt (a second attempt on a warm machine must not find the first
# one's finished runs), holding stage 1's remembered check.
runs=$STATE/runs-$(date +%s)
mkdir -p "$runs"
if [ -d "$STATE/check-record/device-check" ]; then
  cp -r "$STATE/check-record/device-check" "$runs/"
  check_note="stage 1's check remembered"
  skip=()
else
  check_note="NO remembered check (stage 1 did not run on this machine): trained with --skip-check"
  skip=(--skip-check)
fi
if [ "$REHEARSAL" = 1 ]; then
  # The same command on the CPU, shrunk: one epoch, standardize instead of ZCA (its fit alone
  # would take most of a minute there).
  shrink=(--device cpu --set schedule.epochs=1 --set "schedule.milestones=[]"
    --set data.preprocessing=standardize --set data.cache_dir=null)
  on_cpu=(--device cpu)
else
  shrink=() on_cpu=()
fi
run_step gpu-smoke "$T_SMOKE" gpu-smoke.txt -- "$BIN" reproduce --preset gpu-smoke \
  --data-dir "$smoke_data" --runs "$runs" --jobs 2 "${skip[@]}" "${shrink[@]}"
if grep -q "^device check (once per binary" "$WORK/gpu-smoke.txt"; then
  check_note="$check_note; but it ran a check of its own (a setting stage 1 did not cover?)"
fi
say "reproduce --preset gpu-smoke: status $STEP_STATUS, $STEP_SECONDS s; $check_note"
grep -E "^warning: the device check failed|runs: .* trained now" "$WORK/gpu-smoke.txt" | head -3 \
  | cut -c1-150 | while read -r line; do say "  $line"; done
[ "$STEP_STATUS" = 0 ] || tail -3 "$WORK/gpu-smoke.txt" | cut -c1-150 | while read -r line; do say "  $line"; done
cp "$runs/report/report.md" "$WORK/gpu-smoke-report.md" 2>/dev/null

# One epoch of All-CNN-C on 50,000 training images (CIFAR-10's size).
full=${FULL_DATA:-data/cifar-10-batches-bin}
if [ "$REHEARSAL" = 0 ] && [ -f "$full/data_batch_5.bin" ] && [ -f "$full/test_batch.bin" ]; then
  full_note="CIFAR-10 in $full"
else
  full=$STATE/synthetic-full
  rm -rf "$full"
  if [ "$REHEARSAL" = 1 ]; then per_file=40; else per_file=10000; fi
  run_step synthetic "$T_SYNTH" synthetic.txt -- python3 scripts/gpu-check/synthetic_cifar.py "$full" \
    --per-file "$per_file" --test "$per_file"
  full_note="synthetic, $((5 * per_file)) training images (no CIFAR-10 here)"
fi
epoch_runs=$STATE/epoch-runs-$(date +%s)
mkdir -p "$epoch_runs"
[ -d "$STATE/check-record/device-check" ] && cp -r "$STATE/check-record/device-check" "$epoch_runs/"
run_step epoch "$T_EPOCH" epoch.txt -- "$BIN" train --config configs/gpu-smoke.yaml \
  --model all-cnn-c --lr 0.05 --seed 0 --epochs 1 --data-dir "$full" --runs "$epoch_runs" \
  --set "schedule.milestones=[]" --set data.preprocessing=standardize --set data.cache_dir=null \
  --lines "${skip[@]}" "${on_cpu[@]}"
epoch_status=$STEP_STATUS

# One line per finished run, from its result.json and metrics.csv: "smoke ..." and "epoch ...".
run_step report "$T_REPORT" results.txt -- python3 - "smoke=$runs" "epoch=$epoch_runs" <<'EOF'
import csv, glob, json, sys
for arg in sys.argv[1:]:
    tag, root = arg.split("=", 1)
    for path in sorted(glob.glob(f"{root}/*/lr-*/seed-*/result.json")):
        r = json.load(open(path))
        rows = list(csv.DictReader(open(path.replace("result.json", "metrics.csv"))))
        last = rows[-1] if rows else {}
        err = r.get("final_test_error")
        print(f"{tag} {r['model']} lr {r['lr']}: {r['status']}, {r['epochs_run']}/{r['epochs_planned']} "
              f"epochs, final test error {'-' if err is None else f'{err:.2f}%'}, "
              f"last epoch {float(last.get('seconds', 'nan')):.1f} s at "
              f"{float(last.get('images_per_sec', 'nan')):,.0f} img/s, run {r['wall_seconds']:.0f} s")
EOF
grep "^smoke " "$WORK/results.txt" | while read -r _ line; do say "  $line"; done
say "one All-CNN-C epoch ($full_note; batch 128, fp32, deterministic; status $epoch_status):"
if grep -q "^epoch " "$WORK/results.txt"; then
  say "  $(grep -m1 "^epoch " "$WORK/results.txt" | cut -d' ' -f2-)"
else
  tail -3 "$WORK/epoch.txt" | cut -c1-150 | while read -r line; do say "  $line"; done
fi
stage_end
