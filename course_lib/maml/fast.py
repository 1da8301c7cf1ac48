"""The fast paths of :mod:`course_lib.maml`: the same numbers, sooner.

vmap turns the Conv4's convolutions into grouped ones, slow on CPUs, so there the library loops over the
tasks in Python (:func:`course_lib.maml.algorithm.batching_for` decides) and uses torch's fused
``F.batch_norm``, exact outside vmap (under vmap its second-order meta-gradients were off by about 1e-2,
hence the hand-written :func:`course_lib.maml.algorithm.batch_norm`). Also: many test episodes at once.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import vmap

from ..episodes import FastEpisodeSampler
from ..evaluation import AccuracyResult, mean_confidence_interval
from ..runtime import progress_bar
from .algorithm import (BATCHING, MetaLearner, Params, batch_norm, batching_for, classification_loss, conv4_forward,
                        inner_adapt, query_outputs, task_batch, task_objective)

# The per-task loop, with torch's fused batch norm


def fused_batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                     stats_rows: int | None = None) -> torch.Tensor:
    """Torch's ``F.batch_norm`` with batch statistics, never under vmap; the hand-written one for
    ``stats_rows`` (statistics of some rows applied to all, which F.batch_norm cannot express)."""
    if stats_rows is not None:
        return batch_norm(x, weight, bias, stats_rows)
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)


def conv4_forward_fused(params: Params, x: torch.Tensor, stats_rows: int | None = None) -> torch.Tensor:
    return conv4_forward(params, x, stats_rows, norm=fused_batch_norm)


def each_task(params: Params, batch, kw: dict):
    """``task_objective`` of each task of ``batch`` in turn, by torch.autograd.grad and the fused batch norm."""
    kw = {**kw, "forward": conv4_forward_fused if kw["forward"] is conv4_forward else kw["forward"]}
    for sx, sy, qx, qy in zip(*batch):
        yield task_objective(params, sx, sy, qx, qy, backend="autograd", **kw)


def meta_loss_loop(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`course_lib.maml.algorithm.meta_loss` by a loop over the tasks, every task's graph built before
    one backward pass (the reference; training runs :func:`meta_backward_loop`)."""
    losses, accuracies = zip(*each_task(params, batch, kw))
    return torch.stack(losses).mean(), torch.stack(accuracies).mean()


def meta_backward_loop(params: Params, batch, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """``meta_loss_loop(params, batch, **kw)[0].backward()`` one task at a time; the detached (loss, accuracy).

    Each task's loss / T is backpropagated at once, adding its share of the meta-gradient to the ``.grad``
    of the leaves (zero them first) and freeing its graph before the next task is built: the peak memory
    is one task's graph instead of T (as in higher, torchopt and learn2learn).
    """
    tasks, losses, accuracies = len(batch[0]), [], []
    for loss, accuracy in each_task(params, batch, kw):
        (loss / tasks).backward()
        losses.append(loss.detach())
        accuracies.append(accuracy.detach())
        del loss, accuracy  # nothing of this task's graph survives into the next one
    return torch.stack(losses).mean(), torch.stack(accuracies).mean()


# Many test episodes, in chunks


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
                            bn: str | None = None, max_images: int = 4000, progress: bool = False,
                            return_curve: bool = False, batching: str = "auto") -> AdaptationResult:
    """Query accuracy ± 95% CI over ``count`` episodes of ``sampler`` (the same ones every time).

    Each episode is what :func:`course_lib.maml.predictor` does: ``test_inner_steps`` steps of the
    variant's inner loop on the support set, then the queries with batch statistics chosen by ``bn``
    (default ``config.bn``). Chunks of about ``max_images`` images, by vmap or one episode at a time
    (``batching``: the same numbers). ``return_curve``: also the accuracy after 0, 1, ... steps.
    """
    config, ways = module.config, sampler.ways
    if ways > config.ways:
        raise ValueError(f"the model has a {config.ways}-way head; cannot evaluate {ways}-way episodes")
    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    steps, bn = config.test_inner_steps, config.bn if bn is None else bn
    params, options = module.test_time(ways)
    loss_fn = classification_loss(conv4_forward)

    def accuracy_by_step(sx, sy, qx, qy):  # [steps + 1]: query accuracy after 0, 1, ..., steps inner steps
        fast, accuracies = params, []
        for s in range(steps + 1):
            if s > 0:  # no meta-gradient is needed at test time: first order is exact here
                fast = inner_adapt(fast, sx, sy, 1, config.inner_lr, loss_fn, first_order=True, **options)
            if return_curve or s == steps:
                out = query_outputs(conv4_forward, fast, sx, qx, bn)
                accuracies.append((out.argmax(-1) == qy).float().mean())
        return torch.stack(accuracies)

    by_vmap = (batching if batching != "auto" else batching_for("omniglot", sampler.device)) == "vmap"
    generator = torch.Generator().manual_seed(0)
    chunk = max(1, max_images // (ways * (sampler.shots + sampler.queries)))
    curves = []
    for first in progress_bar(range(0, count, chunk), desc=f"test {ways}-way {sampler.shots}-shot",
                              disable=not progress, leave=False):
        batch = task_batch(sampler, min(chunk, count - first), generator)
        with torch.no_grad():  # torch.func.grad still differentiates the inner loop
            if by_vmap:
                curves.append(vmap(accuracy_by_step)(*batch).cpu())
            else:
                curves.append(torch.stack([accuracy_by_step(*task) for task in zip(*batch)]).cpu())
    curve = torch.cat(curves)  # [count, steps + 1] (or [count, 1] without the curve)
    mean, ci = mean_confidence_interval(curve[:, -1])
    return AdaptationResult(mean, ci, count, tuple(curve.mean(0).tolist()) if return_curve else ())
