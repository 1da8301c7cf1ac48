"""course_lib.episodes: N-way K-shot episodes and the sinusoid task family."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.data import LabelledImages
from course_lib.episodes import Episode, EpisodeSampler, RegressionTask, SinusoidTasks

NUM_CLASSES = 6
PER_CLASS = 7


def traceable_dataset(num_classes: int = NUM_CLASSES, per_class: int = PER_CLASS) -> LabelledImages:
    """Every image is filled with its own index; labels are interleaved (0,1,..,0,1,..)."""
    n = num_classes * per_class
    labels = torch.arange(n) % num_classes
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 3).clone()
    return LabelledImages(images, labels, [f"class{c}" for c in range(num_classes)], name="traceable")


def drawn(images: torch.Tensor) -> list[int]:
    """The dataset indices behind a stack of traceable images."""
    flat = images.reshape(images.shape[0], -1)
    assert (flat == flat[:, :1]).all(), "an image was altered"
    return flat[:, 0].long().tolist()


def episodes_equal(a: Episode, b: Episode) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)


def test_episode_shapes_and_labels():
    """Support is [ways*shots,C,H,W], query [ways*queries,...]; labels 0..ways-1 grouped by class."""
    sampler = EpisodeSampler(traceable_dataset(), ways=3, shots=2, queries=4)
    episode = sampler.sample(torch.Generator().manual_seed(0))
    assert episode.support_x.shape == (6, 1, 2, 3)
    assert episode.query_x.shape == (12, 1, 2, 3)
    assert episode.support_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert episode.query_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert episode.classes.shape == (3,)
    assert len(set(episode.classes.tolist())) == 3
    assert (episode.ways, episode.shots) == (3, 2)


def test_episode_examples_come_from_the_episode_classes():
    """Every support/query image is an example of the class its label stands for."""
    dataset = traceable_dataset()
    sampler = EpisodeSampler(dataset, ways=4, shots=2, queries=3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        episode = sampler.sample(generator)
        for images, labels in ((episode.support_x, episode.support_y), (episode.query_x, episode.query_y)):
            original = dataset.labels[drawn(images)]
            assert torch.equal(original, episode.classes[labels])


def test_no_query_example_is_in_the_support_set():
    """Support and query examples are distinct draws: no overlap, no repeats."""
    sampler = EpisodeSampler(traceable_dataset(), ways=5, shots=3, queries=4)  # 7 of 7 per class
    generator = torch.Generator().manual_seed(2)
    for _ in range(20):
        episode = sampler.sample(generator)
        support, query = drawn(episode.support_x), drawn(episode.query_x)
        assert len(set(support)) == len(support)
        assert len(set(query)) == len(query)
        assert set(support).isdisjoint(query)


def test_episode_label_order_is_random():
    """The class behind label 0 changes across episodes (labels carry no fixed meaning)."""
    sampler = EpisodeSampler(traceable_dataset(), ways=3, shots=1, queries=1)
    generator = torch.Generator().manual_seed(3)
    first_classes = {int(sampler.sample(generator).classes[0]) for _ in range(40)}
    orders = {tuple(sampler.sample(generator).classes.tolist()) for _ in range(40)}
    assert len(first_classes) > 1
    assert any(list(o) != sorted(o) for o in orders)


def test_every_class_gets_drawn():
    """Over many episodes every class of the dataset appears."""
    sampler = EpisodeSampler(traceable_dataset(), ways=2, shots=1, queries=1)
    generator = torch.Generator().manual_seed(4)
    seen = set()
    for _ in range(60):
        seen.update(sampler.sample(generator).classes.tolist())
    assert seen == set(range(NUM_CLASSES))


def test_same_seed_same_episode_other_seed_other_episode():
    """A generator with the same seed reproduces episodes; another seed changes them."""
    sampler = EpisodeSampler(traceable_dataset(), ways=3, shots=2, queries=2)
    a = [sampler.sample(torch.Generator().manual_seed(10)) for _ in range(2)]
    torch.rand(100)  # the global random state must not matter
    b = sampler.sample(torch.Generator().manual_seed(10))
    c = sampler.sample(torch.Generator().manual_seed(11))
    assert episodes_equal(a[0], a[1]) and episodes_equal(a[0], b)
    assert not episodes_equal(a[0], c)


def test_sample_batch_stacks_with_leading_dimension():
    """sample_batch(B) stacks B episodes: [B, ways*shots, C, H, W] etc."""
    dataset = traceable_dataset()
    sampler = EpisodeSampler(dataset, ways=3, shots=2, queries=1)
    batch = sampler.sample_batch(4, torch.Generator().manual_seed(5))
    assert batch.support_x.shape == (4, 6, 1, 2, 3)
    assert batch.query_x.shape == (4, 3, 1, 2, 3)
    assert batch.support_y.shape == (4, 6) and batch.query_y.shape == (4, 3)
    assert batch.classes.shape == (4, 3)
    assert (batch.ways, batch.shots) == (3, 2)
    # the batch is the same as 4 single episodes from the same seed
    generator = torch.Generator().manual_seed(5)
    singles = [sampler.sample(generator) for _ in range(4)]
    for i, single in enumerate(singles):
        assert torch.equal(batch.support_x[i], single.support_x)
        assert torch.equal(batch.classes[i], single.classes)
    with pytest.raises(ValueError):
        sampler.sample_batch(0)


def test_fixed_tasks_are_repeatable():
    """fixed_tasks(count, seed) returns the same episodes every call, whatever the global state."""
    sampler = EpisodeSampler(traceable_dataset(), ways=2, shots=1, queries=2)
    first = sampler.fixed_tasks(5, seed=3)
    torch.manual_seed(999)
    second = sampler.fixed_tasks(5, seed=3)
    other = sampler.fixed_tasks(5, seed=4)
    assert len(first) == 5
    assert all(episodes_equal(a, b) for a, b in zip(first, second))
    assert not all(episodes_equal(a, b) for a, b in zip(first, other))


def test_too_many_ways_is_an_error_naming_the_limit():
    """ways > number of classes: ValueError stating the number of classes available."""
    with pytest.raises(ValueError) as info:
        EpisodeSampler(traceable_dataset(), ways=NUM_CLASSES + 1, shots=1, queries=1)
    message = str(info.value)
    assert f"{NUM_CLASSES + 1}-way" in message
    assert f"ways <= {NUM_CLASSES}" in message


def test_too_many_shots_plus_queries_is_an_error_naming_the_limit():
    """shots + queries > examples per class: ValueError stating both numbers."""
    with pytest.raises(ValueError) as info:
        EpisodeSampler(traceable_dataset(), ways=2, shots=5, queries=3)
    message = str(info.value)
    assert "= 8 examples per class" in message
    assert f"at most {PER_CLASS}" in message


@pytest.mark.parametrize("field", ["ways", "shots", "queries"])
@pytest.mark.parametrize("value", [0, -1, 1.0])
def test_non_positive_sizes_are_rejected(field, value):
    """ways, shots and queries must be positive ints."""
    sizes = {"ways": 2, "shots": 1, "queries": 1, field: value}
    with pytest.raises(ValueError, match=field):
        EpisodeSampler(traceable_dataset(), **sizes)


def test_classes_with_too_few_examples_are_never_drawn():
    """Classes holding fewer than shots + queries examples are left out of the draw."""
    dataset = traceable_dataset()
    # drop 5 of class 0's 7 examples
    keep = torch.ones(len(dataset), dtype=torch.bool)
    keep[dataset.indices_of_class(0)[:5]] = False
    small = LabelledImages(dataset.images[keep], dataset.labels[keep], dataset.class_names)
    sampler = EpisodeSampler(small, ways=5, shots=2, queries=1)
    generator = torch.Generator().manual_seed(6)
    for _ in range(20):
        assert 0 not in sampler.sample(generator).classes.tolist()


def test_classes_argument_restricts_the_draw():
    """EpisodeSampler(classes=[...]) only draws from those classes."""
    dataset = traceable_dataset()
    sampler = EpisodeSampler(dataset, ways=2, shots=1, queries=1, classes=[1, 4, 5])
    generator = torch.Generator().manual_seed(7)
    for _ in range(20):
        episode = sampler.sample(generator)
        assert set(episode.classes.tolist()) <= {1, 4, 5}
        assert set(dataset.labels[drawn(episode.support_x)].tolist()) <= {1, 4, 5}


def test_train_split_sampler_never_yields_a_test_class():
    """A sampler on the train side of a class-disjoint split never shows a test-class example."""
    dataset = traceable_dataset(num_classes=10, per_class=5)
    train_classes, test_classes = [0, 2, 3, 5, 7, 8], [1, 4, 6, 9]
    train = dataset.subset_classes(train_classes)
    test = dataset.subset_classes(test_classes)
    sampler = EpisodeSampler(train, ways=3, shots=2, queries=2)
    generator = torch.Generator().manual_seed(8)
    seen = set()
    for _ in range(50):
        episode = sampler.sample(generator)
        for images in (episode.support_x, episode.query_x):
            original = set(dataset.labels[drawn(images)].tolist())
            assert original.isdisjoint(test_classes)
            seen |= original
        assert {train.class_names[c] for c in episode.classes.tolist()}.isdisjoint(test.class_names)
    assert seen == set(train_classes)


def test_episode_to_device_keeps_values():
    """Episode.to returns an episode with equal tensors on the target device."""
    episode = EpisodeSampler(traceable_dataset(), ways=2, shots=1, queries=1).sample(torch.Generator().manual_seed(0))
    moved = episode.to("cpu")
    assert episodes_equal(episode, moved)
    assert moved.support_x.device.type == "cpu"


# --------------------------------------------------------------------------
# SinusoidTasks
# --------------------------------------------------------------------------


def test_sinusoid_parameters_and_inputs_within_ranges():
    """A ~ U[0.1, 5], phase ~ U[0, pi], x ~ U[-5, 5], and both ranges are actually spread over."""
    tasks = SinusoidTasks(shots=5, queries=7)
    batch = tasks.fixed_tasks(200, seed=0)
    amplitudes = torch.stack([t.parameters[0] for t in batch])
    phases = torch.stack([t.parameters[1] for t in batch])
    xs = torch.cat([torch.cat([t.support_x, t.query_x]) for t in batch])
    assert (amplitudes >= 0.1).all() and (amplitudes <= 5.0).all()
    assert (phases >= 0).all() and (phases <= math.pi).all()
    assert (xs >= -5).all() and (xs <= 5).all()
    assert amplitudes.min() < 1.0 and amplitudes.max() > 4.0
    assert phases.min() < 0.5 and phases.max() > math.pi - 0.5


def test_sinusoid_targets_are_exactly_a_sin_x_minus_phase():
    """y == A * sin(x - phase) for support and query points, with the task's own parameters."""
    tasks = SinusoidTasks(shots=4, queries=6)
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        task = tasks.sample(generator)
        assert isinstance(task, RegressionTask)
        amplitude, phase = task.parameters.tolist()
        assert task.support_x.shape == (4, 1) and task.query_x.shape == (6, 1)
        for x, y in ((task.support_x, task.support_y), (task.query_x, task.query_y)):
            assert torch.equal(y, task.parameters[0] * torch.sin(x - task.parameters[1]))
            torch.testing.assert_close(y, amplitude * torch.sin(x - phase), rtol=1e-5, atol=1e-6)


def test_sinusoid_custom_ranges():
    """Custom amplitude / phase / x ranges are honoured."""
    tasks = SinusoidTasks(shots=3, queries=3, amplitude=(2.0, 2.5), phase=(1.0, 1.1), x_range=(0.0, 0.5))
    for task in tasks.fixed_tasks(30, seed=2):
        assert 2.0 <= float(task.parameters[0]) <= 2.5
        assert 1.0 <= float(task.parameters[1]) <= 1.1
        assert (task.support_x >= 0).all() and (task.query_x <= 0.5).all()


def test_sinusoid_seeded_determinism_and_batches():
    """Same seed, same tasks; another seed, other tasks; sample_batch stacks a leading dim."""
    tasks = SinusoidTasks(shots=2, queries=3)
    a = tasks.sample_batch(8, torch.Generator().manual_seed(3))
    b = tasks.sample_batch(8, torch.Generator().manual_seed(3))
    c = tasks.sample_batch(8, torch.Generator().manual_seed(4))
    assert a.support_x.shape == (8, 2, 1) and a.query_y.shape == (8, 3, 1) and a.parameters.shape == (8, 2)
    assert torch.equal(a.parameters, b.parameters) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.parameters, c.parameters)
    with pytest.raises(ValueError):
        SinusoidTasks(shots=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sampler_on_a_dataset_kept_on_the_gpu():
    """LabelledImages.to('cuda') ("keep data on the GPU once") works with EpisodeSampler."""
    dataset = traceable_dataset().to("cuda")
    sampler = EpisodeSampler(dataset, ways=3, shots=2, queries=2)
    episode = sampler.sample(torch.Generator().manual_seed(0))
    assert episode.support_x.device.type == "cuda" and episode.classes.device.type == "cuda"
    original = dataset.labels[torch.tensor(drawn(episode.support_x.cpu()), device="cuda")]
    assert torch.equal(original, episode.classes[episode.support_y])


def test_the_sampler_shift_script_compares_each_stored_setting_under_both_samplers(capsys, tmp_path):
    """scripts/sampler_shift.py, the evidence for merging the two samplers: MAML's rows are its
    support-statistics entries (what its predictor computes), every stored setting gets a row, and
    its two columns are the two samplers' scores of the same checkpoint."""
    import importlib.util
    import json
    from pathlib import Path

    from course_lib import registry
    from course_lib.episodes import FastEpisodeSampler
    from course_lib.evaluation import evaluate_few_shot
    from course_lib.protonet import load_data

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("sampler_shift", root / "scripts" / "sampler_shift.py")
    shift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shift)

    maml = json.loads((root / "data/maml/maml_5w1s/results.json").read_text())["results"]
    assert shift.stored_settings("data/maml/maml_5w1s", "maml") == {"5-way 1-shot": maml["5-way 1-shot bn=support"]}
    trained_with_support = {"config": {"bn": "support"}, "results": {"5-way 1-shot": {"mean": 0.9}}}
    (tmp_path / "results.json").write_text(json.dumps(trained_with_support))
    assert shift.stored_settings(str(tmp_path), "maml") == {"5-way 1-shot": {"mean": 0.9}}

    stored = json.loads((root / "data/protonet/results.json").read_text())["results"]
    shift.main(["--runs", "data/protonet", "--episodes", "2"])
    rows = {line.split(" | ")[1]: line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| data/protonet |")}
    assert list(rows) == list(stored)
    assert all(row[2] == f"{100 * stored[s]['mean']:.2f} ± {100 * stored[s]['ci95']:.2f} %" for s, row in rows.items())
    model, _ = registry.load(root / "data/protonet")
    test = load_data(model.config)["test"]
    for sampler, column in ((FastEpisodeSampler, 3), (EpisodeSampler, 4)):
        score = evaluate_few_shot(model.predict, sampler(test, 20, 1, 5), 2, seed=0, progress=False)
        assert rows["20-way 1-shot"][column].startswith(f"{100 * score.mean:.2f} "), (sampler.__name__, column)
