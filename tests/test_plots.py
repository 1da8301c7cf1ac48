"""course_lib.teaching.plots: smoke tests of the figures (layout, contents, prediction frames)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from course_lib.data import LabelledImages  # noqa: E402
from course_lib.episodes import EpisodeSampler  # noqa: E402
from course_lib.teaching import plots  # noqa: E402
from course_lib.runs import History  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def episode_3way_2shot_2query():
    n = 4 * 5
    images = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    dataset = LabelledImages(images, torch.arange(n) % 4, [f"name{c}" for c in range(4)])
    return EpisodeSampler(dataset, ways=3, shots=2, queries=2).sample(torch.Generator().manual_seed(1))


def test_show_images_grid():
    """7 images in 3 columns: a 3x3 grid, the first 7 axes showing the images with their titles."""
    images = torch.rand(7, 1, 5, 5)
    fig = plots.show_images(images, titles=[f"t{i}" for i in range(7)], ncols=3, suptitle="grid")
    axes = fig.axes
    assert len(axes) == 9
    for i, ax in enumerate(axes):
        if i < 7:
            assert len(ax.images) == 1
            np.testing.assert_allclose(ax.images[0].get_array(), images[i, 0].numpy())
            assert ax.get_title() == f"t{i}"
        else:
            assert len(ax.images) == 0
    assert fig._suptitle.get_text() == "grid"


def test_show_images_rgb_and_few_images():
    """RGB images are shown as H x W x 3; fewer images than ncols give one row."""
    fig = plots.show_images(torch.rand(2, 3, 4, 4), ncols=10)
    assert len(fig.axes) == 2
    assert fig.axes[0].images[0].get_array().shape == (4, 4, 3)


def test_plot_episode_layout():
    """3-way 2-shot 2-query: 3 rows x (2 support + 1 gap + 2 query) axes, images in the right places."""
    episode = episode_3way_2shot_2query()
    names = [f"name{c}" for c in range(4)]
    fig = plots.plot_episode(episode, class_names=names)
    axes = np.array(fig.axes).reshape(3, 5)
    assert len(fig.axes) == 15
    for row in range(3):
        for col in range(2):
            np.testing.assert_allclose(axes[row, col].images[0].get_array(), episode.support_x[row * 2 + col, 0])
        assert len(axes[row, 2].images) == 0  # the gap between support and query
        for col in range(3, 5):
            q = row * 2 + (col - 3)
            np.testing.assert_allclose(axes[row, col].images[0].get_array(), episode.query_x[q, 0])
        assert names[int(episode.classes[row])] in axes[row, 0].get_ylabel()


def test_plot_episode_prediction_frames():
    """With predictions, each query is framed green when right and red when wrong."""
    episode = episode_3way_2shot_2query()
    predictions = episode.query_y.clone()
    wrong = {1, 4}
    for q in wrong:
        predictions[q] = (predictions[q] + 1) % 3
    fig = plots.plot_episode(episode, predictions=predictions)
    axes = np.array(fig.axes).reshape(3, 5)
    for row in range(3):
        for col in range(3, 5):
            q = row * 2 + (col - 3)
            expected = to_rgba("tab:red" if q in wrong else "tab:green")
            spines = list(axes[row, col].spines.values())
            assert all(s.get_visible() for s in spines)
            assert all(to_rgba(s.get_edgecolor()) == expected for s in spines), q
        for col in range(2):  # support images are not framed
            assert not any(s.get_visible() for s in axes[row, col].spines.values())


def test_plot_episode_without_predictions_has_no_frames():
    """Without predictions no query image is framed."""
    fig = plots.plot_episode(episode_3way_2shot_2query())
    assert not any(s.get_visible() for ax in fig.axes for s in ax.spines.values())


def test_plot_history_draws_one_line_per_metric():
    """plot_history draws each metric's (steps, values) on the given axes, log scale on request."""
    history = History()
    for step in range(5):
        history.log(step, loss=1.0 / (step + 1), accuracy=step / 5)
    fig, ax = plt.subplots()
    returned = plots.plot_history(history, ["loss", "accuracy"], ax=ax, labels=["L", "A"], logy=True, title="t")
    assert returned is ax
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["L", "A"]
    for line, name in zip(lines, ["loss", "accuracy"]):
        steps, values = history[name]
        np.testing.assert_allclose(line.get_xdata(), steps)
        np.testing.assert_allclose(line.get_ydata(), values)
    assert ax.get_yscale() == "log" and ax.get_title() == "t"


def test_plot_history_makes_its_own_axes():
    """Without ax a new figure is made; an unknown metric is a KeyError."""
    history = History()
    history.log(0, loss=1.0)
    ax = plots.plot_history(history, ["loss"])
    assert len(ax.get_lines()) == 1 and ax.get_lines()[0].get_label() == "loss"
    with pytest.raises(KeyError):
        plots.plot_history(history, ["missing"])


def test_show_in_output_replaces_the_figure_and_closes_it():
    """A widget redraw leaves exactly the new figure in the Output, and no open matplotlib figure."""
    import ipywidgets as widgets

    output = widgets.Output()
    for _ in range(2):
        fig = plt.figure()
        plots.show_in_output(output, fig)
        assert not plt.fignum_exists(fig.number)
    assert len(output.outputs) <= 1


def test_plot_results_table_draws_each_cell_with_its_interval_and_chance():
    from course_lib.baselines import ResultsTable
    from course_lib.evaluation import AccuracyResult

    table = ResultsTable(["5-way 1-shot", "20-way 1-shot"])
    table.add("a", "5-way 1-shot", AccuracyResult(0.6, 0.02, 100))
    table.add("a", "20-way 1-shot", AccuracyResult(0.3, 0.01, 100))
    table.add("b", "5-way 1-shot", AccuracyResult(0.8, 0.03, 100))  # no 20-way cell: left empty
    ax = plots.plot_results_table(table)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [30.0, 60.0, 80.0]
    chance = sorted(round(y, 6) for c in ax.collections for seg in c.get_segments() for y in {seg[0][1]}
                    if seg[0][1] == seg[1][1])
    assert 20.0 in chance and 5.0 in chance
    plt.close("all")
