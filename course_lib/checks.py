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
