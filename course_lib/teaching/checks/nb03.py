"""Checks for the exercises of notebook 03: metric-based meta-learning."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, diagnose, fail, fail_if, passed, run_for_tensor


def _class_means(z: torch.Tensor, y: torch.Tensor, ways: int) -> torch.Tensor:
    one_hot = F.one_hot(y, ways).to(z.dtype)
    return one_hot.T @ z / one_hot.sum(0)[:, None]


def _loss(z_query, centroids, query_y, scores=lambda d: -d.pow(2), reduction="mean"):
    return F.cross_entropy(scores(torch.cdist(z_query, centroids)), query_y, reduction=reduction)


def check_prototypical_loss(prototypical_loss: Callable) -> None:
    """``prototypical_loss(z_support [n_s, d], support_y, z_query [n_q, d], query_y, ways) -> loss``:
    cross-entropy of the logits ``-||z_q - c_k||^2`` with ``c_k`` the mean support embedding of class k."""
    name = "check_prototypical_loss"
    generator = torch.Generator().manual_seed(3)
    z_support = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([1, 0, 2, 1, 0, 2])  # 3-way 2-shot, not sorted
    z_query = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    query_y = torch.tensor([0, 2, 1, 1, 0])
    value = run_for_tensor(name, prototypical_loss, z_support, support_y, z_query, query_y, 3)
    fail_if(name, value.shape != (),
            f"return one number (the mean over the queries), not shape {tuple(value.shape)}")
    means = _class_means(z_support, support_y, 3)
    expected = _loss(z_query, means, query_y)
    if not close(value, expected):
        diagnose(name, value, [
            (_loss(z_query, means, query_y, lambda d: -d),
             "the logits must be minus the SQUARED Euclidean distance (you used the distance itself)"),
            (_loss(z_query, means, query_y, lambda d: d.pow(2)),
             "wrong sign: a nearer prototype must get a larger logit, so logits = -distance^2"),
            (_loss(z_query, F.one_hot(support_y, 3).to(z_support.dtype).T @ z_support, query_y),
             "a prototype is the MEAN of its class's support embeddings, not their sum"),
            (_loss(z_query, z_support[[1, 0, 2]], query_y),
             "a prototype averages all shots of a class, not only the first one"),
            (_loss(z_query, means, query_y, reduction="sum"), "take the mean over the queries, not the sum"),
            (_loss(z_query, _class_means(z_query, query_y, 3), query_y),
             "the prototypes must come from the SUPPORT set: averaging the queries uses their labels, which a "
             "few-shot learner never sees (a label leak)"),
        ], f"expected {float(expected):.5f}, got {float(value):.5f}: compute c_k = mean of "
           "z_support[support_y == k], logits[q, k] = -||z_query[q] - c_k||^2, then the mean cross-entropy "
           "with query_y")
    # Shift every embedding by the same vector: distances, hence the loss, must not change.
    shift = torch.randn(1, 4, generator=generator, dtype=torch.float64) * 3
    shifted = run_for_tensor(name, prototypical_loss, z_support + shift, support_y, z_query + shift, query_y, 3)
    fail_if(name, not close(shifted, expected, 1e-4),
            "the loss changed when every embedding moved by the same vector: use distances only")
    passed(name, 2)


def check_matching_probabilities(matching_probabilities: Callable) -> None:
    """``matching_probabilities(z_support [n_s, d], support_y, z_query [n_q, d], ways) -> p [n_q, ways]``:
    ``p[q, k] = sum_j softmax_j(cos(z_q, z_j)) [y_j = k]``."""
    name = "check_matching_probabilities"
    generator = torch.Generator().manual_seed(4)
    z_support = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([2, 0, 1, 1, 0, 2])
    z_query = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    p = run_for_tensor(name, matching_probabilities, z_support, support_y, z_query, 3)
    fail_if(name, p.shape == (4, 6),
            "you returned the attention over support examples [n_query, n_support]: add up the attention on "
            "the examples of each class to get [n_query, ways]")
    fail_if(name, p.shape != (4, 3),
            f"return one probability per query and class, shape (4, 3), got {tuple(p.shape)}")
    cosine = F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T
    one_hot = F.one_hot(support_y, 3).to(p.dtype)
    expected = torch.softmax(cosine, 1) @ one_hot
    if not close(p, expected):
        if not close(p.sum(1), torch.ones(4), 1e-4):
            fail_if(name, close(p, cosine @ one_hot),
                    "each row must sum to one: apply a softmax over the support examples before adding them up")
            fail(name, "each row of p must sum to one (a distribution over the classes)")
        diagnose(name, p, [
            (torch.softmax(z_query @ z_support.T, 1) @ one_hot,
             "use the cosine similarity (normalise both embeddings), not the plain dot product"),
            (torch.softmax(-torch.cdist(z_query, z_support).pow(2), 1) @ one_hot,
             "Matching Networks use the cosine similarity here, not minus the squared distance"),
            (torch.softmax(cosine @ one_hot, 1),
             "take the softmax over support EXAMPLES first, then sum per class (a softmax over summed "
             "similarities favours classes with more shots)"),
        ], "expected p[q, k] = sum over support examples j of class k of softmax_j(cos(z_q, z_j))")
    scaled = run_for_tensor(name, matching_probabilities, 7 * z_support, support_y, 0.1 * z_query, 3)
    fail_if(name, not close(scaled, expected, 1e-4),
            "the probabilities changed when embeddings were rescaled: the cosine similarity ignores lengths")
    passed(name, 2)
