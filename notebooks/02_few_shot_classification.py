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
# # 02 · Few-shot classification: learning to learn, made concrete
#
# Notebook 01 ended with a designed learning algorithm, SGD from scratch,
# getting many queries wrong on five new characters with one drawing each. This notebook sets up
# the problem that the rest of the course solves:
#
# 1. **tasks as datasets**: every task is a small dataset with its own
#    training part (the *support set*) and test part (the *query set*), and
#    tasks come from a distribution;
# 2. **the meta-learning objective**: optimise a learning algorithm over that
#    distribution, and judge it on tasks built from classes it never saw;
# 3. **baselines** that every later method must beat, on the same test
#    episodes, with 95% confidence intervals: nearest neighbour in pixel
#    space, and a network pretrained by ordinary supervised learning whose
#    features are reused by a nearest-centroid rule or by a new linear head
#    fitted to the support set;
# 4. **the episode explorer**, the widget you will use in every later
#    notebook to look inside tasks and at what a learner predicts.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, display

import course_lib as cl
from course_lib import baselines, data, episodes, evaluation, models, runtime
from course_lib.teaching import explorer, plots
from course_lib.teaching.checks import nb02 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# ## 1. Tasks as datasets
#
# In ordinary supervised learning the unit of data is an example $(x, y)$.
# In meta-learning it is a **task**: a whole small dataset. For few-shot
# classification a task $\mathcal{T}$ is an **episode**:
#
# * $N$ classes ("$N$-way"), chosen at random, relabelled $0, \dots, N-1$ in
#   a random order;
# * a **support set** $\mathcal{S} = \{(x_j, y_j)\}_{j=1}^{NK}$ with $K$
#   labelled examples per class ("$K$-shot"): the task's training data;
# * a **query set** $\mathcal{Q} = \{(x_i, y_i)\}_{i=1}^{NQ}$ with $Q$ further
#   examples of each class: the task's test data, on which a learner is scored.
#
# The classes are what must not leak: **meta-training** tasks are built from
# one set of classes and **meta-test** tasks from another, disjoint set. We use
# the **Lake protocol** on Omniglot: meta-train on the 964 characters of the
# 30 *background* alphabets, meta-test on the 659 characters of the 20
# *evaluation* alphabets, so every test task is written in an alphabet the
# learner has never seen (no rotation augmentation).

# %%
# NBVAL_CHECK_OUTPUT
splits = data.omniglot_splits("lake")
meta_train, meta_test = splits["train"], splits["test"]
train_alphabets, test_alphabets = set(meta_train.class_groups), set(meta_test.class_groups)
assert not set(meta_train.class_names) & set(meta_test.class_names), "a character is in both splits"
assert not train_alphabets & test_alphabets, "an alphabet is in both splits"
print(meta_train, meta_test, sep="\n")
print(f"meta-train: {meta_train.num_classes} characters from {len(train_alphabets)} alphabets | "
      f"meta-test: {meta_test.num_classes} characters from {len(test_alphabets)} other alphabets")

# %% [markdown]
# An `EpisodeSampler` turns a split into a task distribution. One 5-way
# 1-shot episode with 15 queries per class, as tensors:

# %%
# NBVAL_CHECK_OUTPUT
test_tasks = episodes.EpisodeSampler(meta_test, ways=5, shots=1, queries=15)
episode = test_tasks.sample(torch.Generator().manual_seed(0))
for name in ("support_x", "support_y", "query_x", "query_y", "classes"):
    print(f"{name:9s} {str(tuple(getattr(episode, name).shape)):17s} {getattr(episode, name).dtype}")
print("support_y =", episode.support_y.tolist())
assert episode.support_x.shape == (5 * 1, 1, 28, 28) and episode.query_x.shape == (5 * 15, 1, 28, 28)
assert torch.equal(episode.query_y, torch.arange(5).repeat_interleave(15))
assert set(meta_test.class_groups[c] for c in episode.classes.tolist()) <= test_alphabets

# %% [markdown]
# A task distribution gives many tasks. Below, eight 5-way 1-shot tasks, one
# per row, support sets only: four from meta-training, four from meta-test.
# Each row is a different little classification problem; the label $0$ means
# a different character in every row.

# %%
train_tasks = episodes.EpisodeSampler(meta_train, ways=5, shots=1, queries=1)
generator = torch.Generator().manual_seed(1)
rows, titles = [], []
for split, sampler in (("meta-train", train_tasks), ("meta-test", test_tasks)):
    for _ in range(4):
        task = sampler.sample(generator)
        rows.append(task.support_x)
        titles += [f"{split}: {label} = {sampler.dataset.class_groups[int(c)][:12]}"
                   for label, c in enumerate(task.classes.tolist())]
plots.show_images(torch.cat(rows), titles=titles, ncols=5, size=1.1,
                  suptitle="eight tasks (one per row): meta-train above, meta-test below")
plt.show()

# %% [markdown]
# And two whole episodes, support set (left, one row per class) and query
# set (right): one from meta-training, one from meta-test.

# %%
for split, sampler in (("meta-train", train_tasks), ("meta-test", test_tasks)):
    small = episodes.EpisodeSampler(sampler.dataset, ways=5, shots=2, queries=5)
    plots.plot_episode(small.sample(torch.Generator().manual_seed(2)), class_names=sampler.dataset.class_names,
                       size=0.7, title=f"a 5-way 2-shot {split} episode (5 queries per class)")
    plt.show()

# %% [markdown]
# ## 2. The meta-learning objective
#
# Supervised learning fits parameters $\theta$ to **one** dataset:
# $$\theta^* = \arg\min_\theta \; \mathbb{E}_{(x, y) \sim \mathcal{D}}\, \ell(f_\theta(x), y).$$
#
# Meta-learning fits a **learning algorithm** to a **distribution of
# datasets**. A learning algorithm $\mathcal{A}_\omega$, with
# meta-parameters $\omega$, takes a support set and returns a classifier
# $\mathcal{A}_\omega(\mathcal{S})$; it is good if that classifier is right on
# the query set, on average over tasks:
# $$\omega^* = \arg\min_\omega \; \mathbb{E}_{\mathcal{T} \sim p_{\text{train}}(\mathcal{T})}
#   \Big[ \frac{1}{|\mathcal{Q}|} \sum_{(x, y) \in \mathcal{Q}} \ell\big(\mathcal{A}_\omega(\mathcal{S})(x), y\big) \Big].$$
#
# * **Meta-training** estimates this expectation with tasks from the
#   meta-training classes and optimises $\omega$.
# * **Meta-testing** measures what we care about: the accuracy of
#   $\mathcal{A}_\omega$ on tasks from $p_{\text{test}}(\mathcal{T})$, whose
#   classes never appeared in meta-training,
#   $$\text{acc}(\mathcal{A}_\omega) = \mathbb{E}_{\mathcal{T} \sim p_{\text{test}}}
#     \Big[ \frac{1}{|\mathcal{Q}|} \sum_{(x, y) \in \mathcal{Q}} \mathbb{1}\big[\mathcal{A}_\omega(\mathcal{S})(x) = y\big] \Big]
#     \approx \bar a = \frac{1}{M} \sum_{m=1}^{M} a_m,$$
#   estimated by the mean accuracy $a_m$ over $M$ test episodes, reported
#   with the half-width $1.96\, s / \sqrt{M}$ of its 95% confidence interval
#   ($s$: the standard deviation of the $a_m$).
#
# In code, $\mathcal{A}_\omega(\mathcal{S})(x)$ is the course's interface
# `predict(support_x, support_y, query_x) -> logits`, and
# `evaluation.evaluate_few_shot(predict, sampler, episodes=M, seed=...)`
# computes $\bar a$ and its interval. Every method gets the **same** $M$ test
# episodes (same sampler, same seed), so differences between methods are not
# differences between episode draws.
#
# The simplest learning algorithm has no meta-parameters at all: remember the
# support set and answer with the label of the closest support image.

# %% [markdown]
# ## 3. Baseline 1: nearest neighbour in pixel space
#
# With images flattened to vectors of $28 \times 28 = 784$ pixels, a query
# $x$ gets the label of its nearest support image. As logits, one score per
# class,
# $$s_k(x) = -\min_{j:\, y_j = k} \lVert x - x_j \rVert^2, \qquad \hat y(x) = \arg\max_k s_k(x).$$
#
# A test that this is implemented right, before any number is trusted: when
# the queries *are* the support images (shuffled), nearest neighbour must be
# 100 % right, at distance exactly 0.

# %%
# NBVAL_CHECK_OUTPUT
shuffle = torch.randperm(5, generator=torch.Generator().manual_seed(0))
copies = baselines.nearest_neighbour(episode.support_x, episode.support_y, episode.support_x[shuffle])
assert torch.equal(copies.argmax(-1), episode.support_y[shuffle]) and torch.all(copies.max(-1).values == 0)
print(f"queries = support images: {100 * (copies.argmax(-1) == episode.support_y[shuffle]).float().mean():.1f} % right")

# %% [markdown]
# On real queries (other people's drawings of the same characters) it is
# much less sure. Green frames: right, red: wrong; the number under each
# query is the predicted label.

# %%
shown = episodes.EpisodeSampler(meta_test, ways=5, shots=1, queries=6).sample(torch.Generator().manual_seed(0))
pixel_prediction = explorer.predict_episode(baselines.nearest_neighbour, shown, "pixel nearest neighbour")
explorer.episode_figure(shown, meta_test.class_names, pixel_prediction,
                        title=explorer.describe_predictions(shown, pixel_prediction))
plt.show()

# %% [markdown]
# One episode says little. Here is $\bar a$ as more and more episodes
# are averaged: the accuracy of single episodes varies a lot, and the 95%
# interval shrinks like $1/\sqrt{M}$. This is why every table in this course
# reports the number of episodes behind each cell.

# %%
CURVE_EPISODES = cl.by_mode(smoke=30, full=1000)
generator = torch.Generator().manual_seed(100)
per_episode = torch.tensor([
    evaluation.episode_accuracy(baselines.nearest_neighbour, test_tasks.sample(generator))
    for _ in range(CURVE_EPISODES)
])
m = torch.arange(1, CURVE_EPISODES + 1)
running_mean = per_episode.cumsum(0) / m
running_std = torch.tensor([per_episode[:k].std().item() if k > 1 else float("nan") for k in m.tolist()])
half_width = evaluation.Z_95 * running_std / m.sqrt()
fig, (ax_hist, ax_mean) = plt.subplots(1, 2, figsize=(10, 3.2))
ax_hist.hist(100 * per_episode.numpy(), bins=np.linspace(0, 100, 21), color="tab:gray")
ax_hist.set_xlabel("accuracy of one episode (%)")
ax_hist.set_ylabel("episodes")
ax_hist.set_title(f"pixel NN, 5-way 1-shot: {CURVE_EPISODES} episodes")
ax_mean.plot(m, 100 * running_mean, label="mean over the first M episodes")
ax_mean.fill_between(m, 100 * (running_mean - half_width), 100 * (running_mean + half_width), alpha=0.3,
                     label="95% confidence interval")
ax_mean.set_xscale("log")
ax_mean.set_xlabel("episodes averaged, M")
ax_mean.set_ylabel("accuracy (%)")
ax_mean.legend(fontsize=8)
ax_mean.grid(alpha=0.3)
plt.show()
print(f"pixel nearest neighbour, 5-way 1-shot, {CURVE_EPISODES} episodes: "
      f"{evaluation.format_accuracy(*evaluation.mean_confidence_interval(per_episode))}")

# %% [markdown]
# ## 4. Baseline 2: pretrain on the meta-training classes, reuse the features
#
# Pixels are a poor space to compare drawings in: a stroke shifted by two
# pixels is far away. A better space can be **learned from the
# meta-training classes by ordinary supervised learning**, without any
# episodes: train one Conv4 classifier over all 964 meta-training
# characters at once,
# $$\min_{\phi, W} \; \frac{1}{|\mathcal{D}_{\text{train}}|} \sum_{(x, y) \in \mathcal{D}_{\text{train}}}
#   -\log \operatorname{softmax}\big(W f_\phi(x)\big)_y ,$$
# then throw the 964-way head $W$ away and keep the feature extractor
# $f_\phi$ (64 numbers per image). This is the "Baseline" of Chen et al.,
# *A Closer Look at Few-shot Classification* (ICLR 2019), who found it
# competitive with many meta-learning methods. In the terms of section 2,
# $\omega = \phi$ is learned, but by a supervised objective, not by the
# meta-learning objective.
#
# Two drawings of every character are held out to check that the network
# learns the characters rather than the drawings (this is *not* a meta-test:
# these are new drawings of known characters).

# %%
PRETRAIN_STEPS = cl.by_mode(smoke=10, full=1500)
PRETRAIN_BATCH = cl.by_mode(smoke=32, full=64)
EVAL_EVERY = cl.by_mode(smoke=PRETRAIN_STEPS, full=150)  # held-out accuracy every EVAL_EVERY steps
PRETRAIN_LR = 0.05
pretrain_set, held_out = baselines.hold_out_examples(meta_train, 2, torch.Generator().manual_seed(0))
print(pretrain_set, held_out, sep="\n")
start = time.perf_counter()
encoder, history = baselines.pretrain_classifier(
    pretrain_set, steps=PRETRAIN_STEPS, device=DEVICE, lr=PRETRAIN_LR, momentum=0.9, batch_size=PRETRAIN_BATCH,
    held_out=held_out, eval_every=EVAL_EVERY, seed=0,
)
pretrain_seconds = time.perf_counter() - start
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.2))
plots.plot_history(history, ["loss"], ax=ax_loss, labels=["minibatch loss"], logy=True, title="964-way pretraining")
plots.plot_history(history, ["train_accuracy", "held_out_accuracy"], ax=ax_acc,
                   labels=["minibatch accuracy", "held-out drawings"], title="accuracy")
plt.show()
print(f"pretraining: {PRETRAIN_STEPS} SGD steps (batch {PRETRAIN_BATCH}, lr {PRETRAIN_LR}, momentum 0.9) in "
      f"{pretrain_seconds:.0f} s on {DEVICE} ({torch.get_num_threads()} CPU threads); held-out accuracy "
      f"{100 * history.last('held_out_accuracy'):.1f} % over {meta_train.num_classes} classes "
      f"(chance {100 / meta_train.num_classes:.2f} %)")

# %% [markdown]
# ### (a) Nearest centroid on the features
#
# Average the support features of each class into a **centroid** and pick
# the nearest one:
# $$c_k = \frac{1}{K} \sum_{j:\, y_j = k} f_\phi(x_j), \qquad s_k(x) = -\lVert f_\phi(x) - c_k \rVert^2 .$$
#
# ### (b) A new linear head, fine-tuned on the support set
#
# Keep $f_\phi$ frozen and fit a fresh linear classifier $(W, b)$ with $N$
# outputs to the $NK$ support examples, by $T = 100$ full-batch Adam steps on
# $$\min_{W, b} \; \frac{1}{NK} \sum_{(x, y) \in \mathcal{S}} -\log \operatorname{softmax}\big(W \tilde z(x) + b\big)_y,
#   \qquad \tilde z(x) = 10 \, \frac{f_\phi(x)}{\lVert f_\phi(x) \rVert},$$
# (learning rate 0.01, weight decay $10^{-3}$), then classify queries with
# $\arg\max_k (W \tilde z(x) + b)_k$. The features are rescaled to length
# 10 so that one learning rate suits every task.
#
# Both are `predict` functions like the pixel baseline, and with one shot
# per class the centroid *is* the single support example, so (a) must then
# agree with nearest neighbour in feature space: a check.

# %%
HEAD_STEPS, HEAD_LR = 100, 0.01
centroid_on_images = baselines.NearestCentroid(encoder.embed)
head_on_images = baselines.FineTunedHead(encoder.embed, steps=HEAD_STEPS, lr=HEAD_LR)
one_shot = test_tasks.sample(torch.Generator().manual_seed(3))
centroid_logits = centroid_on_images(one_shot.support_x, one_shot.support_y, one_shot.query_x)
nn_logits = baselines.nearest_neighbour(one_shot.support_x, one_shot.support_y, one_shot.query_x, encoder=encoder.embed)
assert torch.allclose(centroid_logits, nn_logits, rtol=1e-4, atol=1e-3)
for name, predict in (("pixel nearest neighbour", baselines.nearest_neighbour),
                      ("Conv4 features + nearest centroid", centroid_on_images),
                      ("Conv4 features + fine-tuned head", head_on_images)):
    print(explorer.describe_predictions(one_shot, explorer.predict_episode(predict, one_shot, name)))

# %% [markdown]
# ## 5. The baseline table
#
# Four settings (5-way and 20-way, 1-shot and 5-shot, 15 queries per
# class), every method on the same test episodes of the 20 unseen alphabets.
# The encoder is frozen, so the features of every test image are computed
# once (`baselines.embed_dataset`) and the feature-based methods are scored on
# episodes of features. An `EpisodeSampler` with the same seed draws the same
# episodes from the features as from the images, which the next cell checks,
# so the numbers are those of the image-level `predict` functions above.
#
# One more row answers a natural question: is it the pretraining that helps,
# or just the convolutional architecture? The same Conv4 with its random
# initial weights, no training at all, feeds the same nearest-centroid rule.

# %%
EPISODES = cl.by_mode(smoke=20, full=1000)
EVAL_CLASSES = cl.by_mode(smoke=60, full=meta_test.num_classes)  # smoke: the first 60 test characters
SETTINGS = [(5, 1), (5, 5), (20, 1), (20, 5)]
QUERIES, TEST_SEED = 15, 2024

eval_set = meta_test.subset_classes(range(EVAL_CLASSES))
start = time.perf_counter()
features = baselines.embed_dataset(encoder.embed, eval_set)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    untrained = models.Conv4().to(DEVICE).eval()
random_features = baselines.embed_dataset(untrained.embed, eval_set)
embed_seconds = time.perf_counter() - start
print(f"features of {len(eval_set)} test images, twice: {tuple(features.images.shape)} in {embed_seconds:.0f} s")

# the same seed draws the same episodes from images and from features
image_episode = episodes.EpisodeSampler(eval_set, 5, 5, QUERIES).sample(torch.Generator().manual_seed(TEST_SEED))
feature_episode = episodes.EpisodeSampler(features, 5, 5, QUERIES).sample(torch.Generator().manual_seed(TEST_SEED))
assert torch.equal(image_episode.classes, feature_episode.classes)
with torch.no_grad():
    assert torch.allclose(encoder.embed(image_episode.query_x.to(DEVICE)).cpu(),
                          feature_episode.query_x.flatten(1), atol=1e-4)

# %%
methods = {  # name: (the data its episodes come from, predict, budget note)
    "pixel nearest neighbour": (eval_set, baselines.nearest_neighbour, "no training"),
    "untrained Conv4 + nearest centroid": (random_features, baselines.NearestCentroid(), "random weights"),
    "pretrained Conv4 + nearest centroid": (features, baselines.NearestCentroid(),
                                            f"{PRETRAIN_STEPS} pretraining steps"),
    "pretrained Conv4 + fine-tuned head": (features, baselines.FineTunedHead(steps=HEAD_STEPS, lr=HEAD_LR),
                                           f"{PRETRAIN_STEPS} pretraining steps, {HEAD_STEPS} Adam steps per episode"),
}
table = baselines.ResultsTable(
    [baselines.setting_name(ways, shots) for ways, shots in SETTINGS],
    title=f"Omniglot, Lake protocol (20 unseen alphabets), {QUERIES} queries per class, mean ± 95% CI "
          f"over {EPISODES} test episodes per cell ({MODE} mode)",
)
seconds = dict.fromkeys(methods, 0.0)
cells = [(name, ways, shots) for name in methods for ways, shots in SETTINGS]
for name, ways, shots in runtime.progress_bar(cells, desc="table cells"):
    dataset, predict, note = methods[name]
    start = time.perf_counter()
    sampler = episodes.EpisodeSampler(dataset, ways=ways, shots=shots, queries=QUERIES)
    result = evaluation.evaluate_few_shot(predict, sampler, episodes=EPISODES, seed=TEST_SEED, progress=False)
    table.add(name, baselines.setting_name(ways, shots), result, note=note)
    seconds[name] += time.perf_counter() - start
display(table)
print("evaluation time:", ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()))
assert table.episodes() == {EPISODES}

# %% [markdown]
# The same table as a picture (bars: mean accuracy; whiskers: 95%
# confidence interval; dotted: chance, $1/N$).

# %%
fig, ax = plt.subplots(figsize=(9, 3.6))
width = 0.8 / len(table.methods)
for i, method in enumerate(table.methods):
    means = [100 * table[method, s].mean for s in table.settings]
    errors = [100 * table[method, s].ci95 for s in table.settings]
    ax.bar(np.arange(len(table.settings)) + (i - (len(table.methods) - 1) / 2) * width, means, width,
           yerr=errors, capsize=2, label=method)
for j, (ways, _) in enumerate(SETTINGS):
    ax.hlines(100 / ways, j - 0.45, j + 0.45, colors="black", linestyles=":")
ax.set_xticks(range(len(table.settings)), table.settings)
ax.set_ylabel("query accuracy (%)")
ax.set_ylim(0, 100)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax.set_title(f"baselines on {EPISODES} test episodes per setting")
plt.show()

# %% [markdown]
# Three differences, in accuracy points, read off the table:

# %%
def gap(better: str, worse: str, setting: str) -> float:
    """Accuracy points of method ``better`` minus method ``worse`` in one setting of the table."""
    return 100 * (table[better, setting].mean - table[worse, setting].mean)


for setting in table.settings:
    print(f"{setting:14s} | untrained Conv4 - pixels: "
          f"{gap('untrained Conv4 + nearest centroid', 'pixel nearest neighbour', setting):+5.1f} "
          f"| pretrained - untrained: "
          f"{gap('pretrained Conv4 + nearest centroid', 'untrained Conv4 + nearest centroid', setting):+5.1f} "
          f"| fine-tuned head - centroid: "
          f"{gap('pretrained Conv4 + fine-tuned head', 'pretrained Conv4 + nearest centroid', setting):+5.1f}")

# %% [markdown]
# What the table says (in full mode; smoke-mode numbers only show that the
# code runs):
#
# * **Pixels are a weak space.** Nearest neighbour on raw pixels is well
#   above chance but far from what people do with one example.
# * **The architecture alone helps a little, pretraining a lot.** Random
#   Conv4 features already beat pixels (pooling tolerates small shifts of a
#   stroke), but the same network after supervised pretraining on *other*
#   alphabets is far better on alphabets it has never seen: knowledge
#   transferred from other tasks, the premise of meta-learning.
# * **A fitted head is not automatically better than a fixed rule.** On
#   these frozen features, fine-tuning a new linear head on the support set
#   does a little worse than the nearest-centroid rule in every setting;
#   the gap shrinks with more shots, when the head has more data to fit.
# * **More ways is harder, more shots is easier**, for every method.
#
# Later notebooks add their rows to this table: the next cell saves it in
# the cache folder and `baselines.ResultsTable.load(...)` reads it back. It
# also prints the budget behind the numbers: in the committed notebook, a
# full-mode run on the CPU of a small CI machine.

# %%
results_path = table.save(runtime.cache_dir() / "results" / f"02_baselines_{MODE}.json")
print(table.to_markdown(notes=True))
print(f"\nsaved to results/{results_path.name} in the cache folder")
print(f"budget ({MODE} mode): Conv4 pretrained for {PRETRAIN_STEPS} steps of batch {PRETRAIN_BATCH} "
      f"({pretrain_seconds:.0f} s), {EPISODES} test episodes per cell ({sum(seconds.values()):.0f} s for the "
      f"table), on {DEVICE} with {torch.get_num_threads()} CPU thread(s)")

# %% [markdown]
# ## 6. The episode explorer
#
# Numbers hide the episodes behind them. The explorer shows one episode at a
# time and what a learner does with it:
#
# * choose the **split** (meta-test or meta-train), an **alphabet** (or
#   "any"), **N**-way, **K**-shot, **Q** queries per class and the **seed**;
#   **resample** draws the next episode (seed + 1);
# * the support set is drawn one row per class, with its label and
#   character; the queries are framed green (right) or red (wrong) by the
#   chosen **method**, with the predicted label underneath;
# * the line above the picture gives the accuracy on this episode, and the
#   table below gives, for the selected **query #**, the distance (or logit)
#   and softmax probability of every class.
#
# Any `predict(support_x, support_y, query_x)` can be added to the
# `classifiers` dictionary, including the learners of the next notebooks.
# (On GitHub the widget is not interactive: run the notebook to use it.)

# %%
classifiers = {
    "pixel nearest neighbour": baselines.nearest_neighbour,
    "pretrained Conv4 + nearest centroid": centroid_on_images,
    "pretrained Conv4 + fine-tuned head": head_on_images,
}
app = explorer.EpisodeExplorer({"meta-test": meta_test, "meta-train": meta_train}, classifiers,
                               ways=5, shots=1, queries=5, seed=0, method="pretrained Conv4 + nearest centroid")
app

# %% [markdown]
# Everything the widget shows is computed by plain functions of its values
# (`explorer.render_view`), so it can also be used without a widget. Here
# is what it shows for a hard case: 10 characters of one unseen alphabet,
# one drawing each, under the nearest-centroid rule, and the class scores of
# query 0.

# %%
settings = explorer.ExplorerSettings(split="meta-test", group="Tengwar", ways=10, shots=1, queries=3, seed=0,
                                     method="pretrained Conv4 + nearest centroid", query=0)
view = explorer.render_view({"meta-test": meta_test}, classifiers, settings, figure=False)
explorer.episode_figure(view.episode, meta_test.class_names, view.prediction, selected=0, title=view.summary,
                        size=0.75)
plt.show()
display(HTML(view.query))

# %% [markdown]
# The explorer works on any `LabelledImages`. On the MNIST test set (no
# alphabets, so no alphabet menu) it asks an interesting question: do
# features learned on handwritten *characters* help with handwritten
# *digits*, a domain never seen in pretraining?

# %%
mnist_app = explorer.EpisodeExplorer({"MNIST test set": data.load_mnist_test()}, classifiers,
                                     ways=10, shots=1, queries=3, seed=0,
                                     method="pretrained Conv4 + nearest centroid")
mnist_app

# %% [markdown]
# ## What we learned
#
# * A few-shot **task is a dataset**: a support set to learn from and a query
#   set to be scored on. A **task distribution** gives many; meta-training and
#   meta-test tasks use **disjoint classes** (here, disjoint alphabets).
# * **Meta-learning** optimises a learning algorithm for the expected query
#   performance over tasks; we measure it on unseen tasks as a mean over
#   many episodes with a 95% confidence interval.
# * Two cheap **baselines** set the bar: nearest neighbour in pixel space, and
#   ordinary supervised pretraining on the meta-training classes followed by
#   a nearest-centroid rule or a fine-tuned linear head. Pretraining on other
#   alphabets already transfers a lot of knowledge to unseen alphabets.
#
# **Try it.** In the explorer: find an alphabet where pixel nearest neighbour
# fails badly and the pretrained features do not; look at a query that the
# fine-tuned head gets wrong and read its probabilities; switch the split to
# meta-train and compare. Change `HEAD_STEPS` or `PRETRAIN_STEPS` and rerun
# the table.

# %% [markdown]
# ## Exercises
#
# Write the core of this notebook yourself; the cell after each exercise
# checks your function on cases with known answers and says what is wrong.
# (The student copies in `student/`, made by `make student`, have
# `raise NotImplementedError` where the solutions are.)
#
# **Exercise 1 · An episode sampler.** Given the label vector of a dataset,
# choose `ways` distinct classes at random, then `shots + queries` distinct
# examples of each; return the dataset indices of the support and query
# examples and their episode labels $0..N-1$, both sorted by label.

# %%
def sample_episode(labels, ways, shots, queries, generator):
    # BEGIN SOLUTION: random classes, then shots + queries distinct examples of each, relabelled 0..ways-1
    classes = labels.unique()
    classes = classes[torch.randperm(len(classes), generator=generator)[:ways]]
    support, query = [], []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[: shots + queries]]
        support.append(chosen[:shots])
        query.append(chosen[shots:])
    episode_labels = torch.arange(ways)
    return (torch.cat(support), episode_labels.repeat_interleave(shots),
            torch.cat(query), episode_labels.repeat_interleave(queries))
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_sample_episode(sample_episode)

# %% [markdown]
# **Exercise 2 · Nearest neighbour in pixel space.** Return the predicted
# label of every query: the label of the support image at the smallest
# Euclidean distance (`torch.cdist` on flattened images helps).

# %%
def pixel_nearest_neighbour(support_x, support_y, query_x):
    # BEGIN SOLUTION: distances [queries, support] between flattened images, label of the argmin
    distances = torch.cdist(query_x.flatten(1), support_x.flatten(1))
    return support_y[distances.argmin(dim=1)]
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_pixel_nearest_neighbour(pixel_nearest_neighbour)

# %% [markdown]
# **Exercise 3 · Class centroids.** The nearest-centroid rule needs
# $c_k = \frac{1}{|\{j: y_j = k\}|}\sum_{j:\, y_j = k} f(x_j)$ for every class
# $k$: return them as a `[ways, d]` tensor (the labels need not be sorted).

# %%
def class_centroids(features, labels, ways):
    # BEGIN SOLUTION: row k is the mean of the features whose label is k
    return torch.stack([features[labels == k].mean(dim=0) for k in range(ways)])
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_class_centroids(class_centroids)

# %% [markdown]
# **Next:** 03 · Metric-based meta-learning. The nearest-centroid rule above
# used features trained for something else (964-way classification).
# Prototypical Networks train the features *for* the nearest-centroid rule,
# episode by episode, with the meta-learning objective of section 2.
