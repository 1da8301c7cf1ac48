"""Checks for the exercises of notebook 07: VSML (variable-shared meta learning)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, diagnose, fail, fail_if, passed, run_for_items, run_for_tensor, run_student


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


# ---------------------------------------------------------------- the build-it: one step, a stream, a leak test

OMEGA_NAMES = ("w_forward", "w_backward", "w_hidden", "bias", "w_out", "w_back")


def random_omega(message_size: int, hidden: int, seed: int = 0) -> dict:
    """Meta-parameters of one VSML layer as the notebook's ``omega`` dict, float64, with gradients."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"w_forward": (message_size, 4 * hidden), "w_backward": (message_size, 4 * hidden),
              "w_hidden": (hidden, 4 * hidden), "bias": (4 * hidden,), "w_out": (hidden, message_size),
              "w_back": (hidden, message_size)}
    return {name: (torch.randn(shape, generator=g, dtype=torch.float64) / 2).requires_grad_()
            for name, shape in shapes.items()}


def library_learner(omega: dict, inputs: int, ways: int, ticks: int):
    """``course_lib.vsml.VSMLLearner`` holding ``omega``: the reference the checks compare with."""
    from course_lib import vsml

    message_size, hidden = omega["w_out"].shape[1], omega["w_hidden"].shape[0]
    config = vsml.VSMLConfig(input_size=inputs, ways=ways, message_size=message_size, hidden=hidden, ticks=ticks)
    learner = vsml.VSMLLearner(config).double()
    layer, library_names = learner.layer, dict(zip(OMEGA_NAMES, ("w_forward", "w_backward", "w_hidden", "bias",
                                                                 "w_out", "w_back_out")))
    with torch.no_grad():
        for name, value in omega.items():
            getattr(layer, library_names[name]).copy_(value)
    return learner


def _step_variant(omega, state, x, feedback, ticks, *, recurrent=True, with_feedback=True, spread_x=False,
                  read_before=False, scale=1.0):
    """One VSML step with one known mistake switched on (all off: the right step, as the library does it)."""
    h, c = state
    size = omega["w_forward"].shape[0]
    forward_in = x[..., None].expand(*x.shape, size) if spread_x else F.pad(x[..., None], (0, size - 1))
    backward_in = F.pad(feedback, (0, size - feedback.shape[-1])) * float(with_feedback)
    drive = (forward_in @ omega["w_forward"])[:, :, None] + (backward_in @ omega["w_backward"])[:, None] \
        + omega["bias"]
    before = h.mean(dim=1) @ omega["w_out"]
    for _ in range(ticks):
        gates = drive + (h @ omega["w_hidden"] if recurrent else 0)
        i, f, u, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
        h = torch.sigmoid(o) * torch.tanh(c)
    forward = before if read_before else h.mean(dim=1) @ omega["w_out"]
    return forward[..., 0] * scale, (h, c)


def check_vsml_step(vsml_step: Callable) -> None:
    """``vsml_step(omega, state, x [T, A], feedback [T, B, 2], ticks) -> (logits [T, B], (h, c))``: the same
    numbers as ``course_lib.vsml.VSMLLearner.step`` with the same meta-parameters, for two layer sizes."""
    name = "check_vsml_step"
    cases = [(2, 4, 3, 6, 5, 2), (3, 7, 2, 4, 3, 3)]  # tasks, A, B, M, H, ticks: A != B, so axes cannot hide
    for seed, (tasks, inputs, ways, size, hidden, ticks) in enumerate(cases):
        omega = random_omega(size, hidden, seed)
        g = torch.Generator().manual_seed(10 + seed)
        state = tuple(torch.randn(tasks, inputs, ways, hidden, generator=g, dtype=torch.float64) / 2
                      for _ in range(2))
        x = torch.randn(tasks, inputs, generator=g, dtype=torch.float64)
        logits_before = torch.randn(tasks, ways, generator=g, dtype=torch.float64)
        labels = torch.arange(tasks) % ways
        feedback = torch.stack([F.one_hot(labels, ways).double(),
                                torch.softmax(logits_before, -1) - F.one_hot(labels, ways).double()], -1)
        learner = library_learner(omega, inputs, ways, ticks)
        with torch.no_grad():
            want_logits, want_state = learner.step(state, x, logits_before, labels)
        copies = tuple(s.clone() for s in state)
        result = run_for_items(name, vsml_step, omega, copies, x.clone(), feedback.clone(), ticks, count=2,
                               what="two things: (logits [tasks, ways], the new state (h, c))")
        logits = torch.as_tensor(result[0]).detach().double()
        fail_if(name, not all(torch.equal(a, b) for a, b in zip(copies, state)),
                "the state passed in was changed in place: build the new (h, c) as new tensors")
        fail_if(name, logits.shape == (tasks, inputs),
                "the prediction is read from the wrong axis: output unit b's forward message averages over the "
                "INPUT units a, so there is one logit per output unit")
        fail_if(name, logits.shape != (tasks, ways),
                f"the logits should have shape (tasks, ways) = {(tasks, ways)}, got {tuple(logits.shape)}")
        fail_if(name, not isinstance(result[1], (tuple, list)) or len(result[1]) != 2,
                "return the new state as a pair (h, c)")
        h, c = (torch.as_tensor(s).detach().double() for s in result[1])
        fail_if(name, h.shape != want_state[0].shape or c.shape != want_state[1].shape,
                f"the state holds one cell per connection: h and c of shape (tasks, A, B, H) = "
                f"{tuple(want_state[0].shape)}, got {tuple(h.shape)} and {tuple(c.shape)}")
        if close(logits, want_logits) and close(h, want_state[0]) and close(c, want_state[1]):
            continue
        fail_if(name, close(h, want_state[1]) and close(c, want_state[0]),
                "the state comes back as (c, h): return it as (h, c), hidden state first")
        with torch.no_grad():
            variant = lambda **kw: _step_variant(omega, state, x, feedback, ticks, **kw)  # noqa: E731
            zero = tuple(torch.zeros_like(s) for s in state)
            mistakes = [
                (variant(scale=inputs)[0], "the forward message is summed over the input units: average it, "
                                           "so that the same omega works for any number of inputs"),
                (_step_variant(omega, state, x, feedback, 1)[0], "only one micro-tick: run the shared cell "
                                                                 "`ticks` times with the same messages in"),
                (_step_variant(omega, zero, x, feedback, ticks)[0],
                 "the step ignores the state it was given: the cells go on from `state`, which is where the "
                 "layer keeps what it has learned"),
                (variant(recurrent=False)[0], "the gates do not read h_ab W_hidden: each cell's own hidden "
                                              "state enters its gates at every micro-tick"),
                (variant(with_feedback=False)[0], "the feedback never reaches the cells: the feedback of output "
                                                  "unit b enters every cell of column b through W_backward"),
                (variant(spread_x=True)[0], "x_a fills every component of the forward message: the message "
                                            "into the cells of row a is (x_a, 0, ..., 0)"),
                (variant(read_before=True)[0], "the prediction is read before the micro-ticks: read the forward "
                                               "messages from the NEW states"),
            ]
        for wrong, message in mistakes:
            fail_if(name, close(logits, wrong), message)
        fail_if(name, close(logits, want_logits), "the logits are right but the new state (h, c) is not: return "
                                                  "the states after the last micro-tick")
        fail(name, f"for {inputs} inputs, {ways} outputs and {ticks} micro-ticks the logits differ from the "
                   f"library's: expected {want_logits[0].tolist()} for the first task, got {logits[0].tolist()}")
    passed(name, len(cases))


def check_online_loss(online_loss: Callable) -> None:
    """``online_loss(omega, xs [T, L, A], ys [T, L], ways, ticks) -> (mean online cross-entropy, logits
    [T, L, B])``: predictions made before each label, as ``course_lib.vsml.run_stream`` makes them."""
    from course_lib import vsml

    name = "check_online_loss"
    tasks, length, inputs, ways, size, hidden, ticks = 3, 6, 4, 3, 6, 5, 2
    omega = random_omega(size, hidden, seed=3)
    g = torch.Generator().manual_seed(4)
    xs = torch.randn(tasks, length, inputs, generator=g, dtype=torch.float64)
    ys = torch.randint(0, ways, (tasks, length), generator=g)
    learner = library_learner(omega, inputs, ways, ticks)

    def run(labels):
        with torch.enable_grad():
            result = run_for_items(name, online_loss, omega, xs.clone(), labels.clone(), ways, ticks, count=2,
                                   what="two things: (the mean online cross-entropy, the logits [tasks, steps, ways])")
        return result[0], torch.as_tensor(result[1]).detach().double()

    loss, logits = run(ys)
    fail_if(name, logits.shape != (tasks, length, ways),
            f"the logits should have shape (tasks, steps, ways) = {(tasks, length, ways)}, got {tuple(logits.shape)}")
    for t in range(length):  # the prediction for x_t may use y_1 .. y_{t-1}, never y_t or later labels
        changed = ys.clone()
        changed[:, t] = (ys[:, t] + 1) % ways
        moved = run(changed)[1]
        fail_if(name, t == length - 1 and not close(moved[:, 0], logits[:, 0]),
                "the first prediction changed with the LAST label of the stream: at t = 0 there is no earlier "
                "example, so no feedback (label -1, all zeros). Careful: ys[:, t - 1] at t = 0 is ys[:, -1]")
        fail_if(name, not close(moved[:, :t + 1], logits[:, :t + 1]),
                f"the prediction for step {t} changed when only the label y_{t} changed: the label leaked into "
                "the layer before its prediction (the feedback at step t is about step t-1; y_t is given after "
                "the prediction for x_t)")
    with torch.no_grad():
        want = vsml.run_stream(learner, xs, ys)[0]
        reset, previous = [], (None, torch.full((tasks,), -1))
        for t in range(length):  # the states start from zero at every step
            z, _ = learner.step(learner.initial_state(tasks, inputs, ways, dtype=xs.dtype), xs[:, t], *previous)
            reset.append(z)
            previous = (z, ys[:, t])
        reset = torch.stack(reset, 1)
    if not close(logits, want):
        fail_if(name, not close(logits[:, 0], want[:, 0]),
                "the first prediction must see no feedback (there is no earlier example: label -1, all zeros). "
                "Careful: ys[:, t - 1] at t = 0 is the LAST label of the stream")
        fail_if(name, close(logits, reset), "the states start from zero at every step: they must carry over "
                                            "from one step to the next, they are what the layer has learned")
        fail(name, f"the logits differ from the library's run_stream with the same omega, first at step "
                   f"{int((logits - want).abs().amax(dim=(0, 2)).gt(1e-5).nonzero()[0])}: feed back "
                   "(logits, label) of step t-1 and carry the state")
    fail_if(name, not isinstance(loss, torch.Tensor) or not loss.requires_grad,
            "the loss carries no gradient to omega: keep it a tensor (no .item(), no torch.no_grad(), no "
            ".detach()) so that meta-training can backpropagate through the stream")
    value = loss.detach().double()
    flat_logits, flat_labels = logits.flatten(0, 1), ys.flatten()
    right = F.cross_entropy(flat_logits, flat_labels)
    if not close(value, right):
        diagnose(name, value, [
            (F.cross_entropy(flat_logits, flat_labels, reduction="sum"),
             "the cross-entropy is summed: average it over the streams and the steps"),
            (F.cross_entropy(flat_logits.softmax(-1), flat_labels),
             "the cross-entropy got probabilities: it takes the logits (it applies the softmax itself)"),
            (F.cross_entropy(logits[:, -1], ys[:, -1]),
             "only the last step counts in your loss: the online loss averages over every step, so the layer "
             "is rewarded for learning FAST"),
            (-right, "the loss has the wrong sign: minimise the cross-entropy, -log softmax(z)_y"),
        ], f"the loss should be the mean cross-entropy of all predictions, {right.item():.4f}, got "
           f"{value.item():.4f}")
    passed(name, length + 2)


def _leaky_run(learner, peek):
    """A learner whose feedback at step t carries the label y_{t + peek(t)}: ``peek = 0`` leaks y_t itself."""
    from course_lib import vsml

    def run(xs, ys):
        tasks, length, inputs = xs.shape
        state, logits, out = learner.initial_state(tasks, inputs, learner.config.ways, dtype=xs.dtype), None, []
        for t in range(length):
            shift = peek(t)
            labels = ys[:, min(t + shift, length - 1)] if shift is not None else (
                ys[:, t - 1] if t else torch.full((tasks,), -1))
            z, state = learner.step(state, xs[:, t], logits, labels)
            out.append(z)
            logits = z
        return torch.stack(out, 1)

    return run if peek is not None else (lambda xs, ys: vsml.run_stream(learner, xs, ys)[0])


def check_label_leak_test(label_leaks: Callable) -> None:
    """``label_leaks(run, xs, ys) -> bool``: True when some prediction of ``run(xs, ys) -> logits [T, L, B]``
    depends on its own label or a later one. Tried on an honest learner and three leaky ones."""
    name = "check_label_leak_test"
    tasks, length, inputs, ways = 2, 8, 4, 3
    learner = library_learner(random_omega(6, 5, seed=5), inputs, ways, ticks=2)
    g = torch.Generator().manual_seed(6)
    xs = torch.randn(tasks, length, inputs, generator=g, dtype=torch.float64)
    ys = torch.randint(0, ways, (tasks, length), generator=g)
    learners = [
        ("an honest learner (feedback about step t-1 only)", _leaky_run(learner, None), False,
         "your test calls an honest learner leaky. Changing y_t SHOULD change the predictions after step t: "
         "that is the learning. Compare only the predictions up to and including step t"),
        ("a learner whose prediction for x_t sees y_t itself", _leaky_run(learner, lambda t: 0), True,
         "your test missed a learner whose prediction for x_t sees y_t itself: change y_t to a DIFFERENT "
         "class and compare the predictions up to AND INCLUDING step t"),
        ("a learner that peeks at y_t only from step 3 on", _leaky_run(learner, lambda t: 0 if t >= 3 else None),
         True, "your test missed a learner that peeks at the label only from step 3 on: change each label y_t "
               "in turn, not just the first"),
        ("a learner that sees the next label y_{t+1}", _leaky_run(learner, lambda t: 1), True,
         "your test missed a learner whose prediction for x_t sees the NEXT label y_{t+1}: a later label "
         "must not change an earlier prediction either"),
    ]
    with torch.no_grad():
        for description, run, leaky, message in learners:
            labels = ys.clone()
            answer = run_student(name, label_leaks, run, xs.clone(), labels)
            fail_if(name, not torch.equal(labels, ys), "your test changed the caller's labels in place: clone ys "
                                                       "before you change a label")
            fail_if(name, bool(answer) != leaky, message)
    passed(name, len(learners))
