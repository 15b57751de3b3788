#!/usr/bin/env bash
# The emitted Slurm jobs on a real Slurm: a one-node cluster on this machine (Debian's slurmctld,
# slurmd and munge, installed when missing), a tiny synthetic CPU grid (2 models x 2 learning
# rates, 3 epochs) submitted with the emitted submit.sh, two tasks stopped mid-epoch.
#
# Asserts: every grid point done; the report job ran and its report lists every point; the
# requeued task (scontrol requeue) resumed from its step checkpoint and ends with the weights of
# an uninterrupted run of the same point (bytewise); a task sent USR1 (the time-limit signal)
# requeued itself and resumed from its step checkpoint; a resubmitted array skips the finished
# points; sbatch --test-only accepts the GPU variant of the script. Skips (exit 0, with a message) only where
# Slurm cannot be installed, and not even then with ALLCONV_REQUIRE_SLURM=1 (set by .ci/run): a
# CI that could not install Slurm fails instead of passing without having tested anything. The daemons run from a temporary folder (SLURM_CONF) and are
# stopped by their PIDs at the end.
#
# usage: scripts/slurm-ci.sh   (uses the debug build in $CARGO_TARGET_DIR, default target/, built
# if missing: the binary and the prepare_stats example, which writes the synthetic data)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
started_at=$(date +%s)
say() { echo "slurm-ci: $*" >&2; }
fail() {
  say "FAILED: $*"
  keep_tmp=1
  exit 1
}

# --- Slurm and munge -------------------------------------------------------------------------
need=()
for tool in slurmctld slurmd sbatch munged; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing slurmctld slurmd slurm-client munge (missing: ${need[*]})"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    slurmctld slurmd slurm-client munge >/tmp/slurm-ci-apt.log 2>&1 ||
    { $sudo apt-get update >>/tmp/slurm-ci-apt.log 2>&1 &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        slurmctld slurmd slurm-client munge >>/tmp/slurm-ci-apt.log 2>&1; }; }; then
    if [ "${ALLCONV_REQUIRE_SLURM:-0}" = 1 ]; then
      tail -n 20 /tmp/slurm-ci-apt.log >&2 || true
      fail "Slurm cannot be installed here (apt-get failed, see /tmp/slurm-ci-apt.log) and ALLCONV_REQUIRE_SLURM=1"
    fi
    say "SKIPPED: Slurm cannot be installed here (apt-get failed, see /tmp/slurm-ci-apt.log)"
    exit 0
  fi
fi

build=${CARGO_TARGET_DIR:-target}/debug
[ -x "$build/allconv" ] || cargo build -q --bin allconv
[ -x "$build/examples/prepare_stats" ] || cargo build -q -p allconv-cifar --example prepare_stats
allconv=$(realpath "$build/allconv")
prepare_stats=$(realpath "$build/examples/prepare_stats")

# A folder with a space in its name: every path the emitted scripts write must be quoted.
tmp=$(mktemp -d /tmp/allconv-slurm-ci.XXXXXX)
work="$tmp/work dir"
mkdir -p "$work" "$tmp/state" "$tmp/spool" "$tmp/munge"
pids=()
cleanup() {
  # Jobs first (their processes are children of slurmd), then the daemons, each by its PID.
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$tmp/slurmctld.pid" ]; then
    scancel --quiet --user="$(id -un)" 2>/dev/null || true
    sleep 1
  fi
  for pidfile in "$tmp/slurmd.pid" "$tmp/slurmctld.pid" "$tmp/munge/munged.pid"; do
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "${keep_tmp:-0}" = 1 ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'keep_tmp=1' ERR

# Free ports (two CI runs on one machine must not meet).
if command -v python3 >/dev/null; then
  read -r ctld_port slurmd_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
else
  ctld_port=$((20000 + RANDOM % 20000))
  slurmd_port=$((ctld_port + 1))
fi
node=$(hostname -s)
cpus=$(nproc)
memory=$(awk '/MemTotal/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
# A stand-in GPU device for the GPU variant's `sbatch --test-only` (nothing runs on it).
ln -s /dev/null "$tmp/nvidia0"
cat >"$tmp/gres.conf" <<EOF
NodeName=$node Name=gpu File=$tmp/nvidia0
EOF
cat >"$tmp/slurm.conf" <<EOF
ClusterName=allconvci
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=30
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:1 State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$tmp/slurm.conf"

# A key of its own: this cluster's credentials mean nothing elsewhere, and /etc is left alone.
head -c 1024 /dev/urandom >"$tmp/munge/munge.key"
chmod 600 "$tmp/munge/munge.key"
munged --force --socket="$tmp/munge/munge.socket" --pid-file="$tmp/munge/munged.pid" \
  --log-file="$tmp/munge/munged.log" --seed-file="$tmp/munge/munged.seed" \
  --key-file="$tmp/munge/munge.key"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N "$node"
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' && break
  sleep 1
done
sinfo -h -o %T | grep -qE '^idle' || {
  sinfo -N -l >&2 || true
  tail -20 "$tmp/slurmctld.log" "$tmp/slurmd.log" >&2 || true
  fail "the one-node Slurm did not come up"
}
say "Slurm $(sinfo -V | awk '{print $2}') up on $node ($cpus CPUs) after $(($(date +%s) - started_at)) s"

# --- The grid: synthetic data, 2 models x 2 learning rates, 3 epochs of 30 steps ---------------
"$prepare_stats" "$work/data" --write-synthetic --preprocessing scale >/dev/null
cat >"$work/exp.yaml" <<EOF
data:
  dir: $work/data
  preprocessing: scale
  train_subset: 480
  test_subset: 100
schedule:
  epochs: 3
  milestones: [2]
training:
  batch_size: 16
  device: cpu
  stuck_epochs: 0
grid:
  models: [strided-cnn-a, all-cnn-a]
  lrs: [0.05, 0.01]
out:
  runs: $work/runs
slurm:
  time: "00:10:00"
  cpus_per_task: 1
EOF
cd "$work"
# A cuda grid is refused for this CPU-only binary, before anything is queued.
if "$allconv" reproduce --config exp.yaml --device cuda --emit-slurm "$work/refused" 2>"$tmp/refused.err"; then
  fail "a cuda grid was emitted for a binary without CUDA"
fi
grep -q "built without CUDA" "$tmp/refused.err" || fail "refusal without its reason: $(cat "$tmp/refused.err")"

submit=$("$allconv" reproduce --config exp.yaml --emit-slurm "$work/slurm")
[ "$submit" = "$work/slurm/submit.sh" ] || fail "emit printed '$submit'"
[ -f "$work/runs/grid.json" ] || fail "no grid.json in the runs root at emit time"
grep -q '"device": "cpu"' "$work/slurm/grid.json" || fail "the config's device was not kept"
if grep -q -- '--gres' "$work/slurm/grid.sbatch"; then fail "a cpu grid requests a GPU"; fi

ids=$("$submit")
echo "$ids" >&2
array=$(sed -n 's/^array job: \([0-9]*\)$/\1/p' <<<"$ids")
report=$(sed -n 's/^report job: \([0-9]*\) .*/\1/p' <<<"$ids")
[ -n "$array" ] && [ -n "$report" ] || fail "submit.sh did not print both job ids"

# The uninterrupted reference of the point that is requeued (all-cnn-a, lr 0.05: index 2), on the
# same thread count as the task, outside Slurm.
requeued=2
RAYON_NUM_THREADS=1 "$allconv" train --quiet --grid "$work/slurm/grid.json" --index "$requeued" \
  --runs "$work/reference" >"$tmp/reference.log" 2>&1 &
reference=$!
pids+=("$reference")

# Waits until the run of a task has finished its first epoch, then a few steps more (a step of
# these tasks takes ~0.1-0.3 s on one thread; an epoch of 30 steps and its test pass 4-10 s), and
# makes sure it is still inside epoch 2: a stop at an epoch's end would resume from the epoch
# checkpoint and prove nothing about step checkpoints.
into_second_epoch() {
  local metrics="$work/runs/$1/seed-0/metrics.csv" deadline=$(($(date +%s) + 180))
  until [ -f "$metrics" ] && [ "$(wc -l <"$metrics")" -ge 2 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1 finished no epoch in 180 s"
    sleep 0.1
  done
  sleep 0.7
  [ "$(wc -l <"$metrics")" -eq 2 ] ||
    fail "$1 finished its second epoch before it could be stopped inside it: $(cat "$metrics")"
}
# Requeue that task part-way through its second epoch, as an administrator or pre-emption does.
into_second_epoch all-cnn-a/lr-0.05
scontrol requeue "${array}_${requeued}"
say "requeued task ${array}_${requeued} (scontrol requeue) in its second epoch"
# And send task 3 what Slurm sends before the time limit (--signal=B:USR1): it requeues itself.
signalled=3
into_second_epoch all-cnn-a/lr-0.01
scancel --batch --signal=USR1 "${array}_${signalled}"
say "sent USR1 to task ${array}_${signalled} in its second epoch"

deadline=$(($(date +%s) + 300))
while [ -n "$(squeue -h -j "$array,$report" -o %i 2>/dev/null)" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { squeue >&2; fail "the jobs did not end in 300 s"; }
  sleep 1
done
wait "$reference" || fail "the reference run failed: $(tail -5 "$tmp/reference.log")"

# Every point done, and listed in the report the report job wrote.
for run in strided-cnn-a/lr-0.05 strided-cnn-a/lr-0.01 all-cnn-a/lr-0.05 all-cnn-a/lr-0.01; do
  grep -q '"status": "done"' "$work/runs/$run/seed-0/result.json" 2>/dev/null ||
    fail "$run did not finish: $(tail -5 "$work"/slurm/logs/*.out)"
done
csv="$work/runs/report/report.csv"
[ -f "$csv" ] || fail "the report job wrote no report: $(cat "$work"/slurm/logs/report-*.out)"
for point in Strided-CNN-A,0.05 Strided-CNN-A,0.01 All-CNN-A,0.05 All-CNN-A,0.01; do
  grep -q "^$point,0,done,3,3," "$csv" || fail "the report does not list $point as done: $(cat "$csv")"
done

# The requeued task resumed part-way through an epoch and ends with the reference's weights.
log="$work/slurm/logs/${array}_${requeued}.out"
grep -q "restart 1 " "$log" || fail "no restart count in $log"
grep -qE "resuming after epoch [0-9]+/3, at step [1-9][0-9]* of epoch" "$log" ||
  fail "task $requeued did not resume from a step checkpoint: $(cat "$log")"
cmp "$work/runs/all-cnn-a/lr-0.05/seed-0/weights.safetensors" \
  "$work/reference/all-cnn-a/lr-0.05/seed-0/weights.safetensors" ||
  fail "the requeued run's weights differ from the uninterrupted run's"
say "task $requeued: $(grep -oE "resuming after epoch [0-9]+/3, at step [0-9]+ of epoch [0-9]+" "$log"); weights identical to the uninterrupted run"

log="$work/slurm/logs/${array}_${signalled}.out"
grep -q "USR1: the time limit is 120 s away" "$log" || fail "task $signalled saw no USR1: $(cat "$log")"
grep -q "restart 1 " "$log" || fail "task $signalled did not requeue itself: $(cat "$log")"
grep -qE "resuming after epoch [0-9]+/3, at step [1-9][0-9]* of epoch" "$log" ||
  fail "task $signalled did not resume from a step checkpoint: $(cat "$log")"
say "task $signalled: USR1, requeued itself, $(grep -oE "resuming after epoch [0-9]+/3, at step [0-9]+ of epoch [0-9]+" "$log")"

# A resubmitted array trains nothing: every point is skipped as finished.
before=$(cat "$work"/runs/*/lr-*/seed-0/result.json | md5sum)
again=$(sbatch --parsable --wait "$work/slurm/grid.sbatch" 2>/dev/null)
again=${again%%;*}
[ "$(grep -l "finished already" "$work"/slurm/logs/"${again}"_*.out | wc -l)" -eq 4 ] ||
  fail "the resubmitted array did not skip every point: $(cat "$work"/slurm/logs/"${again}"_*.out)"
[ "$(cat "$work"/runs/*/lr-*/seed-0/result.json | md5sum)" = "$before" ] ||
  fail "the resubmitted array changed a result"

# The GPU variant, as emitted, is accepted by sbatch (--test-only: this node's GPU is a stand-in).
cuda_allconv="$repo/target/cuda/release/allconv" # where .ci/run builds it
if ! [ -x "$cuda_allconv" ] || ! "$cuda_allconv" --version | grep -q "(cuda)"; then
  # A stand-in for a CUDA build: --test-only runs nothing, and emit reads only its --version.
  cuda_allconv="$tmp/allconv-cuda"
  printf '#!/bin/sh\necho "allconv 0.0.0 (cuda)"\n' >"$cuda_allconv"
  chmod +x "$cuda_allconv"
fi
"$allconv" reproduce --config exp.yaml --device cuda --runs "$work/runs-gpu" --slurm-binary "$cuda_allconv" \
  --emit-slurm "$work/gpu" >/dev/null
grep -q '^#SBATCH --gres=gpu:1$' "$work/gpu/grid.sbatch" || fail "the GPU variant requests no GPU"
sbatch --test-only "$work/gpu/grid.sbatch" 2>"$tmp/test-only.err" ||
  fail "sbatch --test-only refused the GPU script: $(cat "$tmp/test-only.err")"
say "GPU variant: $(cat "$tmp/test-only.err")"

say "passed in $(($(date +%s) - started_at)) s"
