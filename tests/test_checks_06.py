"""Notebook 06's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import learned_losses as ll
from course_lib import learned_optimizers as lo
from course_lib.teaching.checks import nb06 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface

# ---------------------------------------------------------------- reference solutions (as in the notebook)


def preprocess_gradient(grad, p):
    large = grad.abs() >= math.exp(-p)
    log_part = torch.where(large, torch.log(grad.abs().clamp_min(math.exp(-p))) / p, -torch.ones_like(grad))
    sign_part = torch.where(large, torch.sign(grad), math.exp(p) * grad)
    return torch.stack([log_part, sign_part], dim=-1)


def meta_train_iteration(net, family, problems, meta_optimizer, horizon, K):
    theta, state = problems.theta0, net.init_state(problems.theta0)
    meta_losses = []
    for start in range(0, horizon, K):
        losses, theta, state = lo.unroll(net, family, problems, theta, state, start, K)
        meta_loss = losses[1:].mean()
        meta_optimizer.zero_grad()
        meta_loss.backward()
        meta_optimizer.step()
        meta_losses.append(meta_loss.item())
        theta, state = theta.detach(), [(h.detach(), c.detach()) for h, c in state]
    return meta_losses


def inner_sgd_step(loss_fn, theta, x, y, shapes, lr):
    loss = loss_fn(ll.classifier_logits(theta, x, shapes), y).mean(dim=1).sum()
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
    return theta - lr * grad


def test_reference_solutions_pass(capsys):
    checks.check_gradient_preprocessing(preprocess_gradient)
    checks.check_truncated_meta_training(meta_train_iteration)
    checks.check_learned_loss_inner_step(inner_sgd_step)
    out = capsys.readouterr().out
    for name in ("check_gradient_preprocessing", "check_truncated_meta_training", "check_learned_loss_inner_step"):
        assert f"✓ {name}" in out


def test_the_library_passes_its_own_checks():
    """The notebook's checks and course_lib agree on the preprocessing, the truncations and the inner step."""
    checks.check_gradient_preprocessing(lo.preprocess_gradient)

    def library_iteration(net, family, problems, meta_optimizer, horizon, K):
        net.config.horizon, net.config.unroll, net.config.meta_grad_clip = horizon, K, 0.0
        net.config.optimizees_per_batch = problems.theta0.shape[0]
        original = lo.meta_training_batch
        lo.meta_training_batch = lambda *args: problems
        try:
            history = lo.meta_train(net, family, 1, meta_optimizer=meta_optimizer, progress=False)
        finally:
            lo.meta_training_batch = original
        return [history.last("meta_loss")] * (horizon // K)  # meta_train logs only the mean

    with pytest.raises(ExerciseError, match="returned meta-losses"):  # same weights, only the mean is logged
        checks.check_truncated_meta_training(library_iteration)
    checks.check_learned_loss_inner_step(
        lambda loss_fn, theta, x, y, shapes, lr: ll.inner_train(loss_fn, theta, x, y, shapes, steps=1, lr=lr))


def test_the_checks_leave_the_global_random_state_alone():
    """A check in a notebook must not change what the cells after it compute."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    checks.check_gradient_preprocessing(preprocess_gradient)
    checks.check_truncated_meta_training(meta_train_iteration)
    checks.check_learned_loss_inner_step(inner_sgd_step)
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------- typical mistakes


def _preprocess(log=torch.log, divide=True, sign=torch.sign, tiny_scale=None, tiny_first=-1.0, swap=False,
                magnitude=lambda g: g.abs(), threshold_on=lambda g: g.abs(), dim=-1, fixed_p=None):
    def wrong(grad, p):
        p = fixed_p or p
        large = threshold_on(grad) >= math.exp(-p)
        size = magnitude(grad) * torch.ones_like(grad)
        first = log(size.clamp_min(math.exp(-p))) / (p if divide else 1)
        first = torch.where(large, first, tiny_first * torch.ones_like(grad))
        second = torch.where(large, sign(grad), (tiny_scale or math.exp(p)) * grad)
        return torch.stack([second, first] if swap else [first, second], dim=dim)
    return wrong


def _iteration(*, detach_theta=True, detach_state=True, retain=False, reduce=lambda l: l[1:].mean(),
               zero_grad=True, restart=False, one_update=False):
    def wrong(net, family, problems, meta_optimizer, horizon, K):
        K = horizon if one_update else K
        theta, state = problems.theta0, net.init_state(problems.theta0)
        meta_losses = []
        for start in range(0, horizon, K):
            if restart:
                theta, state = problems.theta0, net.init_state(problems.theta0)
            losses, theta, state = lo.unroll(net, family, problems, theta, state, start, K)
            meta_loss = reduce(losses)
            if zero_grad:
                meta_optimizer.zero_grad()
            meta_loss.backward(retain_graph=retain)
            meta_optimizer.step()
            meta_losses.append(meta_loss.item())
            if detach_theta:
                theta = theta.detach()
            if detach_state:
                state = [(h.detach(), c.detach()) for h, c in state]
        return meta_losses
    return wrong


def _step(reduce=lambda l: l.mean(dim=1).sum(), create_graph=True, sign=-1.0, loss=None, detach_theta=False,
          returns="theta"):
    def wrong(loss_fn, theta, x, y, shapes, lr):
        if detach_theta:
            theta = theta.detach().requires_grad_(True)
        value = reduce((loss or loss_fn)(ll.classifier_logits(theta, x, shapes), y))
        (grad,) = torch.autograd.grad(value, theta, create_graph=create_graph)
        return {"theta": theta + sign * lr * grad, "update": sign * lr * grad, "no lr": theta + sign * grad}[returns]
    return wrong


WRONG = [
    # (check, wrong function, words the message must contain)
    ("check_gradient_preprocessing", _preprocess(swap=True), "swapped"),
    ("check_gradient_preprocessing", _preprocess(divide=False), "divide the log"),
    ("check_gradient_preprocessing", _preprocess(log=torch.log10), "natural log"),
    ("check_gradient_preprocessing", _preprocess(sign=lambda g: g), "SIGN"),
    ("check_gradient_preprocessing", _preprocess(sign=lambda g: -torch.sign(g)), "wrong sign"),
    ("check_gradient_preprocessing", _preprocess(tiny_scale=math.exp(-10)), "scaled UP"),
    ("check_gradient_preprocessing", _preprocess(tiny_first=1.0), "not +1"),
    ("check_gradient_preprocessing", _preprocess(threshold_on=lambda g: g), "MAGNITUDE"),
    ("check_gradient_preprocessing", _preprocess(magnitude=lambda g: g.norm(), threshold_on=lambda g: g.norm()),
     "each coordinate on its own"),
    ("check_gradient_preprocessing", _preprocess(magnitude=lambda g: g.abs().mean()), "each coordinate on its own"),
    ("check_gradient_preprocessing", _preprocess(dim=0), "LAST dimension"),
    ("check_gradient_preprocessing", _preprocess(fixed_p=10.0), "the p you are given"),
    ("check_gradient_preprocessing", lambda g, p: torch.stack([torch.log(g.abs()) / p, torch.sign(g)], -1), "nan"),
    ("check_gradient_preprocessing", lambda g, p: preprocess_gradient(g.flatten(), p), "any shape"),
    ("check_truncated_meta_training", _iteration(detach_theta=False, detach_state=False), "detach theta AND"),
    ("check_truncated_meta_training", _iteration(detach_state=False), "detach theta AND"),
    ("check_truncated_meta_training", _iteration(detach_theta=False, detach_state=False, retain=True),
     "detach theta AND"),
    ("check_truncated_meta_training", _iteration(reduce=lambda l: l[1:].sum(0).mean()), "MEAN of f over its K"),
    ("check_truncated_meta_training", _iteration(reduce=lambda l: l[1:].sum()), "not the sum"),
    ("check_truncated_meta_training", _iteration(reduce=lambda l: l.mean()), "losses[0]"),
    ("check_truncated_meta_training", _iteration(reduce=lambda l: l[-1].mean()), "not only the last"),
    ("check_truncated_meta_training", _iteration(reduce=lambda l: -l[1:].mean()), "weights differ"),
    ("check_truncated_meta_training", _iteration(zero_grad=False), "zero_grad"),
    ("check_truncated_meta_training", _iteration(restart=True), "continues from the theta"),
    ("check_truncated_meta_training", _iteration(one_update=True), "one meta-update per truncation"),
    ("check_truncated_meta_training", lambda net, *args: [0.0, 0.0, 0.0], "did not change"),
    ("check_truncated_meta_training", lambda *args: meta_train_iteration(*args)[-1], "list of the 3 meta-losses"),
    ("check_learned_loss_inner_step", _step(sign=+1.0), "wrong sign"),
    ("check_learned_loss_inner_step", _step(reduce=lambda l: l.sum()), "summed loss_fn over the examples"),
    ("check_learned_loss_inner_step", _step(reduce=lambda l: l.mean()), "averaged over the tasks too"),
    ("check_learned_loss_inner_step", _step(loss=ll.cross_entropy), "step on the cross-entropy"),
    ("check_learned_loss_inner_step", _step(create_graph=False), "create_graph=True"),
    ("check_learned_loss_inner_step", _step(detach_theta=True), "two chained steps"),
    ("check_learned_loss_inner_step", _step(returns="update"), "not the update"),
    ("check_learned_loss_inner_step", _step(returns="no lr"), "learning rate"),
    ("check_learned_loss_inner_step", lambda f, theta, x, y, s, lr: inner_sgd_step(f, theta, x, y, s, lr)[0],
     "shape"),
]


@pytest.mark.parametrize("check, function, words", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_typical_mistakes_are_rejected_in_plain_words(check, function, words):
    assert_rejected_in_plain_words(checks, check, function, words)


def test_an_unfinished_exercise_is_not_hidden():
    assert_unfinished_exercises_surface(checks, "check_gradient_preprocessing", "check_truncated_meta_training",
                                        "check_learned_loss_inner_step")


def test_a_crash_is_reported_with_its_error():
    with pytest.raises(ExerciseError, match="raised IndexError"):
        checks.check_gradient_preprocessing(lambda g, p: g[100])
    with pytest.raises(ExerciseError, match="raised TypeError"):
        checks.check_truncated_meta_training(lambda net, family, problems, opt, horizon, K: net.step())
