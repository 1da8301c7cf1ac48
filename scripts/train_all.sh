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
#
# Each job is one course_lib command line (the "command" of its run folder's
# config.json). All of them save a checkpoint every few minutes; run the
# script again after an interruption and every job continues where it
# stopped (--resume where the command line has it; the sequence learners and
# RL² resume from their --checkpoint file by themselves). Jobs this script
# finished before are skipped. Each job's output goes to ROOT/logs/NAME.log and its wall-clock
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
mkdir -p "$ROOT/logs" "$ROOT/black_box"
TIMES="$ROOT/times.tsv"
[ -f "$TIMES" ] || printf 'job\tseconds\texit\tdevice\tfinished\n' > "$TIMES"

# big(FULL SMOKE): the paper's budget, or a few steps in smoke mode
big() { if [ "$SMOKE" = 1 ]; then echo "$2"; else echo "$1"; fi; }
SMOKE_DATA=(); [ "$SMOKE" = 1 ] && SMOKE_DATA=(--smoke-data)
TEST_EP=$(big 1000 5)
failed=0

# job NAME RESUME_MARKER COMMAND...: run one training job, or continue it, or skip it when this
# script already finished it (a line "NAME ... exit 0" in times.tsv; FORCE=1 runs it anyway).
# RESUME_MARKER: the file whose existence means "continue with --resume"; "-" for the commands
# that resume from their --checkpoint file by themselves.
job() {
  local name=$1 marker=$2; shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  if [ -z "${FORCE:-}" ] && [ "$DRY_RUN" != 1 ] && awk -F'\t' -v n="$name" '$1 == n && $3 == 0 {f = 1} END {exit !f}' "$TIMES"; then
    echo "[$(date +%T)] skip $name: finished earlier (see $TIMES; FORCE=1 to run it again)"; return 0
  fi
  local cmd=("$@")
  [ "$marker" != - ] && [ -f "$marker" ] && cmd+=(--resume)
  echo "[$(date +%T)] $name: ${cmd[*]}"
  [ "$DRY_RUN" = 1 ] && return 0
  local start=$SECONDS
  "${cmd[@]}" > "$ROOT/logs/$name.log" 2>&1
  local code=$?
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" $((SECONDS - start)) "$code" "$DEVICE" "$(date -u +%FT%TZ)" >> "$TIMES"
  if [ $code != 0 ]; then failed=1; echo "  FAILED (exit $code): see $ROOT/logs/$name.log"; tail -5 "$ROOT/logs/$name.log"; fi
}

COMMON=(--device "$DEVICE" --no-progress)

# --- notebook 03: ProtoNet (Snell et al. 2017) and Matching Networks (Vinyals et al. 2016) ---
job protonet "$ROOT/protonet/checkpoint.pt" $PY -m course_lib.train protonet --out "$ROOT/protonet" --protocol vinyals \
    --ways "$(big 60 5)" --shots 5 --queries 5 --steps "$(big 20000 3)" --lr 1e-3 --halve-every 2000 --seed 0 \
    --test-episodes "$TEST_EP" "${COMMON[@]}" "${SMOKE_DATA[@]}"
job matching_5w1s "$ROOT/matching_nets/5way_1shot_scaled/checkpoint.pt" $PY -m course_lib.train matching \
    --out "$ROOT/matching_nets/5way_1shot_scaled" --ways 5 --shots 1 --queries 15 --temperature 0.1 \
    --steps "$(big 20000 3)" --test-episodes "$TEST_EP" "${COMMON[@]}" "${SMOKE_DATA[@]}"
job matching_20w1s "$ROOT/matching_nets/20way_1shot_scaled/checkpoint.pt" $PY -m course_lib.train matching \
    --out "$ROOT/matching_nets/20way_1shot_scaled" --ways 20 --shots 1 --queries 5 --temperature 0.1 \
    --steps "$(big 20000 3)" --test-episodes "$TEST_EP" "${COMMON[@]}" "${SMOKE_DATA[@]}"

# --- notebook 04: the MAML family (Finn et al. 2017; Nichol et al. 2018) ---
maml() {  # maml NAME VARIANT WAYS STEPS [extra...]
  local name=$1 variant=$2 ways=$3 steps=$4; shift 4
  job "$name" "$ROOT/maml/$name/checkpoint.pt" $PY -m course_lib.maml --out "$ROOT/maml/$name" --variant "$variant" \
      --ways "$ways" --shots 1 --steps "$steps" --test-episodes "$TEST_EP" "${COMMON[@]}" "${SMOKE_DATA[@]}" "$@"
}
maml maml_5w1s maml 5 "$(big 60000 2)"
maml fomaml_5w1s fomaml 5 "$(big 60000 2)"
maml reptile_5w1s reptile 5 "$(big 100000 2)"
maml maml_20w1s maml 20 "$(big 60000 2)" --test-settings 20x1,5x1
job maml_sinusoid "$ROOT/maml/sinusoid/checkpoint.pt" $PY -m course_lib.maml --task sinusoid --out "$ROOT/maml/sinusoid" \
    --steps "$(big 70000 5)" --device cpu --no-progress

# --- notebook 05: black-box learners (Santoro et al. 2016; CS330 HW1) and RL² (Duan et al. 2016) ---
for model_steps in mann:2000 lstm:2000 transformer:10000; do
  model=${model_steps%%:*}; steps=$(big "${model_steps##*:}" 3)
  for ws in 2:1 2:2 3:1 4:1; do
    w=${ws%%:*}; s=${ws##*:}
    [ "$SMOKE" = 1 ] && [ "$ws" != 2:1 ] && continue
    checkpoint="$ROOT/black_box/${model}_${w}way_${s}shot.pt"
    job "${model}_${w}w${s}s" - $PY -m course_lib.sequence_learners --model "$model" --ways "$w" \
        --shots "$s" --steps "$steps" --checkpoint "$checkpoint" "${COMMON[@]}"
  done
done
job rl2_T10 - $PY -m course_lib.bandits --task independent --arms 5 \
    --horizon 10 --iterations "$(big 10000 3)" --checkpoint "$ROOT/black_box/rl2_independent5_T10.pt" --no-progress
job rl2_dependent - $PY -m course_lib.bandits --task dependent --arms 2 \
    --horizon 10 --iterations "$(big 1500 3)" --checkpoint "$ROOT/black_box/rl2_dependent2_T10.pt" --no-progress
job rl2_dependent_T100 - $PY -m course_lib.bandits --task dependent --arms 2 --horizon 100 \
    --iterations "$(big 3000 3)" --lr 0.001 --value-scale 10 \
    --checkpoint "$ROOT/black_box/rl2_dependent2_T100.pt" --no-progress

# --- notebook 07: VSML (Kirsch & Schmidhuber 2021) and its Meta-RNN baseline ---
for mode_model in scratch:vsml scratch:metarnn clone:vsml; do
  mode=${mode_model%%:*}; model=${mode_model##*:}
  name=$([ "$mode" = clone ] && echo clone || echo "$model")
  [ "$name" = vsml ] && name=scratch
  job "vsml_$name" "$ROOT/vsml/$name/checkpoint.pt" $PY -m course_lib.vsml train --out "$ROOT/vsml/$name" --mode "$mode" \
      --model "$model" --dataset digits --meta-batch "$(big 256 4)" --steps "$(big 20000 2)" \
      "${COMMON[@]}" "${SMOKE_DATA[@]}"
done

# --- notebook 08: the GPICL phase diagram (Kirsch et al. 2022), all num_tasks in one process ---
job gpicl_sweep "$ROOT/gpicl/sweep/config.json" $PY -m course_lib.gpicl sweep --out "$ROOT/gpicl/sweep" --pair-tokens \
    --num-tasks "$(big 16,256,1024,4096,16384,65536,inf 4,inf)" --steps "$(big 100000 2)" \
    --batch-size "$(big 128 4)" --keep-weights inf "${COMMON[@]}" "${SMOKE_DATA[@]}"

# --- notebook 08: in-context linear regression (Raventós et al. 2023), every pool size in one process ---
# d = 8, 16 examples, noise variance 0.25 as in the paper; an 8-layer, 128-wide transformer with batch 256
job icl_regression "$ROOT/gpicl/regression/checkpoint.pt" $PY -m course_lib.icl_regression --out "$ROOT/gpicl/regression" \
    --num-tasks "$(big 1,4,16,64,256,1024,4096,16384,65536,inf 2,inf)" --d-model "$(big 128 16)" --layers "$(big 8 1)" \
    --heads 2 --batch-size "$(big 256 8)" --steps "$(big 500000 2)" --eval-sequences "$(big 1024 8)" "${COMMON[@]}"

# --- notebook 09: the capstone's shared meta-training data (Omniglot's background alphabets only) ---
# The rows of course_lib.benchmark.SHARED_TRAINING that the notebooks above do not already train there.
job protonet_background "$ROOT/protonet_background/checkpoint.pt" $PY -m course_lib.train protonet \
    --out "$ROOT/protonet_background" --protocol lake --ways "$(big 60 5)" --shots 5 --queries 5 \
    --steps "$(big 20000 3)" --lr 1e-3 --halve-every 2000 --seed 0 --test-episodes "$TEST_EP" "${COMMON[@]}" "${SMOKE_DATA[@]}"
maml maml_5w1s_background maml 5 "$(big 60000 2)" --protocol lake --no-rotations
job vsml_scratch_omniglot "$ROOT/vsml/scratch_omniglot/checkpoint.pt" $PY -m course_lib.vsml train \
    --out "$ROOT/vsml/scratch_omniglot" --mode scratch --model vsml --dataset omniglot --meta-batch "$(big 256 4)" \
    --steps "$(big 20000 2)" "${COMMON[@]}" "${SMOKE_DATA[@]}"
job gpicl_omniglot "$ROOT/gpicl/omniglot/config.json" $PY -m course_lib.gpicl train --out "$ROOT/gpicl/omniglot" \
    --train-dataset omniglot --pair-tokens --num-tasks "$(big 1024 4)" --steps "$(big 100000 2)" \
    --batch-size "$(big 128 4)" --keep-weights "$(big 1024 4)" "${COMMON[@]}" "${SMOKE_DATA[@]}"

echo "[$(date +%T)] done; times in $TIMES"
exit $failed
