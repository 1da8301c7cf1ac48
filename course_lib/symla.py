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
same advantages). The shipped runs in ``data/vsml/symla/``: a SymLA agent
and, for the comparison, an RL² GRU on the same (2-armed) bandits::

    python -m course_lib train symla --arms 2 --horizon 10 --steps 3000 --out data/vsml/symla/symla
    python -m course_lib train rl2 --task independent --arms 2 --horizon 10 --steps 3000 --out data/vsml/symla/rl2
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from . import bandits
from .episodes import step_generator
from .runs import History, RunSpec, Trainer, train_loop


@dataclass
class SymLAConfig:
    """A SymLA agent and its A2C meta-training on independent Bernoulli bandits."""

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
    steps: int = 1500
    seed: int = 0
    value_scale: float = 1.0  # as in bandits.RL2Config (SymLA's value needs no scaling: 1)
    task: str = "independent"  # the training bandits (the only kind SymLA is trained on here)

    def __post_init__(self) -> None:
        bandits.check_a2c_config(self)
        if self.message_size < 1:
            raise ValueError(f"message_size must be >= 1, got {self.message_size}")
        if self.task != "independent":
            raise ValueError(f"task must be 'independent', got {self.task!r}")


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
    advantages, returns = bandits.discounted_advantages(rewards, values.detach(), config.gamma, config.gae_lambda)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    loss = -(advantages * logps).mean() + config.value_coef * (values - returns).pow(2).mean() \
        - entropy_coef * entropies.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
    optimizer.step()
    return {"total_reward": rewards.sum(1).mean().item(), "entropy": entropies.mean().item()}


def trainer(model: SymLAAgent, config: SymLAConfig, data: dict | None = None, device="cpu") -> Trainer:
    """One A2C update per step on the CPU; the bandits of step ``i`` depend on ``(config.seed, i)`` only."""
    model.cpu().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    tasks = bandits.IndependentBandits(config.arms)

    def step(i: int) -> dict[str, float]:
        return symla_update(model, optimizer, tasks, bandits.entropy_coefficient(config, i),
                            step_generator(config.seed, i))

    return Trainer(step, optimizer)


def train(agent: SymLAAgent, config: SymLAConfig, *, progress: bool = True,
          max_seconds: float | None = None) -> History:
    """Meta-train ``agent`` for ``config.steps`` updates (the command line does the same in a run folder)."""
    history = train_loop(trainer(agent, config).step, config.steps, progress=progress, max_seconds=max_seconds,
                         desc=describe(config))
    agent.eval()
    return history


# --------------------------------------------------------------------------
# The face the registry reads (course_lib.registry)
# --------------------------------------------------------------------------

Config = SymLAConfig
PAPER: dict[str, float] = {}  # the paper's environments are not these bandits
RUNS = (RunSpec("data/vsml/symla/symla", "SymLA on bandits (notebook 07)"),)
TEST_ARMS = (5, 10)  # arm counts SymLA is tested on besides its own


def build(config: SymLAConfig) -> SymLAAgent:
    return SymLAAgent(config)


def load_data(config: SymLAConfig, smoke: bool = False) -> dict:
    """Nothing to load: the bandits are drawn."""
    return {}


def evaluate(model: SymLAAgent, config: SymLAConfig, data: dict | None = None, device="cpu", *, settings=(),
             episodes: int = 2000, progress: bool = True) -> dict[str, dict]:
    """Total reward over ``config.horizon`` pulls on ``episodes`` independent test bandits with the
    training arm count and with :data:`TEST_ARMS` arms, next to ``bandits.classic_policies``."""
    results = {}
    for arms in dict.fromkeys((config.arms, *TEST_ARMS)):
        row = f"{arms} arms ({'training distribution' if arms == config.arms else 'never trained on'})"
        policies = {"SymLA": SymLAPolicy(model.cpu().eval()), **bandits.classic_policies()}
        results[row] = bandits.reward_table(policies, bandits.IndependentBandits(arms), config.horizon, episodes)
    return results


def evaluation_details(settings) -> dict:
    return {"test_bandits_seed": 999, "policy_seed": 0}


def results_markdown(method, results: dict, config, meta: dict) -> str:
    return bandits.reward_markdown(describe(config), results, config, meta)


def predictor(model: SymLAAgent) -> SymLAPolicy:
    """The agent as a ``bandits.BanditPolicy`` (SymLA is not a few-shot classifier)."""
    return SymLAPolicy(model)


def describe(config: SymLAConfig) -> str:
    return (f"SymLA (LSTM-{config.hidden} per connection) on independent {config.arms}-armed bandits, "
            f"{config.horizon} pulls, batch {config.batch_size}")
