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


# --------------------------------------------------------------------------
# Notebook 04: optimization-based meta-learning
# --------------------------------------------------------------------------


def _quadratic_problem():
    """Two parameter tensors and a support loss with a non-zero Hessian that couples them (float64)."""
    generator = torch.Generator().manual_seed(40)
    w = torch.randn(3, generator=generator, dtype=torch.float64)
    v = torch.randn(2, generator=generator, dtype=torch.float64)
    A = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    A = A @ A.T + torch.eye(3, dtype=torch.float64)
    M = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    target = torch.randn(5, generator=generator, dtype=torch.float64)

    def support_loss(p):
        return 0.5 * p["w"] @ A @ p["w"] + (p["w"] @ M @ p["v"]) ** 2 + (p["v"] ** 3).sum() / 3

    def query_loss(p):
        return ((torch.cat([p["w"], p["v"]]) - target) ** 2).sum()

    return {"w": w, "v": v}, support_loss, query_loss


def _inner_update_reference(params, loss, lr, first_order):
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
    return {k: p - lr * (g.detach() if first_order else g) for (k, p), g in zip(params.items(), grads)}


def check_inner_update(inner_update: Callable) -> None:
    """``inner_update(params: dict, loss, lr, first_order) -> dict``: one inner step phi = theta - lr * grad,
    differentiable with respect to theta; with ``first_order=False`` the graph of the gradient is kept
    (``create_graph=True``) so that the meta-gradient has the Hessian term, with ``first_order=True`` it is not."""
    name = "check_inner_update"
    start, support_loss, query_loss = _quadratic_problem()
    lr = 0.1
    for first_order in (False, True):
        params = {k: v.clone().requires_grad_() for k, v in start.items()}
        kept = {k: v.detach().clone() for k, v in params.items()}
        phi = _run(name, inner_update, params, support_loss(params), lr, first_order)
        if not all(torch.equal(params[k].detach(), kept[k]) for k in kept):
            _fail(name, "you changed the parameters in place: return a new dict and leave theta as it was "
                        "(the meta-gradient is taken with respect to the unchanged theta)")
        if not isinstance(phi, dict) or set(phi) != set(params):
            _fail(name, f"return a dict with the same keys as params ({sorted(params)}), one new tensor per "
                        "parameter")
        for k in params:
            if tuple(phi[k].shape) != tuple(params[k].shape):
                _fail(name, f"phi[{k!r}] has shape {tuple(phi[k].shape)}, theta[{k!r}] {tuple(params[k].shape)}")
        fresh = {k: v.clone().requires_grad_() for k, v in start.items()}
        grads = dict(zip(fresh, torch.autograd.grad(support_loss(fresh), list(fresh.values()))))
        value = {k: phi[k].detach() for k in phi}
        if all(_close(value[k], start[k] + lr * grads[k]) for k in value):
            _fail(name, "wrong sign: the inner step goes against the gradient, phi = theta - lr * grad")
        if all(_close(value[k], start[k] - grads[k]) for k in value):
            _fail(name, "multiply the gradient by the inner learning rate lr")
        if all(_close(value[k], -lr * grads[k]) or _close(value[k], grads[k]) for k in value):
            _fail(name, "return the adapted parameters phi = theta - lr * grad, not the update or the gradient")
        if not all(_close(value[k], start[k] - lr * grads[k]) for k in value):
            _fail(name, "the adapted parameters must be phi = theta - lr * grad(loss)(theta)")
        if not all(phi[k].requires_grad for k in phi):
            _fail(name, "phi is cut off from theta (detached, or built from .data): the meta-gradient cannot flow "
                        "back to theta. Detach only the inner GRADIENT (first order), never phi itself")
        meta = torch.autograd.grad(query_loss(phi), list(params.values()), allow_unused=True)
        if any(g is None for g in meta):
            _fail(name, "phi is cut off from theta (detached, or a new leaf tensor): the meta-gradient cannot "
                        "flow back to theta. Compute phi[k] = params[k] - lr * grad and detach only the gradient")
        meta = torch.cat([g.reshape(-1) for g in meta])
        reference = {k: v.clone().requires_grad_() for k, v in start.items()}
        second = torch.autograd.grad(query_loss(_inner_update_reference(reference, support_loss(reference), lr, False)),
                                     list(reference.values()))
        second = torch.cat([g.reshape(-1) for g in second])
        reference = {k: v.clone().requires_grad_() for k, v in start.items()}
        first = torch.autograd.grad(query_loss(_inner_update_reference(reference, support_loss(reference), lr, True)),
                                    list(reference.values()))
        first = torch.cat([g.reshape(-1) for g in first])
        if not first_order and not _close(meta, second):
            if _close(meta, first):
                _fail(name, "no create_graph: the meta-gradient loses the second-order term. With first_order=False "
                            "compute the gradient with torch.autograd.grad(loss, ..., create_graph=True), so that "
                            "d phi / d theta = I - lr * Hessian")
            _fail(name, "with first_order=False the meta-gradient through phi is not (I - lr H) grad L_query(phi)")
        if first_order and not _close(meta, first):
            if _close(meta, second):
                _fail(name, "first_order=True must drop the Hessian term: detach the inner gradient (or compute it "
                            "without create_graph), so that d phi / d theta = I")
            _fail(name, "with first_order=True the meta-gradient through phi must be grad L_query(phi) itself")
    _passed(name, 2)


def check_reptile_update(reptile_update: Callable) -> None:
    """``reptile_update(theta: dict, adapted: list of dicts, epsilon) -> dict``:
    theta + epsilon * (mean over tasks of phi_i - theta), leaving theta unchanged."""
    name = "check_reptile_update"
    generator = torch.Generator().manual_seed(41)
    theta = {"w": torch.randn(2, 3, generator=generator, dtype=torch.float64),
             "b": torch.randn(3, generator=generator, dtype=torch.float64)}
    adapted = [{k: v + torch.randn(v.shape, generator=generator, dtype=torch.float64) for k, v in theta.items()}
               for _ in range(3)]
    kept = {k: v.clone() for k, v in theta.items()}
    kept_adapted = [{k: v.clone() for k, v in phi.items()} for phi in adapted]
    epsilon = 0.25
    new = _run(name, reptile_update, theta, adapted, epsilon)
    if not all(torch.equal(theta[k], kept[k]) for k in theta) or not all(
            torch.equal(phi[k], old[k]) for phi, old in zip(adapted, kept_adapted) for k in phi):
        _fail(name, "you changed theta (or the adapted weights) in place: return a new dict")
    if not isinstance(new, dict) or set(new) != set(theta):
        _fail(name, f"return a dict with the same keys as theta ({sorted(theta)})")
    mean = {k: torch.stack([phi[k] for phi in adapted]).mean(0) for k in theta}
    expected = {k: theta[k] + epsilon * (mean[k] - theta[k]) for k in theta}

    def matches(candidate):
        return all(torch.as_tensor(new[k]).shape == candidate[k].shape and _close(new[k], candidate[k])
                   for k in theta)

    if matches(expected):
        _passed(name, 1)
        return
    total = {k: torch.stack([phi[k] for phi in adapted]).sum(0) for k in theta}
    guesses = [
        ({k: theta[k] - epsilon * (mean[k] - theta[k]) for k in theta},
         "wrong sign: Reptile moves theta TOWARDS the adapted weights, theta + epsilon * (mean phi - theta)"),
        (mean, "you jumped all the way to the mean of the adapted weights: take a step of size epsilon towards it"),
        ({k: theta[k] + epsilon * (adapted[-1][k] - theta[k]) for k in theta},
         "average the adapted weights of ALL tasks, not only the last one"),
        ({k: theta[k] + epsilon * (adapted[0][k] - theta[k]) for k in theta},
         "average the adapted weights of ALL tasks, not only the first one"),
        ({k: theta[k] + epsilon * (total[k] - theta[k]) for k in theta},
         "take the MEAN of the adapted weights over the tasks, not their sum"),
        ({k: theta[k] + epsilon * (total[k] - len(adapted) * theta[k]) for k in theta},
         "take the MEAN of (phi_i - theta) over the tasks, not the sum (the step grows with the meta-batch)"),
        ({k: epsilon * (mean[k] - theta[k]) for k in theta},
         "return the new parameters theta + epsilon * (mean phi - theta), not the update alone"),
        ({k: mean[k] - theta[k] for k in theta}, "return the new parameters, not the direction mean phi - theta"),
    ]
    for guess, message in guesses:
        if matches(guess):
            _fail(name, message)
    _fail(name, "expected theta + epsilon * (mean over tasks of phi_i - theta) for every parameter")


def _tiny_regression_problem():
    generator = torch.Generator().manual_seed(42)
    params = {"fc0_weight": torch.randn(5, 1, generator=generator, dtype=torch.float64),
              "fc0_bias": torch.randn(5, generator=generator, dtype=torch.float64),
              "fc1_weight": torch.randn(1, 5, generator=generator, dtype=torch.float64) * 0.5,
              "fc1_bias": torch.zeros(1, dtype=torch.float64)}
    tasks, shots, queries = 3, 4, 6
    amplitude = 1 + 2 * torch.rand(tasks, 1, 1, generator=generator, dtype=torch.float64)
    x = 4 * torch.rand(tasks, shots + queries, 1, generator=generator, dtype=torch.float64) - 2
    y = amplitude * torch.sin(x)
    batch = (x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def loss_fn(p, xs, ys):
        hidden = torch.tanh(xs @ p["fc0_weight"].T + p["fc0_bias"])
        return ((hidden @ p["fc1_weight"].T + p["fc1_bias"] - ys) ** 2).mean()

    return params, batch, loss_fn


def _meta_gradient_reference(params, batch, loss_fn, inner_lr, steps, first_order=True, outer="query",
                             adapt=True, tasks=None, reduce="mean"):
    sx, sy, qx, qy = batch
    indices = range(len(sx)) if tasks is None else tasks
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    losses = []
    for i in indices:
        phi = theta
        for _ in range(steps if adapt else 0):
            grads = torch.autograd.grad(loss_fn(phi, sx[i], sy[i]), list(phi.values()), create_graph=not first_order)
            phi = {k: v - inner_lr * (g.detach() if first_order else g) for (k, v), g in zip(phi.items(), grads)}
        if first_order:
            phi = {k: v.detach().requires_grad_() for k, v in phi.items()}
        x, y = (qx[i], qy[i]) if outer == "query" else (sx[i], sy[i])
        losses.append((phi, loss_fn(phi, x, y)))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for phi, loss in losses:
        wrt = phi if first_order else theta
        for k, g in zip(wrt, torch.autograd.grad(loss, list(wrt.values()))):
            total[k] = total[k] + g
    scale = 1 / len(losses) if reduce == "mean" else 1.0
    return {k: v * scale for k, v in total.items()}


def check_first_order_meta_gradient(first_order_meta_gradient: Callable) -> None:
    """``first_order_meta_gradient(params, batch, loss_fn, inner_lr, steps) -> dict``: the FOMAML
    meta-gradient, 1/T sum_i grad L(phi_i; query_i) at the adapted phi_i (``steps`` plain SGD steps on
    support_i), with the Hessian terms dropped. ``batch = (sx, sy, qx, qy)`` with a leading task dimension."""
    name = "check_first_order_meta_gradient"
    params, batch, loss_fn = _tiny_regression_problem()
    inner_lr, steps = 0.3, 2
    kept = {k: v.clone() for k, v in params.items()}
    given = {k: v.clone() for k, v in params.items()}
    result = _run(name, first_order_meta_gradient, given, batch, loss_fn, inner_lr, steps)
    if not all(torch.equal(given[k], kept[k]) for k in kept):
        _fail(name, "you changed the parameters in place: compute the gradient and leave theta as it was")
    if not isinstance(result, dict) or set(result) != set(params):
        _fail(name, f"return a dict of gradients with the same keys as params ({sorted(params)})")
    for k in params:
        if tuple(torch.as_tensor(result[k]).shape) != tuple(params[k].shape):
            _fail(name, f"the gradient for {k!r} has shape {tuple(torch.as_tensor(result[k]).shape)}, "
                        f"the parameter {tuple(params[k].shape)}")
    result = {k: torch.as_tensor(v).detach() for k, v in result.items()}

    def matches(candidate):
        return all(_close(result[k], candidate[k], 1e-6) for k in params)

    def reference(**changes):
        return _meta_gradient_reference(params, batch, loss_fn, **{"inner_lr": inner_lr, "steps": steps, **changes})

    if matches(reference()):
        # One more case, one step: catches a loop that ignores `steps`.
        other = _run(name, first_order_meta_gradient, {k: v.clone() for k, v in params.items()}, batch, loss_fn,
                     inner_lr, 1)
        if not all(_close(torch.as_tensor(other[k]).detach(), v, 1e-6) for k, v in reference(steps=1).items()):
            _fail(name, "with steps=1 the answer is wrong: take exactly `steps` inner steps")
        _passed(name, 2)
        return
    guesses = [
        (reference(first_order=False), "that is the second-order (MAML) meta-gradient: first order drops the "
                                       "Hessian terms, so detach the inner gradients (no create_graph) and take "
                                       "the query gradient at phi_i"),
        (reference(adapt=False), "the gradient is taken at theta: the first-order meta-gradient is the query "
                                 "gradient at the ADAPTED parameters phi_i (run the inner loop first)"),
        (reference(outer="support"), "the outer gradient must use the QUERY set of each task, not the support set "
                                     "it was adapted on"),
        (reference(reduce="sum"), "average the tasks' gradients (the meta-objective is the MEAN over the "
                                  "meta-batch), not their sum"),
        (reference(tasks=[len(batch[0]) - 1]), "use every task of the meta-batch, not only the last one"),
        (reference(tasks=[0]), "use every task of the meta-batch, not only the first one"),
        (reference(steps=1), "take `steps` inner steps, not one"),
        ({k: -v for k, v in reference().items()}, "wrong sign: return the gradient of the query loss (the "
                                                  "outer optimizer subtracts it), not minus it"),
    ]
    for guess, message in guesses:
        if matches(guess):
            _fail(name, message)
    _fail(name, "expected 1/T sum_i grad L(phi_i; query set i) with phi_i = theta after `steps` first-order SGD "
                "steps of size inner_lr on support set i")


# --------------------------------------------------------------------------
# Notebook 08: general-purpose in-context learning (GPICL)
# --------------------------------------------------------------------------


def check_task_batch(make_task_batch: Callable) -> None:
    """``make_task_batch(x [L, d], classes [L], W [d, k], perm [C]) -> (inputs [L, k], labels [L])``:
    ``inputs = x @ W`` (the task's projection of every example) and ``labels[t] = perm[classes[t]]``."""
    name = "check_task_batch"
    generator = torch.Generator().manual_seed(8)
    perm = torch.tensor([2, 0, 3, 1])  # class 0 -> label 2, class 1 -> label 0, ...
    cases = []
    for d, k in ((6, 3), (5, 5)):  # the square case catches W.T
        x = torch.randn(7, d, generator=generator)
        classes = torch.tensor([0, 1, 2, 3, 1, 0, 2])
        W = torch.randn(d, k, generator=generator)
        cases.append((x, classes, W))
    for x, classes, W in cases:
        out = _run(name, make_task_batch, x, classes, W, perm)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            _fail(name, "return two things: (inputs, labels)")
        inputs, labels = (torch.as_tensor(v) for v in out)
        L, d, k = len(x), *W.shape
        if inputs.shape == x.shape and d != k and torch.allclose(inputs.float(), x):
            _fail(name, "the inputs are not projected: every task sees x through its own matrix, inputs = x @ W")
        if inputs.shape != (L, k):
            _fail(name, f"inputs must have one row of k = {k} numbers per example, shape ({L}, {k}); got "
                        f"{tuple(inputs.shape)}. Project with x @ W ([L, d] @ [d, k])")
        if d == k and torch.allclose(inputs.float(), x @ W.T, atol=1e-5) and not torch.allclose(x @ W, x @ W.T):
            _fail(name, "you multiplied by W transposed: the projection is x @ W (W has shape [d, k], one column "
                        "per output number)")
        if not torch.allclose(inputs.float(), x @ W, atol=1e-5):
            _fail(name, "inputs differ from x @ W: project every example with the same matrix W")
        if labels.shape != (L,):
            _fail(name, f"labels must have one entry per example, shape ({L},), got {tuple(labels.shape)}")
        labels = labels.long()
        if torch.equal(labels, classes):
            _fail(name, "the labels are not permuted: in this task class c is called perm[c]")
        if torch.equal(labels, torch.argsort(perm)[classes]):
            _fail(name, "you applied the inverse permutation: the label of class c is perm[c] (index perm BY the "
                        "class), not the position of c in perm")
        if not torch.equal(labels, perm[classes]):
            _fail(name, f"expected labels {perm[classes].tolist()} (perm[classes]), got {labels.tolist()}")
    _passed(name, len(cases))


def _pair_tokens_reference(inputs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    previous_label = F.pad(F.one_hot(labels[:-1], num_classes).float(), (0, 0, 1, 0))
    previous_input = F.pad(inputs[:-1], (0, 0, 1, 0))
    return torch.cat([inputs, previous_label, previous_input], dim=-1)


def check_pair_tokens(pair_tokens: Callable) -> None:
    """``pair_tokens(inputs [L, k], labels [L], num_classes) -> [L, k + C + k]``: row t is
    ``[x_t, onehot(y_{t-1}), x_{t-1}]``, with zeros in both "previous" parts at t = 0."""
    name = "check_pair_tokens"
    generator = torch.Generator().manual_seed(80)
    L, k, C = 6, 3, 4
    inputs = torch.randn(L, k, generator=generator)
    labels = torch.tensor([1, 3, 0, 0, 2, 1])
    out = torch.as_tensor(_run(name, pair_tokens, inputs, labels, C)).float()
    expected = _pair_tokens_reference(inputs, labels, C)
    if out.shape == (L, k + C):
        _fail(name, f"shape ({L}, {k + C}) is the paper's token [x_t, onehot(y_(t-1))]: append the previous input "
                    f"x_(t-1) too, shape ({L}, {2 * k + C})")
    if out.shape != expected.shape:
        _fail(name, f"expected shape ({L}, {2 * k + C}) = [x_t (k), onehot(y_(t-1)) (C), x_(t-1) (k)], "
                    f"got {tuple(out.shape)}")
    if torch.allclose(out, expected, atol=1e-6):
        _passed(name, 1)
        return
    x_part, y_part, prev_part = out[:, :k], out[:, k:k + C], out[:, k + C:]
    one_hot = F.one_hot(labels, C).float()
    if not torch.allclose(x_part, inputs, atol=1e-6):
        if torch.allclose(out[:, :k], expected[:, k + C:], atol=1e-6) or torch.allclose(out[:, C:C + k], inputs):
            _fail(name, "the parts are in another order: row t must be [x_t, onehot(y_(t-1)), x_(t-1)]")
        _fail(name, "the first k numbers of row t must be the input x_t of the same step")
    if torch.allclose(y_part, one_hot):
        _fail(name, "row t holds the label y_t of the same step: the model would read the answer it must predict. "
                    "Shift by one: onehot(y_(t-1))")
    if torch.allclose(y_part[0], one_hot[-1]) and y_part[0].abs().sum() > 0:
        _fail(name, "row 0 holds the LAST label (torch.roll wraps around): at t = 0 nothing has been seen, use zeros")
    if torch.allclose(y_part[:-1], one_hot[1:]):
        _fail(name, "shifted the wrong way: row t must hold the PREVIOUS step's label y_(t-1), not the next one's")
    if not torch.allclose(y_part, expected[:, k:k + C]):
        _fail(name, f"the label part should be {expected[:, k:k + C].int().tolist()}, got {y_part.tolist()}")
    if torch.allclose(prev_part, inputs, atol=1e-6):
        _fail(name, "the last part repeats x_t: it must be the PREVIOUS input x_(t-1), the one whose label "
                    "y_(t-1) sits in the same token")
    if torch.allclose(prev_part[0], inputs[-1], atol=1e-6):
        _fail(name, "row 0 holds the last input (torch.roll wraps around): at t = 0 there is no previous input, "
                    "use zeros")
    if torch.allclose(prev_part[:-1], inputs[1:], atol=1e-6):
        _fail(name, "the input part is shifted the wrong way: use x_(t-1), not x_(t+1)")
    _fail(name, "the last k numbers of row t must be x_(t-1) (zeros at t = 0)")


def check_accuracy_by_position(accuracy_by_position: Callable) -> None:
    """``accuracy_by_position(logits [S, L, C], targets [S, L]) -> [L]``: at every position t, the fraction of
    the S sequences whose prediction (argmax over classes) equals the target."""
    name = "check_accuracy_by_position"
    S, L, C = 5, 4, 3
    targets = torch.tensor([[0, 1, 2, 0], [1, 1, 2, 2], [2, 1, 0, 0], [0, 0, 0, 1], [1, 2, 2, 2]])
    predicted = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 1, 1], [0, 2, 2, 2]])
    logits = torch.full((S, L, C), -1.0).scatter(2, predicted.unsqueeze(-1), 2.0)
    logits[0, 0] = torch.tensor([1.5, 1.0, -1.0])  # a confident-ish right answer, not exactly one-hot
    correct = (predicted == targets).float()
    expected = correct.mean(0)
    out = torch.as_tensor(_run(name, accuracy_by_position, logits, targets)).float()
    if out.shape == (S,):
        _fail(name, f"you averaged over positions (one number per sequence): average over the S sequences "
                    f"(dim 0) instead, to get one accuracy per position, shape ({L},)")
    if out.shape != (L,):
        _fail(name, f"return one accuracy per position, shape ({L},), got {tuple(out.shape)}")
    if torch.allclose(out, expected):
        _passed(name, 1)
        return
    if torch.allclose(out, 100 * expected):
        _fail(name, "return fractions in [0, 1], not percentages")
    if torch.allclose(out, correct.sum(0)):
        _fail(name, "these are counts of right answers: divide by the number of sequences (take the mean)")
    if torch.allclose(out, correct.mean(0).cumsum(0) / torch.arange(1, L + 1)):
        _fail(name, "this is the running accuracy up to t: return the accuracy AT each position t")
    probs = logits.softmax(-1)
    if torch.allclose(out, probs.gather(2, targets.unsqueeze(-1)).squeeze(-1).mean(0), atol=1e-4) or \
            torch.allclose(out, probs.max(-1).values.mean(0), atol=1e-4):
        _fail(name, "these are probabilities: count the predictions that are right, "
                    "(logits.argmax(-1) == targets), and average those")
    _fail(name, f"expected {expected.tolist()}, got {out.tolist()}")


# --------------------------------------------------------------------------
# Notebook 07: VSML (variable-shared meta learning)
# --------------------------------------------------------------------------


def check_vsml_messages(messages: Callable) -> None:
    """``messages(h [T, A, B, H], w_out [H, M], w_back [H, M]) -> (forward [T, B, M], backward [T, A, M])``:
    output unit b sends mean_a h_ab W_out, input unit a sends mean_b h_ab W_back."""
    name = "check_vsml_messages"
    g = torch.Generator().manual_seed(7)
    tasks, inputs, outputs, hidden, size = 2, 4, 3, 5, 6
    h = torch.randn(tasks, inputs, outputs, hidden, generator=g, dtype=torch.float64)
    w_out = torch.randn(hidden, size, generator=g, dtype=torch.float64)
    w_back = torch.randn(hidden, size, generator=g, dtype=torch.float64)
    result = _run(name, messages, h, w_out, w_back)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        _fail(name, "return two things: (forward messages out of the output units, backward messages out of "
                    "the input units)")
    forward, backward = (torch.as_tensor(r).double() for r in result)
    expected_f, expected_b = h.mean(dim=1) @ w_out, h.mean(dim=2) @ w_back
    if forward.shape == (tasks, inputs, size) and backward.shape == (tasks, outputs, size):
        _fail(name, "the axes are swapped: output unit b's forward message averages over the INPUT units a "
                    "(dim 1 of h), input unit a's backward message over the OUTPUT units b (dim 2)")
    if forward.shape != (tasks, outputs, size) or backward.shape != (tasks, inputs, size):
        if forward.shape[-1] == hidden or backward.shape[-1] == hidden:
            _fail(name, "the cell states are not projected: multiply the averaged h by W_out (forward) and "
                        "W_back (backward) to get messages of size M")
        _fail(name, f"expected shapes {(tasks, outputs, size)} and {(tasks, inputs, size)}, got "
                    f"{tuple(forward.shape)} and {tuple(backward.shape)}")
    if _close(forward, expected_f) and _close(backward, expected_b):
        _passed(name, 2)
        return
    if _close(forward, expected_f * inputs) or _close(backward, expected_b * outputs):
        _fail(name, "summed over the cells instead of averaging: use the MEAN, so that the same meta-parameters "
                    "work for any number of inputs and outputs")
    if _close(forward, h.mean(dim=(0, 1)) @ w_out * torch.ones_like(forward)):
        _fail(name, "averaged over the tasks too: each task (dim 0) is a separate learner, average only over "
                    "the cells of a unit")
    if _close(backward, h.mean(dim=2) @ w_out):
        _fail(name, "the backward message uses W_out: it has its own projection W_back")
    if _close(forward, h.mean(dim=1) @ w_back):
        _fail(name, "the forward message uses W_back: it has its own projection W_out")
    if _close(forward, expected_f):
        _fail(name, "the forward messages are right, the backward ones are not: mean over the output units b "
                    "(dim 2), then multiply by W_back")
    _fail(name, "the forward messages are wrong: mean of h over the input units a (dim 1), then multiply by W_out")


def check_feedback_message(feedback_message: Callable) -> None:
    """``feedback_message(previous_logits [T, B], previous_labels [T], ways) -> [T, B, 2]``: component 0 is
    onehot(y_{t-1}), component 1 the error softmax(z_{t-1}) - onehot(y_{t-1}); all zeros where the label is -1."""
    name = "check_feedback_message"
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0], [1.0, -2.0, 0.0], [0.0, 1.0, 0.0]],
                          dtype=torch.float64)
    labels = torch.tensor([0, 1, -1, 2])
    out = torch.as_tensor(_run(name, feedback_message, logits, labels, 3)).double()
    if out.shape != (4, 3, 2):
        _fail(name, f"return two numbers per output unit, shape (T, ways, 2) = (4, 3, 2), got {tuple(out.shape)}")
    given = (labels >= 0).double()[:, None]
    onehot = F.one_hot(labels.clamp(min=0), 3).double() * given
    error = (torch.softmax(logits, -1) - onehot) * given
    if _close(out[..., 0], onehot) and _close(out[..., 1], error):
        _passed(name, 4)
        return
    if _close(out[..., 0], error) and _close(out[..., 1], onehot):
        _fail(name, "the components are swapped: component 0 is the label onehot(y), component 1 the error")
    if out[2].abs().sum() > 0 and _close(out[[0, 1, 3]], torch.stack([onehot, error], -1)[[0, 1, 3]]):
        _fail(name, "no feedback where the label is -1 (step t = 0: no earlier example): that row must be all "
                    "zeros")
    if not _close(out[..., 0], onehot):
        _fail(name, "component 0 must be onehot(y_{t-1}), the label of the previous example")
    if _close(out[..., 1], -error):
        _fail(name, "the error has the wrong sign: softmax(z) - onehot(y), the gradient of the cross-entropy "
                    "with respect to the logits (what backprop sends back)")
    if _close(out[..., 1], (logits - onehot) * given):
        _fail(name, "the error uses the raw logits: turn them into probabilities with softmax first")
    if _close(out[..., 1], (torch.sigmoid(logits) - onehot) * given):
        _fail(name, "the error uses a sigmoid per class: the classifier's probabilities are softmax(z) over "
                    "the classes")
    _fail(name, f"component 1 should be softmax(z) - onehot(y), e.g. {error[0].tolist()} for the first row, "
                f"got {out[0, :, 1].tolist()}")


def check_vsml_variable_count(count_variables: Callable) -> None:
    """``count_variables(inputs, outputs, message_size, hidden) -> (meta_parameters, learned_variables)`` of one
    VSML layer: W_forward, W_backward [M, 4H], W_hidden [H, 4H], bias [4H], W_out, W_back [H, M]; a state
    (h, c) of 2H values per connection."""
    name = "check_vsml_variable_count"

    def reference(a, b, m, h):
        return 2 * m * 4 * h + h * 4 * h + 4 * h + 2 * h * m, a * b * 2 * h

    cases = [(16, 5, 8, 16), (784, 10, 8, 16), (3, 2, 4, 5)]
    for a, b, m, h in cases:
        result = _run(name, count_variables, a, b, m, h)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            _fail(name, "return two numbers: (meta-parameters, learned variables)")
        meta, learned = (int(v) for v in result)
        want_meta, want_learned = reference(a, b, m, h)
        if (meta, learned) == (want_meta, want_learned):
            continue
        if meta != want_meta:
            if meta % (a * b) == 0 and meta // (a * b) == want_meta:
                _fail(name, "the meta-parameters are SHARED by all cells: they must not grow with the number of "
                            "inputs and outputs")
            if meta == want_meta - 4 * h:
                _fail(name, "the LSTM bias (4H numbers) is missing from the meta-parameters")
            if meta == want_meta - 2 * h * m:
                _fail(name, "the output projections W_out and W_back (H x M each) are missing")
            if meta == 2 * m * h + h * h + h + 2 * h * m:
                _fail(name, "an LSTM has FOUR gates: W_forward, W_backward, W_hidden and the bias have 4H columns")
            _fail(name, f"for {a} inputs, {b} outputs, M={m}, H={h}: expected {want_meta} meta-parameters, got {meta}")
        if learned == a * b * h:
            _fail(name, "the state of a cell is (h, c): 2H learned variables per connection, not H")
        if learned == (a + b) * 2 * h:
            _fail(name, "there is one cell per CONNECTION (a, b): A x B cells, not A + B")
        _fail(name, f"for {a} inputs, {b} outputs, H={h}: expected {want_learned} learned variables, got {learned}")
    _passed(name, len(cases))


# --------------------------------------------------------------------------
# Notebook 06: learned optimizers and learned objective functions
# --------------------------------------------------------------------------


def check_gradient_preprocessing(preprocess: Callable) -> None:
    """``preprocess(grad [...], p) -> [..., 2]``, coordinate by coordinate (Andrychowicz et al. 2016, app. A):
    (log|g| / p, sign g) where |g| >= e^-p, else (-1, e^p g)."""
    name = "check_gradient_preprocessing"
    p = 10.0
    small = math.exp(-p)

    def reference(g, p=p, log=torch.log):
        large = g.abs() >= math.exp(-p)
        first = torch.where(large, log(g.abs().clamp_min(math.exp(-p))) / p, -torch.ones_like(g))
        second = torch.where(large, torch.sign(g), math.exp(p) * g)
        return torch.stack([first, second], dim=-1)

    grad = torch.tensor([2.0, -0.5, 1e-3, -30.0, 1e-6, -2e-7, 0.0, 5e-5], dtype=torch.float64)
    out = torch.as_tensor(_run(name, preprocess, grad.clone(), p)).double()
    expected = reference(grad)
    if out.shape == (2, len(grad)):
        _fail(name, f"the two numbers of a coordinate go in the LAST dimension: shape {tuple(expected.shape)} "
                    f"(torch.stack(..., dim=-1)), not {tuple(out.shape)}")
    if out.shape != expected.shape:
        _fail(name, f"every coordinate becomes two numbers: for a gradient of shape {tuple(grad.shape)} return "
                    f"shape {tuple(expected.shape)}, got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        _fail(name, "inf or nan in your output (a zero gradient gives log 0 = -inf): use the log only where "
                    f"|g| >= e^-p, and (-1, e^p g) elsewhere")
    if _close(out, expected):
        pass
    elif _close(out, expected.flip(-1)):
        _fail(name, "the two numbers are swapped: first the log part (log|g| / p, or -1), then the sign part "
                    "(sign g, or e^p g)")
    elif out[grad.abs() >= small, 0].unique().numel() == 1 or out[:, 1].unique().numel() == 1:
        _fail(name, "one of the two numbers is the same for every coordinate: preprocess each coordinate on its "
                    "own (|g_i| of that coordinate), not the norm, mean or max of the whole gradient")
    else:
        large = grad.abs() >= small
        wrong_large = not _close(out[large], expected[large])
        wrong_small = not _close(out[~large], expected[~large])
        threshold_on_g = torch.where((grad >= small)[:, None], expected,
                                     torch.stack([-torch.ones_like(grad), math.exp(p) * grad], -1))
        if _close(out, threshold_on_g):
            _fail(name, "negative gradients like -0.5 went to the small-gradient branch: compare the MAGNITUDE "
                        "|g| with e^-p, not g itself")
        tiny_branch = torch.stack([-torch.ones_like(grad), math.exp(p) * grad], -1)
        if _close(out[large], tiny_branch[large]):
            _fail(name, "the branches are swapped: the log/sign pair is for |g| >= e^-p (large gradients), "
                        "(-1, e^p g) for the tiny ones")
        if wrong_large:
            got, want = out[large], expected[large]
            if _close(got[:, 0], want[:, 0] * p):
                _fail(name, "divide the log of the magnitude by p: log|g| / p (for p = 10 it is then at least -1)")
            if _close(got[:, 0], reference(grad, log=torch.log10)[large][:, 0]):
                _fail(name, "use the natural log (torch.log), not log10: the threshold e^-p is where log|g| / p "
                            "= -1, which joins the two branches")
            if _close(got[:, 1], grad[large]):
                _fail(name, "the second number of a large gradient is its SIGN (+1 or -1), not the gradient itself: "
                            "the magnitude is already in the first number")
            if _close(got[:, 1], -want[:, 1]):
                _fail(name, "wrong sign in the second number: it is sign(g), so that the update can point "
                            "against the gradient")
        if wrong_small:
            got, want = out[~large], expected[~large]
            if _close(got[:, 1], grad[~large] * small):
                _fail(name, "tiny gradients are scaled UP, by e^p (about 22,000 for p = 10), not down by e^-p")
            if _close(got[:, 1], torch.sign(grad[~large])):
                _fail(name, "for a tiny gradient (|g| < e^-p) the second number is e^p g, which keeps its size "
                            "information, not its sign")
            if _close(got[:, 0], -want[:, 0]):
                _fail(name, "for a tiny gradient the first number is -1 (the smallest value log|g| / p can have "
                            "in the other branch), not +1")
        index = int(((out - expected).abs().sum(-1)).argmax())
        _fail(name, f"for g = {grad[index].item():g} (p = {p:g}) expected {expected[index].tolist()}, "
                    f"got {out[index].tolist()}")
    grid = torch.tensor([[3.0, -1e-8], [-4e-4, 7e-6], [0.0, -12.0]], dtype=torch.float64)
    out = torch.as_tensor(_run(name, preprocess, grid.clone(), 4.0)).double()
    want = reference(grid, p=4.0)
    if out.shape != want.shape:
        _fail(name, f"a gradient of any shape must work: for shape {tuple(grid.shape)} return "
                    f"{tuple(want.shape)}, got {tuple(out.shape)}")
    if not _close(out, want):
        if _close(out, reference(grid, p=10.0)):
            _fail(name, "use the p you are given, not a fixed 10")
        _fail(name, f"with p = 4 on a [3, 2] gradient expected {want.tolist()}, got {out.tolist()}")
    _passed(name, 2)


def _meta_training_setup(seed: int = 6):
    """A small coordinatewise LSTM optimizer and 2 four-dimensional quadratics, in float64."""
    from course_lib import learned_optimizers as lo

    family = lo.QuadraticFamily(dim=4, init_std=0.5, dtype=torch.float64)
    problems = lo.problem_batch(family, 2, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = lo.LSTMOptimizer(lo.LearnedOptimizerConfig(hidden_size=5)).double()
    return family, problems, net


def _truncations(net, family, problems, optimizer, horizon, K, *, detach=True, reduce="mean", zero_grad=True,
                 start_loss=False, last_only=False, restart=False):
    """The reference truncated BPTT iteration, and (through the flags) the usual ways to get it wrong."""
    from course_lib import learned_optimizers as lo

    theta, state = problems.theta0, net.init_state(problems.theta0)
    meta_losses = []
    for start in range(0, horizon, K):
        if restart:
            theta, state = problems.theta0, net.init_state(problems.theta0)
        losses, theta, state = lo.unroll(net, family, problems, theta, state, start, K)
        kept = losses if start_loss else losses[1:]
        kept = kept[-1:] if last_only else kept
        meta_loss = {"mean": kept.mean(), "sum": kept.sum(), "sum_steps": kept.sum(0).mean()}[reduce]
        if zero_grad:
            optimizer.zero_grad()
        meta_loss.backward()
        optimizer.step()
        meta_losses.append(meta_loss.item())
        if detach:
            theta, state = theta.detach(), [tuple(t.detach() for t in pair) for pair in state]
    return meta_losses


def check_truncated_meta_training(meta_train_iteration: Callable) -> None:
    """``meta_train_iteration(net, family, problems, meta_optimizer, horizon, K) -> [meta-loss per truncation]``:
    for each truncation of K steps, ``lo.unroll`` from where the last one ended, meta-loss = mean of
    f(theta_1..K) (``losses[1:]``), zero_grad, backward, step, then detach theta and the LSTM state."""
    name = "check_truncated_meta_training"
    horizon, K, lr = 6, 2, 0.05

    def after(function, **flags):
        family, problems, net = _meta_training_setup()
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        with torch.random.fork_rng(devices=[]):
            if function is None:
                losses = _truncations(net, family, problems, optimizer, horizon, K, **flags)
            else:
                try:
                    losses = function(net, family, problems, optimizer, horizon, K)
                except NotImplementedError:
                    raise
                except RuntimeError as error:
                    if "second time" in str(error) or "inplace operation" in str(error):
                        _fail(name, "backward went into the previous truncation's graph (RuntimeError: "
                                    f"{str(error).splitlines()[0][:80]}...): after each meta-update, detach theta "
                                    "AND the LSTM state (every h and c), so the next truncation starts from their "
                                    "values but without their history")
                    raise ExerciseError(f"{name}: your function raised RuntimeError: {error}") from error
                except Exception as error:
                    raise ExerciseError(f"{name}: your function raised {type(error).__name__}: {error}") from error
        return losses, torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    start = torch.cat([p.detach().reshape(-1) for p in _meta_training_setup()[2].parameters()])
    want_losses, want = after(None)
    losses, got = after(meta_train_iteration)
    if _close(got, start, tol=1e-12):
        _fail(name, "the LSTM's weights did not change: after each truncation call meta_optimizer.zero_grad(), "
                    "meta_loss.backward() and meta_optimizer.step()")
    if not _close(got, want, tol=1e-8):
        diagnoses = [
            (dict(reduce="sum_steps"), "the meta-loss of a truncation is the MEAN of f over its K steps "
                                       "(w_t = 1/K), not the sum"),
            (dict(reduce="sum"), "the meta-loss is the MEAN of f over the K steps and the optimizees, not the sum"),
            (dict(start_loss=True), "losses[0] is f at the truncation's starting point, which does not depend on "
                                    "phi: leave it out and average losses[1:]"),
            (dict(last_only=True), "the meta-loss uses f at every step of the truncation (losses[1:]), not only "
                                   "the last one: the optimizer is rewarded for being fast too"),
            (dict(zero_grad=False), "call meta_optimizer.zero_grad() before each backward: the gradients of "
                                    "earlier truncations were added to this one"),
            (dict(restart=True), "each truncation continues from the theta and LSTM state where the previous one "
                                 "ended (detached), not from theta0 and a fresh state"),
        ]
        for flags, message in diagnoses:
            if _close(got, after(None, **flags)[1], tol=1e-8):
                _fail(name, message)
        family, problems, net = _meta_training_setup()
        steps = []

        class Counting(torch.optim.SGD):
            def step(self, *args, **kwargs):
                steps.append(1)
                return super().step(*args, **kwargs)

        with torch.random.fork_rng(devices=[]):
            try:
                meta_train_iteration(net, family, problems, Counting(net.parameters(), lr=lr), horizon, K)
            except Exception:  # noqa: BLE001 (already reported above if it matters)
                pass
        if len(steps) != horizon // K:
            _fail(name, f"one meta-update per truncation: {horizon // K} calls of meta_optimizer.step() for "
                        f"horizon {horizon} and K = {K}, you made {len(steps)}")
        _fail(name, "after one iteration the LSTM's weights differ from the reference: unroll K steps with "
                    "lo.unroll from the current theta and state, meta-loss = losses[1:].mean(), zero_grad, "
                    "backward, step, detach")
    if not isinstance(losses, (list, tuple)) or len(losses) != horizon // K:
        _fail(name, f"return the list of the {horizon // K} meta-losses (one float per truncation)")
    if not _close(torch.tensor([float(v) for v in losses]), torch.tensor(want_losses), tol=1e-8):
        _fail(name, f"the returned meta-losses should be {[round(v, 6) for v in want_losses]}, got "
                    f"{[round(float(v), 6) for v in losses]}")
    _passed(name, 1)


def _inner_step_setup():
    """Two tasks of 6 examples, a 4-3-3 classifier and a learned loss that is not the cross-entropy (float64)."""
    from course_lib import learned_losses as ll

    g = torch.Generator().manual_seed(11)
    shapes = ll.classifier_shapes(4, 3, 3)
    theta = ll.init_classifier(shapes, 2, g).double()
    x = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(3, (2, 6), generator=g)
    test_x = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    test_y = torch.randint(3, (2, 5), generator=g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        loss = ll.LearnedLoss(hidden_size=4).double()
    with torch.no_grad():
        loss.mlp[-1].weight.normal_(0, 0.5, generator=g)
        loss.linear.weight.copy_(torch.tensor([[-0.7, 0.4]]))
    return shapes, theta, x, y, test_x, test_y, loss


def check_learned_loss_inner_step(inner_sgd_step: Callable) -> None:
    """``inner_sgd_step(loss_fn, theta [B, n], x [B, m, d], y [B, m], shapes, lr) -> theta' [B, n]``: one SGD
    step of every task's classifier on the MEAN of loss_fn over its examples, differentiable with respect to
    phi (create_graph=True) and to theta."""
    from course_lib import learned_losses as ll

    name = "check_learned_loss_inner_step"
    lr = 0.3
    shapes, theta0, x, y, test_x, test_y, loss_fn = _inner_step_setup()

    def step(theta, fn=loss_fn, reduce=lambda l: l.mean(dim=1).sum(), create_graph=True, sign=-1.0):
        loss = reduce(fn(ll.classifier_logits(theta, x, shapes), y))
        (grad,) = torch.autograd.grad(loss, theta, create_graph=create_graph)
        return theta + sign * lr * grad

    def meta_gradient(new_theta):
        outer = ll.cross_entropy(ll.classifier_logits(new_theta, test_x, shapes), test_y).mean()
        grads = torch.autograd.grad(outer, list(loss_fn.parameters()), allow_unused=True)
        if all(g is None for g in grads):
            return None
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for p, g in zip(loss_fn.parameters(), grads)])

    theta = theta0.clone().requires_grad_(True)
    kept = theta.detach().clone()
    new = _run(name, inner_sgd_step, loss_fn, theta, x, y, shapes, lr)
    if not isinstance(new, torch.Tensor) or new.shape != theta.shape:
        _fail(name, f"return the new parameters of every task, a tensor of shape {tuple(theta.shape)} like theta")
    if not torch.equal(theta.detach(), kept):
        _fail(name, "you changed theta in place: return theta - lr * grad as a new tensor")
    value = new.detach()
    want = step(theta0.clone().requires_grad_(True)).detach()
    if not _close(value, want, tol=1e-8):
        grad = (kept - want) / lr
        ce_step = step(theta0.clone().requires_grad_(True), fn=ll.cross_entropy).detach()
        if _close(value, kept + lr * grad, tol=1e-8):
            _fail(name, "wrong sign: SGD steps against the gradient, theta - lr * grad")
        if _close(value, kept - lr * grad * x.shape[1], tol=1e-8):
            _fail(name, "you summed loss_fn over the examples: take the MEAN over each task's examples (as SGD on "
                        "a minibatch does), so the step size does not grow with the batch")
        if _close(value, kept - lr * grad / x.shape[0], tol=1e-8):
            _fail(name, "you averaged over the tasks too, which divides every task's step by the number of tasks: "
                        "mean over the examples (dim 1), then SUM over the tasks, each task's classifier takes its "
                        "own full step")
        if _close(value, ce_step, tol=1e-8):
            _fail(name, "this is a step on the cross-entropy: call loss_fn(logits, y), the learned loss L_phi, "
                        "which is the point of the exercise")
        if _close(value, -lr * grad, tol=1e-8) or _close(value, grad, tol=1e-8):
            _fail(name, "return the new parameters theta - lr * grad, not the update or the gradient")
        if _close(value, kept - grad, tol=1e-8):
            _fail(name, "multiply the gradient by the learning rate lr")
        _fail(name, "the new parameters are not theta - lr * grad_theta mean_i loss_fn(f_theta(x_i), y_i)")
    got_meta = meta_gradient(new)
    if got_meta is None or float(got_meta.abs().max()) == 0.0:
        _fail(name, "no meta-gradient reaches phi (the learned loss's weights): compute the gradient with "
                    "torch.autograd.grad(..., create_graph=True), so that the new theta is a differentiable "
                    "function of phi, and do not detach it")
    want_meta = meta_gradient(step(theta0.clone().requires_grad_(True)))
    if not _close(got_meta, want_meta, tol=1e-7):
        _fail(name, "the meta-gradient with respect to phi is wrong after one step: keep the whole graph "
                    "(create_graph=True, no .detach() or .data)")
    # Two chained steps: phi reaches the second step through theta_1 as well.
    theta = theta0.clone().requires_grad_(True)
    two = _run(name, inner_sgd_step, loss_fn, _run(name, inner_sgd_step, loss_fn, theta, x, y, shapes, lr), x, y,
               shapes, lr)
    got_meta = meta_gradient(two)
    want_meta = meta_gradient(step(step(theta0.clone().requires_grad_(True))))
    if got_meta is None or not _close(got_meta, want_meta, tol=1e-7):
        _fail(name, "over two chained steps the meta-gradient is wrong: do not detach theta (or make it a new "
                    "leaf) inside the step; phi acts on theta_2 through grad(theta_1) AND through theta_1 itself")
    _passed(name, 3)


# --------------------------------------------------------------------------
# Notebook 09: the capstone benchmark
# --------------------------------------------------------------------------


def check_permute_pixels(permute_pixels: Callable) -> None:
    """``permute_pixels(images [B, 1, H, W], permutation [H*W]) -> [B, 1, H, W]``: pixel i of every output
    image is pixel ``permutation[i]`` of the input image (the same permutation for every image), as
    :func:`course_lib.benchmark.permute_pixels` does for the permuted test sets."""
    name = "check_permute_pixels"
    generator = torch.Generator().manual_seed(9)
    cases = [(4, 1, 5, 5), (3, 1, 28, 28), (2, 1, 3, 4)]
    for shape in cases:
        images = torch.rand(*shape, generator=generator)
        permutation = torch.randperm(shape[1] * shape[2] * shape[3], generator=generator)
        result = _run(name, permute_pixels, images.clone(), permutation)
        if not isinstance(result, torch.Tensor):
            _fail(name, f"return a tensor, got {type(result).__name__}")
        if result.shape != images.shape:
            if result.numel() == images.numel():
                _fail(name, f"keep the image shape {tuple(images.shape)}: got {tuple(result.shape)} "
                            "(flatten, permute, then reshape back)")
            _fail(name, f"expected shape {tuple(images.shape)}, got {tuple(result.shape)}")
        flat = images.flatten(1)
        want = flat[:, permutation].view_as(images)
        if torch.equal(result, want):
            continue
        inverse = torch.empty_like(flat)
        inverse[:, permutation] = flat
        if torch.equal(result, inverse.view_as(images)):
            _fail(name, "that is the INVERSE permutation: output pixel i must be input pixel permutation[i], "
                        "i.e. flat[:, permutation]")
        if torch.equal(result, images):
            _fail(name, "the images came back unchanged")
        if torch.equal(result.flatten(1).sort(dim=1).values, flat.sort(dim=1).values):
            if not torch.equal(result[0], want[0]):
                _fail(name, "each image keeps its pixel values but not in the right order: apply the same "
                            "permutation to the flattened pixels of every image (not to rows or columns only)")
            _fail(name, "every image must get the SAME permutation (the first image is right, others are not)")
        if torch.equal(result.sort(dim=0).values, images.sort(dim=0).values):
            _fail(name, "the images were shuffled among themselves: permute the pixels within each image, "
                        "not the batch dimension")
        _fail(name, "the pixel values changed: a permutation only moves pixels")
    _passed(name, len(cases))


def check_kept_share(kept_share: Callable) -> None:
    """``kept_share(acc_in, acc_out, ways) -> float``: the share of its above-chance accuracy a method keeps out
    of distribution, ``(acc_out - 1/ways) / (acc_in - 1/ways)``, accuracies as fractions in [0, 1]."""
    name = "check_kept_share"
    cases = [(0.976, 0.336, 5), (0.90, 0.90, 2), (0.60, 0.70, 5), (0.95, 0.30, 20), (0.99, 0.5, 2)]
    for acc_in, acc_out, ways in cases:
        want = (acc_out - 1 / ways) / (acc_in - 1 / ways)
        result = _run(name, kept_share, acc_in, acc_out, ways)
        try:
            got = float(result)
        except (TypeError, ValueError):
            _fail(name, f"return one number, got {result!r}")
        if abs(got - want) < 1e-9:
            continue
        if abs(got - acc_out / acc_in) < 1e-9:
            _fail(name, "subtract chance (1/ways) from both accuracies: a method at chance keeps nothing, "
                        "and acc_out / acc_in would give it credit for guessing")
        if abs(got - (acc_in - 1 / ways) / (acc_out - 1 / ways)) < 1e-9:
            _fail(name, "in and out are swapped: divide what is kept OUT of distribution by what there was IN it")
        if abs(got - (acc_out - 0.5) / (acc_in - 0.5)) < 1e-9 and ways != 2:
            _fail(name, "chance is 1/ways, not 1/2: with 5 classes, guessing gets 20 %")
        if abs(got - (acc_out - acc_in)) < 1e-9 or abs(got - (acc_in - acc_out)) < 1e-9:
            _fail(name, "that is a difference of accuracies; the share is a RATIO of above-chance accuracies")
        if abs(got - 100 * want) < 1e-6:
            _fail(name, "return a fraction (1.0 = everything kept), not a percentage")
        _fail(name, f"acc_in={acc_in}, acc_out={acc_out}, {ways}-way: expected {want:.4f}, got {got:.4f}")
    _passed(name, len(cases))
