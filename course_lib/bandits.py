"""Bernoulli bandits, classic bandit algorithms, and RL² (a meta-learned GRU policy).

Introduced in notebook 05 (black-box meta-learning). A *task* is a K-armed
Bernoulli bandit: arm k pays reward 1 with probability p_k and 0 otherwise.
A task distribution p(T) is a distribution over the vector p:

* :class:`IndependentBandits`: p_k ~ U[0, 1] independently (Duan et al. 2016);
* :class:`DependentBandits`: two arms with p_2 = 1 - p_1, p_1 ~ U[0, 1]
  (Wang et al. 2016): one pull of either arm says something about both.

An agent plays one task for ``horizon`` pulls. Its **(pseudo-)regret** after
T pulls is the expected reward it missed by not always pulling the best arm:

    regret_T = sum_{t=1..T} (max_k p_k - p_{a_t})

(the expectation over the rewards; ``rollout`` records it per pull, so its mean
over tasks estimates the expected regret without the noise of the rewards).

Policies share one small interface (``reset`` / ``act`` / ``observe``), all
vectorised over a batch of tasks: :class:`RandomPolicy`, :class:`FixedArmPolicy`,
:class:`OraclePolicy`, :class:`GreedyPolicy`, :class:`UCB1`,
:class:`ThompsonSampling`, and :class:`RL2Policy` around a trained
:class:`RL2Agent`: a GRU that reads (previous action, previous reward, time)
and whose hidden state is the only thing that changes while it learns a task.
:func:`train` meta-trains it with advantage actor-critic (REINFORCE with a
learned value baseline and an entropy bonus) over many tasks at once.

``python -m course_lib train rl2`` runs the same training step in a run
folder (what made the agents in ``data/black_box/``)::

    python -m course_lib train rl2 --task independent --arms 5 --horizon 10 --steps 10000 \\
        --out data/black_box/rl2_independent5_T10

``--init-from`` starts from another run's weights (a curriculum over
horizons) and ``--value-scale`` / ``--gae-lambda`` tune the critic;
``data/black_box/README.md`` says which of these runs helped.

:func:`bayes_optimal_value` and :class:`BayesOptimalPolicy` give the exact
Bayes-optimal policy for short horizons: the ceiling for any learned policy.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .episodes import TaskDistribution, step_generator
from .runs import CHECKPOINT_FILE, History, RunSpec, Trainer, read_checkpoint, train_loop
from .runtime import repo_root

# --------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------


@dataclass
class BanditTask:
    """The arm probabilities of one bandit, ``probs: [arms]`` (or ``[batch, arms]``)."""

    probs: torch.Tensor

    @property
    def arms(self) -> int:
        return self.probs.shape[-1]


class IndependentBandits(TaskDistribution[BanditTask]):
    """K arms, p_k ~ U[low, high] independently."""

    def __init__(self, arms: int = 5, low: float = 0.0, high: float = 1.0) -> None:
        if arms < 2:
            raise ValueError(f"a bandit needs at least 2 arms, got {arms}")
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"need 0 <= low <= high <= 1, got {low}, {high}")
        self.arms, self.low, self.high = arms, low, high

    def sample(self, generator: torch.Generator | None = None) -> BanditTask:
        return BanditTask(self.sample_batch(1, generator).probs[0])

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> BanditTask:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        u = torch.rand(batch_size, self.arms, generator=generator)
        return BanditTask(self.low + (self.high - self.low) * u)

    def __repr__(self) -> str:
        return f"IndependentBandits(arms={self.arms}, p ~ U[{self.low}, {self.high}])"


class DependentBandits(TaskDistribution[BanditTask]):
    """Two arms with p_1 ~ U[0, 1] and p_2 = 1 - p_1 (Wang et al. 2016, "dependent bandits")."""

    arms = 2

    def sample(self, generator: torch.Generator | None = None) -> BanditTask:
        return BanditTask(self.sample_batch(1, generator).probs[0])

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> BanditTask:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        p = torch.rand(batch_size, 1, generator=generator)
        return BanditTask(torch.cat([p, 1 - p], dim=1))

    def __repr__(self) -> str:
        return "DependentBandits(arms=2, p_1 ~ U[0, 1], p_2 = 1 - p_1)"


def expected_step_regret(probs: torch.Tensor, action_probs: torch.Tensor) -> torch.Tensor:
    """Closed form: E[max_k p_k - p_a] for a ~ action_probs, per task (``[B, K] -> [B]``)."""
    return probs.max(-1).values - (probs * action_probs).sum(-1)


# Closed forms used by the tests and the notebook (expected over tasks AND actions).
def random_policy_expected_regret(arms: int, horizon: int) -> float:
    """Uniform random policy on IndependentBandits(arms) (U[0, 1]): T (E max p - E mean p) = T (K/(K+1) - 1/2)."""
    return horizon * (arms / (arms + 1) - 0.5)


def fixed_arm_dependent_expected_regret(horizon: int) -> float:
    """Always pulling arm 0 on DependentBandits: E max(0, 1 - 2 p) = 1/4 per pull."""
    return horizon / 4


# --------------------------------------------------------------------------
# A vectorised environment and rollouts
# --------------------------------------------------------------------------


class BanditEnv:
    """A batch of Bernoulli bandits: ``pull(actions [B]) -> rewards [B]`` (0. or 1.)."""

    def __init__(self, probs: torch.Tensor, generator: torch.Generator | None = None) -> None:
        if probs.ndim != 2:
            raise ValueError(f"probs must be [batch, arms], got shape {tuple(probs.shape)}")
        self.probs = probs
        self.generator = generator
        self.best = probs.max(-1).values

    @property
    def batch_size(self) -> int:
        return self.probs.shape[0]

    @property
    def arms(self) -> int:
        return self.probs.shape[1]

    def pull(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards and the per-task pseudo-regret ``max p - p_a`` of these actions."""
        p = self.probs.gather(1, actions.view(-1, 1)).squeeze(1)
        u = torch.rand(self.batch_size, generator=self.generator, device=self.probs.device)
        return (u < p).float(), self.best - p


@dataclass
class Rollout:
    """``actions``, ``rewards``, ``regret`` (pseudo-regret per pull): ``[batch, horizon]``;
    ``action_probs``: ``[batch, horizon, arms]`` where the policy exposes them."""

    actions: torch.Tensor
    rewards: torch.Tensor
    regret: torch.Tensor
    action_probs: torch.Tensor | None = None

    def total_reward(self) -> torch.Tensor:
        return self.rewards.sum(1)

    def cumulative_regret(self) -> torch.Tensor:
        return self.regret.cumsum(1)


class BanditPolicy:
    """Vectorised policy: ``reset(batch, arms, horizon)``, ``act(t) -> actions [B]``, ``observe(a, r)``.

    ``probs(t)`` (optional) returns the action distribution ``[B, K]`` before acting.
    """

    name = "policy"

    def reset(self, batch_size: int, arms: int, horizon: int, generator: torch.Generator | None = None) -> None:
        self.batch_size, self.arms, self.horizon, self.generator = batch_size, arms, horizon, generator
        self.counts = torch.zeros(batch_size, arms)
        self.successes = torch.zeros(batch_size, arms)

    def probs(self, t: int) -> torch.Tensor | None:
        return None

    def act(self, t: int) -> torch.Tensor:
        p = self.probs(t)
        return torch.multinomial(p, 1, generator=self.generator).squeeze(1)

    def observe(self, actions: torch.Tensor, rewards: torch.Tensor) -> None:
        self.counts[torch.arange(self.batch_size), actions] += 1
        self.successes[torch.arange(self.batch_size), actions] += rewards

    def __repr__(self) -> str:
        return self.name


class RandomPolicy(BanditPolicy):
    name = "random"

    def probs(self, t: int) -> torch.Tensor:
        return torch.full((self.batch_size, self.arms), 1.0 / self.arms)


class FixedArmPolicy(BanditPolicy):
    """Always the same arm (a reference point for closed-form tests)."""

    def __init__(self, arm: int = 0) -> None:
        self.arm = arm
        self.name = f"always arm {arm}"

    def probs(self, t: int) -> torch.Tensor:
        return F.one_hot(torch.full((self.batch_size,), self.arm), self.arms).float()


class OraclePolicy(BanditPolicy):
    """Knows p and pulls the best arm: regret 0 (an upper bound on reward, not a learner)."""

    name = "oracle"

    def __init__(self, task_probs: torch.Tensor) -> None:
        self.task_probs = task_probs

    def probs(self, t: int) -> torch.Tensor:
        return F.one_hot(self.task_probs.argmax(-1), self.arms).float()


def _argmax_random_ties(scores: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.rand(scores.shape, generator=generator) * 1e-6
    return (scores + noise).argmax(-1)


class GreedyPolicy(BanditPolicy):
    """Pull each arm once, then the arm with the best empirical mean (epsilon-greedy with epsilon > 0)."""

    def __init__(self, epsilon: float = 0.0) -> None:
        self.epsilon = epsilon
        self.name = "greedy" if epsilon == 0 else f"{epsilon}-greedy"

    def act(self, t: int) -> torch.Tensor:
        means = self.successes / self.counts.clamp(min=1)
        scores = torch.where(self.counts == 0, torch.full_like(means, math.inf), means)
        actions = _argmax_random_ties(scores, self.generator)
        if self.epsilon > 0:
            explore = torch.rand(self.batch_size, generator=self.generator) < self.epsilon
            random = torch.randint(self.arms, (self.batch_size,), generator=self.generator)
            actions = torch.where(explore, random, actions)
        return actions


class UCB1(BanditPolicy):
    """Auer et al. (2002): pull each arm once, then argmax_k mean_k + sqrt(c ln t / n_k) (c = 2)."""

    def __init__(self, c: float = 2.0) -> None:
        self.c = c
        self.name = "UCB1" if c == 2.0 else f"UCB1 (c={c})"

    def act(self, t: int) -> torch.Tensor:
        n = self.counts.clamp(min=1)
        bonus = torch.sqrt(self.c * math.log(max(t, 1)) / n)
        scores = self.successes / n + bonus
        scores = torch.where(self.counts == 0, torch.full_like(scores, math.inf), scores)
        return _argmax_random_ties(scores, self.generator)


class ThompsonSampling(BanditPolicy):
    """Thompson (1933) with Beta(1, 1) priors: sample p_k ~ Beta(1 + s_k, 1 + f_k), pull the argmax."""

    name = "Thompson sampling"

    def reset(self, batch_size, arms, horizon, generator=None) -> None:
        super().reset(batch_size, arms, horizon, generator)
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        self.rng = np.random.default_rng(seed)  # numpy: Beta draws from a seeded stream

    def act(self, t: int) -> torch.Tensor:
        a = (1 + self.successes).numpy()
        b = (1 + self.counts - self.successes).numpy()
        return torch.from_numpy(self.rng.beta(a, b)).argmax(-1)


# --------------------------------------------------------------------------
# The Bayes-optimal policy: an exact oracle for short horizons
# --------------------------------------------------------------------------

# Posterior states the exact solver may visit (an upper bound, counted before symmetry): 5 arms x 20 pulls
# is 1e7 (about 350k states after symmetry, seconds); 5 x 30 would be 2e8 (minutes and gigabytes).
MAX_BAYES_STATES = 30_000_000


def _posterior_states_bound(task: str, arms: int, horizon: int) -> int:
    """Ways to split ``horizon`` outcomes over the (successes, failures) of every arm."""
    cells = 2 if task == "dependent" else 2 * arms
    return math.comb(horizon + cells - 1, cells - 1)


def _next_states(task: str, state: tuple, arm: int) -> tuple[float, tuple, tuple]:
    """(P(reward 1), state after a success, state after a failure) of pulling ``arm`` in posterior ``state``.

    ``independent`` (p_k ~ U[0, 1], i.e. Beta(1, 1) priors): the state is the sorted tuple of each arm's
    (successes, failures); arms with the same counts are interchangeable, so sorting merges them.
    ``dependent`` (p_2 = 1 - p_1): the state is (a, b) with posterior p_1 ~ Beta(1 + a, 1 + b); a success
    of arm 1 or a failure of arm 2 is evidence for p_1 (a + 1), the other two outcomes for p_2 (b + 1).
    """
    if task == "dependent":
        a, b = state
        p1 = (a + 1) / (a + b + 2)
        if arm == 0:
            return p1, (a + 1, b), (a, b + 1)
        return 1 - p1, (a, b + 1), (a + 1, b)
    s, f = state[arm]
    win = tuple(sorted(state[:arm] + ((s + 1, f),) + state[arm + 1:]))
    lose = tuple(sorted(state[:arm] + ((s, f + 1),) + state[arm + 1:]))
    return (s + 1) / (s + f + 2), win, lose


@functools.lru_cache(maxsize=None)
def _bayes_value(task: str, state: tuple, pulls_left: int) -> float:
    """Bellman's equation over posterior states: the best expected reward still to come."""
    if pulls_left == 0:
        return 0.0
    return max(_bayes_action_values(task, state, pulls_left))


def _bayes_action_values(task: str, state: tuple, pulls_left: int) -> list[float]:
    values = []
    for arm in range(len(state)):
        p, win, lose = _next_states(task, state, arm)
        values.append(p * (1 + _bayes_value(task, win, pulls_left - 1)) + (1 - p) * _bayes_value(task, lose, pulls_left - 1))
    return values


def _check_bayes_size(task: str, arms: int, horizon: int) -> None:
    if task not in ("independent", "dependent"):
        raise ValueError(f"task must be 'independent' or 'dependent', got {task!r}")
    if task == "dependent" and arms != 2:
        raise ValueError(f"dependent bandits have 2 arms, got {arms}")
    bound = _posterior_states_bound(task, arms, horizon)
    if bound > MAX_BAYES_STATES:
        raise ValueError(f"the exact Bayes-optimal solution for {arms} arms and {horizon} pulls may visit up to "
                         f"{bound:.1e} posterior states (limit {MAX_BAYES_STATES:.0e}): use a shorter horizon "
                         "(5 arms: at most 20 pulls) and Thompson sampling as the reference beyond it")


def bayes_optimal_solvable(task: str, arms: int, horizon: int) -> bool:
    """Whether :func:`bayes_optimal_value` / :class:`BayesOptimalPolicy` can solve this size exactly here."""
    try:
        _check_bayes_size(task, arms, horizon)
    except ValueError:
        return False
    return True


def bayes_optimal_value(task: str, arms: int, horizon: int) -> float:
    """Expected total reward of the Bayes-optimal policy on ``task`` bandits (p ~ U[0, 1]) over ``horizon`` pulls.

    No policy can do better in expectation over the task distribution, learned or not: it is the ceiling
    for RL² (Duan et al. 2016 report the Gittins index at 6.6 for 5 arms and 10 pulls; this is exact).
    """
    _check_bayes_size(task, arms, horizon)
    start = (0, 0) if task == "dependent" else tuple([(0, 0)] * arms)
    return _bayes_value(task, start, horizon)


class BayesOptimalPolicy(BanditPolicy):
    """Acts by the exact action values of :func:`bayes_optimal_value` (knows the prior and the horizon, not p)."""

    def __init__(self, task: str = "independent") -> None:
        self.task = task
        self.name = "Bayes-optimal"

    def reset(self, batch_size, arms, horizon, generator=None) -> None:
        _check_bayes_size(self.task, arms, horizon)
        super().reset(batch_size, arms, horizon, generator)

    def _state(self, i: int) -> tuple[tuple, list[int]]:
        successes = [int(v) for v in self.successes[i]]
        failures = [int(n) - s for n, s in zip(self.counts[i], successes)]
        if self.task == "dependent":
            return (successes[0] + failures[1], failures[0] + successes[1]), [0, 1]
        order = sorted(range(self.arms), key=lambda k: (successes[k], failures[k]))
        return tuple((successes[k], failures[k]) for k in order), order

    def act(self, t: int) -> torch.Tensor:
        actions = []
        for i in range(self.batch_size):
            state, order = self._state(i)
            values = torch.tensor(_bayes_action_values(self.task, state, self.horizon - t), dtype=torch.float64)
            best = torch.nonzero(values >= values.max() - 1e-12).flatten()  # ties: any best arm, at random
            pick = best[torch.randint(len(best), (1,), generator=self.generator)]
            actions.append(order[int(pick)])
        return torch.tensor(actions)


def rollout(
    policy: BanditPolicy,
    probs: torch.Tensor,
    horizon: int,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Play ``policy`` on the bandits ``probs [B, K]`` for ``horizon`` pulls (no gradients)."""
    env = BanditEnv(probs, generator)
    policy.reset(env.batch_size, env.arms, horizon, generator)
    actions, rewards, regret, action_probs = [], [], [], []
    with torch.no_grad():
        for t in range(horizon):
            p = policy.probs(t)
            if p is not None:
                action_probs.append(p)
            a = policy.act(t)
            r, g = env.pull(a)
            policy.observe(a, r)
            actions.append(a), rewards.append(r), regret.append(g)
    return Rollout(
        torch.stack(actions, 1),
        torch.stack(rewards, 1),
        torch.stack(regret, 1),
        torch.stack(action_probs, 1) if len(action_probs) == horizon else None,
    )


# --------------------------------------------------------------------------
# RL²: a recurrent policy whose hidden state is the learner
# --------------------------------------------------------------------------


@dataclass
class RL2Config:
    """An RL² agent and its meta-training by A2C (one step = one batch of tasks, one episode each)."""

    arms: int = 5
    horizon: int = 100
    hidden: int = 48
    task: str = "independent"  # or "dependent"
    batch_size: int = 256
    lr: float = 3e-3
    gamma: float = 0.99  # within one task; the hidden state is reset between tasks
    gae_lambda: float = 0.3
    entropy_start: float = 0.05  # the entropy bonus goes linearly from entropy_start at step 0 ...
    entropy_end: float = 0.0  # ... to entropy_end at the last step (resuming with more steps stretches the rest)
    value_coef: float = 0.5
    steps: int = 1000
    seed: int = 0
    timestep_input: bool = True
    value_scale: float = 1.0  # the value head predicts return / value_scale (keeps its loss O(1) for long T)
    init_from: str = ""  # curriculum: start from the weights of this run folder (e.g. trained on a shorter horizon)

    def __post_init__(self) -> None:
        check_a2c_config(self)
        if self.task not in ("independent", "dependent"):
            raise ValueError(f"task must be 'independent' or 'dependent', got {self.task!r}")
        if self.task == "dependent" and self.arms != 2:
            raise ValueError(f"dependent bandits have 2 arms, got arms={self.arms}")


def check_a2c_config(config) -> None:
    """The checks every A2C bandit config needs (RL² here, SymLA in ``course_lib.symla``)."""
    for name, least in (("arms", 2), ("horizon", 1), ("hidden", 1), ("batch_size", 1), ("steps", 0), ("seed", 0)):
        if getattr(config, name) < least:
            raise ValueError(f"{name} must be >= {least}, got {getattr(config, name)}")
    if not config.lr > 0:
        raise ValueError(f"lr must be > 0, got {config.lr}")
    if not (0 < config.gamma <= 1 and 0 <= config.gae_lambda <= 1):
        raise ValueError(f"need 0 < gamma <= 1 and 0 <= gae_lambda <= 1, got {config.gamma}, {config.gae_lambda}")
    if min(config.entropy_start, config.entropy_end, config.value_coef) < 0 or not config.value_scale > 0:
        raise ValueError("entropy_start, entropy_end and value_coef must be >= 0 and value_scale > 0")


def task_distribution(config: RL2Config) -> TaskDistribution[BanditTask]:
    if config.task == "independent":
        return IndependentBandits(config.arms)
    if config.task == "dependent":
        if config.arms != 2:
            raise ValueError("dependent bandits have 2 arms")
        return DependentBandits()
    raise ValueError(f"task must be 'independent' or 'dependent', got {config.task!r}")


class RL2Agent(nn.Module):
    """GRU policy for RL²: input (one-hot previous action, previous reward, t/T), output logits and V.

    The weights are the meta-parameters (trained across tasks); the hidden
    state h_t is the learned variable: all it knows about the current task.
    """

    def __init__(self, config: RL2Config) -> None:
        super().__init__()
        self.config = config
        self.input_size = config.arms + 1 + int(config.timestep_input)
        self.cell = nn.GRUCell(self.input_size, config.hidden)
        self.policy_head = nn.Linear(config.hidden, config.arms)
        self.value_head = nn.Linear(config.hidden, 1)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.config.hidden, device=self.policy_head.weight.device)

    def make_input(self, prev_action: torch.Tensor | None, prev_reward: torch.Tensor | None, t: int, batch_size: int):
        """Step t's input. At t = 0 there is no previous pull: zeros."""
        device = self.policy_head.weight.device
        x = torch.zeros(batch_size, self.input_size, device=device)
        if prev_action is not None:
            x[:, : self.config.arms] = F.one_hot(prev_action, self.config.arms).float()
            x[:, self.config.arms] = prev_reward
        if self.config.timestep_input:
            x[:, -1] = t / self.config.horizon
        return x

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.cell(x, h)
        return self.policy_head(h), self.value_head(h).squeeze(-1), h

    def learned_variables(self) -> int:
        """Numbers that change while the agent learns a task: the hidden state."""
        return self.config.hidden

    def with_horizon(self, horizon: int) -> "RL2Agent":
        """The same weights, run for ``horizon`` pulls (its time input becomes t / horizon)."""
        agent = RL2Agent(dataclasses.replace(self.config, horizon=horizon))
        agent.load_state_dict(self.state_dict())
        return agent.train(self.training)


class RL2Policy(BanditPolicy):
    """A trained :class:`RL2Agent` as a :class:`BanditPolicy` (fixed weights; samples its actions)."""

    def __init__(self, agent: RL2Agent, greedy: bool = False) -> None:
        self.agent = agent
        self.greedy = greedy
        self.name = "RL²"

    def reset(self, batch_size, arms, horizon, generator=None) -> None:
        super().reset(batch_size, arms, horizon, generator)
        if arms != self.agent.config.arms:
            raise ValueError(f"the agent was trained on {self.agent.config.arms} arms, not {arms}")
        self.h = self.agent.initial_state(batch_size)
        self.prev = None
        self._probs_t = None
        self.hidden_states = []

    def probs(self, t: int) -> torch.Tensor:
        if self._probs_t is None or self._probs_t[0] != t:
            prev_a, prev_r = self.prev if self.prev is not None else (None, None)
            x = self.agent.make_input(prev_a, prev_r, t, self.batch_size)
            logits, _, self.h = self.agent.step(x, self.h)
            self.hidden_states.append(self.h)
            self._probs_t = (t, logits.softmax(-1))
        return self._probs_t[1]

    def act(self, t: int) -> torch.Tensor:
        p = self.probs(t)
        if self.greedy:
            return p.argmax(-1)
        return torch.multinomial(p, 1, generator=self.generator).squeeze(1)

    def observe(self, actions, rewards) -> None:
        super().observe(actions, rewards)
        self.prev = (actions, rewards)


def discounted_advantages(rewards, values, gamma: float, lam: float):
    """GAE(gamma, lambda) with V = 0 after the last pull. ``[B, T]`` in, ``(advantages, returns)`` out."""
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(B)
    next_value = torch.zeros(B)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, advantages + values


def rl2_update(agent: RL2Agent, optimizer, tasks: TaskDistribution, entropy_coef: float, generator) -> dict:
    """One A2C update on a fresh batch of tasks, one episode (= one task, ``horizon`` pulls) each.

    loss = - mean_t [ A_t log pi(a_t | h_t) ] + value_coef mean_t (V(h_t) - R_t)^2 - entropy_coef mean_t H(pi(. | h_t))
    """
    config = agent.config
    probs = tasks.sample_batch(config.batch_size, generator).probs
    env = BanditEnv(probs, generator)
    h = agent.initial_state(config.batch_size)
    prev_a = prev_r = None
    logps, values, entropies, rewards, regrets = [], [], [], [], []
    for t in range(config.horizon):
        x = agent.make_input(prev_a, prev_r, t, config.batch_size)
        logits, value, h = agent.step(x, h)
        log_pi = logits.log_softmax(-1)
        a = torch.multinomial(log_pi.exp().detach(), 1, generator=generator).squeeze(1)
        r, g = env.pull(a)
        logps.append(log_pi.gather(1, a.view(-1, 1)).squeeze(1))
        entropies.append(-(log_pi.exp() * log_pi).sum(-1))
        values.append(value * config.value_scale)
        rewards.append(r), regrets.append(g)
        prev_a, prev_r = a, r
    logps, values, entropies = torch.stack(logps, 1), torch.stack(values, 1), torch.stack(entropies, 1)
    rewards, regrets = torch.stack(rewards, 1), torch.stack(regrets, 1)
    advantages, returns = discounted_advantages(rewards, values.detach(), config.gamma, config.gae_lambda)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(advantages * logps).mean()
    value_loss = ((values - returns) / config.value_scale).pow(2).mean()
    entropy = entropies.mean()
    loss = policy_loss + config.value_coef * value_loss - entropy_coef * entropy
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
    optimizer.step()
    return {
        "total_reward": rewards.sum(1).mean().item(),
        "regret": regrets.sum(1).mean().item(),
        "entropy": entropy.item(),
        "value_loss": value_loss.item(),
    }


def entropy_coefficient(config, step: int) -> float:
    """The entropy bonus of ``step``: linear from ``entropy_start`` (step 0) to ``entropy_end`` (the last step)."""
    fraction = step / max(config.steps - 1, 1)
    return config.entropy_start + (config.entropy_end - config.entropy_start) * fraction


def trainer(model: RL2Agent, config: RL2Config, data: dict | None = None, device="cpu") -> Trainer:
    """One A2C update per step on the CPU (the agent is tiny; the rollouts are sequential).

    The tasks, actions and rewards of step ``i`` come from a generator seeded
    by ``(config.seed, i)`` only, so a resumed run plays exactly the bandits
    an uninterrupted one would. ``config.init_from`` (a run folder) gives the
    starting weights.
    """
    model.cpu().train()
    if config.init_from:
        model.load_state_dict(read_checkpoint(_checkpoint_path(config.init_from))["state_dict"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    tasks = task_distribution(config)

    def step(i: int) -> dict[str, float]:
        return rl2_update(model, optimizer, tasks, entropy_coefficient(config, i), step_generator(config.seed, i))

    return Trainer(step, optimizer)


def train(agent: RL2Agent, config: RL2Config, *, progress: bool = True, max_seconds: float | None = None) -> History:
    """Meta-train ``agent`` for ``config.steps`` A2C updates; returns the :class:`History`.

    (The command line runs the same step in a run folder, with checkpoints.)
    """
    history = train_loop(trainer(agent, config).step, config.steps, progress=progress, max_seconds=max_seconds,
                         desc=describe(config))
    agent.eval()
    return history


def _checkpoint_path(path: str) -> Path:
    """A run folder's checkpoint (or a checkpoint file), relative to here or else to the course checkout."""
    candidate = Path(path)
    root = repo_root()
    if not candidate.exists() and not candidate.is_absolute() and root is not None:
        candidate = root / candidate
    return candidate / CHECKPOINT_FILE if candidate.is_dir() else candidate


# --------------------------------------------------------------------------
# Comparing policies
# --------------------------------------------------------------------------


@dataclass
class PolicyResult:
    """Total reward and regret per test task, for one policy."""

    name: str
    total_reward: torch.Tensor
    cumulative_regret: torch.Tensor  # [tasks, horizon]
    extra: dict = field(default_factory=dict)

    def reward_ci(self) -> tuple[float, float]:
        from .evaluation import mean_confidence_interval

        return mean_confidence_interval(self.total_reward)

    def regret_ci(self) -> tuple[float, float]:
        from .evaluation import mean_confidence_interval

        return mean_confidence_interval(self.cumulative_regret[:, -1])


def compare_policies(policies: dict, probs: torch.Tensor, horizon: int, seed: int = 0) -> dict[str, PolicyResult]:
    """Every policy on the same test bandits ``probs [N, K]``, each with the same seed for its rewards."""
    results = {}
    for name, policy in policies.items():
        out = rollout(policy, probs, horizon, torch.Generator().manual_seed(seed))
        results[name] = PolicyResult(name, out.total_reward(), out.cumulative_regret())
    return results


def classic_policies() -> dict[str, BanditPolicy]:
    """The hand-designed policies every learned one is compared with."""
    return {policy.name: policy for policy in (UCB1(), ThompsonSampling(), RandomPolicy())}


def reward_table(policies: dict, tasks: TaskDistribution[BanditTask], horizon: int, count: int = 2000,
                 seed: int = 0, permute: bool = False) -> dict[str, dict[str, float]]:
    """Total reward (mean, 95% CI) of every policy on the same ``count`` test bandits from ``tasks``.

    The bandits are drawn with seed ``seed + 999``, apart from the training
    stream; ``permute``: each bandit's arms in a random order (the same
    bandits otherwise).
    """
    probs = tasks.sample_batch(count, torch.Generator().manual_seed(seed + 999)).probs
    if permute:
        order = torch.rand(probs.shape, generator=torch.Generator().manual_seed(seed + 5)).argsort(1)
        probs = probs.gather(1, order)
    out = {}
    for name, result in compare_policies(policies, probs, horizon, seed=seed).items():
        rewards = result.total_reward.double()
        out[name] = {"mean": rewards.mean().item(),
                     "ci95": 1.959963984540054 * rewards.std().item() / math.sqrt(len(rewards)), "bandits": count}
    return out


def tune_ucb_constant(tasks: TaskDistribution, horizon: int, constants=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
                      bandits: int = 2000, seed: int = 12345) -> tuple[float, dict[float, float]]:
    """The exploration constant c of UCB1 with the highest mean total reward on *training* bandits."""
    probs = tasks.sample_batch(bandits, torch.Generator().manual_seed(seed)).probs
    scores = {c: rollout(UCB1(c), probs, horizon, torch.Generator().manual_seed(seed)).total_reward().mean().item()
              for c in constants}
    return max(scores, key=scores.get), scores


# --------------------------------------------------------------------------
# Stepping through one bandit task (the pure function behind the notebook's widget)
# --------------------------------------------------------------------------


def policy_trace(agent: RL2Agent, probs: torch.Tensor, seed: int = 0) -> Rollout:
    """One task ``probs [K]`` played by the RL² agent for its horizon: actions, rewards, arm probabilities."""
    return rollout(RL2Policy(agent), probs.view(1, -1), agent.config.horizon, torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------
# The face the registry reads (course_lib.registry)
# --------------------------------------------------------------------------

Config = RL2Config
PAPER: dict[str, float] = {}  # rewards depend on the task and horizon; notebook 05 compares with the Bayes optimum
RUNS = (
    RunSpec("data/black_box/rl2_independent5_T10", "RL², 5 independent arms, 10 pulls",
            ("--task", "independent", "--arms", "5", "--horizon", "10", "--steps", "10000"), ("--steps", "3"),
            job="rl2_T10"),
    RunSpec("data/black_box/rl2_dependent2_T10", "RL², 2 dependent arms, 10 pulls",
            ("--task", "dependent", "--arms", "2", "--horizon", "10", "--steps", "1500"), ("--steps", "3"),
            job="rl2_dependent"),
    RunSpec("data/black_box/rl2_dependent2_T100", "RL², 2 dependent arms, 100 pulls",
            ("--task", "dependent", "--arms", "2", "--horizon", "100", "--steps", "3000", "--lr", "0.001",
             "--value-scale", "10"), ("--steps", "3"), job="rl2_dependent_T100"),
    RunSpec("data/vsml/symla/rl2", "RL², SymLA's baseline (notebook 07)"),
)


def build(config: RL2Config) -> RL2Agent:
    return RL2Agent(config)


def load_data(config: RL2Config, smoke: bool = False) -> dict:
    """Nothing to load: the tasks are drawn from :func:`task_distribution`."""
    return {}


def evaluate(model: RL2Agent, config: RL2Config, data: dict | None = None, device="cpu", *, settings=(),
             episodes: int = 2000, progress: bool = True) -> dict[str, dict[str, float]]:
    """Total reward over ``config.horizon`` pulls on ``episodes`` test bandits of the training
    distribution: the agent and :func:`classic_policies` on the same bandits."""
    policies = {"RL²": RL2Policy(model.cpu().eval()), **classic_policies()}
    return reward_table(policies, task_distribution(config), config.horizon, episodes)


def evaluation_details(settings) -> dict:
    return {"test_bandits_seed": 999, "policy_seed": 0}


def results_markdown(method, results: dict, config, meta: dict) -> str:
    """results.md: total reward per policy (not accuracies)."""
    return reward_markdown(describe(config), {f"{config.arms} arms": results}, config, meta)


def reward_markdown(title: str, rows: dict[str, dict], config, meta: dict) -> str:
    """A table of total rewards, one row per test distribution, one column per policy."""
    names = list(dict.fromkeys(name for row in rows.values() for name in row))
    lines = [f"# {meta['method']}: {title}", "",
             f"Trained {meta['steps_done']} of {config.steps} steps. Total reward over {config.horizon} pulls, "
             f"mean ± 95% CI over {meta['test_episodes']} test bandits (the same bandits for every policy).", "",
             "| test bandits | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row, entries in rows.items():
        lines.append(f"| {row} | " + " | ".join(
            f"{entries[n]['mean']:.2f} ± {entries[n]['ci95']:.2f}" if n in entries else "–" for n in names) + " |")
    return "\n".join(lines) + "\n"


def predictor(model: RL2Agent) -> RL2Policy:
    """The agent as a :class:`BanditPolicy` (RL² is not a few-shot classifier)."""
    return RL2Policy(model)


def describe(config: RL2Config) -> str:
    return (f"RL² GRU-{config.hidden} on {config.task} {config.arms}-armed bandits, {config.horizon} pulls, "
            f"batch {config.batch_size}")
