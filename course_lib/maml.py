"""MAML and its family: second-order MAML, first-order MAML, Reptile, ANIL, Meta-SGD.

For notebook 04 (optimization-based meta-learning). The learner of a task is
a few steps of gradient descent from a *learned initialisation* theta; the
meta-learner learns theta (and, for Meta-SGD, the step sizes) so that these
few steps work well on new tasks.

Inner loop (adaptation to task i, support set D_i^tr, ``steps`` times)::

    phi_i^0 = theta,    phi_i^{s+1} = phi_i^s - alpha * grad_phi L(phi_i^s; D_i^tr)

Meta-objective (query set D_i^ts, meta-batch of T tasks)::

    J(theta) = 1/T sum_i L(phi_i(theta); D_i^ts)

Meta-gradients, by variant:

* ``maml`` (Finn et al. 2017): the exact gradient, through the inner loop,
  ``dJ/dtheta = 1/T sum_i (prod_s (I - alpha H_i^s)) grad L(phi_i; D_i^ts)``
  with the Hessians ``H_i^s`` of the support loss (second order: the graph of
  the inner steps is kept);
* ``fomaml``: drop the Hessian terms, ``1/T sum_i grad L(phi_i; D_i^ts)``
  (the inner gradient is detached, so d phi / d theta = I);
* ``reptile`` (Nichol et al. 2018): no query loss at all; adapt on all the
  task's data and move theta towards the adapted weights. We hand the outer
  Adam the direction ``g = theta - 1/T sum_i phi_i`` as its "gradient"
  (Nichol et al. note that an adaptive optimizer may be used on it; with
  plain SGD and step epsilon this is theta <- theta + epsilon (mean phi - theta));
* ``anil`` (Raghu et al. 2020): the inner loop adapts the linear head only,
  the body is meta-learned (second order through the head updates);
* ``metasgd`` (Li et al. 2017): a learned step size per parameter entry,
  ``phi = theta - alpha (*) grad``, with alpha meta-trained with theta.

Every variant is written once, for one task, and batched over the tasks of a
meta-batch with ``torch.func.vmap`` (tasks stacked as ``[T, N, C, H, W]``);
:func:`meta_loss_loop` is the per-task loop reference that the tests compare
it with, and :func:`meta_backward_loop` the same loop as training runs it
(one backward pass per task, so that only one task's graph is alive at a
time). Training can use vmap or the loop: ``--batching auto`` times both and
keeps the faster; vmap's grouped convolutions are slow on CPUs. The network
is *functional*: its parameters are a dict of tensors, so that adapted
parameters phi_i are just other dicts.

**Batch norm.** MAML's Conv4 uses batch statistics always (Finn et al. keep
no running averages). Under vmap we write batch norm with plain tensor
operations (:func:`batch_norm`): vmap through torch's native batch norm gave a
second-order meta-gradient that differed from a per-task loop by about 1e-2.
The per-task loop, where no vmap is involved, uses torch's native
``F.batch_norm`` (exact there, second order included, and faster: see
:func:`loop_forward`); the tests check that both give the same
meta-gradient. Which examples the statistics come from at the query pass is
a choice (``bn``):

* ``"query"`` (default, as in Finn et al.'s code): the query set is
  normalised with its own batch statistics, so the prediction for one query
  depends on the other queries (transductive);
* ``"joint"``: statistics of support and query together (also transductive);
* ``"support"``: statistics of the support set only, so each query is
  classified on its own (non-transductive).

The support pass of the inner loop always uses the support set's statistics.

This file holds, top to bottom: the config, the functional networks, the
inner loop and the meta-objectives, samplers, training, evaluation, the
sinusoid regression of Finn et al. (with a jointly trained baseline), what
notebook 04 uses on top (:func:`load_run` for the shipped run folders,
:func:`measure_meta_gradient` with :class:`SavedTensorMeter` for the cost of a
meta-gradient, :func:`inner_loop_trace` / :func:`inner_loop_figure` /
:func:`inner_loop_widget` for the step-by-step view of one episode,
:func:`sinusoid_figure`), and the command line::

    python -m course_lib.maml --variant maml --ways 5 --shots 1 --out data/maml/maml_5w1s --max-minutes 6
    python -m course_lib.maml --out data/maml/maml_5w1s --resume           # continue
    python -m course_lib.maml --out data/maml/maml_5w1s --eval-only        # evaluate the checkpoint
    python -m course_lib.maml --task sinusoid --steps 20000 --out data/maml/sinusoid --device cpu
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad as func_grad
from torch.func import vmap
from tqdm.auto import tqdm

from .evaluation import AccuracyResult, format_accuracy, mean_confidence_interval
from .runtime import machine_description
from .training import History, load_checkpoint, save_checkpoint, write_json, write_text

# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------

VARIANTS = ("maml", "fomaml", "reptile", "anil", "metasgd")
TASKS = ("omniglot", "sinusoid")
BN_MODES = ("query", "joint", "support")


@dataclass
class MAMLConfig:
    """Everything that defines a run (saved next to its checkpoint).

    Defaults: MAML on Omniglot 5-way 1-shot as in Finn et al. 2017 (Vinyals
    split with rotations, 28x28, Conv4-64 with max-pooling, one inner step of
    size 0.4 in training and three at test, meta-batch 32, Adam 1e-3). Use
    :func:`default_config` for the other variants and the sinusoid task.
    """

    task: str = "omniglot"  # or "sinusoid"
    variant: str = "maml"  # one of VARIANTS
    protocol: str = "vinyals"
    rotations: bool = True
    image_size: int = 28
    hidden: int = 64  # conv channels (Omniglot) or hidden units (sinusoid: 40)
    ways: int = 5
    shots: int = 1
    queries: int = 15  # per class in training episodes
    meta_batch: int = 32
    inner_steps: int = 1
    test_inner_steps: int = 3
    inner_lr: float = 0.4
    meta_lr: float = 1e-3
    steps: int = 60000
    bn: str = "query"  # see the module docstring
    log_every: int = 20  # history: one averaged point every this many steps (keeps it small)
    seed: int = 0
    init_from: str = ""  # a curriculum: start from another run's meta-parameters (see load_initialisation)


def default_config(task: str = "omniglot", variant: str = "maml", ways: int = 5, **overrides) -> MAMLConfig:
    """The papers' settings for ``task`` / ``variant`` / ``ways``, then ``overrides``."""
    values: dict = {"task": task, "variant": variant, "ways": ways}
    if task == "sinusoid":  # Finn et al. section 5.1
        values.update(hidden=40, ways=1, shots=10, queries=10, meta_batch=25, inner_steps=1, test_inner_steps=10,
                      inner_lr=0.01, steps=70000, log_every=100)
    elif ways >= 20:  # Finn et al.: 20-way used 5 inner steps of 0.1 and 16 tasks per meta-batch
        values.update(inner_steps=5, test_inner_steps=5, inner_lr=0.1, meta_batch=16, queries=5)
    if variant == "reptile" and task == "omniglot":
        # Nichol et al.: 5 inner steps on 10 examples per class (support + query: Reptile does not split),
        # 5 tasks per meta-batch; with one inner step Reptile would be joint training. Plain SGD inner loop
        # (theirs is Adam) so that it is the same learner as MAML's at test time.
        values.update(inner_steps=5, test_inner_steps=10, inner_lr=0.1, meta_batch=5, queries=10 - 1)
    values.update(overrides)
    return MAMLConfig(**values)


def validate_config(config: MAMLConfig) -> None:
    """Raise ``ValueError`` with a readable message for settings that cannot run."""
    problems = []
    if config.task not in TASKS:
        problems.append(f"task must be one of {TASKS}, got {config.task!r}")
    if config.variant not in VARIANTS:
        problems.append(f"variant must be one of {VARIANTS}, got {config.variant!r}")
    if config.bn not in BN_MODES:
        problems.append(f"bn must be one of {BN_MODES}, got {config.bn!r}")
    if config.protocol not in ("vinyals", "lake"):
        problems.append(f"protocol must be 'vinyals' or 'lake', got {config.protocol!r}")
    for name in ("ways", "shots", "queries", "meta_batch", "inner_steps", "test_inner_steps", "hidden", "steps",
                 "log_every"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be a positive integer, got {value!r}")
    for name in ("inner_lr", "meta_lr"):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            problems.append(f"{name} must be a positive number, got {value!r}")
    if config.task == "omniglot":
        if isinstance(config.shots, int) and isinstance(config.queries, int) and config.shots + config.queries > 20:
            problems.append(f"shots + queries = {config.shots + config.queries} but an Omniglot character has 20 "
                            "drawings")
        if isinstance(config.image_size, int) and config.image_size < 16:
            problems.append(f"image_size must be at least 16 for the Conv4, got {config.image_size}")
    if config.seed < 0:
        problems.append(f"seed must be >= 0, got {config.seed}")
    if problems:
        raise ValueError("; ".join(problems))


# --------------------------------------------------------------------------
# Functional networks: parameters are a dict of tensors
# --------------------------------------------------------------------------

Params = dict[str, torch.Tensor]


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stats_rows: int | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """Batch norm over ``[B, C, H, W]`` with batch statistics, in plain tensor ops.

    ``stats_rows``: compute mean and variance from the first ``stats_rows``
    examples only (the support set, for non-transductive prediction), and
    normalise all rows with them. Written by hand (not F.batch_norm) so that
    vmap and second-order autograd through it are exact.
    """
    reference = x if stats_rows is None else x[:stats_rows]
    mean = reference.mean(dim=(0, 2, 3), keepdim=True)
    centred = x - mean
    reference_centred = centred if stats_rows is None else centred[:stats_rows]
    var = reference_centred.square().mean(dim=(0, 2, 3), keepdim=True)  # biased, like BN in training mode
    # Few passes over the big tensor: (x - mean) * (weight / std) + bias, with the last two fused.
    return torch.addcmul(bias.view(1, -1, 1, 1), centred, torch.rsqrt(var + eps) * weight.view(1, -1, 1, 1))


def conv4_init(ways: int, hidden: int = 64, in_channels: int = 1, image_size: int = 28,
               generator: torch.Generator | None = None, dtype=torch.float32) -> Params:
    """Parameters of MAML's Conv4: 4 x (conv3x3 -> BN -> ReLU -> maxpool 2), then a linear head.

    Convolutions have no bias: the batch norm right after subtracts the mean
    and would cancel it. He-uniform initialisation (torch's default for conv).
    """
    side = image_size
    for _ in range(4):
        side //= 2
    params: Params = {}
    channels = in_channels
    for i in range(4):
        fan_in = channels * 9
        bound = 1 / math.sqrt(fan_in)  # = kaiming_uniform(a=sqrt(5)), nn.Conv2d's default
        params[f"conv{i}_weight"] = (torch.rand(hidden, channels, 3, 3, generator=generator, dtype=dtype) * 2 - 1) * bound
        params[f"bn{i}_weight"] = torch.ones(hidden, dtype=dtype)
        params[f"bn{i}_bias"] = torch.zeros(hidden, dtype=dtype)
        channels = hidden
    features = hidden * side * side
    bound = 1 / math.sqrt(features)
    params["head_weight"] = (torch.rand(ways, features, generator=generator, dtype=dtype) * 2 - 1) * bound
    params["head_bias"] = (torch.rand(ways, generator=generator, dtype=dtype) * 2 - 1) * bound
    return params


def conv4_features(params: Params, x: torch.Tensor, stats_rows: int | None = None,
                   native_bn: bool = False) -> torch.Tensor:
    """``native_bn``: torch's ``F.batch_norm`` instead of :func:`batch_norm` (not under vmap: see
    :func:`loop_forward`); only where the statistics are those of all rows (``stats_rows`` None)."""
    h = x
    for i in range(4):
        h = F.conv2d(h, params[f"conv{i}_weight"], padding=1)
        if native_bn and stats_rows is None:
            h = F.batch_norm(h, None, None, params[f"bn{i}_weight"], params[f"bn{i}_bias"], training=True,
                             eps=1e-5)
        else:
            h = batch_norm(h, params[f"bn{i}_weight"], params[f"bn{i}_bias"], stats_rows)
        h = F.max_pool2d(F.relu(h), 2)
    return h.flatten(1)


def conv4_forward(params: Params, x: torch.Tensor, stats_rows: int | None = None,
                  native_bn: bool = False) -> torch.Tensor:
    """Logits ``[B, ways]`` of images ``[B, C, H, W]``."""
    return F.linear(conv4_features(params, x, stats_rows, native_bn), params["head_weight"], params["head_bias"])


def conv4_forward_native_bn(params: Params, x: torch.Tensor, stats_rows: int | None = None) -> torch.Tensor:
    """:func:`conv4_forward` with torch's native batch norm (for the per-task loop, never under vmap)."""
    return conv4_forward(params, x, stats_rows, native_bn=True)


def loop_forward(forward):
    """The forward function the per-task loop uses in place of ``forward``.

    Batch norm is chosen by the batching mode. Under vmap it must be the
    hand-written :func:`batch_norm` (torch's native batch norm under vmap gave
    second-order meta-gradients off by about 1e-2). In a Python loop over
    tasks, nothing is vmapped, and torch's ``F.batch_norm`` (one fused kernel,
    with its own backward and double backward) is exact and faster (in a side
    experiment, a meta-gradient of Conv4-64 5-way 1-shot, meta-batch 32, on one
    CPU thread: about 3.6 s instead of 4.1 s). The support-statistics
    query pass (``bn="support"``) keeps the hand-written one, which F.batch_norm
    cannot express (statistics of some rows applied to all). Other forward
    functions (the sinusoid MLP, yours) are returned unchanged.
    """
    return conv4_forward_native_bn if forward is conv4_forward else forward


def mlp_init(sizes=(1, 40, 40, 1), generator: torch.Generator | None = None, dtype=torch.float32) -> Params:
    """A ReLU MLP (sinusoid: 1-40-40-1), initialised like nn.Linear."""
    params: Params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / math.sqrt(a)
        params[f"fc{i}_weight"] = (torch.rand(b, a, generator=generator, dtype=dtype) * 2 - 1) * bound
        params[f"fc{i}_bias"] = (torch.rand(b, generator=generator, dtype=dtype) * 2 - 1) * bound
    return params


def mlp_forward(params: Params, x: torch.Tensor, stats_rows: int | None = None) -> torch.Tensor:
    layers = len([k for k in params if k.endswith("_weight")])
    h = x
    for i in range(layers):
        h = F.linear(h, params[f"fc{i}_weight"], params[f"fc{i}_bias"])
        if i < layers - 1:
            h = F.relu(h)
    return h


def head_keys(params: Params) -> list[str]:
    """The parameters ANIL adapts: the last layer."""
    if "head_weight" in params:
        return ["head_weight", "head_bias"]
    last = len([k for k in params if k.endswith("_weight")]) - 1
    return [f"fc{last}_weight", f"fc{last}_bias"]


# --------------------------------------------------------------------------
# The inner loop and the meta-objectives
# --------------------------------------------------------------------------

LossFn = Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]


def inner_adapt(
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    steps: int,
    inner_lr: float,
    loss_fn: LossFn,
    first_order: bool,
    per_param_lr: Params | None = None,
    adapt_keys: list[str] | None = None,
    backend: str = "func",
) -> Params:
    """``steps`` steps of gradient descent on ``loss_fn(params, support_x, support_y)``.

    Returns the adapted parameters phi (a new dict; the others are shared).
    ``first_order``: detach the inner gradient, so that d phi / d theta = I
    (FOMAML, Reptile); otherwise the graph is kept and a backward pass through
    phi gives the exact second-order meta-gradient. ``per_param_lr`` (Meta-SGD)
    replaces ``inner_lr`` by one tensor per parameter; ``adapt_keys`` (ANIL)
    restricts adaptation to some parameters.

    ``backend="func"`` uses ``torch.func.grad`` (works inside ``vmap`` and
    under ``torch.no_grad``); ``"autograd"`` uses ``torch.autograd.grad`` with
    ``create_graph`` (the textbook way; used by the per-task loop reference).
    """
    keys = list(params) if adapt_keys is None else list(adapt_keys)
    fast = dict(params)
    for _ in range(steps):
        if backend == "func":
            def support_loss(sub: Params, fast=fast) -> torch.Tensor:
                return loss_fn({**fast, **sub}, support_x, support_y)

            grads = func_grad(support_loss)({k: fast[k] for k in keys})
        elif backend == "autograd":
            loss = loss_fn(fast, support_x, support_y)
            values = torch.autograd.grad(loss, [fast[k] for k in keys], create_graph=not first_order)
            grads = dict(zip(keys, values))
        else:
            raise ValueError(f"backend must be 'func' or 'autograd', got {backend!r}")
        fast = dict(fast)
        for k in keys:
            g = grads[k].detach() if first_order else grads[k]
            lr = inner_lr if per_param_lr is None else per_param_lr[k]
            fast[k] = fast[k] - lr * g
    return fast


def _classification_loss(forward) -> LossFn:
    return lambda params, x, y: F.cross_entropy(forward(params, x), y)


def _regression_loss(forward) -> LossFn:
    return lambda params, x, y: F.mse_loss(forward(params, x), y)


def query_outputs(forward, params: Params, support_x: torch.Tensor, query_x: torch.Tensor, bn: str) -> torch.Tensor:
    """The network's outputs for the query set, with batch statistics chosen by ``bn``."""
    if bn == "query":
        return forward(params, query_x)
    both = torch.cat([support_x, query_x])
    stats_rows = len(support_x) if bn == "support" else None
    return forward(params, both, stats_rows)[len(support_x):]


def _first_order(variant: str) -> bool:
    return variant in ("fomaml", "reptile")


def task_objective(params: Params, sx, sy, qx, qy, *, variant: str, steps: int, inner_lr: float, forward,
                   regression: bool = False, lrs: Params | None = None, bn: str = "query",
                   backend: str = "func") -> tuple[torch.Tensor, torch.Tensor]:
    """Post-adaptation query loss of one task, and its accuracy (regression: the loss again)."""
    loss_fn = _regression_loss(forward) if regression else _classification_loss(forward)
    fast = inner_adapt(params, sx, sy, steps, inner_lr, loss_fn, first_order=_first_order(variant),
                       per_param_lr=lrs if variant == "metasgd" else None,
                       adapt_keys=head_keys(params) if variant == "anil" else None, backend=backend)
    out = query_outputs(forward, fast, sx, qx, bn)
    if regression:
        loss = F.mse_loss(out, qy)
        return loss, loss.detach()
    return F.cross_entropy(out, qy), (out.argmax(-1) == qy).float().mean()


def meta_loss(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """The meta-objective J over a meta-batch ``(sx, sy, qx, qy)`` with leading task dim, batched by vmap.

    ``loss.backward()`` gives the meta-gradient of maml / fomaml / anil /
    metasgd. (Reptile has no query loss: see :func:`reptile_direction`.)
    """
    sx, sy, qx, qy = batch
    losses, accuracies = vmap(lambda a, b, c, d: task_objective(params, a, b, c, d, **kw))(sx, sy, qx, qy)
    return losses.mean(), accuracies.mean()


def meta_loss_loop(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """The same meta-objective with a Python loop over tasks and torch.autograd.grad (reference).

    Builds the graphs of all the tasks at once (one backward pass on their
    mean); training uses :func:`meta_backward_loop`, the same gradient with one
    task's graph alive at a time. Native batch norm (:func:`loop_forward`).
    """
    sx, sy, qx, qy = batch
    kw = {**kw, "forward": loop_forward(kw["forward"])}
    pairs = [task_objective(params, sx[i], sy[i], qx[i], qy[i], backend="autograd", **kw) for i in range(len(sx))]
    return torch.stack([p[0] for p in pairs]).mean(), torch.stack([p[1] for p in pairs]).mean()


def meta_backward_loop(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """``meta_loss_loop(params, batch, **kw)[0].backward()``, one task at a time; returns (loss, accuracy).

    For each task: its post-adaptation query loss, divided by the number of
    tasks T, then ``backward()`` at once, which adds this task's share of the
    meta-gradient to the ``.grad`` of the leaves (theta; Meta-SGD's step sizes
    in ``kw["lrs"]``) and frees its graph before the next task is built. The
    sum of the T backward passes is the meta-gradient of the mean loss (the
    same terms, added in another order), and the peak memory is one task's
    graph instead of T (like higher / torchopt / learn2learn's examples). The
    returned loss and accuracy are the means over tasks, detached (the same
    values as :func:`meta_loss_loop`'s). ``.grad`` is accumulated into, not
    reset: zero it first.
    """
    sx, sy, qx, qy = batch
    tasks = len(sx)
    kw = {**kw, "forward": loop_forward(kw["forward"])}
    losses, accuracies = [], []
    for i in range(tasks):
        loss, accuracy = task_objective(params, sx[i], sy[i], qx[i], qy[i], backend="autograd", **kw)
        (loss / tasks).backward()
        losses.append(loss.detach())
        accuracies.append(accuracy.detach())
        del loss, accuracy  # nothing of this task's graph survives into the next one
    return torch.stack(losses).mean(), torch.stack(accuracies).mean()


def reptile_direction(params: Params, batch, *, steps: int, inner_lr: float, forward, regression: bool = False,
                      batched: bool = True, **_) -> tuple[Params, torch.Tensor]:
    """Reptile's meta-"gradient" ``theta - mean_i phi_i`` and the mean post-adaptation training loss.

    Each task adapts on *all* its data (support and query together, as Reptile
    does not split), first order, without any graph (nothing is backpropagated).
    """
    sx, sy, qx, qy = batch
    x, y = torch.cat([sx, qx], dim=1), torch.cat([sy, qy], dim=1)
    loss_fn = _regression_loss(forward) if regression else _classification_loss(forward)
    detached = {k: v.detach() for k, v in params.items()}

    def adapt(xi, yi):
        fast = inner_adapt(detached, xi, yi, steps, inner_lr, loss_fn, first_order=True)
        return fast, loss_fn(fast, xi, yi)

    with torch.no_grad():
        if batched:
            adapted, losses = vmap(adapt)(x, y)
        else:
            pairs = [adapt(x[i], y[i]) for i in range(len(x))]
            adapted = {k: torch.stack([p[0][k] for p in pairs]) for k in params}
            losses = torch.stack([p[1] for p in pairs])
        direction = {k: detached[k] - adapted[k].mean(0) for k in params}
    return direction, losses.mean()


# --------------------------------------------------------------------------
# The meta-parameters as a module (for Adam and checkpoints)
# --------------------------------------------------------------------------


class MetaLearner(nn.Module):
    """theta (``params``) and, for Meta-SGD, the per-parameter step sizes (``lrs``)."""

    def __init__(self, config: MAMLConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        if config.task == "sinusoid":
            initial = mlp_init((1, config.hidden, config.hidden, 1), generator=generator)
        else:
            initial = conv4_init(config.ways, config.hidden, 1, config.image_size, generator=generator)
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in initial.items()})
        if config.variant == "metasgd":  # Li et al.: alpha initialised to the usual step size, then meta-learned
            self.lrs = nn.ParameterDict({k: nn.Parameter(torch.full_like(v, config.inner_lr))
                                         for k, v in initial.items()})
        else:
            self.lrs = None

    @property
    def forward_fn(self):
        return mlp_forward if self.config.task == "sinusoid" else conv4_forward

    def theta(self) -> Params:
        return dict(self.params.items())

    def step_sizes(self) -> Params | None:
        return None if self.lrs is None else dict(self.lrs.items())

    def objective_kwargs(self, steps: int | None = None, bn: str | None = None) -> dict:
        c = self.config
        return dict(variant=c.variant, steps=c.inner_steps if steps is None else steps, inner_lr=c.inner_lr,
                    forward=self.forward_fn, regression=c.task == "sinusoid", lrs=self.step_sizes(),
                    bn=c.bn if bn is None else bn)


# --------------------------------------------------------------------------
# Episodes: many tasks at once, all images on the device
# --------------------------------------------------------------------------


def episode_indices(generator: torch.Generator, num_classes: int, per_class: int, ways: int, count: int,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes ``[count, ways]`` and drawing orders ``[count, ways, per_class]`` of ``count`` episodes.

    Each episode draws exactly like :meth:`course_lib.protonet.FastEpisodeSampler.sample`
    (randperm of the classes, then a random order of each class's drawings),
    so with the same seed the test episodes are those every other method of
    the course is evaluated on.
    """
    classes, members = [], []
    for _ in range(count):
        classes.append(torch.randperm(num_classes, generator=generator)[:ways])
        members.append(torch.rand(ways, per_class, generator=generator).argsort(dim=1))
    return torch.stack(classes), torch.stack(members)


class BatchedEpisodes:
    """N-way K-shot Q-query episodes, many at once, gathered on the device from ``[classes, 20, C, H, W]``."""

    def __init__(self, dataset, device: torch.device) -> None:
        counts = dataset.examples_per_class().cpu()
        if (counts != counts[0]).any():
            raise ValueError(f"{dataset.name}: every class needs the same number of images")
        self.per_class = int(counts[0])
        self.num_classes = dataset.num_classes
        self.device = torch.device(device)
        order = torch.argsort(dataset.labels.cpu(), stable=True)
        self.images = dataset.images.cpu()[order].reshape(self.num_classes, self.per_class, *dataset.image_shape)
        self.images = self.images.to(self.device)  # once: no copies between devices afterwards

    def check(self, ways: int, shots: int, queries: int) -> None:
        if ways > self.num_classes or shots + queries > self.per_class:
            raise ValueError(f"{ways}-way {shots}-shot {queries}-query episodes need {ways} classes of "
                             f"{shots + queries} images; there are {self.num_classes} classes of {self.per_class}")

    def gather(self, classes: torch.Tensor, members: torch.Tensor, shots: int, queries: int):
        """``(sx [T, N*K, C, H, W], sy [T, N*K], qx, qy)`` for the episodes drawn by :func:`episode_indices`."""
        t, n = classes.shape
        classes = classes.to(self.device)
        members = members[:, :, : shots + queries].to(self.device)
        chosen = self.images[classes[:, :, None], members]  # [T, N, K+Q, C, H, W]
        shape = self.images.shape[2:]
        labels = torch.arange(n, device=self.device)
        sx = chosen[:, :, :shots].reshape(t, n * shots, *shape)
        qx = chosen[:, :, shots:].reshape(t, n * queries, *shape)
        sy = labels.repeat_interleave(shots).expand(t, -1)
        qy = labels.repeat_interleave(queries).expand(t, -1)
        return sx, sy, qx, qy

    def sample(self, generator: torch.Generator, count: int, ways: int, shots: int, queries: int):
        classes, members = episode_indices(generator, self.num_classes, self.per_class, ways, count)
        return self.gather(classes, members, shots, queries)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The episodes of training step ``step`` depend on (seed, step) only: resuming repeats nothing."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


# --------------------------------------------------------------------------
# Sinusoid regression (Finn et al. 2017, section 5.1)
# --------------------------------------------------------------------------


def sinusoid_batch(generator: torch.Generator, count: int, shots: int, queries: int, device: torch.device,
                   amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
    """``(sx [T, K, 1], sy, qx [T, Q, 1], qy)`` and the ``[T, 2]`` (amplitude, phase) of ``count`` tasks.

    The same distribution as :class:`course_lib.episodes.SinusoidTasks`, drawn in one go on the CPU.
    """
    a = amplitude[0] + (amplitude[1] - amplitude[0]) * torch.rand(count, 1, 1, generator=generator)
    p = phase[0] + (phase[1] - phase[0]) * torch.rand(count, 1, 1, generator=generator)
    x = x_range[0] + (x_range[1] - x_range[0]) * torch.rand(count, shots + queries, 1, generator=generator)
    y = a * torch.sin(x - p)
    parts = (x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
    return tuple(v.to(device) for v in parts), torch.cat([a, p], dim=-1).reshape(count, 2)


def pretrain_joint(config: MAMLConfig, steps: int, device: torch.device | str = "cpu", progress: bool = False,
                   ) -> Params:
    """The baseline of Finn et al.'s figure: one MLP regressed on all tasks at once (Adam, MSE).

    Without adaptation it predicts about the average sine, i.e. close to 0.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(config.seed + 1)
    module = MetaLearner(dataclasses.replace(config, variant="maml"), generator=generator).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.meta_lr)
    for step in tqdm(range(steps), desc="joint pretraining", disable=not progress):
        (sx, sy, qx, qy), _ = sinusoid_batch(step_generator(config.seed + 7, step), config.meta_batch,
                                             config.shots, config.queries, device)
        loss = F.mse_loss(mlp_forward(module.theta(), torch.cat([sx, qx], 1)), torch.cat([sy, qy], 1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {k: v.detach() for k, v in module.theta().items()}


def evaluate_regression(params: Params, config: MAMLConfig, tasks: int = 600, steps_list=(0, 1, 10),
                        seed: int = 0, device: torch.device | str = "cpu", lrs: Params | None = None,
                        queries: int = 100) -> dict[str, AccuracyResult]:
    """Mean query MSE (± 95% CI) over ``tasks`` test tasks after each number of inner steps in ``steps_list``.

    (An :class:`AccuracyResult` holds the MSE here: lower is better.)
    """
    device = torch.device(device)
    (sx, sy, qx, qy), _ = sinusoid_batch(torch.Generator().manual_seed(10_000 + seed), tasks, config.shots,
                                         queries, device)
    loss_fn = _regression_loss(mlp_forward)
    params = {k: v.detach().to(device) for k, v in params.items()}
    results = {}
    for steps in steps_list:
        def one(a, b, c, d):
            fast = inner_adapt(params, a, b, steps, config.inner_lr, loss_fn, first_order=True, per_param_lr=lrs,
                               adapt_keys=head_keys(params) if config.variant == "anil" else None)
            return F.mse_loss(mlp_forward(fast, c), d)

        with torch.no_grad():
            errors = vmap(one)(sx, sy, qx, qy)
        mean, ci = mean_confidence_interval(errors.cpu())
        results[f"{steps} steps"] = AccuracyResult(mean, ci, tasks)
    return results


def sinusoid_predictions(params: Params, support_x: torch.Tensor, support_y: torch.Tensor, grid: torch.Tensor,
                         steps_list=(0, 1, 10), inner_lr: float = 0.01) -> dict[int, torch.Tensor]:
    """Predictions on ``grid [M, 1]`` after each number of steps on one task's support set (for the figure)."""
    loss_fn = _regression_loss(mlp_forward)
    params = {k: v.detach() for k, v in params.items()}
    out = {}
    with torch.no_grad():
        for steps in steps_list:
            fast = inner_adapt(params, support_x, support_y, steps, inner_lr, loss_fn, first_order=True)
            out[steps] = mlp_forward(fast, grid)
    return out


# --------------------------------------------------------------------------
# Training, resumable
# --------------------------------------------------------------------------

CHECKPOINT_NAME = "checkpoint.pt"


def load_initialisation(module: MetaLearner, path: str | Path) -> list[str]:
    """Copy into ``module`` every meta-parameter of checkpoint ``path`` whose name and shape match.

    A curriculum: a 20-way run can start from a 5-way run's convolutions; the
    head (``ways`` outputs) keeps its fresh initialisation. Returns the names
    copied; raises ``ValueError`` if nothing matches (then it is not a run of
    this network).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--init-from: there is no checkpoint at {path}")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    stored = payload.get("state_dict", {}) if isinstance(payload, dict) else {}
    own = module.state_dict()
    matching = {k: v for k, v in stored.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"--init-from: no meta-parameter of {path} matches this network (another model or size?)")
    with torch.no_grad():
        for name, value in matching.items():
            own[name].copy_(value)
    return sorted(matching)


def _check_resumable(stored: dict, config: MAMLConfig) -> None:
    wanted = dataclasses.asdict(config)
    stored = {**dataclasses.asdict(MAMLConfig()), **stored}  # runs saved before a field existed have its default
    differences = [f"{k}: checkpoint {stored.get(k)!r} vs yours {wanted.get(k)!r}"
                   for k in sorted(set(wanted) | set(stored)) if k != "steps" and stored.get(k) != wanted.get(k)]
    if differences:
        raise ValueError("cannot resume: the checkpoint was trained with another config (" + "; ".join(differences)
                         + ")")


def meta_step(module: MetaLearner, optimizer: torch.optim.Optimizer, batch, batched: bool = True,
              ) -> tuple[float, float]:
    """One meta-update on ``batch``; returns (loss, accuracy) as Python floats (regression: loss, loss).

    ``batched``: vmap over the tasks (one set of larger kernels: fast on GPUs) or a
    Python loop (the same numbers; faster on CPUs, where vmap's grouped convolutions are slow),
    with one backward pass per task (:func:`meta_backward_loop`: one task's graph in memory).
    """
    config = module.config
    optimizer.zero_grad(set_to_none=True)
    if config.variant == "reptile":
        direction, loss = reptile_direction(module.theta(), batch, batched=batched, **module.objective_kwargs())
        for name, p in module.params.items():
            p.grad = direction[name]
        accuracy = loss  # Reptile has no query loss; we log the post-adaptation training loss
    elif batched:
        loss, accuracy = meta_loss(module.theta(), batch, **module.objective_kwargs())
        loss.backward()
    else:
        loss, accuracy = meta_backward_loop(module.theta(), batch, **module.objective_kwargs())
    optimizer.step()
    if module.lrs is not None:  # keep Meta-SGD's step sizes non-negative
        with torch.no_grad():
            for p in module.lrs.values():
                p.clamp_(min=0)
    return float(loss.detach()), float(accuracy.detach())


def train(module: MetaLearner, sample_batch: Callable[[int], tuple], *, device: torch.device, run_dir: Path | None,
          resume: bool = False, max_seconds: float | None = None, checkpoint_seconds: float = 300.0,
          progress: bool = True, batching: str = "vmap") -> dict:
    """Meta-train ``module`` for ``config.steps`` steps; ``sample_batch(step)`` gives the meta-batch of a step.

    ``batching``: ``"vmap"``, ``"loop"`` (see :func:`meta_step`) or ``"auto"``:
    time both on the first real training steps and keep the faster.

    Checkpoints ``run_dir/checkpoint.pt`` every ``checkpoint_seconds``, when
    ``max_seconds`` is used up, on Ctrl-C / SIGTERM (KeyboardInterrupt) and at
    the end. Returns ``{"history", "step", "stopped", "train_seconds", "ms_per_step"}``.
    """
    config = module.config
    module.to(device).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=config.meta_lr)
    history, start, previous_seconds = History(), 0, 0.0
    path = None if run_dir is None else Path(run_dir) / CHECKPOINT_NAME
    if resume and path is not None and path.is_file():
        payload = load_checkpoint(path, module, optimizer=optimizer, map_location=device)
        _check_resumable(payload["config"], config)
        history, start = payload["history"], int(payload["step"] or 0)
        previous_seconds = float(payload["results"].get("train_seconds", 0.0))
        if progress:
            print(f"resuming from {path} at step {start} of {config.steps}")
    state = {"step": start, "saved_at": time.monotonic()}
    window: list[tuple[float, float]] = []
    timed: list[float] = []  # seconds per step, after warm-up
    started = time.monotonic()

    def seconds() -> float:
        return previous_seconds + time.monotonic() - started

    def save() -> None:
        if path is not None:
            extra = {"train_seconds": seconds(), "ms_per_step": _ms(timed)}
            save_checkpoint(path, module, config, history=history, optimizer=optimizer, step=state["step"],
                            results=extra)
            state["saved_at"] = time.monotonic()

    if batching not in ("vmap", "loop", "auto"):
        raise ValueError(f"batching must be 'vmap', 'loop' or 'auto', got {batching!r}")
    # "auto": steps 0-2 with vmap, 3-5 with the loop (the first of each untimed), then the faster one.
    trial = {"vmap": [], "loop": []}
    state["batching"] = batching if batching != "auto" else None
    stopped = "finished"
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc=f"{config.variant} {config.task} {config.ways}-way {config.shots}-shot", mininterval=2.0)
    try:
        for step in bar:
            tick = time.perf_counter()
            batch = sample_batch(step)
            mode = state["batching"] or ("vmap" if step - start < 3 else "loop")
            loss, accuracy = meta_step(module, optimizer, batch, batched=mode == "vmap")  # float() syncs the GPU
            elapsed = time.perf_counter() - tick
            if state["batching"] is None:
                if (step - start) % 3:  # the first step of each includes start-up, autotuning, allocations
                    trial[mode].append(elapsed)
                if step - start == 5:
                    state["batching"] = min(trial, key=lambda m: sorted(trial[m])[0])
                    if progress:
                        print(f"batching: {state['batching']} (ms per step: vmap "
                              f"{1000 * min(trial['vmap']):.0f}, loop {1000 * min(trial['loop']):.0f})")
            # The first steps include CUDA start-up, cuDNN autotuning and allocations: not timed
            # (unless the run is too short to have anything else).
            elif step - start >= 3 or config.steps - start <= 3:
                timed.append(elapsed)
            state["step"] = step + 1
            window.append((loss, accuracy))
            if len(window) == config.log_every or step + 1 == config.steps:
                metric = "train_mse" if config.task == "sinusoid" else (
                    "train_loss_after_adaptation" if config.variant == "reptile" else "query_accuracy")
                history.log(step, loss=sum(w[0] for w in window) / len(window),
                            **{metric: sum(w[1] for w in window) / len(window)})
                bar.set_postfix(loss=f"{history.last('loss'):.3g}", refresh=False)
                window = []
            if not math.isfinite(loss):
                raise FloatingPointError(f"the meta-loss is {loss} at step {step}; lower --meta-lr or --inner-lr")
            if step + 1 < config.steps and time.monotonic() - state["saved_at"] > checkpoint_seconds:
                save()
            if max_seconds is not None and time.monotonic() - started > max_seconds and step + 1 < config.steps:
                stopped = "time budget"
                break
    except KeyboardInterrupt:
        bar.close()
        save()
        if progress:
            print(f"interrupted at step {state['step']}: checkpointed", file=sys.stderr)
        raise
    bar.close()
    if not timed:  # a run too short to time after the warm-up: use what there is
        timed = trial["vmap"] + trial["loop"]
    save()
    if progress and stopped != "finished":
        print(f"time budget of {max_seconds:.0f} s used up at step {state['step']}: checkpointed")
    return {"history": history, "step": state["step"], "stopped": stopped, "train_seconds": seconds(),
            "ms_per_step": _ms(timed), "batching": state["batching"] or "undecided (run too short)",
            "batching_trial_ms": {m: [round(1000 * t, 1) for t in v] for m, v in trial.items() if v}}


def _ms(timed: list[float]) -> float | None:
    if not timed:
        return None
    ordered = sorted(timed)
    return round(1000 * ordered[len(ordered) // 2], 2)  # median: robust to checkpoint pauses


# --------------------------------------------------------------------------
# Evaluation on many test episodes, batched
# --------------------------------------------------------------------------


def evaluate_classification(module: MetaLearner, episodes: BatchedEpisodes, ways: int, shots: int, queries: int,
                            count: int = 1000, inner_steps: int | None = None, bn: str | None = None,
                            seed: int = 0, max_images: int = 4000, progress: bool = False,
                            return_curve: bool = False, batching: str = "auto"):
    """Query accuracy ± 95% CI over ``count`` test episodes (the same ones for a given seed).

    Each episode: adapt a copy of theta on its support set (``inner_steps``,
    default ``config.test_inner_steps``; Reptile, ANIL and Meta-SGD with
    their own inner loop), then classify its queries with batch statistics
    chosen by ``bn`` (default ``config.bn``). Episodes are processed in
    chunks of about ``max_images`` images, batched with vmap. The head has
    ``config.ways`` outputs, so only ``ways <= config.ways`` can be evaluated.
    With ``return_curve``, also returns the mean accuracy after 0, 1, ...,
    ``inner_steps`` steps (one list, same episodes); without it, only the
    last step's queries are classified. ``batching``: ``"vmap"`` (episodes of a
    chunk at once, fast on GPUs), ``"loop"`` (one episode at a time, faster on
    CPUs, where vmap's grouped convolutions are slow) or ``"auto"`` (loop on
    the CPU, vmap elsewhere); the numbers are the same.
    """
    config = module.config
    if ways > config.ways:
        raise ValueError(f"the model has a {config.ways}-way head; cannot evaluate {ways}-way episodes")
    episodes.check(ways, shots, queries)
    steps = config.test_inner_steps if inner_steps is None else inner_steps
    bn = config.bn if bn is None else bn
    classes, members = episode_indices(torch.Generator().manual_seed(seed), episodes.num_classes,
                                       episodes.per_class, ways, count)
    params = {k: v.detach() for k, v in module.theta().items()}
    if ways < config.ways:  # use the first `ways` output units
        params["head_weight"], params["head_bias"] = params["head_weight"][:ways], params["head_bias"][:ways]
    lrs = module.step_sizes()
    if lrs is not None:
        lrs = {k: v.detach() for k, v in lrs.items()}
        if ways < config.ways:
            lrs["head_weight"], lrs["head_bias"] = lrs["head_weight"][:ways], lrs["head_bias"][:ways]
    loss_fn = _classification_loss(conv4_forward)
    adapt_keys = head_keys(params) if config.variant == "anil" else None
    per_param_lr = lrs if config.variant == "metasgd" else None

    def accuracy_by_step(sx, sy, qx, qy):  # [steps + 1]: query accuracy after 0, 1, ..., steps inner steps
        fast, accuracies = params, []
        for s in range(steps + 1):
            if s > 0:  # no meta-gradient is needed at test time: first order is exact here
                fast = inner_adapt(fast, sx, sy, 1, config.inner_lr, loss_fn, first_order=True,
                                   per_param_lr=per_param_lr, adapt_keys=adapt_keys)
            if return_curve or s == steps:
                out = query_outputs(conv4_forward, fast, sx, qx, bn)
                accuracies.append((out.argmax(-1) == qy).float().mean())
        return torch.stack(accuracies)

    if batching not in ("auto", "vmap", "loop"):
        raise ValueError(f"batching must be 'auto', 'vmap' or 'loop', got {batching!r}")
    if batching == "auto":
        batching = "loop" if episodes.device.type == "cpu" else "vmap"
    chunk = max(1, max_images // (ways * (shots + queries)))
    curves = []
    for first in tqdm(range(0, count, chunk), desc=f"test {ways}-way {shots}-shot", disable=not progress,
                      leave=False):
        batch = episodes.gather(classes[first:first + chunk], members[first:first + chunk], shots, queries)
        with torch.no_grad():  # torch.func.grad still differentiates the inner loop
            if batching == "vmap":
                curves.append(vmap(accuracy_by_step)(*batch).cpu())
            else:
                curves.append(torch.stack([accuracy_by_step(*(v[i] for v in batch))
                                           for i in range(len(batch[0]))]).cpu())
    curve = torch.cat(curves)  # [count, steps + 1] (or [count, 1] without the curve)
    mean, ci = mean_confidence_interval(curve[:, -1])
    result = AccuracyResult(mean, ci, count)
    return (result, curve.mean(0).tolist()) if return_curve else result


# --------------------------------------------------------------------------
# For notebook 04: shipped runs, cost measurements, the inner-loop widget
# --------------------------------------------------------------------------


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[MetaLearner, dict, dict | None]:
    """The trained meta-learner of a run folder written by the command line.

    Returns ``(module, payload, results)``: the module in eval mode on
    ``device``, the checkpoint payload (``step``, ``history``, ...) and the
    parsed ``results.json`` (None when the run was not evaluated yet).
    """
    run_dir = Path(run_dir)
    stored = json.loads((run_dir / "config.json").read_text())["config"]
    known = {f.name for f in dataclasses.fields(MAMLConfig)}
    config = MAMLConfig(**{k: v for k, v in stored.items() if k in known})
    module = MetaLearner(config)
    payload = load_checkpoint(run_dir / CHECKPOINT_NAME, module, map_location=device)
    results_path = run_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else None
    return module.to(device).eval(), payload, results


def load_joint(run_dir: str | Path) -> Params | None:
    """The jointly trained sinusoid baseline a sinusoid run folder holds (``joint.pt``), or None."""
    path = Path(run_dir) / "joint.pt"
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


class SavedTensorMeter:
    """Peak bytes of the tensors autograd keeps for the backward pass, while the context is active.

    This is the memory a meta-gradient costs on top of the parameters (the
    activations of every forward pass the backward pass will go through),
    measured the same way on every device; each storage is counted once, and
    released when the graph that holds it is freed.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._live: dict = {}
        self._hooks = None

    def _release(self, key) -> None:
        entry = self._live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._live[key]

    def _pack(self, tensor: torch.Tensor):
        import weakref

        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), str(tensor.device))
        entry = self._live.setdefault(key, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        holder = _Saved(tensor)
        weakref.finalize(holder, self._release, key)
        return holder

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda holder: holder.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Saved:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def measure_meta_gradient(module: MetaLearner, batch, repeats: int = 3, steps: int | None = None) -> dict:
    """Time and memory of one meta-gradient (forward through the inner loop, then backward) on ``batch``.

    Returns ``{"ms": median milliseconds over repeats (after one warm-up), "graph_mb": peak MB kept for the
    backward pass of the whole meta-batch's graph (:class:`SavedTensorMeter`, :func:`meta_loss_loop`: every
    task's graph, then one backward pass), "task_graph_mb": the same peak when each task's graph is
    differentiated and freed before the next (:func:`meta_backward_loop`, what CPU training does: about
    graph_mb / tasks), "gpu_peak_mb": torch.cuda.max_memory_allocated during one meta-gradient (None off
    CUDA)}``. Reptile builds no graph (0 MB): its cost is the inner loop alone. The timing uses the per-task
    loop (:func:`meta_backward_loop`) on the CPU and vmap elsewhere, like ``--batching auto``.
    """
    config = module.config
    kw = module.objective_kwargs(steps=steps)
    device = next(module.parameters()).device
    batched = device.type != "cpu"

    def once() -> None:
        module.zero_grad(set_to_none=True)
        if config.variant == "reptile":
            reptile_direction(module.theta(), batch, batched=batched, **kw)
        elif batched:
            meta_loss(module.theta(), batch, **kw)[0].backward()
        else:
            meta_backward_loop(module.theta(), batch, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    once()  # warm-up: allocations, kernel choices
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        once()
        times.append(time.perf_counter() - tick)
    gpu_peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        once()
        gpu_peak = round((torch.cuda.max_memory_allocated(device) - base) / 2**20, 1)
    meter, task_meter = SavedTensorMeter(), SavedTensorMeter()
    if config.variant != "reptile":
        with meter:
            loss, _ = meta_loss_loop(module.theta(), batch, **kw)
        loss.backward()
        del loss
        module.zero_grad(set_to_none=True)
        with task_meter:
            meta_backward_loop(module.theta(), batch, **kw)
    module.zero_grad(set_to_none=True)
    return {"ms": round(1000 * sorted(times)[len(times) // 2], 1), "graph_mb": round(meter.peak / 2**20, 2),
            "task_graph_mb": round(task_meter.peak / 2**20, 2), "gpu_peak_mb": gpu_peak}


@dataclass
class InnerLoopTrace:
    """One episode's inner loop, step by step (index s = after s gradient steps on the support set)."""

    support_loss: list[float]
    query_loss: list[float]
    query_accuracy: list[float] | None  # None for regression
    query_outputs: torch.Tensor  # [steps + 1, Q, ways] class probabilities, or [steps + 1, Q, 1] predictions

    @property
    def steps(self) -> int:
        return len(self.query_loss) - 1

    def predictions(self, step: int) -> torch.Tensor:
        """Predicted classes of the queries after ``step`` steps (classification)."""
        return self.query_outputs[step].argmax(-1)


def inner_loop_trace(params: Params, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                     query_y: torch.Tensor, steps: int, inner_lr: float, *, forward=conv4_forward,
                     regression: bool = False, bn: str = "query", lrs: Params | None = None,
                     adapt_keys: list[str] | None = None) -> InnerLoopTrace:
    """Adapt ``params`` on one support set for ``steps`` steps and record the query set after each step.

    A pure function of its inputs (no state, no randomness): the widget of
    notebook 04 only indexes its result.
    """
    loss_fn = _regression_loss(forward) if regression else _classification_loss(forward)
    fast = {k: v.detach() for k, v in params.items()}
    support_losses, query_losses, accuracies, outputs = [], [], [], []
    with torch.no_grad():
        for s in range(steps + 1):
            if s > 0:
                fast = inner_adapt(fast, support_x, support_y, 1, inner_lr, loss_fn, first_order=True,
                                   per_param_lr=lrs, adapt_keys=adapt_keys)
            support_losses.append(float(loss_fn(fast, support_x, support_y)))  # support statistics, as in training
            if regression:
                out = forward(fast, query_x)
                query_losses.append(float(F.mse_loss(out, query_y)))
                outputs.append(out.cpu())
            else:
                out = query_outputs(forward, fast, support_x, query_x, bn)
                query_losses.append(float(F.cross_entropy(out, query_y)))
                accuracies.append(float((out.argmax(-1) == query_y).float().mean()))
                outputs.append(out.softmax(-1).cpu())
    return InnerLoopTrace(support_losses, query_losses, None if regression else accuracies, torch.stack(outputs))


def _picture(image: torch.Tensor):
    return image[0].cpu().numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).cpu().numpy()


def inner_loop_figure(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                      query_y: torch.Tensor, traces: dict[str, InnerLoopTrace], step: int, per_class: int = 2):
    """Support set, then per model the shown queries after ``step`` steps (green: right, red: wrong), and the
    query loss and accuracy of every model against the step (a dotted line marks ``step``).

    Shows ``per_class`` queries of each class; the accuracies are over all queries.
    """
    import matplotlib.pyplot as plt

    names = list(traces)
    total = max(t.steps for t in traces.values())
    step = max(0, min(step, total))
    ways = int(support_y.max()) + 1
    shown = torch.cat([torch.nonzero(query_y == k).flatten()[:per_class] for k in range(ways)])
    columns = max(len(support_x), len(shown))
    fig = plt.figure(figsize=(max(7.0, 0.62 * columns + 4.6), 1.45 * (1 + len(names)) + 0.4))
    grid = fig.add_gridspec(1 + len(names), columns + 1 + 6, wspace=0.08, hspace=0.9)
    for j in range(len(support_x)):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(_picture(support_x[j]), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"y={int(support_y[j])}", fontsize=7)
        if j == 0:
            ax.set_ylabel("support", fontsize=8)
    for row, name in enumerate(names, start=1):
        trace = traces[name]
        s = min(step, trace.steps)
        predicted = trace.predictions(s)
        for j, q in enumerate(shown.tolist()):
            ax = fig.add_subplot(grid[row, j])
            ax.imshow(_picture(query_x[q]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            right = int(predicted[q]) == int(query_y[q])
            for spine in ax.spines.values():
                spine.set_color("tab:green" if right else "tab:red")
                spine.set_linewidth(2.5)
            ax.set_title(f"→{int(predicted[q])}", fontsize=7, color="tab:green" if right else "tab:red")
            if j == 0:
                summary = f"{name}: query loss {trace.query_loss[s]:.2f}"
                if trace.query_accuracy is not None:
                    summary += f", {100 * trace.query_accuracy[s]:.0f} % of all {len(query_y)} queries right"
                ax.annotate(summary, xy=(0, 1.42), xycoords="axes fraction", fontsize=8, ha="left", va="bottom")
    loss_ax = fig.add_subplot(grid[: (1 + len(names)) // 2 or 1, columns + 2:])
    acc_ax = fig.add_subplot(grid[(1 + len(names)) // 2 or 1:, columns + 2:])
    for name in names:
        trace = traces[name]
        line, = loss_ax.plot(range(trace.steps + 1), trace.query_loss, marker="o", ms=3, label=name)
        if trace.query_accuracy is not None:
            acc_ax.plot(range(trace.steps + 1), [100 * a for a in trace.query_accuracy], marker="o", ms=3,
                        color=line.get_color(), label=f"{name}: {100 * trace.query_accuracy[min(step, trace.steps)]:.0f} %")
    for ax in (loss_ax, acc_ax):
        ax.axvline(step, color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    loss_ax.set_ylabel("query loss", fontsize=8)
    acc_ax.set_ylabel("query accuracy %", fontsize=8)
    acc_ax.set_xlabel("inner step", fontsize=8)
    acc_ax.set_ylim(0, 102)
    acc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"after {step} inner step{'s' if step != 1 else ''}", fontsize=9)
    return fig


def inner_loop_widget(support_x, support_y, query_x, query_y, traces: dict[str, InnerLoopTrace],
                      per_class: int = 2):
    """A slider over the inner steps 0..S that redraws :func:`inner_loop_figure` (needs ipywidgets)."""
    import ipywidgets as widgets

    from .plots import show_in_output

    total = max(t.steps for t in traces.values())
    slider = widgets.IntSlider(value=0, min=0, max=total, description="inner step", continuous_update=False)
    output = widgets.Output()

    def show(_change=None) -> None:
        show_in_output(output, inner_loop_figure(support_x, support_y, query_x, query_y, traces, slider.value,
                                                 per_class=per_class))

    slider.observe(show, names="value")
    show()
    box = widgets.VBox([slider, output])
    box.slider = slider  # for tests and for setting the step from code
    return box


def sinusoid_figure(tasks: list[tuple], models: dict[str, Params], steps_list=(0, 1, 10), inner_lr: float = 0.01,
                    grid_points: int = 200):
    """Finn et al.'s figure: for each task (amplitude, phase, support_x, support_y), one panel per model with
    the true sine, the K support points and the predictions after each number of steps in ``steps_list``."""
    import matplotlib.pyplot as plt

    grid = torch.linspace(-5, 5, grid_points).unsqueeze(-1)
    fig, axes = plt.subplots(len(tasks), len(models), figsize=(4.6 * len(models), 2.8 * len(tasks)),
                             squeeze=False, sharey="row")
    colours = plt.cm.viridis(torch.linspace(0.15, 0.85, len(steps_list)).tolist())
    for row, (amplitude, phase, sx, sy) in enumerate(tasks):
        for col, (name, params) in enumerate(models.items()):
            ax = axes[row][col]
            curves = sinusoid_predictions(params, sx, sy, grid, steps_list, inner_lr)
            ax.plot(grid[:, 0], amplitude * torch.sin(grid[:, 0] - phase), color="black", linewidth=2,
                    label="true function")
            for colour, steps in zip(colours, steps_list):
                ax.plot(grid[:, 0], curves[steps][:, 0], color=colour, linestyle="--" if steps == 0 else "-",
                        label=f"after {steps} step{'s' if steps != 1 else ''}")
            ax.scatter(sx[:, 0], sy[:, 0], color="tab:red", zorder=5, s=22, label=f"K={len(sx)} support points")
            ax.set_title(f"{name}: A={amplitude:.2f}, phase={phase:.2f}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

PAPER = {  # Omniglot, transductive batch norm: Finn et al. 2017 Table 1 (MAML and its first-order
    # approximation), Nichol et al. 2018 Table 1 ("Reptile + Transduction"), Li et al. 2017 Table 1 (Meta-SGD)
    "maml": {"5-way 1-shot": 0.987, "5-way 5-shot": 0.999, "20-way 1-shot": 0.958, "20-way 5-shot": 0.989},
    "fomaml": {"5-way 1-shot": 0.983, "5-way 5-shot": 0.992, "20-way 1-shot": 0.894, "20-way 5-shot": 0.979},
    "reptile": {"5-way 1-shot": 0.9768, "5-way 5-shot": 0.9948, "20-way 1-shot": 0.8943, "20-way 5-shot": 0.9712},
    "anil": {},
    "metasgd": {"5-way 1-shot": 0.9953, "5-way 5-shot": 0.9993, "20-way 1-shot": 0.9593, "20-way 5-shot": 0.9897},
}

OPTIONS = ("variant", "protocol", "rotations", "image_size", "hidden", "ways", "shots", "queries", "meta_batch",
           "inner_steps", "test_inner_steps", "inner_lr", "meta_lr", "steps", "bn", "log_every", "seed", "init_from")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_lib.maml",
                                     description="Meta-train MAML, FOMAML, Reptile, ANIL or Meta-SGD.")
    parser.add_argument("--task", choices=TASKS)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--protocol", choices=("vinyals", "lake"))
    parser.add_argument("--rotations", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--hidden", type=int, help="conv channels (64) or MLP hidden units (40)")
    parser.add_argument("--ways", type=int)
    parser.add_argument("--shots", type=int)
    parser.add_argument("--queries", type=int, help="query examples per class in training episodes")
    parser.add_argument("--meta-batch", type=int, help="tasks per meta-update")
    parser.add_argument("--inner-steps", type=int, help="inner gradient steps in meta-training")
    parser.add_argument("--test-inner-steps", type=int, help="inner gradient steps at test time")
    parser.add_argument("--inner-lr", type=float)
    parser.add_argument("--meta-lr", type=float)
    parser.add_argument("--steps", type=int, help="meta-iterations in total")
    parser.add_argument("--bn", choices=BN_MODES, help="batch statistics of the query pass (see the docstring)")
    parser.add_argument("--log-every", type=int, help="one history point per this many steps")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--init-from", help="start from the meta-parameters of this checkpoint.pt whose names and "
                        "shapes match (e.g. a 5-way run's convolutions for a 20-way run; the head is new)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--eval-only", action="store_true", help="only evaluate OUT/checkpoint.pt")
    parser.add_argument("--test-episodes", type=int, default=1000, help="test episodes (sinusoid: tasks)")
    parser.add_argument("--test-settings", help="WAYSxSHOTS,... to evaluate (default: the training setting)")
    parser.add_argument("--joint-steps", type=int, help="sinusoid: steps of the jointly trained baseline")
    parser.add_argument("--max-minutes", type=float, help="stop training (checkpointed) after this long")
    parser.add_argument("--checkpoint-minutes", type=float, default=2.0)
    parser.add_argument("--batching", choices=("auto", "vmap", "loop"), default="auto",
                        help="tasks of a meta-batch with vmap or a loop (same numbers); auto: time both, keep faster")
    parser.add_argument("--device", help="cpu, cuda, mps (default: automatic)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--smoke-data", action="store_true", help=argparse.SUPPRESS)  # tests: first 40 classes
    return parser


def config_from_args(args) -> MAMLConfig:
    """The stored config when resuming/evaluating, else the papers' defaults; options override."""
    path = args.out / "config.json"
    stored = None
    if (args.resume or args.eval_only) and path.is_file():
        stored = json.loads(path.read_text())["config"]
    elif args.eval_only:
        raise ValueError(f"--eval-only: there is no {path}; train first")
    given = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    if stored is not None:
        if args.task is not None and args.task != stored["task"]:
            raise ValueError(f"{path} is a {stored['task']} run; --task {args.task} does not match")
        known = {f.name for f in dataclasses.fields(MAMLConfig)}
        return MAMLConfig(**{**{k: v for k, v in stored.items() if k in known}, **given})
    ways = given.pop("ways", 1 if args.task == "sinusoid" else 5)
    return default_config(args.task or "omniglot", given.pop("variant", "maml"), ways, **given)








def parse_settings(text: str) -> list[tuple[int, int]]:
    try:
        settings = [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        settings = []
    if not settings or any(len(s) != 2 or min(s) < 1 for s in settings):
        raise ValueError(f"--test-settings {text!r}: use WAYSxSHOTS,... e.g. 5x1,5x5")
    return settings  # type: ignore[return-value]


def _test_queries(ways: int) -> int:
    return 15 if ways <= 5 else 5  # as course_lib.protonet.test_queries: 20 drawings per character


def results_markdown(config: MAMLConfig, meta: dict, results: dict) -> str:
    c = config
    if c.task == "sinusoid":
        head = (f"# {c.variant} on sinusoid regression (MLP 1-{c.hidden}-{c.hidden}-1, K={c.shots}, inner lr "
                f"{c.inner_lr})\n\nTrained {meta['steps_done']} of {c.steps} meta-iterations; query MSE on "
                f"{meta['test_episodes']} test tasks (100 query points each), lower is better.\n\n"
                "| model | steps at test | MSE (95% CI) |\n|---|---|---|\n")
        rows = [f"| {model} | {steps} | {e['mean']:.3f} ± {e['ci95']:.3f} |"
                for model, entries in results.items() for steps, e in entries.items()]
        return head + "\n".join(rows) + "\n"
    lines = [
        f"# {c.variant}: Omniglot ({c.protocol} split{', rotations' if c.rotations else ''}), Conv4-{c.hidden}",
        "",
        f"Trained {meta['steps_done']} of {c.steps} meta-iterations ({c.ways}-way {c.shots}-shot {c.queries}-query, "
        f"meta-batch {c.meta_batch}, {c.inner_steps} inner step(s) of {c.inner_lr}, "
        f"{'first' if c.variant in ('fomaml', 'reptile') else 'second'} order) in "
        f"{meta['train_seconds_total']:.0f} s on {meta['machine'].get('gpu') or meta['machine']['device']} "
        f"({meta['ms_per_step']} ms per meta-iteration). Test: {meta['test_episodes']} episodes, "
        f"{c.test_inner_steps} inner steps, 15 queries per class for 5-way, 5 for 20-way.",
        "",
        "| setting | batch norm at test | ours (95% CI) | paper |",
        "|---|---|---|---|",
    ]
    for name, entry in results.items():
        setting, bn = name.rsplit(" bn=", 1) if " bn=" in name else (name, c.bn)
        paper = PAPER.get(c.variant, {}).get(setting) if bn == c.bn else None
        lines.append(f"| {setting} | {bn} | {format_accuracy(entry['mean'], entry['ci95'])} | "
                     f"{'' if paper is None else f'{100 * paper:.1f} %'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Check everything before creating or writing anything.
    try:
        config = config_from_args(args)
        validate_config(config)
        settings = parse_settings(args.test_settings) if args.test_settings else [(config.ways, config.shots)]
        for ways, _ in settings:
            if config.task == "omniglot" and ways > config.ways:
                raise ValueError(f"--test-settings: {ways}-way needs a model trained with --ways >= {ways}")
        if args.test_episodes < 2:
            raise ValueError("--test-episodes must be at least 2 (for a confidence interval)")
        if args.max_minutes is not None and args.max_minutes <= 0:
            raise ValueError("--max-minutes must be positive")
        if args.resume and args.eval_only:
            raise ValueError("use --resume or --eval-only, not both")
        if config.init_from and not Path(config.init_from).is_file():
            raise ValueError(f"--init-from: there is no checkpoint at {config.init_from}")
        from .runtime import get_device

        device = get_device(args.device)
    except (ValueError, RuntimeError) as error:
        parser.error(str(error))  # exits with status 2, nothing written
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    progress = not args.no_progress
    command = "python -m course_lib.maml " + " ".join(sys.argv[1:] if argv is None else argv)

    torch.manual_seed(config.seed)
    if config.task == "omniglot":
        from .data import omniglot_splits

        splits = omniglot_splits(config.protocol, rotations=config.rotations, image_size=config.image_size)
        if args.smoke_data:
            splits = {k: v.subset_classes(range(min(40, v.num_classes))) for k, v in splits.items()}
        train_episodes = BatchedEpisodes(splits["train"], device)
        test_episodes = BatchedEpisodes(splits["test"], device)
        train_episodes.check(config.ways, config.shots, config.queries)
        for ways, shots in settings:
            test_episodes.check(ways, shots, _test_queries(ways))

        def sample_batch(step: int):
            return train_episodes.sample(step_generator(config.seed, step), config.meta_batch, config.ways,
                                         config.shots, config.queries)
    else:
        def sample_batch(step: int):
            return sinusoid_batch(step_generator(config.seed, step), config.meta_batch, config.shots,
                                  config.queries, device)[0]

    args.out.mkdir(parents=True, exist_ok=True)
    record = {"config": dataclasses.asdict(config), "command": command}
    config_path = args.out / "config.json"
    if (args.resume or args.eval_only) and config_path.is_file():
        previous = json.loads(config_path.read_text())
        record["command"] = previous.get("command", command)
        record["later_commands"] = previous.get("later_commands", []) + [command]
    write_json(config_path, record)

    module = MetaLearner(config, generator=torch.Generator().manual_seed(config.seed)).to(device)
    if config.init_from and not args.eval_only:  # a resumed run then overwrites these with its checkpoint
        copied = load_initialisation(module, config.init_from)
        print(f"initialised {len(copied)} of {len(module.state_dict())} tensors from {config.init_from}")
    if args.eval_only:
        payload = load_checkpoint(args.out / CHECKPOINT_NAME, module, map_location=device)
        outcome = {"history": payload["history"], "step": int(payload["step"] or 0), "stopped": "evaluation only",
                   "train_seconds": payload["results"].get("train_seconds", 0.0),
                   "ms_per_step": payload["results"].get("ms_per_step")}
    else:
        # SIGTERM (e.g. `kill PID`, a job scheduler) checkpoints like Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            outcome = train(module, sample_batch, device=device, run_dir=args.out, resume=args.resume,
                            max_seconds=None if args.max_minutes is None else 60 * args.max_minutes,
                            checkpoint_seconds=60 * args.checkpoint_minutes, progress=progress,
                            batching=args.batching)
        except KeyboardInterrupt:
            print(f"stopped; resume with: python -m course_lib.maml --out {args.out} --resume", file=sys.stderr)
            raise SystemExit(130)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    write_text(args.out / "history.json", json.dumps(outcome["history"].state_dict(), separators=(",", ":")) + "\n")

    started = time.time()
    module.eval()
    if config.task == "omniglot":
        results = {}
        for ways, shots in settings:
            name = f"{ways}-way {shots}-shot"
            for bn in dict.fromkeys([config.bn, "support"]):  # the training mode, then non-transductive
                key = name if bn == config.bn else f"{name} bn={bn}"
                result, curve = evaluate_classification(
                    module, test_episodes, ways, shots, _test_queries(ways), count=args.test_episodes, bn=bn,
                    progress=progress, return_curve=True)
                results[key] = {**result.as_dict(), "accuracy_by_inner_step": [round(v, 5) for v in curve]}
                print(f"{config.variant} {key}: {format_accuracy(results[key]['mean'], results[key]['ci95'])}"
                      + (f"  (paper {100 * PAPER[config.variant][name]:.1f} %)"
                         if bn == config.bn and name in PAPER.get(config.variant, {}) else ""))
    else:
        joint_steps = args.joint_steps if args.joint_steps is not None else min(config.steps, outcome["step"] or 1)
        joint = pretrain_joint(config, joint_steps, device, progress=progress)
        joint_path = args.out / "joint.pt"  # the baseline's parameters, for the notebook's figure
        torch.save({"params": {k: v.cpu() for k, v in joint.items()}, "steps": joint_steps},
                   joint_path.with_suffix(".pt.part"))
        os.replace(joint_path.with_suffix(".pt.part"), joint_path)
        results = {
            config.variant: {k: v.as_dict() for k, v in evaluate_regression(
                module.theta(), config, args.test_episodes, device=device, lrs=module.step_sizes()).items()},
            "joint pretraining": {k: v.as_dict() for k, v in evaluate_regression(
                joint, dataclasses.replace(config, variant="maml"), args.test_episodes, device=device).items()},
        }
        for model, entries in results.items():
            print(model + ": " + ", ".join(f"{s}: MSE {e['mean']:.3f} ± {e['ci95']:.3f}" for s, e in entries.items()))
    meta = {
        "variant": config.variant,
        "task": config.task,
        "steps_done": outcome["step"],
        "stopped": outcome["stopped"],
        "config": dataclasses.asdict(config),
        "test_episodes": args.test_episodes,
        "test_seed": 0,
        "machine": machine_description(device),
        "train_seconds_total": round(float(outcome["train_seconds"] or 0.0), 1),
        "ms_per_step": outcome["ms_per_step"],
        "batching": outcome.get("batching"),
        "batching_trial_ms": outcome.get("batching_trial_ms"),
        "eval_seconds": round(time.time() - started, 1),
        "peak_gpu_memory_mb": (round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
                               if device.type == "cuda" else None),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(args.out / "results.json", {"results": results, "paper": PAPER.get(config.variant, {})
                                           if config.task == "omniglot" else {}, **meta})
    write_text(args.out / "results.md", results_markdown(config, meta, results))
    return results


if __name__ == "__main__":
    main()
