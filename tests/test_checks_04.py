"""Notebook 04's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import pytest
import torch

from course_lib.teaching.checks import nb04 as checks
from course_lib.teaching.checks.common import ExerciseError

# ---------------------------------------------------------------- reference solutions (as in the notebook)


def inner_update(params, loss, lr, first_order):
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
    return {k: p - lr * (g.detach() if first_order else g) for (k, p), g in zip(params.items(), grads)}


def reptile_update(theta, adapted, epsilon):
    return {k: v + epsilon * (torch.stack([phi[k] for phi in adapted]).mean(0) - v) for k, v in theta.items()}


def first_order_meta_gradient(params, batch, loss_fn, inner_lr, steps):
    sx, sy, qx, qy = batch
    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(len(sx)):
        phi = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        for _ in range(steps):
            grads = torch.autograd.grad(loss_fn(phi, sx[i], sy[i]), list(phi.values()))
            phi = {k: (v - inner_lr * g).detach().requires_grad_() for (k, v), g in zip(phi.items(), grads)}
        grads = torch.autograd.grad(loss_fn(phi, qx[i], qy[i]), list(phi.values()))
        total = {k: total[k] + g / len(sx) for k, g in zip(phi, grads)}
    return total


# ---------------------------------------------------------------- typical mistakes


def inner_update_with(create_graph=None, sign=-1.0, lr_used=True, detach_phi=False, in_place=False,
                      return_update=False, detach_always=False):
    def update(params, loss, lr, first_order):
        graph = (not first_order) if create_graph is None else create_graph
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=graph)
        out = {}
        for (k, p), g in zip(params.items(), grads):
            if detach_always:
                g = g.detach()
            step = (lr if lr_used else 1.0) * g
            if in_place:
                with torch.no_grad():
                    p.add_(sign * step)
                out[k] = p
                continue
            value = sign * step if return_update else p + sign * step
            out[k] = value.detach() if detach_phi else value
        return out
    return update


def fomaml_with(adapt=True, outer="query", reduce="mean", only_last=False, second_order=False, steps_fixed=None,
                sign=1.0):
    def gradient(params, batch, loss_fn, inner_lr, steps):
        sx, sy, qx, qy = batch
        indices = [len(sx) - 1] if only_last else range(len(sx))
        theta = {k: v.clone().requires_grad_() for k, v in params.items()}
        total = {k: torch.zeros_like(v) for k, v in params.items()}
        for i in indices:
            phi = theta
            for _ in range((steps if steps_fixed is None else steps_fixed) if adapt else 0):
                grads = torch.autograd.grad(loss_fn(phi, sx[i], sy[i]), list(phi.values()), create_graph=second_order)
                phi = {k: v - inner_lr * g for (k, v), g in zip(phi.items(), grads)}
            x, y = (qx[i], qy[i]) if outer == "query" else (sx[i], sy[i])
            wrt = theta if second_order else {k: v.detach().requires_grad_() for k, v in phi.items()}
            loss = loss_fn(wrt if not second_order else phi, x, y)
            for k, g in zip(wrt, torch.autograd.grad(loss, list(wrt.values()))):
                total[k] = total[k] + sign * g
        scale = 1 / len(indices) if reduce == "mean" else 1.0
        return {k: v * scale for k, v in total.items()}
    return gradient


def mean_of(adapted, k):
    return torch.stack([phi[k] for phi in adapted]).mean(0)


def reptile_in_place(theta, adapted, epsilon):
    for k, v in theta.items():
        v.add_(epsilon * (mean_of(adapted, k) - v))
    return theta


WRONG_04 = [
    # (check, wrong implementation, words the message must contain)
    (checks.check_inner_update, inner_update_with(create_graph=False), "no create_graph"),
    (checks.check_inner_update, inner_update_with(create_graph=True), "first_order=True must drop the Hessian"),
    (checks.check_inner_update, inner_update_with(sign=1.0), "wrong sign"),
    (checks.check_inner_update, inner_update_with(lr_used=False), "learning rate"),
    (checks.check_inner_update, inner_update_with(detach_phi=True), "cut off from theta"),
    (checks.check_inner_update, inner_update_with(in_place=True), "in place"),
    (checks.check_inner_update, inner_update_with(return_update=True), "not the update"),
    (checks.check_inner_update, inner_update_with(detach_always=True), "no create_graph"),
    (checks.check_inner_update, lambda p, loss, lr, fo: list(inner_update(p, loss, lr, fo).values()), "dict"),
    (checks.check_reptile_update, lambda t, a, e: {k: v - e * (mean_of(a, k) - v) for k, v in t.items()}, "TOWARDS"),
    (checks.check_reptile_update, lambda t, a, e: {k: mean_of(a, k) for k in t}, "all the way"),
    (checks.check_reptile_update, lambda t, a, e: {k: v + e * (a[-1][k] - v) for k, v in t.items()}, "ALL tasks"),
    (checks.check_reptile_update, lambda t, a, e: {k: v + e * (sum(phi[k] for phi in a) - v) for k, v in t.items()},
     "MEAN"),
    (checks.check_reptile_update, lambda t, a, e: {k: v + e * sum(phi[k] - v for phi in a) for k, v in t.items()},
     "not the sum"),
    (checks.check_reptile_update, lambda t, a, e: {k: e * (mean_of(a, k) - v) for k, v in t.items()},
     "not the update"),
    (checks.check_reptile_update, reptile_in_place, "in place"),
    (checks.check_first_order_meta_gradient, fomaml_with(second_order=True), "second-order"),
    (checks.check_first_order_meta_gradient, fomaml_with(adapt=False), "ADAPTED"),
    (checks.check_first_order_meta_gradient, fomaml_with(outer="support"), "QUERY"),
    (checks.check_first_order_meta_gradient, fomaml_with(reduce="sum"), "MEAN"),
    (checks.check_first_order_meta_gradient, fomaml_with(only_last=True), "every task"),
    (checks.check_first_order_meta_gradient, fomaml_with(steps_fixed=1), "steps"),
    (checks.check_first_order_meta_gradient, fomaml_with(sign=-1.0), "wrong sign"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_inner_update, inner_update), (checks.check_reptile_update, reptile_update),
     (checks.check_first_order_meta_gradient, first_order_meta_gradient)],
    ids=["inner_update", "reptile_update", "first_order_meta_gradient"],
)
def test_notebook_04_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-04 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_04, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG_04)])
def test_notebook_04_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_notebook_04_placeholders_are_reported_as_not_done():
    def placeholder(*args):
        raise NotImplementedError("Exercise: write this part")

    for check in (checks.check_inner_update, checks.check_reptile_update, checks.check_first_order_meta_gradient):
        with pytest.raises(NotImplementedError):
            check(placeholder)


def test_notebook_04_checks_agree_with_the_library():
    """course_lib.maml's own inner loop and Reptile direction pass the checks (the notebook shows those lines)."""
    from course_lib import maml

    def library_inner_update(params, loss, lr, first_order):  # one step of maml.inner_adapt, autograd backend
        return maml.inner_adapt(params, None, None, 1, lr, lambda p, x, y: loss, first_order=first_order,
                                backend="autograd")

    checks.check_inner_update(library_inner_update)

    def library_reptile_update(theta, adapted, epsilon):  # theta - epsilon * (theta - mean phi), as SGD would do
        direction = {k: v - torch.stack([phi[k] for phi in adapted]).mean(0) for k, v in theta.items()}
        return {k: v - epsilon * direction[k] for k, v in theta.items()}

    checks.check_reptile_update(library_reptile_update)

    # The notebook's first-order meta-gradient is the library's FOMAML meta-gradient.
    params = maml.mlp_init((1, 8, 8, 1), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    (sx, sy, qx, qy), _ = maml.sinusoid_batch(torch.Generator().manual_seed(1), 3, 5, 5, torch.device("cpu"))
    batch = tuple(v.double() for v in (sx, sy, qx, qy))
    theta = {k: v.clone().requires_grad_() for k, v in params.items()}
    loss, _ = maml.meta_loss(theta, batch, variant="fomaml", steps=2, inner_lr=0.05, forward=maml.mlp_forward,
                             regression=True)
    library = dict(zip(theta, torch.autograd.grad(loss, list(theta.values()))))
    ours = first_order_meta_gradient(params, batch, lambda p, x, y: ((maml.mlp_forward(p, x) - y) ** 2).mean(),
                                     0.05, 2)
    assert all(torch.allclose(ours[k], library[k], atol=1e-10) for k in params)
