"""Tests for course_lib.symla: arm-permutation equivariance, any number of arms, the A2C update."""

from __future__ import annotations

import torch

from course_lib import bandits, symla


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
    config = symla.SymLAConfig(hidden=4, batch_size=8, horizon=5, iterations=3)
    agent, history = symla.train(config)
    assert history["iterations_done"] == 3 and all(p.grad is not None and torch.isfinite(p.grad).all()
                                                    for p in agent.parameters())
    result = symla.evaluate({"SymLA": symla.SymLAPolicy(agent), "random": bandits.RandomPolicy()}, 3, 5,
                            bandits_count=20)
    assert set(result) == {"SymLA", "random"} and result["SymLA"]["ci95"] > 0
