"""Checks for the exercises of notebook 04: optimization-based meta-learning."""

from typing import Callable

import torch

from .common import close, diagnose, fail, fail_if, passed, run_student


def _quadratic_problem():
    """Two parameter tensors and a support loss with a non-zero Hessian that couples them (float64)."""
    generator = torch.Generator().manual_seed(40)
    w = torch.randn(3, generator=generator, dtype=torch.float64)
    v = torch.randn(2, generator=generator, dtype=torch.float64)
    A = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    A = A @ A.T + torch.eye(3, dtype=torch.float64)
    M = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    target = torch.randn(5, generator=generator, dtype=torch.float64)

    def support_loss(p):
        return 0.5 * p["w"] @ A @ p["w"] + (p["w"] @ M @ p["v"]) ** 2 + (p["v"] ** 3).sum() / 3

    def query_loss(p):
        return ((torch.cat([p["w"], p["v"]]) - target) ** 2).sum()

    return {"w": w, "v": v}, support_loss, query_loss


def _flat(tensors) -> torch.Tensor:
    """A dict's (or a sequence's) tensors as one flat tensor, detached."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.cat([torch.as_tensor(v).detach().reshape(-1) for v in values])


def _reference_meta_gradient(start, support_loss, query_loss, lr, first_order) -> torch.Tensor:
    theta = {k: v.clone().requires_grad_() for k, v in start.items()}
    grads = torch.autograd.grad(support_loss(theta), list(theta.values()), create_graph=not first_order)
    phi = {k: p - lr * (g.detach() if first_order else g) for (k, p), g in zip(theta.items(), grads)}
    return _flat(torch.autograd.grad(query_loss(phi), list(theta.values())))


def check_inner_update(inner_update: Callable) -> None:
    """``inner_update(params: dict, loss, lr, first_order) -> dict``: one inner step phi = theta - lr * grad,
    differentiable with respect to theta; with ``first_order=False`` the graph of the gradient is kept
    (``create_graph=True``) so that the meta-gradient has the Hessian term, with ``first_order=True`` it is not."""
    name = "check_inner_update"
    start, support_loss, query_loss = _quadratic_problem()
    lr = 0.1
    second, first = (_reference_meta_gradient(start, support_loss, query_loss, lr, fo) for fo in (False, True))
    fresh = {k: v.clone().requires_grad_() for k, v in start.items()}
    grads = dict(zip(fresh, torch.autograd.grad(support_loss(fresh), list(fresh.values()))))
    for first_order in (False, True):
        params = {k: v.clone().requires_grad_() for k, v in start.items()}
        phi = run_student(name, inner_update, params, support_loss(params), lr, first_order)
        fail_if(name, not all(torch.equal(params[k].detach(), start[k]) for k in start),
                "you changed the parameters in place: return a new dict and leave theta as it was "
                "(the meta-gradient is taken with respect to the unchanged theta)")
        fail_if(name, not isinstance(phi, dict) or set(phi) != set(params),
                f"return a dict with the same keys as params ({sorted(params)}), one new tensor per parameter")
        for k in params:
            fail_if(name, tuple(phi[k].shape) != tuple(params[k].shape),
                    f"phi[{k!r}] has shape {tuple(phi[k].shape)}, theta[{k!r}] {tuple(params[k].shape)}")
        value = {k: phi[k].detach() for k in phi}
        fail_if(name, all(close(value[k], start[k] + lr * grads[k]) for k in value),
                "wrong sign: the inner step goes against the gradient, phi = theta - lr * grad")
        fail_if(name, all(close(value[k], start[k] - grads[k]) for k in value),
                "multiply the gradient by the inner learning rate lr")
        fail_if(name, all(close(value[k], -lr * grads[k]) or close(value[k], grads[k]) for k in value),
                "return the adapted parameters phi = theta - lr * grad, not the update or the gradient")
        fail_if(name, not all(close(value[k], start[k] - lr * grads[k]) for k in value),
                "the adapted parameters must be phi = theta - lr * grad(loss)(theta)")
        fail_if(name, not all(phi[k].requires_grad for k in phi),
                "phi is cut off from theta (detached, or built from .data): the meta-gradient cannot flow "
                "back to theta. Detach only the inner GRADIENT (first order), never phi itself")
        meta = torch.autograd.grad(query_loss(phi), list(params.values()), allow_unused=True)
        fail_if(name, any(g is None for g in meta),
                "phi is cut off from theta (detached, or a new leaf tensor): the meta-gradient cannot "
                "flow back to theta. Compute phi[k] = params[k] - lr * grad and detach only the gradient")
        meta = _flat(meta)
        if not first_order and not close(meta, second):
            fail_if(name, close(meta, first),
                    "no create_graph: the meta-gradient loses the second-order term. With first_order=False "
                    "compute the gradient with torch.autograd.grad(loss, ..., create_graph=True), so that "
                    "d phi / d theta = I - lr * Hessian")
            fail(name, "with first_order=False the meta-gradient through phi is not (I - lr H) grad L_query(phi)")
        if first_order and not close(meta, first):
            fail_if(name, close(meta, second),
                    "first_order=True must drop the Hessian term: detach the inner gradient (or compute it "
                    "without create_graph), so that d phi / d theta = I")
            fail(name, "with first_order=True the meta-gradient through phi must be grad L_query(phi) itself")
    passed(name, 2)


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


def _tiny_regression_problem():
    generator = torch.Generator().manual_seed(42)
    params = {"fc0_weight": torch.randn(5, 1, generator=generator, dtype=torch.float64),
              "fc0_bias": torch.randn(5, generator=generator, dtype=torch.float64),
              "fc1_weight": torch.randn(1, 5, generator=generator, dtype=torch.float64) * 0.5,
              "fc1_bias": torch.zeros(1, dtype=torch.float64)}
    tasks, shots, queries = 3, 4, 6
    amplitude = 1 + 2 * torch.rand(tasks, 1, 1, generator=generator, dtype=torch.float64)
    x = 4 * torch.rand(tasks, shots + queries, 1, generator=generator, dtype=torch.float64) - 2
    y = amplitude * torch.sin(x)
    batch = (x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])

    def loss_fn(p, xs, ys):
        hidden = torch.tanh(xs @ p["fc0_weight"].T + p["fc0_bias"])
        return ((hidden @ p["fc1_weight"].T + p["fc1_bias"] - ys) ** 2).mean()

    return params, batch, loss_fn


def _meta_gradient_reference(params, batch, loss_fn, inner_lr, steps, first_order=True, outer="query",
                             adapt=True, tasks=None, reduce="mean"):
    sx, sy, qx, qy = batch
    indices = range(len(sx)) if tasks is None else tasks
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    losses = []
    for i in indices:
        phi = theta
        for _ in range(steps if adapt else 0):
            grads = torch.autograd.grad(loss_fn(phi, sx[i], sy[i]), list(phi.values()), create_graph=not first_order)
            phi = {k: v - inner_lr * (g.detach() if first_order else g) for (k, v), g in zip(phi.items(), grads)}
        if first_order:
            phi = {k: v.detach().requires_grad_() for k, v in phi.items()}
        x, y = (qx[i], qy[i]) if outer == "query" else (sx[i], sy[i])
        losses.append((phi, loss_fn(phi, x, y)))
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for phi, loss in losses:
        wrt = phi if first_order else theta
        for k, g in zip(wrt, torch.autograd.grad(loss, list(wrt.values()))):
            total[k] = total[k] + g
    scale = 1 / len(losses) if reduce == "mean" else 1.0
    return _flat({k: v * scale for k, v in total.items()})


def check_first_order_meta_gradient(first_order_meta_gradient: Callable) -> None:
    """``first_order_meta_gradient(params, batch, loss_fn, inner_lr, steps) -> dict``: the FOMAML
    meta-gradient, 1/T sum_i grad L(phi_i; query_i) at the adapted phi_i (``steps`` plain SGD steps on
    support_i), with the Hessian terms dropped. ``batch = (sx, sy, qx, qy)`` with a leading task dimension."""
    name = "check_first_order_meta_gradient"
    params, batch, loss_fn = _tiny_regression_problem()
    inner_lr, steps = 0.3, 2

    def student(steps: int) -> torch.Tensor:
        given = {k: v.clone() for k, v in params.items()}
        result = run_student(name, first_order_meta_gradient, given, batch, loss_fn, inner_lr, steps)
        fail_if(name, not all(torch.equal(given[k], params[k]) for k in params),
                "you changed the parameters in place: compute the gradient and leave theta as it was")
        fail_if(name, not isinstance(result, dict) or set(result) != set(params),
                f"return a dict of gradients with the same keys as params ({sorted(params)})")
        for k in params:
            shape = tuple(torch.as_tensor(result[k]).shape)
            fail_if(name, shape != tuple(params[k].shape),
                    f"the gradient for {k!r} has shape {shape}, the parameter {tuple(params[k].shape)}")
        return _flat(result[k] for k in params)

    def reference(**changes):
        return _meta_gradient_reference(params, batch, loss_fn, **{"inner_lr": inner_lr, "steps": steps, **changes})

    result = student(steps)
    if close(result, reference(), 1e-6):
        # One more case, one step: catches a loop that ignores `steps`.
        fail_if(name, not close(student(1), reference(steps=1), 1e-6),
                "with steps=1 the answer is wrong: take exactly `steps` inner steps")
        passed(name, 2)
        return
    diagnose(name, result, [
        (reference(first_order=False), "that is the second-order (MAML) meta-gradient: first order drops the "
                                       "Hessian terms, so detach the inner gradients (no create_graph) and take "
                                       "the query gradient at phi_i"),
        (reference(adapt=False), "the gradient is taken at theta: the first-order meta-gradient is the query "
                                 "gradient at the ADAPTED parameters phi_i (run the inner loop first)"),
        (reference(outer="support"), "the outer gradient must use the QUERY set of each task, not the support set "
                                     "it was adapted on"),
        (reference(reduce="sum"), "average the tasks' gradients (the meta-objective is the MEAN over the "
                                  "meta-batch), not their sum"),
        (reference(tasks=[len(batch[0]) - 1]), "use every task of the meta-batch, not only the last one"),
        (reference(tasks=[0]), "use every task of the meta-batch, not only the first one"),
        (reference(steps=1), "take `steps` inner steps, not one"),
        (-reference(), "wrong sign: return the gradient of the query loss (the outer optimizer subtracts it), "
                       "not minus it"),
    ], "expected 1/T sum_i grad L(phi_i; query set i) with phi_i = theta after `steps` first-order SGD "
       "steps of size inner_lr on support set i", tol=1e-6)
