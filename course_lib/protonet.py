"""Prototypical Networks (Snell, Swersky & Zemel, NeurIPS 2017).

Introduced in notebook 03 (metric-based meta-learning). A network
``f_phi`` (a :class:`~course_lib.models.Conv4`) maps images to embeddings;
each class of an episode is represented by its **prototype**, the mean
embedding of its support examples,

    c_k = 1/K sum_{j: y_j = k} f_phi(x_j),

and a query is classified by a softmax over negative squared distances,

    p(y = k | x) = softmax_k( -||f_phi(x) - c_k||^2 ).

Since ``-||z - c_k||^2 = 2 c_k.z - ||c_k||^2 - ||z||^2`` and the last term is
the same for every class, this is a *linear* classifier in embedding space
with weights ``w_k = 2 c_k`` and biases ``b_k = -||c_k||^2``
(:func:`prototype_linear_layer`). Training is *episodic*: every step samples
an N-way K-shot episode from the meta-training classes and minimises the
cross-entropy of its queries, so the embedding is learned *for* the few-shot
task that is used at test time.

This file holds, top to bottom: the config, a fast episode sampler, the
model and loss, the resumable episodic training function, and evaluation.
:mod:`course_lib.matching_nets` reuses the sampler and the training function;
:mod:`course_lib.train` is the command line around both.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .baselines import DISTANCE_SCORES
from .data import LabelledImages
from .episodes import Episode, TaskDistribution
from .evaluation import AccuracyResult, evaluate_few_shot
from .models import Conv4
from .training import History, load_checkpoint, save_checkpoint, train_loop


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


@dataclass
class ProtoNetConfig:
    """Everything that defines a ProtoNet run (saved next to its checkpoint).

    Defaults: the Omniglot protocol of Snell et al. (Vinyals split, 28x28,
    rotations as new classes, Conv4-64; 60-way 5-shot 5-query training
    episodes; Adam, learning rate 1e-3 halved every 2000 episodes).
    """

    protocol: str = "vinyals"  # or "lake"
    rotations: bool = True
    image_size: int = 28
    hidden: int = 64
    distance: str = "euclidean"  # or "cosine"
    cosine_scale: float = 10.0  # logits = scale * cos for the cosine variant
    ways: int = 60
    shots: int = 5
    queries: int = 5
    steps: int = 20000
    lr: float = 1e-3
    lr_halve_every: int = 2000
    seed: int = 0
    channels_last: bool = True  # faster convolutions on CPUs and recent GPUs


def learning_rate(config, step: int) -> float:
    """Step schedule of Snell et al.: ``lr * 0.5 ** (step // lr_halve_every)``."""
    return config.lr * 0.5 ** (step // config.lr_halve_every)


# --------------------------------------------------------------------------
# A fast sampler: every class holds the same number of images
# --------------------------------------------------------------------------


class FastEpisodeSampler(TaskDistribution[Episode]):
    """N-way K-shot Q-query episodes drawn with a few tensor operations.

    The same episodes *distribution* as :class:`~course_lib.episodes.EpisodeSampler`
    (classes without replacement, then support and query examples without
    replacement within each class; labels 0..N-1 in the order drawn), but
    for data sets whose classes all hold the same number of images (Omniglot:
    20 drawings per character). The images are kept once as a tensor
    ``[classes, per_class, C, H, W]`` on ``device``, and an episode is one
    gather: no Python loop over classes, no copies between devices.
    """

    def __init__(
        self, dataset: LabelledImages, ways: int, shots: int, queries: int, device: torch.device | str | None = None
    ) -> None:
        counts = dataset.examples_per_class().cpu()
        if (counts != counts[0]).any():
            raise ValueError(
                f"FastEpisodeSampler needs the same number of images per class; {dataset.name} has "
                f"{int(counts.min())}-{int(counts.max())}. Use course_lib.episodes.EpisodeSampler."
            )
        per_class = int(counts[0])
        if ways > dataset.num_classes or shots + queries > per_class:
            raise ValueError(
                f"{ways}-way {shots}-shot {queries}-query episodes need {ways} classes with "
                f"{shots + queries} images; {dataset.name} has {dataset.num_classes} classes of {per_class}."
            )
        self.dataset = dataset
        self.ways, self.shots, self.queries = ways, shots, queries
        self.device = torch.device(device) if device is not None else dataset.images.device
        self.images = class_tensor(dataset, per_class, self.device)
        self.per_class = per_class

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        n, k, q = self.ways, self.shots, self.queries
        classes = torch.randperm(self.dataset.num_classes, generator=generator)[:n]
        members = torch.rand(n, self.per_class, generator=generator).argsort(dim=1)[:, : k + q]
        chosen = self.images[classes[:, None].to(self.device), members.to(self.device)]  # [n, k+q, C, H, W]
        shape = self.images.shape[2:]
        labels = torch.arange(n, device=self.device)
        return Episode(
            support_x=chosen[:, :k].reshape(n * k, *shape),
            support_y=labels.repeat_interleave(k),
            query_x=chosen[:, k:].reshape(n * q, *shape),
            query_y=labels.repeat_interleave(q),
            classes=classes.to(self.device),
        )

    def __repr__(self) -> str:
        return (
            f"FastEpisodeSampler({self.dataset.name!r}, {self.ways}-way {self.shots}-shot, "
            f"{self.queries} queries per class, {self.dataset.num_classes} classes)"
        )


def class_tensor(dataset: LabelledImages, per_class: int, device: torch.device) -> torch.Tensor:
    """``[classes, per_class, C, H, W]``: the images sorted by class, built once per data set and device."""
    cache = dataset.__dict__.setdefault("_class_tensors", {})
    key = (str(device), len(dataset), per_class)
    if key not in cache:
        order = torch.argsort(dataset.labels.cpu(), stable=True)
        images = dataset.images.cpu()[order].reshape(dataset.num_classes, per_class, *dataset.image_shape)
        cache[key] = images.to(device)
    return cache[key]


def episode_generator(seed: int, step: int) -> torch.Generator:
    """The generator of training episode ``step``: a function of (seed, step) only,
    so a resumed run sees exactly the episodes an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


# --------------------------------------------------------------------------
# The model and its loss
# --------------------------------------------------------------------------


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
    """A model called as ``model(support_x, support_y, query_x) -> scores``, with ``predict`` for tests."""

    @torch.no_grad()
    def predict(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """Scores for a test episode: eval mode, no gradients, on the caller's device."""
        was_training = self.training
        self.eval()
        try:
            return self(support_x, support_y, query_x).to(query_x.device)
        finally:
            self.train(was_training)


class ProtoNet(FewShotModel):
    """A few-shot classifier: ``predict(support_x, support_y, query_x) -> logits``.

    ``logits[q, k] = -||f(x_q) - c_k||^2`` (Euclidean) or
    ``scale * cos(f(x_q), c_k)`` (cosine). Call it in ``eval()`` mode to
    classify test episodes (batch norm then uses its running statistics).
    """

    def __init__(self, config: ProtoNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ProtoNetConfig()
        if self.config.distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be 'euclidean' or 'cosine', got {self.config.distance!r}")
        self.encoder = Conv4(in_channels=1, hidden=self.config.hidden, image_size=self.config.image_size)
        self.score_kind = DISTANCE_SCORES if self.config.distance == "euclidean" else "logits"
        if self.config.channels_last:  # weights and inputs in NHWC: about 2x faster convolutions on CPUs
            self.to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x)

    def scores(self, z_query: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if self.config.distance == "euclidean":
            return -squared_euclidean(z_query, c)
        return self.config.cosine_scale * F.normalize(z_query, dim=1) @ F.normalize(c, dim=1).T

    def forward(self, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        device = next(self.parameters()).device
        support_x, support_y, query_x = support_x.to(device), support_y.to(device), query_x.to(device)
        ways = int(support_y.max()) + 1
        z = self.embed(torch.cat([support_x, query_x]))  # one batch: both sets see the same BN statistics
        z_support, z_query = z[: len(support_x)], z[len(support_x):]
        return self.scores(z_query, prototypes(z_support, support_y, ways))



def episode_loss(model: nn.Module, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the query set and its accuracy: the meta-training objective."""
    logits = model(episode.support_x, episode.support_y, episode.query_x)
    loss = F.cross_entropy(logits, episode.query_y)
    accuracy = (logits.argmax(-1) == episode.query_y).float().mean()
    return loss, accuracy


# --------------------------------------------------------------------------
# Episodic training, resumable
# --------------------------------------------------------------------------

CHECKPOINT_NAME = "checkpoint.pt"


def _check_resumable(stored: dict, config) -> None:
    """A run may be resumed with more ``steps``; every other setting must match."""
    wanted = dataclasses.asdict(config)
    differences = [
        f"{key}: checkpoint {stored.get(key)!r} vs yours {wanted.get(key)!r}"
        for key in sorted(set(wanted) | set(stored))
        if key != "steps" and stored.get(key) != wanted.get(key)
    ]
    if differences:
        raise ValueError(
            "cannot resume: the checkpoint was trained with another config (" + "; ".join(differences) + ")"
        )


def train_episodic(
    model: nn.Module,
    config,
    train_data: LabelledImages,
    *,
    device: torch.device | str = "cpu",
    loss_fn: Callable[[nn.Module, Episode], tuple[torch.Tensor, torch.Tensor]] = episode_loss,
    run_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint_every: int = 500,
    checkpoint_seconds: float = 300.0,
    evaluate: Callable[[], dict[str, float]] | None = None,
    eval_every: int | None = None,
    max_seconds: float | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Meta-train ``model`` on episodes of ``train_data``; returns the :class:`History`.

    Each step: sample a ``config.ways``-way ``config.shots``-shot
    ``config.queries``-query episode (its generator depends on seed and step
    only), compute ``loss_fn(model, episode)`` and take one Adam step with
    learning rate :func:`learning_rate`. With ``run_dir``, the model, Adam's
    state, the step and the history are saved to ``run_dir/checkpoint.pt``
    every ``checkpoint_every`` steps or ``checkpoint_seconds`` seconds, when
    ``max_seconds`` is used up, on Ctrl-C, and at the end; ``resume=True``
    continues from that file and gives the same result as an uninterrupted
    run (on the CPU, with the same seed).
    """
    device = torch.device(device)
    model.to(device).train()
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    sampler = FastEpisodeSampler(train_data, config.ways, config.shots, config.queries, device=device)
    history, start = History(), 0
    path = Path(run_dir) / CHECKPOINT_NAME if run_dir is not None else None
    if resume and path is not None and path.is_file():
        payload = load_checkpoint(path, model, optimizer=optimizer, map_location=device)
        _check_resumable(payload["config"], config)
        history, start = payload["history"], int(payload["step"])
        if progress:
            print(f"resuming from {path} at step {start} of {config.steps}")
    state = {"saved_at": time.monotonic(), "step": start}
    started = time.monotonic()

    def save(step_done: int, metrics_of_step=None) -> None:
        if path is not None:
            saved = history
            if metrics_of_step is not None:  # train_loop logs a step only after it returns
                saved = History(history.state_dict())
                saved.log(metrics_of_step[0], **metrics_of_step[1])
            save_checkpoint(path, model, config, history=saved, optimizer=optimizer, step=step_done)
            state["saved_at"] = time.monotonic()

    class _OutOfTime(Exception):
        pass

    def step(i: int) -> dict[str, float]:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, i)
        episode = sampler.sample(episode_generator(config.seed, i))
        loss, accuracy = loss_fn(model, episode)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] = i + 1
        return {"loss": loss.item(), "train_accuracy": accuracy.item()}

    def step_and_checkpoint(i: int) -> dict[str, float]:
        metrics = step(i)
        done = i + 1
        if path is not None and done < config.steps and (
            done % checkpoint_every == 0 or time.monotonic() - state["saved_at"] > checkpoint_seconds
        ):
            save(done, metrics_of_step=(i, metrics))
        if max_seconds is not None and time.monotonic() - started > max_seconds and done < config.steps:
            history.log(i, **metrics)
            raise _OutOfTime
        return metrics

    try:
        train_loop(step_and_checkpoint, config.steps, evaluate=evaluate, eval_every=eval_every, history=history,
                   start_step=start, desc=desc or f"episodic training ({config.ways}-way {config.shots}-shot)",
                   progress=progress)
    except _OutOfTime:
        if progress:
            print(f"time budget of {max_seconds:.0f} s used up at step {state['step']}: checkpointed")
    except KeyboardInterrupt:
        if progress:
            print(f"interrupted at step {state['step']}: checkpointed; continue with resume=True")
        save(state["step"])
        raise
    save(state["step"])
    return history


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------

TEST_SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))  # (ways, shots) of the papers' Omniglot tables
TEST_QUERIES = {5: 15, 20: 5}  # queries per class by test ways (20 drawings per character: <= 5 shots + 15)


def test_queries(ways: int, queries: int | dict | None = None) -> int:
    """Queries per class of a test episode: 15 for 5-way, 5 for 20-way (cheaper; 100 queries per episode)."""
    queries = TEST_QUERIES if queries is None else queries
    return queries if isinstance(queries, int) else queries.get(ways, 15 if ways <= 5 else 5)


def evaluate_model(
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    test_data: LabelledImages,
    *,
    settings=TEST_SETTINGS,
    episodes: int = 1000,
    queries: int | dict | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict[str, AccuracyResult]:
    """``{"5-way 1-shot": mean ± CI, ...}`` over ``episodes`` test episodes per setting.

    ``queries``: per class, an int or ``{ways: queries}`` (default :data:`TEST_QUERIES`).

    The episodes depend on ``seed`` only, so every method evaluated with the
    same seed sees the same tasks.
    """
    results = {}
    for ways, shots in settings:
        sampler = FastEpisodeSampler(test_data, ways, shots, test_queries(ways, queries), device=device)
        name = f"{ways}-way {shots}-shot"
        results[name] = evaluate_few_shot(predict, sampler, episodes=episodes, seed=seed, progress=progress,
                                          desc=name)
    return results


def load_trained(run_dir: str | Path, model_class=None, config_class=None, device="cpu"):
    """The model saved in ``run_dir/checkpoint.pt`` (built from its stored config), and the payload."""
    model_class = model_class or ProtoNet
    config_class = config_class or ProtoNetConfig
    path = Path(run_dir) / CHECKPOINT_NAME
    stored = torch.load(path, map_location="cpu", weights_only=True)["config"]
    config = config_class(**stored)
    model = model_class(config)
    payload = load_checkpoint(path, model, map_location=device)
    return model.to(device).eval(), payload


def read_results(run_dir: str | Path) -> dict | None:
    """The ``results.json`` a run wrote (None if there is none yet)."""
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text()) if path.is_file() else None


def accuracy_of(entry: dict) -> AccuracyResult:
    return AccuracyResult(entry["mean"], entry["ci95"], entry["episodes"])

