# shellcheck shell=bash
# What every stage of scripts/gpu-check.sh shares (sourced, never run): the step runner with its
# timeout, the unpacking of the carried binaries, the summary and the packing of the logs.
#
# Set by scripts/gpu-check.sh before a stage is sourced:
#   STAGE      the stage number          OUT    the folder that comes back (at most 8 files)
#   STATE      kept between stages on a warm machine (unpacked binaries, the check's record)
#   REHEARSAL  1 for the CPU rehearsal (CI), else 0
#   DEVICE     cuda, or cpu in the rehearsal
# A stage writes exactly two files into $OUT: stage<N>-summary.txt and stage<N>-logs.tar.xz, so
# that all stages together stay within the 8 files that come back from one command.

# Lines and characters a summary may have: 60 lines (the issue's limit), and at most 3,900
# characters so that the three stages' summaries, reprinted at the end of one command, fit in
# the 12,000 characters of output that come back.
SUMMARY_MAX_LINES=60
SUMMARY_MAX_CHARS=3900

# The stage's work folder: every log, packed into stage<N>-logs.tar.xz at the end.
stage_begin() {
  WORK=$STATE/stage$STAGE
  rm -rf "$WORK" "$STATE/stage$STAGE-failed-steps" && mkdir -p "$WORK" "$OUT"
  SUMMARY=$WORK/summary.txt
  : > "$SUMMARY"
  STAGE_START=$(date +%s)
  echo "== gpu-check stage $STAGE: $STAGE_TITLE (worst case $(stage_budget) s; started $(date -u +%H:%M:%S) UTC; logs in stage$STAGE-logs.tar.xz)"
}

# Appends a line to the summary (and shows it as progress).
say() {
  echo "$*" >> "$SUMMARY"
  echo "   $*"
}

# run_step NAME SECONDS LOG -- COMMAND...: runs COMMAND with its output in $WORK/LOG, killed after
# SECONDS (2 of them are the grace between TERM and KILL). Sets STEP_STATUS and STEP_SECONDS;
# prints one progress line. Never fails the stage: the summary reports what happened.
run_step() {
  local name=$1 seconds=$2 log=$3
  shift 4
  local start
  start=$(date +%s)
  timeout -k 2 $((seconds - 2)) "$@" > "$WORK/$log" 2>&1
  STEP_STATUS=$?
  STEP_SECONDS=$(( $(date +%s) - start ))
  local what="status $STEP_STATUS"
  # The rehearsal fails on any failed step (scripts/gpu-check.sh reads this file).
  [ "$STEP_STATUS" = 0 ] || echo "$name: status $STEP_STATUS" >> "$STATE/stage$STAGE-failed-steps"
  case $STEP_STATUS in
    0) what="ok" ;;
    124|137) what="KILLED at its timeout of $seconds s" ;;
  esac
  echo "   [$name] $what, ${STEP_SECONDS} s (log: $log)"
}

# The worst case of this stage: the sum of its steps' timeouts (STEPS holds "name=SECONDSxCOUNT"
# entries made of the T_* numbers the stage's steps run with).
stage_budget() {
  local total=0 entry value
  for entry in $STEPS; do
    value=${entry#*=}
    total=$(( total + ${value%x*} * ${value#*x} ))
  done
  echo "$total"
}

# Decompresses an .xz file to a path, with xz or, where xz is missing, Python's lzma.
unxz_to() {
  local src=$1 dst=$2
  if command -v xz > /dev/null; then
    xz -dc "$src" > "$dst"
  else
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as f, open(sys.argv[2], "wb") as o:
    shutil.copyfileobj(f, o)' "$src" "$dst"
  fi
}

# Unpacks a .tar.xz into a folder, with tar + xz or Python's tarfile.
untar_xz() {
  local src=$1 dir=$2
  mkdir -p "$dir"
  if command -v xz > /dev/null; then
    xz -dc "$src" | tar -C "$dir" -xf -
  else
    python3 -c 'import sys, tarfile
tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$src" "$dir"
  fi
}

# Packs folder $1 into the .tar.xz $2, with tar + xz or Python's tarfile.
pack_dir() {
  local dir=$1 dst=$2
  if command -v xz > /dev/null; then
    tar -C "$dir" -cf - . | xz -T2 -6 > "$dst"
  else
    python3 -c 'import os, sys, tarfile
with tarfile.open(sys.argv[2], "w:xz") as t:
    for name in sorted(os.listdir(sys.argv[1])):
        t.add(os.path.join(sys.argv[1], name), arcname=name)' "$dir" "$dst"
  fi
}

# A carried .xz unpacked once per machine into $STATE/bin: kept while the carried file is the
# same (its checksum), so that every stage runs the same binary file, whose size and time are
# part of the device check's record. Prints the path.
unpacked() {
  local src=$1 name=$2 dst=$STATE/bin/$2
  local sum
  sum=$(cksum < "$src")
  mkdir -p "$STATE/bin"
  if [ ! -x "$dst" ] || [ "$(cat "$dst.cksum" 2>/dev/null)" != "$sum" ]; then
    unxz_to "$src" "$dst.partial" && chmod +x "$dst.partial" && mv "$dst.partial" "$dst" \
      && echo "$sum" > "$dst.cksum"
  fi
  echo "$dst"
}

# Unpacks the carried binaries (scripts/gpu-check/setup.sh, a step with its timeout) and sets
# BIN (the allconv to run) and TESTS (the CUDA test binaries' folder). In the rehearsal BIN is
# the CPU build ($ALLCONV_BIN). $1 "tests": the test binaries too.
setup_step() {
  if [ "$REHEARSAL" = 1 ]; then
    BIN=$ALLCONV_BIN
  else
    BIN=$STATE/bin/allconv
    # shellcheck disable=SC2034  # read by stage 1
    TESTS=$STATE/tests
    if [ -f .device/on-device.sh ]; then
      # The CUDA libraries' folders (LD_LIBRARY_PATH) and the driver's PTX cache, for every
      # later step of this stage.
      # shellcheck disable=SC1091
      source .device/on-device.sh
    else
      say "no .device/on-device.sh: run scripts/prepare-gpu-check.sh here and carry .device"
    fi
  fi
  run_step setup "$T_SETUP" setup.txt -- bash scripts/gpu-check/setup.sh "${1:-}"
  if [ "$STEP_STATUS" = 0 ]; then
    say "setup: $(grep -c ' => ' "$WORK/setup.txt") libraries found, none missing; binary $BIN"
  else
    say "setup FAILED (status $STEP_STATUS):"
    grep -E "MISSING|not found|rror|o such" "$WORK/setup.txt" | head -8 \
      | while read -r line; do say "  $line"; done
  fi
}

# Writes the summary into $OUT, packs the logs, and prints the summary last (cut to the limits
# above, saying so), so that the tail of the output always holds it.
stage_end() {
  local wall=$(( $(date +%s) - STAGE_START ))
  say "stage $STAGE wall time: $wall s of its worst case $(stage_budget) s"
  local summary=$OUT/stage$STAGE-summary.txt
  {
    echo "== gpu-check stage $STAGE summary: $STAGE_TITLE"
    if [ "$(wc -l < "$SUMMARY")" -gt $((SUMMARY_MAX_LINES - 2)) ]; then
      head -n $((SUMMARY_MAX_LINES - 3)) "$SUMMARY"
      echo "(summary cut at $SUMMARY_MAX_LINES lines: the rest is in $WORK/summary.txt, packed)"
    else
      cat "$SUMMARY"
    fi
  } | cut -c1-160 | head -c "$SUMMARY_MAX_CHARS" > "$summary"
  # A cut last line still ends with a newline.
  [ -z "$(tail -c1 "$summary")" ] || echo >> "$summary"
  timeout -k 2 $((T_PACK - 2)) bash -c "$(declare -f pack_dir); pack_dir '$WORK' '$OUT/stage$STAGE-logs.tar.xz'" \
    || echo "   packing the logs failed (status $?)"
  echo
  cat "$summary"
}
