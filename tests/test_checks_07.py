"""Notebook 07's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import vsml
from course_lib.teaching.checks import nb07 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

# ---------------------------------------------------------------- the notebook's reference solutions

NOTEBOOK = "07_vsml"  # defined from its source, each with the others it calls and its TICKS

messages = notebook_solution(NOTEBOOK, "messages")
feedback_message = notebook_solution(NOTEBOOK, "feedback_message")
count_variables = notebook_solution(NOTEBOOK, "count_layer_variables")
vsml_step = notebook_solution(NOTEBOOK, "vsml_step")
online_loss = notebook_solution(NOTEBOOK, "online_loss")
label_leaks = notebook_solution(NOTEBOOK, "label_leaks")


# online_loss and label_leaks again, with keywords that each switch on one plausible mistake (for WRONG below).


def online_loss_with(omega, xs, ys, ways, ticks=2, step=vsml_step, first_labels=None, reset=False, leak=False,
                     reduce=lambda logits, ys: F.cross_entropy(logits.flatten(0, 1), ys.flatten())):
    """online_loss as in the notebook by default."""
    tasks, length, inputs = xs.shape
    hidden = omega["w_hidden"].shape[0]
    zero = (xs.new_zeros(tasks, inputs, ways, hidden), xs.new_zeros(tasks, inputs, ways, hidden))
    state = zero
    previous_logits = xs.new_zeros(tasks, ways)
    previous_labels = torch.full((tasks,), -1) if first_labels is None else first_labels(ys)
    all_logits = []
    for t in range(length):
        labels = ys[:, t] if leak else previous_labels
        logits, state = step(omega, zero if reset else state, xs[:, t], feedback_message(previous_logits, labels, ways),
                             ticks)
        all_logits.append(logits)
        previous_logits, previous_labels = logits, ys[:, t]
    logits = torch.stack(all_logits, dim=1)
    return reduce(logits, ys), logits


def label_leaks_with(run, xs, ys, include_t=True, steps=None, clone=True, shift=1, whole=False):
    """label_leaks as in the notebook by default."""
    logits = run(xs, ys)
    ways = logits.shape[-1]
    for t in range(ys.shape[1]) if steps is None else steps:
        changed = ys.clone() if clone else ys
        changed[:, t] = (ys[:, t] + shift) % ways
        upto = logits.shape[1] if whole else t + 1 if include_t else t
        if not torch.allclose(run(xs, changed)[:, :upto], logits[:, :upto]):
            return True
    return False


NEW_CHECKS = ("check_vsml_step", "check_online_loss", "check_label_leak_test")


def test_reference_solutions_pass(capsys):
    checks.check_vsml_messages(messages)
    checks.check_feedback_message(feedback_message)
    checks.check_vsml_variable_count(count_variables)
    checks.check_vsml_step(vsml_step)
    checks.check_online_loss(online_loss)
    checks.check_label_leak_test(label_leaks)
    out = capsys.readouterr().out
    for name in NEW_CHECKS + ("check_vsml_messages", "check_feedback_message", "check_vsml_variable_count"):
        assert f"✓ {name}" in out


def test_the_library_passes_its_own_checks():
    """The notebook's checks and course_lib.vsml agree on what the messages and the counts are."""
    layer = vsml.VSMLLayer(message_size=6, hidden=5).double()

    def library_messages(h, w_out, w_back):
        with torch.no_grad():
            layer.w_out.copy_(w_out)
            layer.w_back_out.copy_(w_back)
            return layer.messages((h, torch.zeros_like(h)))

    checks.check_vsml_messages(library_messages)
    checks.check_feedback_message(lambda z, y, ways: vsml.feedback_messages(z, y, ways, 2, "both", z.dtype))

    def library_count(inputs, outputs, message_size, hidden):
        layer = vsml.VSMLLayer(message_size, hidden)
        return (sum(p.numel() for p in layer.parameters()),
                sum(s.numel() for s in layer.initial_state(1, inputs, outputs)))

    checks.check_vsml_variable_count(library_count)

    def library_step(omega, state, x, feedback, ticks):
        learner = checks.library_learner(omega, x.shape[1], feedback.shape[1], ticks)
        with torch.no_grad():
            size = omega["w_forward"].shape[0]
            state, forward, _ = learner.layer(state, F.pad(x[..., None], (0, size - 1)),
                                              F.pad(feedback, (0, size - 2)), ticks)
        return forward[..., 0], state

    def library_stream(omega, xs, ys, ways, ticks):
        learner = checks.library_learner(omega, xs.shape[2], ways, ticks)
        logits = vsml.run_stream(learner, xs, ys)[0]
        return F.cross_entropy(logits.flatten(0, 1), ys.flatten()), logits

    checks.check_vsml_step(library_step)
    checks.check_online_loss(library_stream)


def vsml_step_by_hand(omega, state, x, feedback, ticks=2):
    """Gates recomputed in full at every tick, messages built with cat instead of pad, einsum for the sums."""
    h, c = state
    tasks, inputs, ways, hidden = h.shape
    size = omega["w_forward"].shape[0]
    f_a = torch.cat([x[..., None], x.new_zeros(tasks, inputs, size - 1)], -1)
    g_b = torch.cat([feedback, x.new_zeros(tasks, ways, size - feedback.shape[-1])], -1)
    for _ in range(ticks):
        gates = (torch.einsum("tam,mk->tak", f_a, omega["w_forward"])[:, :, None, :]
                 + torch.einsum("tbm,mk->tbk", g_b, omega["w_backward"])[:, None, :, :]
                 + torch.einsum("tabh,hk->tabk", h, omega["w_hidden"]) + omega["bias"])
        i, f, u, o = (gates[..., k * hidden:(k + 1) * hidden] for k in range(4))
        c = f.sigmoid() * c + i.sigmoid() * u.tanh()
        h = o.sigmoid() * c.tanh()
    return torch.einsum("tabh,hm->tbm", h, omega["w_out"])[..., 0] / inputs, (h, c)


def online_loss_by_hand(omega, xs, ys, ways, ticks=2):
    """Log-softmax and gather for the loss, the feedback from detached logits, a list for the state."""
    tasks, length, inputs = xs.shape
    hidden = omega["w_hidden"].shape[0]
    state = [torch.zeros(tasks, inputs, ways, hidden, dtype=xs.dtype) for _ in range(2)]
    outputs, feedback = [], torch.zeros(tasks, ways, 2, dtype=xs.dtype)
    for t in range(length):
        logits, state = vsml_step_by_hand(omega, state, xs[:, t], feedback, ticks)
        outputs.append(logits)
        feedback = feedback_message(logits.detach(), ys[:, t], ways)
    logits = torch.stack(outputs, 1)
    nll = -logits.log_softmax(-1).gather(-1, ys[..., None]).squeeze(-1)
    return nll.mean(), logits


def label_leaks_from_the_tail(run, xs, ys):
    """Changes every label from step t on at once, compares with torch.equal."""
    logits = run(xs, ys)
    for t in range(ys.shape[1]):
        changed = torch.cat([ys[:, :t], (ys[:, t:] + 2) % logits.shape[-1]], 1)
        if not torch.equal(run(xs, changed)[:, :t + 1], logits[:, :t + 1]):
            return True
    return False


def test_alternative_correct_solutions_pass():
    checks.check_vsml_step(vsml_step_by_hand)
    checks.check_online_loss(online_loss_by_hand)
    checks.check_label_leak_test(label_leaks_from_the_tail)
    checks.check_online_loss(online_loss_with)  # the mistakes' starting points are right as they stand
    checks.check_label_leak_test(label_leaks_with)
    checks.check_vsml_messages(lambda h, wo, wb: ((h @ wo).mean(1), torch.einsum("tabh,hm->tam", h, wb) / h.shape[2]))
    checks.check_feedback_message(lambda z, y, ways: torch.where(
        (y >= 0)[:, None, None],
        torch.stack([F.one_hot(y.clamp(min=0), ways).to(z.dtype),
                     z.softmax(-1) - F.one_hot(y.clamp(min=0), ways).to(z.dtype)], -1),
        torch.zeros(len(y), ways, 2, dtype=z.dtype)))


# ---------------------------------------------------------------- typical mistakes


def _feedback(error_fn, zero_missing=True, swap=False):
    def wrong(z, y, ways):
        given = (y >= 0).to(z.dtype)[:, None] if zero_missing else torch.ones(len(y), 1, dtype=z.dtype)
        onehot = F.one_hot(y.clamp(min=0), ways).to(z.dtype) * given
        error = error_fn(z, onehot) * given
        return torch.stack([error, onehot] if swap else [onehot, error], -1)
    return wrong


def _count(meta_fn, learned_fn):
    return lambda a, b, m, h: (meta_fn(a, b, m, h), learned_fn(a, b, m, h))


def _meta(a, b, m, h):
    return count_variables(a, b, m, h)[0]


def _learned(a, b, m, h):
    return count_variables(a, b, m, h)[1]


WRONG = [
    # (check, wrong function, words the message must contain)
    ("check_vsml_messages", lambda h, wo, wb: (h.sum(1) @ wo, h.sum(2) @ wb), "MEAN"),
    ("check_vsml_messages", lambda h, wo, wb: (h.mean(2) @ wo, h.mean(1) @ wb), "axes are swapped"),
    ("check_vsml_messages", lambda h, wo, wb: (h.mean(1), h.mean(2)), "not projected"),
    ("check_vsml_messages", lambda h, wo, wb: (h.mean(1) @ wo, h.mean(2) @ wo), "has its own projection W_back"),
    ("check_vsml_messages", lambda h, wo, wb: (h.mean(1) @ wb, h.mean(2) @ wb), "has its own projection W_out"),
    ("check_vsml_messages", lambda h, wo, wb: ((h.mean((0, 1)) @ wo).expand(h.shape[0], -1, -1), h.mean(2) @ wb),
     "tasks too"),
    ("check_vsml_messages", lambda h, wo, wb: (h.mean(1) @ wo, h.sum(2) @ wb), "MEAN"),
    ("check_vsml_messages", lambda h, wo, wb: h.mean(1) @ wo, "two things"),
    ("check_feedback_message", _feedback(lambda z, o: o - z.softmax(-1)), "wrong sign"),
    ("check_feedback_message", _feedback(lambda z, o: z - o), "raw logits"),
    ("check_feedback_message", _feedback(lambda z, o: z.sigmoid() - o), "softmax"),
    ("check_feedback_message", _feedback(lambda z, o: z.softmax(-1) - o, zero_missing=False), "all zeros"),
    ("check_feedback_message", _feedback(lambda z, o: z.softmax(-1) - o, swap=True), "swapped"),
    ("check_feedback_message", lambda z, y, ways: _feedback(lambda z, o: z.softmax(-1) - o)(z, y, ways)[..., :1],
     "shape"),
    ("check_vsml_variable_count", _count(lambda a, b, m, h: a * b * _meta(a, b, m, h), _learned), "SHARED"),
    ("check_vsml_variable_count", _count(lambda a, b, m, h: _meta(a, b, m, h) - 4 * h, _learned), "bias"),
    ("check_vsml_variable_count", _count(lambda a, b, m, h: _meta(a, b, m, h) - 2 * h * m, _learned),
     "W_out and W_back"),
    ("check_vsml_variable_count", _count(lambda a, b, m, h: 2 * m * h + h * h + h + 2 * h * m, _learned),
     "FOUR gates"),
    ("check_vsml_variable_count", _count(_meta, lambda a, b, m, h: a * b * h), "(h, c)"),
    ("check_vsml_variable_count", _count(_meta, lambda a, b, m, h: (a + b) * 2 * h), "CONNECTION"),
    ("check_vsml_variable_count", lambda a, b, m, h: _meta(a, b, m, h), "two numbers"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: vsml_step(om, s, x, fb, 1), "one micro-tick"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: vsml_step(om, tuple(torch.zeros_like(v) for v in s), x, fb, ticks),
     "ignores the state"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: vsml_step({**om, "w_hidden": torch.zeros_like(om["w_hidden"])},
                                                              s, x, fb, ticks), "W_hidden"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: vsml_step(om, s, x, torch.zeros_like(fb), ticks),
     "feedback never reaches"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: _step_spreading_x(om, s, x, fb, ticks), "(x_a, 0, ..., 0)"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: (messages(s[0], om["w_out"], om["w_back"])[0][..., 0],
                                                     vsml_step(om, s, x, fb, ticks)[1]), "before the micro-ticks"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: (vsml_step(om, s, x, fb, ticks)[0] * x.shape[1],
                                                     vsml_step(om, s, x, fb, ticks)[1]), "summed"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: (vsml_step(om, s, x, fb, ticks)[0],
                                                     vsml_step(om, s, x, fb, ticks)[1][::-1]), "(c, h)"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: (messages(vsml_step(om, s, x, fb, ticks)[1][0].transpose(1, 2),
                                                              om["w_out"], om["w_back"])[0][..., 0],
                                                     vsml_step(om, s, x, fb, ticks)[1]), "wrong axis"),
    ("check_vsml_step", lambda om, s, x, fb, ticks: _step_in_place(om, s, x, fb, ticks), "in place"),
    ("check_online_loss", lambda *a: online_loss_with(*a, leak=True), "leaked"),
    ("check_online_loss", lambda *a: online_loss_with(*a, first_labels=lambda ys: ys[:, -1]), "LAST label"),
    ("check_online_loss", lambda *a: online_loss_with(*a, reset=True), "carry over"),
    ("check_online_loss", lambda *a: online_loss_with(*a, first_labels=lambda ys: torch.zeros_like(ys[:, 0])),
     "no feedback"),
    ("check_online_loss", lambda *a: online_loss_with(*a, reduce=lambda z, y: F.cross_entropy(z.flatten(0, 1), y.flatten(),
                                                                                        reduction="sum")), "summed"),
    ("check_online_loss", lambda *a: online_loss_with(*a, reduce=lambda z, y: F.cross_entropy(z.flatten(0, 1).softmax(-1),
                                                                                        y.flatten())), "probabilities"),
    ("check_online_loss", lambda *a: online_loss_with(*a, reduce=lambda z, y: F.cross_entropy(z[:, -1], y[:, -1])),
     "last step"),
    ("check_online_loss", lambda *a: online_loss_with(*a, reduce=lambda z, y: F.cross_entropy(z.flatten(0, 1),
                                                                                        y.flatten()).item()),
     "no gradient"),
    ("check_online_loss", lambda *a: online_loss_with(*a, reduce=lambda z, y: F.cross_entropy(z.flatten(0, 1).detach(),
                                                                                        y.flatten())),
     "no gradient"),
    ("check_label_leak_test", lambda run, xs, ys: label_leaks_with(run, xs, ys, whole=True), "honest learner leaky"),
    ("check_label_leak_test", lambda run, xs, ys: not label_leaks_with(run, xs, ys), "honest learner leaky"),
    ("check_label_leak_test", lambda run, xs, ys: label_leaks_with(run, xs, ys, steps=[0]), "from step 3 on"),
    ("check_label_leak_test", lambda run, xs, ys: label_leaks_with(run, xs, ys, include_t=False), "INCLUDING step t"),
    ("check_label_leak_test", lambda run, xs, ys: label_leaks_with(run, xs, ys, shift=0), "DIFFERENT class"),
    ("check_label_leak_test", lambda run, xs, ys: label_leaks_with(run, xs, ys, clone=False), "in place"),
]


def _step_spreading_x(omega, state, x, feedback, ticks):
    """x_a copied into every component of the forward message (a misreading of f_a = (x_a, 0, ..., 0))."""
    summed = torch.zeros_like(omega["w_forward"])
    summed[0] = omega["w_forward"].sum(0)  # (x_a, ..., x_a) W == (x_a, 0, ..., 0) W' when row 0 of W' sums W's rows
    return vsml_step({**omega, "w_forward": summed}, state, x, feedback, ticks)


def _step_in_place(omega, state, x, feedback, ticks):
    """The right numbers, but the caller's cell memory is overwritten."""
    logits, (h, c) = vsml_step(omega, state, x, feedback, ticks)
    state[1].copy_(c.detach())
    return logits, (h, c)


@pytest.mark.parametrize("check, function, words", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_typical_mistakes_are_rejected_in_plain_words(check, function, words):
    assert_rejected_in_plain_words(checks, check, function, words)


def test_an_unfinished_exercise_is_not_hidden():
    assert_unfinished_exercises_surface(checks, "check_vsml_messages", "check_feedback_message",
                                        "check_vsml_variable_count", *NEW_CHECKS)


def test_a_crash_is_reported_with_its_error():
    with pytest.raises(ExerciseError, match="raised IndexError"):
        checks.check_feedback_message(lambda z, y, ways: torch.stack([torch.eye(ways)[y], z], -1)[100])
