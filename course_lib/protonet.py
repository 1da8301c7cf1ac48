"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017), notebook 03.

A :class:`~course_lib.models.Conv4` ``f_omega`` embeds images; each class of an
episode is represented by its **prototype**, the mean embedding of its support
examples, and a query is classified by a softmax over negative squared distances:

    c_k = 1/K sum_{j: y_j = k} f_omega(x_j),     p(y = k | x) = softmax_k( -||f_omega(x) - c_k||^2 ),

a *linear* classifier in embedding space (:func:`prototype_linear_layer`). Training
is *episodic*: each step minimises the query cross-entropy of an N-way K-shot
episode of meta-training classes, so the embedding is learned *for* the few-shot task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .baselines import DISTANCE_SCORES, setting_name
from .data import LabelledImages, omniglot_splits
from .episodes import Episode, FastEpisodeSampler, step_generator
from .evaluation import AccuracyResult, evaluate_few_shot
from .models import Conv4, count_parameters, eval_mode
from .runs import History, RunSpec, Trainer, train_loop


@dataclass
class ProtoNetConfig:
    """A ProtoNet run. Defaults: the Omniglot protocol of Snell et al. (Vinyals split, 28x28,
    rotations, Conv4-64; 60-way 5-shot 5-query episodes; Adam, lr 1e-3 halved every 2000 episodes)."""

    protocol: str = "vinyals"  # or "lake"
    rotations: bool | None = None  # rotations by 90 degrees as new classes; default: on for vinyals only
    image_size: int = 28
    hidden: int = 64
    distance: str = "euclidean"  # or "cosine"
    cosine_scale: float = 10.0  # logits = scale * cos for the cosine variant
    ways: int = 60
    shots: int = 5
    queries: int = 5
    steps: int = 20000
    meta_lr: float = 1e-3
    lr_halve_every: int = 2000
    seed: int = 0
    channels_last: bool = True  # faster convolutions on CPUs and recent GPUs

    def __post_init__(self) -> None:
        check_episode_config(self)
        if self.distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be 'euclidean' or 'cosine', got {self.distance!r}")


def check_episode_config(config) -> None:
    """The checks every episodic config shares (ProtoNet's and Matching Networks')."""
    if config.protocol not in ("vinyals", "lake"):
        raise ValueError(f"protocol must be 'vinyals' or 'lake', got {config.protocol!r}")
    if config.rotations is None:
        config.rotations = config.protocol == "vinyals"
    for name in ("image_size", "hidden", "shots", "queries", "lr_halve_every"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.ways < 2:
        raise ValueError(f"ways must be >= 2 (one class is no classification task), got {config.ways}")
    if config.steps < 0 or not config.meta_lr > 0:
        raise ValueError(f"steps must be >= 0 and meta_lr > 0, got steps={config.steps}, meta_lr={config.meta_lr}")


# The model and its loss


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """``[ways, d]``: ``c_k = mean of the support embeddings of class k``."""
    one_hot = F.one_hot(labels, ways).to(embeddings.dtype)  # [n_support, ways]
    return one_hot.T @ embeddings / one_hot.sum(0)[:, None]


def squared_euclidean(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``[n, ways]``: ``||z_i - c_k||^2`` (expanded form: fast, differentiable)."""
    return (z.pow(2).sum(1, keepdim=True) - 2 * z @ c.T + c.pow(2).sum(1)[None, :]).clamp_min(0)


def prototype_linear_layer(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``2 c_k`` and biases ``-||c_k||^2``: the linear classifier ProtoNet is."""
    return 2 * c, -c.pow(2).sum(1)


class FewShotModel(nn.Module):
    """A Conv4 embedding, called as ``model(support_x, support_y, query_x) -> scores``."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        self.encoder = Conv4(in_channels=1, hidden=config.hidden, image_size=config.image_size)
        if config.channels_last:  # weights and inputs in NHWC: faster convolutions on CPUs
            self.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x)

    def embed_episode(self, support_x: torch.Tensor, query_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Support and query embeddings, as one batch: both sets see the same batch-norm statistics."""
        device = next(self.parameters()).device
        z = self.embed(torch.cat([support_x.to(device), query_x.to(device)]))
        return z[: len(support_x)], z[len(support_x):]

    @torch.no_grad()
    def predict(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """Scores for a test episode: eval mode, no gradients, on the caller's device."""
        with eval_mode(self):
            return self(support_x, support_y, query_x).to(query_x.device)


class ProtoNet(FewShotModel):
    """``logits[q, k] = -||f(x_q) - c_k||^2`` (Euclidean) or ``scale * cos(f(x_q), c_k)`` (cosine)."""

    def __init__(self, config: ProtoNetConfig | None = None) -> None:
        super().__init__(config or ProtoNetConfig())
        self.score_kind = DISTANCE_SCORES if self.config.distance == "euclidean" else "logits"

    def scores(self, z_query: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.config.distance == "euclidean":
            return -squared_euclidean(z_query, c)
        return self.config.cosine_scale * F.normalize(z_query, dim=1) @ F.normalize(c, dim=1).T

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        z_support, z_query = self.embed_episode(support_x, query_x)
        ways = int(support_y.max()) + 1
        return self.scores(z_query, prototypes(z_support, support_y.to(z_support.device), ways))


def episode_loss(model: nn.Module, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the query set and its accuracy: the meta-training objective."""
    logits = model(episode.support_x, episode.support_y, episode.query_x)
    loss = F.cross_entropy(logits, episode.query_y)
    accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
    return loss, accuracy


# Episodic training


def learning_rate(config, step: int) -> float:
    """Step schedule of Snell et al.: ``meta_lr * 0.5 ** (step // lr_halve_every)``."""
    return config.meta_lr * 0.5 ** (step // config.lr_halve_every)


def trainer(model: nn.Module, config, data: dict, device: torch.device | str = "cpu",
            loss_fn: Callable[[nn.Module, Episode], tuple[torch.Tensor, torch.Tensor]] = episode_loss) -> Trainer:
    """One step of episodic training: draw the episode of ``(config.seed, i)``, one Adam step on its loss."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    sampler = FastEpisodeSampler(data["train"], config.ways, config.shots, config.queries, device=device)

    def step(i: int) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, i)
        loss, accuracy = loss_fn(model, sampler.sample(step_generator(config.seed, i)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "train_accuracy": accuracy.item()}

    return Trainer(step, optimizer)


def train(model: nn.Module, config, train_data: LabelledImages, *, device: torch.device | str = "cpu",
          loss_fn=episode_loss, evaluate: Callable[[], dict[str, float]] | None = None,
          eval_every: int | None = None, max_seconds: float | None = None, progress: bool = True,
          desc: str | None = None) -> History:
    """Meta-train ``model`` for ``config.steps`` episodes, without a run folder; returns the :class:`History`."""
    step = trainer(model, config, {"train": train_data}, device, loss_fn).step
    return train_loop(step, config.steps, evaluate=evaluate, eval_every=eval_every, max_seconds=max_seconds,
                      progress=progress, desc=desc or f"episodic training ({describe(config)})")


# Evaluation

TEST_SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))  # (ways, shots) of the papers' Omniglot tables
TEST_QUERIES = {5: 15, 20: 5}  # queries per class by test ways (20 drawings per character: <= 5 shots + 15)


def test_queries(ways: int) -> int:
    """Queries per class of a test episode: 15 for 5-way, 5 for 20-way (cheaper; 100 queries per episode)."""
    return TEST_QUERIES.get(ways, 15 if ways <= 5 else 5)


def evaluate(model, config, data: dict, device="cpu", *, settings=TEST_SETTINGS, episodes: int = 1000,
             progress: bool = True) -> dict[str, AccuracyResult]:
    """``{"5-way 1-shot": mean ± CI, ...}`` over ``episodes`` test episodes per setting, drawn with seed 0:
    the same tasks for every method."""
    results = {}
    for ways, shots in settings:
        sampler = FastEpisodeSampler(data["test"], ways, shots, test_queries(ways), device=device)
        name = setting_name(ways, shots)
        results[name] = evaluate_few_shot(model.predict, sampler, episodes, seed=0, progress=progress, desc=name)
    return results


# The face the registry reads (course_lib.registry)

Config, build = ProtoNetConfig, ProtoNet
PAPER = {  # Omniglot, Vinyals protocol (Snell et al. 2017, Table 1)
    "5-way 1-shot": 0.988, "5-way 5-shot": 0.997, "20-way 1-shot": 0.960, "20-way 5-shot": 0.989,
}
PAPER_OPTIONS = ("--ways", "60", "--shots", "5", "--queries", "5", "--steps", "20000", "--meta-lr", "1e-3",
                 "--lr-halve-every", "2000", "--seed", "0")
SMOKE_OPTIONS = ("--ways", "5", "--steps", "3")
RUNS = (
    RunSpec("data/protonet", "ProtoNet", ("--protocol", "vinyals", *PAPER_OPTIONS), SMOKE_OPTIONS,
            trained_on="Omniglot Vinyals split, rotations, Conv4-64, 60-way 5-shot training", capstone="protonet"),
    RunSpec("data/protonet_ablations/reference", "ProtoNet, 20-way 5-shot training (ablation reference)"),
    RunSpec("data/protonet_ablations/no_rotations", "ProtoNet, no rotations (ablation)"),
    RunSpec("data/protonet_ablations/lake_split", "ProtoNet, Lake split (ablation)", capstone="protonet-background"),
    RunSpec("data/protonet_background", "ProtoNet on the capstone's shared data (Omniglot background)",
            ("--protocol", "lake", *PAPER_OPTIONS), SMOKE_OPTIONS),
)


def load_data(config, smoke: bool = False) -> dict[str, LabelledImages]:
    """Omniglot's training and test classes under ``config.protocol`` (``smoke``: the first 40 of each)."""
    splits = omniglot_splits(config.protocol, rotations=config.rotations, image_size=config.image_size)
    if smoke:
        splits = {k: v.subset_classes(range(min(40, v.num_classes))) for k, v in splits.items()}
    return splits


def evaluation_details(settings) -> dict:
    """What results.json records about the test episodes besides their number."""
    return {"test_queries_per_class": {f"{w}-way": test_queries(w) for w, _ in settings}, "test_seed": 0}


def predictor(model: FewShotModel):
    return model.predict


def training_data(config) -> str:
    """The meta-training data in the capstone's words (its shared data begins "Omniglot background")."""
    episodes = f"{config.ways}-way {config.shots}-shot episodes"
    if config.protocol == "lake":
        return f"Omniglot background (Lake, 964 characters, {'' if config.rotations else 'no '}rotations; {episodes})"
    return f"Omniglot, Vinyals split{' + rotations' if config.rotations else ''} ({episodes})"


def capstone_row(run: RunSpec, model: FewShotModel, payload: dict) -> dict:
    """What the capstone's table says about a run; the numbers fitted to a task are the N prototypes."""
    shared = "; the capstone's shared meta-training data" if model.config.protocol == "lake" else ""
    return {"trained_on": training_data(model.config), "family": "metric", "meta_parameters": count_parameters(model),
            "learned_variables": lambda ways, shots: ways * model.config.hidden,
            "note": f"{run.folder} ({payload['step']:,} training episodes){shared}; learned variables: the N "
                    "prototypes"}


def describe(config) -> str:
    return (f"Omniglot ({config.protocol} split{', rotations' if config.rotations else ''}), Conv4-{config.hidden}, "
            f"{config.ways}-way {config.shots}-shot {config.queries}-query training, {config.distance}")
