"""Checks for the exercises of notebook 08: general-purpose in-context learning (GPICL)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .common import diagnose, fail, fail_if, passed, run_for_items, run_for_tensor

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


def check_pair_tokens(pair_tokens: Callable) -> None:
    """``pair_tokens(inputs [L, k], labels [L], num_classes) -> [L, k + C + k]``: row t is
    ``[x_t, onehot(y_{t-1}), x_{t-1}]``, with zeros in both "previous" parts at t = 0."""
    name = "check_pair_tokens"
    L, k, C = 6, 3, 4
    inputs = torch.randn(L, k, generator=torch.Generator().manual_seed(80))
    labels = torch.tensor([1, 3, 0, 0, 2, 1])
    out = run_for_tensor(name, pair_tokens, inputs, labels, C).float()
    one_hot = F.one_hot(labels, C).float()
    expected = torch.cat([inputs, F.pad(one_hot[:-1], (0, 0, 1, 0)), F.pad(inputs[:-1], (0, 0, 1, 0))], dim=-1)
    fail_if(name, out.shape == (L, k + C), f"shape ({L}, {k + C}) is the paper's token [x_t, onehot(y_(t-1))]: "
                                           f"append the previous input x_(t-1) too, shape ({L}, {2 * k + C})")
    fail_if(name, out.shape != expected.shape, f"expected shape ({L}, {2 * k + C}) = [x_t (k), onehot(y_(t-1)) "
                                                f"(C), x_(t-1) (k)], got {tuple(out.shape)}")
    if not torch.allclose(out, expected, atol=1e-6):
        x_part, y_part, prev_part = out[:, :k], out[:, k:k + C], out[:, k + C:]
        if not torch.allclose(x_part, inputs, atol=1e-6):
            fail_if(name, torch.allclose(x_part, expected[:, k + C:], atol=1e-6)
                    or torch.allclose(out[:, C:C + k], inputs),
                    "the parts are in another order: row t must be [x_t, onehot(y_(t-1)), x_(t-1)]")
            fail(name, "the first k numbers of row t must be the input x_t of the same step")
        fail_if(name, torch.allclose(y_part, one_hot),
                "row t holds the label y_t of the same step: the model would read the answer it must predict. "
                "Shift by one: onehot(y_(t-1))")
        fail_if(name, torch.allclose(y_part[0], one_hot[-1]) and y_part[0].abs().sum() > 0,
                "row 0 holds the LAST label (torch.roll wraps around): at t = 0 nothing has been seen, use "
                "zeros")
        fail_if(name, torch.allclose(y_part[:-1], one_hot[1:]),
                "shifted the wrong way: row t must hold the PREVIOUS step's label y_(t-1), not the next one's")
        fail_if(name, not torch.allclose(y_part, expected[:, k:k + C]),
                f"the label part should be {expected[:, k:k + C].int().tolist()}, got {y_part.tolist()}")
        fail_if(name, torch.allclose(prev_part, inputs, atol=1e-6),
                "the last part repeats x_t: it must be the PREVIOUS input x_(t-1), the one whose label y_(t-1) "
                "sits in the same token")
        fail_if(name, torch.allclose(prev_part[0], inputs[-1], atol=1e-6),
                "row 0 holds the last input (torch.roll wraps around): at t = 0 there is no previous input, use "
                "zeros")
        fail_if(name, torch.allclose(prev_part[:-1], inputs[1:], atol=1e-6),
                "the input part is shifted the wrong way: use x_(t-1), not x_(t+1)")
        fail(name, "the last k numbers of row t must be x_(t-1) (zeros at t = 0)")
    passed(name, 1)


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
