"""Checks for the exercises of notebook 06: learned optimizers and learned objective functions."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ... import learned_losses as ll
from ... import learned_optimizers as lo
from .common import ExerciseError, close, diagnose, fail, fail_if, passed, run_for_tensor, run_student


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


def _meta_training_setup(seed: int = 6):
    """A small coordinatewise LSTM optimizer and 2 four-dimensional quadratics, in float64."""
    family = lo.QuadraticFamily(dim=4, init_std=0.5, dtype=torch.float64)
    problems = lo.problem_batch(family, 2, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = lo.LSTMOptimizer(lo.LearnedOptimizerConfig(hidden_size=5)).double()
    return family, problems, net


def _truncations(net, family, problems, optimizer, horizon, K, *, reduce="mean", zero_grad=True,
                 start_loss=False, last_only=False, restart=False):
    """The reference truncated BPTT iteration, and (through the flags) the usual ways to get it wrong."""
    theta, state = problems.theta0, net.init_state(problems.theta0)
    meta_losses = []
    for start in range(0, horizon, K):
        if restart:
            theta, state = problems.theta0, net.init_state(problems.theta0)
        losses, theta, state = lo.unroll(net, family, problems, theta, state, start, K)
        kept = losses if start_loss else losses[1:]
        kept = kept[-1:] if last_only else kept
        meta_loss = {"mean": kept.mean(), "sum": kept.sum(), "sum_steps": kept.sum(0).mean()}[reduce]
        if zero_grad:
            optimizer.zero_grad()
        meta_loss.backward()
        optimizer.step()
        meta_losses.append(meta_loss.item())
        theta, state = theta.detach(), [tuple(t.detach() for t in pair) for pair in state]
    return meta_losses


def check_truncated_meta_training(meta_train_iteration: Callable) -> None:
    """``meta_train_iteration(net, family, problems, meta_optimizer, horizon, K) -> [meta-loss per
    truncation]``: for each truncation of K steps, ``lo.unroll`` from where the last one ended, meta-loss =
    mean of f(theta_1..K) (``losses[1:]``), zero_grad, backward, step, then detach theta and the LSTM state."""
    name = "check_truncated_meta_training"
    horizon, K, lr = 6, 2, 0.05

    def after(function, **flags):
        """Meta-losses, the LSTM's weights after and the number of meta-updates, from a fresh setup trained by
        ``function`` (None: the reference, with ``flags``)."""
        family, problems, net = _meta_training_setup()
        optimizer = torch.optim.SGD(net.parameters(), lr=lr)
        updates = []
        optimizer.register_step_post_hook(lambda *_: updates.append(1))
        with torch.random.fork_rng(devices=[]):
            if function is None:
                losses = _truncations(net, family, problems, optimizer, horizon, K, **flags)
            else:
                try:
                    losses = run_student(name, function, net, family, problems, optimizer, horizon, K)
                except ExerciseError as error:
                    cause = str(error.__cause__)
                    graph_reused = "second time" in cause or "inplace operation" in cause
                    if isinstance(error.__cause__, RuntimeError) and graph_reused:
                        fail(name, "backward went into the previous truncation's graph (RuntimeError: "
                                   f"{cause.splitlines()[0][:80]}...): after each meta-update, detach "
                                   "theta AND the LSTM state (every h and c), so the next truncation starts "
                                   "from their values but without their history")
                    raise
        return losses, torch.cat([p.detach().reshape(-1) for p in net.parameters()]), len(updates)

    start = torch.cat([p.detach().reshape(-1) for p in _meta_training_setup()[2].parameters()])
    want_losses, want, _ = after(None)
    losses, got, updates = after(meta_train_iteration)
    fail_if(name, close(got, start, tol=1e-12),
            "the LSTM's weights did not change: after each truncation call meta_optimizer.zero_grad(), "
            "meta_loss.backward() and meta_optimizer.step()")
    if not close(got, want, tol=1e-8):
        for flags, message in [
            (dict(reduce="sum_steps"),
             "the meta-loss of a truncation is the MEAN of f over its K steps (w_t = 1/K), not the sum"),
            (dict(reduce="sum"),
             "the meta-loss is the MEAN of f over the K steps and the optimizees, not the sum"),
            (dict(start_loss=True), "losses[0] is f at the truncation's starting point, which does not depend "
                                    "on omega: leave it out and average losses[1:]"),
            (dict(last_only=True), "the meta-loss uses f at every step of the truncation (losses[1:]), not "
                                   "only the last one: the optimizer is rewarded for being fast too"),
            (dict(zero_grad=False), "call meta_optimizer.zero_grad() before each backward: the gradients of "
                                    "earlier truncations were added to this one"),
            (dict(restart=True), "each truncation continues from the theta and LSTM state where the previous "
                                 "one ended (detached), not from theta0 and a fresh state"),
        ]:
            fail_if(name, close(got, after(None, **flags)[1], tol=1e-8), message)
        fail_if(name, updates != horizon // K, f"one meta-update per truncation: {horizon // K} calls of "
                                               f"meta_optimizer.step() for horizon {horizon} and K = {K}, you "
                                               f"made {updates}")
        fail(name, "after one iteration the LSTM's weights differ from the reference: unroll K steps with "
                   "lo.unroll from the current theta and state, meta-loss = losses[1:].mean(), zero_grad, "
                   "backward, step, detach")
    fail_if(name, not isinstance(losses, (list, tuple)) or len(losses) != horizon // K,
            f"return the list of the {horizon // K} meta-losses (one float per truncation)")
    fail_if(name, not close(torch.tensor([float(v) for v in losses]), torch.tensor(want_losses), tol=1e-8),
            f"the returned meta-losses should be {[round(v, 6) for v in want_losses]}, got "
            f"{[round(float(v), 6) for v in losses]}")
    passed(name, 1)


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
