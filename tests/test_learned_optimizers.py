"""course_lib.learned_optimizers: oracle tests of the unroll, the meta-gradient and the widget."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from course_lib import cli, runs
from course_lib import learned_optimizers as lo
from course_lib.teaching import optimizer_figures as figures
from course_lib.data import load_digits
from course_lib.episodes import stack_tasks


@pytest.fixture(scope="module")
def digits_family() -> lo.MLPFamily:
    digits = load_digits()
    return lo.MLPFamily(digits.images[:600], digits.labels[:600], hidden=(8,), batch_size=32)


def tiny_config(**changes) -> lo.LearnedOptimizerConfig:
    base = dict(hidden_size=4, num_layers=2, horizon=6, unroll=3, optimizees_per_batch=2, meta_lr=1e-2)
    return lo.LearnedOptimizerConfig(**{**base, **changes})


# --------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------


def test_preprocess_gradient_matches_the_papers_formula():
    """(log|g|/p, sign g) for |g| >= e^-p, (-1, e^p g) below, with p = 10."""
    g = torch.tensor([1.0, -math.exp(-5.0), 1e-6, -2e-5, 0.0], dtype=torch.float64)
    got = lo.preprocess_gradient(g, p=10.0)
    expected = torch.tensor(
        [[0.0, 1.0], [-0.5, -1.0], [-1.0, math.exp(10) * 1e-6], [-1.0, -math.exp(10) * 2e-5], [-1.0, 0.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_lstm_optimizer_parameter_count_and_state():
    """Two LSTMCells (4H(I+H) weights + 8H biases each) and a linear read-out; state 2*layers*H per coordinate."""
    net = lo.LSTMOptimizer(lo.LearnedOptimizerConfig())
    H, I = 20, 2
    expected = (4 * H * (I + H) + 8 * H) + (4 * H * (H + H) + 8 * H) + (H + 1)
    assert sum(p.numel() for p in net.parameters()) == expected == 5301
    counts = lo.variable_counts(net, 1000)
    assert counts == {"meta_parameters": 5301, "optimizee_parameters": 1000, "lstm_state": 80_000,
                      "learned_variables": 81_000}
    theta = torch.zeros(3, 7)
    update, state = net.step(torch.randn(3, 7), net.init_state(theta))
    assert update.shape == (3, 7) and len(state) == 2 and state[0][0].shape == (21, 20)


def test_lstm_is_coordinatewise():
    """Permuting the coordinates (and their states) permutes the updates: weights are shared."""
    torch.manual_seed(0)
    net = lo.LSTMOptimizer(tiny_config())
    grad = torch.randn(1, 12)
    state = [(torch.randn(12, 4), torch.randn(12, 4)) for _ in range(2)]
    perm = torch.randperm(12)
    update, _ = net.step(grad, state)
    permuted, _ = net.step(grad[:, perm], [(h[perm], c[perm]) for h, c in state])
    torch.testing.assert_close(permuted, update[:, perm])


def test_mlp_family_matches_an_nn_module(digits_family):
    """The functional MLP (flat theta) computes what nn.Linear/sigmoid layers with the same weights compute."""
    problems = lo.problem_batch(digits_family, 2, seed=3)
    theta = problems.theta0
    x = digits_family.inputs[:5]
    for b in range(2):
        (W1, b1), (W2, b2) = digits_family.unflatten(theta[b : b + 1])
        first, second = nn.Linear(64, 8), nn.Linear(8, 10)
        with torch.no_grad():
            first.weight.copy_(W1[0].T), first.bias.copy_(b1[0, 0])
            second.weight.copy_(W2[0].T), second.bias.copy_(b2[0, 0])
        expected = second(torch.sigmoid(first(x)))
        torch.testing.assert_close(digits_family.logits(theta[b : b + 1], x[None])[0], expected)


def test_minibatches_are_a_function_of_problem_and_step(digits_family):
    """Same problem and step: same minibatch, whatever else is in the batch; other steps/problems differ."""
    problems = lo.problem_batch(digits_family, 3, seed=0)
    _, y_all = digits_family.minibatch(problems, step=4)
    single = stack_tasks([digits_family.fixed_tasks(3, 0)[1]])
    _, y_one = digits_family.minibatch(single, step=4)
    assert torch.equal(y_all[1], y_one[0])
    _, y_next = digits_family.minibatch(problems, step=5)
    assert not torch.equal(y_all, y_next)
    assert not torch.equal(y_all[0], y_all[1])


# --------------------------------------------------------------------------
# Oracle: with update = -lr * grad the loop is plain SGD, exactly
# --------------------------------------------------------------------------


def hand_sgd(family, problems, lr, steps):
    theta = problems.theta0.clone()
    losses = []
    for t in range(steps + 1):
        theta = theta.detach().requires_grad_(True)
        loss = family.loss(problems, theta, t)
        losses.append(loss.detach())
        (grad,) = torch.autograd.grad(loss.sum(), theta)
        theta = theta - lr * grad
    return torch.stack(losses)


@pytest.mark.parametrize("which", ["quadratic", "mlp"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_rule_reproduces_sgd_exactly(which, dtype):
    """unroll with FixedRule(lr) == hand-written SGD, bit for bit; == torch.optim.SGD (run_baseline)
    up to the last bits (torch fuses theta - lr * grad into one rounding)."""
    if which == "quadratic":
        family, lr = lo.QuadraticFamily(dtype=dtype), 0.01
    else:
        digits = load_digits()
        family, lr = lo.MLPFamily(digits.images[:600].to(dtype), digits.labels[:600], hidden=(8,), batch_size=32), 0.5
    problems = lo.problem_batch(family, 4, seed=11)
    steps = 15
    rule = lo.FixedRule(lr)
    losses, theta, _ = lo.unroll(rule, family, problems, problems.theta0, rule.init_state(problems.theta0), 0, steps,
                                 meta_graph=False)
    assert losses.dtype == dtype
    assert torch.equal(losses, hand_sgd(family, problems, lr, steps))
    assert torch.equal(lo.run_learned(rule, family, problems, steps), losses)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(lo.run_baseline("SGD", lr, family, problems, steps), losses, rtol=tolerance, atol=0)
    assert losses[-1].mean() < 0.98 * losses[0].mean()  # it did optimise


def test_a_wrong_rule_is_caught():
    """The comparison above can fail: lr off by 1 % is visibly not SGD at that lr."""
    family = lo.QuadraticFamily(dtype=torch.float64)
    problems = lo.problem_batch(family, 4, seed=11)
    wrong = lo.run_learned(lo.FixedRule(0.0101), family, problems, 15)
    assert not torch.allclose(wrong, lo.run_baseline("SGD", 0.01, family, problems, 15), rtol=1e-6, atol=0)


def test_fixed_rule_with_a_meta_graph_is_still_sgd():
    """Keeping the graph (meta_graph=True) changes nothing in the forward trajectory."""
    family = lo.QuadraticFamily()
    problems = lo.problem_batch(family, 3, seed=2)
    rule = lo.FixedRule(0.02)
    with_graph, _, _ = lo.unroll(rule, family, problems, problems.theta0, [], 0, 10, meta_graph=True)
    assert torch.equal(with_graph.detach(), hand_sgd(family, problems, 0.02, 10))


# --------------------------------------------------------------------------
# Oracle: the meta-gradient through an unroll matches finite differences
# --------------------------------------------------------------------------


def meta_loss_fn(net, family, problems, steps, second_order):
    theta = problems.theta0
    losses, _, _ = lo.unroll(net, family, problems, theta, net.init_state(theta), 0, steps,
                             meta_graph=True, second_order=second_order)
    return lo.meta_loss_of(losses)


def finite_difference_gradient(net, loss_of, eps=1e-6):
    """Central differences (L(omega + eps e_i) - L(omega - eps e_i)) / 2 eps, one coordinate of omega at a time."""
    grads = []
    for p in net.parameters():
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = loss_of().item()
            flat[i] = old - eps
            minus = loss_of().item()
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return torch.cat([g.flatten() for g in grads])


def autograd_gradient(net, loss_of):
    net.zero_grad()
    loss_of().backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


class Quadratic3(lo.QuadraticFamily):
    """A 3-d quadratic in float64, scaled so that a few learned steps move theta visibly."""

    def __init__(self):
        super().__init__(dim=3, init_std=0.5, dtype=torch.float64)


@pytest.mark.parametrize("preprocess", [True, False])
def test_exact_meta_gradient_matches_finite_differences(preprocess):
    """second_order=True: d/domega of sum_t f(theta_t) over a 4-step unroll == central differences (float64)."""
    torch.manual_seed(0)
    net = lo.LSTMOptimizer(tiny_config(preprocess=preprocess, output_scale=0.3)).double()
    family = Quadratic3()
    problems = lo.problem_batch(family, 2, seed=5)
    loss_of = lambda: meta_loss_fn(net, family, problems, 4, second_order=True)  # noqa: E731
    exact = autograd_gradient(net, loss_of)
    numeric = finite_difference_gradient(net, loss_of)
    assert exact.abs().max() > 1e-3  # not a vacuous comparison
    torch.testing.assert_close(exact, numeric, rtol=1e-5, atol=1e-7)


def test_exact_meta_gradient_matches_finite_differences_on_an_mlp():
    """Same oracle through the functional MLP optimizee (sigmoid, minibatches), float64."""
    torch.manual_seed(1)
    digits = load_digits()
    family = lo.MLPFamily(digits.images[:200].double(), digits.labels[:200], hidden=(3,), batch_size=16)
    net = lo.LSTMOptimizer(tiny_config(hidden_size=3, num_layers=1)).double()
    problems = lo.problem_batch(family, 1, seed=0)
    loss_of = lambda: meta_loss_fn(net, family, problems, 3, second_order=True)  # noqa: E731
    torch.testing.assert_close(autograd_gradient(net, loss_of), finite_difference_gradient(net, loss_of),
                               rtol=1e-5, atol=1e-7)


class LinearFamily(lo.OptimizeeFamily):
    """f(theta) = a . theta: the gradient a does not depend on theta, so d grad / d omega = 0 exactly."""

    name = "linear"
    num_parameters = 4

    def sample(self, generator=None):
        return lo.QuadraticProblem(W=torch.randn(4, 4, generator=generator, dtype=torch.float64),
                                   y=torch.randn(4, generator=generator, dtype=torch.float64),
                                   theta0=torch.randn(4, generator=generator, dtype=torch.float64))

    def loss(self, problems, theta, step):
        return (problems.y * theta).sum(-1)


def test_first_order_meta_gradient_drops_exactly_the_gradient_path():
    """The paper's approximation (d grad_t/d omega = 0) is exact when the gradient is constant
    (linear f) and differs from the exact meta-gradient on a quadratic."""
    torch.manual_seed(0)
    net = lo.LSTMOptimizer(tiny_config(output_scale=0.3)).double()
    linear = LinearFamily()
    problems = lo.problem_batch(linear, 2, seed=0)
    first = autograd_gradient(net, lambda: meta_loss_fn(net, linear, problems, 4, second_order=False))
    exact = autograd_gradient(net, lambda: meta_loss_fn(net, linear, problems, 4, second_order=True))
    torch.testing.assert_close(first, exact, rtol=1e-10, atol=1e-12)

    quadratic = Quadratic3()
    problems = lo.problem_batch(quadratic, 2, seed=5)
    first = autograd_gradient(net, lambda: meta_loss_fn(net, quadratic, problems, 4, second_order=False))
    exact = autograd_gradient(net, lambda: meta_loss_fn(net, quadratic, problems, 4, second_order=True))
    # dropping d grad_t / d omega is an approximation: it fails the tolerance the exact gradient meets
    assert not torch.allclose(first, exact, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------
# Meta-training: truncations, resumption, tuning
# --------------------------------------------------------------------------


def test_meta_training_lowers_the_meta_loss_on_quadratics():
    """A short run on 10-d quadratics: the later meta-losses are lower than the first ones."""
    torch.manual_seed(0)
    config = lo.LearnedOptimizerConfig(horizon=20, unroll=10, optimizees_per_batch=16, meta_lr=1e-2)
    net = lo.LSTMOptimizer(config)
    history = lo.meta_train(net, lo.QuadraticFamily(), 30, progress=False)
    values = history["meta_loss"][1]
    assert len(values) == 30 and len(history["final_loss"][1]) == 30
    assert sum(values[-5:]) / 5 < 0.8 * sum(values[:5]) / 5


def test_meta_training_resumes_from_its_checkpoint(tmp_path):
    """3 steps in one go == 2 steps, checkpoint, a new process-like restart, 1 more."""
    family = lo.QuadraticFamily()
    config = tiny_config()

    torch.manual_seed(0)
    straight = lo.LSTMOptimizer(config)
    lo.meta_train(straight, family, 3, progress=False)

    torch.manual_seed(0)
    first = lo.LSTMOptimizer(config)
    path = tmp_path / "checkpoint.pt"
    meta_optimizer = torch.optim.Adam(first.parameters(), lr=config.meta_lr)
    history = lo.meta_train(first, family, 2, meta_optimizer=meta_optimizer, progress=False)
    runs.save_checkpoint(path, first, config, history=history, optimizer=meta_optimizer, step=2)

    resumed = lo.LSTMOptimizer(config)
    meta_optimizer = torch.optim.Adam(resumed.parameters(), lr=config.meta_lr)
    payload = runs.load_checkpoint(path, resumed, config, optimizer=meta_optimizer)
    assert payload["step"] == 2 and len(payload["history"]["meta_loss"][1]) == 2
    history = lo.meta_train(resumed, family, 3, history=payload["history"], meta_optimizer=meta_optimizer,
                            start_step=payload["step"], progress=False)
    assert history["meta_loss"][0] == [0, 1, 2]
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_tuning_picks_the_grid_minimum_and_marks_divergence():
    family = lo.QuadraticFamily()
    problems = lo.problem_batch(family, 8, seed=0)
    result = lo.tune_learning_rates(family, problems, 30, names=["SGD", "Adam"], grid=(1e-3, 1e-2, 10.0),
                                    progress=False)
    for name in ("SGD", "Adam"):
        scores = result[name]["scores"]
        assert result[name]["lr"] == min(scores, key=scores.get)
        assert result[name]["score"] == scores[result[name]["lr"]]
    assert result["SGD"]["scores"][10.0] == math.inf  # lr 10 on these quadratics diverges
    direct = lo.trajectory_score(lo.run_baseline("Adam", 1e-2, family, problems, 30))
    assert result["Adam"]["scores"][1e-2] == direct


# --------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(digits_family):
    torch.manual_seed(0)
    rule = lo.LSTMOptimizer(lo.LearnedOptimizerConfig())
    lrs = {"SGD": 0.01, "Adam": 0.1}
    return {"quadratic": figures.Setting(lo.QuadraticFamily(), rule, lrs),
            "digits MLP": figures.Setting(digits_family, rule, {"SGD": 0.5, "Adam": 0.01})}


def test_compare_trajectories_is_the_runs_it_claims(settings):
    result = figures.compare_trajectories(settings, "quadratic", horizon=25, instances=3, seed=9)
    assert result["optimizee"] == "quadratic" and result["horizon"] == 25
    assert list(result["curves"]) == ["LSTM (learned)", "SGD", "Adam"]
    problems = lo.problem_batch(settings["quadratic"].family, 3, 9)
    family = settings["quadratic"].family
    direct = lo.run_learned(settings["quadratic"].rule, family, problems, 25)
    assert torch.equal(result["curves"]["LSTM (learned)"], direct)
    assert torch.equal(result["curves"]["SGD"], lo.run_baseline("SGD", 0.01, family, problems, 25))
    for curve in result["curves"].values():
        assert curve.shape == (26, 3)
    longer = figures.compare_trajectories(settings, "quadratic", horizon=40, instances=3, seed=9)
    assert torch.equal(longer["curves"]["Adam"][:26], result["curves"]["Adam"])  # same problems, longer
    with pytest.raises(KeyError):
        figures.compare_trajectories(settings, "nope", 10)
    with pytest.raises(ValueError):
        figures.compare_trajectories(settings, "quadratic", 0)


def test_plot_trajectories_draws_one_panel_per_optimizer(settings):
    import matplotlib.pyplot as plt

    result = figures.compare_trajectories(settings, "digits MLP", horizon=5, instances=2)
    fig = figures.plot_trajectories(result, trained_horizon=3)
    assert len(fig.axes) == 3 and [ax.get_title() for ax in fig.axes] == list(result["curves"])
    plt.close(fig)


def test_widget_callbacks_recompute_on_dropdown_and_slider(settings):
    import matplotlib.pyplot as plt

    box = figures.trajectory_explorer(settings, horizons=(5, 50, 5), value=10, instances=2)
    dropdown, slider = box.children[0].children
    assert box.last_result["optimizee"] == "quadratic" and box.last_result["horizon"] == 10
    slider.value = 15
    assert box.last_result["horizon"] == 15
    assert box.last_result["curves"]["SGD"].shape == (16, 2)
    dropdown.value = "digits MLP"
    assert box.last_result["optimizee"] == "digits MLP"
    expected = figures.compare_trajectories(settings, "digits MLP", 15, instances=2)
    assert torch.equal(box.last_result["curves"]["Adam"], expected["curves"]["Adam"])
    plt.close("all")


def test_comparison_table_reports_means_and_paired_differences():
    """Hand-made curves: the meta-objective column, f at a step, and reference-minus-other paired rows."""
    learned = torch.tensor([[9.0, 9.0], [1.0, 3.0], [1.0, 1.0]])  # [steps + 1, problems]
    sgd = torch.tensor([[9.0, 9.0], [2.0, 4.0], [2.0, 4.0]])
    table = lo.comparison_table({"LSTM (learned)": learned, "SGD": sgd}, horizon=2, steps=[2])
    lines = table.splitlines()
    assert "mean f, t<=2" in lines[0] and "f(θ_2)" in lines[0]
    # LSTM: mean over t=1..2 per problem = (1, 2) -> 1.5; f(θ_2) = (1, 1) -> 1.0 with CI 0
    assert lines[1].split()[2:4] == ["1.5000", "±"] and "1.0000 ± 0.0000" in lines[1]
    # SGD minus: per problem (2, 4) -> 3.0 and (2, 4) -> 3.0; paired LSTM - SGD = (-1, -2) -> -1.5 and (-1, -3) -> -2
    assert lines[3].startswith("LSTM (learned) minus")
    assert lines[4].split()[1] == "-1.5000" and lines[4].split()[4] == "-2.0000"


TINY = ["--optimizee", "quadratic", "--horizon", "4", "--unroll", "2", "--optimizees-per-batch", "2",
        "--hidden-size", "3", "--test-episodes", "4", "--no-progress"]


def test_command_line_meta_trains_resumes_and_matches_the_library(tmp_path):
    """The command line: 2 steps, then --resume to 3; the same weights as ``meta_train`` for 3 steps."""
    out = tmp_path / "run"
    cli.main(["train", "learned-optimizer", "--out", str(out), "--steps", "2", *TINY])
    cli.main(["train", "learned-optimizer", "--out", str(out), "--steps", "3", "--resume", "--no-progress",
              "--test-episodes", "4"])
    config = lo.LearnedOptimizerConfig(horizon=4, unroll=2, optimizees_per_batch=2, hidden_size=3,
                                       optimizee="quadratic", steps=3)
    resumed = lo.LSTMOptimizer(config)
    payload = runs.load_checkpoint(out / "checkpoint.pt", resumed, config)
    assert payload["step"] == 3 and payload["history"]["meta_loss"][0] == [0, 1, 2]
    torch.manual_seed(0)
    straight = lo.LSTMOptimizer(config)
    lo.meta_train(straight, lo.QuadraticFamily(), 3, progress=False)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"LSTM (learned)", "SGD", "momentum", "RMSprop", "Adam"}
    assert results["LSTM (learned)"]["problems"] == 4 and "lr" in results["SGD"]
    assert "| Adam |" in (out / "results.md").read_text()


@pytest.mark.parametrize("options, match", [
    (["--steps", "-3"], "steps must be >= 0"), (["--horizon", "10", "--unroll", "3"], "multiple of unroll"),
    (["--optimizee", "resnet"], "optimizee must be"), (["--meta-lr", "0"], "meta_lr and preprocess_p must be > 0")])
def test_bad_options_are_usage_errors_before_anything_is_written(tmp_path, monkeypatch, options, match):
    monkeypatch.setattr(lo, "load_data", lambda *a, **k: pytest.fail("data was loaded"))
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "learned-optimizer", "--out", str(tmp_path / "run"), *options])
    assert not (tmp_path / "run").exists()
