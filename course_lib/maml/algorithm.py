"""The MAML family, top to bottom: config, functional networks, inner loop, objectives, meta-learner.

A task's learner is a few gradient steps from a learned initialisation theta; the meta-learner learns
theta (Meta-SGD: also the step sizes) so that these steps work on new tasks. Inner loop (task i, support
set D_i^tr) and meta-objective (query sets D_i^ts, meta-batch of T tasks)::

    phi_i^0 = theta,    phi_i^{s+1} = phi_i^s - alpha * grad_phi L(phi_i^s; D_i^tr)
    J(theta) = 1/T sum_i L(phi_i(theta); D_i^ts)

Meta-gradients: ``maml`` (Finn et al. 2017) the exact one, ``1/T sum_i (prod_s (I - alpha H_i^s)) grad
L(phi_i; D_i^ts)`` with the support loss's Hessians ``H_i^s``; ``fomaml`` without the Hessian terms;
``reptile`` (Nichol et al. 2018) no query loss: adapt on all of a task's data and hand Adam
``theta - 1/T sum_i phi_i``; ``anil`` (Raghu et al. 2020) adapts the head only; ``metasgd`` (Li et al.
2017) meta-learns a step size per entry, ``phi = theta - alpha (*) grad``.

The networks are functions of a dict of parameters; each objective is written for one task and batched
with vmap. MAML's Conv4 always normalises with batch statistics; at the query pass those of the query set
(``bn="query"``, Finn et al.'s code: transductive), of support and query (``"joint"``) or of the support
set (``"support"``: each query on its own).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad as func_grad
from torch.func import vmap

from ..episodes import FastEpisodeSampler
from ..runs import RunError, read_checkpoint

# Config

VARIANTS = ("maml", "fomaml", "reptile", "anil", "metasgd")
TASKS = ("omniglot", "sinusoid")
BN_MODES = ("query", "joint", "support")
BATCHING = ("auto", "vmap", "loop")


@dataclass
class MAMLConfig:
    """Everything that defines a run. A field left at None takes the papers' value for the task, variant
    and ways (:func:`paper_settings`), so config.json always holds concrete numbers."""

    task: str = "omniglot"  # or "sinusoid"
    variant: str = "maml"  # one of VARIANTS
    protocol: str = "vinyals"  # Omniglot split: "vinyals" or "lake"
    rotations: bool = True
    image_size: int = 28
    hidden: int = None  # conv channels (64) or MLP hidden units (40)
    ways: int = None
    shots: int = None
    queries: int = None  # per class in training episodes
    meta_batch: int = None  # tasks per meta-update
    inner_steps: int = None  # inner gradient steps in meta-training
    test_inner_steps: int = None  # ... and at test time
    inner_lr: float = None
    meta_lr: float = 1e-3
    steps: int = None  # meta-iterations
    bn: str = "query"  # batch statistics of the query pass: one of BN_MODES
    log_every: int = None  # history: the metrics of one step in this many
    seed: int = 0
    init_from: str = ""  # a curriculum: start from the matching meta-parameters of this checkpoint.pt
    batching: str = "auto"  # tasks by "vmap" or a "loop" (the same numbers); "auto": see batching_for

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        ways = self.ways if self.ways is not None else (1 if self.task == "sinusoid" else 5)
        for name, value in paper_settings(self.task, self.variant, ways).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        problems = [f"{name} must be one of {allowed}, got {getattr(self, name)!r}" for name, allowed in
                    (("variant", VARIANTS), ("bn", BN_MODES), ("batching", BATCHING), ("protocol", ("vinyals", "lake")))
                    if getattr(self, name) not in allowed]
        problems += [f"{name} must be a positive integer, got {getattr(self, name)!r}" for name in
                     ("ways", "shots", "queries", "meta_batch", "inner_steps", "test_inner_steps", "hidden",
                      "log_every", "image_size") if not isinstance(getattr(self, name), int) or getattr(self, name) < 1]
        problems += [f"{name} must be a positive number, got {getattr(self, name)!r}" for name in
                     ("inner_lr", "meta_lr")
                     if not (isinstance(getattr(self, name), (int, float)) and 0 < getattr(self, name) < math.inf)]
        if not isinstance(self.steps, int) or self.steps < 0 or self.seed < 0:
            problems.append(f"steps and seed must be >= 0, got steps={self.steps!r}, seed={self.seed!r}")
        if self.task == "omniglot" and not problems and self.shots + self.queries > 20:
            problems.append(f"shots + queries = {self.shots + self.queries} but an Omniglot character has 20 drawings")
        if self.task == "omniglot" and not problems and self.image_size < 16:
            problems.append(f"image_size must be at least 16 for the Conv4, got {self.image_size}")
        if problems:
            raise ValueError("; ".join(problems))


def paper_settings(task: str, variant: str, ways: int) -> dict:
    """The papers' settings that depend on the task, the variant and the number of ways."""
    if task == "sinusoid":  # Finn et al. section 5.1
        values = dict(hidden=40, ways=1, shots=10, queries=10, meta_batch=25, inner_steps=1, test_inner_steps=10,
                      inner_lr=0.01, steps=70000, log_every=100)
        if variant == "reptile":  # one inner step would make Reptile joint training (Nichol et al. section 5);
            values.update(inner_steps=5, inner_lr=0.02)  # 5 SGD steps of 0.02, as the sine demo of Nichol et al.
        return values
    # Finn et al., Omniglot: Conv4-64, one inner step of 0.4 (three at test), 32 tasks per meta-batch
    values = dict(hidden=64, ways=ways, shots=1, queries=15, meta_batch=32, inner_steps=1, test_inner_steps=3,
                  inner_lr=0.4, steps=60000, log_every=20)
    if ways >= 20:  # Finn et al.: 20-way used 5 inner steps of 0.1 and 16 tasks per meta-batch
        values.update(inner_steps=5, test_inner_steps=5, inner_lr=0.1, meta_batch=16, queries=5)
    if variant == "reptile":  # Nichol et al.: 5 inner steps on 10 examples per class (no support/query split),
        # 5 tasks per meta-batch; plain SGD inside (theirs is Adam), so that it is MAML's learner at test time
        values.update(inner_steps=5, test_inner_steps=10, inner_lr=0.1, meta_batch=5, queries=10 - 1, steps=100000)
    return values


def default_config(task: str = "omniglot", variant: str = "maml", ways: int | None = None, **overrides) -> MAMLConfig:
    """``MAMLConfig(task=..., variant=..., ways=..., **overrides)``: the papers' settings, then the overrides."""
    return MAMLConfig(task=task, variant=variant, ways=ways, **overrides)


# Functional networks: parameters are a dict of tensors

Params = dict[str, torch.Tensor]


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stats_rows: int | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """Batch norm over ``[B, C, H, W]`` with batch statistics, in plain tensor ops (so that vmap and
    second-order autograd through it are exact).

    ``stats_rows``: mean and variance of the first ``stats_rows`` rows only (the support set, for
    non-transductive prediction), applied to all rows.
    """
    reference = x if stats_rows is None else x[:stats_rows]
    mean = reference.mean(dim=(0, 2, 3), keepdim=True)
    centred = x - mean
    reference_centred = centred if stats_rows is None else centred[:stats_rows]
    var = reference_centred.square().mean(dim=(0, 2, 3), keepdim=True)  # biased, like BN in training mode
    # Few passes over the big tensor: (x - mean) * (weight / std) + bias, with the last two fused.
    return torch.addcmul(bias.view(1, -1, 1, 1), centred, torch.rsqrt(var + eps) * weight.view(1, -1, 1, 1))


def uniform_init(shape: tuple, bound: float, generator: torch.Generator | None, dtype) -> torch.Tensor:
    """U(-bound, bound), the initialisation of torch's conv and linear layers."""
    return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * bound


def conv4_init(ways: int, hidden: int = 64, in_channels: int = 1, image_size: int = 28,
               generator: torch.Generator | None = None, dtype=torch.float32) -> Params:
    """Parameters of MAML's Conv4: 4 x (conv3x3 -> BN -> ReLU -> maxpool 2), then a linear head (no conv
    bias: the batch norm right after would cancel it)."""
    params: Params = {}
    channels = in_channels
    for i in range(4):
        bound = 1 / math.sqrt(channels * 9)
        params[f"conv{i}_weight"] = uniform_init((hidden, channels, 3, 3), bound, generator, dtype)
        params[f"bn{i}_weight"] = torch.ones(hidden, dtype=dtype)
        params[f"bn{i}_bias"] = torch.zeros(hidden, dtype=dtype)
        channels = hidden
    features = hidden * (image_size // 16) ** 2  # four poolings of 2
    params["head_weight"] = uniform_init((ways, features), 1 / math.sqrt(features), generator, dtype)
    params["head_bias"] = uniform_init((ways,), 1 / math.sqrt(features), generator, dtype)
    return params


def conv4_forward(params: Params, x: torch.Tensor, stats_rows: int | None = None, norm=batch_norm) -> torch.Tensor:
    """Logits ``[B, ways]`` of images ``[B, C, H, W]`` (``norm``: which batch norm implementation)."""
    h = x
    for i in range(4):
        h = F.conv2d(h, params[f"conv{i}_weight"], padding=1)
        h = norm(h, params[f"bn{i}_weight"], params[f"bn{i}_bias"], stats_rows)
        h = F.max_pool2d(F.relu(h), 2)
    return F.linear(h.flatten(1), params["head_weight"], params["head_bias"])


def mlp_init(sizes=(1, 40, 40, 1), generator: torch.Generator | None = None, dtype=torch.float32) -> Params:
    """A ReLU MLP (sinusoid: 1-40-40-1), initialised like nn.Linear."""
    params: Params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"fc{i}_weight"] = uniform_init((b, a), 1 / math.sqrt(a), generator, dtype)
        params[f"fc{i}_bias"] = uniform_init((b,), 1 / math.sqrt(a), generator, dtype)
    return params


def mlp_forward(params: Params, x: torch.Tensor, stats_rows: int | None = None) -> torch.Tensor:
    layers = sum(k.endswith("_weight") for k in params)
    for i in range(layers):
        x = F.linear(x, params[f"fc{i}_weight"], params[f"fc{i}_bias"])
        if i < layers - 1:
            x = F.relu(x)
    return x


def head_keys(params: Params) -> list[str]:
    """The parameters ANIL adapts: the last layer."""
    if "head_weight" in params:
        return ["head_weight", "head_bias"]
    last = len([k for k in params if k.endswith("_weight")]) - 1
    return [f"fc{last}_weight", f"fc{last}_bias"]


# The inner loop

LossFn = Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]


def inner_adapt(params: Params, support_x: torch.Tensor, support_y: torch.Tensor, steps: int, inner_lr: float,
                loss_fn: LossFn, first_order: bool, per_param_lr: Params | None = None,
                adapt_keys: list[str] | None = None, backend: str = "func") -> Params:
    """``steps`` steps of gradient descent on ``loss_fn(params, support_x, support_y)``: the adapted phi.

    ``first_order``: detach the inner gradient, so that d phi / d theta = I (FOMAML, Reptile); otherwise a
    backward pass through phi gives the exact second-order meta-gradient. ``per_param_lr`` (Meta-SGD): a
    step size per parameter entry; ``adapt_keys`` (ANIL): adapt only these. ``backend``: ``"func"``
    (``torch.func.grad``: works inside vmap and under no_grad) or ``"autograd"`` (``create_graph``).
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


def classification_loss(forward) -> LossFn:
    return lambda params, x, y: F.cross_entropy(forward(params, x), y)


def regression_loss(forward) -> LossFn:
    return lambda params, x, y: F.mse_loss(forward(params, x), y)


def query_outputs(forward, params: Params, support_x: torch.Tensor, query_x: torch.Tensor, bn: str) -> torch.Tensor:
    """The network's outputs for the query set, with batch statistics chosen by ``bn``."""
    if bn == "query":
        return forward(params, query_x)
    both = torch.cat([support_x, query_x])
    stats_rows = len(support_x) if bn == "support" else None
    return forward(params, both, stats_rows)[len(support_x):]


# The objectives of the five variants


def task_objective(params: Params, sx, sy, qx, qy, *, variant: str, steps: int, inner_lr: float, forward,
                   regression: bool = False, lrs: Params | None = None, bn: str = "query",
                   backend: str = "func") -> tuple[torch.Tensor, torch.Tensor]:
    """Post-adaptation query loss of one task, and its accuracy (regression: the loss again)."""
    loss_fn = regression_loss(forward) if regression else classification_loss(forward)
    fast = inner_adapt(params, sx, sy, steps, inner_lr, loss_fn, first_order=variant in ("fomaml", "reptile"),
                       per_param_lr=lrs if variant == "metasgd" else None,
                       adapt_keys=head_keys(params) if variant == "anil" else None, backend=backend)
    out = query_outputs(forward, fast, sx, qx, bn)
    if regression:
        loss = F.mse_loss(out, qy)
        return loss, loss.detach()
    return F.cross_entropy(out, qy), (out.argmax(-1) == qy).float().mean()


def meta_loss(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """The meta-objective J over a meta-batch ``(sx, sy, qx, qy)`` with leading task dim, batched by vmap:
    ``loss.backward()`` gives the meta-gradient of maml, fomaml, anil and metasgd."""
    losses, accuracies = vmap(lambda *task: task_objective(params, *task, **kw))(*batch)
    return losses.mean(), accuracies.mean()


def reptile_direction(params: Params, batch, *, steps: int, inner_lr: float, forward, regression: bool = False,
                      batched: bool = True, **_) -> tuple[Params, torch.Tensor]:
    """Reptile's meta-"gradient" ``theta - mean_i phi_i`` and the mean post-adaptation training loss.

    Each task adapts on *all* its data (Reptile does not split support and query), without any graph.
    """
    sx, sy, qx, qy = batch
    x, y = torch.cat([sx, qx], dim=1), torch.cat([sy, qy], dim=1)
    loss_fn = regression_loss(forward) if regression else classification_loss(forward)
    detached = {k: v.detach() for k, v in params.items()}

    def adapt(xi, yi):
        fast = inner_adapt(detached, xi, yi, steps, inner_lr, loss_fn, first_order=True)
        return fast, loss_fn(fast, xi, yi)

    with torch.no_grad():
        if batched:
            adapted, losses = vmap(adapt)(x, y)
        else:
            pairs = [adapt(xi, yi) for xi, yi in zip(x, y)]
            adapted = {k: torch.stack([p[0][k] for p in pairs]) for k in params}
            losses = torch.stack([p[1] for p in pairs])
        direction = {k: detached[k] - adapted[k].mean(0) for k in params}
    return direction, losses.mean()


# The meta-learner


class MetaLearner(nn.Module):
    """theta (``params``), Meta-SGD's per-parameter step sizes (``lrs``) and, for the sinusoid task, the
    baseline of Finn et al.'s figure (``joint``: the same MLP regressed on all tasks at once, see :func:`trainer`)."""

    def __init__(self, config: MAMLConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        if config.task == "sinusoid":
            initial = mlp_init((1, config.hidden, config.hidden, 1), generator=generator)
        else:
            initial = conv4_init(config.ways, config.hidden, 1, config.image_size, generator=generator)
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in initial.items()})
        self.lrs = None
        if config.variant == "metasgd":  # Li et al.: alpha initialised to the usual step size, then meta-learned
            self.lrs = nn.ParameterDict({k: nn.Parameter(torch.full_like(v, config.inner_lr))
                                         for k, v in initial.items()})
        self.joint = None
        if config.task == "sinusoid":
            joint = mlp_init((1, config.hidden, config.hidden, 1), torch.Generator().manual_seed(config.seed + 1))
            self.joint = nn.ParameterDict({k: nn.Parameter(v) for k, v in joint.items()})

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

    def test_time(self, ways: int | None = None) -> tuple[Params, dict]:
        """Detached theta (its head cut to ``ways`` outputs) and the variant's ``inner_adapt`` options."""
        variant = self.config.variant
        params = first_outputs({k: v.detach() for k, v in self.params.items()}, ways)
        lrs = first_outputs({k: v.detach() for k, v in self.lrs.items()}, ways) if variant == "metasgd" else None
        return params, dict(per_param_lr=lrs, adapt_keys=head_keys(params) if variant == "anil" else None)


# Tasks for a meta-batch, and initialising from another run


def task_batch(sampler: FastEpisodeSampler, tasks: int, generator: torch.Generator):
    """``(sx [T, N*K, C, H, W], sy [T, N*K], qx, qy)``: ``tasks`` episodes of ``sampler``, stacked."""
    episodes = sampler.sample_batch(tasks, generator)
    return episodes.support_x, episodes.support_y, episodes.query_x, episodes.query_y


def sinusoid_batch(generator: torch.Generator, count: int, shots: int, queries: int, device: torch.device | str,
                   amplitude=(0.1, 5.0), phase=(0.0, math.pi), x_range=(-5.0, 5.0)):
    """``(sx [T, K, 1], sy, qx [T, Q, 1], qy)`` and the ``[T, 2]`` (amplitude, phase) of ``count`` sines
    (:class:`course_lib.episodes.SinusoidTasks`' distribution, drawn in one go)."""
    a = amplitude[0] + (amplitude[1] - amplitude[0]) * torch.rand(count, 1, 1, generator=generator)
    p = phase[0] + (phase[1] - phase[0]) * torch.rand(count, 1, 1, generator=generator)
    x = x_range[0] + (x_range[1] - x_range[0]) * torch.rand(count, shots + queries, 1, generator=generator)
    y = a * torch.sin(x - p)
    parts = (x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])
    return tuple(v.to(device) for v in parts), torch.cat([a, p], dim=-1).reshape(count, 2)


def batching_for(task: str, device: torch.device | str) -> str:
    """What ``batching="auto"`` means: vmap on GPUs and for the sinusoid's MLP, the per-task loop for the
    Conv4 elsewhere (vmap makes its convolutions grouped ones, slow on CPUs). A rule, not a timing, so that
    a run and its ``--resume`` take the same path."""
    return "vmap" if torch.device(device).type == "cuda" or task == "sinusoid" else "loop"


def load_initialisation(module: MetaLearner, path: str | Path) -> list[str]:
    """Copy into ``module`` every meta-parameter of checkpoint ``path`` whose name and shape match (a 20-way
    run can start from a 5-way run's convolutions, with a fresh head); returns their names."""
    if not Path(path).is_file():
        raise RunError(f"--init-from: there is no checkpoint at {path}")
    stored, own = read_checkpoint(path).get("state_dict", {}), module.state_dict()
    matching = {k: v for k, v in stored.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"--init-from: no meta-parameter of {path} matches this network (another model or size?)")
    with torch.no_grad():
        for name, value in matching.items():
            own[name].copy_(value)
    return sorted(matching)


def first_outputs(params: Params, ways: int | None) -> Params:
    """``params`` with the head cut to its first ``ways`` outputs (a 20-way model on 5-way episodes)."""
    if ways is None or "head_weight" not in params:
        return params
    return {**params, "head_weight": params["head_weight"][:ways], "head_bias": params["head_bias"][:ways]}
