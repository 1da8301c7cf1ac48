"""Notebook 05's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.teaching.checks import nb05 as checks
from course_lib.teaching.checks.common import ExerciseError


def shifted_reference(labels, is_query, ways):
    out = torch.zeros(len(labels), ways)
    out[1:] = F.one_hot(labels[:-1], ways).float() * (~is_query[:-1]).float()[:, None]
    return out


def ucb_reference(successes, counts, t, c=2.0):
    n = counts.clamp(min=1)
    return torch.where(counts == 0, torch.tensor(math.inf), successes / n + torch.sqrt(c * math.log(t) / n))


WRONG_05 = [
    (checks.check_shifted_label_inputs, lambda y, q, w: F.one_hot(y, w).float(), "answer"),
    (checks.check_shifted_label_inputs, lambda y, q, w: torch.roll(F.one_hot(y, w).float() * (~q).float()[:, None], 1, 0), "wraps"),
    (checks.check_shifted_label_inputs, lambda y, q, w: torch.cat([torch.zeros(1, w), F.one_hot(y[:-1], w).float()]), "query"),
    (checks.check_shifted_label_inputs, lambda y, q, w: torch.cat([F.one_hot(y[1:], w).float(), torch.zeros(1, w)]), "wrong way"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: s / n.clamp(min=1) + torch.sqrt(c * math.log(t) / n.clamp(min=1)), "never pulled"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s / n.clamp(min=1)), "exploration bonus"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s / n.clamp(min=1) + c * math.log(t) / n.clamp(min=1)), "square root"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s / n.clamp(min=1) + torch.sqrt(c * t / n.clamp(min=1))), "LOG"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s + torch.sqrt(c * math.log(t) / n.clamp(min=1))), "MEAN"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_shifted_label_inputs, shifted_reference), (checks.check_ucb1_scores, ucb_reference)],
    ids=["shifted_label_inputs", "ucb1_scores"],
)
def test_notebook_05_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-05 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_05, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG_05)])
def test_notebook_05_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_checks_agree_with_the_library():
    """The library's own function passes the check (the notebook's solution calls the same maths)."""
    from course_lib import sequence_learners

    checks.check_shifted_label_inputs(sequence_learners.shifted_label_inputs)
