"""Supervised learning, the learning algorithm people design: SGD on the cross-entropy.

Notebook 01's baseline for every meta-learned algorithm, run by the course's one training loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import LabelledImages
from .models import eval_mode
from .runs import History, train_loop


def classification_accuracy(model: torch.nn.Module, data: LabelledImages, device, batch_size: int = 1000) -> float:
    """Fraction of ``data`` that ``model`` labels correctly (eval mode, no grad)."""
    correct = 0
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(data), batch_size):
            x = data.images[start : start + batch_size].to(device)
            y = data.labels[start : start + batch_size].to(device)
            correct += (model(x).argmax(dim=-1) == y).sum().item()
    return correct / max(len(data), 1)


def train_classifier(model: torch.nn.Module, train: LabelledImages, *, steps: int, device: torch.device | str,
                     lr: float = 0.1, momentum: float = 0.0, batch_size: int = 64,
                     held_out: LabelledImages | None = None, eval_every: int = 100,
                     generator: torch.Generator | None = None, progress: bool = True,
                     desc: str = "SGD on cross-entropy") -> History:
    """Minibatch SGD on the cross-entropy: ``theta <- theta - lr * grad (1/B) sum_i -log p_theta(y_i | x_i)``.

    Logs ``loss`` and ``train_accuracy`` (on the minibatch) each step and, with
    ``held_out``, ``held_out_accuracy`` every ``eval_every`` steps.
    """
    device = torch.device(device)
    model.to(device).train()
    images, labels = train.images.to(device), train.labels.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    batch_size = min(batch_size, len(train))

    def step(_: int) -> dict[str, float]:
        batch = torch.randint(len(images), (batch_size,), generator=generator).to(device)
        logits = model(images[batch])
        loss = F.cross_entropy(logits, labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = (logits.argmax(-1) == labels[batch]).float().mean()
        return {"loss": loss.item(), "train_accuracy": accuracy.item()}

    def evaluate() -> dict[str, float]:
        return {"held_out_accuracy": classification_accuracy(model, held_out, device)}

    return train_loop(step, steps, evaluate=evaluate if held_out is not None else None, eval_every=eval_every,
                      desc=desc, progress=progress)
