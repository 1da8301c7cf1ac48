"""Figures shared across notebooks: image grids, episodes, learning curves, results tables, widget panels.

Introduced in notebook 00 (image grids) and notebook 01 (learning curves).
Every function draws into a new figure (or the ``ax`` you pass) and returns
it; the notebook decides when to show it.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Sequence

import matplotlib.pyplot as plt
import torch

from ..episodes import Episode
from ..runs import History


def show_images(images: torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 10, size: float = 1.0,
                suptitle: str | None = None):
    """A grid of ``[n, C, H, W]`` images in [0, 1] (ink bright, shown dark on white)."""
    images = images.detach().cpu()
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            _show(ax, images[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _show(ax, image: torch.Tensor) -> None:
    """Draw one ``[C, H, W]`` image (grey or RGB) in [0, 1], ink dark on white."""
    picture = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
    ax.imshow(picture.numpy(), cmap="gray_r", vmin=0, vmax=1)


def class_name(episode: Episode, label: int, class_names: Sequence[str] | None = None) -> str:
    """The name of the original class behind episode label ``label`` (``"class 17"`` without names)."""
    original = int(episode.classes[label])
    return class_names[original] if class_names is not None else f"class {original}"


def plot_episode(episode: Episode, class_names: Sequence[str] | None = None,
                 predictions: torch.Tensor | None = None, size: float = 0.9, title: str | None = None):
    """Support set (one row per class, labelled) beside the query set.

    With ``predictions`` (one label per query image), each query is framed
    green when right and red when wrong.
    """
    ways, shots = episode.ways, episode.shots
    queries = episode.query_y.shape[0] // ways
    support, query = episode.support_x.detach().cpu(), episode.query_x.detach().cpu()
    columns = shots + 1 + queries  # support, a gap, queries
    fig, axes = plt.subplots(ways, columns, figsize=(size * columns, size * ways), squeeze=False)
    for row in range(ways):
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < shots:
                _show(ax, support[row * shots + col])
                if col == 0:
                    name = class_name(episode, row, class_names).replace("_", " ").replace("/character", " #")
                    ax.set_ylabel(f"{row}: {name}", rotation=0, ha="right", va="center", fontsize=8)
            elif col > shots:
                q = row * queries + (col - shots - 1)
                _show(ax, query[q])
                if predictions is not None:
                    right = int(predictions[q]) == int(episode.query_y[q])
                    for spine in ax.spines.values():
                        spine.set_visible(True)
                        spine.set_color("tab:green" if right else "tab:red")
                        spine.set_linewidth(2)
    axes[0][0].set_title("support", fontsize=8, loc="left")
    if queries:
        axes[0][shots + 1].set_title("query", fontsize=8, loc="left")
    fig.suptitle(title or f"{ways}-way {shots}-shot episode ({queries} queries per class)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_history(history: History, metrics: Sequence[str], ax=None, labels: Sequence[str] | None = None,
                 logy: bool = False, title: str | None = None):
    """Learning curves of ``metrics`` against the training step."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for i, name in enumerate(metrics):
        steps, values = history[name]
        marker = "o" if len(steps) < 30 else None
        ax.plot(steps, values, label=labels[i] if labels else name, marker=marker, ms=3)
    ax.set_xlabel("step")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def panel(children, about: str):
    """``ipywidgets.VBox(children)`` whose plain-text form says what it is.

    Where widgets cannot be drawn (GitHub, a terminal) a VBox shows a dump of its children; a
    panel shows ``[interactive widget: <about>; run the notebook to use it]`` instead.
    """
    return _panel_class()(children, about=about)


@functools.cache
def _panel_class():
    import ipywidgets as widgets

    class Panel(widgets.VBox):
        def __init__(self, children=(), *, about: str, **kwargs):
            super().__init__(children, **kwargs)
            self.about = about

        def __repr__(self) -> str:
            return f"[interactive widget: {self.about}; run the notebook to use it]"

    return Panel


def show_in_output(output, fig) -> None:
    """Replace what an ipywidgets ``Output`` shows with ``fig``, then close ``fig`` (else matplotlib
    draws it a second time below the cell)."""
    from IPython.display import display

    with output:
        output.clear_output(wait=True)
        display(fig)
    plt.close(fig)


def plot_results_table(table, ax=None, title: str | None = None, legend_outside: bool = True):
    """A ``baselines.ResultsTable`` as grouped bars: one group per setting, one bar per method.

    Bars are mean accuracies in %, whiskers their 95% CIs, and a dotted line under each group
    marks chance, ``1/N`` for a setting named ``"N-way K-shot"``. A cell the table lacks is left empty.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.6))
    methods, settings = table.methods, table.settings
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        cells = [(j, table[method, s]) for j, s in enumerate(settings) if (method, s) in table]
        offset = (i - (len(methods) - 1) / 2) * width
        ax.bar([j + offset for j, _ in cells], [100 * r.mean for _, r in cells], width,
               yerr=[100 * r.ci95 for _, r in cells], capsize=2, label=method)
    for j, setting in enumerate(settings):
        ways = re.match(r"(\d+)-way", setting)
        if ways:
            ax.hlines(100 / int(ways.group(1)), j - 0.45, j + 0.45, colors="black", linestyles=":")
    ax.set_xticks(range(len(settings)), settings)
    ax.set_ylabel("query accuracy (%)")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    if legend_outside:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=9)
    return ax
