"""The exercise checks accept the reference solutions and reject typical mistakes with a useful message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import checks
from course_lib.checks import ExerciseError


# ---------------------------------------------------------------- notebook 01


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


# ---------------------------------------------------------------- notebook 02


def episode_reference(labels, ways, shots, queries, generator):
    classes = labels.unique()[torch.randperm(len(labels.unique()), generator=generator)[:ways]]
    support, query = [], []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[: shots + queries]]
        support.append(chosen[:shots])
        query.append(chosen[shots:])
    return (torch.cat(support), torch.arange(ways).repeat_interleave(shots),
            torch.cat(query), torch.arange(ways).repeat_interleave(queries))


def episode_swapped(labels, ways, shots, queries, generator):
    return episode_reference(labels, ways, queries, shots, generator)


def episode_original_labels(labels, ways, shots, queries, generator):
    s, sy, q, qy = episode_reference(labels, ways, shots, queries, generator)
    return s, labels[s], q, labels[q]


def episode_overlapping(labels, ways, shots, queries, generator):
    s, sy, q, qy = episode_reference(labels, ways, shots, queries + shots, generator)
    return s, sy, torch.cat([s, q])[: ways * queries], qy[: ways * queries]


def episode_fixed_classes(labels, ways, shots, queries, generator):
    return episode_reference(labels, ways, shots, queries, torch.Generator().manual_seed(0))


def episode_mismatched_query_labels(labels, ways, shots, queries, generator):
    s, sy, q, qy = episode_reference(labels, ways, shots, queries, generator)
    return s, sy, q.roll(queries), qy


def nn_reference(support_x, support_y, query_x):
    return support_y[torch.cdist(query_x.flatten(1), support_x.flatten(1)).argmin(1)]


def centroids_reference(features, labels, ways):
    return torch.stack([features[labels == k].mean(0) for k in range(ways)])


WRONG_02 = [
    (checks.check_sample_episode, episode_swapped, "swapped"),
    (checks.check_sample_episode, episode_original_labels, "relabel"),
    (checks.check_sample_episode, episode_overlapping, "also a support"),
    (checks.check_sample_episode, episode_fixed_classes, "same classes"),
    (checks.check_sample_episode, episode_mismatched_query_labels, "same class for both"),
    (checks.check_pixel_nearest_neighbour, lambda sx, sy, qx: torch.cdist(qx.flatten(1), sx.flatten(1)).argmin(1), "index"),
    (checks.check_pixel_nearest_neighbour, lambda sx, sy, qx: sy[torch.cdist(qx.flatten(1), sx.flatten(1)).argmax(1)], "farthest"),
    (checks.check_pixel_nearest_neighbour, lambda sx, sy, qx: sy[torch.cdist(qx.flatten(1), sx.flatten(1), p=1).argmin(1)], "absolute"),
    (checks.check_class_centroids, lambda f, y, w: torch.stack([f[y == k].sum(0) for k in range(w)]), "summed"),
    (checks.check_class_centroids, lambda f, y, w: f.mean(0).expand(w, -1), "only the examples"),
    (checks.check_class_centroids, lambda f, y, w: torch.stack([f[y == k][0] for k in range(w)]), "first example"),
    (checks.check_class_centroids, lambda f, y, w: torch.stack([f[y == k].mean(0) for k in range(w)]).T, "shape"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_sample_episode, episode_reference), (checks.check_pixel_nearest_neighbour, nn_reference),
     (checks.check_class_centroids, centroids_reference)],
    ids=["sample_episode", "pixel_nearest_neighbour", "class_centroids"],
)
def test_notebook_02_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-02 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_02, ids=[f"02-{i}" for i in range(len(WRONG_02))])
def test_notebook_02_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_a_placeholder_is_reported_as_not_done():
    """The student copy's placeholder propagates as NotImplementedError, not as a wrong answer."""
    def placeholder(*args):
        raise NotImplementedError("Exercise: write this part")

    with pytest.raises(NotImplementedError):
        checks.check_sgd_step(placeholder)


def test_a_crash_names_the_exception():
    """A function that crashes is reported with its exception type."""
    with pytest.raises(ExerciseError, match="IndexError"):
        checks.check_class_centroids(lambda f, y, w: f[100])
