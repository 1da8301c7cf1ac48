"""VSML: variable-shared meta learning (Kirsch & Schmidhuber, NeurIPS 2021), in one file.

"Meta Learning Backpropagation and Improving It": replace every weight
``w_ab`` of a dense layer (input unit ``a``, output unit ``b``) by the state
``s_ab = (h_ab, c_ab)`` of a tiny LSTM. All ``A x B`` LSTMs share ONE set of
meta-parameters ``theta``. Learning is whatever the states do while the
layer reads a stream of examples; meta-learning tunes ``theta``.

Update equations (one micro-tick; ``M`` = message size, ``H`` = LSTM hidden):

    forward message into cell ab:   f_a  in R^M   (from input unit a; f_a[0] = x_a)
    backward message into cell ab:  g_b  in R^M   (from output unit b; g_b[0] = onehot(y_{t-1})_b,
                                                   g_b[1] = error e_{t-1,b} = softmax(z_{t-1})_b - onehot(y_{t-1})_b)
    gates_ab = f_a W_f + g_b W_g + h_ab W_h + bias           in R^{4H}
    i, f, o  = sigmoid(gates_ab[i, f, o]);   u = tanh(gates_ab[u])
    c_ab    <- f * c_ab + i * u
    h_ab    <- o * tanh(c_ab)
after the last micro-tick of a step:
    forward message out of output unit b:   m_b  = mean_a h_ab W_out     (M values)
    backward message out of input unit a:   n_a  = mean_b h_ab W_back    (M values)

``f_a W_f`` is computed once per input unit and ``g_b W_g`` once per output
unit and broadcast over the grid (the messages in are the same for all
micro-ticks of a step), so a micro-tick is one batched matmul ``h W_h`` over
the whole ``[tasks x A x B]`` grid plus elementwise math. With one layer the
backward messages out of the input units go nowhere; they are computed (and
returned by :meth:`VSMLLayer.forward`) so that layers can be stacked.
Outputs are MEANS over cells, so the same ``theta`` runs any number of inputs
(and outputs), and permuting input units together with their cells permutes
nothing else: VSML is invariant to input size and order by construction.

The online protocol (one example per step, batch size 1 per stream, as in the
paper): at step ``t`` the cells read ``x_t`` as forward messages and the
feedback about step ``t-1`` (its label and/or its error) as backward messages,
run ``ticks`` micro-ticks, and the prediction for ``x_t`` is ``m_b[0]``, read
BEFORE ``y_t`` is given. The meta-loss is the cross-entropy of these
predictions summed over the stream, so a good ``theta`` is one whose cells
learn fast.

Variable ratio (the paper's point, see :func:`count_variables`): VSML has a
few thousand meta-parameters and ``A * B * 2H`` learned variables (one state
per connection), MORE learned variables than meta-parameters. A Meta-RNN (an
LSTM reading ``[x_t, feedback_{t-1}]``, :class:`MetaRNN`) has the opposite:
``~4 * hidden^2`` meta-parameters and only ``2 * hidden`` state values. A
fast-weight learner (:class:`FastWeightLearner`, an outer-product memory
written by a delta rule) sits in between.

Backprop cloning (the paper's first experiment): read a weight from each
cell, ``w_ab = c_ab . r`` (``r`` a meta-learned vector; the LSTM memory ``c``
is an additive accumulator, like an SGD weight), and meta-train the cells,
teacher-forced on the true SGD trajectory of a linear classifier on the same
stream, so that ``w_ab`` follows ``w_ab <- w_ab - lr x_a e_b`` and
``A * m_b[0]`` equals the logit ``sum_a w_ab x_a`` (:func:`clone_loss`).
:func:`compare_clone_to_sgd` then runs the clone closed-loop on new streams.

Also here: online SGD and
Adam baselines with a tuned learning rate, evaluation on unseen datasets with
a different input size, and a resumable command line::

    python -m course_lib.vsml train --mode scratch --model vsml --dataset digits \\
        --out data/vsml/scratch --device cuda --max-minutes 6
    python -m course_lib.vsml train --model metarnn --out data/vsml/metarnn --device cuda --max-minutes 6
    python -m course_lib.vsml train --model fastweight --out data/vsml/fastweight --device cuda --max-minutes 6
    python -m course_lib.vsml train --mode clone --out data/vsml/clone --device cuda --max-minutes 6
    python -m course_lib.vsml train --out data/vsml/scratch --resume        # continue
    python -m course_lib.vsml train --out data/vsml/scratch --eval-only     # evaluate the checkpoint

A run folder holds ``config.json`` (config and commands), ``checkpoint.pt``
(meta-parameters, Adam state, step, history; written atomically every
``--checkpoint-minutes``, at the end, and on Ctrl-C / SIGTERM),
``history.json`` (meta-loss, training accuracy, gradient norm every 10
meta-steps) and ``results.json`` / ``results.md`` (online accuracy by
examples seen with 95% CIs on held-out tasks of the training dataset and on
unseen datasets, at the training input size and at ``eval_input_size``;
SGD and Adam baselines; the variable counts; seconds and GPU memory per
meta-step). ``--max-minutes`` bounds meta-training only; evaluation follows,
also after an early stop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .runtime import machine_description
from .training import write_json

# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

MODES = ("scratch", "clone")
MODELS = ("vsml", "metarnn", "fastweight")
DATASETS = ("digits", "mnist", "omniglot")
FEEDBACK = ("label", "error", "both")


@dataclass
class VSMLConfig:
    """Everything a run needs; stored in config.json and the checkpoint."""

    mode: str = "scratch"  # scratch: meta-learn from the prediction loss; clone: imitate SGD
    model: str = "vsml"  # vsml | metarnn (the baseline) | fastweight (the in-between model)
    dataset: str = "digits"  # meta-training dataset
    input_size: int = 16  # random projection of the images (keeps the grid small)
    ways: int = 5  # classes per task = output units
    stream_length: int = 100  # examples per online stream
    message_size: int = 8  # paper default
    hidden: int = 16  # LSTM hidden per cell (paper default)
    ticks: int = 2  # micro-ticks per example (paper default)
    feedback: str = "both"  # what enters as backward message: label, error or both
    metarnn_hidden: int = 128  # the Meta-RNN baseline's LSTM size
    fastweight_size: int = 32  # keys and values of the fast-weight learner (its state: size x size)
    meta_batch: int = 128  # streams (tasks) in parallel per meta-step
    truncation: int = 100  # truncated BPTT window (steps); >= stream_length means full BPTT
    steps: int = 100000  # meta-steps (--max-minutes usually stops first)
    lr: float = 3e-3  # Adam on the meta-parameters (with gradient clipping)
    grad_clip: float = 1.0
    clone_lr: float = 0.1  # the SGD learning rate that clone mode imitates
    eval_input_size: int = 32  # the "different input size" of the unseen datasets
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, got {self.dataset!r}"),
            (self.feedback in FEEDBACK, f"feedback must be one of {FEEDBACK}, got {self.feedback!r}"),
            (not (self.mode == "clone" and self.model != "vsml"), "clone mode needs --model vsml"),
            (not (self.mode == "clone" and self.feedback == "label"), "clone mode needs the error as feedback"),
        ]
        for name in ("input_size", "ways", "stream_length", "message_size", "hidden", "ticks",
                     "metarnn_hidden", "fastweight_size", "meta_batch", "truncation", "steps", "eval_input_size"):
            checks.append((isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                           f"{name} must be a positive integer, got {getattr(self, name)!r}"))
        checks += [
            (self.ways >= 2, f"ways must be at least 2, got {self.ways}"),
            (self.message_size >= 2, "message_size must be at least 2 (label and error components)"),
            (self.lr > 0 and self.clone_lr > 0 and self.grad_clip > 0, "lr, clone_lr and grad_clip must be > 0"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be a non-negative integer"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# --------------------------------------------------------------------------
# The VSML layer: one LSTM per connection, shared meta-parameters
# --------------------------------------------------------------------------


class VSMLLayer(nn.Module):
    """A dense layer whose weights are LSTM states; vectorised over ``[tasks x A x B]``.

    The state is a pair ``(h, c)`` of ``[tasks, A, B, H]`` tensors; the
    meta-parameters do not depend on ``A`` or ``B``.
    """

    def __init__(self, message_size: int = 8, hidden: int = 16) -> None:
        super().__init__()
        self.message_size, self.hidden = message_size, hidden
        scale = 1.0 / math.sqrt(hidden)
        self.w_forward = nn.Parameter(torch.randn(message_size, 4 * hidden) / math.sqrt(message_size))
        self.w_backward = nn.Parameter(torch.randn(message_size, 4 * hidden) / math.sqrt(message_size))
        self.w_hidden = nn.Parameter(torch.randn(hidden, 4 * hidden) * scale)
        bias = torch.zeros(4 * hidden)
        bias[hidden:2 * hidden] = 1.0  # forget gate open at the start: states persist (they are weights)
        self.bias = nn.Parameter(bias)
        self.w_out = nn.Parameter(torch.randn(hidden, message_size) * scale)
        self.w_back_out = nn.Parameter(torch.randn(hidden, message_size) * scale)

    def initial_state(self, tasks: int, inputs: int, outputs: int, device=None, dtype=None):
        """All cells start from the same (zero) state; what differs later is learned."""
        device = device if device is not None else self.w_hidden.device
        dtype = dtype if dtype is not None else self.w_hidden.dtype
        shape = (tasks, inputs, outputs, self.hidden)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def drive(self, forward_in: torch.Tensor, backward_in: torch.Tensor) -> torch.Tensor:
        """The input part of the gates, ``[T, A, B, 4H]``, from ``forward_in [T, A, M]``, ``backward_in [T, B, M]``.

        Computed once per input unit and once per output unit, then broadcast
        over the grid; messages in do not change during the micro-ticks of one
        step, so this is done once per step, not per tick.
        """
        from_inputs = (forward_in @ self.w_forward)[:, :, None, :]  # [T, A, 1, 4H]
        from_outputs = (backward_in @ self.w_backward)[:, None, :, :]  # [T, 1, B, 4H]
        return from_inputs + from_outputs + self.bias

    def tick(self, state, drive: torch.Tensor):
        """One micro-tick of all cells: the LSTM update with shared weights."""
        h, c = state
        gates = drive + h @ self.w_hidden  # one batched matmul over all [T x A x B] cells
        i, f, u, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def messages(self, state):
        """``(forward_out [T, B, M], backward_out [T, A, M])``: means over the cells of a unit.

        mean(h) W == mean(h W), so we project after averaging (cheaper, same result).
        """
        h = state[0]
        return h.mean(dim=1) @ self.w_out, h.mean(dim=2) @ self.w_back_out

    def forward(self, state, forward_in, backward_in, ticks: int = 2):
        """``ticks`` micro-ticks with the same messages in; returns ``(state, forward_out, backward_out)``."""
        drive = self.drive(forward_in, backward_in)
        for _ in range(ticks):
            state = self.tick(state, drive)
        return (state, *self.messages(state))


def feedback_messages(previous_logits, previous_labels, ways: int, message_size: int, feedback: str, dtype):
    """Backward messages at the output units about step t-1: ``[T, B, M]``.

    Component 0: onehot(y_{t-1}); component 1: the error softmax(z_{t-1}) -
    onehot(y_{t-1}) (the gradient of the cross-entropy wrt the logits, what
    backprop would send). ``previous_labels`` < 0 means "no feedback" (t = 0).
    """
    given = (previous_labels >= 0).to(dtype)[:, None]
    onehot = F.one_hot(previous_labels.clamp(min=0), ways).to(dtype) * given
    zeros = torch.zeros_like(onehot)
    label = onehot if feedback in ("label", "both") else zeros
    if feedback in ("error", "both") and previous_logits is not None:
        error = (torch.softmax(previous_logits, dim=-1) - onehot) * given
    else:
        error = zeros
    return F.pad(torch.stack([label, error], dim=-1), (0, message_size - 2))  # [T, B, M]


class VSMLLearner(nn.Module):
    """One VSML layer as an online classifier (the paper's single-layer setup)."""

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = VSMLLayer(config.message_size, config.hidden)
        # Clone mode: w_ab is read linearly from the cell memory c_ab (an additive
        # accumulator, like an SGD weight); unused in scratch mode.
        self.weight_readout = nn.Parameter(torch.randn(config.hidden) / math.sqrt(config.hidden))

    def initial_state(self, tasks: int, inputs: int, outputs: int, device=None, dtype=None):
        return self.layer.initial_state(tasks, inputs, outputs, device, dtype)

    def step(self, state, x, previous_logits, previous_labels):
        """Read x_t [T, A] and feedback about t-1; return (logits for x_t [T, B], new state)."""
        ways = state[0].shape[2]
        forward_in = F.pad(x[..., None], (0, self.config.message_size - 1))  # [T, A, M], component 0 = x_a
        backward_in = feedback_messages(previous_logits, previous_labels, ways, self.config.message_size,
                                        self.config.feedback, x.dtype)
        state, forward_out, _ = self.layer(state, forward_in, backward_in, self.config.ticks)
        logits = forward_out[..., 0]
        if self.config.mode == "clone":
            logits = logits * x.shape[1]  # the cloned layer sums w_ab x_a: mean * A
        return logits, state

    def weights(self, state) -> torch.Tensor:
        """The weights the cells represent, ``[T, A, B]`` (clone mode)."""
        return state[1] @ self.weight_readout


class MetaRNN(nn.Module):
    """The baseline: an LSTM reading ``[x_t, feedback_{t-1}]`` (fixed input size)."""

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = nn.LSTMCell(config.input_size + 2 * config.ways, config.metarnn_hidden)
        self.head = nn.Linear(config.metarnn_hidden, config.ways)

    def initial_state(self, tasks: int, inputs: int, outputs: int, device=None, dtype=None):
        if inputs != self.config.input_size or outputs != self.config.ways:
            raise ValueError(f"the Meta-RNN was built for {self.config.input_size} inputs and "
                             f"{self.config.ways} classes, got {inputs} and {outputs}")
        device = device if device is not None else self.head.weight.device
        dtype = dtype if dtype is not None else self.head.weight.dtype
        shape = (tasks, self.config.metarnn_hidden)
        return torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype)

    def step(self, state, x, previous_logits, previous_labels):
        ways = self.config.ways
        fb = feedback_messages(previous_logits, previous_labels, ways, 2, self.config.feedback, x.dtype)  # [T, B, 2]
        h, c = self.cell(torch.cat([x, fb[..., 0], fb[..., 1]], dim=-1), state)
        return self.head(h), (h, c)


class FastWeightLearner(nn.Module):
    """The in-between model: a fast-weight programmer with a delta rule (Schlag et al. 2021).

    Slow (meta-learned) maps turn inputs into keys and feedback into values
    and write them into a fast weight matrix ``W [d x d]`` (the learned
    variables, an outer-product memory). The label of x_{t-1} arrives at step
    t, so the key of x_{t-1} is kept in the state until then:

        k_t = normalise(K x_t),  q_t = normalise(Q x_t)
        v_t = V fb_{t-1},  beta_t = sigmoid(b . [x_t, fb_{t-1}])
        W_t = W_{t-1} + beta_t (v_t - W_{t-1} k_{t-1}) k_{t-1}^T   (delta-rule write of the pair t-1)
        logits_t = head(W_t q_t)

    Like the Meta-RNN its input size is fixed; unlike it, most of its learned
    variables (d^2) are a weight matrix written by outer products.
    """

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        size, inputs, feedback = config.fastweight_size, config.input_size, 2 * config.ways
        self.key = nn.Linear(inputs, size)
        self.query = nn.Linear(inputs, size)
        self.value = nn.Linear(feedback, size)
        self.strength = nn.Linear(inputs + feedback, 1)
        self.head = nn.Linear(size, config.ways)

    def initial_state(self, tasks: int, inputs: int, outputs: int, device=None, dtype=None):
        if inputs != self.config.input_size or outputs != self.config.ways:
            raise ValueError(f"the fast-weight learner was built for {self.config.input_size} inputs and "
                             f"{self.config.ways} classes, got {inputs} and {outputs}")
        device = device if device is not None else self.head.weight.device
        dtype = dtype if dtype is not None else self.head.weight.dtype
        size = self.config.fastweight_size
        return (torch.zeros(tasks, size, size, device=device, dtype=dtype),
                torch.zeros(tasks, size, device=device, dtype=dtype))  # W and the key of x_{t-1}

    def step(self, state, x, previous_logits, previous_labels):
        w, previous_key = state
        fb = feedback_messages(previous_logits, previous_labels, self.config.ways, 2, self.config.feedback, x.dtype)
        fb = fb.flatten(1)  # [T, 2 * ways]: onehot(y_{t-1}) and the error, per class
        value = self.value(fb)
        beta = torch.sigmoid(self.strength(torch.cat([x, fb], dim=-1)))[..., None]
        error = value - torch.einsum("tij,tj->ti", w, previous_key)
        w = w + beta * error[:, :, None] * previous_key[:, None, :]  # zero at t = 0: no key yet
        key = F.normalize(self.key(x), dim=-1)
        query = F.normalize(self.query(x), dim=-1)
        return self.head(torch.einsum("tij,tj->ti", w, query)), (w, key)


FIXED_INPUT_MODELS = (MetaRNN, FastWeightLearner)


def build_model(config: VSMLConfig) -> nn.Module:
    return {"vsml": VSMLLearner, "metarnn": MetaRNN, "fastweight": FastWeightLearner}[config.model](config)


def count_variables(config: VSMLConfig, inputs: int | None = None) -> dict:
    """Meta-parameters vs learned variables (state values per task) of every learner here.

    VSML: ~2.4k meta-parameters, ``inputs * ways * 2 * hidden`` learned values
    (grows with the layer); Meta-RNN: ``~4 * hidden * (hidden + inputs)`` meta-parameters,
    ``2 * hidden`` learned; fast weights: in between (``size^2`` learned values).
    """
    inputs = inputs or config.input_size
    table = {}
    for name in MODELS:
        model = build_model(dataclasses.replace(config, model=name, mode="scratch", input_size=inputs))
        meta = sum(p.numel() for p in model.parameters() if name != "vsml" or p is not model.weight_readout)
        state = model.initial_state(1, inputs, config.ways, device="cpu")
        learned = sum(s.numel() for s in state)
        table[name] = {"meta_parameters": meta, "learned_variables": learned,
                       "ratio_learned_per_meta": learned / meta}
    table["linear_sgd"] = {"meta_parameters": 1, "learned_variables": (inputs + 1) * config.ways,
                           "ratio_learned_per_meta": float((inputs + 1) * config.ways)}
    return table


# --------------------------------------------------------------------------
# Running a learner on streams
# --------------------------------------------------------------------------


def run_stream(model, xs: torch.Tensor, ys: torch.Tensor, state=None, previous=None, return_states=False):
    """Online pass over ``xs [T, L, A]``, ``ys [T, L]``; returns logits ``[T, L, B]`` and the carry.

    ``previous = (logits, labels)`` of the step before this chunk (None at the
    start), so a stream can be processed in chunks (truncated BPTT).
    """
    tasks, length, inputs = xs.shape
    ways = model.config.ways if previous is None else previous[0].shape[-1]
    if state is None:
        state = model.initial_state(tasks, inputs, ways, device=xs.device, dtype=xs.dtype)
    if previous is None:
        previous = (None, torch.full((tasks,), -1, dtype=torch.long, device=xs.device))
    outputs, states = [], []
    for t in range(length):
        logits, state = model.step(state, xs[:, t], *previous)
        outputs.append(logits)
        if return_states:
            states.append(state)
        previous = (logits, ys[:, t])
    result = torch.stack(outputs, dim=1), state, previous
    return (*result, states) if return_states else result


def stream_logits(model, xs, ys, ways: int) -> torch.Tensor:
    """Logits for a whole stream (any number of classes ``ways`` for VSML)."""
    tasks = xs.shape[0]
    state = model.initial_state(tasks, xs.shape[2], ways, device=xs.device, dtype=xs.dtype)
    previous = (torch.zeros(tasks, ways, device=xs.device, dtype=xs.dtype),
                torch.full((tasks,), -1, dtype=torch.long, device=xs.device))
    return run_stream(model, xs, ys, state, previous)[0]


# --------------------------------------------------------------------------
# Tasks: randomly projected, label-permuted streams of a dataset
# --------------------------------------------------------------------------


@dataclass
class StreamSource:
    """Flattened, normalised images of one split (kept on the device) and their class index."""

    features: torch.Tensor  # [N, D]
    labels: torch.Tensor  # [N]
    name: str

    def __post_init__(self) -> None:
        classes = int(self.labels.max()) + 1
        counts = torch.bincount(self.labels, minlength=classes)
        order = torch.argsort(self.labels, stable=True)
        table = torch.zeros(classes, int(counts.max()), dtype=torch.long, device=self.labels.device)
        for c, members in enumerate(torch.split(order, counts.tolist())):
            table[c, :len(members)] = members
        self.table, self.counts, self.num_classes = table, counts, classes

    def to(self, device) -> "StreamSource":
        return StreamSource(self.features.to(device), self.labels.to(device), self.name)


def sample_streams(source: StreamSource, tasks: int, length: int, ways: int, input_size: int,
                   generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``tasks`` online streams: ``xs [tasks, length, input_size]``, ``ys [tasks, length]``.

    Each task: ``ways`` random classes in a random order (label permutation),
    examples drawn uniformly from them, projected by its own Gaussian matrix
    ``P [D, input_size] / sqrt(D)`` (the normalised features have mean square 1,
    so projected features have variance about 1). Random numbers come from
    ``generator`` (on the CPU or the device), so tasks are seeded.
    """
    if ways > source.num_classes:
        raise ValueError(f"{source.name} has {source.num_classes} classes, fewer than ways={ways}")
    gdev = generator.device
    classes = torch.rand(tasks, source.num_classes, generator=generator, device=gdev).argsort(dim=1)[:, :ways]
    labels = torch.randint(0, ways, (tasks, length), generator=generator, device=gdev)
    chosen = classes.gather(1, labels).to(source.table.device)
    pick = torch.rand(tasks, length, generator=generator, device=gdev).to(source.table.device)
    index = source.table[chosen, (pick * source.counts[chosen]).long()]
    dim = source.features.shape[1]
    projection = torch.randn(tasks, dim, input_size, generator=generator, device=gdev).to(device) / math.sqrt(dim)
    xs = torch.bmm(source.features[index].to(device), projection)
    return xs, labels.to(device)


def _flatten_and_normalise(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    flat, ref = images.flatten(1), reference.flatten(1)
    mean = ref.mean(dim=0)
    scale = (ref - mean).pow(2).mean().sqrt()
    return (flat - mean) / scale


def load_sources(name: str, smoke: bool = False, seed: int = 0) -> dict[str, StreamSource]:
    """``{"train": ..., "test": ...}``: disjoint examples (digits, MNIST) or classes (Omniglot)."""
    from . import data

    if name == "omniglot":
        splits = data.omniglot_splits("lake", rotations=False, image_size=28)
        if smoke:
            splits = {k: v.subset_classes(range(20)) for k, v in splits.items()}
        train, test = splits["train"], splits["test"]
        return {"train": StreamSource(_flatten_and_normalise(train.images, train.images), train.labels, "omniglot"),
                "test": StreamSource(_flatten_and_normalise(test.images, train.images), test.labels,
                                     "omniglot (unseen alphabets)")}
    images = data.load_digits() if name == "digits" else data.load_mnist_test()
    if smoke and name == "mnist":
        images = data.LabelledImages(images.images[:2000], images.labels[:2000], images.class_names, name=images.name)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed + 1234))
    cut = int(0.7 * len(images))
    train_index, test_index = order[:cut], order[cut:]
    train_images = images.images[train_index]
    return {"train": StreamSource(_flatten_and_normalise(train_images, train_images),
                                  images.labels[train_index], name),
            "test": StreamSource(_flatten_and_normalise(images.images[test_index], train_images),
                                 images.labels[test_index], f"{name} (held-out examples)")}


# --------------------------------------------------------------------------
# Meta-training: scratch (prediction loss) and clone (imitate SGD)
# --------------------------------------------------------------------------


def sgd_trajectory(xs, ys, ways: int, lr: float):
    """True online SGD on a linear classifier (no bias, W_0 = 0), step by step.

    Returns ``weights [T, L, A, B]`` (the weights used to predict x_t: W_t,
    updated with (x_{t-1}, y_{t-1})) and ``logits [T, L, B]``.
    """
    tasks, length, inputs = xs.shape
    w = torch.zeros(tasks, inputs, ways, device=xs.device, dtype=xs.dtype)
    weights, logits = [], []
    for t in range(length):
        z = torch.einsum("ta,tab->tb", xs[:, t], w)
        weights.append(w)
        logits.append(z)
        error = torch.softmax(z, -1) - F.one_hot(ys[:, t], ways).to(xs.dtype)
        w = w - lr * xs[:, t, :, None] * error[:, None, :]
    return torch.stack(weights, 1), torch.stack(logits, 1)


def clone_loss(model: VSMLLearner, xs, ys, clone_lr: float, truncation: int | None = None, backward=True):
    """Backprop cloning: teacher-forced on the true SGD trajectory.

    The backward message carries the TEACHER's error e_{t-1}; the loss asks
    the cell memory readout to equal the SGD weight W_t and the forward
    message (times A) to equal the SGD logits W_t^T x_t. Weight error is
    scaled by the spread of the true weights, so the loss is about 1 for a
    learner that never moves from W = 0.
    """
    ways = model.config.ways
    target_w, target_z = sgd_trajectory(xs, ys, ways, clone_lr)
    w_scale = target_w.pow(2).mean().clamp_min(1e-8)
    z_scale = target_z.pow(2).mean().clamp_min(1e-8)
    tasks, length, _ = xs.shape
    truncation = truncation or length
    state = model.initial_state(tasks, xs.shape[2], ways, device=xs.device, dtype=xs.dtype)
    total = 0.0
    for start in range(0, length, truncation):
        end = min(length, start + truncation)
        chunk = 0.0
        for t in range(start, end):
            previous = (target_z[:, t - 1], ys[:, t - 1]) if t > 0 else (
                None, torch.full((tasks,), -1, dtype=torch.long, device=xs.device))
            logits, state = model.step(state, xs[:, t], *previous)
            chunk = chunk + (model.weights(state) - target_w[:, t]).pow(2).mean() / w_scale \
                + (logits - target_z[:, t]).pow(2).mean() / z_scale
        chunk = chunk / length
        if backward and torch.is_grad_enabled():
            chunk.backward()
            state = tuple(s.detach() for s in state)
        total = total + chunk.detach() if backward else total + chunk
    return total


def scratch_loss(model, xs, ys, truncation: int | None = None, backward=True):
    """Mean online cross-entropy over the stream (truncated BPTT: backward per window)."""
    tasks, length, _ = xs.shape
    truncation = truncation or length
    state, previous, total, correct = None, None, 0.0, 0.0
    for start in range(0, length, truncation):
        logits, state, previous = run_stream(model, xs[:, start:start + truncation], ys[:, start:start + truncation],
                                             state, previous)
        target = ys[:, start:start + truncation]
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum") / (tasks * length)
        correct += (logits.argmax(-1) == target).float().sum().item()
        if backward and torch.is_grad_enabled():
            loss.backward()
            state = tuple(s.detach() for s in state)
            previous = (previous[0].detach(), previous[1])
            total = total + loss.detach()
        else:
            total = total + loss
    return total, correct / (tasks * length)


def meta_step(model, optimizer, config: VSMLConfig, xs, ys) -> dict:
    """One meta-update on a batch of streams; skips (and reports) non-finite gradients."""
    optimizer.zero_grad(set_to_none=True)
    if config.mode == "clone":
        loss, accuracy = clone_loss(model, xs, ys, config.clone_lr, config.truncation), None  # teacher-forced
    else:
        loss, accuracy = scratch_loss(model, xs, ys, config.truncation)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    finite = bool(torch.isfinite(norm)) and bool(torch.isfinite(loss))
    if finite:
        optimizer.step()
    return {"loss": float(loss), "accuracy": accuracy, "grad_norm": float(norm), "skipped": not finite}


# --------------------------------------------------------------------------
# Baselines: online SGD and Adam on a linear classifier (learning rate tuned on a grid)
# --------------------------------------------------------------------------

SGD_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAM_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


@torch.no_grad()
def linear_online_logits(xs, ys, ways: int, optimizer: str, lr: float) -> torch.Tensor:
    """Online batch-1 training of ``z = W^T x + b`` per stream, vectorised over streams."""
    tasks, length, inputs = xs.shape
    params = [torch.zeros(tasks, inputs, ways, device=xs.device, dtype=xs.dtype),
              torch.zeros(tasks, ways, device=xs.device, dtype=xs.dtype)]
    moments = [[torch.zeros_like(p), torch.zeros_like(p)] for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    out = []
    for t in range(length):
        x = xs[:, t]
        z = torch.einsum("ta,tab->tb", x, params[0]) + params[1]
        out.append(z)
        error = torch.softmax(z, -1) - F.one_hot(ys[:, t], ways).to(xs.dtype)
        grads = [x[:, :, None] * error[:, None, :], error]
        for p, g, (m, v) in zip(params, grads, moments):
            if optimizer == "sgd":
                p -= lr * g
            else:
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat, v_hat = m / (1 - beta1 ** (t + 1)), v / (1 - beta2 ** (t + 1))
                p -= lr * m_hat / (v_hat.sqrt() + eps)
    return torch.stack(out, 1)


# --------------------------------------------------------------------------
# Evaluation: online accuracy vs examples seen, with 95% CI over streams
# --------------------------------------------------------------------------

Z_95 = 1.959963984540054


def windows(length: int) -> list[tuple[int, int]]:
    """Step windows [start, end) for "accuracy after k examples": 0-4, 5-9, 10-24, 25-49, ..."""
    edges = [e for e in (0, 5, 10, 25, 50, 100, 200, 400, 800) if e < length] + [length]
    return list(zip(edges[:-1], edges[1:]))


def summarise(correct: torch.Tensor) -> dict:
    """``correct [streams, T]`` -> per-window mean ± 95% CI over streams, and the mean curve."""
    correct = correct.double().cpu()
    result = {"curve": [round(v, 4) for v in correct.mean(0).tolist()], "windows": {}}
    for start, end in windows(correct.shape[1]):
        per_stream = correct[:, start:end].mean(1)
        ci = Z_95 * per_stream.std(correction=1).item() / math.sqrt(len(per_stream)) if len(per_stream) > 1 else math.nan
        result["windows"][f"{start + 1}-{end}"] = {"mean": per_stream.mean().item(), "ci95": ci}
    overall = correct.mean(1)
    result["all"] = {"mean": overall.mean().item(),
                     "ci95": Z_95 * overall.std(correction=1).item() / math.sqrt(len(overall))}
    return result


@torch.no_grad()
def evaluate_on(models: dict, source: StreamSource, config: VSMLConfig, input_size: int, streams: int,
                length: int, device, seed: int = 0, chunk: int = 256) -> dict:
    """All learners on the same seeded streams of ``source`` projected to ``input_size``.

    SGD and Adam pick their learning rate on separate tuning streams (seed + 1).
    Models that cannot read ``input_size`` inputs (the Meta-RNN) are skipped.
    """
    def draw(n, s):
        generator = torch.Generator().manual_seed(s)  # CPU generator: same tasks on every device
        parts = [sample_streams(source, min(chunk, n - i), length, config.ways, input_size, generator, device)
                 for i in range(0, n, chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    xs, ys = draw(streams, seed)
    tune_xs, tune_ys = draw(min(streams, 128), seed + 1)
    out = {}
    for name, model in models.items():
        if isinstance(model, FIXED_INPUT_MODELS) and input_size != model.config.input_size:
            continue
        logits = torch.cat([stream_logits(model, xs[i:i + chunk], ys[i:i + chunk], config.ways)
                            for i in range(0, streams, chunk)])
        out[name] = summarise(logits.argmax(-1) == ys)
    for optimizer, grid in (("sgd", SGD_GRID), ("adam", ADAM_GRID)):
        scores = {lr: (linear_online_logits(tune_xs, tune_ys, config.ways, optimizer, lr).argmax(-1) == tune_ys)
                  .float().mean().item() for lr in grid}
        best = max(scores, key=scores.get)
        out[f"{optimizer} (lr {best:g})"] = summarise(
            linear_online_logits(xs, ys, config.ways, optimizer, best).argmax(-1) == ys)
    return out


@torch.no_grad()
def compare_clone_to_sgd(model: VSMLLearner, xs, ys, clone_lr: float) -> dict:
    """Run the cloned learner CLOSED-LOOP (its own errors as feedback) next to true SGD.

    Returns the relative weight error ``||W_vsml - W_sgd|| / ||W_sgd||`` at the
    end of the stream (and its mean over steps), and both online accuracies.
    """
    ways = model.config.ways
    target_w, target_z = sgd_trajectory(xs, ys, ways, clone_lr)
    logits, _, _, states = run_stream(model, xs, ys, return_states=True)
    weights = torch.stack([model.weights(s) for s in states], 1)  # W after reading step t
    diff = (weights - target_w).flatten(2).norm(dim=-1)
    norm = target_w.flatten(2).norm(dim=-1).clamp_min(1e-8)
    relative = (diff[:, 1:] / norm[:, 1:])
    return {
        "relative_weight_error_final": relative[:, -1].mean().item(),
        "relative_weight_error_mean": relative.mean().item(),
        "vsml_accuracy": (logits.argmax(-1) == ys).float().mean().item(),
        "sgd_accuracy": (target_z.argmax(-1) == ys).float().mean().item(),
        "logit_correlation": torch.corrcoef(torch.stack([logits.flatten(), target_z.flatten()]))[0, 1].item(),
    }


# --------------------------------------------------------------------------
# Looking inside one stream (pure functions, for the notebook's widget)
# --------------------------------------------------------------------------


def effective_weights(model, state) -> torch.Tensor:
    """A readout of the cell states as a weight matrix ``[T, A, B]``.

    Clone mode: the weight the cells were trained to carry, ``w_ab = c_ab . r``.
    Scratch mode has no trained weight readout; we show each cell's
    contribution to the logit of class ``b``, ``(h_ab W_out)[0]`` (the logit is
    the mean of these over ``a``), which is what a weight times its input is
    in a linear layer.
    """
    if not isinstance(model, VSMLLearner):
        raise TypeError("effective weights exist for VSML learners only (their state is one cell per connection)")
    if model.config.mode == "clone":
        return model.weights(state)
    return state[0] @ model.layer.w_out[:, 0]


@torch.no_grad()
def stream_trace(model, xs: torch.Tensor, ys: torch.Tensor) -> dict:
    """Everything the widget shows for ONE stream ``xs [L, A]``, ``ys [L]``, step by step.

    Returns ``probabilities [L, B]`` (predicted before y_t is given),
    ``weights [L, A, B]`` (:func:`effective_weights` after reading step t),
    ``correct [L]`` and the inputs.
    """
    if xs.dim() != 2 or ys.dim() != 1 or len(xs) != len(ys):
        raise ValueError(f"one stream: xs [L, A] and ys [L], got {tuple(xs.shape)} and {tuple(ys.shape)}")
    ways = model.config.ways
    logits, _, _, states = run_stream(model, xs[None], ys[None], return_states=True)
    weights = torch.stack([effective_weights(model, s)[0] for s in states])
    probabilities = torch.softmax(logits[0], dim=-1)
    return {"xs": xs.cpu(), "ys": ys.cpu(), "probabilities": probabilities.cpu(), "weights": weights.cpu(),
            "correct": (probabilities.argmax(-1) == ys).cpu(), "ways": ways, "mode": model.config.mode}


def trace_figure(trace: dict, step: int, title: str | None = None):
    """Three panels at step ``t``: the effective weights, the prediction for x_t, running accuracy."""
    import matplotlib.pyplot as plt

    length = len(trace["ys"])
    if not 0 <= step < length:
        raise ValueError(f"step must be in 0..{length - 1}, got {step}")
    weights = trace["weights"][step].numpy()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1.1, 1, 1.6]})
    limit = max(float(trace["weights"].abs().max()), 1e-6)
    image = axes[0].imshow(weights.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[0].set_xlabel("input unit a")
    axes[0].set_ylabel("class b")
    kind = "c_ab · r (cloned weight)" if trace["mode"] == "clone" else "cell contribution (h_ab W_out)[0]"
    axes[0].set_title(f"effective weights after step {step}\n{kind}", fontsize=9)
    fig.colorbar(image, ax=axes[0], fraction=0.05)
    probabilities = trace["probabilities"][step].numpy()
    label = int(trace["ys"][step])
    colours = ["tab:green" if b == label else "tab:gray" for b in range(trace["ways"])]
    axes[1].bar(range(trace["ways"]), probabilities, color=colours)
    axes[1].set_ylim(0, 1)
    axes[1].set_xticks(range(trace["ways"]))
    axes[1].set_xlabel("class (green: the true one)")
    verdict = "right" if bool(trace["correct"][step]) else "wrong"
    axes[1].set_title(f"prediction for x_{step}, before its label: {verdict}", fontsize=9)
    correct = trace["correct"].float()
    running = torch.cumsum(correct, 0) / torch.arange(1, length + 1)
    p_true = trace["probabilities"][torch.arange(length), trace["ys"]]
    axes[2].plot(range(step + 1), p_true[:step + 1].numpy(), ".", color="tab:blue", markersize=4,
                 label="p(true class)")
    axes[2].plot(range(step + 1), running[:step + 1].numpy(), color="tab:orange", label="running accuracy")
    axes[2].axhline(1 / trace["ways"], color="black", linestyle=":", linewidth=1)
    axes[2].set_xlim(0, length - 1)
    axes[2].set_ylim(0, 1.02)
    axes[2].set_xlabel("example t of the stream")
    axes[2].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Cost of one meta-step: seconds and the memory backprop keeps
# --------------------------------------------------------------------------


def load_run(folder, device="cpu"):
    """``(model, results or None)`` from a run folder written by the command line (``checkpoint.pt``)."""
    folder = Path(folder)
    payload = torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = build_model(VSMLConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    results = folder / "results.json"
    return model, (json.loads(results.read_text()) if results.is_file() else None)


def meta_step_cost(config: VSMLConfig, repeats: int = 3, device="cpu", seed: int = 0) -> dict:
    """Measure one meta-step of ``config`` on random streams: wall seconds (median of
    ``repeats``) and the bytes of tensors autograd saves for the backward pass
    (counted by ``saved_tensors_hooks``, unique storages; on a GPU also the peak
    allocated memory). Measured, not estimated."""
    device = torch.device(device)
    torch.manual_seed(seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(config.meta_batch, config.stream_length, config.input_size, generator=g).to(device)
    ys = torch.randint(0, config.ways, (config.meta_batch, config.stream_length), generator=g).to(device)
    seen, saved = set(), [0]

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            saved[0] += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        meta_step(model, optimizer, config, xs, ys)  # warm-up, and the saved-tensor count
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        started = time.perf_counter()
        meta_step(model, optimizer, config, xs, ys)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return {"seconds": sorted(times)[len(times) // 2], "saved_for_backward_mb": saved[0] / 2**20,
            "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "meta_parameters": sum(p.numel() for p in model.parameters()  # the clone readout is unused in scratch
                                   if not (isinstance(model, VSMLLearner) and config.mode == "scratch"
                                           and p is model.weight_readout)),
            "device": str(device)}


# --------------------------------------------------------------------------
# Command line: config.json, checkpoint.pt, history.json, results.json/md
# --------------------------------------------------------------------------

OPTIONS = ("mode", "model", "dataset", "input_size", "ways", "stream_length", "message_size", "hidden", "ticks",
           "feedback", "metarnn_hidden", "fastweight_size", "meta_batch", "truncation", "steps", "lr", "grad_clip", "clone_lr",
           "eval_input_size", "seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.vsml", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="meta-train (resumable), then evaluate")
    p.add_argument("--out", type=Path, required=True, help="run folder (created)")
    defaults = VSMLConfig()
    for name in OPTIONS:
        kind = type(getattr(defaults, name))
        choices = {"mode": MODES, "model": MODELS, "dataset": DATASETS, "feedback": FEEDBACK}.get(name)
        p.add_argument("--" + name.replace("_", "-"), type=kind, choices=choices,
                       help=f"default {getattr(defaults, name)!r}")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--eval-only", action="store_true", help="only evaluate OUT/checkpoint.pt")
    p.add_argument("--max-minutes", type=float, help="stop meta-training after this long (then evaluate)")
    p.add_argument("--checkpoint-minutes", type=float, default=1.0)
    p.add_argument("--eval-streams", type=int, default=512, help="test streams per dataset (95%% CI over them)")
    p.add_argument("--eval-length", type=int, help="examples per test stream (default: stream_length)")
    p.add_argument("--eval-datasets", default="digits,mnist,omniglot",
                   help="comma list; the training dataset is evaluated on its held-out part")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: automatic)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--smoke-data", action="store_true", help="tiny data subsets (tests)")
    return parser




def _save_atomic(payload: dict, path: Path) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _config_from_args(args) -> VSMLConfig:
    base = {}
    path = args.out / "checkpoint.pt"
    if args.resume or args.eval_only:
        if not path.is_file():
            raise ValueError(f"{'--resume' if args.resume else '--eval-only'}: no {path}; train first")
        base = torch.load(path, map_location="cpu", weights_only=True)["config"]
    stored = dict(base)
    for name in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            if stored and name in ("mode", "model", "message_size", "hidden", "metarnn_hidden",
                                   "fastweight_size", "input_size", "ways") and stored[name] != value:
                raise ValueError(f"--{name.replace('_', '-')} {value} differs from the checkpoint's {stored[name]}")
            base[name] = value
    return VSMLConfig(**base)


def _validate(args) -> VSMLConfig:
    config = _config_from_args(args)
    if args.max_minutes is not None and args.max_minutes < 0:
        raise ValueError("--max-minutes must be >= 0")
    if args.eval_streams < 2:
        raise ValueError("--eval-streams must be at least 2 (a CI needs two streams)")
    if args.eval_length is not None and args.eval_length < 1:
        raise ValueError("--eval-length must be positive")
    if not (args.resume or args.eval_only) and (args.out / "checkpoint.pt").exists():
        raise ValueError(f"{args.out} already holds a run; continue it with --resume, evaluate it with "
                         "--eval-only, or choose another --out")
    unknown = set(filter(None, args.eval_datasets.split(","))) - set(DATASETS)
    if unknown:
        raise ValueError(f"--eval-datasets: unknown {sorted(unknown)}; use {DATASETS}")
    return config




def _results_markdown(config, results: dict, meta: dict) -> str:
    title = {"vsml": "VSML", "metarnn": "Meta-RNN (LSTM) baseline", "fastweight": "Fast-weight learner"}[config.model]
    lines = [f"# {title} ({config.mode}) meta-trained on {config.dataset}",
             "",
             f"{meta['steps_done']} meta-steps of {config.meta_batch} streams x {config.stream_length} examples, "
             f"{config.ways}-way, input size {config.input_size}; {meta['eval_streams']} test streams per row, "
             f"on {meta['machine'].get('gpu', meta['machine']['device'])}. "
             f"Meta-step: {meta['seconds_per_meta_step']} s"
             + ("" if meta["peak_memory_mb"] is None else f", peak GPU memory {meta['peak_memory_mb']} MB") + ".",
             "",
             f"Online accuracy (%, mean ± 95% CI over streams) on the i-th example of a stream, "
             f"predicted before its label is given, averaged over the window of i shown. Stopped: "
             f"{meta['stopped']}. SGD / Adam: online batch-1 linear classifier, learning rate tuned on "
             f"separate streams from the grids {list(SGD_GRID)} / {list(ADAM_GRID)}. Unseen datasets use "
             f"new random projections; the {config.input_size}-dim rows use the training input size.",
             ""]
    for row, entry in results["evaluation"].items():
        wins = list(next(iter(entry.values()))["windows"])
        lines += [f"## {row}", "", "| learner | " + " | ".join(wins) + " | all |",
                  "|---" * (len(wins) + 2) + "|"]
        for name, summary in entry.items():
            cells = [f"{100 * v['mean']:.1f} ± {100 * v['ci95']:.1f}" for v in summary["windows"].values()]
            lines.append(f"| {name} | " + " | ".join(cells)
                         + f" | {100 * summary['all']['mean']:.1f} ± {100 * summary['all']['ci95']:.1f} |")
        lines.append("")
    lines += ["## Variables (per task)", "", "| model | meta-parameters | learned variables | ratio |",
              "|---|---|---|---|"]
    for name, row in results["variables"].items():
        lines.append(f"| {name} | {row['meta_parameters']} | {row['learned_variables']} | "
                     f"{row['ratio_learned_per_meta']:.3g} |")
    if "clone" in results:
        lines += ["", "## Backprop cloning (closed loop vs true SGD)", ""]
        for row, entry in results["clone"].items():
            lines.append(f"- {row}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _validate(args)
        from .runtime import get_device

        device = get_device(args.device)
    except (ValueError, RuntimeError) as error:
        parser.error(str(error))  # exits with status 2 before anything is written
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(config.seed)
    eval_names = [d for d in dict.fromkeys(args.eval_datasets.split(",")) if d]
    try:
        sources = {config.dataset: {k: v.to(device) for k, v in load_sources(config.dataset, args.smoke_data,
                                                                             config.seed).items()}}
    except Exception as error:  # noqa: BLE001 - missing files, no internet: say so, write nothing
        parser.error(f"cannot load the training dataset {config.dataset!r}: {type(error).__name__}: {error}")
    skipped = {}
    for name in eval_names:
        if name not in sources:
            try:  # an evaluation set that cannot be read is skipped (and reported), not fatal
                sources[name] = {"test": load_sources(name, args.smoke_data, config.seed)["test"].to(device)}
            except Exception as error:  # noqa: BLE001 - e.g. no data and no internet
                skipped[name] = f"{type(error).__name__}: {error}"
                print(f"warning: skipping evaluation on {name}: {skipped[name]}", file=sys.stderr)
    eval_names = [name for name in eval_names if name in sources]

    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m course_lib.vsml " + " ".join(sys.argv[1:] if argv is None else argv)
    record = {"config": dataclasses.asdict(config), "command": command}
    if (args.resume or args.eval_only) and (args.out / "config.json").is_file():
        previous = json.loads((args.out / "config.json").read_text())
        record["command"] = previous.get("command", command)
        record["later_commands"] = previous.get("later_commands", []) + [command]
    write_json(args.out / "config.json", record)

    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    history, step, seconds = {"step": [], "loss": [], "accuracy": [], "grad_norm": []}, 0, 0.0
    generator_state = None
    checkpoint_path = args.out / "checkpoint.pt"
    if args.resume or args.eval_only:
        payload = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        history, step, seconds = payload["history"], payload["step"], payload["train_seconds"]
        generator_state = payload.get("generator")
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed + 7919 * (step + 1))  # new tasks after a resume, still seeded
    if generator_state is not None and generator_state.device.type == "cpu" and device.type == "cpu":
        generator.set_state(generator_state)

    def checkpoint():
        _save_atomic({"config": dataclasses.asdict(config), "state_dict": {k: v.detach().cpu() for k, v in
                                                                           model.state_dict().items()},
                      "optimizer": optimizer.state_dict(), "history": history, "step": step,
                      "train_seconds": seconds,
                      "generator": generator.get_state() if device.type == "cpu" else None}, checkpoint_path)
        write_json(args.out / "history.json", history)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started, last_save, steps_this_run, stopped = time.time(), time.time(), 0, "steps done"
    train = sources[config.dataset]["train"]
    if not args.eval_only:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        bar = tqdm(total=config.steps, initial=step, desc=f"{config.model} {config.mode}",
                   disable=args.no_progress, mininterval=2.0)
        try:
            while step < config.steps:
                if args.max_minutes is not None and time.time() - started >= 60 * args.max_minutes:
                    stopped = "time limit"
                    break
                xs, ys = sample_streams(train, config.meta_batch, config.stream_length, config.ways,
                                        config.input_size, generator, device)
                info = meta_step(model, optimizer, config, xs, ys)
                history["skipped_steps"] = history.get("skipped_steps", 0) + int(info["skipped"])
                step += 1
                steps_this_run += 1
                if step % 10 == 0 or step == 1 or step == config.steps:
                    for key in ("loss", "accuracy", "grad_norm"):
                        history[key].append(info[key])
                    history["step"].append(step)
                bar.update(1)
                bar.set_postfix(loss=f"{info['loss']:.3f}", acc=f"{info['accuracy'] or math.nan:.3f}", refresh=False)
                if time.time() - last_save >= 60 * args.checkpoint_minutes:
                    seconds += time.time() - last_save
                    last_save = time.time()
                    checkpoint()
        except KeyboardInterrupt:
            stopped = "interrupted"
            print(f"stopped; resume with: python -m course_lib.vsml train --out {args.out} --resume",
                  file=sys.stderr)
        finally:
            bar.close()
            seconds += time.time() - last_save
            checkpoint()
        if stopped == "interrupted":
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the evaluation
    train_time = time.time() - started
    seconds_per_step = train_time / steps_this_run if steps_this_run else None
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None

    # ---- evaluation (fast: batched streams, no gradients) ----
    eval_started = time.time()
    model.eval()
    length = args.eval_length or config.stream_length
    models = {config.model: model}
    evaluation = {}
    rows = [(config.dataset, config.input_size)]
    for name in eval_names:
        if name != config.dataset:
            rows.append((name, config.input_size))
        if config.model == "vsml" and config.eval_input_size != config.input_size:
            rows.append((name, config.eval_input_size))
    for name, size in dict.fromkeys(rows):
        source = sources[name]["test"]
        evaluation[f"{source.name}, input size {size}"] = evaluate_on(
            models, source, config, size, args.eval_streams, length, device, seed=config.seed + 1)
    results = {"evaluation": evaluation, "variables": count_variables(config)}
    if config.mode == "clone":
        results["clone"] = {}
        for name, size in dict.fromkeys(rows):
            source = sources[name]["test"]
            xs, ys = sample_streams(source, min(args.eval_streams, 256), length, config.ways, size,
                                    torch.Generator().manual_seed(config.seed + 3), device)
            results["clone"][f"{source.name}, input size {size}"] = compare_clone_to_sgd(model, xs, ys,
                                                                                       config.clone_lr)
    meta = {"steps_done": step, "stopped": stopped, "train_seconds_total": round(seconds, 1),
            "train_seconds_this_invocation": round(train_time, 1),
            "seconds_per_meta_step": None if seconds_per_step is None else round(seconds_per_step, 4),
            "peak_memory_mb": None if peak_mb is None else round(peak_mb, 1),
            "eval_streams": args.eval_streams, "eval_length": length, "skipped_datasets": skipped,
            "eval_seconds": round(time.time() - eval_started, 1), "machine": machine_description(device),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json(args.out / "results.json", {**results, "config": dataclasses.asdict(config), **meta})
    (args.out / "results.md").write_text(_results_markdown(config, results, meta))
    for row, entry in evaluation.items():
        print(row + ": " + ", ".join(f"{k} {100 * v['all']['mean']:.1f}%" for k, v in entry.items()))
    return results


if __name__ == "__main__":
    main()
