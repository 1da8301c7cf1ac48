"""One meta-step, training, evaluation and the face the registry reads, for :mod:`course_lib.maml`."""

import math
import sys

import torch
import torch.nn.functional as F

from ..data import omniglot_splits
from ..episodes import FastEpisodeSampler, step_generator
from ..evaluation import format_accuracy
from ..protonet import test_queries
from ..runs import RunSpec, Trainer
from .algorithm import (VARIANTS, MAMLConfig, MetaLearner, batching_for, classification_loss, inner_adapt,
                        load_initialisation, meta_loss, mlp_forward, query_outputs, regression_loss,
                        reptile_direction, sinusoid_batch, task_batch)
from .fast import evaluate_classification, meta_backward_loop
from .sinusoid import evaluate_sinusoid, results_table

# Training: one meta-step, and the step the run mechanism calls


def meta_gradient(module: MetaLearner, batch, batched: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Put the meta-gradient of ``batch`` in the ``.grad`` of ``module`` (zero it first); (loss, accuracy).

    ``batched``: vmap over the tasks (:func:`meta_loss`) or a per-task loop with one backward pass per task
    (:func:`course_lib.maml.fast.meta_backward_loop`): the same meta-gradient, up to rounding.
    """
    kw = module.objective_kwargs()
    if module.config.variant == "reptile":
        direction, loss = reptile_direction(module.theta(), batch, batched=batched, **kw)
        for name, p in module.params.items():
            p.grad = direction[name]
        return loss, loss  # Reptile has no query loss; we log the post-adaptation training loss
    if not batched:
        return meta_backward_loop(module.theta(), batch, **kw)
    loss, accuracy = meta_loss(module.theta(), batch, **kw)
    loss.backward()
    return loss, accuracy


def meta_step(module: MetaLearner, optimizer: torch.optim.Optimizer, batch, batched: bool = True,
              ) -> tuple[float, float]:
    """One meta-update on ``batch``; returns (loss, accuracy) as Python floats (regression: loss, loss)."""
    optimizer.zero_grad(set_to_none=True)
    loss, accuracy = meta_gradient(module, batch, batched)
    optimizer.step()
    if module.lrs is not None:  # keep Meta-SGD's step sizes non-negative
        with torch.no_grad():
            for p in module.lrs.values():
                p.clamp_(min=0)
    return float(loss.detach()), float(accuracy.detach())


def trainer(model: MetaLearner, config: MAMLConfig, data: dict, device: torch.device | str = "cpu") -> Trainer:
    """One meta-iteration per step: draw ``meta_batch`` tasks, one Adam step on the meta-objective.

    The tasks of step ``i`` depend on ``(config.seed, i)`` only and the batching is fixed at the start, so a
    resumed run repeats an uninterrupted one. For the sinusoid, the baseline ``model.joint`` takes an Adam
    step too, on its own tasks.
    """
    device = torch.device(device)
    model.to(device).train()
    if config.batching == "auto":  # decided once, recorded in config.json
        config.batching = batching_for(config.task, device)
    if config.init_from:  # a resumed run then loads its own checkpoint over these
        copied = load_initialisation(model, config.init_from)
        print(f"initialised {len(copied)} of {len(model.state_dict())} tensors from {config.init_from}",
              file=sys.stderr)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    if config.task == "sinusoid":
        def sample(generator):
            return sinusoid_batch(generator, config.meta_batch, config.shots, config.queries, device)[0]
        metric = "train_mse"
    else:
        sampler = FastEpisodeSampler(data["train"], config.ways, config.shots, config.queries, device=device)

        def sample(generator):
            return task_batch(sampler, config.meta_batch, generator)
        metric = "train_loss_after_adaptation" if config.variant == "reptile" else "query_accuracy"

    def step(i: int) -> dict[str, float]:
        loss, accuracy = meta_step(model, optimizer, sample(step_generator(config.seed, i)),
                                   batched=config.batching == "vmap")
        if not math.isfinite(loss):
            raise FloatingPointError(f"the meta-loss is {loss} at step {i}; lower --meta-lr or --inner-lr")
        if model.joint is not None:  # the joint-regression baseline: all tasks' points pooled, no adaptation
            sx, sy, qx, qy = sample(step_generator(config.seed + 7, i))
            optimizer.zero_grad(set_to_none=True)
            predictions = mlp_forward(dict(model.joint.items()), torch.cat([sx, qx], 1))
            F.mse_loss(predictions, torch.cat([sy, qy], 1)).backward()
            optimizer.step()
        return {"loss": loss, metric: accuracy} if (i + 1) % config.log_every == 0 else {}

    return Trainer(step, optimizer)


# The face the registry reads (course_lib.registry)

Config = MAMLConfig
PAPER_BY_VARIANT = {  # Omniglot, transductive batch norm: Finn et al. 2017 Table 1 (MAML and its first-order
    # approximation), Nichol et al. 2018 Table 1 ("Reptile + Transduction"), Li et al. 2017 Table 1 (Meta-SGD)
    "maml": {"5-way 1-shot": 0.987, "5-way 5-shot": 0.999, "20-way 1-shot": 0.958, "20-way 5-shot": 0.989},
    "fomaml": {"5-way 1-shot": 0.983, "5-way 5-shot": 0.992, "20-way 1-shot": 0.894, "20-way 5-shot": 0.979},
    "reptile": {"5-way 1-shot": 0.9768, "5-way 5-shot": 0.9948, "20-way 1-shot": 0.8943, "20-way 5-shot": 0.9712},
    "anil": {},
    "metasgd": {"5-way 1-shot": 0.9953, "5-way 5-shot": 0.9993, "20-way 1-shot": 0.9593, "20-way 5-shot": 0.9897},
}
PAPER = PAPER_BY_VARIANT["maml"]
META_BATCH_DIFFERS = "meta-batch {meta_batch} instead of the paper's {paper_batch}"  # filled in by results.py


def paper(config: MAMLConfig) -> dict:
    """The numbers of the paper that introduced ``config.variant``."""
    return PAPER_BY_VARIANT[config.variant]


def _omniglot_run(name: str, variant: str, ways: int, steps: int, label: str, trained_on: str = "",
                  differs: str = "", extra: tuple[str, ...] = (), capstone: str = "") -> RunSpec:
    return RunSpec(f"data/maml/{name}", label, ("--variant", variant, "--ways", str(ways), "--shots", "1",
                                                "--steps", str(steps), *extra), ("--steps", "2"),
                   trained_on=trained_on, differs=differs, capstone=capstone)


RUNS = (
    _omniglot_run("maml_5w1s", "maml", 5, 60000, "MAML (second order)",
                  "same data, 5-way 1-shot, transductive batch norm", META_BATCH_DIFFERS, capstone="maml"),
    _omniglot_run("fomaml_5w1s", "fomaml", 5, 60000, "first-order MAML", "same data, 5-way 1-shot",
                  META_BATCH_DIFFERS, capstone="fomaml"),
    _omniglot_run("reptile_5w1s", "reptile", 5, 100000, "Reptile", "same data, 5-way 1-shot", capstone="reptile"),
    _omniglot_run("anil_5w1s", "anil", 5, 60000, "ANIL", "same data, 5-way 1-shot"),  # its paper: no Omniglot number
    _omniglot_run("metasgd_5w1s", "metasgd", 5, 60000, "Meta-SGD", "same data, 5-way 1-shot", META_BATCH_DIFFERS),
    _omniglot_run("maml_20w1s", "maml", 20, 60000, "MAML (second order)", "same data, 20-way 1-shot",
                  META_BATCH_DIFFERS + "; {inner_steps} inner step(s) of {inner_lr} in training and "
                  "{test_inner_steps} at test instead of the paper's 5 of 0.1; started from `{init_from}` "
                  "(its convolutions; a new 20-way head)", extra=("--test-settings", "20x1,5x1")),
    *(RunSpec(f"data/maml/sinusoid{'' if variant == 'maml' else '_' + variant}", f"{variant} on sinusoid regression",
              ("--task", "sinusoid", "--variant", variant, "--steps", "70000"), ("--steps", "5"),
              job=f"{variant}_sinusoid" if variant != "maml" else "maml_sinusoid")
      for variant in VARIANTS),
    _omniglot_run("maml_5w1s_background", "maml", 5, 60000, "MAML on the capstone's shared data",
                  extra=("--protocol", "lake", "--no-rotations"), capstone="maml-background"),
)


def build(config: MAMLConfig) -> MetaLearner:
    return MetaLearner(config, generator=torch.Generator().manual_seed(config.seed))


def load_data(config: MAMLConfig, smoke: bool = False) -> dict:
    """Omniglot's training and test classes (``smoke``: the first 40 of each); the sinusoid needs none."""
    if config.task == "sinusoid":
        return {}
    splits = omniglot_splits(config.protocol, rotations=config.rotations, image_size=config.image_size)
    if smoke:
        splits = {k: v.subset_classes(range(min(40, v.num_classes))) for k, v in splits.items()}
    return splits


def evaluate(model: MetaLearner, config: MAMLConfig, data: dict, device="cpu", *,
             settings=((5, 1), (5, 5), (20, 1), (20, 5)), episodes: int = 1000, progress: bool = True) -> dict:
    """Omniglot: ``{"5-way 1-shot": ..., "5-way 1-shot bn=support": ...}`` for each setting the head can
    classify, with the training batch statistics and the non-transductive ones. Sinusoid: see
    :func:`course_lib.maml.sinusoid.evaluate_sinusoid`."""
    model.eval()
    if config.task == "sinusoid":
        return evaluate_sinusoid(model, episodes, device)
    results = {}
    for ways, shots in settings:
        if ways > config.ways:
            print(f"skipping {ways}-way {shots}-shot: the model has a {config.ways}-way head", file=sys.stderr)
            continue
        sampler = FastEpisodeSampler(data["test"], ways, shots, test_queries(ways), device=device)
        for bn in dict.fromkeys([config.bn, "support"]):  # the training mode, then non-transductive
            name = f"{ways}-way {shots}-shot" + ("" if bn == config.bn else f" bn={bn}")
            results[name] = evaluate_classification(model, sampler, episodes, bn=bn, progress=progress,
                                                    return_curve=True)
    return results


def evaluation_details(settings) -> dict:
    return {"test_queries_per_class": {f"{w}-way": test_queries(w) for w, _ in settings}, "test_seed": 0}


def predictor(model: MetaLearner, bn: str = "support"):
    """``predict(support_x, support_y, query_x)``: the query outputs after ``test_inner_steps`` steps on the
    support set (``bn="support"``: each query on its own, as other methods classify)."""
    config = model.config
    loss_fn = (regression_loss if config.task == "sinusoid" else classification_loss)(model.forward_fn)

    def predict(support_x, support_y, query_x):
        params, options = model.test_time(int(support_y.max()) + 1 if config.task == "omniglot" else None)
        with torch.no_grad():  # torch.func.grad still differentiates the inner loop
            fast = inner_adapt(params, support_x, support_y, config.test_inner_steps, config.inner_lr, loss_fn,
                               first_order=True, **options)
            return query_outputs(model.forward_fn, fast, support_x, query_x, bn)

    return predict


def capstone_row(run: RunSpec, model: MetaLearner, payload: dict) -> dict:
    """What the capstone's table says about a run: every weight is adapted per task (the first N head rows)."""
    c = model.config
    theta = sum(v.numel() for v in model.theta().values())
    features = model.params["head_weight"].shape[1]
    rotations = ", rotations" if c.rotations else ""
    if c.protocol == "lake":
        trained_on = f"Omniglot background (Lake, 964 characters{rotations}; {c.ways}-way {c.shots}-shot tasks)"
        shared = "; the capstone's shared meta-training data"
    else:
        trained_on, shared = f"Omniglot, Vinyals split + rotations ({c.ways}-way {c.shots}-shot tasks)", ""
    return {"trained_on": trained_on, "family": "optimization", "meta_parameters": theta,
            "learned_variables": lambda ways, shots: theta - (c.ways - ways) * (features + 1),
            "supports": lambda ways, shots: ways <= c.ways,
            "note": f"{run.folder} ({payload['step']} meta-iterations), {c.test_inner_steps} inner steps of "
                    f"{c.inner_lr}, non-transductive batch norm{shared}"}


def describe(config: MAMLConfig) -> str:
    c = config
    if c.task == "sinusoid":
        return f"{c.variant}, sinusoid regression, MLP 1-{c.hidden}-{c.hidden}-1, K={c.shots}"
    order = "first" if c.variant in ("fomaml", "reptile") else "second"
    rotations = ", rotations" if c.rotations else ""
    return (f"{c.variant}, Omniglot ({c.protocol} split{rotations}), Conv4-{c.hidden}, "
            f"{c.ways}-way {c.shots}-shot {c.queries}-query, meta-batch {c.meta_batch}, {c.inner_steps} inner "
            f"step(s) of {c.inner_lr} ({order} order), {c.test_inner_steps} at test")


def results_markdown(method, entries: dict, config: MAMLConfig, meta: dict) -> str:
    head = f"# {describe(config)}\n\nTrained {meta['steps_done']} of {config.steps} meta-iterations on " \
           f"{meta['machine'].get('gpu') or meta['machine']['device']}. "
    if config.task == "sinusoid":
        return head + results_table(entries, meta)
    lines = [head + f"Test: {meta['test_episodes']} episodes per setting, {config.test_inner_steps} inner steps, "
             "15 queries per class for 5-way, 5 for 20-way.", "",
             "| setting | batch norm at test | ours (95% CI) | paper |", "|---|---|---|---|"]
    for name, entry in entries.items():
        setting, bn = name.split(" bn=") if " bn=" in name else (name, config.bn)
        paper = PAPER_BY_VARIANT[config.variant].get(setting) if bn == config.bn else None
        lines.append(f"| {setting} | {bn} | {format_accuracy(entry['mean'], entry['ci95'])} | "
                     f"{'' if paper is None else f'{100 * paper:.1f} %'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None):
    """The former command line, kept for the commands recorded in the shipped config.json files:
    ``python -m course_lib.maml ...`` is ``python -m course_lib train maml ...`` (``--eval-only``: ``eval``)."""
    from .. import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    command = "eval" if "--eval-only" in argv else "train"
    return cli.main([command, "maml", *(a for a in argv if a != "--eval-only")])
