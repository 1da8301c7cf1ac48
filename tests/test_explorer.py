"""course_lib.teaching.explorer: the pure functions, and the widget driven headlessly like a student would."""

from __future__ import annotations

import io

import pytest
import torch

from course_lib import baselines
from course_lib.teaching import explorer
from course_lib.data import LabelledImages, load_digits
from course_lib.episodes import Episode

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def grouped_dataset(per_class: int = 6) -> LabelledImages:
    """8 classes in two "alphabets" (A: 0-4, B: 5-7); every image holds its own index (traceable)."""
    num_classes = 8
    labels = torch.arange(num_classes).repeat(per_class)
    n = len(labels)
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone() / n
    groups = ["A"] * 5 + ["B"] * 3
    names = [f"{g}/char{c}" for c, g in enumerate(groups)]
    return LabelledImages(images, labels, names, class_groups=groups, name="grouped")


def make_oracle(data: LabelledImages):
    """A classifier that cheats: it reads each image's class from its traceable pixels. Always right."""

    def oracle(support_x, support_y, query_x):
        if support_x.shape[1:] != data.images.shape[1:]:
            raise ValueError("the oracle only knows its own data set")
        index = lambda x: (x[:, 0, 0, 0] * len(data)).round().long()  # noqa: E731
        label_of = {int(c): int(y) for c, y in zip(data.labels[index(support_x)], support_y)}
        predicted = torch.tensor([label_of[int(c)] for c in data.labels[index(query_x)]])
        return torch.nn.functional.one_hot(predicted, int(support_y.max()) + 1).float()

    return oracle


def always_zero(support_x, support_y, query_x):
    """Predicts label 0 for every query, as labels (no scores)."""
    return torch.zeros(len(query_x), dtype=torch.long)


def sources(episode: Episode, dataset: LabelledImages) -> set[int]:
    """The original classes of the images in an episode (read back from the traceable pixels)."""
    index = (torch.cat([episode.support_x, episode.query_x])[:, 0, 0, 0] * len(dataset)).round().long()
    return set(dataset.labels[index].tolist())


# --------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------


def test_sample_episode_is_a_function_of_its_arguments():
    data = grouped_dataset()
    a = explorer.sample_episode(data, ways=3, shots=2, queries=1, seed=5)
    b = explorer.sample_episode(data, ways=3, shots=2, queries=1, seed=5)
    c = explorer.sample_episode(data, ways=3, shots=2, queries=1, seed=6)
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    assert not all(torch.equal(getattr(a, f), getattr(c, f)) for f in a.__dataclass_fields__)
    assert a.support_x.shape == (6, 1, 4, 4) and a.query_x.shape == (3, 1, 4, 4)
    assert sources(a, data) == set(a.classes.tolist())


def test_group_restricts_the_classes_and_any_means_all():
    data = grouped_dataset()
    assert explorer.group_options(data) == ["any", "A", "B"]
    assert explorer.group_options(load_digits()) is None
    assert explorer.classes_of_group(data, "B") == [5, 6, 7]
    assert explorer.classes_of_group(data, "any") is None
    for seed in range(10):
        episode = explorer.sample_episode(data, ways=3, shots=1, queries=1, seed=seed, group="B")
        assert set(episode.classes.tolist()) == {5, 6, 7} == sources(episode, data)
    with pytest.raises(ValueError, match="only 3"):
        explorer.sample_episode(data, ways=4, shots=1, queries=1, seed=0, group="B")
    with pytest.raises(ValueError, match="no group"):
        explorer.classes_of_group(data, "Z")
    with pytest.raises(ValueError, match="no class groups"):
        explorer.classes_of_group(load_digits(), "A")


def test_predict_episode_scores_logits_distances_and_labels():
    data = grouped_dataset()
    episode = explorer.sample_episode(data, ways=4, shots=2, queries=3, seed=1)
    nn_pred = explorer.predict_episode(baselines.nearest_neighbour, episode, "pixel NN")
    assert nn_pred.labels.shape == (12,) and nn_pred.scores.shape == (12, 4)
    assert nn_pred.score_kind == baselines.DISTANCE_SCORES
    assert torch.equal(nn_pred.distances, -nn_pred.scores)
    assert torch.allclose(nn_pred.probabilities.sum(-1), torch.ones(12))
    zero = explorer.predict_episode(always_zero, episode)
    assert zero.method == "always_zero" and zero.scores is None and zero.probabilities is None
    assert zero.accuracy == pytest.approx(1 / 4)  # 3 of 12 queries have label 0
    with pytest.raises(ValueError, match="expected logits"):
        explorer.predict_episode(lambda s, y, q: torch.zeros(len(q), 7), episode)


def test_describe_functions_give_the_numbers_students_read():
    data = grouped_dataset()
    episode = explorer.sample_episode(data, ways=4, shots=1, queries=3, seed=2)
    zero = explorer.predict_episode(always_zero, episode, "zeros")
    assert explorer.describe_predictions(episode, zero) == "zeros: 3 of 12 queries right = 25.0 % (chance 25.0 %)"
    assert "no method chosen" in explorer.describe_predictions(episode, None)
    support = explorer.describe_support(episode, data.class_names)
    assert support.startswith("support classes: 0 = ") and data.class_names[int(episode.classes[3])] in support
    assert explorer.describe_episode(episode, data.class_names, "grouped", "A", seed=2) == (
        "grouped · alphabet A · 4-way 1-shot, 3 queries per class, seed 2")
    assert "labels only" in explorer.describe_query(episode, zero, 0, data.class_names)
    nn_pred = explorer.predict_episode(baselines.nearest_neighbour, episode, "nn")
    details = explorer.describe_query(episode, nn_pred, 4, data.class_names)
    assert details.count("<tr") == 1 + 4 and "squared distance" in details and "✓" in details
    head = explorer.predict_episode(baselines.FineTunedHead(steps=5), episode, "head")
    assert "logit" in explorer.describe_query(episode, head, 0)
    with pytest.raises(IndexError):
        explorer.describe_query(episode, zero, 12)


def test_episode_figure_has_one_row_per_class_and_marks_predictions():
    data = grouped_dataset()
    episode = explorer.sample_episode(data, ways=3, shots=2, queries=2, seed=0)
    prediction = explorer.predict_episode(always_zero, episode)
    fig = explorer.episode_figure(episode, data.class_names, prediction, selected=1)
    axes = fig.axes
    assert len(axes) == 3 * (2 + 1 + 2)
    first_query = axes[3]
    assert first_query.get_xlabel() == "→ 0" and first_query.spines["top"].get_edgecolor()[:3] == pytest.approx(
        (0.17254901960784313, 0.6274509803921569, 0.17254901960784313))  # tab:green: label 0 is right
    assert axes[4].get_xlabel().startswith("[q1]")
    assert axes[5 + 3].get_xlabel() == "→ 0"  # class 1's first query: wrong
    png = explorer.figure_png(fig)
    assert png.startswith(PNG_MAGIC)


def test_digit_data_sets_name_rows_and_predictions_by_the_digit():
    """On digits, "2: 7" (episode label 2, digit 7) would read as two digits: the explorer names the digit."""
    digits = load_digits()
    assert explorer.digit_names(digits.class_names) and not explorer.digit_names(grouped_dataset().class_names)
    episode = explorer.sample_episode(digits, ways=4, shots=1, queries=2, seed=0)
    names = [digits.class_names[int(c)] for c in episode.classes]
    assert explorer.describe_support(episode, digits.class_names) == "support classes: digits " + ", ".join(names)
    fig = explorer.episode_figure(episode, digits.class_names, explorer.predict_episode(always_zero, episode))
    columns = 1 + 1 + 2  # support, gap, queries
    assert [fig.axes[row * columns].get_ylabel() for row in range(4)] == [f"digit {n}" for n in names]
    assert fig.axes[2].get_xlabel() == f"→ {names[0]}"  # label 0 is the first row's digit
    nn_pred = explorer.predict_episode(baselines.nearest_neighbour, episode)
    details = explorer.describe_query(episode, nn_pred, 2, digits.class_names)  # query 2: second row
    assert details.startswith(f"<b>query 2</b>: true digit {names[1]}, predicted ") and "true class" not in details
    assert details.count("<tr") == 1 + 4 and "<th>digit</th>" in details


def test_render_view_turns_bad_settings_into_messages():
    data = {"s": grouped_dataset()}
    view = explorer.render_view(data, {}, explorer.ExplorerSettings(split="s", group="B", ways=5))
    assert view.episode is None and "alphabet B" in view.error and "only 3" in view.error
    failing = {"broken": lambda s, y, q: (_ for _ in ()).throw(RuntimeError("boom"))}
    view = explorer.render_view(data, failing, explorer.ExplorerSettings(split="s", method="broken", query=99))
    assert view.episode is not None and "boom" in view.summary and view.prediction is None
    assert view.settings.query == 5 * 5 - 1, "the selected query is clamped into the episode"


# --------------------------------------------------------------------------
# The widget, headless
# --------------------------------------------------------------------------


def make_explorer(**kwargs):
    data = grouped_dataset()
    classifiers = {"oracle": make_oracle(data), "zeros": always_zero, "centroid": baselines.NearestCentroid()}
    return explorer.EpisodeExplorer({"train": data, "digits": load_digits()}, classifiers, ways=3, shots=1,
                                    queries=2, **kwargs), data


def test_widget_builds_with_an_episode_and_accuracy_text():
    app, data = make_explorer()
    assert app.settings == explorer.ExplorerSettings("train", "any", 3, 1, 2, 0, "oracle", 0)
    assert app.episode.support_x.shape == (3, 1, 4, 4)
    assert "oracle: 6 of 6 queries right = 100.0 %" in app.summary.value
    assert bytes(app.image.value).startswith(PNG_MAGIC)
    assert app.group.layout.display is None and list(app.group.options) == ["any", "A", "B"]
    assert "logit" in app.query_details.value and "softmax probability" in app.query_details.value
    assert "episode-explorer" in app.widget._dom_classes
    assert "explorer-resample" in app.resample._dom_classes


def test_method_dropdown_is_wide_enough_for_long_names():
    data = grouped_dataset()
    long = "pretrained Conv4 + nearest centroid"
    app = explorer.EpisodeExplorer(data, {long: baselines.NearestCentroid(), "short": always_zero})
    assert app.method.layout.width.endswith("ch")
    assert int(app.method.layout.width[:-2]) >= len(long) + len("method")


def test_resample_button_draws_a_new_episode_and_updates_the_text():
    app, _ = make_explorer(method="zeros")
    before_episode, before_summary, before_png = app.episode, app.summary.value, bytes(app.image.value)
    before_header = app.header.value
    seen = {tuple(app.episode.classes.tolist())}
    app.resample.click()
    assert app.seed.value == 1
    assert app.episode is not before_episode
    assert app.header.value != before_header and "seed 1" in app.header.value
    assert bytes(app.image.value) != before_png
    for _ in range(5):
        app.resample.click()
        seen.add(tuple(app.episode.classes.tolist()))
    assert len(seen) > 1, "six seeds, always the same classes: the button does not resample"
    # the accuracy text is the accuracy of the episode on screen
    expected = explorer.describe_predictions(app.episode, explorer.predict_episode(always_zero, app.episode, "zeros"))
    assert expected in app.summary.value
    assert before_summary  # (not empty at the start either)


def test_changing_values_changes_shapes_labels_and_accuracy():
    app, data = make_explorer()
    app.ways.value, app.shots.value, app.queries.value = 4, 2, 3
    e = app.episode
    assert e.support_x.shape == (8, 1, 4, 4) and e.query_x.shape == (12, 1, 4, 4)
    assert e.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert app.query.max == 11
    app.method.value = "zeros"
    assert "zeros: 3 of 12 queries right = 25.0 % (chance 25.0 %)" in app.summary.value
    app.method.value = explorer.NO_METHOD
    assert app.prediction is None and "no method chosen" in app.summary.value
    app.query.value = 7
    assert "query 7" in app.query_details.value
    app.queries.value = 1  # query 7 no longer exists: the slider is clamped
    assert app.query.max == 3 and app.query.value == 3 and "query 3" in app.query_details.value


def test_alphabet_choice_restricts_classes_and_bounds_ways():
    app, data = make_explorer()
    app.ways.value = 5
    app.group.value = "B"
    assert app.ways.max == 3 and app.ways.value == 3
    assert set(app.episode.classes.tolist()) == {5, 6, 7}
    assert "alphabet B" in app.header.value
    app.group.value = "any"
    assert app.ways.max == 8


def test_alphabet_choice_hides_for_datasets_without_groups_and_digits_work():
    app, _ = make_explorer()
    app.split.value = "digits"
    assert app.group.layout.display == "none" and list(app.group.options) == ["any"]
    assert app.ways.max == 10
    assert app.episode.support_x.shape == (3, 1, 8, 8)
    assert "oracle failed on this episode" in app.summary.value  # it only understands its own data set
    app.method.value = "centroid"
    assert "centroid: " in app.summary.value and "queries right" in app.summary.value
    app.split.value = "train"
    assert app.group.layout.display is None


def test_errors_show_as_text_and_the_widget_recovers():
    app, _ = make_explorer()
    app.shots.value, app.queries.value = 4, 4  # 8 examples per class needed, 6 available
    assert app.episode is None and app.view.error and "examples per class" in app.summary.value
    assert bytes(app.image.value) == b""
    app.queries.value = 2
    assert app.episode is not None and app.view.error is None


def test_a_single_dataset_and_a_single_function_are_enough():
    app = explorer.EpisodeExplorer(load_digits(), baselines.nearest_neighbour, ways=5, shots=1, queries=3)
    assert list(app.split.options) == ["sklearn digits"]
    assert list(app.method.options) == [explorer.NO_METHOD, "nearest_neighbour"]
    assert app.method.value == "nearest_neighbour"
    assert "nearest_neighbour:" in app.summary.value
    bundle = app._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


@pytest.mark.real_data("mnist")
def test_explorer_on_mnist():
    from course_lib.data import load_mnist_test

    app = explorer.EpisodeExplorer({"MNIST": load_mnist_test()}, {"pixel NN": baselines.nearest_neighbour},
                                   ways=10, shots=5, queries=5)
    assert app.episode.support_x.shape == (50, 1, 28, 28)
    assert app.group.layout.display == "none"
    assert "of 50 queries right" in app.summary.value


@pytest.mark.real_data("omniglot")
def test_explorer_on_omniglot_alphabets():
    from course_lib.data import omniglot_splits

    splits = omniglot_splits("lake")
    app = explorer.EpisodeExplorer({"meta-test": splits["test"], "meta-train": splits["train"]},
                                   {"pixel NN": baselines.nearest_neighbour}, ways=5, shots=1, queries=2)
    assert len(app.group.options) == 1 + 20  # "any" + the 20 evaluation alphabets
    app.split.value = "meta-train"
    assert len(app.group.options) == 1 + 30
    app.group.value = "Korean"
    groups = {splits["train"].class_groups[c] for c in app.episode.classes.tolist()}
    assert groups == {"Korean"}
    assert app.episode.support_x.shape == (5, 1, 28, 28)
    png = io.BytesIO(bytes(app.image.value))
    assert png.read(8) == PNG_MAGIC
