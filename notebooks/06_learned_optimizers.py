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
# # 06 · Learned optimizers and learned objective functions
#
# After this notebook you will be able to:
#
# - write a learned optimizer, a coordinatewise LSTM that maps gradients to
#   updates (Andrychowicz et al. 2016), and check it against SGD;
# - meta-train it by truncated backpropagation through time, and explain what
#   truncation and the dropped second derivatives cost;
# - compare it with tuned baselines by paired confidence intervals, inside
#   and outside its meta-training distribution;
# - meta-train a learned loss through $J$ steps of SGD and read from its curve
#   why it resists label noise;
# - count learned variables per meta-parameter for both methods and place
#   them on the spectrum of learned learning algorithms;
# - build a learned optimizer yourself (its update, an unroll, the
#   truncated-BPTT loop), meta-train it in the notebook and measure it against
#   tuned SGD and Adam on held-out quadratics.
#
# Notation: [docs/notation.md](../docs/notation.md)
#
# Notebooks 03 to 05 learned a feature space, an initialisation or a whole
# black-box learner. This one keeps gradient descent,
# $\theta_{t+1} = \theta_t - \alpha\,\nabla_\theta \mathcal{L}(\theta_t)$, and
# learns one of its parts: the update rule (a *learned optimizer*,
# `course_lib.learned_optimizers`) or the objective (a *learned loss*,
# `course_lib.learned_losses`).
#
# 1. The update rule as a recurrent network
# 2. Meta-training by truncated backpropagation through time
# 3. Ten-dimensional quadratics
# 4. The second derivatives the paper drops
# 5. A small MLP on images
# 6. New architectures
# 7. A learned loss
# 8. What the learned loss learned
# 9. Learned objectives elsewhere
# 10. Learned variables per meta-parameter
# 11. Build it: a learned optimizer of your own

# %%
import inspect

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from torch import nn

import course_lib as cl
from course_lib import data, evaluation, runs
from course_lib import learned_losses as ll
from course_lib import learned_optimizers as lo
from course_lib.teaching import optimizer_figures as figures
from course_lib.teaching import plots
from course_lib.teaching.checks import nb06 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %%
# Every network here is tiny (a 20-unit LSTM, MLPs of about 1,500 weights): the arithmetic of a step costs
# less than starting a GPU kernel or a thread, so one CPU thread is the fastest choice, whatever the device.
torch.set_num_threads(1)
CPU = torch.device("cpu")
print(f"this notebook computes on: {CPU}, {torch.get_num_threads()} thread")

# %% [markdown]
# ## 1. The update rule as a recurrent network
#
# SGD, momentum and Adam are hand-designed maps from the gradient history to
# an update. A learned optimizer makes the map a recurrent network $m$ with
# meta-parameters $\omega$ and state $h_t$:
#
# $$\theta_{t+1} = \theta_t + g_t, \qquad
#   \begin{bmatrix} g_t \\ h_{t+1} \end{bmatrix} = m(\nabla_t, h_t; \omega), \qquad
#   \nabla_t = \nabla_\theta f(\theta_t),$$
#
# where $f$ is the loss of the problem being optimized, the *optimizee*. SGD
# is $g_t = -\alpha \nabla_t$ with no state; momentum and Adam keep running
# averages in $h_t$. Andrychowicz et al. (2016, "Learning to learn by gradient
# descent by gradient descent") make $m$ an LSTM and train $\omega$ on a
# distribution of optimizees by minimising the **meta-loss**
#
# $$\mathcal{L}(\omega) = \mathbb{E}_f\Big[\sum_{t=1}^{T} w_t\, f(\theta_t)\Big],$$
#
# summed along the trajectory, so that speed is rewarded too.
#
# **Coordinatewise.** The same small LSTM runs on each coordinate $\theta^i$,
# with its own state $h^i_t$ and the shared $\omega$: a 2-layer, 20-unit LSTM
# optimizes a problem of any size, whatever the order of its coordinates.
#
# **Preprocessing.** Gradients span many orders of magnitude, which networks
# handle badly. The paper (appendix A) feeds each coordinate as two numbers,
#
# $$\nabla \mapsto \begin{cases} \big(\tfrac{\log |\nabla|}{p},\ \mathrm{sign}(\nabla)\big) & |\nabla| \ge e^{-p} \\ (-1,\ e^{p}\nabla) & \text{otherwise} \end{cases}
# \qquad p = 10,$$
#
# and we scale the LSTM's read-out by 0.1 (`output_scale`) so that it starts
# with small steps. `LSTMOptimizer.step(grad, state)` is $m$; `unroll(...)`
# runs the loop for a batch of optimizees.
#
# **Exercise 1: the gradient preprocessing.** Write the map above for a
# gradient tensor of any shape: each coordinate becomes two numbers, stacked
# in a new last dimension (`[...] -> [..., 2]`). Use the natural log and the
# `p` you are given. Beware a gradient of exactly 0: `torch.where` evaluates
# both branches, so keep the log away from 0 (`clamp_min`). The LSTM below
# uses the library's `lo.preprocess_gradient`, which passes the same check.

# %%
import math


def preprocess_gradient(grad, p):
    # BEGIN SOLUTION: give every coordinate two numbers of similar size whatever its magnitude: its scaled log-magnitude and its sign (the other branch when it is tiny)
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
print(f"meta-parameters ω: {sum(p.numel() for p in net.parameters()):,}")
print(f"LSTM state kept per optimizee coordinate: {net.state_size_per_coordinate()} numbers (h and c, 2 layers x 20)")

# %% [markdown]
# **An oracle.** With the fixed rule $g_t = -\alpha\nabla_t$ (`FixedRule`) in
# place of the LSTM, the same loop must *be* SGD: here on 10-dimensional
# quadratics (section 3), against SGD by hand and `torch.optim.SGD`.

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
# ## 2. Meta-training by truncated backpropagation through time
#
# The meta-loss depends on $\omega$ through the whole trajectory
# $\theta_1, \dots, \theta_T$, so its gradient is backpropagation through time
# (BPTT) through the optimizee's training: memory grows with $T$, one
# meta-update per trajectory. **Truncated BPTT** cuts the horizon into pieces
# of $U$ steps: run $U$ steps, take one Adam step on $\omega$ along the
# gradient of that piece's losses, then *detach* $\theta$ and the LSTM state
# (keep their values, drop their history) and go on. We use the paper's
# $T = 100$ and $U = 20$, so five meta-updates per optimizee (Adam,
# $\beta = 0.003$, meta-gradient norm clipped at 1), and $w_t = 1/U$ (the
# paper's $w_t = 1$ gives the same direction). The price is bias: a
# truncation never sees what its updates do more than $U$ steps later.
#
# **The dropped second derivatives.** $\nabla_t$ depends on $\omega$ through
# $\theta_t$, so the exact meta-gradient contains
# $\partial \nabla_t / \partial \omega = \nabla^2 f(\theta_t)\,\partial\theta_t/\partial\omega$,
# Hessians of the optimizee. The paper sets this term to 0: the LSTM's gradient
# *input* is treated as a constant (`unroll(..., second_order=False)`, the
# default, detaches it). Section 4 measures what that changes.
#
# In section 11 you write this loop yourself.

# %% [markdown]
# ## 3. Ten-dimensional quadratics
#
# The paper's first optimizees: $f(\theta) = \lVert W\theta - y \rVert^2$,
# with $W \in \mathbb{R}^{10\times10}$ and $y \in \mathbb{R}^{10}$ drawn from
# $\mathcal{N}(0, 1)$ and $\theta_0 \sim \mathcal{N}(0, 0.01^2)$: a
# `TaskDistribution` of problems, fresh ones at every meta-training iteration.

# %%
T = cl.by_mode(smoke=20, full=100)  # meta-training horizon
K = cl.by_mode(smoke=10, full=20)  # truncation length
QUAD_CONFIG = lo.LearnedOptimizerConfig(horizon=T, unroll=K, optimizees_per_batch=cl.by_mode(smoke=4, full=32),
                                        meta_lr=3e-3, optimizee="quadratic", steps=cl.by_mode(smoke=3, full=200), seed=0)

torch.manual_seed(0)
quad_net = lo.LSTMOptimizer(QUAD_CONFIG)
quad_history = lo.meta_train(quad_net, quadratics, QUAD_CONFIG.steps)
plots.plot_history(quad_history, ["meta_loss", "final_loss"], logy=True,
                   labels=["meta-loss (mean f over the horizon)", f"f(θ_T), T = {T}"],
                   title="meta-training on 10-d quadratics")
plt.show()

# %% [markdown]
# **Tuned baselines.** SGD, momentum (0.9), RMSprop and Adam each get the
# step size $\alpha$ from the grid $10^{-4}, 10^{-3.5}, \dots, 10$ that
# minimises the LSTM's own criterion, the mean loss over $T$ steps, on
# problems of the first meta-training steps. Evaluation uses fresh problems,
# for $5T$ steps. The table's paired rows (LSTM minus each baseline, same
# problems) say how sure we can be.

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


def meta_objective(losses):
    """Per problem, the mean loss over t = 1..T: what meta-training minimises."""
    return losses[1 : T + 1].mean(dim=0)


def paired(curves, other, at=None):
    """LSTM minus `other` on the same problems (mean ± 95% CI): f(θ_at), or the meta-objective for at=None."""
    metric = meta_objective if at is None else (lambda losses: losses[at])
    mean, ci = evaluation.mean_confidence_interval(metric(curves["LSTM (learned)"]) - metric(curves[other]))
    return f"${mean:+.2f} \\pm {ci:.2f}$" + (" (within the noise)" if abs(mean) <= ci else "")


def strongest_baseline(curves):
    return min((name for name in curves if name != "LSTM (learned)"), key=lambda n: meta_objective(curves[n]).mean())


quad_best = strongest_baseline(quad_curves)
display(Markdown(f"LSTM minus {quad_best}, the strongest baseline, on the same problems: "
                 f"{paired(quad_curves, quad_best)} in mean loss over $t \\le {T}$ (the meta-objective), "
                 f"{paired(quad_curves, quad_best, T)} at $t = {T}$ and {paired(quad_curves, quad_best, LONG)} "
                 f"at $t = {LONG}$."))

# %% [markdown]
# The learned optimizer has the lowest mean loss of the five, at the
# meta-training horizon and five times beyond. It wins clearly on what it was
# meta-trained for, the loss along the way; at a single step its lead is
# small. (Meta-training is not smooth, see the first curve; we keep the final
# $\omega$.)
#
# ## 4. The second derivatives the paper drops
#
# How much does dropping $\partial\nabla_t/\partial\omega$ change the
# meta-gradient? The exact one against the paper's, for the trained optimizer
# on the fresh problems, over truncations of 1, 5 and $U$ steps:

# %%
def truncation_meta_gradient(steps, second_order):
    quad_net.zero_grad()
    losses, _, _ = lo.unroll(quad_net, quadratics, quad_test, quad_test.theta0,
                             quad_net.init_state(quad_test.theta0), 0, steps, second_order=second_order)
    lo.meta_loss_of(losses).backward()
    return torch.cat([p.grad.flatten() for p in quad_net.parameters()])


gradient_comparison = {}
for steps in sorted({1, 5, K}):
    exact, first_order = truncation_meta_gradient(steps, True), truncation_meta_gradient(steps, False)
    cosine = F.cosine_similarity(exact, first_order, dim=0).item()
    gradient_comparison[steps] = (cosine, (first_order.norm() / exact.norm()).item())
    print(f"truncation of {steps:2d} steps: cosine(exact, first-order) = {cosine:.3f}, "
          f"|first-order| / |exact| = {gradient_comparison[steps][1]:.4f}")
cosine, norm_ratio = gradient_comparison[K]
display(Markdown(f"Over a truncation of $U = {K}$ steps the exact meta-gradient's norm is {1 / norm_ratio:,.3g} times "
                 f"the first-order one's, and the cosine between them is {cosine:.2f}."))

# %% [markdown]
# Over one step the two are identical ($\theta_0$, hence $\nabla_0$, does not
# depend on $\omega$); over longer truncations they part, in size and
# direction. The exact gradient multiplies $U$ Jacobians
# $\partial\theta_{t+1}/\partial\theta_t = I + \frac{\partial g_t}{\partial \nabla_t}\nabla^2 f(\theta_t) + \dots$,
# each containing the Hessian, and for an optimizer that takes large steps the
# product grows quickly with $U$. Metz et al. (2019, "Understanding and
# correcting pathologies in the training of learned optimizers") show that
# such gradients can explode and the meta-loss surface turn chaotic. Dropping
# the term is not only cheaper: it gives a much smaller, if biased, gradient,
# the one we trained with.
#
# ## 5. A small MLP on images
#
# The paper's second optimizee is an MLP with 20 sigmoid hidden units on MNIST
# (minibatches of 128, $T = 100$). To keep meta-training small we pool the
# MNIST test digits to $8\times8$: an MLP 64-20-10. A seeded split gives 8,000
# **meta-training images** (meta-training, tuning) and 2,000 **held-out
# images** (evaluation). An optimizee is an initialisation and its own
# minibatch stream, the same for every optimizer.

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
                                       meta_lr=3e-3, optimizee="mlp", steps=cl.by_mode(smoke=2, full=150), seed=1)
torch.manual_seed(1)
mlp_net = lo.LSTMOptimizer(MLP_CONFIG)
meta_optimizer = torch.optim.Adam(mlp_net.parameters(), lr=MLP_CONFIG.meta_lr)
mlp_history = lo.meta_train(mlp_net, mlp_train, MLP_CONFIG.steps, meta_optimizer=meta_optimizer)
checkpoint = cl.runtime.cache_dir() / "checkpoints" / f"06_lstm_optimizer_mlp_{MODE}.pt"
runs.save_checkpoint(checkpoint, mlp_net, MLP_CONFIG, history=mlp_history, optimizer=meta_optimizer,
                     step=MLP_CONFIG.steps)
plots.plot_history(mlp_history, ["meta_loss", "final_loss"], logy=True,
                   labels=["meta-loss (mean f over the horizon)", f"f(θ_T), T = {T}"],
                   title="meta-training on the MLP (meta-training images)")
plt.show()

# %% [markdown]
# The cell saved the learned optimizer with `runs.save_checkpoint` (weights,
# config, history and the meta-optimizer's state, enough to continue its
# meta-training); a fresh network loaded from that file is the one used from
# here on.

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
mlp_best = strongest_baseline(mlp_curves)
display(Markdown(f"LSTM minus {mlp_best}, the strongest baseline, on the same problems: "
                 f"{paired(mlp_curves, mlp_best)} in mean loss over $t \\le {T}$, "
                 f"{paired(mlp_curves, mlp_best, T)} at $t = {T}$ and {paired(mlp_curves, mlp_best, LONG)} "
                 f"at $t = {LONG}$. The LSTM was meta-trained for {MLP_CONFIG.steps} iterations of "
                 f"{MLP_CONFIG.optimizees_per_batch} optimizees."))

# %% [markdown]
# A mixed result. On the objective it was meta-trained for, the mean loss over
# the first $T$ steps, the learned optimizer beats all four tuned baselines:
# its loss falls much faster early on. By $t = T$ the best baseline has caught
# up, and beyond it pulls ahead: the bias of meta-training over $T$ steps,
# which rewards fast early progress and says nothing about later steps. The
# paper, with far more meta-training, reports its LSTM ahead of all baselines
# on 28x28 MNIST.
#
# ## 6. New architectures
#
# How far does an optimizer meta-trained on one architecture carry? As in the
# paper's figure 5 we change the optimizee: **twice as many hidden units**,
# **a second hidden layer**, **ReLU instead of sigmoid**, and run $2T$ steps.
# The LSTM is used as it is; the baselines' step sizes are **re-tuned on each
# new architecture**.

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

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, (title, curves) in zip(axes, variant_curves.items()):
    figures.plot_mean_losses(curves, ax=ax, title=title, trained_horizon=T)
fig.tight_layout()
plt.show()

lines = [f"| optimizee | mean f over $t \\le {T}$: LSTM | the same, strongest baseline | "
         f"LSTM minus Adam at $t = {T}$ | at $t = {2 * T}$ |", "|---|---|---|---|---|"]
for title, curves in variant_curves.items():
    best = strongest_baseline(curves)
    lines.append(f"| {title} | {meta_objective(curves['LSTM (learned)']).mean():.2f} | "
                 f"{best}: {meta_objective(curves[best]).mean():.2f} | {paired(curves, 'Adam', T)} | "
                 f"{paired(curves, 'Adam', 2 * T)} |")
display(Markdown("\n".join(lines)))

# %% [markdown]
# * **Wider: transfers well.** The LSTM leads from the first few steps on and
#   stays ahead at $2T$, by more than on its own architecture.
# * **Deeper: a head start, then a draw.** Its mean loss over $t \le T$ is far
#   below every baseline's, but Adam catches up by $t = T$, and at $2T$ the
#   LSTM, RMSprop and Adam are level.
# * **ReLU: this is where it breaks**, as the paper found. The LSTM loses even
#   on its meta-objective, and at $2T$ Adam is clearly ahead. It does not
#   diverge; its rule, shaped by the gradients of sigmoid units, just stops
#   being good.
#
# **Try it.** Pick an optimizee and a horizon: the widget runs the learned
# optimizer and the tuned baselines on 8 fresh problems, one panel each: every
# problem's loss (thin), the mean (thick), the meta-training horizon (dotted).
# It calls `figures.compare_trajectories(settings, optimizee, horizon)`.

# %%
settings = {"10-d quadratic": figures.Setting(quadratics, quad_net, quad_lrs),
            "MLP 64-20-10, sigmoid": figures.Setting(mlp_test, mlp_net, mlp_lrs)}
for title, options in variants.items():
    settings["MLP " + title] = figures.Setting(mlp_family("test", part="held-out", **options), mlp_net, variant_lrs[title])
explorer = figures.trajectory_explorer(settings, horizons=(K, 10 * T, K), value=T)
explorer

# %% [markdown]
# The same function for one choice, readable without a kernel: the ReLU MLP
# over $3T$ steps, with the mean step-to-step jump of each problem's loss.

# %%
result = figures.compare_trajectories(settings, "MLP ReLU: 64-20-10", 3 * T)
fig, grid = plt.subplots(2, 3, figsize=(11, 6), sharey=True)
grid.flat[-1].set_visible(False)  # five optimizers, six places
figures.plot_trajectories(result, axes=list(grid.flat[:5]), trained_horizon=T)
plt.show()
jumps = {name: curves.log10().diff(dim=0).abs().mean().item() for name, curves in result["curves"].items()}
display(Markdown("Mean step-to-step jump of each problem's loss, $\\lvert \\log_{10} f(\\theta_{t+1}) - "
                 "\\log_{10} f(\\theta_t) \\rvert$ over steps and problems: "
                 + ", ".join(f"{name} {jump:.3f}" for name, jump in jumps.items()) + "."))

# %% [markdown]
# On the ReLU MLP the learned optimizer's loss jumps most from step to step.
#
# **Where this went next: VeLO** (Metz et al. 2022) scales learned optimizers
# up: a per-tensor LSTM generates the weights of a tiny per-parameter MLP that
# computes each update, meta-trained with about four thousand TPU-months on
# thousands of diverse tasks, by evolution strategies over long unrolls (no
# truncation bias, no exploding gradients). Its authors report that, with no
# hyperparameters to tune, it trains faster than learning-rate-tuned baselines
# on their 83 benchmark tasks, and fails on problems much larger or longer than
# its meta-training ones: a learned optimizer is as general as its optimizees.
#
# ## 7. A learned loss
#
# Keep SGD and its update rule; learn **what is minimised**. A small network
# $L_\omega$ maps the classifier's prediction on an example and its given
# label $\tilde y$ to a number, and SGD trains a classifier on it, over
# minibatches $\mathcal{B}_j$:
#
# $$\theta_{j+1} = \theta_j - \alpha\, \nabla_\theta \frac{1}{|\mathcal{B}_j|}\sum_{(x,\tilde y) \in \mathcal{B}_j} L_\omega\big(f_\theta(x), \tilde y\big), \qquad j = 0, \dots, J-1.$$
#
# The outer loop chooses $\omega$ so that this classifier is good **on
# held-out data under the true loss**. Each task $\mathcal{T}$ has a support
# set $\mathcal{S}$ with labels $\tilde y$, possibly wrong, and a clean query
# set $\mathcal{Q}$; the **bilevel objective** is
#
# $$\min_\omega\ \mathbb{E}_{\mathcal{T}}\Big[\,\mathcal{L}^{CE}\big(\theta_J(\omega);\ \mathcal{Q}\big)\Big],
#   \qquad \theta_J(\omega) \text{: the } J \text{ inner steps on } \mathcal{S}.$$
#
# $\omega$ reaches $\theta_J$ only through $\nabla_\theta L_\omega$, so here the
# second derivatives cannot be dropped: we backpropagate through all $J$
# inner steps with `create_graph=True`.
#
# **The problem: label noise.** Symmetric noise at rate $\eta$ replaces each
# training label, with probability $\eta$, by another class chosen uniformly.
# The cross-entropy $-\log p_\theta(\tilde y\mid x)$ is unbounded: a wrong
# label the network finds implausible gets a large loss, whose gradient pulls
# the network towards memorising it. Hand-designed robust losses (mean
# absolute error, generalised cross-entropy) bound that pull; can the bound be
# learned from tasks? Clean query sets are needed only in meta-training; a new
# task brings only its noisy labels.
#
# **Our $L_\omega$** sees one number per example, $p = p_\theta(\tilde y\mid x)$,
# the predicted probability of the **given** label (as features $\log p$ and
# $p$): a linear part $a \log p + b\,p$ plus a small tanh MLP, initialised to
# $a=-1$, $b = 0$ and a zero MLP output, so **it starts as exactly the
# cross-entropy**. A function of $p$ alone, it is a curve we can plot, in a
# family that holds $-\log p$, the mean absolute error ($\propto 1-p$) and
# everything between.
#
# **Tasks.** scikit-learn's 8x8 digits are split once into 900
# **meta-training images** and 897 **held-out images**. A task: 5 random
# classes in a random label order, 50 noisy training and 20 clean test images
# per class, $\eta \sim U[0.2, 0.6]$ drawn per task. The classifier is an MLP
# 64-32-5 (ReLU), trained for $J = 100$ SGD steps on minibatches of 50, with
# the step size $\alpha$ tuned for the cross-entropy (by the outer objective),
# which $L_\omega$ then shares.
#
# **Exercise 2: the inner step with a learned loss.** One SGD step of the
# classifiers of $B$ tasks at once: `theta` is `[B, n]`, `x` is `[B, m, d]`,
# `y` is `[B, m]`; `ll.classifier_logits(theta, x, shapes)` gives the logits
# `[B, m, C]` and
# `loss_fn(logits, y)` the per-example losses `[B, m]`. Average the losses over
# each task's examples and step every task's classifier by its own gradient.
# The outer loop needs the gradient of the result with respect to $\omega$
# (the weights of `loss_fn`), which exists only if the inner gradient keeps
# its graph. `ll.inner_train` runs $J$ such steps on minibatches.

# %%
def inner_sgd_step(loss_fn, theta, x, y, shapes, lr):
    # BEGIN SOLUTION: step every task's classifier against the gradient of its own mean learned loss, and keep that step differentiable with respect to omega
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
plots.plot_history(loss_history, ["meta_loss"], ax=ax_loss,
                   labels=[f"clean held-out CE after J = {LOSS_CONFIG.inner_steps} steps"],
                   title="outer objective (meta-training tasks)")
plots.plot_history(loss_history, ["held_out_accuracy"], ax=ax_acc, labels=["clean held-out accuracy"],
                   title="classifiers trained with L_ω")
plt.show()

# %% [markdown]
# ## 8. What the learned loss learned
#
# **Meta-test** tasks are new in two ways: (a) **held-out digit images**, the
# same kind of data; (b) **another dataset**, the held-out part of MNIST pooled
# to 8x8. At each $\eta = 0, 0.2, 0.4, 0.6$ both losses train the same
# classifiers (same tasks, initialisations, minibatches). The table gives
# clean test accuracy (mean ± 95% confidence interval over tasks), the paired
# difference (learned minus cross-entropy, in points) and the share of
# *wrong* training labels the classifier reproduces.

# %%
mnist_8x8 = data.LabelledImages(F.adaptive_avg_pool2d(mnist.images[held_out_idx], 8), mnist.labels[held_out_idx],
                                mnist.class_names, name="MNIST held-out part, 8x8")
NOISE_LEVELS = (0.0, 0.2, 0.4, 0.6)
TEST_TASKS = cl.by_mode(smoke=8, full=200)
loss_results = {}
for dataset in (digits_held_out, mnist_8x8):
    print(f"{TEST_TASKS} new tasks per noise level from {dataset.name}; accuracy on clean test images")
    print(f"{'noise':>6s} {'cross-entropy':>14s} {'learned L_ω':>14s} {'difference':>14s}   "
          "wrong labels fitted (CE / L_ω)")
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
fig, axes = plt.subplots(2, 2, figsize=(11, 8))
for ax, dataset in zip(axes[0], (digits_held_out, mnist_8x8)):
    for name, index, color in (("cross-entropy", 0, "tab:blue"), ("learned L_ω", 1, "tab:red")):
        stats = [evaluation.mean_confidence_interval(loss_results[dataset.name, n][index]["accuracy"])
                 for n in NOISE_LEVELS]
        ax.errorbar(NOISE_LEVELS, [100 * m for m, _ in stats], yerr=[100 * c for _, c in stats], marker="o",
                    capsize=3, label=name, color=color)
    ax.axhline(20, color="gray", ls=":", label="chance")
    ax.set_xlabel("label noise rate η")
    ax.set_ylabel("clean test accuracy (%)")
    ax.set_title(f"meta-test tasks: {dataset.name}", fontsize=11)
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
ax_curve, ax_weight = axes[1]

p = torch.logspace(-3, 0, 200)
ce_values, ce_weight = ll.loss_curve(None, p)
learned_values, learned_weight = ll.loss_curve(learned_loss, p)
ax_curve.plot(p, ce_values, color="tab:blue", label="cross-entropy  -log p")
ax_curve.plot(p, learned_values, color="tab:red", label="learned L_ω(p)")
ax_curve.plot(p, 2 * (1 - p), color="gray", ls="--", label="mean absolute error 2(1-p)")
ax_curve.set_xscale("log")
ax_curve.set_xlabel("p = predicted probability of the given label")
ax_curve.set_ylabel("L(p) - L(1)")
ax_curve.set_title("the loss as a function of p", fontsize=11)
ax_curve.legend(fontsize=9)
ax_curve.grid(alpha=0.3)
ax_weight.plot(p, ce_weight, color="tab:blue", label="cross-entropy")
ax_weight.plot(p, learned_weight, color="tab:red", label="learned L_ω")
ax_weight.set_xscale("log")
ax_weight.set_xlabel("p = predicted probability of the given label")
ax_weight.set_ylabel("-dL / d log p")
ax_weight.set_title("how hard each example is pushed", fontsize=11)
ax_weight.legend(fontsize=9)
ax_weight.grid(alpha=0.3)
fig.tight_layout()
plt.show()
shown = torch.tensor([0.001, 0.01, 0.03, 0.1, 0.3, 0.5, 0.9, 0.99])
print("weight -dL/dlog p of the learned loss at p =",
      ", ".join(f"{q:g}: {w:.2f}" for q, w in zip(shown.tolist(), ll.loss_curve(learned_loss, shown)[1].tolist())))

# %% [markdown]
# **On held-out digits the learned loss beats the cross-entropy at every noise
# rate it was meta-trained for**, loses nothing without noise, and memorises
# fewer wrong labels. **On MNIST the picture is mixed**: it helps at moderate
# noise but is clearly worse at $\eta = 0.6$, the hardest setting. A learned
# loss is as general as its meta-training tasks.
#
# **What the curves show.** Lower left, $L(p) - L(1)$ (constants do not
# matter): $L_\omega$ is flatter than $-\log p$ at small $p$, steeper near
# $p = 1$. Lower right, $-dL/d\log p$: the weight with which an example's
# log-likelihood gradient enters the update. The cross-entropy gives every
# example weight 1; $L_\omega$ gives examples whose label the network finds
# implausible a weight well below 1, and those it already fits one well above
# 1 (printed under the figure). Under label noise the implausible examples are
# mostly the mislabelled ones, so $L_\omega$ learns from the labels it agrees
# with: the idea of robust losses (the mean absolute error, grey, has weight
# $2p$) and of the "small-loss" trick, found by the outer loop. The same
# mechanism may explain, untested, the failure at $\eta = 0.6$ on MNIST: when
# early predictions are poor, trusting them reinforces mistakes (it memorises
# as many wrong labels as the cross-entropy there, yet generalises worse).
#
# ## 9. Learned objectives elsewhere
#
# Our $L_\omega$ weights each example by a function of its loss. Two
# supervised methods learn such weights, two RL methods whole objectives (not
# run here):
#
# * **Learning to Reweight Examples** (Ren et al., ICML 2018) has no weighting
#   network: at every step it weights each example of the minibatch by how
#   much up-weighting it would lower, after a look-ahead SGD step, the loss on
#   a small clean validation set (negative weights clipped to zero): our
#   bilevel gradient, taken online in one training run, not meta-learned
#   across tasks.
# * **Meta-Weight-Net** (Shu et al., NeurIPS 2019) learns the mapping: an MLP
#   maps an example's loss, $-\log p$, to its weight (a curve like our lower
#   right panel), updated alongside the classifier through a look-ahead step
#   on a small clean meta-set. The authors report the shapes hand-designed
#   schemes assume: weights falling with the loss under label noise, rising
#   under class imbalance.
# * **MetaGenRL** (Kirsch, van Steenkiste & Schmidhuber, ICLR 2020): an LSTM
#   reads an agent's trajectory (rewards, value estimates, action
#   probabilities) and outputs the policy's loss. Like our outer loop it uses
#   **second-order gradients**, through one policy update, with a learned
#   critic estimating the return after it. Objectives meta-trained on a few
#   continuous-control environments train agents on **unseen, different
#   environments**, better than a black-box meta-learner (RL²) or an evolved
#   loss (EPG).
# * **LPG**, the Learned Policy Gradient (Oh et al., NeurIPS 2020): an LSTM
#   reads the trajectory and outputs *targets* for the policy and for a
#   prediction of unspecified meaning, so LPG learns *what to predict* and *how
#   to learn from it* (the prediction comes to behave like a value function).
#   Meta-trained **only on toy environments**, it reaches non-trivial scores on
#   Atari games.
#
# The pattern: the less the learned part can depend on task identity ($L_\omega$
# sees one probability, Meta-Weight-Net one loss, MetaGenRL and LPG generic
# trajectory quantities), the better it transfers.
#
# ## 10. Learned variables per meta-parameter
#
# Notebook 05 counted **meta-parameters** $\lvert V_M \rvert$ (set by the
# outer loop, then frozen) and **learned variables** $\lvert V_L \rvert$
# (what changes while a task is learned). A meta-RNN has few learned variables
# per meta-parameter, $\lvert V_L \rvert / \lvert V_M \rvert$: a small hidden
# state driven by many weights, which fits its meta-training distribution
# easily and generalises poorly beyond it. The same count here:

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
rows.append(("learned loss L_ω, classifier 64-32-5", counts["meta_parameters"], counts["learned_variables"],
             "θ of the classifier"))
print(f"{'method':36s} | meta-parameters | learned variables | learned variables per meta-parameter | "
      "learned variables are")
for name, meta, learned, what in rows:
    print(f"{name:36s} | {meta:15,d} | {learned:17,d} | {learned / meta:36.3g} | {what}")

# %%
ratio = {name: learned / meta for name, meta, learned, _ in rows}
(quad_row, mlp_row, wide_row, loss_row), meta_weights = rows, rows[0][1]
display(Markdown(f"The LSTM optimizer has {meta_weights:,} meta-parameters, the same for every optimizee, and "
                 f"{ratio[quad_row[0]]:.2f} learned variables per meta-parameter on a 10-d quadratic, "
                 f"{ratio[mlp_row[0]]:.0f} on the MLP 64-20-10 and {ratio[wide_row[0]]:.0f} on the MLP 64-40-10. "
                 f"The learned loss has {loss_row[1]:,} meta-parameters and {ratio[loss_row[0]]:.1f} learned "
                 "variables per meta-parameter."))

# %% [markdown]
# * **Learned optimizer.** Its learned variables are the optimizee's
#   parameters *plus* the LSTM state of every coordinate, so they grow with the
#   problem while $\omega$ stays the same. Weight sharing across coordinates
#   buys this, the device VSML (notebook 07) makes a principle; it is also why
#   the optimizer runs on an MLP of another size at all.
# * **Learned loss.** Its learned variables are the classifier's weights, one
#   set per task. Seeing one number per example, $L_\omega$ cannot store which
#   task or class it is looking at; the price is that it can only reshape the
#   loss as a function of $p$, not invent a learning algorithm.

# %% [markdown]
# ## 11. Build it: a learned optimizer of your own
#
# Now build sections 1 and 2 yourself, at a size that meta-trains within the
# notebook: a **one-layer** coordinatewise LSTM, meta-trained by
# truncated BPTT on the 10-d quadratics of section 3, then tested on the
# held-out quadratics of section 3 against tuned SGD and Adam (the step sizes
# tuned there). You write three functions, each followed by a check:
#
# - **A.** `learned_update`: the update rule $m$ for one step;
# - **B.** `unroll`: $K$ steps of it from where the last truncation ended,
#   and the meta-loss of those steps;
# - **C.** `meta_train_iteration`: one batch of optimizees trained for $T$
#   steps, one meta-update per truncation.
#
# The network $m$ is given: one `nn.LSTMCell` that reads the two features of a
# coordinate and a linear read-out that gives that coordinate's step. Its
# state is a list with one `(h, c)` pair, one row per coordinate.

# %%
class CoordinatewiseLSTM(nn.Module):
    """m(features, state; omega): every row is one coordinate of theta, through the same LSTM cell; the
    read-out, scaled down, is that coordinate's step."""

    def __init__(self, hidden_size=20, output_scale=0.1, preprocess_p=10.0):
        super().__init__()
        self.cell = nn.LSTMCell(2, hidden_size)
        self.readout = nn.Linear(hidden_size, 1)
        self.hidden_size, self.output_scale, self.preprocess_p = hidden_size, output_scale, preprocess_p

    def init_state(self, theta):
        """A zero state for every coordinate of theta: a list with one (h, c) pair of [theta.numel(), hidden]."""
        zeros = theta.new_zeros(theta.numel(), self.hidden_size)
        return [(zeros, zeros)]

    def forward(self, features, state):
        """features [coordinates, 2] -> (a step per coordinate [coordinates], the new state)."""
        h, c = self.cell(features, state[0])
        return self.output_scale * self.readout(h).squeeze(-1), [(h, c)]


print(f"meta-parameters ω of the one-layer network: {sum(p.numel() for p in CoordinatewiseLSTM().parameters()):,}")

# %% [markdown]
# **A. The learned update.** `learned_update(net, grad, state)` gets the
# gradients of a batch of optimizees, `grad` `[B, n]`, and returns the update
# (same shape) and the network's new state. Every coordinate is one row for
# `net`, in the order of `grad.reshape(-1)`, which is also the order of the
# state's rows; a row's two features are your preprocessing of Exercise 1,
# with `p = net.preprocess_p`. Without it the network would see raw gradients,
# which span many orders of magnitude. The update is the network's output as it is:
# $\theta_{t+1} = \theta_t + \text{update}$, the network learns the sign.

# %%
def learned_update(net, grad, state):
    # BEGIN SOLUTION: one row per coordinate of the gradient, its preprocessed features in, the network's step out, back in the gradient's shape
    features = preprocess_gradient(grad.reshape(-1), net.preprocess_p)  # [B * n, 2]
    update, state = net(features, state)
    return update.reshape(grad.shape), state
    # END SOLUTION


checks.check_learned_update(learned_update)

# %% [markdown]
# **B. An unroll.** `unroll(net, family, problems, theta, state, t0, K)` takes
# $K$ steps from $\theta_{t_0}$ and the state: at each step the gradient of
# $f$ at $\theta_t$ (`family.loss(problems, theta, t)` gives the losses
# `[B]`, one per optimizee; the gradient of their sum gives each optimizee its
# own), the learned update, $\theta_{t+1} = \theta_t + \text{update}$. It
# returns the **meta-loss**, the mean of
# $f(\theta_{t_0+1}), \dots, f(\theta_{t_0+K})$ over the steps and the
# optimizees, and where it ended: $\theta_{t_0+K}$ and the state. Points to
# think about:
#
# - The meta-gradient reaches $\omega$ through every update of the
#   truncation, so $\theta$ stays connected to its history *inside* the
#   unroll.
# - At a truncation's start $\theta$ is a plain tensor ($\theta_0$, or
#   detached by the previous truncation): autograd differentiates $f$ only
#   with respect to tensors that require gradients.
# - Whether the gradient *input* carries a graph is your choice: the paper
#   treats it as a constant (section 4 shows why); the check accepts both and
#   says which you chose. If a loss you differentiate with respect to $\theta$
#   is also part of the meta-loss, backward will need its graph a second time.
# - Why the mean along the unroll and not only $f(\theta_{t_0+K})$? The
#   optimizer should be fast, not only end well, and every step's update then
#   gets a direct signal.

# %%
def unroll(net, family, problems, theta, state, t0, K):
    # BEGIN SOLUTION: K learned steps that stay connected to omega; the meta-loss averages the optimizee losses reached after each step
    if not theta.requires_grad:
        theta = theta.detach().requires_grad_(True)
    losses = []
    for t in range(t0, t0 + K):
        (grad,) = torch.autograd.grad(family.loss(problems, theta, t).sum(), theta)  # a constant: first order
        update, state = learned_update(net, grad, state)
        theta = theta + update
        losses.append(family.loss(problems, theta, t + 1))
    return torch.stack(losses).mean(), theta, state
    # END SOLUTION


checks.check_unroll(unroll)

# %% [markdown]
# **C. Truncated BPTT.** `meta_train_iteration(net, family, problems,
# meta_optimizer, T, K, max_norm)` trains the batch `problems` from
# `problems.theta0` and a fresh state for $T$ steps, in truncations of $K$
# steps (the $U$ of section 2). After each truncation: one meta-update (zero
# the gradients, backward, clip the meta-gradient's norm at `max_norm`, step),
# then cut the history of $\theta$ and of the state (keep their values) before
# the next truncation goes on from them. Return the meta-losses, one float per
# truncation.

# %%
def meta_train_iteration(net, family, problems, meta_optimizer, T, K, max_norm):
    # BEGIN SOLUTION: one meta-update per truncation; the next truncation starts from the values where this one ended, without their history
    theta, state = problems.theta0, net.init_state(problems.theta0)
    meta_losses = []
    for t0 in range(0, T, K):
        meta_loss, theta, state = unroll(net, family, problems, theta, state, t0, K)
        meta_optimizer.zero_grad()
        meta_loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), max_norm)
        meta_optimizer.step()
        meta_losses.append(meta_loss.item())
        theta, state = theta.detach(), [(h.detach(), c.detach()) for h, c in state]
    return meta_losses
    # END SOLUTION


checks.check_truncated_meta_training(meta_train_iteration)

# %% [markdown]
# **Compare with the reference.** The library's `unroll` (it returns every
# loss of the truncation, and can drop the meta-graph for evaluation) and its
# meta-training step, which sections 3 and 5 used:

# %%
print(inspect.getsource(lo.unroll))
print(inspect.getsource(lo.trainer))

# %% [markdown]
# **Meta-train and measure.** The cell below meta-trains your network on fresh
# quadratics at every iteration, with the settings of section 3 (Adam on
# $\omega$, truncations of $K$ steps over a horizon of $T$), then runs it
# without a meta-graph on the held-out quadratics of section 3, beside tuned
# SGD and Adam. **The bar:** on the held-out problems, your optimizer's mean
# loss over $t \le T$ (what it was meta-trained for) should be below tuned
# Adam's, and its loss at $t = T$ below tuned SGD's.

# %%
BUILD_STEPS = cl.by_mode(smoke=3, full=200)  # meta-training iterations, fresh optimizees each
BUILD_CONFIG = lo.LearnedOptimizerConfig(horizon=T, unroll=K, optimizees_per_batch=cl.by_mode(smoke=4, full=32),
                                         meta_lr=3e-3, optimizee="quadratic", seed=0)
MAX_NORM = 1.0  # clip each meta-gradient's norm


class YourRule:
    """Your update rule in the interface of the library's evaluation (lo.compare_optimizers)."""

    def __init__(self, net):
        self.net = net

    def init_state(self, theta):
        return self.net.init_state(theta)

    def step(self, grad, state):
        return learned_update(self.net, grad, state)


torch.manual_seed(0)
your_net = CoordinatewiseLSTM()
your_meta_optimizer = torch.optim.Adam(your_net.parameters(), lr=BUILD_CONFIG.meta_lr)
your_meta_losses = []
for iteration in cl.runtime.progress_bar(range(BUILD_STEPS), desc="meta-train your LSTM on 10-d quadratics"):
    problems = lo.meta_training_batch(quadratics, BUILD_CONFIG, iteration)  # the same draws as section 3's
    your_meta_losses.append(sum(meta_train_iteration(your_net, quadratics, problems, your_meta_optimizer, T, K,
                                                     MAX_NORM)) / (T // K))

your_curves = lo.compare_optimizers({"your LSTM": YourRule(your_net)}, {name: quad_lrs[name] for name in ("SGD", "Adam")},
                                    quadratics, quad_test, T)
your_curves["library LSTM"] = quad_curves["LSTM (learned)"][: T + 1]
print(f"{quad_test.theta0.shape[0]} held-out quadratics, mean ± 95% CI over problems:")
print(lo.comparison_table(your_curves, T, [T], reference="your LSTM"))
fig, (ax_meta, ax_test) = plt.subplots(1, 2, figsize=(11, 3.6))
ax_meta.plot(your_meta_losses)
ax_meta.set_yscale("log")
ax_meta.set_xlabel("meta-training iteration")
ax_meta.set_ylabel("mean meta-loss of its truncations")
ax_meta.set_title("meta-training your LSTM", fontsize=11)
ax_meta.grid(alpha=0.3)
for name, color in (("your LSTM", "tab:red"), ("library LSTM", "tab:gray"), ("SGD", "tab:blue"), ("Adam", "tab:purple")):
    ax_test.plot(your_curves[name].mean(dim=1), label=name, color=color, lw=2.2 if name == "your LSTM" else 1.4)
ax_test.set(yscale="log", xlabel="optimizer step t", ylabel="mean loss f(θ_t)")
ax_test.set_title("held-out 10-d quadratics", fontsize=11)
ax_test.grid(alpha=0.3)
ax_test.legend(fontsize=9)
fig.tight_layout()
plt.show()

yours = {name: (meta_objective(curves).mean().item(), curves[T].mean().item()) for name, curves in your_curves.items()}
reached = yours["your LSTM"][0] < yours["Adam"][0] and yours["your LSTM"][1] < yours["SGD"][1]
display(Markdown(
    f"Your LSTM: mean loss over $t \\le {T}$ {yours['your LSTM'][0]:.3f} (tuned Adam {yours['Adam'][0]:.3f}), "
    f"loss at $t = {T}$ {yours['your LSTM'][1]:.3f} (tuned SGD {yours['SGD'][1]:.3f}, tuned Adam "
    f"{yours['Adam'][1]:.3f}): " + ("**the bar is reached.**" if reached else
    "**below the bar.** The usual causes: the meta-loss of the last step only (the optimizer is not rewarded "
    "for being fast), no clipping of the meta-gradient (one huge meta-gradient undoes what Adam learned), the "
    "second-order term kept (its meta-gradient is far larger and noisier, section 4), raw gradients as "
    "features. With the few iterations of a quick test run this is expected.")))

# %% [markdown]
# **Open question.** Your optimizer was meta-trained on 10-dimensional
# quadratics with $W \sim \mathcal{N}(0, 1)$. Test it, as it is, on
# quadratics of dimension 100 (`lo.QuadraticFamily(dim=100)`), and on a family
# of your own with another conditioning (for instance $W$ with singular values
# spread over several orders of magnitude), with SGD and Adam re-tuned on each
# new family (`lo.tune_learning_rates`). When does the learned optimizer stop
# beating them, and what in its inputs could, or could not, tell it that the
# problem changed? Does meta-training on a mixture of families fix it, and
# what does that cost on the original quadratics?

# %% [markdown]
# ## What we learned

# %%
def gain(dataset, noise):
    """Learned loss minus cross-entropy, clean test accuracy in points (paired, ± 95% CI)."""
    ce, learned = loss_results[dataset.name, noise]
    mean, ci = evaluation.mean_confidence_interval(learned["accuracy"] - ce["accuracy"])
    return f"${100 * mean:+.1f} \\pm {100 * ci:.1f}$"


display(Markdown(
    f"A **learned optimizer** keeps gradient descent's skeleton, $\\theta_{{t+1}} = \\theta_t + g_t$, and learns "
    f"the update rule: a coordinatewise LSTM with {meta_weights:,} shared weights, meta-trained by truncated "
    f"backpropagation with its gradient input treated as a constant, which here also avoided an exact "
    f"meta-gradient {1 / gradient_comparison[K][1]:,.3g} times as large over $U = {K}$ steps. "
    f"On its meta-objective, the mean loss over $T = {T}$ steps, it beat the strongest tuned baseline on fresh "
    f"quadratics (LSTM minus {quad_best}: {paired(quad_curves, quad_best)}) and on the sigmoid MLP (minus "
    f"{mlp_best}: {paired(mlp_curves, mlp_best)}), but not at $t = {LONG}$ on the MLP "
    f"({paired(mlp_curves, mlp_best, LONG)}): the bias of a short meta-training horizon. It carried to a wider "
    f"MLP, partly to a deeper one, and not to ReLU. "
    f"A **learned loss** meta-trained through $J = {LOSS_CONFIG.inner_steps}$ SGD steps learned to down-weight "
    f"examples whose label looks implausible: {gain(digits_held_out, 0.4)} points of clean accuracy over the "
    f"cross-entropy on new digit tasks at $\\eta = 0.4$, but {gain(mnist_8x8, 0.6)} on MNIST at $\\eta = 0.6$. "
    f"Both have many learned variables per meta-parameter ({ratio[mlp_row[0]]:.0f} for the LSTM optimizer on the "
    f"MLP, {ratio[loss_row[0]]:.1f} for the learned loss): our hypothesis for why they transfer at all, which "
    f"notebook 09 puts to the test."))

# %% [markdown]
# On the spectrum of learned learning algorithms (learned optimizers →
# learned initialisations → learned objectives → black boxes with symmetries
# (VSML, SymLA) → black-box sequence models), the learned optimizer is the
# first point and the learned loss the third. Each learns one part of gradient
# descent and keeps the rest designed by people: that makes them cheap to
# meta-train, and limits how far they can move from the designed algorithm.
# Notebooks 07 and 08 move towards the other end.
#
# **Next:** 07 · VSML and SymLA: sharing parameters to fix the variable ratio.

# %% [markdown] jupyter={"source_hidden": true}
# ## How this was made
#
# No run folder: everything meta-trains live on a laptop CPU, five to ten
# minutes in full mode (200 iterations of 32 quadratics, 150 of 4 MLPs, 400
# meta-steps of 8 noisy-label tasks), plus one to two minutes for section
# 11's assignment (200 iterations of 32 quadratics with the one-layer LSTM).
# Section 5 pools the digits to 8x8 to keep the MLP's meta-training that short.
# Section 5's checkpoint is `checkpoints/06_lstm_optimizer_mlp_<mode>.pt` in
# the course cache. The same
# MLP meta-training runs in a run folder that checkpoints, resumes exactly
# (`--resume`) and evaluates against the tuned baselines:
#
# ```bash
# python -m course_lib train learned-optimizer --optimizee mlp --optimizees-per-batch 4 --meta-lr 3e-3 \
#     --seed 1 --steps 150 --out runs/lstm_optimizer_mlp
# ```
#
# The student copy (`make student`) has `raise NotImplementedError` in place of
# each exercise's solution.
