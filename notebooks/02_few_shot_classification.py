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
# # 02 · Few-shot classification: learning to learn, made concrete
#
# After this notebook you will be able to:
#
# - build an $N$-way $K$-shot episode (support set $\mathcal{S}$, query set
#   $\mathcal{Q}$) from classes that meta-training never sees;
# - write the meta-learning objective, and estimate a learner's accuracy over
#   test episodes with a 95% confidence interval;
# - implement the baselines every later method must beat: nearest neighbour in
#   pixel space, and a pretrained embedding $f_\omega$ read by a
#   nearest-centroid rule or a fine-tuned linear head;
# - use the episode explorer to see what a learner gets right and wrong;
# - write an episode sampler and the test protocol yourself, and check them
#   against the library on the unseen alphabets.
#
# Notation: [docs/notation.md](../docs/notation.md)
#
# Notebook 01's SGD from scratch failed on new characters with one drawing
# each. This notebook states the problem the course solves and sets the bar:
#
# 1. Tasks as datasets
# 2. The meta-learning objective
# 3. Baseline 1: nearest neighbour in pixel space
# 4. Baseline 2: pretrain on the meta-training classes, reuse the features
# 5. The baseline table
# 6. The episode explorer
# 7. Build it: an episode sampler and the test protocol

# %%
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML, Markdown, display

import course_lib as cl
from course_lib import baselines, data, episodes, evaluation, models, runtime
from course_lib.teaching import explorer, plots
from course_lib.teaching.checks import nb02 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)
SMOKE_NOTE = " *(Smoke mode: tiny budgets, so these numbers only show that the code runs.)*" \
    if cl.is_smoke() else ""

# %% [markdown]
# ## 1. Tasks as datasets
#
# In supervised learning the unit of data is an example $(x, y)$. In
# meta-learning it is a **task** $\mathcal{T}$: a whole small dataset. In
# few-shot classification a task is an **episode**:
#
# * $N$ classes ("$N$-way"), drawn at random and relabelled $0, \dots, N-1$
#   in a random order;
# * a **support set** $\mathcal{S}$ of $K$ labelled examples per class
#   ("$K$-shot"): the task's training data;
# * a **query set** $\mathcal{Q}$ of $Q$ further examples per class: the
#   task's test data, on which a learner is scored.
#
# Meta-training and meta-test tasks are built from **disjoint classes**. We use
# the **Lake protocol** on Omniglot (Lake et al. 2015): meta-train on the
# characters of the 30 *background* alphabets, meta-test on those of the 20
# *evaluation* alphabets, so every test task comes from an alphabet the
# learner has never seen.

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
# An `EpisodeSampler` turns a split into a task distribution
# $p(\mathcal{T})$. One 5-way 1-shot episode with $Q = 15$, as tensors:

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
# Eight tasks from the two distributions, support sets only, one task per
# row. Each row is a different classification problem: label 0 is a
# different character in every row.

# %%
train_tasks = episodes.EpisodeSampler(meta_train, ways=5, shots=1, queries=1)
generator = torch.Generator().manual_seed(1)
fig = plt.figure(figsize=(11, 5.2), layout="constrained")
for panel, (split, sampler) in zip(fig.subfigures(1, 2, wspace=0.05),
                                   (("meta-train", train_tasks), ("meta-test", test_tasks))):
    axes = panel.subplots(4, 5)
    for row in range(4):
        task = sampler.sample(generator)
        for ax, image, c in zip(axes[row], task.support_x, task.classes.tolist()):
            ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            alphabet = sampler.dataset.class_groups[c].split("_(")[0].replace("_", " ")
            ax.set_xlabel(alphabet if len(alphabet) <= 12 else alphabet[:11] + "…", fontsize=9)
        axes[row, 0].set_ylabel(f"task {row + 1}", fontsize=10)
    for label, ax in enumerate(axes[0]):
        ax.set_title(f"label {label}", fontsize=10)
    panel.suptitle(f"{split} tasks ({len(set(sampler.dataset.class_groups))} alphabets)", fontsize=12)
plt.show()

# %% [markdown]
# Two whole episodes, support set (left, one row per class) and query set
# (right):

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
# $$\theta^* = \arg\min_\theta \; \mathbb{E}_{(x, y) \sim \mathcal{D}}\, \mathcal{L}(f_\theta(x), y).$$
#
# Meta-learning fits a **learning algorithm** to a **distribution of
# datasets**. An algorithm $\mathcal{A}_\omega$ with meta-parameters $\omega$
# maps a support set to a classifier $\mathcal{A}_\omega(\mathcal{S})$, and is
# good if that classifier is right on the query set, on average over tasks:
# $$\omega^* = \arg\min_\omega \; \mathbb{E}_{\mathcal{T} \sim p_{\text{train}}(\mathcal{T})}
#   \Big[ \frac{1}{|\mathcal{Q}|} \sum_{(x, y) \in \mathcal{Q}} \mathcal{L}\big(\mathcal{A}_\omega(\mathcal{S})(x), y\big) \Big].$$
#
# **Meta-training** optimises $\omega$ on tasks from the meta-training
# classes. **Meta-testing** measures what we care about, the accuracy on tasks
# from $p_{\text{test}}(\mathcal{T})$, whose classes meta-training never saw.
# We estimate it by the mean $\bar a = \frac{1}{E}\sum_{e=1}^{E} a_e$ of the
# accuracies $a_e$ on $E$ test episodes, with the 95% confidence interval
# $\bar a \pm t_{0.975}\, s / \sqrt{E}$ ($s$: the standard deviation of the
# $a_e$; Student's quantile $t_{0.975} \approx 1.96$ once $E$ is in the hundreds).
#
# In code, $\mathcal{A}_\omega(\mathcal{S})(x)$ is
# `predict(support_x, support_y, query_x) -> logits`, and
# `evaluation.evaluate_few_shot(predict, sampler, episodes=E, seed=...)`
# computes $\bar a$ and its interval. Every method gets the **same** test
# episodes (same sampler, same seed), so methods differ by more than the
# episode draw.

# %% [markdown]
# ## 3. Baseline 1: nearest neighbour in pixel space
#
# The simplest learning algorithm has no meta-parameters at all: remember
# $\mathcal{S}$ and give a query the label of the closest support image. On
# images flattened to 784 pixels, with one score per class,
# $$s_k(x) = -\min_{j:\, y_j = k} \lVert x - x_j \rVert^2, \qquad \hat y(x) = \arg\max_k s_k(x).$$
#
# A test before any number is trusted: when the queries *are* the support
# images (shuffled), nearest neighbour must be right every time, at distance 0.

# %%
# NBVAL_CHECK_OUTPUT
shuffle = torch.randperm(5, generator=torch.Generator().manual_seed(0))
copies = baselines.nearest_neighbour(episode.support_x, episode.support_y, episode.support_x[shuffle])
assert torch.equal(copies.argmax(-1), episode.support_y[shuffle]) and torch.all(copies.max(-1).values == 0)
print(f"queries = support images: {100 * (copies.argmax(-1) == episode.support_y[shuffle]).float().mean():.1f} % right")

# %% [markdown]
# Real queries are other people's drawings of the same characters. Green
# frames: right, red: wrong; under each query, the predicted label.

# %%
shown = episodes.EpisodeSampler(meta_test, ways=5, shots=1, queries=6).sample(torch.Generator().manual_seed(0))
pixel_prediction = explorer.predict_episode(baselines.nearest_neighbour, shown, "pixel nearest neighbour")
explorer.episode_figure(shown, meta_test.class_names, pixel_prediction,
                        title=explorer.describe_predictions(shown, pixel_prediction))
plt.show()

# %% [markdown]
# One episode says little. Left, the accuracy of single episodes; right,
# $\bar a$ as more episodes are averaged, with its 95% interval.

# %%
CURVE_EPISODES = cl.by_mode(smoke=30, full=1000)
generator = torch.Generator().manual_seed(100)
per_episode = torch.tensor([
    evaluation.episode_accuracy(baselines.nearest_neighbour, test_tasks.sample(generator))
    for _ in range(CURVE_EPISODES)
])
m = torch.arange(1, CURVE_EPISODES + 1)
running_mean, half_width = torch.tensor([evaluation.mean_confidence_interval(per_episode[:k]) for k in m.tolist()]).T
fig, (ax_hist, ax_mean) = plt.subplots(1, 2, figsize=(10, 3.2))
ax_hist.hist(100 * per_episode.numpy(), bins=np.linspace(0, 100, 21), color="tab:gray")
ax_hist.set_xlabel("accuracy of one episode (%)")
ax_hist.set_ylabel("episodes")
ax_hist.set_title(f"pixel NN, 5-way 1-shot: {CURVE_EPISODES} episodes")
ax_mean.plot(m, 100 * running_mean, label="mean over the first E episodes")
ax_mean.fill_between(m, 100 * (running_mean - half_width), 100 * (running_mean + half_width), alpha=0.3,
                     label="95% confidence interval")
ax_mean.set_xscale("log")
ax_mean.set_xlabel("episodes averaged, E")
ax_mean.set_ylabel("accuracy (%)")
ax_mean.legend(fontsize=9)
ax_mean.grid(alpha=0.3)
plt.show()
print(f"pixel nearest neighbour, 5-way 1-shot, {CURVE_EPISODES} episodes: "
      f"{evaluation.format_accuracy(*evaluation.mean_confidence_interval(per_episode))}")

# %% [markdown]
# Single episodes scatter widely, and the interval shrinks like
# $1/\sqrt{E}$: every table of the course says how many episodes stand
# behind each number.

# %% [markdown]
# ## 4. Baseline 2: pretrain on the meta-training classes, reuse the features
#
# Pixels are a poor space to compare drawings in: a stroke shifted by two
# pixels is far away. A better space can be learned from the meta-training
# classes by **ordinary supervised learning**, without episodes: train one
# Conv4 classifier over all meta-training characters at once,
# $$\min_{\omega, W} \; \frac{1}{|\mathcal{D}_{\text{train}}|} \sum_{(x, y) \in \mathcal{D}_{\text{train}}}
#   -\log \operatorname{softmax}\big(W f_\omega(x)\big)_y ,$$
# then throw the head $W$ away and keep the embedding $f_\omega$ (64 numbers
# per image). This is the "Baseline" of Chen et al. (*A Closer Look at
# Few-shot Classification*, 2019), who found it competitive with many
# meta-learning methods. In the terms of section 2, $\omega$ is learned, but
# by a supervised objective, not by the meta-learning objective.
#
# A few drawings of every character are held out, to check that the network
# learns the characters rather than the drawings (new drawings of known
# characters: not a meta-test).

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
# **(a) Nearest centroid.** Average the support embeddings of each class into
# a centroid and pick the nearest:
# $$c_k = \frac{1}{K} \sum_{j:\, y_j = k} f_\omega(x_j), \qquad s_k(x) = -\lVert f_\omega(x) - c_k \rVert^2 .$$
#
# **(b) A new linear head, fine-tuned on the support set.** Keep $f_\omega$
# frozen and fit a fresh linear classifier $(W, b)$ with $N$ outputs to the
# $NK$ support examples, by $J$ full-batch Adam steps (`HEAD_STEPS`, with
# weight decay) on
# $$\min_{W, b} \; \frac{1}{NK} \sum_{(x, y) \in \mathcal{S}} -\log \operatorname{softmax}\big(W \tilde z(x) + b\big)_y,
#   \qquad \tilde z(x) = 10 \, \frac{f_\omega(x)}{\lVert f_\omega(x) \rVert},$$
# then classify a query by $\arg\max_k (W \tilde z(x) + b)_k$. Rescaling the
# embeddings to length 10 lets one learning rate suit every task.
#
# Both are `predict` functions like the pixel baseline. With one shot per class
# the centroid *is* the support example, so (a) must then agree with nearest
# neighbour in embedding space: a check.

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
# Every method on the same test episodes of the 20 unseen alphabets, in four
# settings: 5- and 20-way, 1- and 5-shot. The encoder is frozen, so the
# embedding of every test image is computed once and the feature-based
# methods are scored on episodes of embeddings; the same seed draws the same
# episodes from embeddings as from images, which the next cell checks.
#
# One more row asks whether it is the pretraining that helps or only the
# convolutional architecture: the same Conv4 with random weights feeds the
# same nearest-centroid rule.

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
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
ax.set_title(f"baselines on {EPISODES} test episodes per setting")
plt.show()

# %% [markdown]
# Three differences, in accuracy points:

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


pixel, untrained = "pixel nearest neighbour", "untrained Conv4 + nearest centroid"
centroid, head = "pretrained Conv4 + nearest centroid", "pretrained Conv4 + fine-tuned head"
architecture = [gap(untrained, pixel, s) for s in table.settings]
pretraining = [gap(centroid, untrained, s) for s in table.settings]
fitting = [gap(head, centroid, s) for s in table.settings]
harder_with_ways = all(table[name, f"5-way {k}-shot"].mean > table[name, f"20-way {k}-shot"].mean
                       for name in table.methods for k in (1, 5))
easier_with_shots = all(table[name, f"{n}-way 5-shot"].mean > table[name, f"{n}-way 1-shot"].mean
                        for name in table.methods for n in (5, 20))


def span(gaps: list[float]) -> str:
    return f"{min(gaps):+.1f} to {max(gaps):+.1f} points"


def wins(gaps: list[float]) -> str:
    """In how many settings the first method of a gap is ahead."""
    ahead = sum(g > 0 for g in gaps)
    return {len(gaps): "in every setting", 0: "in no setting"}.get(ahead, f"in {ahead} of {len(gaps)} settings")


display(Markdown(f"""**What the table says.**{SMOKE_NOTE}

* **Pixels are a weak space**: {table[pixel, '5-way 1-shot']} at 5-way 1-shot (chance 20 %).
* **Architecture, then pretraining.** Random Conv4 embeddings beat pixels {wins(architecture)}
  ({span(architecture)}: pooling tolerates a shifted stroke). Pretraining on *other* alphabets adds
  {span(pretraining)} on alphabets the network never saw: knowledge transferred from other tasks, the
  premise of meta-learning.
* **A fitted head against a fixed rule**: on the same embeddings, the fine-tuned head beats nearest
  centroid {wins(fitting)} ({span(fitting)}). Fitting a new head to $NK$ examples is not automatically
  better than a rule with nothing to fit.
* More ways {'make every method worse' if harder_with_ways else 'do not make every method worse'}, and
  more shots {'make every method better' if easier_with_shots else 'do not make every method better'}."""))

# %% [markdown]
# Pretraining plus nearest centroid is the bar. Notebook 03 trains the
# embedding *for* the nearest-centroid rule, episode by episode, with the
# meta-learning objective (Prototypical Networks), and compares it with these
# baselines on the same test episodes. The next cell saves this table to the
# course cache.

# %%
results_path = table.save(runtime.cache_dir() / "results" / f"02_baselines_{MODE}.json")
print(f"saved to results/{results_path.name} in the cache folder")
print(f"budget ({MODE} mode): Conv4 pretrained for {PRETRAIN_STEPS} steps of batch {PRETRAIN_BATCH} "
      f"({pretrain_seconds:.0f} s), {EPISODES} test episodes per cell ({sum(seconds.values()):.0f} s for the "
      f"table), on {DEVICE} with {torch.get_num_threads()} CPU thread(s)")

# %% [markdown]
# ## 6. The episode explorer
#
# Numbers hide the episodes behind them. The explorer shows one episode and
# what a learner does with it. Choose the split, an alphabet, $N$, $K$, $Q$
# and the seed (**resample** adds one to it); the chosen method frames each
# query green (right) or red (wrong), with its prediction underneath; for the
# selected **query #**, a table gives every class's score and softmax
# probability. Any `predict(support_x, support_y, query_x)` can join
# `classifiers`, including the learners of later notebooks. Widgets respond
# only in a running notebook; the figure after each shows one state of it.

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
# The widget draws what `explorer.render_view` computes from its values, so
# the same view can be made without it. A hard case: 10 characters of one
# unseen alphabet, one drawing each, under the nearest-centroid rule, with the
# class scores of query 0.

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
# alphabets, so no alphabet menu) it asks a question: do features learned on
# handwritten *characters* help with handwritten *digits*, a domain
# pretraining never saw? Rows and predictions are named by their digit.

# %%
mnist = data.load_mnist_test()
mnist_app = explorer.EpisodeExplorer({"MNIST test set": mnist}, classifiers,
                                     ways=10, shots=1, queries=3, seed=0,
                                     method="pretrained Conv4 + nearest centroid")
mnist_app

# %% [markdown]
# One state of that explorer, and the answer over many 10-way 1-shot
# episodes of digits:

# %%
MNIST_EPISODES = cl.by_mode(smoke=10, full=300)
mnist_view = mnist_app.view  # what the widget shows now
explorer.episode_figure(mnist_view.episode, mnist.class_names, mnist_view.prediction, title=mnist_view.summary,
                        size=0.75)
plt.show()
digit_tasks = episodes.EpisodeSampler(mnist, ways=10, shots=1, queries=QUERIES)
pixels_on_digits, embedding_on_digits = (
    evaluation.evaluate_few_shot(classifiers[name], digit_tasks, episodes=MNIST_EPISODES, seed=TEST_SEED,
                                 progress=False) for name in (pixel, centroid))
on_alphabets = table[centroid, "20-way 1-shot"]
transfer = ("beats pixels on digits too, but stays below its accuracy on new alphabets, a harder task on "
            "paper: features carry over to a new domain only part of the way"
            if pixels_on_digits.mean < embedding_on_digits.mean < on_alphabets.mean else
            "does not follow the pattern of the alphabets here")
display(Markdown(
    f"MNIST, 10-way 1-shot, {MNIST_EPISODES} episodes: pixel nearest neighbour {pixels_on_digits}, character "
    f"embedding + nearest centroid {embedding_on_digits} (chance 10 %), against {on_alphabets} at 20-way 1-shot "
    f"on unseen alphabets. The embedding {transfer}.{SMOKE_NOTE}"))

# %% [markdown]
# **Try it.** Find an alphabet where pixel nearest neighbour fails and the
# pretrained embedding does not; read the probabilities of a query the
# fine-tuned head gets wrong; compare with the meta-train split. Change
# `HEAD_STEPS` or `PRETRAIN_STEPS`: which rows of the table move?

# %% [markdown]
# ## 7. Build it: an episode sampler and the test protocol
#
# Every accuracy in this course rests on two pieces of code: the sampler that
# draws the test episodes, and the protocol that turns a learner's answers
# into $\bar a$ and its 95% confidence interval. A bug in either one moves
# every number of every table at once, and no later notebook would notice.
# Build both, then check them against the library on the unseen alphabets:
#
# 1. `sample_episode`: one $N$-way $K$-shot episode with $Q$ queries per class;
# 2. `confidence_interval`: the mean of $E$ episode accuracies and the
#    half-width of its interval;
# 3. `evaluate`: a learner's mean query accuracy over many test episodes;
# 4. a run on Omniglot's unseen alphabets, against `evaluation.evaluate_few_shot`.
#
# The cell after each function runs it on small cases with known answers and
# says in plain words what is wrong.
#
# **Step 1 · The sampler.** `labels[i]` is the class of example `i` of a
# dataset (in any order). Choose `ways` distinct classes at random, then
# `shots + queries` distinct examples of each; return the dataset indices of
# the support and query examples and their **episode labels**: the chosen
# classes renamed $0, \dots, N-1$ in the random order they were drawn. Take
# every random number from `generator`, so that a seed fixes the episode.

# %%
def sample_episode(labels, ways, shots, queries, generator):
    # BEGIN SOLUTION: each chosen class gets its own K + Q images, none in both sets; its episode label (0..N-1) must say nothing about which class it is
    classes = labels.unique()
    classes = classes[torch.randperm(len(classes), generator=generator)[:ways]]
    support_index, query_index = [], []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[: shots + queries]]
        support_index.append(chosen[:shots])
        query_index.append(chosen[shots:])
    episode_labels = torch.arange(ways)
    return (torch.cat(support_index), episode_labels.repeat_interleave(shots),
            torch.cat(query_index), episode_labels.repeat_interleave(queries))
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_sample_episode(sample_episode)

# %% [markdown]
# **Step 2 · The interval.** Given the accuracies $a_1, \dots, a_E$ of $E$
# episodes (a 1-D tensor of fractions), return $\bar a$ and the half-width
# $h$ of its 95% confidence interval $\bar a \pm h$ (section 2). Student's
# quantile, `scipy.stats.t.ppf(0.975, E - 1)`, is right for any $E$; $1.96$
# is as good once $E$ is in the hundreds.

# %%
def confidence_interval(accuracies):
    # BEGIN SOLUTION: the interval is for the mean, not for one episode: its width shrinks as episodes are added
    from scipy.stats import t as student_t

    count = len(accuracies)
    standard_error = accuracies.std().item() / count ** 0.5
    return accuracies.mean().item(), student_t.ppf(0.975, count - 1) * standard_error
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_confidence_interval(confidence_interval)

# %% [markdown]
# **Step 3 · The protocol.** `evaluate(predict, episodes)`: for every episode
# (it has `support_x`, `support_y`, `query_x` and `query_y`), ask the learner
# `predict(support_x, support_y, query_x)` for scores `[queries, ways]`; the
# episode's accuracy is the fraction of its queries whose highest score is
# the true label. Return your `confidence_interval` of these accuracies.
# `episodes` may be a generator: go through it once.

# %%
def evaluate(predict, episodes):
    # BEGIN SOLUTION: the learner sees the support set and the query images, never query_y; one accuracy per episode, then one interval over episodes
    accuracies = []
    for episode in episodes:
        scores = predict(episode.support_x, episode.support_y, episode.query_x)
        accuracies.append((scores.argmax(dim=1) == episode.query_y).float().mean())
    return confidence_interval(torch.stack(accuracies))
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_evaluate(evaluate)

# %% [markdown]
# **Step 4 · Run it.** The learner is the nearest-centroid rule on pixels,
# `baselines.NearestCentroid()` (with one shot, the pixel nearest neighbour of
# section 3). On 5-way episodes of the unseen alphabets the next cell
# computes three numbers per setting:
#
# * **library**: `evaluation.evaluate_few_shot` on the library's episodes;
# * **your protocol**: your `evaluate` on *the same* episodes, which must give
#   the same mean;
# * **your sampler**: your `evaluate` on episodes drawn by your
#   `sample_episode`: other episodes from the same $p(\mathcal{T})$, so its
#   mean differs a little, but its interval and the library's must overlap.

# %%
BUILD_EPISODES = cl.by_mode(smoke=50, full=1000)
BUILD_WAYS, BUILD_SHOTS, BUILD_SEED = 5, (1, 5), 7
pixel_centroid = baselines.NearestCentroid()  # no encoder: it compares pixels


def my_episodes(dataset, ways, shots, queries, count, seed):
    """``count`` episodes drawn by your sample_episode from ``dataset``, as the library's Episode."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        s, s_y, q, q_y = (torch.as_tensor(t) for t in sample_episode(dataset.labels, ways, shots, queries, generator))
        yield episodes.Episode(dataset.images[s], s_y, dataset.images[q], q_y, dataset.labels[s].unique())


start = time.perf_counter()
build_results = {}
for shots in BUILD_SHOTS:
    library_tasks = episodes.EpisodeSampler(meta_test, BUILD_WAYS, shots, QUERIES)
    library = evaluation.evaluate_few_shot(pixel_centroid, library_tasks, episodes=BUILD_EPISODES, seed=TEST_SEED,
                                           progress=False)
    generator = torch.Generator().manual_seed(TEST_SEED)  # the library's episodes, once more
    same_episodes = evaluate(pixel_centroid, (library_tasks.sample(generator) for _ in range(BUILD_EPISODES)))
    own_episodes = evaluate(pixel_centroid, my_episodes(meta_test, BUILD_WAYS, shots, QUERIES, BUILD_EPISODES,
                                                        BUILD_SEED))
    build_results[shots] = (library, *(tuple(float(v) for v in r) for r in (same_episodes, own_episodes)))
build_seconds = time.perf_counter() - start

problems = []
for shots, (library, (same_mean, same_half), (own_mean, own_half)) in build_results.items():
    setting = baselines.setting_name(BUILD_WAYS, shots)
    print(f"{setting}, {BUILD_EPISODES} episodes of {QUERIES} queries per class | library {library} | "
          f"your protocol, same episodes {evaluation.format_accuracy(same_mean, same_half)} | "
          f"your sampler {evaluation.format_accuracy(own_mean, own_half)}")
    if abs(same_mean - library.mean) > 1e-6:
        problems.append(f"{setting}: on the same episodes your mean is not the library's: an episode's accuracy is "
                        "the fraction of its queries whose argmax is query_y, and the mean is over episodes")
    if not 0.9 < same_half / library.ci95 < 1.1:
        problems.append(f"{setting}: on the same episodes your half-width is {same_half / library.ci95:.2f} times "
                        "the library's: it is t (or 1.96) x std / sqrt(E) over the E episode accuracies")
    if abs(own_mean - library.mean) > own_half + library.ci95:
        problems.append(f"{setting}: your sampler's interval and the library's do not overlap. Too high: a query "
                        "is also a support image, or the learner sees the query labels. Too low: a label means "
                        "one class in the support set and another in the query set, or the classes have "
                        "different numbers of shots")
print(f"{3 * len(BUILD_SHOTS) * BUILD_EPISODES} test episodes in {build_seconds:.0f} s")
display(Markdown("**Your sampler and protocol agree with the library** in every setting: the same mean on the same "
                 "episodes, and overlapping intervals on your own episodes." if not problems else
                 "**Not yet:**\n\n" + "\n".join(f"* {p}" for p in problems)))

# %% [markdown]
# Compare with the reference: the library's sampler and protocol.

# %%
for function in (episodes.EpisodeSampler.sample, evaluation.mean_confidence_interval,
                  evaluation.episode_accuracy, evaluation.evaluate_few_shot):
    print(inspect.getsource(function))

# %% [markdown]
# ### Two short exercises
#
# **Exercise A · Audit an episode.** A sampler bug rarely changes a shape, so
# shapes prove nothing. Return `True` only for an episode that obeys the rules
# of section 1: no example both in $\mathcal{S}$ and $\mathcal{Q}$ (or twice in
# one set); labels $0, \dots, N-1$, each with exactly `shots` support
# examples; and each label stands for one class, the same one in both sets.
# The sets may be in any order.

# %%
def is_valid_episode(labels, support_index, support_y, query_index, query_y, shots):
    # BEGIN SOLUTION: one test per rule above; an episode that breaks any of them is not valid
    everything = torch.cat([support_index, query_index])
    if everything.unique().numel() != everything.numel():
        return False
    ways = len(support_y.unique())
    if sorted(set(support_y.tolist()) | set(query_y.tolist())) != list(range(ways)):
        return False
    if torch.bincount(support_y, minlength=ways).tolist() != [shots] * ways:
        return False
    classes = [labels[torch.cat([support_index[support_y == k], query_index[query_y == k]])].unique()
               for k in range(ways)]
    return all(len(c) == 1 for c in classes) and len(torch.cat(classes).unique()) == ways
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_is_valid_episode(is_valid_episode)

# %% [markdown]
# Your audit on episodes of your own sampler, from the unseen alphabets:

# %%
AUDITED = 200
audit_generator = torch.Generator().manual_seed(BUILD_SEED)
audited = [is_valid_episode(meta_test.labels, *(torch.as_tensor(t) for t in
                                                sample_episode(meta_test.labels, 5, shots, QUERIES, audit_generator)),
                            shots)
           for _ in range(AUDITED // 2) for shots in (1, 5)]
print(f"{sum(map(bool, audited))} of {len(audited)} episodes of your sampler pass your audit")

# %% [markdown]
# **Exercise B · The learner.** Step 4 borrowed the library's nearest-centroid
# rule; write it, on pixels: `scores[q, k]` is highest for the class $k$ whose
# centroid $c_k$ (the mean of its support images) is nearest to query $q$.
# Do not assume the support set sorted by label, nor the same number of
# shots for every class.

# %%
def nearest_centroid(support_x, support_y, query_x):
    # BEGIN SOLUTION: represent each class by the mean of its own support images; nearer means a higher score
    support, query = support_x.flatten(1), query_x.flatten(1)
    ways = int(support_y.max()) + 1
    centroids = torch.stack([support[support_y == k].mean(dim=0) for k in range(ways)])
    return -torch.cdist(query, centroids)
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_nearest_centroid(nearest_centroid)

# %% [markdown]
# Your learner and the library's on the same episodes, through your protocol,
# then the reference:

# %%
five_shot_tasks = episodes.EpisodeSampler(meta_test, BUILD_WAYS, 5, QUERIES).fixed_tasks(
    cl.by_mode(smoke=20, full=200), seed=TEST_SEED)
for name, predict in (("your nearest_centroid", nearest_centroid), ("baselines.NearestCentroid()", pixel_centroid)):
    print(f"{name:28s} {baselines.setting_name(BUILD_WAYS, 5)}, {len(five_shot_tasks)} episodes: "
          f"{evaluation.format_accuracy(*evaluate(predict, five_shot_tasks))}")
print(inspect.getsource(baselines.class_centroids))
print(inspect.getsource(baselines.NearestCentroid))

# %% [markdown]
# **Open question.** Two learners whose true accuracies are one point apart:
# how many test episodes does it take before your protocol can tell them
# apart? Estimate it from how much the accuracy of one episode varies (the
# histogram of section 3), then check it by experiment. Does scoring both
# learners on the same episodes, and comparing them episode by episode,
# change the answer? And why does accuracy vary so much between episodes of
# the same $N$ and $K$: what makes an episode hard?


# %% [markdown]
# ## What we learned
#
# A few-shot task is a small dataset: a support set to learn from, a query
# set to be scored on. Meta-test tasks use classes meta-training never saw,
# and a learner is judged by its mean accuracy over many test episodes, with
# a confidence interval. The baselines sit before the spectrum of learned
# learning algorithms (learned optimizers → learned initialisations → learned
# objectives → black boxes with symmetries (VSML, SymLA) → black-box sequence
# models): their rules are designed by people, and only the embedding
# $f_\omega$ is learned, by supervised pretraining.

# %%
display(Markdown(
    f"On 5-way 1-shot tasks from the 20 unseen alphabets, pixel nearest neighbour reaches "
    f"{table[pixel, '5-way 1-shot']}, and a Conv4 pretrained on the other alphabets and read by nearest "
    f"centroid {table[centroid, '5-way 1-shot']} ({table[centroid, '20-way 1-shot']} at 20-way); a head "
    f"fine-tuned on the support set beats that rule {wins(fitting)}. Notebook 03 meta-learns $f_\\omega$ "
    f"for the nearest-centroid rule and compares it with these baselines on the same episodes; notebook 04 "
    f"meta-learns the initialisation of gradient descent, the second point of the spectrum.{SMOKE_NOTE}"))

# %% [markdown] jupyter={"source_hidden": true}
# ## How this was made
#
# No run folder: everything runs live on a CPU, and the pretraining and table
# cells print their budgets and times. The committed outputs are a full-mode
# run on the CPU of a small CI machine (one torch thread). The table is saved
# as `results/02_baselines_<mode>.json` in the course cache
# (`baselines.ResultsTable.load` reads it back). The student copies
# (`make student`) have `raise NotImplementedError` in place of the exercise
# solutions.
