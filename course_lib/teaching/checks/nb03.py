"""Checks for the exercises of notebook 03: metric-based meta-learning."""

from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...data import LabelledImages
from ...episodes import Episode, FastEpisodeSampler, TaskDistribution
from .common import close, diagnose, fail, fail_if, passed, run_for_tensor, run_student


def _class_means(z: torch.Tensor, y: torch.Tensor, ways: int) -> torch.Tensor:
    one_hot = F.one_hot(y, ways).to(z.dtype)
    return one_hot.T @ z / one_hot.sum(0)[:, None]


def _loss(z_query, centroids, query_y, scores=lambda d: -d.pow(2), reduction="mean"):
    return F.cross_entropy(scores(torch.cdist(z_query, centroids)), query_y, reduction=reduction)


def check_prototypical_loss(prototypical_loss: Callable) -> None:
    """``prototypical_loss(z_support [n_s, d], support_y, z_query [n_q, d], query_y, ways) -> loss``:
    cross-entropy of the logits ``-||z_q - c_k||^2`` with ``c_k`` the mean support embedding of class k."""
    name = "check_prototypical_loss"
    generator = torch.Generator().manual_seed(3)
    z_support = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([1, 0, 2, 1, 0, 2])  # 3-way 2-shot, not sorted
    z_query = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    query_y = torch.tensor([0, 2, 1, 1, 0])
    value = run_for_tensor(name, prototypical_loss, z_support, support_y, z_query, query_y, 3)
    fail_if(name, value.shape != (),
            f"return one number (the mean over the queries), not shape {tuple(value.shape)}")
    means = _class_means(z_support, support_y, 3)
    expected = _loss(z_query, means, query_y)
    if not close(value, expected):
        diagnose(name, value, [
            (_loss(z_query, means, query_y, lambda d: -d),
             "the logits must be minus the SQUARED Euclidean distance (you used the distance itself)"),
            (_loss(z_query, means, query_y, lambda d: d.pow(2)),
             "wrong sign: a nearer prototype must get a larger logit, so logits = -distance^2"),
            (_loss(z_query, F.one_hot(support_y, 3).to(z_support.dtype).T @ z_support, query_y),
             "a prototype is the MEAN of its class's support embeddings, not their sum"),
            (_loss(z_query, z_support[[1, 0, 2]], query_y),
             "a prototype averages all shots of a class, not only the first one"),
            (_loss(z_query, means, query_y, reduction="sum"), "take the mean over the queries, not the sum"),
            (_loss(z_query, _class_means(z_query, query_y, 3), query_y),
             "the prototypes must come from the SUPPORT set: averaging the queries uses their labels, which a "
             "few-shot learner never sees (a label leak)"),
        ], f"expected {float(expected):.5f}, got {float(value):.5f}: compute c_k = mean of "
           "z_support[support_y == k], logits[q, k] = -||z_query[q] - c_k||^2, then the mean cross-entropy "
           "with query_y")
    # Shift every embedding by the same vector: distances, hence the loss, must not change.
    shift = torch.randn(1, 4, generator=generator, dtype=torch.float64) * 3
    shifted = run_for_tensor(name, prototypical_loss, z_support + shift, support_y, z_query + shift, query_y, 3)
    fail_if(name, not close(shifted, expected, 1e-4),
            "the loss changed when every embedding moved by the same vector: use distances only")
    passed(name, 2)


def check_matching_probabilities(matching_probabilities: Callable) -> None:
    """``matching_probabilities(z_support [n_s, d], support_y, z_query [n_q, d], ways) -> p [n_q, ways]``:
    ``p[q, k] = sum_j softmax_j(cos(z_q, z_j)) [y_j = k]``."""
    name = "check_matching_probabilities"
    generator = torch.Generator().manual_seed(4)
    z_support = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([2, 0, 1, 1, 0, 2])
    z_query = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    p = run_for_tensor(name, matching_probabilities, z_support, support_y, z_query, 3)
    fail_if(name, p.shape == (4, 6),
            "you returned the attention over support examples [n_query, n_support]: add up the attention on "
            "the examples of each class to get [n_query, ways]")
    fail_if(name, p.shape != (4, 3),
            f"return one probability per query and class, shape (4, 3), got {tuple(p.shape)}")
    cosine = F.normalize(z_query, dim=1) @ F.normalize(z_support, dim=1).T
    one_hot = F.one_hot(support_y, 3).to(p.dtype)
    expected = torch.softmax(cosine, 1) @ one_hot
    if not close(p, expected):
        if not close(p.sum(1), torch.ones(4), 1e-4):
            fail_if(name, close(p, cosine @ one_hot),
                    "each row must sum to one: apply a softmax over the support examples before adding them up")
            fail(name, "each row of p must sum to one (a distribution over the classes)")
        diagnose(name, p, [
            (torch.softmax(z_query @ z_support.T, 1) @ one_hot,
             "use the cosine similarity (normalise both embeddings), not the plain dot product"),
            (torch.softmax(-torch.cdist(z_query, z_support).pow(2), 1) @ one_hot,
             "Matching Networks use the cosine similarity here, not minus the squared distance"),
            (torch.softmax(cosine @ one_hot, 1),
             "take the softmax over support EXAMPLES first, then sum per class (a softmax over summed "
             "similarities favours classes with more shots)"),
        ], "expected p[q, k] = sum over support examples j of class k of softmax_j(cos(z_q, z_j))")
    scaled = run_for_tensor(name, matching_probabilities, 7 * z_support, support_y, 0.1 * z_query, 3)
    fail_if(name, not close(scaled, expected, 1e-4),
            "the probabilities changed when embeddings were rescaled: the cosine similarity ignores lengths")
    passed(name, 2)


# Build it: a ProtoNet's training step, its loop over episodes and its test-time prediction. The checks run
# them on a tiny float64 network with batch norm, on 4x4 "images" whose classes are easy to tell apart.


def _encoder(seed: int) -> nn.Module:
    """A tiny embedding network with batch norm: the same weights for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    network = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4)).double()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return network


def _images(labels: torch.Tensor, centres: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(len(labels), 1, 4, 4, generator=generator, dtype=torch.float64)
    return centres[labels] + 0.5 * noise


def _episode(generator: torch.Generator, query_y: torch.Tensor) -> Episode:
    """3-way 2-shot, the support set not sorted by class, the queries in another order than the support."""
    centres = torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64)
    support_y = torch.tensor([1, 0, 2, 1, 0, 2])
    return Episode(_images(support_y, centres, generator), support_y, _images(query_y, centres, generator), query_y,
                   torch.arange(3))


def _embed(encoder: nn.Module, episode: Episode, together: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Support and query embeddings, in one batch (``together``) or in two."""
    if together:
        z = encoder(torch.cat([episode.support_x, episode.query_x]))
        return z[: len(episode.support_x)], z[len(episode.support_x):]
    return encoder(episode.support_x), encoder(episode.query_x)


def _query_loss(encoder: nn.Module, episode: Episode, together: bool) -> torch.Tensor:
    z_support, z_query = _embed(encoder, episode, together)
    return _loss(z_query, _class_means(z_support, episode.support_y, episode.ways), episode.query_y)


def _step_mistakes(episode: Episode, together: bool) -> list[tuple[torch.Tensor, str]]:
    """The loss of one episode as the typical wrong training steps compute it, and what each one got wrong."""
    ways, support_y, query_y = episode.ways, episode.support_y, episode.query_y
    with torch.no_grad():
        z_support, z_query = _embed(_encoder(0), episode, together)
        z_support_eval, z_query_eval = _embed(_encoder(0).eval(), episode, together)
    means = _class_means(z_support, support_y, ways)
    return [
        (_loss(z_query, means, support_y),
         "the queries were scored with the SUPPORT labels: their cross-entropy needs the query labels"),
        (_loss(z_support, means, support_y),
         "the loss was taken on the support set: the support set only builds the prototypes, the loss scores "
         "the QUERIES (as the test will)"),
        (_loss(z_query, _class_means(z_query, query_y, ways), query_y),
         "the prototypes were built from the queries: they must come from the SUPPORT set (averaging the queries "
         "with their labels is a label leak)"),
        (_loss(z_query, means, query_y, lambda d: -d),
         "the logits must be minus the SQUARED Euclidean distance (you used the distance itself)"),
        (_loss(z_query, means, query_y, lambda d: d.pow(2)),
         "wrong sign: a nearer prototype must get a larger logit, so logits = -distance^2"),
        (_loss(z_query, means, query_y, reduction="sum"), "take the mean over the queries, not the sum"),
        (_loss(z_query_eval, _class_means(z_support_eval, support_y, ways), query_y),
         "the network ran in eval mode: while training, batch norm must normalise with the episode's own "
         "statistics (train mode)"),
    ]


def check_training_step(training_step: Callable) -> None:
    """``training_step(encoder, optimizer, episode) -> loss``: one optimizer step on the episode's query loss,
    the prototypes built from the support set; returns the loss before the step."""
    name = "check_training_step"
    generator = torch.Generator().manual_seed(5)
    episode = _episode(generator, torch.tensor([2, 0, 1, 1, 2, 0]))  # as many queries as support examples
    encoder, lr = _encoder(0), 0.1
    start = [p.detach().clone() for p in encoder.parameters()]
    optimizer = torch.optim.SGD(encoder.parameters(), lr=lr)
    stale = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in encoder.parameters()]
    for parameter, gradient in zip(encoder.parameters(), stale):
        parameter.grad = gradient.clone()  # left over from the previous episode, as in a training loop
    value = run_for_tensor(name, training_step, encoder, optimizer, episode).detach()
    fail_if(name, value.numel() != 1, f"return the query loss, one number, not shape {tuple(value.shape)}")
    # The right loss and its gradient: support and query embedded in one batch, or in two (both are fine)
    right = {}
    for together in (True, False):
        reference = _encoder(0)
        loss = _query_loss(reference, episode, together)
        right[together] = loss.detach(), torch.autograd.grad(loss, list(reference.parameters()))
    matches = [together for together, (loss, _) in right.items() if close(value, loss)]
    if not matches:
        mistakes = _step_mistakes(episode, True) + _step_mistakes(episode, False)
        diagnose(name, value, mistakes,
                 f"expected the query loss {float(right[True][0]):.5f}, got {float(value):.5f}: embed the support "
                 "and query images, build the prototypes from the support set, score the queries by minus the "
                 "squared distances and take the mean cross-entropy with query_y")
    gradients = right[matches[0]][1]
    moved = [p.detach() - s for p, s in zip(encoder.parameters(), start)]

    def moved_by(step: list[torch.Tensor]) -> bool:
        return all(close(m, s) for m, s in zip(moved, step))

    fail_if(name, moved_by([torch.zeros_like(m) for m in moved]),
            "the loss is right but the weights did not change: compute its gradients (backward) after clearing "
            "the old ones, then take the optimizer's step")
    fail_if(name, moved_by([-lr * (g + s) for g, s in zip(gradients, stale)]),
            "the step added the gradient left over from the previous episode: clear the gradients "
            "(optimizer.zero_grad()) before backward, or every step also repeats all earlier ones")
    fail_if(name, moved_by([-lr * s for s in stale]),
            "the step used only the gradient left over from the previous episode: compute the gradient of this "
            "episode's loss (backward) between clearing the gradients and the optimizer's step")
    fail_if(name, not moved_by([-lr * g for g in gradients]),
            "the weights moved, but not by one optimizer step on the query loss: clear the gradients, backward "
            "once, then optimizer.step() once")
    passed(name, 2)


class _RecordingSampler(TaskDistribution[Episode]):
    """Real 3-way 2-shot episodes, recording each one and the network's weights when it is drawn."""

    def __init__(self, encoder: nn.Module, generator: torch.Generator) -> None:
        centres = torch.randn(6, 1, 4, 4, generator=generator, dtype=torch.float64)
        labels = torch.arange(6).repeat_interleave(5)
        dataset = LabelledImages(_images(labels, centres, generator), labels, [f"class {k}" for k in range(6)])
        self.sampler = FastEpisodeSampler(dataset, ways=3, shots=2, queries=2)
        self.encoder = encoder
        self.episodes: list[Episode] = []
        self.weights: list[torch.Tensor] = []

    def sample(self, generator: torch.Generator | None = None) -> Episode:
        self.weights.append(torch.cat([p.detach().flatten() for p in self.encoder.parameters()]).clone())
        self.episodes.append(self.sampler.sample(generator))
        return self.episodes[-1]


def _same_episode(a: Episode, b: Episode) -> bool:
    return torch.equal(a.classes, b.classes) and torch.equal(a.support_x, b.support_x)


def check_train_protonet(train_protonet: Callable) -> None:
    """``train_protonet(encoder, sampler, steps, lr, seed) -> losses``: ``steps`` training steps with one
    optimizer, each on a new episode from ``sampler``, drawn reproducibly from ``seed``, in train mode."""
    name = "check_train_protonet"
    steps = 6

    def run(seed: int, lr: float = 0.01) -> tuple[nn.Module, _RecordingSampler, list]:
        encoder = _encoder(1).eval()  # as an evaluation leaves it
        sampler = _RecordingSampler(encoder, torch.Generator().manual_seed(7))
        return encoder, sampler, run_student(name, train_protonet, encoder, sampler, steps, lr, seed)

    encoder, sampler, losses = run(seed=3)
    fail_if(name, not isinstance(losses, (list, tuple, torch.Tensor)) or len(losses) != steps,
            f"return the query losses, one per step: {steps} numbers for steps={steps}")
    losses = torch.tensor([float(loss) for loss in losses], dtype=torch.float64)
    drawn = sampler.episodes
    fail_if(name, len(drawn) < steps,
            f"draw a new episode from the sampler at every step: {len(drawn)} episodes for {steps} steps")
    fail_if(name, any(_same_episode(drawn[i], drawn[j]) for i in range(len(drawn)) for j in range(i)),
            "some steps drew the same episode: each step needs its own random draw (a generator that depends "
            "on the step, not one re-seeded identically every time)")
    start = torch.cat([p.detach().flatten() for p in _encoder(1).parameters()])
    end = torch.cat([p.detach().flatten() for p in encoder.parameters()])
    fail_if(name, close(end, start), "the network's weights did not change during training")
    batch_norm = encoder[2]
    fail_if(name, close(batch_norm.running_mean, torch.zeros_like(batch_norm.running_mean)),
            "the network trained in eval mode (batch norm's running statistics never changed): put it in train "
            "mode before training, since an evaluation may have left it in eval mode")
    first = [_query_loss(_encoder(1), drawn[0], together).detach() for together in (True, False)]
    fail_if(name, not any(close(losses[0], loss) for loss in first),
            "the first loss is not the query loss of the first episode: record what training_step returns, "
            "one loss per step")
    # Adam's first step moves every weight by about lr; when every step does, each step had a fresh optimizer
    updates = [after - before for before, after in zip(sampler.weights, sampler.weights[1:])][1:]
    lr = 0.01

    def first_adam_step(update: torch.Tensor) -> bool:
        moving = update.abs() > lr / 10
        return bool(moving.any()) and bool(((update.abs()[moving] - lr).abs() < 1e-4 * lr).float().mean() > 0.9)

    fail_if(name, len(updates) > 0 and all(first_adam_step(update) for update in updates),
            "every step started a new optimizer (each update is Adam's first step): create the optimizer once, "
            "before the loop, so that its running averages carry over from step to step")
    still, _, _ = run(seed=3, lr=0.0)
    fail_if(name, not close(torch.cat([p.detach().flatten() for p in still.parameters()]), start),
            "the weights moved with lr = 0: give the optimizer the learning rate lr passed to the function")
    _, again, repeated = run(seed=3)
    fail_if(name, not close(torch.tensor([float(loss) for loss in repeated], dtype=torch.float64), losses),
            "two runs with the same seed gave different losses: draw every episode from a generator seeded "
            "from seed, so that a run can be repeated")
    _, other, _ = run(seed=4)
    fail_if(name, all(_same_episode(a, b) for a, b in zip(drawn, other.episodes)),
            "seed 4 drew the same episodes as seed 3: derive the episodes' generators from seed")
    passed(name, 4)


def check_protonet_predict(protonet_predict: Callable) -> None:
    """``protonet_predict(encoder, support_x, support_y, query_x) -> scores [n_query, ways]``, highest for the
    nearest prototype, each query scored on its own (batch norm with its running statistics)."""
    name = "check_protonet_predict"
    generator = torch.Generator().manual_seed(6)
    encoder = _encoder(2)
    batch_norm = encoder[2]
    with torch.no_grad():  # running statistics unlike those of any test batch, as training leaves them
        batch_norm.running_mean.copy_(torch.randn(8, generator=generator, dtype=torch.float64))
        batch_norm.running_var.copy_(torch.rand(8, generator=generator, dtype=torch.float64) + 0.5)
    trained = copy.deepcopy(encoder.state_dict())
    encoder.train()  # as training leaves it
    episode = _episode(generator, torch.arange(3).repeat(10)[torch.randperm(30, generator=generator)])
    support_x, support_y, query_x = episode.support_x, episode.support_y, episode.query_x
    scores = run_for_tensor(name, protonet_predict, encoder, support_x, support_y, query_x).detach()
    fail_if(name, scores.shape != (len(query_x), 3),
            f"return one score per query and class, shape ({len(query_x)}, 3), got {tuple(scores.shape)}")
    others = query_x.clone()
    others[1:] = _images(torch.randint(3, (len(query_x) - 1,), generator=generator),
                         3 * torch.randn(3, 1, 4, 4, generator=generator, dtype=torch.float64), generator)
    rescored = run_for_tensor(name, protonet_predict, encoder, support_x, support_y, others).detach()
    fail_if(name, not close(rescored[0], scores[0], 1e-6),
            "the scores of the first query changed when the OTHER queries changed: in train mode batch norm "
            "normalises with the statistics of the test batch, so the queries leak into each other's predictions "
            "(a transductive leak). At test time, put the network in eval mode")
    reference = _encoder(2)
    reference.load_state_dict(trained)
    with torch.no_grad():
        z_support, z_query = _embed(reference.eval(), episode, together=False)
    d = torch.cdist(z_query, _class_means(z_support, support_y, 3))
    expected = (-d).argmax(1)
    if not torch.equal(scores.argmax(1), expected):
        first_shot = torch.stack([z_support[support_y == k][0] for k in range(3)])
        sorted_by_class = z_support.reshape(3, 2, -1).mean(1)  # assumes the support set sorted by class
        for wrong, message in [
            (d.argmax(1), "the FARTHEST prototype got the highest score: score by minus the (squared) distance"),
            (sorted_by_class, "group the support embeddings by their labels support_y: a support set need not "
                              "be sorted by class"),
            (first_shot, "a prototype averages all shots of its class, not only the first one"),
            (F.one_hot(support_y, 3).to(z_support.dtype).T @ z_support,
             "a prototype is the MEAN of its class's support embeddings, not their sum"),
        ]:
            wrong = wrong if wrong.ndim == 1 else torch.cdist(z_query, wrong).neg().argmax(1)
            fail_if(name, torch.equal(scores.argmax(1), wrong), message)
        fail(name, "the highest score is not always the nearest prototype's: build the prototypes from the "
                   "support embeddings, score each query by minus its squared distance to each prototype")
    passed(name, 2)
