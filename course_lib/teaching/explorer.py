"""The episode explorer: look inside few-shot tasks and at what a learner predicts.

Introduced in notebook 02 and used in every later notebook. Two layers:

* **pure functions** of plain values, testable without a browser or a
  kernel: :func:`sample_episode` (split, group, N-way, K-shot, Q-query,
  seed -> :class:`~course_lib.episodes.Episode`), :func:`predict_episode`
  (any few-shot classifier -> :class:`Prediction`), :func:`describe_episode`,
  :func:`describe_predictions`, :func:`describe_query` (text/HTML),
  :func:`episode_figure` (a matplotlib figure) and :func:`render_view`,
  which composes them into everything the widget shows;
* :class:`EpisodeExplorer`, a thin ipywidgets front end that reads its
  controls, calls :func:`render_view` and writes the result into its output
  widgets. The "resample" button only adds one to the seed, so every picture
  is a function of the values on screen.

A few-shot classifier is anything with the course's interface
``predict(support_x, support_y, query_x)`` returning logits ``[n_query,
ways]`` (or labels ``[n_query]``): a function, or an ``nn.Module`` whose
``forward`` takes those three tensors. If it has an attribute
``score_kind = "negative squared distance"`` (the baselines of
:mod:`course_lib.baselines` do), its scores are shown as distances.

>>> from course_lib import baselines, data
>>> from course_lib.teaching import explorer
>>> splits = data.omniglot_splits("lake")
>>> explorer.EpisodeExplorer({"meta-test": splits["test"], "meta-train": splits["train"]},
...                          classifiers={"pixel nearest neighbour": baselines.nearest_neighbour})
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import matplotlib.pyplot as plt
import torch

from ..baselines import DISTANCE_SCORES
from ..data import LabelledImages
from ..episodes import Episode, EpisodeSampler
from .plots import panel, plot_episode

ANY = "any"
NO_METHOD = "(none)"

FewShotClassifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------
# Episodes
# --------------------------------------------------------------------------


def group_options(dataset: LabelledImages) -> list[str] | None:
    """``["any", <groups sorted>]`` for a dataset with ``class_groups`` (alphabets), else None."""
    if dataset.class_groups is None:
        return None
    return [ANY, *sorted(set(dataset.class_groups))]


def classes_of_group(dataset: LabelledImages, group: str | None) -> list[int] | None:
    """The class ids of one group (alphabet); None (all classes) for ``group`` None or "any"."""
    if group is None or group == ANY:
        return None
    if dataset.class_groups is None:
        raise ValueError(f"{dataset.name} has no class groups, so group {group!r} cannot be chosen; use {ANY!r}")
    classes = [c for c, g in enumerate(dataset.class_groups) if g == group]
    if not classes:
        raise ValueError(f"{dataset.name} has no group {group!r}; its groups are {group_options(dataset)[1:]}")
    return classes


def sample_episode(
    dataset: LabelledImages, ways: int, shots: int, queries: int, seed: int, group: str | None = None
) -> Episode:
    """The episode that the explorer shows for these values (same values, same episode).

    Classes come from ``group`` (an alphabet) when given, else from the whole
    ``dataset``; drawing uses ``torch.Generator().manual_seed(seed)`` only.
    """
    sampler = EpisodeSampler(dataset, ways=ways, shots=shots, queries=queries,
                             classes=classes_of_group(dataset, group))
    return sampler.sample(torch.Generator().manual_seed(seed))


def queries_per_class(episode: Episode) -> int:
    return episode.query_y.shape[-1] // episode.ways


# --------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """What a classifier said about one episode's queries (all on the CPU).

    ``labels``: predicted episode labels ``[n_query]``; ``scores``: its raw
    output ``[n_query, ways]`` (None if it returned labels only);
    ``score_kind``: ``"logits"``, ``"negative squared distance"`` or ``"labels"``.
    """

    method: str
    labels: torch.Tensor
    scores: torch.Tensor | None
    score_kind: str
    correct: torch.Tensor

    @property
    def accuracy(self) -> float:
        return self.correct.float().mean().item()

    @property
    def probabilities(self) -> torch.Tensor | None:
        """``softmax(scores)`` over the ways (None without scores)."""
        return None if self.scores is None else torch.softmax(self.scores.double(), dim=-1).float()

    @property
    def distances(self) -> torch.Tensor | None:
        """Squared distances ``-scores`` for distance-based methods, else None."""
        return -self.scores if self.scores is not None and self.score_kind == DISTANCE_SCORES else None


def predict_episode(classifier: FewShotClassifier, episode: Episode, method: str | None = None) -> Prediction:
    """Run ``classifier(support_x, support_y, query_x)`` on ``episode`` and score it.

    No ``torch.no_grad()``: learners that fine-tune need gradients to predict.
    """
    output = classifier(episode.support_x, episode.support_y, episode.query_x)
    output = torch.as_tensor(output).detach().cpu()
    n_query = episode.query_y.shape[0]
    if output.ndim == 2 and output.shape == (n_query, episode.ways):
        scores, labels = output.float(), output.argmax(dim=-1)
        kind = getattr(classifier, "score_kind", "logits")
    elif output.ndim == 1 and output.shape == (n_query,) and not output.is_floating_point():
        scores, labels, kind = None, output.long(), "labels"
    else:
        raise ValueError(
            f"the classifier returned shape {tuple(output.shape)}; expected logits "
            f"[{n_query}, {episode.ways}] or integer labels [{n_query}]"
        )
    return Prediction(
        method=method or classifier_name(classifier),
        labels=labels,
        scores=scores,
        score_kind=kind,
        correct=labels == episode.query_y.cpu(),
    )


def classifier_name(classifier) -> str:
    return getattr(classifier, "__name__", None) or type(classifier).__name__


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------


def _class_name(episode: Episode, label: int, class_names) -> str:
    original = int(episode.classes[label])
    return class_names[original] if class_names is not None else f"class {original}"


def describe_episode(
    episode: Episode, class_names=None, dataset_name: str = "", group: str | None = None, seed: int | None = None
) -> str:
    """One line of plain text: where the episode comes from and its size."""
    parts = [p for p in (dataset_name, f"alphabet {group}" if group not in (None, ANY) else "") if p]
    size = f"{episode.ways}-way {episode.shots}-shot, {queries_per_class(episode)} queries per class"
    seed_text = f", seed {seed}" if seed is not None else ""
    return f"{' · '.join(parts + [size])}{seed_text}"


def describe_support(episode: Episode, class_names=None) -> str:
    """``"support classes: 0 = Korean/character05, 1 = ..."`` (label = row of the grid)."""
    names = [f"{k} = {_class_name(episode, k, class_names)}" for k in range(episode.ways)]
    return "support classes: " + ", ".join(names)


def describe_predictions(episode: Episode, prediction: Prediction | None) -> str:
    """Per-episode accuracy as text: ``"pixel NN: 21 of 25 queries right = 84.0 % (chance 20.0 %)"``."""
    if prediction is None:
        return "no method chosen: pick one to see its predictions on the queries"
    right, total = int(prediction.correct.sum()), prediction.correct.numel()
    return (
        f"{prediction.method}: {right} of {total} queries right = {100 * right / total:.1f} % "
        f"(chance {100 / episode.ways:.1f} %)"
    )


def describe_query(episode: Episode, prediction: Prediction | None, index: int, class_names=None) -> str:
    """An HTML table for one query: per class, its score (distance or logit) and probability."""
    n_query = episode.query_y.shape[0]
    if not 0 <= index < n_query:
        raise IndexError(f"query {index} does not exist; this episode has queries 0..{n_query - 1}")
    true = int(episode.query_y[index])
    head = f"<b>query {index}</b>: true class {true} ({html.escape(_class_name(episode, true, class_names))})"
    if prediction is None:
        return head
    predicted = int(prediction.labels[index])
    verdict = "right" if predicted == true else "wrong"
    head += f", predicted {predicted} ({verdict})"
    if prediction.scores is None:
        return head + "<br>this method returns labels only (no scores)"
    distances, probabilities = prediction.distances, prediction.probabilities
    score_header = "squared distance" if distances is not None else "logit"
    scores = distances if distances is not None else prediction.scores
    rows = []
    for k in range(episode.ways):
        marks = ("✓ " if k == true else "") + ("← predicted" if k == predicted else "")
        style = ' style="font-weight:bold"' if k == predicted else ""
        rows.append(
            f"<tr{style}><td>{k}</td><td>{html.escape(_class_name(episode, k, class_names))}</td>"
            f"<td>{float(scores[index, k]):.3g}</td><td>{float(probabilities[index, k]):.3f}</td>"
            f"<td>{marks}</td></tr>"
        )
    return (
        f"{head}<table class='explorer-query-table'><tr><th>label</th><th>class</th>"
        f"<th>{score_header}</th><th>softmax probability</th><th></th></tr>{''.join(rows)}</table>"
    )


# --------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------


def episode_figure(
    episode: Episode,
    class_names=None,
    prediction: Prediction | None = None,
    selected: int | None = None,
    title: str | None = None,
    size: float = 0.9,
):
    """:func:`course_lib.teaching.plots.plot_episode`, plus the predicted label under each query.

    Queries are framed green (right) or red (wrong); the ``selected`` query's
    label is boxed in blue.
    """
    fig = plot_episode(episode, class_names=class_names,
                       predictions=None if prediction is None else prediction.labels, size=size, title=title)
    shots, queries = episode.shots, queries_per_class(episode)
    columns = shots + 1 + queries
    axes = fig.axes
    for q in range(episode.query_y.shape[0]):
        ax = axes[(q // queries) * columns + shots + 1 + q % queries]
        text, style = None, {}
        if prediction is not None:
            right = bool(prediction.correct[q])
            text = f"→ {int(prediction.labels[q])}"
            style = {"color": "tab:green" if right else "tab:red"}
        if q == selected:
            text = f"[q{q}] {text or ''}".strip()
            style["bbox"] = {"boxstyle": "round,pad=0.15", "fc": "lightblue", "ec": "tab:blue"}
        if text:
            ax.set_xlabel(text, fontsize=7, labelpad=1, **style)
    return fig


def figure_png(fig, dpi: int = 72) -> bytes:
    """The figure as PNG bytes; the figure is closed (it is not also shown inline)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels, read from the PNG header."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or len(png) < 24:
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# --------------------------------------------------------------------------
# Everything the widget shows, from the values of its controls
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplorerSettings:
    """The values of the explorer's controls."""

    split: str
    group: str = ANY
    ways: int = 5
    shots: int = 1
    queries: int = 5
    seed: int = 0
    method: str = NO_METHOD
    query: int = 0


@dataclass(frozen=True)
class ExplorerView:
    """What the explorer displays for one :class:`ExplorerSettings`."""

    settings: ExplorerSettings
    episode: Episode | None
    prediction: Prediction | None
    header: str
    support: str
    summary: str
    query: str
    png: bytes
    error: str | None = None


def render_view(
    datasets: Mapping[str, LabelledImages],
    classifiers: Mapping[str, FewShotClassifier],
    settings: ExplorerSettings,
    dpi: int = 100,
    figure: bool = True,
) -> ExplorerView:
    """Sample, predict, describe and draw: a pure function of ``settings``.

    Problems a student can cause from the controls (too many ways for an
    alphabet, a classifier that fails on these images) come back as
    ``error`` text instead of exceptions.
    """
    dataset = datasets[settings.split]
    header = f"{settings.split} ({dataset.name})"
    try:
        episode = sample_episode(dataset, settings.ways, settings.shots, settings.queries, settings.seed,
                                 settings.group)
    except ValueError as error:
        where = f"alphabet {settings.group} of " if settings.group not in (None, ANY) else ""
        message = f"cannot draw this episode from {where}{settings.split}: {error}"
        return ExplorerView(settings, None, None, header, "", message, "", b"", error=message)
    header = describe_episode(episode, dataset.class_names, header, settings.group, settings.seed)
    prediction, error = None, None
    if settings.method != NO_METHOD:
        try:
            prediction = predict_episode(classifiers[settings.method], episode, settings.method)
        except Exception as failure:  # any learner may fail on any data set: say so, keep the episode
            error = f"{settings.method} failed on this episode: {type(failure).__name__}: {failure}"
    query = min(max(settings.query, 0), episode.query_y.shape[0] - 1)
    png = b""
    if figure:
        png = figure_png(episode_figure(episode, dataset.class_names, prediction, selected=query), dpi=dpi)
    return ExplorerView(
        settings=replace(settings, query=query),
        episode=episode,
        prediction=prediction,
        header=header,
        support=describe_support(episode, dataset.class_names),
        summary=error or describe_predictions(episode, prediction),
        query=describe_query(episode, prediction, query, dataset.class_names),
        png=png,
        error=error,
    )


# --------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------


def _widgets():
    import ipywidgets

    return ipywidgets


class EpisodeExplorer:
    """An ipywidgets explorer of episodes: controls on top, the episode below.

    ``datasets``: one :class:`LabelledImages` or ``{split name: dataset}``
    (e.g. meta-train and meta-test); ``classifiers``: one few-shot
    classifier or ``{name: classifier}``. Display it as the last expression
    of a cell. The attributes ``episode``, ``prediction`` and ``view`` hold
    what is on screen; the controls are attributes too (``ways``, ``seed``,
    ``resample``, ...), so code and tests can drive it like a student.
    """

    def __init__(
        self,
        datasets: LabelledImages | Mapping[str, LabelledImages],
        classifiers: FewShotClassifier | Mapping[str, FewShotClassifier] | None = None,
        *,
        ways: int = 5,
        shots: int = 1,
        queries: int = 5,
        seed: int = 0,
        method: str | None = None,
        max_ways: int = 20,
        max_shots: int = 10,
        max_queries: int = 10,
        group_label: str = "alphabet",
        dpi: int = 100,
    ) -> None:
        w = _widgets()
        if isinstance(datasets, LabelledImages):
            datasets = {datasets.name: datasets}
        if not datasets:
            raise ValueError("give the explorer at least one data set")
        if classifiers is not None and callable(classifiers) and not isinstance(classifiers, Mapping):
            classifiers = {classifier_name(classifiers): classifiers}
        self.datasets: dict[str, LabelledImages] = dict(datasets)
        self.classifiers: dict[str, FewShotClassifier] = dict(classifiers or {})
        if NO_METHOD in self.classifiers:
            raise ValueError(f"{NO_METHOD!r} is reserved for 'no method'")
        self.dpi = dpi
        self.max_ways = max_ways
        self._updating = False

        short = {"description_width": "initial"}
        self.split = w.Dropdown(options=list(self.datasets), description="split", style=short)
        self.group = w.Dropdown(options=[ANY], description=group_label, style=short)
        methods = [NO_METHOD, *self.classifiers]
        self.method = w.Dropdown(
            options=methods, value=method if method is not None else methods[min(1, len(methods) - 1)],
            description="method", style=short,
        )
        slider = dict(continuous_update=False, style=short, layout=w.Layout(width="220px"))
        self.ways = w.IntSlider(value=ways, min=1, max=max(max_ways, ways), description="N-way", **slider)
        self.shots = w.IntSlider(value=shots, min=1, max=max(max_shots, shots), description="K-shot", **slider)
        self.queries = w.IntSlider(value=queries, min=1, max=max(max_queries, queries), description="Q-query",
                                   **slider)
        self.seed = w.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", style=short,
                                     layout=w.Layout(width="140px"))
        self.resample = w.Button(description="resample", icon="refresh", tooltip="a new episode: seed + 1")
        self.query = w.IntSlider(value=0, min=0, max=max(ways * queries - 1, 0), description="query #",
                                 **slider)
        self.header = w.HTML()
        self.support = w.HTML()
        self.summary = w.HTML()
        self.query_details = w.HTML()
        self.image = w.Image(format="png")
        # shown at its own size (a VBox would stretch it to the full width, blurred)
        self.image.layout = w.Layout(align_self="flex-start", max_width="100%", height="auto")

        for widget, name in ((self.resample, "explorer-resample"), (self.image, "explorer-episode"),
                             (self.summary, "explorer-summary"), (self.support, "explorer-support"),
                             (self.header, "explorer-header"), (self.query_details, "explorer-query")):
            widget.add_class(name)
        self.widget = panel([
            w.HBox([self.split, self.group, self.method]),
            w.HBox([self.ways, self.shots, self.queries, self.seed, self.resample]),
            self.header, self.summary, self.support, self.image,
            w.HBox([self.query, self.query_details]),
        ], about="the episode explorer")
        self.widget.add_class("episode-explorer")

        self.episode: Episode | None = None
        self.prediction: Prediction | None = None
        self.view: ExplorerView | None = None
        self._sync_split()
        self.split.observe(self._on_split, "value")
        self.group.observe(self._on_group, "value")
        for control in (self.method, self.ways, self.shots, self.queries, self.seed, self.query):
            control.observe(self._on_value, "value")
        self.resample.on_click(self._on_resample)
        self.refresh()

    # -- wiring ------------------------------------------------------------

    @property
    def settings(self) -> ExplorerSettings:
        """The current values of the controls."""
        return ExplorerSettings(
            split=self.split.value, group=self.group.value or ANY, ways=self.ways.value,
            shots=self.shots.value, queries=self.queries.value, seed=self.seed.value,
            method=self.method.value, query=self.query.value,
        )

    def _sync_split(self) -> None:
        """Alphabet choices of the current split (hidden when it has none); N-way bounds."""
        dataset = self.datasets[self.split.value]
        options = group_options(dataset)
        self.group.options = options or [ANY]
        self.group.value = ANY
        self.group.layout.display = None if options else "none"
        self._sync_ways()

    def _sync_ways(self) -> None:
        dataset = self.datasets[self.split.value]
        classes = classes_of_group(dataset, self.group.value)
        available = dataset.num_classes if classes is None else len(classes)
        self.ways.max = max(1, min(self.max_ways, available))

    def _held(self, change_controls: Callable[[], None]) -> None:
        """Change controls without re-rendering for each, then render once."""
        self._updating = True
        try:
            change_controls()
        finally:
            self._updating = False
        self.refresh()

    def _on_split(self, _change) -> None:
        if not self._updating:
            self._held(self._sync_split)

    def _on_group(self, _change) -> None:
        if not self._updating:
            self._held(self._sync_ways)

    def _on_value(self, _change) -> None:
        if not self._updating:
            self.refresh()

    def _on_resample(self, _button=None) -> None:
        self.seed.value = self.seed.value + 1  # the observer re-renders

    def refresh(self) -> ExplorerView:
        """Render :func:`render_view` of the current values into the output widgets."""
        settings = self.settings
        last_query = max(settings.ways * settings.queries - 1, 0)
        if self.query.max != last_query or self.query.value > last_query:
            self._updating = True
            try:
                self.query.max = last_query  # clamps query.value
            finally:
                self._updating = False
            settings = self.settings
        view = render_view(self.datasets, self.classifiers, settings, dpi=self.dpi)
        self.view, self.episode, self.prediction = view, view.episode, view.prediction
        self.header.value = f"<b>{html.escape(view.header)}</b>"
        color = "#b00020" if view.error else "inherit"
        self.summary.value = f"<span style='color:{color}'>{html.escape(view.summary)}</span>"
        self.support.value = html.escape(view.support)
        self.query_details.value = view.query
        self.image.value = view.png
        self.image.width = str(png_size(view.png)[0]) if view.png else ""
        return view

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"EpisodeExplorer({list(self.datasets)}, methods={list(self.classifiers)}, {self.settings})"
