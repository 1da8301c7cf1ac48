"""Checks for the exercises of notebook 09: the capstone, and its build-it (a new method through the registry)."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ... import registry
from ...data import LabelledImages
from ...evaluation import mean_confidence_interval
from ...runs import RunSpec
from .common import close, diagnose, fail, fail_if, passed, run_student


def check_permute_pixels(permute_pixels: Callable) -> None:
    """``permute_pixels(images [B, 1, H, W], permutation [H*W]) -> [B, 1, H, W]``: pixel i of every output
    image is pixel ``permutation[i]`` of the input image (the same permutation for every image), as
    :func:`course_lib.capstone.permute_pixels` does for the permuted test sets."""
    name = "check_permute_pixels"
    generator = torch.Generator().manual_seed(9)
    cases = [(4, 1, 5, 5), (3, 1, 28, 28), (2, 1, 3, 4)]
    for shape in cases:
        images = torch.rand(*shape, generator=generator)
        permutation = torch.randperm(shape[1] * shape[2] * shape[3], generator=generator)
        result = run_student(name, permute_pixels, images.clone(), permutation)
        fail_if(name, not isinstance(result, torch.Tensor), f"return a tensor, got {type(result).__name__}")
        if result.shape != images.shape:
            fail_if(name, result.numel() == images.numel(),
                    f"keep the image shape {tuple(images.shape)}: got {tuple(result.shape)} (flatten, permute, "
                    "then reshape back)")
            fail(name, f"expected shape {tuple(images.shape)}, got {tuple(result.shape)}")
        flat = images.flatten(1)
        want = flat[:, permutation].view_as(images)
        if torch.equal(result, want):
            continue
        inverse = torch.empty_like(flat)
        inverse[:, permutation] = flat
        fail_if(name, torch.equal(result, inverse.view_as(images)),
                "that is the INVERSE permutation: output pixel i must be input pixel permutation[i], i.e. "
                "flat[:, permutation]")
        fail_if(name, torch.equal(result, images), "the images came back unchanged")
        if torch.equal(result.flatten(1).sort(dim=1).values, flat.sort(dim=1).values):
            fail_if(name, not torch.equal(result[0], want[0]),
                    "each image keeps its pixel values but not in the right order: apply the same permutation "
                    "to the flattened pixels of every image (not to rows or columns only)")
            fail(name, "every image must get the SAME permutation (the first image is right, others are not)")
        fail_if(name, torch.equal(result.sort(dim=0).values, images.sort(dim=0).values),
                "the images were shuffled among themselves: permute the pixels within each image, not the "
                "batch dimension")
        fail(name, "the pixel values changed: a permutation only moves pixels")
    passed(name, len(cases))


def check_kept_share(kept_share: Callable) -> None:
    """``kept_share(acc_in, acc_out, ways) -> float``: the share of its above-chance accuracy a method keeps out
    of distribution, ``(acc_out - 1/ways) / (acc_in - 1/ways)``, accuracies as fractions in [0, 1]."""
    name = "check_kept_share"
    cases = [(0.976, 0.336, 5), (0.90, 0.90, 2), (0.60, 0.70, 5), (0.95, 0.30, 20), (0.99, 0.5, 2)]
    for acc_in, acc_out, ways in cases:
        want = (acc_out - 1 / ways) / (acc_in - 1 / ways)
        result = run_student(name, kept_share, acc_in, acc_out, ways)
        try:
            got = float(result)
        except (TypeError, ValueError):
            fail(name, f"return one number, got {result!r}")
        if abs(got - want) < 1e-9:
            continue
        fail_if(name, abs(got - acc_out / acc_in) < 1e-9,
                "subtract chance (1/ways) from both accuracies: a method at chance keeps nothing, and "
                "acc_out / acc_in would give it credit for guessing")
        fail_if(name, abs(got - (acc_in - 1 / ways) / (acc_out - 1 / ways)) < 1e-9,
                "in and out are swapped: divide what is kept OUT of distribution by what there was IN it")
        fail_if(name, abs(got - (acc_out - 0.5) / (acc_in - 0.5)) < 1e-9 and ways != 2,
                "chance is 1/ways, not 1/2: with 5 classes, guessing gets 20 %")
        fail_if(name, abs(got - (acc_out - acc_in)) < 1e-9 or abs(got - (acc_in - acc_out)) < 1e-9,
                "that is a difference of accuracies; the share is a RATIO of above-chance accuracies")
        fail_if(name, abs(got - 100 * want) < 1e-6,
                "return a fraction (1.0 = everything kept), not a percentage")
        fail(name, f"acc_in={acc_in}, acc_out={acc_out}, {ways}-way: expected {want:.4f}, got {got:.4f}")
    passed(name, len(cases))


def check_paired_difference(paired_difference: Callable) -> None:
    """``paired_difference(acc_a, acc_b) -> (mean, ci95)``: the mean of ``a - b`` over episodes both methods
    saw, and the 95% half-width of that mean from the per-episode differences (Student's t)."""
    name = "check_paired_difference"
    generator = torch.Generator().manual_seed(9)
    cases = []
    for n in (8, 40):
        hardness = torch.rand(n, generator=generator)  # an episode hard for one method is hard for the other
        a = (0.95 - 0.5 * hardness + 0.05 * torch.rand(n, generator=generator)).clamp(0, 1)
        b = (0.90 - 0.5 * hardness + 0.05 * torch.rand(n, generator=generator)).clamp(0, 1)
        cases.append((a.tolist(), b.tolist()))
    for a, b in cases:
        ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        result = run_student(name, paired_difference, list(a), list(b))
        fail_if(name, not isinstance(result, (tuple, list)) or len(result) != 2,
                f"return two numbers, (mean, ci95); got {result!r}")
        got = torch.tensor([float(result[0]), float(result[1])], dtype=torch.float64)
        want = torch.tensor(mean_confidence_interval(ta - tb), dtype=torch.float64)
        if close(got, want, 1e-6):
            continue
        n = len(a)
        (mean_a, ci_a), (mean_b, ci_b) = mean_confidence_interval(ta), mean_confidence_interval(tb)
        d = ta - tb
        fail_if(name, close(got[0], -want[0], 1e-6) and not close(got[0], want[0], 1e-6),
                "wrong sign: the difference is a - b (positive when the first method is better)")
        fail_if(name, close(got[0], 100 * want[0], 1e-6),
                "return fractions (0.05 = five points), not percentages")
        fail_if(name, not close(got[0], want[0], 1e-6), "the mean difference is the mean of a - b over episodes")
        diagnose(name, got[1], [
            (math.hypot(ci_a, ci_b), "that combines the two intervals as if the methods had been tested on "
             "DIFFERENT episodes; they saw the same ones, so take the interval of the per-episode differences "
             "a[i] - b[i] (paired)"),
            (ci_a + ci_b, "adding the two half-widths treats the methods as unrelated; the episodes are shared: "
             "take the interval of the per-episode differences a[i] - b[i] (paired)"),
            (mean_confidence_interval(ta.sort().values - tb.sort().values)[1],
             "sorting breaks the pairs: difference episode i of a with episode i of b"),
            (1.959964 * float(d.std(correction=1)) / math.sqrt(n),
             f"with {n} episodes use Student's t (t_0.975,{n - 1}), not the normal 1.96"),
            (mean_confidence_interval(d)[1] * math.sqrt((n - 1) / n),
             "use the sample standard deviation (divide by n - 1)"),
            (float(d.std(correction=1)) / math.sqrt(n), "that is the standard error; the 95% half-width is t times it"),
            (mean_confidence_interval(d)[1] * math.sqrt(n), "divide the standard deviation by sqrt(n): the "
             "interval is that of the MEAN difference"),
        ], f"{n} episodes: expected a half-width of {float(want[1]):.5f}, got {float(got[1]):.5f}")
    passed(name, len(cases))


# The build-it: a cosine-prototype method with a learned scale, added through the registry


def _cosine(z_support, support_y, z_query, ways, scale, prototypes_from=None, normalise_dim=1):
    z = z_support if prototypes_from is None else prototypes_from
    c = torch.stack([z[support_y == k].mean(0) for k in range(ways)])
    return scale * F.normalize(z_query, dim=normalise_dim) @ F.normalize(c, dim=1).T


def _as_logits(scores: torch.Tensor) -> torch.Tensor:
    """Scores up to a constant per query: what the cross-entropy and the argmax see."""
    return scores - scores.logsumexp(dim=-1, keepdim=True)


def check_cosine_scores(cosine_scores: Callable) -> None:
    """``cosine_scores(z_support, support_y, z_query, ways, scale) -> [n_query, ways]``: ``scale * cos(z_q, c_k)``
    with ``c_k`` the mean support embedding of class k (the mean of the unit-length support embeddings is
    accepted too); scores, not probabilities, up to a constant per query; ``scale`` stays in the graph."""
    name = "check_cosine_scores"
    generator = torch.Generator().manual_seed(4)
    cases = [(3, 2, 6, 5, 4.0), (5, 1, 10, 8, 10.0), (4, 3, 12, 6, 2.5)]  # ways, shots, queries, d, scale
    for ways, shots, n_query, d, scale_value in cases:
        z_support = torch.randn(ways * shots, d, generator=generator, dtype=torch.float64) + 0.5
        support_y = torch.arange(ways).repeat_interleave(shots)  # sorted by class, as the course's episodes
        z_query = 3 * torch.randn(n_query, d, generator=generator, dtype=torch.float64) + 0.5
        scale = torch.tensor(scale_value, dtype=torch.float64, requires_grad=True)
        result = run_student(name, cosine_scores, z_support.clone(), support_y.clone(), z_query.clone(), ways, scale)
        fail_if(name, not isinstance(result, torch.Tensor), f"return a tensor, got {type(result).__name__}")
        fail_if(name, tuple(result.shape) != (n_query, ways),
                f"return one score per query and class, shape {(n_query, ways)}; got {tuple(result.shape)}")
        got = _as_logits(result.detach().double())
        s = scale.detach()
        mean_of_units = _cosine(F.normalize(z_support, dim=1), support_y, z_query, ways, s)
        want = _cosine(z_support, support_y, z_query, ways, s)
        if close(got, _as_logits(want)) or close(got, _as_logits(mean_of_units)):
            fail_if(name, not result.requires_grad or torch.autograd.grad(result.sum(), scale, allow_unused=True)[0]
                    is None, "the scale left the graph (.item(), float() or .detach()): it is learned, so the "
                             "scores must stay differentiable in it")
            continue
        dot = s * z_query @ torch.stack([z_support[support_y == k].mean(0) for k in range(ways)]).T
        one_shot = torch.stack([z_support[support_y == k][0] for k in range(ways)])
        mistakes = [
            (dot, "compare directions, not lengths: normalise the query embeddings and the prototypes to unit "
                  "length (a plain dot product rewards long embeddings)"),
            (s * z_query @ F.normalize(torch.stack([z_support[support_y == k].mean(0) for k in range(ways)]),
                                       dim=1).T, "normalise the query embeddings too, not only the prototypes"),
            (want / s, "multiply the cosines by the scale; without it the scores stay in [-1, 1]"),
            (want / s ** 2, "multiply the cosines by the scale, do not divide by it"),
            (-want, "the scores must be highest for the most similar prototype: a cosine similarity, not a distance"),
            (_cosine(z_support, support_y, z_query, ways, s, normalise_dim=0),
             "normalise each embedding over its features (dim 1), not over the batch: a query's scores must not "
             "depend on the other queries"),
            (s * F.normalize(z_query, dim=1) @ F.normalize(one_shot, dim=1).T,
             "a prototype averages all K support embeddings of its class, not only the first"),
        ]
        if n_query == ways * shots:
            mistakes.append((_cosine(z_support, support_y, z_query, ways, s, prototypes_from=z_query),
                             "the prototypes must come from the SUPPORT set: the queries are what is classified, "
                             "their labels are never seen"))
        probabilities = want.softmax(-1)
        fail_if(name, close(result.detach().double(), probabilities),
                "return scores (logits), not probabilities: the cross-entropy applies the softmax itself")
        for wrong, message in mistakes:
            fail_if(name, close(got, _as_logits(wrong)), message)
        alone = run_student(name, cosine_scores, z_support.clone(), support_y.clone(), z_query[:1].clone(), ways, scale)
        fail_if(name, isinstance(alone, torch.Tensor) and alone.shape == (1, ways)
                and not close(_as_logits(alone.detach().double()), got[:1]),
                "a query's scores changed with the other queries: each query is scored from the support set and "
                "itself alone")
        fail(name, f"{ways}-way {shots}-shot: the scores differ from scale * cos(z_query, c_k), c_k the mean "
                   "support embedding of class k")
    passed(name, len(cases))


class _RecordingCosineNet(nn.Module):
    """A tiny model of the method's shape (an encoder and a learned ``log_scale``) that records its calls."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.encoder = nn.Linear(16, 8)
        with torch.no_grad():
            self.encoder.weight.copy_(torch.randn(8, 16, generator=generator) / 4)
            self.encoder.bias.copy_(torch.randn(8, generator=generator) / 4)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.calls: list[dict] = []

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def scores(self, support_x, support_y, query_x):
        z = self.encoder(torch.cat([support_x, query_x]).flatten(1))
        return _cosine(z[: len(support_x)], support_y, z[len(support_x):], int(support_y.max()) + 1, self.scale)

    def forward(self, support_x, support_y, query_x):
        self.calls.append({"support_x": support_x.detach().clone(), "support_y": support_y.clone(),
                           "query_x": query_x.detach().clone(), "training": self.training,
                           "grad": torch.is_grad_enabled(),
                           "state": {k: v.detach().clone() for k, v in self.state_dict().items()}})
        return self.scores(support_x, support_y, query_x)


def _toy_images(classes: int = 6, per_class: int = 5) -> LabelledImages:
    """Random 4x4 images whose first pixel names their class (so a check can tell the query labels)."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(classes).repeat_interleave(per_class)
    images = torch.rand(len(labels), 1, 4, 4, generator=generator)
    images[:, 0, 0, 0] = 10.0 + labels
    return LabelledImages(images, labels, [str(c) for c in range(classes)], name="toy")


def _query_labels(call: dict) -> torch.Tensor:
    episode_label = {int(c): int(y) for c, y in zip(call["support_x"][:, 0, 0, 0].round() - 10, call["support_y"])}
    return torch.tensor([episode_label.get(int(c), -1) for c in call["query_x"][:, 0, 0, 0].round() - 10])


def check_trainer(trainer: Callable, config_class: type) -> None:
    """``trainer(model, config, data, device) -> runs.Trainer(step, optimizer)``: ``step(i)`` draws the episode
    of ``(config.seed, i)`` from ``data["train"]``, takes one step of the returned optimizer (which holds every
    parameter, the scale too) on the query cross-entropy, and returns ``{"loss": ...}``."""
    name = "check_trainer"
    data = {"train": _toy_images(), "test": _toy_images()}

    def start(seed: int):
        model = _RecordingCosineNet().eval()  # as an evaluation leaves it
        config = config_class(ways=3, shots=2, queries=2, steps=3, meta_lr=0.05, seed=seed)
        made = run_student(name, trainer, model, config, data, "cpu")
        fail_if(name, not (callable(getattr(made, "step", None)) and hasattr(made, "optimizer")),
                "return runs.Trainer(step, optimizer): the training loop calls step(i), and checkpoints the "
                "optimizer")
        return model, made

    model, made = start(seed=3)
    trained = {id(p) for group in made.optimizer.param_groups for p in group["params"]}
    fail_if(name, id(model.log_scale) not in trained,
            "the scale is not in the optimizer: it is a meta-parameter, learned with the encoder (give the "
            "optimizer model.parameters())")
    fail_if(name, any(id(p) not in trained for p in model.parameters()), "give the optimizer every parameter")
    seen: list[dict] = []
    made.optimizer.register_step_pre_hook(lambda optimizer, args, kwargs: seen.append(
        {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()}))
    calls, previous = [], None
    for i in range(3):
        before, steps_before = len(model.calls), len(seen)
        result = run_student(name, made.step, i)
        fail_if(name, not isinstance(result, dict) or "loss" not in result,
                f"step(i) returns a dict of numbers with the loss under 'loss', got {result!r}")
        graded = [call for call in model.calls[before:] if call["grad"]]
        fail_if(name, not graded, "step(i) never called the model with gradients on")
        call = graded[0]
        fail_if(name, not call["training"],
                "the model was in eval mode while training: call model.train() in trainer (an evaluation leaves "
                "it in eval mode, and batch norm learns its statistics only in train mode)")
        fail_if(name, torch.equal(call["query_x"], call["support_x"]),
                "the loss scored the support set: score the QUERY set against prototypes of the support set")
        fail_if(name, len(seen) == steps_before,
                "the optimizer returned in the Trainer never stepped: create one optimizer in trainer, outside "
                "step, so that its running averages carry over from step to step (and into checkpoints)")
        fail_if(name, len(seen) > steps_before + 1, "take one optimizer step per episode")
        reference = _RecordingCosineNet()
        reference.load_state_dict(call["state"])
        loss = F.cross_entropy(reference.scores(call["support_x"], call["support_y"], call["query_x"]),
                               _query_labels(call))
        loss.backward()
        expected = {n: p.grad for n, p in reference.named_parameters()}
        fail_if(name, abs(float(result["loss"]) - loss.item()) > 1e-4,
                f"step({i}) returned loss {float(result['loss']):.5f}; the query cross-entropy of its episode "
                f"(before the update) is {loss.item():.5f}")
        grads = seen[-1]
        fail_if(name, any(g is None for g in grads.values()),
                "there were no gradients at the optimizer step: call loss.backward() before it, and clear the "
                "gradients BEFORE loss.backward(), not between backward and step")
        if not all(close(grads[n], expected[n], 1e-6) for n in expected):
            fail_if(name, previous is not None and all(close(grads[n], expected[n] + previous[n], 1e-6)
                                                       for n in expected),
                    "the gradients of the previous step were still there: clear them (optimizer.zero_grad()) "
                    "before loss.backward()")
            fail_if(name, all(float(g.abs().max()) == 0 for g in grads.values()),
                    "the gradients were zero at the optimizer step: clear them BEFORE loss.backward(), not between "
                    "backward and step")
            fail(name, "the gradients at the optimizer step are not those of the episode's query cross-entropy")
        previous = grads
        calls.append(call)
    fail_if(name, torch.equal(calls[0]["query_x"], calls[1]["query_x"]) and torch.equal(calls[1]["query_x"],
                                                                                         calls[2]["query_x"]),
            "every step trained on the same episode: step i must draw its own (a generator made from the seed "
            "AND the step)")
    again_model, again = start(seed=3)
    run_student(name, again.step, 1)
    repeat = [call for call in again_model.calls if call["grad"]][0]
    fail_if(name, not torch.equal(repeat["query_x"], calls[1]["query_x"]),
            "step(1) of a new run drew another episode than step(1) of the first: a step's episode must depend on "
            "the seed and the step only (episodes.step_generator(config.seed, i)), or a resumed run would train on "
            "other episodes than an uninterrupted one")
    other_model, other = start(seed=4)
    run_student(name, other.step, 0)
    fail_if(name, torch.equal([c for c in other_model.calls if c["grad"]][0]["query_x"], calls[0]["query_x"]),
            "seed 4 drew the same episode as seed 3: the episodes must depend on config.seed")
    passed(name, 3)


ROW_FIELDS = {"trained_on", "family", "note", "meta_parameters", "learned_variables", "supports", "in_distribution"}


def check_capstone_row(capstone_row: Callable, model: nn.Module) -> None:
    """``capstone_row(run, model, payload) -> dict``: the capstone's words and counts for the method's run:
    ``trained_on`` beginning "Omniglot background" (its shared data), ``meta_parameters`` every trained
    parameter (the scale too), ``learned_variables(ways, shots)`` the N prototypes' numbers."""
    name = "check_capstone_row"
    run, payload = RunSpec("runs/check", "check", capstone="check"), {"step": 7}
    row = run_student(name, capstone_row, run, model, payload)
    fail_if(name, not isinstance(row, dict), f"return a dict of the capstone Row's fields, got {type(row).__name__}")
    for field in ("trained_on", "meta_parameters", "learned_variables"):
        fail_if(name, field not in row, f"the table needs {field!r}")
    unknown = set(row) - ROW_FIELDS
    fail_if(name, bool(unknown), f"the capstone's Row has no field {', '.join(sorted(unknown))} (its fields: "
                                 f"{', '.join(sorted(ROW_FIELDS))})")
    fail_if(name, not str(row["trained_on"]).startswith("Omniglot background"),
            "trained_on must begin with 'Omniglot background': the capstone finds the rows meta-trained on its "
            f"shared data by those words (got {row['trained_on']!r})")
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    scale = sum(p.numel() for n, p in model.named_parameters() if "scale" in n)
    counted = row["meta_parameters"]
    fail_if(name, counted == parameters - scale and scale > 0,
            "meta_parameters left out the scale: meta-training fits it as it fits the encoder")
    fail_if(name, counted == parameters + sum(b.numel() for b in model.buffers()),
            "count the parameters only: batch norm's running statistics are not trained by gradient")
    fail_if(name, counted != parameters, f"meta_parameters: the model has {parameters:,} trained parameters, "
                                         f"got {counted!r}")
    learned = row["learned_variables"]
    fail_if(name, not callable(learned), "learned_variables is a function (ways, shots) -> count: how many numbers "
                                         "the method fits to one task depends on the setting")
    d = model.config.hidden
    for ways, shots in ((5, 1), (5, 5), (20, 1), (2, 1)):
        got = run_student(name, learned, ways, shots)
        if got == ways * d:
            continue
        diagnose(name, got, [
            (ways * shots * d, "the method keeps N prototypes, not the N*K support embeddings: average first"),
            (ways * d + 1, "the scale is a meta-parameter, the same for every task: do not count it per task"),
            (d, "one prototype per class: N of them"),
            (ways * shots, "count numbers, not examples: each prototype has as many numbers as the embedding"),
            (parameters, "learned variables are fitted to ONE task, not meta-trained: the N prototypes"),
        ], f"{ways}-way {shots}-shot: expected {ways * d:,} learned variables (N prototypes of {d} numbers), "
           f"got {got!r}")
    passed(name, 4)


def check_method_face(method) -> None:
    """The module a method is, as the registry reads it: the whole face (``registry.FACE``) and
    ``capstone_row``; a ``Config`` that rejects bad settings; a predictor that scores each query from the support
    set and itself alone."""
    name = "check_method_face"
    missing = [attribute for attribute in (*registry.FACE, "capstone_row") if not hasattr(method, attribute)]
    fail_if(name, bool(missing), f"{getattr(method, '__name__', method)} does not export {', '.join(missing)}")
    config = run_student(name, method.Config)
    fail_if(name, not all(hasattr(config, field) for field in ("steps", "seed")),
            "Config needs the fields steps and seed: the command line's --steps and --seed set them")
    for bad in ({"ways": 1}, {"shots": 0}, {"queries": 0}, {"steps": -1}, {"meta_lr": 0.0}):
        try:
            method.Config(**bad)
        except (ValueError, TypeError):
            continue
        fail(name, f"Config({', '.join(f'{k}={v}' for k, v in bad.items())}) was accepted: __post_init__ must "
                   "raise ValueError for it (the command line turns it into a usage error before anything runs)")
    model = run_student(name, method.build, config)
    predict = run_student(name, method.predictor, model)
    generator = torch.Generator().manual_seed(2)
    support_x, query_x = torch.rand(3, 1, 28, 28, generator=generator), torch.rand(6, 1, 28, 28, generator=generator)
    support_y = torch.arange(3)
    model.train()  # as training leaves it
    scores = run_student(name, predict, support_x, support_y, query_x)
    fail_if(name, not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (6, 3),
            "predictor(model) returns predict(support_x, support_y, query_x) -> scores [n_query, ways]")
    alone = run_student(name, predict, support_x, support_y, query_x[:2])
    fail_if(name, not close(alone, scores[:2], 1e-4),
            "a query's scores changed with the other queries: predict in eval mode, where batch norm uses the "
            "statistics it learned in training, not those of the test batch")
    row = run_student(name, method.capstone_row, RunSpec("runs/check", capstone="check"), model, {"step": 0})
    fail_if(name, not isinstance(row, dict) or "learned_variables" not in row, "capstone_row returns the Row's fields")
    passed(name, 3)
