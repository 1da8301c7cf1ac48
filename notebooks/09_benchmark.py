# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python (meta-learning course)
#     language: python
#     name: meta-learning-course
# ---

# %% [markdown]
# # 09 · Capstone: every method of the course on the same episodes
#
# Each notebook so far scored its own methods on its own test tasks. That
# answers "does this method work?", not "which method should I use?", and
# certainly not "which method has learned something *general*?". This
# notebook puts every method of the course on the same footing:
#
# 1. **Three kinds of test data**: unseen Omniglot characters (in
#    distribution for the methods meta-trained on Omniglot), MNIST digits and
#    scikit-learn digits (new datasets), and the same digits with their pixels
#    shuffled by one fixed permutation (a new input *structure*).
# 2. **One protocol**: N-way K-shot episodes (5-way 1-shot, 5-way 5-shot,
#    2-way 1-shot, and 10-way 10-shot for the methods that can take it),
#    15 queries per class (10 at 10 shots: an Omniglot character has 20
#    drawings), **the same episodes for every method** (their index lists
#    are saved), mean ± 95% CI.
# 3. **Every shipped method**: hand-designed baselines (notebook 02),
#    pretrained features (02), ProtoNet and Matching nets (03), MAML,
#    first-order MAML and Reptile (04), the black-box sequence learners (05), VSML (07)
#    and GPICL (08); and one row per family meta-trained on **the same
#    data**, Omniglot's background alphabets.
# 4. **The table** (from `data/capstone/`, made by
#    `python -m course_lib.capstone`), a live re-evaluation of the cheap
#    methods on the same episodes, and two plots: in- against
#    out-of-distribution accuracy, and *structure against generality*
#    (the variable ratio of notebooks 05 and 07 against how much of its
#    accuracy a method keeps on data it was not meta-trained for).
# 5. **What the table shows, and what it does not.**

# %%
import json
import math
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import course_lib as cl
from course_lib import capstone as cap
from course_lib import runtime
from course_lib.evaluation import format_accuracy
from course_lib.teaching import plots
from course_lib.teaching.checks import nb09 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# Every method here classifies a handful of small images per episode: the
# arithmetic is tiny, so we compute on **the CPU with one thread**, whatever
# device the setup found (the shipped table was made the same way).

# %%
torch.set_num_threads(1)
CPU = torch.device("cpu")
ROOT = runtime.repo_root()
SHIPPED = ROOT / "data" / "capstone" if ROOT is not None else None

# %% [markdown]
# ## 1. The test sets
#
# All the image models of the course read $28 \times 28$ grey images in
# $[0, 1]$ with **bright ink on a black background**: `course_lib.data`
# inverts Omniglot's PNGs (black strokes on white) when it reads them. MNIST
# and scikit-learn's digits already have bright ink on 0, so nothing is
# inverted; the $8 \times 8$ digits are resized (bilinear) to $20 \times 20$
# and padded to $28 \times 28$, the layout of MNIST (a digit in a 20-pixel box
# at the centre). Three choices keep every test set unseen:
#
# * **Omniglot**: the checkpoints were meta-trained on two different splits.
#   ProtoNet, Matching nets and MAML used the Vinyals split (1,200 of the 1,623
#   characters, from all 50 alphabets); the black-box learners and the
#   pretrained features used the 30 background alphabets (Lake's split).
#   The only characters unseen by *all* of them are those of the 20
#   evaluation alphabets that are also Vinyals test characters. The
#   Vinyals-trained models have seen *other* characters of these alphabets.
# * **MNIST**: GPICL was meta-trained on the first 9,000 images of the MNIST
#   test set, so the capstone uses the last 1,000.
# * **Digits**: VSML was meta-trained on 70 % of scikit-learn's digits; the
#   capstone uses the other 30 %.
#
# Even so, **two cells are in distribution for one method each**: VSML was
# meta-trained on digits (new images of the same ten classes) and GPICL on
# MNIST. The table notes this.

# %%
# NBVAL_CHECK_OUTPUT
pools = {name: cap.load_test_set(name) for name in cap.TEST_SETS}
for name, pool in pools.items():
    images = pool.images
    print(f"{name:16s} {len(pool):5d} images, {pool.num_classes:3d} classes, "
          f"{int(pool.examples_per_class().min()):3d}+ per class, shape {tuple(images.shape[1:])}, "
          f"values [{images.min():.0f}, {images.max():.0f}], mean {images.mean():.3f}, "
          f"mean of the 2x2 corners {images[:, :, :2, :2].mean():.4f}")

# %%
fig = plots.show_images(torch.cat([pools[name].images[:6] for name in cap.TEST_SETS]), ncols=6, size=1.0,
                        titles=[name if i == 0 else "" for name in cap.TEST_SETS for i in range(6)],
                        suptitle="six images of each test set (ink is drawn dark)")
plt.show()

# %% [markdown]
# The permuted sets keep every pixel value and every distance between two
# images: a pixel-space learner cannot tell them from the originals. What
# they destroy is the spatial arrangement that convolutions, max-pooling and
# every Omniglot-trained feature rely on.

# %% [markdown]
# **Exercise 1: a new input structure.** Write the permutation that makes
# the permuted test sets: pixel $i$ of every output image is pixel
# $\pi(i)$ of the input image, with one fixed permutation $\pi$ of the
# $H \times W$ pixel positions shared by all images. The check compares
# with known answers and names the usual mistakes (the inverse
# permutation, a different permutation per image, shuffling the batch).

# %%
def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """images [B, 1, H, W], permutation [H*W] -> [B, 1, H, W]."""
    # BEGIN SOLUTION: flatten each image's pixels, index them with the permutation, reshape back
    flat = images.flatten(1)
    return flat[:, permutation].view_as(images)
    # END SOLUTION


checks.check_permute_pixels(permute_pixels)
# the library's version made the table's permuted sets: yours must agree with it on real images
sample = pools["mnist"].images[:8]
permutation = cap.pixel_permutation()
print("same as course_lib.capstone.permute_pixels:",
      torch.equal(permute_pixels(sample, permutation), cap.permute_pixels(sample, permutation)))

# %% [markdown]
# ## 2. The protocol: the same episodes for everyone
#
# `cap.draw_episodes` runs the course's `EpisodeSampler` with one seeded
# generator per (test set, setting) and keeps *which images* it picked. The
# permuted sets reuse the episodes of their base set. The index lists of the
# shipped table are in `data/capstone/episodes.npz`; here we load them (or
# draw them again: the same seed gives the same lists) and check the claim
# with the one method that must be blind to a pixel permutation.

# %%
# NBVAL_CHECK_OUTPUT
EPISODES_FILE = SHIPPED / "episodes.npz" if SHIPPED is not None else None
if EPISODES_FILE is not None and EPISODES_FILE.is_file():
    lists = cap.load_episodes(EPISODES_FILE)
    print(f"loaded {len(lists)} index lists from data/capstone/episodes.npz")
else:
    lists = {}
    print("no shipped index lists: drawing them (same seeds, same lists)")
for key in ("omniglot/5w1s", "mnist/5w5s"):
    base, setting = key.split("/")
    ways, shots = int(setting[0]), int(setting[2])
    fresh = cap.draw_episodes(pools[base], ways, shots, 3, cap.episode_seed(base, ways, shots))
    if key in lists:
        assert torch.equal(fresh.support, lists[key].support[:3]) and torch.equal(fresh.query, lists[key].query[:3])
    print(f"{key}: seed {cap.episode_seed(base, ways, shots)}, first episode's classes {fresh.classes[0].tolist()}, "
          f"support rows {fresh.support[0].tolist()[:5]}...")

# %%
rows, missing = cap.build_rows(["pixel-nn"], CPU)
check = cap.run_rows(rows, ["mnist", "mnist-permuted"], [(5, 1)], episodes=cl.by_mode(smoke=20, full=200),
                     pools=pools, episode_lists=lists, progress=False)["pixel-nn"]["cells"]
a, b = check["mnist"]["5-way 1-shot"], check["mnist-permuted"]["5-way 1-shot"]
print(f"pixel nearest neighbour, 5-way 1-shot: mnist {100 * a['mean']:.2f} %, mnist-permuted {100 * b['mean']:.2f} % "
      f"({a['episodes']} identical episodes)")
assert a["mean"] == b["mean"], "a pixel permutation changed a pixel-space nearest neighbour: the episodes differ"

# %% [markdown]
# ## 3. The methods, and how each one is plugged in
#
# Every row of the table is a function `predict(support_x, support_y,
# query_x) -> logits [queries, N]`, the interface of `course_lib.evaluation`
# since notebook 01. The capstone reads the method registry
# (`course_lib.registry`): a method module names the runs that are rows
# (`RunSpec(..., capstone="maml")` in its `RUNS`), its `predictor(model)`
# answers the episodes and its `capstone_row` says what the table shows
# about the run; the baselines that no method trains (the pixel learners,
# the pretrained features) are the capstone's own rows. Most predictors are
# the model's own (`ProtoNet.predict`, `MatchingNet.predict`); four methods
# needed more, each documented in its module:
#
# * **MAML / first-order MAML / Reptile**: three inner steps (Reptile: ten) from the meta-learned
#   initialisation, keeping the first N rows of the 5-way head, with batch
#   statistics from the *support set* (non-transductive; MAML's own
#   evaluation normalises the queries with their own statistics, which is
#   worth about a point in distribution, `data/maml/README.md`).
# * **Black-box learners** (memory-augmented LSTM, LSTM, transformer of
#   notebook 05): one checkpoint per (ways, shots), trained on 2-4 ways, so
#   they are scored only where a checkpoint of exactly that setting exists:
#   **2-way 1-shot**, the reason this column is in the table. Each query is
#   its own sequence (the support set, then that query), the situation they
#   were trained in.
# * **VSML** (notebook 07; `vsml-omniglot` is the same recipe meta-trained
#   on Omniglot): an online learner of 16 randomly projected inputs. Each
#   episode gets its own random projection, the support set is replayed in
#   random orders for the 100 steps of its training streams, and each query
#   is classified from the resulting state.
# * **GPICL** (notebook 08; `gpicl-omniglot` meta-trained on Omniglot): each
#   episode is a new task id (a projection it never saw), the support set
#   then one query per sequence, and the 10 logits are **restricted to the
#   episode's N labels**. Its sequences (50 positions in the shipped runs)
#   cannot hold a 10-way 10-shot support set and a query, so that column
#   is "–", like MAML's (5-way heads) and the black-box learners'.
#
# The capstone never invents a row: a method whose checkpoint is not in the
# checkout is listed as missing (Reptile was, until its CPU checkpoint
# was shipped).

# %%
# NBVAL_CHECK_OUTPUT
RECORD = None
if SHIPPED is not None and (SHIPPED / "results.json").is_file():
    RECORD = json.loads((SHIPPED / "results.json").read_text())
    print(f"data/capstone/results.json: {len(RECORD['methods'])} methods, "
          f"{len(RECORD['test_sets'])} test sets x {len(RECORD['settings'])} settings")
    print("missing:", ", ".join(RECORD["missing"]) or "none")
else:
    print("data/capstone/results.json is not in this checkout: run python -m course_lib.capstone")

# %%
if RECORD is not None:
    rows = [f"| {name} | {m['family']} | {m['trained_on']} | {m['variables']['meta_parameters']:,} | "
            f"{m['variables']['learned_variables']:,} | {m['variables']['ratio_learned_per_meta']:.3g} |"
            for name, m in RECORD["methods"].items()]
    display(Markdown("| method | family | meta-trained on | meta-parameters | learned variables (per task) "
                     "| ratio |\n|---|---|---|---|---|---|\n" + "\n".join(rows)))

# %% [markdown]
# *Learned variables* are the numbers fitted to one task (here at 5-way
# 1-shot, or 2-way 1-shot for the black-box learners): the N prototypes of
# ProtoNet, the adapted weights of MAML, the state of a sequence model after
# the support set (the LSTM's fixed state, the transformer's key/value
# cache), VSML's grid of cell states. Hand-designed learners count one
# meta-parameter (the convention of `vsml.count_variables`, which counts
# SGD's learning rate); the pretrained Conv4 was fitted by ordinary
# supervised learning, not meta-learned, but it plays the same role.

# %% [markdown]
# ## 4. The table

# %%
if RECORD is not None:
    display(Markdown(cap.to_markdown(RECORD)))
    counts = {name: {c["episodes"] for row in m["cells"].values() for c in row.values()}
              for name, m in RECORD["methods"].items()}
    fewer = {name: sorted(v) for name, v in counts.items() if v != {RECORD["episodes"]}}
    print(f"episodes per cell: {RECORD['episodes']} in every cell" if not fewer else
          f"episodes per cell: {RECORD['episodes']}, except " + ", ".join(f"{k}: {v}" for k, v in fewer.items()))
    print(f"made by: {RECORD['command']}\non: {RECORD['hardware'].get('cpu')} ({RECORD['hardware']['device']}, "
          f"{RECORD['hardware']['torch_threads']} thread)")

# %% [markdown]
# ### The same meta-training data
#
# The rows above come from the notebooks' own checkpoints, meta-trained on
# different data (the "meta-trained on" column of the method table):
# the Vinyals split for ProtoNet, Matching nets and MAML (as in their
# papers), digits for notebook 07's VSML, MNIST for notebook 08's GPICL.
# A fair comparison gives every method **the same meta-training data**.
# `cap.shared_training` lists one row per family meta-trained on
# **Omniglot's 30 background alphabets and nothing else** (Lake's split,
# 964 characters): the pretrained features of notebook 02, ProtoNet and
# MAML trained on that split (`protonet-background`, `maml-background`),
# the black-box learners of notebook 05, and VSML and GPICL meta-trained on
# randomly projected, label-permuted tasks *made from those characters*
# (`vsml-omniglot`, `gpicl-omniglot`). For all of them the Omniglot column
# is in distribution (new alphabets) and every other column is a dataset
# they never saw.

# %%
if RECORD is not None:
    shared = cap.shared_training(RECORD)
    display(Markdown(cap.to_markdown(RECORD, ["pixel-nn"] + shared)))
    for name in shared:
        print(f"{name:20s} {RECORD['methods'][name]['trained_on']}")

# %% [markdown]
# What the shared-data rows show (5-way 1-shot unless a row has only
# 2-way 1-shot; the numbers are in the table above):
#
# * **In distribution, the convolutional learners win by far, whatever
#   their algorithm.** On unseen alphabets ProtoNet (95.1 %), the
#   pretrained features (94.2 %) and MAML (92.7 %) are within three points
#   of each other: three different algorithms on the same characters. VSML
#   (32.5 %) and GPICL (35.9 %) are *below* the pixel nearest neighbour
#   (41.5 %): they see each image through a random projection to 16 or 32
#   numbers, and a learner meta-trained to work for every projection cannot
#   use pen strokes.
# * **On a new input structure the order flips.** With the pixels
#   permuted, ProtoNet, MAML and the pretrained features lose 29-38 points
#   from their MNIST accuracy (ProtoNet 71.0 % to 32.8 %), while VSML and
#   GPICL score the same as on unpermuted MNIST (42.7 % and 46.9 %): they
#   are the only meta-learned rows that a permutation does not touch. The
#   pixel nearest neighbour, which learned nothing, still beats all of them
#   there (56.0 %).
# * **New datasets in between.** On MNIST the convolutional rows keep a
#   lead of 6-15 points over the pixel nearest neighbour; on the resized
#   scikit-learn digits none of them reaches it, and MAML (43.7 %) falls
#   below VSML and GPICL (63.5 %, 64.1 %).
#
# On equal data, then, the course's spectrum shows up as a trade: the more
# structure a method builds in (convolutions, a metric, a learned
# initialisation), the better it does on the kind of data it was
# meta-trained on, and the more it loses on data of a different structure;
# the black-box learners of random projections gave up most of the
# in-distribution accuracy to be indifferent to the input structure. These
# are short CPU runs with one seed each (section 6).

# %% [markdown]
# ### Live: the cheap methods on the same episodes
#
# The table took most of an hour on a busy CPU. Here the cheap methods are evaluated
# again, live, on the **first episodes of the same index lists** (a few in
# smoke mode, 200 per cell in full mode), next to the table's value.
# For a deterministic method the live episodes are a subset of the table's,
# so the two numbers must agree within their CIs.

# %%
LIVE_METHODS = ["pixel-nn", "protonet", "gpicl"]
LIVE_EPISODES = cl.by_mode(smoke=4, full=200)
live_rows, live_missing = cap.build_rows(LIVE_METHODS, CPU)
start = time.perf_counter()
live = cap.run_rows(live_rows, cap.TEST_SETS, cap.SETTINGS, episodes=LIVE_EPISODES, pools=pools,
                    episode_lists=lists, progress=False)
print(f"{len(live_rows)} methods x {len(cap.TEST_SETS)} test sets x {len(cap.SETTINGS)} settings, "
      f"{LIVE_EPISODES} episodes per cell, in {time.perf_counter() - start:.0f} s"
      + (f"; missing: {', '.join(live_missing)}" if live_missing else ""))

# %%
lines = ["| method | cell | live | table | within CIs |", "|---|---|---|---|---|"]
disagree = 0
for name, result in live.items():
    for test_set, row in result["cells"].items():
        for setting, c in row.items():
            shipped = RECORD["methods"].get(name, {}).get("cells", {}).get(test_set, {}).get(setting) if RECORD else None
            if shipped is None:
                continue
            ok = abs(c["mean"] - shipped["mean"]) <= (0 if math.isnan(c["ci95"]) else c["ci95"]) + shipped["ci95"]
            disagree += not ok
            if test_set in ("omniglot", "mnist-permuted") and setting == "5-way 1-shot":
                lines.append(f"| {name} | {test_set} · {setting} | {format_accuracy(c['mean'], c['ci95'])}"
                             f" | {format_accuracy(shipped['mean'], shipped['ci95'])} | {ok} |")
display(Markdown("\n".join(lines)))
print(f"cells where live and table differ by more than the sum of their CI half-widths: {disagree}")

# %% [markdown]
# ## 5. Two plots
#
# **Left**: each method's accuracy in distribution against its mean
# accuracy on the four other test sets, one point per setting. "In
# distribution" is Omniglot, except for the two methods meta-trained on
# something else: digits for VSML, MNIST for GPICL (for the pixel learners,
# which were not meta-trained at all, Omniglot is an arbitrary choice). On
# the diagonal a method loses nothing out of distribution. **Right**: the
# *variable ratio* (learned variables per meta-parameter, log scale) against
# the share of its above-chance accuracy a method keeps out of distribution,
# $(\text{acc}_{\text{out}} - 1/N) / (\text{acc}_{\text{in}} - 1/N)$, so that
# settings with different chance levels can share one axis.

# %% [markdown]
# **Exercise 2: the share kept.** Write the measure on the right-hand
# plot's vertical axis. Accuracies are fractions; chance is $1/N$.

# %%
def kept_share(acc_in: float, acc_out: float, ways: int) -> float:
    """The share of its above-chance accuracy a method keeps out of distribution."""
    # BEGIN SOLUTION: subtract chance (1 / ways) from both accuracies, then divide out by in
    chance = 1 / ways
    return (acc_out - chance) / (acc_in - chance)
    # END SOLUTION


checks.check_kept_share(kept_share)

# %%
if RECORD is not None:
    fig = cap.plot_generality(RECORD)
    plt.show()
    kept = {name: cap.generality(RECORD, name, m["variables"]["setting"]) for name, m in RECORD["methods"].items()}
    for name, g in sorted(kept.items(), key=lambda kv: -kv[1]["in_distribution"] if kv[1] else 0):
        if g is not None:
            print(f"{name:20s} in {100 * g['in_distribution']:5.1f} %  out {100 * g['out_of_distribution']:5.1f} %  "
                  f"kept {g['kept']:5.2f}  ({RECORD['methods'][name]['variables']['setting']})")

# %% [markdown]
# ## 6. What the table shows, and what it does not
#
# Read the printed numbers above (they come from `data/capstone/results.json`;
# `data/capstone/README.md` has the command that made it):
#
# * **In distribution, the convolutional models trained on Omniglot win,
#   by far.** ProtoNet is the best on unseen Omniglot characters; the scaled Matching
#   net, MAML and notebook 02's *pretrained* features (not meta-learned at
#   all) are close behind. The pixel learners, which learned nothing from
#   Omniglot, are 50-56 points lower at 5-way 1-shot (and VSML and GPICL,
#   which read random projections, lower still, section 4).
# * **On new datasets the lead shrinks or vanishes.** On MNIST every
#   convolutional Omniglot-trained model still beats the pixel learners; on the resized
#   scikit-learn digits ProtoNet is slightly below a nearest neighbour in
#   pixel space, and every other Omniglot-trained model further below.
# * **On a new input structure the champions collapse.** With the pixels
#   permuted, every convolutional model drops to a fraction of its MNIST
#   accuracy and below the pixel nearest neighbour, which does not see a
#   permutation at all (section 2 checks that it scores exactly the same):
#   what they meta-learned is a feature extractor for *pen strokes*, and a
#   permutation removes strokes. The in-distribution champions drop the
#   most. The memory-augmented LSTM and the in-context transformer (2-way
#   1-shot) show the same pattern, the transformer more steeply: it is a
#   little behind the memory-augmented LSTM on unseen Omniglot characters
#   and much further behind on MNIST and the digits.
# * **The learners that read random projections do not care about the
#   permutation.** VSML and GPICL score the same on permuted and unpermuted
#   images within their CIs (a permutation is just one more random
#   projection for them), but they are weak learners from one or five
#   examples: even on their own meta-training data (digits for VSML, MNIST
#   for GPICL) they are below the pixel nearest neighbour in these short
#   CPU runs.
# * **Structure against generality: no clean trend here.** In the right-hand
#   plot the pixel learners (thousands of learned variables per
#   meta-parameter) and GPICL keep all their above-chance accuracy out of
#   distribution (more than all: their "in distribution" set is harder for
#   them than the digits), but VSML (ratio about 1) keeps only a little more
#   than ProtoNet (ratio 0.003), and MAML (ratio 1: every weight is adapted
#   per task) less. In these runs the drop is predicted less by the ratio
#   than by *what the meta-parameters encode*: a convolutional stroke
#   detector (ProtoNet, Matching nets, MAML, the pretrained features) fails
#   on permuted pixels whatever it learns per task, and learners meta-trained
#   on random projections (VSML, GPICL) do not. On the shared data the
#   split is sharper: VSML and GPICL meta-trained on Omniglot keep more
#   than all of it (2.65 and 2.23: their Omniglot cells are their weakest),
#   ProtoNet, MAML and the pretrained features 0.38-0.49, although MAML's
#   ratio (1) is VSML's. With checkpoints this small,
#   one plot cannot settle the course's structure-versus-generality
#   question; it shows how to ask it.
#
# What it does **not** show:
#
# * **Not a ranking of the algorithms.** Each checkpoint is a short CPU run
#   (ProtoNet 10,371 of 20,000 episodes, MAML 2,729 of 60,000
#   meta-iterations with 8 tasks instead of 32, Reptile 1,208 of 100,000,
#   the memory-augmented LSTM 2,000 steps and the transformer 10,000, VSML
#   12 minutes, GPICL 116 minutes; on the shared data: ProtoNet 2,000
#   episodes, MAML 1,775 meta-iterations, VSML 15 minutes, GPICL 35
#   minutes). The plain LSTM of notebook 05 is **at chance** even in
#   distribution: it never left its plateau (notebook 05, section 3), so
#   its row says nothing about what an LSTM can learn.
# * **Two kinds of rows.** The notebooks' own checkpoints were
#   meta-trained on different data (the Vinyals split, the background
#   alphabets, scikit-learn digits for VSML, MNIST for GPICL), so comparing
#   two of them mixes the algorithm with its data; VSML's digits cells and
#   GPICL's MNIST cells are in distribution for them. The shared-data rows
#   of section 4 fix the data, not the budget: each is a CPU run of its own
#   length, one seed.
# * **Not every setting for every method.** The black-box checkpoints exist
#   only for 2-4 ways, MAML's head has 5 outputs, and GPICL's 10 outputs
#   are restricted to N; the empty cells are not zeros.
# * **The CIs are over episodes, not over training runs**: one seed per
#   method. Two methods whose CIs do not overlap differ on *these*
#   checkpoints; a second training seed could move a row by more.

# %% [markdown]
# **Try it.** Rerun one row with more episodes
# (`python -m course_lib.capstone --methods maml --episodes 1000 --out runs/capstone`),
# add a method (a module with the registry's face, `capstone_row` among it,
# and a run of its `RUNS` marked `capstone="my-method"`: `tests/toy_method.py`
# is one), or continue the Reptile checkpoint to the
# paper's budget (`ONLY=reptile_5w1s ROOT=data scripts/train_all.sh` on a
# GPU) and rerun its row to see how much of the gap to MAML was training
# time.
