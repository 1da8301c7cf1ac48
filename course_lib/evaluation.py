"""Scoring learners on many test tasks: mean accuracy with a 95% confidence interval (notebook 01).

Results are ``mean ± half-width``, ``half-width = t_{0.975, n-1} * s / sqrt(n)`` (``s``: the
sample standard deviation). Student's ``t_{0.975, n-1}`` is 12.7 for 2 values and 4.30 for 3,
and tends to the 1.96 of the few-shot literature once n is in the hundreds: with 3 values,
1.96 would understate the interval 2.2 times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from scipy.stats import t as student_t

from .episodes import Episode, TaskDistribution
from .runtime import progress_bar

Z_95 = 1.959963984540054  # the 97.5% quantile of the standard normal: t_{0.975, n-1} as n grows


def t_95(n: int) -> float:
    """Student's t quantile ``t_{0.975, n-1}`` for a 95% interval from ``n`` values."""
    if n < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {n}")
    return float(student_t.ppf(0.975, n - 1))


@dataclass(frozen=True)
class AccuracyResult:
    """Mean accuracy over episodes (fractions in [0, 1]) and its 95% CI half-width."""

    mean: float
    ci95: float
    episodes: int

    def __str__(self) -> str:
        return format_accuracy(self.mean, self.ci95)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "ci95": self.ci95, "episodes": self.episodes}

    @classmethod
    def from_dict(cls, entry: dict) -> "AccuracyResult":
        """The inverse of :meth:`as_dict` (an entry of a results.json)."""
        return cls(entry["mean"], entry["ci95"], entry["episodes"])


def mean_confidence_interval(values: Sequence[float] | torch.Tensor) -> tuple[float, float]:
    """Mean and 95% CI half-width ``t_{0.975, n-1} * std / sqrt(n)`` of ``values``."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    n = values.numel()
    if n == 0:
        raise ValueError("cannot compute a confidence interval of no values")
    if n == 1:
        return float(values[0]), math.nan  # one episode says nothing about the spread
    return float(values.mean()), float(t_95(n) * values.std(correction=1) / math.sqrt(n))


def format_accuracy(mean: float, ci95: float) -> str:
    """``0.981, 0.003 -> '98.1 ± 0.3 %'`` (fractions in, percentages out)."""
    if math.isnan(ci95):
        return f"{100 * mean:.1f} % (1 episode, no CI)"
    return f"{100 * mean:.1f} ± {100 * ci95:.1f} %"


FewShotClassifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``predict(support_x, support_y, query_x) -> logits or labels for query_x``."""


def episode_accuracy(predict: FewShotClassifier, episode: Episode) -> float:
    """Accuracy of ``predict`` on one episode's query set."""
    output = predict(episode.support_x, episode.support_y, episode.query_x)
    predicted = output.argmax(dim=-1) if output.ndim == episode.query_y.ndim + 1 else output
    if predicted.shape != episode.query_y.shape:
        raise ValueError(f"the classifier returned shape {tuple(output.shape)}; expected logits "
                         f"[{len(episode.query_y)}, ways] or labels [{len(episode.query_y)}]")
    return (predicted == episode.query_y).float().mean().item()


def evaluate_few_shot(predict: FewShotClassifier, tasks: TaskDistribution[Episode] | Iterable[Episode],
                      episodes: int = 1000, seed: int = 0, progress: bool = True,
                      desc: str = "evaluate") -> AccuracyResult:
    """Mean query accuracy over ``episodes`` test episodes, with its 95% CI.

    ``tasks`` is a sampler (then ``episodes`` episodes are drawn with ``seed``,
    the same ones for every method evaluated with the same seed) or a list of
    episodes (then all of them are used).
    """
    if isinstance(tasks, TaskDistribution):
        generator = torch.Generator().manual_seed(seed)
        stream = (tasks.sample(generator) for _ in range(episodes))
        total = episodes
    else:
        stream = iter(tasks)
        total = len(tasks) if hasattr(tasks, "__len__") else None  # type: ignore[arg-type]
    # No torch.no_grad() here: fine-tuning and MAML need gradients to predict.
    accuracies = [episode_accuracy(predict, episode)
                  for episode in progress_bar(stream, total=total, desc=desc, disable=not progress, leave=False)]
    mean, ci95 = mean_confidence_interval(accuracies)
    return AccuracyResult(mean, ci95, len(accuracies))
