"""Checks for the exercises of notebook 07: VSML (variable-shared meta learning)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, fail, passed, run_student


def check_vsml_messages(messages: Callable) -> None:
    """``messages(h [T, A, B, H], w_out [H, M], w_back [H, M]) -> (forward [T, B, M], backward [T, A, M])``:
    output unit b sends mean_a h_ab W_out, input unit a sends mean_b h_ab W_back."""
    name = "check_vsml_messages"
    g = torch.Generator().manual_seed(7)
    tasks, inputs, outputs, hidden, size = 2, 4, 3, 5, 6
    h = torch.randn(tasks, inputs, outputs, hidden, generator=g, dtype=torch.float64)
    w_out = torch.randn(hidden, size, generator=g, dtype=torch.float64)
    w_back = torch.randn(hidden, size, generator=g, dtype=torch.float64)
    result = run_student(name, messages, h, w_out, w_back)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fail(name, "return two things: (forward messages out of the output units, backward messages out of "
                    "the input units)")
    forward, backward = (torch.as_tensor(r).double() for r in result)
    expected_f, expected_b = h.mean(dim=1) @ w_out, h.mean(dim=2) @ w_back
    if forward.shape == (tasks, inputs, size) and backward.shape == (tasks, outputs, size):
        fail(name, "the axes are swapped: output unit b's forward message averages over the INPUT units a "
                    "(dim 1 of h), input unit a's backward message over the OUTPUT units b (dim 2)")
    if forward.shape != (tasks, outputs, size) or backward.shape != (tasks, inputs, size):
        if forward.shape[-1] == hidden or backward.shape[-1] == hidden:
            fail(name, "the cell states are not projected: multiply the averaged h by W_out (forward) and "
                        "W_back (backward) to get messages of size M")
        fail(name, f"expected shapes {(tasks, outputs, size)} and {(tasks, inputs, size)}, got "
                    f"{tuple(forward.shape)} and {tuple(backward.shape)}")
    if close(forward, expected_f) and close(backward, expected_b):
        passed(name, 2)
        return
    if close(forward, expected_f * inputs) or close(backward, expected_b * outputs):
        fail(name, "summed over the cells instead of averaging: use the MEAN, so that the same meta-parameters "
                    "work for any number of inputs and outputs")
    if close(forward, h.mean(dim=(0, 1)) @ w_out * torch.ones_like(forward)):
        fail(name, "averaged over the tasks too: each task (dim 0) is a separate learner, average only over "
                    "the cells of a unit")
    if close(backward, h.mean(dim=2) @ w_out):
        fail(name, "the backward message uses W_out: it has its own projection W_back")
    if close(forward, h.mean(dim=1) @ w_back):
        fail(name, "the forward message uses W_back: it has its own projection W_out")
    if close(forward, expected_f):
        fail(name, "the forward messages are right, the backward ones are not: mean over the output units b "
                    "(dim 2), then multiply by W_back")
    fail(name, "the forward messages are wrong: mean of h over the input units a (dim 1), then multiply by W_out")


def check_feedback_message(feedback_message: Callable) -> None:
    """``feedback_message(previous_logits [T, B], previous_labels [T], ways) -> [T, B, 2]``: component 0 is
    onehot(y_{t-1}), component 1 the error softmax(z_{t-1}) - onehot(y_{t-1}); all zeros where the label is -1."""
    name = "check_feedback_message"
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [1.0, -2.0, 0.0], [0.0, 1.0, 0.0]],
                          dtype=torch.float64)
    labels = torch.tensor([0, 1, -1, 2])
    out = torch.as_tensor(run_student(name, feedback_message, logits, labels, 3)).double()
    if out.shape != (4, 3, 2):
        fail(name, f"return two numbers per output unit, shape (T, ways, 2) = (4, 3, 2), got {tuple(out.shape)}")
    given = (labels >= 0).double()[:, None]
    onehot = F.one_hot(labels.clamp(min=0), 3).double() * given
    error = (torch.softmax(logits, -1) - onehot) * given
    if close(out[..., 0], onehot) and close(out[..., 1], error):
        passed(name, 4)
        return
    if close(out[..., 0], error) and close(out[..., 1], onehot):
        fail(name, "the components are swapped: component 0 is the label onehot(y), component 1 the error")
    if out[2].abs().sum() > 0 and close(out[[0, 1, 3]], torch.stack([onehot, error], -1)[[0, 1, 3]]):
        fail(name, "no feedback where the label is -1 (step t = 0: no earlier example): that row must be all "
                    "zeros")
    if not close(out[..., 0], onehot):
        fail(name, "component 0 must be onehot(y_{t-1}), the label of the previous example")
    if close(out[..., 1], -error):
        fail(name, "the error has the wrong sign: softmax(z) - onehot(y), the gradient of the cross-entropy "
                    "with respect to the logits (what backprop sends back)")
    if close(out[..., 1], (logits - onehot) * given):
        fail(name, "the error uses the raw logits: turn them into probabilities with softmax first")
    if close(out[..., 1], (torch.sigmoid(logits) - onehot) * given):
        fail(name, "the error uses a sigmoid per class: the classifier's probabilities are softmax(z) over "
                    "the classes")
    fail(name, f"component 1 should be softmax(z) - onehot(y), e.g. {error[0].tolist()} for the first row, "
                f"got {out[0, :, 1].tolist()}")


def check_vsml_variable_count(count_variables: Callable) -> None:
    """``count_variables(inputs, outputs, message_size, hidden) -> (meta_parameters, learned_variables)`` of one
    VSML layer: W_forward, W_backward [M, 4H], W_hidden [H, 4H], bias [4H], W_out, W_back [H, M]; a state
    (h, c) of 2H values per connection."""
    name = "check_vsml_variable_count"

    def reference(a, b, m, h):
        return 2 * m * 4 * h + h * 4 * h + 4 * h + 2 * h * m, a * b * 2 * h

    cases = [(16, 5, 8, 16), (784, 10, 8, 16), (3, 2, 4, 5)]
    for a, b, m, h in cases:
        result = run_student(name, count_variables, a, b, m, h)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            fail(name, "return two numbers: (meta-parameters, learned variables)")
        meta, learned = (int(v) for v in result)
        want_meta, want_learned = reference(a, b, m, h)
        if (meta, learned) == (want_meta, want_learned):
            continue
        if meta != want_meta:
            if meta % (a * b) == 0 and meta // (a * b) == want_meta:
                fail(name, "the meta-parameters are SHARED by all cells: they must not grow with the number of "
                            "inputs and outputs")
            if meta == want_meta - 4 * h:
                fail(name, "the LSTM bias (4H numbers) is missing from the meta-parameters")
            if meta == want_meta - 2 * h * m:
                fail(name, "the output projections W_out and W_back (H x M each) are missing")
            if meta == 2 * m * h + h * h + h + 2 * h * m:
                fail(name, "an LSTM has FOUR gates: W_forward, W_backward, W_hidden and the bias have 4H columns")
            fail(name, f"for {a} inputs, {b} outputs, M={m}, H={h}: expected {want_meta} meta-parameters, got {meta}")
        if learned == a * b * h:
            fail(name, "the state of a cell is (h, c): 2H learned variables per connection, not H")
        if learned == (a + b) * 2 * h:
            fail(name, "there is one cell per CONNECTION (a, b): A x B cells, not A + B")
        fail(name, f"for {a} inputs, {b} outputs, H={h}: expected {want_learned} learned variables, got {learned}")
    passed(name, len(cases))
