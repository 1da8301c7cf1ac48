"""SymLA: a symmetric learning agent for bandits (Kirsch et al., AAAI 2022), in one file.

"Introducing Symmetries to Black Box Meta Reinforcement Learning": give
every connection (input unit ``a``, action ``b``) of the policy its own
small LSTM, all sharing one set of meta-parameters (VSML's idea, notebook
07), and feed each cell the reward of the previous step. Here, for
Bernoulli bandits (no observation), the input units are ``x = (1, t/T)``
and the cell ``ab`` reads, at pull ``t``:

    in_ab = [x_a, pulled_b, r_{t-1} pulled_b, r_{t-1}, n_a]      (pulled_b = 1 if arm b was pulled at t-1)
    n_a   = mean_b h_ab W_back                                   (what the other arms' cells hold: a backward message)
    (h_ab, c_ab) <- LSTM_theta(in_ab, (h_ab, c_ab))
    logit_b = sum_a h_ab . w_out,     value = mean_ab h_ab . w_value

All arms are treated by the same function, so permuting the arms permutes
the policy (equivariance) and the same ``theta`` plays any number of arms.
An RL² GRU (``course_lib.bandits``) has neither property: its input and
output layers are tied to the arm count and order.

Meta-training is the A2C of ``course_lib.bandits.rl2_update`` (same loss,
same advantages); the command line trains a SymLA agent and, for the
comparison, an RL² GRU on the same (2-armed) bandits::

    python -m course_lib.symla --arms 2 --horizon 10 --iterations 1500 --out data/vsml/symla
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import bandits


@dataclass
class SymLAConfig:
    arms: int = 2
    horizon: int = 10
    hidden: int = 16  # LSTM size per cell
    message_size: int = 4  # the backward message n_a
    batch_size: int = 256
    lr: float = 3e-3
    gamma: float = 0.99
    gae_lambda: float = 0.3
    entropy_start: float = 0.05
    entropy_end: float = 0.0
    value_coef: float = 0.5
    iterations: int = 1500
    seed: int = 0

    # The A2C helper of course_lib.bandits reads these two.
    value_scale: float = 1.0
    task: str = "independent"


INPUT_UNITS = 2  # x = (1, t / T)


class SymLAAgent(nn.Module):
    """Cells ``[batch, inputs, arms, H]`` with shared LSTM weights; any number of arms."""

    def __init__(self, config: SymLAConfig) -> None:
        super().__init__()
        self.config = config
        self.cell = nn.LSTMCell(4 + config.message_size, config.hidden)
        self.w_back = nn.Parameter(torch.randn(config.hidden, config.message_size) / math.sqrt(config.hidden))
        self.w_out = nn.Parameter(torch.randn(config.hidden) / math.sqrt(config.hidden))
        self.w_value = nn.Parameter(torch.randn(config.hidden) / math.sqrt(config.hidden))
        self.value_bias = nn.Parameter(torch.zeros(()))

    def initial_state(self, batch_size: int, arms: int):
        shape = (batch_size, INPUT_UNITS, arms, self.config.hidden)
        device = self.w_out.device
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def step(self, state, prev_action, prev_reward, t: int, horizon: int):
        """One pull: ``(logits [batch, arms], value [batch], state)``; ``prev_action`` None at t = 0."""
        h, c = state
        batch, inputs, arms, hidden = h.shape
        device = h.device
        x = torch.tensor([1.0, t / horizon], device=device).expand(batch, inputs)
        if prev_action is None:
            pulled = torch.zeros(batch, arms, device=device)
            reward = torch.zeros(batch, device=device)
        else:
            pulled = torch.nn.functional.one_hot(prev_action, arms).float()
            reward = prev_reward.float()
        back = h.mean(dim=2) @ self.w_back  # [batch, inputs, M]
        features = torch.cat([
            x[:, :, None, None].expand(batch, inputs, arms, 1),
            pulled[:, None, :, None].expand(batch, inputs, arms, 1),
            (pulled * reward[:, None])[:, None, :, None].expand(batch, inputs, arms, 1),
            reward[:, None, None, None].expand(batch, inputs, arms, 1),
            back[:, :, None, :].expand(batch, inputs, arms, self.config.message_size),
        ], dim=-1)
        h, c = self.cell(features.reshape(-1, features.shape[-1]), (h.reshape(-1, hidden), c.reshape(-1, hidden)))
        h, c = h.view(batch, inputs, arms, hidden), c.view(batch, inputs, arms, hidden)
        logits = (h @ self.w_out).sum(dim=1)  # messages summed over the input units
        value = (h @ self.w_value).mean(dim=(1, 2)) + self.value_bias
        return logits, value, (h, c)

    def learned_variables(self, arms: int) -> int:
        return INPUT_UNITS * arms * 2 * self.config.hidden


class SymLAPolicy(bandits.BanditPolicy):
    """A trained agent as a ``bandits.BanditPolicy`` (samples its actions; any number of arms)."""

    def __init__(self, agent: SymLAAgent, horizon: int | None = None) -> None:
        self.agent, self.horizon_override, self.name = agent, horizon, "SymLA"

    def reset(self, batch_size, arms, horizon, generator=None) -> None:
        super().reset(batch_size, arms, horizon, generator)
        self.state = self.agent.initial_state(batch_size, arms)
        self.prev, self._probs_t, self.run_horizon = (None, None), None, horizon

    def probs(self, t: int) -> torch.Tensor:
        if self._probs_t is None or self._probs_t[0] != t:
            logits, _, self.state = self.agent.step(self.state, *self.prev, t, self.run_horizon)
            self._probs_t = (t, logits.softmax(-1))
        return self._probs_t[1]

    def act(self, t: int) -> torch.Tensor:
        return torch.multinomial(self.probs(t), 1, generator=self.generator).squeeze(1)

    def observe(self, actions, rewards) -> None:
        super().observe(actions, rewards)
        self.prev = (actions, rewards)


def symla_update(agent: SymLAAgent, optimizer, tasks, entropy_coef: float, generator) -> dict:
    """One A2C update, the loss of ``bandits.rl2_update``."""
    config = agent.config
    probs = tasks.sample_batch(config.batch_size, generator).probs
    env = bandits.BanditEnv(probs, generator)
    state = agent.initial_state(config.batch_size, probs.shape[1])
    prev = (None, None)
    logps, values, entropies, rewards = [], [], [], []
    for t in range(config.horizon):
        logits, value, state = agent.step(state, *prev, t, config.horizon)
        log_pi = logits.log_softmax(-1)
        a = torch.multinomial(log_pi.exp().detach(), 1, generator=generator).squeeze(1)
        r, _ = env.pull(a)
        logps.append(log_pi.gather(1, a.view(-1, 1)).squeeze(1))
        entropies.append(-(log_pi.exp() * log_pi).sum(-1))
        values.append(value)
        rewards.append(r)
        prev = (a, r)
    logps, values, entropies, rewards = (torch.stack(v, 1) for v in (logps, values, entropies, rewards))
    advantages, returns = bandits._discounted_advantages(rewards, values.detach(), config.gamma, config.gae_lambda)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    loss = -(advantages * logps).mean() + config.value_coef * (values - returns).pow(2).mean() \
        - entropy_coef * entropies.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
    optimizer.step()
    return {"total_reward": rewards.sum(1).mean().item(), "entropy": entropies.mean().item()}


def train(config: SymLAConfig, max_seconds: float | None = None) -> tuple[SymLAAgent, dict]:
    torch.manual_seed(config.seed)
    agent = SymLAAgent(config)
    optimizer = torch.optim.Adam(agent.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    tasks = bandits.IndependentBandits(config.arms)
    history, started = {"iteration": [], "total_reward": []}, time.time()
    for i in range(config.iterations):
        if max_seconds is not None and time.time() - started > max_seconds:
            break
        coef = config.entropy_start + (config.entropy_end - config.entropy_start) * i / max(config.iterations - 1, 1)
        info = symla_update(agent, optimizer, tasks, coef, generator)
        if i % 10 == 0:
            history["iteration"].append(i)
            history["total_reward"].append(info["total_reward"])
    history["iterations_done"] = i + 1 if config.iterations else 0
    history["seconds"] = time.time() - started
    return agent, history


def evaluate(policies: dict, arms: int, horizon: int, bandits_count: int = 2000, seed: int = 0,
             permute: bool = False) -> dict:
    """Total reward (mean, 95% CI) of every policy on the same independent test bandits.

    ``permute``: each bandit's arms in a random order (the same bandits otherwise)."""
    probs = bandits.IndependentBandits(arms).sample_batch(bandits_count, torch.Generator().manual_seed(seed + 999)).probs
    if permute:
        order = torch.rand(bandits_count, arms, generator=torch.Generator().manual_seed(seed + 5)).argsort(1)
        probs = probs.gather(1, order)
    out = {}
    for name, result in bandits.compare_policies(policies, probs, horizon, seed=seed).items():
        rewards = result.total_reward.double()
        out[name] = {"mean": rewards.mean().item(),
                     "ci95": 1.959963984540054 * rewards.std().item() / math.sqrt(len(rewards))}
    return out


def main(argv=None) -> dict:  # pragma: no cover - exercised by hand and by the shipped run
    parser = argparse.ArgumentParser(prog="python -m course_lib.symla", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", type=int, default=2)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    config = SymLAConfig(arms=args.arms, horizon=args.horizon, iterations=args.iterations, seed=args.seed)
    budget = None if args.max_minutes is None else 30 * args.max_minutes  # half for SymLA, half for RL²
    agent, history = train(config, budget)
    torch.save({"config": dataclasses.asdict(config), "state_dict": agent.state_dict(), "history": history},
               args.out / "symla.pt")
    rl2_config = bandits.RL2Config(arms=args.arms, horizon=args.horizon, task="independent",
                                   iterations=args.iterations, seed=args.seed)
    rl2, rl2_history = bandits.train_rl2(rl2_config, checkpoint=args.out / "rl2.pt", progress=False,
                                         max_seconds=budget)
    agent.eval()
    rl2.eval()
    policies_train = {"SymLA": SymLAPolicy(agent), "RL² GRU": bandits.RL2Policy(rl2),
                      "UCB1": bandits.UCB1(), "Thompson": bandits.ThompsonSampling(), "random": bandits.RandomPolicy()}
    results = {"trained on": f"independent {args.arms}-armed Bernoulli bandits, {args.horizon} pulls",
               "symla_iterations": history["iterations_done"], "symla_seconds": round(history["seconds"], 1),
               "rl2_iterations": rl2_history.steps_done,
               "command": "python -m course_lib.symla " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
               "evaluation": {}}
    results["evaluation"][f"{args.arms} arms (training distribution)"] = evaluate(policies_train, args.arms, args.horizon)
    others = {k: v for k, v in policies_train.items() if k != "RL² GRU"}
    for arms in (5, 10):
        results["evaluation"][f"{arms} arms (never trained on)"] = evaluate(others, arms, args.horizon)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for row, entry in results["evaluation"].items():
        print(row + ": " + ", ".join(f"{k} {v['mean']:.2f}" for k, v in entry.items()))
    return results


if __name__ == "__main__":  # pragma: no cover
    main()
