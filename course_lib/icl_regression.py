"""In-context linear regression: the task-diversity threshold at CPU scale (notebook 08, section 3).

After Raventós, Paul, Chen & Ganguli (NeurIPS 2023). A task is a weight vector
``w`` in R^d; a sequence holds ``points`` examples ``x_t ~ N(0, I_d)``,
``y_t = w . x_t + eps_t``, ``eps_t ~ N(0, noise_var)``. A causal transformer
(GPICL's :class:`~course_lib.gpicl.StackedTransformer`, one model per pool size,
pair tokens ``[x_t, y_{t-1}, x_{t-1}]``) predicts ``y_t``; the loss is the squared
error divided by d. Training draws ``w`` from a pool of ``num_tasks`` vectors
drawn once from N(0, I_d) (``inf``: a fresh ``w`` per sequence). The two
Bayes-optimal oracles: **dMMSE** when ``w`` is uniform on the pool (memorisation)
and **ridge regression** (``lambda = noise_var``) when ``w ~ N(0, I_d)`` (a
general in-context learner). The paper's finding: below a threshold in the pool
size the transformer behaves like dMMSE, above it like ridge, also on new tasks::

    python -m course_lib train icl-regression --num-tasks 1,4,16,64,256,1024,inf --steps 15000 \\
        --out runs/icl_regression --device cpu --threads 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import gpicl
from .episodes import step_generator
from .evaluation import mean_confidence_interval
from .runs import RunSpec, Trainer

INF = gpicl.INF
POOL_SALT = 7919  # pools and test tasks come from different generators
TEST_SALT = 104729


@dataclass
class RegressionConfig:
    """One sweep over pool sizes: one transformer per entry of ``num_tasks``."""

    num_tasks: str = "1,4,16,64,256,1024,4096,inf"  # pool sizes, one model each (inf: a fresh w every sequence)
    dim: int = 8  # d: inputs and weight vectors in R^d
    points: int = 16  # examples per sequence
    noise_var: float = 0.25  # variance of the label noise
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_mult: int = 2
    batch_size: int = 128  # sequences per model per step
    steps: int = 5000
    meta_lr: float = 1e-3
    warmup: int = 100  # steps of linear learning-rate warm-up
    clip: float = 1.0  # gradient norm clipping per model (0: off)
    seed: int = 0

    def __post_init__(self) -> None:
        self.num_tasks = ",".join(map(str, gpicl.parse_num_tasks(self.num_tasks)))  # same rules as GPICL's
        for name in ("dim", "points", "d_model", "layers", "heads", "ffn_mult", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.noise_var > 0:
            raise ValueError(f"noise_var must be > 0 (the estimators divide by it), got {self.noise_var!r}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")
        gpicl.check_optimisation(self)

    @property
    def pools(self) -> list:
        """``[1, 4, ..., "inf"]``: the pool size of every model."""
        return gpicl.parse_num_tasks(self.num_tasks)

    @property
    def shape(self) -> gpicl.TransformerShape:
        """GPICL's stacked transformer with pair tokens ``[x_t, y_{t-1}, x_{t-1}]`` and one output."""
        return gpicl.TransformerShape(d_model=self.d_model, layers=self.layers, heads=self.heads,
                                      ffn_mult=self.ffn_mult, input_dim=self.dim, num_classes=1, seq_len=self.points,
                                      pair_tokens=True)


# -------------------- Tasks and sequences


def task_pool(num_tasks, dim: int, seed: int) -> torch.Tensor | None:
    """The pool ``[num_tasks, dim]`` of weight vectors (N(0, I)), the same for the same arguments; inf: None."""
    if num_tasks == INF:
        return None
    return torch.randn(int(num_tasks), dim, generator=step_generator(seed, POOL_SALT))


def sample_sequences(weights: torch.Tensor, points: int, noise_var: float, generator: torch.Generator):
    """``weights [..., d]`` -> ``x [..., L, d]``, ``y [..., L]`` with ``y_t = w . x_t + noise``."""
    x = torch.randn(*weights.shape[:-1], points, weights.shape[-1], generator=generator)
    noise = torch.randn(*weights.shape[:-1], points, generator=generator) * math.sqrt(noise_var)
    return x, (x @ weights.unsqueeze(-1)).squeeze(-1) + noise


def draw_weights(pool: torch.Tensor | None, count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` weight vectors: uniformly from the pool, or fresh from N(0, I) when the pool is None."""
    if pool is None:
        return torch.randn(count, dim, generator=generator)
    return pool[torch.randint(len(pool), (count,), generator=generator)]


def tokens(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[x_t, y_{t-1}]`` for every t (y_0 = 0): token t never contains y_t. The model adds x_{t-1} itself."""
    previous_y = torch.nn.functional.pad(y, (1, 0))[..., :-1]
    return torch.cat([x, previous_y.unsqueeze(-1)], dim=-1)


# -------------------- The two oracles


def ridge_predictions(x: torch.Tensor, y: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Posterior-mean prediction ``[..., L]`` of y_t under w ~ N(0, I) from the first t-1 examples:
    ``w_hat = (X^T X + noise_var I)^{-1} X^T y`` (ridge regression with lambda = noise_var; 0 at t = 1)."""
    x, y = x.double(), y.double()
    L, d = x.shape[-2:]
    eye = torch.eye(d, dtype=x.dtype)
    predictions = []
    for t in range(L):
        X, Y = x[..., :t, :], y[..., :t]
        gram = X.transpose(-1, -2) @ X + noise_var * eye
        w_hat = torch.linalg.solve(gram, (X.transpose(-1, -2) @ Y.unsqueeze(-1))).squeeze(-1)
        predictions.append((x[..., t, :] * w_hat).sum(-1))
    return torch.stack(predictions, -1).float()


def dmmse_predictions(x: torch.Tensor, y: torch.Tensor, pool: torch.Tensor, noise_var: float,
                      chunk: int = 64) -> torch.Tensor:
    """Posterior-mean prediction of y_t when w is uniform on ``pool [K, d]``, from the first t-1 examples:
    ``x [S, L, d]``, ``y [S, L]`` -> ``[S, L]``, in chunks of sequences (the posterior is [S, L, K])."""
    pool = pool.double()
    out = []
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start:start + chunk].double(), y[start:start + chunk].double()
        squared = (ys.unsqueeze(-1) - xs @ pool.T) ** 2  # [s, L, K]: (y_i - w_k . x_i)^2
        before = torch.cumsum(squared, dim=1) - squared  # sum over i < t
        posterior = torch.softmax(-before / (2 * noise_var), dim=-1)
        out.append((xs * (posterior @ pool)).sum(-1))
    return torch.cat(out).float()


# -------------------- The model, and one training step of the sweep


def build(config: RegressionConfig) -> gpicl.StackedTransformer:
    """One transformer per pool size, stacked."""
    return gpicl.StackedTransformer(config.shape, len(config.pools))


def predict(model: gpicl.StackedTransformer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x [M, B, L, d]``, ``y [M, B, L]`` -> predictions ``[M, B, L]`` (model m reads batch m), on x's device
    (sequences are drawn on the CPU with seeded generators; the model may live on a GPU)."""
    device = next(model.parameters()).device
    return model(tokens(x, y).to(device)).squeeze(-1).to(x.device)


def trainer(model: gpicl.StackedTransformer, config: RegressionConfig, data: dict,
            device: torch.device | str = "cpu") -> Trainer:
    """One step: every model draws a batch from its own pool, from ``(config.seed, i)`` only (a resumed run
    trains exactly as an uninterrupted one); logs each model's loss (``loss_1``, ``loss_inf``, ...)."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.meta_lr)
    pools, names = data["pools"], [f"loss_{n}" for n in config.pools]

    def step(i: int) -> dict[str, float]:
        generator = step_generator(config.seed, i)
        weights = torch.stack([draw_weights(pool, config.batch_size, config.dim, generator) for pool in pools])
        x, y = sample_sequences(weights, config.points, config.noise_var, generator)
        losses = ((predict(model, x, y) - y) ** 2).mean(dim=(1, 2)) / config.dim  # [M]
        gpicl.adam_step_(model, optimizer, losses, config, i)
        return {name: round(loss, 5) for name, loss in zip(names, losses.tolist())}

    return Trainer(step, optimizer)


# -------------------- Evaluation


def _summary(per_sequence: torch.Tensor) -> dict:
    mean, ci = mean_confidence_interval(per_sequence)
    return {"mean": round(mean, 5), "ci95": round(ci, 5)}


@torch.no_grad()
def evaluate_models(model: gpicl.StackedTransformer, config: RegressionConfig, sequences: int = 1024,
                    seed: int = 1) -> list[dict]:
    """One row per model: on its pool tasks and on new tasks, the error (squared / d) of the model, ridge and
    dMMSE, by position and overall, and the mean squared distance of the model's predictions to each oracle's."""
    model.eval()
    generator = step_generator(config.seed, TEST_SALT + seed)
    pools = [task_pool(n, config.dim, config.seed) for n in config.pools]
    rows = [RegressionRow(num_tasks=n, model_index=m) for m, n in enumerate(config.pools)]
    for split in ("pool", "new"):
        weights = torch.stack([draw_weights(pool if split == "pool" else None, sequences, config.dim, generator)
                               for pool in pools])
        x, y = sample_sequences(weights, config.points, config.noise_var, generator)  # [M, S, L, d], [M, S, L]
        predictions = torch.cat([predict(model, x[:, s:s + 256], y[:, s:s + 256])
                                 for s in range(0, sequences, 256)], dim=1)  # all models at once
        for m, pool in enumerate(pools):
            estimates = {"model": predictions[m], "ridge": ridge_predictions(x[m], y[m], config.noise_var)}
            if pool is not None:
                estimates["dmmse"] = dmmse_predictions(x[m], y[m], pool, config.noise_var)
            entry = {}
            for name, estimate in estimates.items():
                squared = (estimate - y[m]) ** 2 / config.dim  # [S, L]
                entry[name] = {**_summary(squared.mean(1)),
                               "by_position": [round(v, 5) for v in squared.mean(0).tolist()]}
            for name in list(estimates)[1:]:  # ridge, dMMSE
                distance = (predictions[m] - estimates[name]) ** 2 / config.dim
                entry[f"model_to_{name}"] = _summary(distance.mean(1))
            rows[m][split] = entry
    return rows


class RegressionRow(dict):
    """One model's row (a dict, as results.json holds it), printed in one line."""

    def __str__(self) -> str:
        new = self["new"]
        return (f"new tasks: model {new['model']['mean']:.3f}, ridge {new['ridge']['mean']:.3f}; model to ridge "
                f"{new['model_to_ridge']['mean']:.3f}"
                + (f", to dMMSE {new['model_to_dmmse']['mean']:.3f}" if "model_to_dmmse" in new else ""))


def _cell(summary: dict | None) -> str:
    return "–" if summary is None else f"{summary['mean']:.3f} ± {summary['ci95']:.3f}"


def results_table(rows: list[dict], config: RegressionConfig, sequences: int, where: str) -> str:
    """The markdown table of a sweep: every model against both oracles."""
    parameters = sum(p.numel() for p in gpicl.StackedTransformer(config.shape, 1).parameters())
    lines = [
        f"# In-context linear regression: d = {config.dim}, {config.points} examples per sequence, "
        f"noise variance {config.noise_var}",
        "",
        f"Normalised MSE (squared error / d, mean over the {config.points} positions), mean ± 95% CI over "
        f"{sequences} sequences; `model → ridge` / `model → dMMSE`: mean squared distance "
        "between the model's predictions and the estimator's (/ d). A model that memorised its pool is close "
        f"to dMMSE; a general in-context learner is close to ridge, also on new tasks. {where}",
        "",
        "| tasks | model, pool tasks | dMMSE, pool tasks | model, new tasks | ridge, new tasks | dMMSE, new tasks "
        "| model → ridge, new | model → dMMSE, new |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        pool, new = row["pool"], row["new"]
        cells = (pool["model"], pool.get("dmmse"), new["model"], new["ridge"], new.get("dmmse"),
                 new["model_to_ridge"], new.get("model_to_dmmse"))
        lines.append(f"| {row['num_tasks']} | " + " | ".join(map(_cell, cells)) + " |")
    lines += ["", f"Parameters per model: {parameters:,}. The noise floor (an estimator that knew w) is "
              f"{config.noise_var / config.dim:.4f}."]
    return "\n".join(lines) + "\n"


# -------------------- The face the registry reads (course_lib.registry)

Config = RegressionConfig
PAPER: dict[str, float] = {}  # the paper's results are curves, not numbers to compare one run with
RUNS = (
    RunSpec("data/gpicl/regression_cpu", "in-context linear regression, CPU-sized sweep"),
    # d = 8, 16 examples, noise variance 0.25 as in the paper; an 8-layer, 128-wide transformer with batch 256
    RunSpec("data/gpicl/regression", "in-context linear regression, paper-sized sweep",
            ("--num-tasks", "1,4,16,64,256,1024,4096,16384,65536,inf", "--d-model", "128", "--layers", "8",
             "--heads", "2", "--batch-size", "256", "--steps", "500000", "--test-episodes", "1024"),
            ("--num-tasks", "2,inf", "--d-model", "16", "--layers", "1", "--batch-size", "8", "--steps", "2",
             "--test-episodes", "8"), job="icl_regression"),
)


def load_data(config: RegressionConfig, smoke: bool = False) -> dict:
    """``{"pools": [one pool of weight vectors per model (None: inf)]}``: the tasks are generated."""
    return {"pools": [task_pool(n, config.dim, config.seed) for n in config.pools]}


def evaluate(model, config: RegressionConfig, data: dict, device="cpu", *, settings=None, episodes: int = 1024,
             progress: bool = True) -> dict[str, RegressionRow]:
    """``{"1": row, ..., "inf": row}`` on ``episodes`` sequences of pool tasks and of new tasks per model
    (``settings``, few-shot ways and shots, do not apply)."""
    return {str(row["num_tasks"]): row for row in evaluate_models(model.to(device), config, sequences=episodes)}


def evaluation_details(settings) -> dict:
    return {"evaluation_seed": 1}


def results_markdown(method, entries: dict, config: RegressionConfig, meta: dict) -> str:
    machine = meta["machine"]
    where = (f"{meta['steps_done']} training steps of batch {config.batch_size}; "
             f"{machine.get('gpu') or machine.get('cpu') or machine['device']}.")
    return results_table(list(entries.values()), config, meta["test_episodes"], where)


def predictor(model: gpicl.StackedTransformer, model_index: int = 0):
    """``predict(x_context [n, d], y_context [n], x_query [q, d]) -> [q]``: model ``model_index``'s
    prediction for each query after reading the context (the regression counterpart of a few-shot episode)."""

    @torch.no_grad()
    def predict_queries(x_context, y_context, x_query):
        n, q = len(x_context), len(x_query)
        if n + 1 > model.shape.seq_len:
            raise ValueError(f"{n} context examples: the model reads at most {model.shape.seq_len - 1}")
        x = torch.cat([x_context.expand(q, -1, -1), x_query.unsqueeze(1)], dim=1)  # [q, n+1, d]
        y = torch.cat([y_context.expand(q, -1), torch.zeros(q, 1)], dim=1)  # y of the query is never read
        stacked = (x.expand(model.num_models, -1, -1, -1), y.expand(model.num_models, -1, -1))
        return predict(model.eval(), *stacked)[model_index, :, -1]

    return predict_queries


def describe(config: RegressionConfig) -> str:
    return (f"in-context linear regression, d = {config.dim}, {config.points} examples, noise {config.noise_var}; "
            f"a transformer (d_model {config.d_model}, {config.layers} layers) per pool size {config.num_tasks}")
