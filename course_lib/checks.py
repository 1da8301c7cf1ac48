"""Checks for the exercises: call ``check_<name>(your_function)`` after writing it.

Each check runs your function on small cases with known answers and either
prints that all cases pass or raises :class:`ExerciseError` saying in plain
words what is wrong (a shape, a sign, a missing mean), not just "failed".
Grouped by the notebook whose exercises they check.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


class ExerciseError(AssertionError):
    """Your function gave a wrong answer on a case with a known answer."""


def _fail(check: str, message: str) -> None:
    raise ExerciseError(f"{check}: {message}")


def _run(check: str, function: Callable, *args):
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # show the student's error with the case that caused it
        raise ExerciseError(f"{check}: your function raised {type(error).__name__}: {error}") from error


def _passed(check: str, cases: int) -> None:
    print(f"✓ {check}: all {cases} cases pass")


def _close(a, b, tol: float = 1e-5) -> bool:
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol, rtol=tol)


# --------------------------------------------------------------------------
# Notebook 01: supervised learning
# --------------------------------------------------------------------------


def check_cross_entropy(cross_entropy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``cross_entropy(logits [B, C], labels [B]) -> mean of -log softmax(logits)[i, labels[i]]``."""
    name = "check_cross_entropy"
    uniform = torch.zeros(4, 3)
    value = torch.as_tensor(_run(name, cross_entropy, uniform, torch.tensor([0, 1, 2, 0])))
    if value.shape != ():
        _fail(name, f"return one number (the mean over the batch), not shape {tuple(value.shape)}")
    if _close(value, 4 * math.log(3)):
        _fail(name, "you summed the losses of the batch: take the mean instead")
    if _close(value, -math.log(3)):
        _fail(name, "wrong sign: the loss is -log p(label), which is >= 0")
    if _close(value, 1 / 3) or _close(value, -1 / 3) or _close(value, 2 / 3):
        _fail(name, "use the log of the softmax probability, not the probability itself")
    if not _close(value, math.log(3)):
        _fail(name, f"with all logits equal the loss is log(C) = {math.log(3):.4f}, you returned {float(value):.4f}")
    logits, labels = torch.tensor([[0.0, 5.0], [5.0, 0.0]]), torch.tensor([0, 1])
    value = _run(name, cross_entropy, logits, labels)
    if not _close(value, F.cross_entropy(logits, labels)):
        _fail(name, "take each example's probability at its own label: logits[i, labels[i]] "
                    "(both examples here have a wrong top class, so the loss must be large)")
    big = torch.tensor([[1000.0, 0.0, -1000.0]])
    value = torch.as_tensor(_run(name, cross_entropy, big, torch.tensor([0])))
    if not torch.isfinite(value).all():
        _fail(name, "logits of size 1000 give inf or nan: compute log-softmax stably (subtract the max, "
                    "or use torch.logsumexp)")
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(16, 10, generator=generator), torch.randint(10, (16,), generator=generator)
    if not _close(_run(name, cross_entropy, logits, labels), F.cross_entropy(logits, labels)):
        _fail(name, "a random batch does not match the reference cross-entropy")
    _passed(name, 4)


def check_sgd_step(sgd_step: Callable[[list, list, float], list]) -> None:
    """``sgd_step(params, grads, lr) -> [p - lr * g for each pair]``, leaving params unchanged."""
    name = "check_sgd_step"
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    grads = [torch.tensor([0.5, 1.0]), torch.tensor([[-2.0]])]
    kept = [p.clone() for p in params]
    lr = 0.1
    new = _run(name, sgd_step, params, grads, lr)
    if not all(torch.equal(p, k) for p, k in zip(params, kept)):
        _fail(name, "you changed the parameters in place: return new tensors and leave the inputs as they were")
    if not isinstance(new, (list, tuple)) or len(new) != len(params):
        _fail(name, f"return a list with one new tensor per parameter ({len(params)} here)")
    for p, g, n in zip(params, grads, new):
        if n.shape != p.shape:
            _fail(name, f"a new parameter has shape {tuple(n.shape)}, the old one {tuple(p.shape)}")
        if torch.allclose(n, p + lr * g):
            _fail(name, "wrong sign: step against the gradient, theta - lr * grad")
        if torch.allclose(n, p - g):
            _fail(name, "multiply the gradient by the learning rate")
        if torch.allclose(n, -lr * g) or torch.allclose(n, g):
            _fail(name, "return the updated parameters, not the update or the gradient")
        if not torch.allclose(n, p - lr * g):
            _fail(name, "the new value must be theta - lr * grad")
    _passed(name, len(params))


def check_k_per_class(k_per_class: Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]) -> None:
    """``k_per_class(labels, k, generator) -> indices``: exactly k random, distinct examples of every class."""
    name = "check_k_per_class"
    labels = torch.arange(4).repeat_interleave(6)[torch.randperm(24, generator=torch.Generator().manual_seed(1))]
    picks = []
    for seed in range(5):
        index = torch.as_tensor(_run(name, k_per_class, labels, 2, torch.Generator().manual_seed(seed)))
        if index.dtype not in (torch.int64, torch.int32) or index.ndim != 1:
            _fail(name, f"return a 1-D tensor of integer indices, got {index.dtype} of shape {tuple(index.shape)}")
        if len(index) and (index.min() < 0 or index.max() >= len(labels)):
            _fail(name, "an index is outside 0..len(labels)-1")
        if index.unique().numel() != index.numel():
            _fail(name, "an example was chosen twice: draw without replacement within each class")
        counts = torch.bincount(labels[index], minlength=4)
        if counts.sum() == 2:
            _fail(name, "k means k examples *per class* (here 2 x 4 classes = 8), not k in total")
        if not torch.all(counts == 2):
            _fail(name, f"examples per class {counts.tolist()}, want exactly k = 2 of each of the 4 classes")
        picks.append(sorted(index.tolist()))
    if all(p == picks[0] for p in picks):
        _fail(name, "every seed gives the same examples: choose them at random with the generator")
    _passed(name, len(picks))


# --------------------------------------------------------------------------
# Notebook 02: few-shot classification
# --------------------------------------------------------------------------


def check_sample_episode(sample_episode: Callable) -> None:
    """``sample_episode(labels, ways, shots, queries, generator) -> (support_index, support_y, query_index, query_y)``.

    Indices point into the dataset; ``support_y``/``query_y`` are the episode
    labels 0..ways-1, sorted by label.
    """
    name = "check_sample_episode"
    labels = torch.arange(10).repeat_interleave(8)  # 10 classes x 8 examples
    ways, shots, queries = 3, 2, 4
    class_sets = []
    for seed in range(6):
        result = _run(name, sample_episode, labels, ways, shots, queries, torch.Generator().manual_seed(seed))
        if not isinstance(result, (tuple, list)) or len(result) != 4:
            _fail(name, "return four tensors: support_index, support_y, query_index, query_y")
        support_index, support_y, query_index, query_y = (torch.as_tensor(t) for t in result)
        if len(support_index) == ways * queries and len(query_index) == ways * shots:
            _fail(name, "shots and queries are swapped: the support set holds ways * shots examples")
        if len(support_index) != ways * shots or len(support_y) != ways * shots:
            _fail(name, f"the support set must hold ways * shots = {ways * shots} examples, got {len(support_index)}")
        if len(query_index) != ways * queries or len(query_y) != ways * queries:
            _fail(name, f"the query set must hold ways * queries = {ways * queries} examples, got {len(query_index)}")
        if sorted(set(support_y.tolist()) | set(query_y.tolist())) != list(range(ways)):
            _fail(name, f"episode labels must be 0..{ways - 1} (relabel the chosen classes), "
                        f"got {sorted(set(support_y.tolist()))}")
        if not torch.equal(support_y, support_y.sort().values) or not torch.equal(query_y, query_y.sort().values):
            _fail(name, "sort the support and query sets by episode label (all of label 0 first, ...)")
        if set(support_index.tolist()) & set(query_index.tolist()):
            _fail(name, "a query example is also a support example: draw shots + queries distinct examples per class")
        original = labels[support_index]
        for k in range(ways):
            support_classes = set(original[support_y == k].tolist())
            query_classes = set(labels[query_index][query_y == k].tolist())
            if len(support_classes) != 1:
                _fail(name, f"the support examples labelled {k} come from several classes {sorted(support_classes)}")
            if query_classes != support_classes:
                _fail(name, f"label {k} means class {support_classes} in the support set but {query_classes} "
                            "in the query set: use the same class for both")
        chosen = labels[support_index].unique()
        if len(chosen) != ways:
            _fail(name, "a class was chosen twice: pick `ways` distinct classes (without replacement)")
        class_sets.append(tuple(sorted(chosen.tolist())))
    if len(set(class_sets)) == 1:
        _fail(name, "every seed gives the same classes: choose them at random with the generator")
    _passed(name, len(class_sets))


def check_pixel_nearest_neighbour(nearest_neighbour: Callable) -> None:
    """``nearest_neighbour(support_x, support_y, query_x) -> predicted labels [n_query]`` (Euclidean)."""
    name = "check_pixel_nearest_neighbour"
    generator = torch.Generator().manual_seed(0)
    support_x = torch.rand(6, 1, 4, 4, generator=generator)
    support_y = torch.tensor([2, 0, 1, 2, 1, 0])  # 3-way 2-shot, deliberately not sorted
    order = torch.tensor([4, 0, 5, 2, 1, 3])
    predicted = torch.as_tensor(_run(name, nearest_neighbour, support_x, support_y, support_x[order]))
    if predicted.shape != (6,):
        _fail(name, f"return one predicted label per query, shape (6,), got {tuple(predicted.shape)}")
    if torch.equal(predicted, order):
        _fail(name, "you returned the index of the nearest support image: return its label, support_y[index]")
    if not torch.equal(predicted, support_y[order]):
        distances_far = torch.cdist(support_x[order].flatten(1), support_x.flatten(1)).argmax(1)
        if torch.equal(predicted, support_y[distances_far]):
            _fail(name, "you picked the farthest support image: take the smallest distance")
        _fail(name, "queries that are copies of support images must get those images' labels")
    # Euclidean and L1 distances disagree here: the nearest in L2 is the second image.
    support_x = torch.tensor([[3.0, 0.0], [2.0, 2.0]]).reshape(2, 1, 1, 2)
    predicted = torch.as_tensor(_run(name, nearest_neighbour, support_x, torch.tensor([0, 1]), torch.zeros(1, 1, 1, 2)))
    if predicted.reshape(-1).tolist() != [1]:
        _fail(name, "use the Euclidean distance (square root of the summed squared differences, or its square), "
                    "not the sum of absolute differences")
    _passed(name, 2)


def check_class_centroids(class_centroids: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> None:
    """``class_centroids(features [n, d], labels [n], ways) -> [ways, d]``: row k = mean of label k."""
    name = "check_class_centroids"
    features = torch.tensor([[1.0, 0.0], [0.0, 4.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, 0, 1, 2])  # unsorted, and class 2 has one shot
    expected = torch.tensor([[2.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    centroids = torch.as_tensor(_run(name, class_centroids, features, labels, 3))
    if centroids.shape != (3, 2):
        _fail(name, f"return one centroid per class, shape (ways, d) = (3, 2), got {tuple(centroids.shape)}")
    if torch.allclose(centroids, torch.tensor([[4.0, 0.0], [0.0, 6.0], [5.0, 5.0]])):
        _fail(name, "you summed the features of each class: divide by the number of its examples (mean)")
    if torch.allclose(centroids, features.mean(0).expand(3, 2)):
        _fail(name, "every row is the mean over all examples: average only the examples with label k")
    if torch.allclose(centroids, features[:3]) or torch.allclose(centroids, features[[0, 1, 4]]):
        _fail(name, "take the mean of all examples of a class, not its first example")
    if not torch.allclose(centroids, expected):
        _fail(name, f"row k must be the mean of the features with label k; expected {expected.tolist()}, "
                    f"got {centroids.tolist()}")
    _passed(name, 1)


# --------------------------------------------------------------------------
# Notebook 03: metric-based meta-learning
# --------------------------------------------------------------------------


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
    value = torch.as_tensor(_run(name, prototypical_loss, z_support, support_y, z_query, query_y, 3))
    if value.shape != ():
        _fail(name, f"return one number (the mean over the queries), not shape {tuple(value.shape)}")
    expected = _prototypical_reference(z_support, support_y, z_query, query_y, 3)
    if _close(value, expected):
        # Shift every embedding by the same vector: distances, hence the loss, must not change.
        shift = torch.randn(1, 4, generator=generator, dtype=torch.float64) * 3
        shifted = torch.as_tensor(_run(name, prototypical_loss, z_support + shift, support_y, z_query + shift, query_y, 3))
        if not _close(shifted, expected, 1e-4):
            _fail(name, "the loss changed when every embedding moved by the same vector: use distances only")
        _passed(name, 2)
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
        if _close(value, guess):
            _fail(name, message)
    _fail(name, f"expected {float(expected):.5f}, got {float(value):.5f}: compute c_k = mean of z_support[support_y == k], "
                "logits[q, k] = -||z_query[q] - c_k||^2, then the mean cross-entropy with query_y")


def check_matching_probabilities(matching_probabilities: Callable) -> None:
    """``matching_probabilities(z_support [n_s, d], support_y, z_query [n_q, d], ways) -> p [n_q, ways]``:
    ``p[q, k] = sum_j softmax_j(cos(z_q, z_j)) [y_j = k]``."""
    name = "check_matching_probabilities"
    generator = torch.Generator().manual_seed(4)
    z_support = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([2, 0, 1, 1, 0, 2])
    z_query = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    p = torch.as_tensor(_run(name, matching_probabilities, z_support, support_y, z_query, 3))
    if p.shape != (4, 3):
        if p.shape == (4, 6):
            _fail(name, "you returned the attention over support examples [n_query, n_support]: add up the "
                        "attention on the examples of each class to get [n_query, ways]")
        _fail(name, f"return one probability per query and class, shape (4, 3), got {tuple(p.shape)}")
    cosine = F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T
    one_hot = F.one_hot(support_y, 3).to(p.dtype)
    expected = torch.softmax(cosine, 1) @ one_hot
    if _close(p, expected):
        scaled = torch.as_tensor(_run(name, matching_probabilities, 7 * z_support, support_y, 0.1 * z_query, 3))
        if not _close(scaled, expected, 1e-4):
            _fail(name, "the probabilities changed when embeddings were rescaled: the cosine similarity ignores lengths")
        _passed(name, 2)
        return
    if not _close(p.sum(1), torch.ones(4), 1e-4):
        if _close(p, cosine @ one_hot):
            _fail(name, "each row must sum to one: apply a softmax over the support examples before adding them up")
        _fail(name, "each row of p must sum to one (a distribution over the classes)")
    if _close(p, torch.softmax(z_query @ z_support.T, 1) @ one_hot):
        _fail(name, "use the cosine similarity (normalise both embeddings), not the plain dot product")
    if _close(p, torch.softmax(-torch.cdist(z_query, z_support).pow(2), 1) @ one_hot):
        _fail(name, "Matching Networks use the cosine similarity here, not minus the squared distance")
    if _close(p, torch.softmax(cosine @ one_hot, 1)):
        _fail(name, "take the softmax over support EXAMPLES first, then sum per class "
                    "(a softmax over summed similarities favours classes with more shots)")
    _fail(name, "expected p[q, k] = sum over support examples j of class k of softmax_j(cos(z_q, z_j))")


# --------------------------------------------------------------------------
# Notebook 05: black-box meta-learning
# --------------------------------------------------------------------------


def check_shifted_label_inputs(shifted_label_inputs: Callable) -> None:
    """``shifted_label_inputs(labels [L], is_query [L] bool, ways) -> [L, ways]``: row t is
    onehot(labels[t-1]) when step t-1 is a support step, zeros at t = 0 and after a query."""
    name = "check_shifted_label_inputs"
    labels = torch.tensor([1, 0, 2, 2, 0, 1, 2])
    is_query = torch.tensor([False, False, False, False, True, True, True])
    out = torch.as_tensor(_run(name, shifted_label_inputs, labels, is_query, 3)).float()
    if out.shape != (7, 3):
        _fail(name, f"return one row of length ways per step, shape (7, 3), got {tuple(out.shape)}")
    one_hot = F.one_hot(labels, 3).float()
    expected = torch.zeros(7, 3)
    expected[1:5] = one_hot[:4]
    if torch.equal(out, expected):
        # A sequence that ends on a support step: nothing may wrap around to t = 0.
        tail = torch.as_tensor(_run(name, shifted_label_inputs, torch.tensor([0, 1, 1]),
                                    torch.zeros(3, dtype=torch.bool), 2)).float()
        if tail.shape == (3, 2) and tail[0].abs().sum() > 0:
            _fail(name, "row 0 holds the last label (torch.roll wraps around): at t = 0 no label has been seen, "
                        "use zeros")
        if not torch.equal(tail, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])):
            _fail(name, f"for labels [0, 1, 1] (all support) expected [[0, 0], [1, 0], [0, 1]], got {tail.tolist()}")
        _passed(name, 2)
        return
    if torch.equal(out, one_hot) or torch.equal(out, one_hot * (~is_query).float()[:, None]):
        _fail(name, "row t holds the label of step t itself: the model would read the answer it must predict. "
                    "Shift by one: row t = onehot(labels[t-1])")
    if torch.equal(out[0], one_hot[-1]):
        _fail(name, "row 0 holds the last label (torch.roll wraps around): at t = 0 no label has been seen, use zeros")
    if torch.equal(out[:-1], one_hot[1:]):
        _fail(name, "shifted the wrong way: row t must hold the PREVIOUS step's label, not the next one's")
    if (out[5:] != 0).any():
        _fail(name, "a query's label is given to the next step: after a query step the label input must be zeros, "
                    "else the model is told the answers of the queries")
    _fail(name, f"expected {expected.int().tolist()}, got {out.int().tolist()}")


def check_ucb1_scores(ucb1_scores: Callable) -> None:
    """``ucb1_scores(successes [K], counts [K], t, c=2.0) -> [K]``: mean + sqrt(c ln t / n), inf for untried arms."""
    name = "check_ucb1_scores"
    successes, counts = torch.tensor([3.0, 1.0, 0.0, 0.0]), torch.tensor([4.0, 2.0, 1.0, 0.0])
    t = 7
    scores = torch.as_tensor(_run(name, ucb1_scores, successes, counts, t, 2.0)).double()
    if scores.shape != (4,):
        _fail(name, f"return one score per arm, shape (4,), got {tuple(scores.shape)}")
    if not torch.isinf(scores[3]) or scores[3] < 0:
        _fail(name, "an arm never pulled must get score +inf, so that every arm is tried once")
    n = counts[:3].double()
    means = successes[:3].double() / n
    expected = means + torch.sqrt(2.0 * math.log(t) / n)
    if _close(scores[:3], expected):
        _passed(name, 1)
        return
    if _close(scores[:3], means):
        _fail(name, "no exploration bonus: add sqrt(c ln t / n_k) to each arm's mean reward")
    if _close(scores[:3], means + 2.0 * math.log(t) / n):
        _fail(name, "take the square root of the bonus: sqrt(c ln t / n_k)")
    if _close(scores[:3], means + torch.sqrt(2.0 * t / n)):
        _fail(name, "the bonus grows with the LOG of t: sqrt(c ln t / n_k)")
    if _close(scores[:3], successes[:3].double() + torch.sqrt(2.0 * math.log(t) / n)):
        _fail(name, "use the MEAN reward of each arm (successes / pulls), not the number of successes")
    _fail(name, f"expected {expected.tolist()} for the tried arms, got {scores[:3].tolist()}")
