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
