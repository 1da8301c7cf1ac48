"""GPICL (notebook 08): tasks from random projections, causal models, training, and a sweep on the command line."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch

from course_lib import cli, gpicl, gpicl_runs
from course_lib.gpicl import GPICLConfig, ProjectedTasks
from course_lib.runs import train_loop
from course_lib.teaching import gpicl_figures


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
    idx, local = tasks.draw_examples(8, 30, g)
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
                         num_tasks="1,2", pair_tokens=pair)
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
    config = GPICLConfig(d_model=16, layers=1, heads=2, input_dim=8, seq_len=12, num_tasks="1,2")
    net = gpicl.build_model(config)
    x = torch.randn(2, 3, 12, 18)
    net(x)[0].sum().backward()  # only model 0's output
    grad = net.blocks[0]["qkv_w"].grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0


def test_sizes_state_vs_parameters():
    config = GPICLConfig(d_model=32, layers=2, heads=4, input_dim=8, seq_len=50, lstm_hidden=64, num_tasks="1")
    t = gpicl.model_size(gpicl.build_model(config))
    assert t["state_size"] == 2 * 2 * 32 * 50
    manual = sum(p.numel() for p in gpicl.build_model(config, 1).parameters())
    assert t["parameters"] == manual
    lstm = gpicl.model_size(gpicl.build_model(dataclasses.replace(config, model="lstm")))
    assert lstm["state_size"] == 128 and lstm["parameters"] == 4 * 64 * (18 + 64 + 2) + 64 * 10 + 10


def test_per_model_clipping_clips_each_model_on_its_own():
    config = GPICLConfig(d_model=8, layers=1, heads=2, input_dim=4, seq_len=12, num_tasks="1,2")
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
    ids = gpicl.draw_task_ids([4, "inf", 1000], [0.0, 0.0, 0.5], 64, g, "cpu")
    assert ids.shape == (3, 64)
    assert set(ids[0].tolist()) == {0, 1, 2, 3}
    assert (ids[1] >= gpicl.INF_TASK_OFFSET).all() and (ids[1] < 2 * gpicl.INF_TASK_OFFSET).all()
    assert (ids[2, :32] == gpicl.FIXED_TASK_ID).all() and (ids[2, 32:] < 1000).all()
    assert len(set(ids[2, 32:].tolist())) > 20


def test_a_tiny_model_memorises_one_task():
    tasks = toy_tasks(n=40, side=5, input_dim=16)
    config = GPICLConfig(d_model=32, layers=1, heads=2, ffn_mult=2, input_dim=16, seq_len=20, batch_size=16,
                         steps=60, meta_lr=3e-3, warmup=5, num_tasks="1")
    torch.manual_seed(0)
    model = gpicl.build(config)
    history = train_loop(gpicl.trainer(model, config, {"train": tasks}).step, config.steps, progress=False)
    steps, losses = history["loss_tasks_1"]
    assert steps == list(range(60)) and "train_acc_tasks_1" in history
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 1.8 and last < 0.6 * first, losses
    results = gpicl.evaluate_models(model, {"test": tasks, "omniglot": tasks, "digits": tasks}, config, sequences=16)
    assert results[0]["seen_tasks"]["last_accuracy"] > 0.5  # the memorised task, from its first examples
    assert results[0]["seen_tasks"]["by_position"][0] > 0.3


def test_parse_num_tasks_and_the_config_of_a_sweep():
    assert gpicl.parse_num_tasks("16, 2^10,inf") == [16, 1024, "inf"]
    for bad in ("0", "-3", "abc", "16,16", "", "1.5", "2^60"):
        with pytest.raises(ValueError):
            gpicl.parse_num_tasks(bad)
    config = GPICLConfig(num_tasks="4096,4096", biased_fraction="0,0.25")  # the plateau run: one pool, two batches
    assert config.run_names == ["tasks_4096", "tasks_4096_biased0.25"] and config.biased_fractions == [0.0, 0.25]
    old = GPICLConfig(num_tasks=[4, 2**10, "inf"], biased_fraction=[0.0, 0.0, 0.0])  # as older run folders store it
    assert old.num_tasks == "4,1024,inf" and old.biased_fraction == "0" and old.pools == [4, 1024, "inf"]
    assert dataclasses.replace(old) == old


TINY = ["--d-model", "16", "--layers", "1", "--heads", "2", "--seq-len", "16", "--batch-size", "4",
        "--test-episodes", "8", "--device", "cpu", "--no-progress", "--smoke-data"]


def train(*argv):
    return cli.main(["train", "gpicl", *map(str, argv)])


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_a_sweep_is_one_run_folder_and_writes_its_per_model_folders(tmp_path, capsys):
    out = tmp_path / "sweep"
    entries = train("--num-tasks", "2,inf", "--steps", 12, "--out", out, *TINY)
    assert list(entries) == ["tasks_2", "tasks_inf"] and [r["num_tasks"] for r in entries.values()] == [2, "inf"]
    for name in ("config.json", "checkpoint.pt", "history.json", "results.json", "results.md"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "gpicl" and results["steps_done"] == 12 and results["test_episodes"] == 8
    for row in results["results"].values():
        for name in ("seen_tasks", "unseen_tasks", "omniglot", "digits"):
            entry = row["evaluation"][name]
            assert 0 <= entry["last_accuracy"] <= 1 and len(entry["by_position"]) == 16 and entry["sequences"] == 8
    assert "| inf |" in (out / "results.md").read_text() and "| inf |" in capsys.readouterr().out  # the summary

    rows = gpicl_runs.write_model_folders(out, keep_weights=["inf"])
    assert [r["steps"] for r in rows] == [12, 12] and all(r["final_loss"] > 0 for r in rows)
    for name in ("phase_diagram.json", "phase_diagram.md", "tasks_2/history.json", "tasks_2/results.json",
                 "tasks_inf/results.md", "tasks_inf/weights.pt"):
        assert (out / name).is_file(), name
    assert not (out / "tasks_2" / "weights.pt").exists()
    run = gpicl_runs.load_run(out)
    assert run["evaluated"] and [r["num_tasks"] for r in run["rows"]] == [2, "inf"]
    assert set(run["histories"]) == {"tasks_2", "tasks_inf"} and run["histories"]["tasks_2"]["step"] == [10, 12]
    assert run["config"]["d_model"] == 16 and "--num-tasks 2,inf" in run["command"]
    model, config = gpicl_runs.load_model(out / "tasks_inf" / "weights.pt")
    assert config.seq_len == 16 and model.num_models == 1
    # weights decided on afterwards: from the checkpoint, the same as keep_weights would have written
    path = gpicl_runs.extract_weights(out / "checkpoint.pt", out, 2)
    assert path == out / "tasks_2" / "weights.pt"
    kept = torch.load(out / "tasks_inf" / "weights.pt", weights_only=True)
    again = torch.load(gpicl_runs.extract_weights(out / "checkpoint.pt", tmp_path / "again", "inf"), weights_only=True)
    assert kept["model_index"] == again["model_index"] == 1
    assert all(torch.equal(kept["state_dict"][k], again["state_dict"][k]) for k in kept["state_dict"])
    assert torch.load(path, weights_only=True)["model_index"] == 0
    with pytest.raises(ValueError, match="not 16"):
        gpicl_runs.extract_weights(out / "checkpoint.pt", out, 16)


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_a_resumed_sweep_reports_the_same_final_loss_as_a_straight_one(tmp_path):
    """The issue "a run is never lost": same weights, but a resumed run reported another final loss."""
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    train("--num-tasks", "2,inf", "--steps", 14, "--out", straight, *TINY)
    train("--num-tasks", "2,inf", "--steps", 7, "--out", halves, *TINY)  # stops inside a 10-step window
    train("--steps", 14, "--out", halves, "--resume", "--test-episodes", 8, "--device", "cpu", "--no-progress",
          "--smoke-data")
    a, b = gpicl_runs.load_run(straight), gpicl_runs.load_run(halves)
    assert [r["final_loss"] for r in a["rows"]] == [r["final_loss"] for r in b["rows"]]
    assert a["histories"] == b["histories"] and a["histories"]["tasks_inf"]["step"] == [10, 14]
    assert [r["evaluation"] for r in a["rows"]] == [r["evaluation"] for r in b["rows"]]


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_a_truncated_checkpoint_under_resume_is_an_error_that_names_it(tmp_path):
    out = tmp_path / "run"
    train("--num-tasks", "2", "--steps", 2, "--out", out, *TINY)
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    record = (out / "config.json").read_text()
    with pytest.raises((SystemExit, ValueError), match=re.escape(str(checkpoint))):
        train("--steps", 4, "--out", out, "--resume", *TINY)
    assert (out / "config.json").read_text() == record


@pytest.mark.parametrize("bad, match", [
    (["--num-tasks", "0"], "at least 1 task"), (["--num-tasks", "lots"], "not a positive integer"),
    (["--num-tasks", "4,4"], "names one model twice"), (["--biased-fraction", "1.5"], r"in \[0, 1\)"),
    (["--num-tasks", "4,8", "--biased-fraction", "0,0.1,0.2"], "3 values for 2 models"),
    (["--steps", "-1"], "steps must be >= 0"), (["--seq-len", "10"], "seq_len must be more than 10"),
    (["--heads", "3"], "not divisible"), (["--model", "gru"], "model must be one of"),
    (["--train-dataset", "cifar"], "train_dataset must be one of"), (["--resume"], "holds no checkpoint.pt"),
])
def test_bad_options_are_usage_errors_before_anything_is_loaded_or_written(tmp_path, monkeypatch, bad, match):
    monkeypatch.setattr(gpicl, "load_data", lambda *a, **k: pytest.fail("data was loaded"))
    out = tmp_path / "bad"
    with pytest.raises(SystemExit, match=match):
        train("--out", out, *TINY, *bad)
    assert not out.exists()


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_a_run_stopped_by_its_time_limit_still_writes_results(tmp_path):
    out = tmp_path / "short"
    entries = train("--num-tasks", "inf", "--pair-tokens", "--steps", 100000, "--max-minutes", 0.0002, "--out", out,
                    *TINY)
    results = json.loads((out / "results.json").read_text())
    assert 0 < results["steps_done"] < 100000 and entries["tasks_inf"]["evaluation"]["unseen_tasks"]["sequences"] == 8
    assert json.loads((out / "config.json").read_text())["config"]["pair_tokens"] is True
    assert gpicl_runs.load_run(out)["rows"][0]["steps"] == results["steps_done"]


# ---------------------------------------------------------------- notebook 08: shipped runs, traces, the widget


@pytest.mark.parametrize("model", ["transformer", "lstm"])
def test_load_model_restores_one_model_of_a_stack(tmp_path, model):
    config = GPICLConfig(model=model, d_model=16, layers=1, heads=2, lstm_hidden=8, input_dim=8, seq_len=12,
                         num_tasks="4,inf", pair_tokens=model == "transformer")
    stack = gpicl.build(config)
    gpicl_runs.save_weights(stack, config, 1, tmp_path / "tasks_inf" / "weights.pt")
    single, loaded_config = gpicl_runs.load_model(tmp_path / "tasks_inf" / "weights.pt")
    assert loaded_config == config and single.num_models == 1 and not single.training
    x = torch.randn(2, 3, 12, 18)
    with torch.no_grad():
        expected = stack.eval()(x)[1]
        got = single(x[1:])[0]
        exact = gpicl.single_model(stack, 1)(x[1:])[0]
    assert torch.allclose(got, expected, atol=0.1)  # the weights went through bf16
    assert torch.allclose(exact, expected, atol=1e-5)


def test_the_few_shot_face_answers_an_episode_with_one_model_of_a_stack():
    config = GPICLConfig(d_model=16, layers=1, heads=2, input_dim=8, seq_len=12, num_tasks="4,inf")
    predict = gpicl.predictor(gpicl.build(config), model_index=1)
    support_x, query_x = torch.rand(6, 1, 5, 5), torch.rand(4, 1, 5, 5)
    scores = predict(support_x, torch.tensor([0, 1, 2, 0, 1, 2]), query_x)
    assert scores.shape == (4, 3) and torch.isfinite(scores).all()


def test_prediction_trace_is_causal_deterministic_and_drawn(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = toy_tasks(n=60, side=5, input_dim=8)
    config = GPICLConfig(d_model=16, layers=1, heads=2, input_dim=8, seq_len=20, num_tasks="1,2", pair_tokens=True)
    torch.manual_seed(0)
    net = gpicl.build_model(config)
    a = gpicl_figures.prediction_trace(net, tasks, task_id=5, seed=1, model_index=1)
    b = gpicl_figures.prediction_trace(net, tasks, task_id=5, seed=1, model_index=1)
    assert torch.equal(a.probabilities, b.probabilities) and torch.equal(a.example_indices, b.example_indices)
    assert a.probabilities.shape == (20, 10) and torch.allclose(a.probabilities.sum(-1), torch.ones(20))
    assert torch.equal(a.targets, gpicl.label_permutations(torch.tensor([5]), 10)[0][tasks.labels[a.example_indices]])
    assert a.correct.dtype == torch.bool and a.correct.shape == (20,)
    other = gpicl_figures.prediction_trace(net, tasks, task_id=5, seed=1, model_index=0)
    assert not torch.allclose(other.probabilities, a.probabilities)
    shorter = gpicl_figures.prediction_trace(net, tasks, task_id=5, seed=1, seq_len=12, model_index=1)  # a prefix
    assert torch.allclose(shorter.probabilities, a.probabilities[:12], atol=1e-5)
    images = torch.rand(60, 1, 5, 5)
    for step in (0, 7, 19, 100):  # 100 is clamped to the last step
        fig = gpicl_figures.trace_figure(a, images, step)
        assert len(fig.axes) == 8 + 2
        plt.close(fig)


def test_the_shipped_sweep_loads_as_notebook_08_reads_it():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "data" / "gpicl" / "sweep_cpu"
    if not (folder / "phase_diagram.json").is_file():
        pytest.skip("data/gpicl/sweep_cpu is not in this checkout")
    run = gpicl_runs.load_run(folder)
    config = GPICLConfig(**run["config"])  # stored as lists by the former command line
    assert config.pools == [4, 16, 256, 1024, 4096, 16384, 65536, "inf"] and config.pair_tokens
    assert {r["run"] for r in run["rows"]} == set(run["histories"]) and run["rows"][3]["final_loss"] == 1.8502
    model, loaded = gpicl_runs.load_model(folder / "tasks_1024" / "weights.pt")
    assert loaded == config and gpicl.model_size(model)["parameters"] == run["rows"][3]["parameters"]


def test_one_phase_diagram_joins_sweeps_that_differ_only_in_their_pools():
    """Notebook 08's headline diagram: the two batch-128 folders as one sweep of eight pools; the batch-32
    sweep beside them is refused, because the diagram would then mix batch sizes."""
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data" / "gpicl"
    small, large = data / "sweep_cpu_b128_small_pools", data / "sweep_cpu_b128"
    if not (small / "phase_diagram.json").is_file() or not (large / "phase_diagram.json").is_file():
        pytest.skip("the batch-128 sweeps are not in this checkout")
    sweep = gpicl_runs.load_sweep(small, large)
    assert [r["num_tasks"] for r in sweep["rows"]] == [4, 16, 256, 1024, 4096, 16384, 65536, "inf"]
    assert {r["batch_size"] for r in sweep["rows"]} == {128} and len({r["steps"] for r in sweep["rows"]}) == 1
    assert set(sweep["histories"]) == {r["run"] for r in sweep["rows"]}
    assert all(Path(r["folder"]).name == (large.name if pool_is_large else small.name)
               for r, pool_is_large in zip(sweep["rows"], [False] * 5 + [True] * 3))
    with pytest.raises(ValueError, match="batch_size"):
        gpicl_runs.load_sweep(small, data / "sweep_cpu")
    with pytest.raises(ValueError, match="same pool size"):
        gpicl_runs.load_sweep(large, large)


@pytest.mark.real_data("mnist")
@pytest.mark.real_data("omniglot")
def test_omniglot_meta_training_keeps_every_evaluation_set_out_of_training():
    """train_dataset omniglot: trained on background characters only; its "test" characters, the
    evaluation alphabets and MNIST are never in "train" (compared image by image)."""
    from course_lib.data import omniglot_splits

    config = GPICLConfig(train_dataset="omniglot", d_model=16, layers=1, heads=2, seq_len=16, num_classes=10)
    data = gpicl.load_data(config)
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
