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
# # 06 · Learned optimizers and learned objective functions
#
# Notebooks 03 to 05 learned a feature space, an initialisation, or a whole
# black-box learner. This notebook sits at the **structured end** of the
# spectrum: we keep the skeleton of gradient descent,
#
# $$\theta_{t+1} = \theta_t - \alpha\,\nabla_\theta \mathcal{L}(\theta_t),$$
#
# and learn **one of its parts**:
#
# 1. **the update rule** (a *learned optimizer*): a small LSTM reads the
#    gradient and writes the update (Andrychowicz et al. 2016, "Learning to
#    learn by gradient descent by gradient descent");
# 2. **the objective** (a *learned loss*): a small network $L_\phi$ replaces
#    the cross-entropy inside ordinary SGD (the supervised form of the idea
#    behind MetaGenRL and LPG in reinforcement learning);
# 3. and then we count, for both, **meta-parameters versus learned
#    variables**, the ratio notebook 05 introduced.
#
# Everything below runs on a laptop CPU in full mode (five to ten minutes); the
# code lives in `course_lib.learned_optimizers` and `course_lib.learned_losses`.

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import course_lib as cl
from course_lib import data, evaluation, runs
from course_lib import learned_losses as ll
from course_lib import learned_optimizers as lo
from course_lib.teaching import optimizer_figures as figures
from course_lib.teaching import plots
from course_lib.teaching.checks import nb06 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# Every network in this notebook is tiny (a 20-unit LSTM, MLPs with about
# 1,500 weights), so the arithmetic per step is far smaller than the cost of
# starting a GPU kernel or a thread. We therefore run on **the CPU with one
# thread**, whatever device the setup found: that is the fastest choice here.

# %%
torch.set_num_threads(1)
CPU = torch.device("cpu")
print(f"this notebook computes on: {CPU}, {torch.get_num_threads()} thread")

# %% [markdown]
# ## 1 · A learned optimizer
#
# ### The update rule as a recurrent network
#
# An optimizer is a rule that maps the gradient history to an update. Write
# it as a recurrent network $m$ with weights $\phi$ and state $h_t$:
#
# $$\theta_{t+1} = \theta_t + g_t, \qquad
#   \begin{bmatrix} g_t \\ h_{t+1} \end{bmatrix} = m(\nabla_t, h_t; \phi), \qquad
#   \nabla_t = \nabla_\theta f(\theta_t).$$
#
# SGD is the special case $g_t = -\alpha \nabla_t$ (no state); momentum,
# RMSprop and Adam keep one or two running averages in $h_t$. A **learned
# optimizer** lets $m$ be an LSTM and trains $\phi$ on a distribution of
# optimization problems ("optimizees") $f$, by minimising the **meta-loss**
#
# $$\mathcal{L}(\phi) = \mathbb{E}_f\Big[\sum_{t=1}^{T} w_t\, f(\theta_t)\Big],$$
#
# the loss summed along the trajectory the optimizer produces (not just at its
# end, so that the optimizer is rewarded for being fast as well as good).
#
# **Coordinatewise.** Andrychowicz et al. apply the same small LSTM to
# *each coordinate* $\theta^i$ separately: every coordinate has its own state
# $h^i_t$, and all coordinates share $\phi$. A 2-layer LSTM with 20 units has
# about 5,000 weights and can optimise a problem of any size, and the update
# of coordinate $i$ does not depend on the order of the coordinates.
#
# **Preprocessing.** Gradients range over many orders of magnitude, which a
# neural network handles badly. The paper (appendix A) feeds each gradient
# coordinate as two numbers,
#
# $$\nabla \mapsto \begin{cases} \big(\tfrac{\log |\nabla|}{p},\ \mathrm{sign}(\nabla)\big) & |\nabla| \ge e^{-p} \\ (-1,\ e^{p}\nabla) & \text{otherwise} \end{cases}
# \qquad p = 10,$$
#
# and we multiply the LSTM's linear read-out by 0.1 (`output_scale`) to get
# $g_t$, so that the untrained optimizer starts with small steps.
#
# In `course_lib.learned_optimizers`, `LSTMOptimizer.step(grad, state)` is
# $m$, and `unroll(...)` is the loop
# $\theta_{t+1} = \theta_t + g_t$ written for a batch of optimizees at once.
#
# **Exercise 1: the gradient preprocessing.** Write the map above for a
# gradient tensor of any shape: each coordinate on its own becomes two numbers,
# stacked in a new last dimension (`[...] -> [..., 2]`). Use the natural log
# and the `p` you are given. Careful with a gradient of exactly 0: `torch.where`
# evaluates both branches, so keep the log away from 0 (e.g. with
# `clamp_min`). (The student copy of this notebook, made by
# `python -m course_lib.teaching.exercises`, has `raise NotImplementedError` where the
# solution is.) The LSTM below uses the library's `lo.preprocess_gradient`,
# which passes the same check.

# %%
import math


def preprocess_gradient(grad, p):
    # BEGIN SOLUTION: per coordinate: (log|g| / p, sign g) where |g| >= e^-p, else (-1, e^p g); stack on a new last dim
    large = grad.abs() >= math.exp(-p)
    log_part = torch.where(large, torch.log(grad.abs().clamp_min(math.exp(-p))) / p, -torch.ones_like(grad))
    sign_part = torch.where(large, torch.sign(grad), math.exp(p) * grad)
    return torch.stack([log_part, sign_part], dim=-1)
    # END SOLUTION


checks.check_gradient_preprocessing(preprocess_gradient)
print("a gradient of 0.5, 1e-3, -1e-7 becomes:", preprocess_gradient(torch.tensor([0.5, 1e-3, -1e-7]), 10.0).tolist())

# %%
# NBVAL_CHECK_OUTPUT
net = lo.LSTMOptimizer(lo.LearnedOptimizerConfig())
print(net)
print(f"meta-parameters phi: {sum(p.numel() for p in net.parameters()):,}")
print(f"LSTM state kept per optimizee coordinate: {net.state_size_per_coordinate()} numbers (h and c, 2 layers x 20)")

# %% [markdown]
# **An oracle check.** Replace the LSTM by the fixed rule
# $g_t = -\alpha\nabla_t$ (`FixedRule`): the same loop must then *be* SGD.
# Here on a batch of 10-dimensional quadratics (defined below), against SGD
# written by hand and against `torch.optim.SGD`. (The tests in
# `tests/test_learned_optimizers.py` check this and the meta-gradient against
# finite differences.)

# %%
# NBVAL_CHECK_OUTPUT
quadratics = lo.QuadraticFamily(dim=10)
problems = lo.problem_batch(quadratics, 8, seed=0)
fixed = lo.run_learned(lo.FixedRule(0.01), quadratics, problems, steps=50)

theta = problems.theta0.clone()
by_hand = [quadratics.loss(problems, theta, 0)]
for t in range(50):
    theta.requires_grad_(True)
    (grad,) = torch.autograd.grad(quadratics.loss(problems, theta, t).sum(), theta)
    theta = (theta - 0.01 * grad).detach()
    by_hand.append(quadratics.loss(problems, theta, t + 1))
by_hand = torch.stack(by_hand)
torch_sgd = lo.run_baseline("SGD", 0.01, quadratics, problems, steps=50)
print("unroll with update = -lr * grad equals hand-written SGD bit for bit:", torch.equal(fixed, by_hand))
print("... and torch.optim.SGD to float precision:", torch.allclose(fixed, torch_sgd, rtol=1e-5, atol=0))

# %% [markdown]
# ### Meta-training: truncated backpropagation through time
#
# The meta-loss depends on $\phi$ through the whole trajectory
# $\theta_1, \dots, \theta_T$, so its gradient is backpropagation through
# time (BPTT) through the optimizee's training. Storing all $T$ steps costs
# memory proportional to $T$, and one meta-update per trajectory is slow.
# **Truncated BPTT** cuts the horizon $T$ into pieces of $K$ steps: run $K$
# steps, take one Adam step on $\phi$ along the gradient of that piece's
# losses, then *detach* $\theta$ and the LSTM state (keep their values, drop
# their history) and continue from there. We use the paper's $T = 100$ and
# $K = 20$: five meta-updates per sampled optimizee, memory for 20 steps
# (meta-optimizer: Adam with learning rate 0.003, meta-gradient norm clipped at 1).
# The price is bias: a truncation never sees how its updates affect losses
# more than $K$ steps later. We use $w_t = 1/K$ (the mean over a
# truncation; the paper's $w_t = 1$ gives the same direction).
#
# **The dropped second derivatives.** $\nabla_t$ itself depends on $\phi$
# (through $\theta_t$), so the exact meta-gradient contains
# $\partial \nabla_t / \partial \phi = \nabla^2 f(\theta_t)\,\partial\theta_t/\partial\phi$,
# Hessians of the optimizee. The paper assumes
# $\partial \nabla_t / \partial \phi = 0$: the LSTM's gradient *input* is
# treated as a constant, while $\phi$ still reaches the meta-loss through
# $g_t$, $h_t$ and $\theta_{t+1} = \theta_t + g_t$. **Our implementation does
# the same by default** (`second_order=False`: `unroll` detaches the gradient
# before the LSTM sees it). With `second_order=True` it keeps the path
# (`create_graph=True`); the tests check that this exact version matches
# finite differences and that the default differs from it by exactly that
# path. How much does dropping it change the meta-gradient here? We compare the
# two on one truncation, once the optimizer is trained (below).
#
# **Exercise 2: one meta-training iteration with truncated BPTT.** Given an
# LSTM optimizer `net`, a batch of `problems` of an optimizee `family`, and a
# `meta_optimizer` on $\phi$ (`net.parameters()`), train the problems for
# `horizon` steps in truncations of `K` steps. For each truncation: run
# `lo.unroll(net, family, problems, theta, state, start, K)` from where the
# previous one ended (it returns `losses` of shape `[K + 1, B]`, with
# `losses[0]` the loss at the start, and the new `theta` and `state`); the
# meta-loss is the mean of `losses[1:]`; take one step of `meta_optimizer`
# (zero the gradients first); then detach `theta` and every tensor of the LSTM
# `state` (a list of `(h, c)` pairs, one per layer). Return the list of the
# meta-losses (floats). `lo.meta_train` does the same, with fresh problems at
# every step and gradient clipping (`lo.trainer` is that step); it is what we
# use below.

# %%
def meta_train_iteration(net, family, problems, meta_optimizer, horizon, K):
    # BEGIN SOLUTION: for each truncation: lo.unroll K steps, meta-loss = losses[1:].mean(), zero_grad/backward/step, detach theta and state
    theta, state = problems.theta0, net.init_state(problems.theta0)
    meta_losses = []
    for start in range(0, horizon, K):
        losses, theta, state = lo.unroll(net, family, problems, theta, state, start, K)
        meta_loss = losses[1:].mean()
        meta_optimizer.zero_grad()
        meta_loss.backward()
        meta_optimizer.step()
        meta_losses.append(meta_loss.item())
        theta, state = theta.detach(), [(h.detach(), c.detach()) for h, c in state]
    return meta_losses
    # END SOLUTION


checks.check_truncated_meta_training(meta_train_iteration)

# %% [markdown]
# ### Optimizee 1: ten-dimensional quadratics
#
# $f(\theta) = \lVert W\theta - y \rVert^2$ with $W \in \mathbb{R}^{10\times10}$,
# $y \in \mathbb{R}^{10}$ drawn i.i.d. from $\mathcal{N}(0, 1)$ and
# $\theta_0 \sim \mathcal{N}(0, 0.01^2)$, the paper's first experiment. The
# family is a `course_lib.episodes.TaskDistribution`: each sample is one
# problem. Meta-training draws fresh problems at every iteration.

# %%
T = cl.by_mode(smoke=20, full=100)  # meta-training horizon
K = cl.by_mode(smoke=10, full=20)  # truncation length
QUAD_CONFIG = lo.LearnedOptimizerConfig(horizon=T, unroll=K, optimizees_per_batch=cl.by_mode(smoke=4, full=32),
                                        lr=3e-3, optimizee="quadratic", steps=cl.by_mode(smoke=3, full=200), seed=0)

torch.manual_seed(0)
quad_net = lo.LSTMOptimizer(QUAD_CONFIG)
quad_history = lo.meta_train(quad_net, quadratics, QUAD_CONFIG.steps)
plots.plot_history(quad_history, ["meta_loss", "final_loss"], logy=True,
                   labels=["meta-loss (mean f over the horizon)", f"f(θ_T), T = {T}"],
                   title="meta-training on 10-d quadratics")
plt.show()

# %% [markdown]
# **Baselines, tuned.** SGD, momentum (0.9), RMSprop and Adam, each with its
# learning rate chosen from the grid $10^{-4}, 10^{-3.5}, \dots, 10$ on the
# problems the LSTM saw in its first meta-training steps, by the same
# criterion the LSTM is trained on: the mean loss over the $T$ steps.
# **Evaluation** then uses fresh problems (another seed), which neither the
# LSTM nor the grid search has seen. We run every optimizer for $5T$ steps
# to test, at the same time, a horizon five times longer than meta-training.

# %%
LR_GRID = cl.by_mode(smoke=(0.01, 0.1, 1.0), full=lo.LR_GRID)
LONG = 5 * T
tuning_problems = lo.meta_training_problems(quadratics, QUAD_CONFIG, steps=2)
quad_tuned = lo.tune_learning_rates(quadratics, tuning_problems, T, grid=LR_GRID)
quad_lrs = {name: result["lr"] for name, result in quad_tuned.items()}
print("tuned learning rates:", {name: f"{lr:.3g}" for name, lr in quad_lrs.items()})

quad_test = lo.problem_batch(quadratics, cl.by_mode(smoke=4, full=128), seed=2024)
quad_curves = lo.compare_optimizers({"LSTM (learned)": quad_net}, quad_lrs, quadratics, quad_test, LONG)
print(f"{quad_test.theta0.shape[0]} fresh quadratics, mean ± 95% CI over problems:")
print(lo.comparison_table(quad_curves, T, [T, LONG]))
figures.plot_mean_losses(quad_curves, title="10-d quadratics (fresh problems)", trained_horizon=T)
plt.show()

# %% [markdown]
# On fresh quadratics the learned optimizer has the lowest mean loss of the
# five, at the meta-training horizon and five times beyond it. The paired
# rows (the same problems for every optimizer) say how sure we can be. Against
# SGD, RMSprop and Adam its loss at $t = 100$ is lower with a 95% interval
# that excludes zero. Against momentum, the strongest baseline here, it wins
# clearly on the meta-objective (mean loss over the first 100 steps: $-0.23
# \pm 0.04$), but at step 100 itself the difference ($-0.03 \pm 0.03$) is
# within the noise. At $t = 500$, far beyond anything it was trained on, it
# is still lowest on average, but its lead over momentum and Adam is no longer
# distinguishable from zero. On this family, a longer horizon does not break
# the learned optimizer. (Meta-training itself is not smooth: note the spike
# around iteration 70 in the curve above. We keep the final $\phi$, with no
# early stopping.)
#
# Now the promised comparison of the exact meta-gradient with the paper's
# approximation, for the trained optimizer on the first truncation of the
# fresh problems, for truncations of 1, 5 and $K$ steps:

# %%
def truncation_meta_gradient(steps, second_order):
    quad_net.zero_grad()
    losses, _, _ = lo.unroll(quad_net, quadratics, quad_test, quad_test.theta0,
                             quad_net.init_state(quad_test.theta0), 0, steps, second_order=second_order)
    lo.meta_loss_of(losses).backward()
    return torch.cat([p.grad.flatten() for p in quad_net.parameters()])


for steps in sorted({1, 5, K}):
    exact, first_order = truncation_meta_gradient(steps, True), truncation_meta_gradient(steps, False)
    cosine = F.cosine_similarity(exact, first_order, dim=0).item()
    print(f"truncation of {steps:2d} steps: cosine(exact, first-order) = {cosine:.3f}, "
          f"|first-order| / |exact| = {(first_order.norm() / exact.norm()).item():.4f}")

# %% [markdown]
# For a one-step truncation the two are identical: $\theta_0$ does not depend
# on $\phi$, so neither does $\nabla_0$. Over longer truncations they part.
# After 20 steps the exact meta-gradient is about 370 times larger
# (ratio 0.0027) and points in a rather different direction (cosine 0.20).
# The reason is the chain of Jacobians along the truncation,
# $\partial\theta_{t+1}/\partial\theta_t = I + \frac{\partial g_t}{\partial \nabla_t}\nabla^2 f(\theta_t) + \dots$:
# the exact gradient multiplies $K$ of these, each containing the Hessian,
# and for an optimizer that takes large steps the product grows quickly with
# $K$. Metz et al. (2019, "Understanding and correcting pathologies in the
# training of learned optimizers") show that gradients through long unrolls
# of learned optimizers can explode and that the meta-loss surface becomes
# chaotic. Dropping $\partial\nabla_t/\partial\phi$ is therefore not only
# cheaper (no Hessian-vector products); it also gives a much smaller, if
# biased, gradient. That is the gradient we trained with.
#
# ### Optimizee 2: a small MLP on images
#
# The paper's second experiment trains an MLP with one hidden layer of 20
# sigmoid units on MNIST, minibatches of 128, for $T = 100$ steps. To keep
# the CPU budget we average-pool the MNIST test digits to $8\times8$ pixels
# (the size of scikit-learn's digits): the MLP is 64-20-10, 1,510 weights. As
# in notebook 01, a seeded permutation splits the 10,000 images: 8,000 are
# the **meta-training images** (optimizees for meta-training and for tuning
# the baselines), 2,000 are **held out** (optimizees for evaluation). An
# optimizee is an initialisation plus its own minibatch stream; every
# optimizer sees the same minibatches on the same problem.

# %%
mnist = data.load_mnist_test()
pixels, labels, train_idx, held_out_idx = lo.mnist_split(mnist, side=8, seed=0)  # pooled to 8x8, flattened


def mlp_family(images, hidden=(20,), activation="sigmoid", part="meta-training"):
    index = train_idx if images == "train" else held_out_idx
    family = lo.MLPFamily(pixels[index], labels[index], hidden=hidden, activation=activation)
    family.name += f", {part} images"
    return family


mlp_train, mlp_test = mlp_family("train"), mlp_family("test", part="held-out")
print(mlp_train.name, "|", mlp_train.num_parameters, "parameters")

MLP_CONFIG = lo.LearnedOptimizerConfig(horizon=T, unroll=K, optimizees_per_batch=cl.by_mode(smoke=2, full=4),
                                       lr=3e-3, optimizee="mlp", steps=cl.by_mode(smoke=2, full=150), seed=1)
torch.manual_seed(1)
mlp_net = lo.LSTMOptimizer(MLP_CONFIG)
meta_optimizer = torch.optim.Adam(mlp_net.parameters(), lr=MLP_CONFIG.lr)
mlp_history = lo.meta_train(mlp_net, mlp_train, MLP_CONFIG.steps, meta_optimizer=meta_optimizer)
checkpoint = cl.runtime.cache_dir() / "checkpoints" / f"06_lstm_optimizer_mlp_{MODE}.pt"
runs.save_checkpoint(checkpoint, mlp_net, MLP_CONFIG, history=mlp_history, optimizer=meta_optimizer,
                     step=MLP_CONFIG.steps)
plots.plot_history(mlp_history, ["meta_loss", "final_loss"], logy=True,
                   labels=["meta-loss (mean f over the horizon)", f"f(θ_T), T = {T}"],
                   title="meta-training on the MLP (meta-training images)")
plt.show()

# %% [markdown]
# Meta-training took a few minutes. The cell saved a checkpoint with
# `runs.save_checkpoint`: weights, config, history and the meta-optimizer's
# state, enough to resume. From a terminal,
#
# ```bash
# python -m course_lib train learned-optimizer --optimizee mlp --optimizees-per-batch 4 --lr 3e-3 \
#     --seed 1 --steps 150 --out runs/lstm_optimizer_mlp     # add --resume to continue
# ```
#
# runs this same meta-training (the notebook's full-mode settings) in a run
# folder: it checkpoints every few minutes, continues exactly with
# `--resume`, and evaluates the result against the tuned baselines. We load
# the checkpoint back into a fresh network, which is the one used from here
# on.

# %%
mlp_net = lo.LSTMOptimizer(MLP_CONFIG)
payload = runs.load_checkpoint(checkpoint, mlp_net, MLP_CONFIG)
print(f"loaded {checkpoint.name}: {payload['step']} meta-training steps, "
      f"last meta-loss {payload['history'].last('meta_loss'):.4f}")

# %%
mlp_tuned = lo.tune_learning_rates(mlp_train, lo.meta_training_problems(mlp_train, MLP_CONFIG, steps=2), T,
                                   grid=LR_GRID)
mlp_lrs = {name: result["lr"] for name, result in mlp_tuned.items()}
print("tuned learning rates:", {name: f"{lr:.3g}" for name, lr in mlp_lrs.items()})

mlp_test_problems = lo.problem_batch(mlp_test, cl.by_mode(smoke=3, full=16), seed=2024)
mlp_curves = lo.compare_optimizers({"LSTM (learned)": mlp_net}, mlp_lrs, mlp_test, mlp_test_problems, LONG)
print(f"{mlp_test_problems.theta0.shape[0]} fresh MLP problems on held-out images (minibatch loss), "
      "mean ± 95% CI over problems:")
print(lo.comparison_table(mlp_curves, T, [T, LONG]))
figures.plot_mean_losses(mlp_curves, title="MLP 64-20-10 (sigmoid), fresh problems", trained_horizon=T)
plt.show()

# %% [markdown]
# A mixed result, and the paired rows say exactly where. On the objective
# it was meta-trained for, the mean loss over the first $T = 100$ steps, the
# learned optimizer beats all four tuned baselines on fresh problems and held-out
# images (against the best one, Adam: $-0.20 \pm 0.02$). The plot shows why:
# its loss falls much faster over the first few dozen steps. At step 100
# itself Adam's mean is lower, though the paired difference ($+0.035 \pm
# 0.029$) is within the noise. Beyond the horizon Adam pulls ahead ($+0.069
# \pm 0.025$ at $t = 500$), while the LSTM ends level with RMSprop. This is the
# bias built into truncated meta-training over 100 steps: the optimizer is
# rewarded for fast early progress, and nothing tells it what to do after
# step 100. The paper, with far more meta-training, reports its LSTM ahead of
# all baselines on its (28x28) MNIST problem. Ours had 150 steps with 4
# optimizees each, a few CPU minutes.
#
# ### Generalisation, honestly
#
# The learned optimizer was meta-trained on one architecture for 100 steps.
# How far does it carry? As in the paper's figure 5 we change the optimizee:
# **twice as many hidden units** (40), **a second hidden layer** (20-20), and
# **ReLU instead of sigmoid**, and run for $2T$ steps. The LSTM is used as it
# is (no retraining); the baselines get every advantage: their learning rates
# are **re-tuned on each new architecture** (on meta-training images).

# %%
variants = {
    "wider: 64-40-10, sigmoid": dict(hidden=(40,)),
    "deeper: 64-20-20-10, sigmoid": dict(hidden=(20, 20)),
    "ReLU: 64-20-10": dict(activation="relu"),
}
variant_lrs, variant_curves = {}, {}
for title, options in variants.items():
    train_family, test_family = mlp_family("train", **options), mlp_family("test", part="held-out", **options)
    tuned = lo.tune_learning_rates(train_family, lo.meta_training_problems(train_family, MLP_CONFIG, 2), T,
                                   grid=LR_GRID)
    variant_lrs[title] = {name: result["lr"] for name, result in tuned.items()}
    test_problems = lo.problem_batch(test_family, cl.by_mode(smoke=3, full=16), seed=2024)
    variant_curves[title] = lo.compare_optimizers({"LSTM (learned)": mlp_net}, variant_lrs[title], test_family,
                                                  test_problems, 2 * T)
    print(f"{title} (re-tuned lr: " + ", ".join(f"{n} {lr:.3g}" for n, lr in variant_lrs[title].items()) + ")")
    print(lo.comparison_table(variant_curves[title], T, [T, 2 * T]))
    print()

fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
for ax, (title, curves) in zip(axes, variant_curves.items()):
    figures.plot_mean_losses(curves, ax=ax, title=title, trained_horizon=T)
fig.tight_layout()
plt.show()

# %% [markdown]
# * **Wider (40 hidden units): transfers well.** The LSTM has the lowest
#   loss from the first few steps on, by a clear margin (LSTM minus Adam at
#   $t = 100$: $-0.14 \pm 0.02$), and stays ahead at $2T$. Relative to the
#   re-tuned baselines it does even better here than on the architecture
#   it was trained on.
# * **Deeper (two hidden layers): a head start, then a draw.** Its mean loss
#   over $t \le 100$ is 0.89, against 1.33 for Adam and 1.39 for RMSprop,
#   while SGD and momentum hardly leave the starting loss for dozens of
#   steps. By $t = 100$ Adam has caught up (difference within the noise), and
#   at $t = 200$ the LSTM, RMSprop and Adam are level.
# * **ReLU: this is where it breaks**, as the paper found. The learned
#   optimizer loses its advantage even on the objective it was trained for:
#   its mean loss over $t \le 100$ (0.89) is worse than that of momentum,
#   RMSprop and Adam (Adam: 0.52), and at $t = 200$ Adam is clearly ahead
#   (LSTM minus Adam: $+0.16 \pm 0.07$). It does not diverge; it just stops
#   being a good optimizer. The trajectory panels below show the symptom: its
#   loss on each problem jumps from step to step more than any baseline's.
#   Its update rule was shaped by the gradient statistics of sigmoid units,
#   and ReLU units produce different ones.
#
# ### Try it: the trajectory explorer
#
# Pick an optimizee and a horizon: the widget runs the learned optimizer and
# the four tuned baselines on 8 fresh problems and shows every problem's loss
# (thin lines) and the mean (thick line), one panel per optimizer, on a
# shared log axis. The dotted line marks the meta-training horizon. For the
# quadratics the learned optimizer is the one meta-trained on quadratics; for
# every MLP it is the one meta-trained on the sigmoid 64-20-10 MLP. The pure
# function behind it, `figures.compare_trajectories(settings, optimizee, horizon)`
# (`course_lib.teaching.optimizer_figures`), is what the tests call.

# %%
settings = {"10-d quadratic": figures.Setting(quadratics, quad_net, quad_lrs),
            "MLP 64-20-10, sigmoid": figures.Setting(mlp_test, mlp_net, mlp_lrs)}
for title, options in variants.items():
    settings["MLP " + title] = figures.Setting(mlp_family("test", part="held-out", **options), mlp_net, variant_lrs[title])
explorer = figures.trajectory_explorer(settings, horizons=(K, 10 * T, K), value=T)
explorer

# %% [markdown]
# The same function, called directly for one choice, so that this page shows
# a result without a running kernel: the ReLU MLP over $3T$ steps. The mean
# size of the step-to-step jumps of each problem's loss (printed under the
# figure) is largest for the learned optimizer: about 0.20 in $\log_{10}$,
# against 0.14 for Adam and momentum, 0.08 for RMSprop and 0.07 for SGD.

# %%
result = figures.compare_trajectories(settings, "MLP ReLU: 64-20-10", 3 * T)
figures.plot_trajectories(result, trained_horizon=T)
plt.show()
print("step-to-step jumps of each problem's loss, mean |log10 f(θ_t+1) - log10 f(θ_t)| over steps and problems:")
print(", ".join(f"{name} {(curves.log10().diff(dim=0).abs().mean()).item():.3f}"
                for name, curves in result["curves"].items()))

# %% [markdown]
# ### Where this went next: VeLO
#
# The LSTM above was meta-trained in minutes on one small problem family and
# its limits showed quickly. **VeLO** (Metz et al. 2022, "VeLO: Training
# Versatile Learned Optimizers by Scaling Up") asks what happens if learned
# optimizers are scaled the way models are:
#
# * **Architecture**: still a small network that ingests gradients and emits
#   updates, but hierarchical: a per-*tensor* LSTM reads summary statistics of
#   each parameter tensor and generates (as a hypernetwork) the weights of a
#   tiny per-*parameter* MLP that computes each update from per-coordinate
#   features (momenta at several time scales, gradient, parameter value, ...).
# * **Meta-training**: about **four thousand TPU-months** of compute on
#   thousands of diverse tasks (image classifiers, autoencoders, language
#   models, ... with MLPs, convnets, transformers), with gradients of the
#   meta-loss estimated by evolution strategies over long unrolls rather than
#   by truncated backpropagation, which avoids both the truncation bias and
#   the exploding exact meta-gradients we met above.
# * **Results reported**: on the 83 tasks of their VeLOdrome benchmark VeLO,
#   which has *no hyperparameters* to tune, trains faster than
#   learning-rate-tuned baselines and usually beats NAdamW given a thousand
#   trials of hyperparameter tuning per problem; its authors also report its
#   limits, on problems much larger or longer than its meta-training
#   distribution.
#
# The lesson matches this notebook at a much larger scale: a learned
# optimizer is only as general as the distribution of optimizees it was
# meta-trained on. We do not run VeLO here: it is released for JAX, and its
# interest is exactly the scale we cannot reproduce.
#
# ## 2 · A learned objective function
#
# Keep SGD and the update rule; learn **what is minimised**. Let $L_\phi$ be a
# small network that maps the classifier's prediction on an example and the
# example's given label to a number, and train a classifier by SGD on it:
#
# $$\theta_{k+1} = \theta_k - \alpha\, \nabla_\theta \frac{1}{|B_k|}\sum_{(x,\tilde y) \in B_k} L_\phi\big(f_\theta(x), \tilde y\big), \qquad k = 0, \dots, S-1.$$
#
# The outer loop chooses $\phi$ so that the classifier this produces is good
# **on held-out data under the true loss**. With tasks $\mathcal{T}$ drawn
# from a distribution, each with training data $\mathcal{D}^{tr}_\mathcal{T}$
# (labels $\tilde y$, possibly wrong) and clean test data
# $\mathcal{D}^{ts}_\mathcal{T}$, the **bilevel objective** is
#
# $$\min_\phi\ \mathbb{E}_{\mathcal{T}}\Big[\,\mathcal{L}^{CE}\big(\theta_S(\phi);\ \mathcal{D}^{ts}_\mathcal{T}\big)\Big]
#   \quad\text{where } \theta_S(\phi) \text{ is the result of the } S \text{ inner SGD steps on } \mathcal{D}^{tr}_\mathcal{T}.$$
#
# $\phi$ affects $\theta_S$ only through the gradients $\nabla_\theta L_\phi$, so
# here the second derivatives cannot be dropped: we backpropagate through
# all $S$ inner steps with `create_graph=True` (the tests check this
# meta-gradient against finite differences).
#
# **The problem it should solve: label noise.** With *symmetric* noise at rate
# $\eta$, each training label is replaced, with probability $\eta$, by one of
# the other classes chosen uniformly. The cross-entropy $-\log p_\theta(\tilde
# y\mid x)$ is unbounded: an example whose (wrong) label the network finds
# implausible gets a large loss and a gradient that pulls the network towards
# memorising it. Hand-designed robust losses (mean absolute error,
# generalised cross-entropy, ...) bound that pull. Can it be learned from
# tasks instead? The clean test sets are needed **only during
# meta-training**; a new task at meta-test time provides only its noisy
# training labels (its clean test set only scores the result).
#
# **Our $L_\phi$** sees one number per example: $p = p_\theta(\tilde y\mid x)$,
# the predicted probability of the **given** label (as the two features
# $\log p$ and $p$). It is a linear part $a \log p + b\,p$ plus a small tanh
# MLP, initialised to $a=-1$, $b = 0$ and a zero MLP output: **it starts as
# exactly the cross-entropy**. Depending only on $p$ makes it a curve we can
# plot, and the family contains the cross-entropy ($-\log p$), the mean absolute error
# ($\propto 1-p$) and everything between.
#
# **Tasks.** scikit-learn's 1,797 digits (8x8) are split once at random into
# 900 **meta-training images** and 897 **held-out images**. A task: 5 random
# classes in a random label order, 50 noisy training and 20 clean test images
# per class, noise rate $\eta \sim U[0.2, 0.6]$ drawn per task.
# Meta-training tasks come from the meta-training images. Meta-test tasks
# are new in two ways: (a) **new tasks on the held-out digit images**, the
# same kind of data, never seen; (b) **tasks from another dataset**, the
# held-out part of MNIST pooled to 8x8. Both at $\eta = 0, 0.2, 0.4, 0.6$.
# The inner classifier is an MLP 64-32-5 (ReLU), trained for $S = 100$ SGD
# steps on minibatches of 50. Its learning rate $\alpha$ is tuned for the
# cross-entropy on meta-training tasks (by the same outer objective, clean
# held-out cross-entropy), and $L_\phi$ then uses the same $\alpha$.
#
# **Exercise 3: the inner step with a learned loss.** One SGD step of the
# classifiers of $B$ tasks at once. `theta` is `[B, n]` (one flat parameter
# vector per task), `x` is `[B, m, d]` and `y` is `[B, m]`;
# `ll.classifier_logits(theta, x, shapes)` gives the logits `[B, m, C]` and
# `loss_fn(logits, y)` the per-example losses `[B, m]`. Average the losses over
# each task's examples and step every task's classifier by its own gradient.
# The outer loop needs the gradient of the result with respect to $\phi$ (the
# weights of `loss_fn`), which only exists if the inner gradient keeps its
# graph. `ll.inner_train` runs $S$ of these steps on minibatches.

# %%
def inner_sgd_step(loss_fn, theta, x, y, shapes, lr):
    # BEGIN SOLUTION: mean of loss_fn over each task's examples, summed over tasks; grad with create_graph=True; theta - lr * grad
    loss = loss_fn(ll.classifier_logits(theta, x, shapes), y).mean(dim=1).sum()
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    return theta - lr * grad
    # END SOLUTION


checks.check_learned_loss_inner_step(inner_sgd_step)

# %%
digits = data.load_digits()
digit_order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
digits_meta_train = data.LabelledImages(digits.images[digit_order[:900]], digits.labels[digit_order[:900]],
                                        digits.class_names, name="digits, meta-training images")
digits_held_out = data.LabelledImages(digits.images[digit_order[900:]], digits.labels[digit_order[900:]],
                                      digits.class_names, name="digits, held-out images")
print(digits_meta_train, digits_held_out, sep="\n")
LOSS_CONFIG = ll.LearnedLossConfig(ways=5, classifier_hidden=32, inner_steps=100, inner_batch_size=50,
                                   tasks_per_batch=8, meta_lr=3e-4, seed=0)
meta_train_tasks = ll.NoisyLabelTasks(digits_meta_train, ways=5, train_per_class=50, test_per_class=20,
                                      noise=(0.2, 0.6))
task = meta_train_tasks.sample(torch.Generator().manual_seed(0))
wrong = (task.train_y != task.clean_train_y).nonzero().flatten()[:10]
plots.show_images(task.train_x[wrong].reshape(-1, 1, 8, 8), ncols=10, size=1.1,
                  titles=[f"given {int(task.classes[task.train_y[i]])}, true {int(task.classes[task.clean_train_y[i]])}"
                          for i in wrong],
                  suptitle=f"one meta-training task (η = {task.noise_rate.item():.2f}): some of its wrong labels")
plt.show()

ce_tuning = ll.tune_inner_lr(ll.cross_entropy, meta_train_tasks, LOSS_CONFIG, count=cl.by_mode(smoke=8, full=64),
                             seed=10**6)
LOSS_CONFIG.inner_lr = ce_tuning["lr"]
print("cross-entropy: held-out CE by inner learning rate:",
      {lr: round(score, 3) for lr, score in ce_tuning["scores"].items()}, "-> alpha =", ce_tuning["lr"])

# %%
torch.manual_seed(0)
learned_loss = ll.LearnedLoss(LOSS_CONFIG.hidden_size)
loss_history = ll.meta_train_loss(learned_loss, meta_train_tasks, LOSS_CONFIG, cl.by_mode(smoke=3, full=400))
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.2))
plots.plot_history(loss_history, ["meta_loss"], ax=ax_loss, labels=["clean held-out CE after S steps"],
                   title="outer objective (meta-training tasks)")
plots.plot_history(loss_history, ["held_out_accuracy"], ax=ax_acc, labels=["clean held-out accuracy"],
                   title="classifiers trained with L_φ")
plt.show()

# %% [markdown]
# **Meta-test.** At each noise rate, both losses train the same classifiers
# (same tasks, initialisations and minibatches: a paired comparison). We
# report clean test accuracy (mean ± 95% CI over tasks), the paired
# difference (learned minus cross-entropy, in points) and how many of the
# *wrong* training labels the trained classifier reproduces (memorised noise).

# %%
mnist_8x8 = data.LabelledImages(F.adaptive_avg_pool2d(mnist.images[held_out_idx], 8), mnist.labels[held_out_idx],
                                mnist.class_names, name="MNIST held-out part, 8x8")
NOISE_LEVELS = (0.0, 0.2, 0.4, 0.6)
TEST_TASKS = cl.by_mode(smoke=8, full=200)
loss_results = {}
for dataset in (digits_held_out, mnist_8x8):
    print(f"{TEST_TASKS} new tasks per noise level from {dataset.name}; accuracy on clean test images")
    print(f"{'noise':>6s} {'cross-entropy':>14s} {'learned L_phi':>14s} {'difference':>14s}   "
          "wrong labels fitted (CE / L_phi)")
    for noise in NOISE_LEVELS:
        test_tasks = ll.NoisyLabelTasks(dataset, ways=5, train_per_class=50, test_per_class=20, noise=noise)
        ce = ll.evaluate_loss(ll.cross_entropy, test_tasks, LOSS_CONFIG, count=TEST_TASKS, seed=77)
        learned = ll.evaluate_loss(learned_loss, test_tasks, LOSS_CONFIG, count=TEST_TASKS, seed=77)
        loss_results[dataset.name, noise] = (ce, learned)
        diff = evaluation.mean_confidence_interval(learned["accuracy"] - ce["accuracy"])
        fitted = (f"{100 * ce['wrong_labels_fitted'].mean():.1f} % / {100 * learned['wrong_labels_fitted'].mean():.1f} %"
                  if noise > 0 else "-")
        print(f"{noise:6.1f} {evaluation.format_accuracy(*evaluation.mean_confidence_interval(ce['accuracy'])):>14s} "
              f"{evaluation.format_accuracy(*evaluation.mean_confidence_interval(learned['accuracy'])):>14s} "
              f"{100 * diff[0]:+8.1f} ± {100 * diff[1]:.1f}   {fitted}")
    print()

# %%
fig, axes = plt.subplots(1, 4, figsize=(18, 3.6))
for ax, dataset in zip(axes[:2], (digits_held_out, mnist_8x8)):
    for name, index, color in (("cross-entropy", 0, "tab:blue"), ("learned L_φ", 1, "tab:red")):
        stats = [evaluation.mean_confidence_interval(loss_results[dataset.name, n][index]["accuracy"])
                 for n in NOISE_LEVELS]
        ax.errorbar(NOISE_LEVELS, [100 * m for m, _ in stats], yerr=[100 * c for _, c in stats], marker="o",
                    capsize=3, label=name, color=color)
    ax.axhline(20, color="gray", ls=":", label="chance")
    ax.set_xlabel("label noise rate η")
    ax.set_ylabel("clean test accuracy (%)")
    ax.set_title(f"meta-test tasks: {dataset.name}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
ax_curve, ax_weight = axes[2:]

p = torch.logspace(-3, 0, 200)
ce_values, ce_weight = ll.loss_curve(None, p)
learned_values, learned_weight = ll.loss_curve(learned_loss, p)
ax_curve.plot(p, ce_values, color="tab:blue", label="cross-entropy  -log p")
ax_curve.plot(p, learned_values, color="tab:red", label="learned L_φ(p)")
ax_curve.plot(p, 2 * (1 - p), color="gray", ls="--", label="mean absolute error 2(1-p)")
ax_curve.set_xscale("log")
ax_curve.set_xlabel("p = predicted probability of the given label")
ax_curve.set_ylabel("L(p) - L(1)")
ax_curve.set_title("the loss as a function of p", fontsize=10)
ax_curve.legend(fontsize=8)
ax_curve.grid(alpha=0.3)
ax_weight.plot(p, ce_weight, color="tab:blue", label="cross-entropy")
ax_weight.plot(p, learned_weight, color="tab:red", label="learned L_φ")
ax_weight.set_xscale("log")
ax_weight.set_xlabel("p = predicted probability of the given label")
ax_weight.set_ylabel("-dL / d log p")
ax_weight.set_title("how hard each example is pushed", fontsize=10)
ax_weight.legend(fontsize=8)
ax_weight.grid(alpha=0.3)
fig.tight_layout()
plt.show()
shown = torch.tensor([0.001, 0.01, 0.03, 0.1, 0.3, 0.5, 0.9, 0.99])
print("weight -dL/dlog p of the learned loss at p =",
      ", ".join(f"{q:g}: {w:.2f}" for q, w in zip(shown.tolist(), ll.loss_curve(learned_loss, shown)[1].tolist())))

# %% [markdown]
# **On new tasks of the meta-training kind (held-out digit images) the
# learned loss is more robust than the cross-entropy at every noise rate it
# was meta-trained for.** It gains +3.3, +6.9 and +4.7 points of clean
# accuracy at $\eta = 0.2, 0.4, 0.6$ (paired 95% intervals well away from
# zero) and loses nothing without noise ($-0.0 \pm 0.2$). The classifiers it
# trains also reproduce fewer of the wrong labels (at $\eta = 0.4$: 6.7 %
# instead of 10.5 %). **On another dataset the picture is mixed.** On MNIST
# tasks it still helps at $\eta = 0.2$ and $0.4$ (+2.2 and +1.7 points), but
# at $\eta = 0.6$ it is clearly worse ($-5.2 \pm 1.1$). A learned loss is only
# as general as its meta-training tasks, and 60 % noise on MNIST is the
# hardest setting here (cross-entropy reaches 58.9 % there).
#
# **What the curves show.** The third panel plots $L(p) - L(1)$, since a
# constant added to a loss changes nothing. The learned $L_\phi$ (red) is
# flatter than $-\log p$ at small $p$ and steeper near $p = 1$. The last
# panel makes this precise. $-dL/d\log p$ is the weight with which an
# example's log-likelihood gradient enters the update; the cross-entropy
# gives every example weight 1. The learned loss gives examples whose given
# label the network finds implausible ($p$ between about 0.01 and 0.1) a
# weight of only 0.2 to 0.6, and examples it already fits a weight of up to
# 3.9 (printed above). Under label noise the implausible examples are
# disproportionately the mislabelled ones. So the learned loss learns mainly
# from the labels it agrees with and largely ignores the rest. That is the
# idea behind hand-designed robust losses (the mean absolute error, grey,
# also flattens at small $p$; its weight is $2p$) and the "small-loss" trick
# of noisy-label training, found here by the outer loop from data. The same
# mechanism is a plausible reason for the failure at $\eta = 0.6$ on MNIST.
# When early predictions are poor, trusting what the network already believes
# reinforces its mistakes. (There it fits as many wrong labels as the
# cross-entropy, 18.9 %, yet generalises worse.) This reading is our
# interpretation; the notebook does not test it.
#
# ### The same idea in reinforcement learning: MetaGenRL and LPG
#
# In RL the designed objective is a policy-gradient or actor-critic loss, and
# the outer objective is the return the trained agent collects. We do not
# train these here; what they do, and what their papers report:
#
# * **MetaGenRL** (Kirsch, van Steenkiste & Schmidhuber, ICLR 2020,
#   "Improving generalization in meta reinforcement learning using learned
#   objectives"). The learned objective $L_\alpha$ is a small LSTM that reads
#   an agent's trajectory (rewards, done flags, value estimates, the policy's
#   action probabilities) and outputs the loss the policy minimises; a
#   population of agents in different environments trains with it. Like our
#   outer loop it uses **second-order gradients**: the meta-gradient flows
#   through one policy update, and the return after that update is estimated
#   with a learned critic (off-policy, as in DDPG/TD3), which the authors
#   report makes meta-training far more sample-efficient than evolving the
#   objective (as EPG does). Reported result: objectives meta-trained on some
#   continuous-control environments train agents on **entirely different
#   environments** unseen during meta-training, better than meta-RL baselines
#   that learn a black box (RL²) or evolve the loss (EPG), and in some cases
#   better than human-engineered algorithms.
# * **LPG**, the Learned Policy Gradient (Oh et al., NeurIPS 2020,
#   "Discovering reinforcement learning algorithms"). A backward LSTM reads
#   the trajectory and outputs *targets*: for the policy, and for a
#   prediction vector $y$ whose meaning is not specified. So LPG learns both
#   *what to predict* and *how to learn from it*; the paper shows that the
#   discovered $y$ behaves like a value function and that LPG discovers its
#   own bootstrapping. The meta-gradient goes through the agent's updates, as
#   in our bilevel loop. Reported result: meta-trained **only on toy
#   environments** (grid worlds, small MDPs), LPG generalises to Atari games
#   and reaches non-trivial performance there, a striking case of a learned
#   objective transferring far outside its meta-training distribution.
#
# Both confirm the pattern of this section: the less the learned part can
# depend on task identity (our $L_\phi$ sees only one probability; MetaGenRL
# and LPG see only generic trajectory quantities), the better it transfers.
#
# ## 3 · Where these sit: meta-parameters versus learned variables
#
# Notebook 05's table counted, for black-box meta-learners, the
# **meta-parameters** (trained by the outer loop, then fixed while a task is
# learned) and the **learned variables** (what changes while a task is being
# learned), and their ratio, meta-parameters per learned variable. A
# meta-RNN stores everything it learns about a task in its hidden state and
# has many weights per state variable: it fits its meta-training
# distribution easily and generalises poorly beyond it. The same count for
# the two methods of this notebook, with the same convention:

# %%
# NBVAL_CHECK_OUTPUT
rows = []
for name, n in (("LSTM optimizer on a 10-d quadratic", quadratics.num_parameters),
                ("LSTM optimizer on MLP 64-20-10", mlp_train.num_parameters),
                ("LSTM optimizer on MLP 64-40-10", mlp_family("train", hidden=(40,)).num_parameters)):
    counts = lo.variable_counts(lo.LSTMOptimizer(lo.LearnedOptimizerConfig()), n)
    rows.append((name, counts["meta_parameters"], counts["learned_variables"],
                 f"θ: {n:,} + LSTM state: {counts['lstm_state']:,}"))
counts = ll.variable_counts(ll.LearnedLoss(LOSS_CONFIG.hidden_size), LOSS_CONFIG, inputs=64)
rows.append(("learned loss L_φ, classifier 64-32-5", counts["meta_parameters"], counts["learned_variables"],
             "θ of the classifier"))
print(f"{'method':38s} | meta-parameters | learned variables | ratio  | learned variables are")
for name, meta, learned, what in rows:
    print(f"{name:38s} | {meta:15,d} | {learned:17,d} | {meta / learned:6.3f} | {what}")

# %% [markdown]
# * **Learned optimizer.** The meta-parameters are the LSTM's 5,301 weights,
#   whatever the optimizee. The learned variables are the optimizee's own
#   parameters *plus* the LSTM state kept for every coordinate (80 numbers:
#   $h$ and $c$ of two 20-unit layers), so they grow with the problem. On a
#   10-d quadratic the LSTM still has 6.5 meta-parameters per learned
#   variable; on the MLP the ratio is 0.043 (23 learned variables per
#   meta-parameter), and it keeps falling as the optimizee grows. Weight
#   sharing across coordinates is what buys this, the same device that VSML
#   (notebook 07) turns into a general principle. It is also why the
#   optimizer can be run on an MLP of another size at all.
# * **Learned loss.** About 1,200 meta-parameters against the classifier's
#   2,245 weights per task (ratio 0.53). And $L_\phi$ sees a single number
#   per example, so it has no way to store which task or class it is looking
#   at. The price is expressiveness: it can only reshape the loss as a
#   function of $p$, not invent a new learning algorithm.
#
# In both cases most of the learning algorithm (gradient descent, the
# architecture, backpropagation) is still designed by people; that is what
# makes them data-efficient to meta-train and what limits how much they can
# improve on the designed algorithm. Notebooks 07 and 08 move towards the
# other end of the spectrum.
#
# ## What we learned
#
# * **Learned optimizers** keep gradient descent's skeleton,
#   $\theta_{t+1} = \theta_t + g_t$, and learn the update rule: a
#   coordinatewise LSTM with 5,301 shared weights, meta-trained by truncated
#   backpropagation through the optimizee's training. Following the paper,
#   the gradient input is treated as a constant (no second derivatives). Here
#   that approximation also tamed a meta-gradient that grows quickly with the
#   truncation length.
# * **In distribution it is strong, but not uniformly.** On 10-d quadratics
#   it matched or beat every tuned baseline, also at 5 times the trained
#   horizon. On the sigmoid MLP it won the objective it was trained on (the
#   loss over 100 steps) but not the final loss: there Adam was as good at
#   $t = 100$ and better later, a bias of short truncated horizons.
# * **Generalisation is the weak point**: good for a wider network, partial
#   for a deeper one, and gone for ReLU, the paper's finding reproduced.
#   VeLO's answer is scale: thousands of diverse meta-training tasks.
# * **A learned loss** $L_\phi(p)$, meta-trained through $S = 100$ SGD steps on
#   noisy-label tasks, learned to down-weight examples whose label looks
#   implausible. It was more robust than the cross-entropy on new digit tasks
#   at every noise rate, and on MNIST tasks at moderate noise, but worse at 60 %
#   noise on MNIST. MetaGenRL and LPG do the same for RL objectives, at far
#   larger scale.
# * **Both have few meta-parameters per learned variable** (0.043 for the
#   LSTM optimizer on the MLP, 0.53 for the learned loss).
#   That is why they can transfer at all. The price is that most of the
#   learning algorithm is still designed by people.
#
# **Next:** 07 · VSML and SymLA: sharing parameters to fix the variable ratio.
