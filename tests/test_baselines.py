"""course_lib.baselines: nearest neighbour, nearest centroid, fine-tuned head, pretraining, results table."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib import baselines
from course_lib.data import LabelledImages
from course_lib.episodes import Episode, EpisodeSampler
from course_lib.evaluation import AccuracyResult, evaluate_few_shot


def blobs(num_classes: int = 6, per_class: int = 12, size: int = 8, noise: float = 0.15, seed: int = 0):
    """Images that are one bright square per class (at a class-specific place) plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = noise * torch.rand(len(labels), 1, size, size, generator=generator)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, size // 2)
        images[i, 0, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2] += 1.0
    return LabelledImages(images.clamp(0, 1), labels, [f"c{k}" for k in range(num_classes)], name="blobs")


def episode_from(support_x, support_y, query_x, query_y) -> Episode:
    return Episode(support_x, support_y, query_x, query_y, torch.arange(int(support_y.max()) + 1))


# --------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------


def test_squared_distances_match_the_definition():
    """||a_i - b_j||^2 computed by hand, inputs of any shape flattened per row."""
    a, b = torch.randn(4, 1, 2, 3), torch.randn(5, 6)
    by_hand = ((a.reshape(4, 1, 6) - b.reshape(1, 5, 6)) ** 2).sum(-1)
    assert torch.allclose(baselines.squared_distances(a, b), by_hand, atol=1e-5)
    assert torch.equal(baselines.squared_distances(a, a).diagonal(), torch.zeros(4))  # exactly 0


def test_class_centroids_are_class_means_and_need_every_class():
    z = torch.tensor([[0.0, 0], [2, 0], [0, 4], [10, 10]])
    y = torch.tensor([0, 0, 1, 2])
    assert torch.equal(baselines.class_centroids(z, y), torch.tensor([[1.0, 0], [0, 4], [10, 10]]))
    with pytest.raises(ValueError, match="no example of class"):
        baselines.class_centroids(z, y, ways=4)


# --------------------------------------------------------------------------
# Nearest neighbour and nearest centroid
# --------------------------------------------------------------------------


def test_pixel_nearest_neighbour_is_perfect_when_queries_copy_the_support():
    """Oracle: queries that are exact copies of support images get their labels (100 %)."""
    sampler = EpisodeSampler(blobs(noise=1.0), ways=5, shots=3, queries=1)  # noise as strong as the signal
    episode = sampler.sample(torch.Generator().manual_seed(0))
    order = torch.randperm(len(episode.support_y), generator=torch.Generator().manual_seed(1))
    copies = episode_from(episode.support_x, episode.support_y, episode.support_x[order], episode.support_y[order])
    logits = baselines.nearest_neighbour(copies.support_x, copies.support_y, copies.query_x)
    assert logits.shape == (15, 5)
    assert torch.equal(logits.argmax(-1), copies.query_y)
    assert torch.equal(logits.max(-1).values, torch.zeros(15))  # distance 0 to the copy itself


def test_nearest_neighbour_picks_the_closest_example_not_the_closest_mean():
    """A query next to one outlying support example of class 1 goes to class 1, though mean 0 is nearer."""
    support_x = torch.tensor([[0.0], [1.0], [10.0], [3.2]])
    support_y = torch.tensor([0, 0, 1, 1])  # class-1 mean 6.6, class-0 mean 0.5
    query_x = torch.tensor([[3.0]])
    assert baselines.nearest_neighbour(support_x, support_y, query_x).argmax().item() == 1
    assert baselines.NearestCentroid()(support_x, support_y, query_x).argmax().item() == 0
    # the logits are minus the squared distance to the nearest example of each class
    assert torch.allclose(baselines.nearest_neighbour(support_x, support_y, query_x), torch.tensor([[-4.0, -0.04]]))


def test_nearest_centroid_with_one_shot_is_nearest_neighbour():
    """With one example per class the centroid is that example: identical logits on real episodes."""
    sampler = EpisodeSampler(blobs(noise=0.8), ways=6, shots=1, queries=5)
    generator = torch.Generator().manual_seed(3)
    for _ in range(5):
        e = sampler.sample(generator)
        a = baselines.nearest_neighbour(e.support_x, e.support_y, e.query_x)
        b = baselines.NearestCentroid()(e.support_x, e.support_y, e.query_x)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-4)


def test_nearest_centroid_uses_the_encoder_features():
    """With an encoder that keeps only the first coordinate, the other coordinates stop mattering."""
    support_x = torch.tensor([[0.0, 100.0], [1.0, -100.0]])
    support_y = torch.tensor([0, 1])
    query_x = torch.tensor([[0.2, -100.0]])  # near class 1 in pixels, near class 0 in feature 0
    assert baselines.NearestCentroid()(support_x, support_y, query_x).argmax().item() == 1
    assert baselines.NearestCentroid(encoder=lambda x: x[:, :1])(support_x, support_y, query_x).argmax().item() == 0


def test_baselines_beat_chance_by_far_on_easy_blobs_and_use_the_course_interface():
    """evaluate_few_shot scores every baseline: on separable blobs all of them are ~perfect."""
    sampler = EpisodeSampler(blobs(), ways=5, shots=2, queries=4)
    for predict in (baselines.nearest_neighbour, baselines.NearestCentroid(), baselines.FineTunedHead(steps=50)):
        result = evaluate_few_shot(predict, sampler, episodes=10, seed=0, progress=False)
        assert result.mean >= 0.95, (predict, result)


# --------------------------------------------------------------------------
# Fine-tuning a new head on frozen features
# --------------------------------------------------------------------------


class Recorder(nn.Module):
    """A tiny encoder that counts its calls and remembers whether it was in training mode."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return self.norm(self.linear(x.flatten(1)))


def test_fine_tuned_head_leaves_the_encoder_untouched():
    """Frozen features: encoder weights and batch-norm statistics are the same after predicting."""
    encoder = Recorder().train()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    support_x, support_y = torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2])
    logits = baselines.FineTunedHead(encoder, steps=20)(support_x, support_y, torch.randn(5, 4))
    assert logits.shape == (5, 3)
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.modes and not any(encoder.modes), "the encoder must run in eval mode"
    assert encoder.training, "the encoder's own mode is restored"
    assert all(p.grad is None for p in encoder.parameters())


def test_fine_tuned_head_fits_its_support_set_and_is_deterministic():
    """After fine-tuning, the head labels its own (separable) support set correctly; same seed, same logits."""
    generator = torch.Generator().manual_seed(0)
    support_y = torch.arange(4).repeat_interleave(3)
    support_x = torch.randn(12, 16, generator=generator) + 3 * nn.functional.one_hot(support_y, 16)
    head = baselines.FineTunedHead(steps=100)
    assert torch.equal(head(support_x, support_y, support_x).argmax(-1), support_y)
    assert torch.equal(head(support_x, support_y, support_x), head(support_x, support_y, support_x))
    one_step = baselines.FineTunedHead(steps=1)(support_x, support_y, support_x)
    assert not torch.allclose(one_step, head(support_x, support_y, support_x)), "steps must matter"
    with pytest.raises(ValueError):
        baselines.FineTunedHead(steps=0)


# --------------------------------------------------------------------------
# Pretraining and frozen features
# --------------------------------------------------------------------------


def test_hold_out_examples_splits_every_class_without_overlap():
    data = blobs(num_classes=4, per_class=5)
    train, held = baselines.hold_out_examples(data, 2, torch.Generator().manual_seed(0))
    assert train.examples_per_class().tolist() == [3] * 4
    assert held.examples_per_class().tolist() == [2] * 4
    flat = lambda d: {tuple(x.flatten().tolist()) for x in d.images}  # noqa: E731
    assert not flat(train) & flat(held)
    assert len(train) + len(held) == len(data)
    with pytest.raises(ValueError, match="none to train"):
        baselines.hold_out_examples(data, 5)


def test_pretrain_classifier_learns_and_gives_a_feature_extractor():
    """A few SGD steps on blobs (16x16) lower the loss; the model embeds new images to 64-d features."""
    data = blobs(num_classes=4, per_class=10, size=16)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    model, history = baselines.pretrain_classifier(data, steps=40, device="cpu", lr=0.05, batch_size=16,
                                                   held_out=data, eval_every=20, progress=False)
    assert torch.equal(torch.get_rng_state(), state), "pretraining must not consume the global random state"
    assert not model.training
    losses = history["loss"][1]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert history.last("held_out_accuracy") > 0.5
    features = baselines.embed_dataset(model.embed, data)
    assert features.images.shape == (len(data), 64, 1, 1)
    assert torch.equal(features.labels, data.labels)


def test_episodes_from_embedded_dataset_are_the_episodes_of_the_images():
    """Same seed, same episodes: the features of an image episode equal the feature episode."""
    data = blobs(num_classes=5, per_class=6, size=16)
    encoder = lambda x: x.flatten(1)[:, :10] * 2  # noqa: E731  (any frozen function)
    features = baselines.embed_dataset(encoder, data, batch_size=7)
    images = EpisodeSampler(data, ways=3, shots=2, queries=2).sample(torch.Generator().manual_seed(4))
    feats = EpisodeSampler(features, ways=3, shots=2, queries=2).sample(torch.Generator().manual_seed(4))
    assert torch.equal(images.classes, feats.classes)
    assert torch.allclose(encoder(images.support_x), feats.support_x.flatten(1))
    assert torch.allclose(encoder(images.query_x), feats.query_x.flatten(1))
    # so a method on features gives the same predictions as the same method on images
    on_images = baselines.NearestCentroid(encoder)(images.support_x, images.support_y, images.query_x)
    on_features = baselines.NearestCentroid()(feats.support_x, feats.support_y, feats.query_x)
    assert torch.allclose(on_images, on_features, atol=1e-4)


# --------------------------------------------------------------------------
# The results table
# --------------------------------------------------------------------------


def test_results_table_renders_markdown_rows_method_by_setting(tmp_path):
    table = baselines.ResultsTable([baselines.setting_name(5, 1), baselines.setting_name(5, 5)])
    table.add("pixel NN", "5-way 1-shot", AccuracyResult(0.981, 0.003, 1000))
    table.add("pixel NN", "5-way 5-shot", AccuracyResult(0.5, 0.0123, 1000))
    table.add("fine-tuned head", "5-way 5-shot", AccuracyResult(0.9, 0.01, 600), note="100 Adam steps")
    assert table.to_markdown() == (
        "| method | 5-way 1-shot | 5-way 5-shot |\n"
        "|---|---|---|\n"
        "| pixel NN | 98.1 ± 0.3 % | 50.0 ± 1.2 % |\n"
        "| fine-tuned head | – | 90.0 ± 1.0 % |"
    )
    assert table.to_markdown(notes=True).splitlines()[-1].endswith("| 100 Adam steps |")
    assert table.episodes() == {600, 1000}
    assert ("pixel NN", "5-way 1-shot") in table and ("fine-tuned head", "5-way 1-shot") not in table
    assert table["pixel NN", "5-way 5-shot"].ci95 == 0.0123
    # a later notebook loads it and adds a row and a setting
    loaded = baselines.ResultsTable.load(table.save(tmp_path / "results" / "table.json"))
    assert loaded.to_markdown(notes=True) == table.to_markdown(notes=True)
    loaded.add("ProtoNet", "20-way 1-shot", AccuracyResult(0.95, 0.002, 1000))
    assert loaded.settings[-1] == "20-way 1-shot" and loaded.methods[-1] == "ProtoNet"
    with pytest.raises(TypeError):
        table.add("x", "5-way 1-shot", 0.5)


def test_results_table_single_episode_shows_no_ci():
    table = baselines.ResultsTable().add("m", "s", AccuracyResult(0.5, math.nan, 1))
    assert "1 episode, no CI" in table.to_markdown()


def test_conv_from_scratch_fits_its_support_set_and_answers_every_query():
    torch.manual_seed(0)
    support_x = torch.randn(6, 1, 28, 28)
    support_y = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = baselines.ConvFromScratch(steps=40, lr=0.1)(support_x, support_y, support_x)
    assert logits.shape == (6, 3)
    assert torch.equal(logits.argmax(1), support_y)  # 40 SGD steps memorise six images
