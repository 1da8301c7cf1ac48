"""course_lib.evaluation: confidence intervals, formatting and few-shot scoring."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data import LabelledImages
from course_lib.episodes import EpisodeSampler
from course_lib.evaluation import (
    AccuracyResult,
    episode_accuracy,
    evaluate_few_shot,
    format_accuracy,
    mean_confidence_interval,
)

Z = 1.959963984540054  # 97.5% quantile of N(0, 1)
T_QUANTILES = {2: 12.706204736, 3: 4.302652730, 4: 3.182446305, 1000: 1.962341461}  # t_{0.975, n-1}, tables


def test_mean_confidence_interval_hand_computed():
    """[0, 1, 1, 1]: mean 0.75, s = sqrt(0.75/3) = 0.5, half-width = z * 0.5 / sqrt(4)."""
    values = [0.0, 1.0, 1.0, 1.0]
    mean = sum(values) / 4
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (4 - 1))
    assert mean == 0.75 and s == pytest.approx(0.5)
    got_mean, got_half = mean_confidence_interval(values)
    assert got_mean == pytest.approx(0.75, abs=1e-15)
    assert got_half == pytest.approx(3.182446 * 0.5 / 2, abs=1e-6)
    assert got_half == pytest.approx(T_QUANTILES[4] * s / math.sqrt(4), rel=1e-9)


def test_mean_confidence_interval_second_case_and_tensor_input():
    """[0.2, 0.4, 0.9] as a tensor: n - 1 sample deviation, not the population one."""
    values = [0.2, 0.4, 0.9]
    mean = sum(values) / 3
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    got_mean, got_half = mean_confidence_interval(torch.tensor(values, dtype=torch.float64))
    assert got_mean == pytest.approx(mean, rel=1e-12)
    assert got_half == pytest.approx(T_QUANTILES[3] * s / math.sqrt(3), rel=1e-9)


def test_the_interval_uses_students_t_and_approaches_the_normal_one():
    """t quantiles against printed tables; with 3 values the normal 1.96 understates the interval ~2.2x."""
    from course_lib.evaluation import t_95

    for n, quantile in T_QUANTILES.items():
        assert t_95(n) == pytest.approx(quantile, rel=1e-8)
    assert t_95(3) / Z == pytest.approx(2.195, abs=1e-3)
    assert Z < t_95(10_000) < Z * 1.0002


def test_mean_confidence_interval_single_value_has_no_interval():
    """One value: the mean is that value and the half-width is nan."""
    mean, half = mean_confidence_interval([0.4])
    assert mean == pytest.approx(0.4)
    assert math.isnan(half)


def test_mean_confidence_interval_empty_is_an_error():
    """No values: ValueError."""
    with pytest.raises(ValueError):
        mean_confidence_interval([])


def test_format_accuracy():
    """Fractions become percentages with one decimal: 0.981, 0.003 -> '98.1 ± 0.3 %'."""
    assert format_accuracy(0.981, 0.003) == "98.1 ± 0.3 %"
    assert format_accuracy(0.5, 0.0) == "50.0 ± 0.0 %"
    assert "no CI" in format_accuracy(0.5, math.nan)
    assert str(AccuracyResult(0.981, 0.003, 600)) == "98.1 ± 0.3 %"
    assert AccuracyResult(0.5, 0.1, 3).as_dict() == {"mean": 0.5, "ci95": 0.1, "episodes": 3}


# --------------------------------------------------------------------------
# evaluate_few_shot
# --------------------------------------------------------------------------


def duplicated_dataset(num_classes: int = 8, per_class: int = 6) -> LabelledImages:
    """Each class's examples are exact copies of one random image (distinct across classes)."""
    prototypes = torch.rand(num_classes, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(num_classes).repeat(per_class)
    return LabelledImages(prototypes[labels].clone(), labels, [str(c) for c in range(num_classes)])


def nearest_neighbour(support_x, support_y, query_x):
    """1-NN on raw pixels: returns labels."""
    distances = torch.cdist(query_x.flatten(1), support_x.flatten(1))
    return support_y[distances.argmin(dim=1)]


def nearest_neighbour_logits(support_x, support_y, query_x):
    """Same classifier, returning [n_query, ways] logits (minus the class distances)."""
    ways = int(support_y.max()) + 1
    distances = torch.cdist(query_x.flatten(1), support_x.flatten(1))
    logits = torch.full((len(query_x), ways), -math.inf)
    for c in range(ways):
        logits[:, c] = -distances[:, support_y == c].min(dim=1).values
    return logits


@pytest.mark.parametrize("classifier", [nearest_neighbour, nearest_neighbour_logits], ids=["labels", "logits"])
def test_oracle_classifier_scores_one(classifier):
    """A classifier that is always right scores exactly 1.0 with a zero interval."""
    sampler = EpisodeSampler(duplicated_dataset(), ways=5, shots=1, queries=3)
    result = evaluate_few_shot(classifier, sampler, episodes=20, seed=0, progress=False)
    assert result.episodes == 20
    assert result.mean == 1.0
    assert result.ci95 == 0.0


def test_constant_classifier_scores_chance_on_five_way():
    """Always answering label 0 on balanced 5-way episodes scores exactly 1/5 in every episode."""
    sampler = EpisodeSampler(duplicated_dataset(), ways=5, shots=2, queries=3)

    def constant(support_x, support_y, query_x):
        return torch.zeros(len(query_x), dtype=torch.long)

    result = evaluate_few_shot(constant, sampler, episodes=30, seed=1, progress=False)
    assert result.episodes == 30
    assert result.mean == pytest.approx(0.2, abs=1e-6)
    assert result.ci95 == pytest.approx(0.0, abs=1e-9)


def test_evaluate_few_shot_on_a_list_uses_every_episode():
    """Given a list of episodes, every one is scored (and ``episodes`` is ignored)."""
    sampler = EpisodeSampler(duplicated_dataset(), ways=2, shots=1, queries=1)
    episodes = sampler.fixed_tasks(7, seed=0)
    calls = []

    def first_right_only(support_x, support_y, query_x):
        calls.append(1)
        # query_y is [0, 1]: answering [0, 0] gets exactly half right
        return torch.zeros(len(query_x), dtype=torch.long)

    result = evaluate_few_shot(first_right_only, episodes, episodes=1000, progress=False)
    assert len(calls) == 7 and result.episodes == 7
    assert result.mean == pytest.approx(0.5)


def test_wrong_output_shape_is_an_error():
    """A classifier returning the wrong number of predictions raises ValueError."""
    episode = EpisodeSampler(duplicated_dataset(), ways=3, shots=1, queries=2).sample(torch.Generator().manual_seed(0))

    def too_short(support_x, support_y, query_x):
        return torch.zeros(len(query_x) - 1, dtype=torch.long)

    def bad_logits(support_x, support_y, query_x):
        return torch.zeros(len(query_x) + 1, 3)

    for classifier in (too_short, bad_logits):
        with pytest.raises(ValueError, match="shape"):
            episode_accuracy(classifier, episode)


def test_same_seed_same_result_for_a_random_classifier():
    """The same seed evaluates on the same episodes: a data-dependent classifier gets the same score."""
    sampler = EpisodeSampler(duplicated_dataset(num_classes=8, per_class=6), ways=4, shots=1, queries=2)

    def pixel_guess(support_x, support_y, query_x):
        # depends on the episode's images only (deterministic given the episode)
        return (query_x.flatten(1).sum(dim=1) * 1000).long() % 4

    a = evaluate_few_shot(pixel_guess, sampler, episodes=40, seed=7, progress=False)
    b = evaluate_few_shot(pixel_guess, sampler, episodes=40, seed=7, progress=False)
    c = evaluate_few_shot(pixel_guess, sampler, episodes=40, seed=8, progress=False)
    assert (a.mean, a.ci95) == (b.mean, b.ci95)
    assert (a.mean, a.ci95) != (c.mean, c.ci95)
    assert 0.0 < a.mean < 1.0
