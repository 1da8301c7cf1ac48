"""The test of Finn et al.'s sinusoid regression (section 5.1): query MSE on new sines after 0, 1 and 10 steps.

Of MAML's initialisation and of the paper's baseline, the same MLP regressed on all tasks' points at once
(``MetaLearner.joint``, trained beside it by :func:`course_lib.maml.trainer`).
"""

import dataclasses

import torch
import torch.nn.functional as F
from torch.func import vmap

from ..evaluation import AccuracyResult, mean_confidence_interval
from .algorithm import MAMLConfig, MetaLearner, Params, head_keys, inner_adapt, mlp_forward, regression_loss, sinusoid_batch


def evaluate_regression(params: Params, config: MAMLConfig, tasks: int = 600, steps_list=(0, 1, 10),
                        device: torch.device | str = "cpu", lrs: Params | None = None,
                        queries: int = 100) -> dict[str, AccuracyResult]:
    """Mean query MSE (± 95% CI, in an :class:`AccuracyResult`) over ``tasks`` test sines after each number
    of inner steps in ``steps_list``."""
    generator = torch.Generator().manual_seed(10_000)
    (sx, sy, qx, qy), _ = sinusoid_batch(generator, tasks, config.shots, queries, device)
    loss_fn = regression_loss(mlp_forward)
    params = {k: v.detach().to(device) for k, v in params.items()}
    results = {}
    for steps in steps_list:
        def one(a, b, c, d):
            fast = inner_adapt(params, a, b, steps, config.inner_lr, loss_fn, first_order=True, per_param_lr=lrs,
                               adapt_keys=head_keys(params) if config.variant == "anil" else None)
            return F.mse_loss(mlp_forward(fast, c), d)

        with torch.no_grad():
            errors = vmap(one)(sx, sy, qx, qy)
        mean, ci = mean_confidence_interval(errors.cpu())
        results[f"{steps} steps"] = AccuracyResult(mean, ci, tasks)
    return results


def evaluate_sinusoid(model: MetaLearner, tasks: int, device: torch.device | str = "cpu") -> dict:
    """``{variant: {"0 steps": {...}, "1 steps": ..., "10 steps": ...}, "joint pretraining": {...}}``: query MSE
    (mean, ci95, tasks) of MAML's initialisation and of the joint-regression baseline, on the same sines."""
    config = model.config
    runs = {config.variant: (model.theta(), model.step_sizes(), config),
            "joint pretraining": (dict(model.joint.items()), None, dataclasses.replace(config, variant="maml"))}
    return {name: {k: v.as_dict() for k, v in evaluate_regression(params, c, tasks, device=device, lrs=lrs).items()}
            for name, (params, lrs, c) in runs.items()}


def results_table(entries: dict, meta: dict) -> str:
    """The Markdown table of :func:`evaluate_sinusoid`'s results (for results.md)."""
    rows = [f"| {model} | {steps} | {e['mean']:.3f} ± {e['ci95']:.3f} |"
            for model, by_steps in entries.items() for steps, e in by_steps.items()]
    return (f"Query MSE on {meta['test_episodes']} test sines (100 query points each), lower is better.\n\n"
            "| model | steps at test | MSE (95% CI) |\n|---|---|---|\n" + "\n".join(rows) + "\n")
