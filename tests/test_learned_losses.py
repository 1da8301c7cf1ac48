"""course_lib.learned_losses: oracle tests of the learned objective's inner and outer loops."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import learned_losses as ll
from course_lib import models, supervised
from course_lib.data import LabelledImages, load_digits
from course_lib.episodes import stack_tasks


@pytest.fixture(scope="module")
def digits() -> LabelledImages:
    return load_digits()


def small_config(**changes) -> ll.LearnedLossConfig:
    base = dict(hidden_size=8, ways=3, classifier_hidden=5, inner_steps=4, inner_lr=0.3, inner_batch_size=None,
                tasks_per_batch=2)
    return dataclasses.replace(ll.LearnedLossConfig(), **{**base, **changes})


# --------------------------------------------------------------------------
# Tasks and noise
# --------------------------------------------------------------------------


def test_symmetric_noise_flips_to_another_class_at_the_rate_asked():
    labels = torch.arange(5).repeat(4000)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(ll.symmetric_noise(labels, 0.0, 5, generator), labels)
    flipped = ll.symmetric_noise(labels, 1.0, 5, generator)
    assert (flipped != labels).all() and flipped.min() >= 0 and flipped.max() <= 4
    noisy = ll.symmetric_noise(labels, 0.3, 5, generator)
    assert abs((noisy != labels).float().mean().item() - 0.3) < 0.02
    # the wrong label is uniform over the 4 other classes
    wrong = noisy[(noisy != labels) & (labels == 0)]
    counts = torch.bincount(wrong, minlength=5)[1:].float()
    assert counts.min() / counts.max() > 0.8


def test_noisy_label_tasks(digits):
    tasks = ll.NoisyLabelTasks(digits, ways=4, train_per_class=10, test_per_class=5, noise=0.5)
    task = tasks.sample(torch.Generator().manual_seed(1))
    assert task.train_x.shape == (40, 64) and task.test_x.shape == (20, 64)
    assert torch.equal(task.clean_train_y, torch.arange(4).repeat_interleave(10))
    assert torch.equal(task.test_y, torch.arange(4).repeat_interleave(5))
    assert 0 < (task.train_y != task.clean_train_y).sum() < 40
    assert math.isclose(task.noise_rate.item(), 0.5)
    assert task.classes.shape == (4,) and task.classes.unique().numel() == 4
    # task label j is dataset class classes[j]: the clean labels point at the right images
    for j, c in enumerate(task.classes.tolist()):
        members = tasks.features[digits.labels == c]
        assert (torch.cdist(task.train_x[task.clean_train_y == j], members) == 0).any(dim=1).all()
    # no test image is also a training image
    assert not (torch.cdist(task.train_x, task.test_x) == 0).any()
    # same seed, same task; a noise range gives rates inside it
    again = tasks.sample(torch.Generator().manual_seed(1))
    assert torch.equal(again.train_y, task.train_y) and torch.equal(again.train_x, task.train_x)
    ranged = ll.NoisyLabelTasks(digits, noise=(0.2, 0.6)).fixed_tasks(20, seed=0)
    rates = torch.stack([t.noise_rate for t in ranged])
    assert rates.min() >= 0.2 and rates.max() <= 0.6 and rates.std() > 0.05
    with pytest.raises(ValueError):
        ll.NoisyLabelTasks(digits, noise=1.0)


# --------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------


def test_learned_loss_starts_as_the_cross_entropy():
    torch.manual_seed(0)
    loss = ll.LearnedLoss(16)
    logits, labels = 3 * torch.randn(7, 11, 5), torch.randint(5, (7, 11))
    torch.testing.assert_close(loss(logits, labels), ll.cross_entropy(logits, labels))
    torch.testing.assert_close(ll.cross_entropy(logits, labels).mean(),
                               F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1)))


def test_loss_curve_of_the_cross_entropy():
    """-log p relative to p = 1, and weight -dL/dlog p = 1 everywhere."""
    p = torch.tensor([0.01, 0.3, 1.0])
    values, weight = ll.loss_curve(None, p)
    torch.testing.assert_close(values, -torch.log(p))
    torch.testing.assert_close(weight, torch.ones(3))
    values, weight = ll.loss_curve(ll.LearnedLoss(4), p)  # at initialisation: the same curve
    torch.testing.assert_close(values, -torch.log(p))
    torch.testing.assert_close(weight, torch.ones(3))


# --------------------------------------------------------------------------
# Oracle: the inner loop with L_omega = cross-entropy is ordinary training
# --------------------------------------------------------------------------


def one_task(digits, seed=0, ways=3, per_class=30):
    tasks = ll.NoisyLabelTasks(digits, ways=ways, train_per_class=per_class, test_per_class=5, noise=0.3)
    return stack_tasks([tasks.sample(torch.Generator().manual_seed(seed))])


def theta_of(model: models.MLP) -> torch.Tensor:
    """models.MLP's weights in the functional layout (W as [in, out], then b, per layer)."""
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    return torch.cat([torch.cat([m.weight.T.flatten(), m.bias]) for m in linears])[None]


@pytest.mark.parametrize("loss_name", ["cross_entropy", "learned_loss_at_init"])
def test_inner_loop_with_cross_entropy_reproduces_train_classifier(digits, loss_name):
    """inner_train(L_omega = CE) == course_lib.supervised.train_classifier (SGD on CE, same minibatches), float64."""
    task = one_task(digits)
    torch.manual_seed(3)
    model = models.MLP(64, (6,), 3).double()
    theta0 = theta_of(model).detach()
    shapes = ll.classifier_shapes(64, 6, 3)
    loss_fn = ll.cross_entropy if loss_name == "cross_entropy" else ll.LearnedLoss(8).double()
    x = task.train_x.double()
    theta = ll.inner_train(loss_fn, theta0, x, task.train_y, shapes, steps=25, lr=0.4, batch_size=16,
                           generator=torch.Generator().manual_seed(7), create_graph=False)

    train_set = LabelledImages(x[0].reshape(-1, 1, 8, 8), task.train_y[0], ["a", "b", "c"])
    supervised.train_classifier(model, train_set, steps=25, device="cpu", lr=0.4, batch_size=16,
                              generator=torch.Generator().manual_seed(7), progress=False)
    torch.testing.assert_close(theta, theta_of(model).detach(), rtol=1e-10, atol=1e-12)
    assert (theta - theta0).abs().max() > 1e-2  # training moved the weights


def test_inner_loop_batches_tasks_independently(digits):
    """Two tasks trained together == each trained alone (same minibatch positions)."""
    tasks = [one_task(digits, seed=s) for s in (0, 1)]
    both = stack_tasks(tasks)  # each is a batch of one: [2, 1, n, d]
    x, y = both.train_x[:, 0], both.train_y[:, 0]
    shapes = ll.classifier_shapes(64, 5, 3)
    theta0 = ll.init_classifier(shapes, 2, torch.Generator().manual_seed(0))
    together = ll.inner_train(ll.cross_entropy, theta0, x, y, shapes, steps=10, lr=0.5, batch_size=8,
                              generator=torch.Generator().manual_seed(1), create_graph=False)
    for b in range(2):
        alone = ll.inner_train(ll.cross_entropy, theta0[b : b + 1], x[b : b + 1], y[b : b + 1], shapes, steps=10,
                               lr=0.5, batch_size=8, generator=torch.Generator().manual_seed(1), create_graph=False)
        torch.testing.assert_close(together[b : b + 1], alone)


def test_a_different_loss_trains_differently(digits):
    """The oracle above can fail: a loss that is not the cross-entropy gives other weights."""
    task = one_task(digits)
    shapes = ll.classifier_shapes(64, 6, 3)
    theta0 = ll.init_classifier(shapes, 1, torch.Generator().manual_seed(0))
    run = lambda fn: ll.inner_train(fn, theta0, task.train_x, task.train_y, shapes, steps=10, lr=0.4,  # noqa: E731
                                    batch_size=16, generator=torch.Generator().manual_seed(7), create_graph=False)
    mae = lambda logits, y: 1 - ll.given_label_log_prob(logits, y).exp()  # noqa: E731
    assert not torch.allclose(run(ll.cross_entropy), run(mae), atol=1e-4)


# --------------------------------------------------------------------------
# Oracle: the outer (meta-)gradient matches finite differences
# --------------------------------------------------------------------------


def test_meta_gradient_through_the_inner_loop_matches_finite_differences(digits):
    """d/domega of the clean held-out CE after 4 SGD steps on L_omega == central differences (float64)."""
    torch.manual_seed(0)
    config = small_config()
    loss = ll.LearnedLoss(config.hidden_size).double()
    with torch.no_grad():  # move away from the cross-entropy so that every part of omega matters
        for p in loss.parameters():
            p.add_(0.3 * torch.randn_like(p))
    tasks = ll.NoisyLabelTasks(digits, ways=3, train_per_class=6, test_per_class=4, noise=0.3)
    batch = stack_tasks(tasks.fixed_tasks(2, seed=4))
    shapes = ll.classifier_shapes(64, config.classifier_hidden, 3)
    theta0 = ll.init_classifier(shapes, 2, torch.Generator().manual_seed(0)).double()

    def outer():
        theta = ll.inner_train(loss, theta0, batch.train_x.double(), batch.train_y, shapes, steps=4, lr=0.3)
        ce, _ = ll.held_out_metrics(theta, dataclasses.replace(batch, test_x=batch.test_x.double()), shapes)
        return ce.mean()

    loss.zero_grad()
    outer().backward()
    exact = torch.cat([p.grad.flatten() for p in loss.parameters()])
    numeric = []
    eps = 1e-6
    for p in loss.parameters():
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            plus = outer().item()
            flat[i] = old - eps
            minus = outer().item()
            flat[i] = old
            numeric.append((plus - minus) / (2 * eps))
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert exact.abs().max() > 1e-4
    torch.testing.assert_close(exact, numeric, rtol=1e-5, atol=1e-8)


# --------------------------------------------------------------------------
# Outer loop, evaluation, tuning
# --------------------------------------------------------------------------


def test_meta_training_runs_logs_and_changes_phi(digits):
    config = small_config(inner_batch_size=6)
    tasks = ll.NoisyLabelTasks(digits, ways=3, train_per_class=6, test_per_class=4, noise=(0.2, 0.6))
    loss = ll.LearnedLoss(config.hidden_size)
    before = [p.detach().clone() for p in loss.parameters()]
    history = ll.meta_train_loss(loss, tasks, config, 3, progress=False)
    assert len(history["meta_loss"][1]) == 3 and len(history["held_out_accuracy"][1]) == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, loss.parameters()))


def test_evaluate_loss_is_paired_and_counts_memorised_noise(digits):
    config = small_config(inner_steps=30, inner_lr=0.5)
    tasks = ll.NoisyLabelTasks(digits, ways=3, train_per_class=10, test_per_class=10, noise=0.4)
    a = ll.evaluate_loss(ll.cross_entropy, tasks, config, count=6, seed=3, chunk=4)
    b = ll.evaluate_loss(ll.LearnedLoss(8), tasks, config, count=6, seed=3, chunk=4)  # CE at init: same runs
    torch.testing.assert_close(a["accuracy"], b["accuracy"])
    other = ll.evaluate_loss(ll.cross_entropy, tasks, config, count=6, seed=4, chunk=4)
    assert not torch.equal(a["accuracy"], other["accuracy"])
    assert a["accuracy"].shape == (6,) and ((a["accuracy"] >= 0) & (a["accuracy"] <= 1)).all()
    assert ((a["wrong_labels_fitted"] >= 0) & (a["wrong_labels_fitted"] <= 1)).all()
    assert a["accuracy"].mean() > 0.5  # 3-way, better than chance (1/3) despite 40 % noise


def test_tune_inner_lr_takes_the_grid_minimum(digits):
    config = small_config(inner_steps=10)
    tasks = ll.NoisyLabelTasks(digits, ways=3, train_per_class=6, test_per_class=4, noise=0.3)
    result = ll.tune_inner_lr(ll.cross_entropy, tasks, config, count=4, seed=0, grid=(0.01, 0.5))
    assert result["lr"] == min(result["scores"], key=result["scores"].get)
    direct = ll.evaluate_loss(ll.cross_entropy, tasks, config, count=4, seed=0, lr=0.5)["cross_entropy"].mean()
    assert result["scores"][0.5] == direct.item()


def test_variable_counts():
    config = ll.LearnedLossConfig()
    counts = ll.variable_counts(ll.LearnedLoss(config.hidden_size), config, inputs=64)
    H = config.hidden_size
    assert counts["meta_parameters"] == 2 + (2 * H + H) + (H * H + H) + H
    assert counts["learned_variables"] == 64 * 32 + 32 + 32 * 5 + 5
