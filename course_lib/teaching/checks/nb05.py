"""Checks for the exercises of notebook 05: black-box meta-learning."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, diagnose, fail, fail_if, passed, run_for_tensor

WRAPS_AROUND = ("row 0 holds the last label (torch.roll wraps around): at t = 0 no label has been seen, "
                "use zeros")


def check_shifted_label_inputs(shifted_label_inputs: Callable) -> None:
    """``shifted_label_inputs(labels [L], is_query [L] bool, ways) -> [L, ways]``: row t is
    onehot(labels[t-1]) when step t-1 is a support step, zeros at t = 0 and after a query."""
    name = "check_shifted_label_inputs"
    labels = torch.tensor([1, 0, 2, 2, 0, 1, 2])
    is_query = torch.tensor([False, False, False, False, True, True, True])
    out = run_for_tensor(name, shifted_label_inputs, labels, is_query, 3).float()
    fail_if(name, out.shape != (7, 3),
            f"return one row of length ways per step, shape (7, 3), got {tuple(out.shape)}")
    one_hot = F.one_hot(labels, 3).float()
    expected = torch.zeros(7, 3)
    expected[1:5] = one_hot[:4]
    if not torch.equal(out, expected):
        fail_if(name, torch.equal(out, one_hot) or torch.equal(out, one_hot * (~is_query).float()[:, None]),
                "row t holds the label of step t itself: the model would read the answer it must predict. "
                "Shift by one: row t = onehot(labels[t-1])")
        fail_if(name, torch.equal(out[0], one_hot[-1]), WRAPS_AROUND)
        fail_if(name, torch.equal(out[:-1], one_hot[1:]),
                "shifted the wrong way: row t must hold the PREVIOUS step's label, not the next one's")
        fail_if(name, (out[5:] != 0).any(), "a query's label is given to the next step: after a query step "
                                            "the label input must be zeros, else the model is told the answers "
                                            "of the queries")
        fail(name, f"expected {expected.int().tolist()}, got {out.int().tolist()}")
    # A sequence that ends on a support step: nothing may wrap around to t = 0.
    all_support = torch.zeros(3, dtype=torch.bool)
    tail = run_for_tensor(name, shifted_label_inputs, torch.tensor([0, 1, 1]), all_support, 2).float()
    fail_if(name, tail.shape == (3, 2) and tail[0].abs().sum() > 0, WRAPS_AROUND)
    fail_if(name, not torch.equal(tail, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])),
            f"for labels [0, 1, 1] (all support) expected [[0, 0], [1, 0], [0, 1]], got {tail.tolist()}")
    passed(name, 2)


def check_ucb1_scores(ucb1_scores: Callable) -> None:
    """``ucb1_scores(successes [K], counts [K], t, c=2.0) -> [K]``: mean + sqrt(c ln t / n), inf for untried
    arms."""
    name = "check_ucb1_scores"
    successes, counts, t = torch.tensor([3.0, 1.0, 0.0, 0.0]), torch.tensor([4.0, 2.0, 1.0, 0.0]), 7
    scores = run_for_tensor(name, ucb1_scores, successes, counts, t, 2.0).double()
    fail_if(name, scores.shape != (4,), f"return one score per arm, shape (4,), got {tuple(scores.shape)}")
    fail_if(name, not torch.isinf(scores[3]) or scores[3] < 0,
            "an arm never pulled must get score +inf, so that every arm is tried once")
    n, tried = counts[:3].double(), successes[:3].double()
    expected = tried / n + torch.sqrt(2.0 * math.log(t) / n)
    if not close(scores[:3], expected):
        diagnose(name, scores[:3], [
            (tried / n, "no exploration bonus: add sqrt(c ln t / n_k) to each arm's mean reward"),
            (tried / n + 2.0 * math.log(t) / n, "take the square root of the bonus: sqrt(c ln t / n_k)"),
            (tried / n + torch.sqrt(2.0 * t / n), "the bonus grows with the LOG of t: sqrt(c ln t / n_k)"),
            (tried + torch.sqrt(2.0 * math.log(t) / n),
             "use the MEAN reward of each arm (successes / pulls), not the number of successes"),
        ], f"expected {expected.tolist()} for the tried arms, got {scores[:3].tolist()}")
    passed(name, 1)
