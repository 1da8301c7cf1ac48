"""Notebook 04's figures: the inner loop step by step (and its widget), and Finn et al.'s sinusoid figure.

:func:`inner_loop_trace` runs one episode's inner loop and records the query
set after every step (a pure function); :func:`inner_loop_figure` draws one
step of it and :func:`inner_loop_widget` puts a slider over the steps.
:func:`sinusoid_figure` is the first figure of Finn et al. 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..maml import (Params, classification_loss, conv4_forward, inner_adapt, mlp_forward, query_outputs,
                    regression_loss)
from . import plots


@dataclass
class InnerLoopTrace:
    """One episode's inner loop, step by step (index s = after s gradient steps on the support set)."""

    support_loss: list[float]
    query_loss: list[float]
    query_accuracy: list[float] | None  # None for regression
    query_outputs: torch.Tensor  # [steps + 1, Q, ways] class probabilities, or [steps + 1, Q, 1] predictions

    @property
    def steps(self) -> int:
        return len(self.query_loss) - 1

    def predictions(self, step: int) -> torch.Tensor:
        """Predicted classes of the queries after ``step`` steps (classification)."""
        return self.query_outputs[step].argmax(-1)


def inner_loop_trace(params: Params, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                     query_y: torch.Tensor, steps: int, inner_lr: float, *, forward=conv4_forward,
                     regression: bool = False, bn: str = "query", lrs: Params | None = None,
                     adapt_keys: list[str] | None = None) -> InnerLoopTrace:
    """Adapt ``params`` on one support set for ``steps`` steps and record the query set after each step.

    A pure function of its inputs (no state, no randomness): the widget of
    notebook 04 only indexes its result.
    """
    loss_fn = regression_loss(forward) if regression else classification_loss(forward)
    fast = {k: v.detach() for k, v in params.items()}
    support_losses, query_losses, accuracies, outputs = [], [], [], []
    with torch.no_grad():
        for s in range(steps + 1):
            if s > 0:
                fast = inner_adapt(fast, support_x, support_y, 1, inner_lr, loss_fn, first_order=True,
                                   per_param_lr=lrs, adapt_keys=adapt_keys)
            support_losses.append(float(loss_fn(fast, support_x, support_y)))  # support statistics, as in training
            if regression:
                out = forward(fast, query_x)
                query_losses.append(float(F.mse_loss(out, query_y)))
                outputs.append(out.cpu())
            else:
                out = query_outputs(forward, fast, support_x, query_x, bn)
                query_losses.append(float(F.cross_entropy(out, query_y)))
                accuracies.append(float((out.argmax(-1) == query_y).float().mean()))
                outputs.append(out.softmax(-1).cpu())
    return InnerLoopTrace(support_losses, query_losses, None if regression else accuracies, torch.stack(outputs))


def _picture(image: torch.Tensor):
    return image[0].cpu().numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).cpu().numpy()


def inner_loop_figure(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                      query_y: torch.Tensor, traces: dict[str, InnerLoopTrace], step: int, per_class: int = 2):
    """Support set, then per model the shown queries after ``step`` steps (green: right, red: wrong), and the
    query loss and accuracy of every model against the step (a dotted line marks ``step``).

    Shows ``per_class`` queries of each class; the accuracies are over all queries.
    """
    import matplotlib.pyplot as plt

    names = list(traces)
    total = max(t.steps for t in traces.values())
    step = max(0, min(step, total))
    ways = int(support_y.max()) + 1
    shown = torch.cat([torch.nonzero(query_y == k).flatten()[:per_class] for k in range(ways)])
    columns = max(len(support_x), len(shown))
    fig = plt.figure(figsize=(max(7.0, 0.62 * columns + 4.6), 1.45 * (1 + len(names)) + 0.4))
    grid = fig.add_gridspec(1 + len(names), columns + 1 + 6, wspace=0.08, hspace=0.9)
    for j in range(len(support_x)):
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(_picture(support_x[j]), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"y={int(support_y[j])}", fontsize=7)
        if j == 0:
            ax.set_ylabel("support", fontsize=8)
    for row, name in enumerate(names, start=1):
        trace = traces[name]
        s = min(step, trace.steps)
        predicted = trace.predictions(s)
        for j, q in enumerate(shown.tolist()):
            ax = fig.add_subplot(grid[row, j])
            ax.imshow(_picture(query_x[q]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            right = int(predicted[q]) == int(query_y[q])
            for spine in ax.spines.values():
                spine.set_color("tab:green" if right else "tab:red")
                spine.set_linewidth(2.5)
            ax.set_title(f"→{int(predicted[q])}", fontsize=7, color="tab:green" if right else "tab:red")
            if j == 0:
                summary = f"{name}: query loss {trace.query_loss[s]:.2f}"
                if trace.query_accuracy is not None:
                    summary += f", {100 * trace.query_accuracy[s]:.0f} % of all {len(query_y)} queries right"
                ax.annotate(summary, xy=(0, 1.42), xycoords="axes fraction", fontsize=8, ha="left", va="bottom")
    loss_ax = fig.add_subplot(grid[: (1 + len(names)) // 2 or 1, columns + 2:])
    acc_ax = fig.add_subplot(grid[(1 + len(names)) // 2 or 1:, columns + 2:])
    for name in names:
        trace = traces[name]
        line, = loss_ax.plot(range(trace.steps + 1), trace.query_loss, marker="o", ms=3, label=name)
        if trace.query_accuracy is not None:
            acc_ax.plot(range(trace.steps + 1), [100 * a for a in trace.query_accuracy], marker="o", ms=3,
                        color=line.get_color(), label=f"{name}: {100 * trace.query_accuracy[min(step, trace.steps)]:.0f} %")
    for ax in (loss_ax, acc_ax):
        ax.axvline(step, color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    loss_ax.set_ylabel("query loss", fontsize=8)
    acc_ax.set_ylabel("query accuracy %", fontsize=8)
    acc_ax.set_xlabel("inner step", fontsize=8)
    acc_ax.set_ylim(0, 102)
    acc_ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"after {step} inner step{'s' if step != 1 else ''}", fontsize=9)
    return fig


def inner_loop_widget(support_x, support_y, query_x, query_y, traces: dict[str, InnerLoopTrace],
                      per_class: int = 2):
    """A slider over the inner steps 0..S that redraws :func:`inner_loop_figure` (needs ipywidgets)."""
    import ipywidgets as widgets

    total = max(t.steps for t in traces.values())
    slider = widgets.IntSlider(value=0, min=0, max=total, description="inner step", continuous_update=False)
    output = widgets.Output()

    def show(_change=None) -> None:
        figure = inner_loop_figure(support_x, support_y, query_x, query_y, traces, slider.value, per_class=per_class)
        plots.show_in_output(output, figure)

    slider.observe(show, names="value")
    show()
    box = plots.panel([slider, output], about="a slider over the inner steps")
    box.slider = slider  # for tests and for setting the step from code
    return box


def sinusoid_predictions(params: Params, support_x: torch.Tensor, support_y: torch.Tensor, grid: torch.Tensor,
                         steps_list=(0, 1, 10), inner_lr: float = 0.01) -> dict[int, torch.Tensor]:
    """Predictions on ``grid [M, 1]`` after each number of steps on one task's support set (for the figure)."""
    loss_fn = regression_loss(mlp_forward)
    params = {k: v.detach() for k, v in params.items()}
    out = {}
    with torch.no_grad():
        for steps in steps_list:
            fast = inner_adapt(params, support_x, support_y, steps, inner_lr, loss_fn, first_order=True)
            out[steps] = mlp_forward(fast, grid)
    return out


def sinusoid_figure(tasks: list[tuple], models: dict[str, Params], steps_list=(0, 1, 10), inner_lr: float = 0.01,
                    grid_points: int = 200):
    """Finn et al.'s figure: for each task (amplitude, phase, support_x, support_y), one panel per model with
    the true sine, the K support points and the predictions after each number of steps in ``steps_list``."""
    import matplotlib.pyplot as plt

    grid = torch.linspace(-5, 5, grid_points).unsqueeze(-1)
    fig, axes = plt.subplots(len(tasks), len(models), figsize=(4.6 * len(models), 2.8 * len(tasks)),
                             squeeze=False, sharey="row")
    colours = plt.cm.viridis(torch.linspace(0.15, 0.85, len(steps_list)).tolist())
    for row, (amplitude, phase, sx, sy) in enumerate(tasks):
        for col, (name, params) in enumerate(models.items()):
            ax = axes[row][col]
            curves = sinusoid_predictions(params, sx, sy, grid, steps_list, inner_lr)
            ax.plot(grid[:, 0], amplitude * torch.sin(grid[:, 0] - phase), color="black", linewidth=2,
                    label="true function")
            for colour, steps in zip(colours, steps_list):
                ax.plot(grid[:, 0], curves[steps][:, 0], color=colour, linestyle="--" if steps == 0 else "-",
                        label=f"after {steps} step{'s' if steps != 1 else ''}")
            ax.scatter(sx[:, 0], sy[:, 0], color="tab:red", zorder=5, s=22, label=f"K={len(sx)} support points")
            ax.set_title(f"{name}: A={amplitude:.2f}, phase={phase:.2f}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
