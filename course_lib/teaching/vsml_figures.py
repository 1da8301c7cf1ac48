"""Notebook 07's look inside one stream: the effective weights and the prediction at every step.

:func:`stream_trace` runs a learner of :mod:`course_lib.vsml` on one stream and
keeps, for every step, its prediction and the cell states read as an ``A x B``
weight matrix; :func:`trace_figure` draws one step (the notebook's slider redraws it).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..vsml import VSMLLearner, run_stream


def effective_weights(model, state) -> torch.Tensor:
    """The cell states read as a weight matrix ``[T, A, B]``.

    Clone mode: the weight the cells were trained to carry, ``w_ab = c_ab . r``.
    Scratch mode: each cell's contribution to the logit of class ``b``,
    ``(h_ab W_out)[0]`` (the logit is their mean over ``a``), what a weight
    times its input is in a linear layer.
    """
    if not isinstance(model, VSMLLearner):
        raise TypeError("effective weights exist for VSML learners only (their state is one cell per connection)")
    if model.config.mode == "clone":
        return model.weights(state)
    return state[0] @ model.layer.w_out[:, 0]


@torch.no_grad()
def stream_trace(model, xs: torch.Tensor, ys: torch.Tensor) -> dict:
    """Everything the widget shows for ONE stream ``xs [L, A]``, ``ys [L]``, step by step.

    ``probabilities [L, B]`` (predicted before y_t is given), ``weights [L, A, B]``
    (:func:`effective_weights` after step t), ``correct [L]`` and the inputs.
    """
    if xs.dim() != 2 or ys.dim() != 1 or len(xs) != len(ys):
        raise ValueError(f"one stream: xs [L, A] and ys [L], got {tuple(xs.shape)} and {tuple(ys.shape)}")
    logits, _, _, states = run_stream(model, xs[None], ys[None], return_states=True)
    weights = torch.stack([effective_weights(model, s)[0] for s in states])
    probabilities = torch.softmax(logits[0], dim=-1)
    return {"xs": xs.cpu(), "ys": ys.cpu(), "probabilities": probabilities.cpu(), "weights": weights.cpu(),
            "correct": (probabilities.argmax(-1) == ys).cpu(), "ways": model.config.ways,
            "mode": model.config.mode}


def trace_figure(trace: dict, step: int, title: str | None = None):
    """Three panels at step ``t``: the effective weights, the prediction for x_t, running accuracy."""
    length, ways = len(trace["ys"]), trace["ways"]
    if not 0 <= step < length:
        raise ValueError(f"step must be in 0..{length - 1}, got {step}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1.1, 1, 1.6]})
    limit = max(float(trace["weights"].abs().max()), 1e-6)
    image = axes[0].imshow(trace["weights"][step].numpy().T, aspect="auto", cmap="RdBu_r",
                           vmin=-limit, vmax=limit)
    kind = "c_ab · r (cloned weight)" if trace["mode"] == "clone" else "cell contribution (h_ab W_out)[0]"
    axes[0].set(xlabel="input unit a", ylabel="class b")
    axes[0].set_title(f"effective weights after step {step}\n{kind}", fontsize=9)
    fig.colorbar(image, ax=axes[0], fraction=0.05)
    label = int(trace["ys"][step])
    axes[1].bar(range(ways), trace["probabilities"][step].numpy(),
                color=["tab:green" if b == label else "tab:gray" for b in range(ways)])
    axes[1].set(ylim=(0, 1), xticks=range(ways), xlabel="class (green: the true one)")
    verdict = "right" if bool(trace["correct"][step]) else "wrong"
    axes[1].set_title(f"prediction for x_{step}, before its label: {verdict}", fontsize=9)
    running = torch.cumsum(trace["correct"].float(), 0) / torch.arange(1, length + 1)
    p_true = trace["probabilities"][torch.arange(length), trace["ys"]]
    axes[2].plot(range(step + 1), p_true[:step + 1].numpy(), ".", color="tab:blue", markersize=4,
                 label="p(true class)")
    axes[2].plot(range(step + 1), running[:step + 1].numpy(), color="tab:orange", label="running accuracy")
    axes[2].axhline(1 / ways, color="black", linestyle=":", linewidth=1)
    axes[2].set(xlim=(0, length - 1), ylim=(0, 1.02), xlabel="example t of the stream")
    axes[2].legend(fontsize=9, loc="lower right")
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig
