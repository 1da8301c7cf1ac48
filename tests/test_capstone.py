"""Tests of course_lib.capstone: same episodes for everyone, oracles, the rows, the command line, the files."""

from __future__ import annotations

import json
import math

from pathlib import Path

import pytest
import torch

from course_lib import capstone as cap
from course_lib.baselines import nearest_neighbour
from course_lib.data import OMNIGLOT_SPLIT_SEED, OMNIGLOT_VINYALS_TRAIN_CLASSES, LabelledImages
from course_lib.evaluation import format_accuracy
from course_lib.runtime import repo_root


def synthetic_pool(classes: int = 8, per_class: int = 20, copies: bool = False, seed: int = 0) -> LabelledImages:
    """Random 28x28 images; with ``copies`` every example of a class is the same image."""
    g = torch.Generator().manual_seed(seed)
    if copies:
        prototypes = torch.rand(classes, 1, 28, 28, generator=g)
        images = prototypes.repeat_interleave(per_class, dim=0)
    else:
        images = torch.rand(classes * per_class, 1, 28, 28, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    return LabelledImages(images, labels, [str(c) for c in range(classes)], name="synthetic")


ROOT = repo_root()
SHIPPED_RESULTS = ROOT / cap.FULL_OUT / "results.json"


def fake_row(name, predict, **kw) -> cap.Row:
    return cap.Row(name, predict, "nothing", 1, lambda n, k: n, **kw)


# --------------------------------------------------------------------------
# Identical episodes
# --------------------------------------------------------------------------


def test_same_seed_same_episode_indices_and_different_seed_different():
    pool = synthetic_pool()
    a = cap.draw_episodes(pool, 5, 1, 30, seed=3)
    b = cap.draw_episodes(pool, 5, 1, 30, seed=3)
    c = cap.draw_episodes(pool, 5, 1, 30, seed=4)
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query) and torch.equal(a.classes, b.classes)
    assert not torch.equal(a.support, c.support)
    # support and query rows of one episode never overlap, and their labels are the episode's classes
    for i in range(len(a)):
        assert not set(a.support[i].tolist()) & set(a.query[i].tolist())
        assert torch.equal(pool.labels[a.support[i]], a.classes[i].repeat_interleave(1))
        assert torch.equal(pool.labels[a.query[i]], a.classes[i].repeat_interleave(cap.QUERIES))


def test_episode_seeds_are_fixed_per_base_set_and_setting():
    assert cap.episode_seed("mnist", 5, 1) == cap.episode_seed("mnist-permuted", 5, 1)
    assert cap.episode_seed("mnist", 5, 1) != cap.episode_seed("mnist", 5, 5)
    assert cap.episode_seed("mnist", 5, 1) != cap.episode_seed("digits", 5, 1)
    assert cap.episodes_key("digits-permuted", 2, 1) == cap.episodes_key("digits", 2, 1) == "digits/2w1s"


def test_every_method_sees_the_same_tensors(tmp_path):
    seen: dict[str, list] = {"a": [], "b": []}

    def recorder(name):
        def predict(sx, sy, qx):
            seen[name].append((sx.clone(), sy.clone(), qx.clone()))
            return torch.zeros(len(qx), int(sy.max()) + 1)
        return predict

    pool = synthetic_pool()
    pools = {"mnist": pool}
    methods = [fake_row("a", recorder("a")), fake_row("b", recorder("b"))]
    cap.run_rows(methods, ["mnist"], [(5, 1), (2, 1)], episodes=6, pools=pools, episode_lists={}, progress=False)
    assert len(seen["a"]) == len(seen["b"]) == 12
    for (sa, ya, qa), (sb, yb, qb) in zip(seen["a"], seen["b"]):
        assert torch.equal(sa, sb) and torch.equal(ya, yb) and torch.equal(qa, qb)
    # and the episodes saved to disk give the same tensors back
    lists = {}
    cap.run_rows([], ["mnist"], [(5, 1)], episodes=6, pools=pools, episode_lists=lists, progress=False)
    cap.save_episodes(tmp_path / "episodes.npz", lists)
    loaded = cap.load_episodes(tmp_path / "episodes.npz")["mnist/5w1s"]
    for i in range(6):
        assert torch.equal(loaded.episode(pool, i).support_x, seen["a"][i][0])
        assert torch.equal(loaded.episode(pool, i).query_x, seen["a"][i][2])


def test_fewer_episodes_for_one_method_are_a_prefix_of_the_same_list():
    pool = synthetic_pool()
    scores = {"all": [], "few": []}

    def scorer(name):
        def predict(sx, sy, qx):
            scores[name].append(float(qx.sum()))
            return torch.zeros(len(qx), int(sy.max()) + 1)
        return predict

    methods = [fake_row("all", scorer("all")), fake_row("few", scorer("few"))]
    out = cap.run_rows(methods, ["mnist"], [(5, 1)], episodes=10, episodes_for={"few": 4},
                           pools={"mnist": pool}, episode_lists={}, progress=False)
    assert out["few"]["cells"]["mnist"]["5-way 1-shot"]["episodes"] == 4
    assert out["all"]["cells"]["mnist"]["5-way 1-shot"]["episodes"] == 10
    assert scores["few"] == scores["all"][:4]


# --------------------------------------------------------------------------
# Oracles
# --------------------------------------------------------------------------


def test_nearest_neighbour_on_identical_copies_is_perfect_and_random_is_chance():
    pool = synthetic_pool(copies=True)
    g = torch.Generator().manual_seed(0)

    def random_guess(sx, sy, qx):
        return torch.rand(len(qx), int(sy.max()) + 1, generator=g)

    methods = [fake_row("nn", nearest_neighbour), fake_row("random", random_guess)]
    out = cap.run_rows(methods, ["mnist"], [(5, 1), (2, 1)], episodes=300, pools={"mnist": pool},
                           episode_lists={}, progress=False)
    for setting in ("5-way 1-shot", "2-way 1-shot"):
        assert out["nn"]["cells"]["mnist"][setting]["mean"] == 1.0
        cell = out["random"]["cells"]["mnist"][setting]
        chance = cap.chance(setting)
        assert abs(cell["mean"] - chance) < max(3 * cell["ci95"], 0.02), (setting, cell)


def test_a_label_cheat_gets_everything_right_and_a_wrong_cheat_nothing():
    """An oracle that reads each query's class from the pixel it is written in (a cheat), mapped through the
    support set: 100 %; the same oracle shifted by one label: 0 %. Checks the scoring, not a model."""
    pool = synthetic_pool()
    pool.images[:, 0, 0, 0] = pool.labels.float() / 10  # the class id, written into pixel (0, 0)

    def cheat(shift):
        def predict(sx, sy, qx):
            ways = int(sy.max()) + 1
            label_of = {round(float(x[0, 0, 0]) * 10): int(y) for x, y in zip(sx, sy)}
            predicted = torch.tensor([(label_of[round(float(x[0, 0, 0]) * 10)] + shift) % ways for x in qx])
            return torch.nn.functional.one_hot(predicted, ways).float()
        return predict

    out = cap.run_rows([fake_row("oracle", cheat(0)), fake_row("wrong", cheat(1))], ["omniglot"],
                           [(5, 5)], episodes=20, pools={"omniglot": pool}, episode_lists={}, progress=False)
    assert out["oracle"]["cells"]["omniglot"]["5-way 5-shot"]["mean"] == 1.0
    assert out["wrong"]["cells"]["omniglot"]["5-way 5-shot"]["mean"] == 0.0


def test_pixel_nearest_neighbour_does_not_see_a_pixel_permutation():
    pool = synthetic_pool(seed=1)
    permuted = LabelledImages(cap.permute_pixels(pool.images, cap.pixel_permutation()), pool.labels,
                              pool.class_names)
    assert not torch.equal(permuted.images, pool.images)
    lists = {}
    out = cap.run_rows([fake_row("nn", nearest_neighbour)], ["mnist", "mnist-permuted"], [(5, 1)],
                           episodes=40, pools={"mnist": pool, "mnist-permuted": permuted}, episode_lists=lists,
                           progress=False)
    cells = out["nn"]["cells"]
    assert cells["mnist"]["5-way 1-shot"]["mean"] == cells["mnist-permuted"]["5-way 1-shot"]["mean"]
    assert list(lists) == ["mnist/5w1s"]  # one list for both: the permuted set reuses its base set's episodes


def test_unsupported_settings_are_left_out():
    out = cap.run_rows([fake_row("two-way", lambda sx, sy, qx: torch.zeros(len(qx), 2), supports=lambda w, k: (w, k) == (2, 1))],
                           ["mnist"], [(5, 1), (2, 1)], episodes=3, pools={"mnist": synthetic_pool()},
                           episode_lists={}, progress=False)
    assert list(out["two-way"]["cells"]["mnist"]) == ["2-way 1-shot"]


# --------------------------------------------------------------------------
# Test sets: preprocessing and splits
# --------------------------------------------------------------------------


def test_digits_to_28_is_mnist_layout_in_the_omniglot_value_range():
    ones = torch.ones(2, 1, 8, 8)
    big = cap.digits_to_28(ones)
    assert big.shape == (2, 1, 28, 28)
    assert torch.allclose(big[..., 4:24, 4:24], torch.ones(2, 1, 20, 20))  # the 20x20 box
    assert big[..., :4, :].abs().max() == 0 and big[..., 24:, :].abs().max() == 0  # zero border
    assert big[..., :, :4].abs().max() == 0 and big[..., :, 24:].abs().max() == 0
    with pytest.raises(ValueError):
        cap.digits_to_28(torch.ones(1, 1, 28, 28))


def _check_omniglot_convention(pool: LabelledImages, expected: int | None = None):
    images = pool.images
    assert images.shape[1:] == (1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1 and images.max() > 0.9
    # Omniglot's convention here: bright ink on a 0 background, so most pixels are dark and the corners 0
    assert images.mean() < 0.3
    assert images[:, :, :2, :2].abs().max() == 0
    if expected is not None:
        assert len(pool) == expected


def test_digits_test_set_is_28x28_bright_ink_and_vsmls_held_out_part():
    pool = cap.load_test_set("digits")
    _check_omniglot_convention(pool, expected=1797 - int(0.7 * 1797))
    assert (pool.examples_per_class() >= 1 + cap.QUERIES + 4).all()  # enough for 5-shot episodes
    from course_lib import vsml
    held = vsml.load_sources("digits")["test"]
    assert len(held.labels) == len(pool)
    assert torch.equal(torch.bincount(held.labels, minlength=10), pool.examples_per_class())


@pytest.mark.real_data("mnist")
def test_mnist_test_set_is_the_part_gpicl_never_trained_on():
    pool = cap.load_test_set("mnist")
    _check_omniglot_convention(pool, expected=1000)
    from course_lib import data, gpicl
    mnist = data.load_mnist_test()
    assert cap.MNIST_HELD_OUT_FROM == gpicl.MNIST_TRAIN_IMAGES
    assert torch.equal(pool.images, mnist.images[gpicl.MNIST_TRAIN_IMAGES:])
    permuted = cap.load_test_set("mnist-permuted")
    assert torch.equal(permuted.images.flatten(1).sort(1).values, pool.images.flatten(1).sort(1).values)
    assert not torch.equal(permuted.images, pool.images)


def test_omniglot_classes_are_unseen_by_both_training_splits():
    classes = cap.omniglot_unseen_classes(1623, 964)
    order = torch.randperm(1623, generator=torch.Generator().manual_seed(OMNIGLOT_SPLIT_SEED))
    vinyals_train = set(order[:OMNIGLOT_VINYALS_TRAIN_CLASSES].tolist())
    assert classes and min(classes) >= 964  # not a background (Lake training) character
    assert not set(classes) & vinyals_train  # not a Vinyals training character
    assert len(classes) > 100  # enough classes for thousands of distinct 5-way episodes


def test_unknown_test_set_is_an_error():
    with pytest.raises(ValueError, match="unknown test set"):
        cap.load_test_set("cifar")


# --------------------------------------------------------------------------
# Command line and files
# --------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--methods", "protonet,nope"], "nope"),
    (["--test-sets", "cifar"], "cifar"),
    (["--episodes", "1"], "--episodes"),
    (["--episodes-for", "maml"], "METHOD=N"),
    (["--episodes-for", "unknown=5"], "METHOD=N"),
    (["--device", "tpu"], "device"),
    (["--settings", "3x3"], "3x3"),
    (["--threads", "0"], "--threads"),
])
def test_cli_rejects_bad_input_before_writing_anything(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as error:
        cap.main([*argv, "--out", str(out)])
    assert error.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_smoke_run_never_writes_over_full_mode_results(tmp_path, monkeypatch, capsys):
    """COURSE_MODE=smoke with the shipped folder (or any folder of full-mode results) is a usage error."""
    monkeypatch.setenv("COURSE_MODE", "smoke")
    shipped = ROOT / cap.FULL_OUT
    before = (shipped / "results.json").read_bytes()
    with pytest.raises(SystemExit) as error:
        cap.main(["--methods", "pixel-nn", "--test-sets", "digits", "--settings", "5x1", "--out", str(shipped)])
    assert error.value.code == 2 and "full-mode results" in capsys.readouterr().err
    assert (shipped / "results.json").read_bytes() == before
    assert cap.output_folder(None, "smoke") == Path(cap.SMOKE_OUT)
    assert cap.output_folder(None, "full") == Path(cap.FULL_OUT)


def test_written_markdown_and_csv_agree_with_results_json(tmp_path):
    # a checkout without the Reptile checkpoint: the shipped data/ minus data/maml/reptile_5w1s
    real = ROOT / "data"
    fake = tmp_path / "checkout" / "data"
    fake.mkdir(parents=True)
    for entry in real.iterdir():
        if entry.name != "maml":
            (fake / entry.name).symlink_to(entry)
    (fake / "maml").mkdir()
    for entry in (real / "maml").iterdir():
        if entry.name != "reptile_5w1s":
            (fake / "maml" / entry.name).symlink_to(entry)
    out = tmp_path / "capstone"
    record = cap.main(["--methods", "pixel-nn,reptile", "--test-sets", "digits,digits-permuted", "--episodes", "6",
                      "--out", str(out), "--root", str(fake.parent), "--no-progress"])
    stored = json.loads((out / "results.json").read_text())
    assert stored["methods"].keys() == {"pixel-nn"} and record["methods"].keys() == {"pixel-nn"}
    assert "reptile" in stored["missing"]  # listed as missing, never as a row
    assert not any(line.startswith("| reptile |") for line in (out / "results.md").read_text().splitlines())
    assert "reptile" not in cap.read_csv((out / "results.csv").read_text())
    csv_cells = cap.read_csv((out / "results.csv").read_text())
    markdown = (out / "results.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| method | digits"))
    row = next(line for line in markdown.splitlines() if line.startswith("| pixel-nn |"))
    names = [c.strip() for c in header.strip("|").split("|")]
    values = [c.strip() for c in row.strip("|").split("|")]
    count = 0
    for test_set, settings in stored["methods"]["pixel-nn"]["cells"].items():
        for setting, cell in settings.items():
            mean, ci, episodes = csv_cells["pixel-nn"][(test_set, setting)]
            assert math.isclose(mean, cell["mean"], abs_tol=1e-6) and math.isclose(ci, cell["ci95"], abs_tol=1e-6)
            assert episodes == cell["episodes"] == 6
            assert values[names.index(f"{test_set} · {setting}")] == format_accuracy(cell["mean"], cell["ci95"])
            count += 1
    assert count == 2 * len(cap.SETTINGS)
    # the index lists were saved, and rerunning on them gives the same numbers
    assert (out / "episodes.npz").is_file() and set(cap.load_episodes(out / "episodes.npz")) == {
        f"digits/{w}w{k}s" for w, k in cap.SETTINGS}
    again = cap.main(["--methods", "pixel-nn", "--test-sets", "digits", "--episodes", "6", "--out", str(out),
                     "--no-progress"])
    for setting, cell in stored["methods"]["pixel-nn"]["cells"]["digits"].items():
        assert again["methods"]["pixel-nn"]["cells"]["digits"][setting]["mean"] == cell["mean"]
    assert stored["hardware"]["device"] == "cpu" and stored["episode_seeds"]["digits/5w1s"] == cap.episode_seed(
        "digits", 5, 1)


def test_ten_shot_episodes_fit_an_omniglot_character():
    assert cap.queries_for(1) == cap.queries_for(5) == cap.QUERIES == 15
    assert cap.queries_for(10) + 10 == 20  # every drawing of a character used, none twice
    pool = synthetic_pool(classes=12, per_class=20)
    episodes = cap.draw_episodes(pool, 10, 10, 5, seed=1, queries=cap.queries_for(10))
    for i in range(len(episodes)):
        rows = torch.cat([episodes.support[i], episodes.query[i]])
        assert len(set(rows.tolist())) == 10 * 20  # support and query disjoint, 20 drawings per class


def test_adding_a_setting_keeps_the_earlier_cells_of_a_method(tmp_path):
    out = tmp_path / "capstone"
    first = cap.main(["--methods", "pixel-nn", "--test-sets", "digits", "--settings", "5x1,2x1", "--episodes", "4",
                     "--out", str(out), "--no-progress"])
    cells = first["methods"]["pixel-nn"]["cells"]["digits"]
    assert set(cells) == {"5-way 1-shot", "2-way 1-shot"}
    second = cap.main(["--methods", "pixel-nn", "--test-sets", "digits", "--settings", "10x10", "--episodes", "4",
                      "--out", str(out), "--no-progress"])
    merged = second["methods"]["pixel-nn"]["cells"]["digits"]
    assert set(merged) == {"5-way 1-shot", "2-way 1-shot", "10-way 10-shot"}
    assert merged["5-way 1-shot"] == cells["5-way 1-shot"]  # kept, not recomputed
    assert second["queries_per_class"]["10-way 10-shot"] == 10 and second["queries_per_class"]["5-way 1-shot"] == 15
    run = next(r for r in second["runs"] if r["method"] == "pixel-nn")
    assert "--settings 10x10" in run["command"] and "--settings 5x1,2x1" in run["earlier_commands"][0]
    assert "10-way 10-shot" in (out / "results.md").read_text()


def test_merging_a_part_from_another_mode_replaces_it():
    def part(mode, setting):
        return {"method": "m", "mode": mode, "command": mode, "result": {
            "cells": {"digits": {setting: {"mean": 0.5}}}, "supported_settings": [setting], "variables": {}}}
    assert cap.merge_part(part("smoke", "5-way 1-shot"), part("full", "2-way 1-shot")) == part("full", "2-way 1-shot")
    merged = cap.merge_part(part("full", "5-way 1-shot"), part("full", "2-way 1-shot"))
    assert set(merged["result"]["cells"]["digits"]) == {"5-way 1-shot", "2-way 1-shot"}
    assert merged["result"]["supported_settings"] == ["5-way 1-shot", "2-way 1-shot"]  # in SETTINGS order


def hand_record() -> dict:
    """Two rows on three test sets, 5-way 1-shot, numbers chosen to be checked by hand."""
    def c(mean, ci):
        return {"5-way 1-shot": {"mean": mean, "ci95": ci, "episodes": 10}}
    return {"test_sets": ["omniglot", "mnist", "mnist-permuted"], "settings": [[5, 1]], "episodes": 10, "methods": {
        "pixel-nn": {"family": "hand-designed", "trained_on": "nothing", "supported_settings": ["5-way 1-shot"],
                     "variables": {"setting": "5-way 1-shot", "ratio_learned_per_meta": 1000.0},
                     "cells": {"omniglot": c(0.40, 0.03), "mnist": c(0.50, 0.04), "mnist-permuted": c(0.50, 0.04)}},
        "conv": {"family": "metric", "trained_on": "Omniglot background", "supported_settings": ["5-way 1-shot"],
                 "variables": {"setting": "5-way 1-shot", "ratio_learned_per_meta": 0.01},
                 "cells": {"omniglot": c(0.90, 0.04), "mnist": c(0.65, 0.00), "mnist-permuted": c(0.30, 0.03)}}}}


def test_gain_over_pixels_and_permutation_drop_by_hand():
    record = hand_record()
    gain = cap.gain_over_pixels(record, "conv", "omniglot", "5-way 1-shot")
    assert math.isclose(gain["mean"], 0.50) and math.isclose(gain["ci95"], 0.05)  # 0.90 - 0.40, hypot(0.04, 0.03)
    assert math.isclose(cap.gain_over_pixels(record, "conv", "mnist-permuted", "5-way 1-shot")["mean"], -0.20)
    drop = cap.permutation_drop(record, "conv", "mnist", "5-way 1-shot")
    assert math.isclose(drop["mean"], 0.35) and math.isclose(drop["ci95"], 0.03)  # 0.65 - 0.30, hypot(0, 0.03)
    assert cap.permutation_drop(record, "pixel-nn", "mnist", "5-way 1-shot")["mean"] == 0
    assert cap.gain_over_pixels(record, "conv", "digits", "5-way 1-shot") is None  # no such cell: no number
    g = cap.generalisation(record, "conv")
    assert g["home"] == "omniglot" and g["setting"] == "5-way 1-shot"
    assert math.isclose(g["in_distribution"]["mean"], 0.50)
    assert math.isclose(g["new_datasets"]["mean"], 0.15)  # mnist only: 0.65 - 0.50
    assert math.isclose(g["new_structure"]["mean"], -0.20) and math.isclose(g["permutation_drop"]["mean"], 0.35)
    mean = cap.average([{"mean": 0.1, "ci95": 0.03}, {"mean": 0.3, "ci95": 0.04}])
    assert math.isclose(mean["mean"], 0.2) and math.isclose(mean["ci95"], 0.025)  # hypot(0.03, 0.04) / 2
    table = cap.per_test_set_markdown(record, "omniglot")
    assert "| conv (in distribution) | 90.0 ± 4.0 % | +50.0 ± 5.0 |" in table
    assert "| pixel-nn | 40.0 ± 3.0 % | reference |" in table  # not meta-trained: no home set


def test_the_measures_do_not_reward_a_weak_home_set():
    """The kept share (acc_out - 1/N) / (acc_in - 1/N) exceeds 1 for a row whose in-distribution set is its hardest;
    the gain over pixels is 0 for the pixel learner and does not grow when the home set gets harder."""
    record = hand_record()
    pixels = record["methods"]["pixel-nn"]["cells"]
    kept = (pixels["mnist"]["5-way 1-shot"]["mean"] - 0.2) / (pixels["omniglot"]["5-way 1-shot"]["mean"] - 0.2)
    assert kept > 1  # 1.5: the old measure credits a learner that learned nothing
    assert cap.generalisation(record, "pixel-nn")["new_datasets"]["mean"] == 0
    before = cap.generalisation(record, "conv")["new_datasets"]["mean"]
    record["methods"]["conv"]["cells"]["omniglot"]["5-way 1-shot"]["mean"] = 0.30  # a weaker home set
    assert cap.generalisation(record, "conv")["new_datasets"]["mean"] == before


def test_shipped_measures_agree_with_the_results_files():
    """On the shipped table: the gain on permuted pixels is the gain on the originals minus the drop (the pixel
    nearest neighbour scores the same on both), and results.csv gives the same gains as results.json."""
    record = json.loads(SHIPPED_RESULTS.read_text())
    csv_cells = cap.read_csv((SHIPPED_RESULTS.parent / "results.csv").read_text())
    for name in record["methods"]:
        for setting in record["methods"][name]["supported_settings"]:
            for base in ("mnist", "digits"):
                gain = cap.gain_over_pixels(record, name, base, setting)
                permuted = cap.gain_over_pixels(record, name, f"{base}-permuted", setting)
                drop = cap.permutation_drop(record, name, base, setting)
                assert math.isclose(permuted["mean"], gain["mean"] - drop["mean"], abs_tol=1e-9), (name, base)
                from_csv = csv_cells[name][(base, setting)][0] - csv_cells["pixel-nn"][(base, setting)][0]
                assert math.isclose(from_csv, gain["mean"], abs_tol=2e-6), (name, base, setting)


def test_the_two_figures_from_a_record():
    import matplotlib.pyplot as plt

    record = hand_record()
    heat = cap.plot_heatmap(record, settings=("5-way 1-shot",))
    image = heat.axes[0].images[0].get_array()
    assert image.shape == (2, 3) and math.isclose(image[1, 0], 50.0)  # conv on omniglot: +50 points
    scatter = cap.plot_generalisation(record, methods=["pixel-nn", "conv"], setting="5-way 1-shot")
    assert scatter.axes[1].get_xscale() == "log"
    assert [tuple(c.get_offsets()[0]) for c in scatter.axes[0].collections] == [(0.0, 0.0), (50.0, -20.0)]
    plt.close(heat)
    plt.close(scatter)


# --------------------------------------------------------------------------
# The rows of the registered methods' shipped runs
# --------------------------------------------------------------------------

SHIPPED = ("protonet", "matching-net-scaled", "maml", "fomaml", "mann", "transformer", "lstm", "lrua", "vsml", "gpicl",
           "protonet-background", "maml-background", "vsml-omniglot", "gpicl-omniglot")
SHARED = {"pretrained-centroid", "pretrained-finetune", "protonet-background", "maml-background", "lstm", "mann",
          "lrua", "transformer", "vsml-omniglot", "gpicl-omniglot"}  # meta-trained on Omniglot background only


def test_every_registered_method_that_names_a_row_describes_it():
    runs = cap.registered_runs()
    assert set(SHIPPED) <= set(runs) and not set(runs) & set(cap.BASELINES)
    assert cap.row_names() == [*cap.BASELINES, *runs]
    from course_lib import registry
    for name, (method, run) in runs.items():
        assert run.capstone == name and hasattr(registry.get(method), "capstone_row"), name


def test_cli_lists_the_rows(capsys):
    cap.main(["--list"])
    assert capsys.readouterr().out.split() == cap.row_names()


@pytest.fixture(scope="module")
def shipped_rows():
    rows, missing = cap.build_rows(SHIPPED)
    return {row.name: row for row in rows}, missing


def test_shipped_rows_load_and_reptile_is_only_listed_when_missing(shipped_rows):
    rows, missing = shipped_rows
    assert set(rows) | set(missing) == set(SHIPPED)
    _, reptile_missing = cap.build_rows(["reptile"])
    assert bool(reptile_missing) == (not (ROOT / "data" / "maml" / "reptile_5w1s" / "checkpoint.pt").is_file())
    for row in rows.values():
        v = row.variables(*next(s for s in cap.SETTINGS if row.supports(*s)))
        assert v["meta_parameters"] > 0 and v["learned_variables"] > 0


def test_a_row_whose_run_is_not_in_the_checkout_is_missing_not_invented(tmp_path):
    rows, missing = cap.build_rows(["pixel-nn", "gpicl", "maml"], root=tmp_path)  # gpicl: capstone_model
    assert [row.name for row in rows] == ["pixel-nn"] and set(missing) == {"gpicl", "maml"}
    assert "data/gpicl/sweep_cpu" in missing["gpicl"] and "data/maml/maml_5w1s" in missing["maml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_predictors_are_non_transductive_and_return_n_way_logits(shipped_rows, name):
    """A query's logits must not depend on the other queries: classify 12 queries, then only the first 3."""
    rows, _ = shipped_rows
    if name not in rows:
        pytest.skip(f"{name}: checkpoint not in this checkout")
    row = rows[name]
    ways, shots = next(s for s in cap.SETTINGS if row.supports(*s))
    pool = synthetic_pool(seed=2)
    episode = cap.draw_episodes(pool, ways, shots, 1, seed=0, queries=6).episode(pool, 0)
    row.reset(5)
    full = row.predict(episode.support_x, episode.support_y, episode.query_x)
    row.reset(5)
    part = row.predict(episode.support_x, episode.support_y, episode.query_x[:3])
    assert full.shape == (ways * 6, ways)
    assert torch.allclose(full[:3], part, atol=1e-4), (full[:3], part)


def test_the_shared_training_rows_were_meta_trained_on_the_background_alphabets_only(shipped_rows):
    """A row is on the shared data when its ``trained_on`` says so: in the rows built here and in the shipped table."""
    rows, _ = shipped_rows
    for name, row in rows.items():
        assert row.trained_on.startswith(cap.SHARED_TRAINING_DATA) == (name in SHARED), (name, row.trained_on)
    record = json.loads(SHIPPED_RESULTS.read_text())
    assert set(cap.shared_training(record)) == SHARED
