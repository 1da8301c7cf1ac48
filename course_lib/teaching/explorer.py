"""The episode explorer: look inside few-shot tasks and at what a learner predicts (notebooks 02 onwards).

Pure functions of plain values (:func:`sample_episode`, :func:`predict_episode`, the ``describe_*``
texts, :func:`episode_figure`) are composed by :func:`render_view` into everything the widget shows;
:class:`EpisodeExplorer` only reads its controls and writes :func:`render_view`'s result into its output
widgets. "resample" adds one to the seed, so every picture is a function of the values on screen.

A few-shot classifier is anything with the course's interface ``predict(support_x, support_y, query_x)``
returning logits ``[n_query, ways]`` or labels ``[n_query]``; with ``score_kind = "negative squared
distance"`` (the baselines of :mod:`course_lib.baselines`) its scores are shown as distances.

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
from .plots import class_name, panel, plot_episode

ANY = "any"
NO_METHOD = "(none)"
MAX_WAYS, MAX_SHOTS, MAX_QUERIES = 20, 10, 10  # the sliders' ranges

FewShotClassifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def group_options(dataset: LabelledImages) -> list[str] | None:
    """``["any", <groups sorted>]`` for a dataset with ``class_groups`` (alphabets), else None."""
    return None if dataset.class_groups is None else [ANY, *sorted(set(dataset.class_groups))]


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


def sample_episode(dataset: LabelledImages, ways: int, shots: int, queries: int, seed: int,
                   group: str | None = None) -> Episode:
    """The episode the explorer shows for these values, from ``group`` (an alphabet) or the whole dataset."""
    sampler = EpisodeSampler(dataset, ways=ways, shots=shots, queries=queries,
                             classes=classes_of_group(dataset, group))
    return sampler.sample(torch.Generator().manual_seed(seed))


def queries_per_class(episode: Episode) -> int:
    return episode.query_y.shape[-1] // episode.ways


@dataclass(frozen=True)
class Prediction:
    """What a classifier said about one episode's queries (all on the CPU).

    ``labels``: ``[n_query]``; ``scores``: its raw output ``[n_query, ways]``
    (None if it returned labels); ``score_kind``: ``"logits"``,
    ``"negative squared distance"`` or ``"labels"``.
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
    output = torch.as_tensor(classifier(episode.support_x, episode.support_y, episode.query_x)).detach().cpu()
    n_query = episode.query_y.shape[0]
    if output.shape == (n_query, episode.ways):
        scores, labels = output.float(), output.argmax(dim=-1)
        kind = getattr(classifier, "score_kind", "logits")
    elif output.shape == (n_query,) and not output.is_floating_point():
        scores, labels, kind = None, output.long(), "labels"
    else:
        raise ValueError(f"the classifier returned shape {tuple(output.shape)}; expected logits "
                         f"[{n_query}, {episode.ways}] or integer labels [{n_query}]")
    correct = labels == episode.query_y.cpu()
    return Prediction(method or classifier_name(classifier), labels, scores, kind, correct)


def classifier_name(classifier) -> str:
    return getattr(classifier, "__name__", None) or type(classifier).__name__


def digit_names(class_names) -> bool:
    """True for digit data sets (class names "0" to "9"), where an episode label beside a class name
    would read like two digits ("2: 7"), so the explorer calls each class by its digit instead."""
    return class_names is not None and all(len(name) == 1 and name.isdigit() for name in class_names)


def label_text(episode: Episode, label: int, class_names=None) -> str:
    """How the explorer writes episode label ``label``: the digit itself on digit data sets, else the label."""
    return class_name(episode, label, class_names) if digit_names(class_names) else str(label)


def describe_episode(episode: Episode, class_names=None, dataset_name: str = "", group: str | None = None,
                     seed: int | None = None) -> str:
    """One line of plain text: where the episode comes from and its size."""
    parts = [p for p in (dataset_name, f"alphabet {group}" if group not in (None, ANY) else "") if p]
    size = f"{episode.ways}-way {episode.shots}-shot, {queries_per_class(episode)} queries per class"
    return " · ".join(parts + [size]) + (f", seed {seed}" if seed is not None else "")


def describe_support(episode: Episode, class_names=None) -> str:
    """``"support classes: 0 = Korean/character05, 1 = ..."`` (label = row of the grid);
    ``"support classes: digits 7, 2, ..."`` on digit data sets."""
    if digit_names(class_names):
        return "support classes: digits " + ", ".join(label_text(episode, k, class_names) for k in range(episode.ways))
    return "support classes: " + ", ".join(f"{k} = {class_name(episode, k, class_names)}"
                                           for k in range(episode.ways))


def describe_predictions(episode: Episode, prediction: Prediction | None) -> str:
    """Per-episode accuracy as text: ``"pixel NN: 21 of 25 queries right = 84.0 % (chance 20.0 %)"``."""
    if prediction is None:
        return "no method chosen: pick one to see its predictions on the queries"
    right, total = int(prediction.correct.sum()), prediction.correct.numel()
    return (f"{prediction.method}: {right} of {total} queries right = {100 * right / total:.1f} % "
            f"(chance {100 / episode.ways:.1f} %)")


def describe_query(episode: Episode, prediction: Prediction | None, index: int, class_names=None) -> str:
    """An HTML table for one query: per class, its score (distance or logit) and probability."""
    n_query = episode.query_y.shape[0]
    if not 0 <= index < n_query:
        raise IndexError(f"query {index} does not exist; this episode has queries 0..{n_query - 1}")
    true = int(episode.query_y[index])
    digits = digit_names(class_names)
    labels = [label_text(episode, k, class_names) for k in range(episode.ways)]
    names = [html.escape(class_name(episode, k, class_names)) for k in range(episode.ways)]
    truth = f"true digit {labels[true]}" if digits else f"true class {true} ({names[true]})"
    head = f"<b>query {index}</b>: {truth}"
    if prediction is None:
        return head
    predicted = int(prediction.labels[index])
    head += f", predicted {labels[predicted]} ({'right' if predicted == true else 'wrong'})"
    if prediction.scores is None:
        return head + "<br>this method returns labels only (no scores)"
    distances, probabilities = prediction.distances, prediction.probabilities
    scores = distances if distances is not None else prediction.scores
    rows = []
    for k in range(episode.ways):
        style = ' style="font-weight:bold"' if k == predicted else ""
        marks = ("✓ " if k == true else "") + ("← predicted" if k == predicted else "")
        who = f"<td>{labels[k]}</td>" if digits else f"<td>{k}</td><td>{names[k]}</td>"
        rows.append(f"<tr{style}>{who}<td>{float(scores[index, k]):.3g}</td>"
                    f"<td>{float(probabilities[index, k]):.3f}</td><td>{marks}</td></tr>")
    columns = "<th>digit</th>" if digits else "<th>label</th><th>class</th>"
    return (f"{head}<table class='explorer-query-table'><tr>{columns}"
            f"<th>{'logit' if distances is None else 'squared distance'}</th><th>softmax probability</th>"
            f"<th></th></tr>{''.join(rows)}</table>")


def episode_figure(episode: Episode, class_names=None, prediction: Prediction | None = None,
                   selected: int | None = None, title: str | None = None, size: float = 0.9):
    """:func:`~course_lib.teaching.plots.plot_episode`, plus the predicted label under each query.

    Queries are framed green (right) or red (wrong); the ``selected`` query's label is boxed in blue.
    On digit data sets the rows and predictions are named by the digit (:func:`label_text`).
    """
    fig = plot_episode(episode, class_names=class_names,
                       predictions=None if prediction is None else prediction.labels, size=size, title=title)
    shots, queries = episode.shots, queries_per_class(episode)
    if digit_names(class_names):
        for row in range(episode.ways):
            fig.axes[row * (shots + 1 + queries)].set_ylabel(f"digit {label_text(episode, row, class_names)}",
                                                             rotation=0, ha="right", va="center", fontsize=8)
        fig.tight_layout()  # again, for the longer row labels
    for q in range(episode.query_y.shape[0]):
        text, style = None, {}
        if prediction is not None:
            text = f"→ {label_text(episode, int(prediction.labels[q]), class_names)}"
            style = {"color": "tab:green" if prediction.correct[q] else "tab:red"}
        if q == selected:
            text = f"[q{q}] {text or ''}".strip()
            style["bbox"] = {"boxstyle": "round,pad=0.15", "fc": "lightblue", "ec": "tab:blue"}
        if text:
            ax = fig.axes[(q // queries) * (shots + 1 + queries) + shots + 1 + q % queries]
            ax.set_xlabel(text, fontsize=8, labelpad=1, **style)
    return fig


def figure_png(fig, dpi: int = 72) -> bytes:
    """The figure as PNG bytes; the figure is closed (it is not also shown inline)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def png_width(png: bytes) -> int:
    """The width in pixels, read from the PNG header."""
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or len(png) < 24:
        raise ValueError("not a PNG image")
    return int.from_bytes(png[16:20], "big")


def dropdown_width(options, description: str) -> str:
    """A CSS width that shows the longest option and the description whole (ipywidgets cuts them off)."""
    return f"{max(map(len, options)) + len(description) + 6}ch"


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


def render_view(datasets: Mapping[str, LabelledImages], classifiers: Mapping[str, FewShotClassifier],
                settings: ExplorerSettings, dpi: int = 100, figure: bool = True) -> ExplorerView:
    """Sample, predict, describe and draw: a pure function of ``settings``.

    Problems a student can cause from the controls (too many ways for an alphabet, a classifier
    that fails on these images) come back as ``error`` text instead of exceptions.
    """
    dataset, names = datasets[settings.split], datasets[settings.split].class_names
    header = f"{settings.split} ({dataset.name})"
    try:
        episode = sample_episode(dataset, settings.ways, settings.shots, settings.queries, settings.seed,
                                 settings.group)
    except ValueError as error:
        where = f"alphabet {settings.group} of " if settings.group not in (None, ANY) else ""
        message = f"cannot draw this episode from {where}{settings.split}: {error}"
        return ExplorerView(settings, None, None, header, "", message, "", b"", error=message)
    prediction, error = None, None
    if settings.method != NO_METHOD:
        try:
            prediction = predict_episode(classifiers[settings.method], episode, settings.method)
        except Exception as failure:  # any learner may fail on any data set: say so, keep the episode
            error = f"{settings.method} failed on this episode: {type(failure).__name__}: {failure}"
    query = min(max(settings.query, 0), episode.query_y.shape[0] - 1)
    png = figure_png(episode_figure(episode, names, prediction, selected=query), dpi=dpi) if figure else b""
    return ExplorerView(
        replace(settings, query=query), episode, prediction,
        header=describe_episode(episode, names, header, settings.group, settings.seed),
        support=describe_support(episode, names),
        summary=error or describe_predictions(episode, prediction),
        query=describe_query(episode, prediction, query, names), png=png, error=error,
    )


class EpisodeExplorer:
    """An ipywidgets explorer of episodes: controls on top, the episode below.

    ``datasets``: one :class:`LabelledImages` or ``{split name: dataset}``; ``classifiers``: one
    few-shot classifier or ``{name: classifier}``. Display it as the last expression of a cell.
    ``episode``, ``prediction`` and ``view`` hold what is on screen; the controls are attributes
    too (``ways``, ``seed``, ``resample``, ...), so code and tests can drive it like a student.
    """

    def __init__(self, datasets: LabelledImages | Mapping[str, LabelledImages],
                 classifiers: FewShotClassifier | Mapping[str, FewShotClassifier] | None = None, *,
                 ways: int = 5, shots: int = 1, queries: int = 5, seed: int = 0,
                 method: str | None = None) -> None:
        import ipywidgets as w

        if isinstance(datasets, LabelledImages):
            datasets = {datasets.name: datasets}
        if not datasets:
            raise ValueError("give the explorer at least one data set")
        if callable(classifiers) and not isinstance(classifiers, Mapping):
            classifiers = {classifier_name(classifiers): classifiers}
        self.datasets: dict[str, LabelledImages] = dict(datasets)
        self.classifiers: dict[str, FewShotClassifier] = dict(classifiers or {})
        if NO_METHOD in self.classifiers:
            raise ValueError(f"{NO_METHOD!r} is reserved for 'no method'")
        self._updating = False

        short = {"description_width": "initial"}
        self.split = w.Dropdown(options=list(self.datasets), description="split", style=short,
                                layout=w.Layout(width=dropdown_width(self.datasets, "split")))
        self.group = w.Dropdown(options=[ANY], description="alphabet", style=short)
        methods = [NO_METHOD, *self.classifiers]
        self.method = w.Dropdown(options=methods, description="method", style=short,
                                 value=method if method is not None else methods[min(1, len(methods) - 1)],
                                 layout=w.Layout(width=dropdown_width(methods, "method")))

        def slider(description: str, value: int, least: int, most: int):
            return w.IntSlider(value=value, min=least, max=max(most, value), description=description,
                               continuous_update=False, style=short, layout=w.Layout(width="220px"))

        self.ways = slider("N-way", ways, 1, MAX_WAYS)
        self.shots = slider("K-shot", shots, 1, MAX_SHOTS)
        self.queries = slider("Q-query", queries, 1, MAX_QUERIES)
        self.query = slider("query #", 0, 0, 0)  # its range follows ways x queries
        self.seed = w.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", style=short,
                                     layout=w.Layout(width="140px"))
        self.resample = w.Button(description="resample", icon="refresh", tooltip="a new episode: seed + 1")
        self.header, self.support, self.summary, self.query_details = w.HTML(), w.HTML(), w.HTML(), w.HTML()
        # shown at its own size (a VBox would stretch it to the full width, blurred)
        self.image = w.Image(format="png")
        self.image.layout = w.Layout(align_self="flex-start", max_width="100%", height="auto")
        for name, widget in dict(resample=self.resample, episode=self.image, header=self.header,
                                 summary=self.summary, support=self.support, query=self.query_details).items():
            widget.add_class(f"explorer-{name}")
        self.widget = panel([
            w.HBox([self.split, self.group, self.method], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.ways, self.shots, self.queries, self.seed, self.resample],
                   layout=w.Layout(flex_flow="row wrap")),
            self.header, self.summary, self.support, self.image,
            w.HBox([self.query, self.query_details]),
        ], about="the episode explorer")
        self.widget.add_class("episode-explorer")

        self.split.observe(lambda _: self._changed(new_split=True), "value")
        for control in (self.group, self.method, self.ways, self.shots, self.queries, self.seed, self.query):
            control.observe(lambda _: self._changed(), "value")
        self.resample.on_click(self._on_resample)
        self._changed(new_split=True)

    @property
    def settings(self) -> ExplorerSettings:
        """The current values of the controls."""
        return ExplorerSettings(self.split.value, self.group.value or ANY, self.ways.value, self.shots.value,
                                self.queries.value, self.seed.value, self.method.value, self.query.value)

    def _changed(self, new_split: bool = False) -> None:
        """After a control changes: bound the controls that depend on it (the split's alphabets, N-way,
        query #) without re-rendering for each, then render once."""
        if self._updating:
            return
        self._updating = True
        try:
            dataset = self.datasets[self.split.value]
            if new_split:  # its alphabets, hidden when it has none
                options = group_options(dataset)
                self.group.options = options or [ANY]
                self.group.layout.width = dropdown_width(self.group.options, "alphabet")
                self.group.value = ANY
                self.group.layout.display = None if options else "none"
            classes = classes_of_group(dataset, self.group.value)
            self.ways.max = max(1, min(MAX_WAYS, dataset.num_classes if classes is None else len(classes)))
            self.query.max = max(self.ways.value * self.queries.value - 1, 0)  # clamps query.value
        finally:
            self._updating = False
        self.refresh()

    def _on_resample(self, _button=None) -> None:
        self.seed.value = self.seed.value + 1  # the observer re-renders

    def refresh(self) -> ExplorerView:
        """Render :func:`render_view` of the current values into the output widgets."""
        view = render_view(self.datasets, self.classifiers, self.settings)
        self.view, self.episode, self.prediction = view, view.episode, view.prediction
        self.header.value = f"<b>{html.escape(view.header)}</b>"
        color = "#b00020" if view.error else "inherit"
        self.summary.value = f"<span style='color:{color}'>{html.escape(view.summary)}</span>"
        self.support.value = html.escape(view.support)
        self.query_details.value = view.query
        self.image.value = view.png
        self.image.width = str(png_width(view.png)) if view.png else ""
        return view

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"EpisodeExplorer({list(self.datasets)}, methods={list(self.classifiers)}, {self.settings})"
