"""A toy method with the registry's whole face, for tests/test_registry.py.

What a new method (a Relation Network, say) writes: a config, a model, one
training step, an evaluation, and the lines that tell the registry about its
runs, and the row it gets in the capstone (notebook 09). The data: Gaussian
blobs, one class per mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib.evaluation import AccuracyResult, mean_confidence_interval
from course_lib.runs import RunSpec, Trainer


@dataclass
class Config:
    dim: int = 4
    classes: int = 20
    ways: int = 2
    steps: int = 10
    meta_lr: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ways < 2 or self.ways > self.classes:
            raise ValueError(f"ways must be in [2, classes], got {self.ways}")


PAPER = {"2-way 1-shot": 0.99}
RUNS = (RunSpec("data/toy", "Toy prototypes", ("--steps", "100"), ("--steps", "2"),
                trained_on="Gaussian blobs, 2-way 1-shot", capstone="toy"),)


def describe(config: Config) -> str:
    return f"{config.dim}-d Gaussian blobs, {config.ways}-way"


def build(config: Config) -> torch.nn.Linear:
    torch.manual_seed(config.seed)
    return torch.nn.Linear(config.dim, config.dim)


def load_data(config: Config, smoke: bool = False) -> dict:
    means = 3 * torch.randn(config.classes, config.dim, generator=torch.Generator().manual_seed(config.seed))
    return {"means": means}


def sample(means, ways, shots, generator):
    classes = torch.randperm(len(means), generator=generator)[:ways]
    points = means[classes].repeat_interleave(shots + 1, 0) + torch.randn(ways * (shots + 1), means.shape[1],
                                                                           generator=generator)
    labels = torch.arange(ways).repeat_interleave(shots + 1)
    query = torch.arange(len(labels)) % (shots + 1) == shots
    return points[~query], labels[~query], points[query], labels[query]


def predictor(model):
    def predict(support_x, support_y, query_x):
        z_s, z_q = model(support_x.flatten(1)), model(query_x.flatten(1))  # the capstone's pools are images
        prototypes = torch.stack([z_s[support_y == k].mean(0) for k in range(int(support_y.max()) + 1)])
        return -torch.cdist(z_q, prototypes)
    return predict


def capstone_row(run: RunSpec, model, payload: dict) -> dict:
    """The capstone's words for the run: its data, its variables (the N prototypes are fitted to a task)."""
    return {"trained_on": "Gaussian blobs", "family": "metric", "note": f"{run.folder} ({payload['step']} steps)",
            "meta_parameters": sum(p.numel() for p in model.parameters()),
            "learned_variables": lambda ways, shots: ways * model.out_features}


def trainer(model, config: Config, data: dict, device="cpu") -> Trainer:
    optimizer = torch.optim.SGD(model.parameters(), lr=config.meta_lr)

    def step(i: int) -> dict[str, float]:
        generator = torch.Generator().manual_seed(config.seed * 1000 + i)
        sx, sy, qx, qy = sample(data["means"], config.ways, 1, generator)
        loss = F.cross_entropy(predictor(model)(sx, sy, qx), qy)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    return Trainer(step, optimizer)


def evaluate(model, config: Config, data: dict, device="cpu", *, settings=((2, 1),), episodes=100, progress=False):
    results = {}
    for ways, shots in settings:
        generator = torch.Generator().manual_seed(0)
        accuracies = []
        with torch.no_grad():
            for _ in range(episodes):
                sx, sy, qx, qy = sample(data["means"], ways, shots, generator)
                accuracies.append((predictor(model)(sx, sy, qx).argmax(-1) == qy).float().mean().item())
        results[f"{ways}-way {shots}-shot"] = AccuracyResult(*mean_confidence_interval(accuracies), episodes)
    return results
