"""Learned optimizers: an LSTM that maps gradients to updates (notebook 06).

"Learning to learn by gradient descent by gradient descent" (Andrychowicz et al., NeurIPS 2016)
keeps the skeleton of gradient descent and learns the update rule,

    theta_{t+1} = theta_t + g_t,      [g_t, h_{t+1}] = m(grad_t, h_t; omega),

``m`` a small LSTM applied to every coordinate of theta separately (weights ``omega`` shared, state
``h`` per coordinate), meta-trained to minimise L(omega) = E_f [ sum_t w_t f(theta_t) ] over a family
of optimizees ``f`` by backpropagating through truncated unrolls. Everything works on a batch of B
optimizees with parameters one flat tensor ``theta [B, n]``, written functionally (no ``nn.Module``)
so that theta_{t+1} stays a differentiable function of omega (the meta-parameters).
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
    meta_lr: float = 1e-3  # Adam on omega
    meta_grad_clip: float = 1.0  # clip the norm of each meta-gradient
    second_order: bool = False  # True: keep d grad_t / d omega (the paper drops it)
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
        if not (self.meta_lr > 0 and self.preprocess_p > 0 and self.meta_grad_clip >= 0):
            raise ValueError("meta_lr and preprocess_p must be > 0 and meta_grad_clip >= 0")
        if self.optimizee not in ("quadratic", "mlp"):
            raise ValueError(f"optimizee must be quadratic or mlp, got {self.optimizee!r}")


# ---------------- The update rule m(grad, h; omega)


def preprocess_gradient(grad: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """The paper's input preprocessing, coordinatewise ``[..] -> [.., 2]``: inputs of similar size for
    gradients of any size, grad -> (log|grad| / p, sign grad) if |grad| >= exp(-p), else (-1, exp(p) grad)."""
    magnitude = grad.abs()
    large = magnitude >= math.exp(-p)
    log_part = torch.where(large, torch.log(magnitude.clamp_min(math.exp(-p))) / p, -torch.ones_like(grad))
    sign_part = torch.where(large, torch.sign(grad), math.exp(p) * grad)
    return torch.stack([log_part, sign_part], dim=-1)


State = list  # one (h, c) pair of [B * n, hidden] tensors per LSTM layer


class LSTMOptimizer(nn.Module):
    """The coordinatewise LSTM optimizer m(grad_t, h_t; omega) -> (g_t, h_{t+1}): every coordinate of theta
    is one row of a batch through the same cells, so ~5,000 weights optimise a problem of any size."""

    def __init__(self, config: LearnedOptimizerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or LearnedOptimizerConfig()
        sizes = [2 if c.preprocess else 1] + [c.hidden_size] * c.num_layers
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
        for cell, pair in zip(self.cells, state):
            x, cell_state = cell(x, pair)  # the layer's h is the next layer's input
            new_state.append((x, cell_state))
        update = c.output_scale * self.readout(x).reshape(grad.shape)
        return update, new_state


class FixedRule:
    """``update = -lr * grad``: gradient descent as an update rule (in :func:`unroll`, SGD exactly)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def init_state(self, theta: torch.Tensor) -> State:
        return []

    def step(self, grad: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        return -self.lr * grad, state


def _detach_state(state: State) -> State:
    return [tuple(t.detach() for t in pair) for pair in state]


# ---------------- Optimizees: families of differentiable losses f(theta)


class OptimizeeFamily(TaskDistribution):
    """Optimizees f: ``sample`` draws one problem (its data and ``theta0``); ``loss(problems, theta, step)``
    gives the losses ``[B]`` of a batch at ``theta [B, n]`` (``step`` picks the minibatch)."""

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
    """The paper's quadratics f(theta) = ||W theta - y||^2, W, y ~ N(0, 1), theta0 ~ N(0, init_std^2)."""

    def __init__(self, dim: int = 10, init_std: float = 0.01, dtype=torch.float32) -> None:
        self.dim, self.init_std, self.dtype = dim, init_std, dtype
        self.num_parameters = dim
        self.name = f"{dim}-d quadratic"

    def sample(self, generator: torch.Generator | None = None) -> QuadraticProblem:
        d = self.dim
        W = torch.randn(d, d, generator=generator, dtype=self.dtype)
        y = torch.randn(d, generator=generator, dtype=self.dtype)
        theta0 = self.init_std * torch.randn(d, generator=generator, dtype=self.dtype)
        return QuadraticProblem(W, y, theta0)

    def loss(self, problems: QuadraticProblem, theta: torch.Tensor, step: int) -> torch.Tensor:
        residual = torch.einsum("bij,bj->bi", problems.W, theta) - problems.y
        return (residual**2).sum(dim=-1)


@dataclass
class MLPProblem:
    theta0: torch.Tensor  # [n] initial parameters
    seed: torch.Tensor  # [] long: the problem's own minibatch stream


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


class MLPFamily(OptimizeeFamily):
    """Cross-entropy of an MLP classifier on minibatches of a fixed image set. A problem is ``theta0``
    (uniform in +-1/sqrt(fan_in), biases 0) and a seed of its minibatches, the same for every optimizer."""

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, hidden: Sequence[int] = (20,),
                 activation: str = "sigmoid", batch_size: int = 128, name: str | None = None) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.inputs = inputs.flatten(start_dim=1)
        self.labels = labels
        self.hidden, self.activation, self.batch_size = tuple(hidden), activation, batch_size
        self.num_classes = int(labels.max()) + 1
        sizes = (self.inputs.shape[1], *self.hidden, self.num_classes)
        self.shapes = list(zip(sizes[:-1], sizes[1:]))
        self.num_parameters = sum(a * b + b for a, b in self.shapes)
        self.name = name or f"MLP {'-'.join(map(str, sizes))} ({activation})"

    def sample(self, generator: torch.Generator | None = None) -> MLPProblem:
        pieces = []
        for fan_in, fan_out in self.shapes:
            bound = 1.0 / math.sqrt(fan_in)
            pieces += [(2 * torch.rand(fan_in * fan_out, generator=generator) - 1) * bound, torch.zeros(fan_out)]
        theta0 = torch.cat(pieces).to(self.inputs)
        return MLPProblem(theta0, torch.randint(0, 2**31 - 1, (), generator=generator))

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
        index = torch.stack([
            torch.randint(len(self.labels), (self.batch_size,), generator=step_generator(int(s), step))
            for s in problems.seed.reshape(-1).tolist()
        ]).to(self.labels.device)
        return self.inputs[index], self.labels[index]  # [B, batch, d], [B, batch]

    def logits(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        layers = self.unflatten(theta)
        for i, (W, b) in enumerate(layers):
            x = torch.baddbmm(b, x, W)
            if i < len(layers) - 1:
                x = ACTIVATIONS[self.activation](x)
        return x

    def loss(self, problems: MLPProblem, theta: torch.Tensor, step: int) -> torch.Tensor:
        x, y = self.minibatch(problems, step)
        logits = self.logits(theta, x)
        per_example = F.cross_entropy(logits.reshape(-1, self.num_classes), y.reshape(-1), reduction="none")
        return per_example.reshape(y.shape).mean(dim=1)


def problem_batch(family: OptimizeeFamily, count: int, seed: int):
    """``count`` problems of ``family``, the same ones for the same seed, stacked into a batch."""
    return stack_tasks(family.fixed_tasks(count, seed))


# ---------------- The inner loop (an unroll) and the outer loop (meta-training)


def unroll(rule, family: OptimizeeFamily, problems, theta: torch.Tensor, state: State, start: int, steps: int,
           *, meta_graph: bool = True, second_order: bool = False) -> tuple[torch.Tensor, torch.Tensor, State]:
    """``steps`` optimizer steps from ``theta`` = theta_start, for B problems at once:
    theta_{t+1} = theta_t + g_t, [g_t, h_{t+1}] = rule.step(grad_t, h_t), grad_t = d f(theta_t) / d theta_t.

    Returns ``(losses [steps + 1, B], theta, state)``, ``losses[k] = f(theta_{start+k})``. ``meta_graph``
    keeps the graph from omega to every loss (else: detach after every step, for evaluation);
    ``second_order=False`` treats grad_t as a constant (the paper's d grad_t / d omega = 0).
    """
    theta = theta if theta.requires_grad else theta.detach().requires_grad_(True)
    loss = family.loss(problems, theta, start)
    losses = [loss]
    for t in range(start, start + steps):
        (grad,) = torch.autograd.grad(loss.sum(), theta, create_graph=meta_graph and second_order,
                                      retain_graph=meta_graph)
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
    """sum_t w_t f(theta_t), w_t = 1/K, over a truncation and the optimizees (``losses[0]`` has no omega in it)."""
    return losses[1:].mean()


def meta_training_batch(family: OptimizeeFamily, config: LearnedOptimizerConfig, step: int, steps: int = 1):
    """The optimizees that meta-training draws at steps ``step .. step + steps - 1`` (a function of the seed
    and the step), as one batch."""
    generators = [step_generator(config.seed, i) for i in range(step, step + steps)]
    return stack_tasks([family.sample(g) for g in generators for _ in range(config.optimizees_per_batch)])


def meta_training_problems(family: OptimizeeFamily, config: LearnedOptimizerConfig, steps: int):
    """The optimizees of the first ``steps`` meta-training steps as one batch (to tune the baselines on)."""
    return meta_training_batch(family, config, 0, steps)


def trainer(model: LSTMOptimizer, config: LearnedOptimizerConfig, data: dict, device="cpu",
            meta_optimizer: torch.optim.Optimizer | None = None) -> Trainer:
    """One meta-training step (on the CPU: the tensors are tiny): ``optimizees_per_batch`` optimizees of
    ``data["train"]`` trained ``horizon`` steps by the rule, one Adam step on omega per truncation of
    ``unroll`` steps; then theta and the LSTM state are detached (the next truncation goes on from there)."""
    model.cpu().train()
    family = data["train"]
    c = model.config
    meta_optimizer = meta_optimizer or torch.optim.Adam(model.parameters(), lr=c.meta_lr)

    def step(i: int) -> dict[str, float]:
        problems = meta_training_batch(family, c, i)
        theta, state = problems.theta0, model.init_state(problems.theta0)
        meta_losses = []
        for start in range(0, c.horizon, c.unroll):
            losses, theta, state = unroll(model, family, problems, theta, state, start, c.unroll,
                                          meta_graph=True, second_order=c.second_order)
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


def meta_train(optimizer_net: LSTMOptimizer, family: OptimizeeFamily, steps: int, *,
               history: History | None = None, meta_optimizer: torch.optim.Optimizer | None = None,
               start_step: int = 0, progress: bool = True, desc: str | None = None) -> History:
    """Meta-train ``optimizer_net`` on ``family``: the :func:`trainer` step, ``start_step .. steps - 1``."""
    step = trainer(optimizer_net, optimizer_net.config, {"train": family}, meta_optimizer=meta_optimizer).step
    return train_loop(step, steps, history=history, start_step=start_step,
                      desc=desc or f"meta-train LSTM optimizer on {family.name}", progress=progress)


# ---------------- Comparing the learned optimizer with tuned baselines


def run_learned(rule, family: OptimizeeFamily, problems, steps: int) -> torch.Tensor:
    """Loss trajectories ``[steps + 1, B]`` of ``rule`` (no meta-graph: evaluation)."""
    theta = problems.theta0
    with torch.enable_grad():
        losses, _, _ = unroll(rule, family, problems, theta, rule.init_state(theta), 0, steps, meta_graph=False)
    return losses.detach()


# The hand-designed optimizers (default betas/alpha; momentum 0.9). All are coordinatewise, so one
# optimizer on the stacked [B, n] parameters with loss sum_b f_b trains B problems independently.
BASELINES: dict[str, Callable[[list[torch.Tensor], float], torch.optim.Optimizer]] = {
    "SGD": lambda params, lr: torch.optim.SGD(params, lr=lr),
    "momentum": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
    "RMSprop": lambda params, lr: torch.optim.RMSprop(params, lr=lr),
    "Adam": lambda params, lr: torch.optim.Adam(params, lr=lr),
}
LR_GRID = tuple(10.0 ** (k / 2) for k in range(-8, 3))  # 1e-4, 3.2e-4, ..., 10


def run_baseline(name: str, lr: float, family: OptimizeeFamily, problems, steps: int) -> torch.Tensor:
    """Loss trajectories ``[steps + 1, B]`` of ``torch.optim`` optimizer ``name`` at ``lr`` (as :func:`unroll`)."""
    theta = problems.theta0.detach().clone().requires_grad_(True)
    optimizer = BASELINES[name]([theta], lr)
    losses = []
    with torch.enable_grad():
        for t in range(steps):
            loss = family.loss(problems, theta, t)
            losses.append(loss.detach())
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
        losses.append(family.loss(problems, theta, steps).detach())
    return torch.stack(losses)


def trajectory_score(losses: torch.Tensor) -> float:
    """The tuning criterion, the LSTM's meta-objective: mean f(theta_1..T); inf if a run diverged."""
    value = losses[1:].mean().item()
    return value if math.isfinite(value) else math.inf


def tune_learning_rates(family: OptimizeeFamily, problems, steps: int, names: Sequence[str] = tuple(BASELINES),
                        grid: Sequence[float] = LR_GRID, progress: bool = True) -> dict[str, dict]:
    """Grid search of each baseline's learning rate on ``problems``, by :func:`trajectory_score`:
    ``{name: {"lr": best, "score": its score, "scores": {lr: score}}}``."""
    scores: dict[str, dict[float, float]] = {name: {} for name in names}
    runs = [(name, lr) for name in names for lr in grid]
    for name, lr in progress_bar(runs, desc=f"tune baselines on {family.name}", disable=not progress, leave=False):
        scores[name][lr] = trajectory_score(run_baseline(name, lr, family, problems, steps))
    best = {name: min(scores[name], key=scores[name].get) for name in names}
    return {name: {"lr": best[name], "score": scores[name][best[name]], "scores": scores[name]} for name in names}


def compare_optimizers(learned: dict[str, object], learning_rates: dict[str, float], family: OptimizeeFamily,
                       problems, steps: int) -> dict[str, torch.Tensor]:
    """``{name: losses [steps + 1, B]}`` for the learned rules and each tuned baseline."""
    curves = {name: run_learned(rule, family, problems, steps) for name, rule in learned.items()}
    return curves | {name: run_baseline(name, lr, family, problems, steps) for name, lr in learning_rates.items()}


def comparison_table(curves: dict[str, torch.Tensor], horizon: int, steps: Sequence[int],
                     reference: str = "LSTM (learned)") -> str:
    """Per optimizer, mean f over t = 1..horizon and f at each of ``steps`` (mean ± 95% CI over problems),
    then ``reference`` minus each other optimizer (paired differences; negative: reference lower)."""
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


def variable_counts(optimizer_net: LSTMOptimizer, num_optimizee_parameters: int) -> dict[str, int]:
    """Meta-parameters (omega) vs learned variables (theta + per-coordinate LSTM state)."""
    meta = sum(p.numel() for p in optimizer_net.parameters())
    state = num_optimizee_parameters * optimizer_net.state_size_per_coordinate()
    return {"meta_parameters": meta, "optimizee_parameters": num_optimizee_parameters, "lstm_state": state,
            "learned_variables": num_optimizee_parameters + state}


def mnist_split(mnist=None, side: int = 8, seed: int = 0, meta_training: int = 8000):
    """MNIST test digits pooled to ``side x side``, flattened, and a seeded split of their indices:
    ``(inputs [10000, side*side], labels, meta_training_idx, held_out_idx)``."""
    if mnist is None:
        from .data import load_mnist_test

        mnist = load_mnist_test()
    order = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(seed))
    inputs = F.adaptive_avg_pool2d(mnist.images, side).flatten(start_dim=1)
    return inputs, mnist.labels, order[:meta_training], order[meta_training:]


# ---------------- The face the registry reads (course_lib.registry)

Config = LearnedOptimizerConfig
PAPER: dict[str, float] = {}  # the paper shows loss curves, not a table
RUNS: tuple = ()  # notebook 06 meta-trains live; no run is shipped
REFERENCE = "LSTM (learned)"


def build(config: LearnedOptimizerConfig) -> LSTMOptimizer:
    return LSTMOptimizer(config)


def load_data(config: LearnedOptimizerConfig, smoke: bool = False) -> dict[str, OptimizeeFamily]:
    """Optimizees of ``config.optimizee``: 10-d quadratics, or the MLP 64-20-10 on MNIST pooled to 8x8,
    meta-training images apart from test images (``smoke``: 1,000 of each)."""
    if config.optimizee == "quadratic":
        return {"train": QuadraticFamily(), "test": QuadraticFamily()}
    inputs, labels, meta_training, held_out = mnist_split()
    if smoke:
        meta_training, held_out = meta_training[:1000], held_out[:1000]
    return {"train": MLPFamily(inputs[meta_training], labels[meta_training], name="MLP 64-20-10, meta-training images"),
            "test": MLPFamily(inputs[held_out], labels[held_out], name="MLP 64-20-10, held-out images")}


def evaluate(model: LSTMOptimizer, config: LearnedOptimizerConfig, data: dict, device="cpu", *, settings=(),
             episodes: int = 100, progress: bool = True) -> dict[str, dict]:
    """Mean f(theta_t), t = 1..horizon, and f at the horizon (mean ± 95% CI) of the learned rule and each
    baseline (tuned on meta-training steps 0 and 1) on ``episodes`` fresh test optimizees."""
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
    lines += [f"| {name} | {r['mean']:.4g} ± {r['ci95']:.2g} | {r['final']:.4g} ± {r['final_ci95']:.2g} | "
              f"{format(r['lr'], '.3g') if 'lr' in r else 'learned'} |" for name, r in results.items()]
    return "\n".join(lines) + "\n"


def predictor(model: LSTMOptimizer) -> LSTMOptimizer:
    """The learned update rule itself (``rule.step(grad, state)``; not a few-shot classifier)."""
    return model


def describe(config: LearnedOptimizerConfig) -> str:
    return (f"LSTM optimizer ({config.num_layers}x{config.hidden_size}) on {config.optimizee} optimizees, "
            f"horizon {config.horizon}, unroll {config.unroll}, {config.optimizees_per_batch} per step")
