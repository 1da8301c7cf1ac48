"""Checks for the exercises of notebook 02: few-shot classification."""

from __future__ import annotations

from typing import Callable

import torch

from .common import fail, fail_if, passed, run_for_items, run_for_tensor


def check_sample_episode(sample_episode: Callable) -> None:
    """``sample_episode(labels, ways, shots, queries, generator) -> (support_index, support_y, query_index,
    query_y)``: indices into the dataset, and episode labels 0..ways-1 sorted by label."""
    name = "check_sample_episode"
    labels = torch.arange(10).repeat_interleave(8)  # 10 classes x 8 examples
    ways, shots, queries = 3, 2, 4
    class_sets = []
    for seed in range(6):
        generator = torch.Generator().manual_seed(seed)
        result = run_for_items(name, sample_episode, labels, ways, shots, queries, generator, count=4,
                               what="four tensors: support_index, support_y, query_index, query_y")
        support_index, support_y, query_index, query_y = (torch.as_tensor(t) for t in result)
        fail_if(name, len(support_index) == ways * queries and len(query_index) == ways * shots,
                "shots and queries are swapped: the support set holds ways * shots examples")
        fail_if(name, len(support_index) != ways * shots or len(support_y) != ways * shots,
                f"the support set must hold ways * shots = {ways * shots} examples, got {len(support_index)}")
        fail_if(name, len(query_index) != ways * queries or len(query_y) != ways * queries,
                f"the query set must hold ways * queries = {ways * queries} examples, got {len(query_index)}")
        fail_if(name, sorted(set(support_y.tolist()) | set(query_y.tolist())) != list(range(ways)),
                f"episode labels must be 0..{ways - 1} (relabel the chosen classes), "
                f"got {sorted(set(support_y.tolist()))}")
        fail_if(name, any(not torch.equal(y, y.sort().values) for y in (support_y, query_y)),
                "sort the support and query sets by episode label (all of label 0 first, ...)")
        fail_if(name, bool(set(support_index.tolist()) & set(query_index.tolist())),
                "a query example is also a support example: draw shots + queries distinct examples per class")
        for k in range(ways):
            support_classes = set(labels[support_index][support_y == k].tolist())
            query_classes = set(labels[query_index][query_y == k].tolist())
            fail_if(name, len(support_classes) != 1,
                    f"the support examples labelled {k} come from several classes {sorted(support_classes)}")
            fail_if(name, query_classes != support_classes,
                    f"label {k} means class {support_classes} in the support set but {query_classes} "
                    "in the query set: use the same class for both")
        chosen = labels[support_index].unique()
        fail_if(name, len(chosen) != ways,
                "a class was chosen twice: pick `ways` distinct classes (without replacement)")
        class_sets.append(tuple(sorted(chosen.tolist())))
    fail_if(name, len(set(class_sets)) == 1,
            "every seed gives the same classes: choose them at random with the generator")
    passed(name, len(class_sets))


def check_pixel_nearest_neighbour(nearest_neighbour: Callable) -> None:
    """``nearest_neighbour(support_x, support_y, query_x) -> predicted labels [n_query]`` (Euclidean)."""
    name = "check_pixel_nearest_neighbour"
    support_x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    support_y = torch.tensor([2, 0, 1, 2, 1, 0])  # 3-way 2-shot, deliberately not sorted
    order = torch.tensor([4, 0, 5, 2, 1, 3])
    predicted = run_for_tensor(name, nearest_neighbour, support_x, support_y, support_x[order])
    fail_if(name, predicted.shape != (6,),
            f"return one predicted label per query, shape (6,), got {tuple(predicted.shape)}")
    fail_if(name, torch.equal(predicted, order),
            "you returned the index of the nearest support image: return its label, support_y[index]")
    if not torch.equal(predicted, support_y[order]):
        farthest = torch.cdist(support_x[order].flatten(1), support_x.flatten(1)).argmax(1)
        fail_if(name, torch.equal(predicted, support_y[farthest]),
                "you picked the farthest support image: take the smallest distance")
        fail(name, "queries that are copies of support images must get those images' labels")
    # Euclidean and L1 distances disagree here: the nearest in L2 is the second image.
    support_x = torch.tensor([[3.0, 0.0], [2.0, 2.0]]).reshape(2, 1, 1, 2)
    query_x = torch.zeros(1, 1, 1, 2)
    predicted = run_for_tensor(name, nearest_neighbour, support_x, torch.tensor([0, 1]), query_x)
    fail_if(name, predicted.reshape(-1).tolist() != [1],
            "use the Euclidean distance (square root of the summed squared differences, or its square), "
            "not the sum of absolute differences")
    passed(name, 2)


def check_class_centroids(class_centroids: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> None:
    """``class_centroids(features [n, d], labels [n], ways) -> [ways, d]``: row k = mean of label k."""
    name = "check_class_centroids"
    features = torch.tensor([[1.0, 0.0], [0.0, 4.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    labels = torch.tensor([0, 1, 0, 1, 2])  # unsorted, and class 2 has one shot
    expected = torch.tensor([[2.0, 0.0], [0.0, 3.0], [5.0, 5.0]])
    centroids = run_for_tensor(name, class_centroids, features, labels, 3)
    fail_if(name, centroids.shape != (3, 2),
            f"return one centroid per class, shape (ways, d) = (3, 2), got {tuple(centroids.shape)}")
    fail_if(name, torch.allclose(centroids, torch.tensor([[4.0, 0.0], [0.0, 6.0], [5.0, 5.0]])),
            "you summed the features of each class: divide by the number of its examples (mean)")
    fail_if(name, torch.allclose(centroids, features.mean(0).expand(3, 2)),
            "every row is the mean over all examples: average only the examples with label k")
    fail_if(name, torch.allclose(centroids, features[:3]) or torch.allclose(centroids, features[[0, 1, 4]]),
            "take the mean of all examples of a class, not its first example")
    fail_if(name, not torch.allclose(centroids, expected), f"row k must be the mean of the features with label "
                                                           f"k; expected {expected.tolist()}, got "
                                                           f"{centroids.tolist()}")
    passed(name, 1)
