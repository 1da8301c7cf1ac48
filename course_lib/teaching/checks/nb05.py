"""Checks for the exercises of notebook 05: black-box meta-learning."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, fail, passed, run_student


def check_shifted_label_inputs(shifted_label_inputs: Callable) -> None:
    """``shifted_label_inputs(labels [L], is_query [L] bool, ways) -> [L, ways]``: row t is
    onehot(labels[t-1]) when step t-1 is a support step, zeros at t = 0 and after a query."""
    name = "check_shifted_label_inputs"
    labels = torch.tensor([1, 0, 2, 2, 0, 1, 2])
    is_query = torch.tensor([False, False, False, False, True, True, True])
    out = torch.as_tensor(run_student(name, shifted_label_inputs, labels, is_query, 3)).float()
    if out.shape != (7, 3):
        fail(name, f"return one row of length ways per step, shape (7, 3), got {tuple(out.shape)}")
    one_hot = F.one_hot(labels, 3).float()
    expected = torch.zeros(7, 3)
    expected[1:5] = one_hot[:4]
    if torch.equal(out, expected):
        # A sequence that ends on a support step: nothing may wrap around to t = 0.
        tail = torch.as_tensor(run_student(name, shifted_label_inputs, torch.tensor([0, 1, 1]),
                                    torch.zeros(3, dtype=torch.bool), 2)).float()
        if tail.shape == (3, 2) and tail[0].abs().sum() > 0:
            fail(name, "row 0 holds the last label (torch.roll wraps around): at t = 0 no label has been seen, "
                        "use zeros")
        if not torch.equal(tail, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])):
            fail(name, f"for labels [0, 1, 1] (all support) expected [[0, 0], [1, 0], [0, 1]], got {tail.tolist()}")
        passed(name, 2)
        return
    if torch.equal(out, one_hot) or torch.equal(out, one_hot * (~is_query).float()[:, None]):
        fail(name, "row t holds the label of step t itself: the model would read the answer it must predict. "
                    "Shift by one: row t = onehot(labels[t-1])")
    if torch.equal(out[0], one_hot[-1]):
        fail(name, "row 0 holds the last label (torch.roll wraps around): at t = 0 no label has been seen, use zeros")
    if torch.equal(out[:-1], one_hot[1:]):
        fail(name, "shifted the wrong way: row t must hold the PREVIOUS step's label, not the next one's")
    if (out[5:] != 0).any():
        fail(name, "a query's label is given to the next step: after a query step the label input must be zeros, "
                    "else the model is told the answers of the queries")
    fail(name, f"expected {expected.int().tolist()}, got {out.int().tolist()}")


def check_ucb1_scores(ucb1_scores: Callable) -> None:
    """``ucb1_scores(successes [K], counts [K], t, c=2.0) -> [K]``: mean + sqrt(c ln t / n), inf for untried arms."""
    name = "check_ucb1_scores"
    successes, counts = torch.tensor([3.0, 1.0, 0.0, 0.0]), torch.tensor([4.0, 2.0, 1.0, 0.0])
    t = 7
    scores = torch.as_tensor(run_student(name, ucb1_scores, successes, counts, t, 2.0)).double()
    if scores.shape != (4,):
        fail(name, f"return one score per arm, shape (4,), got {tuple(scores.shape)}")
    if not torch.isinf(scores[3]) or scores[3] < 0:
        fail(name, "an arm never pulled must get score +inf, so that every arm is tried once")
    n = counts[:3].double()
    means = successes[:3].double() / n
    expected = means + torch.sqrt(2.0 * math.log(t) / n)
    if close(scores[:3], expected):
        passed(name, 1)
        return
    if close(scores[:3], means):
        fail(name, "no exploration bonus: add sqrt(c ln t / n_k) to each arm's mean reward")
    if close(scores[:3], means + 2.0 * math.log(t) / n):
        fail(name, "take the square root of the bonus: sqrt(c ln t / n_k)")
    if close(scores[:3], means + torch.sqrt(2.0 * t / n)):
        fail(name, "the bonus grows with the LOG of t: sqrt(c ln t / n_k)")
    if close(scores[:3], successes[:3].double() + torch.sqrt(2.0 * math.log(t) / n)):
        fail(name, "use the MEAN reward of each arm (successes / pulls), not the number of successes")
    fail(name, f"expected {expected.tolist()} for the tried arms, got {scores[:3].tolist()}")
