"""Notebook 05's exercise checks accept the reference solutions and reject typical mistakes in plain words."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.sequence_learners import shifted_label_inputs
from course_lib.teaching.checks import nb05 as checks
from course_lib.teaching.checks.common import ExerciseError
from course_lib.teaching.checks.nb05 import _TinyRNN
from exercise_checks import assert_rejected_in_plain_words, assert_unfinished_exercises_surface, notebook_solution

NOTEBOOK = "05_black_box"  # the reference solutions are its own, defined from its source

shifted_reference = notebook_solution(NOTEBOOK, "shifted_label_inputs")
ucb_reference = notebook_solution(NOTEBOOK, "ucb1_scores")


WRONG_05 = [
    (checks.check_shifted_label_inputs, lambda y, q, w: F.one_hot(y, w).float(), "answer"),
    (checks.check_shifted_label_inputs, lambda y, q, w: torch.roll(F.one_hot(y, w).float() * (~q).float()[:, None], 1, 0), "wraps"),
    (checks.check_shifted_label_inputs, lambda y, q, w: torch.cat([torch.zeros(1, w), F.one_hot(y[:-1], w).float()]), "query"),
    (checks.check_shifted_label_inputs, lambda y, q, w: torch.cat([F.one_hot(y[1:], w).float(), torch.zeros(1, w)]), "wrong way"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: s / n.clamp(min=1) + torch.sqrt(c * math.log(t) / n.clamp(min=1)), "never pulled"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s / n.clamp(min=1)), "exploration bonus"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s / n.clamp(min=1) + c * math.log(t) / n.clamp(min=1)), "square root"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s / n.clamp(min=1) + torch.sqrt(c * t / n.clamp(min=1))), "LOG"),
    (checks.check_ucb1_scores, lambda s, n, t, c=2.0: torch.where(n == 0, torch.tensor(math.inf), s + torch.sqrt(c * math.log(t) / n.clamp(min=1))), "MEAN"),
]


@pytest.mark.parametrize(
    "check, solution",
    [(checks.check_shifted_label_inputs, shifted_reference), (checks.check_ucb1_scores, ucb_reference)],
    ids=["shifted_label_inputs", "ucb1_scores"],
)
def test_notebook_05_reference_solutions_pass(check, solution, capsys):
    """The reference solution of each notebook-05 exercise passes its check."""
    check(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, words", WRONG_05, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(WRONG_05)])
def test_notebook_05_typical_mistakes_are_rejected_in_plain_words(check, wrong, words):
    """Each typical mistake is rejected, and the message names the mistake."""
    with pytest.raises(ExerciseError, match=words):
        check(wrong)


def test_checks_agree_with_the_library():
    """The library's own function passes the check (the notebook's solution calls the same maths)."""
    from course_lib import sequence_learners

    checks.check_shifted_label_inputs(sequence_learners.shifted_label_inputs)


# ---------------- The build-it assignment


episode_sequence = notebook_solution(NOTEBOOK, "episode_sequence")


def episode_sequence_loop(pool, ways, shots, queries, generator):
    """Another correct form: python lists, classes sorted and then relabelled by a permutation, one shuffle of
    the support list, the label slot written row by row."""
    classes = sorted(torch.randperm(len(pool), generator=generator)[:ways].tolist())
    relabel = torch.randperm(ways, generator=generator).tolist()
    support, query = [], []
    for c, label in zip(classes, relabel):
        chosen = torch.randperm(pool.shape[1], generator=generator)[: shots + queries].tolist()
        support += [(pool[c, p], label) for p in chosen[:shots]]
        query += [(pool[c, p], label) for p in chosen[shots:]]
    support = [support[i] for i in torch.randperm(len(support), generator=generator).tolist()]
    query = [query[i] for i in torch.randperm(len(query), generator=generator).tolist()]
    steps = support + query
    rows, targets = [], []
    for t, (x, y) in enumerate(steps):
        slot = torch.zeros(ways)
        if 0 < t <= len(support):
            slot[steps[t - 1][1]] = 1.0
        rows.append(torch.cat([x, slot]))
        targets.append(y)
    is_query = torch.tensor([False] * len(support) + [True] * len(query))
    return torch.stack(rows), torch.tensor(targets), is_query


def _variant(**bug):
    """episode_sequence with one typical mistake."""

    def sequence(pool, ways, shots, queries, generator):
        gen = None if bug.get("global_rng") else generator
        d = pool.shape[-1]
        classes = torch.randperm(len(pool), generator=gen)[:ways]
        if bug.get("sorted_classes"):
            classes = classes.sort().values
        examples = torch.stack([torch.randperm(pool.shape[1], generator=gen)[: shots + queries] for _ in classes])
        if bug.get("query_in_support"):
            examples[:, shots:] = examples[:, :1]
        points = pool[classes[:, None], examples]
        labels = torch.arange(ways)[:, None].expand(-1, shots + queries)
        support_order = torch.randperm(ways * shots, generator=gen)
        query_order = torch.randperm(ways * queries, generator=gen)
        if bug.get("support_in_order"):
            support_order = torch.arange(ways * shots)
        if bug.get("queries_in_order"):
            query_order = torch.arange(ways * queries)
        x = torch.cat([points[:, :shots].reshape(-1, d)[support_order],
                       points[:, shots:].reshape(-1, d)[query_order]])
        targets = torch.cat([labels[:, :shots].reshape(-1)[support_order],
                             labels[:, shots:].reshape(-1)[query_order]])
        is_query = torch.arange(len(targets)) >= ways * shots
        one_hot = F.one_hot(targets, ways).float()
        slot = {
            "own_label": one_hot,
            "cs330": one_hot * (~is_query).float()[:, None],
            "next_label": F.pad(one_hot[1:], (0, 0, 0, 1)),
            "first_is_last": torch.cat([one_hot[-1:], shifted_label_inputs(targets, is_query, ways)[1:]]),
            "query_leak": F.pad(one_hot[:-1], (0, 0, 1, 0)),
        }.get(bug.get("slot"), shifted_label_inputs(targets, is_query, ways))
        if bug.get("label_first"):
            return torch.cat([slot, x], dim=1), targets, is_query
        return torch.cat([x, slot], dim=1), targets, is_query

    return sequence


EPISODE_BUGS = [
    (_variant(slot="own_label"), "leak"),
    (_variant(slot="cs330"), "OWN label"),
    (_variant(slot="next_label"), "wrong way"),
    (_variant(slot="first_is_last"), "t = 0"),
    (_variant(slot="query_leak"), "query's label"),
    (_variant(sorted_classes=True), "follow the class ids"),
    (_variant(support_in_order=True), "Shuffle the support"),
    (_variant(queries_in_order=True), "Shuffle the queries"),
    (_variant(query_in_support=True), "appears twice"),
    (_variant(global_rng=True), "generator"),
    (_variant(label_first=True), "first d columns"),
]


@pytest.mark.parametrize("solution", [episode_sequence, episode_sequence_loop, _variant()], ids=["ref", "loop", "v"])
def test_episode_sequence_accepts_correct_forms(solution, capsys):
    checks.check_episode_sequence(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, words", EPISODE_BUGS, ids=[w for _, w in EPISODE_BUGS])
def test_episode_sequence_rejects_typical_mistakes(wrong, words):
    assert_rejected_in_plain_words(checks, "check_episode_sequence", wrong, words)


training_step = notebook_solution(NOTEBOOK, "training_step")


def training_step_gather(model, optimizer, inputs, targets, is_query):
    """Another correct form: log-softmax and gather, a float mask, zero_grad after the step, tensors returned."""
    log_p = model(inputs).log_softmax(-1)
    picked = log_p.gather(-1, targets[..., None]).squeeze(-1)
    mask = is_query.float()
    loss = -(picked * mask).sum() / mask.sum()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    hits = (log_p.argmax(-1) == targets).float()
    return loss.detach(), (hits * mask).sum() / mask.sum()


def _step_variant(bug):
    def step(model, optimizer, inputs, targets, is_query):
        logits = model(inputs)
        if bug == "all_steps":
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        elif bug == "support":
            loss = F.cross_entropy(logits[~is_query], targets[~is_query])
        elif bug == "probabilities":
            loss = F.cross_entropy(logits[is_query].softmax(-1), targets[is_query])
        elif bug == "sum":
            loss = F.cross_entropy(logits[is_query], targets[is_query], reduction="sum")
        else:
            loss = F.cross_entropy(logits[is_query], targets[is_query])
        if bug != "no_zero_grad":
            optimizer.zero_grad()
        if bug == "in_place":
            inputs[..., -1] = 0
        if bug == "ascent":
            (-loss).backward()
        else:
            loss.backward()
        if bug != "no_step":
            optimizer.step()
        hits = logits.argmax(-1) == targets
        accuracy = hits.float().mean() if bug == "accuracy_all" else hits[is_query].float().mean()
        return loss.item(), accuracy.item()

    return step


STEP_BUGS = [
    ("all_steps", "includes the support steps"),
    ("support", "instead of the queries"),
    ("probabilities", "probabilities"),
    ("sum", "do not sum"),
    ("no_zero_grad", "zero_grad"),
    ("no_step", "optimizer.step()"),
    ("ascent", "does not follow the gradient"),
    ("accuracy_all", "support steps too"),
    ("in_place", "in place"),
]


@pytest.mark.parametrize("solution", [training_step, training_step_gather], ids=["ref", "gather"])
def test_training_step_accepts_correct_forms(solution, capsys):
    checks.check_training_step(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("bug, words", STEP_BUGS, ids=[b for b, _ in STEP_BUGS])
def test_training_step_rejects_typical_mistakes(bug, words):
    assert_rejected_in_plain_words(checks, "check_training_step", _step_variant(bug), words)


meta_train = notebook_solution(NOTEBOOK, "meta_train")


def meta_train_one_generator(model, pool, steps, *, ways, shots, queries, batch_size, lr, seed):
    """Another correct form: one generator for the whole run (seeded once), a list comprehension per part."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr)
    history = []
    for _ in range(steps):
        batch = [episode_sequence(pool, ways, shots, queries, generator) for _ in range(batch_size)]
        inputs = torch.stack([b[0] for b in batch])
        targets = torch.stack([b[1] for b in batch])
        is_query = torch.stack([b[2] for b in batch])
        history.append(float(training_step(model, optimizer, inputs, targets, is_query)[1]))
    return history


def _loop_variant(bug):
    def loop(model, pool, steps, *, ways, shots, queries, batch_size, lr, seed):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        history = []
        fixed = None
        for step in range(steps if bug != "off_by_one" else steps - 1):
            if bug == "new_optimizer":
                optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            generator = torch.Generator().manual_seed((0 if bug == "ignores_seed" else seed) * 1_000_003
                                                      + (0 if bug == "same_generator" else step))
            if bug == "one_batch" and fixed is not None:
                batch = fixed
            else:
                count = 1 if bug == "one_episode" else batch_size
                batch = [episode_sequence(pool, ways, shots, queries, generator) for _ in range(count)]
                fixed = batch
            inputs, targets, is_query = (torch.stack(parts) for parts in zip(*batch))
            loss, accuracy = training_step(model, optimizer, inputs, targets, is_query)
            history.append(loss if bug == "loss_history" else accuracy)
        return history

    return loop


LOOP_BUGS = [
    ("new_optimizer", "create the optimizer once"),
    ("same_generator", "same episodes"),
    ("ignores_seed", "use `seed`"),
    ("one_batch", "fresh batch"),
    ("one_episode", "batch_size new episode"),
    ("off_by_one", "one query accuracy per step"),
    ("loss_history", "fractions in [0, 1]"),
]


@pytest.mark.parametrize("solution", [meta_train, meta_train_one_generator], ids=["ref", "one_generator"])
def test_meta_train_accepts_correct_forms(solution, capsys):
    checks.check_meta_train(solution)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("bug, words", LOOP_BUGS, ids=[b for b, _ in LOOP_BUGS])
def test_meta_train_rejects_typical_mistakes(bug, words):
    assert_rejected_in_plain_words(checks, "check_meta_train", _loop_variant(bug), words)


def test_unfinished_exercises_surface():
    """An untouched placeholder's NotImplementedError reaches the student, not a wrapped error."""
    assert_unfinished_exercises_surface(checks, "check_shifted_label_inputs", "check_ucb1_scores",
                                        "check_episode_sequence", "check_training_step")


def test_meta_train_check_surfaces_an_unfinished_piece():
    """A student whose episode_sequence is still the placeholder sees its NotImplementedError from meta_train."""
    def unfinished(*args):
        raise NotImplementedError("Exercise: write this part")

    with pytest.raises(NotImplementedError):
        checks.check_meta_train(notebook_solution(NOTEBOOK, "meta_train", episode_sequence=unfinished))


def test_the_tiny_model_is_a_sequence_model():
    assert _TinyRNN(5, 3)(torch.zeros(2, 4, 5)).shape == (2, 4, 3)
