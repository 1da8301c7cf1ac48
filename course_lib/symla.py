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
output layers are tied to the arm count and order. Meta-training is RL²'s
A2C (``bandits.a2c_update``); ``data/vsml/symla/`` holds a SymLA agent and
an RL² GRU trained on the same 2-armed bandits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import bandits
from .runs import History, RunSpec


@dataclass
class SymLAConfig(bandits.A2CConfig):
    """A SymLA agent and its A2C meta-training (that of RL²) on independent Bernoulli bandits."""

    arms: int = 2
    horizon: int = 10
    hidden: int = 16  # LSTM size per cell
    steps: int = 1500
    message_size: int = 4  # the backward message n_a

    def __post_init__(self) -> None:
        super().__post_init__()
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
        return torch.zeros(shape, device=self.w_out.device), torch.zeros(shape, device=self.w_out.device)

    def step(self, state, prev_action, prev_reward, t: int, horizon: int | None = None):
        """One pull of a ``horizon``-pull episode (default: the training one):
        ``(logits [batch, arms], value [batch], state)``; ``prev_action`` None at t = 0."""
        h, c = state
        batch, inputs, arms, hidden = h.shape
        x = torch.tensor([1.0, t / (horizon or self.config.horizon)], device=h.device).expand(batch, inputs)
        if prev_action is None:
            pulled, reward = torch.zeros(batch, arms, device=h.device), torch.zeros(batch, device=h.device)
        else:
            pulled, reward = F.one_hot(prev_action, arms).float(), prev_reward.float()
        back = h.mean(dim=2) @ self.w_back  # [batch, inputs, M]
        features = torch.cat([  # in_ab = [x_a, pulled_b, r pulled_b, r, n_a], for every cell ab
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


class SymLAPolicy(bandits.AgentPolicy):
    """A trained agent as a ``bandits.BanditPolicy``: any number of arms, any horizon."""

    def __init__(self, agent: SymLAAgent) -> None:
        super().__init__(agent, "SymLA")

    def agent_step(self, t: int):
        return self.agent.step(self.state, *self.prev, t, self.horizon)


def train(agent: SymLAAgent, config: SymLAConfig, *, progress: bool = True,
          max_seconds: float | None = None) -> History:
    """Meta-train ``agent`` for ``config.steps`` A2C updates (``bandits.train``, as RL²)."""
    return bandits.train(agent, config, progress=progress, max_seconds=max_seconds, desc=describe(config))


# ---------------- The face the registry reads (course_lib.registry)

Config = SymLAConfig
PAPER: dict[str, float] = {}  # the paper's environments are not these bandits
RUNS = (RunSpec("data/vsml/symla/symla", "SymLA on bandits (notebook 07)"),)
TEST_ARMS = (5, 10)  # arm counts SymLA is tested on besides its own
trainer = bandits.trainer  # one bandits.a2c_update per step, as RL²'s
load_data = bandits.load_data
evaluation_details = bandits.evaluation_details


def build(config: SymLAConfig) -> SymLAAgent:
    return SymLAAgent(config)


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


def results_markdown(method, results: dict, config, meta: dict) -> str:
    return bandits.reward_markdown(describe(config), results, config, meta)


def predictor(model: SymLAAgent) -> SymLAPolicy:
    """The agent as a ``bandits.BanditPolicy`` (SymLA is not a few-shot classifier)."""
    return SymLAPolicy(model)


def describe(config: SymLAConfig) -> str:
    return (f"SymLA (LSTM-{config.hidden} per connection) on independent {config.arms}-armed bandits, "
            f"{config.horizon} pulls, batch {config.batch_size}")
