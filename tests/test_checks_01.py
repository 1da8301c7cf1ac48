"""Notebook 01's exercise checks accept correct solutions in any form and reject typical mistakes in plain words."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import t as student_t
from torch.func import functional_call

from course_lib.teaching.checks import nb01 as checks
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

NOTEBOOK = "01_supervised_learning"  # the *_reference functions are its solutions, defined from its source

# Exercise 1: cross-entropy.

ce_reference = notebook_solution(NOTEBOOK, "cross_entropy")


def ce_gather(logits, labels):
    return -F.log_softmax(logits, dim=-1).gather(1, labels[:, None]).squeeze(1).mean()


def ce_max_shift(logits, labels):
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return (shifted.exp().sum(1).log() - shifted[torch.arange(len(labels)), labels]).mean()


# Exercise 2: one SGD step.

sgd_reference = notebook_solution(NOTEBOOK, "sgd_step")


def sgd_tuple(params, grads, lr):
    return tuple(torch.add(p, g, alpha=-lr) for p, g in zip(params, grads))


def sgd_in_place(params, grads, lr):
    for p, g in zip(params, grads):
        p.sub_(lr * g)
    return params


# Exercise 3: a 95% confidence interval from a few values.

ci_reference = notebook_solution(NOTEBOOK, "confidence_interval")


def ci_numpy(values):
    x = np.asarray(values)
    return x.mean(), student_t.ppf(0.975, df=len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))


def ci_statistics(values):
    return statistics.mean(values), student_t.isf(0.025, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5


def ci_with(quantile=lambda n: student_t.ppf(0.975, n - 1), std=lambda x: x.std(ddof=1), root=np.sqrt, scale=1.0):
    def confidence_interval(values):
        x = np.asarray(values)
        return x.mean(), scale * quantile(len(x)) * std(x) / root(len(x))
    return confidence_interval


# The training loop: sample_minibatch, training_step, train.

sample_reference = notebook_solution(NOTEBOOK, "sample_minibatch")


def sample_without_replacement(dataset, batch_size, generator):
    index = torch.randperm(len(dataset), generator=generator)[:batch_size]
    return dataset.images[index], dataset.labels[index]


step_reference = notebook_solution(NOTEBOOK, "training_step")


def step_functional(model, x, y, lr):
    theta = dict(model.named_parameters())
    loss = ce_gather(functional_call(model, theta, (x,)), y)
    grads = torch.autograd.grad(loss, list(theta.values()))
    model.load_state_dict(dict(zip(theta, sgd_tuple(list(theta.values()), grads, lr))), strict=False)
    return loss


def step_backward(model, x, y, lr):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    return loss.item()


def step_with(sign=1.0, reduction="mean", zero_grad=True, write=True, fixed_lr=None, returned="before"):
    def training_step(model, x, y, lr):
        lr = fixed_lr if fixed_lr is not None else lr
        if zero_grad:
            model.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction=reduction)
        loss.backward()
        new = [p - sign * lr * p.grad for p in model.parameters()]
        if write:
            with torch.no_grad():
                for p, n in zip(model.parameters(), new):
                    p.copy_(n)
        return F.cross_entropy(model(x), y).item() if returned == "after" else loss.item()
    return training_step


def step_first_layer_only(model, x, y, lr):
    params = list(model.parameters())[:2]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p -= lr * g
    return loss.item()


def step_rebinding(model, x, y, lr):
    params = list(model.parameters())
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads):
        p = p - lr * g  # noqa: F841 (rebinds the name, the model keeps its values)
    return loss.item()


train_reference = notebook_solution(NOTEBOOK, "train")


def train_functional(model, dataset, steps, lr, batch_size, generator):
    """Parameters in a dict, the model only called through functional_call; written back at the end."""
    theta = {name: p.detach().clone().requires_grad_() for name, p in model.named_parameters()}
    losses = []
    for _ in range(steps):
        x, y = sample_without_replacement(dataset, batch_size, generator)
        loss = ce_gather(functional_call(model, theta, (x,)), y)
        grads = torch.autograd.grad(loss, list(theta.values()))
        theta = {name: (p - lr * g).detach().requires_grad_() for (name, p), g in zip(theta.items(), grads)}
        losses.append(loss.item())
    model.load_state_dict(theta, strict=False)
    return losses


def train_torch_optim(model, dataset, steps, lr, batch_size, generator):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = torch.zeros(steps)
    for step in range(steps):
        x, y = sample_reference(dataset, batch_size, generator)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
    return losses


def train_with(step=step_reference, sample=sample_reference, resample=True, every=1, source=None, use_generator=True):
    def train(model, dataset, steps, lr, batch_size, generator):
        data = source if source is not None else dataset
        draw = generator if use_generator else None
        batch = sample(data, batch_size, draw)
        losses = []
        for t in range(steps):
            if resample and t > 0:
                batch = sample(data, batch_size, draw)
            loss = step(model, *batch, lr)
            if t % every == 0:
                losses.append(loss)
        return losses
    return train


def train_functional_not_written_back(model, dataset, steps, lr, batch_size, generator):
    theta = dict(model.named_parameters())
    losses = []
    for _ in range(steps):
        x, y = sample_reference(dataset, batch_size, generator)
        loss = F.cross_entropy(functional_call(model, theta, (x,)), y)
        grads = torch.autograd.grad(loss, list(theta.values()))
        theta = dict(zip(theta, sgd_reference(list(theta.values()), grads, lr)))
        losses.append(loss.item())
    return losses


def train_summed_record(model, dataset, steps, lr, batch_size, generator):
    return [batch_size * loss for loss in train_reference(model, dataset, steps, lr, batch_size, generator)]


held_out_lookalike = checks._toy_digits(seed=99)  # a different set of images of the same shape: the "held-out set"

CORRECT = {
    "check_cross_entropy": [ce_reference, ce_gather, ce_max_shift, lambda l, y: F.cross_entropy(l, y)],
    "check_sgd_step": [sgd_reference, sgd_tuple],
    "check_confidence_interval": [ci_reference, ci_numpy, ci_statistics],
    "check_sample_minibatch": [sample_reference, sample_without_replacement],
    "check_training_step": [step_reference, step_functional, step_backward],
    "check_train": [train_reference, train_functional, train_torch_optim, train_with(step=step_functional)],
}

WRONG = [
    # (check, wrong implementation, words the message must contain)
    ("check_cross_entropy", lambda l, y: -(l.log_softmax(1)[torch.arange(len(y)), y]).sum(), "mean"),
    ("check_cross_entropy", lambda l, y: l.log_softmax(1)[torch.arange(len(y)), y].mean(), "sign"),
    ("check_cross_entropy", lambda l, y: -(l.softmax(1)[torch.arange(len(y)), y]).mean(), "log of the softmax"),
    ("check_cross_entropy", lambda l, y: -(l.log_softmax(1)[:, 0]).mean(), "own label"),
    ("check_cross_entropy", lambda l, y: -(l.exp() / l.exp().sum(1, keepdim=True)).log()[torch.arange(len(y)), y].mean(), "stabl"),
    ("check_cross_entropy", lambda l, y: F.cross_entropy(l, y, reduction="none"), "one number"),
    ("check_sgd_step", lambda p, g, lr: [a + lr * b for a, b in zip(p, g)], "sign"),
    ("check_sgd_step", lambda p, g, lr: [a - b for a, b in zip(p, g)], "learning rate"),
    ("check_sgd_step", sgd_in_place, "in place"),
    ("check_sgd_step", lambda p, g, lr: [-lr * b for b in g], "updated parameters"),
    ("check_sgd_step", lambda p, g, lr: [p[0] - lr * g[0]], "one new tensor per parameter"),
    ("check_confidence_interval", ci_with(quantile=lambda n: 1.96), "Student's t"),
    ("check_confidence_interval", ci_with(quantile=lambda n: student_t.ppf(0.975, n)), "n - 1 degrees of freedom"),
    ("check_confidence_interval", ci_with(std=lambda x: x.std()), "sample standard deviation"),
    ("check_confidence_interval", ci_with(root=lambda n: n), "s / sqrt(n)"),
    ("check_confidence_interval", ci_with(root=lambda n: 1.0), "divide the standard deviation by sqrt(n)"),
    ("check_confidence_interval", ci_with(std=lambda x: x.var(ddof=1)), "not the variance"),
    ("check_confidence_interval", ci_with(quantile=lambda n: student_t.ppf(0.95, n - 1)), "0.975 quantile"),
    ("check_confidence_interval", ci_with(scale=2.0), "half-width"),
    ("check_confidence_interval", lambda v: (np.median(v), ci_reference(v)[1]), "mean of the values"),
    ("check_sample_minibatch", lambda d, b, g: (d.images[:b], d.labels[:b]), "same minibatch"),
    ("check_sample_minibatch", lambda d, b, g: sample_reference(d, b, None), "generator"),
    ("check_sample_minibatch", lambda d, b, g: sample_reference(d, b, torch.Generator().manual_seed(0)), "same minibatch"),
    ("check_sample_minibatch", lambda d, b, g: (sample_reference(d, b, g)[0], d.labels[torch.randint(len(d), (b,), generator=g)]), "labels do not belong"),
    ("check_sample_minibatch", lambda d, b, g: (lambda i: (d.images[i], d.labels[i]))(torch.randint(len(d) - 1, (b,), generator=g)), "never drawn"),
    ("check_sample_minibatch", lambda d, b, g: (lambda i: (d.images[i], d.labels[i]))(torch.randint(len(d), (b + 1,), generator=g)), "shape"),
    ("check_sample_minibatch", lambda d, b, g: torch.randint(len(d), (b,), generator=g), "two tensors"),
    ("check_training_step", step_with(sign=-1.0), "wrong direction"),
    ("check_training_step", step_with(reduction="sum"), "average the loss"),
    ("check_training_step", step_with(zero_grad=False), "accumulate"),
    ("check_training_step", step_with(write=False), "did not change"),
    ("check_training_step", step_rebinding, "did not change"),
    ("check_training_step", step_with(fixed_lr=0.1), "lr argument"),
    ("check_training_step", step_first_layer_only, "were not updated"),
    ("check_training_step", step_with(returned="after"), "before the step"),
    ("check_train", train_with(resample=False), "same minibatch at every step"),
    ("check_train", train_with(step=step_with(zero_grad=False)), "accumulate"),
    ("check_train", train_with(source=held_out_lookalike), "not in `dataset`"),
    ("check_train", train_with(step=step_with(reduction="sum")), "summed"),
    ("check_train", train_with(step=step_with(sign=-1.0)), "wrong direction"),
    ("check_train", train_functional_not_written_back, "same after training"),
    ("check_train", train_with(every=5), "one loss per step"),
    ("check_train", train_with(use_generator=False), "generator"),
    ("check_train", train_summed_record, "sums over the minibatch"),
    ("check_train", lambda m, d, s, lr, b, g: train_reference(m, d, s, lr, b, g)[-1], "list of the losses"),
]


@pytest.mark.parametrize("check, solution", [(c, s) for c, solutions in CORRECT.items() for s in solutions],
                         ids=[f"{c}-{i}" for c, solutions in CORRECT.items() for i in range(len(solutions))])
def test_notebook_01_correct_solutions_pass(check, solution, capsys):
    """The reference solution and the alternative correct forms of each exercise pass its check."""
    getattr(checks, check)(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_notebook_01_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    assert_rejected_in_plain_words(checks, check, wrong, words)


def test_every_exercise_has_five_mistakes():
    counts = {check: sum(c == check for c, _, _ in WRONG) for check in CORRECT}
    assert all(count >= 5 for count in counts.values()), counts


def test_unfinished_exercises_are_reported_as_not_done():
    """The student copy's placeholder propagates as NotImplementedError, not as a wrong answer."""
    assert_unfinished_exercises_surface(checks, *CORRECT)
