"""Black-box meta-learners for few-shot classification: the learner is a sequence model (notebook 05).

An episode becomes one sequence (Santoro et al. 2016; Stanford CS330 homework 1): the support
examples in a random order, then the queries, each step an image with the label of the step before,

    input_t = (x_t, onehot(y_{t-1}))        target_t = y_t

so the model must guess y_t before it is told: "learning" the task is whatever its state keeps of
the (x_{t-1}, y_{t-1}) pairs. A query's label is never given (the label slot after a query is zeros,
as at t = 0). Four models share a small convolutional encoder (``SequenceConfig.model``):

* ``lstm``, :class:`LSTMLearner`: an LSTM, its state the learned variables;
* ``mann``, :class:`MemoryAugmentedLSTM`: the LSTM plus a memory of (key, label) pairs read by content;
* ``lrua``, :class:`SantoroMANN`: Santoro et al.'s MANN, an LSTM controller that writes to and reads from
  an external memory with least-recently-used access;
* ``transformer``, :class:`InContextTransformer`: a causal convolution of width 2 puts (x_{t-1}, y_{t-1})
  and x_t in one token (as in SNAIL), then causal self-attention (its growing key/value cache learns).

``--encoder pixels`` gives a model the flattened image instead (CS330's input); ``--loss-on queries`` scores
the query steps only. The run in ``data/black_box/lstm_2way_1shot``, then CS330's plain LSTM::

    python -m course_lib train sequence --model lstm --ways 2 --shots 1 --steps 2000 \\
        --out data/black_box/lstm_2way_1shot
    python -m course_lib train sequence --model lstm --encoder pixels --layers 2 --loss-on queries \\
        --ways 2 --shots 1 --steps 20000 --out data/black_box/lstm_q_2way_1shot
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .data import LabelledImages, omniglot_splits
from .episodes import Episode, EpisodeSampler, step_generator
from .evaluation import AccuracyResult, evaluate_few_shot, mean_confidence_interval
from .models import count_parameters
from .runs import History, RunSpec, Trainer, train_loop

PROTOCOLS = ("lake", "vinyals")
LOSS_ON = ("all", "queries")
ENCODERS = ("conv", "pixels")


@dataclass
class SequenceConfig:
    """One sequence learner and its meta-training (defaults: notebook 05's runs)."""

    model: str = "lstm"  # "lstm", "mann", "lrua" or "transformer" (:data:`MODELS`)
    ways: int = 2
    shots: int = 1
    queries: int = 1  # per class, at the end of each training sequence
    embed: int = 64
    hidden: int = 128  # LSTM hidden size / transformer width
    layers: int = 1  # LSTM layers / transformer blocks
    heads: int = 4
    batch_size: int = 32
    meta_lr: float = 1e-3
    steps: int = 3000
    seed: int = 0
    protocol: str = "lake"
    embed_norm: bool = False  # a layer norm on the image embedding (notebook 05 shows why not)
    encoder: str = "conv"  # "conv" (:class:`SmallConvEncoder`) or "pixels" (the flattened image, as in CS330)
    loss_on: str = "all"  # the steps the loss scores: "all" or "queries" (:func:`sequence_loss`)
    rotations: bool = False  # training characters also rotated by 90, 180, 270 degrees, as new classes
    memory_slots: int = 128  # lrua: N, the memory's slots (Santoro et al.: 128)
    memory_width: int = 40  # lrua: the numbers in a slot (Santoro et al.: 40)
    read_heads: int = 4  # lrua: n, the keys read (and written) per step (Santoro et al.: 4)
    usage_decay: float = 0.95  # lrua: gamma, how much of the last step's usage is kept

    def __post_init__(self) -> None:
        if self.model not in ("lstm", "mann", "lrua", "transformer"):
            raise ValueError(f"model must be lstm, mann, lrua or transformer, got {self.model!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.loss_on not in LOSS_ON:
            raise ValueError(f"loss_on must be one of {LOSS_ON}, got {self.loss_on!r}")
        for name, least in (("ways", 2), ("shots", 1), ("queries", 1), ("embed", 1), ("hidden", 1), ("layers", 1),
                            ("heads", 1), ("batch_size", 1), ("steps", 0), ("seed", 0), ("memory_slots", 1),
                            ("memory_width", 1), ("read_heads", 1)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")
        if self.model == "transformer" and self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if not self.meta_lr > 0:
            raise ValueError(f"meta_lr must be > 0, got {self.meta_lr}")
        if not 0 <= self.usage_decay <= 1:
            raise ValueError(f"usage_decay must be in [0, 1] (it scales the last step's usage), got {self.usage_decay}")
        if self.model == "lrua" and self.read_heads > self.memory_slots:
            raise ValueError(f"read_heads ({self.read_heads}) must be at most memory_slots ({self.memory_slots}): "
                             "each step writes to the read_heads least-used slots; raise --memory-slots")


# ---------------- Episodes as sequences


@dataclass
class LabelSequence:
    """One episode as a sequence (or a batch of them, with a leading batch dim)."""

    images: torch.Tensor  # [L, C, H, W]
    label_inputs: torch.Tensor  # [L, ways]: onehot(y_{t-1}), zeros at t = 0 and after a query
    targets: torch.Tensor  # [L]
    is_query: torch.Tensor  # [L] bool
    instance: torch.Tensor  # [L]: how many support examples of the step's class came before; -1 for queries

    def to(self, device) -> "LabelSequence":
        return LabelSequence(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def shifted_label_inputs(labels: torch.Tensor, is_query: torch.Tensor, ways: int) -> torch.Tensor:
    """``[L] -> [L, ways]``: row t is onehot(labels[t-1]) if step t-1 is a support step, else zeros."""
    previous = F.one_hot(labels[:-1], ways).float() * (~is_query[:-1]).unsqueeze(1).float()
    return F.pad(previous, (0, 0, 1, 0))


def make_sequence(episode: Episode, generator: torch.Generator | None = None,
                  shuffle_queries: bool = True) -> LabelSequence:
    """Support examples in a random order, then the queries (shuffled unless told otherwise)."""
    n_support, n_query, ways = len(episode.support_y), len(episode.query_y), episode.ways
    device = episode.support_x.device
    support_order = torch.randperm(n_support, generator=generator)
    query_order = torch.randperm(n_query, generator=generator) if shuffle_queries else torch.arange(n_query)
    support_order, query_order = support_order.to(device), query_order.to(device)
    images = torch.cat([episode.support_x[support_order], episode.query_x[query_order]])
    targets = torch.cat([episode.support_y[support_order], episode.query_y[query_order]])
    is_query = (torch.arange(n_support + n_query) >= n_support).to(device)
    support_onehot = F.one_hot(targets[:n_support], ways)
    seen_before = (support_onehot.cumsum(0) - support_onehot).gather(1, targets[:n_support, None]).squeeze(1)
    instance = torch.cat([seen_before, torch.full((n_query,), -1, device=device, dtype=torch.long)])
    return LabelSequence(images, shifted_label_inputs(targets, is_query, ways), targets, is_query, instance)


def stack_sequences(sequences: list[LabelSequence]) -> LabelSequence:
    return LabelSequence(*(torch.stack([getattr(s, f) for s in sequences]) for f in LabelSequence.__dataclass_fields__))


def sample_sequences(sampler: EpisodeSampler, batch_size: int,
                     generator: torch.Generator | None = None) -> LabelSequence:
    return stack_sequences([make_sequence(sampler.sample(generator), generator) for _ in range(batch_size)])


# ---------------- Models


class SmallConvEncoder(nn.Module):
    """Three stride-2 3x3 convolutions (16, 32, 32 channels) and a linear layer: [B, 1, 28, 28] -> [B, dim].
    Group norm normalises each image on its own (batch norm would mix the steps of a sequence);
    ``output_norm``, a layer norm on the output, kept the transformer at chance (notebook 05, section 3)."""

    def __init__(self, dim: int = 64, in_channels: int = 1, image_size: int = 28, output_norm: bool = False) -> None:
        super().__init__()
        channels = (in_channels, 16, 32, 32)
        self.convs = nn.Sequential(*(layer for a, b in zip(channels, channels[1:]) for layer in
                                     (nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(1, b), nn.ReLU())))
        side = -(-image_size // 8)  # three halvings, each rounded up
        self.linear = nn.Linear(32 * side * side, dim)
        self.norm = nn.LayerNorm(dim) if output_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(self.convs(x).flatten(1)))


def image_encoder(config: SequenceConfig) -> tuple[nn.Module, int]:
    """The image encoder and the size of its output. ``pixels`` learns nothing before the sequence model:
    a learned encoder gets no use from the images while the model is at chance (they only add noise to
    its guesses), so training can shrink its output to one vector for every image, and stay at chance."""
    if config.encoder == "pixels":
        return nn.Flatten(), 28 * 28
    return SmallConvEncoder(config.embed, output_norm=config.embed_norm), config.embed


def _encode(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``[B, L, C, H, W] -> [B, L, dim]``."""
    B, L = images.shape[:2]
    return encoder(images.reshape(B * L, *images.shape[2:])).view(B, L, -1)


class LSTMLearner(nn.Module):
    """Memory = LSTM state: logits_t = W h_t, (h_t, c_t) = LSTM([enc(x_t), onehot(y_{t-1})], h_{t-1}, c_{t-1})."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, dim = image_encoder(config)
        self.lstm = nn.LSTM(dim + config.ways, config.hidden, num_layers=config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, config.ways)

    def forward(self, images: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(torch.cat([_encode(self.encoder, images), label_inputs], dim=-1))
        return self.head(out)

    def learned_variables(self, length: int) -> int:
        """h and c of every layer: fixed, whatever the sequence length."""
        return 2 * self.config.layers * self.config.hidden


class InContextTransformer(nn.Module):
    """Causal transformer in-context classifier (SNAIL / GPICL style), pre-norm blocks, no positions:
    token_t = W_0 [e_t, e_{t-1}], e_t = [enc(x_t), onehot(y_{t-1})], then ``layers`` causal attention blocks."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden
        self.encoder, dim = image_encoder(config)
        self.token = nn.Linear(2 * (dim + config.ways), width)
        block = nn.TransformerEncoderLayer(width, config.heads, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, config.ways)

    def forward(self, images: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        e = torch.cat([_encode(self.encoder, images), label_inputs], dim=-1)
        previous = F.pad(e, (0, 0, 1, 0))[:, :-1]  # e_{t-1}, zeros at t = 0
        h = self.token(torch.cat([e, previous], dim=-1))
        L = h.shape[1]
        mask = torch.triu(torch.full((L, L), float("-inf"), device=h.device), diagonal=1)
        h = self.blocks(h, mask=mask, is_causal=True)
        return self.head(self.norm(h))

    def learned_variables(self, length: int) -> int:
        """The key/value cache after ``length`` steps: 2 x layers x width numbers per step."""
        return 2 * self.config.layers * self.config.hidden * length


class MemoryAugmentedLSTM(nn.Module):
    """An LSTM with an external memory of (key, label) pairs, a simplified MANN (Santoro et al. 2016).

    Step t writes the pair of step t-1, key k_{t-1} = W_k enc(x_{t-1}), value v_{t-1} = onehot(y_{t-1})
    (the label slot of step t: zeros after a query), and reads by content with its own image's key:

        w_{t,s} = softmax_s( beta * cos(W_k enc(x_t), k_s) ),  s < t with a label,
        r_t = sum_s w_{t,s} v_s,     logits_t = W_o h_t + beta r_t

    with h_t the state of an LSTM as in :class:`LSTMLearner`. The memory only grows (the sequences are short).
    """

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder, dim = image_encoder(config)
        self.lstm = nn.LSTM(dim + config.ways, config.hidden, num_layers=config.layers, batch_first=True)
        self.key = nn.Linear(dim, dim)
        self.log_beta = nn.Parameter(torch.tensor(2.0))
        self.head = nn.Linear(config.hidden, config.ways)

    def read_weights(self, images: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        """``[B, L, L]``: row t is the read distribution over the slots of earlier steps (zeros if none)."""
        keys = F.normalize(self.key(_encode(self.encoder, images)), dim=-1)
        scores = self.log_beta.exp() * keys @ keys.transpose(1, 2)  # [B, t, s]
        L = images.shape[1]
        # slot s holds (k_s, v_s = label_inputs[s + 1]); readable at t if s < t and v_s is a label
        written = F.pad(label_inputs[:, 1:].sum(-1) > 0, (0, 1), value=False)  # [B, L]
        allowed = torch.ones(L, L, dtype=torch.bool, device=images.device).tril(-1).unsqueeze(0) & written.unsqueeze(1)
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
        return torch.nan_to_num(weights, nan=0.0)

    def forward(self, images: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(torch.cat([_encode(self.encoder, images), label_inputs], dim=-1))
        values = F.pad(label_inputs[:, 1:], (0, 0, 0, 1))  # v_s = label slot of step s + 1
        read = self.read_weights(images, label_inputs) @ values
        return self.head(h) + self.log_beta.exp() * read

    def learned_variables(self, length: int) -> int:
        """LSTM state plus the memory: (key + label) numbers for each of the ``length - 1`` written slots."""
        return 2 * self.config.layers * self.config.hidden + (self.key.out_features + self.config.ways) * (length - 1)


def least_used_weights(usage: torch.Tensor, n: int) -> torch.Tensor:
    """w^lu, ``[B, N] -> [B, N]``: 1 at the ``n`` slots of least usage, 0 elsewhere.

    The paper marks slot i when w^u(i) <= m(w^u, n), the n-th smallest usage; when usages tie (all
    slots at t = 0) that marks more than n slots, so ties go to the lower slot index: exactly n marks."""
    order = torch.argsort(usage, dim=-1, stable=True)  # stable: equal usages keep the index order
    return torch.zeros_like(usage).scatter_(-1, order[:, :n], 1.0)


class MemoryState(NamedTuple):
    """What :class:`SantoroMANN` carries from step t to t + 1 (all zeros before the first step)."""

    controller: tuple[torch.Tensor, torch.Tensor]  # (h_t, c_t), each [layers, B, hidden]
    read: torch.Tensor  # r_t, one vector per head: [B, n, W]
    read_weights: torch.Tensor  # w^r_t: [B, n, N]
    usage: torch.Tensor  # w^u_t: [B, N]
    memory: torch.Tensor  # M_t: [B, N, W]


class SantoroMANN(nn.Module):
    """Santoro et al. (2016)'s memory-augmented neural network with least-recently-used access (LRUA).

    An LSTM controller reads a memory M of N slots of W numbers with n keys, and writes each key either
    to the slot it read last step (to bind the label that arrives one step later to that image) or to
    an unused slot (for a new image). With e_t = [enc(x_t), onehot(y_{t-1})] and heads j = 1..n:

        (h_t, c_t) = LSTM([e_t, r^1_{t-1}, ..., r^n_{t-1}], (h_{t-1}, c_{t-1}))
        k^j_t = tanh(W^j_k h_t + b^j_k),          alpha^j_t = W^j_a h_t + b^j_a
        w^lu_{t-1}(i) = 1 if slot i is one of the n least used (smallest w^u_{t-1}(i)), else 0
        w^{w,j}_t = sigmoid(alpha^j_t) w^{r,j}_{t-1} + (1 - sigmoid(alpha^j_t)) w^lu_{t-1}
        M'_{t-1} = M_{t-1} with its least-used slot (smallest w^u_{t-1}) set to zero
        M_t(i) = M'_{t-1}(i) + sum_j w^{w,j}_t(i) k^j_t
        w^{r,j}_t(i) = softmax_i( cos(k^j_t, M_t(i)) ),    r^j_t = sum_i w^{r,j}_t(i) M_t(i)
        w^u_t = gamma w^u_{t-1} + sum_j w^{r,j}_t + sum_j w^{w,j}_t
        logits_t = W_o [h_t, r^1_t, ..., r^n_t] + b_o

    as the paper's section 3.2: no sharpening of the read, the key is what is written, and every head
    shares the one w^lu of n slots. Every state starts at zero for each sequence: the memory is learned
    within a sequence, not a parameter.
    ``config.layers`` stacks LSTM layers (the paper has one); h_t is the top layer's.
    """

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        n, W = config.read_heads, config.memory_width
        self.encoder, dim = image_encoder(config)
        self.controller = nn.LSTM(dim + config.ways + n * W, config.hidden, num_layers=config.layers,
                                  batch_first=True)
        self.key = nn.Linear(config.hidden, n * W)  # k^j_t of every head j, before the tanh
        self.gate = nn.Linear(config.hidden, n)  # alpha^j_t of every head j
        self.head = nn.Linear(config.hidden + n * W, config.ways)

    def initial_state(self, batch_size: int) -> MemoryState:
        """All zeros, on the device and in the dtype of the weights."""
        c, B = self.config, batch_size
        n, N, W = c.read_heads, c.memory_slots, c.memory_width
        zeros = self.head.weight.new_zeros
        return MemoryState((zeros(c.layers, B, c.hidden), zeros(c.layers, B, c.hidden)),
                           zeros(B, n, W), zeros(B, n, N), zeros(B, N), zeros(B, N, W))

    def step(self, e: torch.Tensor, state: MemoryState) -> MemoryState:
        """One step of the equations above: ``e`` = e_t ``[B, dim + ways]``, ``state`` that of step t - 1."""
        B, n = e.shape[0], self.config.read_heads
        out, controller = self.controller(torch.cat([e, state.read.flatten(1)], -1).unsqueeze(1), state.controller)
        h = out[:, 0]
        keys = torch.tanh(self.key(h)).view(B, n, -1)  # k^j_t: [B, n, W]
        gate = torch.sigmoid(self.gate(h)).unsqueeze(-1)  # sigmoid(alpha^j_t): [B, n, 1]
        # write: to the slots read last step, or to the least used ones, by the usage up to step t - 1
        least_used = least_used_weights(state.usage, n).unsqueeze(1)  # w^lu_{t-1}: [B, 1, N]
        write_weights = gate * state.read_weights + (1 - gate) * least_used  # w^{w,j}_t: [B, n, N]
        emptied = state.memory * (1 - least_used_weights(state.usage, 1)).unsqueeze(-1)  # M'_{t-1}
        memory = emptied + write_weights.transpose(1, 2) @ keys  # M_t(i) = M'(i) + sum_j w^{w,j}_t(i) k^j_t
        # read the memory just written, by cosine similarity to each key
        similarity = F.normalize(keys, dim=-1) @ F.normalize(memory, dim=-1).transpose(1, 2)  # [B, n, N]
        read_weights = similarity.softmax(-1)  # w^{r,j}_t
        read = read_weights @ memory  # r^j_t: [B, n, W]
        usage = self.config.usage_decay * state.usage + read_weights.sum(1) + write_weights.sum(1)
        return MemoryState(controller, read, read_weights, usage, memory)

    def forward(self, images: torch.Tensor, label_inputs: torch.Tensor) -> torch.Tensor:
        e = torch.cat([_encode(self.encoder, images), label_inputs], dim=-1)  # e_t for every t: [B, L, dim + ways]
        state = self.initial_state(e.shape[0])
        logits = []
        for t in range(e.shape[1]):  # the memory changes at every step: a loop (the sequences are short)
            state = self.step(e[:, t], state)
            h_top = state.controller[0][-1]
            logits.append(self.head(torch.cat([h_top, state.read.flatten(1)], dim=-1)))
        return torch.stack(logits, dim=1)

    def learned_variables(self, length: int) -> int:
        """Everything :class:`MemoryState` carries: the LSTM's h and c, the n read vectors and n read weightings,
        the usage and the N x W memory; fixed, whatever the sequence length."""
        c = self.config
        n, N, W = c.read_heads, c.memory_slots, c.memory_width
        return 2 * c.layers * c.hidden + n * W + n * N + N + N * W


MODELS = {"lstm": LSTMLearner, "mann": MemoryAugmentedLSTM, "lrua": SantoroMANN,
          "transformer": InContextTransformer}


def build(config: SequenceConfig) -> nn.Module:
    """The model ``config.model`` names, with fresh weights."""
    return MODELS[config.model](config)


def sequence_logits(model: nn.Module, sequence: LabelSequence) -> torch.Tensor:
    """Logits ``[B, L, ways]`` (a batched sequence) or ``[L, ways]`` (one sequence)."""
    if sequence.images.ndim == 4:
        return model(sequence.images.unsqueeze(0), sequence.label_inputs.unsqueeze(0))[0]
    return model(sequence.images, sequence.label_inputs)


# ---------------- Meta-training


def sequence_loss(model: nn.Module, batch: LabelSequence, loss_on: str = "all") -> tuple[torch.Tensor, dict]:
    """Cross-entropy at every step (``loss_on="all"``) or at the query steps only (``"queries"``, as in
    CS330). Reports query accuracy.

    Scoring the support steps gives a shortcut: in a 1-shot episode each support step after the first
    shows a class not seen yet, so "a label not given so far" is right without looking at the image.
    The model can lower the loss that way while its queries stay at chance; scored on the queries
    only, only matching images to the support set lowers it."""
    logits = sequence_logits(model, batch)
    scored = batch.is_query if loss_on == "queries" else torch.ones_like(batch.is_query)
    loss = F.cross_entropy(logits[scored], batch.targets[scored])
    query_accuracy = (logits.argmax(-1) == batch.targets)[batch.is_query].float().mean()
    return loss, {"loss": loss.item(), "query_accuracy": query_accuracy.item()}


def trainer(model: nn.Module, config: SequenceConfig, data: dict, device: torch.device | str = "cpu") -> Trainer:
    """One step: ``batch_size`` sequences drawn from ``(config.seed, i)``, one Adam step on their loss."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    sampler = EpisodeSampler(data["train"], config.ways, config.shots, config.queries)

    def step(i: int) -> dict[str, float]:
        batch = sample_sequences(sampler, config.batch_size, step_generator(config.seed, i)).to(device)
        loss, metrics = sequence_loss(model, batch, config.loss_on)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return metrics

    return Trainer(step, optimizer)


def train(model: nn.Module, config: SequenceConfig, train_data: LabelledImages, *,
          device: torch.device | str = "cpu", progress: bool = True) -> History:
    """Meta-train ``model`` for ``config.steps`` steps of :func:`trainer`."""
    step = trainer(model, config, {"train": train_data}, device).step
    history = train_loop(step, config.steps, progress=progress, desc=describe(config))
    model.eval()
    return history


# ---------------- Evaluation


class SequenceClassifier:
    """A sequence model as a few-shot classifier ``(support_x, support_y, query_x) -> logits``: the queries in
    one sequence after the support set, in a random order (an :class:`Episode`'s sorted order is a clue)."""

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, support_x, support_y, query_x) -> torch.Tensor:
        ways = int(support_y.max()) + 1
        order = torch.randperm(len(query_x), generator=self.generator).to(query_x.device)
        unknown = torch.zeros(len(query_x), dtype=torch.long, device=query_x.device)  # never an input
        episode = Episode(support_x, support_y, query_x[order], unknown, torch.arange(ways))
        sequence = make_sequence(episode, self.generator, shuffle_queries=False)
        with torch.no_grad():
            logits = sequence_logits(self.model, sequence)[sequence.is_query]
        result = torch.empty_like(logits)
        result[order] = logits
        return result


class OneQueryPerSequence:
    """A few-shot classifier that gives each query a sequence of its own, the support set in a random order
    then the query: as in training (not 30 or 75 queries after it), and no answer depends on another query."""

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        self.model = model
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, support_x, support_y, query_x) -> torch.Tensor:
        ways, n_support, Q = int(support_y.max()) + 1, len(support_y), len(query_x)
        device = next(self.model.parameters()).device
        order = torch.randperm(n_support, generator=self.generator)
        sx, sy = support_x[order].to(device), support_y[order].to(device)
        images = torch.cat([sx.unsqueeze(0).expand(Q, *sx.shape), query_x.to(device).unsqueeze(1)], dim=1)
        targets = torch.cat([sy, sy.new_zeros(1)])  # the query's label slot is never read (it is the last step)
        is_query = torch.arange(n_support + 1, device=device) == n_support
        labels = shifted_label_inputs(targets, is_query, ways).unsqueeze(0).expand(Q, -1, -1)
        with torch.no_grad():
            return self.model(images, labels)[:, -1]


def accuracy_by_instance(model: nn.Module, sampler: EpisodeSampler, episodes: int = 500, seed: int = 0,
                         batch_size: int = 100) -> dict[str, AccuracyResult]:
    """Accuracy at support steps by how often the class was seen before (``"1st"``, ``"2nd"``...)
    and at the query steps (``"query"``), each with a 95% CI over episodes."""
    generator = torch.Generator().manual_seed(seed)
    per_episode: dict[str, list[float]] = {}
    device = next(model.parameters()).device
    with torch.no_grad():
        for done in range(0, episodes, batch_size):
            batch = sample_sequences(sampler, min(batch_size, episodes - done), generator).to(device)
            correct = (sequence_logits(model, batch).argmax(-1) == batch.targets).float()
            for right, instance, is_query in zip(correct, batch.instance, batch.is_query):
                for k in range(int(instance.max()) + 1):
                    key = {0: "1st", 1: "2nd", 2: "3rd"}.get(k, f"{k + 1}th")
                    per_episode.setdefault(key, []).append(right[instance == k].mean().item())
                per_episode.setdefault("query", []).append(right[is_query].mean().item())
    return {key: AccuracyResult(*mean_confidence_interval(v), len(v)) for key, v in per_episode.items()}


def prediction_trace(model: nn.Module, sequence: LabelSequence) -> torch.Tensor:
    """Class probabilities ``[L, ways]`` at every step of one sequence (causal: row t uses steps <= t)."""
    with torch.no_grad():
        return sequence_logits(model, sequence).softmax(-1)


# ---------------- The face the registry reads (course_lib.registry)

Config = SequenceConfig
PAPER: dict[str, float] = {}  # notebook 05 compares with the CS330 homework's bars, not a paper's table
LABELS = {"lstm": "LSTM", "mann": "LSTM + matching read-out", "lrua": "MANN (Santoro et al., LRU access)",
          "transformer": "in-context transformer"}
STEPS = {"lstm": 2000, "mann": 2000, "transformer": 10000}  # CS330 HW1's budget; the transformer needs more
RUNS = tuple(
    RunSpec(f"data/black_box/{model}_{ways}way_{shots}shot", f"{LABELS[model]}, {ways}-way {shots}-shot",
            ("--model", model, "--ways", str(ways), "--shots", str(shots), "--steps", str(STEPS[model]),
             "--seed", "1" if (model, ways) == ("transformer", 4) else "0"),  # seed 0 stayed at chance (README)
            ("--steps", "3"), job=f"{model}_{ways}w{shots}s",
            capstone=model if (ways, shots) == (2, 1) and model != "lstm" else "")  # lstm: the pixel run below
    for model in STEPS for ways, shots in ((2, 1), (2, 2), (3, 1), (4, 1))
) + tuple(  # on CS330's input: the flattened image, the loss on the queries only
    RunSpec(f"data/black_box/{prefix}_{ways}way_1shot", f"{label}, {ways}-way 1-shot",
            ("--model", model, "--encoder", "pixels", *options, "--loss-on", "queries", "--ways", str(ways),
             "--shots", "1", "--steps", str(steps)), ("--steps", "3"), job=f"{prefix}_{ways}w1s",
            capstone=model if ways == 2 and prefix != "lstm_q" else "")  # 2-way 1-shot: the capstone's setting
    for prefix, model, label, options, plan in (
        ("lstm_q", "lstm", "LSTM on pixels (CS330)", ("--layers", "2"), ((2, 40000), (3, 40000), (4, 60000))),
        ("lstm_qr", "lstm", "LSTM on pixels, rotated training characters", ("--layers", "2", "--rotations"),
         ((2, 40000), (3, 160000), (4, 100000))),
        ("lrua", "lrua", "MANN (LRU access) on pixels", (), ((2, 20000), (3, 40000), (4, 40000))))
    for ways, steps in plan
) + tuple(RunSpec(f"data/black_box/plateau/{name}", "the loss plateau (notebook 05)")
          for name in ("lstm_2way_1shot_long", "transformer_2way_1shot_embed_norm", "transformer_4way_1shot_seed0"))
TEST_QUERIES = 1  # per class, as in training and in CS330


def load_data(config: SequenceConfig, smoke: bool = False) -> dict[str, LabelledImages]:
    """Omniglot's training and test classes under ``config.protocol``, 28x28 (``smoke``: the first 40
    classes of each). ``config.rotations`` turns each training character into four classes (Santoro et al.'s
    augmentation, against overfitting the training alphabets); the test characters stay upright."""
    splits = omniglot_splits(config.protocol, rotations=False)
    if smoke:
        splits = {k: v.subset_classes(range(min(40, v.num_classes))) for k, v in splits.items()}
    if config.rotations:
        splits["train"] = splits["train"].with_rotations()
    return splits


def evaluate(model: nn.Module, config: SequenceConfig, data: dict, device="cpu", *, settings=(),
             episodes: int = 1000, progress: bool = True) -> dict[str, AccuracyResult]:
    """Query accuracy on ``episodes`` test episodes (seed 0, one query per class) at the model's own
    setting and at those of ``settings`` with as many ways (the model has ``config.ways`` outputs)."""
    own = (config.ways, config.shots)
    results = {}
    for ways, shots in [own] + [s for s in settings if s[0] == config.ways and s != own]:
        sampler = EpisodeSampler(data["test"], ways, shots, TEST_QUERIES)
        name = f"{ways}-way {shots}-shot"
        results[name] = evaluate_few_shot(SequenceClassifier(model, seed=0), sampler, episodes=episodes, seed=0,
                                          progress=progress, desc=name)
    return results


def evaluation_details(settings) -> dict:
    """What results.json records about the test episodes besides their number."""
    return {"test_queries_per_class": TEST_QUERIES, "test_seed": 0}


def predictor(model: nn.Module) -> OneQueryPerSequence:
    """Few-shot episodes, each query in its own sequence (:class:`OneQueryPerSequence`)."""
    return OneQueryPerSequence(model, seed=0)


def capstone_row(run: RunSpec, model: nn.Module, payload: dict) -> dict:
    """What the capstone's table says about a checkpoint: it answers episodes of its own setting only."""
    c = model.config
    data = "Omniglot background (Lake)" if c.protocol == "lake" else f"Omniglot ({c.protocol} split)"
    data += ", each character also rotated 90/180/270 degrees" * c.rotations
    return {"trained_on": f"{data}, {c.ways}-way {c.shots}-shot episodes", "family": "black-box",
            "meta_parameters": count_parameters(model),
            "learned_variables": lambda ways, shots: model.learned_variables(ways * shots + 1),
            "supports": lambda ways, shots: (ways, shots) == (c.ways, c.shots),
            "note": f"{run.folder} ({payload['step']:,} steps): scored at its own setting only, {c.ways}-way "
                    f"{c.shots}-shot; one query per sequence"}


def describe(config: SequenceConfig) -> str:
    options = [", layer norm on the embedding" * config.embed_norm, ", pixels" * (config.encoder == "pixels"),
               ", loss on the queries" * (config.loss_on == "queries"),
               ", rotated training characters" * config.rotations]
    return (f"{config.model}, Omniglot ({config.protocol} split), {config.ways}-way {config.shots}-shot "
            f"sequences{''.join(options)}")
