"""Notebook 03's exercise checks accept correct solutions, whatever their form, and reject typical mistakes in
plain words."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from course_lib import episodes, models, protonet
from course_lib.teaching.checks import nb03 as checks
from course_lib.teaching.checks.common import ExerciseError
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

NOTEBOOK = "03_metric_based"  # the reference solutions are its own, defined from its source

proto_reference = notebook_solution(NOTEBOOK, "prototypical_loss")
matching_reference = notebook_solution(NOTEBOOK, "matching_probabilities")


def proto_with(distance=None, centroid="mean", reduction="mean", sign=-1.0, support_from_query=False):
    def loss(z_s, y_s, z_q, y_q, ways):
        source, labels = (z_q, y_q) if support_from_query else (z_s, y_s)
        one_hot = F.one_hot(labels, ways).to(z_s.dtype)
        if centroid == "mean":
            c = one_hot.T @ source / one_hot.sum(0)[:, None]
        elif centroid == "sum":
            c = one_hot.T @ source
        else:  # the first shot of each class
            c = torch.stack([source[labels == k][0] for k in range(ways)])
        d = torch.cdist(z_q, c)
        d = d if distance == "plain" else d.pow(2)
        return F.cross_entropy(sign * d, y_q, reduction=reduction)
    return loss


WRONG_03 = [
    (checks.check_prototypical_loss, proto_with(distance="plain"), "SQUARED"),
    (checks.check_prototypical_loss, proto_with(sign=1.0), "sign"),
    (checks.check_prototypical_loss, proto_with(centroid="sum"), "MEAN"),
    (checks.check_prototypical_loss, proto_with(centroid="first"), "first one"),
    (checks.check_prototypical_loss, proto_with(reduction="sum"), "not the sum"),
    (checks.check_prototypical_loss, proto_with(support_from_query=True), "label leak"),
    (checks.check_prototypical_loss, lambda z_s, y_s, z_q, y_q, w: F.cross_entropy(-(z_q @ z_s[:w].T), y_q), "expected"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax(F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T, 1), "add up"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: (F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T) @ F.one_hot(y_s, w).double(), "softmax"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax(z_q @ z_s.T, 1) @ F.one_hot(y_s, w).double(), "cosine"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax(-torch.cdist(z_q, z_s).pow(2), 1) @ F.one_hot(y_s, w).double(), "squared distance"),
    (checks.check_matching_probabilities, lambda z_s, y_s, z_q, w: torch.softmax((F.normalize(z_q, dim=1) @ F.normalize(z_s, dim=1).T) @ F.one_hot(y_s, w).double(), 1), "EXAMPLES first"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_prototypical_loss, proto_reference), (checks.check_matching_probabilities, matching_reference)],
    ids=["prototypical_loss", "matching_probabilities"],
)
def test_notebook_03_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-03 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_03, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG_03)])
def test_notebook_03_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_checks_agree_with_the_library():
    """The library's own functions pass the checks (the notebook's solutions call the same maths)."""
    from course_lib import matching_nets, protonet

    checks.check_prototypical_loss(lambda z_s, y_s, z_q, y_q, w: F.cross_entropy(
        -protonet.squared_euclidean(z_q, protonet.prototypes(z_s, y_s, w)), y_q))
    checks.check_matching_probabilities(lambda z_s, y_s, z_q, w: matching_nets.label_probabilities(
        matching_nets.attention(z_q, z_s), y_s, w))


# ---------------------------------------------------------------- build it: the notebook's solutions

training_step = notebook_solution(NOTEBOOK, "training_step")
train_protonet = notebook_solution(NOTEBOOK, "train_protonet")
protonet_predict = notebook_solution(NOTEBOOK, "protonet_predict")


# ---------------------------------------------------------------- build it: other correct solutions


def step_in_two_batches(encoder, optimizer, episode):
    """Support and query embedded separately; log-softmax and gather; the loss returned as a tensor."""
    z_support, z_query = encoder(episode.support_x), encoder(episode.query_x)
    ways = int(episode.support_y.max()) + 1
    prototypes = torch.stack([z_support[episode.support_y == k].mean(0) for k in range(ways)])
    logits = -torch.cdist(z_query, prototypes) ** 2
    loss = -logits.log_softmax(1).gather(1, episode.query_y[:, None]).mean()
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_with_one_generator(encoder, sampler, steps, lr, seed):
    """One generator for the whole run, an explicit loop, SGD with momentum."""
    encoder.train()
    optimizer = torch.optim.SGD(encoder.parameters(), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        losses.append(training_step(encoder, optimizer, sampler.sample(generator)))
    return losses


def train_on_fixed_tasks(encoder, sampler, steps, lr, seed):
    """The episodes drawn up front with the global generator seeded from seed."""
    torch.manual_seed(seed)
    tasks = [sampler.sample() for _ in range(steps)]
    encoder.train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    return [training_step(encoder, optimizer, task) for task in tasks]


def predict_as_linear_layer(encoder, support_x, support_y, query_x):
    """The library's eval_mode block, and the linear layer ProtoNet is (softmax-equivalent scores)."""
    with models.eval_mode(encoder), torch.no_grad():
        z_support, z_query = encoder(torch.cat([support_x, query_x])).split([len(support_x), len(query_x)])
        w, b = protonet.prototype_linear_layer(protonet.prototypes(z_support, support_y, int(support_y.max()) + 1))
        return z_query @ w.T + b


def predict_probabilities(encoder, support_x, support_y, query_x):
    """Probabilities of unsquared distances, with gradients left on: the same predictions."""
    encoder.eval()
    c = protonet.prototypes(encoder(support_x), support_y, int(support_y.max()) + 1)
    return torch.softmax(-torch.cdist(encoder(query_x), c), dim=1)


BUILD_IT_CORRECT = [
    (checks.check_training_step, training_step),
    (checks.check_training_step, step_in_two_batches),
    (checks.check_train_protonet, train_protonet),
    (checks.check_train_protonet, train_with_one_generator),
    (checks.check_train_protonet, train_on_fixed_tasks),
    (checks.check_protonet_predict, protonet_predict),
    (checks.check_protonet_predict, predict_as_linear_layer),
    (checks.check_protonet_predict, predict_probabilities),
]


@pytest.mark.parametrize("check, solution", BUILD_IT_CORRECT, ids=[s.__name__ for _, s in BUILD_IT_CORRECT])
def test_build_it_correct_solutions_pass(check, solution, capsys):
    """The notebook's solution and other correct ones, in other forms, pass."""
    check(solution)
    assert "✓" in capsys.readouterr().out


# ---------------------------------------------------------------- build it: typical mistakes


def step_with(embed="together", labels="query", scored="query", prototypes_from="support", distance="squared",
              zero_grad=True, step=True, clear_after_backward=False, mode=None):
    """The reference training step with one thing changed."""
    def wrong(encoder, optimizer, episode):
        if mode == "eval":
            encoder.eval()
        s_x, s_y, q_x, q_y = episode.support_x, episode.support_y, episode.query_x, episode.query_y
        z = encoder(torch.cat([s_x, q_x]))
        z_s, z_q = z[: len(s_x)], z[len(s_x):]
        source, source_y = (z_q, q_y) if prototypes_from == "query" else (z_s, s_y)
        c = protonet.prototypes(source, source_y, episode.ways)
        scored_z, scored_y = (z_s, s_y) if scored == "support" else (z_q, s_y if labels == "support" else q_y)
        d = torch.cdist(scored_z, c)
        loss = F.cross_entropy(-(d if distance == "plain" else d ** 2), scored_y)
        if zero_grad and not clear_after_backward:
            optimizer.zero_grad()
        loss.backward()
        if clear_after_backward:
            optimizer.zero_grad()
        if step:
            optimizer.step()
        return loss.item()
    return wrong


def train_with(draw="step", optimizer_per_step=False, lr_used=None, seed_used=None, train_mode=True):
    """The reference loop with one thing changed."""
    def wrong(encoder, sampler, steps, lr, seed):
        if train_mode:
            encoder.train()
        seed = seed if seed_used is None else seed_used
        make = lambda: torch.optim.Adam(encoder.parameters(), lr=lr if lr_used is None else lr_used)  # noqa: E731
        optimizer = make()
        once = sampler.sample(episodes.step_generator(seed, 0)) if draw == "once" else None
        losses = []
        for step in range(steps):
            if optimizer_per_step:
                optimizer = make()
            if draw == "once":
                episode = once
            elif draw == "same seed":
                episode = sampler.sample(torch.Generator().manual_seed(seed))
            elif draw == "unseeded":
                episode = sampler.sample()
            else:
                episode = sampler.sample(episodes.step_generator(seed, step))
            losses.append(training_step(encoder, optimizer, episode))
        return losses
    return wrong


def predict_with(mode="eval", together=False, sign=-1, prototypes="mean", labels=False):
    """The reference prediction with one thing changed."""
    def wrong(encoder, support_x, support_y, query_x):
        encoder.train(mode == "train")
        with torch.no_grad():
            if together:
                z_s, z_q = encoder(torch.cat([support_x, query_x])).split([len(support_x), len(query_x)])
            else:
                z_s, z_q = encoder(support_x), encoder(query_x)
            ways = int(support_y.max()) + 1
            if prototypes == "sorted":
                c = z_s.reshape(ways, -1, z_s.shape[1]).mean(1)
            elif prototypes == "first":
                c = torch.stack([z_s[support_y == k][0] for k in range(ways)])
            elif prototypes == "sum":
                c = F.one_hot(support_y, ways).to(z_s.dtype).T @ z_s
            else:
                c = protonet.prototypes(z_s, support_y, ways)
            scores = sign * protonet.squared_euclidean(z_q, c)
            return scores.argmax(1) if labels else scores
    return wrong


BUILD_IT_WRONG = [
    ("check_training_step", step_with(labels="support"), "SUPPORT labels"),
    ("check_training_step", step_with(scored="support"), "loss was taken on the support set"),
    ("check_training_step", step_with(prototypes_from="query"), "built from the queries"),
    ("check_training_step", step_with(distance="plain"), "SQUARED"),
    ("check_training_step", step_with(zero_grad=False), "zero_grad"),
    ("check_training_step", step_with(step=False), "did not change"),
    ("check_training_step", step_with(clear_after_backward=True), "did not change"),
    ("check_training_step", step_with(mode="eval"), "eval mode"),
    ("check_train_protonet", train_with(draw="once"), "new episode"),
    ("check_train_protonet", train_with(draw="same seed"), "same episode"),
    ("check_train_protonet", train_with(optimizer_per_step=True), "new optimizer"),
    ("check_train_protonet", train_with(lr_used=1e-3), "learning rate lr"),
    ("check_train_protonet", train_with(draw="unseeded"), "same seed gave different losses"),
    ("check_train_protonet", train_with(seed_used=0), "drew the same episodes"),
    ("check_train_protonet", train_with(train_mode=False), "eval mode"),
    ("check_protonet_predict", predict_with(mode="train"), "transductive leak"),
    ("check_protonet_predict", predict_with(mode="train", together=True), "transductive leak"),
    ("check_protonet_predict", predict_with(sign=1), "FARTHEST"),
    ("check_protonet_predict", predict_with(prototypes="sorted"), "sorted by class"),
    ("check_protonet_predict", predict_with(prototypes="first"), "all shots"),
    ("check_protonet_predict", predict_with(prototypes="sum"), "MEAN"),
    ("check_protonet_predict", predict_with(labels=True), "one score per query and class"),
]


@pytest.mark.parametrize("check, wrong, words", BUILD_IT_WRONG,
                         ids=[f"{check}-{i}" for i, (check, _, _) in enumerate(BUILD_IT_WRONG)])
def test_build_it_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, by a message that starts with the check's name and names the mistake."""
    assert_rejected_in_plain_words(checks, check, wrong, words)


def test_unfinished_exercises_surface():
    """A placeholder's NotImplementedError reaches the student unchanged from every check."""
    assert_unfinished_exercises_surface(checks, "check_prototypical_loss", "check_matching_probabilities",
                                        "check_training_step", "check_train_protonet", "check_protonet_predict")


def test_train_protonet_reaches_the_student_step_unfinished():
    """A finished loop over an unfinished step surfaces the step's NotImplementedError, not a check failure."""
    def unfinished(*args):
        raise NotImplementedError("Exercise: write this part")
    with pytest.raises(NotImplementedError):
        checks.check_train_protonet(notebook_solution(NOTEBOOK, "train_protonet", training_step=unfinished))
