"""Tasks and episodes: the unit of data in meta-learning.

Introduced in notebook 01 (few-shot tasks as tiny datasets) and used by every
later notebook. A *task distribution* p(T) is anything that can sample tasks
with a seeded generator; an *episode* is one few-shot classification task:

* support set: ``ways`` classes x ``shots`` labelled examples, the task's
  training data D^tr;
* query set: ``queries`` further examples of the same classes, the task's
  test data D^ts, on which the learner is scored.

Labels inside an episode are ``0..ways-1`` in a random order, so a learner can
never rely on a class keeping its label across episodes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from .data import LabelledImages

TaskT = TypeVar("TaskT")


class TaskDistribution(ABC, Generic[TaskT]):
    """p(T): a distribution over tasks that can be sampled reproducibly.

    Subclasses implement :meth:`sample` (one task) and may override
    :meth:`sample_batch` with a vectorised version. Every method takes a
    ``torch.Generator`` so that the same seed gives the same tasks, whatever
    else the program draws from the global random state.
    """

    @abstractmethod
    def sample(self, generator: torch.Generator | None = None) -> TaskT:
        """One task."""

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> TaskT:
        """``batch_size`` tasks stacked along a new leading dimension."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return stack_tasks([self.sample(generator) for _ in range(batch_size)])

    def fixed_tasks(self, count: int, seed: int) -> list[TaskT]:
        """The same ``count`` tasks every time for a given ``seed`` (test sets)."""
        generator = torch.Generator().manual_seed(seed)
        return [self.sample(generator) for _ in range(count)]


def stack_tasks(tasks: list):
    """Stack a list of task dataclasses field by field (tensors get a batch dim)."""
    first = tasks[0]
    values = {}
    for name in first.__dataclass_fields__:
        items = [getattr(task, name) for task in tasks]
        values[name] = torch.stack(items) if isinstance(items[0], torch.Tensor) else items
    return type(first)(**values)


# --------------------------------------------------------------------------
# Few-shot classification episodes
# --------------------------------------------------------------------------


@dataclass
class Episode:
    """One N-way K-shot task (or a batch of them, with a leading batch dim).

    ``support_x``: ``[ways * shots, C, H, W]``, sorted by class
    (``support_y = [0]*shots + [1]*shots + ...``);
    ``query_x``: ``[ways * queries, C, H, W]``, also sorted by class;
    ``classes``: the original class id behind each episode label.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor

    @property
    def ways(self) -> int:
        return self.classes.shape[-1]

    @property
    def shots(self) -> int:
        return self.support_y.shape[-1] // self.ways

    def to(self, device: torch.device | str) -> "Episode":
        return Episode(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


class EpisodeSampler(TaskDistribution[Episode]):
    """N-way K-shot Q-query episodes from one :class:`LabelledImages` split.

    Meta-training and meta-test samplers must be built on class-disjoint
    splits (e.g. :func:`course_lib.data.omniglot_splits`). Within an episode
    the support and query examples of a class are distinct draws without
    replacement, so no query example is ever also a support example.

    >>> sampler = EpisodeSampler(splits["test"], ways=5, shots=1, queries=15)
    >>> episode = sampler.sample(torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        dataset: LabelledImages,
        ways: int,
        shots: int,
        queries: int,
        device: torch.device | str | None = None,
        classes: list[int] | None = None,
    ) -> None:
        for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.dataset = dataset
        self.ways, self.shots, self.queries = ways, shots, queries
        self.device = torch.device(device) if device is not None else dataset.images.device
        self.classes = torch.as_tensor(
            classes if classes is not None else range(dataset.num_classes), dtype=torch.long
        )
        if ways > len(self.classes):
            raise ValueError(
                f"{ways}-way episodes need {ways} classes but {dataset.name} has only "
                f"{len(self.classes)} to choose from: use ways <= {len(self.classes)}."
            )
        per_class = dataset.examples_per_class().cpu()[self.classes]
        # Only classes with enough examples can be drawn.
        enough = per_class >= shots + queries
        if int(enough.sum()) < ways:
            raise ValueError(
                f"{shots} shots + {queries} queries = {shots + queries} examples per class are "
                f"needed, but only {int(enough.sum())} classes of {dataset.name} have that many "
                f"(the classes hold {int(per_class.min())}-{int(per_class.max())} examples; "
                f"{ways} such classes are needed). Lower shots + queries to at most "
                f"{int(per_class.min())}, or ways."
            )
        self.classes = self.classes[enough]

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        pick = torch.randperm(len(self.classes), generator=generator)[: self.ways]
        classes = self.classes[pick]
        support, query = [], []
        for label in classes.tolist():
            members = self.dataset.indices_of_class(label)
            chosen = members[torch.randperm(len(members), generator=generator)[: self.shots + self.queries]]
            support.append(chosen[: self.shots])
            query.append(chosen[self.shots :])
        support_index, query_index = torch.cat(support), torch.cat(query)
        images = self.dataset.images
        labels = torch.arange(self.ways)
        return Episode(
            support_x=images[support_index.to(images.device)].to(self.device),
            support_y=labels.repeat_interleave(self.shots).to(self.device),
            query_x=images[query_index.to(images.device)].to(self.device),
            query_y=labels.repeat_interleave(self.queries).to(self.device),
            classes=classes.to(self.device),
        )

    def __repr__(self) -> str:
        return (
            f"EpisodeSampler({self.dataset.name!r}, {self.ways}-way {self.shots}-shot, "
            f"{self.queries} queries per class, {len(self.classes)} classes)"
        )


# --------------------------------------------------------------------------
# A fast sampler: every class holds the same number of images
# --------------------------------------------------------------------------


class FastEpisodeSampler(TaskDistribution[Episode]):
    """N-way K-shot Q-query episodes drawn with a few tensor operations.

    The same episodes *distribution* as :class:`EpisodeSampler`
    (classes without replacement, then support and query examples without
    replacement within each class; labels 0..N-1 in the order drawn), but
    for data sets whose classes all hold the same number of images (Omniglot:
    20 drawings per character). The images are kept once as a tensor
    ``[classes, per_class, C, H, W]`` on ``device``, and an episode is one
    gather: no Python loop over classes, no copies between devices.
    """

    def __init__(
        self, dataset: LabelledImages, ways: int, shots: int, queries: int, device: torch.device | str | None = None
    ) -> None:
        counts = dataset.examples_per_class().cpu()
        if (counts != counts[0]).any():
            raise ValueError(
                f"FastEpisodeSampler needs the same number of images per class; {dataset.name} has "
                f"{int(counts.min())}-{int(counts.max())}. Use EpisodeSampler."
            )
        per_class = int(counts[0])
        if ways > dataset.num_classes or shots + queries > per_class:
            raise ValueError(
                f"{ways}-way {shots}-shot {queries}-query episodes need {ways} classes with "
                f"{shots + queries} images; {dataset.name} has {dataset.num_classes} classes of {per_class}."
            )
        self.dataset = dataset
        self.ways, self.shots, self.queries = ways, shots, queries
        self.device = torch.device(device) if device is not None else dataset.images.device
        self.images = class_tensor(dataset, per_class, self.device)
        self.per_class = per_class

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        n, k, q = self.ways, self.shots, self.queries
        classes = torch.randperm(self.dataset.num_classes, generator=generator)[:n]
        members = torch.rand(n, self.per_class, generator=generator).argsort(dim=1)[:, : k + q]
        chosen = self.images[classes[:, None].to(self.device), members.to(self.device)]  # [n, k+q, C, H, W]
        shape = self.images.shape[2:]
        labels = torch.arange(n, device=self.device)
        return Episode(
            support_x=chosen[:, :k].reshape(n * k, *shape),
            support_y=labels.repeat_interleave(k),
            query_x=chosen[:, k:].reshape(n * q, *shape),
            query_y=labels.repeat_interleave(q),
            classes=classes.to(self.device),
        )

    def __repr__(self) -> str:
        return (
            f"FastEpisodeSampler({self.dataset.name!r}, {self.ways}-way {self.shots}-shot, "
            f"{self.queries} queries per class, {self.dataset.num_classes} classes)"
        )


def class_tensor(dataset: LabelledImages, per_class: int, device: torch.device) -> torch.Tensor:
    """``[classes, per_class, C, H, W]``: the images sorted by class, built once per data set and device."""
    cache = dataset.__dict__.setdefault("_class_tensors", {})
    key = (str(device), len(dataset), per_class)
    if key not in cache:
        order = torch.argsort(dataset.labels.cpu(), stable=True)
        images = dataset.images.cpu()[order].reshape(dataset.num_classes, per_class, *dataset.image_shape)
        cache[key] = images.to(device)
    return cache[key]


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of training step ``step``: a function of (seed, step) only,
    so a resumed run draws exactly the tasks an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


# --------------------------------------------------------------------------
# A second task family, to show the interface is not about images
# --------------------------------------------------------------------------


@dataclass
class RegressionTask:
    """Support/query points of one regression task, plus its parameters."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    parameters: torch.Tensor


class SinusoidTasks(TaskDistribution[RegressionTask]):
    """y = A sin(x - phase), A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5] (Finn et al. 2017)."""

    def __init__(
        self,
        shots: int = 10,
        queries: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        if shots < 1 or queries < 1:
            raise ValueError("shots and queries must be >= 1")
        self.shots, self.queries = shots, queries
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    @staticmethod
    def _uniform(low: float, high: float, shape, generator) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    def sample(self, generator: torch.Generator | None = None) -> RegressionTask:
        amplitude = self._uniform(*self.amplitude, (), generator)
        phase = self._uniform(*self.phase, (), generator)
        x = self._uniform(*self.x_range, (self.shots + self.queries, 1), generator)
        y = amplitude * torch.sin(x - phase)
        return RegressionTask(
            support_x=x[: self.shots],
            support_y=y[: self.shots],
            query_x=x[self.shots :],
            query_y=y[self.shots :],
            parameters=torch.stack([amplitude, phase]),
        )
