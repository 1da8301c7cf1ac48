"""Label-as-input sequences and the black-box sequence learners (course_lib.sequence_learners, notebook 05)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib import cli, registry, runs
from course_lib import sequence_learners as S
from course_lib.data import LabelledImages
from course_lib.episodes import Episode, EpisodeSampler
from course_lib.evaluation import evaluate_few_shot
from course_lib.teaching import sequence_figures

REPO = Path(__file__).resolve().parent.parent


def _episode(ways=3, shots=2, queries=2, seed=0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    return Episode(
        support_x=torch.rand(ways * shots, 1, 28, 28, generator=g),
        support_y=torch.arange(ways).repeat_interleave(shots),
        query_x=torch.rand(ways * queries, 1, 28, 28, generator=g),
        query_y=torch.arange(ways).repeat_interleave(queries),
        classes=torch.arange(ways),
    )


def _tiny_dataset(classes=6, per_class=5) -> LabelledImages:
    g = torch.Generator().manual_seed(0)
    # each class a distinct bright square, plus noise: learnable in a few steps
    images = 0.1 * torch.rand(classes * per_class, 1, 28, 28, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    for c in range(classes):
        images[labels == c, 0, 4 * c : 4 * c + 4, 4 * c : 4 * c + 4] = 1.0
    return LabelledImages(images=images, labels=labels, class_names=[f"c{c}" for c in range(classes)],
                          class_groups=["g"] * classes, name="tiny")


def _config(model, ways=3, shots=2, **kw):
    return S.SequenceConfig(model=model, ways=ways, shots=shots, embed=8, hidden=16, heads=2, batch_size=4, **kw)


def test_sequence_layout_support_then_queries_with_shifted_labels():
    episode = _episode(ways=3, shots=2, queries=2)
    seq = S.make_sequence(episode, torch.Generator().manual_seed(1))
    L = 3 * 2 + 3 * 2
    assert seq.images.shape == (L, 1, 28, 28) and seq.label_inputs.shape == (L, 3)
    assert seq.is_query.tolist() == [False] * 6 + [True] * 6
    assert sorted(seq.targets[:6].tolist()) == [0, 0, 1, 1, 2, 2]
    assert sorted(seq.targets[6:].tolist()) == [0, 0, 1, 1, 2, 2]
    # every image is the one of its target, support from the support set, queries from the query set
    for t in range(L):
        pool_x, pool_y = (episode.query_x, episode.query_y) if seq.is_query[t] else (episode.support_x, episode.support_y)
        match = [i for i in range(len(pool_x)) if torch.equal(pool_x[i], seq.images[t])]
        assert len(match) == 1 and pool_y[match[0]] == seq.targets[t]
    # step 0 has no label; step t (1..6) carries the label of support step t-1
    assert seq.label_inputs[0].abs().sum() == 0
    for t in range(1, 7):
        assert seq.label_inputs[t].argmax() == seq.targets[t - 1] and seq.label_inputs[t].sum() == 1
    # after a query step the label slot is empty
    assert seq.label_inputs[7:].abs().sum() == 0
    # instance numbers: 0, 1 for the two support examples of each class, -1 for queries
    for c in range(3):
        assert sorted(seq.instance[:6][seq.targets[:6] == c].tolist()) == [0, 1]
    assert (seq.instance[6:] == -1).all()


def test_no_query_label_leaks_into_any_input():
    """Changing the query labels (and nothing else) must not change any model input or output.

    A sequence construction that fed query labels forward (e.g. the label slot after a query
    holding that query's label) would fail here."""
    episode = _episode(ways=3, shots=1, queries=3)
    relabelled = dataclasses.replace(episode, query_y=torch.roll(episode.query_y, 1))
    a = S.make_sequence(episode, torch.Generator().manual_seed(0))
    b = S.make_sequence(relabelled, torch.Generator().manual_seed(0))
    assert not torch.equal(a.targets, b.targets)  # the targets did change...
    assert torch.equal(a.images, b.images)  # ...but no input did
    assert torch.equal(a.label_inputs, b.label_inputs)
    for model_name in ("lstm", "mann", "transformer"):
        torch.manual_seed(0)
        model = S.build(_config(model_name, ways=3, shots=1)).eval()
        assert torch.equal(S.sequence_logits(model, a), S.sequence_logits(model, b)), model_name


def test_the_leak_test_would_catch_a_leak():
    """Sanity check of the test above: a construction that shows every label (unshifted, queries
    included) changes the inputs when only the query labels change."""
    episode = _episode(ways=3, shots=1, queries=3)
    relabelled = dataclasses.replace(episode, query_y=torch.roll(episode.query_y, 1))

    def leaky(ep):
        seq = S.make_sequence(ep, torch.Generator().manual_seed(0))
        return torch.nn.functional.one_hot(seq.targets, 3).float()

    assert not torch.equal(leaky(episode), leaky(relabelled))


def test_shifted_label_inputs_hide_labels_after_queries():
    labels = torch.tensor([1, 0, 1, 0])
    is_query = torch.tensor([False, False, True, True])
    inputs = S.shifted_label_inputs(labels, is_query, 2)
    assert inputs.tolist() == [[0, 0], [0, 1], [1, 0], [0, 0]]


@pytest.mark.parametrize("model_name", list(S.MODELS))  # lrua: Santoro's MANN
def test_models_are_causal_and_have_the_right_shapes(model_name):
    torch.manual_seed(0)
    model = S.build(_config(model_name, ways=3, shots=2)).eval()
    batch = S.stack_sequences([S.make_sequence(_episode(seed=s), torch.Generator().manual_seed(s)) for s in range(2)])
    logits = model(batch.images, batch.label_inputs)
    assert logits.shape == (2, 12, 3)
    # change step 7 (image and label slot): steps 0..6 must not change, step 7 must
    images, labels = batch.images.clone(), batch.label_inputs.clone()
    images[:, 7] = torch.rand_like(images[:, 7])
    labels[:, 7] = torch.tensor([0.0, 0.0, 1.0])
    changed = model(images, labels)
    assert torch.allclose(changed[:, :7], logits[:, :7], atol=1e-6)
    assert not torch.allclose(changed[:, 7], logits[:, 7])


def test_learned_variable_counts():
    lstm = S.build(_config("lstm", layers=2))
    assert lstm.learned_variables(10) == 2 * 2 * 16 == lstm.learned_variables(100)
    transformer = S.build(_config("transformer", layers=2))
    assert transformer.learned_variables(10) == 2 * 2 * 16 * 10
    mann = S.build(_config("mann", ways=3))
    assert mann.learned_variables(10) == 2 * 16 + (8 + 3) * 9  # LSTM state + 9 written (key, label) slots
    with pytest.raises(ValueError, match="model must be"):
        _config("gru")


def test_training_checkpoint_and_evaluation(tmp_path):
    data = _tiny_dataset()
    config = _config("lstm", ways=2, shots=1, steps=4, meta_lr=3e-3)
    torch.manual_seed(config.seed)
    model = S.build(config)
    history = S.train(model, config, data, progress=False)
    assert len(history["loss"][1]) == 4
    path = tmp_path / "checkpoint.pt"
    runs.save_checkpoint(path, model, config, history=history, step=4)
    loaded = S.build(config)
    payload = runs.load_checkpoint(path, loaded, config)
    assert payload["step"] == 4
    for p, q in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError):  # a checkpoint of another config is refused, not silently reused
        runs.load_checkpoint(path, S.build(config), dataclasses.replace(config, hidden=8))
    sampler = EpisodeSampler(data, ways=2, shots=1, queries=1)
    result = evaluate_few_shot(S.SequenceClassifier(loaded.eval()), sampler, episodes=5, progress=False)
    assert result.episodes == 5 and 0 <= result.mean <= 1
    by_instance = S.accuracy_by_instance(loaded, sampler, episodes=6, batch_size=4)
    assert set(by_instance) == {"1st", "query"} and by_instance["query"].episodes == 6


TINY = ["--embed", "8", "--hidden", "16", "--heads", "2", "--batch-size", "4", "--ways", "2", "--shots", "1",
        "--test-episodes", "3", "--no-progress", "--device", "cpu"]


@pytest.fixture
def tiny_data(monkeypatch):
    """The command line on :func:`_tiny_dataset` instead of Omniglot."""
    monkeypatch.setattr(S, "load_data", lambda config, smoke=False: {"train": _tiny_dataset(), "test": _tiny_dataset()})


@pytest.mark.parametrize("model_name", ["lstm", "mann", "transformer"])
def test_command_line_resume_is_exact_for_every_model(tmp_path, tiny_data, model_name):
    """4 steps in one go == 2 steps + --resume to 4, for each of the three models (test_cli covers one)."""
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    cli.main(["train", "sequence", "--model", model_name, "--out", str(straight), "--steps", "4", *TINY])
    cli.main(["train", "sequence", "--model", model_name, "--out", str(halves), "--steps", "2", *TINY])
    cli.main(["train", "sequence", "--out", str(halves), "--steps", "4", "--resume", *TINY[-5:]])
    a, b = (torch.load(p / "checkpoint.pt", weights_only=True) for p in (straight, halves))
    assert a["step"] == b["step"] == 4 and a["history"] == b["history"]
    assert all(torch.equal(t, b["state_dict"][k]) for k, t in a["state_dict"].items())
    results = json.loads((straight / "results.json").read_text())
    assert list(results["results"]) == ["2-way 1-shot"] and results["test_queries_per_class"] == 1
    model, _ = registry.load(straight)
    assert isinstance(model, S.MODELS[model_name])


def test_the_command_line_matches_the_library(tmp_path, tiny_data):
    """``train sequence`` and ``build`` + ``train`` in process give the same weights."""
    cli.main(["train", "sequence", "--model", "mann", "--out", str(tmp_path / "run"), "--steps", "3", *TINY])
    config = S.SequenceConfig(model="mann", ways=2, shots=1, embed=8, hidden=16, heads=2, batch_size=4, steps=3)
    torch.manual_seed(config.seed)
    model = S.build(config)
    S.train(model, config, _tiny_dataset(), progress=False)
    stored = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(t, stored[k]) for k, t in model.state_dict().items())


def test_evaluation_tests_the_own_setting_and_asked_settings_with_as_many_ways():
    torch.manual_seed(0)
    config = _config("lstm", ways=2, shots=1)
    results = S.evaluate(S.build(config).eval(), config, {"test": _tiny_dataset()}, settings=((5, 1), (2, 2)),
                         episodes=3, progress=False)
    assert list(results) == ["2-way 1-shot", "2-way 2-shot"]


@pytest.mark.parametrize("options, match", [
    (["--steps", "-3"], "steps must be >= 0"),
    (["--model", "gru"], "model must be"),
    (["--ways", "1"], "ways must be >= 2"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
    (["--protocol", "lakes"], "protocol must be"),
    (["--loss-on", "support"], "loss_on must be"),
    (["--encoder", "resnet"], "encoder must be"),
    (["--model", "transformer", "--hidden", "10", "--heads", "4"], "multiple of heads"),
])
def test_bad_options_are_usage_errors_before_anything_is_loaded_or_written(tmp_path, monkeypatch, options, match):
    monkeypatch.setattr(S, "load_data", lambda *a, **k: pytest.fail("data was loaded"))
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "sequence", "--out", str(tmp_path / "run"), *options])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("folder", [run.folder for run in S.RUNS])
def test_the_shipped_run_folders_load_with_their_own_config(folder):
    if not (REPO / folder / "checkpoint.pt").is_file():
        pytest.skip(f"{folder} is not in this checkout")
    model, payload = registry.load(REPO / folder)
    record = json.loads((REPO / folder / "config.json").read_text())
    # the checkpoint keeps the field names it was saved with (lr, since renamed meta_lr): compare in today's names
    assert record["method"] == "sequence"
    today = lambda stored: runs.with_added_defaults(stored, S.SequenceConfig)  # noqa: E731
    assert today(payload["config"]) == today(record["config"])
    assert isinstance(model, S.MODELS[record["config"]["model"]]) and payload["step"] > 0
    assert record.get("command_now", record["command"]).startswith("python -m course_lib train sequence")
    # runs older than these options: the conv encoder, the loss on every step
    assert model.config.loss_on == record["config"].get("loss_on", "all")
    assert model.config.encoder == record["config"].get("encoder", "conv")


def test_loss_on_queries_scores_only_the_query_steps():
    torch.manual_seed(0)
    model = S.build(_config("lstm", ways=3, shots=2))
    batch = S.stack_sequences([S.make_sequence(_episode(ways=3, shots=2, queries=1, seed=s),
                                               torch.Generator().manual_seed(s)) for s in range(2)])
    logits = S.sequence_logits(model, batch)
    queries, _ = S.sequence_loss(model, batch, "queries")
    every, _ = S.sequence_loss(model, batch, "all")
    assert torch.allclose(queries, F.cross_entropy(logits[batch.is_query], batch.targets[batch.is_query]))
    assert torch.allclose(every, F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()))
    # other targets at the support steps (the inputs, so the logits, unchanged): only "all" sees them
    relabelled = dataclasses.replace(batch, targets=torch.where(batch.is_query, batch.targets, (batch.targets + 1) % 3))
    assert torch.equal(S.sequence_loss(model, relabelled, "queries")[0], queries)
    assert not torch.allclose(S.sequence_loss(model, relabelled, "all")[0], every)


@pytest.mark.parametrize("model_name", ["lstm", "mann", "transformer"])
def test_the_pixel_encoder_passes_the_flattened_image_and_learns_nothing(model_name):
    torch.manual_seed(0)
    conv, pixels = (S.build(_config(model_name, ways=3, shots=1, encoder=e)) for e in ("conv", "pixels"))
    assert S.SequenceConfig().encoder == "conv" and isinstance(conv.encoder, S.SmallConvEncoder)
    assert not list(pixels.encoder.parameters())
    images = torch.rand(6, 1, 28, 28)
    assert torch.equal(pixels.encoder(images), images.flatten(1))
    seq = S.make_sequence(_episode(ways=3, shots=1, queries=1), torch.Generator().manual_seed(0))
    assert S.sequence_logits(pixels, seq).shape == (6, 3)
    assert pixels.learned_variables(4) >= conv.learned_variables(4)  # the MANN's keys are 784 numbers, not 8


def test_the_trainer_scores_the_steps_its_config_names(monkeypatch):
    scored, original = [], S.sequence_loss

    def recording_loss(model, batch, loss_on="all"):
        scored.append(loss_on)
        return original(model, batch, loss_on)

    monkeypatch.setattr(S, "sequence_loss", recording_loss)
    for loss_on in ("all", "queries"):
        config = _config("lstm", ways=2, shots=1, steps=1, loss_on=loss_on)
        S.trainer(S.build(config), config, {"train": _tiny_dataset()}).step(0)
    assert scored == ["all", "queries"]
    assert S.SequenceConfig().loss_on == "all"  # the default: what runs trained before the option did


class _PixelLogits(torch.nn.Module):
    """A stand-in model whose logits at step t are the first pixels of image t (to track the order)."""

    def __init__(self, ways):
        super().__init__()
        self.ways = ways
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images, label_inputs):
        return images[:, :, 0, 0, : self.ways] + 0 * self.dummy


def test_sequence_classifier_returns_query_logits_in_query_order():
    episode = _episode(ways=3, shots=2, queries=2)
    classify = S.SequenceClassifier(_PixelLogits(3), seed=0)
    for _ in range(3):  # whatever internal order it draws, row i belongs to query_x[i]
        logits = classify(episode.support_x, episode.support_y, episode.query_x)
        assert torch.equal(logits, episode.query_x[:, 0, 0, :3])
    torch.manual_seed(0)
    model = S.build(_config("transformer", ways=3, shots=2)).eval()
    assert S.SequenceClassifier(model)(episode.support_x, episode.support_y, episode.query_x).shape == (6, 3)


def test_trace_is_a_probability_per_step_and_figure_renders():
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    model = S.build(_config("lstm", ways=3, shots=1)).eval()
    seq = S.make_sequence(_episode(ways=3, shots=1, queries=1), torch.Generator().manual_seed(0))
    probs = S.prediction_trace(model, seq)
    assert probs.shape == (6, 3) and torch.allclose(probs.sum(-1), torch.ones(6))
    fig = sequence_figures.trace_figure(seq, probs, step=3)
    assert len(fig.axes) == 7


def test_embedding_layer_norm_is_an_option_and_off_by_default():
    x = torch.rand(5, 1, 28, 28)
    plain = S.build(_config("transformer", ways=2, shots=1))
    normed = S.build(_config("transformer", ways=2, shots=1, embed_norm=True))
    assert isinstance(plain.encoder.norm, torch.nn.Identity)
    assert isinstance(normed.encoder.norm, torch.nn.LayerNorm)
    z = normed.encoder(x)  # unit variance over the 64 features of each image
    assert torch.allclose(z.var(dim=1, unbiased=False), torch.ones(5), atol=1e-3)
    assert not torch.allclose(plain.encoder(x).var(dim=1, unbiased=False), torch.ones(5), atol=1e-1)


def test_a_checkpoint_with_the_other_embedding_norm_is_refused(tmp_path):
    config = _config("mann", ways=2, shots=1, steps=2)
    path = tmp_path / "checkpoint.pt"
    runs.save_checkpoint(path, S.build(config), config, step=0)
    with pytest.raises(ValueError, match="embed_norm"):
        runs.load_checkpoint(path, S.build(config), dataclasses.replace(config, embed_norm=True))


def test_rotations_add_three_rotated_classes_per_training_character_and_leave_the_test_upright(monkeypatch):
    splits = {"train": _tiny_dataset(), "test": _tiny_dataset()}
    monkeypatch.setattr(S, "omniglot_splits", lambda protocol, rotations: dict(splits))
    plain = S.load_data(S.SequenceConfig())
    rotated = S.load_data(S.SequenceConfig(rotations=True))
    assert rotated["test"] is plain["test"]
    assert rotated["train"].num_classes == 4 * plain["train"].num_classes
    original = plain["train"].images[plain["train"].labels == 1][0]
    for turns in range(4):  # class 4c + r is class c turned r times by 90 degrees
        image = rotated["train"].images[rotated["train"].labels == 4 + turns][0]
        assert torch.equal(image, torch.rot90(original, turns, dims=(1, 2)))
    assert "rotated" in S.describe(S.SequenceConfig(rotations=True)) and "rotated" not in S.describe(S.SequenceConfig())
