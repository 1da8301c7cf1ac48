"""The baselines every few-shot method in the course must beat (notebook 02).

Each classifier has the course's interface ``predict(support_x, support_y, query_x)
-> logits [n_query, ways]``, on pixels or on the features of an ``encoder``:
:func:`nearest_neighbour`, :class:`NearestCentroid` and :class:`FineTunedHead`;
:func:`pretrain_classifier` makes that encoder by ordinary supervised learning on
all meta-training classes. :class:`ResultsTable` collects ``mean ± 95% CI``
results, method x setting, and later notebooks extend it.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .data import LabelledImages
from .evaluation import AccuracyResult
from .models import Conv4, eval_mode
from .runs import History
from .supervised import train_classifier

Encoder = Callable[[torch.Tensor], torch.Tensor]
"""Maps images ``[n, C, H, W]`` to features ``[n, d]`` (or anything that flattens to it)."""

DISTANCE_SCORES = "negative squared distance"


# Geometry


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[len(a), len(b)]`` matrix of ``||a_i - b_j||^2`` (inputs flattened per row)."""
    a = a.reshape(a.shape[0], -1).float()
    b = b.reshape(b.shape[0], -1).float()
    # The direct formula, not the faster |a|^2 - 2ab + |b|^2: identical images get exactly 0.
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def class_centroids(features: torch.Tensor, labels: torch.Tensor, ways: int | None = None) -> torch.Tensor:
    """``[ways, d]``: the mean feature of each class, ``c_k = mean_{i: y_i = k} z_i``."""
    features = features.reshape(features.shape[0], -1).float()
    one_hot = F.one_hot(labels, ways if ways is not None else int(labels.max()) + 1).to(features.dtype)
    counts = one_hot.sum(0)
    if (counts == 0).any():
        raise ValueError("the support set has no example of class(es) "
                         f"{(counts == 0).nonzero().flatten().tolist()}")
    return one_hot.T @ features / counts[:, None]


def _embed(encoder: Encoder | None, x: torch.Tensor) -> torch.Tensor:
    """Features of ``x`` under a frozen ``encoder`` (pixels if None), flattened."""
    if encoder is None:
        return x.reshape(x.shape[0], -1).float()
    module = encoder if isinstance(encoder, nn.Module) else getattr(encoder, "__self__", None)
    if isinstance(module, nn.Module):  # batch norm: use the statistics of pretraining, not of this episode
        parameter = next(module.parameters(), None)
        with eval_mode(module), torch.no_grad():
            z = encoder(x.to(parameter.device if parameter is not None else "cpu"))
    else:
        with torch.no_grad():
            z = encoder(x)
    return z.reshape(z.shape[0], -1).float()


def _name(encoder: Encoder | None) -> str:
    owner = getattr(encoder, "__self__", None)
    if encoder is None:
        return "pixels"
    return f"{type(owner).__name__}.{encoder.__name__}" if owner is not None else type(encoder).__name__


# Non-parametric baselines


def nearest_neighbour(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                      encoder: Encoder | None = None) -> torch.Tensor:
    """1-nearest-neighbour in pixel space (or in ``encoder``'s feature space).

    Logits: ``score[q, k] = -min_{j: y_j = k} ||x_q - x_j||^2``, so the argmax
    is the label of the nearest support example.
    """
    support, query = _embed(encoder, support_x), _embed(encoder, query_x.to(support_x.device))
    distances = squared_distances(query, support.to(query.device))  # [n_query, n_support]
    labels = support_y.to(distances.device)
    nearest = [distances[:, labels == k].min(dim=1).values for k in range(int(support_y.max()) + 1)]
    return -torch.stack(nearest, dim=1).to(query_x.device)


nearest_neighbour.score_kind = DISTANCE_SCORES  # type: ignore[attr-defined]


@dataclass(eq=False, repr=False)
class NearestCentroid:
    """Nearest class mean: ``score[q, k] = -||f(x_q) - c_k||^2``, ``c_k = mean f(x_j), y_j = k``.

    ``encoder=None`` works on pixels. With one shot per class the centroid is
    the only example, so this is exactly the nearest neighbour.
    """

    encoder: Encoder | None = None
    score_kind: ClassVar[str] = DISTANCE_SCORES

    def __call__(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        support, query = _embed(self.encoder, support_x), _embed(self.encoder, query_x)
        centroids = class_centroids(support, support_y.to(support.device), int(support_y.max()) + 1)
        return (-squared_distances(query, centroids.to(query.device))).to(query_x.device)

    def __repr__(self) -> str:
        return f"NearestCentroid(encoder={_name(self.encoder)})"


@dataclass(frozen=True)
class ConvFromScratch:
    """Notebook 01's designed learner: a fresh Conv4 trained by SGD on the support set alone."""

    steps: int = 100
    lr: float = 0.1

    def __call__(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        learner = Conv4(num_classes=int(support_y.max()) + 1).to(support_x.device)
        optimizer = torch.optim.SGD(learner.parameters(), lr=self.lr)
        for _ in range(self.steps):
            loss = F.cross_entropy(learner(support_x), support_y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        learner.eval()  # batch-norm statistics from training, not from the query set
        with torch.no_grad():
            return learner(query_x)


@dataclass(eq=False, repr=False)
class FineTunedHead:
    """A new linear head on frozen features, trained on the support set only.

    The "Baseline" of Chen et al. (*A Closer Look at Few-shot Classification*, ICLR 2019):
    per episode a fresh, seeded ``W, b`` is fitted by ``steps`` full-batch Adam steps on

        min_{W,b} (1/|S|) sum_{(x,y) in S} -log softmax(W f(x) + b)_y  (+ weight decay)

    and the query logits are ``W f(x_q) + b``. ``normalize`` rescales the features to
    length ``scale`` first, so one learning rate suits pixels and learned features alike.
    """

    encoder: Encoder | None = None
    steps: int = 100
    lr: float = 0.1
    weight_decay: float = 1e-3
    normalize: bool = True
    scale: float = 10.0
    seed: int = 0
    score_kind: ClassVar[str] = "logits"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        z = _embed(self.encoder, x)
        return self.scale * F.normalize(z, dim=1) if self.normalize else z

    def fit(self, support_x: torch.Tensor, support_y: torch.Tensor) -> nn.Linear:
        """The fitted head for one support set."""
        support = self._features(support_x)
        labels = support_y.to(support.device)
        generator = torch.Generator().manual_seed(self.seed)
        head = nn.Linear(support.shape[1], int(labels.max()) + 1)
        with torch.no_grad():
            bound = 1 / math.sqrt(support.shape[1])
            head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=generator))
            head.bias.zero_()
        head = head.to(support.device)
        optimizer = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        with torch.enable_grad(), _single_threaded(support.device):
            for _ in range(self.steps):
                loss = F.cross_entropy(head(support), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return head

    def __call__(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        head = self.fit(support_x, support_y)
        with torch.no_grad():
            return head(self._features(query_x)).to(query_x.device)

    def __repr__(self) -> str:
        return f"FineTunedHead(encoder={_name(self.encoder)}, steps={self.steps}, lr={self.lr})"


@contextlib.contextmanager
def _single_threaded(device: torch.device):
    """One CPU thread for tiny tensors: more threads only add synchronisation (and waits for a core)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# Pretraining: ordinary supervised learning on the meta-training classes


def hold_out_examples(dataset: LabelledImages, per_class: int,
                      generator: torch.Generator | None = None) -> tuple[LabelledImages, LabelledImages]:
    """Split every class: ``per_class`` random examples to a held-out set, the rest to train.

    Both parts keep all classes and their labels (new *examples* of known
    classes, not new classes: the opposite of a meta-test split).
    """
    train_index, held_index = [], []
    for label in range(dataset.num_classes):
        members = dataset.indices_of_class(label)
        if len(members) <= per_class:
            raise ValueError(f"class {dataset.class_names[label]!r} has {len(members)} examples; "
                             f"holding out {per_class} would leave none to train on")
        shuffled = members[torch.randperm(len(members), generator=generator)]
        held_index.append(shuffled[:per_class])
        train_index.append(shuffled[per_class:])

    def part(index: list[torch.Tensor], suffix: str) -> LabelledImages:
        index = torch.cat(index).sort().values
        return LabelledImages(dataset.images[index], dataset.labels[index], dataset.class_names,
                              dataset.class_groups, name=f"{dataset.name} ({suffix})")

    return part(train_index, "train examples"), part(held_index, "held-out examples")


def pretrain_classifier(train: LabelledImages, *, steps: int, device: torch.device | str, lr: float = 0.1,
                        momentum: float = 0.9, batch_size: int = 64, held_out: LabelledImages | None = None,
                        eval_every: int = 100, seed: int = 0, hidden: int = 64,
                        progress: bool = True) -> tuple[Conv4, History]:
    """A ``Conv4`` with a ``train.num_classes``-way head, trained by SGD on cross-entropy, in eval mode,
    and its history: ``model.embed`` is then the encoder the baselines reuse on new classes."""
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, global random state untouched
        torch.manual_seed(seed)
        model = Conv4(in_channels=train.image_shape[0], hidden=hidden, num_classes=train.num_classes,
                      image_size=train.image_shape[-1])
    history = train_classifier(model, train, steps=steps, device=device, lr=lr, momentum=momentum,
                               batch_size=batch_size, held_out=held_out, eval_every=eval_every,
                               generator=torch.Generator().manual_seed(seed), progress=progress,
                               desc=f"pretrain Conv4 ({train.num_classes}-way)")
    return model.eval(), history


def embed_dataset(encoder: Encoder, dataset: LabelledImages, batch_size: int = 1000,
                  name: str | None = None) -> LabelledImages:
    """Every image of ``dataset`` replaced by its (frozen) features ``[n, d, 1, 1]``, on the CPU.

    Labels and classes are kept, so a seeded :class:`EpisodeSampler` draws the same episodes
    from it: the encoder runs once per image instead of once per episode.
    """
    features = torch.cat([_embed(encoder, dataset.images[start : start + batch_size]).cpu()
                          for start in range(0, len(dataset), batch_size)])
    return LabelledImages(features[:, :, None, None], dataset.labels, dataset.class_names, dataset.class_groups,
                          name=name or f"{dataset.name} (features)")


# The results table that later notebooks extend


def setting_name(ways: int, shots: int) -> str:
    """``(5, 1) -> '5-way 1-shot'``: the column names of :class:`ResultsTable`."""
    return f"{ways}-way {shots}-shot"


class ResultsTable:
    """Mean accuracy ± 95% CI, one row per method, one column per setting.

    >>> table = ResultsTable(["5-way 1-shot", "5-way 5-shot"])
    >>> table.add("pixel nearest neighbour", "5-way 1-shot", result)
    >>> table                       # renders as Markdown in Jupyter
    >>> table.save(path); ResultsTable.load(path).add(...)   # later notebooks

    Rows keep the order of first addition; an empty cell shows "–"; ``notes`` holds
    free text per method (the budget).
    """

    def __init__(self, settings: Iterable[str] = (), title: str | None = None) -> None:
        self.settings: list[str] = list(settings)
        self.title = title
        self.rows: dict[str, dict[str, AccuracyResult]] = {}
        self.notes: dict[str, str] = {}

    def add(self, method: str, setting: str, result: AccuracyResult, note: str | None = None) -> "ResultsTable":
        if not isinstance(result, AccuracyResult):
            raise TypeError(f"result must be an AccuracyResult (from evaluate_few_shot), got {type(result).__name__}")
        if setting not in self.settings:
            self.settings.append(setting)
        self.rows.setdefault(method, {})[setting] = result
        if note is not None:
            self.notes[method] = note
        return self

    def __getitem__(self, key: tuple[str, str]) -> AccuracyResult:
        method, setting = key
        return self.rows[method][setting]

    def __contains__(self, key: tuple[str, str]) -> bool:
        method, setting = key
        return setting in self.rows.get(method, {})

    @property
    def methods(self) -> list[str]:
        return list(self.rows)

    def episodes(self) -> set[int]:
        """The distinct episode counts behind the cells (one number when all agree)."""
        return {r.episodes for row in self.rows.values() for r in row.values()}

    def to_markdown(self, notes: bool = False) -> str:
        header = ["method", *self.settings] + (["budget"] if notes else [])
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, row in self.rows.items():
            cells = [str(row[s]) if s in row else "–" for s in self.settings]
            cells += [self.notes.get(method, "")] if notes else []
            lines.append("| " + " | ".join([method, *cells]) + " |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return (f"**{self.title}**\n\n" if self.title else "") + str(self)

    def __str__(self) -> str:
        return self.to_markdown(notes=bool(self.notes))

    def __repr__(self) -> str:
        return f"ResultsTable({len(self.rows)} methods x {len(self.settings)} settings)"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = {m: {s: r.as_dict() for s, r in row.items()} for m, row in self.rows.items()}
        state = {"title": self.title, "settings": self.settings, "rows": rows, "notes": self.notes}
        path.write_text(json.dumps(state, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ResultsTable":
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        table = cls(state["settings"], title=state.get("title"))
        for method, row in state["rows"].items():
            for setting, value in row.items():
                table.add(method, setting, AccuracyResult.from_dict(value))
        table.notes.update(state.get("notes", {}))
        return table
