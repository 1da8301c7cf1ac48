"""Notebook 08's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.teaching.checks import nb08 as checks
from course_lib.teaching.checks.common import ExerciseError

# ---------------------------------------------------------------- reference solutions (as in the notebook)


def make_task_batch(x, classes, W, perm):
    return x @ W, perm[classes]


def pair_tokens(inputs, labels, num_classes):
    previous_label = torch.zeros(len(labels), num_classes)
    previous_label[1:] = F.one_hot(labels[:-1], num_classes).float()
    previous_input = torch.zeros_like(inputs)
    previous_input[1:] = inputs[:-1]
    return torch.cat([inputs, previous_label, previous_input], dim=-1)


def accuracy_by_position(logits, targets):
    return (logits.argmax(-1) == targets).float().mean(0)


def test_reference_solutions_pass(capsys):
    checks.check_task_batch(make_task_batch)
    checks.check_pair_tokens(pair_tokens)
    checks.check_accuracy_by_position(accuracy_by_position)
    out = capsys.readouterr().out
    for name in ("check_task_batch", "check_pair_tokens", "check_accuracy_by_position"):
        assert f"✓ {name}" in out


def test_alternative_correct_solutions_pass():
    checks.check_task_batch(lambda x, c, W, p: (torch.einsum("ld,dk->lk", x, W), p.index_select(0, c)))
    checks.check_pair_tokens(lambda x, y, C: torch.cat(
        [x, F.pad(F.one_hot(y, C).float()[:-1], (0, 0, 1, 0)), F.pad(x[:-1], (0, 0, 1, 0))], -1))
    checks.check_accuracy_by_position(lambda l, t: (l.softmax(-1).argmax(-1) == t).double().sum(0) / len(t))


# ---------------------------------------------------------------- typical mistakes


def rolled_tokens(inputs, labels, num_classes):
    return torch.cat([inputs, F.one_hot(labels.roll(1), num_classes).float(), inputs.roll(1, 0)], -1)


def rolled_inputs_only(inputs, labels, num_classes):
    out = pair_tokens(inputs, labels, num_classes)
    out[0, -inputs.shape[1]:] = inputs[-1]
    return out


WRONG = [
    # (check, wrong function, words the message must contain)
    ("check_task_batch", lambda x, c, W, p: (x, p[c]), "not projected"),
    ("check_task_batch", lambda x, c, W, p: (x @ W.T if W.shape[0] == W.shape[1] else x @ W, p[c]), "transposed"),
    ("check_task_batch", lambda x, c, W, p: (x @ W, c), "not permuted"),
    ("check_task_batch", lambda x, c, W, p: (x @ W, p.argsort()[c]), "inverse permutation"),
    ("check_task_batch", lambda x, c, W, p: x @ W, "two things"),
    ("check_pair_tokens", lambda x, y, C: torch.cat([x, F.pad(F.one_hot(y[:-1], C).float(), (0, 0, 1, 0))], -1),
     "paper's token"),
    ("check_pair_tokens", lambda x, y, C: torch.cat([x, F.one_hot(y, C).float(), F.pad(x[:-1], (0, 0, 1, 0))], -1),
     "answer it must predict"),
    ("check_pair_tokens", rolled_tokens, "wraps around"),
    ("check_pair_tokens", rolled_inputs_only, "wraps around"),
    ("check_pair_tokens", lambda x, y, C: torch.cat(
        [x, F.pad(F.one_hot(y[1:], C).float(), (0, 0, 0, 1)), F.pad(x[:-1], (0, 0, 1, 0))], -1), "wrong way"),
    ("check_pair_tokens", lambda x, y, C: torch.cat(
        [x, F.pad(F.one_hot(y[:-1], C).float(), (0, 0, 1, 0)), x], -1), "repeats x_t"),
    ("check_pair_tokens", lambda x, y, C: torch.cat(
        [x, F.pad(F.one_hot(y[:-1], C).float(), (0, 0, 1, 0)), F.pad(x[1:], (0, 0, 0, 1))], -1), "wrong way"),
    ("check_pair_tokens", lambda x, y, C: torch.cat(
        [F.pad(x[:-1], (0, 0, 1, 0)), F.pad(F.one_hot(y[:-1], C).float(), (0, 0, 1, 0)), x], -1), "another order"),
    ("check_accuracy_by_position", lambda l, t: (l.argmax(-1) == t).float().mean(1), "averaged over positions"),
    ("check_accuracy_by_position", lambda l, t: 100 * (l.argmax(-1) == t).float().mean(0), "percentages"),
    ("check_accuracy_by_position", lambda l, t: (l.argmax(-1) == t).float().sum(0), "counts"),
    ("check_accuracy_by_position",
     lambda l, t: (l.argmax(-1) == t).float().mean(0).cumsum(0) / torch.arange(1, t.shape[1] + 1), "running"),
    ("check_accuracy_by_position",
     lambda l, t: l.softmax(-1).gather(2, t.unsqueeze(-1)).squeeze(-1).mean(0), "probabilities"),
    ("check_accuracy_by_position", lambda l, t: (l.argmax(-1) == t).float(), "shape"),
]


@pytest.mark.parametrize("check,wrong,words", WRONG, ids=[f"{c}-{w}" for c, _, w in WRONG])
def test_typical_mistakes_are_named(check, wrong, words):
    with pytest.raises(ExerciseError) as error:
        getattr(checks, check)(wrong)
    assert words in str(error.value), str(error.value)


def test_a_crash_in_the_students_code_is_reported_with_its_error():
    def broken(x, classes, W, perm):
        raise IndexError("index 9 is out of bounds")

    with pytest.raises(ExerciseError, match="raised IndexError"):
        checks.check_task_batch(broken)


def test_placeholders_are_not_hidden():
    def placeholder(*args):
        raise NotImplementedError("Exercise: write it")

    for check in (checks.check_task_batch, checks.check_pair_tokens, checks.check_accuracy_by_position):
        with pytest.raises(NotImplementedError):
            check(placeholder)
