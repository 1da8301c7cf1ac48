"""GPICL (notebook 08): tasks from random projections, causal models, training, and the sweep command line."""

from __future__ import annotations

import json

import pytest
import torch

from course_lib import gpicl
from course_lib.gpicl import GPICLConfig, ProjectedTasks


def toy_tasks(n=200, side=6, classes=10, input_dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, side, side, generator=g)
    labels = torch.arange(n) % classes
    return ProjectedTasks(images, labels, num_classes=classes, input_dim=input_dim)


def test_projections_are_deterministic_distinct_and_standard_normal():
    ids = torch.tensor([0, 1, 5, 2**40 + 3, gpicl.UNSEEN_TASK_OFFSET + 7])
    first = gpicl.projection_matrices(ids, 49, 16)
    again = gpicl.projection_matrices(ids.flip(0), 49, 16).flip(0)  # per id, not per position in the batch
    assert torch.equal(first, again)
    flat = first.flatten(1)
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            assert not torch.allclose(flat[i], flat[j])
            assert abs(torch.corrcoef(torch.stack([flat[i], flat[j]]))[0, 1]) < 0.2
    big = gpicl.projection_matrices(torch.arange(64), 100, 32)
    assert torch.isfinite(big).all()
    assert abs(float(big.std()) * 10 - 1) < 0.05 and abs(float(big.mean())) < 0.01  # N(0, 1/d)
    # an id differing only in its high 32 bits is another task
    assert not torch.allclose(gpicl.projection_matrices(torch.tensor([3]), 10, 4),
                              gpicl.projection_matrices(torch.tensor([3 + 2**32]), 10, 4))


def test_labels_are_a_permutation_per_task_and_a_class_keeps_its_label():
    perms = gpicl.label_permutations(torch.arange(500), 10)
    assert torch.equal(perms.sort(1).values, torch.arange(10).expand(500, -1))
    assert len({tuple(p) for p in perms.tolist()}) > 450  # distinct tasks get different permutations
    tasks = toy_tasks()
    ids = torch.tensor([3, 3, 17])
    g = torch.Generator().manual_seed(1)
    tokens, targets = tasks.sample_batch(ids, 40, g)
    assert tokens.shape == (3, 40, 8 + 10) and targets.shape == (3, 40)
    idx = torch.randint(0, len(tasks), (3, 40), generator=g)
    _, targets = tasks.sample_batch(ids, 40, example_indices=idx)
    classes = tasks.labels[idx]
    mappings = []
    for b in range(3):
        mapping = {}
        for c, y in zip(classes[b].tolist(), targets[b].tolist()):
            assert mapping.setdefault(c, y) == y  # one label per class within a task
        assert len(set(mapping.values())) == len(mapping)
        mappings.append(mapping)
    shared = set(mappings[0]) & set(mappings[1])
    assert len(shared) >= 5 and all(mappings[0][c] == mappings[1][c] for c in shared)  # same task, same labels
    shared = set(mappings[0]) & set(mappings[2])
    assert any(mappings[0][c] != mappings[2][c] for c in shared)  # another task relabels


def test_sampling_is_deterministic_per_task_id():
    tasks = toy_tasks()
    idx = torch.randint(0, len(tasks), (2, 30), generator=torch.Generator().manual_seed(0))
    a = tasks.sample_batch(torch.tensor([7, 9]), 30, example_indices=idx)
    b = tasks.sample_batch(torch.tensor([7, 9]), 30, example_indices=idx)
    c = tasks.sample_batch(torch.tensor([8, 9]), 30, example_indices=idx)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0][0], c[0][0]) and torch.equal(a[0][1], c[0][1])


def test_tokens_carry_the_previous_label_and_never_the_current_one():
    tasks = toy_tasks()
    ids = torch.tensor([4])
    idx = torch.randint(0, len(tasks), (1, 25), generator=torch.Generator().manual_seed(2))
    tokens, targets = tasks.sample_batch(ids, 25, example_indices=idx)
    slot = tokens[0, :, 8:]
    assert torch.equal(slot[0], torch.zeros(10))
    assert torch.equal(slot[1:].argmax(-1), targets[0, :-1]) and torch.equal(slot.sum(-1)[1:], torch.ones(24))
    t = 11
    changed = idx.clone()  # a different example with a different class at step t only
    other = (tasks.labels != tasks.labels[idx[0, t]]).nonzero()[0, 0]
    changed[0, t] = other
    tokens2, targets2 = tasks.sample_batch(ids, 25, example_indices=changed)
    assert targets2[0, t] != targets[0, t]
    assert torch.equal(tokens2[0, :t], tokens[0, :t])  # nothing at positions < t sees y_t or x_t
    assert torch.equal(tokens2[0, t, 8:], tokens[0, t, 8:])  # position t: its label slot is y_{t-1}
    assert not torch.equal(tokens2[0, t + 1, 8:], tokens[0, t + 1, 8:])  # y_t appears at t + 1


def test_omniglot_style_datasets_draw_their_own_classes_per_sequence():
    images = torch.rand(60 * 4, 1, 5, 5)
    labels = torch.arange(60).repeat_interleave(4)
    tasks = ProjectedTasks(images, labels, num_classes=5, input_dim=6)
    g = torch.Generator().manual_seed(0)
    idx, local = tasks._draw_examples(8, 30, g)
    for b in range(8):
        classes = tasks.labels[idx[b]]
        assert len(set(classes.tolist())) <= 5
        for c, y in zip(classes.tolist(), local[b].tolist()):
            assert tasks.labels[idx[b]][local[b] == y].unique().tolist() == [c]
    tokens, targets = tasks.sample_batch(torch.tensor([1, 2]), 30, g)
    assert tokens.shape == (2, 30, 11) and int(targets.max()) < 5


@pytest.mark.parametrize("model,pair", [("transformer", False), ("transformer", True), ("lstm", False)])
def test_models_are_causal(model, pair):
    config = GPICLConfig(model=model, d_model=16, layers=2, heads=2, lstm_hidden=12, input_dim=8, seq_len=20,
                         num_tasks=[1, 2], biased_fraction=[0.0, 0.0], pair_tokens=pair)
    torch.manual_seed(0)
    net = gpicl.build_model(config).eval()
    x = torch.randn(2, 3, 20, 18)
    t = 9
    y = x.clone()
    y[:, :, t] += torch.randn(2, 3, 18)
    with torch.no_grad():
        a, b = net(x), net(y)
    assert a.shape == (2, 3, 20, 10)
    assert torch.allclose(a[:, :, :t], b[:, :, :t], atol=1e-6)
    assert not torch.allclose(a[:, :, t], b[:, :, t])


def test_stacked_models_are_independent():
    config = GPICLConfig(d_model=16, layers=1, heads=2, input_dim=8, seq_len=12, num_tasks=[1, 2],
                         biased_fraction=[0.0, 0.0])
    net = gpicl.build_model(config)
    x = torch.randn(2, 3, 12, 18)
    net(x)[0].sum().backward()  # only model 0's output
    grad = net.blocks[0]["qkv_w"].grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0


def test_sizes_state_vs_parameters():
    config = GPICLConfig(d_model=32, layers=2, heads=4, input_dim=8, seq_len=50, lstm_hidden=64, num_tasks=[1])
    t = gpicl.model_size(gpicl.build_model(config))
    assert t["state_size"] == 2 * 2 * 32 * 50
    manual = sum(p.numel() for p in gpicl.build_model(config, 1).parameters())
    assert t["parameters"] == manual
    lstm = gpicl.model_size(gpicl.build_model(dataclasses_replace(config, model="lstm")))
    assert lstm["state_size"] == 128 and lstm["parameters"] == 4 * 64 * (18 + 64 + 2) + 64 * 10 + 10


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_per_model_clipping_clips_each_model_on_its_own():
    config = GPICLConfig(d_model=8, layers=1, heads=2, input_dim=4, seq_len=12, num_tasks=[1, 2])
    net = gpicl.build_model(config)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
        p.grad[1] *= 1e-4  # model 1 has a tiny gradient
    norms = gpicl.per_model_grad_clip_(net, 1.0)
    assert norms[0] > 1 > norms[1]
    after = torch.stack([sum(p.grad[m].pow(2).sum() for p in net.parameters()).sqrt() for m in range(2)])
    assert abs(float(after[0]) - 1.0) < 1e-4 and torch.isclose(after[1], norms[1])


def test_task_ids_pools_inf_and_biased_batches():
    g = torch.Generator().manual_seed(0)
    ids = gpicl.draw_task_ids([4, None, 1000], [0.0, 0.0, 0.5], 64, g, "cpu")
    assert ids.shape == (3, 64)
    assert set(ids[0].tolist()) == {0, 1, 2, 3}
    assert (ids[1] >= gpicl.INF_TASK_OFFSET).all() and (ids[1] < 2 * gpicl.INF_TASK_OFFSET).all()
    assert (ids[2, :32] == gpicl.FIXED_TASK_ID).all() and (ids[2, 32:] < 1000).all() and len(set(ids[2, 32:].tolist())) > 20


def test_a_tiny_model_memorises_one_task(tmp_path):
    tasks = toy_tasks(n=40, side=5, input_dim=16)
    config = GPICLConfig(d_model=32, layers=1, heads=2, ffn_mult=2, input_dim=16, seq_len=20, batch_size=16,
                         steps=60, lr=3e-3, warmup=5, num_tasks=[1], biased_fraction=[0.0])
    state = gpicl.new_train_state(config, "cpu")
    state = gpicl.train(state, config, tasks, progress=False, checkpoint=tmp_path / "c.pt", log_every=10)
    losses = [row[0] for row in state.history["loss"]]
    assert state.step == 60 and len(losses) == 6
    assert losses[0] > 1.8 and losses[-1] < 0.6 * losses[0], losses
    results = gpicl.evaluate_models(state.model, {"test": tasks, "omniglot": tasks, "digits": tasks}, config,
                                    sequences=16)
    assert results[0]["seen_tasks"]["last_accuracy"] > 0.5  # the memorised task, from its first examples
    assert results[0]["seen_tasks"]["by_position"][0] > 0.3
    resumed = gpicl.load_train_state(tmp_path / "c.pt", config, "cpu")
    assert resumed.step == 60 and resumed.history == state.history


def test_parse_num_tasks():
    assert gpicl.parse_num_tasks("16, 2^10,inf") == [16, 1024, "inf"]
    for bad in ("0", "-3", "abc", "16,16", "", "1.5", "2^60"):
        with pytest.raises(ValueError):
            gpicl.parse_num_tasks(bad)


TINY = ["--d-model", "16", "--layers", "1", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
        "--eval-sequences", "8", "--device", "cpu", "--no-progress", "--smoke-data"]


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_sweep_cli_writes_the_phase_diagram_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    rows = gpicl.main(["sweep", "--num-tasks", "2,inf", "--steps", "12", "--out", str(out), "--keep-weights", "inf",
                       *TINY])
    assert [r["num_tasks"] for r in rows] == [2, "inf"]
    diagram = json.loads((out / "phase_diagram.json").read_text())
    assert diagram["evaluated"] and len(diagram["rows"]) == 2
    for row in diagram["rows"]:
        assert row["steps"] == 12 and row["final_loss"] > 0
        for name in ("seen_tasks", "unseen_tasks", "omniglot", "digits"):
            entry = row["evaluation"][name]
            assert 0 <= entry["last_accuracy"] <= 1 and len(entry["by_position"]) == 16 and entry["sequences"] == 8
    for name in ("config.json", "checkpoint.pt", "phase_diagram.md", "tasks_2/history.json", "tasks_2/results.json",
                 "tasks_inf/results.md", "tasks_inf/weights.pt"):
        assert (out / name).is_file(), name
    assert not (out / "tasks_2" / "weights.pt").exists()
    assert "| inf |" in (out / "phase_diagram.md").read_text()

    rows = gpicl.main(["sweep", "--out", str(out), "--resume", "--steps", "20", "--device", "cpu", "--no-progress",
                       "--smoke-data", "--eval-sequences", "8"])
    assert [r["steps"] for r in rows] == [20, 20]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["steps"] == 20 and config["config"]["d_model"] == 16
    assert len(config["later_commands"]) == 1 and "--num-tasks 2,inf" in config["command"]
    history = json.loads((out / "tasks_inf" / "history.json").read_text())
    assert history["step"] == [10, 12, 20]  # resumed at 12, logged at 20
    assert "tasks_inf" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--num-tasks", "0"], ["--num-tasks", "lots"], ["--num-tasks", "4,4"],
                                 ["--num-tasks", "4", "--biased-fraction", "1.5"], ["--num-tasks", "4", "--steps", "-1"],
                                 ["--num-tasks", "4", "--device", "nonsense"]])
def test_sweep_cli_rejects_bad_input_and_writes_nothing(tmp_path, capsys, bad):
    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as error:
        gpicl.main(["sweep", "--out", str(out), *TINY[:-4], *bad])
    assert error.value.code == 2
    assert not out.exists()
    assert "error" in capsys.readouterr().err


def test_resume_without_a_run_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        gpicl.main(["sweep", "--out", str(tmp_path / "none"), "--resume", "--device", "cpu"])
    assert not (tmp_path / "none").exists()


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_a_run_stopped_by_its_time_limit_still_writes_results(tmp_path):
    out = tmp_path / "short"
    rows = gpicl.main(["train", "--num-tasks", "inf", "--pair-tokens", "--steps", "100000", "--max-minutes", "0.002",
                       "--out", str(out), "--checkpoint-dir", str(tmp_path / "ckpt"), *TINY])
    assert 0 < rows[0]["steps"] < 100000 and rows[0]["evaluation"]["unseen_tasks"]["sequences"] == 8
    diagram = json.loads((out / "phase_diagram.json").read_text())
    assert diagram["evaluated"] and diagram["rows"][0]["num_tasks"] == "inf"
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file() and not (out / "checkpoint.pt").exists()
    assert json.loads((out / "config.json").read_text())["config"]["pair_tokens"] is True


# ---------------------------------------------------------------- notebook 08: shipped runs, traces, the widget


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_load_model_restores_one_model_of_a_stack(tmp_path, model):
    config = GPICLConfig(model=model, d_model=16, layers=1, heads=2, lstm_hidden=8, input_dim=8, seq_len=12,
                         num_tasks=[4, gpicl.INF], biased_fraction=[0.0, 0.0], pair_tokens=model == "transformer")
    state = gpicl.new_train_state(config, "cpu")
    names = ["tasks_4", "tasks_inf"]
    gpicl.write_results(tmp_path, state, config, None, {}, names, keep_weights={"inf"})
    assert not (tmp_path / "tasks_4" / "weights.pt").exists()
    single, loaded_config = gpicl.load_model(tmp_path / "tasks_inf" / "weights.pt")
    assert loaded_config == config and single.num_models == 1 and not single.training
    x = torch.randn(2, 3, 12, 18)
    with torch.no_grad():
        expected = state.model.eval()(x)[1]
        got = single(x[1:])[0]
    assert torch.allclose(got, expected, atol=0.1)  # the weights went through bf16


def test_prediction_trace_is_causal_deterministic_and_drawn(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = toy_tasks(n=60, side=5, input_dim=8)
    config = GPICLConfig(d_model=16, layers=1, heads=2, input_dim=8, seq_len=20, num_tasks=[1, 2],
                         biased_fraction=[0.0, 0.0], pair_tokens=True)
    torch.manual_seed(0)
    net = gpicl.build_model(config)
    a = gpicl.prediction_trace(net, tasks, task_id=5, seed=1, model_index=1)
    b = gpicl.prediction_trace(net, tasks, task_id=5, seed=1, model_index=1)
    assert torch.equal(a.probabilities, b.probabilities) and torch.equal(a.example_indices, b.example_indices)
    assert a.probabilities.shape == (20, 10) and torch.allclose(a.probabilities.sum(-1), torch.ones(20))
    assert torch.equal(a.targets, gpicl.label_permutations(torch.tensor([5]), 10)[0][tasks.labels[a.example_indices]])
    assert a.correct.dtype == torch.bool and a.correct.shape == (20,)
    other = gpicl.prediction_trace(net, tasks, task_id=5, seed=1, model_index=0)
    assert not torch.allclose(other.probabilities, a.probabilities)
    shorter = gpicl.prediction_trace(net, tasks, task_id=5, seed=1, seq_len=12, model_index=1)  # causal: prefix
    assert torch.allclose(shorter.probabilities, a.probabilities[:12], atol=1e-5)
    images = torch.rand(60, 1, 5, 5)
    for step in (0, 7, 19, 100):  # 100 is clamped to the last step
        fig = gpicl.trace_figure(a, images, step)
        assert len(fig.axes) == 8 + 2
        plt.close(fig)


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_load_run_reads_what_the_sweep_wrote(tmp_path):
    out = tmp_path / "sweep"
    gpicl.main(["sweep", "--num-tasks", "2,inf", "--steps", "12", "--out", str(out), "--keep-weights", "inf", *TINY])
    run = gpicl.load_run(out)
    assert run["evaluated"] and [r["num_tasks"] for r in run["rows"]] == [2, "inf"]
    assert set(run["histories"]) == {"tasks_2", "tasks_inf"} and run["histories"]["tasks_2"]["step"] == [10, 12]
    assert run["config"]["d_model"] == 16 and "--num-tasks 2,inf" in run["command"]
    model, config = gpicl.load_model(out / "tasks_inf" / "weights.pt")
    assert config.seq_len == 16 and model.num_models == 1
    # weights decided on afterwards: from the checkpoint, the same as --keep-weights would have written
    assert not (out / "tasks_2" / "weights.pt").exists()
    path = gpicl.extract_weights(out / "checkpoint.pt", out, 2)
    assert path == out / "tasks_2" / "weights.pt"
    kept = torch.load(out / "tasks_inf" / "weights.pt", weights_only=True)
    again = torch.load(gpicl.extract_weights(out / "checkpoint.pt", tmp_path / "again", "inf"), weights_only=True)
    assert kept["model_index"] == again["model_index"] == 1
    assert all(torch.equal(kept["state_dict"][k], again["state_dict"][k]) for k in kept["state_dict"])
    assert torch.load(path, weights_only=True)["model_index"] == 0
    with pytest.raises(ValueError, match="not 16"):
        gpicl.extract_weights(out / "checkpoint.pt", out, 16)


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_omniglot_meta_training_keeps_every_evaluation_set_out_of_training():
    """--train-dataset omniglot: trained on background characters only; its "test" characters, the
    evaluation alphabets and MNIST are never in "train" (compared image by image)."""
    from course_lib.data import omniglot_splits

    config = GPICLConfig(train_dataset="omniglot", d_model=16, layers=1, heads=2, seq_len=16, num_classes=10)
    data = gpicl.load_task_data(config, "cpu")
    assert set(data) >= {"train", "test", "omniglot", "mnist"}
    background = omniglot_splits("lake", rotations=False)["train"]
    assert data["train"].dataset_classes + data["test"].dataset_classes == background.num_classes
    assert data["test"].dataset_classes == gpicl.OMNIGLOT_HELD_OUT_CHARACTERS
    assert len(data["mnist"]) == 10_000

    def rows(tasks):  # the standardised pixels, undone to the raw images' bytes
        mean, std = tasks.stats
        return {bytes(r) for r in (tasks.inputs * max(std, 1e-6) + mean).mul(255).round().to(torch.uint8).numpy()}

    train = rows(data["train"])
    for name in ("test", "omniglot"):
        assert not train & rows(data[name]), f"{name} images are in the training data"
    assert data["test"].stats == data["train"].stats  # held-out characters standardised like training
    tokens, targets = data["train"].sample_batch(torch.arange(4), 16, torch.Generator().manual_seed(0))
    assert tokens.shape == (4, 16, 32 + 10) and targets.max() < 10


def test_an_unknown_training_dataset_is_rejected_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as error:
        gpicl.main(["train", "--train-dataset", "cifar", "--out", str(out)])
    assert error.value.code == 2 and not out.exists()
    assert "--train-dataset" in capsys.readouterr().err
