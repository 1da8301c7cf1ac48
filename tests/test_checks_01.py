"""Notebook 01's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.teaching.checks import nb01 as checks
from course_lib.teaching.checks.common import ExerciseError


def ce_reference(logits, labels):
    return -(logits - torch.logsumexp(logits, dim=1, keepdim=True))[torch.arange(len(labels)), labels].mean()


def sgd_reference(params, grads, lr):
    return [p - lr * g for p, g in zip(params, grads)]


def k_reference(labels, k, generator):
    return torch.cat([
        (labels == c).nonzero().flatten()[torch.randperm(int((labels == c).sum()), generator=generator)[:k]]
        for c in labels.unique()
    ])


def sgd_in_place(params, grads, lr):
    for p, g in zip(params, grads):
        p.sub_(lr * g)
    return params


WRONG_01 = [
    # (check, wrong implementation, words the message must contain)
    (checks.check_cross_entropy, lambda l, y: -(l.log_softmax(1)[torch.arange(len(y)), y]).sum(), "mean"),
    (checks.check_cross_entropy, lambda l, y: l.log_softmax(1)[torch.arange(len(y)), y].mean(), "sign"),
    (checks.check_cross_entropy, lambda l, y: -(l.softmax(1)[torch.arange(len(y)), y]).mean(), "log of the softmax"),
    (checks.check_cross_entropy, lambda l, y: -(l.log_softmax(1)[:, 0]).mean(), "own label"),
    (checks.check_cross_entropy, lambda l, y: -(l.exp() / l.exp().sum(1, keepdim=True)).log()[torch.arange(len(y)), y].mean(), "stabl"),
    (checks.check_cross_entropy, lambda l, y: F.cross_entropy(l, y, reduction="none"), "one number"),
    (checks.check_sgd_step, lambda p, g, lr: [a + lr * b for a, b in zip(p, g)], "sign"),
    (checks.check_sgd_step, lambda p, g, lr: [a - b for a, b in zip(p, g)], "learning rate"),
    (checks.check_sgd_step, sgd_in_place, "in place"),
    (checks.check_sgd_step, lambda p, g, lr: [-lr * b for b in g], "updated parameters"),
    (checks.check_k_per_class, lambda y, k, gen: torch.randperm(len(y), generator=gen)[:k], "per class"),
    (checks.check_k_per_class, lambda y, k, gen: torch.cat([(y == c).nonzero().flatten()[:k] for c in y.unique()]), "same examples"),
    (checks.check_k_per_class, lambda y, k, gen: torch.cat([(y == c).nonzero().flatten()[torch.randint(int((y == c).sum()), (k,), generator=gen)] for c in y.unique()]), "twice"),
    (checks.check_k_per_class, lambda y, k, gen: torch.cat([(y == c).nonzero().flatten()[torch.randperm(int((y == c).sum()), generator=gen)[: k + 1]] for c in y.unique()]), "exactly k"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_cross_entropy, ce_reference), (checks.check_sgd_step, sgd_reference), (checks.check_k_per_class, k_reference)],
    ids=["cross_entropy", "sgd_step", "k_per_class"],
)
def test_notebook_01_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-01 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_01, ids=[f"01-{i}" for i in range(len(WRONG_01))])
def test_notebook_01_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_a_placeholder_is_reported_as_not_done():
    """The student copy's placeholder propagates as NotImplementedError, not as a wrong answer."""
    def placeholder(*args):
        raise NotImplementedError("Exercise: write this part")

    with pytest.raises(NotImplementedError):
        checks.check_sgd_step(placeholder)
