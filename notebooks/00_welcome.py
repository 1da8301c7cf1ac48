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
# every day were **designed by people**: SGD on a cross-entropy loss, with an
# architecture, an initialisation, a learning rate and a number of steps
# chosen by hand. **Meta-learning** learns some of those choices from a
# *distribution of tasks* (many small datasets drawn from the same world), so
# that the learned algorithm does well on tasks it has **never seen**.
#
# After this notebook you will be able to:
#
# * place each method of the course on the spectrum from designed to learned
#   learning algorithms;
# * run the course in smoke or full mode, knowing what each costs;
# * explain why Omniglot's meta-training and meta-test splits share no
#   character;
# * read a few-shot episode: its support set $\mathcal{S}$ and query set
#   $\mathcal{Q}$.
#
# Notation: [docs/notation.md](../docs/notation.md).
#
# 1. Who the course is for, and what you will learn
# 2. How to run the course
# 3. The spectrum, as a picture
# 4. A first look at Omniglot
# 5. Tasks that never appear in training
# 6. Your first episode
#
# ## 1. Who the course is for, and what you will learn
#
# **Prerequisites**: Python and a first course in machine learning. You have
# trained a neural network with SGD in PyTorch (or a similar framework) and
# know gradients, the chain rule, cross-entropy and conditional probability.
# No meta-learning or reinforcement learning is assumed.
#
# **After the course** you can implement and meta-train each family of
# meta-learners below in PyTorch, evaluate a few-shot learner honestly
# (unseen classes, the same test episodes for every method, 95% confidence
# intervals), and measure what a meta-learner costs and where it stops
# generalising. How much of the algorithm is learned is a spectrum:
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
# Two ideas come back with numbers and plots. **The variable ratio**: a
# meta-RNN has far more meta-parameters than learned variables, so it tends
# to memorise its meta-training tasks; VSML shares parameters to invert the
# ratio (05, 07). **Task diversity**: a transformer meta-trained on few tasks
# memorises them; on many, it learns to learn (08).
#
# The running example is few-shot classification: every task is a tiny
# dataset with a **support set** $\mathcal{S}$ (a few labelled examples per
# class) and a **query set** $\mathcal{Q}$ (new examples to classify).
#
# ## 2. How to run the course
#
# * **Your copy.** `make course` opens your copies of the notebooks in
#   `work/` (ignored by git); `notebooks/` keeps the reference run. To start a
#   notebook afresh, delete its copy and run `make course` again.
# * **Modes and time.** The default, *full* mode, uses the budgets the text
#   talks about: on a CPU a notebook takes from seconds to about twenty
#   minutes (01 and 03 are the longest). `COURSE_MODE=smoke make course`
#   switches to tiny budgets, about a minute per notebook; its numbers only
#   show that the code runs. The [instructor
#   notes](../docs/instructor_notes.md#time-per-notebook) give each
#   notebook's measured time in both modes. Meta-training that takes hours is
#   not repeated: the notebooks load its checkpoints from `data/`.
# * **Devices.** A CUDA GPU, else Apple's MPS, else the CPU;
#   `COURSE_DEVICE=cpu` (or `cuda:1`, ...) overrides the choice.
# * **Data.** Omniglot and MNIST download once into `data/cache/`; offline,
#   set `COURSE_DATA_DIR` as the [README](../README.md) says. The README also
#   covers tests, the static site and how to add a method.
#
# Every notebook starts with one setup cell, which prints the mode and device:

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

import course_lib as cl
from course_lib import data, episodes
from course_lib.teaching import plots

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# ## 3. The spectrum, as a picture
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
# ## 4. A first look at Omniglot
#
# Omniglot (Lake, Salakhutdinov & Tenenbaum, *Science* 2015) is the
# "transpose" of MNIST: 1,623 handwritten characters from 50 alphabets, but
# only **20 drawings of each**, by 20 different people. Made to study how
# people learn a concept from one example, it is the classic few-shot
# benchmark. `course_lib.data.load_omniglot` reads the two official archives
# (30 *background* and 20 *evaluation* alphabets) and converts the 105x105
# drawings to 28x28 once.

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
# ## 5. Tasks that never appear in training
#
# Meta-learning splits the *classes*, not the examples: the characters that
# test a learner are never seen in meta-training. `course_lib.data.omniglot_splits`
# provides the two standard protocols:
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
# ## 6. Your first episode
#
# A 5-way 1-shot episode from the Lake meta-test split: one labelled drawing
# of each of five characters you have (almost certainly) never seen, the
# support set $\mathcal{S}$, and twenty new drawings of the same characters
# in random order, the query set $\mathcal{Q}$. Before you run the next cell,
# decide which class each query a-t belongs to.

# %%
test_tasks = episodes.EpisodeSampler(data.omniglot_splits("lake")["test"], ways=5, shots=1, queries=4)
episode = test_tasks.sample(torch.Generator().manual_seed(3))
print(f"support_x {tuple(episode.support_x.shape)}, support_y {episode.support_y.tolist()}")
print(f"query_x   {tuple(episode.query_x.shape)}, query_y   {episode.query_y.tolist()}")
shuffled = torch.randperm(len(episode.query_y), generator=torch.Generator().manual_seed(0))
query_names = "abcdefghijklmnopqrst"
plots.show_images(episode.support_x, titles=[f"class {int(y)}" for y in episode.support_y], ncols=5, size=1.1,
                  suptitle="support set: one drawing per class")
plots.show_images(episode.query_x[shuffled], titles=list(query_names[:len(shuffled)]), ncols=10, size=1.1,
                  suptitle="query set: which class is each one?")
plt.show()

# %% [markdown]
# The answers, easy for people (making them easy for machines is what this
# course is about): each row below is one class, its support drawing on the
# left and its queries on the right.

# %%
answers = {query_names[i]: int(episode.query_y[q]) for i, q in enumerate(shuffled.tolist())}
print("  ".join(f"{name}: {label}" for name, label in answers.items()))
plots.plot_episode(episode, class_names=test_tasks.dataset.class_names)
plt.show()

# %% [markdown]
# ## What we learned
#
# Every method of the course maps a support set to a predictor; they differ
# in how much of that map is learned from other tasks. Notebook 01 is the
# designed end, where nothing is. The course then learns more and more of
# it: a feature space (03), an initialisation (04), an optimizer and an
# objective (06), a black box with symmetries (VSML, SymLA: 07), and
# black-box sequence models (05, 08).

# %%
display(Markdown(
    f"Omniglot has {omniglot.num_classes:,} characters from {len(alphabets)} alphabets, with only "
    f"{len(omniglot) // omniglot.num_classes} drawings of each. Its classes, not its examples, are split: "
    f"the Lake protocol meta-tests on {test_tasks.dataset.num_classes} characters that no meta-training task "
    f"contains, so a meta-learner is scored on what it learns from a support set of "
    f"{episode.shots} drawing per class, not on what it memorised."
))

# %% [markdown]
# **Next:** [01 · Supervised learning](01_supervised_learning.ipynb), the
# learning algorithm people design, and where it fails.
