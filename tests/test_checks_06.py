"""Notebook 06's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import learned_losses as ll
from course_lib import learned_optimizers as lo
from course_lib.teaching.checks import nb06 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

# ---------------------------------------------------------------- the notebook's reference solutions

NOTEBOOK = "06_learned_optimizers"  # defined from its source, each with the others it calls

preprocess_gradient = notebook_solution(NOTEBOOK, "preprocess_gradient")
inner_sgd_step = notebook_solution(NOTEBOOK, "inner_sgd_step")
learned_update = notebook_solution(NOTEBOOK, "learned_update")
unroll = notebook_solution(NOTEBOOK, "unroll")
meta_train_iteration = notebook_solution(NOTEBOOK, "meta_train_iteration")

CHECKS = ("check_gradient_preprocessing", "check_learned_loss_inner_step", "check_learned_update", "check_unroll",
          "check_truncated_meta_training")
REFERENCES = (preprocess_gradient, inner_sgd_step, learned_update, unroll, meta_train_iteration)


def test_reference_solutions_pass(capsys):
    for check, solution in zip(CHECKS, REFERENCES):
        getattr(checks, check)(solution)
    out = capsys.readouterr().out
    for name in CHECKS:
        assert f"✓ {name}" in out
    assert "second-order" not in out


# ---------------------------------------------------------------- other correct solutions


def preprocess_by_cases(grad, p):
    """Masks and indexing instead of torch.where."""
    out = torch.empty(*grad.shape, 2, dtype=grad.dtype)
    large = grad.abs() >= math.exp(-p)
    out[..., 0][large] = grad[large].abs().log() / p
    out[..., 1][large] = grad[large].sign()
    out[..., 0][~large] = -1.0
    out[..., 1][~large] = grad[~large] * math.exp(p)
    return out


def inner_sgd_step_by_task(loss_fn, theta, x, y, shapes, lr):
    """A mean per task with F-style reduction and one gradient per task."""
    losses = loss_fn(ll.classifier_logits(theta, x, shapes), y)
    total = sum(losses[b].sum() / losses.shape[1] for b in range(losses.shape[0]))
    (grad,) = torch.autograd.grad(total, [theta], create_graph=True)
    return theta.sub(grad, alpha=lr)


def learned_update_reshaped_after(net, grad, state):
    """Preprocess the [B, n] gradient, then flatten its features into one row per coordinate."""
    features = preprocess_gradient(grad, net.preprocess_p).reshape(-1, 2)
    update, new_state = net(features, state)
    return update.view_as(grad), new_state


def unroll_second_order(net, family, problems, theta, state, t0, K):
    """The exact meta-gradient (create_graph=True), one loss evaluation per step, a running sum."""
    theta = theta.detach().requires_grad_(True) if not theta.requires_grad else theta
    loss, total = family.loss(problems, theta, t0), 0.0
    for t in range(t0, t0 + K):
        (grad,) = torch.autograd.grad(loss.sum(), theta, create_graph=True)
        update, state = learned_update(net, grad, state)
        theta = theta + update
        loss = family.loss(problems, theta, t + 1)
        total = total + loss.mean()
    return total / K, theta, state


def unroll_on_a_copy(net, family, problems, theta, state, t0, K):
    """The gradient from a detached copy (first order by construction), the meta-loss from theta itself."""
    losses = []
    for t in range(t0, t0 + K):
        copy = theta.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(family.loss(problems, copy, t).sum(), copy)
        update, state = learned_update(net, grad, state)
        theta = theta + update
        losses.append(family.loss(problems, theta, t + 1))
    return torch.stack(losses, dim=1).mean(), theta.detach(), [tuple(s.detach() for s in p) for p in state]


def meta_train_iteration_second_order(net, family, problems, meta_optimizer, T, K, max_norm):
    """Detach before the update, clip by hand; the unroll keeps the second-order term."""
    theta, state, meta_losses = problems.theta0, net.init_state(problems.theta0), []
    for t0 in range(0, T, K):
        meta_loss, theta, state = unroll_second_order(net, family, problems, theta, state, t0, K)
        theta, state = theta.detach(), [tuple(t.detach() for t in pair) for pair in state]
        for parameter in net.parameters():
            parameter.grad = None
        meta_loss.backward()
        norm = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).norm()
        for parameter in net.parameters():
            parameter.grad *= min(1.0, max_norm / (float(norm) + 1e-6))
        meta_optimizer.step()
        meta_losses.append(float(meta_loss.detach()))
    return meta_losses


@pytest.mark.parametrize("check, solution", [
    ("check_gradient_preprocessing", preprocess_by_cases),
    ("check_learned_loss_inner_step", inner_sgd_step_by_task),
    ("check_learned_update", learned_update_reshaped_after),
    ("check_unroll", unroll_second_order),
    ("check_unroll", unroll_on_a_copy),
    ("check_truncated_meta_training", meta_train_iteration_second_order),
])
def test_other_correct_solutions_pass(check, solution, capsys):
    getattr(checks, check)(solution)
    assert f"✓ {check}" in capsys.readouterr().out


def test_a_second_order_unroll_is_accepted_and_named(capsys):
    checks.check_unroll(unroll_second_order)
    assert "you kept the second-order term" in capsys.readouterr().out


def test_the_library_passes_its_own_checks():
    """The notebook's checks and course_lib agree on the preprocessing, the unroll and the inner step."""
    checks.check_gradient_preprocessing(lo.preprocess_gradient)

    class Rule:
        def __init__(self, net):
            self.net = net

        def init_state(self, theta):
            return self.net.init_state(theta)

        def step(self, grad, state):
            return learned_update(self.net, grad, state)

    def library_unroll(net, family, problems, theta, state, t0, K):
        losses, theta, state = lo.unroll(Rule(net), family, problems, theta, state, t0, K)
        return lo.meta_loss_of(losses), theta, state

    checks.check_unroll(library_unroll)
    checks.check_learned_loss_inner_step(
        lambda loss_fn, theta, x, y, shapes, lr: ll.inner_train(loss_fn, theta, x, y, shapes, steps=1, lr=lr))


def test_the_checks_leave_the_global_random_state_alone():
    """A check in a notebook must not change what the cells after it compute."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    for check, solution in zip(CHECKS, REFERENCES):
        getattr(checks, check)(solution)
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


def _step(reduce=lambda l: l.mean(dim=1).sum(), create_graph=True, sign=-1.0, loss=None, detach_theta=False,
          returns="theta"):
    def wrong(loss_fn, theta, x, y, shapes, lr):
        if detach_theta:
            theta = theta.detach().requires_grad_(True)
        value = reduce((loss or loss_fn)(ll.classifier_logits(theta, x, shapes), y))
        (grad,) = torch.autograd.grad(value, theta, create_graph=create_graph)
        return {"theta": theta + sign * lr * grad, "update": sign * lr * grad, "no lr": theta + sign * grad}[returns]
    return wrong


def _update(features=lambda g, p: preprocess_gradient(g, p), order="rows", sign=1.0, new_state=True,
            fresh_state=False, detach=False, reshape=True, in_place=False):
    def wrong(net, grad, state):
        if in_place:
            grad.clamp_(-100.0, 100.0)
        flat = grad.T.reshape(-1) if order == "columns" else grad.reshape(-1)
        given = net.init_state(grad) if fresh_state else state
        update, returned = net(features(flat, net.preprocess_p), given)
        update = sign * update
        update = update.reshape(grad.shape[::-1]).T if order == "columns" else update
        update = update.reshape(grad.shape) if reshape else update
        return (update.detach() if detach else update), (returned if new_state else state)
    return wrong


def _unroll(*, detach="", losses_at="after", reduce=lambda l: l.mean(), sign=1.0, steps=lambda K: K,
            make_leaf=True, from_zero=False, carry_state=True):
    def wrong(net, family, problems, theta, state, t0, K):
        if make_leaf and not theta.requires_grad:
            theta = theta.detach().requires_grad_(True)
        first, losses = state, []
        for t in range(0 if from_zero else t0, (0 if from_zero else t0) + steps(K)):
            if "start" in detach:
                theta = theta.detach().requires_grad_(True)
            loss = family.loss(problems, theta, t)
            (grad,) = torch.autograd.grad(loss.sum(), theta, retain_graph=True)
            update, new = learned_update(net, grad, state if carry_state else first)
            state = new
            theta = theta + sign * update
            if "after" in detach:
                theta = theta.detach().requires_grad_(True)
            if losses_at == "before":
                losses.append(loss)
            else:
                losses.append(family.loss(problems, theta, t + 1))
            if losses_at == "with start" and t == t0:
                losses.insert(0, loss)
        return reduce(torch.stack(losses)), theta, state
    return wrong


def unroll_one_evaluation_without_retain_graph(net, family, problems, theta, state, t0, K):
    theta = theta if theta.requires_grad else theta.detach().requires_grad_(True)
    loss, losses = family.loss(problems, theta, t0), []
    for t in range(t0, t0 + K):
        (grad,) = torch.autograd.grad(loss.sum(), theta)  # frees the graph of loss, which the meta-loss needs
        update, state = learned_update(net, grad, state)
        theta = theta + update
        loss = family.loss(problems, theta, t + 1)
        losses.append(loss)
    return torch.stack(losses).mean(), theta, state


def _iteration(*, detach_theta=True, detach_state=True, retain=False, zero_grad=True, restart=False,
               one_update=False, clip="before step", step=True, as_float=True):
    def wrong(net, family, problems, meta_optimizer, T, K, max_norm):
        K = T if one_update else K
        theta, state = problems.theta0, net.init_state(problems.theta0)
        meta_losses = []
        for t0 in range(0, T, K):
            if restart:
                theta, state = problems.theta0, net.init_state(problems.theta0)
            meta_loss, theta, state = unroll(net, family, problems, theta, state, t0, K)
            if zero_grad:
                meta_optimizer.zero_grad()
            meta_loss.backward(retain_graph=retain)
            if clip == "before step":
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
            if step:
                meta_optimizer.step()
            if clip == "after step":
                torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
            meta_losses.append(meta_loss.item() if as_float else meta_loss)
            if detach_theta:
                theta = theta.detach()
            if detach_state:
                state = [(h.detach(), c.detach()) for h, c in state]
        return meta_losses
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
    ("check_learned_update", _update(features=lambda g, p: torch.stack([g, torch.sign(g)], -1)), "PREPROCESSED"),
    ("check_learned_update", _update(features=lambda g, p: torch.stack([g, g], -1)), "PREPROCESSED"),
    ("check_learned_update", _update(features=lambda g, p: preprocess_gradient(g, p).flip(-1)), "wrong order"),
    ("check_learned_update", _update(sign=-1.0), "no minus sign"),
    ("check_learned_update", _update(order="columns"), "one row per coordinate"),
    ("check_learned_update", _update(new_state=False), "NEW state"),
    ("check_learned_update", _update(fresh_state=True), "the state you are given"),
    ("check_learned_update", _update(detach=True), "does not depend on omega"),
    ("check_learned_update", _update(reshape=False), "shape of grad"),
    ("check_learned_update", _update(in_place=True), "in place"),
    ("check_unroll", _unroll(detach="after"), "no meta-gradient at all"),
    ("check_unroll", _unroll(detach="start"), "inside the unroll"),
    ("check_unroll", _unroll(reduce=lambda l: l[-1].mean()), "only the loss at the last step"),
    ("check_unroll", _unroll(losses_at="with start"), "leave out f at the truncation's start"),
    ("check_unroll", _unroll(losses_at="before"), "AFTER the updates"),
    ("check_unroll", _unroll(reduce=lambda l: l.sum()), "not the sum"),
    ("check_unroll", _unroll(reduce=lambda l: l.mean(0).sum()), "average over the problems"),
    ("check_unroll", _unroll(reduce=lambda l: l.mean(0)), "one number"),
    ("check_unroll", unroll_one_evaluation_without_retain_graph, "already freed"),
    ("check_unroll", _unroll(make_leaf=False), "plain tensor"),
    ("check_unroll", _unroll(sign=-1.0), "do not subtract"),
    ("check_unroll", _unroll(steps=lambda K: K - 1), "exactly K steps"),
    ("check_unroll", _unroll(carry_state=False), "new state on to the next step"),
    ("check_unroll", _unroll(from_zero=True), "goes on where the last one ended"),
    ("check_truncated_meta_training", _iteration(detach_theta=False, detach_state=False), "detach theta AND"),
    ("check_truncated_meta_training", _iteration(detach_state=False), "detach theta AND"),
    ("check_truncated_meta_training", _iteration(detach_theta=False), "detach theta AND"),
    ("check_truncated_meta_training", _iteration(detach_theta=False, detach_state=False, retain=True),
     "detach theta AND"),
    ("check_truncated_meta_training", _iteration(zero_grad=False), "zero_grad"),
    ("check_truncated_meta_training", _iteration(restart=True), "continues from the theta"),
    ("check_truncated_meta_training", _iteration(one_update=True), "one meta-update per truncation"),
    ("check_truncated_meta_training", _iteration(clip=None), "clip the norm"),
    ("check_truncated_meta_training", _iteration(clip="after step"), "clip the norm"),
    ("check_truncated_meta_training", _iteration(step=False), "did not change"),
    ("check_truncated_meta_training", _iteration(as_float=False), "as floats"),
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


def test_every_exercise_has_at_least_five_typical_mistakes():
    counts = {check: sum(1 for c, _, _ in WRONG if c == check) for check in CHECKS}
    assert min(counts.values()) >= 5, counts


def test_an_unfinished_exercise_is_not_hidden():
    assert_unfinished_exercises_surface(checks, *CHECKS)


def test_a_crash_is_reported_with_its_error():
    with pytest.raises(ExerciseError, match="raised IndexError"):
        checks.check_gradient_preprocessing(lambda g, p: g[100])
    with pytest.raises(ExerciseError, match="raised AttributeError"):
        checks.check_truncated_meta_training(lambda net, family, problems, opt, T, K, max_norm: net.step())
