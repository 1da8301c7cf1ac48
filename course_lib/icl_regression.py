"""In-context linear regression: the task-diversity threshold at CPU scale (notebook 08, section 3).

After Raventós, Paul, Chen & Ganguli, "Pretraining task diversity and the
emergence of non-Bayesian in-context learning for regression" (NeurIPS 2023).
A task is a weight vector ``w`` in R^d. A sequence holds ``points`` examples
``x_t ~ N(0, I_d)``, ``y_t = w . x_t + eps_t`` with ``eps_t ~ N(0, noise_var)``;
a causal transformer reads token t = ``[x_t, y_{t-1}, x_{t-1}]`` (the pair
tokens of :mod:`course_lib.gpicl`, zeros at t = 1) and predicts ``y_t``. The
loss is the squared error over all positions divided by d. Meta-training draws
``w`` uniformly from a finite pool of ``num_tasks`` vectors (drawn once from
N(0, I_d)); ``num_tasks = inf`` draws a fresh ``w`` for every sequence.

Two estimators are the oracles, both in closed form (:func:`ridge_predictions`,
:func:`dmmse_predictions`):

* **dMMSE**, the Bayes-optimal predictor when ``w`` is uniform on the pool
  (the training distribution): the posterior over the pool vectors given the
  first t-1 examples, ``p_k ∝ exp(-Σ_{i<t} (y_i - w_k . x_i)^2 / (2 noise_var))``,
  and the prediction ``x_t . Σ_k p_k w_k``. It is perfect on pool tasks and
  poor on new ones: memorisation.
* **ridge regression** with ``lambda = noise_var``, the Bayes-optimal predictor
  when ``w ~ N(0, I_d)`` (every task): ``w_hat = (X^T X + noise_var I)^{-1} X^T y``
  from the first t-1 examples. It is what a general in-context learner of
  linear functions should do.

The paper's finding, which :func:`main` sweeps: below a threshold in the pool
size the trained transformer behaves like dMMSE for its pool; above it, like
ridge, also on weight vectors it never saw. :func:`evaluate` scores every
model on pool tasks and new tasks, together with both estimators and the mean
squared distance between the model's predictions and each estimator's.

Command line (the run notebook 08 ships is in ``data/gpicl/README.md``)::

    python -m course_lib.icl_regression --num-tasks 1,4,16,64,256,1024,4096,inf --steps 5000 \\
        --out data/gpicl/regression_cpu --max-minutes 20 --threads 1
    python -m course_lib.icl_regression --out data/gpicl/regression_cpu --resume --max-minutes 10

A run folder holds ``config.json`` (config and command), ``results.json`` /
``results.md`` (one row per pool size), ``history.json`` (training loss of
every model every 10 steps) and ``weights.pt`` (all models, bf16); the
resumable ``checkpoint.pt`` (with Adam state) goes to ``--checkpoint-dir``
(default: the run folder).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import gpicl
from .evaluation import mean_confidence_interval
from .runtime import get_device, machine_description
from .training import write_json, write_text

INF = gpicl.INF
_POOL_SALT = 7919  # pools and test tasks come from different generators
_TEST_SALT = 104729


@dataclass
class RegressionConfig:
    dim: int = 8  # d: inputs and weight vectors in R^d
    points: int = 16  # examples per sequence
    noise_var: float = 0.25  # variance of the label noise
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ffn_mult: int = 2
    batch_size: int = 128  # sequences per model per step
    steps: int = 5000
    lr: float = 1e-3
    warmup: int = 100
    clip: float = 1.0
    seed: int = 0
    num_tasks: list = field(default_factory=lambda: [1, 4, 16, 64, 256, 1024, 4096, INF])

    def model_config(self) -> gpicl.GPICLConfig:
        """The stacked transformer of :mod:`course_lib.gpicl` with one output (the prediction of y_t)."""
        return gpicl.GPICLConfig(model="transformer", d_model=self.d_model, layers=self.layers, heads=self.heads,
                                 ffn_mult=self.ffn_mult, input_dim=self.dim, num_classes=1, seq_len=self.points,
                                 pair_tokens=True, num_tasks=list(self.num_tasks),
                                 biased_fraction=[0.0] * len(self.num_tasks))


def check_config(config: RegressionConfig) -> None:
    """Clear errors for values that would fail later, or silently mean nothing."""
    for name in ("dim", "points", "d_model", "layers", "heads", "batch_size", "steps"):
        if int(getattr(config, name)) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(config, name)!r}")
    if not config.noise_var > 0:
        raise ValueError(f"noise_var must be > 0 (the estimators divide by it), got {config.noise_var!r}")
    if config.d_model % config.heads:
        raise ValueError(f"d_model={config.d_model} is not divisible by heads={config.heads}")
    if not config.num_tasks:
        raise ValueError("num_tasks is empty: name at least one pool size (or 'inf')")
    gpicl.parse_num_tasks(",".join(map(str, config.num_tasks)))  # same rules as the GPICL sweep


# --------------------------------------------------------------------------
# Tasks and sequences
# --------------------------------------------------------------------------


def task_pool(num_tasks, dim: int, seed: int) -> torch.Tensor | None:
    """The pool ``[num_tasks, dim]`` of weight vectors (N(0, I)), the same for the same arguments; inf: None."""
    if num_tasks == INF:
        return None
    generator = torch.Generator().manual_seed(seed * 1_000_003 + _POOL_SALT)
    return torch.randn(int(num_tasks), dim, generator=generator)


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


# --------------------------------------------------------------------------
# The two oracles
# --------------------------------------------------------------------------


def ridge_predictions(x: torch.Tensor, y: torch.Tensor, noise_var: float) -> torch.Tensor:
    """Posterior-mean prediction of y_t under w ~ N(0, I) from the first t-1 examples: ``[..., L]``.

    ``w_hat = (X^T X + noise_var I)^{-1} X^T y`` (ridge regression with lambda = noise_var); at t = 1 it is 0.
    """
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
    """Posterior-mean prediction of y_t when w is uniform on ``pool [K, d]``, from the first t-1 examples.

    ``x [S, L, d]``, ``y [S, L]`` -> ``[S, L]``; computed in chunks of sequences (the posterior is [S, L, K]).
    """
    pool = pool.double()
    out = []
    for start in range(0, x.shape[0], chunk):
        xs, ys = x[start:start + chunk].double(), y[start:start + chunk].double()
        squared = (ys.unsqueeze(-1) - xs @ pool.T) ** 2  # [s, L, K]: (y_i - w_k . x_i)^2
        before = torch.cumsum(squared, dim=1) - squared  # sum over i < t
        posterior = torch.softmax(-before / (2 * noise_var), dim=-1)
        out.append((xs * (posterior @ pool)).sum(-1))
    return torch.cat(out).float()


# --------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------


def build_models(config: RegressionConfig) -> gpicl.StackedTransformer:
    torch.manual_seed(config.seed)
    return gpicl.StackedTransformer(config.model_config(), len(config.num_tasks))


def predict(model: gpicl.StackedTransformer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x [M, B, L, d]``, ``y [M, B, L]`` -> predictions ``[M, B, L]`` (model m reads batch m), on x's device.

    The sequences are drawn on the CPU (seeded generators); the model may live on a GPU."""
    device = next(model.parameters()).device
    return model(tokens(x, y).to(device)).squeeze(-1).to(x.device)


@dataclass
class TrainState:
    model: gpicl.StackedTransformer
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    seconds: float = 0.0
    history: dict = field(default_factory=lambda: {"step": [], "loss": []})


def new_state(config: RegressionConfig, device="cpu") -> TrainState:
    model = build_models(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return TrainState(model, optimizer, torch.Generator().manual_seed(config.seed))


def save_checkpoint(path: Path, state: TrainState, config: RegressionConfig) -> None:
    payload = {"format": "course_lib.icl_regression/1", "config": dataclasses.asdict(config), "step": state.step,
               "seconds": state.seconds, "history": state.history, "model": state.model.state_dict(),
               "optimizer": state.optimizer.state_dict(), "generator": state.generator.get_state()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, device="cpu") -> tuple[TrainState, RegressionConfig]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != "course_lib.icl_regression/1":
        raise ValueError(f"{path} is not an in-context regression checkpoint")
    config = RegressionConfig(**payload["config"])
    state = new_state(config, device)
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.generator.set_state(payload["generator"])
    state.step, state.seconds, state.history = payload["step"], payload["seconds"], payload["history"]
    return state, config


def train(state: TrainState, config: RegressionConfig, *, max_seconds: float | None = None,
          checkpoint: Path | None = None, checkpoint_seconds: float = 120.0, progress: bool = True,
          log_every: int = 10) -> TrainState:
    """Train every model on its own pool until ``config.steps`` or ``max_seconds`` (this call)."""
    pools = [task_pool(n, config.dim, config.seed) for n in config.num_tasks]
    model, optimizer, generator = state.model, state.optimizer, state.generator
    device = next(model.parameters()).device
    M = len(pools)
    started = last_save = time.time()
    seconds_before = state.seconds
    loss_sum, count = torch.zeros(M), 0
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc=f"regression x{M}")
    model.train()
    try:
        while state.step < config.steps and (max_seconds is None or time.time() - started < max_seconds):
            for group in optimizer.param_groups:
                group["lr"] = config.lr * min(1.0, (state.step + 1) / max(1, config.warmup))
            weights = torch.stack([draw_weights(p, config.batch_size, config.dim, generator) for p in pools])
            x, y = sample_sequences(weights, config.points, config.noise_var, generator)
            x, y = x.to(device), y.to(device)
            losses = ((predict(model, x, y) - y) ** 2).mean(dim=(1, 2)) / config.dim  # [M]
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            if config.clip:
                gpicl.per_model_grad_clip_(model, config.clip)
            optimizer.step()
            loss_sum += losses.detach().cpu()
            count += 1
            state.step += 1
            bar.update(1)
            if state.step % log_every == 0:
                state.history["step"].append(state.step)
                state.history["loss"].append([round(v, 4) for v in (loss_sum / count).tolist()])
                loss_sum.zero_()
                count = 0
                if checkpoint is not None and time.time() - last_save > checkpoint_seconds:
                    state.seconds = seconds_before + time.time() - started
                    save_checkpoint(checkpoint, state, config)
                    last_save = time.time()
    except KeyboardInterrupt:
        print("\ninterrupted: checkpointing, then evaluating what was trained", file=sys.stderr)
    finally:
        bar.close()
    state.seconds = seconds_before + time.time() - started
    if checkpoint is not None:
        save_checkpoint(checkpoint, state, config)
    return state


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def _summary(per_sequence: torch.Tensor) -> dict:
    mean, ci = mean_confidence_interval(per_sequence)
    return {"mean": round(mean, 5), "ci95": round(ci, 5)}


@torch.no_grad()
def evaluate(model: gpicl.StackedTransformer, config: RegressionConfig, sequences: int = 1024,
             seed: int = 1) -> list[dict]:
    """One row per model: on its **pool** tasks and on **new** tasks (w ~ N(0, I), never in any pool),
    the normalised MSE (squared error / d, over all positions) of the model, ridge and dMMSE for its pool,
    by position and overall, and the mean squared distance of the model's predictions to each estimator's."""
    model.eval()
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + _TEST_SALT + seed)
    pools = [task_pool(n, config.dim, config.seed) for n in config.num_tasks]
    rows = [{"num_tasks": n, "model_index": m} for m, n in enumerate(config.num_tasks)]
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
            for name in ("ridge", "dmmse"):
                if name in estimates:
                    distance = (predictions[m] - estimates[name]) ** 2 / config.dim
                    entry[f"model_to_{name}"] = _summary(distance.mean(1))
            rows[m][split] = entry
    return rows


def _cell(summary: dict | None) -> str:
    return "–" if summary is None else f"{summary['mean']:.3f} ± {summary['ci95']:.3f}"


def _where(machine: dict) -> str:
    if machine.get("gpu"):
        return f"{machine['gpu']} ({machine['device']})"
    return f"{machine.get('cpu') or machine['device']}, {machine['torch_threads']} torch thread(s)"


def results_markdown(rows: list[dict], config: RegressionConfig, meta: dict) -> str:
    lines = [
        f"# In-context linear regression: d = {config.dim}, {config.points} examples per sequence, "
        f"noise variance {config.noise_var}",
        "",
        f"Normalised MSE (squared error / d, mean over the {config.points} positions), mean ± 95% CI over "
        f"{meta['eval_sequences']} sequences; `model → ridge` / `model → dMMSE`: mean squared distance "
        "between the model's predictions and the estimator's (/ d). A model that memorised its pool is close "
        "to dMMSE; a general in-context learner is close to ridge, also on new tasks. "
        f"{meta['steps']} training steps of batch {config.batch_size}; {_where(meta['machine'])}; "
        f"{meta['train_seconds'] / 60:.1f} min of training.",
        "",
        "| tasks | model, pool tasks | dMMSE, pool tasks | model, new tasks | ridge, new tasks | dMMSE, new tasks "
        "| model → ridge, new | model → dMMSE, new |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        pool, new = row["pool"], row["new"]
        lines.append(f"| {row['num_tasks']} | {_cell(pool['model'])} | {_cell(pool.get('dmmse'))} | "
                     f"{_cell(new['model'])} | {_cell(new['ridge'])} | {_cell(new.get('dmmse'))} | "
                     f"{_cell(new['model_to_ridge'])} | {_cell(new.get('model_to_dmmse'))} |")
    lines += ["", f"Parameters per model: {meta['parameters']:,}. The noise floor (an estimator that knew w) is "
              f"{config.noise_var / config.dim:.4f}."]
    return "\n".join(lines) + "\n"


def save_weights(model: gpicl.StackedTransformer, config: RegressionConfig, path: Path) -> None:
    payload = {"config": dataclasses.asdict(config),
               "state_dict": {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}}
    temporary = path.with_name(f".{path.name}.part")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_models(folder: Path | str) -> tuple[gpicl.StackedTransformer, RegressionConfig]:
    """All models of a run folder's ``weights.pt`` (float32, eval mode) and their config."""
    payload = torch.load(Path(folder) / "weights.pt", map_location="cpu", weights_only=True)
    config = RegressionConfig(**payload["config"])
    model = build_models(config)
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    return model.eval(), config


def load_run(folder: Path | str) -> dict:
    """``results.json`` of a run folder, with its ``history.json`` under ``"history"``."""
    folder = Path(folder)
    results = json.loads((folder / "results.json").read_text())
    results["history"] = json.loads((folder / "history.json").read_text())
    return results


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    defaults = RegressionConfig()
    parser = argparse.ArgumentParser(prog="python -m course_lib.icl_regression", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="run folder (created)")
    parser.add_argument("--num-tasks", default=",".join(map(str, defaults.num_tasks)),
                        help="comma-separated pool sizes: positive ints, 2^k or inf (one model each)")
    for name in ("dim", "points", "d_model", "layers", "heads", "ffn_mult", "batch_size", "steps", "warmup", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name),
                            help=f"default {getattr(defaults, name)}")
    for name in ("noise_var", "lr", "clip"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name),
                            help=f"default {getattr(defaults, name)}")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint (stored config)")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument("--checkpoint-minutes", type=float, default=2.0)
    parser.add_argument("--checkpoint-dir", default=None, help="where checkpoint.pt goes (default: --out)")
    parser.add_argument("--eval-sequences", type=int, default=1024)
    parser.add_argument("--device", default="cpu", help="cpu (default: the models are small), cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.eval_sequences < 2:
        raise SystemExit("--eval-sequences must be at least 2 (a confidence interval needs two sequences)")
    out = Path(args.out)
    try:
        device = get_device(args.device)
    except (ValueError, RuntimeError) as error:
        raise SystemExit(f"error: {error}") from None
    checkpoint = Path(args.checkpoint_dir or out) / "checkpoint.pt"
    command = "python -m course_lib.icl_regression " + " ".join(shlex.quote(a) for a in argv)
    if args.resume:
        if not checkpoint.is_file():
            raise SystemExit(f"--resume: no checkpoint at {checkpoint}; start the run without --resume first")
        state, config = load_checkpoint(checkpoint, device)
        if "--steps" in argv:
            config.steps = args.steps
        record = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
        record.setdefault("later_commands", []).append(command)
        record["config"] = dataclasses.asdict(config)
    else:
        try:
            num_tasks = gpicl.parse_num_tasks(args.num_tasks)
            config = RegressionConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RegressionConfig)
                                         if f.name != "num_tasks"}, num_tasks=num_tasks)
            check_config(config)
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None  # nothing written yet
        if checkpoint.is_file():
            raise SystemExit(f"{checkpoint} exists: pass --resume to continue it, or choose another --out")
        state = new_state(config, device)
        record = {"command": command, "config": dataclasses.asdict(config)}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", record)
    max_seconds = None if args.max_minutes is None else 60 * args.max_minutes
    state = train(state, config, max_seconds=max_seconds, checkpoint=checkpoint,
                  checkpoint_seconds=60 * args.checkpoint_minutes, progress=not args.no_progress)
    started = time.time()
    rows = evaluate(state.model, config, sequences=args.eval_sequences)
    meta = {"steps": state.step, "train_seconds": round(state.seconds, 1), "eval_seconds": round(time.time() - started, 1),
            "eval_sequences": args.eval_sequences, "machine": machine_description(device),
            "torch_threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in state.model.parameters()) // len(config.num_tasks)}
    write_json(out / "history.json", state.history)
    save_weights(state.model, config, out / "weights.pt")
    write_json(out / "results.json", {"config": dataclasses.asdict(config), **meta, "rows": rows})
    summary = results_markdown(rows, config, meta)
    write_text(out / "results.md", summary)
    print(summary)
    return rows


if __name__ == "__main__":
    main()
