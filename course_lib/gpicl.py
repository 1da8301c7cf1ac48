"""General-purpose in-context learning (GPICL; Kirsch, Harrison, Sohl-Dickstein & Metz 2022), notebook 08.

One dataset becomes many tasks: task ``i`` projects every flattened,
standardised input with its own random matrix ``W_i ~ N(0, 1/d)`` to
``input_dim`` numbers and relabels the classes with its own permutation
``pi_i``. A sequence holds ``seq_len`` examples of one task; token t is
``[W_i x_t, onehot(pi_i(y_{t-1}))]`` (zeros at t = 0), a causal model predicts
``pi_i(y_t)`` at every step, and the loss is the mean cross-entropy. Training
draws task ids from a pool ``0 .. num_tasks-1`` (``inf``: a fresh task per
sequence). The paper's phase diagram: few tasks are memorised, more are
identified, and with enough the model *learns* in context, also on unseen
tasks and datasets (Omniglot, scikit-learn digits). A **sweep** trains one
model per pool size at once, stacked (:class:`StackedTransformer`): Adam is
elementwise, gradients are clipped per model and the loss is the sum of the M
losses, so this is exactly M separate trainings.

``W_i`` and ``pi_i`` come from the task id by a counter-based hash, on any
device (same id, same task). Inputs are standardised with one mean and std
per dataset (per pixel, constant border pixels would blow up). The paper's
token puts an input and its label in two tokens, so a transformer must first
grow a "previous token" head (the long plateau at ln(classes));
``pair_tokens`` also feeds ``x_{t-1}`` with token t, as SNAIL does::

    python -m course_lib train gpicl --num-tasks 16,256,1024,4096,16384,65536,inf --pair-tokens \\
        --steps 100000 --out runs/gpicl_sweep --max-minutes 6

(the shipped runs: ``data/gpicl/README.md``; their per-model folders and bf16
weights: :mod:`course_lib.gpicl_runs`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_digits, load_mnist_test, omniglot_splits, standardise
from .episodes import step_generator, step_seed
from .evaluation import format_accuracy, mean_confidence_interval
from .runs import RunSpec, Trainer, read_checkpoint, with_added_defaults

INF = "inf"
MODELS = ("transformer", "lstm")
TRAIN_DATASETS = ("mnist", "omniglot")
LAST_POSITIONS = 10  # accuracy is scored over the last 10 steps of each sequence
UNSEEN_TASK_OFFSET = 2**50  # ids of evaluation tasks no pool contains
INF_TASK_OFFSET = 2**40  # num_tasks = inf draws ids from [2^40, 2^41)
FIXED_TASK_ID = 0  # the task of the biased part of a batch (in every pool)
EVALUATION_SEED = 1234


# -------------------- The config of a sweep


def check_optimisation(config) -> None:
    """The optimiser settings GPICL and in-context regression share: steps, warm-up, meta_lr, clipping."""
    if config.steps < 0 or config.warmup < 0:
        raise ValueError("steps and warmup must be >= 0")
    if not config.meta_lr > 0 or config.clip < 0:
        raise ValueError(f"meta_lr must be > 0 and clip >= 0, got meta_lr={config.meta_lr}, clip={config.clip}")


@dataclass
class GPICLConfig:
    """One sweep: one model per pool size in ``num_tasks``, all with the same architecture and training."""

    num_tasks: str = INF  # pool sizes, one model each: "16,2^10,inf" (inf: a fresh task for every sequence)
    biased_fraction: str = "0"  # one for all models, or one per model: that part of a batch is the fixed task 0
    model: str = "transformer"  # or "lstm"
    pair_tokens: bool = False  # transformer: also feed x_{t-1} with token t (not in the paper; see StackedTransformer)
    d_model: int = 256
    layers: int = 4
    heads: int = 8
    ffn_mult: int = 2
    lstm_hidden: int = 512
    input_dim: int = 32
    num_classes: int = 10
    seq_len: int = 100
    train_dataset: str = "mnist"  # meta-training images: "mnist" (test images 0-8,999) or "omniglot" (background)
    batch_size: int = 128  # sequences per model per step
    steps: int = 20000
    meta_lr: float = 5e-4
    warmup: int = 500  # steps of linear learning-rate warm-up
    clip: float = 1.0  # gradient norm clipping per model (0: off)
    amp: bool = True  # bf16 autocast on CUDA
    seed: int = 0

    def __post_init__(self) -> None:
        pools = parse_num_tasks(self.num_tasks, allow_repeats=True)
        fractions = parse_fractions(self.biased_fraction, len(pools))
        self.num_tasks = ",".join(map(str, pools))
        self.biased_fraction = ",".join(f"{f:g}" for f in (fractions if len(set(fractions)) > 1 else fractions[:1]))
        if len(set(self.run_names)) < len(pools):
            raise ValueError(f"num_tasks {self.num_tasks!r} with biased_fraction {self.biased_fraction!r} names "
                             "one model twice")
        for name in ("d_model", "layers", "heads", "ffn_mult", "lstm_hidden", "input_dim", "batch_size",
                     "num_classes"):
            minimum = 2 if name == "num_classes" else 1
            if getattr(self, name) < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {getattr(self, name)}")
        if self.seq_len <= LAST_POSITIONS:
            raise ValueError(f"seq_len must be more than {LAST_POSITIONS} (accuracy is scored over the last "
                             f"{LAST_POSITIONS} steps), got {self.seq_len}")
        for name, allowed in (("model", MODELS), ("train_dataset", TRAIN_DATASETS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.model == "transformer" and self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")
        check_optimisation(self)

    @property
    def pools(self) -> list:
        """``[16, 1024, "inf"]``: the pool size of every model."""
        return parse_num_tasks(self.num_tasks, allow_repeats=True)

    @property
    def biased_fractions(self) -> list[float]:
        return parse_fractions(self.biased_fraction, len(self.pools))

    @property
    def run_names(self) -> list[str]:
        """``["tasks_16", "tasks_inf", ...]``: one name per model, for metrics and folders."""
        return [f"tasks_{n}" + (f"_biased{f:g}" if f else "") for n, f in zip(self.pools, self.biased_fractions)]

    @property
    def shape(self) -> "TransformerShape":
        return TransformerShape(**{field.name: getattr(self, field.name) for field in fields(TransformerShape)})


def _items(text) -> list[str]:
    """``"a,b"`` or ``[a, b]`` (as run folders written before the course's command line store it) -> items."""
    return (",".join(map(str, text)) if isinstance(text, (list, tuple)) else str(text)).split(",")


def parse_num_tasks(text, allow_repeats: bool = False) -> list:
    """``"16,2^10,inf" -> [16, 1024, "inf"]``; anything else (0, negatives, words, repeats) is a ValueError."""
    values = []
    for item in _items(text):
        item = item.strip().lower()
        if item == INF:
            values.append(INF)
            continue
        match = re.fullmatch(r"(\d+)(?:\^(\d+))?", item)
        if match is None:
            raise ValueError(f"num_tasks: {item!r} is not a positive integer, 2^k or 'inf'")
        value = int(match[1]) ** int(match[2] or 1)
        if value < 1:
            raise ValueError(f"num_tasks: {item!r}: a pool needs at least 1 task")
        if value >= INF_TASK_OFFSET:
            raise ValueError(f"num_tasks: {item!r} is too large (use 'inf' for a fresh task every sequence)")
        values.append(value)
    if not allow_repeats and len(set(map(str, values))) != len(values):
        raise ValueError(f"num_tasks: {text!r} names a value twice")
    return values


def parse_fractions(text, models: int) -> list[float]:
    """``"0.25" -> [0.25] * models``, ``"0,0.25" -> [0.0, 0.25]`` (one per model); each in [0, 1)."""
    try:
        values = [float(v) for v in _items(text)]
    except ValueError:
        raise ValueError(f"biased_fraction: {text!r} is not a number or a comma-separated list") from None
    if len(values) == 1:
        values = values * models
    if len(values) != models:
        raise ValueError(f"biased_fraction: {text!r} has {len(values)} values for {models} models")
    if not all(0.0 <= v < 1.0 for v in values):
        raise ValueError(f"biased_fraction must be in [0, 1), got {text!r}")
    return values


# -------------------- The tasks: random numbers from (task id, index)

_M32 = 0xFFFFFFFF
_MULT = 0x45D9F3B  # < 2^31, so (x < 2^32) * _MULT fits in int64
_SALT_PROJECTION = 0x1B873593
_SALT_PERMUTATION = 0x68E31DA4


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (int64 tensors holding values in [0, 2^32))."""
    x = x ^ (x >> 16)
    x = (x * _MULT) & _M32
    x = x ^ (x >> 16)
    x = (x * _MULT) & _M32
    return x ^ (x >> 16)


def task_seeds(task_ids: torch.Tensor, salt: int) -> torch.Tensor:
    """One 32-bit seed per task id (any non-negative int64) and purpose (``salt``)."""
    ids = task_ids.long()
    low, high = ids & _M32, (ids >> 32) & _M32
    return _mix32(_mix32(low ^ salt) ^ _mix32(high ^ (salt * 7 + 3) & _M32) ^ 0x2545F491)


def _hashed_uniform(seeds: torch.Tensor, counter_hash: torch.Tensor) -> torch.Tensor:
    """``[T] x [K] -> [T, K]`` uniforms in [2^-24, 1 - 2^-24]: 23 bits, so ``ndtri`` never sees 0 or 1."""
    bits = _mix32(counter_hash.unsqueeze(0) ^ seeds.unsqueeze(1))
    return (bits >> 9).float().mul_(2.0**-23).add_(2.0**-24)


def projection_matrices(task_ids: torch.Tensor, in_dim: int, out_dim: int, counter_hash=None) -> torch.Tensor:
    """``[T] -> [T, in_dim, out_dim]``: the projection ``W ~ N(0, 1/in_dim)`` of each task."""
    if counter_hash is None:
        counter_hash = _mix32(torch.arange(in_dim * out_dim, device=task_ids.device) + 0x9E3779B9 & _M32)
    seeds = task_seeds(task_ids, _SALT_PROJECTION ^ in_dim)
    normal = torch.special.ndtri(_hashed_uniform(seeds, counter_hash))
    return normal.view(-1, in_dim, out_dim).mul_(1.0 / math.sqrt(in_dim))


def label_permutations(task_ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[T] -> [T, num_classes]``: row i maps a class to its label in task i (a permutation)."""
    counter_hash = _mix32(torch.arange(num_classes, device=task_ids.device) + 0x7F4A7C15)
    keys = _hashed_uniform(task_seeds(task_ids, _SALT_PERMUTATION), counter_hash)
    return torch.argsort(keys, dim=1, stable=True)


def _drawing_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Random draws happen where the generator lives (a CPU generator may feed a GPU run)."""
    return device if generator is None else generator.device


class ProjectedTasks:
    """Sequences of projected, relabelled examples of one dataset (``images [N, ...]``, ``labels [N]``). With
    more classes than ``num_classes`` (Omniglot), each sequence takes its own random ``num_classes`` classes."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10, input_dim: int = 32,
                 *, device: torch.device | str = "cpu", name: str = "data",
                 stats: tuple[float, float] | None = None) -> None:
        device = torch.device(device)
        flat = images.reshape(len(images), -1).float()
        mean, std = stats if stats is not None else (float(flat.mean()), float(flat.std()))
        self.stats = (mean, std)
        self.inputs = ((flat - mean) / max(std, 1e-6)).to(device)
        self.labels = labels.long().to(device)
        self.num_classes, self.input_dim, self.device, self.name = num_classes, input_dim, device, name
        self.data_dim = self.inputs.shape[1]
        self.dataset_classes = int(self.labels.max()) + 1
        if self.dataset_classes < num_classes:
            raise ValueError(f"{name}: {self.dataset_classes} classes, fewer than num_classes={num_classes}")
        self.counter_hash = _mix32(torch.arange(self.data_dim * input_dim, device=device) + 0x9E3779B9 & _M32)
        self.class_table = None
        if self.dataset_classes > num_classes:  # examples of each class, as a [C, K] table (K = fewest)
            order = torch.argsort(self.labels, stable=True)
            counts = torch.bincount(self.labels, minlength=self.dataset_classes)
            k = int(counts.min())
            if k < 1:
                raise ValueError(f"{name}: a class has no examples")
            starts = torch.cumsum(counts, 0) - counts
            self.class_table = order[starts.unsqueeze(1) + torch.arange(k, device=device).unsqueeze(0)]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "ProjectedTasks":
        """The same tasks with every tensor on ``device`` (a copy; ``self`` when already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        moved = copy.copy(self)
        moved.device = device
        vars(moved).update({k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)})
        return moved

    def sample_batch(self, task_ids: torch.Tensor, seq_len: int, generator: torch.Generator | None = None,
                     example_indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``task_ids [n] -> tokens [n, seq_len, input_dim + num_classes], targets [n, seq_len]``.

        Token t is ``[W x_t, onehot(y_{t-1})]`` (zeros in the label slot at t = 0).
        ``example_indices`` (``[n, seq_len]`` rows of the dataset) fixes the examples,
        for tests; otherwise they are drawn with ``generator``.
        """
        task_ids = task_ids.to(self.device)
        n = len(task_ids)
        if example_indices is None:
            example_indices, classes = self.draw_examples(n, seq_len, generator)
        else:
            example_indices = example_indices.to(self.device)
            classes = self.labels[example_indices]
        x = self.inputs[example_indices]  # [n, L, d]
        projected = torch.bmm(x, projection_matrices(task_ids, self.data_dim, self.input_dim, self.counter_hash))
        targets = label_permutations(task_ids, self.num_classes).gather(1, classes)
        previous = F.one_hot(targets[:, :-1], self.num_classes).to(projected.dtype)
        label_slot = F.pad(previous, (0, 0, 1, 0))
        return torch.cat([projected, label_slot], dim=-1), targets

    def draw_examples(self, n: int, seq_len: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``[n, seq_len]`` rows of the dataset and their classes (within the sequence's own classes)."""
        where = _drawing_device(generator, self.device)
        if self.class_table is None:
            idx = torch.randint(0, len(self), (n, seq_len), device=where, generator=generator).to(self.device)
            return idx, self.labels[idx]
        C, K = self.class_table.shape
        scores = torch.rand(n, C, device=where, generator=generator)
        chosen = torch.topk(scores, self.num_classes, dim=1).indices  # [n, classes], random classes and order
        local = torch.randint(0, self.num_classes, (n, seq_len), device=where, generator=generator)
        instance = torch.randint(0, K, (n, seq_len), device=where, generator=generator)
        local, chosen, instance = local.to(self.device), chosen.to(self.device), instance.to(self.device)
        idx = self.class_table[chosen.gather(1, local), instance]
        return idx, local


def draw_task_ids(num_tasks: list, biased_fraction: list[float], batch_size: int,
                  generator: torch.Generator | None, device) -> torch.Tensor:
    """``[M, B]`` training task ids: model m draws from ``0..num_tasks[m]-1`` (``"inf"`` or None: fresh ids),
    and the first ``round(biased_fraction[m] * B)`` sequences of its batch use the fixed task 0."""
    device = torch.device(device)
    r = torch.randint(0, 2**62, (len(num_tasks), batch_size), device=_drawing_device(generator, device),
                      generator=generator).to(device)
    rows = []
    for m, (n, f) in enumerate(zip(num_tasks, biased_fraction)):
        ids = INF_TASK_OFFSET + r[m] % INF_TASK_OFFSET if n in (None, INF) else r[m] % int(n)
        ids[:int(round(f * batch_size))] = FIXED_TASK_ID  # the biased part of the batch
        rows.append(ids)
    return torch.stack(rows)


# -------------------- Models: M independent models, stacked


@dataclass(frozen=True)
class TransformerShape:
    """A :class:`StackedTransformer`: tokens of ``input_dim + num_classes`` numbers, ``num_classes`` outputs."""

    d_model: int
    layers: int
    heads: int
    ffn_mult: int
    input_dim: int
    num_classes: int
    seq_len: int
    pair_tokens: bool = False


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x [M, N, i], w [M, i, o], b [M, o] -> [M, N, o]`` (one batched matmul for all models)."""
    return torch.baddbmm(b.unsqueeze(1), x, w)


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:]) * w.unsqueeze(1) + b.unsqueeze(1)


class StackedTransformer(nn.Module):
    """M independent pre-LN causal transformers (GPT-style, learned positions), weights ``[M, ...]``:
    ``tokens [M, B, L, token_dim] -> logits [M, B, L, classes]``. With ``pair_tokens`` token t also gets the
    input part of token t-1, so that ``(x_{t-1}, y_{t-1})`` sit in one token."""

    def __init__(self, shape: TransformerShape, num_models: int) -> None:
        super().__init__()
        self.shape, self.num_models, self.seq_len = shape, num_models, shape.seq_len
        M, d, f, L = num_models, shape.d_model, shape.ffn_mult * shape.d_model, shape.seq_len
        if d % shape.heads:
            raise ValueError(f"d_model={d} is not divisible by heads={shape.heads}")

        def weight(*size, std):
            return nn.Parameter(torch.randn(M, *size) * std)

        def zeros(*size):
            return nn.Parameter(torch.zeros(M, *size))

        def ones(*size):
            return nn.Parameter(torch.ones(M, *size))

        residual_std = 0.02 / math.sqrt(2 * shape.layers)
        width = shape.input_dim + shape.num_classes + (shape.input_dim if shape.pair_tokens else 0)
        self.embed_w, self.embed_b = weight(width, d, std=1 / math.sqrt(width)), zeros(d)
        self.position = weight(L, d, std=0.02)
        self.blocks = nn.ModuleList(nn.ParameterDict({
            "ln1_w": ones(d), "ln1_b": zeros(d),
            "qkv_w": weight(d, 3 * d, std=0.02), "qkv_b": zeros(3 * d),
            "out_w": weight(d, d, std=residual_std), "out_b": zeros(d),
            "ln2_w": ones(d), "ln2_b": zeros(d),
            "fc1_w": weight(d, f, std=0.02), "fc1_b": zeros(f),
            "fc2_w": weight(f, d, std=residual_std), "fc2_b": zeros(d),
        }) for _ in range(shape.layers))
        self.ln_w, self.ln_b = ones(d), zeros(d)
        self.head_w, self.head_b = weight(d, shape.num_classes, std=0.02), zeros(shape.num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        M, B, L, _ = tokens.shape
        if L > self.shape.seq_len:
            raise ValueError(f"sequence of {L} steps; the model has positions for {self.shape.seq_len}")
        H, d = self.shape.heads, self.shape.d_model
        if self.shape.pair_tokens:  # [x_t, y_{t-1}, x_{t-1}]: still causal
            previous = F.pad(tokens[..., :self.shape.input_dim], (0, 0, 1, 0))[:, :, :L]
            tokens = torch.cat([tokens, previous], dim=-1)
        h = _linear(tokens.reshape(M, B * L, -1), self.embed_w, self.embed_b).view(M, B, L, d)
        h = (h + self.position[:, None, :L]).view(M, B * L, d)
        for p in self.blocks:
            qkv = _linear(_layer_norm(h, p["ln1_w"], p["ln1_b"]), p["qkv_w"], p["qkv_b"])
            q, k, v = qkv.view(M * B, L, 3, H, d // H).permute(2, 0, 3, 1, 4)  # each [MB, H, L, d/H]
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a = a.permute(0, 2, 1, 3).reshape(M, B * L, d)
            h = h + _linear(a, p["out_w"], p["out_b"])
            z = F.gelu(_linear(_layer_norm(h, p["ln2_w"], p["ln2_b"]), p["fc1_w"], p["fc1_b"]))
            h = h + _linear(z, p["fc2_w"], p["fc2_b"])
        out = _linear(_layer_norm(h, self.ln_w, self.ln_b), self.head_w, self.head_b)
        return out.view(M, B, L, -1)

    def state_size(self, length: int) -> int:
        """Numbers the model keeps about the sequence after ``length`` steps: its key/value cache."""
        return 2 * self.shape.layers * self.shape.d_model * length


class StackedLSTM(nn.Module):
    """M independent LSTM baselines reading the paper's tokens (a loop over models; cuDNN per model)."""

    def __init__(self, config: GPICLConfig, num_models: int) -> None:
        super().__init__()
        self.config, self.num_models, self.seq_len = config, num_models, config.seq_len
        token_dim, hidden = config.input_dim + config.num_classes, config.lstm_hidden
        self.lstms = nn.ModuleList(nn.LSTM(token_dim, hidden, batch_first=True) for _ in range(num_models))
        self.heads = nn.ModuleList(nn.Linear(config.lstm_hidden, config.num_classes) for _ in range(num_models))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(lstm(x)[0]) for lstm, head, x in zip(self.lstms, self.heads, tokens)])

    def state_size(self, length: int) -> int:
        """Hidden and cell state: fixed, whatever the sequence length."""
        return 2 * self.config.lstm_hidden


def build_model(config: GPICLConfig, num_models: int | None = None) -> nn.Module:
    """The stacked models of a sweep (one per pool size), or a stack of ``num_models``."""
    num_models = len(config.pools) if num_models is None else num_models
    if config.model == "transformer":
        return StackedTransformer(config.shape, num_models)
    return StackedLSTM(config, num_models)


def _lstm_state(state: dict, m: int) -> dict:
    """Model ``m``'s entries of a :class:`StackedLSTM`'s state, named as in a stack of one."""
    return {re.sub(rf"^(lstms|heads)\.{m}\.", r"\1.0.", k): v for k, v in state.items()
            if k.startswith((f"lstms.{m}.", f"heads.{m}."))}


def single_model(model: nn.Module, m: int) -> nn.Module:
    """Model ``m`` of a stack, as a stack of one (a copy of its weights)."""
    if isinstance(model, StackedTransformer):
        single = StackedTransformer(model.shape, 1)
        single.load_state_dict({k: v[m:m + 1] for k, v in model.state_dict().items()})
    else:
        single = StackedLSTM(model.config, 1)
        single.load_state_dict(_lstm_state(model.state_dict(), m))
    return single.to(next(model.parameters()).device).train(model.training)


def model_size(model: nn.Module) -> dict:
    """Parameters of ONE of the stacked models and its state size after a full sequence."""
    total = sum(p.numel() for p in model.parameters())
    return {"parameters": total // model.num_models, "state_size": model.state_size(model.seq_len)}


def per_model_grad_clip_(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip each stacked model's gradient to ``max_norm`` on its own; returns the ``[M]`` norms."""
    M = model.num_models
    if isinstance(model, StackedLSTM):
        return torch.stack([torch.nn.utils.clip_grad_norm_(list(l.parameters()) + list(h.parameters()), max_norm)
                            for l, h in zip(model.lstms, model.heads)])
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norms = torch.stack([g.float().reshape(M, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(M, *([1] * (g.ndim - 1))).to(g.dtype))
    return norms


# -------------------- Data: the training tasks and every evaluation set

MNIST_TRAIN_IMAGES = 9000
OMNIGLOT_HELD_OUT_CHARACTERS = 96  # the last 96 of the 964 background characters: "test" of an Omniglot run


def load_data(config: GPICLConfig, smoke: bool = False, device="cpu") -> dict[str, ProjectedTasks]:
    """``{"train", "test", "omniglot", "mnist", "digits"}`` as :class:`ProjectedTasks` (``smoke``: fewer images).
    "train": MNIST test images 0-8,999 ("test": the rest) or, for ``train_dataset="omniglot"``, Omniglot's
    background characters but the last 96 ("test": those 96; MNIST becomes an unseen dataset)."""
    mnist, splits = load_mnist_test(), omniglot_splits("lake", rotations=False)
    images, labels, omniglot = mnist.images, mnist.labels, splits["test"]
    if smoke:
        images, labels = torch.cat([images[:300], images[-100:]]), torch.cat([labels[:300], labels[-100:]])
        omniglot = omniglot.subset_classes(range(20))

    def tasks(images, labels, name, stats=None):
        return ProjectedTasks(images, labels, config.num_classes, config.input_dim, device=device, name=name,
                              stats=stats)

    if config.train_dataset == "mnist":
        split = 300 if smoke else MNIST_TRAIN_IMAGES
        train = tasks(images[:split], labels[:split], "MNIST (first 9,000 test images)")
        data = {"train": train,
                "test": tasks(images[split:], labels[split:], "MNIST (last 1,000 test images)", train.stats)}
    else:
        background = splits["train"]
        total = 40 if smoke else background.num_classes
        held_out = 12 if smoke else OMNIGLOT_HELD_OUT_CHARACTERS
        seen = background.subset_classes(range(total - held_out))
        new = background.subset_classes(range(total - held_out, total))
        train = tasks(seen.images, seen.labels, f"Omniglot (background, {total - held_out} characters)")
        data = {"train": train,
                "test": tasks(new.images, new.labels, f"Omniglot (background, {held_out} held-out characters)",
                              train.stats),
                "mnist": tasks(images, labels, "MNIST test set")}
    data["omniglot"] = tasks(omniglot.images, omniglot.labels, "Omniglot (evaluation alphabets)")
    digits = load_digits()
    data["digits"] = tasks(digits.images, digits.labels, "scikit-learn digits 8x8")
    return data


# -------------------- Training: one step of a sweep


def adam_step_(model: nn.Module, optimizer, losses: torch.Tensor, config, step: int) -> None:
    """One Adam step of the stacked models on the sum of their ``[M]`` losses, each gradient clipped on its own."""
    for group in optimizer.param_groups:
        group["lr"] = config.meta_lr * min(1.0, (step + 1) / max(1, config.warmup))  # linear warm-up
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    if config.clip:
        per_model_grad_clip_(model, config.clip)
    optimizer.step()


def sequence_logits(model: nn.Module, tasks: ProjectedTasks, task_ids: torch.Tensor, config: GPICLConfig,
                    generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``task_ids [M, B]`` -> logits ``[M, B, L, classes]`` (float32) of every model on its own sequences, and
    their targets ``[M, B, L]`` (bf16 autocast on CUDA when ``config.amp``)."""
    M, B = task_ids.shape
    tokens, targets = tasks.sample_batch(task_ids.reshape(-1), config.seq_len, generator)
    amp = config.amp and tasks.device.type == "cuda"
    with torch.autocast(device_type=tasks.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(tokens.view(M, B, config.seq_len, -1))
    return logits.float(), targets.view(M, B, -1)


def trainer(model: nn.Module, config: GPICLConfig, data: dict, device: torch.device | str = "cpu") -> Trainer:
    """One step of a sweep: every model draws a batch from its own pool, from ``(config.seed, i)`` only (a
    resumed run trains exactly as an uninterrupted one); logs ``loss_tasks_16``, ``train_acc_tasks_16``, ..."""
    device = torch.device(device)
    model.to(device).train()
    tasks = data["train"].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr, fused=device.type == "cuda")
    pools, fractions, names = config.pools, config.biased_fractions, config.run_names

    def step(i: int) -> dict[str, float]:
        generator = step_generator(config.seed, i)
        task_ids = draw_task_ids(pools, fractions, config.batch_size, generator, device)
        logits, targets = sequence_logits(model, tasks, task_ids, config, generator)
        losses = F.cross_entropy(logits.reshape(-1, config.num_classes), targets.reshape(-1), reduction="none")
        losses = losses.view(len(pools), -1).mean(1)  # [M]: each model's mean over its sequences and steps
        correct = logits[:, :, -LAST_POSITIONS:].argmax(-1) == targets[:, :, -LAST_POSITIONS:]
        accuracy = correct.float().view(len(pools), -1).mean(1)
        adam_step_(model, optimizer, losses, config, i)
        metrics = {}
        for name, loss, correct in zip(names, losses.tolist(), accuracy.tolist()):
            metrics[f"loss_{name}"], metrics[f"train_acc_{name}"] = round(loss, 4), round(correct, 3)
        return metrics

    return Trainer(step, optimizer)


# -------------------- Evaluation: accuracy by position, the phase diagram

EVAL_NAMES = {"seen_tasks": "seen tasks", "unseen_tasks": "unseen tasks", "omniglot": "Omniglot", "mnist": "MNIST",
              "digits": "digits"}


@torch.no_grad()
def accuracy_by_position(model: nn.Module, tasks: ProjectedTasks, task_ids: torch.Tensor, config: GPICLConfig,
                         generator, chunk: int = 256) -> torch.Tensor:
    """``task_ids [M, S]`` -> correct ``[M, S, L]`` (bool) of every model on S sequences."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, task_ids.shape[1], chunk):
        logits, targets = sequence_logits(model, tasks, task_ids[:, start:start + chunk], config, generator)
        out.append(logits.argmax(-1) == targets)
    model.train(was_training)
    return torch.cat(out, dim=1)


def evaluate_models(model: nn.Module, data: dict[str, ProjectedTasks], config: GPICLConfig, sequences: int = 1024,
                    seed: int = EVALUATION_SEED) -> list[dict]:
    """Every model's accuracy by position and over the last 10 steps (mean, 95% CI) on seen tasks, unseen tasks
    (both on held-out images) and unseen datasets."""
    device = data["test"].device
    generator = torch.Generator(device=device).manual_seed(seed)
    M = model.num_models
    seen_ids = draw_task_ids(config.pools, [0.0] * M, sequences, generator, device)
    unseen_ids = (UNSEEN_TASK_OFFSET + torch.arange(sequences, device=device)).unsqueeze(0).expand(M, -1)
    settings = {"seen_tasks": ("test", seen_ids), "unseen_tasks": ("test", unseen_ids),
                **{name: (name, unseen_ids) for name in ("omniglot", "mnist", "digits")}}
    results = [dict() for _ in range(M)]
    for name, (dataset, ids) in settings.items():
        if dataset not in data:
            continue
        correct = accuracy_by_position(model, data[dataset], ids, config, generator).float().cpu()
        for m in range(M):
            mean, ci = mean_confidence_interval(correct[m, :, -LAST_POSITIONS:].mean(1))
            results[m][name] = {"last_accuracy": mean, "last_ci95": ci, "sequences": sequences,
                                "by_position": [round(v, 3) for v in correct[m].mean(0).tolist()]}
    return results


class PhaseDiagramRow(dict):
    """One model's row of the phase diagram (a dict, as results.json holds it), printed in one line."""

    def __str__(self) -> str:
        return ", ".join(f"{EVAL_NAMES[k]} {100 * v['last_accuracy']:.1f} %" for k, v in self["evaluation"].items())


def evaluate(model: nn.Module, config: GPICLConfig, data: dict, device="cpu", *, settings=None,
             episodes: int = 1024, progress: bool = True) -> dict[str, PhaseDiagramRow]:
    """``{"tasks_16": row, ...}``: every model's accuracies on ``episodes`` sequences per evaluation set
    (``settings``, few-shot ways and shots, do not apply: a sequence is its own episode)."""
    data = {name: tasks.to(device) for name, tasks in data.items() if name != "train"}
    evaluation = evaluate_models(model.to(device), data, config, sequences=episodes)
    size = model_size(model)
    return {name: PhaseDiagramRow(run=name, num_tasks=n, biased_fraction=f, batch_size=config.batch_size, **size,
                                  evaluation=entry)
            for name, n, f, entry in zip(config.run_names, config.pools, config.biased_fractions, evaluation)}


def accuracy_cell(entry: dict | None) -> str:
    """``"52.2 ± 1.4 %"`` for an evaluation entry of a row (``–`` when there is none)."""
    return "–" if entry is None else format_accuracy(entry["last_accuracy"], entry["last_ci95"])


def phase_diagram_markdown(rows: list[dict], config: GPICLConfig, meta: dict) -> str:
    columns = [k for k in EVAL_NAMES if any(k in (row.get("evaluation") or {}) for row in rows)] or \
        ["seen_tasks", "unseen_tasks", "omniglot", "digits"]
    source = "MNIST" if config.train_dataset == "mnist" else "Omniglot background"
    device = meta.get("device") or meta.get("machine", {}).get("device")
    seconds = f"; {meta['train_seconds']:.0f} s of training in all" if "train_seconds" in meta else ""
    lines = [
        f"# GPICL phase diagram: {config.model}, {source} tasks (random projection to {config.input_dim} + label "
        f"permutation), {config.seq_len} examples per sequence, tokens "
        f"{'[x_t, y_(t-1), x_(t-1)] (--pair-tokens)' if config.pair_tokens else '[x_t, y_(t-1)] (as in the paper)'}",
        "",
        f"Accuracy over the last {LAST_POSITIONS} steps of each sequence (after {config.seq_len - LAST_POSITIONS}-"
        f"{config.seq_len - 1} examples), mean ± 95% CI over sequences; chance = {100 / config.num_classes:.0f} %; "
        f"ln({config.num_classes}) = {math.log(config.num_classes):.3f}. Device: {device}; "
        f"batch {config.batch_size}{seconds}.",
        "",
        "| tasks | biased | steps | final loss | " + " | ".join(EVAL_NAMES[k] for k in columns)
        + " | acc. at step 1 / 10 / 50 (unseen) |",
        "|---|---|---|---|" + "---|" * len(columns) + "---|",
    ]
    for row in rows:
        ev = row.get("evaluation") or {}
        by = (ev.get("unseen_tasks") or {}).get("by_position") or []
        picks = " / ".join(f"{100 * by[i]:.0f} %" for i in (0, 9, 49) if i < len(by)) or "–"
        lines.append(f"| {row['num_tasks']} | {row['biased_fraction']:g} | {row['steps']} | "
                     f"{row.get('final_loss', '–')} | " + " | ".join(accuracy_cell(ev.get(k)) for k in columns)
                     + f" | {picks} |")
    lines += ["", f"Parameters per model: {rows[0]['parameters']:,}; state size after {config.seq_len} steps: "
              f"{rows[0]['state_size']:,} numbers." if rows else ""]
    return "\n".join(lines) + "\n"


# -------------------- Few-shot episodes as in-context tasks (notebook 09)


class GPICLPredictor:
    """A few-shot classifier ``(support_x, support_y, query_x) -> logits [Q, ways]`` made of one GPICL model:
    each episode is a new task (standardised with the support set's mean and std), the shuffled support set
    then one query per sequence; the logits are restricted to the episode's N labels."""

    def __init__(self, model: nn.Module, shape, seed: int = 0) -> None:
        self.model, self.shape = model, shape  # shape: input_dim and num_classes
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.counter = step_seed(seed, 0)  # each call projects with a new task: counter + 1, + 2, ...

    def __call__(self, support_x, support_y, query_x):
        c = self.shape
        ways, n, Q = int(support_y.max()) + 1, len(support_y), len(query_x)
        device = next(self.model.parameters()).device
        flat_s, flat_q = support_x.flatten(1).float(), query_x.flatten(1).float()
        flat_s, flat_q = standardise(flat_s, flat_s), standardise(flat_q, flat_s)
        self.counter += 1
        W = projection_matrices(torch.tensor([UNSEEN_TASK_OFFSET + self.counter]), flat_s.shape[1], c.input_dim)[0]
        order = torch.randperm(n, generator=self.generator)
        xs, ys = flat_s[order] @ W, support_y[order]
        inputs = torch.cat([xs.unsqueeze(0).expand(Q, -1, -1), (flat_q @ W).unsqueeze(1)], dim=1)  # [Q, n+1, dim]
        slot = F.pad(F.one_hot(ys, c.num_classes).float(), (0, 0, 1, 0))  # [n+1, classes]: y_{t-1}
        tokens = torch.cat([inputs, slot.unsqueeze(0).expand(Q, -1, -1)], dim=-1).unsqueeze(0).to(device)
        with torch.no_grad():
            return self.model(tokens)[0, :, -1, :ways]


def load_weights(path, device="cpu") -> tuple[nn.Module, GPICLConfig]:
    """One model of a sweep from its ``weights.pt`` (bf16), as a stack of one (float32, eval mode), and its config."""
    payload = read_checkpoint(path)
    config = GPICLConfig(**with_added_defaults(payload["config"], GPICLConfig))
    model = build_model(config, num_models=1)
    if isinstance(model, StackedTransformer):
        state = {k: v.float().unsqueeze(0) for k, v in payload["state_dict"].items()}
    else:  # the LSTM's keys name its place in the stack it came from
        state = {k: v.float() for k, v in _lstm_state(payload["state_dict"], payload["model_index"]).items()}
    model.load_state_dict(state)
    return model.to(device).eval(), config


# -------------------- The face the registry reads (course_lib.registry)

Config = GPICLConfig
build = build_model
PAPER: dict[str, float] = {}  # the paper reports curves at GPU scale, no number comparable to these runs
SMOKE_SWEEP = ("--steps", "2", "--batch-size", "4")
RUNS = (
    RunSpec("data/gpicl/sweep_cpu", "GPICL phase diagram, CPU-sized, batch 32", capstone="gpicl"),
    RunSpec("data/gpicl/sweep_cpu_b128_small_pools", "GPICL phase diagram at batch 128, M = 4 to 4,096"),
    RunSpec("data/gpicl/sweep_cpu_b128", "GPICL phase diagram at batch 128, M = 16,384 to inf"),
    RunSpec("data/gpicl/omniglot_cpu", "GPICL on Omniglot background characters", capstone="gpicl-omniglot"),
    RunSpec("data/gpicl/plateau_cpu", "GPICL's loss plateau"),
    RunSpec("data/gpicl/sweep", "GPICL phase diagram at the paper's budget",
            ("--pair-tokens", "--num-tasks", "16,256,1024,4096,16384,65536,inf", "--steps", "100000",
             "--batch-size", "128"), (*SMOKE_SWEEP, "--num-tasks", "4,inf"), job="gpicl_sweep"),
    RunSpec("data/gpicl/omniglot", "GPICL on the capstone's shared data (Omniglot background)",
            ("--train-dataset", "omniglot", "--pair-tokens", "--num-tasks", "1024", "--steps", "100000",
             "--batch-size", "128"), (*SMOKE_SWEEP, "--num-tasks", "4"), job="gpicl_omniglot"),
)


def evaluation_details(settings) -> dict:
    """What results.json records about the evaluation besides the number of sequences."""
    return {"last_positions": LAST_POSITIONS, "evaluation_seed": EVALUATION_SEED}


def results_markdown(method, entries: dict, config: GPICLConfig, meta: dict) -> str:
    """results.md: the phase diagram table (:func:`phase_diagram_markdown`)."""
    return phase_diagram_markdown([{**row, "steps": meta["steps_done"]} for row in entries.values()], config, meta)


def predictor(model: nn.Module, model_index: int = 0) -> GPICLPredictor:
    """Few-shot episodes answered by model ``model_index`` of a stack (:class:`GPICLPredictor`)."""
    return GPICLPredictor(single_model(model, model_index).eval(), getattr(model, "shape", None) or model.config)


CAPSTONE_POOL = "1024"  # the capstone's rows: the model of a sweep trained on a pool of 1,024 tasks


def capstone_model(folder, device="cpu") -> tuple[nn.Module, dict]:
    """The 1,024-task model of a sweep folder (``tasks_1024/weights.pt``) and ``{"config", "step"}``."""
    run = Path(folder) / f"tasks_{CAPSTONE_POOL}"
    model, config = load_weights(run / "weights.pt", device)
    results = run / "results.json"
    steps = json.loads(results.read_text()).get("steps") if results.is_file() else None
    return model, {"config": config, "step": steps}


def capstone_row(run: RunSpec, model: nn.Module, payload: dict) -> dict:
    """What the capstone's table says about a sweep's 1,024-task model."""
    config, steps = payload["config"], payload["step"]
    done = f", {steps:,} steps" if steps else ""
    model_name = f"{run.folder}/tasks_{CAPSTONE_POOL} (the 1,024-task model{done}"
    restricted = "logits restricted to the episode's N of its 10 classes"
    if config.train_dataset == "omniglot":
        trained_on = (f"Omniglot background (Lake, {964 - OMNIGLOT_HELD_OUT_CHARACTERS} of its 964 characters, "
                      "10 random ones per sequence), 1,024 random projections + label permutations")
        note = f"{model_name}); the capstone's shared meta-training data; {restricted}"
    else:
        trained_on = "MNIST test images 0-8,999, 1,024 random projections + label permutations"
        note = (f"{model_name}; notebook 08's run); {restricted}; meta-trained on MNIST digits, so its MNIST "
                "column is in-distribution (held-out images)")
    return {"trained_on": trained_on, "family": "black-box", "note": note,
            "meta_parameters": model_size(model)["parameters"],
            "learned_variables": lambda ways, shots: model.state_size(ways * shots + 1),
            "supports": lambda ways, shots: ways * shots + 1 <= config.seq_len,
            "in_distribution": "mnist" if config.train_dataset == "mnist" else "omniglot"}


def describe(config: GPICLConfig) -> str:
    source = "MNIST" if config.train_dataset == "mnist" else "Omniglot background"
    size = (f"d_model {config.d_model}, {config.layers} layers" if config.model == "transformer"
            else f"hidden {config.lstm_hidden}")
    return (f"{config.model} ({size}{', pair tokens' if config.pair_tokens else ''}) per pool size "
            f"{config.num_tasks}, {source} tasks, {config.seq_len} examples per sequence, batch {config.batch_size}")
