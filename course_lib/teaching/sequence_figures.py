"""Notebook 05's view of a sequence learner at work: the sequence up to step t and its prediction.
:func:`step_widget` also steps through VSML's and GPICL's traces in notebooks 07 and 08."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..sequence_learners import LabelSequence
from .plots import panel, show_in_output


def trace_figure(sequence: LabelSequence, probabilities: torch.Tensor, step: int, title: str | None = None):
    """The sequence up to ``step`` (image, label given with it) and the prediction at ``step``."""
    L, ways = probabilities.shape
    step = max(0, min(step, L - 1))
    fig = plt.figure(figsize=(max(6, 0.9 * L), 3.2))
    grid = fig.add_gridspec(2, L, height_ratios=[1, 1.1])
    for t in range(L):
        ax = fig.add_subplot(grid[0, t])
        ax.axis("off")
        if t > step:
            continue
        ax.imshow(sequence.images[t, 0].cpu().numpy(), cmap="gray_r")
        given = sequence.label_inputs[t]
        kind = "query" if bool(sequence.is_query[t]) else "support"
        right = int(probabilities[t].argmax()) == int(sequence.targets[t])
        ax.set_title(f"t={t} {kind}\nprev y={int(given.argmax()) if given.any() else '–'}\n"
                     f"y={int(sequence.targets[t])}", fontsize=8, color="green" if right else "red")
    ax = fig.add_subplot(grid[1, :])
    colours = ["tab:green" if k == int(sequence.targets[step]) else "tab:gray" for k in range(ways)]
    ax.bar(range(ways), probabilities[step].cpu().numpy(), color=colours)
    ax.set(ylim=(0, 1), xticks=range(ways), xlabel="class", ylabel="p(y_t = class)")
    ax.set_title(title or f"prediction at step {step} (true class in green)", fontsize=9)
    fig.tight_layout()
    return fig


def step_widget(render, steps: int, description: str = "step t"):
    """A slider over ``0..steps-1`` that shows ``render(t)`` (a matplotlib figure) below it."""
    import ipywidgets as widgets

    slider = widgets.IntSlider(value=0, min=0, max=steps - 1, description=description, continuous_update=False)
    output = widgets.Output()

    def show(_change=None) -> None:
        show_in_output(output, render(slider.value))

    slider.observe(show, names="value")
    show()
    return panel([slider, output], about=f"a slider over {description}")
