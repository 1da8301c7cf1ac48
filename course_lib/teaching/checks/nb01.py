"""Checks for the exercises of notebook 01: supervised learning."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, fail_if, passed, run_for_tensor, run_student


def check_cross_entropy(cross_entropy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``cross_entropy(logits [B, C], labels [B]) -> mean of -log softmax(logits)[i, labels[i]]``."""
    name = "check_cross_entropy"
    value = run_for_tensor(name, cross_entropy, torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))
    fail_if(name, value.shape != (),
            f"return one number (the mean over the batch), not shape {tuple(value.shape)}")
    fail_if(name, close(value, 4 * math.log(3)), "you summed the losses of the batch: take the mean instead")
    fail_if(name, close(value, -math.log(3)), "wrong sign: the loss is -log p(label), which is >= 0")
    fail_if(name, any(close(value, p) for p in (1 / 3, -1 / 3, 2 / 3)),
            "use the log of the softmax probability, not the probability itself")
    fail_if(name, not close(value, math.log(3)),
            f"with all logits equal the loss is log(C) = {math.log(3):.4f}, you returned {float(value):.4f}")
    logits, labels = torch.tensor([[0.0, 5.0], [5.0, 0.0]]), torch.tensor([0, 1])
    value = run_student(name, cross_entropy, logits, labels)
    fail_if(name, not close(value, F.cross_entropy(logits, labels)),
            "take each example's probability at its own label: logits[i, labels[i]] "
            "(both examples here have a wrong top class, so the loss must be large)")
    value = run_for_tensor(name, cross_entropy, torch.tensor([[1000.0, 0.0, -1000.0]]), torch.tensor([0]))
    fail_if(name, not torch.isfinite(value).all(), "logits of size 1000 give inf or nan: compute log-softmax "
                                                   "stably (subtract the max, or use torch.logsumexp)")
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(16, 10, generator=generator), torch.randint(10, (16,), generator=generator)
    value = run_student(name, cross_entropy, logits, labels)
    fail_if(name, not close(value, F.cross_entropy(logits, labels)),
            "a random batch does not match the reference cross-entropy")
    passed(name, 4)


def check_sgd_step(sgd_step: Callable[[list, list, float], list]) -> None:
    """``sgd_step(params, grads, lr) -> [p - lr * g for each pair]``, leaving params unchanged."""
    name = "check_sgd_step"
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    grads = [torch.tensor([0.5, 1.0]), torch.tensor([[-2.0]])]
    kept = [p.clone() for p in params]
    lr = 0.1
    new = run_student(name, sgd_step, params, grads, lr)
    fail_if(name, not all(torch.equal(p, k) for p, k in zip(params, kept)),
            "you changed the parameters in place: return new tensors and leave the inputs as they were")
    fail_if(name, not isinstance(new, (list, tuple)) or len(new) != len(params),
            f"return a list with one new tensor per parameter ({len(params)} here)")
    for p, g, n in zip(params, grads, new):
        fail_if(name, n.shape != p.shape,
                f"a new parameter has shape {tuple(n.shape)}, the old one {tuple(p.shape)}")
        fail_if(name, torch.allclose(n, p + lr * g), "wrong sign: step against the gradient, theta - lr * grad")
        fail_if(name, torch.allclose(n, p - g), "multiply the gradient by the learning rate")
        fail_if(name, torch.allclose(n, -lr * g) or torch.allclose(n, g),
                "return the updated parameters, not the update or the gradient")
        fail_if(name, not torch.allclose(n, p - lr * g), "the new value must be theta - lr * grad")
    passed(name, len(params))


def check_k_per_class(k_per_class: Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]) -> None:
    """``k_per_class(labels, k, generator) -> indices``: exactly k random, distinct examples of every class."""
    name = "check_k_per_class"
    labels = torch.arange(4).repeat_interleave(6)[torch.randperm(24, generator=torch.Generator().manual_seed(1))]
    picks = []
    for seed in range(5):
        index = run_for_tensor(name, k_per_class, labels, 2, torch.Generator().manual_seed(seed))
        fail_if(name, index.dtype not in (torch.int64, torch.int32) or index.ndim != 1,
                f"return a 1-D tensor of integer indices, got {index.dtype} of shape {tuple(index.shape)}")
        fail_if(name, len(index) and (index.min() < 0 or index.max() >= len(labels)),
                "an index is outside 0..len(labels)-1")
        fail_if(name, index.unique().numel() != index.numel(),
                "an example was chosen twice: draw without replacement within each class")
        counts = torch.bincount(labels[index], minlength=4)
        fail_if(name, counts.sum() == 2,
                "k means k examples *per class* (here 2 x 4 classes = 8), not k in total")
        fail_if(name, not torch.all(counts == 2),
                f"examples per class {counts.tolist()}, want exactly k = 2 of each of the 4 classes")
        picks.append(sorted(index.tolist()))
    fail_if(name, all(p == picks[0] for p in picks),
            "every seed gives the same examples: choose them at random with the generator")
    passed(name, len(picks))
