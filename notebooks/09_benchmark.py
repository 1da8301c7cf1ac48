# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python (meta-learning course)
#     language: python
#     name: meta-learning-course
# ---

# %% [markdown]
# # 09 · Capstone: every method of the course on the same episodes
#
# Each notebook so far scored its own methods on its own tasks. That says
# whether a method works, not which one has learned something *general*.
# Here every method of the course meets the same test sets and the same
# episodes, and we measure how far what it meta-learned carries.
#
# After this notebook you will be able to:
#
# * set up a fair few-shot comparison (the same episodes for every method,
#   a 95% confidence interval per cell) and say what it holds equal and
#   what it does not;
# * measure generalisation against a learner that learned nothing (the
#   pixel nearest neighbour) and by the drop under a pixel permutation, and
#   explain why a ratio to in-distribution accuracy misleads;
# * read a large results table as per-test-set tables and a heat map;
# * test a claim of an earlier notebook (the variable ratio governs
#   transfer) against measurements, and place every method of the course
#   on the spectrum by what it learned, needed, carried and lost;
# * add a method of your own to the course through its registry, train it
#   with the course's command line and compare it with ProtoNet on the same
#   episodes, with the interval of the paired difference.
#
# Notation: [docs/notation.md](../docs/notation.md)
#
# 1. The test sets
# 2. The protocol: the same episodes for everyone
# 3. The methods, and how each one is plugged in
# 4. The table, one test set at a time
# 5. Measuring generalisation
# 6. Testing notebooks 05 and 06
# 7. Build it: a new method, through the registry

# %%
import inspect
import json
import math
import time
import types
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn

import course_lib as cl
from course_lib import capstone as cap
from course_lib import cli, data, episodes, evaluation, models, protonet, registry, runs, runtime
from course_lib.evaluation import format_accuracy
from course_lib.teaching import plots
from course_lib.teaching.checks import nb09 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# The arithmetic per episode is tiny, so we compute on the CPU with one
# thread, whatever device the setup found.

# %%
torch.set_num_threads(1)
CPU = torch.device("cpu")
ROOT = runtime.repo_root()
CAPSTONE_DIR = ROOT / "data" / "capstone" if ROOT is not None else None

# %% [markdown]
# ## 1. The test sets
#
# Every image model of the course reads $28 \times 28$ grey images in
# $[0, 1]$, bright ink on black (`course_lib.data` inverts Omniglot's PNGs).
# Scikit-learn's $8 \times 8$ digits are resized to $20 \times 20$ and
# padded to $28 \times 28$, MNIST's layout. Each test set is unseen by the
# methods:
#
# * **omniglot**: characters of the 20 evaluation alphabets that are also
#   test characters of the Vinyals split, so unseen under both training
#   splits of the course (the Vinyals-trained models have seen *other*
#   characters of these alphabets);
# * **mnist**: the last 1,000 MNIST test images (GPICL trained on the others);
# * **digits**: the 30 % of scikit-learn's digits that VSML held out;
# * **mnist-permuted**, **digits-permuted**: the same images with their
#   pixels shuffled by one fixed permutation $\pi$: a new input *structure*.
#
# Two cells are in distribution for one method each: VSML was meta-trained
# on digits, GPICL on MNIST.

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
# A permutation keeps every pixel value and every distance between two
# images, so a pixel-space learner cannot tell the permuted sets from the
# originals. It destroys the spatial arrangement that convolutions and
# every stroke detector rely on.
#
# **Exercise 1: a new input structure.** Write the permutation: pixel $i$
# of every output image is pixel $\pi(i)$ of the input image, one $\pi$ of
# the $H \times W$ positions for all images. The check names the usual
# mistakes (the inverse permutation, one permutation per image, shuffling
# the batch).

# %%
def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """images [B, 1, H, W], permutation [H*W] -> [B, 1, H, W]."""
    # BEGIN SOLUTION: one reordering of the pixel positions, the same for every image: output position i takes the input's pixel at permutation[i]
    flat = images.flatten(1)
    return flat[:, permutation].view_as(images)
    # END SOLUTION


# %%
checks.check_permute_pixels(permute_pixels)
# the library's version made the table's permuted sets: yours must agree with it on real images
sample = pools["mnist"].images[:8]
permutation = cap.pixel_permutation()
print("same as course_lib.capstone.permute_pixels:",
      torch.equal(permute_pixels(sample, permutation), cap.permute_pixels(sample, permutation)))

# %% [markdown]
# ## 2. The protocol: the same episodes for everyone
#
# N-way K-shot episodes (5-way 1-shot, 5-way 5-shot, 2-way 1-shot, and
# 10-way 10-shot where a method can take it), $Q = 15$ queries per class
# ($Q = 10$ at 10 shots: a character has 20 drawings), scored as mean ± 95%
# confidence interval over episodes. `cap.draw_episodes` keeps *which images* each episode
# uses, from one seeded generator per (test set, setting); the permuted sets
# reuse their base set's episodes. Below we draw the first episodes again,
# check them against the saved lists, and test the claim with the one
# method that must be blind to a permutation.

# %%
# NBVAL_CHECK_OUTPUT
EPISODES_FILE = CAPSTONE_DIR / "episodes.npz" if CAPSTONE_DIR is not None else None
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
# Every row is a function `predict(support_x, support_y, query_x) -> logits
# [N·Q, N]`, the interface of `course_lib.evaluation` since notebook 01. The
# rows are the runs that the method modules name in the registry, plus the
# baselines no method trains (the pixel learners, notebook 02's pretrained
# features). No row may batch its queries: each query is classified from
# $\mathcal{S}$ and itself alone. Three kinds of rows needed care:
#
# * **MAML, first-order MAML, Reptile** adapt from the learned
#   initialisation with batch statistics of $\mathcal{S}$; their 5-output
#   heads cannot take 10 ways.
# * **Black-box learners** of notebook 05 (LSTM + matching read-out,
#   transformer, the LSTM on pixels, Santoro et al.'s MANN) have one trained
#   model per setting, trained on 2-4 ways: they take only **2-way 1-shot**,
#   which is why that column exists.
# * **VSML** (07) and **GPICL** (08) read each image through a random
#   projection, a new one per episode; GPICL's logits are restricted to the
#   episode's $N$ labels, and its sequences cannot hold 10-way 10-shot.
#
# One row per family was meta-trained on **the same data**, Omniglot's 30
# background alphabets and nothing else: the pretrained features,
# `protonet-background`, `maml-background`, the black-box learners,
# `vsml-omniglot` and `gpicl-omniglot`. The other rows are the notebooks'
# own runs, meta-trained on other data (the table says which).

# %%
# NBVAL_CHECK_OUTPUT
RECORD = None
if CAPSTONE_DIR is not None and (CAPSTONE_DIR / "results.json").is_file():
    RECORD = json.loads((CAPSTONE_DIR / "results.json").read_text())
    print(f"data/capstone/results.json: {len(RECORD['methods'])} methods, "
          f"{len(RECORD['test_sets'])} test sets x {len(RECORD['settings'])} settings")
    print("missing:", ", ".join(RECORD["missing"]) or "none")
else:
    print("data/capstone/results.json is not in this checkout (data/capstone/README.md says how to make it)")

# %%
if RECORD is not None:
    rows = [f"| {name} | {m['family']} | {m['trained_on']} | {m['variables']['meta_parameters']:,} | "
            f"{m['variables']['learned_variables']:,} | {m['variables']['ratio_learned_per_meta']:.3g} |"
            for name, m in RECORD["methods"].items()]
    display(Markdown("| method | family | meta-trained on | meta-parameters | learned variables (per task) "
                     "| ratio |\n|---|---|---|---|---|---|\n" + "\n".join(rows)))

# %% [markdown]
# *Learned variables* $\lvert V_L \rvert$ are the numbers fitted to one task: the
# $N$ prototypes of ProtoNet, the adapted weights of MAML, a sequence model's
# state after $\mathcal{S}$, VSML's grid of cell states. The ratio is
# learned variables per meta-parameter, $\lvert V_L \rvert / \lvert V_M \rvert$;
# hand-designed learners count one meta-parameter.

# %% [markdown]
# ## 4. The table, one test set at a time
#
# The full table has 19 methods and 21 columns: too wide to read. First a
# heat map of the two settings that hold the most rows. Each cell shows the
# accuracy; its colour shows the points above (blue) or below (red) the
# pixel nearest neighbour on the same episodes.

# %%
if RECORD is not None:
    fig = cap.plot_heatmap(RECORD, ("5-way 1-shot", "2-way 1-shot"))
    plt.show()

# %%
if RECORD is not None:
    acc = {name: {t: cap.cell(RECORD, name, t, "5-way 1-shot") for t in RECORD["test_sets"]}
           for name in RECORD["methods"]}
    pct = lambda name, t: f"{100 * acc[name][t]['mean']:.1f} %"
    display(Markdown(
        f"**What it shows.** The left column is blue for every convolutional row: on unseen Omniglot characters "
        f"ProtoNet scores {pct('protonet', 'omniglot')} against the pixel nearest neighbour's "
        f"{pct('pixel-nn', 'omniglot')}. The colour fades on MNIST ({pct('protonet', 'mnist')} against "
        f"{pct('pixel-nn', 'mnist')}), turns red on the digits, and red everywhere on permuted "
        f"pixels ({pct('protonet', 'mnist-permuted')}). VSML and GPICL are pale red in every column: below pixels, "
        f"and unmoved by the permutation (`vsml-omniglot` {pct('vsml-omniglot', 'mnist')} and "
        f"{pct('vsml-omniglot', 'mnist-permuted')})."))

# %% [markdown]
# One table per test set, every setting. The last column is the gain over
# the pixel nearest neighbour at the row's own setting, in points (section 5).

# %%
if RECORD is not None:
    for test_set in RECORD["test_sets"]:
        display(Markdown(f"**{test_set}**: {RECORD['test_set_descriptions'][test_set]}\n\n"
                         + cap.per_test_set_markdown(RECORD, test_set)))
    counts = {c["episodes"] for m in RECORD["methods"].values() for row in m["cells"].values() for c in row.values()}
    print("episodes per cell:", ", ".join(map(str, sorted(counts))))

# %% [markdown]
# ### Does the table reproduce?
#
# The cheap methods again, live, on the first episodes of the same index
# lists (a few in smoke mode, 200 per cell in full mode). A deterministic
# method sees a subset of the table's episodes, so the two numbers must
# agree within their confidence intervals.

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
# ## 5. Measuring generalisation
#
# **Why.** A natural measure is the share of its above-chance accuracy a
# method keeps out of distribution,
# $(\text{acc}_{\text{out}} - 1/N) / (\text{acc}_{\text{in}} - 1/N)$.
#
# **Exercise 2: the share kept.** Write it (accuracies are fractions; chance
# is $1/N$). Then see what it says about two rows.

# %%
def kept_share(acc_in: float, acc_out: float, ways: int) -> float:
    """The share of its above-chance accuracy a method keeps out of distribution."""
    # BEGIN SOLUTION: what the method has above chance out of distribution, as a share of what it has above chance in distribution
    chance = 1 / ways
    return (acc_out - chance) / (acc_in - chance)
    # END SOLUTION


# %%
checks.check_kept_share(kept_share)

# %%
if RECORD is not None:
    def share(name):
        home = cap.in_distribution(RECORD, name)
        inside = cap.cell(RECORD, name, home, "5-way 1-shot")["mean"]
        outside = [cap.cell(RECORD, name, t, "5-way 1-shot")["mean"] for t in RECORD["test_sets"] if t != home]
        return kept_share(inside, sum(outside) / len(outside), 5)

    display(Markdown(
        f"At 5-way 1-shot the pixel nearest neighbour keeps **{share('pixel-nn'):.2f}** and `vsml-omniglot` "
        f"**{share('vsml-omniglot'):.2f}** of their above-chance accuracy, more than all of it, against "
        f"{share('protonet-background'):.2f} for `protonet-background`. A learner that learned nothing comes out "
        "far ahead, only because Omniglot, its \"in-distribution\" set, happens to be its hardest. A ratio to "
        "in-distribution accuracy rewards a method for being weak at home."))

# %% [markdown]
# **The idea.** Compare each method with a learner that learned nothing,
# on the same test set and episodes: the pixel nearest neighbour ("pix").
# For a method $m$, a test set $\mathcal{D}$ and one setting,
#
# $$\Delta_{\text{pix}}(m, \mathcal{D}) = \text{acc}_m(\mathcal{D}) - \text{acc}_{\text{pix}}(\mathcal{D}),
# \qquad \text{drop}_\pi(m, \mathcal{D}) = \text{acc}_m(\mathcal{D}) - \text{acc}_m(\pi(\mathcal{D})).$$
#
# $\Delta_{\text{pix}}$ is what meta-training added, on that data; it is
# negative when meta-training did harm. $\text{drop}_\pi$ is what the method
# owed to where the pixels are. Since the pixel learner scores the same on
# $\mathcal{D}$ and $\pi(\mathcal{D})$ (section 2),
# $\Delta_{\text{pix}}(m, \pi(\mathcal{D})) = \Delta_{\text{pix}}(m, \mathcal{D}) - \text{drop}_\pi(m, \mathcal{D})$.
# Both are differences of two cells, so neither depends on how hard the
# home set is. Their intervals combine the two cells' as if independent,
# which overstates them a little (the episodes are shared).

# %%
print(inspect.getsource(cap.gain_over_pixels))
print(inspect.getsource(cap.permutation_drop))

# %% [markdown]
# **Exercise 3: the difference of two methods on the same episodes.** Both
# methods answered the same episodes, and an episode that is hard for one is
# usually hard for the other. Given the per-episode accuracies `acc_a[i]`
# and `acc_b[i]` of episode $i$, return the mean difference $a - b$ and the
# 95% half-width of that mean (`course_lib.evaluation.mean_confidence_interval`
# computes mean ± half-width of a list of numbers, with Student's $t$).

# %%
def paired_difference(acc_a, acc_b):
    """(mean, ci95) of a - b over episodes that both methods answered."""
    # BEGIN SOLUTION: the episodes are shared, so the difference is measured once per episode: take the interval of those differences, not a combination of the two methods' intervals
    differences = torch.as_tensor(acc_a, dtype=torch.float64) - torch.as_tensor(acc_b, dtype=torch.float64)
    return evaluation.mean_confidence_interval(differences)
    # END SOLUTION


# %%
checks.check_paired_difference(paired_difference)

# %% [markdown]
# ProtoNet against the pixel nearest neighbour on the first Omniglot episodes
# of the table (5-way 1-shot): the same difference, with the interval of
# independent cells (`cap.difference`, as in the tables) and the paired one.

# %%
pair_rows, _ = cap.build_rows(["protonet", "pixel-nn"], CPU)
cells, per_episode = {}, {}
for row in pair_rows:  # section 4 drew (or loaded) these episodes
    result, _, per_episode[row.name] = cap.evaluate_cell(row, pools["omniglot"], lists["omniglot/5w1s"],
                                                         LIVE_EPISODES, cap.episode_seed("omniglot", 5, 1))
    cells[row.name] = result.as_dict()
unpaired = cap.difference(cells["protonet"], cells["pixel-nn"])
paired_mean, paired_ci = paired_difference(per_episode["protonet"], per_episode["pixel-nn"])
print(f"protonet - pixel-nn, omniglot 5-way 1-shot, {LIVE_EPISODES} shared episodes: "
      f"{100 * unpaired['mean']:+.1f} points; half-width as independent cells {100 * unpaired['ci95']:.1f}, "
      f"paired {100 * paired_ci:.1f}")

# %% [markdown]
# Per method, at **2-way 1-shot**, the one setting every row takes (so the
# setting is held equal): $\Delta_{\text{pix}}$ in distribution, on the other
# unpermuted test sets, and on the permuted ones, and $\text{drop}_\pi$
# averaged over MNIST and digits.

# %%
SETTING = "2-way 1-shot"
if RECORD is not None:
    G = {name: cap.generalisation(RECORD, name, SETTING) for name in RECORD["methods"]}
    points = lambda d: "–" if d is None else f"{100 * d['mean']:+.1f} ± {100 * d['ci95']:.1f}"
    lines = ["| method | in distribution | new datasets | permuted pixels | drop under π | ratio |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {name} ({g['home']}) | {points(g['in_distribution'])} | {points(g['new_datasets'])} | "
              f"{points(g['new_structure'])} | {points(g['permutation_drop'])} | "
              f"{RECORD['methods'][name]['variables']['ratio_learned_per_meta']:.3g} |" for name, g in G.items()]
    display(Markdown("Points above the pixel nearest neighbour (Δ_pix) and lost under the permutation, "
                     f"{SETTING}; ratio: learned variables per meta-parameter.\n\n" + "\n".join(lines)))

# %%
if RECORD is not None:
    fig = cap.plot_generalisation(RECORD, setting=SETTING)
    plt.show()
    gain = lambda name, key="in_distribution": 100 * G[name][key]["mean"]
    both = [name for name, g in G.items() if name != cap.REFERENCE and g["in_distribution"]["mean"] > 0
            and g["new_structure"]["mean"] > 0]
    display(Markdown(
        f"**What it shows** (left, the rows on the shared data). Structure buys accuracy at home and costs it on a "
        f"new structure: `protonet-background` gains {gain('protonet-background'):+.1f} points in distribution and "
        f"{gain('protonet-background', 'new_structure'):+.1f} on permuted pixels, `maml-background` "
        f"{gain('maml-background'):+.1f} and {gain('maml-background', 'new_structure'):+.1f}. The rows that read "
        f"random projections sit near the origin: `gpicl-omniglot` {gain('gpicl-omniglot'):+.1f} and "
        f"{gain('gpicl-omniglot', 'new_structure'):+.1f}. Rows above the pixel learner both in distribution and on "
        f"permuted pixels: {', '.join(both) or 'none'}."))

# %% [markdown]
# ## 6. Testing notebooks 05 and 06
#
# Two earlier notebooks explained transfer by the variable ratio. Notebook
# 05: black-box learners have few learned variables per meta-parameter, and
# "that is the root of their overfitting". Notebook 06: learned optimizers
# and losses have many, and "that is why they can transfer". As a
# hypothesis: *the more learned variables per meta-parameter, the better a
# meta-learned method transfers.* It predicts that rows of equal ratio lose
# about the same under a new input structure, and that the drop shrinks as
# the ratio grows. The right panel above tests it; so do pairs of rows.

# %%
if RECORD is not None:
    ratio = lambda name: RECORD["methods"][name]["variables"]["ratio_learned_per_meta"]
    drop = lambda name: 100 * G[name]["permutation_drop"]["mean"]
    display(Markdown(
        f"* **Equal ratio, opposite outcomes.** `maml-background` (ratio {ratio('maml-background'):.2f}) loses "
        f"{drop('maml-background'):.1f} points under the permutation, `vsml-omniglot` (ratio "
        f"{ratio('vsml-omniglot'):.2f}) changes by {-drop('vsml-omniglot'):+.1f}.\n"
        f"* **A {ratio('maml-background') / ratio('mann'):.0f}-fold range of ratios, similar drops.** `mann` ({ratio('mann'):.4f}), `protonet-background` "
        f"({ratio('protonet-background'):.4f}) and `maml-background` lose {drop('mann'):.1f}, "
        f"{drop('protonet-background'):.1f} and {drop('maml-background'):.1f} points.\n"
        f"* **A small ratio, no drop.** `gpicl-omniglot` (ratio {ratio('gpicl-omniglot'):.3f}, a black box) "
        f"changes by {-drop('gpicl-omniglot'):+.1f}.\n\n"
        "In these runs the ratio does not predict the drop. What does is what the meta-parameters assume about "
        "the input: convolutions, trained on strokes, assume that neighbouring pixels belong together; VSML and "
        "GPICL were meta-trained on randomly projected tasks, so they assume nothing about pixel order, and they "
        "pay for it with accuracy everywhere. The hypothesis of 05 and 06 is not confirmed as stated: a ratio "
        "counts how much is learned per task, not what the fixed part takes for granted."))

# %% [markdown]
# What the test does **not** show:
#
# * **Not a ranking of algorithms.** Each row's model is trained for a
#   fraction of its paper's budget, with one training seed; the intervals
#   are over episodes, not over seeds. The `lstm` row is CS330's LSTM on
#   pixels, its training characters also rotated as Santoro et al. do;
#   with a learned image encoder the same LSTM never left its plateau
#   (notebook 05).
# * **The shared-data rows fix the data, not the budget**, and the
#   notebooks' own rows mix the algorithm with its data.
# * **Empty cells are not zeros**: a method that cannot take a setting
#   has no number there.
# * **One reference.** A different pixel-space learner (the fine-tuned
#   linear head, `pixel-finetune`) moves every $\Delta_{\text{pix}}$ by a few
#   points, and no conclusion above.

# %% [markdown]
# ## 7. Build it: a new method, through the registry
#
# The capstone's rows come from the registry: a method is one module with a
# small face (`Config`, `build`, `load_data`, `trainer`, `evaluate`,
# `predictor`, `PAPER`, `RUNS`, `describe`, and `capstone_row` for a row in
# the table), registered under a name. Then the course's command line
# trains it, saves its state so that training can stop and continue, and the
# capstone scores it on the
# same episodes as every other row. Here you add a method the course does
# not have: **cosine prototypes with a learned scale**, the classifier of
# Gidaris & Komodakis (2018) and of Chen et al.'s "Baseline++" (2019), used
# as a metric learner. A query's score for class $k$ is
#
# $$s_k(x) = \tau \cos\big(f_\omega(x), c_k\big), \qquad c_k = \frac{1}{K} \sum_{j:\, y_j = k} f_\omega(x_j),$$
#
# ProtoNet's prototypes compared by direction rather than by distance, and
# $\tau > 0$, the scale (an inverse temperature), is a meta-parameter
# learned with $\omega$: cosines lie in $[-1, 1]$, so without it the softmax
# could never be confident. You write three pieces, each followed by a
# check; the rest of the module is given. Then you train your method with
# the course's command line, on the capstone's shared data (Omniglot's
# background alphabets), and read its row beside `protonet-background`.
#
# **Part 1: the scores.** `cosine_scores(z_support, support_y, z_query,
# ways, scale)` returns the scores `[n_query, ways]` (logits: the
# cross-entropy applies the softmax). A query's scores may depend on the
# support set and on that query, never on the other queries.

# %%
def cosine_scores(z_support, support_y, z_query, ways, scale):
    """Scores ``[n_query, ways]``: ``scale * cos(z_query, c_k)``, ``c_k`` the mean support embedding of class k."""
    # BEGIN SOLUTION: a class is the average of its support embeddings; compare directions, not lengths; the learned scale sharpens the cosines, so it must stay in the graph
    prototypes = torch.stack([z_support[support_y == k].mean(0) for k in range(ways)])
    return scale * F.normalize(z_query, dim=1) @ F.normalize(prototypes, dim=1).T
    # END SOLUTION


# %%
checks.check_cosine_scores(cosine_scores)

# %% [markdown]
# The model (given): a Conv4 embedding, from notebook 03's ProtoNet
# (`protonet.FewShotModel`: support and query embedded in one batch in
# training, and `predict` in eval mode for test episodes), plus the scale,
# kept as its logarithm so that it stays positive. The `Config` holds every
# setting of a run and rejects bad ones.

# %%
@dataclass
class CosineConfig:
    """A run: Conv4-``hidden`` on Omniglot background, ``ways``-way ``shots``-shot ``queries``-query episodes."""

    hidden: int = 32
    ways: int = 20
    shots: int = 5
    queries: int = 5
    steps: int = 400
    meta_lr: float = 1e-3
    initial_scale: float = 10.0
    seed: int = 0
    image_size: int = 28
    channels_last: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden", "shots", "queries", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ways < 2:
            raise ValueError(f"ways must be >= 2 (one class is no classification task), got {self.ways}")
        if self.steps < 0 or not self.meta_lr > 0 or not self.initial_scale > 0:
            raise ValueError("steps must be >= 0, meta_lr and initial_scale > 0")


class CosineProtoNet(protonet.FewShotModel):
    """``scores[q, k] = scale * cos(f(x_q), c_k)``, the scale learned with the embedding."""

    def __init__(self, config: CosineConfig) -> None:
        super().__init__(config)
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.initial_scale)))

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def forward(self, support_x, support_y, query_x):
        z_support, z_query = self.embed_episode(support_x, query_x)
        return cosine_scores(z_support, support_y.to(z_support.device), z_query, int(support_y.max()) + 1,
                             self.scale)


# %% [markdown]
# **Part 2: the training step.** `trainer(model, config, data, device)`
# returns `runs.Trainer(step, optimizer)`: the course's training loop calls
# `step(i)` for $i = 0, 1, \dots$, saves the optimizer's state, and may stop
# and continue from any step. Step $i$ trains on one `config.ways`-way
# `config.shots`-shot episode of `data["train"]` with `config.queries`
# queries per class (`episodes.FastEpisodeSampler`, as in notebook 03), with
# one Adam optimizer of learning rate `config.meta_lr`, and returns
# `{"loss": ...}` (more numbers are welcome: the loop records them). A run
# that stops and continues must train on exactly the episodes an
# uninterrupted one would.

# %%
def trainer(model, config, data, device="cpu"):
    """One step of episodic training of ``model``: the query cross-entropy of the episode of (seed, step)."""
    # BEGIN SOLUTION: one optimizer for the run, holding every meta-parameter, the scale too; each step a fresh episode decided by the seed and the step alone; the loss scores the queries against prototypes of the support set
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    sampler = episodes.FastEpisodeSampler(data["train"], config.ways, config.shots, config.queries, device=device)

    def step(i):
        episode = sampler.sample(episodes.step_generator(config.seed, i))
        scores = model(episode.support_x, episode.support_y, episode.query_x)
        loss = F.cross_entropy(scores, episode.query_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "scale": model.scale.item()}

    return runs.Trainer(step, optimizer)
    # END SOLUTION


# %%
checks.check_trainer(trainer, CosineConfig)

# %% [markdown]
# **Part 3: the row.** `capstone_row(run, model, payload)` returns what the
# capstone's table says about a run (`payload["step"]`: the steps it
# trained): `trained_on`, beginning with "Omniglot background" (the words by
# which the capstone knows its shared data), a `family` and a `note`,
# `meta_parameters` (how many numbers meta-training fits) and
# `learned_variables`, a function `(ways, shots) ->` how many numbers the
# method fits to one task (section 3).

# %%
def capstone_row(run, model, payload):
    """The capstone's words and counts for ``run`` of the cosine-prototype method."""
    # BEGIN SOLUTION: meta-parameters are everything meta-training fits (the scale too); learned variables are what one task's support set fixes, which depends on the number of classes
    c = model.config
    return {"trained_on": f"Omniglot background (Lake, 964 characters; {c.ways}-way {c.shots}-shot episodes)",
            "family": "metric", "meta_parameters": models.count_parameters(model),
            "learned_variables": lambda ways, shots: ways * c.hidden,
            "note": f"{run.folder} ({payload['step']:,} training episodes); cosine prototypes, learned scale"}
    # END SOLUTION


# %%
checks.check_capstone_row(capstone_row, CosineProtoNet(CosineConfig()))

# %% [markdown]
# **The module and its registry line (given).** A method is a module: here
# one made in the notebook, with your three pieces, the model above, and
# what it reuses of ProtoNet (its evaluation on test episodes). `RUNS` names
# the run folder, under `runs/` beside the course's own runs, and its
# capstone row. `registry.register` is the registry line.

# %%
NAME = "cosine-protonet"


def load_data(config, smoke=False):
    """Omniglot background (964 characters) to meta-train, the evaluation alphabets to test (smoke: 40 each)."""
    splits = data.omniglot_splits("lake", rotations=False, image_size=config.image_size)
    return {k: v.subset_classes(range(40)) for k, v in splits.items()} if smoke else splits


method = types.ModuleType("cosine_protonet", "Cosine prototypes with a learned scale (notebook 09's build-it).")
vars(method).update(
    Config=CosineConfig, build=CosineProtoNet, load_data=load_data, trainer=trainer,
    evaluate=protonet.evaluate, evaluation_details=protonet.evaluation_details, predictor=protonet.predictor,
    capstone_row=capstone_row, PAPER={},  # no paper reports this variant on Omniglot
    RUNS=(runs.RunSpec("runs/build_it/cosine-protonet", "Cosine prototypes, learned scale", capstone=NAME),),
    describe=lambda config: (f"Omniglot background, Conv4-{config.hidden}, cosine prototypes with a learned scale, "
                             f"{config.ways}-way {config.shots}-shot {config.queries}-query training"))

# %%
checks.check_method_face(method)

# %%
registry.register(NAME, method)
print("registered:", ", ".join(registry.names()))

# %% [markdown]
# **Train it with the course's command line.** `cli.main` takes the words
# a terminal would pass to the course's command line (`train
# cosine-protonet ...`, options as in the next cell); called from Python, it finds the
# method this notebook registered. It trains, writes the run folder (the
# trained model, its history and results), and scores the trained model on
# test episodes of the evaluation alphabets.

# %%
BUILD_STEPS = cl.by_mode(smoke=3, full=400)
BUILD_OUT = ROOT / method.RUNS[0].folder
start = time.perf_counter()
own_results = cli.main(["train", NAME, "--out", str(BUILD_OUT), "--overwrite", "--steps", str(BUILD_STEPS),
                        "--threads", "1", "--device", "cpu", "--no-progress", "--test-settings", "5x1",
                        "--test-episodes", str(cl.by_mode(smoke=5, full=100)),
                        *(["--smoke-data"] if cl.is_smoke() else [])])
build_seconds = time.perf_counter() - start
history = json.loads((BUILD_OUT / "history.json").read_text())
print(f"{BUILD_STEPS} training episodes and the test in {build_seconds:.0f} s; the scale went from "
      f"{CosineConfig.initial_scale:.1f} to {registry.load(BUILD_OUT)[0].scale.item():.1f}")

# %% [markdown]
# **Its row in the capstone.** The registry now names the run as the row
# `cosine-protonet`: `cap.build_rows` loads it from its folder like every
# other row, and `cap.run_rows` scores it on the first episodes of the
# table's index lists, beside `protonet-background` (ProtoNet with a
# Conv4-64 on the same shared data, trained longer). The bar is what the reference
# solution reaches at this budget on unseen Omniglot characters, less a
# margin.

# %%
BAR = 0.80  # omniglot, 5-way 1-shot: the reference solution's accuracy at this budget, less a margin
COMPARED = [NAME, "protonet-background"]
build_rows, build_missing = cap.build_rows(COMPARED, CPU)
build_table = cap.run_rows(build_rows, ["omniglot", "mnist"], [(5, 1)], episodes=LIVE_EPISODES, pools=pools,
                           episode_lists=lists, progress=False)
lines = ["| row | trained on | meta-parameters | omniglot | mnist |", "|---|---|---|---|---|"]
for name, r in build_table.items():
    cells = [r["cells"][test_set]["5-way 1-shot"] for test_set in ("omniglot", "mnist")]
    lines.append(f"| {name} | {r['trained_on']} | {r['variables']['meta_parameters']:,} | "
                 + " | ".join(format_accuracy(c["mean"], c["ci95"]) for c in cells) + " |")
display(Markdown(f"5-way 1-shot, the first {LIVE_EPISODES} episodes of the capstone's lists\n\n" + "\n".join(lines)))

accuracies = [cap.evaluate_cell(row, pools["omniglot"], lists["omniglot/5w1s"], LIVE_EPISODES,
                                cap.episode_seed("omniglot", 5, 1))[2] for row in build_rows]  # per episode
difference, half_width = paired_difference(*accuracies)
print(f"{NAME} - protonet-background, omniglot 5-way 1-shot: {100 * difference:+.1f} ± {100 * half_width:.1f} "
      f"points (paired, {LIVE_EPISODES} episodes)")

mine = build_table[NAME]["cells"]["omniglot"]["5-way 1-shot"]["mean"]
if cl.is_smoke():
    verdict = f"the bar holds for the full budget, not for these {BUILD_STEPS} episodes"
elif mine >= BAR:
    verdict = "above the bar: your method learns, and the capstone scores it like every other row"
else:
    verdict = ("below the bar. The usual causes: a dot product instead of a cosine, or the scale left out of the "
               "optimizer (stuck near its initial value, the softmax stays soft); the loss taken on the support "
               "set; gradients not cleared between steps; the network left in eval mode while training")
display(Markdown(f"**Your result.** {100 * mine:.1f} % on unseen Omniglot characters at 5-way 1-shot against a bar "
                 f"of {100 * BAR:.0f} %: {verdict}."))

# %% [markdown]
# **Open question.** Is the learned scale worth learning? Train with the
# scale fixed (give the optimizer only the encoder's parameters) at a few
# values of `initial_scale`, and with it learned from each of them, at the
# same number of episodes. Where does the learned scale end, does it
# depend on where it started, and how does the paired difference on
# Omniglot and on MNIST move? Then replace the cosine by ProtoNet's squared
# distance in your module: which of the two carries better to MNIST, and is
# the difference larger than its interval?

# %% [markdown]
# ## What we learned
#
# The spectrum of the course, from hand-designed skeletons to learners made
# of activations, with what each point learned and where it carried.
# Notebook 06's methods train networks rather than classify episodes, so
# they have no row in the capstone; their entries are notebook 06's findings.

# %%
SYMLA = ROOT / "data" / "vsml" / "symla" / "symla" / "results.json" if ROOT is not None else None
if RECORD is not None and SYMLA is not None and SYMLA.is_file():
    bandits = json.loads(SYMLA.read_text())["results"]
    reward = lambda arms, who: next(v[who]["mean"] for k, v in bandits.items() if k.startswith(f"{arms} arms"))
    pts = lambda name, key: f"{100 * G[name][key]['mean']:+.1f}"
    spectrum = [
        ("learned optimizers (06)", "an update rule: one LSTM shared by every coordinate",
         "backpropagation through unrolled training of one family of networks",
         "a wider network than it was meta-trained on", "ReLU networks, and horizons beyond its truncation"),
        ("learned initialisations (04: `maml-background`)", "a Conv4 start that adapts in a few gradient steps",
         "second-order meta-gradients, a 5-way head",
         f"Omniglot {pts('maml-background', 'in_distribution')} points over pixels, MNIST {100 * cap.gain_over_pixels(RECORD, 'maml-background', 'mnist', SETTING)['mean']:+.1f}",
         f"digits ({100 * cap.gain_over_pixels(RECORD, 'maml-background', 'digits', SETTING)['mean']:+.1f}), "
         f"permuted pixels ({pts('maml-background', 'new_structure')})"),
        ("learned objectives (06)", "a loss that down-weights implausible labels",
         "meta-gradients through SGD on noisy-label tasks",
         "new digit tasks; MNIST at moderate noise", "MNIST at the highest noise rate"),
        ("symmetries: VSML, SymLA (07: `vsml-omniglot`)", "a learning rule in one tiny LSTM per connection",
         "tasks made by random projections and label permutations; SymLA: one LSTM shared by every arm",
         f"any pixel order (drop {100 * G['vsml-omniglot']['permutation_drop']['mean']:+.1f}); SymLA from 2 to 10 "
         f"arms ({reward(10, 'SymLA'):.2f} reward vs UCB1's {reward(10, 'UCB1'):.2f})",
         f"few-shot accuracy: below pixels on every test set ({pts('vsml-omniglot', 'in_distribution')} at home)"),
        ("black-box sequence models (05: `mann`; 08: `gpicl-omniglot`)", "a learner in the activations",
         "many episodes of one setting (`mann`) or of random tasks (GPICL)",
         f"`mann`: Omniglot {pts('mann', 'in_distribution')}; GPICL: any pixel order "
         f"(drop {100 * G['gpicl-omniglot']['permutation_drop']['mean']:+.1f})",
         f"`mann`: no gain on new datasets ({pts('mann', 'new_datasets')}), permuted pixels ({pts('mann', 'new_structure')}); "
         f"GPICL: below pixels ({pts('gpicl-omniglot', 'in_distribution')})"),
    ]
    display(Markdown(f"Points: Δ_pix at {SETTING}.\n\n| point of the spectrum | what it learned | what it needed | "
                     "where it transferred | where it broke |\n|---|---|---|---|---|\n"
                     + "\n".join("| " + " | ".join(row) + " |" for row in spectrum)))

# %% [markdown]
# **What a method is given decides where it transfers**: convolutions with
# a learned metric or initialisation win by a wide margin on the data they
# were meta-trained for and fall below a pixel learner on a new input
# structure, while learners meta-trained on random projections are
# indifferent to the structure and weak everywhere. **The variable ratio is
# not the explanation** that notebooks 05 and 06 proposed: rows of equal
# ratio differ and rows of very different ratio agree; the symmetries built
# into the tasks or the architecture matter more. **Every measure needs a
# reference that learned nothing**: against the pixel nearest neighbour, no
# meta-learned row of this course both wins at home and holds up on
# permuted pixels. A learner as strong as a convolution at home and as
# indifferent as VSML to the input's layout is the open problem the course
# ends on; general-purpose in-context learners at the scale of the papers
# (notebook 08) are one attempt at it.
#
# **Try it.** Score one row on more episodes, give your method of
# section 7 more training episodes and every cell of the table, or train
# Reptile to the paper's budget and see how much of its gap
# to MAML was training time. `data/capstone/README.md` has the commands.

# %% [markdown] jupyter={"source_hidden": true}
# ## How this was made
#
# The table is `data/capstone/results.json` (with `results.md`,
# `results.csv` and the episode index lists `episodes.npz`), written by
# `python -m course_lib.capstone --episodes 1000 --out data/capstone`, one
# command per group of rows, on a shared 2-core CPU with one torch thread;
# `results.json` keeps each row's command (`runs`) and the machine
# (`hardware`). Every cell has 1,000 episodes. The checkpoints are the
# course's shipped runs, each a short CPU run: ProtoNet 10,371 of the
# paper's 20,000 episodes, MAML 2,729 of 60,000 meta-iterations (8 tasks
# instead of 32), Reptile 2,496 of 100,000 and first-order MAML 5,992 of
# 60,000, the LSTM + matching read-out 2,000 steps, the transformer 10,000,
# the LSTM on pixels (with rotated training characters) 40,000 and the MANN
# 20,000, VSML 12 minutes, GPICL 116 minutes; on
# the shared data ProtoNet 2,000 episodes, MAML 1,775 meta-iterations,
# VSML 15 minutes, GPICL 35 minutes. `data/capstone/README.md` lists every
# command, the episodes per cell and the time per episode, and the commands
# of the Try-it: more episodes for one row
# (`python -m course_lib.capstone --methods maml --episodes 1000 --out runs/capstone`)
# and Reptile at the paper's budget
# (`ONLY=reptile_5w1s ROOT=data scripts/train_all.sh` on a GPU). Section 7's
# build-it run trains on one CPU thread.
