"""Notebook 04's exercise checks accept correct solutions, whatever their form, and reject typical mistakes in
plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from course_lib.teaching.checks import nb04 as checks
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

# ---------------------------------------------------------------- the notebook's reference solutions

NOTEBOOK = "04_optimization_based"  # defined from its source, with its own `mse` and each other

adapt = notebook_solution(NOTEBOOK, "adapt")
task_loss = notebook_solution(NOTEBOOK, "task_loss")
meta_objective = notebook_solution(NOTEBOOK, "meta_objective")
meta_train = notebook_solution(NOTEBOOK, "meta_train")
reptile_update = notebook_solution(NOTEBOOK, "reptile_update")
support_batch_norm = notebook_solution(NOTEBOOK, "support_batch_norm")
mse = adapt.__globals__["mse"]  # the notebook's loss (not an exercise), for the other solutions and the mistakes


# ---------------------------------------------------------------- other correct solutions


def adapt_autograd(net, theta, support_x, support_y, steps, inner_lr):
    """autograd.grad with create_graph=True instead of torch.func.grad."""
    phi = theta.copy()
    for _ in range(steps):
        grads = torch.autograd.grad(mse(net, phi, support_x, support_y), tuple(phi.values()), create_graph=True)
        phi = {k: v - inner_lr * g for (k, v), g in zip(phi.items(), grads)}
    return phi


task_loss_autograd = notebook_solution(NOTEBOOK, "task_loss", adapt=adapt_autograd)


def meta_objective_loop(net, theta, batch, steps, inner_lr):
    """A Python loop over the tasks, with the autograd inner loop (which vmap would not take)."""
    losses = [task_loss_autograd(net, theta, task, steps, inner_lr) for task in zip(*batch)]
    return sum(losses) / len(losses)


def task_loss_by_hand(net, theta, task, steps, inner_lr):
    """The network's layers applied by hand, sum of squares / count for the MSE, autograd with create_graph."""
    def loss(params, x, y):
        h = x
        for name, layer in net.named_children():
            is_linear = isinstance(layer, torch.nn.Linear)
            h = F.linear(h, params[f"{name}.weight"], params[f"{name}.bias"]) if is_linear else layer(h)
        return ((h - y) ** 2).sum() / y.numel()

    support_x, support_y, query_x, query_y = task
    phi = dict(theta)
    for _ in range(steps):
        grads = torch.autograd.grad(loss(phi, support_x, support_y), list(phi.values()), create_graph=True)
        phi = {k: v - inner_lr * g for (k, v), g in zip(phi.items(), grads)}
    return loss(phi, query_x, query_y).reshape(1)


def meta_train_set_to_none(theta, objective, sample_batch, iterations, meta_lr):
    """Gradients cleared by hand, batches drawn first, losses kept as tensors."""
    batches = [sample_batch(i) for i in range(iterations)]
    optimizer = torch.optim.Adam(list(theta.values()), meta_lr)
    losses = []
    for batch in batches:
        for p in theta.values():
            p.grad = None
        loss = objective(theta, batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses


def support_batch_norm_by_hand(x, weight, bias, support_rows, eps=1e-5):
    """Channels last, statistics by sums, rsqrt."""
    channels = x.transpose(0, 1).reshape(x.shape[1], x.shape[0], -1)
    support = channels[:, :support_rows]
    mean = support.sum(dim=(1, 2)) / support[0].numel()
    var = ((support - mean[:, None, None]) ** 2).sum(dim=(1, 2)) / support[0].numel()
    scale = weight * torch.rsqrt(var + eps)
    return (x - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)


CORRECT = [
    ("check_adapt", adapt), ("check_adapt", adapt_autograd),
    ("check_task_loss", task_loss), ("check_task_loss", task_loss_by_hand),
    ("check_meta_objective", meta_objective), ("check_meta_objective", meta_objective_loop),
    ("check_meta_train", meta_train), ("check_meta_train", meta_train_set_to_none),
    ("check_reptile_update", reptile_update),
    ("check_reptile_update", lambda t, a, e: {k: (1 - e) * v + e * sum(phi[k] for phi in a) / len(a)
                                              for k, v in t.items()}),
    ("check_support_batch_norm", support_batch_norm), ("check_support_batch_norm", support_batch_norm_by_hand),
]


@pytest.mark.parametrize("check, solution", CORRECT, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CORRECT)])
def test_notebook_04_correct_solutions_pass(check, solution, capsys):
    """The reference solution and another correct form of each exercise pass its check."""
    getattr(checks, check)(solution)
    assert "✓" in capsys.readouterr().out


# ---------------------------------------------------------------- typical mistakes


def adapt_with(create_graph=True, detach_grad=False, sign=-1.0, lr_used=True, steps_taken=None, at_theta=False,
               in_place=False, same_dict=False, detach_phi=False, module_loss=False, hessian_sign=1.0):
    def wrong(net, theta, support_x, support_y, steps, inner_lr):
        phi = theta if same_dict else dict(theta)
        for _ in range(steps if steps_taken is None else steps_taken(steps)):
            at = theta if at_theta else phi
            loss = F.mse_loss(net(support_x), support_y) if module_loss else mse(net, at, support_x, support_y)
            grads = torch.autograd.grad(loss, list(at.values()), create_graph=create_graph, allow_unused=True)
            grads = [torch.zeros_like(v) if g is None else g for v, g in zip(at.values(), grads)]
            for k, g in zip(list(phi), grads):
                g = g.detach() if detach_grad else g
                if hessian_sign < 0:  # the same value, d phi / d theta = I + lr H
                    g = 2 * g.detach() - g
                step = (inner_lr if lr_used else 1.0) * g
                if in_place:
                    with torch.no_grad():
                        phi[k].add_(sign * step)
                else:
                    phi[k] = phi[k] + sign * step
        return {k: v.detach() for k, v in phi.items()} if detach_phi else phi
    return wrong


def task_loss_with(adapt_on="support", score_on="query", adapted=True):
    def wrong(net, theta, task, steps, inner_lr):
        sx, sy, qx, qy = task
        sets = {"support": (sx, sy), "query": (qx, qy), "both": (torch.cat([sx, qx]), torch.cat([sy, qy]))}
        phi = adapt(net, theta, *sets[adapt_on], steps, inner_lr) if adapted else theta
        return mse(net, phi, *sets[score_on])
    return wrong


task_loss_first_order = notebook_solution(NOTEBOOK, "task_loss", adapt=adapt_with(create_graph=False))


def meta_objective_with(reduce="mean", only=None, chained=False, first_order=False, item=False):
    def wrong(net, theta, batch, steps, inner_lr):
        tasks = list(zip(*batch))
        tasks = tasks if only is None else [tasks[only]]
        losses, start = [], theta
        for t in tasks:
            inner = adapt_with(create_graph=not first_order)
            sx, sy, qx, qy = t
            phi = inner(net, start, sx, sy, steps, inner_lr)
            losses.append(mse(net, phi, qx, qy))
            start = phi if chained else theta
        total = torch.stack(losses).sum() if reduce == "sum" else torch.stack(losses).mean()
        return total.item() if item else total
    return wrong


def meta_train_with(optimizer="adam", zero_grad=True, new_optimizer=False, same_batch=False, sign=1.0, step=True,
                    extra=0):
    def wrong(theta, objective, sample_batch, iterations, meta_lr):
        make = (lambda: torch.optim.SGD(theta.values(), lr=meta_lr)) if optimizer == "sgd" else (
            lambda: torch.optim.Adam(theta.values(), lr=meta_lr))
        opt, losses = make(), []
        for i in range(iterations + extra):
            opt = make() if new_optimizer else opt
            loss = objective(theta, sample_batch(0 if same_batch else i))
            if zero_grad:
                opt.zero_grad()
            (sign * loss).backward()
            if step:
                opt.step()
            losses.append(loss.item())
        return losses
    return wrong


def batch_norm_with(rows="support", unbiased=False, eps=1e-5, dims=(0, 2, 3), swap=False, in_place=False):
    def wrong(x, weight, bias, support_rows):
        stats = {"support": x[:support_rows], "all": x, "query": x[support_rows:]}[rows]
        mean = stats.mean(dim=dims, keepdim=True)
        var = stats.var(dim=dims, keepdim=True, unbiased=unbiased)
        w, b = (bias, weight) if swap else (weight, bias)
        if in_place:
            x.sub_(mean)
            return x / torch.sqrt(var + eps) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
        return (x - mean) / torch.sqrt(var + eps) * w.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
    return wrong


def mean_of(adapted, k):
    return torch.stack([phi[k] for phi in adapted]).mean(0)


def reptile_in_place(theta, adapted, epsilon):
    for k, v in theta.items():
        v.add_(epsilon * (mean_of(adapted, k) - v))
    return theta


WRONG_04 = [
    # (check, wrong implementation, words the message must contain)
    ("check_adapt", adapt_with(create_graph=False), "no create_graph"),
    ("check_adapt", adapt_with(detach_grad=True), "no create_graph"),
    ("check_adapt", adapt_with(hessian_sign=-1.0), "wrong sign: d phi / d theta must be I - inner_lr * H"),
    ("check_adapt", adapt_with(sign=1.0), "wrong sign: an inner step goes AGAINST the gradient"),
    ("check_adapt", adapt_with(lr_used=False), "inner step size inner_lr"),
    ("check_adapt", adapt_with(steps_taken=lambda s: 1), "not one"),
    ("check_adapt", adapt_with(steps_taken=lambda s: s + 1), "one more"),
    ("check_adapt", adapt_with(at_theta=True), "CURRENT phi, not at theta"),
    ("check_adapt", adapt_with(in_place=True), "changed theta in place"),
    ("check_adapt", adapt_with(same_dict=True), "SAME dict as theta"),
    ("check_adapt", adapt_with(detach_phi=True), "cut off from theta"),
    ("check_adapt", adapt_with(module_loss=True), "functional_call(net, phi, (x,)), not net(x)"),
    ("check_adapt", lambda net, th, x, y, s, lr: list(adapt(net, th, x, y, s, lr).values()), "new dict"),
    ("check_task_loss", task_loss_with(adapt_on="query"), "adapted on the QUERY set"),
    ("check_task_loss", task_loss_with(adapt_on="both"), "support AND query"),
    ("check_task_loss", task_loss_with(score_on="support"), "scored phi on the SUPPORT set"),
    ("check_task_loss", task_loss_with(adapt_on="query", score_on="support"), "swapped"),
    ("check_task_loss", task_loss_with(adapted=False), "not the adapted phi"),
    ("check_task_loss", task_loss_first_order, "FIRST-ORDER"),
    ("check_task_loss", lambda *a: task_loss(*a).item(), ".item()"),
    ("check_meta_objective", meta_objective_with(first_order=True), "second-order term was dropped silently"),
    ("check_meta_objective", meta_objective_with(reduce="sum"), "not the sum"),
    ("check_meta_objective", meta_objective_with(only=0), "not only the first one"),
    ("check_meta_objective", meta_objective_with(only=-1), "not only the last one"),
    ("check_meta_objective", meta_objective_with(chained=True), "previous task's phi"),
    ("check_meta_objective", meta_objective_with(item=True), "not .item()"),
    ("check_meta_objective", lambda net, th, b, s, lr: vmap(lambda *t: task_loss(net, th, t, s, lr))(*b),
     "one number"),
    ("check_meta_train", meta_train_with(optimizer="sgd"), "plain SGD"),
    ("check_meta_train", meta_train_with(zero_grad=False), "accumulate"),
    ("check_meta_train", meta_train_with(new_optimizer=True), "ONCE"),
    ("check_meta_train", meta_train_with(same_batch=True), "new meta-batch"),
    ("check_meta_train", meta_train_with(sign=-1.0), "minimise"),
    ("check_meta_train", meta_train_with(step=False), "step()"),
    ("check_meta_train", meta_train_with(extra=1), "one too many"),
    ("check_reptile_update", lambda t, a, e: {k: v - e * (mean_of(a, k) - v) for k, v in t.items()}, "TOWARDS"),
    ("check_reptile_update", lambda t, a, e: {k: mean_of(a, k) for k in t}, "all the way"),
    ("check_reptile_update", lambda t, a, e: {k: v + e * (a[-1][k] - v) for k, v in t.items()}, "ALL tasks"),
    ("check_reptile_update", lambda t, a, e: {k: v + e * (sum(phi[k] for phi in a) - v) for k, v in t.items()},
     "MEAN"),
    ("check_reptile_update", lambda t, a, e: {k: v + e * sum(phi[k] - v for phi in a) for k, v in t.items()},
     "not the sum"),
    ("check_reptile_update", lambda t, a, e: {k: e * (mean_of(a, k) - v) for k, v in t.items()}, "not the update"),
    ("check_reptile_update", reptile_in_place, "in place"),
    ("check_support_batch_norm", batch_norm_with(rows="all"), "transductive"),
    ("check_support_batch_norm", batch_norm_with(rows="query"), "QUERY rows"),
    ("check_support_batch_norm", batch_norm_with(unbiased=True), "biased variance"),
    ("check_support_batch_norm", batch_norm_with(eps=0.0), "add eps"),
    ("check_support_batch_norm", batch_norm_with(dims=(0,)), "per CHANNEL"),
    ("check_support_batch_norm", batch_norm_with(swap=True), "swapped"),
    ("check_support_batch_norm", batch_norm_with(in_place=True), "in place"),
]


@pytest.mark.parametrize("check, wrong, words", WRONG_04, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG_04)])
def test_notebook_04_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message starts with the check's name and names the mistake."""
    assert_rejected_in_plain_words(checks, check, wrong, words)


def test_notebook_04_placeholders_are_reported_as_not_done():
    assert_unfinished_exercises_surface(checks, "check_adapt", "check_task_loss", "check_meta_objective",
                                        "check_meta_train", "check_reptile_update", "check_support_batch_norm")


def test_notebook_04_second_order_term_is_far_above_the_finite_differences_error():
    """The check can tell first from second order: on its tiny problem the two meta-gradients differ by far more
    than the tolerance it compares them with."""
    net, theta, batch = checks._tiny_maml_problem()
    task = tuple(v[0] for v in batch)

    def gradient(first_order):
        leaves = checks._leaves(theta)
        loss = checks._task_loss(net, leaves, task, 2, checks.INNER_LR, first_order=first_order)
        return checks._flat(torch.autograd.grad(loss, list(leaves.values())))

    second, first = gradient(False), gradient(True)
    assert (second - first).abs().max() > 1e-2 * second.abs().max()


def test_notebook_04_checks_agree_with_the_library():
    """course_lib.maml's inner loop, meta-objective, Reptile direction and batch norm pass the checks (the
    notebook prints them as the references)."""
    from course_lib import maml

    def library_adapt(net, theta, support_x, support_y, steps, inner_lr):
        loss_fn = lambda params, x, y: mse(net, params, x, y)  # noqa: E731
        return maml.inner_adapt(theta, support_x, support_y, steps, inner_lr, loss_fn, first_order=False)

    checks.check_adapt(library_adapt)
    checks.check_support_batch_norm(lambda x, w, b, rows: maml.batch_norm(x, w, b, stats_rows=rows))

    def library_reptile_update(theta, adapted, epsilon):  # theta - epsilon * (theta - mean phi), as SGD would do
        direction = {k: v - torch.stack([phi[k] for phi in adapted]).mean(0) for k, v in theta.items()}
        return {k: v - epsilon * direction[k] for k, v in theta.items()}

    checks.check_reptile_update(library_reptile_update)

    # The notebook's meta-objective is the library's, on its MLP.
    params = maml.mlp_init((1, 8, 8, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (sx, sy, qx, qy), _ = maml.sinusoid_batch(torch.Generator().manual_seed(1), 3, 5, 5, torch.device("cpu"))
    batch = tuple(v.double() for v in (sx, sy, qx, qy))
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    library, _ = maml.meta_loss(theta, batch, variant="maml", steps=2, inner_lr=0.05, forward=maml.mlp_forward,
                                regression=True)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 1)).double()
    as_module = {f"{2 * i}.{kind}": theta[f"fc{i}_{kind}"] for i in range(3) for kind in ("weight", "bias")}
    ours = meta_objective(net, as_module, batch, 2, 0.05)
    assert torch.allclose(ours, library, atol=1e-12)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(
        torch.autograd.grad(ours, list(theta.values()), retain_graph=True),
        torch.autograd.grad(library, list(theta.values()))))
