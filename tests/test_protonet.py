"""Prototypical Networks: oracle tests against hand computations, the fast
sampler, resumable training, and a trained model against pixel nearest neighbour."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_lib import baselines, protonet, registry
from course_lib.data import LabelledImages
from course_lib.episodes import FastEpisodeSampler
from course_lib.evaluation import evaluate_few_shot

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "data" / "protonet"


def tiny_images(classes: int = 8, per_class: int = 6, seed: int = 0) -> LabelledImages:
    """Random 1x28x28 'characters': each class is a fixed pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.rand(classes, 1, 1, 28, 28, generator=g)
    images = (patterns + 0.3 * torch.rand(classes, per_class, 1, 28, 28, generator=g)).clamp(0, 1)
    return LabelledImages(images.reshape(-1, 1, 28, 28), torch.arange(classes).repeat_interleave(per_class),
                          [f"c{i}" for i in range(classes)], name="tiny")


def tiny_config(**overrides) -> protonet.ProtoNetConfig:
    settings = dict(hidden=8, ways=3, shots=2, queries=2, steps=6, lr_halve_every=3, channels_last=False)
    return protonet.ProtoNetConfig(**{**settings, **overrides})


def test_logits_are_negative_squared_distances_to_class_means_by_hand():
    torch.manual_seed(0)
    model = protonet.ProtoNet(tiny_config()).eval()
    support_x, query_x = torch.rand(6, 1, 28, 28), torch.rand(4, 1, 28, 28)
    support_y = torch.tensor([0, 0, 1, 1, 2, 2])
    with torch.no_grad():
        logits = model(support_x, support_y, query_x)
        z_s = model.encoder(support_x).tolist()  # eval mode: an image's embedding does not depend on the batch
        z_q = model.encoder(query_x).tolist()
    d = len(z_s[0])
    expected = []
    for q in z_q:
        row = []
        for k in range(3):
            members = [z for z, y in zip(z_s, support_y.tolist()) if y == k]
            c = [sum(m[i] for m in members) / len(members) for i in range(d)]
            row.append(-sum((q[i] - c[i]) ** 2 for i in range(d)))
        expected.append(row)
    assert logits.shape == (4, 3)
    torch.testing.assert_close(logits, torch.tensor(expected), rtol=1e-4, atol=1e-4)


def test_protonet_is_a_linear_classifier_in_embedding_space():
    g = torch.Generator().manual_seed(1)
    z, c = torch.randn(7, 5, generator=g), torch.randn(3, 5, generator=g)
    w, b = protonet.prototype_linear_layer(c)
    linear = z @ w.T + b - z.pow(2).sum(1, keepdim=True)  # the last term is the same for every class
    torch.testing.assert_close(-protonet.squared_euclidean(z, c), linear, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(protonet.squared_euclidean(z, c), baselines.squared_distances(z, c),
                               rtol=1e-4, atol=1e-4)


def test_cosine_variant_is_bounded_by_its_scale_and_predict_keeps_train_mode():
    model = protonet.ProtoNet(tiny_config(distance="cosine", cosine_scale=10.0))
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2])
    logits = model.predict(x, y, torch.rand(5, 1, 28, 28))
    assert logits.shape == (5, 3) and logits.abs().max() <= 10.0 + 1e-4
    assert model.training and model.score_kind == "logits"
    assert protonet.ProtoNet(tiny_config()).score_kind == baselines.DISTANCE_SCORES
    with pytest.raises(ValueError, match="distance"):
        protonet.ProtoNet(tiny_config(distance="manhattan"))


def test_fast_sampler_draws_valid_disjoint_episodes():
    data = tiny_images(classes=8, per_class=6)
    sampler = FastEpisodeSampler(data, ways=4, shots=2, queries=3)
    for seed in range(5):
        episode = sampler.sample(torch.Generator().manual_seed(seed))
        assert episode.support_x.shape == (8, 1, 28, 28) and episode.query_x.shape == (12, 1, 28, 28)
        assert episode.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
        assert episode.query_y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
        assert len(set(episode.classes.tolist())) == 4
        flat = data.images.reshape(len(data), -1)
        for images, labels in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
            for image, label in zip(images, labels):
                index = (flat == image.reshape(-1)).all(1).nonzero().item()
                assert data.labels[index] == episode.classes[label]  # the image belongs to its class
        s = {tuple(v) for v in episode.support_x.reshape(8, -1).tolist()}
        assert not s & {tuple(v) for v in episode.query_x.reshape(12, -1).tolist()}
    same = [sampler.sample(torch.Generator().manual_seed(3)).support_x for _ in range(2)]
    assert torch.equal(*same)
    with pytest.raises(ValueError, match="same number"):
        FastEpisodeSampler(data.subset_classes(range(2)).__class__(
            data.images[:7], torch.tensor([0, 0, 0, 1, 1, 1, 1]), ["a", "b"]), 2, 1, 1)


def test_learning_rate_halves_on_schedule():
    config = tiny_config(meta_lr=1e-3, lr_halve_every=2000)
    assert [protonet.learning_rate(config, s) for s in (0, 1999, 2000, 4000)] == [1e-3, 1e-3, 5e-4, 2.5e-4]


def test_train_runs_the_steps_of_the_config_and_logs_them():
    config = tiny_config(steps=4)
    history = protonet.train(protonet.ProtoNet(config), config, tiny_images(), progress=False)
    assert history["loss"][0] == [0, 1, 2, 3] and history.steps_done == 4


def test_time_budget_stops_the_loop():
    config = tiny_config(steps=1000)
    history = protonet.train(protonet.ProtoNet(config), config, tiny_images(), max_seconds=0.0, progress=False)
    assert history.steps_done == 0 and history.stopped == "time"


def test_bad_settings_are_refused_when_the_config_is_made():
    for bad, match in ((dict(ways=1), "ways"), (dict(shots=0), "shots"), (dict(queries=0), "queries"),
                       (dict(lr_halve_every=0), "lr_halve_every"), (dict(protocol="x"), "protocol"),
                       (dict(distance="manhattan"), "distance")):
        with pytest.raises(ValueError, match=match):
            tiny_config(**bad)


def _trained_or_shipped(splits):
    if (SHIPPED / "checkpoint.pt").is_file():
        model, _ = registry.load(SHIPPED)
        return model, "shipped"
    config = protonet.ProtoNetConfig(hidden=32, ways=20, shots=1, queries=5, steps=120, lr_halve_every=10**6)
    torch.manual_seed(0)
    model = protonet.ProtoNet(config)
    protonet.train(model, config, splits["train"], progress=False)
    return model.eval(), "trained here"


@pytest.mark.real_data("omniglot")
def test_trained_protonet_beats_pixel_nearest_neighbour_by_a_margin():
    from course_lib.data import omniglot_splits

    splits = omniglot_splits("vinyals")
    model, origin = _trained_or_shipped(splits)
    test = FastEpisodeSampler(splits["test"], ways=5, shots=1, queries=5)
    ours = evaluate_few_shot(model.predict, test, episodes=100, seed=0, progress=False)
    pixels = evaluate_few_shot(baselines.nearest_neighbour, test, episodes=100, seed=0, progress=False)
    assert ours.mean > pixels.mean + 0.15, (origin, ours, pixels)
