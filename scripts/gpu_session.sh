#!/usr/bin/env bash
# Train the course's checkpoints on one GPU, all jobs at once, each within a time budget.
#
#   MINUTES=6 scripts/gpu_session.sh            # the real run: writes into data/...
#   SMOKE=1 scripts/gpu_session.sh              # a one-minute check of every job's CUDA path (writes into runs/smoke)
#
# Every job is a course_lib command line that is resumable on its own (see
# each data/<folder>/README.md); this script only starts them side by side
# (small models leave a big GPU mostly idle, so one process each keeps it
# busier), stops them at the budget (each checkpoints and evaluates itself),
# and packs what they wrote. Logs go to runs/<tag>/logs/.
set -u
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-6}
SMOKE=${SMOKE:-0}
DEVICE=${DEVICE:-cuda}
TAG=${TAG:-$([ "$SMOKE" = 1 ] && echo smoke || echo gpu)}
RUN=runs/$TAG
mkdir -p "$RUN/logs"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PY:-python3}

if [ "$SMOKE" = 1 ]; then
  ROOT=$RUN/data          # smoke runs never touch the shipped checkpoints
  TRAIN_MIN=0.3; TEST_EP=20; STEPS_BIG=40; STEPS_SMALL=20; EXTRA=(--no-progress)
else
  ROOT=data
  TRAIN_MIN=$MINUTES; TEST_EP=1000; STEPS_BIG=20000; STEPS_SMALL=3000; EXTRA=(--no-progress)
fi
mkdir -p "$ROOT/black_box/long"
pids=()
job() {  # job NAME COMMAND...: run in the background, log to $RUN/logs/NAME.log
  local name=$1; shift
  echo "[$(date +%T)] start $name: $*" | tee -a "$RUN/logs/jobs.txt"
  ( "$@" > "$RUN/logs/$name.log" 2>&1; echo "[$(date +%T)] $name exit $?" >> "$RUN/logs/jobs.txt" ) &
  pids+=($!)
}

# --- issue 4: ProtoNet to 20,000 episodes, Matching Networks, the ablations ---
if [ "$SMOKE" = 1 ]; then
  job protonet $PY -m course_lib.train protonet --out "$ROOT/protonet" --steps $STEPS_SMALL --device $DEVICE \
      --max-minutes $TRAIN_MIN --test-episodes $TEST_EP "${EXTRA[@]}"
else
  job protonet $PY -m course_lib.train protonet --out data/protonet --resume --device $DEVICE \
      --max-minutes $TRAIN_MIN --test-episodes $TEST_EP "${EXTRA[@]}"
fi
# 5-way 1-shot Matching nets are shipped (data/matching_nets, trained on a CPU); the paper's 20-way ones are not.
for temperature in 1.0 0.1; do
  job matching_20w1s_t$temperature $PY -m course_lib.train matching --ways 20 --shots 1 --queries 5 \
      --temperature $temperature --steps $STEPS_BIG \
      --out "$ROOT/matching_nets/20way_1shot$([ $temperature = 0.1 ] && echo _scaled)" \
      --device $DEVICE --max-minutes $TRAIN_MIN --test-episodes $TEST_EP "${EXTRA[@]}"
done
ABL="$ROOT/protonet_ablations"
ablation() {  # equal budgets: STEPS_SMALL episodes, lr halved every third of them
  local name=$1; shift
  job abl_$name $PY -m course_lib.train protonet --out "$ABL/$name" --steps $STEPS_SMALL \
      --halve-every $((STEPS_SMALL / 3)) --device $DEVICE --max-minutes $TRAIN_MIN --test-episodes $TEST_EP \
      "${EXTRA[@]}" "$@"
}
ablation reference                                   # vinyals, rotations, 60-way 5-shot, euclidean
ablation no_rotations --no-rotations
ablation lake_split --protocol lake
ablation cosine --distance cosine
ablation train_5way --ways 5 --queries 15
ablation train_1shot --shots 1 --queries 5

# --- issue 6: the black-box learners longer than a CPU allows ---
for model in lstm transformer; do
  job ${model}_2w1s $PY -m course_lib train sequence --model $model --ways 2 --shots 1 --steps $((STEPS_BIG * 3)) \
      --out "$ROOT/black_box/long/${model}_2way_1shot" --device $DEVICE --max-minutes $TRAIN_MIN --no-progress
done
job rl2_T100 $PY -m course_lib train rl2 --task independent --arms 5 --horizon 100 --steps $((STEPS_SMALL * 2)) \
    --value-scale 10 --init-from data/black_box/rl2_independent5_T10 \
    --out "$ROOT/black_box/long/rl2_independent5_T100" --max-minutes $TRAIN_MIN --no-progress

# --- issues 5, 8, 9: MAML family, VSML, GPICL (commands filled in below) ---
[ -f scripts/gpu_session_more.sh ] && source scripts/gpu_session_more.sh

wait "${pids[@]}"
echo "[$(date +%T)] all jobs done" | tee -a "$RUN/logs/jobs.txt"
