"""Learned objective functions: meta-learn the loss that SGD minimises.

Introduced in notebook 06. The supervised form of the idea behind MetaGenRL
(Kirsch et al., ICLR 2020) and LPG (Oh et al., NeurIPS 2020): a small
network L_omega replaces the cross-entropy inside an ordinary training loop,

    inner loop (one task):  theta_{k+1} = theta_k - alpha * grad_theta (1/n) sum_i L_omega(f_theta(x_i), y~_i)
    outer loop:             omega <- omega - beta * grad_phi E_T [ CE(theta_K(omega); clean held-out data of T) ]

where y~ are the task's noisy training labels. The outer gradient goes through all K inner steps
(second order: omega acts on theta only through grad_theta L_omega). L_omega sees the probability
p = p_theta(y~ | x) of the *given* label, so it is a curve L_omega(p), a family that holds the
cross-entropy (-log p), the mean absolute error (2 - 2p) and the noise-robust losses in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import LabelledImages
from .episodes import TaskDistribution, stack_tasks, step_generator
from .runs import History, train_loop

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits [..., C], labels [...]) -> [...]


@dataclass
class LearnedLossConfig:
    """The learned loss, its tasks and its bilevel training."""

    hidden_size: int = 32  # units of L_omega's two hidden layers
    ways: int = 5  # classes per task (the classifier's outputs)
    classifier_hidden: int = 32  # the inner classifier: MLP in -> hidden (ReLU) -> ways (0: linear)
    inner_steps: int = 60  # K
    inner_lr: float = 0.5  # alpha
    inner_batch_size: int = 25  # SGD minibatch, random draws as in supervised.train_classifier (None: all)
    tasks_per_batch: int = 8
    meta_lr: float = 3e-3  # Adam on omega
    meta_grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, least in (("hidden_size", 1), ("ways", 2), ("classifier_hidden", 0), ("inner_steps", 0),
                            ("inner_batch_size", 1), ("tasks_per_batch", 1), ("seed", 0)):
            if getattr(self, name) is not None and getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")
        if not (self.inner_lr > 0 and self.meta_lr > 0 and self.meta_grad_clip >= 0):
            raise ValueError("inner_lr and meta_lr must be > 0 and meta_grad_clip >= 0")


# ---------------- Tasks: small classification problems with noisy training labels


@dataclass
class NoisyLabelTask:
    """One task (or a batch, with a leading dim): noisy training set, clean test set."""

    train_x: torch.Tensor  # [n, d]
    train_y: torch.Tensor  # [n] the labels the learner is given (noisy)
    clean_train_y: torch.Tensor  # [n] the true labels (never used for training)
    test_x: torch.Tensor  # [m, d]
    test_y: torch.Tensor  # [m] clean
    noise_rate: torch.Tensor  # [] the task's eta
    classes: torch.Tensor  # [ways] the dataset's class behind each task label


def symmetric_noise(labels: torch.Tensor, rate: float, ways: int, generator: torch.Generator | None) -> torch.Tensor:
    """Each label, with probability ``rate``, replaced by one of the other ``ways - 1`` classes uniformly."""
    flip = torch.rand(labels.shape, generator=generator) < rate
    shift = torch.randint(1, ways, labels.shape, generator=generator)
    return torch.where(flip, (labels + shift) % ways, labels)


def flat_features(dataset: LabelledImages, side: int = 8) -> torch.Tensor:
    """Images average-pooled to ``side x side`` and flattened: ``[n, side * side]`` in [0, 1]."""
    images = dataset.images
    if images.shape[-2:] != (side, side):
        images = F.adaptive_avg_pool2d(images, side)
    return images.flatten(start_dim=1)


class NoisyLabelTasks(TaskDistribution[NoisyLabelTask]):
    """``ways``-way tasks from a labelled image set: ``ways`` random classes in a random order, disjoint
    training and test images of each, and each training label corrupted with probability eta (a fixed
    ``noise``, or eta ~ U[low, high] per task for a pair). Test labels stay clean."""

    def __init__(self, dataset: LabelledImages, ways: int = 5, train_per_class: int = 20, test_per_class: int = 20,
                 noise: float | tuple[float, float] = 0.4, side: int = 8, name: str | None = None) -> None:
        if not 2 <= ways <= dataset.num_classes:
            raise ValueError(f"ways must be in 2..{dataset.num_classes}, got {ways}")
        low, high = (noise, noise) if isinstance(noise, (int, float)) else noise
        if not 0 <= low <= high < 1:
            raise ValueError(f"noise rates must satisfy 0 <= low <= high < 1, got {noise}")
        self.features, self.dataset = flat_features(dataset, side), dataset
        self.ways, self.train_per_class, self.test_per_class = ways, train_per_class, test_per_class
        self.noise = (float(low), float(high))
        self.name = name or f"{dataset.name}, {ways}-way, noise {low:g}-{high:g}"

    def sample(self, generator: torch.Generator | None = None) -> NoisyLabelTask:
        classes = torch.randperm(self.dataset.num_classes, generator=generator)[: self.ways]
        per_class, train, test = self.train_per_class + self.test_per_class, [], []
        for label in classes.tolist():
            members = self.dataset.indices_of_class(label)
            chosen = members[torch.randperm(len(members), generator=generator)[:per_class]]
            train.append(chosen[: self.train_per_class])
            test.append(chosen[self.train_per_class :])
        labels = torch.arange(self.ways)
        clean = labels.repeat_interleave(self.train_per_class)
        low, high = self.noise
        rate = low + (high - low) * torch.rand((), generator=generator).item()
        return NoisyLabelTask(self.features[torch.cat(train)], symmetric_noise(clean, rate, self.ways, generator),
                              clean, self.features[torch.cat(test)], labels.repeat_interleave(self.test_per_class),
                              torch.tensor(rate), classes)


# ---------------- The losses


def given_label_log_prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_theta(y | x) of the given label, per example."""
    return F.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The designed loss, per example: -log p_theta(y | x)."""
    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    return flat.reshape(labels.shape)


class LearnedLoss(nn.Module):
    """L_omega = a log p + b p + MLP(log p, p), with p = p_theta(y | x) of the given label.

    It starts as the cross-entropy (a = -1, b = 0, the tanh MLP's last layer zero), which meta-training
    bends. No output bias: a constant added to a loss changes no gradient, so it could not be learned.
    """

    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1, bias=False)
        self.mlp = nn.Sequential(nn.Linear(2, hidden_size), nn.Tanh(), nn.Linear(hidden_size, hidden_size),
                                 nn.Tanh(), nn.Linear(hidden_size, 1, bias=False))
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[-1.0, 0.0]]))
            self.mlp[-1].weight.zero_()

    def of_log_prob(self, log_p: torch.Tensor) -> torch.Tensor:
        """L_omega as a function of log p (any shape)."""
        features = torch.stack([log_p, log_p.exp()], dim=-1)
        return (self.linear(features) + self.mlp(features)).squeeze(-1)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.of_log_prob(given_label_log_prob(logits, labels))


def loss_curve(loss_fn: LearnedLoss | None, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L(p) - L(1), -dL/dlog p)`` on a grid of probabilities ``p`` (None: cross-entropy). The second is
    the weight of an example's log-likelihood gradient: 1 for the cross-entropy, less where a loss gives up."""
    log_p = torch.log(p.detach().clone()).requires_grad_(True)
    with torch.enable_grad():
        values = -log_p if loss_fn is None else loss_fn.of_log_prob(log_p)
        (slope,) = torch.autograd.grad(values.sum(), log_p)
        reference = 0.0 if loss_fn is None else loss_fn.of_log_prob(torch.zeros(())).item()
    return (values - reference).detach(), -slope.detach()


# ---------------- The classifier, written functionally: theta is one flat vector per task


def classifier_shapes(inputs: int, hidden: int, classes: int) -> list[tuple[int, int]]:
    return [(inputs, hidden), (hidden, classes)] if hidden else [(inputs, classes)]


def init_classifier(shapes, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[count, n]`` parameters, initialised like ``nn.Linear`` (U(+-1/sqrt(fan_in)) for W and b)."""
    return torch.cat([(2 * torch.rand(count, fan_in * fan_out + fan_out, generator=generator) - 1)
                      * (1.0 / math.sqrt(fan_in)) for fan_in, fan_out in shapes], dim=1)


def classifier_logits(theta: torch.Tensor, x: torch.Tensor, shapes) -> torch.Tensor:
    """The MLP of :class:`course_lib.models.MLP` (Linear, ReLU, ..., Linear) for B tasks:
    ``theta [B, n]``, ``x [B, m, d]`` -> logits ``[B, m, C]``. Per layer, theta holds
    W as ``[in, out]`` (the transpose of ``nn.Linear.weight``) followed by b."""
    offset = 0
    for i, (fan_in, fan_out) in enumerate(shapes):
        W = theta[:, offset : offset + fan_in * fan_out].reshape(-1, fan_in, fan_out)
        offset += fan_in * fan_out
        b = theta[:, offset : offset + fan_out].reshape(-1, 1, fan_out)
        offset += fan_out
        x = torch.baddbmm(b, x, W)
        if i < len(shapes) - 1:
            x = torch.relu(x)
    return x


def inner_train(loss_fn: LossFunction, theta: torch.Tensor, train_x: torch.Tensor, train_y: torch.Tensor, shapes,
                *, steps: int, lr: float, batch_size: int | None = None, generator: torch.Generator | None = None,
                create_graph: bool = True) -> torch.Tensor:
    """K steps of minibatch SGD on ``loss_fn`` for B tasks at once: returns theta_K ``[B, n]``.

    The minibatches are drawn as :func:`course_lib.supervised.train_classifier` draws them (the same
    positions in every task; ``batch_size=None``: all). ``create_graph=True`` keeps the graph for the
    outer gradient (second order); ``False`` detaches after every step.
    """
    n = train_x.shape[1]
    batch_size = min(batch_size or n, n)
    for _ in range(steps):
        if batch_size < n:
            index = torch.randint(n, (batch_size,), generator=generator).to(train_x.device)
            x, y = train_x[:, index], train_y[:, index]
        else:
            x, y = train_x, train_y
        if not theta.requires_grad:
            theta = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(classifier_logits(theta, x, shapes), y).mean(dim=1).sum()
            (grad,) = torch.autograd.grad(loss, theta, create_graph=create_graph)
        theta = theta - lr * grad
        if not create_graph:
            theta = theta.detach()
    return theta


def held_out_metrics(theta: torch.Tensor, tasks: NoisyLabelTask, shapes) -> tuple[torch.Tensor, torch.Tensor]:
    """Per task: clean test cross-entropy and accuracy of the trained classifiers."""
    logits = classifier_logits(theta, tasks.test_x, shapes)
    ce = cross_entropy(logits, tasks.test_y).mean(dim=1)
    accuracy = (logits.argmax(-1) == tasks.test_y).float().mean(dim=1)
    return ce, accuracy


# ---------------- The outer loop, and evaluation


def _inner_setup(config: LearnedLossConfig, tasks: NoisyLabelTask, seed: int):
    shapes = classifier_shapes(tasks.train_x.shape[-1], config.classifier_hidden, config.ways)
    generator = torch.Generator().manual_seed(seed)
    theta0 = init_classifier(shapes, tasks.train_x.shape[0], generator).to(tasks.train_x)
    return shapes, theta0, generator


def meta_train_loss(learned_loss: LearnedLoss, tasks: NoisyLabelTasks, config: LearnedLossConfig, steps: int, *,
                    history: History | None = None, progress: bool = True) -> History:
    """The bilevel optimisation. Each step: ``tasks_per_batch`` fresh tasks and classifiers (seeded by
    ``config.seed`` and the step), inner training with L_omega on the noisy labels, and one Adam step on
    omega down the clean held-out cross-entropy (logged as ``meta_loss``, with ``held_out_accuracy``)."""
    meta_optimizer = torch.optim.Adam(learned_loss.parameters(), lr=config.meta_lr)

    def step(i: int) -> dict[str, float]:
        seed = step_generator(config.seed, i).initial_seed()  # the step's seed: tasks, initialisations, batches
        batch = stack_tasks(tasks.fixed_tasks(config.tasks_per_batch, seed))
        shapes, theta0, generator = _inner_setup(config, batch, seed)
        theta = inner_train(learned_loss, theta0, batch.train_x, batch.train_y, shapes, steps=config.inner_steps,
                            lr=config.inner_lr, batch_size=config.inner_batch_size, generator=generator)
        ce, accuracy = held_out_metrics(theta, batch, shapes)
        meta_loss = ce.mean()
        meta_optimizer.zero_grad(set_to_none=True)
        meta_loss.backward()
        if config.meta_grad_clip:
            nn.utils.clip_grad_norm_(learned_loss.parameters(), config.meta_grad_clip)
        meta_optimizer.step()
        return {"meta_loss": meta_loss.item(), "held_out_accuracy": accuracy.mean().item()}

    return train_loop(step, steps, history=history, desc="meta-train the loss L_omega", progress=progress)


def evaluate_loss(loss_fn: LossFunction, tasks: NoisyLabelTasks, config: LearnedLossConfig, *, count: int,
                  seed: int, lr: float | None = None, chunk: int = 50) -> dict[str, torch.Tensor]:
    """Train a fresh classifier with ``loss_fn`` on each of ``count`` tasks. Per task: ``accuracy`` and
    ``cross_entropy`` on the clean test set, and ``wrong_labels_fitted``, the fraction of the corrupted
    training labels it predicts (memorised noise; nan without any). Everything random depends on
    ``seed`` only, so two losses with the same seed are compared on the same runs (paired)."""
    all_tasks = tasks.fixed_tasks(count, seed)
    accuracies, ces, fitted = [], [], []
    for start in range(0, count, chunk):
        batch = stack_tasks(all_tasks[start : start + chunk])
        shapes, theta0, generator = _inner_setup(config, batch, seed * 7919 + start)
        theta = inner_train(loss_fn, theta0, batch.train_x, batch.train_y, shapes, steps=config.inner_steps,
                            lr=config.inner_lr if lr is None else lr, batch_size=config.inner_batch_size,
                            generator=generator, create_graph=False)
        with torch.no_grad():
            ce, accuracy = held_out_metrics(theta, batch, shapes)
            predicted = classifier_logits(theta, batch.train_x, shapes).argmax(-1)
            corrupted = batch.train_y != batch.clean_train_y
            fitted.append(((predicted == batch.train_y) & corrupted).sum(1) / corrupted.sum(1))
        accuracies.append(accuracy), ces.append(ce)
    return {"accuracy": torch.cat(accuracies), "cross_entropy": torch.cat(ces),
            "wrong_labels_fitted": torch.cat(fitted)}


LR_GRID = (0.03, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


def tune_inner_lr(loss_fn: LossFunction, tasks: NoisyLabelTasks, config: LearnedLossConfig, *, count: int,
                  seed: int, grid: Sequence[float] = LR_GRID) -> dict:
    """Grid search of the inner learning rate for a fixed loss (the cross-entropy baseline),
    on meta-training tasks, by the outer objective (clean held-out cross-entropy)."""
    scores = {}
    for lr in grid:
        value = evaluate_loss(loss_fn, tasks, config, count=count, seed=seed, lr=lr)["cross_entropy"].mean().item()
        scores[lr] = value if math.isfinite(value) else math.inf
    best = min(scores, key=scores.get)
    return {"lr": best, "score": scores[best], "scores": scores}


def variable_counts(learned_loss: LearnedLoss, config: LearnedLossConfig, inputs: int) -> dict[str, int]:
    """Meta-parameters (omega) vs learned variables (the classifier's theta) per task."""
    shapes = classifier_shapes(inputs, config.classifier_hidden, config.ways)
    return {"meta_parameters": sum(p.numel() for p in learned_loss.parameters()),
            "learned_variables": sum(a * b + b for a, b in shapes)}
