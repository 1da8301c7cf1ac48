"""Tasks and episodes: the unit of data in meta-learning (notebook 01 onwards).

A *task distribution* p(T) samples tasks with a seeded generator; an *episode*
is one few-shot classification task: a support set of ``ways`` classes x
``shots`` labelled examples (the task's training data D^tr) and a query set of
``queries`` more examples per class (its test data D^ts, which scores the
learner). Episode labels are ``0..ways-1`` in a random order, so a learner can
never rely on a class keeping its label.
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

    Subclasses implement :meth:`sample` (and may vectorise :meth:`sample_batch`); every method
    takes a ``torch.Generator``, so a seed gives the same tasks whatever else the program draws.
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
    values = {}
    for name in tasks[0].__dataclass_fields__:
        items = [getattr(task, name) for task in tasks]
        values[name] = torch.stack(items) if isinstance(items[0], torch.Tensor) else items
    return type(tasks[0])(**values)


# Few-shot classification episodes


@dataclass
class Episode:
    """One N-way K-shot task (or a batch of them, with a leading batch dim).

    ``support_x``: ``[ways * shots, C, H, W]`` and ``query_x``: ``[ways * queries, C, H, W]``,
    sorted by class (``support_y = [0]*shots + [1]*shots + ...``); ``classes``: the original
    class id behind each episode label.
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


def _episode(classes, support_x, query_x, ways: int, shots: int, queries: int, device) -> Episode:
    """An episode from its images, sorted by class; labels 0..ways-1 in the order the classes were drawn."""
    labels = torch.arange(ways, device=device)
    return Episode(support_x, labels.repeat_interleave(shots), query_x, labels.repeat_interleave(queries),
                   classes.to(device))


class EpisodeSampler(TaskDistribution[Episode]):
    """N-way K-shot Q-query episodes from one :class:`LabelledImages` split: the general sampler.

    Use it for any data set (classes of any size, or only some ``classes``). For classes of
    equal size, :class:`FastEpisodeSampler` draws from the same distribution faster but gives
    other episodes for the same seed, so a table of results uses one of the two throughout
    (this one: notebooks 00-02, 05 and the capstone). Support and query examples of a class
    are distinct draws; meta-training and meta-test samplers need class-disjoint splits.

    >>> sampler = EpisodeSampler(splits["test"], ways=5, shots=1, queries=15)
    >>> episode = sampler.sample(torch.Generator().manual_seed(0))
    """

    def __init__(self, dataset: LabelledImages, ways: int, shots: int, queries: int,
                 device: torch.device | str | None = None, classes: list[int] | None = None) -> None:
        for name, value in (("ways", ways), ("shots", shots), ("queries", queries)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.dataset = dataset
        self.ways, self.shots, self.queries = ways, shots, queries
        self.device = torch.device(device) if device is not None else dataset.images.device
        self.classes = torch.as_tensor(classes if classes is not None else range(dataset.num_classes),
                                       dtype=torch.long)
        if ways > len(self.classes):
            raise ValueError(f"{ways}-way episodes need {ways} classes but {dataset.name} has only "
                             f"{len(self.classes)} to choose from: use ways <= {len(self.classes)}.")
        per_class = dataset.examples_per_class().cpu()[self.classes]
        enough = per_class >= shots + queries  # only these classes can be drawn
        if int(enough.sum()) < ways:
            raise ValueError(
                f"{shots} shots + {queries} queries = {shots + queries} examples per class are needed, but only "
                f"{int(enough.sum())} classes of {dataset.name} have that many (the classes hold "
                f"{int(per_class.min())}-{int(per_class.max())} examples; {ways} such classes are needed). "
                f"Lower shots + queries to at most {int(per_class.min())}, or ways.")
        self.classes = self.classes[enough]

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        classes = self.classes[torch.randperm(len(self.classes), generator=generator)[: self.ways]]
        support, query = [], []
        for label in classes.tolist():
            members = self.dataset.indices_of_class(label)
            chosen = members[torch.randperm(len(members), generator=generator)[: self.shots + self.queries]]
            support.append(chosen[: self.shots])
            query.append(chosen[self.shots :])
        images = self.dataset.images
        support_x, query_x = (images[torch.cat(p).to(images.device)].to(self.device) for p in (support, query))
        return _episode(classes, support_x, query_x, self.ways, self.shots, self.queries, self.device)

    def __repr__(self) -> str:
        return (f"EpisodeSampler({self.dataset.name!r}, {self.ways}-way {self.shots}-shot, "
                f"{self.queries} queries per class, {len(self.classes)} classes)")


class FastEpisodeSampler(TaskDistribution[Episode]):
    """The episodes of :class:`EpisodeSampler`, faster, for classes of equal size (Omniglot: 20 each).

    The images are kept once as ``[classes, per_class, C, H, W]`` on ``device`` and an episode
    is one gather. The same seed gives other episodes than EpisodeSampler (the random numbers
    are drawn differently): episodic training and the test episodes of notebooks 03-04 use this one.
    """

    def __init__(self, dataset: LabelledImages, ways: int, shots: int, queries: int,
                 device: torch.device | str | None = None) -> None:
        counts = dataset.examples_per_class().cpu()
        if (counts != counts[0]).any():
            raise ValueError(f"FastEpisodeSampler needs the same number of images per class; {dataset.name} has "
                             f"{int(counts.min())}-{int(counts.max())}. Use EpisodeSampler.")
        per_class = int(counts[0])
        if ways > dataset.num_classes or shots + queries > per_class:
            raise ValueError(
                f"{ways}-way {shots}-shot {queries}-query episodes need {ways} classes with "
                f"{shots + queries} images; {dataset.name} has {dataset.num_classes} classes of {per_class}.")
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
        return _episode(classes, chosen[:, :k].reshape(n * k, *shape), chosen[:, k:].reshape(n * q, *shape),
                        n, k, q, self.device)

    def __repr__(self) -> str:
        return (f"FastEpisodeSampler({self.dataset.name!r}, {self.ways}-way {self.shots}-shot, "
                f"{self.queries} queries per class, {self.dataset.num_classes} classes)")


def class_tensor(dataset: LabelledImages, per_class: int, device: torch.device) -> torch.Tensor:
    """``[classes, per_class, C, H, W]``: the images sorted by class, built once per data set and device."""
    cache = dataset.__dict__.setdefault("_class_tensors", {})
    key = (str(device), len(dataset), per_class)
    if key not in cache:
        order = torch.argsort(dataset.labels.cpu(), stable=True)
        images = dataset.images.cpu()[order].reshape(dataset.num_classes, per_class, *dataset.image_shape)
        cache[key] = images.to(device)
    return cache[key]


def step_seed(seed: int, step: int) -> int:
    """The seed of draw ``step`` of a run seeded ``seed``: distinct for every (seed, step) the course uses."""
    return seed * 1_000_003 + step


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of training step ``step``: a function of (seed, step) only,
    so a resumed run draws exactly the tasks an uninterrupted one would."""
    return torch.Generator().manual_seed(step_seed(seed, step))


# A second task family, to show the interface is not about images


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

    def __init__(self, shots: int = 10, queries: int = 10, amplitude: tuple[float, float] = (0.1, 5.0),
                 phase: tuple[float, float] = (0.0, math.pi), x_range: tuple[float, float] = (-5.0, 5.0)) -> None:
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
        return RegressionTask(x[: self.shots], y[: self.shots], x[self.shots :], y[self.shots :],
                              torch.stack([amplitude, phase]))
