"""Checks for the exercises of notebook 06: learned optimizers and learned objective functions."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ... import learned_losses as ll
from ... import learned_optimizers as lo
from .common import (ExerciseError, close, diagnose, fail, fail_if, passed, run_for_items, run_for_tensor,
                     run_student)


def _preprocessed(g, p, log=torch.log):
    """The reference: (log|g| / p, sign g) where |g| >= e^-p, else (-1, e^p g)."""
    large = g.abs() >= math.exp(-p)
    first = torch.where(large, log(g.abs().clamp_min(math.exp(-p))) / p, -torch.ones_like(g))
    second = torch.where(large, torch.sign(g), math.exp(p) * g)
    return torch.stack([first, second], dim=-1)


def check_gradient_preprocessing(preprocess: Callable) -> None:
    """``preprocess(grad [...], p) -> [..., 2]``, coordinate by coordinate (Andrychowicz et al. 2016, app. A):
    (log|g| / p, sign g) where |g| >= e^-p, else (-1, e^p g)."""
    name = "check_gradient_preprocessing"
    p = 10.0
    small = math.exp(-p)
    grad = torch.tensor([2.0, -0.5, 1e-3, -30.0, 1e-6, -2e-7, 0.0, 5e-5], dtype=torch.float64)
    out = run_for_tensor(name, preprocess, grad.clone(), p).double()
    expected = _preprocessed(grad, p)
    fail_if(name, out.shape == (2, len(grad)),
            f"the two numbers of a coordinate go in the LAST dimension: shape {tuple(expected.shape)} "
            f"(torch.stack(..., dim=-1)), not {tuple(out.shape)}")
    fail_if(name, out.shape != expected.shape,
            f"every coordinate becomes two numbers: for a gradient of shape {tuple(grad.shape)} return "
            f"shape {tuple(expected.shape)}, got {tuple(out.shape)}")
    fail_if(name, not torch.isfinite(out).all(),
            "inf or nan in your output (a zero gradient gives log 0 = -inf): use the log only where "
            "|g| >= e^-p, and (-1, e^p g) elsewhere")
    if not close(out, expected):
        large = grad.abs() >= small
        tiny_branch = torch.stack([-torch.ones_like(grad), math.exp(p) * grad], -1)
        fail_if(name, close(out, expected.flip(-1)),
                "the two numbers are swapped: first the log part (log|g| / p, or -1), then the sign part "
                "(sign g, or e^p g)")
        fail_if(name, out[large, 0].unique().numel() == 1 or out[:, 1].unique().numel() == 1,
                "one of the two numbers is the same for every coordinate: preprocess each coordinate on its "
                "own (|g_i| of that coordinate), not the norm, mean or max of the whole gradient")
        fail_if(name, close(out, torch.where((grad >= small)[:, None], expected, tiny_branch)),
                "negative gradients like -0.5 went to the small-gradient branch: compare the MAGNITUDE "
                "|g| with e^-p, not g itself")
        fail_if(name, close(out[large], tiny_branch[large]),
                "the branches are swapped: the log/sign pair is for |g| >= e^-p (large gradients), "
                "(-1, e^p g) for the tiny ones")
        got, want = out[large], expected[large]
        if not close(got, want):
            fail_if(name, close(got[:, 0], want[:, 0] * p),
                    "divide the log of the magnitude by p: log|g| / p (for p = 10 it is then at least -1)")
            fail_if(name, close(got[:, 0], _preprocessed(grad, p, log=torch.log10)[large][:, 0]),
                    "use the natural log (torch.log), not log10: the threshold e^-p is where log|g| / p "
                    "= -1, which joins the two branches")
            fail_if(name, close(got[:, 1], grad[large]),
                    "the second number of a large gradient is its SIGN (+1 or -1), not the gradient itself: "
                    "the magnitude is already in the first number")
            fail_if(name, close(got[:, 1], -want[:, 1]),
                    "wrong sign in the second number: it is sign(g), so that the update can point "
                    "against the gradient")
        got, want = out[~large], expected[~large]
        if not close(got, want):
            fail_if(name, close(got[:, 1], grad[~large] * small),
                    "tiny gradients are scaled UP, by e^p (about 22,000 for p = 10), not down by e^-p")
            fail_if(name, close(got[:, 1], torch.sign(grad[~large])),
                    "for a tiny gradient (|g| < e^-p) the second number is e^p g, which keeps its size "
                    "information, not its sign")
            fail_if(name, close(got[:, 0], -want[:, 0]),
                    "for a tiny gradient the first number is -1 (the smallest value log|g| / p can have "
                    "in the other branch), not +1")
        index = int(((out - expected).abs().sum(-1)).argmax())
        fail(name, f"for g = {grad[index].item():g} (p = {p:g}) expected {expected[index].tolist()}, "
                   f"got {out[index].tolist()}")
    grid = torch.tensor([[3.0, -1e-8], [-4e-4, 7e-6], [0.0, -12.0]], dtype=torch.float64)
    out = run_for_tensor(name, preprocess, grid.clone(), 4.0).double()
    want = _preprocessed(grid, p=4.0)
    fail_if(name, out.shape != want.shape,
            f"a gradient of any shape must work: for shape {tuple(grid.shape)} return {tuple(want.shape)}, "
            f"got {tuple(out.shape)}")
    if not close(out, want):
        diagnose(name, out, [(_preprocessed(grid, p=10.0), "use the p you are given, not a fixed 10")],
                 f"with p = 4 on a [3, 2] gradient expected {want.tolist()}, got {out.tolist()}")
    passed(name, 2)


def _inner_step_setup():
    """Two tasks of 6 examples, a 4-3-3 classifier and a learned loss other than the cross-entropy (float64)."""
    g = torch.Generator().manual_seed(11)
    shapes = ll.classifier_shapes(4, 3, 3)
    theta = ll.init_classifier(shapes, 2, g).double()
    x = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    y = torch.randint(3, (2, 6), generator=g)
    test_x = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    test_y = torch.randint(3, (2, 5), generator=g)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        loss = ll.LearnedLoss(hidden_size=4).double()
    with torch.no_grad():
        loss.mlp[-1].weight.normal_(0, 0.5, generator=g)
        loss.linear.weight.copy_(torch.tensor([[-0.7, 0.4]]))
    return shapes, theta, x, y, test_x, test_y, loss


def check_learned_loss_inner_step(inner_sgd_step: Callable) -> None:
    """``inner_sgd_step(loss_fn, theta [B, n], x [B, m, d], y [B, m], shapes, lr) -> theta' [B, n]``: one SGD
    step of every task's classifier on the MEAN of loss_fn over its examples, differentiable with respect to
    omega (create_graph=True) and to theta."""
    name = "check_learned_loss_inner_step"
    lr = 0.3
    shapes, theta0, x, y, test_x, test_y, loss_fn = _inner_step_setup()

    def step(theta, fn=loss_fn):
        (grad,) = torch.autograd.grad(fn(ll.classifier_logits(theta, x, shapes), y).mean(dim=1).sum(), theta,
                                      create_graph=True)
        return theta - lr * grad

    def meta_gradient(new_theta):
        outer = ll.cross_entropy(ll.classifier_logits(new_theta, test_x, shapes), test_y).mean()
        grads = torch.autograd.grad(outer, list(loss_fn.parameters()), allow_unused=True)
        if all(g is None for g in grads):
            return None
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for p, g in zip(loss_fn.parameters(), grads)])

    def fresh():
        return theta0.clone().requires_grad_(True)

    theta = fresh()
    kept = theta.detach().clone()
    new = run_student(name, inner_sgd_step, loss_fn, theta, x, y, shapes, lr)
    fail_if(name, not isinstance(new, torch.Tensor) or new.shape != theta.shape,
            f"return the new parameters of every task, a tensor of shape {tuple(theta.shape)} like theta")
    fail_if(name, not torch.equal(theta.detach(), kept),
            "you changed theta in place: return theta - lr * grad as a new tensor")
    value, want = new.detach(), step(fresh()).detach()
    if not close(value, want, tol=1e-8):
        grad = (kept - want) / lr
        diagnose(name, value, [
            (kept + lr * grad, "wrong sign: SGD steps against the gradient, theta - lr * grad"),
            (kept - lr * grad * x.shape[1],
             "you summed loss_fn over the examples: take the MEAN over each task's examples (as SGD on a "
             "minibatch does), so the step size does not grow with the batch"),
            (kept - lr * grad / x.shape[0],
             "you averaged over the tasks too, which divides every task's step by the number of tasks: mean "
             "over the examples (dim 1), then SUM over the tasks, each task's classifier takes its own full "
             "step"),
            (step(fresh(), fn=ll.cross_entropy).detach(),
             "this is a step on the cross-entropy: call loss_fn(logits, y), the learned loss L_omega, which is "
             "the point of the exercise"),
            (-lr * grad, "return the new parameters theta - lr * grad, not the update or the gradient"),
            (grad, "return the new parameters theta - lr * grad, not the update or the gradient"),
            (kept - grad, "multiply the gradient by the learning rate lr"),
        ], "the new parameters are not theta - lr * grad_theta mean_i loss_fn(f_theta(x_i), y_i)", tol=1e-8)
    got_meta = meta_gradient(new)
    fail_if(name, got_meta is None or float(got_meta.abs().max()) == 0.0,
            "no meta-gradient reaches omega (the learned loss's weights): compute the gradient with "
            "torch.autograd.grad(..., create_graph=True), so that the new theta is a differentiable function "
            "of omega, and do not detach it")
    fail_if(name, not close(got_meta, meta_gradient(step(fresh())), tol=1e-7),
            "the meta-gradient with respect to omega is wrong after one step: keep the whole graph "
            "(create_graph=True, no .detach() or .data)")
    # Two chained steps: omega reaches the second step through theta_1 as well.
    one = run_student(name, inner_sgd_step, loss_fn, fresh(), x, y, shapes, lr)
    got_meta = meta_gradient(run_student(name, inner_sgd_step, loss_fn, one, x, y, shapes, lr))
    fail_if(name, got_meta is None or not close(got_meta, meta_gradient(step(step(fresh()))), tol=1e-7),
            "over two chained steps the meta-gradient is wrong: do not detach theta (or make it a new leaf) "
            "inside the step; omega acts on theta_2 through grad(theta_1) AND through theta_1 itself")
    passed(name, 3)


# ---------------------------------------------------------------- Build it: a learned optimizer


class _CoordinatewiseLSTM(nn.Module):
    """The notebook's network: one LSTM cell reads the two features of every coordinate, a linear read-out
    gives that coordinate's update. ``state`` is a list with one ``(h, c)`` pair of ``[coordinates, hidden]``."""

    def __init__(self, hidden_size: int = 5, output_scale: float = 0.1, preprocess_p: float = 10.0) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(2, hidden_size)
        self.readout = nn.Linear(hidden_size, 1)
        self.hidden_size, self.output_scale, self.preprocess_p = hidden_size, output_scale, preprocess_p

    def init_state(self, theta: torch.Tensor) -> list:
        zeros = theta.new_zeros(theta.numel(), self.hidden_size)
        return [(zeros, zeros)]

    def forward(self, features: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        h, c = self.cell(features, state[0])
        return self.output_scale * self.readout(h).squeeze(-1), [(h, c)]


def _build_setup(seed: int = 6):
    """A small network and 2 four-dimensional quadratics, in float64."""
    family = lo.QuadraticFamily(dim=4, init_std=0.5, dtype=torch.float64)
    problems = lo.problem_batch(family, 2, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _CoordinatewiseLSTM().double()
    return family, problems, net


def _weights(net) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def _detached(state) -> list:
    return [tuple(t.detach() for t in pair) for pair in state]


def _update(net, grad, state, features=None):
    """The reference learned update: every coordinate is one row through the network."""
    flat = grad.reshape(-1)
    x = lo.preprocess_gradient(flat, net.preprocess_p) if features is None else features(flat)
    step, state = net(x, state)
    return step.reshape(grad.shape), state


def _unroll(net, family, problems, theta, state, t0, K, *, second_order=False, detach_inside=None,
            carry_state=True):
    """The reference unroll, and (through the flags) the usual ways to get it wrong. Returns the losses
    before each update ``[K, B]`` and after it ``[K, B]``, theta and the state."""
    theta = theta if theta.requires_grad else theta.detach().requires_grad_(True)
    before, after, start_state = [], [], state
    for t in range(t0, t0 + K):
        if detach_inside in ("theta", "both"):
            theta = theta.detach().requires_grad_(True)
        if detach_inside in ("state", "both"):
            state = _detached(state)
        loss = family.loss(problems, theta, t)
        (grad,) = torch.autograd.grad(loss.sum(), theta, retain_graph=True, create_graph=second_order)
        update, state = _update(net, grad, state if carry_state else start_state)
        theta = theta + update
        before.append(loss)
        after.append(family.loss(problems, theta, t + 1))
    return torch.stack(before), torch.stack(after), theta, state


def check_learned_update(learned_update: Callable) -> None:
    """``learned_update(net, grad [B, n], state) -> (update [B, n], new state)``: every coordinate of grad is
    one row of ``net(features [B * n, 2], state)``, its features the preprocessed gradient (Exercise 1)."""
    name = "check_learned_update"
    net = _build_setup()[2]
    g = torch.Generator().manual_seed(3)
    grad = torch.tensor([[2.0, -0.5, 1e-3, -30.0, 0.0], [1e-6, -2e-7, 5e-5, 300.0, -1e-2]], dtype=torch.float64)
    state = [(0.5 * torch.randn(10, 5, generator=g, dtype=torch.float64),
              0.5 * torch.randn(10, 5, generator=g, dtype=torch.float64))]
    kept_grad, kept_state = grad.clone(), [tuple(t.clone() for t in pair) for pair in state]
    try:
        update, new_state = run_for_items(name, learned_update, net, grad, state, count=2,
                                          what="(update, new state): the network's step and its new state")
    except ExerciseError as error:
        if isinstance(error.__cause__, (RuntimeError, ValueError, IndexError)):
            fail(name, f"{error} (the network takes features [number of coordinates, 2], one row per "
                       "coordinate, and the state it was given)")
        raise
    fail_if(name, not torch.equal(grad, kept_grad) or not all(torch.equal(a, b) for a, b in
                                                             zip(state[0], kept_state[0])),
            "you changed grad or the state in place: build new tensors")
    fail_if(name, not isinstance(update, torch.Tensor) or update.numel() != grad.numel(),
            f"return one update per coordinate, a tensor of the shape of grad {tuple(grad.shape)}")
    fail_if(name, update.shape != grad.shape,
            f"give the update the shape of grad, {tuple(grad.shape)} (the network works on a flat list of "
            f"coordinates), got {tuple(update.shape)}")
    want, want_state = _update(net, grad, state)
    if not close(update.detach(), want.detach(), tol=1e-8):
        raw = "the network must see the PREPROCESSED gradient (Exercise 1: log-magnitude and sign), not the raw " \
              "gradient: raw gradients span many orders of magnitude (here 1e-7 to 300), which a small network " \
              "handles badly"
        transposed = _update(net, grad.T, state)[0].T
        diagnose(name, update.detach(), [
            (-want.detach(), "no minus sign: the network's output IS the update (theta_{t+1} = theta_t + "
                             "update); the network learns in which direction to step"),
            (_update(net, grad, state, lambda f: torch.stack([f, torch.sign(f)], -1))[0].detach(), raw),
            (_update(net, grad, state, lambda f: torch.stack([f, f], -1))[0].detach(), raw),
            (_update(net, grad, state, lambda f: torch.stack([torch.sign(f), f], -1))[0].detach(), raw),
            (_update(net, grad, state, lambda f: lo.preprocess_gradient(f, net.preprocess_p).flip(-1))[0].detach(),
             "the two features are in the wrong order: pass preprocess_gradient's output as it is"),
            (transposed.detach(), "coordinatewise means one row per coordinate in the order of grad.reshape(-1), "
                                  "the order of the state's rows; you flattened in another order"),
            (_update(net, grad, net.init_state(grad))[0].detach(),
             "use the state you are given, not a fresh one: the state is the optimizer's memory of earlier steps"),
        ], "the update is not net(preprocessed gradient, state), one row per coordinate, reshaped like grad",
            tol=1e-8)
    fail_if(name, not isinstance(new_state, (list, tuple)) or len(new_state) != 1,
            "return the network's new state as it gave it (a list with one (h, c) pair)")
    got_h, got_c = new_state[0]
    fail_if(name, close(got_h.detach(), state[0][0]) and close(got_c.detach(), state[0][1]),
            "return the network's NEW state (what it returns with the step), not the state you were given")
    fail_if(name, not (close(got_h.detach(), want_state[0][0].detach(), tol=1e-8)
                       and close(got_c.detach(), want_state[0][1].detach(), tol=1e-8)),
            "the new state is not the one the network returned for these features")
    fail_if(name, not update.requires_grad,
            "the update does not depend on omega (the network's weights): do not detach it, use .data or "
            "compute it under torch.no_grad(); the meta-gradient flows through it")
    meta = torch.autograd.grad(update.sum(), list(net.parameters()), allow_unused=True)
    fail_if(name, all(m is None or not m.abs().sum() for m in meta),
            "no gradient reaches omega (the network's weights) through your update: keep it differentiable")
    # Another size: nothing may depend on the shape of the first case.
    grad = torch.randn(3, 2, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(-6, 3, (3, 2), generator=g)
    state = net.init_state(grad)
    update, _ = run_for_items(name, learned_update, net, grad, state, count=2, what="(update, new state)")
    fail_if(name, not isinstance(update, torch.Tensor) or update.shape != grad.shape
            or not close(update.detach(), _update(net, grad, state)[0].detach(), tol=1e-8),
            f"wrong update for a gradient of shape {tuple(grad.shape)}: nothing in the function may depend on "
            f"the size of the problem")
    passed(name, 2)


class _Negated(nn.Module):
    """The network with the sign of its output flipped (to recognise theta - update)."""

    def __init__(self, net) -> None:
        super().__init__()
        self.net, self.preprocess_p = net, net.preprocess_p

    def init_state(self, theta):
        return self.net.init_state(theta)

    def forward(self, features, state):
        step, state = self.net(features, state)
        return -step, state


class _RecordingFamily:
    """An optimizee family that writes down the steps at which its losses are asked for."""

    def __init__(self, family) -> None:
        self.family, self.steps = family, []

    def loss(self, problems, theta, step):
        self.steps.append(int(step))
        return self.family.loss(problems, theta, step)


def check_unroll(unroll: Callable) -> None:
    """``unroll(net, family, problems, theta, state, t0, K) -> (meta_loss, theta_K, state_K)``: K learned steps
    theta_{t+1} = theta_t + update, meta-loss = the mean of f(theta_{t0+1}) .. f(theta_{t0+K}) over the steps
    and the problems, differentiable with respect to omega. The gradient input may be treated as a constant
    (the paper) or not (the exact meta-gradient): both pass."""
    name = "check_unroll"
    K = 3
    family, problems, net = _build_setup()
    state0 = net.init_state(problems.theta0)
    before, after, want_theta, want_state = _unroll(net, family, problems, problems.theta0, state0, 0, K)
    try:
        result = run_for_items(name, unroll, net, family, problems, problems.theta0.clone(), state0, 0, K,
                               count=3, what="(meta_loss, theta, state): the meta-loss and where the unroll ended")
    except ExerciseError as error:
        fail_if(name, isinstance(error.__cause__, RuntimeError) and "require grad" in str(error.__cause__),
                "autograd cannot differentiate f with respect to theta: at the start of a truncation theta is a "
                "plain tensor (theta0, or detached by the previous truncation), so make it require grad first")
        raise
    meta_loss, theta, state = result
    fail_if(name, not isinstance(meta_loss, torch.Tensor) or meta_loss.numel() != 1,
            "return the meta-loss as one number (a 0-d tensor that backward() can start from), averaged over "
            "the steps AND the problems")
    fail_if(name, not isinstance(theta, torch.Tensor) or theta.shape != want_theta.shape,
            f"return theta after the K steps, shape {tuple(want_theta.shape)}")
    if not close(theta.detach(), want_theta.detach(), tol=1e-8):
        minus = _unroll(_Negated(net), family, problems, problems.theta0, state0, 0, K)[2]
        diagnose(name, theta.detach(), [
            (minus.detach(), "theta_{t+1} = theta_t + update: add the learned update (the network learns the "
                             "direction), do not subtract it"),
            (_unroll(net, family, problems, problems.theta0, state0, 0, K - 1)[2].detach(),
             f"take exactly K steps: K = {K} updates, you made {K - 1}"),
            (_unroll(net, family, problems, problems.theta0, state0, 0, K + 1)[2].detach(),
             f"take exactly K steps: K = {K} updates, you made {K + 1}"),
            (_unroll(net, family, problems, problems.theta0, state0, 0, K, carry_state=False)[2].detach(),
             "pass each step's new state on to the next step: the state is the optimizer's memory (like Adam's "
             "running averages)"),
        ], "theta after K steps differs from the reference: each step computes grad f(theta_t), the learned "
           "update from it (your learned_update) and theta_t + update", tol=1e-8)
    fail_if(name, not (close(state[0][0].detach(), want_state[0][0].detach(), tol=1e-8)
                       and close(state[0][1].detach(), want_state[0][1].detach(), tol=1e-8)),
            "return the state after the K-th step (each step's new state goes into the next step)")
    value = meta_loss.detach().reshape(())
    if not close(value, after.mean(), tol=1e-8):
        diagnose(name, value, [
            (after[-1].mean(), "you kept only the loss at the last step, f(theta_K). It is a valid objective, "
                               "but a harder one to train on: it says nothing about the way there, and the early "
                               "steps get their meta-gradient only through the end. Here, as in the paper, the "
                               "meta-loss is the MEAN of f(theta_1) .. f(theta_K)"),
            (torch.cat([before[:1], after]).mean(),
             "leave out f at the truncation's start: f(theta_t0) does not depend on omega; average the K losses "
             "after the updates, f(theta_t0+1) .. f(theta_t0+K)"),
            (before.mean(), "average the losses AFTER the updates, f(theta_t0+1) .. f(theta_t0+K): you averaged the "
                            "ones before them, which include f(theta_t0) (no omega in it) and miss the last one"),
            (after.sum(), "the meta-loss is the MEAN over the steps and the problems, not the sum"),
            (after.sum(0).mean(), "the meta-loss is the MEAN over the K steps (w_t = 1/K), not the sum"),
            (after.mean(0).sum(), "average over the problems too (a Monte-Carlo estimate of the expectation over "
                                  "optimizees), do not sum them"),
        ], "the meta-loss should be the mean of f(theta_t0+1) .. f(theta_t0+K) over the steps and the problems",
            tol=1e-8)
    fail_if(name, not meta_loss.requires_grad,
            "no meta-gradient at all: your meta-loss does not depend on omega. theta must stay a function of "
            "omega during the whole truncation: do not detach theta (or the update) inside the unroll, only "
            "between truncations (part C)")
    try:
        grads = torch.autograd.grad(meta_loss.reshape(()), list(net.parameters()), allow_unused=True)
    except RuntimeError as error:
        fail_if(name, "second time" in str(error) or "freed" in str(error),
                "backward went through a graph that autograd.grad had already freed: the loss you differentiated "
                "with respect to theta is also in the meta-loss, so keep its graph (retain_graph=True), or take "
                "the gradient of a separate evaluation")
        fail(name, f"backward from your meta-loss failed with RuntimeError: {str(error).splitlines()[0][:120]}")
    got = torch.cat([(torch.zeros_like(p) if m is None else m).reshape(-1) for p, m in zip(net.parameters(), grads)])
    fail_if(name, not got.abs().sum(),
            "no meta-gradient at all: your meta-loss does not depend on omega. theta must stay a function of "
            "omega during the whole truncation: do not detach theta (or the update) inside the unroll, only "
            "between truncations (part C)")

    def meta_gradient(**flags):
        _, losses, _, _ = _unroll(net, family, problems, problems.theta0, state0, 0, K, **flags)
        return torch.cat([m.reshape(-1) for m in torch.autograd.grad(losses.mean(), list(net.parameters()))])

    first, second = meta_gradient(), meta_gradient(second_order=True)
    if not (close(got, first, tol=1e-7) or close(got, second, tol=1e-7)):
        inside = ("you detached theta or the state inside the unroll: then a loss no longer sees what the earlier "
                  "updates of the truncation did to it, and the meta-gradient misses it. Detach only between "
                  "truncations (part C)")
        diagnose(name, got, [(meta_gradient(detach_inside=where, second_order=order), inside)
                             for where in ("theta", "state", "both") for order in (False, True)], "the meta-gradient (backward from your meta-loss into omega) differs from the reference: theta_t must "
           "stay connected to omega through every earlier update", tol=1e-7)
    # The next truncation: it goes on from t0, and the family is asked for the losses of its own steps.
    recording = _RecordingFamily(family)
    run_student(name, unroll, net, recording, problems, want_theta.detach(), _detached(want_state), 7, K)
    fail_if(name, not recording.steps or min(recording.steps) < 7 or max(recording.steps) > 7 + K,
            f"a truncation from t0 = 7 of K = {K} steps works on steps 7 .. {7 + K}, you asked f for steps "
            f"{sorted(set(recording.steps))}: an optimizee such as an MLP picks its minibatch by the step, so "
            "the next truncation goes on where the last one ended")
    if close(got, second, tol=1e-7) and not close(first, second, tol=1e-7):
        print(f"{name}: you kept the second-order term (create_graph=True), the exact meta-gradient; the paper "
              "drops it (section 4 shows what it costs)")
    passed(name, 2)


def _truncations(net, family, problems, optimizer, horizon, K, max_norm, *, second_order=False, zero_grad=True,
                 restart=False, clip=True):
    """The reference truncated BPTT iteration, and (through the flags) the usual ways to get it wrong."""
    theta, state = problems.theta0, net.init_state(problems.theta0)
    meta_losses = []
    for t0 in range(0, horizon, K):
        if restart:
            theta, state = problems.theta0, net.init_state(problems.theta0)
        _, losses, theta, state = _unroll(net, family, problems, theta, state, t0, K, second_order=second_order)
        meta_loss = losses.mean()
        if zero_grad:
            optimizer.zero_grad()
        meta_loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(net.parameters(), max_norm)
        optimizer.step()
        meta_losses.append(meta_loss.item())
        theta, state = theta.detach(), _detached(state)
    return meta_losses


def check_truncated_meta_training(meta_train_iteration: Callable) -> None:
    """``meta_train_iteration(net, family, problems, meta_optimizer, T, K, max_norm) -> [meta-loss per
    truncation]``: for each truncation of K steps, the notebook's ``unroll`` from where the last one ended,
    zero_grad, backward, the meta-gradient's norm clipped at max_norm, step, then detach theta and the LSTM
    state. Works with a first- or second-order ``unroll``."""
    name = "check_truncated_meta_training"
    horizon, K, lr, max_norm = 6, 2, 0.05, 4.0  # max_norm below the first meta-gradients' norms: clipping shows

    def after(function, **flags):
        """Meta-losses, the network's weights after and the number of meta-updates, from a fresh setup trained
        by ``function`` (None: the reference, with ``flags``)."""
        family, problems, net = _build_setup()
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        updates = []
        optimizer.register_step_post_hook(lambda *_: updates.append(1))
        with torch.random.fork_rng(devices=[]):
            if function is None:
                losses = _truncations(net, family, problems, optimizer, horizon, K, max_norm, **flags)
            else:
                try:
                    losses = run_student(name, function, net, family, problems, optimizer, horizon, K, max_norm)
                except ExerciseError as error:
                    cause = str(error.__cause__)
                    graph_reused = "second time" in cause or "inplace operation" in cause
                    if isinstance(error.__cause__, RuntimeError) and graph_reused:
                        fail(name, "backward went into the previous truncation's graph (RuntimeError: "
                                   f"{cause.splitlines()[0][:80]}...): after each meta-update, detach "
                                   "theta AND the LSTM state (every h and c), so the next truncation starts "
                                   "from their values but without their history")
                    raise
        return losses, _weights(net), len(updates)

    start = _weights(_build_setup()[2])
    losses, got, updates = after(meta_train_iteration)
    fail_if(name, close(got, start, tol=1e-12),
            "the network's weights did not change: after each truncation call meta_optimizer.zero_grad(), "
            "meta_loss.backward() and meta_optimizer.step()")
    references = {order: after(None, second_order=order) for order in (False, True)}
    order = min(references, key=lambda o: float((references[o][1] - got).abs().max()))
    want_losses, want, _ = references[order]
    if not close(got, want, tol=1e-8):
        for flags, message in [
            (dict(zero_grad=False), "call meta_optimizer.zero_grad() before each backward: the gradients of "
                                    "earlier truncations were added to this one"),
            (dict(restart=True), "each truncation continues from the theta and LSTM state where the previous "
                                 "one ended (detached), not from theta0 and a fresh state"),
            (dict(clip=False), "clip the norm of the meta-gradient at max_norm between backward() and step() "
                               "(torch.nn.utils.clip_grad_norm_): a rare huge meta-gradient would otherwise undo "
                               "what Adam has learned"),
        ]:
            fail_if(name, any(close(got, after(None, second_order=o, **flags)[1], tol=1e-8) for o in (False, True)),
                    message)
        fail_if(name, updates != horizon // K, f"one meta-update per truncation: {horizon // K} calls of "
                                               f"meta_optimizer.step() for T = {horizon} and K = {K}, you "
                                               f"made {updates}")
        fail(name, "after one iteration the network's weights differ from the reference: for each truncation, "
                   "your unroll from the current theta and state, zero_grad, backward, clip, step, detach (if "
                   "check_unroll failed, fix unroll first)")
    fail_if(name, not isinstance(losses, (list, tuple)) or len(losses) != horizon // K,
            f"return the list of the {horizon // K} meta-losses (one float per truncation)")
    fail_if(name, any(isinstance(v, torch.Tensor) and v.requires_grad for v in losses),
            "return the meta-losses as floats (meta_loss.item()): a meta-loss tensor keeps its truncation's whole "
            "graph alive, and the memory grows with every truncation you keep")
    fail_if(name, not close(torch.tensor([float(v) for v in losses]), torch.tensor(want_losses), tol=1e-8),
            f"the returned meta-losses should be {[round(v, 6) for v in want_losses]}, got "
            f"{[round(float(v), 6) for v in losses]}")
    passed(name, 1)
