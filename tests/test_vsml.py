"""Tests for course_lib.vsml: invariances, gradients, backprop cloning, its runs on the command line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from course_lib import cli, registry, runs, vsml
from course_lib.teaching import vsml_cost, vsml_figures


def tiny_config(**overrides) -> vsml.VSMLConfig:
    base = dict(input_size=4, ways=3, stream_length=6, message_size=4, hidden=5, ticks=2, metarnn_hidden=8)
    base.update(overrides)
    return vsml.VSMLConfig(**base)


def random_state(model, tasks, inputs, outputs, generator):
    h, c = model.initial_state(tasks, inputs, outputs)
    return torch.randn(h.shape, generator=generator).tanh(), torch.randn(c.shape, generator=generator)


def test_permuting_inputs_and_their_cells_changes_nothing():
    torch.manual_seed(0)
    model = vsml.VSMLLearner(tiny_config())
    g = torch.Generator().manual_seed(1)
    state = random_state(model, 2, 7, 3, g)
    x = torch.randn(2, 7, generator=g)
    previous = (torch.randn(2, 3, generator=g), torch.tensor([0, 2]))
    perm = torch.randperm(7, generator=g)
    logits, (h, c) = model.step(state, x, *previous)
    logits_p, (h_p, c_p) = model.step((state[0][:, perm], state[1][:, perm]), x[:, perm], *previous)
    torch.testing.assert_close(logits_p, logits)
    torch.testing.assert_close(h_p, h[:, perm])
    torch.testing.assert_close(c_p, c[:, perm])
    # Whole streams from the zero state: permuting the input features gives the same predictions.
    xs, ys = torch.randn(2, 9, 7, generator=g), torch.randint(0, 3, (2, 9), generator=g)
    torch.testing.assert_close(vsml.run_stream(model, xs[:, :, perm], ys)[0], vsml.run_stream(model, xs, ys)[0])
    # ...while permuting inputs WITHOUT their cells does change the output (the check can fail).
    assert not torch.allclose(model.step(state, x[:, perm], *previous)[0], logits)


def test_permuting_outputs_and_labels_permutes_predictions():
    torch.manual_seed(0)
    model = vsml.VSMLLearner(tiny_config())
    g = torch.Generator().manual_seed(2)
    xs, ys = torch.randn(3, 8, 4, generator=g), torch.randint(0, 3, (3, 8), generator=g)
    perm = torch.tensor([2, 0, 1])
    inverse = torch.argsort(perm)
    logits = vsml.run_stream(model, xs, ys)[0]
    logits_p = vsml.run_stream(model, xs, inverse[ys])[0]  # class k is now called inverse[k]
    torch.testing.assert_close(logits_p[..., inverse], logits)


def test_same_meta_parameters_run_two_input_sizes_on_both_devices():
    torch.manual_seed(0)
    model = vsml.VSMLLearner(tiny_config())
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        model.to(device)
        for inputs, ways in ((4, 3), (11, 3), (6, 5)):
            xs = torch.randn(2, 5, inputs, device=device)
            ys = torch.randint(0, ways, (2, 5), device=device)
            logits = vsml.stream_logits(model, xs, ys, ways)
            assert logits.shape == (2, 5, ways) and logits.device.type == device
            assert torch.isfinite(logits).all()
    # The Meta-RNN, by contrast, has a fixed input size and says so.
    rnn = vsml.MetaRNN(tiny_config(learner="metarnn"))
    with pytest.raises(ValueError, match="built for 4 inputs"):
        vsml.stream_logits(rnn, torch.randn(2, 5, 11), torch.zeros(2, 5, dtype=torch.long), 3)


@pytest.mark.parametrize("mode, layers", [("scratch", 1), ("clone", 1), ("scratch", 2), ("clone", 2)])
def test_meta_gradient_matches_finite_differences(mode, layers):
    torch.manual_seed(0)
    config = tiny_config(mode=mode, input_size=2, ways=2, message_size=2, hidden=2, stream_length=3, layers=layers,
                         hidden_units=2)
    model = vsml.VSMLLearner(config).double()
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in model.named_parameters())
    g = torch.Generator().manual_seed(3)
    xs = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 2, (2, 3), generator=g)

    wrapper = _LossModule(model, mode)

    def loss(*values):  # the meta-loss as a function of the meta-parameters
        return functional_call(wrapper, {f"model.{n}": v for n, v in zip(names, values)}, (xs, ys))

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-5)


class _LossModule(torch.nn.Module):
    def __init__(self, model, mode):
        super().__init__()
        self.model, self.mode = model, mode

    def forward(self, xs, ys):
        if self.mode == "clone":
            return vsml.clone_loss(self.model, xs, ys, 0.5, backward=False)
        return vsml.scratch_loss(self.model, xs, ys, backward=False)[0]


def test_truncated_bptt_gives_the_same_loss_as_full():
    torch.manual_seed(0)
    model = vsml.VSMLLearner(tiny_config())
    xs, ys = torch.randn(3, 10, 4), torch.randint(0, 3, (3, 10))
    full, acc_full = vsml.scratch_loss(model, xs, ys, truncation=None)
    model.zero_grad()
    chunked, acc_chunked = vsml.scratch_loss(model, xs, ys, truncation=3)
    torch.testing.assert_close(chunked, full)
    assert acc_full == acc_chunked


def test_backprop_cloning_tracks_true_sgd():
    """A tiny clone trained for a few hundred steps follows SGD closed-loop on new streams."""
    torch.manual_seed(0)
    config = vsml.VSMLConfig(mode="clone", input_size=4, ways=3, stream_length=20, message_size=4, hidden=8,
                             clone_lr=0.3, meta_lr=1e-2)
    model = vsml.VSMLLearner(config)
    g = torch.Generator().manual_seed(0)

    def streams(n, generator):
        return (torch.randn(n, config.stream_length, config.input_size, generator=generator),
                torch.randint(0, config.ways, (n, config.stream_length), generator=generator))

    test_xs, test_ys = streams(64, torch.Generator().manual_seed(99))
    untrained = vsml.compare_clone_to_sgd(model, test_xs, test_ys, config.clone_lr)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    for _ in range(400):
        xs, ys = streams(32, g)
        vsml.meta_step(model, optimizer, config, xs, ys)
    trained = vsml.compare_clone_to_sgd(model, test_xs, test_ys, config.clone_lr)
    assert untrained["relative_weight_error_final"] > 0.9
    assert trained["relative_weight_error_final"] < 0.45, trained
    assert trained["logit_correlation"] > 0.8, trained


def test_mlp_sgd_reference_matches_torch_autograd():
    """The two-layer teacher is online SGD on an MLP (tanh hidden layer, no biases) as torch.optim runs it."""
    g = torch.Generator().manual_seed(6)
    xs = torch.randn(2, 9, 5, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 3, (2, 9), generator=g)
    start = [torch.randn(5, 4, generator=g, dtype=torch.float64) / 2, torch.randn(4, 3, generator=g, dtype=torch.float64)]
    teacher = vsml.mlp_sgd_trajectory(xs, ys, start, 0.3)
    for s in range(2):
        hidden = torch.nn.Linear(5, 4, bias=False, dtype=torch.float64)
        output = torch.nn.Linear(4, 3, bias=False, dtype=torch.float64)
        with torch.no_grad():
            hidden.weight.copy_(start[0].T)
            output.weight.copy_(start[1].T)
        optimizer = torch.optim.SGD([*hidden.parameters(), *output.parameters()], lr=0.3)
        sent = torch.zeros(4, dtype=torch.float64)
        for t in range(9):
            torch.testing.assert_close(teacher["weights"][0][s, t], hidden.weight.detach().T)
            torch.testing.assert_close(teacher["weights"][1][s, t], output.weight.detach().T)
            torch.testing.assert_close(teacher["input_errors"][0][s, t], sent)
            activation = torch.tanh(hidden(xs[s, t][None]))
            activation.retain_grad()
            logits = output(activation)
            torch.testing.assert_close(teacher["activations"][0][s, t], activation.detach()[0])
            torch.testing.assert_close(teacher["logits"][s, t], logits.detach()[0])
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(logits, ys[s, t][None]).backward()
            sent = activation.grad[0].clone()  # d loss / d (the output layer's input), with W_t
            optimizer.step()
    # One layer from W = 0 is the linear teacher the one-layer clone imitates.
    linear = vsml.mlp_sgd_trajectory(xs, ys, [torch.zeros(5, 3, dtype=torch.float64)], 0.3)
    target_w, target_z = vsml.sgd_trajectory(xs, ys, 3, 0.3)
    torch.testing.assert_close(linear["weights"][0], target_w)
    torch.testing.assert_close(linear["logits"], target_z)
    assert linear["activations"] == [] and linear["input_errors"] == []


# Computed with course_lib.vsml before the learner could stack layers (one VSMLLayer, no ``layers`` field).
OLD_ONE_LAYER = {
    "scratch": {"logits_sum": 272.2965852576019, "logits_abs": 283.55646458379624,
                "logits_first": [-0.06591524977104753, 0.40783589900183, 0.7235654128700709, 2.5410277490843947,
                                 0.40824422697527296, 2.575868707308109, 2.5327831728520613, 1.3412845490190433]},
    "clone": {"logits_sum": 7.6478919339740985, "logits_abs": 48.742981759164486,
              "logits_first": [0.017726212112322757, -0.02953488589596958, 0.42933098842716794, 0.19844497358846838,
                               -0.174189150975465, 0.19498192564522768, 0.139801064569358, 0.08001025249216112],
              "clone_loss": 0.22293725670290354,
              "compare": {"relative_weight_error_final": 0.2018358608177596,
                          "relative_weight_error_mean": 0.17490088274040858, "vsml_accuracy": 0.0833333358168602,
                          "sgd_accuracy": 0.1944444477558136, "logit_correlation": 0.9054565733243928}},
}


@pytest.mark.parametrize("folder", ["scratch", "clone"])
def test_the_one_layer_runs_compute_what_they_computed_before_layers_existed(folder):
    """data/vsml/scratch and clone (config.json without ``layers``) load into the same model and give the
    numbers the single-layer code gave on a fixed float64 stream."""
    path = Path(__file__).resolve().parent.parent / "data" / "vsml" / folder
    if not (path / "checkpoint.pt").is_file():
        pytest.skip(f"data/vsml/{folder} is not in this checkout")
    assert "layers" not in json.loads((path / "config.json").read_text())["config"]  # an old config
    model, _ = registry.load(path)
    assert model.config.layers == 1 and len(model.layers) == 1
    model = model.double()
    g = torch.Generator().manual_seed(2024)
    xs = torch.randn(3, 12, 16, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 5, (3, 12), generator=g)
    logits = vsml.run_stream(model, xs, ys)[0]
    old = OLD_ONE_LAYER[folder]
    first = logits[0, :4].flatten()[[0, 5, 9, 10, 14, 15, 17, 19]]
    torch.testing.assert_close(first, torch.tensor(old["logits_first"], dtype=torch.float64), rtol=1e-9, atol=1e-12)
    assert logits.sum().item() == pytest.approx(old["logits_sum"], rel=1e-9)
    assert logits.abs().sum().item() == pytest.approx(old["logits_abs"], rel=1e-9)
    if folder == "clone":
        with torch.no_grad():
            assert float(vsml.clone_loss(model, xs, ys, 0.1, backward=False)) == pytest.approx(old["clone_loss"],
                                                                                                 rel=1e-9)
        assert vsml.compare_clone_to_sgd(model, xs, ys, 0.1) == pytest.approx(old["compare"], rel=1e-6)


def test_the_default_learner_builds_as_before():
    torch.manual_seed(0)
    model = vsml.VSMLLearner(vsml.VSMLConfig()).double()
    assert sorted(n for n, _ in model.named_parameters()) == [
        "layer.bias", "layer.w_back_out", "layer.w_backward", "layer.w_forward", "layer.w_hidden", "layer.w_out",
        "weight_readout"]
    g = torch.Generator().manual_seed(2024)
    xs = torch.randn(3, 12, 16, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 5, (3, 12), generator=g)
    assert vsml.run_stream(model, xs, ys)[0].sum().item() == pytest.approx(-2.716465354075051, rel=1e-9)


def test_two_layers_pass_the_error_down_and_teacher_forcing_uses_it():
    torch.manual_seed(0)
    model = vsml.VSMLLearner(tiny_config(mode="clone", layers=2, hidden_units=3)).double()
    g = torch.Generator().manual_seed(7)
    state = model.initial_state(2, 4, 3)
    assert [tuple(s.shape) for s in state] == [(2, 4, 3, 5)] * 2 + [(2, 3, 3, 5)] * 2 + [(2, 3)]
    # The hidden layer starts holding its (non-zero) initial weights; the output layer starts at zero.
    torch.testing.assert_close(model.weights(state, 0), model.initial_weights(4, 3)[0].expand(2, 4, 3).double())
    assert not model.weights(state).any()
    xs = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 3, (2, 3), generator=g)
    _, state, _ = vsml.run_stream(model, xs, ys)
    feedback = vsml.feedback_messages(torch.randn(2, 3, generator=g, dtype=torch.float64), ys[:, -1], 3, 4, "both",
                                      torch.float64)
    logits, after, sent = model.propagate(state, xs[:, 0], feedback)
    assert sent["errors"][0].abs().sum() > 0 and sent["activations"][0].shape == (2, 3)
    # The step written out: the error down through tanh' (clone mode sums over cells), then x_t up.
    pad = torch.nn.functional.pad
    (hidden_cells, output_cells), (activation,) = model.split(state)
    output_cells, _, backward = model.layer(output_cells, pad(activation[..., None], (0, 3)), feedback, 2)
    error = backward[..., 1] * 3
    torch.testing.assert_close(error, sent["errors"][0])
    error_in = pad((error * (1 - activation ** 2))[..., None], (1, 2))
    hidden_cells, forward, _ = model.hidden_layers[0](hidden_cells, pad(xs[:, 0, :, None], (0, 3)), error_in, 2)
    activation = torch.tanh(forward[..., 0] * 4)
    output_cells, forward, _ = model.layer(output_cells, pad(activation[..., None], (0, 3)), feedback, 2)
    torch.testing.assert_close(logits, forward[..., 0] * 3)
    torch.testing.assert_close(sent["activations"][0], activation)
    for a, b in zip(after, (*hidden_cells, *output_cells, activation)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(model.activations(after)[0], sent["activations"][0])
    # Forcing the learner's own messages changes nothing; forcing others changes the step.
    forced = model.propagate(state, xs[:, 0], feedback, teacher=sent)
    torch.testing.assert_close(forced[0], logits)
    for a, b in zip(forced[1], after):
        torch.testing.assert_close(a, b)
    other = {"activations": [torch.zeros(2, 3, dtype=torch.float64)], "errors": [torch.ones(2, 3, dtype=torch.float64)]}
    assert not torch.allclose(model.propagate(state, xs[:, 0], feedback, teacher=other)[0], logits)
    # The error reaches the hidden layer: other feedback, other hidden cells.
    no_feedback = model.propagate(state, xs[:, 0], torch.zeros_like(feedback))[1]
    assert not torch.allclose(no_feedback[1], after[1])
    # Any input size and number of classes with the same meta-parameters.
    assert vsml.stream_logits(model, torch.randn(2, 5, 9, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.long),
                              4).shape == (2, 5, 4)


def test_two_layer_clone_loss_falls():
    """A few meta-steps of backprop cloning through a hidden layer lower the cloning loss."""
    torch.manual_seed(0)
    config = vsml.VSMLConfig(mode="clone", layers=2, hidden_units=4, input_size=4, ways=3, stream_length=12,
                             message_size=4, hidden=8, clone_lr=0.3, meta_lr=1e-2)
    model = vsml.VSMLLearner(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        xs = torch.randn(16, config.stream_length, config.input_size, generator=g)
        ys = torch.randint(0, config.ways, (16, config.stream_length), generator=g)
        losses.append(vsml.meta_step(model, optimizer, config, xs, ys)["loss"])
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:5]) / 5, losses


def _reference_online(xs, ys, ways, optimizer_class, lr, bias):
    """Online batch-1 training with torch.nn / torch.optim, one stream at a time."""
    out = []
    for x_stream, y_stream in zip(xs, ys):
        layer = torch.nn.Linear(xs.shape[-1], ways, bias=bias, dtype=xs.dtype)
        torch.nn.init.zeros_(layer.weight)
        if bias:
            torch.nn.init.zeros_(layer.bias)
        optimizer = optimizer_class(layer.parameters(), lr=lr)
        logits = []
        for x, y in zip(x_stream, y_stream):
            z = layer(x[None])
            logits.append(z.detach()[0])
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(z, y[None]).backward()
            optimizer.step()
        out.append(torch.stack(logits))
    return torch.stack(out)


def test_sgd_teacher_and_baselines_match_torch_optim():
    g = torch.Generator().manual_seed(5)
    xs, ys = torch.randn(3, 12, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (3, 12), generator=g)
    _, teacher_logits = vsml.sgd_trajectory(xs, ys, 3, 0.3)
    torch.testing.assert_close(teacher_logits, _reference_online(xs, ys, 3, torch.optim.SGD, 0.3, bias=False))
    torch.testing.assert_close(vsml.linear_online_logits(xs, ys, 3, "sgd", 0.3),
                               _reference_online(xs, ys, 3, torch.optim.SGD, 0.3, bias=True))
    torch.testing.assert_close(vsml.linear_online_logits(xs, ys, 3, "adam", 0.05),
                               _reference_online(xs, ys, 3, torch.optim.Adam, 0.05, bias=True))


def test_online_baselines_learn_a_separable_task():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 3
    ys = torch.randint(0, 3, (16, 60), generator=g)
    xs = centres[ys] + torch.randn(16, 60, 8, generator=g)
    for optimizer, lr in (("sgd", 0.1), ("adam", 0.1)):
        correct = vsml.linear_online_logits(xs, ys, 3, optimizer, lr).argmax(-1) == ys
        assert correct[:, 30:].float().mean() > 0.9


def test_count_variables_inverts_the_ratio():
    config = vsml.VSMLConfig()
    table = vsml.count_variables(config)
    assert table["vsml"]["learned_variables"] == config.input_size * config.ways * 2 * config.hidden
    assert 1000 < table["vsml"]["meta_parameters"] < 10000
    assert table["vsml"]["ratio_learned_per_meta"] > 1 > table["metarnn"]["ratio_learned_per_meta"]
    assert table["metarnn"]["learned_variables"] == 2 * config.metarnn_hidden
    assert table["fastweight"]["learned_variables"] == config.fastweight_size * (config.fastweight_size + 1)
    deeper = vsml.count_variables(dataclasses.replace(config, layers=2, hidden_units=8))
    # A theta per layer, and the readout that starts the hidden layer from its weights.
    assert deeper["vsml"]["meta_parameters"] == 2 * table["vsml"]["meta_parameters"] + config.hidden
    assert deeper["vsml"]["learned_variables"] == (16 * 8 + 8 * 5) * 2 * config.hidden + 8
    assert deeper["metarnn"] == table["metarnn"]
    bigger = vsml.count_variables(config, inputs=64)  # VSML's state grows with the layer, its theta does not
    assert bigger["vsml"]["meta_parameters"] == table["vsml"]["meta_parameters"]
    assert bigger["vsml"]["learned_variables"] == 4 * table["vsml"]["learned_variables"]


def test_streams_are_seeded_and_label_permuted():
    source = vsml.StreamSource(torch.randn(60, 10), torch.arange(60) % 6, "toy")
    a = vsml.sample_streams(source, 4, 12, 3, 5, torch.Generator().manual_seed(0), "cpu")
    b = vsml.sample_streams(source, 4, 12, 3, 5, torch.Generator().manual_seed(0), "cpu")
    torch.testing.assert_close(a[0], b[0])
    assert a[0].shape == (4, 12, 5) and a[1].shape == (4, 12) and int(a[1].max()) < 3


TINY = ["--meta-batch", "2", "--stream-length", "6", "--input-size", "4", "--eval-input-size", "7", "--hidden", "4",
        "--metarnn-hidden", "8", "--fastweight-size", "4", "--eval-datasets", "digits"]
EVAL = ["--test-episodes", "3", "--no-progress", "--smoke-data"]
VARIANTS = {"vsml": [], "metarnn": ["--learner", "metarnn"], "fastweight": ["--learner", "fastweight"],
            "clone": ["--mode", "clone"], "vsml_2layer": ["--layers", "2", "--hidden-units", "3"],
            "clone_2layer": ["--mode", "clone", "--layers", "2", "--hidden-units", "3"]}


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_resumes_exactly(tmp_path, variant):
    """test_cli.py covers the default learner; the other learners and clone mode train differently."""
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    run_cli("train", "vsml", "--out", straight, "--steps", 4, *TINY, *VARIANTS[variant], *EVAL)
    run_cli("train", "vsml", "--out", halves, "--steps", 2, *TINY, *VARIANTS[variant], *EVAL)
    run_cli("train", "vsml", "--out", halves, "--steps", 4, "--resume", *EVAL)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(halves / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4 and a["history"] == b["history"]
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name
    assert ("accuracy" in a["history"]) == ("clone" not in variant)  # clone mode is teacher-forced: no accuracy


@pytest.mark.parametrize("learner", ["vsml", "metarnn"])
def test_a_run_writes_stream_results_and_reloads(tmp_path, capsys, learner):
    out = tmp_path / "run"
    run_cli("train", "vsml", "--out", out, "--steps", 2, *TINY, "--learner", learner, *EVAL)
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "vsml" and results["steps_done"] == 2 and results["test_episodes"] == 3
    rows = results["results"]["evaluation"]
    assert list(rows) == ["digits (held-out examples), input size 4"] + (
        ["digits (held-out examples), input size 7"] if learner == "vsml" else [])
    entry = rows["digits (held-out examples), input size 4"]
    assert list(entry)[0] == learner and any(k.startswith("sgd (lr") for k in entry)
    assert set(entry[learner]) == {"curve", "windows", "all"} and len(entry[learner]["curve"]) == 6
    assert results["results"]["variables"]["vsml"]["learned_variables"] == 4 * 5 * 2 * 4
    markdown = (out / "results.md").read_text()
    assert "## digits (held-out examples), input size 4" in markdown and "## Variables" in markdown
    assert "## digits (held-out examples), input size 4" in capsys.readouterr().out  # the summary is printed
    model, payload = registry.load(out)
    assert type(model) is vsml.LEARNER_CLASSES[learner] and payload["step"] == 2 and not model.training
    run_cli("eval", "vsml", "--out", out, "--test-episodes", 2, "--no-progress", "--smoke-data")
    assert json.loads((out / "results.json").read_text())["test_episodes"] == 2


@pytest.mark.parametrize("layers", [1, 2])
def test_clone_mode_reports_the_closed_loop_comparison(tmp_path, layers):
    out = tmp_path / "run"
    run_cli("train", "vsml", "--out", out, "--steps", 1, *TINY, "--mode", "clone", "--layers", layers, *EVAL)
    clone = json.loads((out / "results.json").read_text())["results"]["clone"]
    row = clone["digits (held-out examples), input size 7"]
    assert "relative_weight_error_final" in row
    per_layer = ("layer1_relative_weight_error_final", "layer1_relative_update_error_final", "layer1_update_cosine_final",
                 "layer2_relative_update_error_final", "layer1_activation_correlation")
    assert all(key in row for key in per_layer) == (layers == 2)
    assert "Backprop cloning" in (out / "results.md").read_text()


@pytest.mark.parametrize("options, match", [
    (["--ways", "50"], "digits has 10 classes"),  # the issue: this used to fail after writing a 0-step run
    (["--ways", "12", "--dataset", "omniglot"], "is tested on it"),  # digits and MNIST are test datasets
    (["--ways", "1"], "ways must be at least 2"),
    (["--dataset", "cifar"], "dataset must be one of"),
    (["--learner", "lstm"], "learner must be one of"),
    (["--mode", "clone", "--learner", "metarnn"], "clone mode needs --learner vsml"),
    (["--mode", "clone", "--feedback", "label"], "clone mode needs the error"),
    (["--layers", "2", "--learner", "metarnn"], "--layers needs --learner vsml"),
    (["--layers", "0"], "layers must be a positive integer"),
    (["--eval-datasets", "digits,svhn"], "eval_datasets must be"),
    (["--input-size", "0"], "input_size must be a positive integer"),
    (["--meta-lr", "0"], "meta_lr, clone_lr and grad_clip must be > 0"),
    (["--resume"], "holds no checkpoint.pt"),
])
def test_bad_options_are_refused_before_any_data_is_loaded_or_file_written(tmp_path, monkeypatch, options, match):
    monkeypatch.setattr(vsml, "load_sources", lambda *a, **k: pytest.fail("data was loaded"))
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=match):
        run_cli("train", "vsml", "--out", out, *options)
    assert not out.exists()


@pytest.mark.real_data("omniglot")
def test_more_ways_than_the_smoke_data_has_are_refused_before_writing(tmp_path):
    """Valid on the full Omniglot (659 test classes), but --smoke-data keeps 20: load_data says so first."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="ways=30, but omniglot has 20 classes"):
        run_cli("train", "vsml", "--out", out, "--ways", "30", "--dataset", "omniglot", "--eval-datasets", "omniglot",
                "--smoke-data")
    assert not out.exists()
    run_cli("train", "vsml", "--out", out, "--steps", 1, *TINY[:-2], "--ways", "20", "--dataset", "omniglot",
            "--eval-datasets", "omniglot", *EVAL)  # the corrected retry goes into the same folder
    assert json.loads((out / "results.json").read_text())["steps_done"] == 1


def test_the_old_command_line_translates_to_the_new_one(monkeypatch):
    from course_lib import vsml_alias

    seen = []
    monkeypatch.setattr(cli, "main", lambda argv: seen.append(argv))
    vsml_alias.main(["train", "--model", "metarnn", "--eval-streams", "256", "--lr", "3e-3", "--out", "x", "--resume"])
    vsml_alias.main(["train", "--out", "x", "--eval-only", "--eval-datasets", "digits"])
    assert seen == [["train", "vsml", "--learner", "metarnn", "--test-episodes", "256", "--meta-lr", "3e-3",
                     "--out", "x", "--resume"],
                    ["eval", "vsml", "--out", "x", "--eval-datasets", "digits"]]
    with pytest.raises(SystemExit, match="--eval-length is gone"):
        vsml_alias.main(["train", "--out", "x", "--eval-length", "50"])


@pytest.mark.parametrize("folder", [run.folder for run in vsml.RUNS
                                    if (Path(__file__).resolve().parent.parent / run.folder).is_dir()])
def test_every_shipped_run_loads_through_the_registry(folder):
    run = runs.RunFolder(Path(__file__).resolve().parent.parent / folder)
    if not run.checkpoint.is_file():
        pytest.skip(f"{folder} is not in this checkout")
    model, payload = registry.load(run.path)
    stored = runs.with_added_defaults(payload["config"], vsml.VSMLConfig)  # the checkpoint's own names: lr
    config = vsml.VSMLConfig(**stored)
    assert type(model) is vsml.LEARNER_CLASSES[config.learner] and payload["step"] > 0 and model.config == config
    assert run.record()["method"] == "vsml" and runs.with_added_defaults(run.record()["config"], config) == stored
    results = run.results()
    assert results["steps_done"] == payload["step"]
    assert config.learner in next(iter(results["results"]["evaluation"].values()))


def test_stream_trace_and_figure_headless():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    for mode in ("scratch", "clone"):
        model = vsml.VSMLLearner(tiny_config(mode=mode))
        xs, ys = torch.randn(9, 7, generator=g), torch.randint(0, 3, (9,), generator=g)
        trace = vsml_figures.stream_trace(model, xs, ys)
        assert trace["probabilities"].shape == (9, 3) and trace["weights"].shape == (9, 7, 3)
        torch.testing.assert_close(trace["probabilities"].sum(-1), torch.ones(9))
        # The trace is the batched stream, step for step.
        logits, _, _, states = vsml.run_stream(model, xs[None], ys[None], return_states=True)
        torch.testing.assert_close(trace["probabilities"], logits[0].softmax(-1))
        torch.testing.assert_close(trace["weights"][4], vsml_figures.effective_weights(model, states[4])[0])
        if mode == "clone":
            torch.testing.assert_close(trace["weights"][4], model.weights(states[4])[0])
        else:  # the cell contributions average to the logit
            torch.testing.assert_close(trace["weights"].mean(1), logits[0], atol=1e-5, rtol=1e-5)
        for step in (0, 8):
            fig = vsml_figures.trace_figure(trace, step, title="t")
            assert len(fig.axes) >= 3
            plt.close(fig)
        with pytest.raises(ValueError, match="step must be in 0..8"):
            vsml_figures.trace_figure(trace, 9)
    with pytest.raises(ValueError, match="one stream"):
        vsml_figures.stream_trace(model, xs[None], ys[None])
    with pytest.raises(TypeError, match="VSML learners only"):
        vsml_figures.effective_weights(vsml.MetaRNN(tiny_config(learner="metarnn")), None)


def test_meta_step_cost_measures_time_and_saved_memory():
    small = vsml_cost.meta_step_cost(tiny_config(meta_batch=2), repeats=1)
    wide = vsml_cost.meta_step_cost(tiny_config(meta_batch=2, input_size=16), repeats=1)
    assert small["seconds"] > 0 and small["saved_for_backward_mb"] > 0
    assert small["meta_parameters"] == wide["meta_parameters"]  # theta does not grow with the layer
    assert wide["saved_for_backward_mb"] > 2 * small["saved_for_backward_mb"]  # the cell grid does
    rnn = vsml_cost.meta_step_cost(tiny_config(learner="metarnn", meta_batch=2), repeats=1)
    assert rnn["peak_gpu_mb"] is None and rnn["meta_parameters"] > 0


def test_two_layer_cell_contributions_and_the_layer_clone_figure_headless():
    """effective_weights reads the output layer of a two-layer learner; the figure draws from the files' layout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(5)
    torch.manual_seed(0)
    model = vsml.VSMLLearner(tiny_config(mode="scratch", layers=2, hidden_units=3))
    xs, ys = torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
    logits, _, _, states = vsml.run_stream(model, xs[None], ys[None], return_states=True)
    trace = vsml_figures.stream_trace(model, xs, ys)
    assert trace["weights"].shape == (6, 3, 3)  # the output layer's cells: hidden units x classes
    torch.testing.assert_close(trace["weights"].mean(1), logits[0], atol=1e-5, rtol=1e-5)

    layers = {"relative_update_error_final": 0.9, "update_cosine_final": 0.7, "relative_weight_error_final": 0.4}
    row = {f"layer{l}_{key}": value for l in (1, 2) for key, value in layers.items()}
    curves = {"one layer": [[s, 2.0 / (s + 1)] for s in range(0, 100, 10)],
              "two layers": [[s, 3.0 / (s + 1)] for s in range(60)]}
    rows = {f"{name} (held-out examples), input size 16": row for name in ("digits", "mnist")}  # the files' keys
    fig = vsml_figures.layer_clone_figure(curves, rows) or plt.gcf()
    assert len(fig.axes) == 2 and all(ax.get_ylabel() for ax in fig.axes) and len(fig.axes[1].get_xticklabels()) == 2
    plt.close("all")
