"""VSML: variable-shared meta learning (Kirsch & Schmidhuber, NeurIPS 2021), in one file.

Introduced in notebook 07. "Meta Learning Backpropagation and Improving It":
replace every weight ``w_ab`` of a dense layer (input unit ``a``, output
unit ``b``) by the state ``s_ab = (h_ab, c_ab)`` of a tiny LSTM. All
``A x B`` LSTMs share ONE set of meta-parameters ``theta``. Learning is
whatever the states do while the layer reads a stream of examples;
meta-learning tunes ``theta``.

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
written by a delta rule) sits in between. The three are variants of one run
(``config.learner``), meta-trained on the same tasks.

Backprop cloning (the paper's first experiment, ``config.mode = "clone"``):
read a weight from each cell, ``w_ab = c_ab . r`` (``r`` a meta-learned
vector; the LSTM memory ``c`` is an additive accumulator, like an SGD
weight), and meta-train the cells, teacher-forced on the true SGD trajectory
of a linear classifier on the same stream, so that ``w_ab`` follows
``w_ab <- w_ab - lr x_a e_b`` and ``A * m_b[0]`` equals the logit
``sum_a w_ab x_a`` (:func:`clone_loss`). :func:`compare_clone_to_sgd` then
runs the clone closed-loop on new streams.

Evaluation is not a few-shot table: every learner reads seeded test streams
of held-out digits, MNIST and Omniglot's unseen alphabets (at the training
input size and, for VSML, at ``eval_input_size``), next to online SGD and
Adam with a tuned learning rate, and :func:`evaluate` reports the online
accuracy by examples seen.

This file holds, top to bottom: the config, the VSML layer and its messages,
the three learners, running a learner on a stream, the tasks, the losses and
one meta-step, the SGD/Adam baselines, evaluation on streams, and the face
that :mod:`course_lib.registry` reads. ``python -m course_lib train vsml``
runs it in a run folder (:mod:`course_lib.runs`)::

    python -m course_lib train vsml --out runs/vsml/scratch --meta-batch 32 --max-minutes 12
    python -m course_lib train vsml --learner metarnn --out runs/vsml/metarnn --meta-batch 32 --steps 969
    python -m course_lib train vsml --mode clone --out runs/vsml/clone --meta-batch 32 --max-minutes 9
    python -m course_lib eval vsml --out runs/vsml/scratch --test-episodes 256   # 256 test streams per row
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .data import standardise
from .episodes import step_generator
from .runs import RunError, RunSpec, Trainer
from .runtime import progress_bar

# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------

MODES = ("scratch", "clone")
LEARNERS = ("vsml", "metarnn", "fastweight")
DATASETS = ("digits", "mnist", "omniglot")
FEEDBACK = ("label", "error", "both")
# Classes of the smaller split of each dataset (Omniglot: Lake's 20 evaluation alphabets): a task's
# ``ways`` classes must exist in every dataset it is trained or tested on.
DATASET_CLASSES = {"digits": 10, "mnist": 10, "omniglot": 659}


@dataclass
class VSMLConfig:
    """Everything a run needs; stored in config.json and the checkpoint."""

    mode: str = "scratch"  # scratch: meta-learn from the prediction loss; clone: imitate SGD
    learner: str = "vsml"  # vsml | metarnn (the baseline) | fastweight (the in-between learner)
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
    lr: float = 3e-3  # Adam on the meta-parameters (with gradient clipping); there is no inner rate
    grad_clip: float = 1.0
    clone_lr: float = 0.1  # the SGD learning rate that clone mode imitates
    eval_input_size: int = 32  # the "different input size" of the test streams (VSML only)
    eval_datasets: str = "digits,mnist,omniglot"  # test streams; the training dataset's on its held-out part
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.learner in LEARNERS, f"learner must be one of {LEARNERS}, got {self.learner!r}"),
            (self.dataset in DATASETS, f"dataset must be one of {DATASETS}, got {self.dataset!r}"),
            (self.feedback in FEEDBACK, f"feedback must be one of {FEEDBACK}, got {self.feedback!r}"),
            (not (self.mode == "clone" and self.learner != "vsml"), "clone mode needs --learner vsml"),
            (not (self.mode == "clone" and self.feedback == "label"), "clone mode needs the error as feedback"),
            (bool(self.eval_names) and set(self.eval_names) <= set(DATASETS),
             f"eval_datasets must be a comma list of {DATASETS}, got {self.eval_datasets!r}"),
        ]
        for name in ("input_size", "ways", "stream_length", "message_size", "hidden", "ticks",
                     "metarnn_hidden", "fastweight_size", "meta_batch", "truncation", "eval_input_size"):
            checks.append((isinstance(getattr(self, name), int) and getattr(self, name) >= 1,
                           f"{name} must be a positive integer, got {getattr(self, name)!r}"))
        checks += [
            (isinstance(self.steps, int) and self.steps >= 0, f"steps must be >= 0, got {self.steps!r}"),
            (self.ways >= 2, f"ways must be at least 2, got {self.ways}"),
            (self.message_size >= 2, "message_size must be at least 2 (label and error components)"),
            (self.lr > 0 and self.clone_lr > 0 and self.grad_clip > 0, "lr, clone_lr and grad_clip must be > 0"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed must be a non-negative integer"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        for name in dict.fromkeys((self.dataset, *self.eval_names)):
            if self.ways > DATASET_CLASSES[name]:
                raise ValueError(
                    f"ways={self.ways}, but {name} has {DATASET_CLASSES[name]} classes and this run "
                    f"{'trains' if name == self.dataset else 'is tested'} on it: choose --ways "
                    f"{DATASET_CLASSES[name]} or fewer, or other datasets (e.g. --dataset omniglot "
                    "--eval-datasets omniglot)")

    @property
    def eval_names(self) -> list[str]:
        """The test datasets, in order, without repeats."""
        return list(dict.fromkeys(name.strip() for name in self.eval_datasets.split(",") if name.strip()))


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


# --------------------------------------------------------------------------
# The three learners: VSML, the Meta-RNN baseline, fast weights
# --------------------------------------------------------------------------


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


FIXED_INPUT_LEARNERS = (MetaRNN, FastWeightLearner)  # their input size is part of their meta-parameters
LEARNER_CLASSES = {"vsml": VSMLLearner, "metarnn": MetaRNN, "fastweight": FastWeightLearner}


def count_variables(config: VSMLConfig, inputs: int | None = None) -> dict:
    """Meta-parameters vs learned variables (state values per task) of every learner here.

    VSML: ~2.4k meta-parameters, ``inputs * ways * 2 * hidden`` learned values
    (grows with the layer); Meta-RNN: ``~4 * hidden * (hidden + inputs)`` meta-parameters,
    ``2 * hidden`` learned; fast weights: in between (``size^2`` learned values).
    """
    inputs = inputs or config.input_size
    table = {}
    for name in LEARNERS:
        model = LEARNER_CLASSES[name](dataclasses.replace(config, learner=name, mode="scratch", input_size=inputs))
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
# Meta-training: scratch (prediction loss) and clone (imitate SGD); one meta-step
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
        if isinstance(model, FIXED_INPUT_LEARNERS) and input_size != model.config.input_size:
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
# Few-shot episodes as streams (the capstone, notebook 09)
# --------------------------------------------------------------------------


class VSMLPredictor:
    """A few-shot classifier ``(support_x, support_y, query_x) -> logits [Q, ways]`` made of an online learner.

    VSML reads one example at a time, then its label, on streams of
    ``input_size`` randomly projected inputs. Each episode gets its own
    Gaussian projection ``pixels -> input_size`` (``/ sqrt(pixels)``, as
    :func:`sample_streams`), inputs standardised with the support set's mean
    and std; the support set is shown in a fresh random order per pass, for
    as many passes as fill the stream length it was trained on, and each
    query is then classified from that state (one more step, its own copy of
    the state, so no query sees another). The output grid has N units:
    VSML's meta-parameters do not depend on the number of classes.
    """

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        self.model = model
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, support_x, support_y, query_x):
        config = self.model.config
        ways, n = int(support_y.max()) + 1, len(support_y)
        device = next(self.model.parameters()).device
        flat_s, flat_q = support_x.flatten(1).float(), query_x.flatten(1).float()
        flat_s, flat_q = standardise(flat_s, flat_s), standardise(flat_q, flat_s)
        dim = flat_s.shape[1]
        projection = torch.randn(dim, config.input_size, generator=self.generator) / math.sqrt(dim)
        passes = max(1, math.ceil(config.stream_length / n))
        order = torch.cat([torch.randperm(n, generator=self.generator) for _ in range(passes)])
        order = order[:max(n, config.stream_length)]
        xs = (flat_s[order] @ projection).unsqueeze(0).to(device)
        ys = support_y[order].unsqueeze(0).to(device)
        with torch.no_grad():
            state = self.model.initial_state(1, config.input_size, ways, device=device)
            previous = (torch.zeros(1, ways, device=device), torch.full((1,), -1, dtype=torch.long, device=device))
            _, state, previous = run_stream(self.model, xs, ys, state, previous)
            Q = len(query_x)
            state = tuple(s.expand(Q, *s.shape[1:]) for s in state)
            previous = (previous[0].expand(Q, -1), previous[1].expand(Q))
            logits, _ = self.model.step(state, (flat_q @ projection).to(device), *previous)
        return logits


# --------------------------------------------------------------------------
# The face the registry reads (course_lib.registry)
# --------------------------------------------------------------------------

Config = VSMLConfig
PAPER: dict[str, float] = {}  # the paper's numbers are not on these streams
def _paper_scale(mode: str = "scratch", learner: str = "vsml", dataset: str = "digits") -> tuple[str, ...]:
    return ("--mode", mode, "--learner", learner, "--dataset", dataset, "--meta-batch", "256", "--steps", "20000")


SMOKE_RUN = ("--meta-batch", "4", "--steps", "2")
RUNS = (
    RunSpec("data/vsml/scratch", "VSML, meta-trained from scratch on digits", _paper_scale(), SMOKE_RUN,
            job="vsml_scratch", capstone="vsml"),
    RunSpec("data/vsml/scratch_omniglot", "VSML on the capstone's shared data (Omniglot background)",
            _paper_scale(dataset="omniglot"), SMOKE_RUN, job="vsml_scratch_omniglot", capstone="vsml-omniglot"),
    RunSpec("data/vsml/clone", "VSML, backprop cloning", _paper_scale(mode="clone"), SMOKE_RUN, job="vsml_clone"),
    RunSpec("data/vsml/metarnn", "Meta-RNN baseline", _paper_scale(learner="metarnn"), SMOKE_RUN, job="vsml_metarnn"),
    RunSpec("data/vsml/fastweight", "fast-weight learner"),
    RunSpec("data/vsml/large_omniglot/vsml", "VSML at the paper's meta-batch on Omniglot"),
    RunSpec("data/vsml/large_omniglot/metarnn", "Meta-RNN at the paper's meta-batch on Omniglot"),
)
LEARNER_NAMES = {"vsml": "VSML", "metarnn": "Meta-RNN (LSTM) baseline", "fastweight": "Fast-weight learner"}


def build(config: VSMLConfig) -> nn.Module:
    return LEARNER_CLASSES[config.learner](config)


def load_data(config: VSMLConfig, smoke: bool = False) -> dict:
    """The training dataset's training part and the test part of every dataset in ``config.eval_datasets``.

    A test dataset that cannot be read is skipped (and reported in the
    results); the training dataset must load.
    """
    try:
        training = load_sources(config.dataset, smoke, config.seed)
    except Exception as error:  # noqa: BLE001 - missing files, no internet: say so before writing anything
        raise RunError(f"cannot load the training dataset {config.dataset!r}: {type(error).__name__}: {error}") from error
    test, skipped = {config.dataset: training["test"]}, {}
    for name in config.eval_names:
        if name not in test:
            try:
                test[name] = load_sources(name, smoke, config.seed)["test"]
            except Exception as error:  # noqa: BLE001 - e.g. no data and no internet
                skipped[name] = f"{type(error).__name__}: {error}"
    for source in (training["train"], *test.values()):
        if config.ways > source.num_classes:
            raise RunError(f"ways={config.ways}, but {source.name} has {source.num_classes} classes here")
    return {"train": training["train"], "test": test, "skipped": skipped}


def trainer(model: nn.Module, config: VSMLConfig, data: dict, device="cpu") -> Trainer:
    """Adam on the meta-parameters; meta-step ``i`` reads streams drawn from ``step_generator(seed, i)``."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    source = data["train"].to(device)

    def step(i: int) -> dict[str, float]:
        xs, ys = sample_streams(source, config.meta_batch, config.stream_length, config.ways, config.input_size,
                                step_generator(config.seed, i), device)
        info = meta_step(model, optimizer, config, xs, ys)
        return {name: float(value) for name, value in info.items() if value is not None}

    return Trainer(step, optimizer)


class _Printed(dict):
    """A results entry (plain JSON) that the command line prints as one short line."""

    def __init__(self, value: dict, line: str) -> None:
        super().__init__(value)
        self.line = line

    def __str__(self) -> str:
        return self.line


@torch.no_grad()
def evaluate(model: nn.Module, config: VSMLConfig, data: dict, device="cpu", *, settings=(), episodes: int = 256,
             progress: bool = True) -> dict:
    """Online accuracy on ``episodes`` seeded test streams per row, next to tuned SGD and Adam.

    Rows: the training dataset's held-out part, then every test dataset, at
    the training input size and (VSML only) at ``eval_input_size``. Returns
    ``{"evaluation": {row: {learner: summary}}, "variables": ...}`` (and
    ``"clone"``: the closed-loop comparison with SGD, in clone mode); the
    few-shot ``settings`` do not apply.
    """
    rows = [(config.dataset, config.input_size)]
    for name in config.eval_names:
        if name not in data["test"]:
            continue
        if name != config.dataset:
            rows.append((name, config.input_size))
        if config.learner == "vsml" and config.eval_input_size != config.input_size:
            rows.append((name, config.eval_input_size))
    evaluation, clone = {}, {}
    for name, size in progress_bar(list(dict.fromkeys(rows)), desc="test streams", disable=not progress):
        source = data["test"][name].to(device)
        row = f"{source.name}, input size {size}"
        evaluation[row] = evaluate_on({config.learner: model}, source, config, size, episodes,
                                      config.stream_length, device, seed=config.seed + 1)
        if config.mode == "clone":
            xs, ys = sample_streams(source, min(episodes, 256), config.stream_length, config.ways, size,
                                    torch.Generator().manual_seed(config.seed + 3), device)
            clone[row] = compare_clone_to_sgd(model, xs, ys, config.clone_lr)
    variables = count_variables(config)
    results = {
        "evaluation": _Printed(evaluation, "; ".join(
            f"{row}: " + ", ".join(f"{k} {100 * v['all']['mean']:.1f}%" for k, v in entry.items())
            for row, entry in evaluation.items())),
        "variables": _Printed(variables, ", ".join(f"{k} {v['meta_parameters']} meta-parameters / "
                                                   f"{v['learned_variables']} learned" for k, v in variables.items())),
    }
    if clone:
        results["clone"] = _Printed(clone, "; ".join(
            f"{row}: weight error {entry['relative_weight_error_final']:.3f}" for row, entry in clone.items()))
    if data.get("skipped"):
        results["skipped_datasets"] = _Printed(data["skipped"], ", ".join(data["skipped"]))
    return results


def evaluation_details(settings) -> dict:
    """What results.json records about the test streams besides their number (``test_episodes``)."""
    return {"test_unit": "streams of stream_length examples, per row", "test_seed": "config.seed + 1",
            "tuning_seed": "config.seed + 2", "sgd_grid": list(SGD_GRID), "adam_grid": list(ADAM_GRID)}


def results_markdown(method, results: dict, config: VSMLConfig, meta: dict) -> str:
    """Online accuracy by window of examples seen, per row; the variable counts; the clone's fidelity."""
    lines = [f"# {describe(config)}",
             "",
             f"{meta['steps_done']} meta-steps of {config.steps}; {meta['test_episodes']} test streams per row, "
             f"on {meta['machine'].get('gpu') or meta['machine']['device']}.",
             "",
             f"Online accuracy (%, mean ± 95% CI over streams) on the i-th example of a stream, predicted before "
             f"its label is given, averaged over the window of i shown. SGD / Adam: online batch-1 linear "
             f"classifier, learning rate tuned on separate streams from the grids {list(SGD_GRID)} / "
             f"{list(ADAM_GRID)}. Every stream has its own random projection; the {config.input_size}-input rows "
             "use the training input size.",
             ""]
    for row, entry in results["evaluation"].items():
        wins = list(next(iter(entry.values()))["windows"])
        lines += [f"## {row}", "", "| learner | " + " | ".join(wins) + " | all |", "|---" * (len(wins) + 2) + "|"]
        for name, summary in entry.items():
            cells = [f"{100 * v['mean']:.1f} ± {100 * v['ci95']:.1f}" for v in summary["windows"].values()]
            lines.append(f"| {name} | " + " | ".join(cells)
                         + f" | {100 * summary['all']['mean']:.1f} ± {100 * summary['all']['ci95']:.1f} |")
        lines.append("")
    lines += ["## Variables (per task)", "", "| learner | meta-parameters | learned variables | ratio |",
              "|---|---|---|---|"]
    for name, row in results["variables"].items():
        lines.append(f"| {name} | {row['meta_parameters']} | {row['learned_variables']} | "
                     f"{row['ratio_learned_per_meta']:.3g} |")
    if "clone" in results:
        lines += ["", "## Backprop cloning (closed loop vs true SGD)", ""]
        for row, entry in results["clone"].items():
            lines.append(f"- {row}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry.items()))
    if results.get("skipped_datasets"):
        lines += ["", "Skipped (could not be read): " + "; ".join(f"{k} ({v})" for k, v in
                                                                    results["skipped_datasets"].items())]
    return "\n".join(lines) + "\n"


def predictor(model: nn.Module) -> VSMLPredictor:
    """Few-shot episodes replayed as a stream (:class:`VSMLPredictor`)."""
    return VSMLPredictor(model)


def capstone_row(run: RunSpec, model: nn.Module, payload: dict) -> dict:
    """What the capstone's table says about a run: its data, its variables, where it is in distribution."""
    c = model.config
    counts = count_variables(c)["vsml"]
    replayed = f"support set replayed to a {c.stream_length}-step stream"
    if c.dataset == "omniglot":
        trained_on = f"Omniglot background (Lake, 964 characters), random projections to {c.input_size}"
        note = f"{run.folder}; the capstone's shared meta-training data; {replayed}"
    else:
        trained_on = f"scikit-learn digits (70 % of the images), random projections to {c.input_size}"
        note = (f"{run.folder} (notebook 07's run); {replayed}; meta-trained on digits, so its digits columns are "
                "in-distribution (held-out images, seen classes)")
    return {"trained_on": trained_on, "family": "black-box", "note": note,
            "meta_parameters": counts["meta_parameters"],
            "learned_variables": lambda ways, shots: c.input_size * ways * 2 * c.hidden,
            "in_distribution": "digits" if c.dataset == "digits" else "omniglot"}


def describe(config: VSMLConfig) -> str:
    return (f"{LEARNER_NAMES[config.learner]} ({config.mode}) meta-trained on {config.dataset}: "
            f"{config.meta_batch} streams x {config.stream_length} examples per meta-step, {config.ways}-way, "
            f"{config.input_size} inputs")


if __name__ == "__main__":  # the former command line (course_lib.vsml_alias), as recorded in data/vsml/*/config.json
    from .vsml_alias import main

    main()
