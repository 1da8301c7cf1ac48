"""General-purpose in-context learning (GPICL; Kirsch, Harrison, Sohl-Dickstein & Metz 2022).

For notebook 08. One dataset becomes many tasks: task ``i`` projects every
flattened, standardised input with its own random matrix ``W_i ~ N(0, 1/d)``
(``d`` = input size) to ``input_dim`` numbers and relabels the classes with its
own random permutation ``pi_i``. A sequence holds ``seq_len`` examples of one
task; the token at step t is ``[W_i x_t, onehot(pi_i(y_{t-1}))]`` (zeros at
t = 0) and a causal sequence model predicts ``pi_i(y_t)`` at every step; the
loss is the mean cross-entropy over all steps. Meta-training draws the task id
uniformly from a finite pool ``0 .. num_tasks-1`` (``num_tasks = inf``: a fresh
task for every sequence). The paper's phase diagram: with few tasks the model
memorises them (good on seen tasks, no learning within a sequence), with more it
identifies which task it is in, and from about 2^13 tasks on it *learns* in
context, also on unseen tasks and unseen datasets.

Choices (documented here because a notebook reports them):

* ``input_dim = 32``: every dataset (MNIST 28x28, Omniglot 28x28, scikit-learn
  digits 8x8) is projected to 32 numbers, so one model reads them all; 32 keeps
  the tokens small (the model is what must be large, not the inputs).
* Inputs are standardised with one mean and one std per dataset (not per
  pixel: constant border pixels would otherwise blow up), so each projected
  component has variance about 1.
* Projections and permutations are generated on the device from the task id
  by a counter-based hash (no torch.Generator per task): entry ``k`` of
  ``W_i`` is ``ndtri(u)`` with ``u`` a 23-bit uniform from
  ``hash(hash(k) xor seed(i))``. Same id, same task, on any device; the
  permutation is the argsort of hashed keys, so it is a true permutation.
* Meta-training data: the first 9,000 images of the MNIST test set (the
  course ships no MNIST training set); evaluation: the last 1,000. Task ids
  for *unseen* tasks start at 2^50, far outside any pool; ``inf`` draws
  training ids from [2^40, 2^41).
* Unseen datasets: Omniglot (each sequence: 10 random characters of the 20
  evaluation alphabets, labelled 0..9 in random order) and scikit-learn
  digits (8x8 = 64 inputs, its own projection 64 -> 32).
* Several models train *in one set of tensors*: :class:`StackedTransformer`
  holds M independent transformers with a leading model dimension on every
  weight (one batched matmul per layer for all M), each reading its own
  batch. Adam is elementwise, gradient clipping is done per model, and the
  loss is the sum of the M models' losses, so this is exactly M separate
  trainings, at the speed of one large one on a GPU.

* The paper's token ``[x_t, y_{t-1}]`` puts an input and its label in two
  different tokens, so a transformer must first grow a "previous token"
  attention head before it can learn in context: the long loss plateau at
  ln(classes). ``--pair-tokens`` (off by default) also feeds ``x_{t-1}`` with
  token t (as SNAIL and notebook 05 do). Measured on one H200 (alone, bf16,
  d_model 256, 4 layers, batch 128, lr 5e-4): with the paper's tokens, 2-way
  and 10-way runs with unlimited tasks were still on the plateau after 5,000-
  7,800 steps (also with lr 2e-3, and with a biased fraction of 0.3); with
  ``--pair-tokens``, 2^14 and unlimited tasks left it within ~400 steps and
  reached ~73 % on unseen MNIST tasks, ~68 % on Omniglot and ~87 % on digits
  after 7,400 steps (2 minutes), while 16 tasks were memorised (87 % seen,
  9 % unseen).
* Speed (same H200, alone): 7 stacked models ~21.6 ms per step, 3 models
  ~16 ms, 2 models ~17 ms; evaluation of 7 models on 4 x 1,024 sequences
  ~1 s; peak memory 4 GiB for 7 models. ``--compile`` did not help (20 ms).

Command line::

    python -m course_lib.gpicl sweep --num-tasks 16,256,1024,4096,16384,65536,inf \\
        --steps 100000 --batch-size 128 --out data/gpicl/sweep --device cuda --max-minutes 6
    python -m course_lib.gpicl sweep --out data/gpicl/sweep --resume --max-minutes 6   # continue
    python -m course_lib.gpicl train --num-tasks inf --steps 5000 --out data/gpicl/inf
    python -m course_lib.gpicl plateau --num-tasks 65536 --batch-sizes 32,128 --biased-fraction 0.25 \\
        --out data/gpicl/plateau --max-minutes 4

Notebook 08 reads run folders with :func:`load_run`, rebuilds one model from its ``weights.pt`` with
:func:`load_model` (:func:`extract_weights` writes that file afterwards from a sweep's checkpoint), and
steps through one sequence with :func:`prediction_trace` and :func:`trace_figure`.

A run folder (``--out``) holds ``config.json``, ``phase_diagram.json`` /
``.md`` (one row per model) and one folder per model (``tasks_<n>/`` with
``history.json``, ``results.json``, ``results.md``, and ``weights.pt`` in
bf16 for the models named by ``--keep-weights``). The resumable checkpoint
(all models, Adam state, random state) is ``checkpoint.pt`` in
``--checkpoint-dir`` (default: the run folder; point it elsewhere to keep
the run folder small).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .evaluation import format_accuracy, mean_confidence_interval
from .runtime import get_device, machine_description
from .training import write_json, write_text

INF = "inf"
UNSEEN_TASK_OFFSET = 2**50  # ids of evaluation tasks no pool contains
INF_TASK_OFFSET = 2**40  # num_tasks = inf draws ids from [2^40, 2^41)
FIXED_TASK_ID = 0  # the task of the biased part of a batch (in every pool)
LAST_POSITIONS = 10  # "after ~90-99 examples": mean accuracy over the last 10 steps of each sequence

# --------------------------------------------------------------------------
# Counter-based hashing: random numbers from (task id, index), on any device
# --------------------------------------------------------------------------

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
    """``[T] x [K] -> [T, K]`` uniforms in [2^-24, 1 - 2^-24] (23 bits each; exactly representable in
    float32, so ``ndtri`` never sees 0 or 1)."""
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


# --------------------------------------------------------------------------
# Tasks and sequences
# --------------------------------------------------------------------------


class ProjectedTasks:
    """Sequences of projected, relabelled examples of one dataset, task by task id.

    ``images``: ``[N, ...]`` (flattened and standardised here), ``labels``: ``[N]``
    in ``0..C-1``. If ``C > num_classes`` (Omniglot), every sequence uses its own
    ``num_classes`` random classes, labelled ``0..num_classes-1`` in random order
    before the task's permutation; otherwise all classes are used.
    Everything lives on ``device``; :meth:`sample_batch` makes a whole batch with
    a few batched tensor operations.
    """

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

    def sample_batch(self, task_ids: torch.Tensor, seq_len: int, generator: torch.Generator | None = None,
                     example_indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``task_ids [n] -> tokens [n, seq_len, input_dim + num_classes], targets [n, seq_len]``.

        Token t is ``[W x_t, onehot(y_{t-1})]`` (zeros in the label slot at t = 0).
        ``example_indices`` (``[n, seq_len]`` rows of the dataset) fixes the examples,
        for tests; otherwise they are drawn with ``generator`` (which must live on
        this object's device).
        """
        task_ids = task_ids.to(self.device)
        n = len(task_ids)
        if example_indices is None:
            example_indices, classes = self._draw_examples(n, seq_len, generator)
        else:
            example_indices = example_indices.to(self.device)
            classes = self.labels[example_indices]
        x = self.inputs[example_indices]  # [n, L, d]
        projected = torch.bmm(x, projection_matrices(task_ids, self.data_dim, self.input_dim, self.counter_hash))
        targets = label_permutations(task_ids, self.num_classes).gather(1, classes)
        previous = F.one_hot(targets[:, :-1], self.num_classes).to(projected.dtype)
        label_slot = F.pad(previous, (0, 0, 1, 0))
        return torch.cat([projected, label_slot], dim=-1), targets

    def _draw_examples(self, n: int, seq_len: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.class_table is None:
            idx = torch.randint(0, len(self), (n, seq_len), device=self.device, generator=generator)
            return idx, self.labels[idx]
        C, K = self.class_table.shape
        scores = torch.rand(n, C, device=self.device, generator=generator)
        chosen = torch.topk(scores, self.num_classes, dim=1).indices  # [n, classes], random classes and order
        local = torch.randint(0, self.num_classes, (n, seq_len), device=self.device, generator=generator)
        instance = torch.randint(0, K, (n, seq_len), device=self.device, generator=generator)
        idx = self.class_table[chosen.gather(1, local), instance]
        return idx, local


def draw_task_ids(num_tasks: list[int | None], biased_fraction: list[float], batch_size: int,
                  generator: torch.Generator | None, device) -> torch.Tensor:
    """``[M, B]`` training task ids: model m draws from ``0..num_tasks[m]-1`` (None = inf), and the
    first ``round(biased_fraction[m] * B)`` sequences of its batch use the fixed task 0."""
    r = torch.randint(0, 2**62, (len(num_tasks), batch_size), device=device, generator=generator)
    rows = []
    for m, (n, f) in enumerate(zip(num_tasks, biased_fraction)):
        ids = INF_TASK_OFFSET + r[m] % INF_TASK_OFFSET if n is None else r[m] % n
        fixed = int(round(f * batch_size))
        if fixed:
            ids = torch.cat([torch.full((fixed,), FIXED_TASK_ID, device=device, dtype=ids.dtype), ids[fixed:]])
        rows.append(ids)
    return torch.stack(rows)


# --------------------------------------------------------------------------
# Models: M independent models stacked along a leading dimension
# --------------------------------------------------------------------------


@dataclass
class GPICLConfig:
    model: str = "transformer"  # or "lstm"
    d_model: int = 256
    layers: int = 4
    heads: int = 8
    ffn_mult: int = 2
    lstm_hidden: int = 512
    input_dim: int = 32
    num_classes: int = 10
    seq_len: int = 100
    batch_size: int = 128
    steps: int = 20000
    lr: float = 5e-4
    warmup: int = 500
    clip: float = 1.0
    seed: int = 0
    amp: bool = True  # bf16 autocast on CUDA
    pair_tokens: bool = False  # transformer: also feed x_{t-1} with token t (not in the paper; see StackedTransformer)
    train_dataset: str = "mnist"  # meta-training images: "mnist" (test images 0-8,999) or "omniglot" (background)
    num_tasks: list = field(default_factory=lambda: [INF])  # one model per entry: int or "inf"
    biased_fraction: list = field(default_factory=lambda: [0.0])  # one per model

    @property
    def token_dim(self) -> int:
        return self.input_dim + self.num_classes


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x [M, N, i], w [M, i, o], b [M, o] -> [M, N, o]`` (one batched matmul for all models)."""
    return torch.baddbmm(b.unsqueeze(1), x, w)


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:]) * w.unsqueeze(1) + b.unsqueeze(1)


class StackedTransformer(nn.Module):
    """M independent pre-LN causal transformers (GPT-style, learned positions), weights ``[M, ...]``.

    ``forward(tokens [M, B, L, token_dim]) -> logits [M, B, L, classes]``; attention is
    ``scaled_dot_product_attention(is_causal=True)``, so logits at t depend on tokens <= t only.

    With ``config.pair_tokens`` (off by default; not in the paper) token t is first extended with the
    input part of token t-1, so ``(x_{t-1}, y_{t-1})`` sit in one token as in SNAIL and notebook 05's
    transformer: a learner then needs no "previous token" attention head to pair an input with its
    label, which is what the long loss plateau of the paper's design waits for.
    """

    def __init__(self, config: GPICLConfig, num_models: int) -> None:
        super().__init__()
        self.config, self.num_models = config, num_models
        M, d, f, L = num_models, config.d_model, config.ffn_mult * config.d_model, config.seq_len
        if d % config.heads:
            raise ValueError(f"d_model={d} is not divisible by heads={config.heads}")

        def weight(*shape, std):
            return nn.Parameter(torch.randn(M, *shape) * std)

        def zeros(*shape):
            return nn.Parameter(torch.zeros(M, *shape))

        def ones(*shape):
            return nn.Parameter(torch.ones(M, *shape))

        residual_std = 0.02 / math.sqrt(2 * config.layers)
        width = config.token_dim + (config.input_dim if config.pair_tokens else 0)
        self.embed_w, self.embed_b = weight(width, d, std=1 / math.sqrt(width)), zeros(d)
        self.position = weight(L, d, std=0.02)
        self.blocks = nn.ModuleList()
        for _ in range(config.layers):
            block = nn.ParameterDict({
                "ln1_w": ones(d), "ln1_b": zeros(d),
                "qkv_w": weight(d, 3 * d, std=0.02), "qkv_b": zeros(3 * d),
                "out_w": weight(d, d, std=residual_std), "out_b": zeros(d),
                "ln2_w": ones(d), "ln2_b": zeros(d),
                "fc1_w": weight(d, f, std=0.02), "fc1_b": zeros(f),
                "fc2_w": weight(f, d, std=residual_std), "fc2_b": zeros(d),
            })
            self.blocks.append(block)
        self.ln_w, self.ln_b = ones(d), zeros(d)
        self.head_w, self.head_b = weight(d, config.num_classes, std=0.02), zeros(config.num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        M, B, L, _ = tokens.shape
        if L > self.config.seq_len:
            raise ValueError(f"sequence of {L} steps; the model has positions for {self.config.seq_len}")
        H, d = self.config.heads, self.config.d_model
        if self.config.pair_tokens:  # [x_t, y_{t-1}, x_{t-1}]: still causal
            previous = F.pad(tokens[..., :self.config.input_dim], (0, 0, 1, 0))[:, :, :L]
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
        return 2 * self.config.layers * self.config.d_model * length


class StackedLSTM(nn.Module):
    """M independent LSTM baselines reading the same tokens (a loop over models; cuDNN per model)."""

    def __init__(self, config: GPICLConfig, num_models: int) -> None:
        super().__init__()
        self.config, self.num_models = config, num_models
        self.lstms = nn.ModuleList(nn.LSTM(config.token_dim, config.lstm_hidden, batch_first=True)
                                   for _ in range(num_models))
        self.heads = nn.ModuleList(nn.Linear(config.lstm_hidden, config.num_classes) for _ in range(num_models))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(lstm(x)[0]) for lstm, head, x in zip(self.lstms, self.heads, tokens)])

    def state_size(self, length: int) -> int:
        """Hidden and cell state: fixed, whatever the sequence length."""
        return 2 * self.config.lstm_hidden


def build_model(config: GPICLConfig, num_models: int | None = None) -> nn.Module:
    num_models = len(config.num_tasks) if num_models is None else num_models
    if config.model == "transformer":
        return StackedTransformer(config, num_models)
    if config.model == "lstm":
        return StackedLSTM(config, num_models)
    raise ValueError(f"model must be 'transformer' or 'lstm', got {config.model!r}")


def model_size(model: nn.Module) -> dict:
    """Parameters of ONE of the stacked models and its state size after a full sequence."""
    total = sum(p.numel() for p in model.parameters())
    return {"parameters": total // model.num_models, "state_size": model.state_size(model.config.seq_len)}


def per_model_grad_clip_(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip each stacked model's gradient to ``max_norm`` on its own; returns the ``[M]`` norms."""
    M = model.num_models
    if isinstance(model, StackedLSTM):
        norms = [torch.nn.utils.clip_grad_norm_(list(l.parameters()) + list(h.parameters()), max_norm)
                 for l, h in zip(model.lstms, model.heads)]
        return torch.stack(norms)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    squares = torch.stack([g.float().reshape(M, -1).pow(2).sum(1) for g in grads]).sum(0)
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(M, *([1] * (g.ndim - 1))).to(g.dtype))
    return norms


# --------------------------------------------------------------------------
# Data for a sweep
# --------------------------------------------------------------------------

MNIST_TRAIN_IMAGES = 9000
TRAIN_DATASETS = ("mnist", "omniglot")
OMNIGLOT_HELD_OUT_CHARACTERS = 96  # the last 96 of the 964 background characters: "test" of an Omniglot run


def load_task_data(config: GPICLConfig, device, smoke_data: bool = False) -> dict[str, ProjectedTasks]:
    """The training data and every evaluation set, as :class:`ProjectedTasks`.

    ``train_dataset="mnist"``: ``{"train": MNIST[:9000], "test": MNIST[9000:], "omniglot": evaluation
    alphabets, "digits": ...}``. ``train_dataset="omniglot"`` (the capstone's shared meta-training data):
    ``"train"``: the first 868 characters of the 30 background alphabets, ``"test"``: the other 96
    background characters (seen tasks = seen projections on new characters), ``"omniglot"``: the
    evaluation alphabets, ``"mnist"``: all 10,000 MNIST test images (an unseen dataset), ``"digits"``.
    """
    from .data import load_digits, load_mnist_test, omniglot_splits

    if config.train_dataset not in TRAIN_DATASETS:
        raise ValueError(f"train_dataset must be one of {TRAIN_DATASETS}, got {config.train_dataset!r}")
    mnist = load_mnist_test()
    images, labels = mnist.images, mnist.labels
    splits = omniglot_splits("lake", rotations=False)
    omniglot = splits["test"]
    if smoke_data:  # tests: a few hundred images
        images, labels = torch.cat([images[:300], images[-100:]]), torch.cat([labels[:300], labels[-100:]])
        omniglot = omniglot.subset_classes(range(20))
    if config.train_dataset == "mnist":
        split = 300 if smoke_data else MNIST_TRAIN_IMAGES
        train = ProjectedTasks(images[:split], labels[:split], config.num_classes, config.input_dim, device=device,
                               name="MNIST (first 9,000 test images)")
        data = {"train": train,
                "test": ProjectedTasks(images[split:], labels[split:], config.num_classes, config.input_dim,
                                       device=device, name="MNIST (last 1,000 test images)", stats=train.stats)}
    else:
        background = splits["train"]
        total = 40 if smoke_data else background.num_classes
        held_out = 12 if smoke_data else OMNIGLOT_HELD_OUT_CHARACTERS
        seen = background.subset_classes(range(total - held_out))
        new = background.subset_classes(range(total - held_out, total))
        train = ProjectedTasks(seen.images, seen.labels, config.num_classes, config.input_dim, device=device,
                               name=f"Omniglot (background, {total - held_out} characters)")
        data = {"train": train,
                "test": ProjectedTasks(new.images, new.labels, config.num_classes, config.input_dim, device=device,
                                       name=f"Omniglot (background, {held_out} held-out characters)",
                                       stats=train.stats),
                "mnist": ProjectedTasks(images, labels, config.num_classes, config.input_dim, device=device,
                                        name="MNIST test set")}
    data["omniglot"] = ProjectedTasks(omniglot.images, omniglot.labels, config.num_classes, config.input_dim,
                                      device=device, name="Omniglot (evaluation alphabets)")
    try:
        digits = load_digits()
    except ImportError as error:  # scikit-learn missing: evaluate without digits rather than fail
        print(f"GPICL: no scikit-learn digits ({error}); skipping that evaluation", file=sys.stderr)
    else:
        data["digits"] = ProjectedTasks(digits.images, digits.labels, config.num_classes, config.input_dim,
                                        device=device, name="scikit-learn digits 8x8")
    return data


def parse_num_tasks(text: str) -> list:
    """``"16,2^10,inf" -> [16, 1024, "inf"]``; anything else (0, negatives, words, repeats) is a ValueError."""
    values = []
    for item in str(text).split(","):
        item = item.strip().lower()
        if item == INF:
            values.append(INF)
            continue
        match = re.fullmatch(r"(\d+)(?:\^(\d+))?", item)
        if match is None:
            raise ValueError(f"--num-tasks: {item!r} is not a positive integer, 2^k or 'inf'")
        value = int(match[1]) ** int(match[2]) if match[2] is not None else int(match[1])
        if value < 1:
            raise ValueError(f"--num-tasks: {item!r}: a pool needs at least 1 task")
        if value >= INF_TASK_OFFSET:
            raise ValueError(f"--num-tasks: {item!r} is too large (use 'inf' for a fresh task every sequence)")
        values.append(value)
    if len(set(map(str, values))) != len(values):
        raise ValueError(f"--num-tasks: {text!r} names a value twice")
    return values


def _pool(n) -> int | None:
    return None if n == INF else int(n)


def run_name(num_tasks, biased_fraction: float = 0.0, batch_size: int | None = None) -> str:
    name = f"tasks_{num_tasks}"
    if batch_size is not None:
        name += f"_batch{batch_size}"
    if biased_fraction:
        name += f"_biased{biased_fraction:g}"
    return name


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def batch_losses(model, tasks: ProjectedTasks, task_ids: torch.Tensor, config: GPICLConfig, generator,
                 amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``model`` may be the module or its ``torch.compile``d forward."""
    """``task_ids [M, B]`` -> per-model mean loss ``[M]`` and accuracy over the last steps ``[M]``."""
    M, B = task_ids.shape
    tokens, targets = tasks.sample_batch(task_ids.reshape(-1), config.seq_len, generator)
    tokens, targets = tokens.view(M, B, config.seq_len, -1), targets.view(M, B, -1)
    with _autocast(tasks.device, amp):
        logits = model(tokens)
    logits = logits.float()
    loss = F.cross_entropy(logits.reshape(-1, config.num_classes), targets.reshape(-1), reduction="none")
    correct = (logits[:, :, -LAST_POSITIONS:].argmax(-1) == targets[:, :, -LAST_POSITIONS:]).float()
    return loss.view(M, -1).mean(1), correct.view(M, -1).mean(1)


@dataclass
class TrainState:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int
    history: dict  # {"step": [...], "loss": [[M values]...], "train_acc_last": [[...]...]}
    generator: torch.Generator
    seconds: float = 0.0


def new_train_state(config: GPICLConfig, device) -> TrainState:
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    fused = torch.device(device).type == "cuda"  # one kernel for all parameters
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=fused)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    return TrainState(model, optimizer, 0, {"step": [], "loss": [], "train_acc_last": []}, generator)


def save_train_state(path: Path, state: TrainState, config: GPICLConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "course_lib.gpicl/1", "config": dataclasses.asdict(config), "step": state.step,
        "seconds": state.seconds, "history": state.history,
        "state_dict": {k: v.detach().cpu() for k, v in state.model.state_dict().items()},
        "optimizer": state.optimizer.state_dict(), "generator": state.generator.get_state(),
    }
    temporary = path.with_name(f".{path.name}.part")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_train_state(path: Path, config: GPICLConfig, device) -> TrainState:
    state = new_train_state(config, device)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != "course_lib.gpicl/1":
        raise ValueError(f"{path} is not a GPICL checkpoint")
    stored = {k: v for k, v in payload["config"].items() if k != "steps"}
    wanted = {k: v for k, v in dataclasses.asdict(config).items() if k != "steps"}
    if stored != wanted:
        differences = [k for k in wanted if stored.get(k) != wanted[k]]
        raise ValueError(f"{path} was trained with another config (differs in {differences})")
    state.model.load_state_dict(payload["state_dict"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.generator.set_state(payload["generator"])
    state.step, state.seconds, state.history = int(payload["step"]), float(payload["seconds"]), payload["history"]
    return state


def train(state: TrainState, config: GPICLConfig, tasks: ProjectedTasks, *, max_seconds: float | None = None,
          checkpoint: Path | None = None, checkpoint_seconds: float = 120.0, log_every: int = 10,
          progress: bool = True, on_checkpoint=None, compile: bool = False) -> TrainState:
    """Train all stacked models until ``config.steps`` or ``max_seconds`` (this call); Ctrl-C/SIGTERM stop
    it cleanly (the state is returned, checkpointed if ``checkpoint`` is set)."""
    device = tasks.device
    model, optimizer = state.model, state.optimizer
    forward = torch.compile(model) if compile else model  # same weights; fewer, fused kernels
    pools = [_pool(n) for n in config.num_tasks]
    amp = config.amp and device.type == "cuda"
    warmup = max(1, config.warmup)
    started = last_checkpoint = time.time()
    seconds_before = state.seconds
    loss_sum = torch.zeros(model.num_models, device=device)
    acc_sum = torch.zeros(model.num_models, device=device)
    count = 0
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc=f"GPICL x{model.num_models}")
    model.train()

    def flush():
        nonlocal count
        if count:
            state.history["step"].append(state.step)
            state.history["loss"].append([round(v, 4) for v in (loss_sum / count).tolist()])
            state.history["train_acc_last"].append([round(v, 3) for v in (acc_sum / count).tolist()])
            loss_sum.zero_(), acc_sum.zero_()
            count = 0

    def save():
        flush()
        state.seconds = seconds_before + time.time() - started
        if checkpoint is not None:
            save_train_state(checkpoint, state, config)
        if on_checkpoint is not None:
            on_checkpoint(state)

    try:
        while state.step < config.steps:
            if max_seconds is not None and time.time() - started > max_seconds:
                break
            lr = config.lr * min(1.0, (state.step + 1) / warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ids = draw_task_ids(pools, config.biased_fraction, config.batch_size, state.generator, device)
            losses, accuracy = batch_losses(forward, tasks, ids, config, state.generator, amp)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            if config.clip:
                per_model_grad_clip_(model, config.clip)
            optimizer.step()
            loss_sum += losses.detach()
            acc_sum += accuracy
            count += 1
            state.step += 1
            bar.update(1)
            if state.step % log_every == 0:
                flush()
                bar.set_postfix(loss=" ".join(f"{v:.2f}" for v in state.history["loss"][-1]), refresh=False)
                if time.time() - last_checkpoint > checkpoint_seconds:
                    save()
                    last_checkpoint = time.time()
    except KeyboardInterrupt:
        print("\ninterrupted: checkpointing, then evaluating what was trained", file=sys.stderr)
    finally:
        bar.close()
    save()
    return state


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


@torch.no_grad()
def accuracy_by_position(model, tasks: ProjectedTasks, task_ids: torch.Tensor, config: GPICLConfig,
                         generator, chunk: int = 256) -> torch.Tensor:
    """``task_ids [M, S]`` -> correct ``[M, S, L]`` (bool) of every model on S sequences."""
    was_training = model.training
    model.eval()
    M, S = task_ids.shape
    out = []
    for start in range(0, S, chunk):
        ids = task_ids[:, start:start + chunk]
        b = ids.shape[1]
        tokens, targets = tasks.sample_batch(ids.reshape(-1), config.seq_len, generator)
        with _autocast(tasks.device, config.amp):
            logits = model(tokens.view(M, b, config.seq_len, -1))
        out.append(logits.float().argmax(-1) == targets.view(M, b, -1))
    model.train(was_training)
    return torch.cat(out, dim=1)


def evaluate_models(model, data: dict[str, ProjectedTasks], config: GPICLConfig, sequences: int = 1024,
                    seed: int = 1234) -> list[dict]:
    """For every stacked model: accuracy by position and over the last 10 steps (mean, 95% CI over sequences)
    on seen tasks, unseen tasks (MNIST held-out images), Omniglot and digits (unseen tasks)."""
    device = data["test"].device
    generator = torch.Generator(device=device).manual_seed(seed)
    M = model.num_models
    seen_ids = draw_task_ids([_pool(n) for n in config.num_tasks], [0.0] * M, sequences, generator, device)
    unseen = UNSEEN_TASK_OFFSET + torch.arange(sequences, device=device)
    unseen_ids = unseen.unsqueeze(0).expand(M, -1)
    settings = {
        "seen_tasks": ("test", seen_ids),
        "unseen_tasks": ("test", unseen_ids),
        "omniglot": ("omniglot", unseen_ids),
        "mnist": ("mnist", unseen_ids),
        "digits": ("digits", unseen_ids),
    }
    results = [dict() for _ in range(M)]
    for name, (dataset, ids) in settings.items():
        if dataset not in data:
            continue
        correct = accuracy_by_position(model, data[dataset], ids, config, generator).float().cpu()
        for m in range(M):
            mean, ci = mean_confidence_interval(correct[m, :, -LAST_POSITIONS:].mean(1))
            results[m][name] = {
                "last_accuracy": mean, "last_ci95": ci, "sequences": sequences,
                "by_position": [round(v, 3) for v in correct[m].mean(0).tolist()],
            }
    return results


# --------------------------------------------------------------------------
# Writing results
# --------------------------------------------------------------------------






def _model_history(history: dict, m: int) -> dict:
    return {"step": history["step"], "loss": [row[m] for row in history["loss"]],
            "train_acc_last": [row[m] for row in history["train_acc_last"]]}


def final_loss(history: dict, m: int, points: int = 5) -> float | None:
    losses = [row[m] for row in history["loss"][-points:]]
    return round(sum(losses) / len(losses), 4) if losses else None


EVAL_NAMES = {"seen_tasks": "seen tasks", "unseen_tasks": "unseen tasks", "omniglot": "Omniglot", "mnist": "MNIST",
              "digits": "digits"}


def _cell(entry: dict | None) -> str:
    return "–" if entry is None else format_accuracy(entry["last_accuracy"], entry["last_ci95"])


def phase_diagram_markdown(rows: list[dict], config: GPICLConfig, meta: dict) -> str:
    columns = [k for k in EVAL_NAMES if any(k in (row.get("evaluation") or {}) for row in rows)] or \
        ["seen_tasks", "unseen_tasks", "omniglot", "digits"]
    source = "MNIST" if config.train_dataset == "mnist" else "Omniglot background"
    lines = [
        f"# GPICL phase diagram: {config.model}, {source} tasks (random projection to {config.input_dim} + label "
        f"permutation), {config.seq_len} examples per sequence, tokens "
        f"{'[x_t, y_(t-1), x_(t-1)] (--pair-tokens)' if config.pair_tokens else '[x_t, y_(t-1)] (as in the paper)'}",
        "",
        f"Accuracy over the last {LAST_POSITIONS} steps of each sequence (after {config.seq_len - LAST_POSITIONS}-"
        f"{config.seq_len - 1} examples), mean ± 95% CI over sequences; chance = {100 / config.num_classes:.0f} %; "
        f"ln({config.num_classes}) = {math.log(config.num_classes):.3f}. Device: {meta.get('device')}; "
        f"batch {config.batch_size}; {meta.get('train_seconds', 0):.0f} s of training in all.",
        "",
        "| tasks | biased | steps | final loss | " + " | ".join(EVAL_NAMES[k] for k in columns)
        + " | acc. at step 1 / 10 / 50 (unseen) |",
        "|---|---|---|---|" + "---|" * len(columns) + "---|",
    ]
    for row in rows:
        ev = row.get("evaluation") or {}
        by = (ev.get("unseen_tasks") or {}).get("by_position") or []
        picks = " / ".join(f"{100 * by[i]:.0f} %" for i in (0, 9, 49) if i < len(by)) or "–"
        lines.append(f"| {row['num_tasks']} | {row['biased_fraction']:g} | {row['steps']} | {row['final_loss']} | "
                     + " | ".join(_cell(ev.get(k)) for k in columns) + f" | {picks} |")
    lines += ["", f"Parameters per model: {rows[0]['parameters']:,}; state size after {config.seq_len} steps: "
              f"{rows[0]['state_size']:,} numbers." if rows else ""]
    return "\n".join(lines) + "\n"


def write_results(out: Path, state: TrainState, config: GPICLConfig, evaluation: list[dict] | None,
                  meta: dict, names: list[str], keep_weights: set[str] = frozenset()) -> list[dict]:
    sizes = model_size(state.model)
    rows = []
    for m, name in enumerate(names):
        row = {
            "run": name, "num_tasks": config.num_tasks[m], "biased_fraction": config.biased_fraction[m],
            "batch_size": config.batch_size, "steps": state.step, "final_loss": final_loss(state.history, m),
            **sizes, "evaluation": None if evaluation is None else evaluation[m],
        }
        rows.append(row)
        folder = out / name
        write_json(folder / "history.json", _model_history(state.history, m))
        write_json(folder / "results.json", {**row, "config": dataclasses.asdict(config), **meta})
        lines = [f"# GPICL {config.model}, {config.num_tasks[m]} tasks (biased fraction "
                 f"{config.biased_fraction[m]:g}), {state.step} steps", "",
                 f"Final training loss {row['final_loss']} (ln {config.num_classes} = "
                 f"{math.log(config.num_classes):.3f}).", ""]
        if evaluation is not None:
            lines += ["| evaluated on | accuracy, last 10 steps |", "|---|---|"]
            lines += [f"| {EVAL_NAMES[k]} | {_cell(v)} |" for k, v in evaluation[m].items()]
        write_text(folder / "results.md", "\n".join(lines) + "\n")
        if str(config.num_tasks[m]) in keep_weights:
            save_weights(state.model, config, m, folder / "weights.pt")
    return rows


def save_weights(model: nn.Module, config: GPICLConfig, m: int, path: Path) -> None:
    """Model ``m`` of a stack, in bf16 (what :func:`load_model` reads)."""
    if isinstance(model, StackedTransformer):
        weights = {k: v[m].detach().to(torch.bfloat16).cpu().clone() for k, v in model.state_dict().items()}
    else:  # StackedLSTM: the m-th LSTM and head
        weights = {k: v.detach().to(torch.bfloat16).cpu().clone() for k, v in model.state_dict().items()
                   if k.startswith((f"lstms.{m}.", f"heads.{m}."))}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": dataclasses.asdict(config), "model_index": m, "state_dict": weights}, path)


def extract_weights(checkpoint: Path | str, out: Path | str, num_tasks) -> Path:
    """Write ``<out>/tasks_<num_tasks>/weights.pt`` from a sweep's ``checkpoint.pt`` (the model trained with
    that pool size, as ``--keep-weights`` would have saved it): for a model you decide to keep afterwards."""
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    known = {f.name for f in dataclasses.fields(GPICLConfig)}
    config = GPICLConfig(**{k: v for k, v in payload["config"].items() if k in known})
    names = [str(n) for n in config.num_tasks]
    if str(num_tasks) not in names:
        raise ValueError(f"{checkpoint} holds models for num_tasks {names}, not {num_tasks}")
    model = build_model(config)
    model.load_state_dict(payload["state_dict"])
    m = names.index(str(num_tasks))
    path = Path(out) / run_name(config.num_tasks[m], config.biased_fraction[m]) / "weights.pt"
    save_weights(model, config, m, path)
    return path


# --------------------------------------------------------------------------
# Notebook 08: shipped runs, one model back from its weights, stepping through a sequence
# --------------------------------------------------------------------------


def load_run(folder: Path | str) -> dict:
    """A run folder written by the command line: ``{"config", "command", "rows", "histories", ...}``.

    ``rows`` is ``phase_diagram.json``'s list (one per model, with its evaluation), ``histories``
    maps each run name (``tasks_<n>``) to its ``history.json`` (steps, training loss, accuracy).
    """
    folder = Path(folder)
    record = json.loads((folder / "config.json").read_text())
    diagram = json.loads((folder / "phase_diagram.json").read_text())
    histories = {row["run"]: json.loads((folder / row["run"] / "history.json").read_text())
                 for row in diagram["rows"] if (folder / row["run"] / "history.json").is_file()}
    return {**diagram, "config": record.get("config"), "command": record["command"],
            "later_commands": record.get("later_commands", []), "histories": histories, "folder": str(folder)}


def load_model(path: Path | str, device="cpu") -> tuple[nn.Module, GPICLConfig]:
    """One model from a ``weights.pt`` (bf16) of a run folder, as a stack of one model (float32, eval mode)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    known = {f.name for f in dataclasses.fields(GPICLConfig)}
    config = GPICLConfig(**{k: v for k, v in payload["config"].items() if k in known})
    model = build_model(config, num_models=1)
    m = payload["model_index"]
    if isinstance(model, StackedTransformer):
        state = {k: v.float().unsqueeze(0) for k, v in payload["state_dict"].items()}
    else:
        state = {re.sub(rf"^(lstms|heads)\.{m}\.", r"\1.0.", k): v.float() for k, v in payload["state_dict"].items()}
    model.load_state_dict(state)
    return model.to(device).eval(), config


@dataclass
class SequenceTrace:
    """One sequence of one task and a model's prediction at every step (see :func:`prediction_trace`)."""

    task_id: int
    example_indices: torch.Tensor  # [L] rows of the dataset
    classes: torch.Tensor  # [L] the dataset's own classes (for Omniglot-like data: 0..num_classes-1 of the sequence)
    targets: torch.Tensor  # [L] the task's labels pi(class), what the model must predict
    probabilities: torch.Tensor  # [L, num_classes] the model's prediction at every step

    @property
    def correct(self) -> torch.Tensor:
        return self.probabilities.argmax(-1) == self.targets


@torch.no_grad()
def prediction_trace(model: nn.Module, tasks: ProjectedTasks, task_id: int, seed: int = 0,
                     seq_len: int | None = None, model_index: int = 0) -> SequenceTrace:
    """Draw one sequence of task ``task_id`` (examples from ``seed``) and return the class probabilities
    of model ``model_index`` of the stack at every step. Causal: row t uses the examples up to t only."""
    seq_len = seq_len or model.config.seq_len
    generator = torch.Generator(device=tasks.device).manual_seed(seed)
    indices, classes = tasks._draw_examples(1, seq_len, generator)
    tokens, targets = tasks.sample_batch(torch.tensor([task_id]), seq_len, example_indices=indices)
    stacked = tokens.unsqueeze(0).expand(model.num_models, -1, -1, -1)
    was_training = model.training
    model.eval()
    logits = model(stacked)[model_index, 0].float()
    model.train(was_training)
    return SequenceTrace(int(task_id), indices[0].cpu(), classes[0].cpu(), targets[0].cpu(),
                         logits.softmax(-1).cpu())


def trace_figure(trace: SequenceTrace, images: torch.Tensor, step: int, window: int = 8, title: str | None = None):
    """Step ``step`` of a trace: the last ``window`` examples up to it (each titled with the label the task
    gives it; green/red: the model's guess before seeing that label was right/wrong), the prediction at
    ``step``, and p(true label) at every step so far. ``images``: the dataset's images, ``[N, 1, H, W]``."""
    import matplotlib.pyplot as plt

    L, C = trace.probabilities.shape
    step = max(0, min(int(step), L - 1))
    first = max(0, step - window + 1)
    fig = plt.figure(figsize=(10, 4.2))
    grid = fig.add_gridspec(2, window, height_ratios=[1, 1.5])
    for slot in range(window):
        ax = fig.add_subplot(grid[0, slot])
        ax.axis("off")
        t = first + slot
        if t > step:
            continue
        ax.imshow(images[int(trace.example_indices[t]), 0].cpu().numpy(), cmap="gray_r")
        guess = int(trace.probabilities[t].argmax())
        colour = "green" if bool(trace.correct[t]) else "red"
        ax.set_title(f"t={t}\nguess {guess}, y={int(trace.targets[t])}", fontsize=8, color=colour)
    ax = fig.add_subplot(grid[1, : window // 2])
    true = int(trace.targets[step])
    ax.bar(range(C), trace.probabilities[step].numpy(),
           color=["tab:green" if k == true else "tab:gray" for k in range(C)])
    ax.set_ylim(0, 1)
    ax.set_xticks(range(C))
    ax.set_xlabel("label")
    ax.set_ylabel(f"p(y_{step} = label)")
    ax.set_title(f"prediction at step {step}, before y_{step} is given (true label green)", fontsize=9)
    ax = fig.add_subplot(grid[1, window // 2:])
    p_true = trace.probabilities[torch.arange(L), trace.targets].numpy()
    ax.plot(range(step + 1), p_true[: step + 1], marker=".", linewidth=1)
    ax.axhline(1 / C, color="black", linestyle=":", linewidth=1)
    ax.set_xlim(-1, L)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step t (examples seen before it: t)")
    ax.set_ylabel("p(true label)")
    ax.set_title(f"so far: {int(trace.correct[: step + 1].sum())} of {step + 1} right (dotted: chance)", fontsize=9)
    fig.suptitle(title or f"task {trace.task_id}", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--model", choices=("transformer", "lstm"))
    parser.add_argument("--d-model", type=int, help="transformer width (default 256)")
    parser.add_argument("--layers", type=int, help="transformer blocks (default 4)")
    parser.add_argument("--heads", type=int, help="attention heads (default 8)")
    parser.add_argument("--ffn-mult", type=int, help="MLP width / d_model (default 2)")
    parser.add_argument("--lstm-hidden", type=int, help="LSTM hidden size (default 512)")
    parser.add_argument("--input-dim", type=int, help="size of the projected inputs (default 32)")
    parser.add_argument("--train-dataset", choices=TRAIN_DATASETS,
                        help="meta-training images: mnist (test images 0-8,999; default) or omniglot (background "
                             "alphabets, the capstone's shared meta-training data)")
    parser.add_argument("--seq-len", type=int, help="examples per sequence (default 100)")
    parser.add_argument("--steps", type=int, help="training steps in all (default 20000)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 5e-4)")
    parser.add_argument("--warmup", type=int, help="linear warm-up steps (default 500)")
    parser.add_argument("--clip", type=float, help="gradient norm clipping per model (default 1; 0 = off)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--pair-tokens", action="store_true", default=None,
                        help="transformer reads [x_t, y_{t-1}, x_{t-1}] (not the paper's design; no plateau wait)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast on CUDA (default on)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint (stored config)")
    parser.add_argument("--max-minutes", type=float, help="stop training after this long (then evaluate)")
    parser.add_argument("--checkpoint-minutes", type=float, default=2.0)
    parser.add_argument("--checkpoint-dir", type=Path, help="where checkpoint.pt goes (default: --out)")
    parser.add_argument("--eval-sequences", type=int, help="sequences per evaluation setting (default 1024)")
    parser.add_argument("--keep-weights", default="",
                        help="num_tasks values whose weights (bf16) are saved in their run folder, e.g. 16,inf")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training forward pass")
    parser.add_argument("--device", help="cpu, cuda, mps (default: automatic)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--smoke-data", action="store_true", help=argparse.SUPPRESS)  # tests: few images


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.gpicl", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sweep = sub.add_parser("sweep", help="one model per number of tasks, trained together: the phase diagram")
    sweep.add_argument("--num-tasks", help="comma-separated: positive ints, 2^k or inf (default 16,...,inf)")
    sweep.add_argument("--batch-size", type=int, help="sequences per model per step (default 128)")
    sweep.add_argument("--biased-fraction", type=float, help="fraction of each batch from one fixed task")
    one = sub.add_parser("train", help="one model")
    one.add_argument("--num-tasks", help="one value: a positive int, 2^k or inf")
    one.add_argument("--batch-size", type=int)
    one.add_argument("--biased-fraction", type=float)
    plateau = sub.add_parser("plateau", help="loss curves: batch sizes x (uniform, biased) at one number of tasks")
    plateau.add_argument("--num-tasks", default="65536")
    plateau.add_argument("--batch-sizes", default="32,128")
    plateau.add_argument("--biased-fraction", type=float, default=0.25)
    for p in (sweep, one, plateau):
        _add_common(p)
    return parser


DEFAULT_SWEEP = "16,256,1024,4096,16384,65536,inf"
OPTION_FIELDS = ("train_dataset", "pair_tokens", "model", "d_model", "layers", "heads", "ffn_mult", "lstm_hidden", "input_dim", "seq_len", "steps",
                 "lr", "warmup", "clip", "seed", "amp", "batch_size")


def _check_positive(config: GPICLConfig) -> None:
    for name in ("d_model", "layers", "heads", "ffn_mult", "lstm_hidden", "input_dim", "seq_len", "batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.steps < 0:
        raise ValueError("--steps must be >= 0")
    if config.seq_len <= LAST_POSITIONS:
        raise ValueError(f"--seq-len must be more than {LAST_POSITIONS}")
    for f in config.biased_fraction:
        if not 0.0 <= f < 1.0:
            raise ValueError(f"--biased-fraction must be in [0, 1), got {f}")


def config_for(args, stored: dict | None, num_tasks: list, biased: list, batch_size: int | None) -> GPICLConfig:
    base = dict(stored or {})
    if stored is None:
        base.update(num_tasks=num_tasks, biased_fraction=biased)
        if batch_size is not None:
            base["batch_size"] = batch_size
    for name in OPTION_FIELDS:
        value = getattr(args, name, None)
        if value is not None and (stored is None or name == "steps"):
            base[name] = value
    known = {f.name for f in dataclasses.fields(GPICLConfig)}
    config = GPICLConfig(**{k: v for k, v in base.items() if k in known})
    _check_positive(config)
    return config


def run_group(args, config: GPICLConfig, names: list[str], out: Path, device: torch.device, max_seconds,
              command: str, data=None) -> list[dict]:
    """Train (or resume) the stacked models of ``config``, evaluate them, write their folders."""
    checkpoint = (args.checkpoint_dir or out) / "checkpoint.pt"
    if args.resume and checkpoint.is_file():
        state = load_train_state(checkpoint, config, device)
    elif args.resume:
        raise SystemExit(f"--resume: no checkpoint at {checkpoint}")
    else:
        state = new_train_state(config, device)
    data = data or load_task_data(config, device, smoke_data=args.smoke_data)
    sizes = model_size(state.model)
    keep = {v.strip() for v in args.keep_weights.split(",") if v.strip()}
    meta = {"machine": machine_description(device), "command": command, "data": {k: v.name for k, v in data.items()}}

    def provisional(s: TrainState) -> None:  # results so far, without evaluation (a crash still leaves these)
        rows = write_results(out, s, config, None, {**meta, "train_seconds": round(s.seconds, 1)}, names)
        write_json(out / "phase_diagram.json", {"rows": rows, "evaluated": False, **meta})

    print(f"GPICL: {len(names)} {config.model} models ({sizes['parameters']:,} parameters, state "
          f"{sizes['state_size']:,}) on {device}; {', '.join(names)}", file=sys.stderr)
    state = train(state, config, data["train"], max_seconds=max_seconds, checkpoint=checkpoint,
                  checkpoint_seconds=60 * args.checkpoint_minutes, progress=not args.no_progress,
                  on_checkpoint=provisional, compile=args.compile)
    started = time.time()
    sequences = args.eval_sequences or 1024
    evaluation = evaluate_models(state.model, data, config, sequences=sequences)
    meta.update(train_seconds=round(state.seconds, 1), eval_seconds=round(time.time() - started, 1),
                device=str(device), finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    rows = write_results(out, state, config, evaluation, meta, names, keep)
    write_json(out / "phase_diagram.json", {"rows": rows, "evaluated": True, "last_positions": LAST_POSITIONS,
                                             **meta})
    write_text(out / "phase_diagram.md", phase_diagram_markdown(rows, config, meta))
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = "python -m course_lib.gpicl " + " ".join(sys.argv[1:] if argv is None else argv)
    config_path = args.out / "config.json"
    stored = None
    if args.resume:
        if not config_path.is_file():
            parser.error(f"--resume: no {config_path}; start a run first")
        stored = json.loads(config_path.read_text())
    try:
        if args.command == "plateau":
            batch_sizes = [int(v) for v in args.batch_sizes.split(",")]
            if not batch_sizes or min(batch_sizes) < 1:
                raise ValueError("--batch-sizes must be positive integers")
            num_tasks = parse_num_tasks(args.num_tasks)
            if not 0 < args.biased_fraction < 1:
                raise ValueError("plateau: --biased-fraction must be in (0, 1)")
            if len(num_tasks) != 1:
                raise ValueError("plateau: --num-tasks takes one value")
            groups = []
            for b in batch_sizes:
                stored_group = None if stored is None else stored["groups"][str(b)]
                groups.append((b, config_for(args, stored_group, num_tasks * 2, [0.0, args.biased_fraction], b)))
        else:
            default = DEFAULT_SWEEP if args.command == "sweep" else INF
            num_tasks = parse_num_tasks(args.num_tasks or default) if stored is None else None
            if args.command == "train" and num_tasks is not None and len(num_tasks) != 1:
                raise ValueError("train: --num-tasks takes one value (use sweep for several)")
            biased = args.biased_fraction or 0.0
            config = config_for(args, None if stored is None else stored["config"],
                                num_tasks, [biased] * len(num_tasks or [0]), args.batch_size)
            groups = [(None, config)]
        if args.max_minutes is not None and args.max_minutes <= 0:
            raise ValueError("--max-minutes must be positive")
        if args.eval_sequences is not None and args.eval_sequences < 2:
            raise ValueError("--eval-sequences must be at least 2")
        device = get_device(args.device)
    except (ValueError, RuntimeError) as error:
        parser.error(str(error))  # exits with status 2; nothing written
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": stored["command"] if stored else command,
              "later_commands": (stored.get("later_commands", []) + [command]) if stored else []}
    if args.command == "plateau":
        record["groups"] = {str(b): dataclasses.asdict(c) for b, c in groups}
    else:
        record["config"] = dataclasses.asdict(groups[0][1])
    write_json(config_path, record)

    # SIGTERM (e.g. `kill PID`, a job scheduler) stops training like Ctrl-C: checkpoint, evaluate, write.
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        max_seconds = None if args.max_minutes is None else 60 * args.max_minutes / len(groups)
        if args.command != "plateau":
            config = groups[0][1]
            names = [run_name(n, f) for n, f in zip(config.num_tasks, config.biased_fraction)]
            rows = run_group(args, config, names, args.out, device, max_seconds, command)
        else:
            rows, data = [], None
            for b, config in groups:
                names = [run_name(n, f, b) for n, f in zip(config.num_tasks, config.biased_fraction)]
                if args.checkpoint_dir is not None:
                    args_group = argparse.Namespace(**{**vars(args), "checkpoint_dir": args.checkpoint_dir / f"b{b}"})
                else:
                    args_group = argparse.Namespace(**{**vars(args), "checkpoint_dir": args.out / f"b{b}"})
                if data is None:
                    data = load_task_data(config, device, smoke_data=args.smoke_data)
                rows += run_group(args_group, config, names, args.out / f"batch_{b}", device, max_seconds,
                                  command, data)
            write_json(args.out / "plateau.json", {"rows": [
                {k: r[k] for k in ("run", "num_tasks", "biased_fraction", "batch_size", "steps", "final_loss")}
                | {"history": json.loads((args.out / f"batch_{r['batch_size']}" / r["run"] / "history.json")
                                         .read_text())} for r in rows]})
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    for row in rows:
        ev = row["evaluation"]
        print(f"{row['run']}: {row['steps']} steps, loss {row['final_loss']}, last-{LAST_POSITIONS} accuracy "
              + ", ".join(f"{EVAL_NAMES[k]} {_cell(v)}" for k, v in ev.items()))
    return rows


if __name__ == "__main__":
    main()
