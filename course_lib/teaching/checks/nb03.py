"""Checks for the exercises of notebook 03: metric-based meta-learning."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, fail, passed, run_student


def _prototypical_reference(z_support, support_y, z_query, query_y, ways):
    one_hot = F.one_hot(support_y, ways).to(z_support.dtype)
    centroids = one_hot.T @ z_support / one_hot.sum(0)[:, None]
    logits = -torch.cdist(z_query, centroids).pow(2)
    return F.cross_entropy(logits, query_y)


def check_prototypical_loss(prototypical_loss: Callable) -> None:
    """``prototypical_loss(z_support [n_s, d], support_y, z_query [n_q, d], query_y, ways) -> loss``:
    cross-entropy of the logits ``-||z_q - c_k||^2`` with ``c_k`` the mean support embedding of class k."""
    name = "check_prototypical_loss"
    generator = torch.Generator().manual_seed(3)
    z_support = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([1, 0, 2, 1, 0, 2])  # 3-way 2-shot, not sorted
    z_query = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    query_y = torch.tensor([0, 2, 1, 1, 0])
    value = torch.as_tensor(run_student(name, prototypical_loss, z_support, support_y, z_query, query_y, 3))
    if value.shape != ():
        fail(name, f"return one number (the mean over the queries), not shape {tuple(value.shape)}")
    expected = _prototypical_reference(z_support, support_y, z_query, query_y, 3)
    if close(value, expected):
        # Shift every embedding by the same vector: distances, hence the loss, must not change.
        shift = torch.randn(1, 4, generator=generator, dtype=torch.float64) * 3
        shifted = torch.as_tensor(run_student(name, prototypical_loss, z_support + shift, support_y, z_query + shift, query_y, 3))
        if not close(shifted, expected, 1e-4):
            fail(name, "the loss changed when every embedding moved by the same vector: use distances only")
        passed(name, 2)
        return
    one_hot = F.one_hot(support_y, 3).to(z_support.dtype)
    means = one_hot.T @ z_support / 2
    sums = one_hot.T @ z_support
    distances = torch.cdist(z_query, means)
    guesses = [
        (F.cross_entropy(-distances, query_y), "the logits must be minus the SQUARED Euclidean distance "
                                               "(you used the distance itself)"),
        (F.cross_entropy(distances.pow(2), query_y), "wrong sign: a nearer prototype must get a larger logit, "
                                                     "so logits = -distance^2"),
        (F.cross_entropy(-torch.cdist(z_query, sums).pow(2), query_y), "a prototype is the MEAN of its class's "
                                                                       "support embeddings, not their sum"),
        (F.cross_entropy(-torch.cdist(z_query, z_support[[1, 0, 2]]).pow(2), query_y),
         "a prototype averages all shots of a class, not only the first one"),
        (F.cross_entropy(-distances.pow(2), query_y, reduction="sum"), "take the mean over the queries, not the sum"),
    ]
    query_means = F.one_hot(query_y, 3).to(z_query.dtype)
    query_means = query_means.T @ z_query / query_means.sum(0)[:, None]
    guesses.append((F.cross_entropy(-torch.cdist(z_query, query_means).pow(2), query_y),
                    "the prototypes must come from the SUPPORT set: averaging the queries uses their labels, "
                    "which a few-shot learner never sees (a label leak)"))
    for guess, message in guesses:
        if close(value, guess):
            fail(name, message)
    fail(name, f"expected {float(expected):.5f}, got {float(value):.5f}: compute c_k = mean of z_support[support_y == k], "
                "logits[q, k] = -||z_query[q] - c_k||^2, then the mean cross-entropy with query_y")


def check_matching_probabilities(matching_probabilities: Callable) -> None:
    """``matching_probabilities(z_support [n_s, d], support_y, z_query [n_q, d], ways) -> p [n_q, ways]``:
    ``p[q, k] = sum_j softmax_j(cos(z_q, z_j)) [y_j = k]``."""
    name = "check_matching_probabilities"
    generator = torch.Generator().manual_seed(4)
    z_support = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([2, 0, 1, 1, 0, 2])
    z_query = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    p = torch.as_tensor(run_student(name, matching_probabilities, z_support, support_y, z_query, 3))
    if p.shape != (4, 3):
        if p.shape == (4, 6):
            fail(name, "you returned the attention over support examples [n_query, n_support]: add up the "
                        "attention on the examples of each class to get [n_query, ways]")
        fail(name, f"return one probability per query and class, shape (4, 3), got {tuple(p.shape)}")
    cosine = F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T
    one_hot = F.one_hot(support_y, 3).to(p.dtype)
    expected = torch.softmax(cosine, 1) @ one_hot
    if close(p, expected):
        scaled = torch.as_tensor(run_student(name, matching_probabilities, 7 * z_support, support_y, 0.1 * z_query, 3))
        if not close(scaled, expected, 1e-4):
            fail(name, "the probabilities changed when embeddings were rescaled: the cosine similarity ignores lengths")
        passed(name, 2)
        return
    if not close(p.sum(1), torch.ones(4), 1e-4):
        if close(p, cosine @ one_hot):
            fail(name, "each row must sum to one: apply a softmax over the support examples before adding them up")
        fail(name, "each row of p must sum to one (a distribution over the classes)")
    if close(p, torch.softmax(z_query @ z_support.T, 1) @ one_hot):
        fail(name, "use the cosine similarity (normalise both embeddings), not the plain dot product")
    if close(p, torch.softmax(-torch.cdist(z_query, z_support).pow(2), 1) @ one_hot):
        fail(name, "Matching Networks use the cosine similarity here, not minus the squared distance")
    if close(p, torch.softmax(cosine @ one_hot, 1)):
        fail(name, "take the softmax over support EXAMPLES first, then sum per class "
                    "(a softmax over summed similarities favours classes with more shots)")
    fail(name, "expected p[q, k] = sum over support examples j of class k of softmax_j(cos(z_q, z_j))")
