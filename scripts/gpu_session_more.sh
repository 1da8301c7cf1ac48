# Sourced by scripts/gpu_session.sh: the jobs of notebooks 04, 07 and 08.
# Uses job, ROOT, DEVICE, TRAIN_MIN, TEST_EP, SMOKE and PY from there.

# --- issue 5: the MAML family (course_lib/maml.py) ---
MAML=($PY -m course_lib.maml --device $DEVICE --max-minutes $TRAIN_MIN --threads 1 --no-progress --test-episodes $TEST_EP)
if [ "$SMOKE" = 1 ]; then S1=6; S2=6; else S1=60000; S2=100000; fi
job maml_5w1s    "${MAML[@]}" --variant maml    --ways 5  --shots 1 --steps $S1 --out "$ROOT/maml/maml_5w1s"
job fomaml_5w1s  "${MAML[@]}" --variant fomaml  --ways 5  --shots 1 --steps $S1 --out "$ROOT/maml/fomaml_5w1s"
job reptile_5w1s "${MAML[@]}" --variant reptile --ways 5  --shots 1 --steps $S2 --out "$ROOT/maml/reptile_5w1s"
job maml_20w1s   "${MAML[@]}" --variant maml    --ways 20 --shots 1 --steps $S1 --test-settings 20x1,5x1 --out "$ROOT/maml/maml_20w1s"
job maml_sinusoid $PY -m course_lib.maml --task sinusoid --steps $([ "$SMOKE" = 1 ] && echo 20 || echo 70000) \
    --device cpu --threads 1 --max-minutes $TRAIN_MIN --no-progress --out "$ROOT/maml/sinusoid"

# --- issue 8: VSML and its baselines (course_lib/vsml.py); each run folder must be new ---
VS=($PY -m course_lib.vsml train --mode scratch --dataset digits --device $DEVICE --max-minutes $TRAIN_MIN --threads 1 --no-progress)
[ "$SMOKE" = 1 ] && VS+=(--meta-batch 8) || VS+=(--meta-batch 256)
job vsml_scratch  "${VS[@]}" --model vsml    --out "$ROOT/vsml_gpu/scratch"
job vsml_metarnn  "${VS[@]}" --model metarnn --out "$ROOT/vsml_gpu/metarnn"
job vsml_clone    $PY -m course_lib.vsml train --mode clone --model vsml --dataset digits --device $DEVICE \
    --max-minutes $TRAIN_MIN --threads 1 --no-progress $([ "$SMOKE" = 1 ] && echo "--meta-batch 8" || echo "--meta-batch 256") \
    --out "$ROOT/vsml_gpu/clone"

# --- issue 9: the GPICL phase diagram (all num_tasks in one process, stacked weights) ---
job gpicl_sweep $PY -m course_lib train gpicl --num-tasks 16,256,1024,4096,16384,65536,inf --pair-tokens \
    --steps 100000 --batch-size 128 --out "$ROOT/gpicl/sweep_gpu" \
    --device $DEVICE --max-minutes $TRAIN_MIN --no-progress
