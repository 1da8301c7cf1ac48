"""Bernoulli bandits, classic bandit algorithms, the Bayes-optimal policy, and RL² (notebook 05).

A task is a K-armed Bernoulli bandit, arm k paying 1 with probability p_k: :class:`IndependentBandits`
(p_k ~ U[0, 1], Duan et al. 2016) or :class:`DependentBandits` (p_2 = 1 - p_1, Wang et al. 2016: one pull
tells about both arms). The pseudo-regret of T pulls, sum_t (max_k p_k - p_{a_t}), is the expected reward
missed by not always pulling the best arm. Policies share one vectorised interface (``reset`` / ``act`` /
``observe``). :class:`RL2Agent` is a GRU that reads (previous action, previous reward, t/T); its hidden
state is all that changes while it learns a task, and :func:`a2c_update` meta-trains its weights over many
tasks at once. :func:`bayes_optimal_value`, exact for short horizons, is the ceiling of any learned policy.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .episodes import TaskDistribution, step_generator
from .evaluation import mean_confidence_interval
from .runs import CHECKPOINT_FILE, History, RunSpec, Trainer, read_checkpoint, train_loop
from .runtime import repo_root

# ---------------- Tasks


@dataclass
class BanditTask:
    """The arm probabilities of one bandit, ``probs: [arms]`` (or ``[batch, arms]``)."""

    probs: torch.Tensor

    @property
    def arms(self) -> int:
        return self.probs.shape[-1]


class IndependentBandits(TaskDistribution[BanditTask]):
    """K arms, p_k ~ U[0, 1] independently."""

    def __init__(self, arms: int = 5) -> None:
        if arms < 2:
            raise ValueError(f"a bandit needs at least 2 arms, got {arms}")
        self.arms = arms

    def sample(self, generator: torch.Generator | None = None) -> BanditTask:
        return BanditTask(self.sample_batch(1, generator).probs[0])

    def sample_batch(self, batch_size: int, generator: torch.Generator | None = None) -> BanditTask:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return BanditTask(torch.rand(batch_size, self.arms, generator=generator))

    def __repr__(self) -> str:
        return f"IndependentBandits(arms={self.arms}, p ~ U[0, 1])"


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
    """E[max_k p_k - p_a] for a ~ action_probs, per task (``[B, K] -> [B]``)."""
    return probs.max(-1).values - (probs * action_probs).sum(-1)


def random_policy_expected_regret(arms: int, horizon: int) -> float:
    """Uniform random play on IndependentBandits(arms): T (E max p - E mean p) = T (K/(K+1) - 1/2)."""
    return horizon * (arms / (arms + 1) - 0.5)


def fixed_arm_dependent_expected_regret(horizon: int) -> float:
    """Always arm 0 on DependentBandits: E max(0, 1 - 2 p) = 1/4 per pull."""
    return horizon / 4


# ---------------- A vectorised environment, policies and rollouts


class BanditEnv:
    """A batch of Bernoulli bandits: ``pull(actions [B]) -> rewards [B]`` (0. or 1.)."""

    def __init__(self, probs: torch.Tensor, generator: torch.Generator | None = None) -> None:
        if probs.ndim != 2:
            raise ValueError(f"probs must be [batch, arms], got shape {tuple(probs.shape)}")
        self.probs, self.generator = probs, generator
        self.batch_size, self.arms = probs.shape
        self.best = probs.max(-1).values

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
    """Vectorised policy: ``reset(batch, arms, horizon)``, ``act(t) -> actions [B]``, ``observe(a, r)``, and
    optionally ``probs(t)``, the action distribution ``[B, K]`` before acting."""

    name = "policy"

    def reset(self, batch_size: int, arms: int, horizon: int, generator: torch.Generator | None = None) -> None:
        self.batch_size, self.arms, self.horizon, self.generator = batch_size, arms, horizon, generator
        self.counts = torch.zeros(batch_size, arms)
        self.successes = torch.zeros(batch_size, arms)

    def probs(self, t: int) -> torch.Tensor | None:
        return None

    def act(self, t: int) -> torch.Tensor:
        return torch.multinomial(self.probs(t), 1, generator=self.generator).squeeze(1)

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
        self.arm, self.name = arm, f"always arm {arm}"

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
        scores = self.successes / n + torch.sqrt(self.c * math.log(max(t, 1)) / n)
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


def rollout(policy: BanditPolicy, probs: torch.Tensor, horizon: int,
            generator: torch.Generator | None = None) -> Rollout:
    """Play ``policy`` on the bandits ``probs [B, K]`` for ``horizon`` pulls (no gradients)."""
    env = BanditEnv(probs, generator)
    policy.reset(env.batch_size, env.arms, horizon, generator)
    actions, rewards, regret, action_probs = [], [], [], []
    with torch.no_grad():
        for t in range(horizon):
            action_probs.append(policy.probs(t))
            actions.append(policy.act(t))
            reward, step_regret = env.pull(actions[-1])
            policy.observe(actions[-1], reward)
            rewards.append(reward), regret.append(step_regret)
    exposed = all(p is not None for p in action_probs)
    return Rollout(*(torch.stack(v, 1) for v in (actions, rewards, regret)),
                   torch.stack(action_probs, 1) if exposed else None)


# ---------------- The Bayes-optimal policy: an exact oracle for short horizons

MAX_BAYES_STATES = 30_000_000  # posterior states the solver may visit (before symmetry): up to 5 arms x 20 pulls


def _next_states(task: str, state: tuple, arm: int) -> tuple[float, tuple, tuple]:
    """(P(reward 1), state after a success, state after a failure) of pulling ``arm`` in posterior ``state``.

    ``independent`` (Beta(1, 1) priors): the state is the sorted tuple of each arm's (successes, failures);
    sorting merges interchangeable arms. ``dependent``: the state is (a, b) with p_1 ~ Beta(1 + a, 1 + b);
    a success of arm 1 or a failure of arm 2 is evidence for p_1 (a + 1), the other two for p_2 (b + 1).
    """
    if task == "dependent":
        a, b = state
        p1 = (a + 1) / (a + b + 2)
        return (p1, (a + 1, b), (a, b + 1)) if arm == 0 else (1 - p1, (a, b + 1), (a + 1, b))
    s, f = state[arm]
    win = tuple(sorted(state[:arm] + ((s + 1, f),) + state[arm + 1:]))
    lose = tuple(sorted(state[:arm] + ((s, f + 1),) + state[arm + 1:]))
    return (s + 1) / (s + f + 2), win, lose


@functools.lru_cache(maxsize=None)
def _bayes_value(task: str, state: tuple, pulls_left: int) -> float:
    """Bellman's equation over posterior states: the best expected reward still to come."""
    return max(_bayes_action_values(task, state, pulls_left)) if pulls_left else 0.0


def _bayes_action_values(task: str, state: tuple, pulls_left: int) -> list[float]:
    values = []
    for arm in range(len(state)):
        p, win, lose = _next_states(task, state, arm)
        values.append(p * (1 + _bayes_value(task, win, pulls_left - 1))
                      + (1 - p) * _bayes_value(task, lose, pulls_left - 1))
    return values


def _check_bayes_size(task: str, arms: int, horizon: int) -> None:
    if task not in ("independent", "dependent"):
        raise ValueError(f"task must be 'independent' or 'dependent', got {task!r}")
    if task == "dependent" and arms != 2:
        raise ValueError(f"dependent bandits have 2 arms, got {arms}")
    cells = 2 if task == "dependent" else 2 * arms
    bound = math.comb(horizon + cells - 1, cells - 1)  # ways to split the outcomes over every arm's counts
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
    """Expected total reward of the Bayes-optimal policy on ``task`` bandits over ``horizon`` pulls: no policy
    does better over the task distribution (Duan et al. 2016 report 6.6 for 5 arms and 10 pulls; this is exact)."""
    _check_bayes_size(task, arms, horizon)
    start = (0, 0) if task == "dependent" else tuple([(0, 0)] * arms)
    return _bayes_value(task, start, horizon)


class BayesOptimalPolicy(BanditPolicy):
    """Acts by the exact action values of :func:`bayes_optimal_value` (knows the prior and the horizon, not p)."""

    def __init__(self, task: str = "independent") -> None:
        self.task, self.name = task, "Bayes-optimal"

    def reset(self, batch_size, arms, horizon, generator=None) -> None:
        _check_bayes_size(self.task, arms, horizon)
        super().reset(batch_size, arms, horizon, generator)

    def _state(self, i: int) -> tuple[tuple, list[int]]:
        """Task ``i``'s posterior state, and the arm behind each of its entries."""
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


# ---------------- RL²: a recurrent policy whose hidden state is the learner


@dataclass
class A2CConfig:
    """An agent's meta-training by A2C on bandits (one step = one batch of tasks, one episode each):
    what RL² and SymLA (``course_lib.symla``) share."""

    arms: int = 5
    horizon: int = 100
    hidden: int = 48
    task: str = "independent"  # or "dependent"
    batch_size: int = 256
    meta_lr: float = 3e-3  # Adam on the agent's weights
    gamma: float = 0.99  # within one task; the agent's state is reset between tasks
    gae_lambda: float = 0.3
    entropy_start: float = 0.05  # the entropy bonus goes linearly from entropy_start at step 0 ...
    entropy_end: float = 0.0  # ... to entropy_end at the last step (resuming with more steps stretches the rest)
    value_coef: float = 0.5
    steps: int = 1000
    seed: int = 0
    value_scale: float = 1.0  # the value head predicts return / value_scale (keeps its loss O(1) for long T)

    def __post_init__(self) -> None:
        for name, least in (("arms", 2), ("horizon", 1), ("hidden", 1), ("batch_size", 1), ("steps", 0),
                            ("seed", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")
        if not self.meta_lr > 0:
            raise ValueError(f"meta_lr must be > 0, got {self.meta_lr}")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise ValueError(f"need 0 < gamma <= 1 and 0 <= gae_lambda <= 1, got {self.gamma}, {self.gae_lambda}")
        if min(self.entropy_start, self.entropy_end, self.value_coef) < 0 or not self.value_scale > 0:
            raise ValueError("entropy_start, entropy_end and value_coef must be >= 0 and value_scale > 0")
        if self.task not in ("independent", "dependent"):
            raise ValueError(f"task must be 'independent' or 'dependent', got {self.task!r}")
        if self.task == "dependent" and self.arms != 2:
            raise ValueError(f"dependent bandits have 2 arms, got arms={self.arms}")


@dataclass
class RL2Config(A2CConfig):
    """An RL² agent and its meta-training by A2C."""

    timestep_input: bool = True
    init_from: str = ""  # a curriculum: start from the weights of this run folder (e.g. a shorter horizon)


def task_distribution(config: A2CConfig) -> TaskDistribution[BanditTask]:
    return DependentBandits() if config.task == "dependent" else IndependentBandits(config.arms)


class RL2Agent(nn.Module):
    """GRU policy for RL²: input (one-hot previous action, previous reward, t/T), output logits and V. The
    weights are meta-parameters; the hidden state h_t, all it knows about the current task, is learned."""

    def __init__(self, config: RL2Config) -> None:
        super().__init__()
        self.config = config
        self.input_size = config.arms + 1 + int(config.timestep_input)
        self.cell = nn.GRUCell(self.input_size, config.hidden)
        self.policy_head = nn.Linear(config.hidden, config.arms)
        self.value_head = nn.Linear(config.hidden, 1)

    def initial_state(self, batch_size: int, arms: int | None = None) -> torch.Tensor:
        """h_0 = 0 (``arms``, when given, must be the arm count it was trained on)."""
        if arms not in (None, self.config.arms):
            raise ValueError(f"the agent was trained on {self.config.arms} arms, not {arms}")
        return torch.zeros(batch_size, self.config.hidden, device=self.policy_head.weight.device)

    def make_input(self, prev_action: torch.Tensor | None, prev_reward: torch.Tensor | None, t: int, batch_size: int):
        """Step t's input. At t = 0 there is no previous pull: zeros."""
        x = torch.zeros(batch_size, self.input_size, device=self.policy_head.weight.device)
        if prev_action is not None:
            x[:, : self.config.arms] = F.one_hot(prev_action, self.config.arms).float()
            x[:, self.config.arms] = prev_reward
        if self.config.timestep_input:
            x[:, -1] = t / self.config.horizon
        return x

    def step(self, h: torch.Tensor, prev_action, prev_reward, t: int):
        """One pull: ``(logits [batch, arms], value [batch], h)``; ``prev_action`` None at t = 0."""
        h = self.cell(self.make_input(prev_action, prev_reward, t, h.shape[0]), h)
        return self.policy_head(h), self.value_head(h).squeeze(-1), h

    def learned_variables(self) -> int:
        """Numbers that change while the agent learns a task: the hidden state."""
        return self.config.hidden

    def with_horizon(self, horizon: int) -> "RL2Agent":
        """The same weights, run for ``horizon`` pulls (its time input becomes t / horizon)."""
        agent = RL2Agent(dataclasses.replace(self.config, horizon=horizon))
        agent.load_state_dict(self.state_dict())
        return agent.train(self.training)


class AgentPolicy(BanditPolicy):
    """A trained agent (``initial_state``, ``step``) as a :class:`BanditPolicy` that samples its actions:
    fixed weights, a fresh state for every bandit."""

    def __init__(self, agent: nn.Module, name: str) -> None:
        self.agent, self.name = agent, name

    def reset(self, batch_size, arms, horizon, generator=None) -> None:
        super().reset(batch_size, arms, horizon, generator)
        self.state = self.agent.initial_state(batch_size, arms)
        self.prev, self.probs_at = (None, None), None

    def agent_step(self, t: int):
        return self.agent.step(self.state, *self.prev, t)

    def probs(self, t: int) -> torch.Tensor:
        if self.probs_at is None or self.probs_at[0] != t:  # one agent step per pull, however often asked
            logits, _, self.state = self.agent_step(t)
            self.probs_at = (t, logits.softmax(-1))
        return self.probs_at[1]

    def observe(self, actions, rewards) -> None:
        super().observe(actions, rewards)
        self.prev = (actions, rewards)


class RL2Policy(AgentPolicy):
    """A trained :class:`RL2Agent` as a :class:`BanditPolicy`."""

    def __init__(self, agent: RL2Agent) -> None:
        super().__init__(agent, "RL²")


def discounted_advantages(rewards, values, gamma: float, lam: float):
    """GAE(gamma, lambda) with V = 0 after the last pull. ``[B, T]`` in, ``(advantages, returns)`` out."""
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    running, next_value = torch.zeros(B), torch.zeros(B)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, advantages + values


def a2c_update(agent: nn.Module, optimizer, tasks: TaskDistribution, entropy_coef: float, generator) -> dict:
    """One A2C update on a fresh batch of tasks, one episode (= one task, ``horizon`` pulls) each.

    Any agent with ``initial_state(batch, arms)`` and ``step(state, prev_action, prev_reward, t)``
    (RL² here, SymLA in ``course_lib.symla``). With A_t the normalised GAE advantages and R_t the returns:
    loss = - mean_t A_t log pi(a_t | h_t) + value_coef mean_t (V(h_t) - R_t)^2 - entropy_coef mean_t H(pi(.|h_t))
    """
    config = agent.config
    env = BanditEnv(tasks.sample_batch(config.batch_size, generator).probs, generator)
    state = agent.initial_state(config.batch_size, env.arms)
    prev_a = prev_r = None
    pulls = []
    for t in range(config.horizon):
        logits, value, state = agent.step(state, prev_a, prev_r, t)
        log_pi = logits.log_softmax(-1)
        a = torch.multinomial(log_pi.exp().detach(), 1, generator=generator).squeeze(1)
        r, regret = env.pull(a)
        pulls.append((log_pi.gather(1, a.view(-1, 1)).squeeze(1), value * config.value_scale,
                      -(log_pi.exp() * log_pi).sum(-1), r, regret))
        prev_a, prev_r = a, r
    logps, values, entropies, rewards, regrets = (torch.stack(column, 1) for column in zip(*pulls))
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
    return {"total_reward": rewards.sum(1).mean().item(), "regret": regrets.sum(1).mean().item(),
            "entropy": entropy.item(), "value_loss": value_loss.item()}


def entropy_coefficient(config, step: int) -> float:
    """The entropy bonus of ``step``: linear from ``entropy_start`` (step 0) to ``entropy_end`` (the last step)."""
    fraction = step / max(config.steps - 1, 1)
    return config.entropy_start + (config.entropy_end - config.entropy_start) * fraction


def trainer(model: nn.Module, config: A2CConfig, data: dict | None = None, device="cpu") -> Trainer:
    """One :func:`a2c_update` per step on the CPU (a tiny agent, sequential rollouts). Step ``i`` draws from
    ``(config.seed, i)`` only, so a resumed run plays the bandits an uninterrupted one would."""
    model.cpu().train()
    if getattr(config, "init_from", ""):
        model.load_state_dict(read_checkpoint(_checkpoint_path(config.init_from))["state_dict"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    tasks = task_distribution(config)

    def step(i: int) -> dict[str, float]:
        return a2c_update(model, optimizer, tasks, entropy_coefficient(config, i), step_generator(config.seed, i))

    return Trainer(step, optimizer)


def train(agent: nn.Module, config: A2CConfig, *, progress: bool = True, max_seconds: float | None = None,
          desc: str | None = None) -> History:
    """Meta-train ``agent`` for ``config.steps`` A2C updates (the command line does the same in a run folder)."""
    history = train_loop(trainer(agent, config).step, config.steps, progress=progress, max_seconds=max_seconds,
                         desc=desc or describe(config))
    agent.eval()
    return history


def _checkpoint_path(path: str) -> Path:
    """A run folder's checkpoint (or a checkpoint file), relative to here or else to the course checkout."""
    candidate, root = Path(path), repo_root()
    if not candidate.exists() and not candidate.is_absolute() and root is not None:
        candidate = root / candidate
    return candidate / CHECKPOINT_FILE if candidate.is_dir() else candidate


# ---------------- Comparing policies


@dataclass
class PolicyResult:
    """Total reward and regret per test task, for one policy."""

    name: str
    total_reward: torch.Tensor
    cumulative_regret: torch.Tensor  # [tasks, horizon]

    def reward_ci(self) -> tuple[float, float]:
        return mean_confidence_interval(self.total_reward)

    def regret_ci(self) -> tuple[float, float]:
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
    """Total reward (mean, 95% CI) of every policy on the same ``count`` test bandits from ``tasks`` (seed
    ``seed + 999``, apart from training's); ``permute``: each bandit's arms in a random order."""
    probs = tasks.sample_batch(count, torch.Generator().manual_seed(seed + 999)).probs
    if permute:
        order = torch.rand(probs.shape, generator=torch.Generator().manual_seed(seed + 5)).argsort(1)
        probs = probs.gather(1, order)
    out = {}
    for name, result in compare_policies(policies, probs, horizon, seed=seed).items():
        mean, ci95 = mean_confidence_interval(result.total_reward)
        out[name] = {"mean": mean, "ci95": ci95, "bandits": count}
    return out


def tune_ucb_constant(tasks: TaskDistribution, horizon: int, constants=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
                      bandits: int = 2000, seed: int = 12345) -> tuple[float, dict[float, float]]:
    """The exploration constant c of UCB1 with the highest mean total reward on *training* bandits."""
    probs = tasks.sample_batch(bandits, torch.Generator().manual_seed(seed)).probs
    scores = {c: rollout(UCB1(c), probs, horizon, torch.Generator().manual_seed(seed)).total_reward().mean().item()
              for c in constants}
    return max(scores, key=scores.get), scores


def policy_trace(agent: RL2Agent, probs: torch.Tensor, seed: int = 0) -> Rollout:
    """One task ``probs [K]`` played by the RL² agent for its horizon (the data of notebook 05's widget)."""
    return rollout(RL2Policy(agent), probs.view(1, -1), agent.config.horizon, torch.Generator().manual_seed(seed))


# ---------------- The face the registry reads (course_lib.registry)

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
            ("--task", "dependent", "--arms", "2", "--horizon", "100", "--steps", "3000", "--meta-lr", "0.001",
             "--value-scale", "10"), ("--steps", "3"), job="rl2_dependent_T100"),
    RunSpec("data/vsml/symla/rl2", "RL², SymLA's baseline (notebook 07)"),
)


def build(config: RL2Config) -> RL2Agent:
    return RL2Agent(config)


def load_data(config, smoke: bool = False) -> dict:
    return {}  # nothing to load: the bandits are drawn


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
