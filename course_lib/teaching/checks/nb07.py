"""Checks for the exercises of notebook 07: VSML (variable-shared meta learning)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, fail, fail_if, passed, run_for_items, run_for_tensor


def check_vsml_messages(messages: Callable) -> None:
    """``messages(h [T, A, B, H], w_out [H, M], w_back [H, M]) -> (forward [T, B, M], backward [T, A, M])``:
    output unit b sends mean_a h_ab W_out, input unit a sends mean_b h_ab W_back."""
    name = "check_vsml_messages"
    g = torch.Generator().manual_seed(7)
    tasks, inputs, outputs, hidden, size = 2, 4, 3, 5, 6
    h = torch.randn(tasks, inputs, outputs, hidden, generator=g, dtype=torch.float64)
    w_out = torch.randn(hidden, size, generator=g, dtype=torch.float64)
    w_back = torch.randn(hidden, size, generator=g, dtype=torch.float64)
    result = run_for_items(name, messages, h, w_out, w_back, count=2, what="two things: (forward messages out "
                           "of the output units, backward messages out of the input units)")
    forward, backward = (torch.as_tensor(r).double() for r in result)
    expected_f, expected_b = h.mean(dim=1) @ w_out, h.mean(dim=2) @ w_back
    fail_if(name, forward.shape == (tasks, inputs, size) and backward.shape == (tasks, outputs, size),
            "the axes are swapped: output unit b's forward message averages over the INPUT units a (dim 1 of "
            "h), input unit a's backward message over the OUTPUT units b (dim 2)")
    if forward.shape != (tasks, outputs, size) or backward.shape != (tasks, inputs, size):
        fail_if(name, forward.shape[-1] == hidden or backward.shape[-1] == hidden,
                "the cell states are not projected: multiply the averaged h by W_out (forward) and W_back "
                "(backward) to get messages of size M")
        fail(name, f"expected shapes {(tasks, outputs, size)} and {(tasks, inputs, size)}, got "
                   f"{tuple(forward.shape)} and {tuple(backward.shape)}")
    if not (close(forward, expected_f) and close(backward, expected_b)):
        fail_if(name, close(forward, expected_f * inputs) or close(backward, expected_b * outputs),
                "summed over the cells instead of averaging: use the MEAN, so that the same meta-parameters "
                "work for any number of inputs and outputs")
        fail_if(name, close(forward, h.mean(dim=(0, 1)) @ w_out * torch.ones_like(forward)),
                "averaged over the tasks too: each task (dim 0) is a separate learner, average only over the "
                "cells of a unit")
        fail_if(name, close(backward, h.mean(dim=2) @ w_out),
                "the backward message uses W_out: it has its own projection W_back")
        fail_if(name, close(forward, h.mean(dim=1) @ w_back),
                "the forward message uses W_back: it has its own projection W_out")
        fail_if(name, close(forward, expected_f), "the forward messages are right, the backward ones are "
                                                  "not: mean over the output units b (dim 2), then multiply by "
                                                  "W_back")
        fail(name, "the forward messages are wrong: mean of h over the input units a (dim 1), then multiply by "
                   "W_out")
    passed(name, 2)


def check_feedback_message(feedback_message: Callable) -> None:
    """``feedback_message(previous_logits [T, B], previous_labels [T], ways) -> [T, B, 2]``: component 0 is
    onehot(y_{t-1}), component 1 the error softmax(z_{t-1}) - onehot(y_{t-1}); all zeros where the label is
    -1."""
    name = "check_feedback_message"
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [1.0, -2.0, 0.0], [0.0, 1.0, 0.0]],
                          dtype=torch.float64)
    labels = torch.tensor([0, 1, -1, 2])
    out = run_for_tensor(name, feedback_message, logits, labels, 3).double()
    fail_if(name, out.shape != (4, 3, 2),
            f"return two numbers per output unit, shape (T, ways, 2) = (4, 3, 2), got {tuple(out.shape)}")
    given = (labels >= 0).double()[:, None]
    onehot = F.one_hot(labels.clamp(min=0), 3).double() * given
    error = (torch.softmax(logits, -1) - onehot) * given
    if not (close(out[..., 0], onehot) and close(out[..., 1], error)):
        fail_if(name, close(out[..., 0], error) and close(out[..., 1], onehot),
                "the components are swapped: component 0 is the label onehot(y), component 1 the error")
        labelled, right = [0, 1, 3], torch.stack([onehot, error], -1)
        fail_if(name, out[2].abs().sum() > 0 and close(out[labelled], right[labelled]),
                "no feedback where the label is -1 (step t = 0: no earlier example): that row must be all "
                "zeros")
        fail_if(name, not close(out[..., 0], onehot),
                "component 0 must be onehot(y_{t-1}), the label of the previous example")
        fail_if(name, close(out[..., 1], -error),
                "the error has the wrong sign: softmax(z) - onehot(y), the gradient of the cross-entropy with "
                "respect to the logits (what backprop sends back)")
        fail_if(name, close(out[..., 1], (logits - onehot) * given),
                "the error uses the raw logits: turn them into probabilities with softmax first")
        fail_if(name, close(out[..., 1], (torch.sigmoid(logits) - onehot) * given),
                "the error uses a sigmoid per class: the classifier's probabilities are softmax(z) over the "
                "classes")
        fail(name, f"component 1 should be softmax(z) - onehot(y), e.g. {error[0].tolist()} for the first row, "
                   f"got {out[0, :, 1].tolist()}")
    passed(name, 4)


def check_vsml_variable_count(count_variables: Callable) -> None:
    """``count_variables(inputs, outputs, message_size, hidden) -> (meta_parameters, learned_variables)`` of one
    VSML layer: W_forward, W_backward [M, 4H], W_hidden [H, 4H], bias [4H], W_out, W_back [H, M]; a state
    (h, c) of 2H values per connection."""
    name = "check_vsml_variable_count"
    cases = [(16, 5, 8, 16), (784, 10, 8, 16), (3, 2, 4, 5)]
    for a, b, m, h in cases:
        result = run_for_items(name, count_variables, a, b, m, h, count=2,
                               what="two numbers: (meta-parameters, learned variables)")
        meta, learned = (int(v) for v in result)
        want_meta, want_learned = 2 * m * 4 * h + h * 4 * h + 4 * h + 2 * h * m, a * b * 2 * h
        if meta != want_meta:
            fail_if(name, meta % (a * b) == 0 and meta // (a * b) == want_meta,
                    "the meta-parameters are SHARED by all cells: they must not grow with the number of inputs "
                    "and outputs")
            fail_if(name, meta == want_meta - 4 * h, "the LSTM bias (4H numbers) is missing from the "
                                                     "meta-parameters")
            fail_if(name, meta == want_meta - 2 * h * m, "the output projections W_out and W_back (H x M each) "
                                                         "are missing")
            fail_if(name, meta == 2 * m * h + h * h + h + 2 * h * m,
                    "an LSTM has FOUR gates: W_forward, W_backward, W_hidden and the bias have 4H columns")
            fail(name, f"for {a} inputs, {b} outputs, M={m}, H={h}: expected {want_meta} meta-parameters, "
                       f"got {meta}")
        if learned != want_learned:
            fail_if(name, learned == a * b * h,
                    "the state of a cell is (h, c): 2H learned variables per connection, not H")
            fail_if(name, learned == (a + b) * 2 * h,
                    "there is one cell per CONNECTION (a, b): A x B cells, not A + B")
            fail(name, f"for {a} inputs, {b} outputs, H={h}: expected {want_learned} learned variables, "
                       f"got {learned}")
    passed(name, len(cases))
