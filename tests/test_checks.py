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


# ---------------------------------------------------------------- notebooks 03 and 05


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


def shifted_reference(labels, is_query, ways):
    out = torch.zeros(len(labels), ways)
    out[1:] = F.one_hot(labels[:-1], ways).float() * (~is_query[:-1]).float()[:, None]
    return out


def ucb_reference(successes, counts, t, c=2.0):
    n = counts.clamp(min=1)
    return torch.where(counts == 0, torch.tensor(math.inf), successes / n + torch.sqrt(c * math.log(t) / n))


import math  # noqa: E402  (used by the references above)

WRONG_03_05 = [
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
    [(checks.check_prototypical_loss, proto_reference), (checks.check_matching_probabilities, matching_reference),
     (checks.check_shifted_label_inputs, shifted_reference), (checks.check_ucb1_scores, ucb_reference)],
    ids=["prototypical_loss", "matching_probabilities", "shifted_label_inputs", "ucb1_scores"],
)
def test_notebooks_03_05_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-03/05 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_03_05, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG_03_05)])
def test_notebooks_03_05_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_checks_agree_with_the_library():
    """The library's own functions pass the checks (the notebook's solutions call the same maths)."""
    from course_lib import matching_nets, protonet, sequence_learners

    checks.check_prototypical_loss(lambda z_s, y_s, z_q, y_q, w: F.cross_entropy(
        -protonet.squared_euclidean(z_q, protonet.prototypes(z_s, y_s, w)), y_q))
    checks.check_matching_probabilities(lambda z_s, y_s, z_q, w: matching_nets.label_probabilities(
        matching_nets.attention(z_q, z_s), y_s, w))
    checks.check_shifted_label_inputs(sequence_learners.shifted_label_inputs)
