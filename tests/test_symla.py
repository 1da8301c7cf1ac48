"""Tests for course_lib.symla: arm-permutation equivariance, any number of arms, the A2C update."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from course_lib import bandits, cli, registry, symla

REPO = Path(__file__).resolve().parent.parent


def _play(agent, actions, rewards, arms):
    state = agent.initial_state(actions.shape[0], arms)
    prev, out = (None, None), []
    for t in range(actions.shape[1]):
        logits, value, state = agent.step(state, *prev, t, actions.shape[1])
        out.append((logits, value))
        prev = (actions[:, t], rewards[:, t])
    return out


def test_permuting_the_arms_permutes_the_policy():
    torch.manual_seed(0)
    agent = symla.SymLAAgent(symla.SymLAConfig(hidden=6))
    g = torch.Generator().manual_seed(1)
    arms = 4
    actions = torch.randint(0, arms, (3, 7), generator=g)
    rewards = torch.randint(0, 2, (3, 7), generator=g).float()
    perm = torch.randperm(arms, generator=g)  # arm k is now called perm[k]
    plain = _play(agent, actions, rewards, arms)
    permuted = _play(agent, perm[actions], rewards, arms)
    for (logits, value), (logits_p, value_p) in zip(plain, permuted):
        torch.testing.assert_close(logits_p[:, perm], logits)
        torch.testing.assert_close(value_p, value)


def test_any_number_of_arms_and_a_policy_interface():
    torch.manual_seed(0)
    agent = symla.SymLAAgent(symla.SymLAConfig(hidden=4))
    for arms in (2, 5, 10):
        probs = bandits.IndependentBandits(arms).sample_batch(6, torch.Generator().manual_seed(arms)).probs
        out = bandits.rollout(symla.SymLAPolicy(agent), probs, 8, torch.Generator().manual_seed(0))
        assert out.actions.shape == (6, 8) and int(out.actions.max()) < arms
        assert out.action_probs.shape == (6, 8, arms)
    assert agent.learned_variables(5) == symla.INPUT_UNITS * 5 * 2 * 4


def test_update_and_evaluation_run():
    config = symla.SymLAConfig(hidden=4, batch_size=8, horizon=5, steps=3)
    torch.manual_seed(0)
    agent = symla.build(config)
    history = symla.train(agent, config, progress=False)
    assert len(history["total_reward"][1]) == 3 and all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in agent.parameters())
    result = bandits.reward_table({"SymLA": symla.SymLAPolicy(agent), "random": bandits.RandomPolicy()},
                                  bandits.IndependentBandits(3), 5, count=20)
    assert set(result) == {"SymLA", "random"} and result["SymLA"]["ci95"] > 0
    rows = symla.evaluate(agent, config, episodes=10)
    assert list(rows) == ["2 arms (training distribution)", "5 arms (never trained on)", "10 arms (never trained on)"]
    assert set(rows["5 arms (never trained on)"]) == {"SymLA", "UCB1", "Thompson sampling", "random"}


def test_command_line_writes_a_run_folder(tmp_path):
    out = tmp_path / "run"
    cli.main(["train", "symla", "--out", str(out), "--steps", "2", "--hidden", "4", "--batch-size", "8",
              "--horizon", "5", "--test-episodes", "10", "--no-progress"])
    results = json.loads((out / "results.json").read_text())
    assert results["steps_done"] == 2 and len(results["results"]) == 3
    assert "| 5 arms (never trained on) |" in (out / "results.md").read_text()


@pytest.mark.parametrize("options, match", [
    (["--steps", "-3"], "steps must be >= 0"), (["--task", "dependent"], "task must be 'independent'"),
    (["--message-size", "0"], "message_size must be >= 1"), (["--arms", "1"], "arms must be >= 2")])
def test_bad_options_are_usage_errors_before_anything_is_written(tmp_path, options, match):
    with pytest.raises(SystemExit, match=match):
        cli.main(["train", "symla", "--out", str(tmp_path / "run"), *options])
    assert not (tmp_path / "run").exists()


def test_the_shipped_agent_reproduces_its_shipped_numbers():
    """The converted run folder: same weights, so the same total reward on the same 2,000 test bandits."""
    folder = REPO / "data" / "vsml" / "symla" / "symla"
    if not (folder / "checkpoint.pt").is_file():
        pytest.skip("data/vsml/symla is not in this checkout")
    agent, payload = registry.load(folder)
    shipped = json.loads((folder / "results.json").read_text())["results"]["5 arms (never trained on)"]["SymLA"]
    again = bandits.reward_table({"SymLA": symla.SymLAPolicy(agent)}, bandits.IndependentBandits(5), 10, count=2000)
    assert payload["step"] == 3000 and again["SymLA"]["mean"] == shipped["mean"]
