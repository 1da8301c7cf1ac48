"""Checks for the exercises of notebook 04: optimization-based meta-learning.

The build-it checks run the student's MAML on a tiny float64 network (tanh, so that finite differences are
smooth) and compare its meta-gradient with finite differences of the student's own meta-objective: a
meta-gradient that silently lost its second-order term disagrees with them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .common import close, diagnose, fail, fail_if, passed, run_student


def _flat(tensors) -> torch.Tensor:
    """A dict's (or a sequence's) tensors as one flat float64 tensor, detached."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.cat([torch.as_tensor(v).detach().double().reshape(-1) for v in values])


# Exercise 1: the Reptile update


def check_reptile_update(reptile_update: Callable) -> None:
    """``reptile_update(theta: dict, adapted: list of dicts, epsilon) -> dict``:
    theta + epsilon * (mean over tasks of phi_i - theta), leaving theta unchanged."""
    name = "check_reptile_update"
    generator = torch.Generator().manual_seed(41)
    theta = {"w": torch.randn(2, 3, generator=generator, dtype=torch.float64),
             "b": torch.randn(3, generator=generator, dtype=torch.float64)}
    adapted = [{k: v + torch.randn(v.shape, generator=generator, dtype=torch.float64) for k, v in theta.items()}
               for _ in range(3)]
    kept = {k: v.clone() for k, v in theta.items()}
    kept_adapted = [{k: v.clone() for k, v in phi.items()} for phi in adapted]
    epsilon = 0.25
    new = run_student(name, reptile_update, theta, adapted, epsilon)
    fail_if(name, not all(torch.equal(theta[k], kept[k]) for k in theta) or not all(
            torch.equal(phi[k], old[k]) for phi, old in zip(adapted, kept_adapted) for k in phi),
            "you changed theta (or the adapted weights) in place: return a new dict")
    fail_if(name, not isinstance(new, dict) or set(new) != set(theta),
            f"return a dict with the same keys as theta ({sorted(theta)})")
    mean = {k: torch.stack([phi[k] for phi in adapted]).mean(0) for k in theta}
    total = {k: torch.stack([phi[k] for phi in adapted]).sum(0) for k in theta}
    expected = "expected theta + epsilon * (mean over tasks of phi_i - theta) for every parameter"
    fail_if(name, any(torch.as_tensor(new[k]).shape != theta[k].shape for k in theta), expected)
    value = _flat(new[k] for k in theta)
    if close(value, _flat({k: theta[k] + epsilon * (mean[k] - theta[k]) for k in theta})):
        passed(name, 1)
        return
    diagnose(name, value, [(_flat(wrong), message) for wrong, message in [
        ({k: theta[k] - epsilon * (mean[k] - theta[k]) for k in theta},
         "wrong sign: Reptile moves theta TOWARDS the adapted weights, theta + epsilon * (mean phi - theta)"),
        (mean, "you jumped all the way to the mean of the adapted weights: take a step of size epsilon towards it"),
        ({k: theta[k] + epsilon * (adapted[-1][k] - theta[k]) for k in theta},
         "average the adapted weights of ALL tasks, not only the last one"),
        ({k: theta[k] + epsilon * (adapted[0][k] - theta[k]) for k in theta},
         "average the adapted weights of ALL tasks, not only the first one"),
        ({k: theta[k] + epsilon * (total[k] - theta[k]) for k in theta},
         "take the MEAN of the adapted weights over the tasks, not their sum"),
        ({k: theta[k] + epsilon * (total[k] - len(adapted) * theta[k]) for k in theta},
         "take the MEAN of (phi_i - theta) over the tasks, not the sum (the step grows with the meta-batch)"),
        ({k: epsilon * (mean[k] - theta[k]) for k in theta},
         "return the new parameters theta + epsilon * (mean phi - theta), not the update alone"),
        ({k: mean[k] - theta[k] for k in theta}, "return the new parameters, not the direction mean phi - theta"),
    ]], expected)


# Exercise 2: batch norm that does not leak the queries' statistics


def _batch_norm(x, weight, bias, rows, eps=1e-5, unbiased=False, dims=(0, 2, 3), root=True):
    stats = x[rows] if isinstance(rows, slice) else x[:rows]
    mean = stats.mean(dim=dims, keepdim=True)
    var = stats.var(dim=dims, keepdim=True, unbiased=unbiased)
    scale = torch.sqrt(var + eps) if root else var + eps
    return (x - mean) / scale * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


def check_support_batch_norm(support_batch_norm: Callable) -> None:
    """``support_batch_norm(x [B, C, H, W], weight [C], bias [C], support_rows) -> [B, C, H, W]``: batch norm of
    every row with the per-channel mean and biased variance of the first ``support_rows`` rows only."""
    name = "check_support_batch_norm"
    generator = torch.Generator().manual_seed(43)
    x = torch.randn(7, 3, 2, 2, generator=generator, dtype=torch.float64) * 2 + 1
    x[:, 0] *= 0.01  # a channel of small variance, where eps matters
    weight = 1 + torch.rand(3, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    rows, eps = 3, 1e-5
    kept = x.clone()
    out = run_student(name, support_batch_norm, x, weight, bias, rows)
    fail_if(name, not torch.equal(x, kept), "you changed x in place: return a new tensor")
    out = torch.as_tensor(out)
    fail_if(name, tuple(out.shape) != tuple(x.shape),
            f"return one normalised tensor of x's shape {tuple(x.shape)}, not {tuple(out.shape)}")
    expected = _batch_norm(x, weight, bias, rows)
    if not close(out, expected):
        per_image = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / torch.sqrt(
            x.var(dim=(1, 2, 3), keepdim=True, unbiased=False) + eps)
        per_image = per_image * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
        diagnose(name, out, [
            (_batch_norm(x, weight, bias, None), "the queries' statistics leaked in: you normalised with the mean "
             "and variance of ALL rows, so a query's output depends on the other queries (transductive). Take "
             "them from the first support_rows rows (the support set) only"),
            (_batch_norm(x, weight, bias, slice(rows, None)), "you took the statistics of the QUERY rows (the rows "
             "after support_rows): take those of the support rows, the first support_rows"),
            (_batch_norm(x, weight, bias, rows, unbiased=True), "use the biased variance (divide by n, "
             "unbiased=False), as batch norm does"),
            (_batch_norm(x, weight, bias, rows, eps=0.0), "add eps to the variance before the square root"),
            (_batch_norm(x, weight, bias, rows, root=False), "divide by the standard deviation sqrt(var + eps), "
             "not by the variance"),
            (_batch_norm(x, weight, bias, rows, dims=(0,)), "one mean and one variance per CHANNEL, over the "
             "support images AND their pixels (dims 0, 2, 3), not one per pixel"),
            (per_image, "one mean and one variance per CHANNEL over the support images, not one per image"),
            (_batch_norm(x, bias, weight, rows), "scale by weight, then shift by bias (you swapped them)"),
            (_batch_norm(x, torch.ones_like(weight), torch.zeros_like(bias), rows),
             "apply the affine part: multiply by weight and add bias"),
        ], "expected (x - mean) / sqrt(var + eps) * weight + bias, with the per-channel mean and biased variance of "
           "the first support_rows rows")
    # Change every query but the first: its output must not move (each query is normalised on its own).
    changed = x.clone()
    changed[rows + 1:] = changed[rows + 1:].flip(-1) * 3
    again = torch.as_tensor(run_student(name, support_batch_norm, changed, weight, bias, rows))
    fail_if(name, not close(again[rows], out[rows]),
            "the first query's output changed when the other queries changed: the statistics must come from the "
            "support rows only")
    passed(name, 2)


# Build it: MAML's inner loop, meta-objective and meta-training

INNER_LR = 0.3  # large, so that the second-order term is far above the finite differences' error
FD_EPS = 1e-6


def _tiny_maml_problem():
    """A 1-4-4-1 tanh network in float64, theta (other values than the network's own parameters, so a loss that
    calls net(x) instead of functional_call shows) and a meta-batch of 3 sine tasks (4 support, 6 query points)."""
    generator = torch.Generator().manual_seed(44)
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state as it was
        net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4), torch.nn.Tanh(),
                                  torch.nn.Linear(4, 1)).double()
    theta = {k: 0.8 * torch.randn(v.shape, generator=generator, dtype=torch.float64)
             for k, v in net.named_parameters()}
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    tasks, shots, queries = 3, 4, 6
    amplitude = 0.5 + 1.5 * torch.rand(tasks, 1, 1, generator=generator, dtype=torch.float64)
    phase = 3 * torch.rand(tasks, 1, 1, generator=generator, dtype=torch.float64)
    x = 4 * torch.rand(tasks, shots + queries, 1, generator=generator, dtype=torch.float64) - 2
    y = amplitude * torch.sin(x - phase)
    return net, theta, (x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def _leaves(theta: dict) -> dict:
    """Fresh copies of theta that require grad: what a meta-gradient is taken with respect to."""
    return {k: v.detach().clone().requires_grad_() for k, v in theta.items()}


def _mse(net, params, x, y):
    return F.mse_loss(functional_call(net, params, (x,)), y)


def _adapt(net, theta, x, y, steps, lr, first_order=False, at_theta=False):
    phi = dict(theta)
    for _ in range(steps):
        at = theta if at_theta else phi
        grads = torch.autograd.grad(_mse(net, at, x, y), list(at.values()), create_graph=not first_order)
        phi = {k: phi[k] - lr * (g.detach() if first_order else g) for k, g in zip(phi, grads)}
    return phi


def _task_loss(net, theta, task, steps, lr, adapt_on="support", score_on="query", first_order=False):
    sx, sy, qx, qy = task
    sets = {"support": (sx, sy), "query": (qx, qy), "both": (torch.cat([sx, qx]), torch.cat([sy, qy])),
            "none": (sx, sy)}
    phi = _adapt(net, theta, *sets[adapt_on], 0 if adapt_on == "none" else steps, lr, first_order)
    return _mse(net, phi, *sets[score_on])


def _gradient(objective, theta) -> torch.Tensor:
    leaves = _leaves(theta)
    return _flat(torch.autograd.grad(objective(leaves), list(leaves.values())))


def _value(check: str, result) -> torch.Tensor:
    """The student's loss as a one-element tensor that still carries the graph back to theta."""
    fail_if(check, not isinstance(result, torch.Tensor),
            f"return the loss as a tensor (got {type(result).__name__}): not .item() or float(), which cut the "
            "graph the meta-gradient flows through")
    fail_if(check, result.numel() != 1,
            f"return one number, the mean loss, not a tensor of shape {tuple(result.shape)}")
    return result.reshape(())


def _unchanged(check: str, leaves: dict, entries: dict, kept: dict) -> None:
    """theta's dict holds the same tensors with the same values as before the student's call."""
    fail_if(check, set(leaves) != set(entries) or any(leaves[k] is not entries[k] for k in entries),
            "you replaced theta's entries: `phi = theta` makes phi the SAME dict as theta, so writing phi[k] "
            "overwrites the meta-parameters. Start from a copy, dict(theta), and leave theta as it was")
    fail_if(check, any(not torch.equal(leaves[k].detach(), kept[k]) for k in kept),
            "you changed theta in place (an in-place update, or .data): the inner loop must not touch the "
            "meta-parameters; build new tensors phi[k] = theta[k] - ... instead")


def _call_on_copies(check: str, function, theta: dict, *args):
    """Run ``function(theta_leaves, *args)``-style calls, checking that theta is left as it was."""
    leaves = _leaves(theta)
    entries, kept = dict(leaves), {k: v.detach().clone() for k, v in leaves.items()}
    result = run_student(check, function, leaves, *args)
    _unchanged(check, leaves, entries, kept)
    return leaves, result


def _meta_gradient_verdict(check: str, objective: Callable, theta: dict, first_order: torch.Tensor) -> None:
    """The autograd gradient of the student's ``objective(theta)`` against central finite differences of the
    same objective; a first-order gradient is named as such."""
    leaves = _leaves(theta)
    value = _value(check, run_student(check, objective, leaves))
    fail_if(check, not value.requires_grad,
            "the loss is cut off from theta (detached, rebuilt from .data or computed under no_grad): no "
            "meta-gradient can flow back to theta")
    grads = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    fail_if(check, any(g is None for g in grads),
            "some of theta gets no gradient: phi is cut off from theta somewhere (a detached phi, or a new leaf "
            "tensor); detach nothing between theta and the query loss")
    autograd = _flat(grads)
    flat = _flat(theta)
    numeric = torch.empty_like(flat)
    for i in range(len(flat)):
        values = []
        for sign in (1, -1):
            shifted = flat.clone()
            shifted[i] += sign * FD_EPS
            parts, start = {}, 0
            for k, v in theta.items():
                parts[k] = shifted[start:start + v.numel()].reshape(v.shape)
                start += v.numel()
            values.append(float(_value(check, run_student(check, objective, _leaves(parts))).detach()))
        numeric[i] = (values[0] - values[1]) / (2 * FD_EPS)
    if close(autograd, numeric, 1e-5):
        return
    fail_if(check, close(autograd, first_order, 1e-5),
            "your meta-gradient is the FIRST-ORDER one: it disagrees with finite differences of your own "
            "meta-objective and equals the query gradient at phi, as if d phi / d theta = I. The second-order "
            "term was dropped silently: the inner gradient was computed without create_graph=True (or detached). "
            "Use torch.func.grad, or torch.autograd.grad(..., create_graph=True), in the inner loop")
    fail(check, "your meta-gradient (autograd) disagrees with finite differences of your own meta-objective: "
                "something between theta and the query loss is detached or computed outside the graph")


def check_adapt(adapt: Callable) -> None:
    """``adapt(net, theta, support_x, support_y, steps, inner_lr) -> phi``: ``steps`` gradient steps of size
    ``inner_lr`` on the support MSE from theta (a dict), a new dict, differentiable with respect to theta at
    second order; theta itself unchanged."""
    name = "check_adapt"
    net, theta, (sx, sy, qx, qy) = _tiny_maml_problem()
    x, y, lr = sx[0], sy[0], INNER_LR
    for steps in (1, 3):
        leaves, phi = _call_on_copies(name, lambda th: adapt(net, th, x, y, steps, lr), theta)
        fail_if(name, not isinstance(phi, dict) or set(phi) != set(theta),
                f"return a new dict phi with theta's keys ({', '.join(theta)})")
        for k in theta:
            fail_if(name, not isinstance(phi[k], torch.Tensor) or tuple(phi[k].shape) != tuple(theta[k].shape),
                    f"phi[{k!r}] must be a tensor of theta[{k!r}]'s shape {tuple(theta[k].shape)}")
        value = _flat(phi[k] for k in theta)
        expected = _flat(_adapt(net, _leaves(theta), x, y, steps, lr))
        if not close(value, expected):
            def reference(**changes):
                return _flat(_adapt(net, _leaves(theta), x, y, **{"steps": steps, "lr": lr, **changes}))

            diagnose(name, value, [
                (_flat(theta), "phi equals theta: no step changed it. Does your loss use phi? Call the network "
                               "with the parameters, functional_call(net, phi, (x,)), not net(x)"),
                (reference(lr=-lr), "wrong sign: an inner step goes AGAINST the gradient, phi - inner_lr * grad"),
                (reference(lr=1.0), "multiply the gradient by the inner step size inner_lr"),
                (reference(steps=1), "take `steps` gradient steps, not one"),
                (reference(steps=steps + 1), "take exactly `steps` gradient steps (you took one more)"),
                (reference(at_theta=True), "take each step's gradient at the CURRENT phi, not at theta"),
            ], "expected phi after `steps` steps phi <- phi - inner_lr * grad_phi L(phi; support set)")
        fail_if(name, not all(phi[k].requires_grad for k in phi),
                "phi is cut off from theta (detached, or rebuilt from .data): the meta-gradient cannot flow back "
                "to theta. Build phi[k] = phi[k] - inner_lr * grad from theta's tensors")
        grads = torch.autograd.grad(_mse(net, phi, qx[0], qy[0]), list(leaves.values()), allow_unused=True)
        fail_if(name, any(g is None for g in grads),
                "phi is cut off from theta (a new leaf tensor): the meta-gradient cannot flow back to theta")
        meta = _flat(grads)

        def query_loss(first_order):
            return lambda th: _mse(net, _adapt(net, th, x, y, steps, lr, first_order), qx[0], qy[0])

        second, first = _gradient(query_loss(False), theta), _gradient(query_loss(True), theta)
        if not close(meta, second):
            fail_if(name, close(meta, first),
                    "no create_graph: the meta-gradient through your phi is first order, d phi / d theta = I. The "
                    "inner gradient must stay differentiable (torch.func.grad, or torch.autograd.grad with "
                    "create_graph=True, and no .detach()) so that d phi / d theta = I - inner_lr * H")
            fail_if(name, steps == 1 and close(meta, 2 * first - second),
                    "the Hessian term has the wrong sign: d phi / d theta must be I - inner_lr * H, the derivative "
                    "of phi = theta - inner_lr * grad")
            fail(name, "the meta-gradient through your phi is not that of phi = theta - inner_lr * grad L(theta)")
    passed(name, 2)


def check_task_loss(task_loss: Callable) -> None:
    """``task_loss(net, theta, task, steps, inner_lr) -> loss``: the query MSE of phi, adapted on the support set
    of ``task = (support_x, support_y, query_x, query_y)``; its meta-gradient is checked by finite differences."""
    name = "check_task_loss"
    net, theta, batch = _tiny_maml_problem()
    task, steps, lr = tuple(v[1] for v in batch), 2, INNER_LR
    _, result = _call_on_copies(name, lambda th: task_loss(net, th, task, steps, lr), theta)
    value = _value(name, result)
    expected = _task_loss(net, _leaves(theta), task, steps, lr)
    if not close(value, expected):
        def wrong(adapt_on, score_on):
            return _task_loss(net, _leaves(theta), task, steps, lr, adapt_on, score_on)

        diagnose(name, value, [
            (wrong("query", "query"), "you adapted on the QUERY set: adapt on the support set and score the "
                                      "adapted phi on the query set (adapting on the query set shows the learner "
                                      "the answers it is scored on)"),
            (wrong("both", "query"), "you adapted on support AND query: adapt on the support set only"),
            (wrong("support", "support"), "you scored phi on the SUPPORT set it was adapted on: a task's loss is "
                                          "the query loss of the adapted phi"),
            (wrong("query", "support"), "support and query are swapped: adapt on the support set, score on the "
                                        "query set"),
            (wrong("none", "query"), "you scored theta, not the adapted phi: adapt on the support set first"),
        ], f"expected the query MSE of the adapted phi, {float(expected.detach()):.6f}; got {float(value.detach()):.6f}")
    first = _gradient(lambda th: _task_loss(net, th, task, steps, lr, first_order=True), theta)
    _meta_gradient_verdict(name, lambda th: task_loss(net, th, task, steps, lr), theta, first)
    passed(name, 2)


def check_meta_objective(meta_objective: Callable) -> None:
    """``meta_objective(net, theta, batch, steps, inner_lr) -> loss``: the mean over the meta-batch's tasks of
    their post-adaptation query losses, each task adapted from theta; its meta-gradient is checked by finite
    differences and must be second order."""
    name = "check_meta_objective"
    net, theta, batch = _tiny_maml_problem()
    steps, lr = 2, INNER_LR
    tasks = list(zip(*batch))
    _, result = _call_on_copies(name, lambda th: meta_objective(net, th, batch, steps, lr), theta)
    value = _value(name, result)
    leaves = _leaves(theta)
    losses = torch.stack([_task_loss(net, leaves, t, steps, lr) for t in tasks])
    if not close(value, losses.mean()):
        chained, chain = [], leaves
        for sx, sy, qx, qy in tasks:  # each task starting from the previous task's phi
            chain = _adapt(net, chain, sx, sy, steps, lr)
            chained.append(_mse(net, chain, qx, qy))
        pooled = _adapt(net, leaves, batch[0].reshape(-1, 1), batch[1].reshape(-1, 1), steps, lr)
        diagnose(name, value, [
            (losses.sum(), "average over the tasks, not the sum: the meta-objective is the MEAN over the "
                           "meta-batch (with a sum, the meta-step grows with the number of tasks)"),
            (losses[0], "use every task of the meta-batch, not only the first one"),
            (losses[-1], "use every task of the meta-batch, not only the last one"),
            (torch.stack(chained).mean(), "each task must adapt from theta: you started a task from the previous "
                                          "task's phi"),
            (_mse(net, pooled, batch[2].reshape(-1, 1), batch[3].reshape(-1, 1)),
             "you adapted one phi on all tasks' support sets pooled together: adapt each task on its own support "
             "set, from theta"),
        ], f"expected the mean of the {len(tasks)} tasks' query losses, {float(losses.mean().detach()):.6f}; got "
           f"{float(value.detach()):.6f}")
    first = _gradient(lambda th: torch.stack([_task_loss(net, th, t, steps, lr, first_order=True)
                                              for t in tasks]).mean(), theta)
    _meta_gradient_verdict(name, lambda th: meta_objective(net, th, batch, steps, lr), theta, first)
    passed(name, 2)


def _quadratic_meta_problem():
    generator = torch.Generator().manual_seed(45)
    theta = {"w": torch.randn(3, generator=generator, dtype=torch.float64),
             "b": torch.randn((), generator=generator, dtype=torch.float64)}

    def sample_batch(i):
        g = torch.Generator().manual_seed(100 + i)
        return torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)

    def objective(params, batch):
        x, y = batch
        return ((x @ params["w"] + params["b"] - y) ** 2).mean() + 0.1 * (params["w"] ** 4).sum()

    return theta, sample_batch, objective


def _train_reference(theta, sample_batch, objective, iterations, lr, optimizer="adam", zero_grad=True,
                     new_optimizer=False, same_batch=False, maximize=False, step=True):
    leaves = _leaves(theta)
    make = (lambda: torch.optim.SGD(leaves.values(), lr=lr)) if optimizer == "sgd" else (
        lambda: torch.optim.Adam(leaves.values(), lr=lr, maximize=maximize))
    opt, losses = make(), []
    for i in range(iterations):
        opt = make() if new_optimizer else opt
        loss = objective(leaves, sample_batch(0 if same_batch else i))
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        if step:
            opt.step()
        losses.append(float(loss.detach()))
    return _flat(leaves), losses


def check_meta_train(meta_train: Callable) -> None:
    """``meta_train(theta, objective, sample_batch, iterations, meta_lr) -> losses``: Adam (step ``meta_lr``) on
    theta's tensors, updated in place; each iteration draws ``sample_batch(i)``, takes one step against the
    gradient of ``objective(theta, batch)`` and records the objective's value."""
    name = "check_meta_train"
    theta, sample_batch, objective = _quadratic_meta_problem()
    iterations, lr = 6, 0.05
    leaves = _leaves(theta)
    entries = dict(leaves)
    losses = run_student(name, meta_train, leaves, objective, sample_batch, iterations, lr)
    fail_if(name, any(leaves.get(k) is not entries[k] for k in entries),
            "update theta's own tensors (an optimizer on theta.values() does it in place); do not replace them")
    value = _flat(leaves[k] for k in theta)
    expected, expected_losses = _train_reference(theta, sample_batch, objective, iterations, lr)
    if not close(value, expected):
        def reference(**changes):
            return _train_reference(theta, sample_batch, objective, **{"iterations": iterations, "lr": lr, **changes})[0]

        diagnose(name, value, [
            (_flat(theta), "theta did not change: after loss.backward(), call the optimizer's step()"),
            (reference(maximize=True), "theta went UP the meta-objective: minimise it (loss.backward() and "
                                       "optimizer.step(), without a minus sign and without maximize=True)"),
            (reference(zero_grad=False), "the gradients accumulate across iterations: call optimizer.zero_grad() "
                                         "before each backward()"),
            (reference(new_optimizer=True), "create the optimizer ONCE, before the loop: a new Adam at every "
                                            "iteration forgets its moment estimates"),
            (reference(optimizer="sgd"), "that is plain SGD: the meta-optimizer is torch.optim.Adam(theta.values(), "
                                         "lr=meta_lr)"),
            (reference(same_batch=True), "draw a new meta-batch at every iteration, sample_batch(i), not the same "
                                         "one"),
            (reference(iterations=iterations - 1), "run exactly `iterations` meta-iterations (one is missing)"),
            (reference(iterations=iterations + 1), "run exactly `iterations` meta-iterations (one too many)"),
        ], "expected theta after `iterations` Adam steps (step meta_lr) on objective(theta, sample_batch(i))")
    fail_if(name, not isinstance(losses, (list, tuple)) or len(losses) != iterations,
            "return the list of the meta-objective's values, one per iteration")
    returned = torch.tensor([float(torch.as_tensor(v).detach()) for v in losses])
    fail_if(name, not close(returned, torch.tensor(expected_losses)),
            "the losses you return are not the meta-objective of each iteration (before its step)")
    passed(name, 1)
