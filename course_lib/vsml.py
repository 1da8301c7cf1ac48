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
meta-loss is the cross-entropy of these predictions over the stream. The
other learners of a run (``config.learner``) are :class:`MetaRNN` and
:class:`FastWeightLearner`; ``config.mode = "clone"`` trains the cells to
imitate SGD (:func:`clone_loss`). ``python -m course_lib train vsml`` trains a run.
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
from .evaluation import Z_95
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
        fields = vars(self)
        checks = [(fields[name] in allowed, f"{name} must be one of {allowed}, got {fields[name]!r}")
                  for name, allowed in (("mode", MODES), ("learner", LEARNERS), ("dataset", DATASETS),
                                        ("feedback", FEEDBACK))]
        checks += [
            (not (self.mode == "clone" and self.learner != "vsml"), "clone mode needs --learner vsml"),
            (not (self.mode == "clone" and self.feedback == "label"), "clone mode needs the error as feedback"),
            (bool(self.eval_names) and set(self.eval_names) <= set(DATASETS),
             f"eval_datasets must be a comma list of {DATASETS}, got {self.eval_datasets!r}"),
        ]
        positive = ("input_size", "ways", "stream_length", "message_size", "hidden", "ticks", "metarnn_hidden",
                    "fastweight_size", "meta_batch", "truncation", "eval_input_size")
        checks += [(isinstance(fields[name], int) and fields[name] >= 1,
                    f"{name} must be a positive integer, got {fields[name]!r}") for name in positive]
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
    """One VSML layer as an online classifier (the paper's single-layer setup)."""

    def __init__(self, config: VSMLConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = VSMLLayer(config.message_size, config.hidden)
        # Clone mode reads w_ab from the cell memory c_ab, an additive accumulator like an SGD weight.
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
    """The meta-parameters a learner uses (VSML's weight readout only in clone mode)."""
    unused = getattr(model, "weight_readout", None) if model.config.mode == "scratch" else None
    return sum(p.numel() for p in model.parameters() if p is not unused)


def count_variables(config: VSMLConfig, inputs: int | None = None) -> dict:
    """Meta-parameters vs learned variables (state values per task) of every learner, and of linear SGD:
    VSML has more learned variables than meta-parameters, the Meta-RNN the opposite."""
    inputs = inputs or config.input_size
    table = {}
    for name in LEARNERS:
        model = LEARNER_CLASSES[name](dataclasses.replace(config, learner=name, mode="scratch", input_size=inputs))
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


def clone_loss(model: VSMLLearner, xs, ys, clone_lr: float, truncation: int | None = None, backward=True):
    """Backprop cloning: teacher-forced on the true SGD trajectory.

    The backward message carries the TEACHER's error e_{t-1}; the loss asks
    the cell memory readout to equal the SGD weight W_t and the forward
    message (times A) to equal the SGD logits W_t^T x_t, each error scaled
    by the spread of its target (so the loss is about 1 for a learner stuck at W = 0).
    """
    ways = model.config.ways
    target_w, target_z = sgd_trajectory(xs, ys, ways, clone_lr)
    w_scale = target_w.pow(2).mean().clamp_min(1e-8)
    z_scale = target_z.pow(2).mean().clamp_min(1e-8)
    tasks, length, inputs = xs.shape
    truncation = truncation or length
    state = model.initial_state(tasks, inputs, ways, device=xs.device, dtype=xs.dtype)
    no_feedback = (None, torch.full((tasks,), -1, dtype=torch.long, device=xs.device))
    total = 0.0
    for start in range(0, length, truncation):
        chunk = 0.0
        for t in range(start, min(length, start + truncation)):
            previous = (target_z[:, t - 1], ys[:, t - 1]) if t > 0 else no_feedback
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
    """Mean and 95% CI half-width (normal approximation) over streams."""
    n = len(per_stream)
    ci = Z_95 * per_stream.std(correction=1).item() / math.sqrt(n) if n > 1 else math.nan
    return {"mean": per_stream.mean().item(), "ci95": ci}


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
    error ``||W_vsml - W_sgd|| / ||W_sgd||`` (at the end, mean over steps), accuracies, logit correlation."""
    target_w, target_z = sgd_trajectory(xs, ys, model.config.ways, clone_lr)
    logits, _, _, states = run_stream(model, xs, ys, return_states=True)
    weights = torch.stack([model.weights(s) for s in states], 1)  # W after reading step t
    diff = (weights - target_w).flatten(2).norm(dim=-1)
    norm = target_w.flatten(2).norm(dim=-1).clamp_min(1e-8)
    relative = diff[:, 1:] / norm[:, 1:]
    return {
        "relative_weight_error_final": relative[:, -1].mean().item(),
        "relative_weight_error_mean": relative.mean().item(),
        "vsml_accuracy": (logits.argmax(-1) == ys).float().mean().item(),
        "sgd_accuracy": (target_z.argmax(-1) == ys).float().mean().item(),
        "logit_correlation": torch.corrcoef(torch.stack([logits.flatten(), target_z.flatten()]))[0, 1].item(),
    }


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
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
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
