"""Matching Networks (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016), notebook 03.

The prediction for a query ``x`` is an **attention-weighted vote of the support labels**,

    p(y | x, S) = sum_j a(x, x_j) onehot(y_j),    a(x, x_j) = softmax_j( cos(f(x), g(x_j)) / temperature ),

with ``f = g`` a :class:`~course_lib.models.Conv4` (no "full context embeddings", as
reported on Omniglot): a differentiable, *soft* nearest neighbour over every support
example, where :mod:`course_lib.protonet` has one prototype per class. Training is
ProtoNet's step with :func:`episode_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import protonet
from .episodes import Episode
from .models import count_parameters
from .protonet import FewShotModel
from .runs import RunSpec


@dataclass
class MatchingNetConfig:
    """A Matching Networks run (the Omniglot protocol of Vinyals et al.; trained on test-like episodes)."""

    protocol: str = "vinyals"
    rotations: bool | None = None  # default: on for the vinyals protocol
    image_size: int = 28
    hidden: int = 64
    distance: str = "cosine"  # the paper's; "euclidean" uses -||f(x) - g(x_j)||^2
    temperature: float = 1.0  # the paper uses none (1.0)
    ways: int = 5
    shots: int = 1
    queries: int = 15
    steps: int = 20000
    meta_lr: float = 1e-3
    lr_halve_every: int = 2000
    seed: int = 0
    channels_last: bool = True

    def __post_init__(self) -> None:
        protonet.check_episode_config(self)
        if self.distance not in ("cosine", "euclidean"):
            raise ValueError(f"distance must be 'cosine' or 'euclidean', got {self.distance!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


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
        super().__init__(config or MatchingNetConfig())

    def attention(self, support_x: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        z_support, z_query = self.embed_episode(support_x, query_x)
        return attention(z_query, z_support, self.config.distance, self.config.temperature)

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        a = self.attention(support_x, query_x)
        p = label_probabilities(a, support_y.to(a.device), int(support_y.max()) + 1)
        return torch.log(p.clamp_min(1e-12))  # log-probabilities: the argmax is the prediction


def episode_loss(model: nn.Module, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
    """``-mean log p(y_q | x_q, S)`` over the queries, and the query accuracy."""
    log_p = model(episode.support_x, episode.support_y, episode.query_x)
    loss = F.nll_loss(log_p, episode.query_y)
    return loss, (log_p.argmax(-1) == episode.query_y).float().mean()


# The face the registry reads (course_lib.registry): ProtoNet's, with this loss

Config, build = MatchingNetConfig, MatchingNet
PAPER = {  # Omniglot, Vinyals protocol (Vinyals et al. 2016, Table 1)
    "5-way 1-shot": 0.981, "5-way 5-shot": 0.989, "20-way 1-shot": 0.938, "20-way 5-shot": 0.985,
}
CONFIDENCE_CAP = ("a softmax over unscaled cosines cannot be confident (at most p ≈ 0.65 for 5 classes; "
                  "`data/matching_nets/README.md`): the temperature-0.1 rows below show what scaling recovers")


def _scaled(ways: int, queries: int, capstone: str = "") -> RunSpec:
    """A run with the cosine / 0.1 of ``--temperature 0.1``, trained on ``ways``-way 1-shot episodes."""
    return RunSpec(f"data/matching_nets/{ways}way_1shot_scaled", "Matching Networks, cosine / 0.1",
                   ("--ways", str(ways), "--shots", "1", "--queries", str(queries), "--temperature", "0.1",
                    "--steps", "20000"), ("--steps", "3"), job=f"matching_{ways}w1s",
                   trained_on=f"same data, cosine attention with temperature 0.1 (not in the paper), {ways}-way "
                              "1-shot training",
                   differs=f"one {ways}-way 1-shot model is tested in all four settings, where the paper trained "
                           "one per setting", explains_own_setting=False, capstone=capstone)


RUNS = (
    RunSpec("data/matching_nets/5way_1shot", "Matching Networks",
            trained_on="same data, cosine attention, 5-way 1-shot training", differs=CONFIDENCE_CAP,
            capstone="matching-net"),
    _scaled(5, queries=15, capstone="matching-net-scaled"),
    RunSpec("data/matching_nets/20way_1shot", "Matching Networks", trained_on="same data, 20-way 1-shot training",
            differs=CONFIDENCE_CAP),
    _scaled(20, queries=5),
)
load_data, evaluate, evaluation_details, predictor = (protonet.load_data, protonet.evaluate,
                                                      protonet.evaluation_details, protonet.predictor)


def capstone_row(run: RunSpec, model: MatchingNet, payload: dict) -> dict:
    """What the capstone's table says about a run; the numbers fitted to a task are the support embeddings."""
    return {"trained_on": protonet.training_data(model.config), "family": "metric",
            "meta_parameters": count_parameters(model),
            "learned_variables": lambda ways, shots: ways * shots * model.config.hidden,
            "note": f"{run.folder}; learned variables: the support embeddings"}


def trainer(model, config, data, device="cpu"):
    return protonet.trainer(model, config, data, device, loss_fn=episode_loss)


def describe(config) -> str:
    scale = "" if config.temperature == 1.0 else f" / {config.temperature:g}"
    return (f"Omniglot ({config.protocol} split{', rotations' if config.rotations else ''}), Conv4-{config.hidden}, "
            f"{config.distance}{scale} attention, {config.ways}-way {config.shots}-shot training")
