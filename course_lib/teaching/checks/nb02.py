"""Checks for the exercises of notebook 02: few-shot classification.

The assignment builds the test protocol of few-shot learning: an episode
sampler, a 95% confidence interval and the evaluation over test episodes; the
short exercises audit an episode and write the nearest-centroid learner.
Random draws are checked by their properties, never against exact samples.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ...episodes import Episode
from ...evaluation import Z_95, t_95
from .common import ExerciseError, close, fail, fail_if, passed, run_for_items, run_for_tensor, run_student


# Build it, step 1: the episode sampler


def check_sample_episode(sample_episode: Callable) -> None:
    """``sample_episode(labels, ways, shots, queries, generator) -> (support_index, support_y, query_index,
    query_y)``: indices into the dataset and episode labels 0..ways-1, in any order."""
    name = "check_sample_episode"
    # 10 classes of 8-11 examples, shuffled: a class's examples are not a contiguous block
    counts = [8, 9, 10, 11, 8, 9, 10, 11, 8, 9]
    labels = torch.arange(10).repeat_interleave(torch.tensor(counts))
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    ways, shots, queries, seeds = 3, 2, 4, 20
    drawn_classes, support_seen = [], {}
    for seed in range(seeds):
        support_index, support_y, query_index, query_y = (
            torch.as_tensor(t).long().flatten() for t in _episode_of(name, sample_episode, labels, ways, shots,
                                                                     queries, seed))
        fail_if(name, len(support_index) == ways * queries and len(query_index) == ways * shots,
                "shots and queries are swapped: the support set holds ways * shots examples")
        fail_if(name, len(support_index) != len(support_y) or len(query_index) != len(query_y),
                "return one label per index, for the support set and for the query set")
        fail_if(name, len(support_index) != ways * shots,
                f"the support set must hold ways * shots = {ways * shots} examples, got {len(support_index)}")
        fail_if(name, len(query_index) != ways * queries,
                f"the query set must hold ways * queries = {ways * queries} examples, got {len(query_index)}")
        episode_labels = set(support_y.tolist()) | set(query_y.tolist())
        fail_if(name, not episode_labels <= set(range(ways)),
                f"episode labels must be 0..{ways - 1}: relabel the chosen classes instead of keeping their "
                f"class ids (got labels {sorted(episode_labels)})")
        fail_if(name, torch.bincount(support_y, minlength=ways).tolist() != [shots] * ways,
                f"every class needs exactly shots = {shots} support examples, got label counts "
                f"{torch.bincount(support_y, minlength=ways).tolist()}")
        fail_if(name, torch.bincount(query_y, minlength=ways).tolist() != [queries] * ways,
                f"every class needs exactly queries = {queries} query examples, got label counts "
                f"{torch.bincount(query_y, minlength=ways).tolist()}")
        classes = []
        for k in range(ways):
            support_classes = set(labels[support_index[support_y == k]].tolist())
            query_classes = set(labels[query_index[query_y == k]].tolist())
            fail_if(name, len(support_classes) != 1,
                    f"the support examples labelled {k} come from several classes {sorted(support_classes)}")
            fail_if(name, query_classes != support_classes,
                    f"label {k} means class {sorted(support_classes)} in the support set but "
                    f"{sorted(query_classes)} in the query set: use the same class for both")
            classes.append(support_classes.pop())
            support_seen.setdefault(classes[-1], set()).update(support_index[support_y == k].tolist())
        fail_if(name, len(set(classes)) != ways,
                "a class was chosen twice: pick `ways` distinct classes (without replacement)")
        fail_if(name, bool(set(support_index.tolist()) & set(query_index.tolist())),
                "a query example is also a support example: draw shots + queries distinct examples per class, "
                "then split them")
        fail_if(name, support_index.unique().numel() < len(support_index)
                or query_index.unique().numel() < len(query_index),
                "the same example appears twice in one set: draw the examples of a class without replacement")
        drawn_classes.append(classes)
    fail_if(name, len({tuple(sorted(c)) for c in drawn_classes}) == 1,
            "every seed gives the same classes: choose them at random with the generator")
    fail_if(name, all(c == sorted(c) for c in drawn_classes),
            "label 0 is always the smallest class id: relabel the classes in the random order they were drawn, "
            "so that a label says nothing about which class it is")
    fail_if(name, all(len(seen) <= shots for seen in support_seen.values()),
            "a class always gets the same support examples: shuffle the examples of each class too")
    with torch.random.fork_rng(devices=[]):
        episodes = []
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)  # must not matter: every random number comes from `generator`
            episodes.append([torch.as_tensor(t).tolist() for t in _episode_of(name, sample_episode, labels, ways,
                                                                               shots, queries, 5)])
    fail_if(name, episodes[0] != episodes[1],
            "the same generator seed gave two different episodes: draw every random number from `generator` "
            "(torch.randperm(n, generator=generator)), never from torch's global random state or Python's random")
    passed(name, seeds + 1)


def _episode_of(name, sample_episode, labels, ways, shots, queries, seed) -> tuple:
    return run_for_items(name, sample_episode, labels.clone(), ways, shots, queries,
                         torch.Generator().manual_seed(seed), count=4,
                         what="four tensors: support_index, support_y, query_index, query_y")


# Build it, step 2: the 95% confidence interval


def accepted_half_widths(values: torch.Tensor) -> list[float]:
    """The half-widths a correct answer may give: 1.96 or Student's t, sample or population std."""
    n = values.numel()
    return [q * values.std(correction=c).item() / math.sqrt(n) for q in (Z_95, t_95(n)) for c in (0, 1)]


def _half_width_mistakes(values: torch.Tensor, what: str) -> list[tuple[float, str]]:
    """(wrong half-width, message) for the usual slips in ``q * std / sqrt(n)``; ``what`` names n."""
    n, s, q = values.numel(), values.std().item(), Z_95
    return [
        (q * s, f"divide the standard deviation by sqrt(n), n = {what}: the interval is for the mean, and it "
                "shrinks as values are added"),
        (s, f"divide the standard deviation by sqrt(n), n = {what}, and multiply by 1.96: the interval is for "
            "the mean, not for a single value"),
        (q * s / n, "divide by sqrt(n), not by n"),
        (s / math.sqrt(n), "multiply the standard error std / sqrt(n) by 1.96 (or Student's t) for 95%"),
        (q * values.var().item() / math.sqrt(n), "use the standard deviation, not the variance"),
        (2 * q * s / math.sqrt(n), "return the half-width (the ± part), not the whole width of the interval"),
    ]


def _judge_interval(name: str, values: torch.Tensor, mean, half, what: str, extra=()) -> None:
    true_mean = values.double().mean().item()
    fail_if(name, close(mean, 100 * true_mean, 1e-4) or close(half, 100 * accepted_half_widths(values)[3], 1e-2),
            "return fractions, as the accuracies come in, not percentages")
    fail_if(name, close(mean, 1 - true_mean, 1e-5) and not close(mean, true_mean, 1e-5),
            "you returned the error rate: the mean is of the accuracies")
    fail_if(name, not close(mean, true_mean, 1e-5),
            f"the first value must be the mean accuracy {true_mean:.4f}, got {float(mean):.4f}")
    if any(close(half, h, 2e-3) for h in accepted_half_widths(values)):
        return
    mistakes = list(extra) + _half_width_mistakes(values, what)
    for wrong, message in mistakes:
        fail_if(name, close(half, wrong, 2e-3), message)
    fail(name, f"the half-width must be 1.96 (or Student's t) x std / sqrt(n) = "
               f"{accepted_half_widths(values)[3]:.4f}, got {float(half):.4f}")


def check_confidence_interval(confidence_interval: Callable[[torch.Tensor], tuple]) -> None:
    """``confidence_interval(accuracies [n]) -> (mean, half_width)`` with ``half_width = q * std / sqrt(n)``
    (q = 1.96, or Student's t for small n)."""
    name = "check_confidence_interval"
    generator = torch.Generator().manual_seed(0)
    cases = [torch.randint(0, 16, (400,), generator=generator) / 15,  # 400 episodes of 15 queries
             torch.tensor([0.6, 0.8, 0.7, 1.0]),                      # 4 values: 1.96 or t, both accepted
             torch.rand(50, generator=generator) * 0.5 + 0.5]
    for values in cases:
        kept = values.clone()
        mean, half = (float(torch.as_tensor(v)) for v in run_for_items(
            name, confidence_interval, values, count=2, what="two numbers: the mean and the half-width"))
        fail_if(name, not torch.equal(values, kept), "you changed the accuracies in place: leave the input as it is")
        _judge_interval(name, values, mean, half, what="the number of values")
    passed(name, len(cases))


# Build it, step 3: the evaluation over test episodes


def _scored_episodes(correct_per_episode: list[int], ways: int = 3, shots: int = 2, queries: int = 4,
                     seed: int = 0) -> tuple[list[Episode], dict]:
    """Tiny episodes and, for each, the scores a fixed learner gives: episode e has exactly
    ``correct_per_episode[e]`` of its ``ways * queries`` queries right."""
    generator = torch.Generator().manual_seed(seed)
    episodes, answers = [], {}
    labels = torch.arange(ways)
    for e, correct in enumerate(correct_per_episode):
        support_x = torch.rand(ways * shots, 1, 2, 2, generator=generator)
        query_x = torch.rand(ways * queries, 1, 2, 2, generator=generator)
        query_x[:, 0, 0, 0] = 1000 * (e + 1) + torch.arange(ways * queries)  # marks the episode and the query
        query_y = labels.repeat_interleave(queries)
        right = torch.randperm(ways * queries, generator=generator) < correct
        predicted = torch.where(right, query_y, (query_y + 1) % ways)
        scores = torch.rand(ways * queries, ways, generator=generator)  # the predicted class scores highest
        scores[torch.arange(ways * queries), predicted] = 2 + torch.rand(ways * queries, generator=generator)
        episodes.append(Episode(support_x, labels.repeat_interleave(shots), query_x, query_y, labels))
        answers[1000 * (e + 1)] = (scores, right)
    return episodes, answers


def check_evaluate(evaluate: Callable) -> None:
    """``evaluate(predict, episodes) -> (mean, half_width)``: the mean query accuracy of ``predict`` over
    the episodes, with a 95% interval over episodes; ``predict`` sees only the support set and the
    query images."""
    name = "check_evaluate"
    correct = [12, 9, 6, 11, 3, 12, 8, 10, 7, 12]  # of 12 queries per episode
    episodes, answers = _scored_episodes(correct)
    calls = []

    def predict(*args):
        fail_if(name, len(args) != 3,
                f"call predict(support_x, support_y, query_x): it got {len(args)} arguments. Never give the "
                "learner the query labels; compare its answer with query_y afterwards")
        support_x, support_y, query_x = (torch.as_tensor(a) for a in args)
        fail_if(name, support_x.shape[:1] != support_y.shape[:1],
                f"predict got {support_x.shape[0]} support images but {support_y.shape[0]} labels: give it "
                "support_y; query_y belongs to the query set and must never reach the learner")
        fail_if(name, support_x.ndim == 4 and support_x.shape[0] and int(support_x[0, 0, 0, 0]) in answers,
                "the learner was given the query set as its support set, so it sees the query labels: "
                "call predict(support_x, support_y, query_x)")
        key = int(query_x[0, 0, 0, 0]) if query_x.ndim == 4 and query_x.shape[0] else -1
        fail_if(name, key not in answers, "predict must be asked about the query images, query_x")
        calls.append(key)
        return answers[key][0].clone()

    result = _run_evaluate(name, evaluate, predict, list(episodes))
    fail_if(name, not isinstance(result, (tuple, list)) or len(result) != 2,
            "return two numbers: the mean and the half-width")
    mean, half = (float(torch.as_tensor(v)) for v in result)
    fail_if(name, len(calls) != len(episodes),
            f"call the learner once per episode ({len(episodes)} here), it was called {len(calls)} times")
    per_episode = torch.tensor(correct, dtype=torch.float64) / 12
    pooled = torch.cat([answers[k][1] for k in sorted(answers)]).double()
    pooled_mistakes = [(h, "the interval must be over episodes: one accuracy per episode, n = the number of "
                           "episodes, not every query pooled (the queries of an episode share its classes, "
                           "so they are not independent)") for h in accepted_half_widths(pooled)]
    fail_if(name, close(mean, 1 - per_episode.mean().item()), "you returned the error rate, not the accuracy")
    fail_if(name, not close(mean, per_episode.mean().item(), 1e-5),
            f"the mean accuracy over these episodes is {per_episode.mean().item():.4f}, got {mean:.4f}: an "
            "episode's accuracy is the fraction of its queries whose highest score (argmax) is the query label")
    _judge_interval(name, per_episode, mean, half, what="the number of episodes", extra=pooled_mistakes)
    streamed = _run_evaluate(name, evaluate, predict, (episode for episode in episodes), streamed=True)
    fail_if(name, not close(torch.as_tensor(streamed[0]), mean),
            "given the same episodes as a generator, the result changed: go through `episodes` once")
    passed(name, 2)


def _run_evaluate(name: str, evaluate: Callable, predict: Callable, episodes, streamed: bool = False):
    """``evaluate(predict, episodes)``; the learner's own complaints (an ExerciseError) and an unfinished
    exercise pass through, any other error is named."""
    try:
        return evaluate(predict, episodes)
    except (NotImplementedError, ExerciseError):
        raise
    except Exception as error:
        fail(name, f"your function raised {type(error).__name__}: {error}" + (
            ". The episodes came as a generator here: go through `episodes` once, in a for loop, and count "
            "the accuracies you collect (a generator has no len())" if streamed else ""))


# Short exercise: audit an episode


def _valid_episode(labels: torch.Tensor, classes: list[int], shots: list[int], queries: int) -> list:
    """An episode of ``classes`` (label k is classes[k]) with ``shots[k]`` support examples of class k."""
    support, support_y, query, query_y = [], [], [], []
    for k, (c, shots_k) in enumerate(zip(classes, shots)):
        members = (labels == c).nonzero().flatten()
        support += members[:shots_k].tolist()
        query += members[shots_k:shots_k + queries].tolist()
        support_y += [k] * shots_k
        query_y += [k] * queries
    return [torch.tensor(v) for v in (support, support_y, query, query_y)]


def episode_cases() -> tuple[torch.Tensor, list[tuple[str, bool, int, list]]]:
    """Labels of a small dataset and (description, valid?, shots, [support_index, support_y, query_index,
    query_y]) for correct episodes and for the usual mistakes."""
    labels = torch.arange(6).repeat_interleave(5)[torch.randperm(30, generator=torch.Generator().manual_seed(0))]
    s, sy, q, qy = _valid_episode(labels, [4, 1, 3], shots=[2, 2, 2], queries=2)
    order = torch.randperm(len(s), generator=torch.Generator().manual_seed(1))
    other_class = s.clone()
    other_class[3] = (labels == 0).nonzero()[0, 0]  # the second support example of label 1 is from class 0
    return labels, [
        ("a correct episode", True, 2, [s, sy, q, qy]),
        ("a correct episode in another order", True, 2, [s[order], sy[order], q.flip(0), qy.flip(0)]),
        ("a correct 1-shot episode", True, 1, _valid_episode(labels, [0, 5], shots=[1, 1], queries=3)),
        ("an episode whose query set holds a support image", False, 2, [s, sy, torch.cat([s[:1], q[1:]]), qy]),
        ("an episode that keeps the class ids 4, 1, 3 as its labels", False, 2, [s, labels[s], q, labels[q]]),
        ("an episode with 3, 1 and 2 support examples for its classes", False, 2,
         _valid_episode(labels, [4, 1, 3], shots=[3, 1, 2], queries=2)),
        ("an episode whose label 0 is one class in the support set and another in the query set", False, 2,
         [s, sy, q.roll(2), qy]),
        ("an episode with the same support image twice", False, 2, [torch.cat([s[:1], s[:1], s[2:]]), sy, q, qy]),
        ("an episode whose label 1 mixes two classes in the support set", False, 2, [other_class, sy, q, qy]),
    ]


def check_is_valid_episode(is_valid_episode: Callable) -> None:
    """``is_valid_episode(labels, support_index, support_y, query_index, query_y, shots) -> bool``."""
    name = "check_is_valid_episode"
    labels, cases = episode_cases()
    for description, valid, shots, (s, sy, q, qy) in cases:
        answer = run_student(name, is_valid_episode, labels.clone(), s.clone(), sy.clone(), q.clone(), qy.clone(),
                             shots)
        fail_if(name, not isinstance(answer, (bool, torch.Tensor)) or torch.as_tensor(answer).numel() != 1,
                f"return True or False, got {answer!r}")
        fail_if(name, bool(answer) != valid,
                f"you {'rejected' if valid else 'accepted'} {description}"
                + ("" if valid else ": it must return False"))
    passed(name, len(cases))


# Short exercise: the nearest-centroid learner


def check_nearest_centroid(nearest_centroid: Callable) -> None:
    """``nearest_centroid(support_x, support_y, query_x) -> scores [n_query, ways]``, highest for the class
    whose mean support image is nearest (Euclidean)."""
    name = "check_nearest_centroid"
    features = torch.tensor([[1.0, 0, 0, 0], [0, 4, 0, 0], [3, 0, 0, 0], [0, 2, 0, 0], [5, 5, 0, 0], [0, 0, 2, 0]])
    support_y = torch.tensor([0, 1, 0, 1, 2, 1])  # unsorted; 2, 3 and 1 shots
    centroids = torch.stack([features[support_y == k].mean(0) for k in range(3)])
    generator = torch.Generator().manual_seed(0)
    query = torch.cat([torch.tensor([[2.2, 0, 0, 0], [0, 2.2, 0.6, 0], [4.6, 4.4, 0, 0]]),
                       6 * torch.rand(40, 4, generator=generator)])
    support_x, query_x = features.reshape(-1, 1, 2, 2), query.reshape(-1, 1, 2, 2)
    kept = support_x.clone(), support_y.clone(), query_x.clone()
    scores = run_for_tensor(name, nearest_centroid, support_x, support_y, query_x)
    fail_if(name, not all(torch.equal(a, b) for a, b in zip(kept, (support_x, support_y, query_x))),
            "you changed an input in place: leave the support and query tensors as they are")
    fail_if(name, scores.shape == (3, len(query)), "the scores are transposed: return [n_query, ways]")
    fail_if(name, scores.shape != (len(query), 3),
            f"return one score per query and class, shape [n_query, ways] = {(len(query), 3)}, "
            f"got {tuple(scores.shape)}")
    predicted = scores.argmax(1)
    if torch.equal(predicted, torch.cdist(query, centroids).argmin(1)):
        passed(name, len(query))
        return

    def nearest(means: torch.Tensor, p: float = 2.0) -> torch.Tensor:
        return torch.cdist(query, means, p=p).argmin(1)

    diagnosed = [
        (torch.cdist(query, centroids).argmax(1), "the highest score must mean the nearest centroid: "
                                                  "return minus the distance"),
        (nearest(torch.stack([features[support_y == k].sum(0) for k in range(3)])),
         "you summed the support images of each class: divide by their number (the mean)"),
        (nearest(torch.stack([features[support_y == k][0] for k in range(3)])),
         "take the mean of all support images of a class, not its first one"),
        (nearest(features.reshape(3, 2, -1).mean(1)), "the support labels here are neither sorted nor "
                                                      "balanced: average the images whose label is k"),
        (nearest(centroids, p=1), "use the Euclidean distance, not the sum of absolute differences"),
    ]
    for wrong, message in diagnosed:
        fail_if(name, torch.equal(predicted, wrong), message)
    fail(name, "the highest score must go to the class whose centroid (mean support image) is nearest")
