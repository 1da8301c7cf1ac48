"""Notebook 02's exercise checks accept correct solutions, in more than one form, and reject the typical
mistakes of an episode sampler and a test protocol in plain words."""

from __future__ import annotations

import math
import random

import pytest
import torch
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution
from scipy.stats import t as student_t

from course_lib.teaching.checks import nb02 as checks

NOTEBOOK = "02_few_shot_classification"  # the *_reference functions are its solutions, defined from its source

# Build it, step 1: the sampler

episode_reference = notebook_solution(NOTEBOOK, "sample_episode")


def episode_shuffled_lists(labels, ways, shots, queries, generator):
    """Another correct form: random keys instead of randperm, Python lists, query set in a random order."""
    classes = sorted(set(labels.tolist()))
    order = torch.rand(len(classes), generator=generator).argsort()[:ways].tolist()
    support, support_y, query, query_y = [], [], [], []
    for k, i in enumerate(order):
        members = [j for j, y in enumerate(labels.tolist()) if y == classes[i]]
        keys = torch.rand(len(members), generator=generator).argsort().tolist()
        support += [members[j] for j in keys[:shots]]
        query += [members[j] for j in keys[shots:shots + queries]]
        support_y += [k] * shots
        query_y += [k] * queries
    mix = torch.randperm(len(query), generator=generator).tolist()
    return support, support_y, [query[j] for j in mix], [query_y[j] for j in mix]


def episode_swapped(labels, ways, shots, queries, generator):
    return episode_reference(labels, ways, queries, shots, generator)


def episode_global_ids(labels, ways, shots, queries, generator):
    s, sy, q, qy = episode_reference(labels, ways, shots, queries, generator)
    return s, labels[s], q, labels[q]


def episode_overlapping(labels, ways, shots, queries, generator):
    """Support and query drawn separately from the same examples: a query can be a support image."""
    classes = labels.unique()[torch.randperm(len(labels.unique()), generator=generator)[:ways]]
    support, query = [], []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        support.append(members[torch.randperm(len(members), generator=generator)[:shots]])
        query.append(members[torch.randperm(len(members), generator=generator)[:queries]])
    return (torch.cat(support), torch.arange(ways).repeat_interleave(shots),
            torch.cat(query), torch.arange(ways).repeat_interleave(queries))


def episode_fixed_generator(labels, ways, shots, queries, generator):
    return episode_reference(labels, ways, shots, queries, torch.Generator().manual_seed(0))


def episode_global_rng(labels, ways, shots, queries, generator):
    return episode_reference(labels, ways, shots, queries, None)


def episode_python_random(labels, ways, shots, queries, generator):
    return episode_reference(labels, ways, shots, queries, torch.Generator().manual_seed(random.randrange(10**6)))


def episode_mismatched_query_labels(labels, ways, shots, queries, generator):
    s, sy, q, qy = episode_reference(labels, ways, shots, queries, generator)
    return s, sy, q.roll(queries), qy


def episode_with_replacement(labels, ways, shots, queries, generator):
    classes = labels.unique()[torch.randint(len(labels.unique()), (ways,), generator=generator)]
    support, query = [], []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[: shots + queries]]
        support.append(chosen[:shots])
        query.append(chosen[shots:])
    return (torch.cat(support), torch.arange(ways).repeat_interleave(shots),
            torch.cat(query), torch.arange(ways).repeat_interleave(queries))


def episode_first_examples(labels, ways, shots, queries, generator):
    """Random classes, but always the first examples of each."""
    classes = labels.unique()[torch.randperm(len(labels.unique()), generator=generator)[:ways]]
    chosen = [(labels == c).nonzero().flatten()[: shots + queries] for c in classes]
    return (torch.cat([c[:shots] for c in chosen]), torch.arange(ways).repeat_interleave(shots),
            torch.cat([c[shots:] for c in chosen]), torch.arange(ways).repeat_interleave(queries))


def episode_sorted_labels(labels, ways, shots, queries, generator):
    """Random classes, relabelled in the order of their class ids."""
    classes = labels.unique()[torch.randperm(len(labels.unique()), generator=generator)[:ways]].sort().values
    support, query = [], []
    for c in classes:
        members = (labels == c).nonzero().flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[: shots + queries]]
        support.append(chosen[:shots])
        query.append(chosen[shots:])
    return (torch.cat(support), torch.arange(ways).repeat_interleave(shots),
            torch.cat(query), torch.arange(ways).repeat_interleave(queries))


def episode_pooled_support(labels, ways, shots, queries, generator):
    """ways * shots support examples drawn from the chosen classes together: the shots per class vary."""
    _, _, q, qy = episode_reference(labels, ways, shots, queries, generator)
    chosen = labels[q].unique_consecutive()
    label_of = {int(c): k for k, c in enumerate(chosen)}
    pool = [i for i in range(len(labels)) if int(labels[i]) in label_of and i not in set(q.tolist())]
    s = torch.tensor(pool)[torch.randperm(len(pool), generator=generator)[: ways * shots]]
    return s, torch.tensor([label_of[int(labels[i])] for i in s]), q, qy


# Build it, step 2: the interval

ci_reference = notebook_solution(NOTEBOOK, "confidence_interval")


def ci_t(accuracies):
    n = len(accuracies)
    return accuracies.mean().item(), student_t.ppf(0.975, n - 1) * accuracies.std().item() / math.sqrt(n)


def ci_z_population(accuracies):
    values = accuracies.tolist()
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return mean, 1.96 * std / math.sqrt(len(values))


def ci_in_place(accuracies):
    accuracies.mul_(1.0)
    accuracies -= 0  # harmless
    accuracies[0] = accuracies[0] + 0.5
    return ci_t(accuracies)


# Build it, step 3: the protocol


evaluate_reference = notebook_solution(NOTEBOOK, "evaluate")


def evaluate_counts(predict, episodes):
    """Another correct form: counts of right answers, 1.96, NumPy."""
    import numpy as np
    right, total = [], []
    for e in episodes:
        right.append(int((predict(e.support_x, e.support_y, e.query_x).max(1).indices == e.query_y).sum()))
        total.append(len(e.query_y))
    accuracies = np.array(right) / np.array(total)
    return accuracies.mean(), 1.96 * accuracies.std(ddof=1) / np.sqrt(len(accuracies))


def evaluate_pooled(predict, episodes):
    right = torch.cat([(predict(e.support_x, e.support_y, e.query_x).argmax(1) == e.query_y).float()
                       for e in episodes])
    return ci_t(right)


def evaluate_leaking(predict, episodes):
    accuracies = [(predict(e.query_x, e.query_y, e.query_x).argmax(1) == e.query_y).float().mean() for e in episodes]
    return ci_t(torch.stack(accuracies))


def evaluate_query_labels_as_support(predict, episodes):
    accuracies = [(predict(e.support_x, e.query_y, e.query_x).argmax(1) == e.query_y).float().mean()
                  for e in episodes]
    return ci_t(torch.stack(accuracies))


def evaluate_four_arguments(predict, episodes):
    accuracies = [(predict(e.support_x, e.support_y, e.query_x, e.query_y).argmax(1) == e.query_y).float().mean()
                  for e in episodes]
    return ci_t(torch.stack(accuracies))


def evaluate_std_only(predict, episodes):
    accuracies = torch.stack([(predict(e.support_x, e.support_y, e.query_x).argmax(1) == e.query_y).float().mean()
                              for e in episodes])
    return accuracies.mean(), 1.96 * accuracies.std()


def evaluate_argmin(predict, episodes):
    accuracies = torch.stack([(predict(e.support_x, e.support_y, e.query_x).argmin(1) == e.query_y).float().mean()
                              for e in episodes])
    return ci_t(accuracies)


def evaluate_with_len(predict, episodes):
    n = len(episodes)
    accuracies = torch.stack([(predict(e.support_x, e.support_y, e.query_x).argmax(1) == e.query_y).float().mean()
                              for e in episodes])
    return accuracies.sum() / n, ci_t(accuracies)[1]


# Short exercises

valid_reference = notebook_solution(NOTEBOOK, "is_valid_episode")
centroid_reference = notebook_solution(NOTEBOOK, "nearest_centroid")


def valid_counts(labels, support_index, support_y, query_index, query_y, shots):
    """Another correct form: the support counts compared as one tensor, the labels by their maximum."""
    ways = len(support_y.unique())
    everything = torch.cat([support_index, query_index])
    if everything.unique().numel() != everything.numel():
        return False
    if not torch.equal(torch.bincount(support_y), torch.full((ways,), shots)) or int(query_y.max()) >= ways:
        return False
    classes = [labels[torch.cat([support_index[support_y == k], query_index[query_y == k]])].unique()
               for k in range(ways)]
    return all(len(c) == 1 for c in classes) and len(torch.cat(classes).unique()) == ways


def valid_sets(labels, support_index, support_y, query_index, query_y, shots):
    """Another correct form, with Python sets and a dict from label to class."""
    s, q = support_index.tolist(), query_index.tolist()
    if len(set(s) | set(q)) != len(s) + len(q):
        return False
    label_class = {}
    for index, y in zip(s + q, support_y.tolist() + query_y.tolist()):
        if label_class.setdefault(y, int(labels[index])) != int(labels[index]):
            return False
    ways = len(label_class)
    counts = [support_y.tolist().count(k) for k in range(ways)]
    return sorted(label_class) == list(range(ways)) and counts == [shots] * ways


def valid_without(omitted):
    """The rules of a valid episode, one of them left out (or weakened): a wrong audit."""
    def valid(labels, s, sy, q, qy, shots):
        ways = len(sy.unique())
        rules = {
            "overlap": lambda: not set(s.tolist()) & set(q.tolist()),
            "duplicates": lambda: s.unique().numel() == s.numel() and q.unique().numel() == q.numel(),
            "shots": lambda: all(int((sy == k).sum()) == shots for k in sy.unique()),
            "labels": lambda: set(sy.tolist()) | set(qy.tolist()) == set(range(ways)),
            "same class": lambda: all(set(labels[s[sy == k]].tolist()) == set(labels[q[qy == k]].tolist())
                                      for k in sy.unique()),
        }
        if omitted == "one class":  # a label only has to share some class between the two sets
            rules["same class"] = lambda: all(set(labels[s[sy == k]].tolist()) & set(labels[q[qy == k]].tolist())
                                              for k in sy.unique())
        return all(rule() for name, rule in rules.items() if name != omitted)
    valid.__name__ = f"valid_without_{omitted.replace(' ', '_')}"
    return valid


def centroid_one_hot(support_x, support_y, query_x):
    """Another correct form: centroids by a one-hot matrix product, scores = -squared distance."""
    one_hot = torch.nn.functional.one_hot(support_y).float()
    centroids = one_hot.T @ support_x.flatten(1) / one_hot.sum(0)[:, None]
    return -((query_x.flatten(1)[:, None] - centroids[None]) ** 2).sum(-1)


def centroid_sorted_blocks(support_x, support_y, query_x):
    ways = int(support_y.max()) + 1
    return -torch.cdist(query_x.flatten(1), support_x.flatten(1).reshape(ways, -1, support_x[0].numel()).mean(1))


REFERENCES = {
    "check_sample_episode": [episode_reference, episode_shuffled_lists],
    "check_confidence_interval": [ci_reference, lambda a: ci_t(a), ci_z_population,
                                  lambda a: (a.double().mean(), 1.96 * a.double().std() / len(a) ** 0.5)],
    "check_evaluate": [evaluate_reference, evaluate_counts],
    "check_is_valid_episode": [valid_reference, valid_counts, valid_sets],
    "check_nearest_centroid": [centroid_reference, centroid_one_hot],
}

WRONG = [  # (check, wrong implementation, words the message must contain)
    ("check_sample_episode", episode_swapped, "swapped"),
    ("check_sample_episode", episode_global_ids, "relabel"),
    ("check_sample_episode", episode_overlapping, "also a support example"),
    ("check_sample_episode", episode_fixed_generator, "same classes"),
    ("check_sample_episode", episode_global_rng, "draw every random number from `generator`"),
    ("check_sample_episode", episode_python_random, "draw every random number from `generator`"),
    ("check_sample_episode", episode_mismatched_query_labels, "same class for both"),
    ("check_sample_episode", episode_with_replacement, "chosen twice"),
    ("check_sample_episode", episode_first_examples, "same support examples"),
    ("check_sample_episode", episode_sorted_labels, "random order"),
    ("check_sample_episode", episode_pooled_support, "exactly shots"),
    ("check_confidence_interval", lambda a: (a.mean(), 1.96 * a.std()), "divide the standard deviation by sqrt(n)"),
    ("check_confidence_interval", lambda a: (a.mean(), a.std()), "not for a single value"),
    ("check_confidence_interval", lambda a: (a.mean(), 1.96 * a.std() / len(a)), "not by n"),
    ("check_confidence_interval", lambda a: (a.mean(), a.std() / len(a) ** 0.5), "multiply the standard error"),
    ("check_confidence_interval", lambda a: (a.mean(), 1.96 * a.var() / len(a) ** 0.5), "variance"),
    ("check_confidence_interval", lambda a: (a.mean(), 2 * 1.96 * a.std() / len(a) ** 0.5), "half-width"),
    ("check_confidence_interval", lambda a: (100 * a.mean(), 100 * 1.96 * a.std() / len(a) ** 0.5), "fractions"),
    ("check_confidence_interval", lambda a: (a.median(), 1.96 * a.std() / len(a) ** 0.5), "mean accuracy"),
    ("check_confidence_interval", ci_in_place, "in place"),
    ("check_confidence_interval", lambda a: 1.96 * a.std() / len(a) ** 0.5, "two numbers"),
    ("check_evaluate", evaluate_pooled, "over episodes"),
    ("check_evaluate", evaluate_leaking, "query set as its support set"),
    ("check_evaluate", evaluate_query_labels_as_support, "query_y belongs to the query set"),
    ("check_evaluate", evaluate_four_arguments, "Never give the learner the query labels"),
    ("check_evaluate", evaluate_std_only, "divide the standard deviation by sqrt(n), n = the number of episodes"),
    ("check_evaluate", evaluate_argmin, "argmax"),
    ("check_evaluate", evaluate_with_len, "generator"),
    ("check_is_valid_episode", lambda *args: True, "accepted"),
    ("check_is_valid_episode", lambda *args: False, "rejected a correct episode"),
    ("check_is_valid_episode", valid_without("overlap"), "query set holds a support image"),
    ("check_is_valid_episode", valid_without("labels"), "keeps the class ids"),
    ("check_is_valid_episode", valid_without("shots"), "3, 1 and 2 support examples"),
    ("check_is_valid_episode", valid_without("same class"), "another in the query set"),
    ("check_is_valid_episode", valid_without("one class"), "mixes two classes"),
    ("check_is_valid_episode", valid_without("duplicates"), "same support image twice"),
    ("check_nearest_centroid", lambda sx, sy, qx: torch.cdist(qx.flatten(1), torch.stack(
        [sx.flatten(1)[sy == k].mean(0) for k in range(3)])), "minus the distance"),
    ("check_nearest_centroid", lambda sx, sy, qx: -torch.cdist(qx.flatten(1), torch.stack(
        [sx.flatten(1)[sy == k].sum(0) for k in range(3)])), "summed"),
    ("check_nearest_centroid", lambda sx, sy, qx: -torch.cdist(qx.flatten(1), torch.stack(
        [sx.flatten(1)[sy == k][0] for k in range(3)])), "first one"),
    ("check_nearest_centroid", centroid_sorted_blocks, "neither sorted nor balanced"),
    ("check_nearest_centroid", lambda sx, sy, qx: -torch.cdist(qx.flatten(1), torch.stack(
        [sx.flatten(1)[sy == k].mean(0) for k in range(3)]), p=1), "Euclidean"),
    ("check_nearest_centroid", lambda sx, sy, qx: centroid_reference(sx, sy, qx).T, "transposed"),
    ("check_nearest_centroid", lambda sx, sy, qx: centroid_reference(sx, sy, qx).argmax(1), "shape"),
]


@pytest.mark.parametrize("check, solution", [(c, s) for c, solutions in REFERENCES.items() for s in solutions],
                         ids=[f"{c}-{i}" for c, solutions in REFERENCES.items() for i in range(len(solutions))])
def test_notebook_02_correct_solutions_pass(check, solution, capsys):
    """The reference solution and another correct form of each notebook-02 exercise pass its check."""
    getattr(checks, check)(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG, ids=[f"{c}-{w.__name__}" for c, w, _ in WRONG])
def test_notebook_02_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message starts with the check's name and names the mistake."""
    assert_rejected_in_plain_words(checks, check, wrong, words)


def test_every_exercise_has_a_reference_and_five_mistakes():
    """The lists above cover every check of the module, each with at least five rejected mistakes."""
    names = {name for name in dir(checks) if name.startswith("check_")}
    assert set(REFERENCES) == names
    assert all(sum(c == name for c, _, _ in WRONG) >= 5 for name in names)


def test_unfinished_exercises_surface():
    """A student's placeholder NotImplementedError reaches the student unchanged."""
    assert_unfinished_exercises_surface(checks, *REFERENCES)


def test_a_crash_names_the_exception():
    """A function that crashes is reported with its exception type."""
    assert_rejected_in_plain_words(checks, "check_nearest_centroid", lambda sx, sy, qx: sx[100], "IndexError")


def test_every_episode_case_is_judged_right_by_the_reference():
    """The audit's cases are what they say: the reference (and the other correct audits) accept exactly the
    valid ones."""
    labels, cases = checks.episode_cases()
    for audit in (valid_reference, valid_counts, valid_sets):
        assert [audit(labels, *episode, shots) for _, _, shots, episode in cases] == [
            valid for _, valid, _, _ in cases], audit.__name__
