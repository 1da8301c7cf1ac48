"""Checks for the exercises of notebook 08: general-purpose in-context learning (GPICL)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, diagnose, fail, fail_if, passed, run_for_items, run_for_tensor


def check_task_batch(make_task_batch: Callable) -> None:
    """``make_task_batch(x [L, d], classes [L], W [d, k], perm [C]) -> (inputs [L, k], labels [L])``:
    ``inputs = x @ W`` (the task's projection of every example) and ``labels[t] = perm[classes[t]]``."""
    name = "check_task_batch"
    generator = torch.Generator().manual_seed(8)
    perm = torch.tensor([2, 0, 3, 1])  # class 0 -> label 2, class 1 -> label 0, ...
    classes = torch.tensor([0, 1, 2, 3, 1, 0, 2])
    cases = []
    for d, k in ((6, 3), (5, 5)):  # the square case catches W.T
        x = torch.randn(7, d, generator=generator)
        cases.append((x, torch.randn(d, k, generator=generator)))
    for x, W in cases:
        out = run_for_items(name, make_task_batch, x, classes, W, perm, count=2,
                            what="two things: (inputs, labels)")
        inputs, labels = (torch.as_tensor(v) for v in out)
        L, d, k = len(x), *W.shape
        fail_if(name, inputs.shape == x.shape and d != k and torch.allclose(inputs.float(), x),
                "the inputs are not projected: every task sees x through its own matrix, inputs = x @ W")
        fail_if(name, inputs.shape != (L, k), f"inputs must have one row of k = {k} numbers per example, shape "
                                              f"({L}, {k}); got {tuple(inputs.shape)}. Project with x @ W "
                                              "([L, d] @ [d, k])")
        fail_if(name, d == k and torch.allclose(inputs.float(), x @ W.T, atol=1e-5)
                and not torch.allclose(x @ W, x @ W.T),
                "you multiplied by W transposed: the projection is x @ W (W has shape [d, k], one column per "
                "output number)")
        fail_if(name, not torch.allclose(inputs.float(), x @ W, atol=1e-5),
                "inputs differ from x @ W: project every example with the same matrix W")
        fail_if(name, labels.shape != (L,),
                f"labels must have one entry per example, shape ({L},), got {tuple(labels.shape)}")
        labels = labels.long()
        fail_if(name, torch.equal(labels, classes),
                "the labels are not permuted: in this task class c is called perm[c]")
        fail_if(name, torch.equal(labels, torch.argsort(perm)[classes]),
                "you applied the inverse permutation: the label of class c is perm[c] (index perm BY the "
                "class), not the position of c in perm")
        fail_if(name, not torch.equal(labels, perm[classes]),
                f"expected labels {perm[classes].tolist()} (perm[classes]), got {labels.tolist()}")
    passed(name, len(cases))


def check_tokens(build_tokens: Callable) -> None:
    """``build_tokens(inputs [B, T, k], labels [B, T], num_classes) -> [B, T, k + C]``: token t of a sequence is
    ``[x_t, onehot(y_{t-1})]``, with zeros in the label part at t = 0 (nothing seen yet)."""
    name = "check_tokens"
    B, T, k, C = 3, 5, 2, 4
    inputs = torch.randn(B, T, k, generator=torch.Generator().manual_seed(80))
    labels = torch.tensor([[1, 2, 0, 0, 2], [2, 1, 1, 0, 1], [0, 0, 2, 1, 1]])  # never class C - 1
    one_hot = F.one_hot(labels, C).float()
    expected = torch.cat([inputs, F.pad(one_hot[:, :-1], (0, 0, 1, 0))], dim=-1)
    out = run_for_tensor(name, build_tokens, inputs, labels, C).float()
    fail_if(name, out.shape == (B, T, k + C - 1), f"the label part has {C - 1} numbers: one_hot(labels) guessed "
                                                  f"the number of classes from the largest label; pass "
                                                  f"num_classes = {C}")
    fail_if(name, out.shape == (B, T, k + 1), "the label part is one number: give the label as a one-hot vector "
                                              f"of num_classes = {C} numbers, so that no label is 'larger' than "
                                              "another")
    fail_if(name, out.shape == (B, T, 2 * k + C), "this is the pair token [x_t, onehot(y_(t-1)), x_(t-1)]: the "
                                                  "model appends x_(t-1) itself; return [x_t, onehot(y_(t-1))]")
    fail_if(name, out.shape != expected.shape, f"expected shape ({B}, {T}, {k + C}) = [x_t (k numbers), "
                                                f"onehot(y_(t-1)) (C numbers)], got {tuple(out.shape)}")
    if torch.allclose(out, expected, atol=1e-6):
        passed(name, 1)
        return
    x_part, y_part = out[..., :k], out[..., k:]
    if not torch.allclose(x_part, inputs, atol=1e-6):
        fail_if(name, torch.allclose(out[..., C:], inputs, atol=1e-6),
                "the parts are in the wrong order: token t is [x_t, onehot(y_(t-1))], the input first")
        fail(name, "the first k numbers of token t must be the input x_t of the same position")
    diagnose(name, y_part, [
        (one_hot, "token t holds the label y_t of the same position: the model would read the answer it must "
                  "predict. Shift by one position: onehot(y_(t-1))"),
        (torch.cat([one_hot[:, -1:], one_hot[:, :-1]], 1),
         "token 0 holds the LAST label of the sequence (torch.roll wraps around): at t = 0 nothing has been "
         "seen, use zeros"),
        (F.pad(one_hot[:, 1:], (0, 0, 0, 1)), "shifted the wrong way: token t must hold the PREVIOUS label "
                                              "y_(t-1), not the next one's"),
        (F.pad(one_hot[:-1], (0, 0, 0, 0, 1, 0)),
         "you shifted along the batch axis (dim 0): each sequence is its own task, shift along the positions "
         "(dim 1)"),
        (torch.cat([F.one_hot(torch.zeros(B, 1, dtype=torch.long), C).float(), one_hot[:, :-1]], 1),
         "token 0 holds the one-hot of class 0: at t = 0 there is no previous label, the label part must be "
         "all zeros"),
    ], f"the label part should be {expected[0, :, k:].int().tolist()} for sequence 0, got "
       f"{y_part[0].tolist()}", tol=1e-6)


def check_accuracy_by_position(accuracy_by_position: Callable) -> None:
    """``accuracy_by_position(logits [S, L, C], targets [S, L]) -> [L]``: at every position t, the fraction of
    the S sequences whose prediction (argmax over classes) equals the target."""
    name = "check_accuracy_by_position"
    S, L, C = 5, 4, 3
    targets = torch.tensor([[0, 1, 2, 0], [1, 1, 2, 2], [2, 1, 0, 0], [0, 0, 0, 1], [1, 2, 2, 2]])
    predicted = torch.tensor([[0, 1, 2, 0], [0, 1, 2, 2], [1, 1, 0, 2], [2, 0, 1, 1], [0, 2, 2, 2]])
    logits = torch.full((S, L, C), -1.0).scatter(2, predicted.unsqueeze(-1), 2.0)
    logits[0, 0] = torch.tensor([1.5, 1.0, -1.0])  # a confident-ish right answer, not exactly one-hot
    correct = (predicted == targets).float()
    expected = correct.mean(0)
    out = run_for_tensor(name, accuracy_by_position, logits, targets).float()
    fail_if(name, out.shape == (S,), f"you averaged over positions (one number per sequence): average over the "
                                     f"S sequences (dim 0) instead, to get one accuracy per position, shape "
                                     f"({L},)")
    fail_if(name, out.shape != (L,), f"return one accuracy per position, shape ({L},), got {tuple(out.shape)}")
    if not torch.allclose(out, expected):
        probs = logits.softmax(-1)
        probabilities = "these are probabilities: count the predictions that are right, " \
                        "(logits.argmax(-1) == targets), and average those"
        diagnose(name, out, [
            (100 * expected, "return fractions in [0, 1], not percentages"),
            (correct.sum(0),
             "these are counts of right answers: divide by the number of sequences (take the mean)"),
            (correct.mean(0).cumsum(0) / torch.arange(1, L + 1),
             "this is the running accuracy up to t: return the accuracy AT each position t"),
            (probs.gather(2, targets.unsqueeze(-1)).squeeze(-1).mean(0), probabilities),
            (probs.max(-1).values.mean(0), probabilities),
        ], f"expected {expected.tolist()}, got {out.tolist()}", tol=1e-4)
    passed(name, 1)


# ---------------------------------------------------------------- the assignment: build it


def _task(name: str, make_task: Callable, seed: int, data_dim: int, input_dim: int, num_classes: int):
    W, perm = run_for_items(name, make_task, seed, data_dim, input_dim, num_classes, count=2,
                            what="two things: (W, perm)")
    return torch.as_tensor(W).float(), torch.as_tensor(perm).long()


def check_make_task(make_task: Callable) -> None:
    """``make_task(seed, data_dim, input_dim, num_classes) -> (W [data_dim, input_dim], perm [num_classes])``: the
    task of one seed, the same every time it is asked for: ``W ~ N(0, 1/data_dim)`` and a permutation of the
    classes, both drawn from a generator seeded with ``seed``."""
    name = "check_make_task"
    d, k, C = 400, 16, 10
    W, perm = _task(name, make_task, 7, d, k, C)
    fail_if(name, W.shape == (k, d), f"W has shape ({k}, {d}): it maps an image of data_dim = {d} numbers to "
                                     f"input_dim = {k}, so x @ W needs W of shape ({d}, {k})")
    fail_if(name, W.shape != (d, k), f"W must have shape (data_dim, input_dim) = ({d}, {k}), got {tuple(W.shape)}")
    fail_if(name, perm.shape != (C,), f"perm must have one label per class, shape ({C},), got {tuple(perm.shape)}")
    fail_if(name, not torch.equal(perm.sort().values, torch.arange(C)),
            f"perm = {perm.tolist()} is not a permutation of 0..{C - 1}: every class must get a different label "
            "(torch.randperm, not torch.randint)")
    torch.randn(3)  # moves the global random state: the task of a seed must not depend on it
    W_again, perm_again = _task(name, make_task, 7, d, k, C)
    fail_if(name, not (torch.equal(W, W_again) and torch.equal(perm, perm_again)),
            "the same seed gave a different task the second time: a task is its seed. Draw W and perm from "
            "torch.Generator().manual_seed(seed), not from the global random state")
    tasks = [_task(name, make_task, seed, d, k, C) for seed in range(1, 13)]
    fail_if(name, any(torch.equal(tasks[i][0], tasks[j][0]) for i in range(len(tasks)) for j in range(i)),
            "two different seeds gave the same W: every task has its own projection, drawn from its seed")
    fail_if(name, all(torch.equal(p, torch.arange(C)) for _, p in tasks),
            "the labels are not permuted: perm is 0, 1, ..., C-1 for every task; draw a random permutation")
    fail_if(name, all(torch.equal(p, tasks[0][1]) for _, p in tasks),
            "every seed gave the same permutation: each task relabels the classes its own way")
    values = torch.stack([w for w, _ in tasks])
    mean, std = float(values.mean()), float(values.std())
    fail_if(name, abs(mean) > 0.2 / math.sqrt(d), f"the entries of W have mean {mean:.3g}: draw them from a "
                                                  "normal distribution with mean 0 (torch.randn)")
    for wrong, message in (
            (1.0, "the entries of W have standard deviation 1: scale them by 1/sqrt(data_dim) (variance 1/d), so "
                  "that a projected input has numbers of size 1 whatever the image size"),
            (1.0 / d, "the entries of W have standard deviation 1/data_dim: the variance is 1/data_dim, so the "
                      "standard deviation is 1/sqrt(data_dim)"),
            (1.0 / k, "the entries of W have standard deviation 1/input_dim: use 1/sqrt(data_dim)"),
            (1.0 / math.sqrt(k), "the entries of W have standard deviation 1/sqrt(input_dim): use "
                                 "1/sqrt(data_dim)"),
            (1.0 / math.sqrt(d), None)):
        if abs(std / wrong - 1) < 0.1:
            fail_if(name, message is not None, message or "")
            break
    else:
        fail(name, f"the entries of W should have standard deviation 1/sqrt({d}) = {1 / math.sqrt(d):.4f}, got "
                   f"{std:.4f}")
    passed(name, 3)


def check_sample_sequences(sample_sequences: Callable, make_task: Callable) -> None:
    """``sample_sequences(inputs [N, d], classes [N], task_seeds [B], seq_len, generator) -> (x [B, T, k],
    y [B, T])``: sequence b holds T examples drawn at random with ``generator``, all projected with the one W of
    task ``task_seeds[b]`` and labelled with its one permutation (``make_task``, already checked)."""
    name = "check_sample_sequences"
    N, d, C, T = 40, 12, 10, 16
    inputs = torch.randn(N, d, generator=torch.Generator().manual_seed(81))
    classes = torch.arange(N) % C
    task_seeds = torch.tensor([5, 123, 5, 77])
    out = run_for_items(name, sample_sequences, inputs, classes, task_seeds, T,
                        torch.Generator().manual_seed(0), count=2, what="two things: (x, y)")
    x, y = torch.as_tensor(out[0]).float(), torch.as_tensor(out[1])
    B = len(task_seeds)
    fail_if(name, x.ndim != 3 or x.shape[:2] != (B, T),
            f"x must have shape (B, T, input_dim) = ({B}, {T}, input_dim): one row of examples per task seed, "
            f"got {tuple(x.shape)}")
    fail_if(name, y.shape != (B, T), f"y must have shape (B, T) = ({B}, {T}), got {tuple(y.shape)}")
    y = y.long()
    k = x.shape[-1]
    tasks = [_task(name, make_task, int(seed), d, k, C) for seed in task_seeds]
    rows = []  # the image behind every example, found from its projection

    def nearest_image(sequence, W):
        """For every example of ``sequence``, the image whose projection it is (distance, index)."""
        projected = inputs @ W  # [N, k]: every image as this task sees it
        distance = (sequence.unsqueeze(1) - projected.unsqueeze(0)).norm(dim=-1)  # [T, N]
        nearest = distance.min(1)
        return bool((nearest.values < 1e-4 * (1 + projected.norm(dim=1).mean())).all()), nearest.indices

    for b, (W, perm) in enumerate(tasks):
        found, index = nearest_image(x[b], W)
        if not found:
            fail_if(name, b > 0 and task_seeds[b] != task_seeds[0] and nearest_image(x[b], tasks[0][0])[0],
                    f"sequence {b} is projected with the W of task_seeds[0]: each sequence uses the task of its "
                    "own seed")
            fail_if(name, nearest_image(x[b], _task(name, make_task, b, d, k, C)[0])[0],
                    f"sequence {b} is projected with make_task({b}): the seed of sequence b is task_seeds[b], not b")
            fail(name, f"sequence {b} (seed {int(task_seeds[b])}) holds inputs that are not image @ W for the W "
                       f"of make_task({int(task_seeds[b])}): project EVERY example of a sequence with the one W "
                       "of its task (one projection per task, not per example)")
        rows.append(index)
        right = perm[classes[index]]
        if not torch.equal(y[b], right):
            fail_if(name, torch.equal(y[b], classes[index]),
                    "the labels are the original classes: relabel class c as perm[c] of the sequence's task")
            fail_if(name, torch.equal(y[b], torch.argsort(perm)[classes[index]]),
                    "you applied the inverse permutation: the label of class c is perm[c]")
            fail(name, f"sequence {b}: labels {y[b].tolist()}, expected {right.tolist()} (perm[class] with the "
                       f"perm of make_task({int(task_seeds[b])})): relabel every example of a sequence with the "
                       "one permutation of its task (one permutation per task, not per example)")
    rows = torch.stack(rows)
    fail_if(name, all(torch.equal(r, torch.arange(T)) for r in rows),
            f"every sequence holds images 0..{T - 1} in order: draw the examples at random (with generator)")
    fail_if(name, len(rows.unique()) < T, "the sequences repeat very few images: draw each example at random "
                                          "from all N images")
    again = run_for_items(name, sample_sequences, inputs, classes, task_seeds, T,
                          torch.Generator().manual_seed(0), count=2, what="two things: (x, y)")
    other = run_for_items(name, sample_sequences, inputs, classes, task_seeds, T,
                          torch.Generator().manual_seed(1), count=2, what="two things: (x, y)")
    fail_if(name, not torch.allclose(torch.as_tensor(again[0]).float(), x),
            "the same generator seed gave other examples: draw the examples with the generator you are given, "
            "so that a run can be repeated")
    fail_if(name, torch.allclose(torch.as_tensor(other[0]).float(), x),
            "another generator gave the same examples: draw the examples with the generator you are given")
    passed(name, 3)


def check_position_study(position_study: Callable) -> None:
    """``position_study(learner, sample_tokens, pool_seeds, sequences, generator) -> (seen [T], unseen [T])``:
    accuracy at every position on ``sequences`` sequences of tasks drawn from the training pool ``pool_seeds``
    and on as many of tasks outside it (``sample_tokens(task_seeds) -> tokens, targets``,
    ``learner(tokens) -> logits``)."""
    name = "check_position_study"
    T, C, S = 6, 5, 40
    pool = torch.tensor([3, 17, 42, 99, 123, 256, 500])  # any set of seeds, not 0..M-1
    calls = []

    def sample_tokens(task_seeds):
        seeds = torch.as_tensor(task_seeds).long().flatten()
        calls.append(seeds.clone())
        positions = torch.arange(T).expand(len(seeds), T)
        tokens = torch.stack([seeds.unsqueeze(1).expand(-1, T), positions], dim=-1).double()  # exact seeds
        return tokens, (seeds.unsqueeze(1) * 7 + positions * 3) % C

    def right(seeds, positions):  # the fake learner's answers: varied over sequences and positions
        in_pool = torch.isin(seeds, pool)
        return torch.where(in_pool, (seeds * 5 + positions) % 4 < 1 + positions // 2,
                           (seeds * 3 + positions) % 5 == 0)

    def learner(tokens):
        seeds, positions = tokens[..., 0].round().long(), tokens[..., 1].round().long()
        targets = (seeds * 7 + positions * 3) % C
        predicted = torch.where(right(seeds, positions), targets, (targets + 1) % C)
        return F.one_hot(predicted, C).float() * 3.0

    out = run_for_items(name, position_study, learner, sample_tokens, pool, S, torch.Generator().manual_seed(0),
                        count=2, what="two things: (seen, unseen), one accuracy curve each")
    seen, unseen = (torch.as_tensor(v).float() for v in out)
    fail_if(name, not calls, "call sample_tokens(task_seeds) to draw the sequences of the tasks you study")
    seeds = torch.cat(calls)
    in_pool = torch.isin(seeds, pool)
    fail_if(name, len(seeds) != 2 * S, f"sample_tokens drew {len(seeds)} sequences in all: study {S} sequences of "
                                       f"seen tasks and {S} of unseen tasks ({2 * S})")
    fail_if(name, int(in_pool.sum()) == 2 * S,
            "your unseen tasks are drawn from the training seed set: every seed you studied is in pool_seeds, so "
            "the 'unseen' curve measures memorised tasks. Pick seeds outside the pool")
    fail_if(name, int(in_pool.sum()) > S, f"{int(in_pool.sum()) - S} of your unseen tasks are in the training "
                                          "pool: an unseen task's seed must not be in pool_seeds (the pool need "
                                          "not be 0..M-1)")
    fail_if(name, int(in_pool.sum()) < S, "some of your seen tasks are not in the pool: draw the seen tasks' "
                                          "seeds from pool_seeds")
    fail_if(name, len(seeds[in_pool].unique()) < 3,
            "your seen sequences use one or two tasks of the pool: draw the seen seeds at random from the pool")
    fail_if(name, len(seeds[~in_pool].unique()) < S // 2,
            "your unseen sequences repeat a few tasks: give every unseen sequence its own new seed")
    positions = torch.arange(T).expand(len(seeds), T)
    correct = right(seeds.unsqueeze(1).expand(-1, T), positions).float()
    expected_seen, expected_unseen = correct[in_pool].mean(0), correct[~in_pool].mean(0)
    for curve, what in ((seen, "seen"), (unseen, "unseen")):
        fail_if(name, curve.shape == (S,), f"the {what} curve has one number per sequence (averaged over "
                                           f"positions): average over the sequences instead, one accuracy per "
                                           f"position, shape ({T},)")
        fail_if(name, curve.shape != (T,), f"the {what} curve must have one accuracy per position, shape ({T},), "
                                           f"got {tuple(curve.shape)}")
    fail_if(name, close(seen, expected_unseen) and close(unseen, expected_seen),
            "seen and unseen are swapped: return (seen, unseen)")
    for curve, expected, what in ((seen, expected_seen, "seen"), (unseen, expected_unseen, "unseen")):
        fail_if(name, close(curve, 100 * expected), f"the {what} curve is in percent: return fractions in [0, 1]")
        fail_if(name, not close(curve, expected, 1e-4),
                f"the {what} curve should be {[round(v, 3) for v in expected.tolist()]}, got "
                f"{[round(v, 3) for v in curve.tolist()]}: at each position, the fraction of the {what} tasks' "
                "sequences whose argmax prediction is right")
    passed(name, 1)
