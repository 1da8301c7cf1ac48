"""The fast paths of :mod:`course_lib.maml`: the same numbers, sooner.

:mod:`course_lib.maml` writes each variant's objective for one task and
batches the tasks of a meta-batch with ``torch.func.vmap``. vmap turns the
Conv4's convolutions into grouped convolutions, which are slow on CPUs
(``data/maml/peers_cpu.md``), so on a CPU the library runs a Python loop over
the tasks instead (:func:`course_lib.maml.algorithm.batching_for` decides):

* :func:`meta_backward_loop`: one task at a time, ``backward()`` right away,
  so only one task's graph is alive (what training runs);
  :func:`meta_loss_loop` is the same objective with every task's graph built
  before one backward pass (the reference the tests compare vmap with);
* :func:`fused_batch_norm`: outside vmap, torch's ``F.batch_norm`` (one fused
  kernel, with its own backward and double backward) is exact and faster than
  the hand-written :func:`course_lib.maml.algorithm.batch_norm`, which vmap needs (torch's
  native batch norm under vmap gave second-order meta-gradients off by about 1e-2);
* :func:`evaluate_classification`: many test episodes, in chunks, by vmap or
  one at a time.

The tests check that every path gives the meta-gradient and the accuracy of the
vmap path (to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import vmap

from ..episodes import FastEpisodeSampler
from ..evaluation import AccuracyResult, mean_confidence_interval
from ..runtime import progress_bar
from .algorithm import (BATCHING, MetaLearner, Params, batch_norm, batching_for, classification_loss, conv4_forward,
                   first_outputs, head_keys, inner_adapt, query_outputs, task_batch, task_objective)

# --------------------------------------------------------------------------
# The per-task loop, with torch's fused batch norm
# --------------------------------------------------------------------------


def fused_batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     stats_rows: int | None = None) -> torch.Tensor:
    """Torch's ``F.batch_norm`` with batch statistics, never under vmap; the hand-written one for
    ``stats_rows`` (statistics of some rows applied to all, which F.batch_norm cannot express)."""
    if stats_rows is not None:
        return batch_norm(x, weight, bias, stats_rows)
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)


def conv4_forward_fused(params: Params, x: torch.Tensor, stats_rows: int | None = None) -> torch.Tensor:
    """:func:`course_lib.maml.algorithm.conv4_forward` with :func:`fused_batch_norm` (for the per-task loop only)."""
    return conv4_forward(params, x, stats_rows, norm=fused_batch_norm)


def loop_forward(forward):
    """The forward function the per-task loop uses in place of ``forward`` (other networks: unchanged)."""
    return conv4_forward_fused if forward is conv4_forward else forward


def meta_loss_loop(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`course_lib.maml.algorithm.meta_loss` with a Python loop over tasks and torch.autograd.grad (reference).

    Builds the graphs of all the tasks at once (one backward pass on their
    mean); training uses :func:`meta_backward_loop`, the same gradient with one
    task's graph alive at a time.
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
    returned loss and accuracy are the means over tasks, detached.
    ``.grad`` is accumulated into, not reset: zero it first.
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


# --------------------------------------------------------------------------
# Many test episodes, in chunks
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AdaptationResult(AccuracyResult):
    """An :class:`AccuracyResult` with the mean accuracy after 0, 1, ..., S inner steps (when asked for)."""

    accuracy_by_inner_step: tuple[float, ...] = ()

    def as_dict(self) -> dict:
        entry = super().as_dict()
        if self.accuracy_by_inner_step:
            entry["accuracy_by_inner_step"] = [round(v, 5) for v in self.accuracy_by_inner_step]
        return entry


def evaluate_classification(module: MetaLearner, sampler: FastEpisodeSampler, count: int = 1000,
                            inner_steps: int | None = None, bn: str | None = None, seed: int = 0,
                            max_images: int = 4000, progress: bool = False, return_curve: bool = False,
                            batching: str = "auto") -> AdaptationResult:
    """Query accuracy ± 95% CI over ``count`` episodes of ``sampler`` (the same ones for a given seed).

    Each episode: adapt a copy of theta on its support set (``inner_steps``,
    default ``config.test_inner_steps``, with the variant's own inner loop),
    then classify its queries with batch statistics chosen by ``bn`` (default
    ``config.bn``); one episode is what :func:`course_lib.maml.predictor`
    does. Episodes are processed in chunks of about ``max_images`` images, by
    vmap or one at a time (``batching``; the same numbers). With
    ``return_curve``, the result also holds the accuracy after 0, 1, ...,
    ``inner_steps`` steps.
    """
    config, ways = module.config, sampler.ways
    if ways > config.ways:
        raise ValueError(f"the model has a {config.ways}-way head; cannot evaluate {ways}-way episodes")
    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    steps = config.test_inner_steps if inner_steps is None else inner_steps
    bn = config.bn if bn is None else bn
    params = first_outputs({k: v.detach() for k, v in module.theta().items()}, ways)
    lrs = first_outputs(None if module.lrs is None else {k: v.detach() for k, v in module.lrs.items()}, ways)
    loss_fn = classification_loss(conv4_forward)
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

    by_vmap = (batching if batching != "auto" else batching_for("omniglot", sampler.device)) == "vmap"
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, max_images // (ways * (sampler.shots + sampler.queries)))
    curves = []
    for first in progress_bar(range(0, count, chunk), desc=f"test {ways}-way {sampler.shots}-shot", disable=not progress,
                      leave=False):
        batch = task_batch(sampler, min(chunk, count - first), generator)
        with torch.no_grad():  # torch.func.grad still differentiates the inner loop
            if by_vmap:
                curves.append(vmap(accuracy_by_step)(*batch).cpu())
            else:
                curves.append(torch.stack([accuracy_by_step(*(v[i] for v in batch))
                                           for i in range(len(batch[0]))]).cpu())
    curve = torch.cat(curves)  # [count, steps + 1] (or [count, 1] without the curve)
    mean, ci = mean_confidence_interval(curve[:, -1])
    return AdaptationResult(mean, ci, count, tuple(curve.mean(0).tolist()) if return_curve else ())
