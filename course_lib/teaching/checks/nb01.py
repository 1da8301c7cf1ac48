"""Checks for the exercises of notebook 01: supervised learning.

The short exercises (cross-entropy, one SGD step, a confidence interval over a few runs) are compared
with known answers. The training loop is checked on a small linear model that records every batch it
is trained on, so any correct loop passes whatever random examples it draws: its final parameters must
be those of plain SGD replayed on the batches it saw.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from scipy.stats import t as student_t
from torch import nn

from ...data import LabelledImages
from .common import close, diagnose, fail, fail_if, passed, run_for_items, run_for_tensor, run_student


def check_cross_entropy(cross_entropy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``cross_entropy(logits [B, C], labels [B]) -> mean of -log softmax(logits)[i, labels[i]]``."""
    name = "check_cross_entropy"
    value = run_for_tensor(name, cross_entropy, torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))
    fail_if(name, value.shape != (),
            f"return one number (the mean over the batch), not shape {tuple(value.shape)}")
    fail_if(name, close(value, 4 * math.log(3)), "you summed the losses of the batch: take the mean instead")
    fail_if(name, close(value, -math.log(3)), "wrong sign: the loss is -log p(label), which is >= 0")
    fail_if(name, any(close(value, p) for p in (1 / 3, -1 / 3, 2 / 3)),
            "use the log of the softmax probability, not the probability itself")
    fail_if(name, not close(value, math.log(3)),
            f"with all logits equal the loss is log(C) = {math.log(3):.4f}, you returned {float(value):.4f}")
    logits, labels = torch.tensor([[0.0, 5.0], [5.0, 0.0]]), torch.tensor([0, 1])
    value = run_student(name, cross_entropy, logits, labels)
    fail_if(name, not close(value, F.cross_entropy(logits, labels)),
            "take each example's probability at its own label: logits[i, labels[i]] "
            "(both examples here have a wrong top class, so the loss must be large)")
    value = run_for_tensor(name, cross_entropy, torch.tensor([[1000.0, 0.0, -1000.0]]), torch.tensor([0]))
    fail_if(name, not torch.isfinite(value).all(), "logits of size 1000 give inf or nan: compute log-softmax "
                                                   "stably (subtract the max, or use torch.logsumexp)")
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(16, 10, generator=generator), torch.randint(10, (16,), generator=generator)
    value = run_student(name, cross_entropy, logits, labels)
    fail_if(name, not close(value, F.cross_entropy(logits, labels)),
            "a random batch does not match the reference cross-entropy")
    passed(name, 4)


def check_sgd_step(sgd_step: Callable[[list, list, float], list]) -> None:
    """``sgd_step(params, grads, lr) -> [p - lr * g for each pair]``, leaving params unchanged."""
    name = "check_sgd_step"
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    grads = [torch.tensor([0.5, 1.0]), torch.tensor([[-2.0]])]
    kept = [p.clone() for p in params]
    lr = 0.1
    new = run_student(name, sgd_step, params, grads, lr)
    fail_if(name, not all(torch.equal(p, k) for p, k in zip(params, kept)),
            "you changed the parameters in place: return new tensors and leave the inputs as they were")
    fail_if(name, not isinstance(new, (list, tuple)) or len(new) != len(params),
            f"return a list with one new tensor per parameter ({len(params)} here)")
    for p, g, n in zip(params, grads, new):
        fail_if(name, n.shape != p.shape,
                f"a new parameter has shape {tuple(n.shape)}, the old one {tuple(p.shape)}")
        fail_if(name, torch.allclose(n, p + lr * g), "wrong sign: step against the gradient, theta - lr * grad")
        fail_if(name, torch.allclose(n, p - g), "multiply the gradient by the learning rate")
        fail_if(name, torch.allclose(n, -lr * g) or torch.allclose(n, g),
                "return the updated parameters, not the update or the gradient")
        fail_if(name, not torch.allclose(n, p - lr * g), "the new value must be theta - lr * grad")
    passed(name, len(params))


def check_confidence_interval(confidence_interval: Callable[[list], tuple]) -> None:
    """``confidence_interval(values) -> (mean, half-width)`` of a 95% interval for the mean of a few values:
    ``t_{0.975, n-1} * s / sqrt(n)``, ``s`` the sample standard deviation."""
    name = "check_confidence_interval"
    cases = ([0.80, 0.90, 0.85], [0.62, 0.55], [0.30, 0.50, 0.40, 0.45, 0.35, 0.60])
    for values in cases:
        mean, half_width = run_for_items(name, confidence_interval, list(values), count=2,
                                         what="two numbers: the mean and the half-width of the interval")
        x = torch.tensor(values, dtype=torch.float64)
        n, s, root_n = len(values), float(x.std()), math.sqrt(len(values))
        fail_if(name, not close(mean, x.mean()),
                f"the first number must be the mean of the values, {float(x.mean()):.4f}")
        t = float(student_t.ppf(0.975, n - 1))
        expected = t * s / root_n
        if close(half_width, expected, 1e-4):
            continue
        diagnose(name, half_width, [
            (1.959964 * s / root_n, "1.96 is the quantile of the normal distribution, right only for many values: "
                                    "with n values the standard deviation is itself a guess, so use Student's t "
                                    "quantile with n - 1 degrees of freedom (12.7 for 2 values, 4.30 for 3)"),
            (float(student_t.ppf(0.975, n)) * s / root_n,
             "Student's t for n values has n - 1 degrees of freedom, not n"),
            (t * float(x.std(correction=0)) / root_n,
             "use the sample standard deviation, which divides by n - 1 (numpy's np.std divides by n)"),
            (t * s / n, "the standard error of a mean is s / sqrt(n), not s / n"),
            (t * s, "divide the standard deviation by sqrt(n): the interval is for the mean, not for one value"),
            (t * s ** 2 / root_n, "use the standard deviation, not the variance"),
            (float(student_t.ppf(0.95, n - 1)) * s / root_n,
             "a two-sided 95% interval leaves 2.5% in each tail: take the 0.975 quantile, not 0.95"),
            (2 * expected, "return the half-width (the interval is mean ± half-width), not the whole width"),
        ], f"for the values {values} the half-width is {expected:.4f}, you returned {float(half_width):.4f}", tol=1e-4)
    passed(name, len(cases))


def check_sample_minibatch(sample_minibatch: Callable[[LabelledImages, int, torch.Generator], tuple]) -> None:
    """``sample_minibatch(dataset, batch_size, generator) -> (images, labels)``: random examples of the
    dataset, drawn with ``generator``, each image with its own label."""
    name = "check_sample_minibatch"
    n, batch_size = 20, 8
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()  # image i is all i
    dataset = LabelledImages(images, torch.arange(n) * 3 % 4, ["0", "1", "2", "3"], name="numbered images")

    def draw(generator: torch.Generator) -> torch.Tensor:
        x, y = run_for_items(name, sample_minibatch, dataset, batch_size, generator, count=2,
                             what="two tensors: the images and the labels of the minibatch")
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        fail_if(name, x.shape != (batch_size, 1, 2, 2),
                f"the images must have shape [batch_size, 1, 2, 2] here, got {tuple(x.shape)}")
        fail_if(name, y.shape != (batch_size,), f"the labels must have shape [batch_size], got {tuple(y.shape)}")
        index = x[:, 0, 0, 0].round().long().clamp(0, n - 1)
        fail_if(name, not torch.equal(x, images[index]), "the images are not examples of the dataset")
        fail_if(name, not torch.equal(y, dataset.labels[index]),
                "the labels do not belong to the images: take images and labels at the same indices")
        return index

    first = draw(torch.Generator().manual_seed(0))
    fail_if(name, not torch.equal(first, draw(torch.Generator().manual_seed(0))),
            "the same seed gave different minibatches: draw the random indices with `generator`")
    generator = torch.Generator().manual_seed(1)
    batches = [draw(generator) for _ in range(100)]
    fail_if(name, all(torch.equal(b, batches[0]) for b in batches),
            "every call returned the same minibatch: draw new random examples at each call")
    never = sorted(set(range(n)) - set(torch.cat(batches).tolist()))
    fail_if(name, bool(never), f"examples {never} were never drawn in 100 minibatches: draw from all "
                               f"len(dataset) = {n} examples")
    passed(name, 102)


def _small_classifier(generator: torch.Generator, inputs: int = 4, classes: int = 3) -> nn.Module:
    """A two-layer network with reproducible weights (no global seed needed)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(inputs, 5), nn.Tanh(), nn.Linear(5, classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.7)
    return model


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in tensors])


def check_training_step(training_step: Callable[[nn.Module, torch.Tensor, torch.Tensor, float], float]) -> None:
    """``training_step(model, x, y, lr) -> loss``: one SGD step on the mean cross-entropy of (x, y), written
    into the model's parameters; returns the loss before the step."""
    name = "check_training_step"
    generator = torch.Generator().manual_seed(0)
    model = _small_classifier(generator)
    params, lr = list(model.parameters()), 0.05
    previous_grads = None
    for step in range(2):
        x, y = torch.randn(6, 4, generator=generator), torch.randint(3, (6,), generator=generator)
        before = [p.detach().clone() for p in params]
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params)
        loss = loss.detach()
        returned = run_student(name, training_step, model, x, y, lr)
        after = [p.detach().clone() for p in params]
        fail_if(name, all(torch.equal(a, b) for a, b in zip(after, before)),
                "the model's parameters did not change: write the new values into the model itself (it is the "
                "model that is then evaluated), e.g. p.copy_(new) under torch.no_grad()")
        step_of = lambda g, scale=lr: _flat(before) - scale * _flat(g)  # noqa: E731
        if not close(_flat(after), step_of(grads), 1e-5):
            unchanged = [i for i, (a, b) in enumerate(zip(after, before)) if torch.equal(a, b)]
            fail_if(name, bool(unchanged), f"parameter tensors {unchanged} of the model were not updated: "
                                           "update every parameter")
            mistakes = [
                (step_of(grads, -lr), "wrong direction: the step went up the gradient, so the loss rises; "
                                      "step against it"),
                (step_of(grads, lr * len(y)), "the step is batch_size times too large: average the loss over "
                                              "the batch instead of summing it"),
                (step_of(grads, 1.0), "the step ignores the learning rate lr"),
                (step_of(grads, 0.1), "use the lr argument, not a fixed step size"),
            ]
            if previous_grads is not None:
                mistakes.append((step_of([g + h for g, h in zip(grads, previous_grads)]),
                                 "the gradients accumulate across steps: each step must use the gradient of "
                                 "its own minibatch only (torch.autograd.grad gives a fresh one; .backward() "
                                 "adds to .grad until you zero it)"))
            diagnose(name, _flat(after), mistakes, "the new parameters are not theta - lr * (gradient of the mean "
                                                   "cross-entropy of the model on x, y)", tol=1e-5)
        try:
            returned = float(torch.as_tensor(returned).detach())
        except (TypeError, ValueError, RuntimeError):
            fail(name, f"return the loss as one number, got {type(returned).__name__}")
        if not close(returned, loss, 1e-5):
            with torch.no_grad():
                loss_after = F.cross_entropy(model(x), y)
            diagnose(name, returned, [
                (loss_after, "return the loss before the step (the one whose gradient you took), not after it"),
                (loss * len(y), "the returned loss is the sum over the batch: return the mean"),
            ], f"the returned loss should be {float(loss):.5f}, the mean cross-entropy before the step", tol=1e-5)
        previous_grads = grads
    passed(name, 2)


class _RecordingClassifier(nn.Module):
    """A linear classifier of 28 x 28 images that keeps a copy of every input it is trained on."""

    def __init__(self, generator: torch.Generator, classes: int = 10) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(self.linear.weight.shape, generator=generator) * 0.01)
            self.linear.bias.zero_()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # a training forward pass, not an evaluation under no_grad
            self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def _toy_digits(seed: int, n: int = 120, classes: int = 10) -> LabelledImages:
    """Noisy copies of ``classes`` random 28 x 28 patterns: a linear model learns them in a few steps."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.rand(classes, 1, 28, 28, generator=generator)
    labels = torch.arange(n) % classes
    images = (patterns[labels] + 0.3 * torch.rand(n, 1, 28, 28, generator=generator)).clamp(0, 1)
    return LabelledImages(images, labels, [str(c) for c in range(classes)], name="toy digits")


def _replay_sgd(initial: list[torch.Tensor], batches, lr: float, sign: float = 1.0, reduction: str = "mean",
                accumulate: bool = False) -> tuple[torch.Tensor, list[float]]:
    """Plain SGD on a linear classifier over the given (x, y) batches: final parameters and losses."""
    theta = [p.clone().requires_grad_() for p in initial]  # weight, bias
    losses, total = [], None
    for x, y in batches:
        loss = F.cross_entropy(x.flatten(1) @ theta[0].T + theta[1], y, reduction=reduction)
        grads = torch.autograd.grad(loss, theta)
        total = grads if total is None or not accumulate else [t + g for t, g in zip(total, grads)]
        theta = [(p - sign * lr * g).detach().requires_grad_() for p, g in zip(theta, total)]
        losses.append(loss.item())
    return _flat(theta), losses


def check_train(train: Callable[..., list]) -> None:
    """``train(model, dataset, steps, lr, batch_size, generator) -> losses``: SGD on a new random minibatch
    of ``dataset`` at every step, the model's parameters updated, one loss per step."""
    name = "check_train"
    dataset, steps, lr, batch_size = _toy_digits(0), 20, 0.01, 8
    flat_images = dataset.images.flatten(1)

    def run(seed: int) -> tuple[_RecordingClassifier, list]:
        model = _RecordingClassifier(torch.Generator().manual_seed(1))
        return model, run_student(name, train, model, dataset, steps, lr, batch_size,
                                  torch.Generator().manual_seed(seed))

    model, losses = run(0)
    try:
        losses = [float(torch.as_tensor(loss).detach()) for loss in losses]
    except (TypeError, ValueError, RuntimeError):
        fail(name, "return the list of the losses, one number per step")
    fail_if(name, len(losses) != steps, f"return one loss per step ({steps} here), got {len(losses)}")
    initial = [p.detach().clone() for p in _RecordingClassifier(torch.Generator().manual_seed(1)).parameters()]
    fail_if(name, torch.equal(_flat(model.parameters()), _flat(initial)),
            "the model's parameters are the same after training: write the trained values into the model "
            "(it is the model whose held-out accuracy is measured)")
    fail_if(name, len(model.seen) != steps,
            f"the model ran {len(model.seen)} forward passes with gradients in {steps} steps: one per step "
            "(compute anything else under torch.no_grad())")
    batches = []
    for x in model.seen:
        match = (x.flatten(1)[:, None, :] == flat_images[None]).all(-1)
        fail_if(name, x.shape[1:] != (1, 28, 28) or not bool(match.any(1).all()),
                "the model was trained on images that are not in `dataset`: train only on the dataset you are "
                "given (never on the held-out set or a global variable)")
        fail_if(name, len(x) != batch_size, f"a minibatch has {len(x)} examples, batch_size is {batch_size}")
        batches.append((x, dataset.labels[match.float().argmax(1)]))
    fail_if(name, all(torch.equal(x, batches[0][0]) for x, _ in batches),
            "the same minibatch at every step: draw a new one at each step")
    expected, expected_losses = _replay_sgd(initial, batches, lr)
    trained = _flat(model.parameters())
    if not close(trained, expected, 1e-4):
        diagnose(name, trained, [
            (_replay_sgd(initial, batches, lr, sign=-1.0)[0], "wrong direction: the steps go up the gradient; "
                                                              "step against it"),
            (_replay_sgd(initial, batches, lr, reduction="sum")[0], "the loss is summed over the minibatch: "
                                                                    "average it, or the steps are batch_size "
                                                                    "times too large"),
            (_replay_sgd(initial, batches, lr, accumulate=True)[0],
             "the gradients accumulate across steps: each step must use the gradient of its own minibatch only"),
        ], "the trained parameters are not those of SGD with step size lr on the minibatches your loop drew",
            tol=1e-4)
    if not close(losses, expected_losses, 1e-4):
        diagnose(name, losses, [
            ([batch_size * loss for loss in expected_losses], "the recorded losses are sums over the minibatch: "
                                                              "record the mean"),
        ], "losses[t] must be the mean cross-entropy of step t's minibatch, before the update", tol=1e-4)
    _, again = run(0)
    fail_if(name, not close([float(torch.as_tensor(loss).detach()) for loss in again], losses, 1e-6),
            "the same seed gave a different run: draw the minibatches with `generator`")
    passed(name, steps)
