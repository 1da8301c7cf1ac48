"""Networks shared across notebooks (notebook 01 onwards).

``Conv4`` is the standard few-shot backbone (Vinyals et al. 2016; Snell et al. 2017;
Finn et al. 2017): four blocks of 3x3 convolution, batch norm, ReLU and 2x2 max-pooling.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(), nn.MaxPool2d(2))


class Conv4(nn.Module):
    """Four conv blocks, flattened; with ``num_classes`` a linear head on top.

    ``Conv4(in_channels=1, hidden=64)`` on ``[B, 1, 28, 28]`` gives ``[B, 64]``
    embeddings (28 -> 14 -> 7 -> 3 -> 1 pixels).
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, num_classes: int | None = None,
                 image_size: int = 28) -> None:
        super().__init__()
        side = image_size // 16  # each of the four blocks halves the side (floor)
        if side < 1:
            raise ValueError(f"Conv4 needs images of at least 16x16 pixels, got {image_size}")
        self.embedding_dim = hidden * side * side
        blocks = [conv_block(in_channels, hidden)] + [conv_block(hidden, hidden) for _ in range(3)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(self.embedding_dim, num_classes) if num_classes is not None else None
        self.num_classes = num_classes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(start_dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        return self.head(z) if self.head is not None else z


class MLP(nn.Sequential):
    """Flatten, then ``Linear -> ReLU`` for each hidden size, then a linear output."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = (in_features, *hidden)
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], out_features))
        super().__init__(*layers)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (the quantity the variable-ratio tables use)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode inside the block (batch norm uses its running statistics), then as it was."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
