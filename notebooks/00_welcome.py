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
# # 00 · Welcome: learning to learn
#
# A learning algorithm takes a dataset and returns a model. The ones we use
# every day were **designed by people**: stochastic gradient descent on a
# cross-entropy loss, with an architecture, an initialisation, a learning rate
# and a number of steps that someone chose by hand.
#
# **Meta-learning** learns some of those choices instead, from a *distribution
# of tasks*: many small datasets drawn from the same world. The goal is not to
# do well on those tasks but to produce a learning algorithm that does well on
# tasks (and whole datasets) that it has **never seen**.
#
# How much of the algorithm is learned is a spectrum:
#
# | how much structure is built in | what is meta-learned | notebook |
# |---|---|---|
# | all of it (the human-designed baseline) | nothing: SGD on a fixed loss | 01 |
# | a lot | a feature space + a fixed rule (Prototypical / Matching Networks) | 03 |
# | a lot | the initialisation (MAML, Reptile, ANIL, Meta-SGD) | 04 |
# | a lot | the optimizer (learned optimizers) or the loss (MetaGenRL, LPG) | 06 |
# | some: shared parameters and symmetries | a black box with weight sharing (VSML, SymLA) | 07 |
# | little | a black-box sequence model (meta-RNNs, RL², in-context transformers) | 05 |
# | little, but trained on very many tasks | a general-purpose in-context learner (GPICL) | 08 |
#
# Two ideas will come back with numbers and plots rather than words:
#
# * **the variable ratio problem**: a meta-RNN has far more meta-parameters
#   (weights trained by the outer loop) than learned variables (the state it
#   changes while learning a task), so it tends to memorise its meta-training
#   tasks; VSML shares parameters to invert that ratio (notebooks 05 and 07);
# * **general-purpose in-context learners need diverse task distributions**:
#   a transformer meta-trained on few tasks memorises them; on many tasks it
#   becomes a learner that generalises (notebook 08).
#
# Few-shot classification is the running example: every task is a tiny dataset
# with a **support set** (a few labelled examples of each class) and a **query
# set** (new examples of the same classes to classify).
#
# ## How to run the course
#
# * `make course` opens your copy of this notebook in JupyterLab: the copies
#   live in `work/` (ignored by git), so the notebooks in `notebooks/` keep the
#   outputs of the reference run. To start a notebook afresh, delete its copy in
#   `work/` and run `make course` again. `make test` runs every test and every
#   notebook in smoke mode.
# * **Modes.** `COURSE_MODE=full` (the default) uses the budgets the text
#   talks about; `COURSE_MODE=smoke` uses tiny budgets so that every notebook
#   runs in about a minute on a laptop CPU. Numbers printed in smoke mode only
#   show that the code runs; they are not results. Every notebook prints its
#   mode in its first cell.
# * **Devices.** The course picks a CUDA GPU, then Apple's MPS, then the CPU.
#   `COURSE_DEVICE=cpu` (or `cuda:1`, ...) overrides it. Notebooks whose full
#   mode needs a GPU say so and load shipped checkpoints otherwise.
# * **Data.** Omniglot and MNIST are downloaded once from their official
#   sources into `data/cache/`. Offline, point `COURSE_DATA_DIR` at a folder
#   holding `omniglot/images_background.zip`, `omniglot/images_evaluation.zip`
#   and `mnist/t10k-*.gz`.
#
# The one setup cell that starts every notebook:

# %%
import matplotlib.pyplot as plt
import torch

import course_lib as cl
from course_lib import data, episodes
from course_lib.teaching import plots

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# ## The spectrum, as a picture
#
# Further right means less structure is built in by people and more of the
# learning algorithm is learned, which needs more (and more varied)
# meta-training tasks, but can discover algorithms a person would not write.

# %%
methods = [  # (position, height, name, notebook)
    (0.0, 0.0, "SGD on cross-entropy\n(designed by people)", "01"),
    (1.4, 0.9, "ProtoNet /\nMatching Nets", "03"),
    (2.0, -0.9, "MAML, Reptile,\nANIL, Meta-SGD", "04"),
    (2.8, 0.9, "learned optimizers,\nlearned losses", "06"),
    (4.4, -0.9, "VSML, SymLA\n(shared weights)", "07"),
    (5.6, 0.9, "meta-RNN, RL²,\nin-context transformer", "05"),
    (6.6, -0.9, "GPICL\n(general-purpose ICL)", "08"),
]
fig, ax = plt.subplots(figsize=(10, 3))
ax.annotate("", xy=(7.4, 0), xytext=(-0.6, 0), arrowprops=dict(arrowstyle="->", lw=2, color="gray"))
for x, y, name, notebook in methods:
    ax.plot([x, x], [0, y * 0.55], color="lightgray", zorder=0)
    ax.scatter([x], [0], s=40, color="black", zorder=2)
    ax.text(x, y, f"{name}\n[notebook {notebook}]", ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", fc="aliceblue" if notebook != "01" else "mistyrose", ec="gray"))
ax.text(-0.6, -1.65, "more structure built in\n(strong inductive bias)", fontsize=8, ha="left")
ax.text(7.4, -1.65, "less structure, more learned\n(needs diverse tasks)", fontsize=8, ha="right")
ax.set_xlim(-0.8, 7.6)
ax.set_ylim(-1.9, 1.5)
ax.axis("off")
ax.set_title("The meta-learning spectrum covered by this course")
plt.show()

# %% [markdown]
# ## A first look at Omniglot
#
# Omniglot (Lake, Salakhutdinov & Tenenbaum, *Science* 2015) is the
# "transpose" of MNIST: 1,623 handwritten characters from 50 alphabets, but
# only **20 drawings of each**, by 20 different people. It was made to study
# how people learn a new concept from one example, which makes it the
# classic benchmark of few-shot learning. `course_lib.data.load_omniglot`
# reads the two official archives (30 *background* alphabets and 20
# *evaluation* alphabets), checks their checksums and converts the 105x105
# drawings to 28x28 arrays once.

# %%
# NBVAL_CHECK_OUTPUT
omniglot = data.load_omniglot()
alphabets = sorted(set(omniglot.class_groups))
background_alphabets = sorted(set(omniglot.class_groups[: omniglot.num_background_classes]))
print(omniglot)
print(f"{len(alphabets)} alphabets ({len(background_alphabets)} background, "
      f"{len(alphabets) - len(background_alphabets)} evaluation), "
      f"{omniglot.num_classes} characters, {len(omniglot)} drawings")
assert (omniglot.num_classes, len(omniglot), len(alphabets)) == (1623, 32460, 50)

# %% [markdown]
# One character from each of 20 alphabets:

# %%
first_of_alphabet = {}
for label, alphabet in enumerate(omniglot.class_groups):
    first_of_alphabet.setdefault(alphabet, label)
shown = list(first_of_alphabet.items())[::2][:20]
images = torch.stack([omniglot.images[omniglot.indices_of_class(label)[0]] for _, label in shown])
plots.show_images(images, titles=[alphabet.replace("_", " ")[:14] for alphabet, _ in shown], ncols=10, size=1.1)
plt.show()

# %% [markdown]
# And the 20 drawings of one character, each by a different person. This
# variation is what a few-shot learner must see through: after one drawing it
# should recognise the other nineteen.

# %%
character = first_of_alphabet["Korean"]
plots.show_images(omniglot.images[omniglot.indices_of_class(character)], ncols=10, size=0.9,
                  suptitle=f"{omniglot.class_names[character]}: all 20 drawings")
plt.show()

# %% [markdown]
# ## Tasks that never appear in training
#
# In meta-learning the *classes* are split, not the examples: the characters
# used to test a learner are never seen while meta-training it. Two standard
# protocols exist, and `course_lib.data.omniglot_splits` provides both:
#
# * **Lake**: meta-train on the 30 background alphabets, meta-test on the 20
#   evaluation alphabets (whole new writing systems at test time);
# * **Vinyals**: 1,200 characters for meta-training and 423 for meta-testing
#   from all alphabets, and each rotation by 90° counts as a new class
#   (the protocol behind most published Omniglot numbers).

# %%
# NBVAL_CHECK_OUTPUT
for protocol in ("lake", "vinyals"):
    splits = data.omniglot_splits(protocol)
    train_names = {name.split(" rot")[0] for name in splits["train"].class_names}
    test_names = {name.split(" rot")[0] for name in splits["test"].class_names}
    assert not train_names & test_names, "meta-train and meta-test characters must be disjoint"
    print(f"{protocol:8s} meta-train: {splits['train'].num_classes:5d} classes "
          f"({len(train_names)} characters) | meta-test: {splits['test'].num_classes:5d} classes "
          f"({len(test_names)} characters)")

# %% [markdown]
# ## Your first episode
#
# A 5-way 1-shot episode from the Lake meta-test split: one labelled drawing
# of each of five characters you have (almost certainly) never seen (the
# support set, left), and new drawings to classify (the query set, right).
# Try it yourself before reading the labels: it is easy for people. Making it
# easy for machines is what this course is about.

# %%
test_tasks = episodes.EpisodeSampler(data.omniglot_splits("lake")["test"], ways=5, shots=1, queries=4)
episode = test_tasks.sample(torch.Generator().manual_seed(3))
print(f"support_x {tuple(episode.support_x.shape)}, support_y {episode.support_y.tolist()}")
print(f"query_x   {tuple(episode.query_x.shape)}, query_y   {episode.query_y.tolist()}")
plots.plot_episode(episode, class_names=test_tasks.dataset.class_names)
plt.show()

# %% [markdown]
# **Next:** [01 · Supervised learning](01_supervised_learning.ipynb), the
# learning algorithm people design, and where it fails.
