"""Notebook 06's figures and widget for learned optimizers: loss curves, and the explorer that reruns
the learned rule and the tuned baselines for a chosen optimizee and horizon."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch

from ..learned_optimizers import OptimizeeFamily, compare_optimizers, problem_batch
from .plots import panel, show_in_output

COLORS = {"LSTM (learned)": "tab:red", "SGD": "tab:blue", "momentum": "tab:orange", "RMSprop": "tab:green",
          "Adam": "tab:purple"}


def plot_mean_losses(curves: dict[str, torch.Tensor], ax=None, title: str | None = None,
                     trained_horizon: int | None = None):
    """Mean loss over the problems against the step, one line per optimizer, log scale."""
    if ax is None:
        ax = plt.subplots(figsize=(5, 3.4))[1]
    for name, losses in curves.items():
        mean = torch.nan_to_num(losses, nan=float("inf")).mean(dim=1)
        ax.plot(mean.numpy(), label=name, color=COLORS.get(name), lw=2.2 if name == "LSTM (learned)" else 1.4)
    if trained_horizon is not None:
        ax.axvline(trained_horizon, color="gray", ls=":", lw=1, label="meta-training horizon")
    ax.set(yscale="log", xlabel="optimizer step t", ylabel="mean loss f(θ_t)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax


@dataclass
class Setting:
    """One choice of the widget's dropdown: a family, its learned rule, tuned baselines."""

    family: OptimizeeFamily
    rule: object  # an LSTMOptimizer (or any update rule)
    learning_rates: dict[str, float]
    rule_name: str = "LSTM (learned)"


def compare_trajectories(settings: dict[str, Setting], optimizee: str, horizon: int, instances: int = 8,
                         seed: int = 12345) -> dict:
    """The pure function behind the widget: the learned rule and each tuned baseline of
    ``settings[optimizee]`` for ``horizon`` steps on ``instances`` fresh problems (seed ``seed``),
    ``{"optimizee", "horizon", "curves": {name: [horizon+1, instances]}}``."""
    if optimizee not in settings:
        raise KeyError(f"unknown optimizee {optimizee!r}; choose one of {list(settings)}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    setting = settings[optimizee]
    problems = problem_batch(setting.family, instances, seed)
    curves = compare_optimizers({setting.rule_name: setting.rule}, setting.learning_rates,
                                setting.family, problems, horizon)
    return {"optimizee": optimizee, "horizon": horizon, "curves": curves}


def plot_trajectories(result: dict, axes=None, trained_horizon: int | None = None):
    """One panel per optimizer: every problem's loss (thin) and the mean (thick), a shared log axis."""
    curves = result["curves"]
    if axes is None:
        axes = plt.subplots(1, len(curves), figsize=(2.6 * len(curves), 2.8), sharey=True, squeeze=False)[1][0]
    for ax, (name, losses) in zip(axes, curves.items()):
        color = COLORS.get(name, "black")
        steps = torch.arange(losses.shape[0])
        finite = torch.nan_to_num(losses, nan=float("inf"))
        ax.plot(steps, finite.numpy(), color=color, alpha=0.25, lw=0.8)
        ax.plot(steps, finite.mean(dim=1).numpy(), color=color, lw=2.2)
        ax.set(yscale="log", xlabel="step")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
        if trained_horizon is not None and trained_horizon < losses.shape[0] - 1:
            ax.axvline(trained_horizon, color="gray", ls=":", lw=1)
    axes[0].set_ylabel("loss f(θ_t)")
    fig = axes[0].figure
    fig.suptitle(f"{result['optimizee']}: {result['horizon']} steps, "
                 f"{next(iter(curves.values())).shape[1]} fresh problems", fontsize=10)
    fig.tight_layout()
    return fig


def trajectory_explorer(settings: dict[str, Setting], horizons: tuple[int, int, int] = (20, 500, 20),
                        value: int = 100, instances: int = 8):
    """A dropdown (optimizee) and a slider (horizon) around :func:`compare_trajectories`;
    ``box.last_result`` holds the latest result."""
    import ipywidgets as widgets

    dropdown = widgets.Dropdown(options=list(settings), description="optimizee")
    slider = widgets.IntSlider(value=value, min=horizons[0], max=horizons[1], step=horizons[2],
                               description="horizon", continuous_update=False)
    output = widgets.Output()
    box = panel([widgets.HBox([dropdown, slider]), output], about="optimizer trajectories by optimizee and horizon")

    def refresh(*_):
        box.last_result = compare_trajectories(settings, dropdown.value, slider.value, instances=instances)
        show_in_output(output, plot_trajectories(box.last_result))

    dropdown.observe(refresh, names="value")
    slider.observe(refresh, names="value")
    refresh()
    return box
