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
# # 07 · VSML: sharing the learner's weights to flip the variable ratio
#
# A black-box meta-learner (notebook 05) fits many meta-parameters and learns
# each task in a small state, so it tends to fit the meta-training
# distribution instead of learning a general algorithm. Notebook 06 went to
# the other end: keep gradient descent and learn a part of it. **VSML**,
# *variable-shared meta learning* (Kirsch & Schmidhuber, "Meta Learning
# Backpropagation and Improving It", NeurIPS 2021), takes the middle road:
# replace every weight of a layer by a tiny LSTM, all the LSTMs sharing one
# set of meta-parameters $\omega$.
#
# After this notebook you will be able to:
#
# * count a learner's meta-parameters $\lvert V_M \rvert$ and learned
#   variables $\lvert V_L \rvert$, and explain why sharing raises the variable
#   ratio $\lvert V_L \rvert / \lvert V_M \rvert$;
# * build a VSML layer (its messages, its error feedback, one online step),
#   meta-train it from scratch and compare it with tuned online SGD;
# * explain backprop cloning and measure how closely a clone follows SGD,
#   in one layer and through a hidden layer;
# * compare a meta-learned learning algorithm with tuned SGD, Adam and a
#   Meta-RNN on unseen datasets and input sizes, saying what is held equal;
# * explain the symmetries SymLA gives a reinforcement-learning agent, and
#   test them on bandits with more arms than it was trained on.
#
# Notation: [docs/notation.md](../docs/notation.md).
#
# 1. The variable ratio made concrete
# 2. The VSML layer
# 3. VSML can implement backprop: backprop cloning
# 4. VSML learns its own learning algorithm
# 5. Fast weights: in between
# 6. SymLA: symmetric learning agents
# 7. Step through one learning stream
# 8. What a meta-step costs
# 9. Build it: a VSML layer, meta-trained from scratch

# %%
import dataclasses
import inspect
import json
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display

import course_lib as cl
from course_lib import bandits, models, runtime, sequence_learners, symla, vsml
from course_lib import registry
from course_lib.teaching import sequence_figures
from course_lib.teaching import vsml_cost, vsml_figures
from course_lib.teaching.checks import nb07 as checks

MODE, DEVICE = cl.notebook_setup(seed=0)

# %%
torch.set_num_threads(1)  # one example at a time: the arithmetic per step is tiny, so one CPU thread
CPU = torch.device("cpu")
ROOT = runtime.repo_root()
RUNS = (ROOT / "data" / "vsml") if ROOT is not None else None


def load_run(name):
    """``(model, results)`` of the run folder data/vsml/<name>, or None when this checkout lacks it."""
    folder = RUNS / name if RUNS is not None else None
    if folder is None or not (folder / "checkpoint.pt").is_file() or not (folder / "results.json").is_file():
        print(f"data/vsml/{name} is missing from this checkout (data/vsml/README.md says how to make it)")
        return None
    model, _ = registry.load(folder, CPU)
    return model, json.loads((folder / "results.json").read_text())


RUN = {name: load_run(name) for name in ("scratch", "metarnn", "clone", "fastweight", "clone_2layer", "scratch_2layer")}
CONFIG = vsml.VSMLConfig(**RUN["scratch"][1]["config"]) if RUN["scratch"] else vsml.VSMLConfig(meta_batch=32)

# %% [markdown]
# ## 1. The variable ratio made concrete
#
# A learner adapts to a task only through its **learned variables**
# $V_L$, the state that changes while the task is learned; its
# **meta-parameters** $V_M$ are fitted by the outer loop and then frozen.
# The **variable ratio** $\lvert V_L \rvert / \lvert V_M \rvert$ counts
# learned variables per meta-parameter.
#
# The task throughout: an **online 5-way classification stream**. A task
# picks 5 classes of a dataset, labels them in a random order, and shows
# $T = 100$ examples one at a time, each projected to 16 numbers by the
# task's own random matrix (no two tasks share features). At step $t$ the
# learner predicts $y_t$ from $x_t$ and the past, *then* it is told $y_t$.
# Two learners of this stream:
#
# * **Meta-RNN** (notebook 05's model): an LSTM with 128 hidden units reading
#   $[x_t, \text{onehot}(y_{t-1}), e_{t-1}]$, and a linear head; $e_{t-1}$ is
#   the error of the previous prediction (section 2). It learns a task in its
#   state $(h_t, c_t)$.
# * **VSML**: a dense layer $16 \to 5$ whose $16 \times 5$ weights are tiny
#   LSTMs (16 hidden units) sharing the same $\omega$. It learns a task in
#   the 80 cells' states.
#
# `vsml.count_variables` counts both, also for the fast-weight learner of
# section 5 and for SGD on a linear classifier (one meta-parameter: the
# learning rate).

# %%
# NBVAL_CHECK_OUTPUT
NAMES = {"vsml": "VSML", "metarnn": "Meta-RNN (LSTM 128)", "fastweight": "fast weights (32 x 32)",
         "linear_sgd": "SGD on a linear layer"}
counts = {size: vsml.count_variables(CONFIG, inputs=size) for size in (16, 784)}
print("the variable ratio |V_L| / |V_M|: learned variables per meta-parameter")
print(f"{'learner':24s} | inputs | meta-parameters | learned variables | learned variables per meta-parameter")
for size, table in counts.items():
    for name, row in table.items():
        print(f"{NAMES[name]:24s} | {size:6d} | {row['meta_parameters']:15,d} | {row['learned_variables']:17,d} | "
              f"{row['ratio_learned_per_meta']:10.3g}")

# %%
SHORT = {"vsml": "VSML", "metarnn": "Meta-RNN", "fastweight": "fast\nweights", "linear_sgd": "SGD\n(linear)"}
fig, ax = plt.subplots(figsize=(9.5, 3.8))
rows = [(f"{SHORT[n]}\n{s} inputs", r) for s, t in counts.items() for n, r in t.items()]
x = np.arange(len(rows))
ax.bar(x - 0.2, [r["meta_parameters"] for _, r in rows], 0.4, label="meta-parameters |V_M|\n(fixed during a task)")
ax.bar(x + 0.2, [r["learned_variables"] for _, r in rows], 0.4, label="learned variables |V_L|\n(the state)")
ax.set_yscale("log")
ax.set_xticks(x, [name for name, _ in rows], fontsize=9)
ax.set_ylabel("count (log scale)")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
ax.set_title("VSML has more learned variables than meta-parameters")
plt.show()

lstm05 = sequence_learners.build(sequence_learners.SequenceConfig(model="lstm"))  # notebook 05's 2-way LSTM
lstm05_meta, lstm05_learned = models.count_parameters(lstm05), lstm05.learned_variables(4)
v16, v784, rnn = counts[16]["vsml"], counts[784]["vsml"], counts[16]["metarnn"]
display(Markdown(
    f"**What the counts show.** The Meta-RNN has {rnn['ratio_learned_per_meta']:.4f} learned variables per "
    f"meta-parameter ({rnn['learned_variables']} state values, {rnn['meta_parameters']:,} weights); notebook 05's "
    f"LSTM, with its image encoder, has {lstm05_learned} and {lstm05_meta:,} ({lstm05_learned / lstm05_meta:.4f}). "
    f"VSML has {v16['ratio_learned_per_meta']:.2f} at 16 inputs and {v784['ratio_learned_per_meta']:.0f} at 784 "
    f"(raw MNIST pixels) with the same {v16['meta_parameters']:,} meta-parameters: its state grows with the layer, "
    "its meta-parameters do not. That is the direction of SGD (one learning rate, thousands of weights), reached "
    "by a learned learner. The Meta-RNN at 784 inputs needs a larger input matrix and new meta-training."))

# %% [markdown]
# ## 2. The VSML layer
#
# *Why:* to raise the ratio without giving up a learned algorithm, share one
# small learner across every connection of a network.
#
# *The idea:* give each connection $(a, b)$ of a dense layer, from input unit
# $a$ to output unit $b$, a state $s_{ab} = (h_{ab}, c_{ab})$, and update all
# states with the **same** LSTM. Cell $ab$ hears a forward message
# $f_a \in \mathbb{R}^{d_m}$ from its input unit and a backward message
# $g_b \in \mathbb{R}^{d_m}$ from its output unit ($d_m = 8$), for a few
# micro-ticks per example (2 here); then the units send messages on,
# **averaged over their cells** ($n_{\text{in}}$ inputs, $n_{\text{out}}$
# outputs):
# $$s_{ab} \leftarrow \operatorname{LSTM}_\omega\big(s_{ab};\ f_a, g_b\big),\qquad
#   \overrightarrow{m}_b = \frac{1}{n_{\text{in}}}\sum_{a} h_{ab} W_{\text{out}},\qquad
#   \overleftarrow{m}_a = \frac{1}{n_{\text{out}}}\sum_{b} h_{ab} W_{\text{back}}.$$
# In our one-layer learner $f_a = (x_a, 0, \dots, 0)$, the prediction is
# $\hat z_b = \overrightarrow{m}_b[0]$, read **before** $y_t$ is given, and the
# backward message carries feedback about the previous example,
# $g_b = (\text{onehot}(y_{t-1})_b,\ e_{t-1,b},\ 0, \dots)$ with
# $e_{t-1} = \operatorname{softmax}(\hat z_{t-1}) - \text{onehot}(y_{t-1})$:
# the gradient of the cross-entropy with respect to the logits, exactly what
# backprop sends into the layer. ($\overleftarrow{m}_a$ goes nowhere with one
# layer; with two, section 3 gives it backprop's job.) Because the messages
# are means and $\omega$ does not mention $n_{\text{in}}$ or
# $n_{\text{out}}$, **the same $\omega$ runs a layer of any size**, and
# permuting the input units only permutes their cells.
#
# *The code:* a micro-tick is **one LSTM cell call over the whole grid of
# cells** (one batched matmul `h @ W_h`); the input part of the gates is
# computed once per unit and broadcast. The shapes follow the paper's
# letters: `[T, A, B, H]` is tasks in the meta-batch, $n_{\text{in}}$,
# $n_{\text{out}}$ and the cell size $H$; `M` is $d_m$. You write this layer
# yourself in section 9; until then the notebook uses the library's
# (`vsml.VSMLLearner`).
#
# Meta-training ("from scratch") minimises the online cross-entropy along the
# stream, $\mathcal{L}(\omega) = \mathbb{E}_{\mathcal{T}}\,
# \frac{1}{T}\sum_{t=1}^{T} -\log \operatorname{softmax}(\hat z_t)_{y_t}$, by
# backpropagation through the stream (Adam with step size $\beta$, gradient
# clipping). A good $\omega$ is one whose cells *learn fast*.
#
# **Exercise: the variable count.** Sharing is what flips the variable
# ratio. For one VSML layer with `inputs` $= n_{\text{in}}$, `outputs`
# $= n_{\text{out}}$, `message_size` $= d_m$ and `hidden` $= H$, count the
# meta-parameters (two input maps $d_m \times 4H$, $W_h$: $H \times 4H$, the
# bias: $4H$, $W_{\text{out}}, W_{\text{back}}$: $H \times d_m$) and the
# learned variables (the states $(h_{ab}, c_{ab})$ of all cells).

# %%
def count_layer_variables(inputs, outputs, message_size, hidden):
    # BEGIN SOLUTION: the meta-parameters are ONE small LSTM's weights, used by every connection; the learned variables are each connection's own state
    meta = 2 * message_size * 4 * hidden + hidden * 4 * hidden + 4 * hidden + 2 * hidden * message_size
    learned = inputs * outputs * 2 * hidden
    return meta, learned
    # END SOLUTION


checks.check_vsml_variable_count(count_layer_variables)

# %% [markdown]
# What sharing buys: the same count if every connection had its **own** LSTM
# (per-connection weights), next to the shared one.

# %%
print("learned variables per meta-parameter, one layer with 5 outputs, d_m = 8, H = 16")
for inputs in (16, 784):
    meta, learned = count_layer_variables(inputs, 5, 8, 16)
    print(f"{inputs:4d} inputs: shared LSTM {learned / meta:8.2f}   one LSTM per connection "
          f"{learned / (meta * inputs * 5):6.3f}")

# %% [markdown]
# Two properties of the layer, checked on an untrained learner: permuting the
# input features of a whole stream changes no prediction, and the same
# $\omega$ reads 16 or 784 inputs.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
probe = vsml.VSMLLearner(CONFIG)
g = torch.Generator().manual_seed(0)
xs, ys = torch.randn(2, 20, 16, generator=g), torch.randint(0, 5, (2, 20), generator=g)
perm = torch.randperm(16, generator=g)
with torch.no_grad():
    same = torch.allclose(vsml.run_stream(probe, xs[:, :, perm], ys)[0], vsml.run_stream(probe, xs, ys)[0], atol=1e-5)
    wide = vsml.stream_logits(probe, torch.randn(2, 20, 784, generator=g), ys, 5)
print(f"permuted input features give the same predictions: {same}")
print(f"the same omega on 784 inputs: logits of shape {tuple(wide.shape)}, all finite: {bool(wide.isfinite().all())}")

# %% [markdown]
# ## 3. VSML can implement backprop: backprop cloning
#
# *Why:* can cells with shared weights represent gradient descent at all?
# Kirsch & Schmidhuber answer by **cloning** it.
#
# *The idea:* read a weight out of each cell's memory, $w_{ab} = c_{ab} \cdot
# \rho$ (a meta-learned readout $\rho \in \mathbb{R}^H$: LSTM memory is an
# additive accumulator, like an SGD weight), and train $\omega$ and $\rho$ so
# that on random streams
# $$w_{ab} \approx w^{\text{SGD}}_{ab},\quad w^{\text{SGD}}_{ab} \leftarrow
# w^{\text{SGD}}_{ab} - \alpha\, x_a e_b \ \ (\alpha = 0.1,\ W^{\text{SGD}} = 0
# \text{ at } t = 1),\qquad n_{\text{in}}\,\overrightarrow{m}_b[0] \approx
# \textstyle\sum_a w^{\text{SGD}}_{ab} x_a,$$
# the weights and the logits of online SGD on a linear classifier fed the
# same stream. Training is teacher-forced (the backward messages carry the
# true SGD classifier's error); the loss is the squared error of both, each
# divided by its target's spread:

# %%
print(inspect.getsource(vsml.clone_loss))

# %% [markdown]
# The test of a clone is **closed loop**: it runs on new streams with its
# *own* errors as feedback, next to true SGD with the same $\alpha$, on
# datasets it never saw (MNIST, Omniglot) and at an input size it was not
# trained with (32 instead of 16). The table gives the relative weight error
# $\lVert W_{\text{VSML}} - W_{\text{SGD}} \rVert / \lVert W_{\text{SGD}} \rVert$
# (after the last example, and its mean along the stream), the correlation of
# the logits, and both online accuracies:

# %%
def clone_table(results):
    print(f"{'test streams':44s} | weight error (end) | weight error (mean) | logit corr. | VSML clone | true SGD")
    for row, entry in results["results"]["clone"].items():
        print(f"{row:44s} | {entry['relative_weight_error_final']:18.3f} | {entry['relative_weight_error_mean']:19.3f} | "
              f"{entry['logit_correlation']:11.3f} | {100 * entry['vsml_accuracy']:9.1f}% | "
              f"{100 * entry['sgd_accuracy']:7.1f}%")
    return results["results"]["clone"]


if RUN["clone"]:
    CLONE = clone_table(RUN["clone"][1])
    corr = [e["logit_correlation"] for e in CLONE.values()]
    clone_gap = max(100 * abs(e["vsml_accuracy"] - e["sgd_accuracy"]) for e in CLONE.values())
    display(Markdown(f"Closed loop, on data and an input size it never saw, the clone's logits correlate with "
                     f"true SGD's at {min(corr):.2f} to {max(corr):.2f} and its online accuracy is within "
                     f"{clone_gap:.1f} points of SGD's: the cells carry a working SGD."))

# %% [markdown]
# One MNIST stream at 32 inputs, closed loop. Solid lines: three weights
# $w_{ab}$ read out of the cells; dashed: the same weights under true SGD.

# %%
def clone_figure(model, source, input_size, seed=0):
    xs, ys = vsml.sample_streams(source, 1, 100, 5, input_size, torch.Generator().manual_seed(seed), CPU)
    target_w, target_z = vsml.sgd_trajectory(xs, ys, 5, model.config.clone_lr)
    with torch.no_grad():
        logits, _, _, states = vsml.run_stream(model, xs, ys, return_states=True)
        weights = torch.stack([model.weights(s) for s in states], 1)[0]
    final = target_w[0, -1].abs().flatten()
    picks = [divmod(int(i), 5) for i in final.argsort(descending=True)[:3]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for k, (a, b) in enumerate(picks):
        axes[0].plot(weights[:, a, b].numpy(), color=f"C{k}", label=f"w[{a},{b}] VSML clone")
        axes[0].plot(target_w[0, :, a, b].numpy(), color=f"C{k}", linestyle="--", label=f"w[{a},{b}] true SGD")
    axes[0].set_xlabel("example t")
    axes[0].set_ylabel("weight")
    axes[0].set_title("weights, closed loop (never trained on this dataset or size)", fontsize=9)
    axes[0].legend(fontsize=9, ncol=2)
    axes[1].scatter(target_z[0].flatten().numpy(), logits[0].flatten().numpy(), s=4)
    axes[1].set_xlabel("logit of true SGD")
    axes[1].set_ylabel("logit of the VSML clone")
    axes[1].set_title("logits on the same stream", fontsize=9)
    plt.show()
    return (logits.argmax(-1) == ys).float().mean().item(), (target_z.argmax(-1) == ys).float().mean().item()


mnist = vsml.load_sources("mnist", smoke=cl.is_smoke())["test"]
if RUN["clone"]:
    clone_acc, sgd_acc = clone_figure(RUN["clone"][0], mnist, 32)
    print(f"this stream: VSML clone {100 * clone_acc:.0f}% online accuracy, true SGD {100 * sgd_acc:.0f}%")

# %% [markdown]
# **A small live clone.** The same experiment in miniature, trained here:
# 4 inputs, 3 classes, Gaussian streams of 20 examples, $\alpha = 0.3$,
# $H = 8$ (a few steps only in smoke mode). The labels are random, so nobody
# beats chance (33%): what counts is how closely the clone's weights and
# logits follow SGD's.

# %%
LIVE_STEPS = cl.by_mode(smoke=5, full=400)
live_config = vsml.VSMLConfig(mode="clone", input_size=4, ways=3, stream_length=20, message_size=4, hidden=8,
                              clone_lr=0.3, meta_lr=1e-2)
torch.manual_seed(0)
live = vsml.VSMLLearner(live_config)
optimizer = torch.optim.Adam(live.parameters(), lr=live_config.meta_lr)


def gaussian_streams(n, generator):
    return (torch.randn(n, live_config.stream_length, live_config.input_size, generator=generator),
            torch.randint(0, live_config.ways, (n, live_config.stream_length), generator=generator))


test_xs, test_ys = gaussian_streams(64, torch.Generator().manual_seed(99))
before = vsml.compare_clone_to_sgd(live, test_xs, test_ys, live_config.clone_lr)
g, losses, started = torch.Generator().manual_seed(0), [], time.perf_counter()
for _ in range(LIVE_STEPS):
    losses.append(vsml.meta_step(live, optimizer, live_config, *gaussian_streams(32, g))["loss"])
after = vsml.compare_clone_to_sgd(live, test_xs, test_ys, live_config.clone_lr)
print(f"{LIVE_STEPS} meta-steps in {time.perf_counter() - started:.0f} s; clone loss {losses[0]:.3f} -> {losses[-1]:.3f}")
for name, result in (("untrained", before), ("trained", after)):
    print(f"{name:9s}: final weight error {result['relative_weight_error_final']:.3f}, logit correlation "
          f"{result['logit_correlation']:.3f}, online accuracy {100 * result['vsml_accuracy']:.1f}% "
          f"(true SGD {100 * result['sgd_accuracy']:.1f}%)")
display(Markdown(f"After {LIVE_STEPS} meta-steps the clone's final weight error went from "
                 f"{before['relative_weight_error_final']:.2f} to {after['relative_weight_error_final']:.2f} and "
                 f"the correlation of its logits with SGD's from {before['logit_correlation']:.2f} to "
                 f"{after['logit_correlation']:.2f}."))

# %% [markdown]
# ### Through a hidden layer
#
# *Why:* one layer of cells that clones SGD is a linear classifier. What
# makes backprop *backprop* is that the error crosses a layer, and the
# paper's claim is that VSML can do that too, with the backward messages
# $\overleftarrow{m}_a$ that a single layer sends nowhere.
#
# *The idea:* stack two VSML layers, each with its own $\omega$, with
# $n_h = 8$ hidden units between them ($16 \to 8 \to 5$, no biases). Hidden
# unit $j$ passes one number up and one number down, the two numbers a
# backprop unit passes:
# $$x^{(2)}_j = \tanh\big(n_{\text{in}}\,\overrightarrow{m}^{(1)}_j[0]\big),\qquad
#   e^{(1)}_j = \big(1 - (x^{(2)}_j)^2\big)\, n_{\text{out}}\,\overleftarrow{m}^{(2)}_j[1].$$
# Layer 1 is the lower one: $x^{(2)}$ is layer 2's input, and $e^{(1)}_j$
# enters layer 1's cells as the error component of their backward message,
# as $e_{t-1}$ enters the top layer's. (A learner meta-trained from scratch
# uses the means, without the factors $n$, as in section 2.) Backprop on the
# same MLP computes $x^{(2)} = \tanh(W_1^\top x)$ and
# $e^{(1)} = \tanh' \odot W_2 e$, so cloning asks both layers' weight
# readouts to follow online SGD on the MLP from the same start (a fixed
# random $W_1$, $W_2 = 0$), layer 1's forward sums to equal $W_1^\top x$ and
# layer 2's backward sums to equal $W_2 e$. During cloning each layer reads
# SGD's activations and errors at the hidden units (teacher forcing), so
# each learns its own part. One step of the network is a backward sweep from
# the top layer down, then a forward sweep up:

# %%
print(inspect.getsource(vsml.VSMLLearner.propagate))

# %% [markdown]
# The figure sets this clone beside the one-layer clone above. Left: the
# teacher-forced cloning loss; the two-layer loss has three more terms (the
# hidden weights, the hidden activations, the error sent down), so compare
# the shapes, not the levels. Right: the closed-loop test on new streams, per
# layer, the relative error of the learned update $W_T - W_0$ against SGD's,
# $\lVert (W_T - W_0) - (W^{\text{SGD}}_T - W_0) \rVert / \lVert W^{\text{SGD}}_T - W_0 \rVert$
# (a layer that never moves scores 1), and the cosine between the hidden
# layer's update and SGD's.

# %%
HELD_OUT_DIGITS = "digits (held-out examples), input size 16"
if RUN["clone"] and RUN["clone_2layer"]:
    layer_runs = {}
    for name in ("clone", "clone_2layer"):
        config = RUN[name][1]["config"]
        widths = " → ".join(str(w) for w in RUN[name][0].widths(config["input_size"], config["ways"]))
        label = f"one layer ({widths})" if config.get("layers", 1) == 1 else f"through a hidden layer ({widths})"
        layer_runs[label] = name
        print(f"{label:36s}: {RUN[name][1]['steps_done']} meta-steps of {config['meta_batch']} streams, "
              f"Adam step size {config['meta_lr']:g}, cloned SGD's α = {config['clone_lr']:g}")
    histories = {label: json.loads((RUNS / name / "history.json").read_text())["loss"]
                 for label, name in layer_runs.items()}
    HIDDEN = RUN["clone_2layer"][1]["results"]["clone"]
    vsml_figures.layer_clone_figure(histories, HIDDEN)
    plt.show()

    def clone_span(key, rows=HIDDEN):
        values = [entry[key] for entry in rows.values()]
        return f"{min(values):.2f} to {max(values):.2f}"

    behind = [100 * (entry["sgd_accuracy"] - entry["vsml_accuracy"]) for entry in HIDDEN.values()]
    digits_2layer, digits_linear = HIDDEN[HELD_OUT_DIGITS], CLONE[HELD_OUT_DIGITS]
    display(Markdown(
        f"**What it shows.** The error does cross the hidden layer. Closed loop, on every test dataset and input "
        f"size, the hidden layer's learned update points SGD's way (cosine "
        f"{clone_span('layer1_update_cosine_final')}), the hidden activations correlate with true SGD's at "
        f"{clone_span('layer1_activation_correlation')}, the logits with the MLP's at "
        f"{clone_span('logit_correlation')}, and the clone's online accuracy is {min(behind):.1f} to "
        f"{max(behind):.1f} points below true two-layer SGD's (held-out digits: "
        f"{100 * digits_2layer['vsml_accuracy']:.1f} % against {100 * digits_2layer['sgd_accuracy']:.1f} %). "
        f"But the hidden layer's update does not have SGD's size: its relative error is "
        f"{clone_span('layer1_relative_update_error_final')}, barely below the 1 of a hidden layer that never "
        f"learns. The output layer, too, follows SGD less closely than the one-layer clone does (weight error "
        f"{clone_span('layer2_relative_weight_error_final')} against "
        f"{clone_span('relative_weight_error_final', CLONE)}, after "
        f"{RUN['clone_2layer'][1]['steps_done']} meta-steps against {RUN['clone'][1]['steps_done']}). So shared "
        "cells can carry backprop's error through a layer and move that layer the right way; this short run does "
        "not show that they reproduce backprop's hidden-layer updates, as the paper's claim would need. (Two-layer "
        f"SGD with {RUN['clone_2layer'][1]['config']['hidden_units']} tanh units is itself below linear SGD on these "
        f"streams, {100 * digits_2layer['sgd_accuracy']:.1f} % against {100 * digits_linear['sgd_accuracy']:.1f} % "
        "on held-out digits: the test is how closely the clone follows it, not how well it scores.)"))

# %% [markdown]
# **From scratch, through a hidden layer.** The same two-layer network can be
# meta-trained from scratch, as in section 4 (the online cross-entropy, the
# same tasks). Next to it, the one-layer learner after the same number of
# meta-steps:

# %%
if RUN["scratch_2layer"]:
    scratch2 = RUN["scratch_2layer"][1]
    scratch1 = json.loads(next((RUNS / "scratch_2layer").glob("results_1layer_*_steps.json")).read_text())
    print(f"held equal: {scratch2['steps_done']} meta-steps of {scratch2['config']['meta_batch']} streams "
          f"(the same tasks); {scratch2['test_episodes']} test streams per row")
    print(f"{'test streams':44s} | {'2 layers':>12s} | {'1 layer':>12s} | {'tuned SGD':>12s}")

    def accuracy_text(entry, name):
        summary = next(v for k, v in entry.items() if k.split(" (")[0] == name)["all"]
        return f"{100 * summary['mean']:.1f} ± {100 * summary['ci95']:.1f}"

    for row, entry in scratch2["results"]["evaluation"].items():
        one_layer = scratch1["results"]["evaluation"][row]
        print(f"{row:44s} | {accuracy_text(entry, 'vsml'):>12s} | {accuracy_text(one_layer, 'vsml'):>12s} | "
              f"{accuracy_text(entry, 'sgd'):>12s}")
    digits_two, digits_one = (run["results"]["evaluation"][HELD_OUT_DIGITS] for run in (scratch2, scratch1))
    variables_two, variables_one = (run["results"]["variables"]["vsml"] for run in (scratch2, scratch1))
    display(Markdown(
        f"After {scratch2['steps_done']} meta-steps the two-layer learner predicts "
        f"{accuracy_text(digits_two, 'vsml')} % of held-out digits examples online, a little above chance "
        f"({100 / scratch2['config']['ways']:.0f} %), where the one-layer learner on the same tasks is at "
        f"{accuracy_text(digits_one, 'vsml')} %. With {variables_two['meta_parameters']:,} meta-parameters "
        f"and {variables_two['learned_variables']:,} learned variables (one layer: "
        f"{variables_one['meta_parameters']:,} and {variables_one['learned_variables']:,}), depth makes the "
        "meta-learning problem harder and each meta-step dearer. A short run's result, not a verdict on deep VSML."))

# %% [markdown]
# ## 4. VSML learns its own learning algorithm
#
# *Why:* cloning shows that the cells *can* run backprop. Meta-training from
# scratch asks for more: whatever learning algorithm predicts best after few
# examples.
#
# VSML and the Meta-RNN are meta-trained on the **same tasks** (the same
# seed; $B = 32$ streams of scikit-learn digits per meta-step, 5-way, 16
# inputs). Every learner is then tested on the same seeded streams of
#
# * held-out digits images (the meta-training dataset),
# * **MNIST** test images and **Omniglot**'s 20 evaluation alphabets
#   (datasets never seen in meta-training), each at 16 inputs and, for VSML
#   only, at **32 inputs** (the Meta-RNN cannot read them),
#
# against online SGD and Adam on a linear classifier (batch size 1, the
# learning rate tuned per row on separate streams). Accuracy is online: the
# prediction for example $t$ is made before its label is given; the ± are
# 95% confidence intervals over the test streams.

# %%
LEARNERS = {"vsml": "VSML", "metarnn": "Meta-RNN", "fastweight": "fast weights"}


def merged_rows(all_results):
    """{row: {learner: summary}} from several runs' results.json (SGD/Adam are on the same streams in each)."""
    rows = {}
    for results in all_results:
        for row, entry in results["results"]["evaluation"].items():
            for name, summary in entry.items():
                label = LEARNERS.get(name) or name.replace("sgd", "SGD").replace("adam", "Adam")
                rows.setdefault(row, {}).setdefault(label, summary)
    return rows


ROWS = merged_rows(RUN[run][1] for run in ("scratch", "metarnn", "fastweight") if RUN[run])
for row, entry in ROWS.items():
    wins = list(next(iter(entry.values()))["windows"])
    print(f"\n{row}: online accuracy (%) by examples seen")
    print(f"{'learner':14s} | " + " | ".join(f"{w:>11s}" for w in wins) + " | all 100")
    for name, summary in entry.items():
        print(f"{name:14s} | " + " | ".join(f"{100 * v['mean']:5.1f} ± {100 * v['ci95']:3.1f}"
                                           for v in summary["windows"].values())
              + f" | {100 * summary['all']['mean']:5.1f} ± {100 * summary['all']['ci95']:3.1f}")

# %%
def smooth(values, width=5):
    values = np.asarray(values, dtype=float)
    return np.convolve(values, np.ones(width) / width, mode="valid")


def learning_curves(rows, title):
    """One panel per test-stream row: online accuracy along the stream for every learner."""
    order = sorted(rows, key=lambda r: (int(r.rsplit(" ", 1)[1]), list(rows).index(r)))  # 16 inputs first
    columns = (len(order) + 1) // 2
    fig, axes = plt.subplots(2, columns, figsize=(3.6 * columns, 6.8), sharey=True, squeeze=False)
    styles = {"VSML": ("C0", "-"), "Meta-RNN": ("C3", "-"), "fast weights": ("C2", "-"), "SGD": ("k", "--"),
              "Adam": ("C7", ":")}
    for ax, row in zip(axes.flatten(), order):
        entry = rows[row]
        for name, summary in entry.items():
            colour, style = styles.get(name.split(" (")[0], ("C4", "-"))
            curve = smooth(summary["curve"])
            ax.plot(np.arange(len(curve)) + 3, 100 * curve, color=colour, linestyle=style, label=name)
        ax.axhline(20, color="black", linewidth=0.5)
        ax.set_title(row.replace(", ", "\n"), fontsize=9)
        ax.set_xlabel("example t of the stream")
    for ax in axes[:, 0]:
        ax.set_ylabel("online accuracy (%, 5-example mean)")
    for ax in axes.flatten()[len(order):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=9)
    plt.suptitle(title)
    plt.tight_layout()
    plt.show()


if ROWS:
    learning_curves(ROWS, "meta-trained on digits (16 inputs); tested on held-out digits and unseen datasets")

# %% [markdown]
# The Meta-RNN and the fast-weight learner are much cheaper per meta-step
# than VSML (section 8), so each is compared with VSML twice: trained for as
# long as VSML, which gives it many more meta-steps (the tables above), and
# at VSML's number of meta-steps (the same tasks). At equal meta-steps:

# %%
EARLY = {}
for run in ("metarnn", "fastweight"):
    for path in sorted((RUNS / run).glob("results_*_steps.json")) if RUNS is not None else []:
        EARLY[run] = early = json.loads(path.read_text())
        print(f"{LEARNERS[run]} after {early['steps_done']} meta-steps ({early['train_seconds_total'] / 60:.1f} min), "
              "accuracy over all 100 examples:")
        for row, entry in early["results"]["evaluation"].items():
            print(f"    {row:44s}: " + ", ".join(f"{name} {100 * v['all']['mean']:.1f} ± {100 * v['all']['ci95']:.1f}"
                                                for name, v in entry.items()))

# %% [markdown]
# The generalisation question, as numbers: each meta-learner's accuracy
# **minus that of tuned online SGD on the same streams** (positive: the
# learned algorithm beats SGD), over the first 25 examples and over all 100.
# For all 100 the ± is the sum of the two 95% confidence intervals, a
# conservative bound for the difference's (the results files keep
# per-window intervals, not per-stream results, so we cannot pair).

# %%
def percent(summary, window=None):
    return 100 * (summary["windows"][window] if window else summary["all"])["mean"]


def sgd_of(entry):
    return next(v for k, v in entry.items() if k.startswith("SGD"))


def gaps_to_sgd(rows, names):
    """{row: {learner: (points over examples 1-25, points over all 100, bound of that 95% CI)}}, minus tuned SGD."""
    gaps = {}
    for row, entry in rows.items():
        sgd = sgd_of(entry)
        for name in (n for n in names if n in entry):
            early = 100 * (np.mean(entry[name]["curve"][:25]) - np.mean(sgd["curve"][:25]))
            diff = 100 * (entry[name]["all"]["mean"] - sgd["all"]["mean"])
            bound = 100 * (entry[name]["all"]["ci95"] + sgd["all"]["ci95"])
            gaps.setdefault(row, {})[name] = (early, diff, bound)
    return gaps


def gap_to_sgd(rows, names=("VSML", "Meta-RNN", "fast weights")):
    gaps = gaps_to_sgd(rows, names)
    print(f"{'test streams':44s} | " + " | ".join(f"{n + ': 1-25 | all 100':>33s}" for n in names))
    for row in rows:
        cells = [f"{gaps[row][n][0]:+6.1f} pt | {gaps[row][n][1]:+6.1f} ± {gaps[row][n][2]:3.1f} pt"
                 if n in gaps.get(row, {}) else f"{'cannot run':>33s}" for n in names]
        print(f"{row:44s} | " + " | ".join(f"{c:>33s}" for c in cells))
    return gaps


if ROWS:
    GAPS = gap_to_sgd(ROWS)
    DIGITS = "digits (held-out examples), input size 16"
    digits, unseen = ROWS[DIGITS], [r for r in ROWS if r != DIGITS]
    adam = next(v for k, v in digits.items() if k.startswith("Adam"))
    vsml_early, vsml_all = [GAPS[r]["VSML"][0] for r in unseen], [GAPS[r]["VSML"][1] for r in unseen]
    rnn_all = {r: GAPS[r]["Meta-RNN"][1] for r in ROWS if "Meta-RNN" in GAPS[r]}
    rnn_unseen = [v for r, v in rnn_all.items() if r != DIGITS]
    early_rnn = [100 * e["metarnn"]["all"]["mean"] for e in EARLY["metarnn"]["results"]["evaluation"].values()]
    fast = [r for r in ROWS if "fast weights" in ROWS[r]]
    display(Markdown(
        f"**What the runs show.** On the meta-training dataset (held-out digits) VSML's learned algorithm beats "
        f"tuned online SGD and Adam ({percent(digits['VSML']):.1f} % over a stream against "
        f"{percent(sgd_of(digits)):.1f} % and {percent(adam):.1f} %), and the gain is early: "
        f"{GAPS[DIGITS]['VSML'][0]:+.1f} points over the first 25 examples, while over examples 51-100 the three "
        f"are level ({percent(digits['VSML'], '51-100'):.1f}, {percent(sgd_of(digits), '51-100'):.1f} and "
        f"{percent(adam, '51-100'):.1f} %). On unseen datasets and at 32 inputs the early lead shrinks to "
        f"{min(vsml_early):+.1f} to {max(vsml_early):+.1f} points, and over a whole stream VSML differs from SGD by "
        f"{min(vsml_all):+.1f} to {max(vsml_all):+.1f} points: the learned algorithm transfers, but its advantage "
        f"shrinks off the training distribution. The Meta-RNN, given about VSML's wall time, is below "
        f"SGD on digits ({rnn_all[DIGITS]:+.1f} points) and further below on the unseen datasets "
        f"({min(rnn_unseen):+.1f} to {max(rnn_unseen):+.1f}); at VSML's number of meta-steps it had not started to "
        f"learn ({min(early_rnn):.1f} to {max(early_rnn):.1f} %, chance is 20 %). The fast-weight learner "
        f"(section 5) is level with VSML at 16 inputs ("
        + ", ".join(f"{percent(ROWS[r]['fast weights']):.1f} against {percent(ROWS[r]['VSML']):.1f} %" for r in fast)
        + ") and generalises as well, but like the Meta-RNN it is tied to 16 inputs."))

# %% [markdown]
# These numbers can be checked: the cell below evaluates the trained VSML
# learner again on the held-out digits streams with the seed and stream count
# of its results file (8 streams in smoke mode, so the numbers differ there).

# %%
if RUN["scratch"]:
    model, results = RUN["scratch"]
    streams = cl.by_mode(smoke=8, full=results["test_episodes"])
    digits_source = vsml.load_sources("digits", seed=CONFIG.seed)["test"]
    started = time.perf_counter()
    again = vsml.evaluate_on({"vsml": model}, digits_source, CONFIG, CONFIG.input_size, streams, CONFIG.stream_length,
                             CPU, seed=CONFIG.seed + 1)
    row = f"{digits_source.name}, input size {CONFIG.input_size}"
    print(f"re-evaluated on {streams} streams in {time.perf_counter() - started:.0f} s: VSML "
          f"{100 * again['vsml']['all']['mean']:.2f}% (results.json: "
          f"{100 * results['results']['evaluation'][row]['vsml']['all']['mean']:.2f}%)")

# %% [markdown]
# ### The paper's meta-batch, many more tasks
#
# The meta-training above is small: 32 streams per meta-step, tasks made from ten
# digit classes. The paper meta-trains with 128 streams per meta-step on far
# more tasks. Here VSML and the Meta-RNN are each meta-trained on
# **Omniglot's 964 background characters** (every stream: 5 random
# characters, a random projection to 16 inputs, a random label order) with
# $B = 128$ streams per meta-step, for the same number of meta-steps, so
# both saw the same tasks. Their test streams come from data neither saw:
# Omniglot's evaluation alphabets, MNIST and scikit-learn digits.

# %%
LARGE = {}
for run in ("vsml", "metarnn"):
    folder = RUNS / "large_omniglot" / run if RUNS is not None else None
    if folder is not None and (folder / "results.json").is_file():
        LARGE[run] = json.loads((folder / "results.json").read_text())
    else:
        print(f"data/vsml/large_omniglot/{run} is missing from this checkout (data/vsml/README.md says how to make it)")
if LARGE:
    first = next(iter(LARGE.values()))
    print(f"held equal: {first['steps_done']} meta-steps of {first['config']['meta_batch']} streams (the same tasks); "
          f"{first['test_episodes']} test streams per row")
    LARGE_ROWS = merged_rows(LARGE.values())
    LARGE_GAPS = gap_to_sgd(LARGE_ROWS, names=("VSML", "Meta-RNN"))
    learning_curves(LARGE_ROWS, "meta-trained on Omniglot background, 128 streams per meta-step; "
                                "tested on unseen alphabets and datasets")
if len(LARGE) == 2:
    large_vsml = [LARGE_GAPS[r]["VSML"][1] for r in LARGE_ROWS]
    large_late = [percent(e["VSML"], "51-100") - percent(sgd_of(e), "51-100") for e in LARGE_ROWS.values()]
    large_rnn = [LARGE_GAPS[r]["Meta-RNN"][1] for r in LARGE_ROWS if "Meta-RNN" in LARGE_GAPS[r]]
    cheaper = LARGE["vsml"]["seconds_per_meta_step"] / LARGE["metarnn"]["seconds_per_meta_step"]
    display(Markdown(
        f"**What the larger pair shows.** VSML now beats tuned SGD on every test stream, by {min(large_vsml):.1f} "
        f"to {max(large_vsml):.1f} points over all 100 examples, on datasets (digits, MNIST) and an input size (32) "
        f"it never saw; unlike the small run, its lead holds to the end of the stream ({min(large_late):+.1f} to "
        f"{max(large_late):+.1f} points over examples 51-100). The Meta-RNN, after the same meta-steps, is "
        f"{-max(large_rnn):.1f} to {-min(large_rnn):.1f} points below SGD on every row it can run. It is "
        f"{cheaper:.0f} times cheaper per meta-step, so equal steps is not equal compute; the small runs gave it "
        "equal wall time and it still ended below SGD and VSML. With more streams per meta-step and more varied "
        "tasks, the learned algorithm with shared weights became a better general-purpose learner than the "
        "designed one."))

# %% [markdown]
# ## 5. Fast weights: in between
#
# *Why:* is a learned cell per connection needed, or is any large state
# written by a small learned rule enough?
#
# A **fast-weight learner** (Schmidhuber 1992; here with the delta rule of
# Schlag, Irie & Schmidhuber 2021) keeps a matrix $W_t \in \mathbb{R}^{d
# \times d}$ ($d = 32$) as its state and writes it with outer products of
# keys and values computed by slow, meta-learned maps $W_k, W_q, W_v,
# w_\eta$ and a linear head:
# $$k_t = \tfrac{W_k x_t}{\lVert W_k x_t \rVert},\quad q_t = \tfrac{W_q x_t}{\lVert W_q x_t \rVert},\quad
# v_t = W_v\,\text{fb}_{t-1},\quad \eta_t = \sigma(w_\eta \cdot [x_t, \text{fb}_{t-1}]),$$
# $$W_t = W_{t-1} + \eta_t\,(v_t - W_{t-1} k_{t-1})\,k_{t-1}^\top,\qquad \hat z_t = \text{head}(W_t q_t),$$
# where $\text{fb}_{t-1}$ is the feedback (label and error) about the
# previous example. Like the Meta-RNN, its input size is fixed by $W_k$ and
# $W_q$.
#
# A related step: **BLUR** (Sandler et al., "Meta-Learning Bidirectional
# Update Rules", ICML 2021) replaces backprop in a whole network by a learned
# *bidirectional* rule, a low-dimensional function of the neurons' states
# shared by all of them (a "genome" of a few meta-parameters), while the
# weights stay explicit. VSML goes one step further: the weight *is* a
# learned cell's state, and both passes are that cell's messages.

# %%
print(inspect.getsource(vsml.FastWeightLearner.step))
for r, entry in ROWS.items():
    if "fast weights" in entry:
        print(f"{r}: fast weights {percent(entry['fast weights']):.1f}% over all 100 examples")
fw = counts[16]["fastweight"]
display(Markdown(
    f"Its {fw['learned_variables']:,} learned variables are mostly a weight matrix written by a learned rule, "
    f"against {fw['meta_parameters']:,} meta-parameters: {fw['ratio_learned_per_meta']:.2f} learned variables per "
    f"meta-parameter, between the Meta-RNN's {rnn['ratio_learned_per_meta']:.3f} and VSML's "
    f"{v16['ratio_learned_per_meta']:.2f} (section 1)."))

# %% [markdown]
# ## 6. SymLA: symmetric learning agents
#
# *Why:* the RL² agent of notebook 05 is a GRU that reads (previous action,
# previous reward) and outputs a distribution over arms, so its weights are
# tied to the number and the order of the arms.
#
# **SymLA** (Kirsch, Flennerhag, van Hasselt, Friesen, Oh & Chen,
# "Introducing Symmetries to Black Box Meta Reinforcement Learning", AAAI
# 2022) carries VSML to reinforcement learning: **every connection (input
# $a$, action $b$) gets its own small LSTM with shared parameters**, and the
# action preferences are the cells' messages summed over the input units.
# By construction the agent is invariant to the **order of its inputs**,
# **equivariant to the order of its actions** (shuffle the arms and the
# policy shuffles with them), and runs with **any number of inputs and
# actions**. The paper shows that such agents generalise to unseen action
# spaces and environments where RL² does not.
#
# Our small version for Bernoulli bandits, which have no observation: the
# input units are $x = (1, t/T)$, and cell $ab$ reads
# $[x_a,\ \text{pulled}_b,\ r_{t-1}\text{pulled}_b,\ r_{t-1},\ \overleftarrow{m}_a]$,
# where $\text{pulled}_b$ says whether arm $b$ was pulled at $t-1$ and
# $\overleftarrow{m}_a = \frac{1}{n_{\text{arms}}}\sum_b h_{ab} W_{\text{back}}$
# tells each cell what the other arms' cells hold;
# $\text{logit}_b = \sum_a h_{ab} \cdot w_{\text{out}}$. SymLA and an RL² GRU
# are meta-trained with notebook 05's A2C loss on the same **2-armed**
# independent bandits ($T = 10$ pulls), and tested on 2, 5 and 10 arms:

# %%
print(inspect.getsource(symla.SymLAAgent.step))

# %%
SYMLA = RUNS / "symla" if RUNS is not None else None  # two run folders: symla/ and rl2/
if SYMLA is not None and (SYMLA / "symla" / "results.json").is_file():
    symla_run, rl2_run = (json.loads((SYMLA / name / "results.json").read_text()) for name in ("symla", "rl2"))
    print(f"total reward over {symla_run['config']['horizon']} pulls, mean ± 95% CI over {symla_run['test_episodes']:,} test bandits "
          f"(both agents trained on {symla_run['config']['arms']}-armed independent Bernoulli bandits)")
    symla_results = symla_run["results"]
    training_row = next(iter(symla_results))  # the RL² GRU has a row only where it was trained: 2 arms
    symla_results[training_row] = {"SymLA": symla_results[training_row]["SymLA"], "RL² GRU": rl2_run["results"]["RL²"],
                                   **{k: v for k, v in symla_results[training_row].items() if k != "SymLA"}}
    for row, entry in symla_results.items():
        print(f"  {row:34s}: " + ", ".join(f"{k} {v['mean']:.2f} ± {v['ci95']:.2f}" for k, v in entry.items()))
else:
    symla_results = None
    print("data/vsml/symla is missing from this checkout (the last cell of this notebook says how to make it)")

# %% [markdown]
# The RL² GRU trained on 2 arms has no row for 5 or 10 arms: its input and
# output layers have exactly 2 arms. For scale, notebook 05's RL² GRU that
# *was* meta-trained on 5-armed bandits plays the same 5-armed test bandits
# here; the arm-permutation equivariance of SymLA is checked on one bandit
# (the same pulls and rewards, arms renamed); and both agents get their
# variable ratio.

# %%
if symla_results is not None:
    symla_agent, _ = registry.load(SYMLA / "symla")  # built from the run's own config
    rl2_2, _ = registry.load(SYMLA / "rl2")
    rl2_5_path = ROOT / "data" / "black_box" / "rl2_independent5_T10"
    policies = {"SymLA (trained on 2 arms)": symla.SymLAPolicy(symla_agent)}
    if (rl2_5_path / "checkpoint.pt").is_file():
        rl2_5, _ = registry.load(rl2_5_path)  # with the config it was trained with
        policies["RL² GRU (trained on 5 arms)"] = bandits.RL2Policy(rl2_5)
    five = bandits.reward_table(policies, bandits.IndependentBandits(5), 10, count=cl.by_mode(smoke=50, full=2000))
    for name, v in five.items():
        print(f"5 arms, 10 pulls: {name:28s} {v['mean']:.2f} ± {v['ci95']:.2f}")
    with torch.no_grad():
        pulls, rewards = torch.tensor([[0, 2, 2, 1, 2]]), torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0]])
        perm = torch.tensor([2, 0, 1])
        state, state_p, prev, prev_p = symla_agent.initial_state(1, 3), symla_agent.initial_state(1, 3), (None, None), (None, None)
        for t in range(5):
            logits, _, state = symla_agent.step(state, *prev, t, 10)
            logits_p, _, state_p = symla_agent.step(state_p, *prev_p, t, 10)
            prev, prev_p = (pulls[:, t], rewards[:, t]), (perm[pulls[:, t]], rewards[:, t])
    assert torch.allclose(logits_p[:, perm], logits, atol=1e-5)
    print(f"policy after 5 pulls: {logits.softmax(-1)[0].numpy().round(3)}; with arm k renamed perm[k], "
          f"perm = {perm.tolist()}: {logits_p.softmax(-1)[0].numpy().round(3)} (the same numbers, in the new order)")

    agents = [(f"SymLA, {arms} arms", symla_agent, symla_agent.learned_variables(arms)) for arms in (2, 5, 10)]
    agents.append(("RL² GRU, 2 arms", rl2_2, rl2_2.learned_variables()))
    if "RL² GRU (trained on 5 arms)" in policies:
        agents.append(("RL² GRU (notebook 05), 5 arms", rl2_5, rl2_5.learned_variables()))
    print("\nthe variable ratio |V_L| / |V_M|: learned variables per meta-parameter")
    print(f"{'agent':30s} | meta-parameters | learned variables | learned variables per meta-parameter")
    SYMLA_RATIO = {}
    for name, agent, learned in agents:
        meta = models.count_parameters(agent)
        SYMLA_RATIO[name] = learned / meta
        print(f"{name:30s} | {meta:15,d} | {learned:17,d} | {learned / meta:10.3g}")

# %%
if symla_results is not None:
    two, arms5, arms10 = (symla_results[r] for r in symla_results)
    lead = [entry["SymLA"]["mean"] - max(entry["UCB1"]["mean"], entry["Thompson sampling"]["mean"])
            for entry in (arms5, arms10)]
    rl2_line = (f" notebook 05's RL² GRU, meta-trained *on 5 arms*, collects "
                f"{five['RL² GRU (trained on 5 arms)']['mean']:.2f} on the same 5-armed test bandits, against "
                f"SymLA's {five['SymLA (trained on 2 arms)']['mean']:.2f}."
                if "RL² GRU (trained on 5 arms)" in five else "")
    display(Markdown(
        f"**What the bandit runs show.** On the 2-armed bandits both agents were trained on, SymLA and the RL² GRU "
        f"collect {two['SymLA']['mean']:.2f} and {two['RL² GRU']['mean']:.2f} over 10 pulls, both above UCB1 "
        f"({two['UCB1']['mean']:.2f}) and Thompson sampling ({two['Thompson sampling']['mean']:.2f}). On 5 and "
        f"10 arms, which it never saw, the same SymLA weights still beat the better of UCB1 and Thompson sampling "
        f"by {min(lead):.2f} and {max(lead):.2f} reward;{rl2_line} The RL² GRU trained on 2 arms cannot be asked "
        f"at all. The renaming check shows the equivariance: the policy moves with the arms. SymLA's state grows "
        f"with the arms ({SYMLA_RATIO['SymLA, 2 arms']:.3f} to {SYMLA_RATIO['SymLA, 10 arms']:.3f} learned "
        f"variables per meta-parameter from 2 to 10 arms, against {SYMLA_RATIO['RL² GRU, 2 arms']:.4f} for the "
        "GRU). This is a small version of the paper's agent: 2 input units, no observations, brief training; the "
        "paper uses observations, larger environments and more compute."))

# %% [markdown]
# ## 7. Step through one learning stream
#
# `vsml_figures.stream_trace` runs a learner on one stream and returns, for
# every step, the prediction (made before the label) and the **effective
# weights**, an $n_{\text{in}} \times n_{\text{out}}$ readout of the cell
# states: for a clone the weight $c_{ab} \cdot \rho$ it was trained to carry;
# for the scratch-trained VSML, which has no weight readout, each cell's
# contribution $(h_{ab} W_{\text{out}})[0]$ to the logit of class $b$ (the
# logit is their mean over $a$, as in a linear layer). `vsml_figures.trace_figure`
# draws step $t$. The stream: MNIST test images at **32 inputs**, for the VSML
# meta-trained on digits at 16.

# %%
trace_model = RUN["scratch"][0] if RUN["scratch"] else vsml.VSMLLearner(CONFIG)
stream_xs, stream_ys = vsml.sample_streams(mnist, 1, 100, 5, 32, torch.Generator().manual_seed(3), CPU)
trace = vsml_figures.stream_trace(trace_model, stream_xs[0], stream_ys[0])
fig = vsml_figures.trace_figure(trace, step=99, title="VSML (meta-trained on digits, 16 inputs) on an MNIST stream, 32 inputs")
plt.show()
print(f"online accuracy on this stream: first 25 examples {100 * trace['correct'][:25].float().mean():.0f}%, "
      f"last 25 {100 * trace['correct'][-25:].float().mean():.0f}%")

# %% [markdown]
# Each class gets its own pattern of effective weights over the input units,
# built up from the stream's examples; the running accuracy rises over the
# first examples and then flattens, as in section 4's curves. Step through the
# stream to watch the pattern form:

# %%
sequence_figures.step_widget(lambda t: vsml_figures.trace_figure(trace, t), steps=len(trace["ys"]), description="example t")

# %% [markdown]
# ## 8. What a meta-step costs
#
# *Why:* every learned variable is a state that backpropagation through the
# stream must keep. `vsml_cost.meta_step_cost` measures, live, the median
# time of one meta-step (forward and backward through a whole stream) and
# the memory autograd keeps for the
# backward pass, counted tensor by tensor with `saved_tensors_hooks`. Full
# mode measures section 4's configuration (32 streams of 100 examples); VSML
# also at 32 and 64 inputs, where its grid of cells grows.

# %%
cost_config = CONFIG if not cl.is_smoke() else vsml.VSMLConfig(meta_batch=4, stream_length=10)
cases = [("VSML", 16, "vsml"), ("VSML", 32, "vsml"), ("VSML", 64, "vsml"), ("Meta-RNN", 16, "metarnn"),
         ("fast weights", 16, "fastweight")]
print(f"meta-batch {cost_config.meta_batch} streams x {cost_config.stream_length} examples, "
      f"{torch.get_num_threads()} CPU thread")
print(f"{'learner':14s} | inputs | meta-parameters | seconds / meta-step | saved for backward")
COST = {}
for name, size, learner in cases:
    COST[name, size] = cost = vsml_cost.meta_step_cost(dataclasses.replace(cost_config, learner=learner, input_size=size),
                                                      repeats=cl.by_mode(smoke=1, full=3))
    print(f"{name:14s} | {size:6d} | {cost['meta_parameters']:15,d} | {cost['seconds']:19.3f} | "
          f"{cost['saved_for_backward_mb']:15.1f} MB")
vsml_sizes = [COST["VSML", size] for size in (16, 32, 64)]
display(Markdown(
    "**What it shows.** From 16 to 32 to 64 inputs VSML's time per meta-step goes "
    + " → ".join(f"{c['seconds']:.3f}" for c in vsml_sizes) + " s and the memory kept for the backward pass "
    + " → ".join(f"{c['saved_for_backward_mb']:.0f}" for c in vsml_sizes)
    + f" MB, while its meta-parameters stay {vsml_sizes[0]['meta_parameters']:,}. At 16 inputs the Meta-RNN is "
    f"{vsml_sizes[0]['seconds'] / COST['Meta-RNN', 16]['seconds']:.0f} times and the fast-weight learner "
    f"{vsml_sizes[0]['seconds'] / COST['fast weights', 16]['seconds']:.0f} times faster per meta-step. That is the "
    "price of VSML's many learned variables, and why the paper trains on accelerators."))

# %% [markdown]
# ## 9. Build it: a VSML layer, meta-trained from scratch
#
# *What you build:* the layer of section 2 in plain tensors, its online step,
# and the meta-loss of a learning stream; then a cell meta-trains the shared
# $\omega$ with your functions on digits streams (16 inputs, 5 ways) and
# tests the learned algorithm on held-out streams, next to tuned online SGD
# on the same streams. Four parts, each followed by its check. The check of
# part 3 runs the library's layer with your $\omega$: the same
# meta-parameters must give the same numbers.
#
# *Why it matters:* this is the whole method, a few dozen lines. Meta-training
# never sees the test streams; everything the layer learns about a stream
# lives in its $A \times B$ cell states, updated by the one small LSTM that
# meta-training shaped.
#
# The meta-parameters $\omega$ are six tensors, the **same for every
# connection** $(a, b)$, whatever the numbers of inputs and outputs:

# %%
from course_lib.evaluation import format_accuracy, mean_confidence_interval

BUILD_INPUTS, BUILD_WAYS, MESSAGE, HIDDEN, TICKS = 16, 5, 8, 16, 2


def init_omega(message_size, hidden, seed=0):
    """The meta-parameters of one VSML layer; the LSTM gates are the four H-wide quarters (input, forget,
    candidate, output) of the 4H columns."""
    g = torch.Generator().manual_seed(seed)
    bias = torch.zeros(4 * hidden)
    bias[hidden:2 * hidden] = 1.0  # the forget gate starts open: the states persist, like weights
    omega = {"w_forward": torch.randn(message_size, 4 * hidden, generator=g) / message_size ** 0.5,  # f_a -> gates
             "w_backward": torch.randn(message_size, 4 * hidden, generator=g) / message_size ** 0.5,  # g_b -> gates
             "w_hidden": torch.randn(hidden, 4 * hidden, generator=g) / hidden ** 0.5,  # h_ab -> gates
             "bias": bias,
             "w_out": torch.randn(hidden, message_size, generator=g) / hidden ** 0.5,  # h_ab -> forward message
             "w_back": torch.randn(hidden, message_size, generator=g) / hidden ** 0.5}  # h_ab -> backward message
    return {name: value.requires_grad_() for name, value in omega.items()}


print({name: tuple(value.shape) for name, value in init_omega(MESSAGE, HIDDEN).items()})

# %% [markdown]
# **Part 1: the messages out.** Given the hidden states of all cells,
# `h [tasks, A, B, H]`, and the two projections, return the forward messages
# out of the output units `[tasks, B, M]` and the backward messages out of
# the input units `[tasks, A, M]` (the two sums of section 2's equation,
# averaged).

# %%
def messages(h, w_out, w_back):
    # BEGIN SOLUTION: output unit b hears all the cells of its column (one per input unit a), input unit a all the cells of its row; average, then project
    forward = h.mean(dim=1) @ w_out
    backward = h.mean(dim=2) @ w_back
    return forward, backward
    # END SOLUTION


checks.check_vsml_messages(messages)

# %% [markdown]
# **Part 2: the feedback into the output units.** From the previous step's
# logits `[tasks, B]` and labels `[tasks]` (-1 where there is no label, as
# before the first example of a stream), return `[tasks, B, 2]`: component 0
# is $\text{onehot}(y_{t-1})$, component 1 the error $e_{t-1}$; all zeros
# where the label is -1.

# %%
def feedback_message(previous_logits, previous_labels, ways):
    # BEGIN SOLUTION: the label and the gradient of the cross-entropy with respect to the logits; a step without a label sends nothing
    given = (previous_labels >= 0).to(previous_logits.dtype)[:, None]
    onehot = F.one_hot(previous_labels.clamp(min=0), ways).to(previous_logits.dtype) * given
    error = (torch.softmax(previous_logits, dim=-1) - onehot) * given
    return torch.stack([onehot, error], dim=-1)
    # END SOLUTION


checks.check_feedback_message(feedback_message)

# %% [markdown]
# **Part 3: one step of the layer.** Given $\omega$, the state
# `(h, c)`, each `[tasks, A, B, H]`, the input `x [tasks, A]` and the
# `feedback [tasks, B, 2]` about the previous example, run the layer for
# `ticks` micro-ticks and return the logits `[tasks, B]` (component 0 of the
# forward messages, read after the last micro-tick) and the new state. Cell
# $ab$ hears $f_a = (x_a, 0, \dots, 0)$ and $g_b = (\text{feedback}_b, 0,
# \dots, 0)$, both of length $d_m$ (`F.pad` pads a last axis); its gates are
# $f_a W_{\text{forward}} + g_b W_{\text{backward}} + h_{ab} W_{\text{hidden}}
# + \text{bias}$, split into input, forget, candidate and output quarters, in
# that order (the order `init_omega`'s bias assumes); then the usual LSTM
# update of $(h_{ab}, c_{ab})$. Use your `messages`.

# %%
def vsml_step(omega, state, x, feedback, ticks=TICKS):
    # BEGIN SOLUTION: every cell of row a hears x_a, every cell of column b hears b's feedback; the same LSTM weights update all cells at once, a few times; then the output units speak
    h, c = state
    size = omega["w_forward"].shape[0]
    forward_in = F.pad(x[..., None], (0, size - 1))  # f_a = (x_a, 0, ..., 0): [tasks, A, M]
    backward_in = F.pad(feedback, (0, size - feedback.shape[-1]))  # g_b = (label_b, e_b, 0, ..., 0): [tasks, B, M]
    drive = ((forward_in @ omega["w_forward"])[:, :, None]  # row a: [tasks, A, 1, 4H]
             + (backward_in @ omega["w_backward"])[:, None]  # column b: [tasks, 1, B, 4H]
             + omega["bias"])
    for _ in range(ticks):
        i, f, u, o = (drive + h @ omega["w_hidden"]).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        h = torch.sigmoid(o) * torch.tanh(c)
    forward, _ = messages(h, omega["w_out"], omega["w_back"])
    return forward[..., 0], (h, c)
    # END SOLUTION


checks.check_vsml_step(vsml_step)

# %% [markdown]
# **Part 4: the online meta-loss.** Run a whole stream `xs [tasks, L, A]`,
# `ys [tasks, L]` from zero states. At step $t$ the layer gets $x_t$ and the
# feedback about step $t-1$ (none at the first step), predicts, and only
# then is $y_t$ given, to be fed back at step $t+1$. Return the mean
# cross-entropy of all the predictions and the logits `[tasks, L, ways]`.

# %%
def online_loss(omega, xs, ys, ways, ticks=TICKS):
    # BEGIN SOLUTION: predict each example from the past only, then reveal its label for the next step; every prediction of the stream counts in the loss
    tasks, length, inputs = xs.shape
    hidden = omega["w_hidden"].shape[0]
    state = (xs.new_zeros(tasks, inputs, ways, hidden), xs.new_zeros(tasks, inputs, ways, hidden))
    previous_logits, previous_labels = xs.new_zeros(tasks, ways), torch.full((tasks,), -1)
    all_logits = []
    for t in range(length):
        feedback = feedback_message(previous_logits, previous_labels, ways)  # about step t-1
        logits, state = vsml_step(omega, state, xs[:, t], feedback, ticks)  # the prediction for x_t ...
        all_logits.append(logits)
        previous_logits, previous_labels = logits, ys[:, t]  # ... and only then y_t
    logits = torch.stack(all_logits, dim=1)
    return F.cross_entropy(logits.flatten(0, 1), ys.flatten()), logits
    # END SOLUTION


checks.check_online_loss(online_loss)

# %% [markdown]
# **Exercise: a test for label leaks.** An online learner that sees $y_t$
# before it predicts $x_t$ scores well and has learned nothing. Write
# `label_leaks(run, xs, ys)`: `run(xs, ys)` returns the logits
# `[tasks, L, ways]` of some online learner; return `True` when some
# prediction depends on its own label or a later one. The check tries it on
# an honest learner and on three leaky ones.

# %%
def label_leaks(run, xs, ys):
    # BEGIN SOLUTION: change one label at a time; an honest learner's predictions up to that step cannot move (the later ones should: that is learning)
    logits = run(xs, ys)
    ways = logits.shape[-1]
    for t in range(ys.shape[1]):
        changed = ys.clone()
        changed[:, t] = (ys[:, t] + 1) % ways
        if not torch.allclose(run(xs, changed)[:, :t + 1], logits[:, :t + 1]):
            return True
    return False
    # END SOLUTION


checks.check_label_leak_test(label_leaks)

# %% [markdown]
# Your test on your own layer, with a fresh $\omega$:

# %%
g = torch.Generator().manual_seed(0)
xs, ys = torch.randn(2, 12, BUILD_INPUTS, generator=g), torch.randint(0, BUILD_WAYS, (2, 12), generator=g)
with torch.no_grad():
    fresh = init_omega(MESSAGE, HIDDEN)
    leaks = label_leaks(lambda xs, ys: online_loss(fresh, xs, ys, BUILD_WAYS)[1], xs, ys)
print(f"does your online_loss leak a label into a prediction? {leaks}")

# %% [markdown]
# **Meta-train it.** Adam on $\omega$ (step size $\beta$, gradient
# clipping), each meta-step on a fresh batch of digits streams: 5 random
# classes in a random order and a random projection of the images to 16
# numbers, new for every stream. Then the test: held-out digits images, new
# streams, the online accuracy of your learned algorithm against online SGD
# on a linear classifier whose learning rate is tuned on other streams. A
# good layer clears the bar `ACCURACY_BAR` (printed with the result) and is
# level with SGD or above it; the untrained layer is at chance.

# %%
META_STEPS, META_BATCH = cl.by_mode(smoke=3, full=400), cl.by_mode(smoke=4, full=16)
STREAM_LENGTH = cl.by_mode(smoke=10, full=50)
TEST_STREAMS, META_LR = cl.by_mode(smoke=16, full=256), 3e-3
ACCURACY_BAR = 0.60  # mean online accuracy over the test streams (chance: 1 / BUILD_WAYS)
build_sources = vsml.load_sources("digits", seed=0)
omega = init_omega(MESSAGE, HIDDEN, seed=0)
optimizer = torch.optim.Adam(omega.values(), lr=META_LR)
g, meta_losses, started = torch.Generator().manual_seed(0), [], time.perf_counter()
for _ in runtime.progress_bar(range(META_STEPS), desc="meta-training your VSML layer", mininterval=10):
    xs, ys = vsml.sample_streams(build_sources["train"], META_BATCH, STREAM_LENGTH, BUILD_WAYS, BUILD_INPUTS, g, CPU)
    loss, _ = online_loss(omega, xs, ys, BUILD_WAYS)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(omega.values(), 1.0)
    optimizer.step()
    meta_losses.append(loss.item())
train_seconds = time.perf_counter() - started


def online_test(source, inputs, omega, seed=1):
    """Per-stream correctness [streams, L] of your layer and of tuned online SGD on the same seeded streams,
    and SGD's learning rate (tuned on other streams of the training images)."""
    xs, ys = vsml.sample_streams(source, TEST_STREAMS, STREAM_LENGTH, BUILD_WAYS, inputs,
                                 torch.Generator().manual_seed(seed), CPU)
    tune_xs, tune_ys = vsml.sample_streams(build_sources["train"], TEST_STREAMS, STREAM_LENGTH, BUILD_WAYS, inputs,
                                           torch.Generator().manual_seed(seed + 1), CPU)
    rate = max(vsml.SGD_GRID, key=lambda lr: (vsml.linear_online_logits(tune_xs, tune_ys, BUILD_WAYS, "sgd", lr)
                                              .argmax(-1) == tune_ys).float().mean().item())
    with torch.no_grad():
        mine = online_loss(omega, xs, ys, BUILD_WAYS)[1].argmax(-1) == ys
    sgd = vsml.linear_online_logits(xs, ys, BUILD_WAYS, "sgd", rate).argmax(-1) == ys
    return mine.float(), sgd.float(), rate


BUILT, BUILT_SGD, BUILT_RATE = online_test(build_sources["test"], BUILD_INPUTS, omega)
UNTRAINED = online_test(build_sources["test"], BUILD_INPUTS, init_omega(MESSAGE, HIDDEN, seed=0))[0]
built_acc = mean_confidence_interval(BUILT.mean(1))
print(f"{META_STEPS} meta-steps of {META_BATCH} streams x {STREAM_LENGTH} examples in {train_seconds:.0f} s; "
      f"meta-loss {meta_losses[0]:.3f} -> {np.mean(meta_losses[-20:]):.3f} (mean of the last 20)")
print(f"online accuracy over {TEST_STREAMS} held-out digits streams of {STREAM_LENGTH} examples "
      f"(chance {100 / BUILD_WAYS:.0f}%):")
for name, correct in ((f"your VSML layer, {META_STEPS} meta-steps", BUILT), ("the same layer untrained", UNTRAINED),
                      (f"online SGD, tuned lr {BUILT_RATE}", BUILT_SGD)):
    print(f"  {name:34s} {format_accuracy(*mean_confidence_interval(correct.mean(1)))}")
if cl.is_smoke():
    print(f"(too few meta-steps here for the bar of {100 * ACCURACY_BAR:.0f}%: it is for the full run)")
elif built_acc[0] >= ACCURACY_BAR:
    print(f"✓ above the bar of {100 * ACCURACY_BAR:.0f}%: your layer has meta-learned a learning algorithm")
else:
    print(f"✗ below the bar of {100 * ACCURACY_BAR:.0f}%. Usual causes: the feedback does not reach the cells "
          "(check that the error of step t-1 enters through W_backward), the state is reset between steps, the "
          "loss counts only some steps, or the gradient is cut (.detach(), .item(), torch.no_grad() inside "
          "online_loss)")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(meta_losses, color="C0", alpha=0.4, label="each meta-step")
if META_STEPS >= 20:
    axes[0].plot(np.arange(META_STEPS - 19) + 19, smooth(meta_losses, 20), color="C0", label="mean of 20")
axes[0].legend(fontsize=9)
axes[0].set_xlabel("meta-step")
axes[0].set_ylabel("online cross-entropy (meta-loss)")
axes[0].set_title("meta-training your layer", fontsize=9)
for correct, label, style in ((BUILT, "your VSML layer", ("C0", "-")), (BUILT_SGD, "online SGD (tuned)", ("k", "--")),
                              (UNTRAINED, "untrained layer", ("C7", ":"))):
    axes[1].plot(np.arange(1, STREAM_LENGTH + 1), 100 * correct.mean(0).numpy(), color=style[0],
                 linestyle=style[1], label=label)
axes[1].axhline(100 / BUILD_WAYS, color="black", linewidth=0.5)
axes[1].set_xlabel("example t of the stream")
axes[1].set_ylabel("online accuracy (%)")
axes[1].set_title("held-out digits streams: prediction made before the label", fontsize=9)
axes[1].legend(fontsize=9)
plt.show()

# %%
early = min(10, STREAM_LENGTH)
display(Markdown(
    f"**What your run shows.** After {META_STEPS} meta-steps your layer predicts "
    f"{format_accuracy(*built_acc)} of the held-out digits examples online, against "
    f"{format_accuracy(*mean_confidence_interval(BUILT_SGD.mean(1)))} for tuned online SGD on the same streams; over "
    f"the first {early} examples of a stream it scores {100 * BUILT[:, :early].mean():.1f} % against SGD's "
    f"{100 * BUILT_SGD[:, :early].mean():.1f} %. Nothing in the layer computes a gradient: whatever it learns "
    "within a stream, it learns by the update of its cell states that meta-training gave it."))

# %% [markdown]
# Compare with the reference: the library's layer (`drive` computes the
# input part of the gates once per step, `tick` is one micro-tick), its
# feedback, its step and its stream. With your $\omega$ copied in, it makes
# the same predictions as your functions:

# %%
for function in (vsml.VSMLLayer.drive, vsml.VSMLLayer.tick, vsml.VSMLLayer.messages, vsml.feedback_messages,
                 vsml.VSMLLearner.step, vsml.run_stream):
    print(inspect.getsource(function))
library_layer = checks.library_learner({k: v.detach().double() for k, v in omega.items()}, BUILD_INPUTS,
                                       BUILD_WAYS, TICKS).float()
xs, ys = vsml.sample_streams(build_sources["test"], 8, STREAM_LENGTH, BUILD_WAYS, BUILD_INPUTS,
                             torch.Generator().manual_seed(5), CPU)
with torch.no_grad():
    gap = (vsml.run_stream(library_layer, xs, ys)[0] - online_loss(omega, xs, ys, BUILD_WAYS)[1]).abs().max()
print(f"largest difference between the library's logits and yours, same omega, 8 streams: {gap:.1e}")

# %% [markdown]
# **Open question.** Your $\omega$ was meta-trained on digits at 16 inputs.
# Without training it further, run it at other input sizes (say 4, 32 and
# 128: `online_test(build_sources["test"], inputs, omega)`) and on datasets
# it never saw (`vsml.load_sources("mnist")` or `"omniglot"`). Where does it
# stay ahead of tuned SGD, where does it fall behind, and why? What in the
# layer (the mean in the forward message, the scale of its input) decides
# how it behaves at an input size it was not trained on, and what would you
# change in meta-training to make it hold up?

# %% [markdown]
# ## What we learned
#
# VSML is a black box with symmetries, between learned objectives and
# black-box sequence models on the course's spectrum (learned optimizers →
# learned initialisations → learned objectives → **VSML, SymLA** →
# black-box sequence models): no gradient is written into it, yet one small
# learner shared by every connection gives it as many learned variables as a
# network has weights. In numbers:

# %%
hidden_layer_line = ""
if RUN["clone"] and RUN["clone_2layer"] and RUN["scratch_2layer"]:
    hidden_layer_line = (
        f"* **Through a hidden layer** the clone's error reaches the hidden units and moves their weights SGD's "
        f"way (update cosine {clone_span('layer1_update_cosine_final')}), but not yet by SGD's amount (relative "
        f"update error {clone_span('layer1_relative_update_error_final')}); meta-trained from scratch for "
        f"{scratch2['steps_done']} meta-steps, the two-layer learner is near chance "
        f"({accuracy_text(digits_two, 'vsml')} % on held-out digits, "
        f"one layer after the same steps {accuracy_text(digits_one, 'vsml')} %).\n")
if ROWS and len(LARGE) == 2 and symla_results is not None and RUN["clone"]:
    display(Markdown(
        f"* **Sharing flips the variable ratio**: VSML has {v16['ratio_learned_per_meta']:.2f} learned variables "
        f"per meta-parameter at 16 inputs and {v784['ratio_learned_per_meta']:.0f} at 784, with the same "
        f"{v16['meta_parameters']:,} meta-parameters; the Meta-RNN has {rnn['ratio_learned_per_meta']:.4f}.\n"
        f"* **The cells can implement backprop**: cloned on online SGD, they follow it closed loop on datasets and "
        f"an input size they never saw (logit correlation {min(corr):.2f} to {max(corr):.2f}, online accuracy "
        f"within {clone_gap:.1f} points).\n"
        + hidden_layer_line +
        f"* **Meta-trained from scratch, they learn an algorithm of their own** that transfers: the small "
        f"digits-trained VSML learns faster than tuned SGD early in a stream ({GAPS[DIGITS]['VSML'][0]:+.1f} points "
        f"over the first 25 digits examples), and the Omniglot-trained one, at the paper's meta-batch, beats tuned "
        f"SGD on every unseen test stream by {min(large_vsml):.1f} to {max(large_vsml):.1f} points, while the "
        f"Meta-RNN after the same meta-steps is {-max(large_rnn):.1f} to {-min(large_rnn):.1f} points below SGD "
        "and cannot read a new input size.\n"
        f"* **SymLA** carries the sharing to reinforcement learning: trained on 2 arms, it beats UCB1 and Thompson "
        f"sampling on 5 and 10 arms by {min(lead):.2f} to {max(lead):.2f} reward, which an RL² GRU cannot even "
        "attempt.\n"
        f"* **The price** is compute: every learned variable is a state to backpropagate through, and a VSML "
        f"meta-step takes {vsml_sizes[0]['seconds'] / COST['Meta-RNN', 16]['seconds']:.0f} times the Meta-RNN's "
        "time at 16 inputs here.\n"
        f"* **You built one**: your layer, meta-trained for {META_STEPS} meta-steps, predicts "
        f"{format_accuracy(*built_acc)} of held-out digits examples online, tuned SGD "
        f"{format_accuracy(*mean_confidence_interval(BUILT_SGD.mean(1)))}."))

# %% [markdown]
# **Try it** (the commands are in the last cell and in `data/vsml/README.md`).
# Meta-train the VSML of section 4 for longer and see which rows move; meta-train on
# Omniglot and test on digits; feed only the label and see whether VSML
# still learns (it then has to discover the error signal itself); continue
# the two-layer clone of section 3 and see whether the hidden layer's update
# error falls well below 1.
#
# **Next:** 08 · GPICL: when does a large in-context learner stop memorising
# its tasks and start to generalise?

# %% [markdown] jupyter={"source_hidden": true}
# ## How this was made
#
# The runs this notebook loads are in `data/vsml/` (`scratch`, `metarnn`,
# `fastweight`, `clone`, `clone_2layer`, `scratch_2layer`, `large_omniglot/`,
# `symla/`). `data/vsml/README.md`
# gives, for each, the command that made it, its meta-steps, wall time and
# seconds per meta-step, and the machine: a 2-core CPU shared with other
# training jobs, one torch thread, every run stopped by its time limit. The
# seconds per meta-step in the run folders were measured on that loaded
# machine, so they are not comparable with section 8's. The two-layer runs
# came later, with `--layers 2 --hidden-units 8`; the clone used 16 streams
# per meta-step and an Adam step size of 0.01 to make more meta-steps in its
# 15 minutes, and `scratch_2layer/results_1layer_247_steps.json` is the
# one-layer learner trained on the same tasks for the same meta-steps. The
# Meta-RNN and the fast-weight learner were first trained for VSML's number of
# meta-steps and evaluated (`results_969_steps.json`), then resumed
# (`--resume`) for about VSML's wall time. Section 9's build-it cell takes a
# few minutes at most on a laptop CPU. The Try-it options: `--dataset
# omniglot` to meta-train on Omniglot, `--feedback label` to feed only the
# label.
#
# SymLA and its RL² GRU (`data/vsml/symla/symla`, `data/vsml/symla/rl2`)
# were made by one command of the former command line,
# `python -m course_lib.symla --arms 2 --horizon 10 --iterations 3000 --max-minutes 4 --out data/vsml/symla`
# (3,000 A2C updates each, under a minute for SymLA), and moved into run
# folders by `scripts/convert_runs.py`. Today's commands for the same
# configurations (they draw new bandits, so they train a new sample of these
# runs):
#
# ```bash
# python -m course_lib train symla --arms 2 --horizon 10 --steps 3000 --out data/vsml/symla/symla
# python -m course_lib train rl2 --task independent --arms 2 --horizon 10 --steps 3000 --out data/vsml/symla/rl2
# python -m course_lib eval symla --out data/vsml/symla/symla --test-episodes 2000
# ```
#
# The "Try it" run, on a copy so that the committed folder stays as it is:
#
# ```bash
# cp -r data/vsml/scratch runs/scratch
# python -m course_lib train vsml --out runs/scratch --resume --max-minutes 30
# ```
