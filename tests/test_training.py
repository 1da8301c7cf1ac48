"""course_lib.training: History, train_loop, train_classifier and checkpoints."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import training
from course_lib.data import LabelledImages
from course_lib.models import MLP, Conv4
from course_lib.training import CheckpointMismatchError, History, load_checkpoint, save_checkpoint

# --------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------


def test_history_log_getitem_last():
    """log() appends (step, value) per metric; [] returns steps and values; last() the latest."""
    history = History()
    history.log(0, loss=2.0, accuracy=0.1)
    history.log(1, loss=1.5)
    history.log(5, loss=torch.tensor(0.5), accuracy=0.9)
    assert history["loss"] == ([0, 1, 5], [2.0, 1.5, 0.5])
    assert history["accuracy"] == ([0, 5], [0.1, 0.9])
    assert history.last("loss") == 0.5
    assert "loss" in history and "other" not in history
    assert history.keys() == ["loss", "accuracy"]
    assert all(isinstance(v, float) for v in history["loss"][1])


def test_history_missing_metric_names_recorded_ones():
    """Asking for an unknown metric is a KeyError listing the recorded metrics."""
    history = History()
    history.log(0, loss=1.0)
    with pytest.raises(KeyError, match="loss"):
        history["accuracy"]


def test_history_state_dict_round_trip():
    """from_state_dict(state_dict()) gives back the same records, through a weights_only torch.load."""
    history = History()
    for step in range(4):
        history.log(step, loss=1.0 / (step + 1), accuracy=step / 4)
    state = history.state_dict()
    assert state["loss"][1] == [1, 0.5]
    restored = History.from_state_dict(state)
    assert restored.records == history.records
    assert restored["accuracy"] == history["accuracy"]


# --------------------------------------------------------------------------
# train_loop
# --------------------------------------------------------------------------


def test_train_loop_calls_step_for_every_step_and_logs_it():
    """step(i) runs for i = 0..steps-1 and what it returns is logged at step i."""
    calls = []

    def step(i):
        calls.append(i)
        return {"loss": 10.0 - i}

    history = training.train_loop(step, 7, progress=False)
    assert calls == list(range(7))
    assert history["loss"] == (list(range(7)), [10.0 - i for i in range(7)])


def test_train_loop_evaluates_every_eval_every_and_at_the_last_step():
    """evaluate() runs when (i+1) % eval_every == 0 and after the last step, logged at that step."""
    evaluated_after = []
    calls = []

    def step(i):
        calls.append(i)
        return {"loss": float(i)}

    def evaluate():
        evaluated_after.append(calls[-1])
        return {"held_out": float(len(evaluated_after))}

    history = training.train_loop(step, 10, evaluate=evaluate, eval_every=4, progress=False)
    assert evaluated_after == [3, 7, 9]
    assert history["held_out"] == ([3, 7, 9], [1.0, 2.0, 3.0])


def test_train_loop_without_eval_every_evaluates_once_at_the_end():
    """With evaluate but no eval_every, the evaluation runs once, after the last step."""
    evaluations = []
    training.train_loop(lambda i: {"loss": 0.0}, 5, evaluate=lambda: evaluations.append(1) or {"x": 1.0},
                        progress=False)
    assert evaluations == [1]


def test_train_loop_resumes_from_start_step():
    """start_step skips the steps already done and appends to the given history."""
    history = History()
    history.log(0, loss=5.0)
    history.log(1, loss=4.0)
    calls, evaluated_after = [], []

    def step(i):
        calls.append(i)
        return {"loss": 3.0}

    def evaluate():
        evaluated_after.append(calls[-1])
        return {"held_out": 1.0}

    result = training.train_loop(step, 6, evaluate=evaluate, eval_every=2, history=history, start_step=2,
                                 progress=False)
    assert calls == [2, 3, 4, 5]
    assert evaluated_after == [3, 5]
    assert result is history
    assert history["loss"][0] == [0, 1, 2, 3, 4, 5]


def test_train_loop_stops_when_max_seconds_is_used_up():
    """With a time budget the loop stops before the step that would start late, and says where."""
    import time

    calls = []

    def slow_step(i):
        calls.append(i)
        time.sleep(0.05)
        return {"loss": 1.0}

    history = training.train_loop(slow_step, 1000, start_step=3, progress=False, max_seconds=0.12)
    assert 2 <= len(calls) <= 5, calls
    assert calls == list(range(3, 3 + len(calls)))
    assert history.steps_done == 3 + len(calls)
    full = training.train_loop(lambda i: {"loss": 0.0}, 4, progress=False, max_seconds=60)
    assert full.steps_done == 4


def test_train_loop_zero_steps_and_invalid_arguments():
    """steps=0 runs nothing; negative steps or start_step are ValueErrors."""
    calls = []
    history = training.train_loop(lambda i: calls.append(i) or {}, 0, progress=False)
    assert calls == [] and history.keys() == []
    with pytest.raises(ValueError):
        training.train_loop(lambda i: {}, -1, progress=False)
    with pytest.raises(ValueError):
        training.train_loop(lambda i: {}, 3, start_step=-1, progress=False)


# --------------------------------------------------------------------------
# train_classifier
# --------------------------------------------------------------------------


def blobs(n_per_class: int, seed: int) -> LabelledImages:
    """Three well-separated 2-D Gaussian blobs, as [n, 1, 1, 2] 'images'."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 2.0], [0.0, -3.0]])
    labels = torch.arange(3).repeat_interleave(n_per_class)
    points = centres[labels] + 0.5 * torch.randn(len(labels), 2, generator=generator)
    return LabelledImages(points.view(-1, 1, 1, 2), labels, ["a", "b", "c"])


def test_train_classifier_learns_separable_data():
    """SGD on cross-entropy reaches near-perfect accuracy on separable blobs, loss decreasing."""
    torch.manual_seed(0)
    model = MLP(2, (16,), 3)
    train, held_out = blobs(50, seed=1), blobs(30, seed=2)
    history = training.train_classifier(
        model, train, steps=150, device="cpu", lr=0.1, batch_size=32, held_out=held_out, eval_every=50,
        generator=torch.Generator().manual_seed(0), progress=False,
    )
    losses = history["loss"][1]
    assert len(losses) == 150
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:20])
    assert history["held_out_accuracy"][0] == [49, 99, 149]
    assert history.last("held_out_accuracy") >= 0.95
    assert training.classification_accuracy(model, held_out, "cpu") >= 0.95
    assert model.training  # left in training mode


def test_classification_accuracy_counts_correct_predictions():
    """classification_accuracy = (number of argmax hits) / n, over several batches, mode restored."""
    data = LabelledImages(torch.zeros(5, 1, 1, 1), torch.tensor([0, 1, 1, 0, 1]), ["a", "b"])

    class AlwaysOne(nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0]]).expand(len(x), 2)

    model = AlwaysOne().eval()
    assert training.classification_accuracy(model, data, "cpu", batch_size=2) == pytest.approx(3 / 5)
    assert not model.training


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_one_sgd_step_matches_hand_computed_update():
    """One train_classifier step on a linear model equals W -= lr (p - e_y) x^T, b -= lr (p - e_y)."""
    W0 = np.array([[0.1, -0.2], [0.3, 0.0], [-0.1, 0.2]])
    b0 = np.array([0.0, 0.1, -0.1])
    x, y, lr = np.array([1.0, 2.0]), 2, 0.5
    # all examples identical: whatever minibatch is drawn, the mean gradient is this one's
    data = LabelledImages(torch.tensor(x, dtype=torch.float32).view(1, 1, 1, 2).repeat(4, 1, 1, 1),
                          torch.full((4,), y), ["a", "b", "c"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(W0))
        model[1].bias.copy_(torch.tensor(b0))

    history = training.train_classifier(model, data, steps=1, device="cpu", lr=lr, progress=False)

    p = softmax(W0 @ x + b0)
    residual = p - np.eye(3)[y]
    expected_W = W0 - lr * np.outer(residual, x)
    expected_b = b0 - lr * residual
    np.testing.assert_allclose(model[1].weight.detach().numpy(), expected_W, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model[1].bias.detach().numpy(), expected_b, rtol=0, atol=1e-6)
    assert history.last("loss") == pytest.approx(-math.log(p[y]), abs=1e-6)
    assert history.last("train_accuracy") == float(np.argmax(p) == y)


def test_two_momentum_steps_match_hand_computed_update():
    """With momentum m, the second step moves by lr (m g1 + g2) (PyTorch's SGD convention)."""
    W0, b0 = np.array([[0.2, -0.1], [0.0, 0.3]]), np.array([0.05, -0.05])
    x, y, lr, m = np.array([0.5, -1.0]), 0, 0.3, 0.9
    data = LabelledImages(torch.tensor(x, dtype=torch.float32).view(1, 1, 1, 2).repeat(3, 1, 1, 1),
                          torch.full((3,), y), ["a", "b"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(W0))
        model[1].bias.copy_(torch.tensor(b0))
    training.train_classifier(model, data, steps=2, device="cpu", lr=lr, momentum=m, progress=False)

    def gradients(W, b):
        residual = softmax(W @ x + b) - np.eye(2)[y]
        return np.outer(residual, x), residual

    gW1, gb1 = gradients(W0, b0)
    W1, b1 = W0 - lr * gW1, b0 - lr * gb1
    gW2, gb2 = gradients(W1, b1)
    W2, b2 = W1 - lr * (m * gW1 + gW2), b1 - lr * (m * gb1 + gb2)
    np.testing.assert_allclose(model[1].weight.detach().numpy(), W2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model[1].bias.detach().numpy(), b2, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    hidden: tuple = (8,)
    lr: float = 0.01
    name: str = "mlp"


def make_mlp(hidden=(8,), seed=0) -> MLP:
    torch.manual_seed(seed)
    return MLP(4, hidden, 3)


def trained_mlp_and_optimizer():
    model = make_mlp(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 4, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, optimizer


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_round_trip(tmp_path):
    """save/load restores weights, config, history, step, results and the optimizer state."""
    model, optimizer = trained_mlp_and_optimizer()
    history = History()
    history.log(0, loss=1.0)
    history.log(3, loss=0.5, accuracy=0.75)
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, Config(), history=history, optimizer=optimizer,
                           step=3, results={"accuracy": 0.75})
    assert path == tmp_path / "run" / "model.pt"

    fresh = make_mlp(seed=123)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.5)
    assert not same_state(snapshot(fresh), snapshot(model))
    payload = load_checkpoint(path, fresh, Config(), optimizer=fresh_optimizer)

    assert same_state(snapshot(fresh), snapshot(model))
    assert payload["config"] == dataclasses.asdict(Config())
    assert isinstance(payload["history"], History)
    assert payload["history"].records == history.records
    assert payload["step"] == 3
    assert payload["results"] == {"accuracy": 0.75}
    restored, original = fresh_optimizer.state_dict(), optimizer.state_dict()
    assert restored["param_groups"][0]["lr"] == 0.01
    assert restored["state"].keys() == original["state"].keys() and len(original["state"]) > 0
    for key, state in original["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(restored["state"][key][name]), torch.as_tensor(value)), name


def test_checkpoint_round_trip_with_batch_norm_buffers(tmp_path):
    """Conv4's batch-norm running statistics (buffers) survive the round trip; dict configs work."""
    model = Conv4(hidden=8, num_classes=5)
    model.train()
    model(torch.rand(4, 1, 28, 28))  # updates running_mean / running_var / num_batches_tracked
    path = save_checkpoint(tmp_path / "conv.pt", model, {"hidden": 8, "num_classes": 5})
    fresh = Conv4(hidden=8, num_classes=5)
    load_checkpoint(path, fresh, {"hidden": 8, "num_classes": 5})
    assert same_state(snapshot(fresh), snapshot(model))
    assert int(fresh.state_dict()["features.0.1.num_batches_tracked"]) == 1


def test_checkpoint_loads_with_weights_only(tmp_path):
    """The file is a plain payload that torch.load(weights_only=True) accepts."""
    model, optimizer = trained_mlp_and_optimizer()
    path = save_checkpoint(tmp_path / "model.pt", model, Config(), optimizer=optimizer, step=1)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == training.CHECKPOINT_FORMAT
    assert payload["model_class"] == "MLP"
    assert payload["config"] == {"hidden": (8,), "lr": 0.01, "name": "mlp"}
    assert same_state(payload["state_dict"], snapshot(model))


def test_save_checkpoint_leaves_no_temporary_files(tmp_path):
    """Saving (twice, overwriting) leaves exactly the checkpoint file, no .part files."""
    model, _ = trained_mlp_and_optimizer()
    save_checkpoint(tmp_path / "model.pt", model, Config())
    save_checkpoint(tmp_path / "model.pt", model, Config(), step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == 2


def test_save_checkpoint_rejects_non_plain_config(tmp_path):
    """A config that is neither a dataclass instance nor a dict is a TypeError, and nothing is written."""
    model, _ = trained_mlp_and_optimizer()
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "model.pt", model, ["hidden", 8])
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "model.pt", model, Config)  # the class, not an instance
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def saved_mlp(tmp_path):
    model, _ = trained_mlp_and_optimizer()
    return save_checkpoint(tmp_path / "mlp.pt", model, Config())


def test_load_into_another_model_class_is_refused(saved_mlp):
    """An MLP checkpoint loaded into a Conv4: CheckpointMismatchError naming both, model untouched."""
    target = Conv4(hidden=8)
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(saved_mlp, target)
    assert "MLP" in str(info.value) and "Conv4" in str(info.value)
    assert same_state(snapshot(target), before)


def test_load_with_another_config_names_the_differing_key(saved_mlp):
    """A different config value: CheckpointMismatchError naming the key and both values, model untouched."""
    target = make_mlp(seed=5)
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(saved_mlp, target, Config(lr=0.5))
    message = str(info.value).replace(str(saved_mlp), "<path>")
    assert "lr" in message and "0.01" in message and "0.5" in message
    assert "hidden" not in message and "name" not in message  # only the differing key
    assert same_state(snapshot(target), before)


def test_load_with_an_extra_config_key_is_refused(saved_mlp):
    """A key present only in the caller's config counts as a difference."""
    target = make_mlp(seed=5)
    with pytest.raises(CheckpointMismatchError, match="dropout"):
        load_checkpoint(saved_mlp, target, {**dataclasses.asdict(Config()), "dropout": 0.1})


def test_load_into_another_architecture_is_refused(saved_mlp):
    """Same class, different hidden size: CheckpointMismatchError with the shapes, model untouched."""
    target = make_mlp(hidden=(16,), seed=5)
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(saved_mlp, target)
    message = str(info.value)
    assert "(8, 4)" in message and "(16, 4)" in message
    assert "architecture" in message
    assert same_state(snapshot(target), before)


def test_load_into_a_deeper_model_reports_missing_keys(saved_mlp):
    """A model with extra layers: CheckpointMismatchError listing missing parameters, model untouched."""
    target = make_mlp(hidden=(8, 8), seed=5)
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError, match="missing"):
        load_checkpoint(saved_mlp, target)
    assert same_state(snapshot(target), before)


def test_truncated_checkpoint_is_a_mismatch_error(saved_mlp):
    """A truncated file raises CheckpointMismatchError (not a pickle/zip traceback); model untouched."""
    raw = saved_mlp.read_bytes()
    saved_mlp.write_bytes(raw[: len(raw) // 2])
    target = make_mlp(seed=5)
    before = snapshot(target)
    with pytest.raises(CheckpointMismatchError, match="not a readable"):
        load_checkpoint(saved_mlp, target, Config())
    assert same_state(snapshot(target), before)


def test_foreign_torch_file_is_a_mismatch_error(tmp_path):
    """A torch file not written by save_checkpoint (a bare state_dict) is refused clearly."""
    model = make_mlp()
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(CheckpointMismatchError, match="save_checkpoint"):
        load_checkpoint(tmp_path / "bare.pt", make_mlp(seed=1))


def test_missing_checkpoint_is_file_not_found(tmp_path):
    """No file at the path: FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt", make_mlp())
