"""Learned optimizers: an LSTM that maps gradients to updates.

Introduced in notebook 06. This is "Learning to learn by gradient descent by
gradient descent" (Andrychowicz et al., NeurIPS 2016): keep the skeleton of
gradient descent and learn the update rule,

    theta_{t+1} = theta_t + g_t,      [g_t, h_{t+1}] = m(grad_t, h_t; phi),

where ``m`` is a small two-layer LSTM applied to every coordinate of theta
separately (its weights ``phi`` are shared by all coordinates, its state
``h`` is kept per coordinate), and ``phi`` is meta-trained to minimise

    L(phi) = E_f [ sum_t w_t f(theta_t) ]

over a distribution of optimizees ``f`` (the optimizee *family*), by
backpropagating through truncated unrolls of the optimizee's training.

Everything here is written for a *batch* of B optimizees at once: parameters
are one flat tensor ``theta`` of shape ``[B, n]`` and an optimizee family
turns ``theta`` into B losses (:meth:`OptimizeeFamily.loss`). The optimizees
are written functionally (explicit parameter tensors, no ``nn.Module``), so
that theta_{t+1} stays a differentiable function of phi.

Contents, in reading order:

* :class:`LearnedOptimizerConfig`: every number of the method;
* :func:`preprocess_gradient` and :class:`LSTMOptimizer` (the rule m), and
  :class:`FixedRule` (``update = -lr * grad``, the oracle for the tests);
* optimizee families, which are :class:`course_lib.episodes.TaskDistribution`
  s: :class:`QuadraticFamily` (f(theta) = ||W theta - y||^2) and
  :class:`MLPFamily` (a small MLP on images, minibatches of 128);
* :func:`unroll` (the inner loop), :func:`trainer` (one meta-training
  step: truncated backpropagation through time) and :func:`meta_train`;
* :func:`run_learned`, :func:`run_baseline`, :func:`tune_learning_rates`
  (SGD, momentum, RMSprop, Adam with a learning rate picked from a grid);
* the face :mod:`course_lib.registry` reads. The command line meta-trains in
  a run folder (here with notebook 06's full-mode settings for the MLP)::

    python -m course_lib train learned-optimizer --optimizee mlp --optimizees-per-batch 4 --lr 3e-3 \\
        --seed 1 --steps 150 --out runs/lstm_optimizer_mlp

The notebook's figures and widget are in ``course_lib.teaching.optimizer_figures``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .episodes import TaskDistribution, stack_tasks, step_generator
from .evaluation import mean_confidence_interval
from .runs import History, Trainer, train_loop
from .runtime import progress_bar


@dataclass
class LearnedOptimizerConfig:
    """The learned optimizer and how it is meta-trained (defaults: the paper's)."""

    hidden_size: int = 20  # units per LSTM layer
    num_layers: int = 2
    preprocess: bool = True  # log-magnitude + sign inputs (paper, appendix A)
    preprocess_p: float = 10.0  # the p of the preprocessing
    output_scale: float = 0.1  # g_t = output_scale * (linear read-out of the top layer)
    horizon: int = 100  # T: optimizee steps per sampled optimizee
    unroll: int = 20  # K: truncation length of backpropagation through time
    optimizees_per_batch: int = 8  # optimizees trained in parallel (Monte-Carlo estimate of E_f)
    lr: float = 1e-3  # Adam on phi
    meta_grad_clip: float = 1.0  # clip the norm of each meta-gradient
    second_order: bool = False  # True: keep d grad_t / d phi (the paper drops it)
    optimizee: str = "mlp"  # the family of the command line: "quadratic" or "mlp" (:func:`load_data`)
    steps: int = 150  # meta-training steps (one sampled batch of optimizees each)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, least in (("hidden_size", 1), ("num_layers", 1), ("horizon", 1), ("unroll", 1),
                            ("optimizees_per_batch", 1), ("steps", 0), ("seed", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")
        if self.horizon % self.unroll:
            raise ValueError(f"horizon ({self.horizon}) must be a multiple of unroll ({self.unroll})")
        if not (self.lr > 0 and self.preprocess_p > 0 and self.meta_grad_clip >= 0):
            raise ValueError("lr and preprocess_p must be > 0 and meta_grad_clip >= 0")
        if self.optimizee not in OPTIMIZEES:
            raise ValueError(f"optimizee must be one of {OPTIMIZEES}, got {self.optimizee!r}")


OPTIMIZEES = ("quadratic", "mlp")


# --------------------------------------------------------------------------
# The update rule m(grad, h; phi)
# --------------------------------------------------------------------------


def preprocess_gradient(grad: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """The paper's input preprocessing, coordinatewise: ``[..] -> [.., 2]``.

    grad -> (log|grad| / p, sign(grad))   if |grad| >= exp(-p)
            (-1, exp(p) * grad)            otherwise

    Gradients of very different magnitudes (1e-8 ... 1e2) become inputs of
    similar size, and the sign is kept separately.
    """
    magnitude = grad.abs()
    large = magnitude >= math.exp(-p)
    log_part = torch.where(large, torch.log(magnitude.clamp_min(math.exp(-p))) / p, -torch.ones_like(grad))
    sign_part = torch.where(large, torch.sign(grad), math.exp(p) * grad)
    return torch.stack([log_part, sign_part], dim=-1)


State = list  # one (h, c) pair of [B * n, hidden] tensors per LSTM layer


class LSTMOptimizer(nn.Module):
    """The coordinatewise LSTM optimizer m(grad_t, h_t; phi) -> (g_t, h_{t+1}).

    Every coordinate of theta is one row of a batch that goes through the
    same two ``nn.LSTMCell`` s and a linear read-out: the weights (phi) are
    shared across coordinates, the state (h, c) is kept per coordinate. So
    the same ~5,000 meta-parameters optimise a problem of any size.
    """

    def __init__(self, config: LearnedOptimizerConfig | None = None) -> None:
        super().__init__()
        self.config = config or LearnedOptimizerConfig()
        c = self.config
        inputs = 2 if c.preprocess else 1
        sizes = [inputs] + [c.hidden_size] * c.num_layers
        self.cells = nn.ModuleList(nn.LSTMCell(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(c.hidden_size, 1)

    def init_state(self, theta: torch.Tensor) -> State:
        """Zero state for every coordinate of ``theta`` (any shape)."""
        zeros = theta.new_zeros(theta.numel(), self.config.hidden_size)
        return [(zeros, zeros) for _ in self.cells]

    def state_size_per_coordinate(self) -> int:
        """Numbers of LSTM state kept for every optimizee parameter: 2 (h, c) x layers x hidden."""
        return 2 * len(self.cells) * self.config.hidden_size

    def step(self, grad: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        c = self.config
        flat = grad.reshape(-1)
        x = preprocess_gradient(flat, c.preprocess_p) if c.preprocess else flat[:, None]
        new_state = []
        for cell, (h, cell_state) in zip(self.cells, state):
            h, cell_state = cell(x, (h, cell_state))
            new_state.append((h, cell_state))
            x = h
        update = c.output_scale * self.readout(x).reshape(grad.shape)
        return update, new_state


class FixedRule:
    """``update = -lr * grad``: plain gradient descent written as an update rule.

    Plugged into :func:`unroll` in place of the LSTM it must reproduce SGD
    exactly (the oracle test of the unroll loop).
    """

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def init_state(self, theta: torch.Tensor) -> State:
        return []

    def step(self, grad: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return -self.lr * grad, state


def _detach_state(state: State) -> State:
    return [tuple(t.detach() for t in pair) for pair in state]


# --------------------------------------------------------------------------
# Optimizees: task families of differentiable losses f(theta)
# --------------------------------------------------------------------------


class OptimizeeFamily(TaskDistribution):
    """A distribution over optimizees f. ``sample`` draws one problem (its
    data and its initial parameters ``theta0``); ``loss(problems, theta, step)``
    gives the loss of a batch of problems at parameters ``theta [B, n]`` and
    optimizer step ``step`` (which picks the minibatch, for stochastic ones)."""

    name: str = "optimizee"
    num_parameters: int

    def loss(self, problems, theta: torch.Tensor, step: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@dataclass
class QuadraticProblem:
    W: torch.Tensor  # [d, d]
    y: torch.Tensor  # [d]
    theta0: torch.Tensor  # [d]


class QuadraticFamily(OptimizeeFamily):
    """f(theta) = ||W theta - y||^2 with W, y ~ N(0, 1) entries (the paper's 10-d quadratics).

    ``theta0 ~ N(0, init_std^2)``. Deterministic: ``step`` is ignored.
    """

    def __init__(self, dim: int = 10, init_std: float = 0.01, dtype=torch.float32, device="cpu") -> None:
        self.dim, self.init_std, self.dtype, self.device = dim, init_std, dtype, torch.device(device)
        self.num_parameters = dim
        self.name = f"{dim}-d quadratic"

    def sample(self, generator: torch.Generator | None = None) -> QuadraticProblem:
        d = self.dim
        W = torch.randn(d, d, generator=generator, dtype=self.dtype)
        y = torch.randn(d, generator=generator, dtype=self.dtype)
        theta0 = self.init_std * torch.randn(d, generator=generator, dtype=self.dtype)
        return QuadraticProblem(W.to(self.device), y.to(self.device), theta0.to(self.device))

    def loss(self, problems: QuadraticProblem, theta: torch.Tensor, step: int) -> torch.Tensor:
        residual = torch.einsum("bij,bj->bi", problems.W, theta) - problems.y
        return (residual**2).sum(dim=-1)


@dataclass
class MLPProblem:
    theta0: torch.Tensor  # [n] initial parameters
    seed: torch.Tensor  # [] long: the problem's own minibatch stream


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "tanh": torch.tanh,
}


class MLPFamily(OptimizeeFamily):
    """Cross-entropy of an MLP classifier on minibatches of a fixed image set.

    A problem is an initialisation ``theta0`` (uniform in +-1/sqrt(fan_in),
    biases 0) and a seed for its minibatch stream: minibatch ``t`` of problem
    ``b`` is the same for every optimizer, so comparisons are paired. The
    parameters are one flat vector, cut into weight matrices by
    :meth:`unflatten` (explicit parameter tensors: differentiable unrolls).
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        hidden: Sequence[int] = (20,),
        activation: str = "sigmoid",
        batch_size: int = 128,
        num_classes: int | None = None,
        name: str | None = None,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.inputs = inputs.flatten(start_dim=1)
        self.labels = labels
        self.hidden, self.activation, self.batch_size = tuple(hidden), activation, batch_size
        self.num_classes = num_classes or int(labels.max()) + 1
        sizes = (self.inputs.shape[1], *self.hidden, self.num_classes)
        self.shapes = [(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.num_parameters = sum(a * b + b for a, b in self.shapes)
        arch = "-".join(str(s) for s in sizes)
        self.name = name or f"MLP {arch} ({activation})"

    def sample(self, generator: torch.Generator | None = None) -> MLPProblem:
        pieces = []
        for fan_in, fan_out in self.shapes:
            bound = 1.0 / math.sqrt(fan_in)
            pieces.append((2 * torch.rand(fan_in * fan_out, generator=generator) - 1) * bound)
            pieces.append(torch.zeros(fan_out))
        theta0 = torch.cat(pieces).to(self.inputs)
        seed = torch.randint(0, 2**31 - 1, (), generator=generator)
        return MLPProblem(theta0, seed)

    def unflatten(self, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[B, n] -> [(W [B, in, out], b [B, 1, out]), ...]`` one pair per layer."""
        layers, offset = [], 0
        for fan_in, fan_out in self.shapes:
            W = theta[:, offset : offset + fan_in * fan_out].reshape(-1, fan_in, fan_out)
            offset += fan_in * fan_out
            b = theta[:, offset : offset + fan_out].reshape(-1, 1, fan_out)
            offset += fan_out
            layers.append((W, b))
        return layers

    def minibatch(self, problems: MLPProblem, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        seeds = problems.seed.reshape(-1).tolist()
        index = torch.stack([
            torch.randint(len(self.labels), (self.batch_size,), generator=step_generator(int(s), step))
            for s in seeds
        ]).to(self.labels.device)
        return self.inputs[index], self.labels[index]  # [B, batch, d], [B, batch]

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        act = ACTIVATIONS[self.activation]
        layers = self.unflatten(theta)
        for i, (W, b) in enumerate(layers):
            x = torch.baddbmm(b, x, W)
            if i < len(layers) - 1:
                x = act(x)
        return x

    def loss(self, problems: MLPProblem, theta: torch.Tensor, step: int) -> torch.Tensor:
        x, y = self.minibatch(problems, step)
        logits = self.logits(theta, x)
        per_example = F.cross_entropy(logits.reshape(-1, self.num_classes), y.reshape(-1), reduction="none")
        return per_example.reshape(y.shape).mean(dim=1)


def problem_batch(family: OptimizeeFamily, count: int, seed: int):
    """``count`` problems of ``family``, the same ones for the same seed, stacked into a batch."""
    return stack_tasks(family.fixed_tasks(count, seed))


# --------------------------------------------------------------------------
# The inner loop (an unroll) and the outer loop (meta-training)
# --------------------------------------------------------------------------


def unroll(
    rule,
    family: OptimizeeFamily,
    problems,
    theta: torch.Tensor,
    state: State,
    start: int,
    steps: int,
    *,
    meta_graph: bool = True,
    second_order: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, State]:
    """``steps`` optimizer steps from ``theta`` (= theta_start), for B problems at once.

    theta_{t+1} = theta_t + g_t,   [g_t, h_{t+1}] = rule.step(grad_t, h_t),
    grad_t = d f(theta_t) / d theta_t  on minibatch t.

    Returns ``(losses, theta, state)`` with ``losses[k] = f(theta_{start+k})``,
    shape ``[steps + 1, B]`` (``losses[0]`` is the loss at the starting point).

    ``meta_graph=True`` keeps the autograd graph from phi (the rule's weights)
    to every loss, for the meta-gradient. ``second_order=False`` treats the
    gradient input grad_t as a constant (the paper's d grad_t / d phi = 0,
    no second derivatives of f); ``True`` keeps that path (exact gradient).
    With ``meta_graph=False`` the trajectory is detached after every step
    (evaluation: memory does not grow with the horizon).
    """
    theta = theta if theta.requires_grad else theta.detach().requires_grad_(True)
    loss = family.loss(problems, theta, start)
    losses = [loss]
    for t in range(start, start + steps):
        (grad,) = torch.autograd.grad(
            loss.sum(), theta, create_graph=meta_graph and second_order, retain_graph=meta_graph
        )
        if not second_order:
            grad = grad.detach()
        with torch.set_grad_enabled(meta_graph):
            update, state = rule.step(grad, state)
        theta = theta + update
        if not meta_graph:
            theta = theta.detach().requires_grad_(True)
            state = _detach_state(state)
        loss = family.loss(problems, theta, t + 1)
        losses.append(loss if meta_graph else loss.detach())
    return torch.stack(losses), theta, state


def meta_loss_of(losses: torch.Tensor) -> torch.Tensor:
    """sum_t w_t f(theta_t) over one truncation, w_t = 1/K, averaged over the batch of optimizees.

    ``losses[0]`` (the loss at the truncation's starting point) does not
    depend on phi and is left out.
    """
    return losses[1:].mean()


def meta_training_batch(family: OptimizeeFamily, config: LearnedOptimizerConfig, step: int):
    """The optimizees that meta-training draws at ``step`` (a function of the seed and the step)."""
    generator = step_generator(config.seed, step)
    return stack_tasks([family.sample(generator) for _ in range(config.optimizees_per_batch)])


def meta_training_problems(family: OptimizeeFamily, config: LearnedOptimizerConfig, steps: int):
    """The optimizees of the first ``steps`` meta-training steps, as one batch
    (the problems on which the baselines' learning rates are tuned)."""
    return stack_tasks([problem for i in range(steps) for problem in _unstack(meta_training_batch(family, config, i))])


def _unstack(batch) -> list:
    count = batch.theta0.shape[0]
    return [type(batch)(**{name: getattr(batch, name)[b] for name in batch.__dataclass_fields__})
            for b in range(count)]


def trainer(model: LSTMOptimizer, config: LearnedOptimizerConfig, data: dict, device="cpu",
            meta_optimizer: torch.optim.Optimizer | None = None) -> Trainer:
    """One meta-training step of ``model`` (the rule m) on the optimizees of ``data["train"]``.

    The step samples ``optimizees_per_batch`` fresh optimizees (seeded by
    ``config.seed`` and the step, so a resumed run sees the same ones),
    trains them for ``horizon`` steps with the learned rule, and cuts that
    trajectory into ``horizon / unroll`` truncations. After each truncation
    it takes one Adam step on phi along the gradient of that truncation's
    meta-loss, then detaches theta and the LSTM state (so the next
    truncation starts from where this one ended, but gradients stop at its
    start). Logs ``meta_loss`` (mean over the horizon) and ``final_loss``
    (f at the horizon), averaged over the batch. Runs on the CPU: the
    tensors are tiny.
    """
    model.cpu().train()
    family = data["train"]
    c = model.config
    meta_optimizer = meta_optimizer or torch.optim.Adam(model.parameters(), lr=c.lr)

    def step(i: int) -> dict[str, float]:
        problems = meta_training_batch(family, c, i)
        theta, state = problems.theta0, model.init_state(problems.theta0)
        meta_losses = []
        for start in range(0, c.horizon, c.unroll):
            losses, theta, state = unroll(
                model, family, problems, theta, state, start, c.unroll,
                meta_graph=True, second_order=c.second_order,
            )
            meta_loss = meta_loss_of(losses)
            meta_optimizer.zero_grad(set_to_none=True)
            meta_loss.backward()
            if c.meta_grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), c.meta_grad_clip)
            meta_optimizer.step()
            meta_losses.append(meta_loss.item())
            theta, state = theta.detach(), _detach_state(state)
        return {"meta_loss": sum(meta_losses) / len(meta_losses), "final_loss": losses[-1].mean().item()}

    return Trainer(step, meta_optimizer)


def meta_train(
    optimizer_net: LSTMOptimizer,
    family: OptimizeeFamily,
    steps: int,
    *,
    history: History | None = None,
    meta_optimizer: torch.optim.Optimizer | None = None,
    start_step: int = 0,
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Meta-train ``optimizer_net`` on ``family`` with truncated BPTT: the :func:`trainer` step for
    steps ``start_step .. steps - 1`` (the command line runs the same step in a run folder)."""
    step = trainer(optimizer_net, optimizer_net.config, {"train": family}, meta_optimizer=meta_optimizer).step
    return train_loop(step, steps, history=history, start_step=start_step,
                      desc=desc or f"meta-train LSTM optimizer on {family.name}", progress=progress)


# --------------------------------------------------------------------------
# Running optimizers to compare them: the learned one and tuned baselines
# --------------------------------------------------------------------------


def run_learned(rule, family: OptimizeeFamily, problems, steps: int) -> torch.Tensor:
    """Loss trajectories ``[steps + 1, B]`` of ``rule`` (no meta-graph: evaluation)."""
    theta = problems.theta0
    with torch.enable_grad():
        losses, _, _ = unroll(rule, family, problems, theta, rule.init_state(theta), 0, steps, meta_graph=False)
    return losses.detach()


BASELINES: dict[str, Callable[[list[torch.Tensor], float], torch.optim.Optimizer]] = {
    "SGD": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "RMSprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "Adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}
"""The hand-designed optimizers, each as ``torch.optim`` builds it (default
betas/alpha; momentum 0.9). All are coordinatewise, so one optimizer on the
stacked ``[B, n]`` parameters with loss ``sum_b f_b`` trains B problems
independently."""

LR_GRID = tuple(10.0 ** (k / 2) for k in range(-8, 3))  # 1e-4, 3.2e-4, ..., 10


def run_baseline(name: str, lr: float, family: OptimizeeFamily, problems, steps: int) -> torch.Tensor:
    """Loss trajectories ``[steps + 1, B]`` of ``torch.optim`` optimizer ``name`` at ``lr``.

    Step t evaluates f(theta_t) on minibatch t and steps along its gradient,
    exactly like :func:`unroll`, so the trajectories are paired.
    """
    theta = problems.theta0.detach().clone().requires_grad_(True)
    optimizer = BASELINES[name]([theta], lr)
    losses = []
    with torch.enable_grad():
        for t in range(steps + 1):
            loss = family.loss(problems, theta, t)
            losses.append(loss.detach())
            if t == steps:
                break
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
    return torch.stack(losses)


def trajectory_score(losses: torch.Tensor) -> float:
    """The tuning criterion: mean of f(theta_1..T) over steps and problems
    (the meta-objective the LSTM is trained on); inf if a run diverged."""
    value = losses[1:].mean().item()
    return value if math.isfinite(value) else math.inf


def tune_learning_rates(
    family: OptimizeeFamily,
    problems,
    steps: int,
    names: Sequence[str] = tuple(BASELINES),
    grid: Sequence[float] = LR_GRID,
    progress: bool = True,
) -> dict[str, dict]:
    """Grid search of the learning rate of each baseline on ``problems``.

    Returns ``{name: {"lr": best, "score": its score, "scores": {lr: score}}}``
    with :func:`trajectory_score` as the criterion: the same problems and
    criterion the learned optimizer is meta-trained with.
    """
    results = {}
    runs = [(name, lr) for name in names for lr in grid]
    scores: dict[str, dict[float, float]] = {name: {} for name in names}
    for name, lr in progress_bar(runs, desc=f"tune baselines on {family.name}", disable=not progress, leave=False):
        scores[name][lr] = trajectory_score(run_baseline(name, lr, family, problems, steps))
    for name in names:
        best = min(scores[name], key=scores[name].get)
        results[name] = {"lr": best, "score": scores[name][best], "scores": scores[name]}
    return results


def compare_optimizers(
    learned: dict[str, object],
    learning_rates: dict[str, float],
    family: OptimizeeFamily,
    problems,
    steps: int,
) -> dict[str, torch.Tensor]:
    """``{name: losses [steps + 1, B]}`` for the learned rules and each tuned baseline."""
    curves = {name: run_learned(rule, family, problems, steps) for name, rule in learned.items()}
    for name, lr in learning_rates.items():
        curves[name] = run_baseline(name, lr, family, problems, steps)
    return curves


def comparison_table(curves: dict[str, torch.Tensor], horizon: int, steps: Sequence[int],
                     reference: str = "LSTM (learned)") -> str:
    """A text table: per optimizer, the meta-objective (mean f over t = 1..horizon) and f at
    each of ``steps`` (mean ± 95% CI over problems); then ``reference`` minus each other
    optimizer on the same problems (paired differences, mean ± 95% CI; negative: reference lower)."""
    from .evaluation import mean_confidence_interval

    metrics = {f"mean f, t<={horizon}": lambda c: c[1 : horizon + 1].mean(dim=0)}
    metrics.update({f"f(θ_{s})": (lambda c, s=s: c[s]) for s in steps})
    cell = lambda values: "{:.4f} ± {:.4f}".format(*mean_confidence_interval(values))  # noqa: E731
    lines = [f"{'':16s}" + "".join(f"{name:>20s}" for name in metrics)]
    for name, losses in curves.items():
        lines.append(f"{name:16s}" + "".join(f"{cell(metric(losses)):>20s}" for metric in metrics.values()))
    if reference in curves:
        lines.append(f"{reference} minus ... (paired):")
        for name, losses in curves.items():
            if name != reference:
                lines.append(f"  {name:14s}" + "".join(
                    f"{cell(metric(curves[reference]) - metric(losses)):>20s}" for metric in metrics.values()))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Variable ratio, and the data of the command line
# --------------------------------------------------------------------------


def variable_counts(optimizer_net: LSTMOptimizer, num_optimizee_parameters: int) -> dict[str, int]:
    """Meta-parameters (phi) vs learned variables (theta + per-coordinate LSTM state)."""
    meta = sum(p.numel() for p in optimizer_net.parameters())
    state = num_optimizee_parameters * optimizer_net.state_size_per_coordinate()
    return {"meta_parameters": meta, "optimizee_parameters": num_optimizee_parameters, "lstm_state": state,
            "learned_variables": num_optimizee_parameters + state}


def mnist_split(mnist=None, side: int = 8, seed: int = 0, meta_training: int = 8000):
    """MNIST test digits pooled to ``side x side`` and flattened, and a seeded split of the
    indices (as in notebook 01): ``(inputs [10000, side*side], labels, meta_training_idx, held_out_idx)``."""
    if mnist is None:
        from .data import load_mnist_test

        mnist = load_mnist_test()
    order = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(seed))
    inputs = F.adaptive_avg_pool2d(mnist.images, side).flatten(start_dim=1)
    return inputs, mnist.labels, order[:meta_training], order[meta_training:]


# --------------------------------------------------------------------------
# The face the registry reads (course_lib.registry)
# --------------------------------------------------------------------------

Config = LearnedOptimizerConfig
PAPER: dict[str, float] = {}  # the paper shows loss curves, not a table
RUNS: tuple = ()  # notebook 06 meta-trains live; no run is shipped
REFERENCE = "LSTM (learned)"


def build(config: LearnedOptimizerConfig) -> LSTMOptimizer:
    return LSTMOptimizer(config)


def load_data(config: LearnedOptimizerConfig, smoke: bool = False) -> dict[str, OptimizeeFamily]:
    """Meta-training and test optimizees of ``config.optimizee``: fresh 10-d quadratics, or the
    MLP 64-20-10 on MNIST pooled to 8x8, its meta-training images apart from its test images
    (notebook 06; ``smoke``: 1,000 of each)."""
    if config.optimizee == "quadratic":
        return {"train": QuadraticFamily(), "test": QuadraticFamily()}
    inputs, labels, meta_training, held_out = mnist_split()
    if smoke:
        meta_training, held_out = meta_training[:1000], held_out[:1000]
    return {"train": MLPFamily(inputs[meta_training], labels[meta_training], name="MLP 64-20-10, meta-training images"),
            "test": MLPFamily(inputs[held_out], labels[held_out], name="MLP 64-20-10, held-out images")}


def evaluate(model: LSTMOptimizer, config: LearnedOptimizerConfig, data: dict, device="cpu", *, settings=(),
             episodes: int = 100, progress: bool = True) -> dict[str, dict]:
    """The learned rule and each baseline on ``episodes`` fresh test optimizees for ``config.horizon`` steps.

    The baselines' learning rates are tuned on the optimizees of the first two
    meta-training steps (:func:`tune_learning_rates`). Per optimizer: the
    meta-objective (mean f(theta_t) over t = 1..horizon) and f at the horizon,
    mean ± 95% CI over the test optimizees.
    """
    tuned = tune_learning_rates(data["train"], meta_training_problems(data["train"], config, 2), config.horizon,
                                progress=progress)
    problems = problem_batch(data["test"], episodes, seed=2024)
    curves = compare_optimizers({REFERENCE: model.cpu().eval()}, {name: t["lr"] for name, t in tuned.items()},
                                data["test"], problems, config.horizon)
    results = {}
    for name, losses in curves.items():
        mean, ci95 = mean_confidence_interval(losses[1:].mean(dim=0))
        final, final_ci95 = mean_confidence_interval(losses[-1])
        results[name] = {"mean": mean, "ci95": ci95, "final": final, "final_ci95": final_ci95,
                         "problems": episodes, **({"lr": tuned[name]["lr"]} if name in tuned else {})}
    return results


def evaluation_details(settings) -> dict:
    return {"test_problems_seed": 2024, "tuned_on": "the optimizees of meta-training steps 0 and 1"}


def results_markdown(method, results: dict, config, meta: dict) -> str:
    """results.md: losses per optimizer (not accuracies)."""
    lines = [f"# {meta['method']}: {describe(config)}", "",
             f"Trained {meta['steps_done']} of {config.steps} steps. Mean ± 95% CI over {meta['test_episodes']} "
             f"fresh test optimizees, {config.horizon} optimizer steps; baselines at their tuned learning rate.", "",
             f"| optimizer | mean f(θ_t), t ≤ {config.horizon} | f(θ_{config.horizon}) | learning rate |",
             "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['mean']:.4g} ± {r['ci95']:.2g} | {r['final']:.4g} ± {r['final_ci95']:.2g} | "
                     f"{r['lr']:.3g} |" if "lr" in r else
                     f"| {name} | {r['mean']:.4g} ± {r['ci95']:.2g} | {r['final']:.4g} ± {r['final_ci95']:.2g} | learned |")
    return "\n".join(lines) + "\n"


def predictor(model: LSTMOptimizer) -> LSTMOptimizer:
    """The learned update rule itself (``rule.step(grad, state)``; not a few-shot classifier)."""
    return model


def describe(config: LearnedOptimizerConfig) -> str:
    return (f"LSTM optimizer ({config.num_layers}x{config.hidden_size}) on {config.optimizee} optimizees, "
            f"horizon {config.horizon}, unroll {config.unroll}, {config.optimizees_per_batch} per step")
