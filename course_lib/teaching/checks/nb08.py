"""Checks for the exercises of notebook 08: general-purpose in-context learning (GPICL)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import fail, passed, run_student


def check_task_batch(make_task_batch: Callable) -> None:
    """``make_task_batch(x [L, d], classes [L], W [d, k], perm [C]) -> (inputs [L, k], labels [L])``:
    ``inputs = x @ W`` (the task's projection of every example) and ``labels[t] = perm[classes[t]]``."""
    name = "check_task_batch"
    generator = torch.Generator().manual_seed(8)
    perm = torch.tensor([2, 0, 3, 1])  # class 0 -> label 2, class 1 -> label 0, ...
    cases = []
    for d, k in ((6, 3), (5, 5)):  # the square case catches W.T
        x = torch.randn(7, d, generator=generator)
        classes = torch.tensor([0, 1, 2, 3, 1, 0, 2])
        W = torch.randn(d, k, generator=generator)
        cases.append((x, classes, W))
    for x, classes, W in cases:
        out = run_student(name, make_task_batch, x, classes, W, perm)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(name, "return two things: (inputs, labels)")
        inputs, labels = (torch.as_tensor(v) for v in out)
        L, d, k = len(x), *W.shape
        if inputs.shape == x.shape and d != k and torch.allclose(inputs.float(), x):
            fail(name, "the inputs are not projected: every task sees x through its own matrix, inputs = x @ W")
        if inputs.shape != (L, k):
            fail(name, f"inputs must have one row of k = {k} numbers per example, shape ({L}, {k}); got "
                        f"{tuple(inputs.shape)}. Project with x @ W ([L, d] @ [d, k])")
        if d == k and torch.allclose(inputs.float(), x @ W.T, atol=1e-5) and not torch.allclose(x @ W, x @ W.T):
            fail(name, "you multiplied by W transposed: the projection is x @ W (W has shape [d, k], one column "
                        "per output number)")
        if not torch.allclose(inputs.float(), x @ W, atol=1e-5):
            fail(name, "inputs differ from x @ W: project every example with the same matrix W")
        if labels.shape != (L,):
            fail(name, f"labels must have one entry per example, shape ({L},), got {tuple(labels.shape)}")
        labels = labels.long()
        if torch.equal(labels, classes):
            fail(name, "the labels are not permuted: in this task class c is called perm[c]")
        if torch.equal(labels, torch.argsort(perm)[classes]):
            fail(name, "you applied the inverse permutation: the label of class c is perm[c] (index perm BY the "
                        "class), not the position of c in perm")
        if not torch.equal(labels, perm[classes]):
            fail(name, f"expected labels {perm[classes].tolist()} (perm[classes]), got {labels.tolist()}")
    passed(name, len(cases))


def _pair_tokens_reference(inputs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    previous_label = F.pad(F.one_hot(labels[:-1], num_classes).float(), (0, 0, 1, 0))
    previous_input = F.pad(inputs[:-1], (0, 0, 1, 0))
    return torch.cat([inputs, previous_label, previous_input], dim=-1)


def check_pair_tokens(pair_tokens: Callable) -> None:
    """``pair_tokens(inputs [L, k], labels [L], num_classes) -> [L, k + C + k]``: row t is
    ``[x_t, onehot(y_{t-1}), x_{t-1}]``, with zeros in both "previous" parts at t = 0."""
    name = "check_pair_tokens"
    generator = torch.Generator().manual_seed(80)
    L, k, C = 6, 3, 4
    inputs = torch.randn(L, k, generator=generator)
    labels = torch.tensor([1, 3, 0, 0, 2, 1])
    out = torch.as_tensor(run_student(name, pair_tokens, inputs, labels, C)).float()
    expected = _pair_tokens_reference(inputs, labels, C)
    if out.shape == (L, k + C):
        fail(name, f"shape ({L}, {k + C}) is the paper's token [x_t, onehot(y_(t-1))]: append the previous input "
                    f"x_(t-1) too, shape ({L}, {2 * k + C})")
    if out.shape != expected.shape:
        fail(name, f"expected shape ({L}, {2 * k + C}) = [x_t (k), onehot(y_(t-1)) (C), x_(t-1) (k)], "
                    f"got {tuple(out.shape)}")
    if torch.allclose(out, expected, atol=1e-6):
        passed(name, 1)
        return
    x_part, y_part, prev_part = out[:, :k], out[:, k:k + C], out[:, k + C:]
    one_hot = F.one_hot(labels, C).float()
    if not torch.allclose(x_part, inputs, atol=1e-6):
        if torch.allclose(out[:, :k], expected[:, k + C:], atol=1e-6) or torch.allclose(out[:, C:C + k], inputs):
            fail(name, "the parts are in another order: row t must be [x_t, onehot(y_(t-1)), x_(t-1)]")
        fail(name, "the first k numbers of row t must be the input x_t of the same step")
    if torch.allclose(y_part, one_hot):
        fail(name, "row t holds the label y_t of the same step: the model would read the answer it must predict. "
                    "Shift by one: onehot(y_(t-1))")
    if torch.allclose(y_part[0], one_hot[-1]) and y_part[0].abs().sum() > 0:
        fail(name, "row 0 holds the LAST label (torch.roll wraps around): at t = 0 nothing has been seen, use zeros")
    if torch.allclose(y_part[:-1], one_hot[1:]):
        fail(name, "shifted the wrong way: row t must hold the PREVIOUS step's label y_(t-1), not the next one's")
    if not torch.allclose(y_part, expected[:, k:k + C]):
        fail(name, f"the label part should be {expected[:, k:k + C].int().tolist()}, got {y_part.tolist()}")
    if torch.allclose(prev_part, inputs, atol=1e-6):
        fail(name, "the last part repeats x_t: it must be the PREVIOUS input x_(t-1), the one whose label "
                    "y_(t-1) sits in the same token")
    if torch.allclose(prev_part[0], inputs[-1], atol=1e-6):
        fail(name, "row 0 holds the last input (torch.roll wraps around): at t = 0 there is no previous input, "
                    "use zeros")
    if torch.allclose(prev_part[:-1], inputs[1:], atol=1e-6):
        fail(name, "the input part is shifted the wrong way: use x_(t-1), not x_(t+1)")
    fail(name, "the last k numbers of row t must be x_(t-1) (zeros at t = 0)")


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
    out = torch.as_tensor(run_student(name, accuracy_by_position, logits, targets)).float()
    if out.shape == (S,):
        fail(name, f"you averaged over positions (one number per sequence): average over the S sequences "
                    f"(dim 0) instead, to get one accuracy per position, shape ({L},)")
    if out.shape != (L,):
        fail(name, f"return one accuracy per position, shape ({L},), got {tuple(out.shape)}")
    if torch.allclose(out, expected):
        passed(name, 1)
        return
    if torch.allclose(out, 100 * expected):
        fail(name, "return fractions in [0, 1], not percentages")
    if torch.allclose(out, correct.sum(0)):
        fail(name, "these are counts of right answers: divide by the number of sequences (take the mean)")
    if torch.allclose(out, correct.mean(0).cumsum(0) / torch.arange(1, L + 1)):
        fail(name, "this is the running accuracy up to t: return the accuracy AT each position t")
    probs = logits.softmax(-1)
    if torch.allclose(out, probs.gather(2, targets.unsqueeze(-1)).squeeze(-1).mean(0), atol=1e-4) or \
            torch.allclose(out, probs.max(-1).values.mean(0), atol=1e-4):
        fail(name, "these are probabilities: count the predictions that are right, "
                    "(logits.argmax(-1) == targets), and average those")
    fail(name, f"expected {expected.tolist()}, got {out.tolist()}")
