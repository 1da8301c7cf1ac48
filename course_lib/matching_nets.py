"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016).

Introduced in notebook 03 (metric-based meta-learning). The prediction for a
query ``x`` is an **attention-weighted vote of the support labels**,

    p(y | x, S) = sum_j a(x, x_j) onehot(y_j),
    a(x, x_j) = softmax_j( cos(f(x), g(x_j)) / temperature ),

where ``f = g`` is a :class:`~course_lib.models.Conv4` embedding (the version
without "full context embeddings", which is the one Vinyals et al. report on
Omniglot). It is a differentiable, *soft* nearest neighbour: the attention
weights over the support set sum to one (:func:`attention`), and training
episodically on the log-probability of the query labels shapes the
embedding so that this soft neighbour is right. Compare
:mod:`course_lib.protonet`: one prototype per class and a squared Euclidean
distance instead of every support example and a cosine.

Training reuses :func:`course_lib.protonet.train_episodic` (same sampler,
optimiser, checkpoints, resume) with :func:`episode_loss` below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .episodes import Episode
from .models import Conv4
from .protonet import FewShotModel


@dataclass
class MatchingNetConfig:
    """A Matching Networks run (Omniglot protocol of Vinyals et al.: Vinyals split,
    28x28, rotations, Conv4-64; trained on episodes like the ones it is tested on)."""

    protocol: str = "vinyals"
    rotations: bool = True
    image_size: int = 28
    hidden: int = 64
    distance: str = "cosine"  # the paper's; "euclidean" uses -||f(x) - g(x_j)||^2
    temperature: float = 1.0  # the paper uses none (1.0)
    ways: int = 5
    shots: int = 1
    queries: int = 15
    steps: int = 20000
    lr: float = 1e-3
    lr_halve_every: int = 2000
    seed: int = 0
    channels_last: bool = True


def similarities(z_query: torch.Tensor, z_support: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """``[n_query, n_support]``: cosine similarity (or negative squared distance)."""
    if distance == "cosine":
        return F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T
    if distance == "euclidean":
        return -torch.cdist(z_query, z_support).pow(2)
    raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")


def attention(z_query: torch.Tensor, z_support: torch.Tensor, distance: str = "cosine",
              temperature: float = 1.0) -> torch.Tensor:
    """``a[q, j] = softmax_j(sim(z_q, z_j) / temperature)``: each row sums to one."""
    return torch.softmax(similarities(z_query, z_support, distance) / temperature, dim=1)


def label_probabilities(a: torch.Tensor, support_y: torch.Tensor, ways: int) -> torch.Tensor:
    """``p[q, k] = sum_j a[q, j] [y_j = k]``: the attention mass on each class."""
    return a @ F.one_hot(support_y, ways).to(a.dtype)


class MatchingNet(FewShotModel):
    """A few-shot classifier: ``predict(support_x, support_y, query_x) -> log p(y | x, S)``."""

    score_kind = "logits"

    def __init__(self, config: MatchingNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or MatchingNetConfig()
        self.encoder = Conv4(in_channels=1, hidden=self.config.hidden, image_size=self.config.image_size)
        if self.config.channels_last:  # weights and inputs in NHWC: about 2x faster convolutions on CPUs
            self.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x)

    def attention(self, support_x, query_x) -> torch.Tensor:
        z = self.embed(torch.cat([support_x, query_x]))
        return attention(z[len(support_x):], z[: len(support_x)], self.config.distance, self.config.temperature)

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        device = next(self.parameters()).device
        support_x, support_y, query_x = support_x.to(device), support_y.to(device), query_x.to(device)
        ways = int(support_y.max()) + 1
        p = label_probabilities(self.attention(support_x, query_x), support_y, ways)
        return torch.log(p.clamp_min(1e-12))  # log-probabilities: the argmax is the prediction



def episode_loss(model: nn.Module, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
    """``-mean log p(y_q | x_q, S)`` over the queries, and the query accuracy."""
    log_p = model(episode.support_x, episode.support_y, episode.query_x)
    loss = F.nll_loss(log_p, episode.query_y)
    return loss, (log_p.argmax(-1) == episode.query_y).float().mean()
