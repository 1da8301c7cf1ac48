"""Bandit tasks, environment, baseline policies and RL² (course_lib.bandits, notebook 05)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from course_lib import bandits as B
from course_lib import cli, registry, runs
from course_lib.episodes import TaskDistribution
from course_lib.teaching import bandit_figures

REPO = Path(__file__).resolve().parent.parent


def _tolerance(values: torch.Tensor, z: float = 5.0) -> float:
    """z standard errors of the mean of ``values`` (a loose, practically never flaky bound)."""
    return z * values.float().std().item() / math.sqrt(values.numel()) + 1e-9


def test_task_distributions_are_task_distributions_with_right_ranges():
    for tasks in (B.IndependentBandits(5), B.DependentBandits()):
        assert isinstance(tasks, TaskDistribution)
    g = torch.Generator().manual_seed(0)
    probs = B.IndependentBandits(5).sample_batch(1000, g).probs
    assert probs.shape == (1000, 5) and probs.min() >= 0 and probs.max() <= 1
    assert abs(probs.mean().item() - 0.5) < 0.03
    dep = B.DependentBandits().sample_batch(100, g).probs
    assert dep.shape == (100, 2)
    assert torch.allclose(dep.sum(1), torch.ones(100))
    one = B.IndependentBandits(3).sample(g)
    assert one.probs.shape == (3,) and one.arms == 3
    with pytest.raises(ValueError):
        B.IndependentBandits(1)


def test_seeded_sampling_and_rollouts_are_deterministic():
    tasks = B.IndependentBandits(4)
    a = tasks.sample_batch(8, torch.Generator().manual_seed(3)).probs
    b = tasks.sample_batch(8, torch.Generator().manual_seed(3)).probs
    assert torch.equal(a, b)
    assert [t.probs for t in tasks.fixed_tasks(2, seed=1)][0].equal(tasks.fixed_tasks(2, seed=1)[0].probs)
    for policy in (B.RandomPolicy(), B.UCB1(), B.ThompsonSampling(), B.GreedyPolicy(0.1)):
        r1 = B.rollout(policy, a, 20, torch.Generator().manual_seed(5))
        r2 = B.rollout(policy, a, 20, torch.Generator().manual_seed(5))
        assert torch.equal(r1.actions, r2.actions) and torch.equal(r1.rewards, r2.rewards), policy


def test_environment_shapes_and_rewards():
    probs = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]])
    env = B.BanditEnv(probs, torch.Generator().manual_seed(0))
    assert env.batch_size == 2 and env.arms == 3
    rewards, regret = env.pull(torch.tensor([1, 1]))
    assert rewards.tolist() == [1.0, 0.0]  # p = 1 always pays, p = 0 never does
    assert regret.tolist() == [0.0, 1.0]
    out = B.rollout(B.RandomPolicy(), probs, 7, torch.Generator().manual_seed(0))
    assert out.actions.shape == out.rewards.shape == out.regret.shape == (2, 7)
    assert out.action_probs.shape == (2, 7, 3)
    assert torch.equal(out.cumulative_regret()[:, -1], out.regret.sum(1))
    with pytest.raises(ValueError):
        B.BanditEnv(torch.rand(3))


def test_bernoulli_reward_frequencies_match_probabilities():
    probs = torch.tensor([[0.2, 0.7]]).expand(20000, 2)
    env = B.BanditEnv(probs, torch.Generator().manual_seed(1))
    rewards, _ = env.pull(torch.ones(20000, dtype=torch.long))
    assert abs(rewards.mean().item() - 0.7) < 0.02


def test_oracle_has_zero_regret_and_expected_step_regret_closed_form():
    probs = B.IndependentBandits(5).sample_batch(200, torch.Generator().manual_seed(2)).probs
    out = B.rollout(B.OraclePolicy(probs), probs, 30, torch.Generator().manual_seed(0))
    assert out.regret.abs().max().item() == 0.0
    uniform = torch.full_like(probs, 0.2)
    expected = B.expected_step_regret(probs, uniform)
    assert torch.allclose(expected, probs.max(1).values - probs.mean(1))


def test_random_policy_expected_regret_matches_closed_form():
    # Random policy: E regret_T = T (E max p - E mean p) = T (K/(K+1) - 1/2) for p_k ~ U[0, 1].
    arms, horizon = 5, 10
    probs = B.IndependentBandits(arms).sample_batch(20000, torch.Generator().manual_seed(0)).probs
    out = B.rollout(B.RandomPolicy(), probs, horizon, torch.Generator().manual_seed(1))
    total = out.regret.sum(1)
    closed = B.random_policy_expected_regret(arms, horizon)
    assert closed == pytest.approx(10 * (5 / 6 - 0.5))
    assert abs(total.mean().item() - closed) < _tolerance(total)
    # and per task, conditional on p: T (max p - mean p) (averaging out only the actions)
    per_task = horizon * (probs.max(1).values - probs.mean(1))
    assert abs((total - per_task).mean().item()) < _tolerance(total - per_task)
    # the expected total reward of a random policy is T/2
    assert abs(out.total_reward().mean().item() - horizon / 2) < _tolerance(out.total_reward())


def test_fixed_arm_on_dependent_bandit_has_regret_a_quarter_per_pull():
    horizon = 8
    probs = B.DependentBandits().sample_batch(20000, torch.Generator().manual_seed(0)).probs
    out = B.rollout(B.FixedArmPolicy(0), probs, horizon, torch.Generator().manual_seed(1))
    assert (out.actions == 0).all()
    total = out.regret.sum(1)
    # exactly T max(0, 1 - 2 p_1) per task, deterministic given p
    assert torch.allclose(total, horizon * (1 - 2 * probs[:, 0]).clamp(min=0))
    assert abs(total.mean().item() - B.fixed_arm_dependent_expected_regret(horizon)) < _tolerance(total)


def test_classic_algorithms_beat_random_and_ucb_tries_every_arm_first():
    probs = B.IndependentBandits(5).sample_batch(500, torch.Generator().manual_seed(4)).probs
    random = B.rollout(B.RandomPolicy(), probs, 100, torch.Generator().manual_seed(0)).regret.sum(1).mean()
    for policy in (B.UCB1(), B.ThompsonSampling(), B.GreedyPolicy()):
        regret = B.rollout(policy, probs, 100, torch.Generator().manual_seed(0)).regret.sum(1).mean()
        assert regret < 0.7 * random, policy
    first = B.rollout(B.UCB1(), probs, 5, torch.Generator().manual_seed(0)).actions
    assert (first.sort(1).values == torch.arange(5)).all()


def test_rl2_agent_input_shapes_and_a_short_training_run(tmp_path):
    config = B.RL2Config(arms=3, horizon=6, hidden=8, batch_size=16, steps=3)
    agent = B.RL2Agent(config)
    x0 = agent.make_input(None, None, 0, 4)
    assert x0.shape == (4, 3 + 1 + 1) and x0[:, :4].abs().sum() == 0  # no previous pull at t = 0
    x = agent.make_input(torch.tensor([2, 0, 1, 2]), torch.tensor([1.0, 0, 1, 0]), 3, 4)
    assert x[0].tolist()[:4] == [0, 0, 1, 1] and x[0, -1].item() == pytest.approx(0.5)
    history = B.train(agent, config, progress=False)
    assert len(history["total_reward"][1]) == 3
    path = tmp_path / "checkpoint.pt"
    runs.save_checkpoint(path, agent, config, history=history, step=3)
    again = B.build(config)
    runs.load_checkpoint(path, again, config)
    for p, q in zip(agent.parameters(), again.parameters()):
        assert torch.equal(p, q)
    probs = B.IndependentBandits(3).sample_batch(5, torch.Generator().manual_seed(0)).probs
    out = B.rollout(B.RL2Policy(again), probs, 6, torch.Generator().manual_seed(0))
    assert out.action_probs.shape == (5, 6, 3)
    assert torch.allclose(out.action_probs.sum(-1), torch.ones(5, 6))


def test_rl2_training_is_seeded():
    config = B.RL2Config(arms=2, task="dependent", horizon=5, hidden=8, batch_size=8, steps=2)
    agents = []
    for _ in range(2):
        torch.manual_seed(config.seed)
        agents.append(B.build(config))
        B.train(agents[-1], config, progress=False)
    for p, q in zip(*(a.parameters() for a in agents)):
        assert torch.equal(p, q)


TINY = ["--arms", "3", "--horizon", "5", "--hidden", "8", "--batch-size", "8", "--test-episodes", "20",
        "--no-progress"]


def test_command_line_trains_evaluates_and_starts_from_another_run(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    cli.main(["train", "rl2", "--out", str(first), "--steps", "3", *TINY])
    results = json.loads((first / "results.json").read_text())
    assert set(results["results"]) == {"RL²", "UCB1", "Thompson sampling", "random"}
    assert results["results"]["RL²"]["bandits"] == 20 and "total reward" in (first / "results.md").read_text().lower()
    cli.main(["train", "rl2", "--out", str(second), "--steps", "0", "--init-from", str(first), *TINY])
    a, b = (torch.load(p / "checkpoint.pt", weights_only=True)["state_dict"] for p in (first, second))
    assert all(torch.equal(t, b[k]) for k, t in a.items())  # 0 steps from the first run's weights


def test_resume_with_the_same_steps_is_exact_even_with_an_annealed_entropy(tmp_path):
    """Steps 0-1, a checkpoint, a fresh agent, steps 2-3 == steps 0-3 in one go: the bandits of a step and
    its entropy bonus depend on (seed, step, config.steps) only (cli resumes the same way)."""
    config = B.RL2Config(arms=3, horizon=5, hidden=8, batch_size=8, steps=4, entropy_start=0.1)

    def fresh():
        torch.manual_seed(config.seed)
        agent = B.build(config)
        return agent, B.trainer(agent, config)

    straight, run = fresh()
    for i in range(4):
        run.step(i)
    first, run = fresh()
    for i in range(2):
        run.step(i)
    runs.save_checkpoint(tmp_path / "checkpoint.pt", first, config, optimizer=run.optimizer, step=2)
    resumed, run = fresh()
    runs.load_checkpoint(tmp_path / "checkpoint.pt", resumed, config, optimizer=run.optimizer)
    for i in range(2, 4):
        run.step(i)
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters()))


@pytest.mark.parametrize("options, match", [
    (["--steps", "-3"], "steps must be >= 0"),
    (["--task", "dependent", "--arms", "3"], "dependent bandits have 2 arms"),
    (["--task", "contextual"], "task must be"),
    (["--arms", "1"], "arms must be >= 2"),
    (["--gamma", "1.5"], "gamma"),
    (["--meta-lr", "0"], "meta_lr must be > 0"),
])
def test_bad_options_are_usage_errors_before_anything_is_written(tmp_path, options, match):
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "rl2", "--out", str(tmp_path / "run"), *options])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("folder", [run.folder for run in B.RUNS])
def test_the_shipped_agents_load_with_their_own_config(folder):
    if not (REPO / folder / "checkpoint.pt").is_file():
        pytest.skip(f"{folder} is not in this checkout")
    agent, payload = registry.load(REPO / folder)
    record = json.loads((REPO / folder / "config.json").read_text())
    stored, recorded = (runs.with_added_defaults(config, B.RL2Config)  # under today's names
                        for config in (payload["config"], record["config"]))
    assert record["method"] == "rl2" and stored == recorded == agent.config.__dict__
    assert payload["step"] == agent.config.steps


def test_the_trace_figure_draws_one_bandit():
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    agent = B.build(B.RL2Config(arms=3, horizon=6, hidden=8))
    probs = torch.tensor([0.2, 0.5, 0.9])
    trace = B.policy_trace(agent, probs)
    fig = bandit_figures.trace_figure(probs, trace, step=3)
    assert len(fig.axes) == 2 and trace.action_probs.shape == (1, 6, 3)


def test_with_horizon_shares_weights_and_changes_only_the_time_input():
    agent = B.RL2Agent(B.RL2Config(arms=3, horizon=10, hidden=8))
    longer = agent.with_horizon(100)
    assert longer.config.horizon == 100 and agent.config.horizon == 10
    for p, q in zip(agent.parameters(), longer.parameters()):
        assert torch.equal(p, q)
    assert longer.make_input(None, None, 50, 1)[0, -1].item() == pytest.approx(0.5)
    assert agent.learned_variables() == 8


def test_tuned_ucb_constant_is_one_of_the_grid():
    c, scores = B.tune_ucb_constant(B.IndependentBandits(3), 10, constants=(0.1, 2.0), bandits=50)
    assert c in (0.1, 2.0) and set(scores) == {0.1, 2.0}


# --------------------------------------------------------------------------
# The Bayes-optimal oracle
# --------------------------------------------------------------------------


@pytest.mark.parametrize("arms", [2, 3, 5])
def test_bayes_optimal_value_closed_forms(arms):
    # one pull: any arm pays 1/2 on average; two pulls: stay after a success (posterior mean 2/3),
    # switch to a fresh arm (1/2) after a failure: 1/2 + 1/2 * 2/3 + 1/2 * 1/2 = 13/12
    assert B.bayes_optimal_value("independent", arms, 1) == pytest.approx(0.5)
    assert B.bayes_optimal_value("independent", arms, 2) == pytest.approx(13 / 12)
    # dependent arms: after one pull, whatever it showed, the favoured arm has posterior mean 2/3
    assert B.bayes_optimal_value("dependent", 2, 2) == pytest.approx(0.5 + 2 / 3)


def _brute_force_value(arms: int, horizon: int, dependent: bool) -> float:
    """Max over every action at every *history* (no state merging, no sorting), with the predictive
    probability of a reward computed by quadrature over the prior instead of Beta-count formulas."""
    grid = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # midpoint rule on [0, 1]

    def arm_p(arm, p):  # p: values of p_1 (dependent) or of this arm's own p (independent)
        return 1 - p if dependent and arm == 1 else p

    def predictive(history, arm):
        if dependent:
            weight = torch.ones_like(grid)
            for a, r in history:
                q = arm_p(a, grid)
                weight = weight * (q if r else 1 - q)
            return float((weight * arm_p(arm, grid)).sum() / weight.sum())
        weight = torch.ones_like(grid)
        for a, r in history:
            if a == arm:
                weight = weight * (grid if r else 1 - grid)
        return float((weight * grid).sum() / weight.sum())

    def value(history):
        if len(history) == horizon:
            return 0.0
        best = 0.0
        for arm in range(arms):
            p = predictive(history, arm)
            best = max(best, p * (1 + value(history + [(arm, 1)])) + (1 - p) * value(history + [(arm, 0)]))
        return best

    return value([])


@pytest.mark.parametrize("task,arms,horizon", [("independent", 2, 4), ("independent", 3, 3), ("dependent", 2, 5)])
def test_bayes_optimal_value_matches_a_brute_force_search_over_histories(task, arms, horizon):
    expected = _brute_force_value(arms, horizon, dependent=task == "dependent")
    assert B.bayes_optimal_value(task, arms, horizon) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("task,arms", [("independent", 5), ("dependent", 2)])
def test_bayes_optimal_policy_earns_its_value_and_beats_thompson(task, arms):
    horizon, n = 10, 6000
    tasks = (B.IndependentBandits(arms) if task == "independent" else B.DependentBandits())
    probs = tasks.sample_batch(n, torch.Generator().manual_seed(3)).probs
    results = {}
    for name, policy in {"bayes": B.BayesOptimalPolicy(task), "thompson": B.ThompsonSampling()}.items():
        out = B.rollout(policy, probs, horizon, torch.Generator().manual_seed(4))
        results[name] = probs.max(-1).values * horizon - out.cumulative_regret()[:, -1]  # expected reward per task
    value = B.bayes_optimal_value(task, arms, horizon)
    bayes = results["bayes"]
    assert abs(bayes.mean().item() - value) < 3.5 * bayes.std().item() / math.sqrt(n)
    gain = results["bayes"] - results["thompson"]  # the same tasks: a paired comparison
    assert gain.mean().item() > 3 * gain.std().item() / math.sqrt(n)


def test_bayes_optimal_refuses_horizons_it_cannot_solve_exactly():
    with pytest.raises(ValueError, match="at most 20 pulls"):
        B.bayes_optimal_value("independent", 5, 100)
    with pytest.raises(ValueError, match="at most 20 pulls"):
        B.BayesOptimalPolicy().reset(4, 5, 100)
    with pytest.raises(ValueError, match="2 arms"):
        B.bayes_optimal_value("dependent", 3, 10)
    assert not B.bayes_optimal_solvable("independent", 5, 100)
    assert B.bayes_optimal_solvable("independent", 5, 10) and B.bayes_optimal_solvable("dependent", 2, 100)
