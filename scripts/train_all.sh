#!/usr/bin/env bash
# Train every checkpoint of the course at paper scale, one method after the other.
#
# For a teacher preparing a class (or anyone reproducing the README table):
#
#   scripts/train_all.sh                         # on the GPU: DEVICE=cuda, run folders under runs/full/
#   ROOT=data scripts/train_all.sh               # overwrite/continue the shipped checkpoints instead
#   ONLY="protonet maml_5w1s" scripts/train_all.sh   # a subset (names: DRY_RUN=1 lists them)
#   DRY_RUN=1 scripts/train_all.sh               # print the commands, run nothing
#   SMOKE=1 scripts/train_all.sh                 # every job for a few steps on the CPU (tests/test_train_all.py)
#   (PY: the python that runs the jobs; LIST_PY, default PY: the one that lists them)
#
# Each job is one course_lib command line (the "command" of its run folder's
# config.json). All of them save a checkpoint every few minutes; run the
# script again after an interruption and every job continues where it
# stopped (--resume). Jobs this script finished before are skipped. Each job's output goes to ROOT/logs/NAME.log and its wall-clock
# time to ROOT/times.tsv, for the README's "hardware, time" column.
#
# The budgets are the papers' (or the official code's) where there is one.
# None of these full runs has been timed on a GPU yet; the README table says
# which shipped checkpoints are partial CPU runs.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=${SMOKE:-0}
DRY_RUN=${DRY_RUN:-0}
PY=${PY:-python3}
if [ "$SMOKE" = 1 ]; then
  DEVICE=${DEVICE:-cpu}; ROOT=${ROOT:-runs/smoke_all}
else
  DEVICE=${DEVICE:-cuda}; ROOT=${ROOT:-runs/full}
fi
ONLY=${ONLY:-}
export PYTHONUNBUFFERED=1
mkdir -p "$ROOT/logs"
TIMES="$ROOT/times.tsv"
[ -f "$TIMES" ] || printf 'job\tseconds\texit\tdevice\tfinished\n' > "$TIMES"

TEST_EP=$([ "$SMOKE" = 1 ] && echo 5 || echo 1000)
failed=0

# job NAME COMMAND...: run one training job, or continue it, or skip it when this script already
# finished it (a line "NAME ... exit 0" in times.tsv; FORCE=1 runs it anyway).
job() {
  local name=$1; shift
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  if [ -z "${FORCE:-}" ] && [ "$DRY_RUN" != 1 ] && awk -F'\t' -v n="$name" '$1 == n && $3 == 0 {f = 1} END {exit !f}' "$TIMES"; then
    echo "[$(date +%T)] skip $name: finished earlier (see $TIMES; FORCE=1 to run it again)"; return 0
  fi
  local cmd=("$@") out="" i
  for ((i = 0; i < ${#cmd[@]}; i++)); do [ "${cmd[$i]}" = --out ] && out=${cmd[$((i + 1))]}; done
  [ -f "$out/checkpoint.pt" ] && cmd+=(--resume)
  echo "[$(date +%T)] $name: ${cmd[*]}"
  [ "$DRY_RUN" = 1 ] && return 0
  local start=$SECONDS
  "${cmd[@]}" > "$ROOT/logs/$name.log" 2>&1
  local code=$?
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" $((SECONDS - start)) "$code" "$DEVICE" "$(date -u +%FT%TZ)" >> "$TIMES"
  if [ $code != 0 ]; then failed=1; echo "  FAILED (exit $code): see $ROOT/logs/$name.log"; tail -5 "$ROOT/logs/$name.log"; fi
}

SMOKE_FLAG=(); [ "$SMOKE" = 1 ] && SMOKE_FLAG=(--smoke-data)
JOBS=$(${LIST_PY:-$PY} -m course_lib jobs --out "$ROOT" "${SMOKE_FLAG[@]}") || { echo "python -m course_lib jobs failed"; exit 1; }
while IFS=$'\t' read -r name command; do
  read -r -a argv <<< "$command"
  # argv: python -m course_lib train METHOD --out FOLDER OPTIONS...; the run's own options come last and win
  job "$name" "$PY" "${argv[@]:1:6}" --device "$DEVICE" --no-progress --test-episodes "$TEST_EP" "${argv[@]:7}"
done <<< "$JOBS"

echo "[$(date +%T)] done; times in $TIMES"
exit $failed
