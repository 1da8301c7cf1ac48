"""Notebook 07's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import vsml
from course_lib.teaching.checks import nb07 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface

# ---------------------------------------------------------------- reference solutions (as in the notebook)


def messages(h, w_out, w_back):
    return h.mean(dim=1) @ w_out, h.mean(dim=2) @ w_back


def feedback_message(previous_logits, previous_labels, ways):
    given = (previous_labels >= 0).to(previous_logits.dtype)[:, None]
    onehot = F.one_hot(previous_labels.clamp(min=0), ways).to(previous_logits.dtype) * given
    error = (torch.softmax(previous_logits, dim=-1) - onehot) * given
    return torch.stack([onehot, error], dim=-1)


def count_variables(inputs, outputs, message_size, hidden):
    meta = 2 * message_size * 4 * hidden + hidden * 4 * hidden + 4 * hidden + 2 * hidden * message_size
    return meta, inputs * outputs * 2 * hidden


def test_reference_solutions_pass(capsys):
    checks.check_vsml_messages(messages)
    checks.check_feedback_message(feedback_message)
    checks.check_vsml_variable_count(count_variables)
    out = capsys.readouterr().out
    for name in ("check_vsml_messages", "check_feedback_message", "check_vsml_variable_count"):
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


def test_alternative_correct_solutions_pass():
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
]


@pytest.mark.parametrize("check, function, words", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_typical_mistakes_are_rejected_in_plain_words(check, function, words):
    assert_rejected_in_plain_words(checks, check, function, words)


def test_an_unfinished_exercise_is_not_hidden():
    assert_unfinished_exercises_surface(checks, "check_vsml_messages", "check_feedback_message",
                                        "check_vsml_variable_count")


def test_a_crash_is_reported_with_its_error():
    with pytest.raises(ExerciseError, match="raised IndexError"):
        checks.check_feedback_message(lambda z, y, ways: torch.stack([torch.eye(ways)[y], z], -1)[100])
