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
# # 04 · Optimization-based meta-learning: MAML and its family
#
# Notebook 03 fixed the learning rule (class means, a distance) and
# meta-learned an embedding for it. This notebook keeps the most familiar
# learning rule of all, **gradient descent**, and meta-learns where it
# starts. The learner of a task $\mathcal{T}_i$ is a few steps of gradient
# descent on its support set $\mathcal{D}^{tr}_i$, starting from a learned
# initialisation $\theta$:
# $$\phi_i^{0} = \theta, \qquad \phi_i^{s+1} = \phi_i^{s} - \alpha \nabla_{\phi} \mathcal{L}(\phi_i^{s}; \mathcal{D}^{tr}_i),$$
# and the meta-learner chooses $\theta$ so that, after these few steps, the
# loss on the task's query set $\mathcal{D}^{ts}_i$ is small, averaged over
# a meta-batch of $T$ tasks:
# $$\min_\theta\; J(\theta) = \frac{1}{T} \sum_{i=1}^{T} \mathcal{L}\big(\phi_i(\theta); \mathcal{D}^{ts}_i\big).$$
# This is **MAML** (Finn, Abbeel & Levine 2017). Nothing in the network is
# specific to few-shot learning: any model trained by gradient descent can be
# meta-trained this way, for classification, regression or reinforcement
# learning.
#
# 1. **Sinusoid regression**, the first experiment of the paper: MAML's
#    initialisation against a network pretrained on all tasks jointly;
# 2. **the meta-gradient** written out: where the Hessian appears, what the
#    first-order approximation drops; two exercises;
# 3. **batching tasks** with `torch.func` (`grad`, `vmap`, `functional_call`)
#    and a batch norm written by hand;
# 4. **the cost** of second- versus first-order meta-gradients, *measured*;
# 5. **the family**: first-order MAML, Reptile (an exercise), ANIL, Meta-SGD;
# 6. **Omniglot**: a few meta-iterations live, then the shipped checkpoints
#    (made by the library's command line), against the papers;
# 7. **effects** a student should see: the number of inner steps, and the
#    batch-norm question (transductive or not);
# 8. **the inner loop, step by step**, in a widget: MAML's initialisation
#    against the same network without meta-learning.
#
# All of it is in `course_lib/maml/`: the method in `algorithm.py`, top to
# bottom (with the per-task loop in `fast.py`, the cost meter in `cost.py`
# and the sinusoid's test in `sinusoid.py` beside it); the cells show its key
# lines.

# %%
import inspect
import json
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

import course_lib as cl
from course_lib import data, evaluation, maml, registry, runs, runtime
from course_lib.maml import cost as maml_cost
from course_lib.maml import fast as maml_fast
from course_lib.maml import sinusoid as maml_sinusoid
from course_lib.episodes import FastEpisodeSampler, step_generator
from course_lib.teaching import maml_figures
from course_lib.teaching.checks import nb04 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %% [markdown]
# ## 1. The inner loop is plain gradient descent
#
# The network is written as a **function of a dictionary of parameters**
# (`maml.mlp_forward(params, x)`, `maml.conv4_forward(params, x)`), so that
# the adapted parameters $\phi_i$ are just another dictionary. The inner
# loop of every variant in this notebook is this one function: `steps`
# steps of $\phi \leftarrow \phi - \alpha \nabla_\phi \mathcal{L}(\phi;
# \mathcal{D}^{tr})$. The flag `first_order` decides whether the meta-gradient
# may look *through* these steps (section 3).

# %%
print(inspect.getsource(maml.inner_adapt))

# %% [markdown]
# ## 2. Sinusoid regression (Finn et al. 2017, section 5.1)
#
# Each task is a sine wave $y = A \sin(x - b)$ with amplitude
# $A \sim U[0.1, 5]$ and phase $b \sim U[0, \pi]$; a task's data are points
# $x \sim U[-5, 5]$. The learner sees $K = 10$ points of a new sine and must
# predict the whole curve. The model is an MLP 1-40-40-1 (ReLU), the inner
# loop one step of size $\alpha = 0.01$ on the mean squared error, the
# meta-batch 25 tasks, the outer optimizer Adam ($10^{-3}$), as in the paper.
#
# The baseline of the paper's figure is the same network **pretrained on
# all tasks jointly**: ordinary regression on points pooled from many sines.
# Because the phases and amplitudes average out, it learns to predict
# roughly the mean sine, close to zero everywhere, and a few gradient steps
# from there on 10 points do not recover the task's curve.
#
# MAML training on the sinusoid is fast (milliseconds per meta-iteration,
# since the 25 tasks are one `vmap` call), so we train it live. The command
# line trains it with the paper's budget (70,000 meta-iterations, command
# below); when that run is in `data/maml/sinusoid/`, the figure and the
# table use it, and say so in their titles.

# %%
root = runtime.repo_root()
RUNS = (root / "data" / "maml") if root is not None else None
COMMANDS = {  # the papers' settings (a GPU job); a shipped run's own command is in its config.json
    "maml_5w1s": "python -m course_lib train maml --variant maml --ways 5 --shots 1 --out data/maml/maml_5w1s",
    "fomaml_5w1s": "python -m course_lib train maml --variant fomaml --ways 5 --shots 1 --out data/maml/fomaml_5w1s",
    "reptile_5w1s": "python -m course_lib train maml --variant reptile --ways 5 --shots 1 "
                    "--out data/maml/reptile_5w1s",
    "maml_20w1s": "python -m course_lib train maml --variant maml --ways 20 --shots 1 "
                  "--test-settings 20x1,5x1 --out data/maml/maml_20w1s",
    "sinusoid": "python -m course_lib train maml --task sinusoid --device cpu --out data/maml/sinusoid",
}


def shipped_run(name):
    """(module, payload, results) of data/maml/<name>/, or None with the command that makes it."""
    folder = None if RUNS is None else RUNS / name
    if folder is None or not (folder / "checkpoint.pt").is_file():
        print(f"no data/maml/{name}/ checkpoint yet; make it with (minutes on a GPU, add --max-minutes N to cap):\n"
              f"  {COMMANDS[name]}")
        return None
    module, payload = registry.load(folder, device=DEVICE)  # the model its config.json describes, trained
    results = runs.RunFolder(folder).results()
    print(f"loaded data/maml/{name}/: {payload['step']:,} of {module.config.steps:,} meta-iterations"
          + (f", trained on {results['machine'].get('gpu') or results['machine']['device']}" if results else "")
          + f"\n  made by: {json.loads((folder / 'config.json').read_text())['command']}")
    return module, payload, results


# %%
SINE_STEPS = cl.by_mode(smoke=300, full=10000)
sine_config = maml.MAMLConfig(task="sinusoid", steps=SINE_STEPS, log_every=cl.by_mode(smoke=20, full=200))
torch.manual_seed(0)
live_sine = maml.build(sine_config)  # theta, and the jointly trained baseline (live_sine.joint) beside it

start = time.perf_counter()
sine_history = runs.train_loop(maml.trainer(live_sine, sine_config, {}, DEVICE).step, SINE_STEPS, progress=False)
sine_seconds = time.perf_counter() - start
print(f"MAML on sinusoids: {SINE_STEPS:,} meta-iterations (25 tasks each) in {sine_seconds:.0f} s on {DEVICE}, "
      f"and beside them joint pretraining: {SINE_STEPS:,} Adam steps on the same number of tasks")

shipped_sine = shipped_run("sinusoid")
sine_model = shipped_sine[0] if shipped_sine is not None else live_sine
sine_theta = {k: v.detach().cpu() for k, v in sine_model.theta().items()}
sine_joint = {k: v.detach().cpu() for k, v in sine_model.joint.items()}
if shipped_sine is not None:
    sine_source = f"shipped run, {shipped_sine[1]['step']:,} meta-iterations"
else:
    sine_source = f"live run, {SINE_STEPS:,} meta-iterations"

# %% [markdown]
# **The classic figure.** Two new sines, $K = 10$ points each (red). Left:
# MAML's initialisation before adaptation (dashed) and after 1 and 10
# gradient steps on the 10 points. Right: the same for the jointly
# pretrained network. MAML's initialisation is not a good predictor by
# itself (before adaptation its error is that of the pretrained network,
# see the table below), but it sits where *one* gradient step moves it
# onto the task's curve, even between and beyond the 10 points.

# %%
(sx, sy, _, _), shapes = maml.sinusoid_batch(torch.Generator().manual_seed(5), 2, sine_config.shots, 1,
                                              torch.device("cpu"))
figure_tasks = [(float(shapes[i, 0]), float(shapes[i, 1]), sx[i], sy[i]) for i in range(2)]
fig = maml_figures.sinusoid_figure(figure_tasks, {"MAML": sine_theta, "pretrained on all tasks": sine_joint},
                           steps_list=(0, 1, 10), inner_lr=sine_config.inner_lr)
fig.suptitle(f"K = {sine_config.shots} points, step size {sine_config.inner_lr} ({sine_source})", y=1.02)
plt.show()

# %% [markdown]
# **Loss against the number of gradient steps**, on 600 new sines (100
# query points each), mean ± 95% CI. MAML was meta-trained for *one* step,
# yet it keeps improving with more steps and does not overfit the 10 points;
# the pretrained network improves slowly.

# %%
SINE_TASKS = 600
curve_steps = list(range(11))
sine_curves = {
    name: maml_sinusoid.evaluate_regression(params, sine_config, tasks=SINE_TASKS, steps_list=curve_steps, device="cpu")
    for name, params in (("MAML", sine_theta), ("pretrained on all tasks", sine_joint))
}
fig, ax = plt.subplots(figsize=(5.5, 3.4))
for name, results in sine_curves.items():
    means = [results[f"{s} steps"].mean for s in curve_steps]
    cis = [results[f"{s} steps"].ci95 for s in curve_steps]
    ax.errorbar(curve_steps, means, yerr=cis, marker="o", ms=4, capsize=3, label=name)
ax.set_xlabel("gradient steps on the K = 10 points")
ax.set_ylabel("query MSE")
ax.set_yscale("log")
ax.grid(alpha=0.3)
ax.legend()
ax.set_title(f"{SINE_TASKS} test sines ({sine_source})", fontsize=9)
plt.show()
rows = ["| model | 0 steps | 1 step | 10 steps |", "|---|---|---|---|"]
for name, results in sine_curves.items():
    rows.append(f"| {name} | " + " | ".join(f"{results[f'{s} steps'].mean:.3f} ± {results[f'{s} steps'].ci95:.3f}"
                                             for s in (0, 1, 10)) + " |")
display(Markdown(f"**Query MSE on {SINE_TASKS} test sines, K = {sine_config.shots}** ({sine_source}; lower is "
                 "better)\n\n" + "\n".join(rows)))

# %% [markdown]
# ## 3. The meta-gradient, written out
#
# Take one task and one inner step, $\phi = \theta - \alpha \nabla_\theta
# \mathcal{L}^{tr}(\theta)$. The meta-gradient is the chain rule through
# that step:
# $$\nabla_\theta \mathcal{L}^{ts}(\phi(\theta)) = \Big(\frac{\partial \phi}{\partial \theta}\Big)^{\!\top} \nabla_\phi \mathcal{L}^{ts}(\phi)
#   = \big(I - \alpha H\big)\, g, \qquad H = \nabla^2_\theta \mathcal{L}^{tr}(\theta), \quad g = \nabla_\phi \mathcal{L}^{ts}(\phi),$$
# ($H$ is symmetric). With $S$ steps, one such factor per step:
# $\nabla_\theta \mathcal{L}^{ts} = (I - \alpha H_0)(I - \alpha H_1)\cdots(I - \alpha H_{S-1})\, g$
# with $H_s$ the Hessian of the support loss at $\phi^{s}$ and $g$ the
# query gradient at $\phi^{S}$.
#
# * The **Hessian** $H$ has (number of parameters)$^2$ entries, about
#   $10^{10}$ for the Omniglot Conv4; nobody forms it. What is needed is the
#   **Hessian-vector product** $Hg$, which reverse-mode autodiff computes
#   by differentiating the gradient once more, at the cost of about one more
#   backward pass: $Hg = \nabla_\theta\big(\nabla_\theta \mathcal{L}^{tr}(\theta)^\top g\big)$
#   with $g$ held fixed. That is what `create_graph=True` (or
#   `torch.func.grad` of a function that itself calls `grad`) buys: the graph
#   of the inner gradient is kept, and the backward pass of the meta-loss
#   goes through it.
# * **First-order MAML** drops the Hessian terms, $\partial\phi/\partial\theta
#   \approx I$, so the meta-gradient is just $g$, the query gradient at the
#   *adapted* parameters. The inner gradient is detached; nothing of the
#   inner loop is kept for the backward pass.
#
# The cell below checks the identity on a small MLP in double precision:
# MAML's meta-gradient (autograd through `inner_adapt`) equals the
# first-order one minus $\alpha$ times a Hessian-vector product computed
# separately.

# %%
# NBVAL_CHECK_OUTPUT
params = maml.mlp_init((1, 16, 16, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
params = {k: v.requires_grad_() for k, v in params.items()}
(tx, ty, vx, vy), _ = maml.sinusoid_batch(torch.Generator().manual_seed(1), 1, 10, 10, torch.device("cpu"))
tx, ty, vx, vy = (v[0].double() for v in (tx, ty, vx, vy))
alpha = 0.05


def mse(p, x, y):
    return F.mse_loss(maml.mlp_forward(p, x), y)


def meta_gradient(first_order):
    phi = maml.inner_adapt(params, tx, ty, 1, alpha, mse, first_order=first_order, backend="autograd")
    return torch.autograd.grad(mse(phi, vx, vy), list(params.values()))


second_order, first_order = meta_gradient(False), meta_gradient(True)  # first_order = g, the query gradient at phi
support_gradient = torch.autograd.grad(mse(params, tx, ty), list(params.values()), create_graph=True)
hessian_g = torch.autograd.grad(sum((a * g).sum() for a, g in zip(support_gradient, first_order)),
                                list(params.values()))  # H g, by differentiating the gradient once more
flat = lambda tensors: torch.cat([t.reshape(-1) for t in tensors])  # noqa: E731
difference = flat(second_order) - (flat(first_order) - alpha * flat(hessian_g))
print("MAML meta-gradient == g - alpha * H g:", bool(difference.abs().max() < 1e-12))
print(f"size of the dropped term, |alpha H g| / |g| = {float((alpha * flat(hessian_g)).norm() / flat(first_order).norm()):.2f}")

# %% [markdown]
# **Exercise 1: the inner update.** Write one inner step that returns the
# adapted parameters $\phi = \theta - \alpha \nabla_\theta \mathcal{L}$ as a
# new dictionary, *differentiable with respect to* $\theta$: with
# `first_order=False` the gradient must be computed with
# `create_graph=True` (so that $\partial\phi/\partial\theta = I - \alpha H$),
# with `first_order=True` it must be detached ($\partial\phi/\partial\theta
# = I$). The check differentiates a query loss through your $\phi$ and
# compares with both.

# %%
def inner_update(params, loss, lr, first_order):
    # BEGIN SOLUTION: grads = torch.autograd.grad(loss, params.values(), create_graph=...); phi[k] = params[k] - lr * grad
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
    return {k: p - lr * (g.detach() if first_order else g) for (k, p), g in zip(params.items(), grads)}
    # END SOLUTION


checks.check_inner_update(inner_update)

# %% [markdown]
# **Exercise 2: the first-order meta-gradient.** For a meta-batch
# `(sx, sy, qx, qy)` (leading dimension: the tasks), adapt a copy of the
# parameters on each task's support set with `steps` plain gradient steps
# (no graph), take the gradient of the query loss *at the adapted
# parameters*, and average over the tasks. `loss_fn(params, x, y)` is the
# loss of the model.

# %%
def first_order_meta_gradient(params, batch, loss_fn, inner_lr, steps):
    # BEGIN SOLUTION: per task: detached copy, `steps` SGD steps on support; gradient of the query loss at phi; mean over tasks
    sx, sy, qx, qy = batch
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(len(sx)):
        phi = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        for _ in range(steps):
            grads = torch.autograd.grad(loss_fn(phi, sx[i], sy[i]), list(phi.values()))
            phi = {k: (v - inner_lr * g).detach().requires_grad_() for (k, v), g in zip(phi.items(), grads)}
        grads = torch.autograd.grad(loss_fn(phi, qx[i], qy[i]), list(phi.values()))
        total = {k: total[k] + g / len(sx) for k, g in zip(phi, grads)}
    return total
    # END SOLUTION


checks.check_first_order_meta_gradient(first_order_meta_gradient)

# %% [markdown]
# ## 4. All the tasks of a meta-batch at once: `torch.func`
#
# The library writes the objective of **one task** and lets `torch.func`
# do the rest:
#
# * `torch.func.grad(f)` returns a function that computes the gradient of
#   `f`; the inner loop calls it, and because it is itself differentiable,
#   the meta-gradient goes through it (second order) unless the gradient is
#   detached (first order);
# * `torch.func.vmap(f)` maps the per-task function over a leading task
#   dimension: the meta-batch is tensors of shape `[T, N·K, 1, 28, 28]`,
#   one call, no Python loop over tasks;
# * `torch.func.functional_call(module, params, x)` runs an ordinary
#   `nn.Module` with another set of parameters; our networks are written as
#   functions of a parameter dictionary directly, which is the same thing
#   (checked below on an `nn.Sequential` MLP).

# %%
for function in (maml.task_objective, maml.meta_loss):
    print(inspect.getsource(function))

# %%
# NBVAL_CHECK_OUTPUT
net = torch.nn.Sequential(torch.nn.Linear(1, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40), torch.nn.ReLU(),
                          torch.nn.Linear(40, 1))
theta = maml.mlp_init((1, 40, 40, 1), generator=torch.Generator().manual_seed(2))
as_module = {f"{2 * i}.{kind}": theta[f"fc{i}_{kind}"] for i in range(3) for kind in ("weight", "bias")}
x = torch.linspace(-5, 5, 7).unsqueeze(-1)
print("functional_call(nn.Sequential, theta) == mlp_forward(theta):",
      torch.allclose(torch.func.functional_call(net, as_module, (x,)), maml.mlp_forward(theta, x)))
batch = maml.sinusoid_batch(torch.Generator().manual_seed(3), 4, 10, 10, torch.device("cpu"))[0]
batch = tuple(v.double() for v in batch)
theta64 = {k: v.double().requires_grad_() for k, v in theta.items()}
kw = dict(variant="maml", steps=2, inner_lr=0.01, forward=maml.mlp_forward, regression=True)
batched = torch.autograd.grad(maml.meta_loss(theta64, batch, **kw)[0], list(theta64.values()))
looped = torch.autograd.grad(maml_fast.meta_loss_loop(theta64, batch, **kw)[0], list(theta64.values()))
print("vmap over 4 tasks == a Python loop over them (second-order meta-gradient):",
      all(torch.allclose(a, b, atol=1e-12) for a, b in zip(batched, looped)))

# %% [markdown]
# **Batch norm without running averages.** Finn et al.'s Conv4 normalises
# with the statistics of the current batch, in training *and* at test time
# (no running averages are kept). We write batch norm with plain tensor
# operations, so that `vmap` and the second-order meta-gradient go through
# it exactly. `stats_rows` lets the statistics come from the first rows only
# (the support set): that matters in section 8. (Under `vmap`, PyTorch's own
# batch norm gave second-order meta-gradients off by about 1e-2. In a plain
# Python loop over tasks it is exact and faster, so the loop path
# (`course_lib.maml.fast`) uses it, with one backward pass per task so that only one
# task's graph is alive at a time; `speed/maml_peers.py` compares both
# paths with `higher`, `torchopt` and `learn2learn`, results in
# `data/maml/peers_cpu.md`.)

# %%
print(inspect.getsource(maml.batch_norm))

# %% [markdown]
# ## 5. What second order costs: time and memory, measured
#
# The second-order meta-gradient keeps the graph of every inner step for
# the backward pass and differentiates through it (Hessian-vector products);
# first-order MAML keeps only the graph of the query pass; Reptile keeps
# nothing. Below, one meta-gradient (forward through the inner loop and
# backward) on a real Omniglot meta-batch, for 1 and 5 inner steps.
#
# * **time**: the median of a few repetitions, after a warm-up;
# * **memory**: the peak size of the tensors autograd keeps for the backward
#   pass (`maml_cost.SavedTensorMeter`, a `saved_tensors_hooks` that counts
#   each storage once and releases it when the graph is freed). It measures
#   the same thing on every device. On a GPU, the cell also reports
#   `torch.cuda.max_memory_allocated` (everything, parameters and
#   temporaries included). Python's `tracemalloc` would not help on the CPU:
#   it sees only memory allocated through Python, not torch's tensors.

# %%
splits = data.omniglot_splits("vinyals")
meta_train, meta_test = splits["train"], splits["test"]


def episodes(split, ways, shots, queries):
    """Episodes of a split, drawn on DEVICE (notebook 03's sampler; maml.task_batch stacks a meta-batch)."""
    return FastEpisodeSampler(split, ways, shots, queries, device=DEVICE)


print(meta_train, meta_test, sep="\n")

# %%
COST_BATCH = cl.by_mode(smoke=2, full=4)  # tasks per meta-batch: small, to fit a CPU
COST_STEPS = cl.by_mode(smoke=(1, 3), full=(1, 5))
COST_VARIANTS = cl.by_mode(smoke=("maml", "fomaml"), full=("maml", "fomaml", "anil", "metasgd", "reptile"))
cost_batch = maml.task_batch(episodes(meta_train, 5, 1, 15), COST_BATCH, step_generator(0, 0))
costs = {}
for variant in COST_VARIANTS:
    for steps in COST_STEPS:
        config = maml.MAMLConfig(variant=variant, meta_batch=COST_BATCH, inner_steps=steps)
        module = maml.build(config).to(DEVICE)
        batch = cost_batch
        if variant == "reptile":  # Reptile adapts on 10 examples per class (no support/query split)
            batch = maml.task_batch(episodes(meta_train, 5, 1, 9), COST_BATCH, step_generator(0, 0))
        costs[variant, steps] = maml_cost.measure_meta_gradient(module, batch, repeats=cl.by_mode(smoke=1, full=3))
gpu = DEVICE.type == "cuda"
rows = ["| variant | inner steps | ms per meta-gradient | graph kept for backward (MB)"
        + (" | peak GPU memory (MB) |" if gpu else " |"), "|---|---|---|---|" + ("---|" if gpu else "")]
for (variant, steps), cost in costs.items():
    rows.append(f"| {variant} | {steps} | {cost['ms']:.0f} | {cost['graph_mb']:.0f} |"
                + (f" {cost['gpu_peak_mb']:.0f} |" if gpu else ""))
where = torch.cuda.get_device_name(DEVICE) if gpu else f"CPU, {torch.get_num_threads()} thread(s)"
display(Markdown(f"**One meta-gradient on a meta-batch of {COST_BATCH} Omniglot 5-way 1-shot tasks (15 queries "
                 f"per class), Conv4-64, measured on {where} ({MODE} mode)**\n\n" + "\n".join(rows)))

# %% [markdown]
# What to read in the table (the full-mode run on the course's 2-core CPU
# is what the committed notebook shows; your numbers will differ, the
# pattern should not):
#
# * **memory**: second-order MAML's graph grows with the number of inner
#   steps (every step's activations are kept for the Hessian-vector
#   products); first-order MAML's does not (only the query pass is kept);
#   Reptile keeps none;
# * **time**: each extra second-order step adds a forward, a backward and a
#   double-backward, which first order never pays; Reptile's cost is its
#   inner steps alone (it adapts on ten examples per class, with no query
#   pass and no backward through the adaptation);
# * ANIL differentiates through the head only, so its graph grows slowly
#   with the steps; Meta-SGD costs what MAML costs (plus one learning rate
#   per parameter).

# %% [markdown]
# ## 6. The family
#
# **First-order MAML** (`fomaml`, Finn et al. 2017): the meta-gradient is
# $\frac{1}{T}\sum_i \nabla_\phi \mathcal{L}(\phi_i; \mathcal{D}^{ts}_i)$,
# section 3 and exercise 2. In `inner_adapt`, `first_order=True` detaches
# the inner gradient.
#
# **Reptile** (Nichol, Achiam & Schulman 2018) does not split a task into
# support and query at all: it adapts on *all* of a task's data with $k$
# SGD steps, and moves $\theta$ a step $\epsilon$ towards the adapted weights,
# $$\theta \leftarrow \theta + \epsilon \Big(\frac{1}{T}\sum_{i=1}^{T} \phi_i - \theta\Big).$$
# No meta-gradient is backpropagated. With one inner step this would be
# joint training; with $k > 1$ steps, Nichol et al. show that the expected
# update contains the first-order MAML gradient plus a term that favours
# parameters where the gradients of different minibatches of a task agree.
# The library hands $\theta - \frac{1}{T}\sum_i \phi_i$ to Adam as if it were
# a gradient (plain SGD with step $\epsilon$ on it is exactly the rule above):

# %%
print(inspect.getsource(maml.reptile_direction))

# %% [markdown]
# **Exercise 3: the Reptile update.** Given the initial parameters `theta`
# (a dictionary), the adapted parameters of each task of the meta-batch
# (`adapted`, a list of dictionaries) and the step `epsilon`, return the new
# parameters.

# %%
def reptile_update(theta, adapted, epsilon):
    # BEGIN SOLUTION: new[k] = theta[k] + epsilon * (mean over tasks of adapted[i][k] - theta[k])
    return {k: v + epsilon * (torch.stack([phi[k] for phi in adapted]).mean(0) - v) for k, v in theta.items()}
    # END SOLUTION


checks.check_reptile_update(reptile_update)

# %% [markdown]
# **ANIL** (Almost No Inner Loop, Raghu et al. 2020) adapts only the last
# layer in the inner loop; the body is meta-learned but frozen within a task.
# Raghu et al. found it as accurate as MAML on Omniglot and MiniImageNet,
# evidence that MAML's inner loop mostly *reuses* features rather than
# learning new ones. In the library it is `adapt_keys=head_keys(params)`
# in `inner_adapt` (printed below).
#
# **Meta-SGD** (Li et al. 2017) also meta-learns the inner step size, one
# per parameter entry: $\phi = \theta - \boldsymbol\alpha \odot \nabla_\theta
# \mathcal{L}^{tr}$, with $\boldsymbol\alpha$ (as many numbers as $\theta$)
# trained by the same meta-gradient. In the library, `MetaLearner.lrs`
# holds $\boldsymbol\alpha$ and `inner_adapt` uses it through
# `per_param_lr`.

# %%
print(inspect.getsource(maml.head_keys))
print(inspect.getsource(maml.MetaLearner.__init__))

# %% [markdown]
# ## 7. Omniglot: a few meta-iterations live
#
# The Omniglot setting of Finn et al.: the Vinyals split with rotations
# (notebook 03), 28x28 images, a Conv4 with 64 channels and batch norm, one
# inner step of size $\alpha = 0.4$ in meta-training (three at test time),
# 32 tasks per meta-batch, 15 queries per class, Adam $10^{-3}$, 60,000
# meta-iterations. On a CPU a meta-iteration of 4 tasks takes about a
# third of a second (section 5), so the paper's budget (60,000 meta-batches
# of 32 tasks) would take days: a GPU job. Here a few meta-iterations of
# second-order MAML show the loop, with a smaller meta-batch.

# %%
LIVE_ITERATIONS = cl.by_mode(smoke=2, full=40)
LIVE_BATCH = cl.by_mode(smoke=2, full=4)
live_config = maml.MAMLConfig(meta_batch=LIVE_BATCH, steps=LIVE_ITERATIONS, log_every=cl.by_mode(smoke=1, full=4))
torch.manual_seed(0)
live_maml = maml.build(live_config)

start = time.perf_counter()  # the training step of `python -m course_lib train maml`, without the run folder
live_history = runs.train_loop(maml.trainer(live_maml, live_config, {"train": meta_train}, DEVICE).step,
                               LIVE_ITERATIONS, progress=False)
live_seconds = time.perf_counter() - start
print(f"{LIVE_ITERATIONS} meta-iterations of MAML ({LIVE_BATCH} tasks each) in {live_seconds:.0f} s on {DEVICE} "
      f"(batching: {live_config.batching})")
steps_logged, losses = live_history["loss"]
_, accuracies = live_history["query_accuracy"]
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
axes[0].plot(steps_logged, losses, marker="o", ms=3)
axes[0].set_ylabel("query loss after adaptation")
axes[1].plot(steps_logged, [100 * a for a in accuracies], marker="o", ms=3)
axes[1].set_ylabel("query accuracy % (training tasks)")
for ax in axes:
    ax.set_xlabel("meta-iteration")
    ax.grid(alpha=0.3)
fig.suptitle("MAML on Omniglot 5-way 1-shot, the first meta-iterations", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 8. The shipped checkpoints, against the papers
#
# The runs in `data/maml/` were made with the command line of the library
# (today `python -m course_lib train maml ...`: the training step above, in a
# run folder, with checkpoints, `--resume` and a time budget
# `--max-minutes`), which then evaluates the checkpoint on `--test-episodes`
# test episodes (1,000 by default; 15 queries per class for 5-way, 5 for
# 20-way; the same episodes for every run, drawn as in notebook 03), twice:
# with the batch statistics used in training (`bn=query`) and with
# support-set statistics only (`bn=support`, section 9). Each folder holds
# `config.json` (with the command), `checkpoint.pt`, `history.json`,
# `results.json` and `results.md`; `data/maml/README.md` says on which
# machine, with which budget and with which deviations from the papers'
# settings they were trained (the commands are printed below). The cell
# below loads each run and evaluates it again here, on the first test
# episodes of the same list, as a check that the checkpoint is the one the
# numbers came from.

# %%
RUN_NAMES = ["maml_5w1s", "fomaml_5w1s", "reptile_5w1s", "maml_20w1s"]
shipped = {name: shipped_run(name) for name in RUN_NAMES}
shipped = {name: run for name, run in shipped.items() if run is not None}

# %%
RECHECK_EPISODES = cl.by_mode(smoke=3, full=100)


def queries_per_class(ways):
    return 15 if ways <= 5 else 5  # queries per class of the test episodes (20 drawings per character)


recheck = {}
for name, (module, payload, results) in shipped.items():
    ways, shots = module.config.ways, module.config.shots
    start = time.perf_counter()
    sampler = episodes(meta_test, ways, shots, queries_per_class(ways))
    recheck[name] = maml_fast.evaluate_classification(module, sampler, count=RECHECK_EPISODES)
    print(f"{name}: {ways}-way {shots}-shot, {RECHECK_EPISODES} test episodes here: {recheck[name]} "
          f"({time.perf_counter() - start:.0f} s on {DEVICE})")

# %% [markdown]
# **The results table.** "ours" is the command line's evaluation (mean ±
# 95% CI over the number of test episodes in brackets), with the batch
# statistics the papers use
# (transductive, section 9). The papers' numbers: Finn et al. 2017 Table 1
# (MAML and its first-order approximation), Nichol et al. 2018 Table 1
# (Reptile with transduction), Li et al. 2017 (Meta-SGD); the Stanford CS330
# homework asks for at least 97% on 5-way 1-shot. ANIL and Meta-SGD were not
# trained on the GPU (run `python -m course_lib train maml --variant anil ...`).
# Read every row with its training budget: a run stopped by its time limit
# before the papers' number of meta-iterations says so.

# %%
PAPER_ROWS = [  # (run, setting, method, paper accuracy %, source)
    ("maml_5w1s", "5-way 1-shot", "MAML", "98.7 ± 0.4", "Finn et al. 2017"),
    ("fomaml_5w1s", "5-way 1-shot", "first-order MAML", "98.3 ± 0.5", "Finn et al. 2017"),
    ("reptile_5w1s", "5-way 1-shot", "Reptile", "97.68 ± 0.04", "Nichol et al. 2018"),
    ("maml_20w1s", "20-way 1-shot", "MAML", "95.8 ± 0.3", "Finn et al. 2017"),
    ("maml_20w1s", "5-way 1-shot", "MAML (20-way model, first 5 outputs)", "–", ""),
    (None, "5-way 1-shot", "Meta-SGD", "99.53 ± 0.26", "Li et al. 2017"),
    (None, "5-way 1-shot", "ANIL", "–", "Raghu et al. 2020 (MiniImageNet, Omniglot: ≈ MAML)"),
]
lines = ["| method | setting | ours (test episodes) | meta-iterations | trained on | paper | source |",
         "|---|---|---|---|---|---|---|"]
for run, setting, method, paper, source in PAPER_ROWS:
    module, payload, entry = shipped.get(run, (None, None, None))
    if entry is not None and setting not in entry["results"]:
        continue  # this run was not evaluated in that setting (its --test-settings)
    if entry is not None:
        r = entry["results"][setting]
        ours = f"{evaluation.format_accuracy(r['mean'], r['ci95'])} ({r['episodes']:,})"
        budget = (f"{entry['steps_done']:,} of {entry['config']['steps']:,}, {entry['config']['meta_batch']} tasks "
                  f"each ({entry['stopped']})")
        machine = entry["machine"].get("gpu") or entry["machine"]["device"]
    elif payload is not None:  # a checkpoint without results.json: still training, or not evaluated yet
        ours, budget, machine = "not evaluated yet", f"{payload['step']:,} of {module.config.steps:,}", "–"
    else:
        ours, budget, machine = ("not trained yet" if run else "not trained"), "–", "–"
    lines.append(f"| {method} | {setting} | {ours} | {budget} | {machine} | {paper}{' %' if paper != '–' else ''} "
                 f"| {source} |")
lines.append("| CS330 homework bar | 5-way 1-shot | | | | ≥ 97 % | Stanford CS330 |")
protonet_results = (root / "data" / "protonet" / "results.json") if root is not None else None
if protonet_results is not None and protonet_results.is_file():
    stored = json.loads(protonet_results.read_text())["results"].get("5-way 1-shot")
    if stored is not None:
        lines.append(f"| ProtoNet (notebook 03, for comparison) | 5-way 1-shot | "
                     f"{evaluation.format_accuracy(stored['mean'], stored['ci95'])} | | | 98.8 % | Snell et al. 2017 |")
display(Markdown("**Omniglot, Vinyals split with rotations, Conv4-64**\n\n" + "\n".join(lines)))

# %% [markdown]
# ## 9. Effects a student should see
#
# ### How many inner steps?
#
# MAML was meta-trained with one inner step and is tested with three (Finn
# et al. used five of each for 20-way; our CPU-trained 20-way run kept the
# 5-way settings, see `data/maml/README.md`). The command line records the test accuracy after every
# inner step $0, 1, \dots, S$ on its test episodes. At step 0 the
# model is the initialisation itself: its outputs are not tied to any class
# (the labels of an episode are a random permutation), so it is at chance.
# Below, those curves from `results.json`, and one live extension: the 5-way
# MAML model adapted for 10 steps, further than it was trained for.

# %%
fig, ax = plt.subplots(figsize=(6, 3.4))
for name, (module, payload, results) in shipped.items():
    if results is None:
        continue
    setting = f"{module.config.ways}-way {module.config.shots}-shot"
    curve = results["results"][setting].get("accuracy_by_inner_step")
    if curve:
        ax.plot(range(len(curve)), [100 * a for a in curve], marker="o", ms=4,
                label=f"{name} ({setting}, trained with {module.config.inner_steps} step(s))")
EXTRA_STEPS = 10
EXTRA_EPISODES = cl.by_mode(smoke=3, full=100)
inner_model = shipped["maml_5w1s"][0] if "maml_5w1s" in shipped else live_maml.eval()
extra = maml_fast.evaluate_classification(inner_model, episodes(meta_test, 5, 1, 15), count=EXTRA_EPISODES,
                                          inner_steps=EXTRA_STEPS, return_curve=True)
extra_curve = extra.accuracy_by_inner_step
ax.plot(range(EXTRA_STEPS + 1), [100 * a for a in extra_curve], linestyle="--", color="black", marker=".",
        label=f"{'maml_5w1s' if 'maml_5w1s' in shipped else 'live MAML'}, {EXTRA_STEPS} steps, "
              f"{EXTRA_EPISODES} episodes (live)")
ax.axhline(20, color="grey", linewidth=0.8, linestyle=":")
ax.set_xlabel("inner gradient steps at test time")
ax.set_ylabel("query accuracy %")
ax.grid(alpha=0.3)
ax.legend(fontsize=7, loc="lower right")
ax.set_title("test accuracy after each inner step (dotted: 5-way chance)", fontsize=9)
plt.show()
print("live curve:", " ".join(f"{100 * a:.1f}" for a in extra_curve))

# %% [markdown]
# Read the curves for two things: how much of the final accuracy the
# *first* step already gives (the number of steps the model was
# meta-trained for), and whether steps beyond the trained number still help
# or start to hurt. The initialisation was optimised for what happens after
# its training number of steps, not for what happens after ten.

# %% [markdown]
# ### The batch-norm question: transductive or not?
#
# With batch statistics at test time, the prediction for one query depends
# on the *other queries* of the episode: the query set is normalised as a
# batch. That is **transductive** inference: it uses the test inputs
# jointly, and it is what Finn et al.'s code (and Reptile's "transduction"
# row) does. ProtoNet in notebook 03 is evaluated with its batch norm in
# eval mode (running averages from training), so it embeds each query on
# its own; a comparison between the two should say which inference each
# number uses. The library offers three choices for the query pass, `bn=`:
#
# * `query`: statistics of the query set (as in training; transductive);
# * `joint`: statistics of support and query together (transductive);
# * `support`: statistics of the support set only; each query is then
#   classified independently of the others (not transductive).
#
# First the definition, checked: change every query but the first and see
# whether the first one's logits move.

# %%
# NBVAL_CHECK_OUTPUT
probe = maml.conv4_init(5, hidden=8, generator=torch.Generator().manual_seed(0))
probe_episode = episodes(meta_test, 5, 1, 3).sample(torch.Generator().manual_seed(1))
esx, esy, eqx, eqy = (v.cpu() for v in (probe_episode.support_x, probe_episode.support_y, probe_episode.query_x,
                                        probe_episode.query_y))
others_changed = eqx.clone()
others_changed[1:] = eqx[1:].flip(-1)  # mirror every query except the first
for bn in maml.BN_MODES:
    before = maml.query_outputs(maml.conv4_forward, probe, esx, eqx, bn)[0]
    after = maml.query_outputs(maml.conv4_forward, probe, esx, others_changed, bn)[0]
    print(f"bn={bn:8s} the first query's logits depend on the other queries: {not torch.allclose(before, after)}")

# %% [markdown]
# And the accuracy of trained models in the three modes: the 5-way MAML
# model live in all three (on the same test episodes for every mode), and
# the command line's numbers for `query` and `support` of every run. A model trained with query statistics meets, in `support`
# mode, activations normalised by the statistics of 5 images instead of
# 75: the difference is the price of classifying each query on its own
# with a model that was not trained to.

# %%
BN_EPISODES = cl.by_mode(smoke=3, full=100)
live_bn_name = "maml_5w1s, live" if "maml_5w1s" in shipped else f"MAML after {LIVE_ITERATIONS} live meta-iterations"
live_bn_model = shipped["maml_5w1s"][0] if "maml_5w1s" in shipped else live_maml.eval()
live_bn = {bn: maml_fast.evaluate_classification(live_bn_model, episodes(meta_test, 5, 1, 15), count=BN_EPISODES,
                                                 bn=bn)
           for bn in maml.BN_MODES}
lines = ["| model | setting | " + " | ".join(f"bn={bn}" for bn in maml.BN_MODES) + " | episodes |",
         "|---|---|" + "---|" * (len(maml.BN_MODES) + 1)]
lines.append(f"| {live_bn_name} | 5-way 1-shot | " + " | ".join(str(live_bn[bn]) for bn in maml.BN_MODES)
             + f" | {BN_EPISODES} |")
for name, (module, payload, results) in shipped.items():
    stored = results["results"] if results else {}
    for setting in [key for key in stored if " bn=" not in key]:
        cells = {"query": stored[setting], "support": stored.get(f"{setting} bn=support")}
        lines.append(f"| {name} | {setting} | " + " | ".join(
            evaluation.format_accuracy(cells[bn]["mean"], cells[bn]["ci95"]) if cells.get(bn) else "–"
            for bn in maml.BN_MODES) + f" | {stored[setting]['episodes']:,} |")
display(Markdown(f"**Test accuracy by batch-norm mode of the query pass** (live rows on {DEVICE}; every model "
                 "was trained with bn=query; bn=support is the non-transductive column)\n\n" + "\n".join(lines)))

# %% [markdown]
# ## 10. The inner loop, step by step
#
# One test episode, 5-way 1-shot, and two starting points for the *same*
# inner loop (plain gradient descent on the 5 support images, step size
# 0.4): MAML's meta-learned initialisation, and the same network at its
# random initialisation (no meta-learning). `maml_figures.inner_loop_trace` runs the
# loop and records, after every step, the query predictions, the query loss
# and the accuracy (a pure function of the parameters and the episode);
# `maml_figures.inner_loop_figure` draws one step: the support set, two queries of
# each class per model (green: right, red: wrong, with the predicted label)
# and the loss and accuracy curves. First a static figure at the number of
# steps used at test time, then the widget: a slider over the steps (on
# GitHub it is not interactive; run the notebook to use it).

# %%
TRACE_STEPS = 10
widget_model = shipped["maml_5w1s"][0] if "maml_5w1s" in shipped else live_maml.eval()
widget_label = "MAML (data/maml/maml_5w1s)" if "maml_5w1s" in shipped else f"MAML ({LIVE_ITERATIONS} live meta-iterations)"
random_init = maml.MetaLearner(widget_model.config, generator=torch.Generator().manual_seed(1)).to(DEVICE)
widget_episode = episodes(meta_test, 5, 1, 15).sample(torch.Generator().manual_seed(7))
wsx, wsy, wqx, wqy = (widget_episode.support_x, widget_episode.support_y, widget_episode.query_x,
                      widget_episode.query_y)
traces = {label: maml_figures.inner_loop_trace(model.theta(), wsx, wsy, wqx, wqy, TRACE_STEPS,
                                       widget_model.config.inner_lr)
          for label, model in ((widget_label, widget_model), ("random init, same inner loop", random_init))}
wsx, wsy, wqx, wqy = (v.cpu() for v in (wsx, wsy, wqx, wqy))
fig = maml_figures.inner_loop_figure(wsx, wsy, wqx, wqy, traces, step=widget_model.config.test_inner_steps)
plt.show()
for label, trace in traces.items():
    print(f"{label:32s} accuracy by step:", " ".join(f"{100 * a:.0f}" for a in trace.query_accuracy))

# %%
maml_figures.inner_loop_widget(wsx, wsy, wqx, wqy, traces)

# %% [markdown]
# ## Summary
#
# * **MAML** meta-learns an initialisation $\theta$ from which a few steps
#   of ordinary gradient descent solve a new task. The learning algorithm
#   at test time *is* gradient descent; only its starting point (and, for
#   Meta-SGD, its step sizes) is learned.
# * Its **meta-gradient** goes through the inner loop:
#   $(I - \alpha H_0)\cdots(I - \alpha H_{S-1})\, g$, computed with Hessian-vector products
#   (`create_graph=True`, or `torch.func.grad` inside `grad`), never the
#   Hessian itself. **First-order MAML** drops the Hessian terms and
#   **Reptile** drops the query loss too; both keep nothing of the inner
#   loop for the backward pass, so their memory does not grow with the
#   number of inner steps (section 5 measured it). On Omniglot the papers
#   report that the approximations lose little; section 8 puts our runs
#   next to them.
# * **ANIL** adapts the head only, and Raghu et al. found it about as
#   accurate as MAML: the inner loop mostly reuses the features that
#   meta-training learned.
# * **Batch statistics at test time are a choice**: normalising the query
#   set as a batch is transductive; say which one a number uses.
# * `torch.func` turns the per-task code into a batched, second-order
#   meta-gradient: `grad` inside `grad`, `vmap` over the tasks.
#
# Next, notebook 05: drop the structure of gradient descent altogether and
# let a sequence model *be* the learning algorithm.
