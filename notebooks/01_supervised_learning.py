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
# # 01 · Supervised learning: a learning algorithm designed by people
#
# Before we learn learning algorithms, let us look closely at one that people
# designed, and find where it breaks.
#
# After this notebook you will be able to:
#
# * write a learning algorithm as a map $\mathcal{A}$ from a dataset to
#   parameters, and name the pieces of SGD on cross-entropy that a person
#   chose;
# * implement the cross-entropy loss and an SGD step by hand, and check them
#   against PyTorch;
# * write the SGD training loop yourself (random minibatches, gradients,
#   updates) and train a network with it to a stated held-out accuracy;
# * measure how held-out accuracy falls as the examples per class shrink,
#   with 95% confidence intervals that are honest about having only a few
#   runs;
# * score a learner on few-shot episodes of classes it has never seen, through
#   its support set $\mathcal{S}$ and query set $\mathcal{Q}$.
#
# Notation: [docs/notation.md](../docs/notation.md).
#
# 1. A learning algorithm, written down
# 2. One step of SGD
# 3. Training: learning curves
# 4. The same algorithm with a handful of examples
# 5. New classes, one example each: a few-shot task
# 6. Exercises: the loss, the step, the error bars
# 7. Build it: the SGD training loop

# %%
import inspect

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

import course_lib as cl
from course_lib import baselines, data, episodes, evaluation, models, supervised
from course_lib.teaching import plots
from course_lib.teaching.checks import nb01 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# ## 1. A learning algorithm, written down
#
# * A **dataset** $\mathcal{D} = \{(x_i, y_i)\}$ of inputs $x_i$ (images)
#   and labels $y_i \in \{0, \dots, C-1\}$.
# * A **model** $f_\theta$ with **parameters** $\theta$ maps an input to $C$
#   logits; $p_\theta(y \mid x) = \mathrm{softmax}(f_\theta(x))_y$.
# * The **loss** on a dataset is the mean cross-entropy
#   $$\mathcal{L}(\theta; \mathcal{D}) = \frac{1}{|\mathcal{D}|}\sum_{(x, y) \in \mathcal{D}} -\log p_\theta(y \mid x).$$
# * **Stochastic gradient descent** (SGD) repeats, for a minibatch
#   $\mathcal{B} \subset \mathcal{D}$ of $B$ examples and a step size
#   $\alpha$,
#   $$\theta_{t+1} = \theta_t - \alpha \, \nabla_\theta \mathcal{L}(\theta_t; \mathcal{B}_t).$$
#
# The **learning algorithm** is the map $\mathcal{A}: \mathcal{D} \mapsto
# \theta_T$, "run $T$ steps of SGD from an initialisation $\theta_0$". Every
# piece of it (the architecture of $f$, $\theta_0$, $\alpha$, $T$, the loss)
# was chosen by a person. Meta-learning, from notebook 02 on, learns some of
# these pieces from other tasks.
#
# Our $\mathcal{D}$: the 10,000 handwritten digits of the official MNIST test
# set, split once at random into 8,000 images to train on and 2,000
# **held out** to measure generalisation. (The MNIST training set is not
# needed, so we skip its download.)

# %%
mnist = data.load_mnist_test()
order = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(0))
train_idx, held_out_idx = order[:8000], order[8000:]
train_set = data.LabelledImages(mnist.images[train_idx], mnist.labels[train_idx], mnist.class_names, name="MNIST train part")
held_out = data.LabelledImages(mnist.images[held_out_idx], mnist.labels[held_out_idx], mnist.class_names, name="MNIST held-out part")
print(train_set, held_out, sep="\n")
plots.show_images(train_set.images[:20], titles=[str(int(y)) for y in train_set.labels[:20]], ncols=10)
plt.show()

# %% [markdown]
# ## 2. One step of SGD
#
# The model is `Conv4`, the four-block convolutional network of most few-shot
# papers (and of later notebooks), with a linear layer giving $C = 10$
# logits. One SGD step has three pieces: the loss on a minibatch of $B$
# images, its gradient $\nabla_\theta \mathcal{L}$ (backpropagation), and
# the update $\theta \leftarrow \theta - \alpha \nabla_\theta
# \mathcal{L}$ of every parameter tensor. Here PyTorch does all three; in
# sections 6 and 7 you write them yourself and check them against PyTorch.

# %%
model = models.Conv4(num_classes=10)
print(f"Conv4 with a 10-way head: {models.count_parameters(model):,} parameters")

x, y = train_set.images[:64], train_set.labels[:64]
alpha = 0.1
optimizer = torch.optim.SGD(model.parameters(), lr=alpha)

loss = F.cross_entropy(model(x), y)  # L(theta; B), the mean over the minibatch
optimizer.zero_grad()                # .backward() adds to .grad, so clear what an earlier step left there
loss.backward()                      # grad_theta L, stored in each parameter's .grad
optimizer.step()                     # theta <- theta - alpha * grad_theta L
with torch.no_grad():
    loss_after = F.cross_entropy(model(x), y)
print(f"loss on this minibatch: {loss.item():.3f} before the step, {loss_after.item():.3f} after it")

# %% [markdown]
# ## 3. Training: learning curves
#
# `course_lib.supervised.train_classifier` runs that step in a loop on random
# minibatches and records the minibatch loss at every step and the held-out
# accuracy now and then.

# %%
TRAIN_STEPS = cl.by_mode(smoke=30, full=1500)
model = models.Conv4(num_classes=10)
history = supervised.train_classifier(
    model, train_set, steps=TRAIN_STEPS, device=DEVICE, lr=0.1, batch_size=64,
    held_out=held_out, eval_every=max(TRAIN_STEPS // 10, 1), generator=torch.Generator().manual_seed(0),
)
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.2))
plots.plot_history(history, ["loss"], ax=ax_loss, labels=["minibatch loss"], logy=True, title="training loss")
plots.plot_history(history, ["train_accuracy", "held_out_accuracy"], ax=ax_acc,
                   labels=["minibatch accuracy", "held-out accuracy"], title="accuracy")
plt.show()
full_data_accuracy = history.last("held_out_accuracy")
print(f"held-out accuracy after {TRAIN_STEPS} steps on 8,000 images: {100 * full_data_accuracy:.1f} %")
first_loss, last_loss = history["loss"][1][0], sum(history["loss"][1][-10:]) / len(history["loss"][1][-10:])
assert last_loss < first_loss, "training should lower the loss"

# %% [markdown]
# With about 800 examples per class, the algorithm people designed works: the
# held-out accuracy ends close to the minibatch accuracy.
#
# ## 4. The same algorithm with a handful of examples
#
# Now give $\mathcal{A}$ only $K$ examples per class (later notebooks call
# $K$ the number of *shots*), from one upwards, and measure held-out accuracy
# over several random draws of the $K$ examples (mean ± 95% confidence
# interval). Every run takes the same number of SGD steps, so any drop is the
# data's fault, not the optimiser's.

# %%
SHOTS = cl.by_mode(smoke=[1, 10], full=[1, 2, 5, 10, 20, 50, 100])
DRAWS = cl.by_mode(smoke=2, full=3)
FEW_STEPS = cl.by_mode(smoke=10, full=200)


def k_per_class(dataset, k, generator):
    """A random subset with exactly k examples of every class."""
    chosen = torch.cat([
        dataset.indices_of_class(c)[torch.randperm(len(dataset.indices_of_class(c)), generator=generator)[:k]]
        for c in range(dataset.num_classes)
    ])
    return data.LabelledImages(dataset.images[chosen], dataset.labels[chosen], dataset.class_names)


few_shot_curve, few_shot_accuracies = {}, {}
for k in SHOTS:
    accuracies = []
    for draw in range(DRAWS):
        generator = torch.Generator().manual_seed(1000 * k + draw)
        subset = k_per_class(train_set, k, generator)
        small_model = models.Conv4(num_classes=10)
        supervised.train_classifier(small_model, subset, steps=FEW_STEPS, device=DEVICE, lr=0.1,
                                  batch_size=64, generator=generator, progress=False)
        accuracies.append(supervised.classification_accuracy(small_model, held_out, DEVICE))
    few_shot_accuracies[k] = accuracies
    few_shot_curve[k] = evaluation.mean_confidence_interval(accuracies)
    print(f"K = {k:3d} per class: held-out accuracy {evaluation.format_accuracy(*few_shot_curve[k])}")

# %%
ks = list(few_shot_curve)
means = [100 * few_shot_curve[k][0] for k in ks]
errors = [100 * few_shot_curve[k][1] for k in ks]
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.errorbar(ks, means, yerr=errors, marker="o", capsize=3, label=f"SGD from scratch, {FEW_STEPS} steps")
ax.axhline(100 * full_data_accuracy, color="gray", ls="--", label=f"all {len(train_set):,} images (section 3)")
ax.axhline(10, color="red", ls=":", label="chance (10 classes)")
ax.set_xscale("log")
ax.set_xlabel("training examples per class, K")
ax.set_ylabel("held-out accuracy (%)")
ax.set_title("MNIST: the designed algorithm needs data")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The left end of the curve lies far below the dashed line: the same model
# and the same update rule, given less data, generalise far worse.
#
# ## 5. New classes, one example each: a few-shot task
#
# Now the setting the rest of the course is about. Take **characters the
# model has never seen** (the Omniglot evaluation alphabets) and build an
# *episode*: a 5-way task with a **support set** $\mathcal{S}$ of $K$
# labelled drawings per character (the task's training data) and a **query
# set** $\mathcal{Q}$ of new drawings of the same characters (its test data).
# CS330 and Finn et al. write $\mathcal{D}^{tr}$ and $\mathcal{D}^{ts}$; this
# course writes $\mathcal{S}$ and $\mathcal{Q}$. Run the designed algorithm,
# SGD from a random initialisation, on $\mathcal{S}$, score it on
# $\mathcal{Q}$, and average over many episodes.
#
# This is `predict(support_x, support_y, query_x)`, the interface every
# few-shot method in the course implements; `course_lib.evaluation.evaluate_few_shot`
# scores any such function on the same test episodes.

# %%
FINETUNE_STEPS = cl.by_mode(smoke=10, full=100)
EPISODES = cl.by_mode(smoke=3, full=100)

# The designed learning algorithm A: a fresh Conv4, FINETUNE_STEPS steps of SGD
# on the support set, then a prediction for every query.
sgd_from_scratch = baselines.ConvFromScratch(steps=FINETUNE_STEPS, lr=0.1)
print(inspect.getsource(baselines.ConvFromScratch))


omniglot_test = data.omniglot_splits("lake")["test"]
scratch_results = {}
for shots in (1, 5):
    tasks = episodes.EpisodeSampler(omniglot_test, ways=5, shots=shots, queries=15, device=DEVICE)
    scratch_results[shots] = evaluation.evaluate_few_shot(sgd_from_scratch, tasks, episodes=EPISODES, seed=0)
    print(f"5-way {shots}-shot, SGD from scratch ({FINETUNE_STEPS} steps), "
          f"{EPISODES} test episodes: {scratch_results[shots]}   (chance: 20.0 %)")

# %% [markdown]
# One of those episodes and what the learner predicted (green frame: right,
# red: wrong):

# %%
tasks = episodes.EpisodeSampler(omniglot_test, ways=5, shots=1, queries=5, device=DEVICE)
episode = tasks.sample(torch.Generator().manual_seed(7))
predicted = sgd_from_scratch(episode.support_x, episode.support_y, episode.query_x).argmax(-1)
accuracy = (predicted == episode.query_y).float().mean().item()
plots.plot_episode(episode, class_names=omniglot_test.class_names, predictions=predicted,
                   title=f"SGD from scratch on one 5-way 1-shot episode: {100 * accuracy:.0f} % of queries right")
plt.show()

# %% [markdown]
# Even a learner that gets some queries right has learned nothing it can
# carry to the next episode: each one starts again from a random
# $\theta_0$.
#
# ## 6. Exercises: the loss, the step, the error bars
#
# Write three pieces of this notebook yourself. Each exercise is one function;
# the cell after it runs your function on small cases with known answers and
# says in plain words what is wrong.
#
# **Exercise 1 · Cross-entropy.** For logits $z \in \mathbb{R}^{B \times C}$
# and labels $y \in \{0..C-1\}^B$ return
# $\frac{1}{B}\sum_i -\log \operatorname{softmax}(z_i)_{y_i}$ without calling
# `F.cross_entropy`. Logits of a few hundred overflow $e^{z}$ in floating
# point, so write $\log \operatorname{softmax}(z)_y$ in terms of
# $\log \sum_c e^{z_c}$, which `torch.logsumexp` computes without overflow.

# %%
def cross_entropy(logits, labels):
    # BEGIN SOLUTION: the batch mean of minus the log-probability of each example's own label, computed without overflow
    log_probabilities = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -log_probabilities[torch.arange(len(labels)), labels].mean()
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_cross_entropy(cross_entropy)

# %% [markdown]
# **Exercise 2 · One SGD step.** Given lists of parameter tensors and their
# gradients, return the new parameters $\theta - \alpha \nabla_\theta
# \mathcal{L}$, leaving the inputs unchanged.

# %%
def sgd_step(params, grads, lr):
    # BEGIN SOLUTION: move each parameter a small step against its gradient, in new tensors
    return [p - lr * g for p, g in zip(params, grads)]
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_sgd_step(sgd_step)

# %% [markdown]
# Together your two functions take the step of section 2: on a Conv4 and a
# minibatch they must give the parameters `torch.optim.SGD` gives.

# %%
torch.manual_seed(0)
model = models.Conv4(num_classes=10)
x, y = train_set.images[:64], train_set.labels[:64]
params = list(model.parameters())
grads = torch.autograd.grad(cross_entropy(model(x), y), params)
yours = sgd_step(params, grads, alpha)

optimizer = torch.optim.SGD(params, lr=alpha)
optimizer.zero_grad()
F.cross_entropy(model(x), y).backward()
optimizer.step()
print("your cross_entropy + sgd_step == torch.optim.SGD:",
      all(torch.allclose(mine, p, atol=1e-6) for mine, p in zip(yours, params)))

# %% [markdown]
# **Exercise 3 · Error bars from a few runs.** Section 4 trained each $K$
# only a few times (`DRAWS`) and reported the mean accuracy with a 95%
# confidence interval. For $n$ values with mean $\bar a$ and standard
# deviation $s$, the interval is $\bar a \pm t \, s / \sqrt{n}$. Papers that
# average hundreds of test episodes take $t = 1.96$, the normal
# distribution's quantile. Which $t$, and which $s$, are right when $n$ is
# as small as in section 4? Return the mean and the half-width
# $t \, s / \sqrt{n}$.

# %%
from scipy import stats  # stats.norm and stats.t: the normal and Student's t distributions


def confidence_interval(values):
    # BEGIN SOLUTION: the mean, and a half-width that allows for the spread itself being estimated from only n values
    values = torch.as_tensor(values, dtype=torch.float64)
    n = len(values)
    half_width = stats.t.ppf(0.975, df=n - 1) * values.std() / n**0.5  # torch's std divides by n - 1
    return values.mean().item(), half_width.item()
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_confidence_interval(confidence_interval)

# %% [markdown]
# What the choice does to section 4's error bar at the smallest $K$, and the
# library function section 4 used (compare with yours):

# %%
k_smallest = ks[0]
mean, half_width = confidence_interval(few_shot_accuracies[k_smallest])
spread = torch.tensor(few_shot_accuracies[k_smallest], dtype=torch.float64).std().item()
normal_half_width = 1.96 * spread / DRAWS**0.5
print(f"K = {k_smallest}, {DRAWS} draws: {100 * mean:.1f} ± {100 * half_width:.1f} % with your interval; "
      f"t = 1.96 would claim ± {100 * normal_half_width:.1f} %"
      + (f", {half_width / normal_half_width:.1f} times too narrow" if normal_half_width > 0 else "") + "\n")
print(inspect.getsource(evaluation.t_95))
print(inspect.getsource(evaluation.mean_confidence_interval))

# %% [markdown]
# ## 7. Build it: the SGD training loop
#
# Section 3 trained Conv4 with the library's loop. Now write that loop
# yourself, on top of your `cross_entropy` and `sgd_step`, as three
# functions. Each check runs your function on a small model that records
# every minibatch it is trained on, so it can tell which mistake you made.
# Then you train a fresh Conv4 with your loop and measure it on the held-out
# part.
#
# **7a · A random minibatch.** Return the images and the labels of
# `batch_size` random examples of `dataset` (a `LabelledImages`, with
# `dataset.images` and `dataset.labels`). Take every random number from
# `generator`, so that the same seed gives the same run.

# %%
def sample_minibatch(dataset, batch_size, generator):
    # BEGIN SOLUTION: batch_size random examples drawn with the generator, each image with its own label
    index = torch.randint(len(dataset), (batch_size,), generator=generator)
    return dataset.images[index], dataset.labels[index]
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_sample_minibatch(sample_minibatch)

# %% [markdown]
# **7b · One training step.** One SGD step on the minibatch `(x, y)`: the
# loss from your `cross_entropy`, its gradient with respect to
# `list(model.parameters())` from `torch.autograd.grad`, the new values from
# your `sgd_step`, and those values written into the model, which is what is
# evaluated afterwards. To overwrite a parameter `p` with `new`, use
# `p.copy_(new)` inside `with torch.no_grad():` (writing `p = new` only
# renames). Return the loss before the step, as a number (`loss.item()`).

# %%
def training_step(model, x, y, lr):
    # BEGIN SOLUTION: this minibatch's loss, its gradient, a step against it, the new values put into the model
    params = list(model.parameters())
    loss = cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():  # overwriting the values is not part of what we differentiate
        for p, new in zip(params, sgd_step(params, grads, lr)):
            p.copy_(new)
    return loss.item()
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_training_step(training_step)

# %% [markdown]
# **7c · The loop.** Take `steps` training steps, each on a new random
# minibatch of `dataset`, and return the list of the losses, one per step.

# %%
def train(model, dataset, steps, lr, batch_size, generator):
    # BEGIN SOLUTION: at every step a fresh minibatch and one training step, keeping each step's loss
    losses = []
    for _ in range(steps):
        x, y = sample_minibatch(dataset, batch_size, generator)
        losses.append(training_step(model, x, y, lr))
    return losses
    # END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
checks.check_train(train)

# %% [markdown]
# **Train it.** A fresh Conv4, your loop, the 8,000 images of the MNIST
# train part, then the accuracy on the held-out part, which the loop never
# sees. The bar below is what a correct loop reaches; section 3's library
# loop, run for longer, is printed beside it.

# %%
BUILD_STEPS = cl.by_mode(smoke=8, full=100)
BUILD_LR, BUILD_BATCH = 0.1, 64
BAR = cl.by_mode(smoke=0.0, full=0.90)  # smoke mode's few steps only show that the loop runs

generator = cl.seed_everything(0)  # the same initial Conv4 and the same minibatches at every run
your_model = models.Conv4(num_classes=10)
your_losses = train(your_model, train_set, BUILD_STEPS, BUILD_LR, BUILD_BATCH, generator)
your_accuracy = supervised.classification_accuracy(your_model, held_out, "cpu")

window = max(len(your_losses) // 20, 1)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(range(1, len(your_losses) + 1), your_losses, alpha=0.35, label="minibatch loss")
ax.plot(range(window, len(your_losses) + 1), torch.tensor(your_losses).unfold(0, window, 1).mean(1),
        label=f"mean of the last {window} steps")
ax.set_yscale("log")
ax.set_xlabel("SGD step $t$")
ax.set_ylabel("cross-entropy (nats)")
ax.set_title("your training loop, Conv4 on the MNIST train part")
ax.legend(fontsize=9)
ax.grid(alpha=0.3)
plt.show()

print(f"your loop: {BUILD_STEPS} steps (lr {BUILD_LR}, batch {BUILD_BATCH}), held-out accuracy "
      f"{100 * your_accuracy:.1f} %; the bar: {100 * BAR:.0f} %\n"
      f"section 3's library loop: {TRAIN_STEPS} steps, {100 * full_data_accuracy:.1f} %")
if your_accuracy >= BAR:
    print("✓ your training loop reaches the bar")
else:
    print("below the bar. The usual causes: steps up the gradient (the loss rises); the same minibatch at "
          "every step (the loss falls fast, the held-out accuracy stays low); new values never written into "
          "the model (the loss stays flat); the loss summed instead of averaged (steps batch_size times too "
          "large: the loss jumps or becomes nan)")

# %% [markdown]
# Compare with the reference, the loop of section 3:

# %%
print(inspect.getsource(supervised.train_classifier))

# %% [markdown]
# **Open question.** Train your loop on $K = 1$ example per class (section
# 4's `k_per_class`), and measure the held-out accuracy every few steps, for
# a few learning rates. Does training longer help or hurt when there are ten
# training images? Is the answer the same at $K = 10$? With only ten
# labelled images and no held-out set, how would you choose the number of
# steps?

# %% [markdown]
# ## What we learned
#
# The designed learning algorithm, measured in this notebook:

# %%
one_shot_mean, one_shot_ci = few_shot_curve[ks[0]]
display(Markdown(
    f"* With all {len(train_set):,} training images ({TRAIN_STEPS} steps), SGD on cross-entropy reached "
    f"{100 * full_data_accuracy:.1f} % held-out accuracy on MNIST; with K = {ks[0]} example per class "
    f"({FEW_STEPS} steps), {evaluation.format_accuracy(one_shot_mean, one_shot_ci)}.\n"
    f"* On 5-way episodes of unseen Omniglot characters, SGD from scratch on the support set scored "
    f"{scratch_results[1]} with one shot and {scratch_results[5]} with five (chance: 20 %). Meta-learned methods "
    f"reach 98-99 % on 5-way 1-shot Omniglot (Snell et al. 2017 report 98.8 % for Prototypical Networks, Finn et al. "
    f"2017 report 98.7 % for MAML, both on the Vinyals split); notebooks 03 and 04 rebuild those methods."
))

# %% [markdown]
# SGD starts from a random $\theta_0$ and knows nothing about digits or pen
# strokes before it sees the data. What people and meta-learned methods bring
# is **prior knowledge from other tasks**. Meta-learning makes the learning
# algorithm itself come from experience: draw tasks $\mathcal{T}_i \sim
# p(\mathcal{T})$, each with a support set $\mathcal{S}_i$ and a query set
# $\mathcal{Q}_i$, and choose $\mathcal{A}$ so that
# $\mathcal{A}(\mathcal{S}_i)$ does well on $\mathcal{Q}_i$, on average over
# tasks never seen in training. SGD on cross-entropy is the designed end of
# the spectrum the course then walks: learned optimizers → learned
# initialisations → learned objectives → black boxes with symmetries (VSML,
# SymLA) → black-box sequence models.
#
# **Next:** [02 · Few-shot classification](02_few_shot_classification.ipynb):
# tasks as datasets, and the baselines every meta-learner must beat.
