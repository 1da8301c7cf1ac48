"""Notebook 05's view of an RL² agent playing one bandit (the figure behind its step widget)."""

from __future__ import annotations

import torch

from ..bandits import Rollout


def trace_figure(probs: torch.Tensor, trace: Rollout, step: int, title: str | None = None):
    """The policy's arm probabilities up to ``step`` (lines), pulls and rewards (dots), and its
    probabilities at ``step`` next to the true p (bars)."""
    import matplotlib.pyplot as plt

    probs = probs.view(-1)
    T, K = trace.action_probs.shape[1:]
    step = max(0, min(step, T - 1))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [3, 1]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    pi = trace.action_probs[0, : step + 1]
    for k in range(K):
        colour = colours[k % len(colours)]
        ax.plot(range(step + 1), pi[:, k].numpy(), color=colour, label=f"arm {k} (p={probs[k]:.2f})")
        pulled = (trace.actions[0, : step + 1] == k).nonzero().flatten()
        won = trace.rewards[0, pulled] > 0
        for shown, marker in ((won, "o"), (~won, "x")):
            ax.scatter(pulled[shown].numpy(), [1.04] * int(shown.sum()), color=colour, marker=marker, s=12)
    ax.set(xlim=(-0.5, T - 0.5), ylim=(0, 1.1), xlabel="pull t", ylabel="pi(arm | h_t)")
    ax.legend(fontsize=9, loc="center right")
    ax.set_title(title or "RL² policy (dots at the top: pulls; o = reward 1, x = reward 0)", fontsize=9)
    x = torch.arange(K)
    bx.bar(x - 0.2, trace.action_probs[0, step].numpy(), 0.4, label="pi at t")
    bx.bar(x + 0.2, probs.numpy(), 0.4, label="true p")
    bx.set(xticks=x.tolist(), ylim=(0, 1))
    bx.legend(fontsize=9)
    bx.set_title(f"t = {step}: reward so far {int(trace.rewards[0, : step + 1].sum())}", fontsize=9)
    fig.tight_layout()
    return fig
