"""course_lib.supervised: SGD on the cross-entropy, checked against hand-computed updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import supervised
from course_lib.data import LabelledImages
from course_lib.models import MLP, Conv4


# --------------------------------------------------------------------------
# train_classifier
# --------------------------------------------------------------------------


def blobs(n_per_class: int, seed: int) -> LabelledImages:
    """Three well-separated 2-D Gaussian blobs, as [n, 1, 1, 2] 'images'."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 2.0], [0.0, -3.0]])
    labels = torch.arange(3).repeat_interleave(n_per_class)
    points = centres[labels] + 0.5 * torch.randn(len(labels), 2, generator=generator)
    return LabelledImages(points.view(-1, 1, 1, 2), labels, ["a", "b", "c"])


def test_train_classifier_learns_separable_data():
    """SGD on cross-entropy reaches near-perfect accuracy on separable blobs, loss decreasing."""
    torch.manual_seed(0)
    model = MLP(2, (16,), 3)
    train, held_out = blobs(50, seed=1), blobs(30, seed=2)
    history = supervised.train_classifier(
        model, train, steps=150, device="cpu", lr=0.1, batch_size=32, held_out=held_out, eval_every=50,
        generator=torch.Generator().manual_seed(0), progress=False,
    )
    losses = history["loss"][1]
    assert len(losses) == 150
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:20])
    assert history["held_out_accuracy"][0] == [49, 99, 149]
    assert history.last("held_out_accuracy") >= 0.95
    assert supervised.classification_accuracy(model, held_out, "cpu") >= 0.95
    assert model.training  # left in training mode


def test_classification_accuracy_counts_correct_predictions():
    """classification_accuracy = (number of argmax hits) / n, over several batches, mode restored."""
    data = LabelledImages(torch.zeros(5, 1, 1, 1), torch.tensor([0, 1, 1, 0, 1]), ["a", "b"])

    class AlwaysOne(nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0]]).expand(len(x), 2)

    model = AlwaysOne().eval()
    assert supervised.classification_accuracy(model, data, "cpu", batch_size=2) == pytest.approx(3 / 5)
    assert not model.training


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_one_sgd_step_matches_hand_computed_update():
    """One train_classifier step on a linear model equals W -= lr (p - e_y) x^T, b -= lr (p - e_y)."""
    W0 = np.array([[0.1, -0.2], [0.3, 0.0], [-0.1, 0.2]])
    b0 = np.array([0.0, 0.1, -0.1])
    x, y, lr = np.array([1.0, 2.0]), 2, 0.5
    # all examples identical: whatever minibatch is drawn, the mean gradient is this one's
    data = LabelledImages(torch.tensor(x, dtype=torch.float32).view(1, 1, 1, 2).repeat(4, 1, 1, 1),
                          torch.full((4,), y), ["a", "b", "c"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(W0))
        model[1].bias.copy_(torch.tensor(b0))

    history = supervised.train_classifier(model, data, steps=1, device="cpu", lr=lr, progress=False)

    p = softmax(W0 @ x + b0)
    residual = p - np.eye(3)[y]
    expected_W = W0 - lr * np.outer(residual, x)
    expected_b = b0 - lr * residual
    np.testing.assert_allclose(model[1].weight.detach().numpy(), expected_W, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model[1].bias.detach().numpy(), expected_b, rtol=0, atol=1e-6)
    assert history.last("loss") == pytest.approx(-math.log(p[y]), abs=1e-6)
    assert history.last("train_accuracy") == float(np.argmax(p) == y)


def test_two_momentum_steps_match_hand_computed_update():
    """With momentum m, the second step moves by lr (m g1 + g2) (PyTorch's SGD convention)."""
    W0, b0 = np.array([[0.2, -0.1], [0.0, 0.3]]), np.array([0.05, -0.05])
    x, y, lr, m = np.array([0.5, -1.0]), 0, 0.3, 0.9
    data = LabelledImages(torch.tensor(x, dtype=torch.float32).view(1, 1, 1, 2).repeat(3, 1, 1, 1),
                          torch.full((3,), y), ["a", "b"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(W0))
        model[1].bias.copy_(torch.tensor(b0))
    supervised.train_classifier(model, data, steps=2, device="cpu", lr=lr, momentum=m, progress=False)

    def gradients(W, b):
        residual = softmax(W @ x + b) - np.eye(2)[y]
        return np.outer(residual, x), residual

    gW1, gb1 = gradients(W0, b0)
    W1, b1 = W0 - lr * gW1, b0 - lr * gb1
    gW2, gb2 = gradients(W1, b1)
    W2, b2 = W1 - lr * (m * gW1 + gW2), b1 - lr * (m * gb1 + gb2)
    np.testing.assert_allclose(model[1].weight.detach().numpy(), W2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model[1].bias.detach().numpy(), b2, rtol=0, atol=1e-6)
