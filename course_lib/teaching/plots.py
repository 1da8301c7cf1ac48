"""Figures shared across notebooks: image grids, episodes, learning curves.

Introduced in notebook 00 (image grids) and notebook 01 (learning curves).
Every function draws into a new figure (or the ``ax`` you pass) and returns
it; the notebook decides when to show it.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch

from ..episodes import Episode
from ..runs import History


def show_images(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    size: float = 1.0,
    suptitle: str | None = None,
):
    """A grid of ``[n, C, H, W]`` images in [0, 1] (ink bright, shown dark on white)."""
    images = images.detach().cpu()
    n = images.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * (1.25 if titles else 1)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_as_picture(images[i]), cmap="gray_r", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def _as_picture(image: torch.Tensor):
    """[C, H, W] tensor -> [H, W] or [H, W, C] numpy array for imshow."""
    picture = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
    return picture.numpy()


def plot_episode(
    episode: Episode,
    class_names: Sequence[str] | None = None,
    predictions: torch.Tensor | None = None,
    size: float = 0.9,
    title: str | None = None,
):
    """Support set (one row per class, labelled) beside the query set.

    With ``predictions`` (one label per query image), each query is framed
    green when right and red when wrong.
    """
    ways, shots = episode.ways, episode.shots
    queries = episode.query_y.shape[0] // ways
    support = episode.support_x.detach().cpu()
    query = episode.query_x.detach().cpu()
    fig, axes = plt.subplots(
        ways, shots + 1 + queries, figsize=(size * (shots + 1 + queries), size * ways), squeeze=False
    )
    for row in range(ways):
        name = class_names[int(episode.classes[row])] if class_names is not None else f"class {int(episode.classes[row])}"
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < shots:
                ax.imshow(_as_picture(support[row * shots + col]), cmap="gray_r", vmin=0, vmax=1)
                if col == 0:
                    ax.set_ylabel(f"{row}: {name}", rotation=0, ha="right", va="center", fontsize=7)
            elif col > shots:
                q = row * queries + (col - shots - 1)
                ax.imshow(_as_picture(query[q]), cmap="gray_r", vmin=0, vmax=1)
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


def plot_history(
    history: History,
    metrics: Sequence[str],
    ax=None,
    labels: Sequence[str] | None = None,
    logy: bool = False,
    title: str | None = None,
):
    """Learning curves of ``metrics`` against the training step."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for i, name in enumerate(metrics):
        steps, values = history[name]
        ax.plot(steps, values, label=labels[i] if labels else name, marker="o" if len(steps) < 30 else None, ms=3)
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

    A viewer that cannot draw widgets (GitHub, a terminal, a notebook's text
    output) shows a widget's plain text, which for a VBox is a dump such as
    ``VBox(children=(IntSlider(value=0, ...``. A panel shows
    ``[interactive widget: <about>; run the notebook to use it]`` instead.
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
    """Replace what an ipywidgets ``Output`` shows with ``fig``, then close ``fig``.

    The widgets of later notebooks redraw through this; closing the figure
    keeps matplotlib from drawing it a second time below the cell.
    """
    from IPython.display import display

    with output:
        output.clear_output(wait=True)
        display(fig)
    plt.close(fig)
