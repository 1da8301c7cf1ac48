"""Notebook 02's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch

from course_lib.teaching.checks import nb02 as checks
from course_lib.teaching.checks.common import ExerciseError


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


def test_a_crash_names_the_exception():
    """A function that crashes is reported with its exception type."""
    with pytest.raises(ExerciseError, match="IndexError"):
        checks.check_class_centroids(lambda f, y, w: f[100])
