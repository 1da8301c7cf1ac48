"""Notebook 07's figures of VSML learners: one stream step by step, and a clone through a hidden layer.

:func:`stream_trace` runs a learner of :mod:`course_lib.vsml` on one stream and
keeps, for every step, its prediction and the cell states read as an ``A x B``
weight matrix; :func:`trace_figure` draws one step (the notebook's slider redraws it).
:func:`layer_clone_figure` draws a two-layer clone's training curve and, per
test-stream row, how closely each layer's learned update follows SGD's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..vsml import VSMLLearner, run_stream


def effective_weights(model, state) -> torch.Tensor:
    """The output layer's cell states read as a weight matrix ``[T, A, B]``.

    Clone mode: the weight the cells were trained to carry, ``w_ab = c_ab . r``.
    Scratch mode: each cell's contribution to the logit of class ``b``,
    ``(h_ab W_out)[0]`` (the logit is their mean over ``a``), what a weight
    times its input is in a linear layer.
    """
    if not isinstance(model, VSMLLearner):
        raise TypeError("effective weights exist for VSML learners only (their state is one cell per connection)")
    if model.config.mode == "clone":
        return model.weights(state)
    cells, _ = model.split(state)
    output_h = cells[-1][0]  # (h, c) per layer, input side first: the output layer's h
    return output_h @ model.layer.w_out[:, 0]


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


def _moving_mean(values, width: int) -> np.ndarray:
    return np.convolve(np.asarray(values, dtype=float), np.ones(width) / width, mode="valid")


def layer_clone_figure(loss_curves: dict, clone_rows: dict, width: int = 10):
    """Two panels. Left: the cloning loss against meta-steps, one line per run of ``loss_curves``
    (``{label: [[step, loss], ...]}``, a ``history.json``'s layout; a curve logged every step is drawn
    faintly and as its mean over ``width`` steps). Right: per test-stream row of a two-layer clone's
    ``results["clone"]``, closed loop, each layer's relative update error (1 = no better than not learning
    the layer) and the cosine between the hidden layer's update and SGD's."""
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.9), gridspec_kw={"width_ratios": [1, 1.35]})
    for k, (label, curve) in enumerate(loss_curves.items()):
        steps, losses = np.array(curve, dtype=float).T
        if len(steps) > 2 * width and np.median(np.diff(steps)) == 1:
            axes[0].plot(steps, losses, color=f"C{k}", alpha=0.25, linewidth=0.8)
            axes[0].plot(steps[width - 1:], _moving_mean(losses, width), color=f"C{k}",
                         label=f"{label} (mean of {width})")
        else:
            axes[0].plot(steps, losses, color=f"C{k}", label=label)
    axes[0].set_yscale("log")
    axes[0].set(xlabel="meta-step", ylabel="cloning loss (log scale)")
    axes[0].set_title("teacher-forced cloning loss", fontsize=10)
    axes[0].legend(fontsize=9)

    names = list(clone_rows)
    x = np.arange(len(names))
    bars = (("layer2_relative_update_error_final", "output layer: update error", "C0", None),
            ("layer1_relative_update_error_final", "hidden layer: update error", "C1", None),
            ("layer1_update_cosine_final", "hidden layer: cosine to SGD's", "C2", "//"))
    for k, (key, label, colour, hatch) in enumerate(bars):
        axes[1].bar(x + (k - 1) * 0.27, [clone_rows[n][key] for n in names], 0.27, color=colour, hatch=hatch,
                    edgecolor="white" if hatch else None, label=label)
    axes[1].axhline(1.0, color="black", linestyle="--", linewidth=1, label="a layer not learned")
    short = [f"{n.split(' (')[0]}\n{n.rsplit(' ', 1)[1]} inputs" for n in names]
    axes[1].set_xticks(x, short, fontsize=9)
    axes[1].set(ylim=(0, 1.55), yticks=np.arange(0, 1.21, 0.2), ylabel="relative error of $W_T - W_0$, or cosine")
    axes[1].set_title("closed loop on new streams: each layer's learned update vs SGD's", fontsize=10)
    axes[1].legend(fontsize=9, ncol=2, loc="upper center")
    fig.tight_layout()
    return fig
