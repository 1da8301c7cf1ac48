"""Checks for the exercises of notebook 05: black-box meta-learning."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .common import close, diagnose, fail, fail_if, passed, run_for_items, run_for_tensor, run_student

WRAPS_AROUND = ("row 0 holds the last label (torch.roll wraps around): at t = 0 no label has been seen, "
                "use zeros")


def check_shifted_label_inputs(shifted_label_inputs: Callable) -> None:
    """``shifted_label_inputs(labels [L], is_query [L] bool, ways) -> [L, ways]``: row t is
    onehot(labels[t-1]) when step t-1 is a support step, zeros at t = 0 and after a query."""
    name = "check_shifted_label_inputs"
    labels = torch.tensor([1, 0, 2, 2, 0, 1, 2])
    is_query = torch.tensor([False, False, False, False, True, True, True])
    out = run_for_tensor(name, shifted_label_inputs, labels, is_query, 3).float()
    fail_if(name, out.shape != (7, 3),
            f"return one row of length ways per step, shape (7, 3), got {tuple(out.shape)}")
    one_hot = F.one_hot(labels, 3).float()
    expected = torch.zeros(7, 3)
    expected[1:5] = one_hot[:4]
    if not torch.equal(out, expected):
        fail_if(name, torch.equal(out, one_hot) or torch.equal(out, one_hot * (~is_query).float()[:, None]),
                "row t holds the label of step t itself: the model would read the answer it must predict. "
                "Shift by one: row t = onehot(labels[t-1])")
        fail_if(name, torch.equal(out[0], one_hot[-1]), WRAPS_AROUND)
        fail_if(name, torch.equal(out[:-1], one_hot[1:]),
                "shifted the wrong way: row t must hold the PREVIOUS step's label, not the next one's")
        fail_if(name, (out[5:] != 0).any(), "a query's label is given to the next step: after a query step "
                                            "the label input must be zeros, else the model is told the answers "
                                            "of the queries")
        fail(name, f"expected {expected.int().tolist()}, got {out.int().tolist()}")
    # A sequence that ends on a support step: nothing may wrap around to t = 0.
    all_support = torch.zeros(3, dtype=torch.bool)
    tail = run_for_tensor(name, shifted_label_inputs, torch.tensor([0, 1, 1]), all_support, 2).float()
    fail_if(name, tail.shape == (3, 2) and tail[0].abs().sum() > 0, WRAPS_AROUND)
    fail_if(name, not torch.equal(tail, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])),
            f"for labels [0, 1, 1] (all support) expected [[0, 0], [1, 0], [0, 1]], got {tail.tolist()}")
    passed(name, 2)


def check_ucb1_scores(ucb1_scores: Callable) -> None:
    """``ucb1_scores(successes [K], counts [K], t, c=2.0) -> [K]``: mean + sqrt(c ln t / n), inf for untried
    arms."""
    name = "check_ucb1_scores"
    successes, counts, t = torch.tensor([3.0, 1.0, 0.0, 0.0]), torch.tensor([4.0, 2.0, 1.0, 0.0]), 7
    scores = run_for_tensor(name, ucb1_scores, successes, counts, t, 2.0).double()
    fail_if(name, scores.shape != (4,), f"return one score per arm, shape (4,), got {tuple(scores.shape)}")
    fail_if(name, not torch.isinf(scores[3]) or scores[3] < 0,
            "an arm never pulled must get score +inf, so that every arm is tried once")
    n, tried = counts[:3].double(), successes[:3].double()
    expected = tried / n + torch.sqrt(2.0 * math.log(t) / n)
    if not close(scores[:3], expected):
        diagnose(name, scores[:3], [
            (tried / n, "no exploration bonus: add sqrt(c ln t / n_k) to each arm's mean reward"),
            (tried / n + 2.0 * math.log(t) / n, "take the square root of the bonus: sqrt(c ln t / n_k)"),
            (tried / n + torch.sqrt(2.0 * t / n), "the bonus grows with the LOG of t: sqrt(c ln t / n_k)"),
            (tried + torch.sqrt(2.0 * math.log(t) / n),
             "use the MEAN reward of each arm (successes / pulls), not the number of successes"),
        ], f"expected {expected.tolist()} for the tried arms, got {scores[:3].tolist()}")
    passed(name, 1)


# ---------------- The build-it assignment: a meta-LSTM, end to end


def _identity_pool(classes: int, examples: int) -> torch.Tensor:
    """``[C, P, 3]``: example p of class c is the vector (c, p, 7), so every input names its source."""
    c, p = torch.meshgrid(torch.arange(classes), torch.arange(examples), indexing="ij")
    return torch.stack([c, p, torch.full_like(c, 7)], dim=-1).float()


def _shifted(targets: torch.Tensor, is_query: torch.Tensor, ways: int) -> torch.Tensor:
    previous = F.one_hot(targets[:-1], ways).float() * (~is_query[:-1]).float()[:, None]
    return F.pad(previous, (0, 0, 1, 0))


def _sequence(name: str, episode_sequence: Callable, pool, ways, shots, queries, generator):
    inputs, targets, is_query = run_for_items(name, episode_sequence, pool, ways, shots, queries, generator,
                                              count=3, what="three things: inputs, targets, is_query")
    return torch.as_tensor(inputs).float(), torch.as_tensor(targets).long(), torch.as_tensor(is_query).bool()


def check_episode_sequence(episode_sequence: Callable) -> None:
    """``episode_sequence(pool [C, P, d], ways, shots, queries, generator) -> (inputs [T, d + N], targets [T],
    is_query [T])``: N new classes with labels in a random order, the support steps shuffled, then the queries
    shuffled, each x_t next to the label slot of Exercise 1."""
    name = "check_episode_sequence"
    pool, ways, shots, queries, d = _identity_pool(12, 6), 3, 2, 1, 3
    T, n_support = ways * (shots + queries), ways * shots
    inputs, targets, is_query = _sequence(name, episode_sequence, pool, ways, shots, queries,
                                          torch.Generator().manual_seed(0))
    fail_if(name, inputs.shape != (T, d + ways) or targets.shape != (T,) or is_query.shape != (T,),
            f"for 3-way 2-shot with 1 query per class and d = 3 expect inputs of shape ({T}, {d + ways}), targets "
            f"and is_query of shape ({T},); got {tuple(inputs.shape)}, {tuple(targets.shape)}, "
            f"{tuple(is_query.shape)}")
    fail_if(name, not torch.equal(is_query, torch.arange(T) >= n_support),
            "the N*K support steps come first, then the N*Q queries (is_query marks the queries)")
    x, slot = inputs[:, :d], inputs[:, d:]
    fail_if(name, not (torch.all(x[:, 2] == 7) and torch.all(x[:, :2] == x[:, :2].round())),
            "the first d columns of each row must be the example x_t itself, then the N label columns")
    cls, example = x[:, 0].long(), x[:, 1].long()
    fail_if(name, len(set(cls.tolist())) != ways, f"an episode has N = {ways} different classes")
    fail_if(name, len(set(zip(cls.tolist(), example.tolist()))) != T,
            "an example appears twice in the sequence: a query must not also be a support example")
    for c in set(cls.tolist()):
        fail_if(name, int((cls[:n_support] == c).sum()) != shots or int((cls[n_support:] == c).sum()) != queries,
                "each class needs K support examples and Q queries")
    label_of = {}
    for c, y in zip(cls.tolist(), targets.tolist()):
        fail_if(name, label_of.setdefault(c, y) != y, "all examples of a class must have the same target label")
    fail_if(name, sorted(label_of.values()) != list(range(ways)), "the N classes take the labels 0..N-1")
    expected = _shifted(targets, is_query, ways)
    if not torch.equal(slot, expected):
        one_hot = F.one_hot(targets, ways).float()
        fail_if(name, torch.equal(slot, one_hot),
                "the label slot of step t holds y_t itself: a leak, the model would copy the answer it must "
                "predict (and learn nothing). Shift by one, as in Exercise 1")
        fail_if(name, torch.equal(slot, one_hot * (~is_query).float()[:, None]),
                "each support step holds its OWN label (CS330's format): this notebook's model predicts y_t "
                "before it is told, so step t must hold the label of step t-1 (Exercise 1)")
        fail_if(name, torch.equal(slot[:-1], one_hot[1:]),
                "shifted the wrong way: step t holds the NEXT step's label (the answer of step t+1); it must "
                "hold the label of step t-1")
        fail_if(name, slot[0].abs().sum() > 0, WRAPS_AROUND)
        fail_if(name, (slot[n_support + 1:] != 0).any(),
                "a query's label reaches the next step: after a query step the label slot must be zeros")
        fail(name, f"the label slot is not the shifted one-hot of Exercise 1: expected {expected.int().tolist()}, "
                   f"got {slot.int().tolist()}")
    again = _sequence(name, episode_sequence, pool, ways, shots, queries, torch.Generator().manual_seed(0))
    fail_if(name, not all(torch.equal(a, b) for a, b in zip(again, (inputs, targets, is_query))),
            "the same generator seed gave another episode: draw every random choice from `generator`")
    # Many episodes: what must vary from one episode to the next.
    generator = torch.Generator().manual_seed(1)
    sorted_labels = grouped_support = ordered_queries = 0
    class_sets = set()
    episodes = 60
    for _ in range(episodes):
        inputs, targets, is_query = _sequence(name, episode_sequence, pool, ways, shots, queries, generator)
        cls = inputs[:, 0].long()
        class_sets.add(tuple(sorted(set(cls.tolist()))))
        by_class = sorted(set(cls.tolist()))
        sorted_labels += [int(targets[cls == c][0]) for c in by_class] == list(range(ways))
        grouped_support += bool(torch.all(targets[1:n_support] >= targets[: n_support - 1]))
        ordered_queries += bool(torch.all(targets[n_support + 1:] >= targets[n_support:-1]))
    fail_if(name, len(class_sets) == 1, "every episode has the same classes: draw N new classes for each episode")
    fail_if(name, sorted_labels == episodes,
            "the labels follow the class ids (the smallest id always gets label 0): the network can learn "
            "each class's label by heart instead of reading it from the support set. Give the N classes "
            "the labels 0..N-1 in a random order, a new one in every episode")
    fail_if(name, grouped_support == episodes,
            "the support steps are always in class order (all 0s, then all 1s...): the label of a support step "
            "can be guessed from its position. Shuffle the support steps")
    fail_if(name, ordered_queries == episodes,
            "the queries always come in label order (0, 1, 2): their position gives the answer away. "
            "Shuffle the queries")
    passed(name, 3)


def check_training_step(training_step: Callable) -> None:
    """``training_step(model, optimizer, inputs [B, T, F], targets [B, T], is_query [B, T]) -> (loss, query
    accuracy)``: the cross-entropy of the query steps only, and one optimiser step from fresh gradients."""
    name = "check_training_step"
    ways, B, T, features = 3, 4, 6, 5
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(B, T, features, generator=generator)
    targets = torch.randint(0, ways, (B, T), generator=generator)
    is_query = (torch.arange(T) >= 3).expand(B, T).clone()
    torch.manual_seed(0)
    model = _TinyRNN(features, ways)
    reference = _TinyRNN(features, ways)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    inputs_before = inputs.clone()

    def expected_step():
        logits = reference(inputs)
        loss = F.cross_entropy(logits[is_query], targets[is_query])
        grads = torch.autograd.grad(loss, list(reference.parameters()))
        with torch.no_grad():
            for p, g in zip(reference.parameters(), grads):
                p -= 0.5 * g
        return logits.detach(), loss.item(), grads

    logits, expected_loss, grads = expected_step()
    loss, accuracy = run_for_items(name, training_step, model, optimizer, inputs, targets, is_query,
                                   count=2, what="two numbers: the loss and the query accuracy")
    loss, accuracy = float(loss), float(accuracy)
    fail_if(name, not torch.equal(inputs, inputs_before), "your function changed `inputs` in place: leave it as is")
    if not close(loss, expected_loss):
        diagnose(name, loss, [
            (F.cross_entropy(logits.flatten(0, 1), targets.flatten()),
             "the loss includes the support steps: score the query steps only (the support steps are the "
             "data the model learns from, not the test it is scored on)"),
            (F.cross_entropy(logits[~is_query], targets[~is_query]),
             "you scored the support steps instead of the queries: use the positions where is_query is True"),
            (F.cross_entropy(logits[is_query].softmax(-1), targets[is_query]),
             "cross_entropy takes logits: you passed probabilities (softmax applied twice)"),
            (F.cross_entropy(logits[is_query], targets[is_query], reduction="sum"),
             "average the cross-entropy over the query steps, do not sum it"),
            (-expected_loss, "the loss has the wrong sign: minimise the cross-entropy"),
        ], f"expected the query steps' cross-entropy {expected_loss:.4f}, got {loss:.4f}")
    query_hits = (logits.argmax(-1) == targets)
    if not close(accuracy, query_hits[is_query].float().mean()):
        diagnose(name, accuracy, [
            (query_hits.float().mean(), "the accuracy counts the support steps too: count the query steps only"),
            (query_hits[is_query].float().sum(), "return the accuracy as a fraction in [0, 1], not a count"),
        ], f"expected the query accuracy {query_hits[is_query].float().mean():.3f} (computed before the step), "
           f"got {accuracy:.3f}")
    after = list(model.parameters())
    fail_if(name, all(torch.equal(a, b) for a, b in zip(after, before)),
            "the parameters did not change: call loss.backward() and then optimizer.step()")
    fail_if(name, not all(close(a, b, 1e-4) for a, b in zip(after, reference.parameters())),
            "the step does not follow the gradient of the query loss: backward the loss you return, then step")
    # A second step on the same batch: the gradients of the first must not be added again.
    expected_step()
    run_for_items(name, training_step, model, optimizer, inputs, targets, is_query, count=2,
                  what="two numbers: the loss and the query accuracy")
    fail_if(name, not all(close(a, b, 1e-4) for a, b in zip(model.parameters(), reference.parameters())),
            "the second step used old gradients as well: call optimizer.zero_grad() before loss.backward(), "
            "or they add up from step to step")
    passed(name, 2)


class _TinyRNN(torch.nn.Module):
    """A small GRU and a linear head: the model the training checks train."""

    def __init__(self, features: int, ways: int) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(features, 8, batch_first=True)
        self.head = torch.nn.Linear(8, ways)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(inputs)[0])


def check_meta_train(meta_train: Callable) -> None:
    """``meta_train(model, pool, steps, *, ways, shots, queries, batch_size, lr, seed) -> history``: one Adam
    for the run; each step a fresh batch of ``batch_size`` episode sequences from a generator seeded by (seed,
    step), then one training step; history holds each step's query accuracy."""
    name = "check_meta_train"
    pool, ways, shots, queries, steps, batch_size = torch.randn(10, 5, 4), 3, 1, 1, 3, 2
    names = meta_train.__globals__
    calls = {"episode_sequence": [], "training_step": []}
    originals = {key: names.get(key) for key in calls}

    def recording(key):
        def record(*args):
            calls[key].append(args)
            return originals[key](*args)
        return record

    def run(seed):
        for values in calls.values():
            values.clear()
        torch.manual_seed(0)
        model = _TinyRNN(4 + ways, ways)
        start = [p.detach().clone() for p in model.parameters()]
        history = run_student(name, lambda: meta_train(model, pool, steps, ways=ways, shots=shots, queries=queries,
                                                       batch_size=batch_size, lr=0.01, seed=seed))
        return model, start, history

    if not all(callable(f) for f in originals.values()):
        fail(name, "meta_train must call your episode_sequence and training_step (defined above it)")
    try:
        for key in calls:
            names[key] = recording(key)
        model, start, history = run(0)
        sequences = list(calls["episode_sequence"])
        step_calls = list(calls["training_step"])
        first_inputs = [torch.as_tensor(call[2]).clone() for call in step_calls]
        model_b, _, _ = run(0)
        run(1)
        other_seed_inputs = [torch.as_tensor(call[2]).clone() for call in calls["training_step"]]
    finally:
        names.update(originals)
    history = [float(h) for h in history]
    fail_if(name, len(history) != steps, f"return one query accuracy per step: {steps} steps, got {len(history)}")
    fail_if(name, not all(0 <= h <= 1 for h in history), "the history holds query accuracies, fractions in [0, 1]")
    fail_if(name, len(step_calls) != steps, f"call training_step once per step ({steps} steps), "
                                            f"it was called {len(step_calls)} times")
    fail_if(name, len(sequences) != steps * batch_size,
            f"each step needs batch_size new episode sequences ({steps} steps x {batch_size}); episode_sequence "
            f"was called {len(sequences)} times: draw a fresh batch of episodes every step")
    fail_if(name, len({id(call[1]) for call in step_calls}) != 1,
            "create the optimizer once, before the loop: a new Adam at each step forgets its running averages")
    optimizer = step_calls[0][1]
    fail_if(name, not isinstance(optimizer, torch.optim.Adam) or optimizer.param_groups[0]["lr"] != 0.01,
            "use torch.optim.Adam with the learning rate lr")
    fail_if(name, tuple(first_inputs[0].shape) != (batch_size, ways * (shots + queries), 4 + ways),
            f"stack the batch_size sequences into one batch of inputs [B, T, d + N] = "
            f"[{batch_size}, {ways * (shots + queries)}, {4 + ways}], got {tuple(first_inputs[0].shape)}")
    fail_if(name, torch.equal(first_inputs[0], first_inputs[1]),
            "steps 0 and 1 trained on the same episodes: each step needs its own generator, seeded by (seed, step)")
    fail_if(name, all(torch.equal(p, q) for p, q in zip(model.parameters(), start)), "the model's weights did not "
                                                                                     "change: train `model` itself")
    fail_if(name, not all(torch.equal(p, q) for p, q in zip(model.parameters(), model_b.parameters())),
            "two runs with the same seed gave different weights: draw every episode from generators seeded by "
            "(seed, step)")
    fail_if(name, torch.equal(other_seed_inputs[0], first_inputs[0]), "seed 1 drew the same episodes as seed 0: "
                                                                       "use `seed` in each step's generator")
    passed(name, 3)
