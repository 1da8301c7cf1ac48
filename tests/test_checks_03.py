"""Notebook 03's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib.teaching.checks import nb03 as checks
from course_lib.teaching.checks.common import ExerciseError


def proto_reference(z_s, y_s, z_q, y_q, ways):
    one_hot = F.one_hot(y_s, ways).to(z_s.dtype)
    centroids = one_hot.T @ z_s / one_hot.sum(0)[:, None]
    return F.cross_entropy(-((z_q[:, None] - centroids[None]) ** 2).sum(-1), y_q)


def proto_with(distance=None, centroid="mean", reduction="mean", sign=-1.0, support_from_query=False):
    def loss(z_s, y_s, z_q, y_q, ways):
        source, labels = (z_q, y_q) if support_from_query else (z_s, y_s)
        one_hot = F.one_hot(labels, ways).to(z_s.dtype)
        if centroid == "mean":
            c = one_hot.T @ source / one_hot.sum(0)[:, None]
        elif centroid == "sum":
            c = one_hot.T @ source
        else:  # the first shot of each class
            c = torch.stack([source[labels == k][0] for k in range(ways)])
        d = torch.cdist(z_q, c)
        d = d if distance == "plain" else d.pow(2)
        return F.cross_entropy(sign * d, y_q, reduction=reduction)
    return loss


def matching_reference(z_s, y_s, z_q, ways):
    a = torch.softmax(F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T, dim=1)
    return a @ F.one_hot(y_s, ways).to(a.dtype)


WRONG_03 = [
    (checks.check_prototypical_loss, proto_with(distance="plain"), "SQUARED"),
    (checks.check_prototypical_loss, proto_with(sign=1.0), "sign"),
    (checks.check_prototypical_loss, proto_with(centroid="sum"), "MEAN"),
    (checks.check_prototypical_loss, proto_with(centroid="first"), "first one"),
    (checks.check_prototypical_loss, proto_with(reduction="sum"), "not the sum"),
    (checks.check_prototypical_loss, proto_with(support_from_query=True), "label leak"),
    (checks.check_prototypical_loss, lambda z_s, y_s, z_q, y_q, w: F.cross_entropy(-(z_q @ z_s[:w].T), y_q), "expected"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax(F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T, 1), "add up"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: (F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T) @ F.one_hot(y_s, w).double(), "softmax"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax(z_q @ z_s.T, 1) @ F.one_hot(y_s, w).double(), "cosine"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax(-torch.cdist(z_q, z_s).pow(2), 1) @ F.one_hot(y_s, w).double(), "squared distance"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax((F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T) @ F.one_hot(y_s, w).double(), 1), "EXAMPLES first"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_prototypical_loss, proto_reference), (checks.check_matching_probabilities, matching_reference)],
    ids=["prototypical_loss", "matching_probabilities"],
)
def test_notebook_03_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-03 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_03, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG_03)])
def test_notebook_03_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_checks_agree_with_the_library():
    """The library's own functions pass the checks (the notebook's solutions call the same maths)."""
    from course_lib import matching_nets, protonet

    checks.check_prototypical_loss(lambda z_s, y_s, z_q, y_q, w: F.cross_entropy(
        -protonet.squared_euclidean(z_q, protonet.prototypes(z_s, y_s, w)), y_q))
    checks.check_matching_probabilities(lambda z_s, y_s, z_q, w: matching_nets.label_probabilities(
        matching_nets.attention(z_q, z_s), y_s, w))
