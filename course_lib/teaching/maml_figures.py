"""Notebook 04's figures: the inner loop step by step (and its widget), Finn et al.'s sinusoid figure, the
variants' sinusoid curves, and accuracy during meta-training against meta-iteration and time."""

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
    """Adapt ``params`` on one support set for ``steps`` steps and record the query set after each step
    (a pure function: the widget only indexes its result)."""
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


def _image_axis(fig, cell, image: torch.Tensor, title: str, **title_style):
    ax = fig.add_subplot(cell)
    picture = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
    ax.imshow(picture.cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=8, **title_style)
    return ax


def inner_loop_figure(support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                      query_y: torch.Tensor, traces: dict[str, InnerLoopTrace], step: int, per_class: int = 2):
    """The support set, then per model ``per_class`` queries of each class after ``step`` steps (green:
    right, red: wrong), and every model's query loss and accuracy (over all queries) against the step."""
    import matplotlib.pyplot as plt

    rows = 1 + len(traces)
    step = max(0, min(step, max(t.steps for t in traces.values())))
    ways = int(support_y.max()) + 1
    shown = torch.cat([torch.nonzero(query_y == k).flatten()[:per_class] for k in range(ways)])
    columns = max(len(support_x), len(shown))
    fig = plt.figure(figsize=(max(7.0, 0.62 * columns + 4.6), 1.45 * rows + 0.4))
    grid = fig.add_gridspec(rows, columns + 1 + 6, wspace=0.08, hspace=0.9)
    for j in range(len(support_x)):
        ax = _image_axis(fig, grid[0, j], support_x[j], f"y={int(support_y[j])}")
        if j == 0:
            ax.set_ylabel("support", fontsize=8)
    loss_ax = fig.add_subplot(grid[: rows // 2 or 1, columns + 2:])
    acc_ax = fig.add_subplot(grid[rows // 2 or 1:, columns + 2:])
    for row, (name, trace) in enumerate(traces.items(), start=1):
        s = min(step, trace.steps)
        summary = f"{name}: query loss {trace.query_loss[s]:.2f}"
        if trace.query_accuracy is not None:
            summary += f", {100 * trace.query_accuracy[s]:.0f} % of all {len(query_y)} queries right"
        for j, q in enumerate(shown.tolist()):
            predicted = int(trace.predictions(s)[q])
            colour = "tab:green" if predicted == int(query_y[q]) else "tab:red"
            ax = _image_axis(fig, grid[row, j], query_x[q], f"→{predicted}", color=colour)
            for spine in ax.spines.values():
                spine.set_color(colour)
                spine.set_linewidth(2.5)
            if j == 0:
                ax.annotate(summary, xy=(0, 1.42), xycoords="axes fraction", fontsize=8, ha="left", va="bottom")
        line, = loss_ax.plot(range(trace.steps + 1), trace.query_loss, marker="o", ms=3, label=name)
        if trace.query_accuracy is not None:
            acc_ax.plot(range(trace.steps + 1), [100 * a for a in trace.query_accuracy], marker="o", ms=3,
                        color=line.get_color(), label=f"{name}: {100 * trace.query_accuracy[s]:.0f} %")
    for ax in (loss_ax, acc_ax):
        ax.axvline(step, color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    loss_ax.set_ylabel("query loss", fontsize=8)
    acc_ax.set_ylabel("query accuracy %", fontsize=8)
    acc_ax.set_xlabel("inner step", fontsize=8)
    acc_ax.set_ylim(0, 102)
    acc_ax.legend(fontsize=9, loc="lower right")
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


def sinusoid_figure(tasks: list[tuple], models: dict[str, Params], steps_list=(0, 1, 10), inner_lr: float = 0.01,
                    grid_points: int = 200, reference: tuple | None = None):
    """Finn et al.'s figure: for each task (amplitude, phase, support_x, support_y), one panel per model with
    the true sine, the K support points and the predictions after each number of steps in ``steps_list``;
    ``reference = (label, function of x)`` adds a dotted curve to every panel (the mean task, say)."""
    import matplotlib.pyplot as plt

    grid = torch.linspace(-5, 5, grid_points).unsqueeze(-1)
    fig, axes = plt.subplots(len(tasks), len(models), figsize=(4.6 * len(models), 2.8 * len(tasks)),
                             squeeze=False, sharey="row")
    colours = plt.cm.viridis(torch.linspace(0.15, 0.85, len(steps_list)).tolist())
    for row, (amplitude, phase, sx, sy) in enumerate(tasks):
        for col, (name, params) in enumerate(models.items()):
            ax = axes[row][col]
            ax.plot(grid[:, 0], amplitude * torch.sin(grid[:, 0] - phase), color="black", linewidth=2,
                    label="true function")
            theta, loss_fn = {k: v.detach() for k, v in params.items()}, regression_loss(mlp_forward)
            for colour, steps in zip(colours, steps_list):
                with torch.no_grad():
                    fast = inner_adapt(theta, sx, sy, steps, inner_lr, loss_fn, first_order=True)
                    prediction = mlp_forward(fast, grid)[:, 0]
                ax.plot(grid[:, 0], prediction, color=colour, linestyle="--" if steps == 0 else "-",
                        label=f"after {steps} step{'s' if steps != 1 else ''}")
            if reference is not None:
                ax.plot(grid[:, 0], reference[1](grid[:, 0]), color="grey", linestyle=":", linewidth=2,
                        label=reference[0])
            ax.scatter(sx[:, 0], sy[:, 0], color="tab:red", zorder=5, s=22, label=f"K={len(sx)} support points")
            ax.set_title(f"{name}: A={amplitude:.2f}, phase={phase:.2f}", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    return fig


def sinusoid_variants_figure(curves: dict[str, tuple[list[int], list[float], list[float]]],
                             references: dict[str, dict[int, float]] | None = None):
    """Query MSE against the number of inner steps at test time: ``curves`` maps a model to (steps, mean MSE,
    95 % interval); ``references`` maps a label to ``{steps: MSE}`` points from a paper (drawn as stars)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, (steps, means, intervals) in curves.items():
        ax.errorbar(steps, means, yerr=intervals, marker="o", ms=4, capsize=2, label=name,
                    linestyle="--" if "pretrain" in name else "-")
    for label, points in (references or {}).items():
        ax.scatter(list(points), list(points.values()), marker="*", s=140, color="black" if "MAML" in label
                   else "grey", zorder=5, label=label)
    ax.set_xlabel("inner gradient steps at test time", fontsize=10)
    ax.set_ylabel("query MSE (log scale)", fontsize=10)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def moving_average(values: list[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    return [sum(values[max(0, i - window + 1): i + 1]) / len(values[max(0, i - window + 1): i + 1])
            for i in range(len(values))]


def training_curves_figure(curves: dict[str, tuple[list[int], list[float]]], seconds_per_step: dict[str, float],
                           finals: dict[str, tuple[int, float]], window: int = 5):
    """Query accuracy during meta-training against meta-iteration (left) and against training time (right,
    at each run's mean seconds per meta-iteration). ``curves``: ``{run: (steps, accuracies)}``, smoothed by
    :func:`moving_average`; ``finals``: ``{run: (meta-iterations, test accuracy)}``, drawn as stars (a run
    without a curve appears as its star only)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys([*curves, *finals]))}
    for name, colour in colours.items():
        per_step = seconds_per_step.get(name)
        if name in curves:
            steps, values = curves[name]
            smooth = [100 * v for v in moving_average(values, window)]
            axes[0].plot(steps, smooth, color=colour, label=f"{name}, training tasks")
            if per_step is not None:
                axes[1].plot([s * per_step / 60 for s in steps], smooth, color=colour)
        if name in finals:
            steps_done, accuracy = finals[name]
            axes[0].scatter([steps_done], [100 * accuracy], marker="*", s=160, color=colour, edgecolor="black",
                            zorder=5, label=f"{name}, test episodes")
            if per_step is not None:
                axes[1].scatter([steps_done * per_step / 60], [100 * accuracy], marker="*", s=160, color=colour,
                                edgecolor="black", zorder=5)
    axes[0].set_xlabel("meta-iteration", fontsize=10)
    axes[1].set_xlabel("training time (minutes, at the run's mean time per meta-iteration)", fontsize=10)
    axes[0].set_ylabel("query accuracy %", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
    axes[0].legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    return fig
