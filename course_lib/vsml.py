"""VSML: variable-shared meta learning (Kirsch & Schmidhuber, NeurIPS 2021), notebook 07.

"Meta Learning Backpropagation and Improving It": every weight ``w_ab`` of a
dense layer (input unit ``a``, output unit ``b``) becomes the state
``s_ab = (h_ab, c_ab)`` of a tiny LSTM, and all ``A x B`` LSTMs share ONE set
of meta-parameters ``theta``. Learning is what the states do while the layer
reads a stream of examples; meta-learning tunes ``theta``. One micro-tick
(``M`` = message size, ``H`` = LSTM hidden):

    forward message into cell ab:   f_a  in R^M   (from input unit a; f_a[0] = x_a)
    backward message into cell ab:  g_b  in R^M   (from output unit b; g_b[0] = onehot(y_{t-1})_b,
                                                   g_b[1] = error e_{t-1,b} = softmax(z_{t-1})_b - onehot(y_{t-1})_b)
    gates_ab = f_a W_f + g_b W_g + h_ab W_h + bias           in R^{4H}
    i, f, o  = sigmoid(gates_ab[i, f, o]);   u = tanh(gates_ab[u])
    c_ab    <- f * c_ab + i * u
    h_ab    <- o * tanh(c_ab)
after the last micro-tick of a step:
    forward message out of output unit b:   m_b  = mean_a h_ab W_out     (M values)
    backward message out of input unit a:   n_a  = mean_b h_ab W_back    (M values; for stacked layers)

Means over cells make the same ``theta`` run any number of inputs and
outputs, in any order. At step ``t`` the cells read ``x_t`` and the feedback
about step ``t-1`` and predict ``m_b[0]`` BEFORE ``y_t`` is given; the
meta-loss is the cross-entropy of these predictions over the stream.

``config.layers > 1`` stacks layers (each with its own ``theta``) into a
network, as an MLP stacks dense layers: hidden unit ``j`` sends
``tanh(m_j[0])`` up as the next layer's input ``x_j``, and the backward
messages of that layer's cells out of unit ``j`` (times ``tanh'``) down as
the error of the layer below. Each step first passes the error about
``t-1`` down (top layer to second), then ``x_t`` up (:meth:`VSMLLearner.propagate`).

The other learners of a run (``config.learner``) are :class:`MetaRNN` and
:class:`FastWeightLearner`; ``config.mode = "clone"`` trains the cells to
imitate SGD (:func:`clone_loss`), through every layer. ``python -m course_lib
train vsml`` trains a run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from .data import standardise
from .episodes import step_generator
from .evaluation import mean_confidence_interval
from .runs import RunError, RunSpec, Trainer
from .runtime import progress_bar

# ---------------- Configuration

MODES = ("scratch", "clone")
LEARNERS = ("vsml", "metarnn", "fastweight")
DATASETS = ("digits", "mnist", "omniglot")
FEEDBACK = ("label", "error", "both")
# Classes of each dataset's smaller split (Omniglot: Lake's evaluation alphabets); a run's tasks need ``ways``.
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
    layers: int = 1  # VSML layers stacked (1: the paper's single-layer setup); VSML only
    hidden_units: int = 8  # units of each hidden layer (layers > 1)
    ticks: int = 2  # micro-ticks per example (paper default)
    feedback: str = "both"  # what enters as backward message: label, error or both
    metarnn_hidden: int = 128  # the Meta-RNN baseline's LSTM size
    fastweight_size: int = 32  # keys and values of the fast-weight learner (its state: size x size)
    meta_batch: int = 128  # streams (tasks) in parallel per meta-step
    truncation: int = 100  # truncated BPTT window (steps); >= stream_length means full BPTT
    steps: int = 100000  # meta-steps (--max-minutes usually stops first)
    meta_lr: float = 3e-3  # Adam on the meta-parameters (with gradient clipping); there is no inner rate
    grad_clip: float = 1.0
    clone_lr: float = 0.1  # the SGD learning rate that clone mode imitates
    eval_input_size: int = 32  # the "different input size" of the test streams (VSML only)
    eval_datasets: str = "digits,mnist,omniglot"  # test streams; the training dataset's on its held-out part
    seed: int = 0

    def __post_init__(self) -> None:
        fields = vars(self)
        checks = [(fields[name] in allowed, f"{name} must be one of {allowed}, got {fields[name]!r}")
                  for name, allowed in (("mode", MODES), ("learner", LEARNERS), ("dataset", DATASETS),
                                        ("feedback", FEEDBACK))]
        checks += [
            (not (self.mode == "clone" and self.learner != "vsml"), "clone mode needs --learner vsml"),
            (not (self.mode == "clone" and self.feedback == "label"), "clone mode needs the error as feedback"),
            (not (self.layers > 1 and self.learner != "vsml"), "--layers needs --learner vsml"),
            (bool(self.eval_names) and set(self.eval_names) <= set(DATASETS),
             f"eval_datasets must be a comma list of {DATASETS}, got {self.eval_datasets!r}"),
        ]
        positive = ("input_size", "ways", "stream_length", "message_size", "hidden", "layers", "hidden_units",
                    "ticks", "metarnn_hidden",
                    "fastweight_size", "meta_batch", "truncation", "eval_input_size")
        checks += [(isinstance(fields[name], int) and fields[name] >= 1,
                    f"{name} must be a positive integer, got {fields[name]!r}") for name in positive]
        checks += [
            (isinstance(self.steps, int) and self.steps >= 0, f"steps must be >= 0, got {self.steps!r}"),
            (self.ways >= 2, f"ways must be at least 2, got {self.ways}"),
            (self.message_size >= 2, "message_size must be at least 2 (label and error components)"),
            (self.meta_lr > 0 and self.clone_lr > 0 and self.grad_clip > 0,
             "meta_lr, clone_lr and grad_clip must be > 0"),
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


# ---------------- The VSML layer (one LSTM per connection, shared meta-parameters) and the three learners


def zero_state(reference: torch.Tensor, shapes, device=None, dtype=None) -> tuple[torch.Tensor, ...]:
    """Zero tensors of ``shapes``, on ``reference``'s device and dtype unless others are given."""
    device = reference.device if device is None else device
    dtype = reference.dtype if dtype is None else dtype
    return tuple(torch.zeros(shape, device=device, dtype=dtype) for shape in shapes)


class VSMLLayer(nn.Module):
    """A dense layer whose weights are LSTM states ``(h, c)``, each ``[tasks, A, B, H]``."""

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
        shape = (tasks, inputs, outputs, self.hidden)
        return zero_state(self.w_hidden, (shape, shape), device, dtype)

    def drive(self, forward_in: torch.Tensor, backward_in: torch.Tensor) -> torch.Tensor:
        """The input part of the gates, ``[T, A, B, 4H]``, from ``forward_in [T, A, M]``, ``backward_in [T, B, M]``.

        Computed per unit, broadcast over the grid, once per step: messages in do not change between ticks.
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
        """``(forward_out [T, B, M], backward_out [T, A, M])``: means over the cells of a unit."""
        h = state[0]
        return h.mean(dim=1) @ self.w_out, h.mean(dim=2) @ self.w_back_out  # mean(h) W == mean(h W), cheaper

    def forward(self, state, forward_in, backward_in, ticks: int = 2):
        """``ticks`` micro-ticks with the same messages in; returns ``(state, forward_out, backward_out)``."""
        drive = self.drive(forward_in, backward_in)
        for _ in range(ticks):
            state = self.tick(state, drive)
        return (state, *self.messages(state))


def feedback_messages(previous_logits, previous_labels, ways: int, message_size: int, feedback: str, dtype):
    """Backward messages ``[T, B, M]`` about step t-1: onehot(y_{t-1}) and the error softmax(z_{t-1}) -
    onehot(y_{t-1}) that backprop would send. ``previous_labels`` < 0 means "no feedback" (t = 0)."""
    given = (previous_labels >= 0).to(dtype)[:, None]
    onehot = F.one_hot(previous_labels.clamp(min=0), ways).to(dtype) * given
    zeros = torch.zeros_like(onehot)
    label = onehot if feedback in ("label", "both") else zeros
    with_error = feedback in ("error", "both") and previous_logits is not None
    error = (torch.softmax(previous_logits, dim=-1) - onehot) * given if with_error else zeros
    return F.pad(torch.stack([label, error], dim=-1), (0, message_size - 2))  # [T, B, M]


class VSMLLearner(nn.Module):
    """A stack of ``config.layers`` VSML layers as an online classifier (one layer: the paper's setup).

    Between two layers sit hidden units, as in an MLP: unit ``j`` adds up the
    forward messages of its cells (component 0), squashes the total with tanh
    and sends it up as the next layer's input; going down it adds up the
    backward messages (component 1), multiplies by tanh' and sends that as
    the lower layer's error. One number each way, as backprop's units pass.
    The state is a flat tuple: ``(h, c)`` of every layer, bottom first, then
    every hidden layer's activations ``[T, units]`` of the last step (the
    backward pass reads them again).
    """

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = VSMLLayer(config.message_size, config.hidden)  # the output layer
        # Clone mode reads w_ab from the cell memory c_ab, an additive accumulator like an SGD weight.
        self.weight_readout = nn.Parameter(torch.randn(config.hidden) / math.sqrt(config.hidden))
        # Below the output layer, input side first; each with its own theta (its job differs).
        self.hidden_layers = nn.ModuleList(VSMLLayer(config.message_size, config.hidden)
                                           for _ in range(config.layers - 1))

    @property
    def layers(self) -> list[VSMLLayer]:
        return [*self.hidden_layers, self.layer]

    def widths(self, inputs: int, outputs: int) -> list[int]:
        return [inputs] + [self.config.hidden_units] * (self.config.layers - 1) + [outputs]

    def initial_weights(self, inputs: int, outputs: int, device=None, dtype=None) -> list[torch.Tensor]:
        """The weights the layers start from, ``[A_l, B_l]`` each: zero for the output layer; a fixed
        random draw, variance 1 / A_l, for a hidden layer, whose units all-zero weights would keep
        identical (a saddle of backprop, and a symmetry the shared theta cannot break)."""
        widths = self.widths(inputs, outputs)
        generator = torch.Generator().manual_seed(0)  # the same for every task: its projection is new anyway
        weights = [torch.randn(a, b, generator=generator) / math.sqrt(a) for a, b in zip(widths[:-2], widths[1:-1])]
        weights.append(torch.zeros(widths[-2], widths[-1]))
        dtype = self.weight_readout.dtype if dtype is None else dtype
        return [w.to(device=device or self.weight_readout.device, dtype=dtype) for w in weights]

    def initial_state(self, tasks: int, inputs: int, outputs: int, device=None, dtype=None):
        widths = self.widths(inputs, outputs)
        cells = []
        for layer, w, a, b in zip(self.layers, self.initial_weights(inputs, outputs, device, dtype),
                                  widths[:-1], widths[1:]):
            h, c = layer.initial_state(tasks, a, b, device, dtype)
            if w.any():  # the smallest cell memory that reads out as w_ab: c_ab = w_ab r / |r|^2
                r = self.weight_readout.to(c.dtype)
                c = c + w[..., None] * r / r.pow(2).sum()
            cells += [h, c]
        return (*cells, *zero_state(cells[0], [(tasks, width) for width in widths[1:-1]]))

    def split(self, state):
        """``(cells: (h, c) per layer, bottom first; activations: per hidden layer, at the last step)``."""
        count = len(self.layers)
        return [state[2 * i:2 * i + 2] for i in range(count)], list(state[2 * count:])

    def summed(self, message: torch.Tensor, cells: int) -> torch.Tensor:
        """A unit's total over its ``cells``: clone mode sums (as the cloned network adds w x over its
        inputs), scratch mode keeps the mean (so the same theta reads any layer size)."""
        return message * cells if self.config.mode == "clone" else message

    def step(self, state, x, previous_logits, previous_labels):
        """Read x_t [T, A] and feedback about t-1; return (logits for x_t [T, B], new state)."""
        ways = state[2 * len(self.layers) - 1].shape[2]
        feedback = feedback_messages(previous_logits, previous_labels, ways, self.config.message_size,
                                     self.config.feedback, x.dtype)
        return self.propagate(state, x, feedback)[:2]

    def propagate(self, state, x, feedback, teacher=None):
        """One step of the network: ``(logits [T, B], state, sent)``; ``sent`` holds, per hidden layer (input
        side first), its ``activations`` and the ``errors`` (before tanh') the layer above sent it, ``[T, units]``.
        ``teacher`` (clone mode): the same two lists from SGD, which then cross the layer boundaries instead."""
        cells, activations = self.split(state)
        ticks, top, size = self.config.ticks, len(self.layers) - 1, self.config.message_size
        errors_in, sent = [None] * top + [feedback], {"activations": [None] * top, "errors": [None] * top}
        # Backward sweep, output layer down to the second: a layer reads the error from above next to the input
        # it read last step (a weight's gradient is input times error) and sends the error w.r.t. that input down.
        for i in range(top, 0, -1):
            below = F.pad(activations[i - 1][..., None], (0, size - 1))
            cells[i], _, backward_out = self.layers[i](cells[i], below, errors_in[i], ticks)
            error = sent["errors"][i - 1] = self.summed(backward_out[..., 1], errors_in[i].shape[1])
            if teacher is not None:
                error = teacher["errors"][i - 1]
            slope = 1 - activations[i - 1].pow(2)  # tanh'(a) = 1 - tanh(a)^2: the error w.r.t. the unit's total
            errors_in[i - 1] = F.pad((error * slope)[..., None], (1, size - 2))  # component 1, as e at the top
        # Forward sweep, input layer up: the first layer reads x_t and its error together (nothing below waits
        # for its backward message); every layer reads the newest message from each side.
        forward_in = F.pad(x[..., None], (0, size - 1))  # [T, A, M], component 0 = x_a
        for i, layer in enumerate(self.layers):
            cells[i], forward_out, _ = layer(cells[i], forward_in, errors_in[i], ticks)
            total = self.summed(forward_out[..., 0], forward_in.shape[1])
            if i < top:  # a hidden unit: its activation is the next layer's input
                activation = sent["activations"][i] = torch.tanh(total)
                if teacher is not None:
                    activation = teacher["activations"][i]
                activations[i] = activation
                forward_in = F.pad(activation[..., None], (0, size - 1))
        return total, (*[s for cell in cells for s in cell], *activations), sent

    def weights(self, state, layer: int = -1) -> torch.Tensor:
        """The weights the cells of a layer (default: the output layer) represent, ``[T, A, B]`` (clone mode)."""
        return self.split(state)[0][layer][1] @ self.weight_readout

    def activations(self, state) -> list[torch.Tensor]:
        """The hidden units' activations at the last step, ``[T, units]`` per hidden layer."""
        return self.split(state)[1]


class FixedSizeLearner(nn.Module):
    """A learner whose input size and number of classes are part of its meta-parameters."""

    def initial_state(self, tasks: int, inputs: int, outputs: int, device=None, dtype=None):
        if inputs != self.config.input_size or outputs != self.config.ways:
            raise ValueError(f"the {self.title} was built for {self.config.input_size} inputs and "
                             f"{self.config.ways} classes, got {inputs} and {outputs}")
        return zero_state(self.head.weight, self.state_shapes(tasks), device, dtype)


class MetaRNN(FixedSizeLearner):
    """The baseline: an LSTM reading ``[x_t, feedback_{t-1}]``."""

    title = "Meta-RNN"

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = nn.LSTMCell(config.input_size + 2 * config.ways, config.metarnn_hidden)
        self.head = nn.Linear(config.metarnn_hidden, config.ways)

    def state_shapes(self, tasks: int):
        return (tasks, self.config.metarnn_hidden), (tasks, self.config.metarnn_hidden)

    def step(self, state, x, previous_logits, previous_labels):
        ways = self.config.ways
        fb = feedback_messages(previous_logits, previous_labels, ways, 2, self.config.feedback, x.dtype)  # [T, B, 2]
        h, c = self.cell(torch.cat([x, fb[..., 0], fb[..., 1]], dim=-1), state)
        return self.head(h), (h, c)


class FastWeightLearner(FixedSizeLearner):
    """The in-between model: a fast-weight programmer with a delta rule (Schlag et al. 2021).

    Meta-learned maps write keys and values into a fast weight matrix ``W [d x d]``
    (the learned variables). The label of x_{t-1} arrives at step t, so the key
    of x_{t-1} is kept in the state until then:

        k_t = normalise(K x_t),  q_t = normalise(Q x_t)
        v_t = V fb_{t-1},  beta_t = sigmoid(b . [x_t, fb_{t-1}])
        W_t = W_{t-1} + beta_t (v_t - W_{t-1} k_{t-1}) k_{t-1}^T   (delta-rule write of the pair t-1)
        logits_t = head(W_t q_t)
    """

    title = "fast-weight learner"

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        size, inputs, feedback = config.fastweight_size, config.input_size, 2 * config.ways
        self.key = nn.Linear(inputs, size)
        self.query = nn.Linear(inputs, size)
        self.value = nn.Linear(feedback, size)
        self.strength = nn.Linear(inputs + feedback, 1)
        self.head = nn.Linear(size, config.ways)

    def state_shapes(self, tasks: int):
        size = self.config.fastweight_size
        return (tasks, size, size), (tasks, size)  # W and the key of x_{t-1}

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


LEARNER_CLASSES = {"vsml": VSMLLearner, "metarnn": MetaRNN, "fastweight": FastWeightLearner}


def meta_parameter_count(model: nn.Module) -> int:
    """The meta-parameters a learner uses (VSML's weight readout only in clone mode or to start hidden layers)."""
    unused = getattr(model, "weight_readout", None) if model.config.mode == "scratch" and model.config.layers == 1 \
        else None
    return sum(p.numel() for p in model.parameters() if p is not unused)


def count_variables(config: VSMLConfig, inputs: int | None = None) -> dict:
    """Meta-parameters vs learned variables (state values per task) of every learner, and of linear SGD:
    VSML has more learned variables than meta-parameters, the Meta-RNN the opposite."""
    inputs = inputs or config.input_size
    table = {}
    for name in LEARNERS:
        model = LEARNER_CLASSES[name](dataclasses.replace(config, learner=name, mode="scratch", input_size=inputs,
                                                          layers=config.layers if name == "vsml" else 1))
        meta = meta_parameter_count(model)
        learned = sum(s.numel() for s in model.initial_state(1, inputs, config.ways, device="cpu"))
        table[name] = {"meta_parameters": meta, "learned_variables": learned,
                       "ratio_learned_per_meta": learned / meta}
    table["linear_sgd"] = {"meta_parameters": 1, "learned_variables": (inputs + 1) * config.ways,
                           "ratio_learned_per_meta": float((inputs + 1) * config.ways)}
    return table


def run_stream(model, xs: torch.Tensor, ys: torch.Tensor, state=None, previous=None, return_states=False,
               ways: int | None = None):
    """Online pass over ``xs [T, L, A]``, ``ys [T, L]``: logits ``[T, L, B]``, the state and ``previous``,
    the ``(logits, labels)`` of the last step (so a stream can run in chunks: truncated BPTT)."""
    tasks, length, inputs = xs.shape
    if state is None:
        state = model.initial_state(tasks, inputs, ways or model.config.ways, device=xs.device, dtype=xs.dtype)
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
    return run_stream(model, xs, ys, ways=ways)[0]


# ---------------- Tasks (randomly projected, label-permuted streams of a dataset) and meta-training


@dataclass
class StreamSource:
    """Flattened, normalised images of one split (kept on the device) and their class index."""

    features: torch.Tensor  # [N, D]
    labels: torch.Tensor  # [N]
    name: str

    def __post_init__(self) -> None:
        self.counts = torch.bincount(self.labels)
        self.num_classes = len(self.counts)
        members = torch.split(torch.argsort(self.labels, stable=True), self.counts.tolist())
        self.table = pad_sequence(members, batch_first=True)  # [classes, most examples]: example indices

    def to(self, device) -> "StreamSource":
        return StreamSource(self.features.to(device), self.labels.to(device), self.name)


def sample_streams(source: StreamSource, tasks: int, length: int, ways: int, input_size: int,
                   generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``tasks`` seeded streams ``xs [tasks, length, input_size]``, ``ys [tasks, length]``: per task ``ways``
    random classes in a random order, projected by its own ``P [D, input_size] / sqrt(D)`` (variance ~1)."""
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


def load_sources(name: str, smoke: bool = False, seed: int = 0) -> dict[str, StreamSource]:
    """``{"train": ..., "test": ...}``: disjoint examples (digits, MNIST) or classes (Omniglot), flattened,
    shifted by the training part's per-pixel mean and scaled by its overall std."""
    from . import data

    if name == "omniglot":
        splits = data.omniglot_splits("lake", rotations=False, image_size=28)
        if smoke:
            splits = {k: v.subset_classes(range(20)) for k, v in splits.items()}
        (train_x, train_y), (test_x, test_y) = ((s.images, s.labels) for s in (splits["train"], splits["test"]))
        test_name = "omniglot (unseen alphabets)"
    else:
        images = data.load_digits() if name == "digits" else data.load_mnist_test()
        x, y = images.images, images.labels
        if smoke and name == "mnist":
            x, y = x[:2000], y[:2000]
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 1234))
        cut = int(0.7 * len(y))
        train, test = order[:cut], order[cut:]
        (train_x, train_y), (test_x, test_y) = (x[train], y[train]), (x[test], y[test])
        test_name = f"{name} (held-out examples)"
    train_x, test_x = train_x.flatten(1), test_x.flatten(1)
    mean = train_x.mean(dim=0)
    scale = (train_x - mean).pow(2).mean().sqrt()
    return {"train": StreamSource((train_x - mean) / scale, train_y, name),
            "test": StreamSource((test_x - mean) / scale, test_y, test_name)}


def sgd_trajectory(xs, ys, ways: int, lr: float):
    """True online SGD on a linear classifier (no bias, W_0 = 0): ``weights [T, L, A, B]`` (W_t, which
    predicts x_t and was updated with (x_{t-1}, y_{t-1})) and ``logits [T, L, B]``."""
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


def mlp_sgd_trajectory(xs, ys, initial_weights, lr: float) -> dict:
    """True online SGD on an MLP without biases, tanh between layers, from ``initial_weights`` (``[A, H], ...,
    [H, B]``, the same for every stream). Per step t (each ``[T, L, ...]``, one entry per layer):
    ``weights`` W_t (they predict x_t and were updated with (x_{t-1}, y_{t-1})), ``activations`` (hidden
    layers), ``logits``, and ``input_errors``: for each layer above the first, W_{t-1} e_{t-1}, the error
    w.r.t. its input that backprop sent down to make W_t."""
    tasks, length, _ = xs.shape
    ways = initial_weights[-1].shape[1]
    w = [weight.expand(tasks, *weight.shape) for weight in initial_weights]
    sent = [torch.zeros(tasks, weight.shape[0], device=xs.device, dtype=xs.dtype) for weight in initial_weights[1:]]
    trace = {"weights": [], "activations": [], "logits": [], "input_errors": []}
    for t in range(length):
        inputs = [xs[:, t]]  # forward pass with W_t
        for weight in w[:-1]:
            inputs.append(torch.tanh(torch.einsum("ta,tab->tb", inputs[-1], weight)))
        z = torch.einsum("ta,tab->tb", inputs[-1], w[-1])
        trace["weights"].append(w)
        trace["activations"].append(inputs[1:])
        trace["logits"].append(z)
        trace["input_errors"].append(sent)
        error = torch.softmax(z, -1) - F.one_hot(ys[:, t], ways).to(xs.dtype)  # backward pass: W_{t+1}
        new_w, sent = [None] * len(w), [None] * (len(w) - 1)
        for i in range(len(w) - 1, -1, -1):
            new_w[i] = w[i] - lr * inputs[i][:, :, None] * error[:, None, :]
            if i > 0:
                sent[i - 1] = torch.einsum("tab,tb->ta", w[i], error)  # with W_t, before its update
                error = sent[i - 1] * (1 - inputs[i].pow(2))  # tanh' = 1 - tanh^2
        w = new_w
    return {"weights": [torch.stack(step, 1) for step in zip(*trace["weights"])],
            "activations": [torch.stack(step, 1) for step in zip(*trace["activations"])],
            "logits": torch.stack(trace["logits"], 1),
            "input_errors": [torch.stack(step, 1) for step in zip(*trace["input_errors"])]}


def clone_loss(model: VSMLLearner, xs, ys, clone_lr: float, truncation: int | None = None, backward=True):
    """Backprop cloning: teacher-forced on the true SGD trajectory (of a linear layer, or an MLP).

    The backward message into the output layer carries the TEACHER's error
    e_{t-1}, and every number that crosses a hidden unit is the teacher's too
    (so each layer learns its own part of backprop; compare_clone_to_sgd runs
    them closed-loop). The loss asks every layer's cell memory readout to equal
    SGD's weight W_t, the forward message (times A) to equal SGD's logits
    W_t^T x_t (and each hidden unit's activation), and the backward message out
    of each layer above the first (times B) to equal the error backprop sends
    down; each error scaled by the spread of its target (so the loss is about 1
    for a learner stuck at W = 0).
    """
    ways, message_size = model.config.ways, model.config.message_size
    tasks, length, inputs = xs.shape
    teacher = mlp_sgd_trajectory(xs, ys, model.initial_weights(inputs, ways, xs.device, xs.dtype), clone_lr)
    scale = {name: [target.pow(2).mean().clamp_min(1e-8) for target in teacher[name]]
             for name in ("weights", "activations", "input_errors")}
    z_scale = teacher["logits"].pow(2).mean().clamp_min(1e-8)

    def error(values, name, t):
        return sum((value - target[:, t]).pow(2).mean() / spread
                   for value, target, spread in zip(values, teacher[name], scale[name]))

    truncation = truncation or length
    state = model.initial_state(tasks, inputs, ways, device=xs.device, dtype=xs.dtype)
    no_feedback = (None, torch.full((tasks,), -1, dtype=torch.long, device=xs.device))
    total = 0.0
    for start in range(0, length, truncation):
        chunk = 0.0
        for t in range(start, min(length, start + truncation)):
            previous = (teacher["logits"][:, t - 1], ys[:, t - 1]) if t > 0 else no_feedback
            feedback = feedback_messages(*previous, ways, message_size, model.config.feedback, xs.dtype)
            forced = {"activations": [a[:, t] for a in teacher["activations"]],
                      "errors": [e[:, t] for e in teacher["input_errors"]]}
            logits, state, sent = model.propagate(state, xs[:, t], feedback, teacher=forced)
            chunk = chunk + error([model.weights(state, i) for i in range(len(model.layers))], "weights", t) \
                + (logits - teacher["logits"][:, t]).pow(2).mean() / z_scale \
                + error(sent["activations"], "activations", t) + error(sent["errors"], "input_errors", t)
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
        target = ys[:, start:start + truncation]
        logits, state, previous = run_stream(model, xs[:, start:start + truncation], target, state, previous)
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


# ---------------- Evaluation: online accuracy by examples seen, next to online SGD and Adam

SGD_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # the learning rates the baselines are tuned over
ADAM_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


@torch.no_grad()
def linear_online_logits(xs, ys, ways: int, optimizer: str, lr: float) -> torch.Tensor:
    """Online batch-1 training of ``z = W^T x + b`` with ``"sgd"`` or ``"adam"``, vectorised over streams."""
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


def _mean_ci(per_stream: torch.Tensor) -> dict:
    """Mean and 95% CI half-width over streams (:func:`~course_lib.evaluation.mean_confidence_interval`)."""
    mean, ci95 = mean_confidence_interval(per_stream)
    return {"mean": mean, "ci95": ci95}


def summarise(correct: torch.Tensor) -> dict:
    """``correct [streams, T]`` -> the mean curve; the mean ± 95% CI over streams per window (1-5, 6-10,
    11-25, 26-50, ... examples seen) and overall."""
    correct = correct.double().cpu()
    length = correct.shape[1]
    edges = [e for e in (0, 5, 10, 25, 50, 100, 200, 400, 800) if e < length] + [length]
    return {"curve": [round(v, 4) for v in correct.mean(0).tolist()],
            "windows": {f"{start + 1}-{end}": _mean_ci(correct[:, start:end].mean(1))
                        for start, end in zip(edges[:-1], edges[1:])},
            "all": _mean_ci(correct.mean(1))}


@torch.no_grad()
def evaluate_on(models: dict, source: StreamSource, config: VSMLConfig, input_size: int, streams: int,
                length: int, device, seed: int = 0, chunk: int = 256) -> dict:
    """All learners that can read ``input_size`` inputs, and SGD and Adam (learning rate tuned on other
    streams, seed + 1), on the same seeded streams."""
    def draw(n, s):
        generator = torch.Generator().manual_seed(s)  # CPU generator: same tasks on every device
        parts = [sample_streams(source, min(chunk, n - i), length, config.ways, input_size, generator, device)
                 for i in range(0, n, chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    xs, ys = draw(streams, seed)
    tune_xs, tune_ys = draw(min(streams, 128), seed + 1)
    out = {}
    for name, model in models.items():
        if isinstance(model, FixedSizeLearner) and input_size != model.config.input_size:
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
    """The cloned learner CLOSED-LOOP (its own errors as feedback) next to true SGD: the relative weight
    error ``||W_vsml - W_sgd|| / ||W_sgd||`` (at the end, mean over steps), accuracies, logit correlation.
    With hidden layers, also per layer (``layer1_...`` is the input side): the same weight error, the error
    of the learned update ``W_t - W_0`` relative to SGD's (1 = no better than not learning) and their
    cosine at the end, and each hidden layer's activation correlation."""
    start = model.initial_weights(xs.shape[2], model.config.ways, xs.device, xs.dtype)
    teacher = mlp_sgd_trajectory(xs, ys, start, clone_lr)
    logits, _, _, states = run_stream(model, xs, ys, return_states=True)

    def relative_error(i, origin=0.0):
        weights = torch.stack([model.weights(s, i) for s in states], 1) - origin  # W after reading step t
        target_w = teacher["weights"][i] - origin
        diff = (weights - target_w).flatten(2).norm(dim=-1)
        norm = target_w.flatten(2).norm(dim=-1).clamp_min(1e-8)
        return diff[:, 1:] / norm[:, 1:]

    def update_cosine(i):
        learned, sgd = model.weights(states[-1], i) - start[i], teacher["weights"][i][:, -1] - start[i]
        return F.cosine_similarity(learned.flatten(1), sgd.flatten(1), dim=-1).mean().item()

    def correlation(a, b):
        return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()

    output = relative_error(-1)
    result = {
        "relative_weight_error_final": output[:, -1].mean().item(),
        "relative_weight_error_mean": output.mean().item(),
        "vsml_accuracy": (logits.argmax(-1) == ys).float().mean().item(),
        "sgd_accuracy": (teacher["logits"].argmax(-1) == ys).float().mean().item(),
        "logit_correlation": correlation(logits, teacher["logits"]),
    }
    if len(model.layers) > 1:
        for i in range(len(model.layers)):
            relative = relative_error(i)
            result[f"layer{i + 1}_relative_weight_error_final"] = relative[:, -1].mean().item()
            result[f"layer{i + 1}_relative_weight_error_mean"] = relative.mean().item()
            result[f"layer{i + 1}_relative_update_error_final"] = relative_error(i, start[i])[:, -1].mean().item()
            result[f"layer{i + 1}_update_cosine_final"] = update_cosine(i)
        for i, target in enumerate(teacher["activations"]):
            activations = torch.stack([model.activations(s)[i] for s in states], 1)
            result[f"layer{i + 1}_activation_correlation"] = correlation(activations, target)
    return result


# ---------------- The face the registry reads (course_lib.registry); few-shot episodes as streams (notebook 09)

Config = VSMLConfig
PAPER: dict[str, float] = {}  # the paper's numbers are not on these streams
SMOKE_RUN = ("--meta-batch", "4", "--steps", "2")


def _paper_scale(mode: str = "scratch", learner: str = "vsml", dataset: str = "digits") -> tuple[str, ...]:
    return ("--mode", mode, "--learner", learner, "--dataset", dataset, "--meta-batch", "256", "--steps", "20000")


RUNS = (
    RunSpec("data/vsml/scratch", "VSML, meta-trained from scratch on digits", _paper_scale(), SMOKE_RUN,
            job="vsml_scratch", capstone="vsml"),
    RunSpec("data/vsml/scratch_omniglot", "VSML on the capstone's shared data (Omniglot background)",
            _paper_scale(dataset="omniglot"), SMOKE_RUN, job="vsml_scratch_omniglot", capstone="vsml-omniglot"),
    RunSpec("data/vsml/clone", "VSML, backprop cloning", _paper_scale(mode="clone"), SMOKE_RUN, job="vsml_clone"),
    RunSpec("data/vsml/metarnn", "Meta-RNN baseline", _paper_scale(learner="metarnn"), SMOKE_RUN, job="vsml_metarnn"),
    RunSpec("data/vsml/fastweight", "fast-weight learner"),
    RunSpec("data/vsml/clone_2layer", "VSML, backprop cloning through a hidden layer"),
    RunSpec("data/vsml/scratch_2layer", "two-layer VSML, meta-trained from scratch on digits"),
    RunSpec("data/vsml/large_omniglot/vsml", "VSML at the paper's meta-batch on Omniglot"),
    RunSpec("data/vsml/large_omniglot/metarnn", "Meta-RNN at the paper's meta-batch on Omniglot"),
)
LEARNER_NAMES = {"vsml": "VSML", "metarnn": "Meta-RNN (LSTM) baseline", "fastweight": "Fast-weight learner"}


def build(config: VSMLConfig) -> nn.Module:
    return LEARNER_CLASSES[config.learner](config)


def load_data(config: VSMLConfig, smoke: bool = False) -> dict:
    """The training dataset's training part, and the test part of every test dataset that can be read."""
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
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    source = data["train"].to(device)

    def step(i: int) -> dict[str, float]:
        xs, ys = sample_streams(source, config.meta_batch, config.stream_length, config.ways, config.input_size,
                                step_generator(config.seed, i), device)
        info = meta_step(model, optimizer, config, xs, ys)
        return {name: float(value) for name, value in info.items() if value is not None}

    return Trainer(step, optimizer)


@torch.no_grad()
def evaluate(model: nn.Module, config: VSMLConfig, data: dict, device="cpu", *, settings=(), episodes: int = 256,
             progress: bool = True) -> dict:
    """Online accuracy on ``episodes`` seeded test streams per row (a test dataset at the training input
    size or, VSML only, at ``eval_input_size``), next to tuned SGD and Adam; in clone mode also the
    closed-loop comparison with SGD."""
    sizes = (config.input_size, config.eval_input_size) if config.learner == "vsml" else (config.input_size,)
    rows = [(config.dataset, config.input_size)] + [
        (name, size) for name in config.eval_names if name in data["test"] for size in sizes]
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
    results = {"evaluation": evaluation, "variables": count_variables(config)}
    if clone:
        results["clone"] = clone
    if data.get("skipped"):
        results["skipped_datasets"] = data["skipped"]
    return results


def evaluation_details(settings) -> dict:
    """What results.json records about the test streams besides their number (``test_episodes``)."""
    return {"test_unit": "streams of stream_length examples, per row", "test_seed": "config.seed + 1",
            "tuning_seed": "config.seed + 2", "sgd_grid": list(SGD_GRID), "adam_grid": list(ADAM_GRID)}


def _percent(entry: dict) -> str:
    return f"{100 * entry['mean']:.1f} ± {100 * entry['ci95']:.1f}"


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
        lines += [f"| {name} | " + " | ".join(map(_percent, summary["windows"].values()))
                  + f" | {_percent(summary['all'])} |" for name, summary in entry.items()]
        lines.append("")
    lines += ["## Variables (per task)", "", "| learner | meta-parameters | learned variables | ratio |",
              "|---|---|---|---|"]
    lines += [f"| {name} | {v['meta_parameters']} | {v['learned_variables']} | "
              f"{v['ratio_learned_per_meta']:.3g} |" for name, v in results["variables"].items()]
    if "clone" in results:
        lines += ["", "## Backprop cloning (closed loop vs true SGD)", ""]
        lines += [f"- {row}: " + ", ".join(f"{k} {v:.3f}" for k, v in entry.items())
                  for row, entry in results["clone"].items()]
    if results.get("skipped_datasets"):
        lines += ["", "Skipped (could not be read): "
                  + "; ".join(f"{k} ({v})" for k, v in results["skipped_datasets"].items())]
    return "\n".join(lines) + "\n"


class VSMLPredictor:
    """A few-shot classifier ``(support_x, support_y, query_x) -> logits [Q, ways]`` made of an online learner.

    Each episode: its own random projection (as :func:`sample_streams`) of inputs
    standardised with the support set; the support set in a fresh random order per
    pass, as many passes as fill a training stream; then one more step per query,
    each on its own copy of the state. VSML's output grid has N units.
    """

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        self.model = model
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
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
        xs, ys = (flat_s[order] @ projection).unsqueeze(0).to(device), support_y[order].unsqueeze(0).to(device)
        _, state, (logits, labels) = run_stream(self.model, xs, ys, ways=ways)
        queries = len(query_x)
        state = tuple(s.expand(queries, *s.shape[1:]) for s in state)
        x = (flat_q @ projection).to(device)
        return self.model.step(state, x, logits.expand(queries, -1), labels.expand(queries))[0]


def predictor(model: nn.Module) -> VSMLPredictor:
    return VSMLPredictor(model)


def capstone_row(run: RunSpec, model: nn.Module, payload: dict) -> dict:
    """What the capstone's table says about a run: its data, its variables, where it is in distribution."""
    c = model.config
    replayed = f"support set replayed to a {c.stream_length}-step stream"
    if c.dataset == "omniglot":
        trained_on = f"Omniglot background (Lake, 964 characters), random projections to {c.input_size}"
        note = f"{run.folder}; the capstone's shared meta-training data; {replayed}"
    else:
        trained_on = f"scikit-learn digits (70 % of the images), random projections to {c.input_size}"
        note = (f"{run.folder} (notebook 07's run); {replayed}; meta-trained on digits, so its digits columns are "
                "in-distribution (held-out images, seen classes)")
    return {"trained_on": trained_on, "family": "black-box", "note": note,
            "meta_parameters": count_variables(c)["vsml"]["meta_parameters"],
            "learned_variables": lambda ways, shots: c.input_size * ways * 2 * c.hidden,
            "in_distribution": "digits" if c.dataset == "digits" else "omniglot"}


def describe(config: VSMLConfig) -> str:
    return (f"{LEARNER_NAMES[config.learner]} ({config.mode}) meta-trained on {config.dataset}: "
            f"{config.meta_batch} streams x {config.stream_length} examples per meta-step, {config.ways}-way, "
            f"{config.input_size} inputs")


if __name__ == "__main__":  # the former command line (course_lib.vsml_alias), as recorded in data/vsml/*/config.json
    from .vsml_alias import main

    main()
