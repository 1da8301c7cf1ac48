"""Notebook 08's figures: one sequence of one task, stepped through a model's predictions."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from torch import nn

from ..gpicl import ProjectedTasks


@dataclass
class SequenceTrace:
    """One sequence of one task and a model's prediction at every step (see :func:`prediction_trace`)."""

    task_id: int
    example_indices: torch.Tensor  # [L] rows of the dataset
    classes: torch.Tensor  # [L] the dataset's own classes (for Omniglot-like data: 0..num_classes-1 of the sequence)
    targets: torch.Tensor  # [L] the task's labels pi(class), what the model must predict
    probabilities: torch.Tensor  # [L, num_classes] the model's prediction at every step

    @property
    def correct(self) -> torch.Tensor:
        return self.probabilities.argmax(-1) == self.targets


@torch.no_grad()
def prediction_trace(model: nn.Module, tasks: ProjectedTasks, task_id: int, seed: int = 0,
                     seq_len: int | None = None, model_index: int = 0) -> SequenceTrace:
    """One sequence of task ``task_id`` (examples drawn from ``seed``) and the class probabilities of model
    ``model_index`` of the stack at every step. Causal: row t uses the examples up to t only."""
    seq_len = seq_len or model.seq_len
    generator = torch.Generator(device=tasks.device).manual_seed(seed)
    indices, classes = tasks.draw_examples(1, seq_len, generator)
    tokens, targets = tasks.sample_batch(torch.tensor([task_id]), seq_len, example_indices=indices)
    was_training = model.training
    logits = model.eval()(tokens.unsqueeze(0).expand(model.num_models, -1, -1, -1))[model_index, 0].float()
    model.train(was_training)
    return SequenceTrace(int(task_id), indices[0].cpu(), classes[0].cpu(), targets[0].cpu(),
                         logits.softmax(-1).cpu())


def trace_figure(trace: SequenceTrace, images: torch.Tensor, step: int, window: int = 8, title: str | None = None):
    """Step ``step`` of a trace: the last ``window`` examples up to it (titled with the task's label; green/red:
    the model's guess before seeing that label was right/wrong), the prediction at ``step``, and p(true label)
    at every step so far. ``images``: the dataset's images, ``[N, 1, H, W]``."""
    L, C = trace.probabilities.shape
    step = max(0, min(int(step), L - 1))
    first = max(0, step - window + 1)
    fig = plt.figure(figsize=(10, 4.2))
    grid = fig.add_gridspec(2, window, height_ratios=[1, 1.5])
    for slot in range(window):
        ax = fig.add_subplot(grid[0, slot])
        ax.axis("off")
        t = first + slot
        if t <= step:
            ax.imshow(images[int(trace.example_indices[t]), 0].cpu().numpy(), cmap="gray_r")
            ax.set_title(f"t={t}\nguess {int(trace.probabilities[t].argmax())}, y={int(trace.targets[t])}",
                         fontsize=8, color="green" if bool(trace.correct[t]) else "red")
    ax = fig.add_subplot(grid[1, : window // 2])
    true = int(trace.targets[step])
    ax.bar(range(C), trace.probabilities[step].numpy(),
           color=["tab:green" if k == true else "tab:gray" for k in range(C)])
    ax.set(ylim=(0, 1), xticks=range(C), xlabel="label", ylabel=f"p(y_{step} = label)")
    ax.set_title(f"prediction at step {step}, before y_{step} is given (true label green)", fontsize=9)
    ax = fig.add_subplot(grid[1, window // 2:])
    p_true = trace.probabilities[torch.arange(L), trace.targets].numpy()
    ax.plot(range(step + 1), p_true[: step + 1], marker=".", linewidth=1)
    ax.axhline(1 / C, color="black", linestyle=":", linewidth=1)
    ax.set(xlim=(-1, L), ylim=(0, 1), xlabel="step t (examples seen before it: t)", ylabel="p(true label)")
    ax.set_title(f"so far: {int(trace.correct[: step + 1].sum())} of {step + 1} right (dotted: chance)", fontsize=9)
    fig.suptitle(title or f"task {trace.task_id}", fontsize=10)
    fig.tight_layout()
    return fig
