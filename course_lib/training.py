"""Training loops, learning-curve history, and checkpoints.

Introduced in notebook 01. Three small pieces that every notebook shares:

* :class:`History`: metrics by step, for plots and for checkpoints;
* :func:`train_loop`: calls your ``step`` function with a progress bar
  (``tqdm.auto``: a widget in JupyterLab, text in a terminal or CI), records
  what it returns, evaluates now and then; :func:`train_classifier` is the
  ordinary supervised loop (SGD on cross-entropy) built on it;
* :func:`save_checkpoint` / :func:`load_checkpoint`: model + config + history,
  loaded with ``torch.load(weights_only=True)`` and checked against the model
  and config you expect, so a wrong file gives a clear error, not a shape
  traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import LabelledImages

CHECKPOINT_FORMAT = "course_lib.checkpoint/1"


class History:
    """Metrics recorded during training: ``history["loss"] -> (steps, values)``."""

    def __init__(self, records: dict[str, list[tuple[int, float]]] | None = None) -> None:
        self.records: dict[str, list[tuple[int, float]]] = {
            k: [tuple(p) for p in v] for k, v in (records or {}).items()
        }
        self.steps_done: int | None = None  # set by train_loop: where the last run of it stopped

    def log(self, step: int, **metrics: float) -> None:
        for name, value in metrics.items():
            self.records.setdefault(name, []).append((int(step), float(value)))

    def __getitem__(self, name: str) -> tuple[list[int], list[float]]:
        if name not in self.records:
            raise KeyError(f"no metric {name!r}; recorded: {sorted(self.records)}")
        steps, values = zip(*self.records[name]) if self.records[name] else ((), ())
        return list(steps), list(values)

    def __contains__(self, name: str) -> bool:
        return name in self.records

    def last(self, name: str) -> float:
        return self[name][1][-1]

    def keys(self) -> list[str]:
        return list(self.records)

    def state_dict(self) -> dict[str, list[list[float]]]:
        return {k: [[s, v] for s, v in pairs] for k, pairs in self.records.items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls({k: [(int(s), float(v)) for s, v in pairs] for k, pairs in state.items()})

    def __repr__(self) -> str:
        return f"History({', '.join(f'{k}: {len(v)} points' for k, v in self.records.items())})"


def train_loop(
    step: Callable[[int], dict[str, float]],
    steps: int,
    *,
    evaluate: Callable[[], dict[str, float]] | None = None,
    eval_every: int | None = None,
    history: History | None = None,
    start_step: int = 0,
    desc: str = "train",
    progress: bool = True,
    max_seconds: float | None = None,
) -> History:
    """Run ``step(i)`` for ``i = start_step .. steps-1``, logging what it returns.

    ``step`` does one optimisation step and returns metrics such as
    ``{"loss": 0.3}``. ``evaluate()`` (optional) runs every ``eval_every``
    steps and after the last one; its metrics are logged at that step.
    ``start_step`` and ``history`` let an interrupted run resume.
    ``max_seconds`` stops the loop early (before starting a step once that
    much wall time has passed); ``history.steps_done`` says where it stopped.
    """
    if steps < 0 or start_step < 0:
        raise ValueError("steps and start_step must be >= 0")
    history = history if history is not None else History()
    history.steps_done = start_step
    started = time.monotonic()
    bar = tqdm(range(start_step, steps), desc=desc, disable=not progress, initial=start_step, total=steps)
    for i in bar:
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            bar.close()
            break
        metrics = step(i)
        history.log(i, **metrics)
        is_last = i == steps - 1
        if evaluate is not None and ((eval_every and (i + 1) % eval_every == 0) or is_last):
            eval_metrics = evaluate()
            history.log(i, **eval_metrics)
            metrics = {**metrics, **eval_metrics}
        bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
        history.steps_done = i + 1
    return history


def classification_accuracy(model: torch.nn.Module, data: LabelledImages, device, batch_size: int = 1000) -> float:
    """Fraction of ``data`` that ``model`` labels correctly (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            x = data.images[start : start + batch_size].to(device)
            y = data.labels[start : start + batch_size].to(device)
            correct += (model(x).argmax(dim=-1) == y).sum().item()
    model.train(was_training)
    return correct / max(len(data), 1)


def train_classifier(
    model: torch.nn.Module,
    train: LabelledImages,
    *,
    steps: int,
    device: torch.device | str,
    lr: float = 0.1,
    momentum: float = 0.0,
    batch_size: int = 64,
    held_out: LabelledImages | None = None,
    eval_every: int = 100,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "SGD on cross-entropy",
) -> History:
    """The learning algorithm people design: minibatch SGD on the cross-entropy.

    theta <- theta - lr * grad_theta (1/B) sum_i -log p_theta(y_i | x_i)

    Logs ``loss`` and ``train_accuracy`` (on the minibatch) each step and, with
    ``held_out``, ``held_out_accuracy`` every ``eval_every`` steps.
    """
    device = torch.device(device)
    model.to(device).train()
    images, labels = train.images.to(device), train.labels.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    batch_size = min(batch_size, len(train))

    def step(_: int) -> dict[str, float]:
        batch = torch.randint(len(images), (batch_size,), generator=generator).to(device)
        logits = model(images[batch])
        loss = F.cross_entropy(logits, labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = (logits.argmax(-1) == labels[batch]).float().mean()
        return {"loss": loss.item(), "train_accuracy": accuracy.item()}

    evaluate = None
    if held_out is not None:
        evaluate = lambda: {"held_out_accuracy": classification_accuracy(model, held_out, device)}  # noqa: E731
    return train_loop(step, steps, evaluate=evaluate, eval_every=eval_every, desc=desc, progress=progress)


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


class CheckpointMismatchError(ValueError):
    """The checkpoint belongs to another model class, config, or architecture."""


def _plain_config(config: Any) -> dict:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dataclass instance or a dict, got {type(config).__name__}")
    return config


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    config: Any,
    *,
    history: History | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    step: int | None = None,
    results: dict | None = None,
) -> Path:
    """Write model weights, config, history (and optimizer state) atomically.

    ``config`` is a dataclass or dict of plain values (numbers, strings, lists).
    The file is written next to ``path`` and renamed, so a crash mid-write
    never leaves a broken checkpoint behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "config": _plain_config(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history.state_dict() if history is not None else {},
        "step": step,
        "results": results or {},
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.chmod(temporary, 0o644)  # mkstemp makes owner-only files; checkpoints are shared
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    config: Any = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: torch.device | str = "cpu",
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model``.

    Checks, before touching the model, that the file holds the same model
    class, the same ``config`` (if given) and tensors of the same shapes.
    Returns the payload: ``config``, ``history`` (a :class:`History`),
    ``step``, ``results``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated file, or not a torch file at all
        raise CheckpointMismatchError(f"{path} is not a readable course_lib checkpoint: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(f"{path} was not written by course_lib.save_checkpoint")
    expected_class = type(model).__name__
    if payload["model_class"] != expected_class:
        raise CheckpointMismatchError(
            f"{path} holds a {payload['model_class']} but the model is a {expected_class}: "
            "load it into the model it was trained with."
        )
    if config is not None:
        wanted = _plain_config(config)
        stored = payload["config"]
        differences = [
            f"{key}: checkpoint {stored.get(key, '<missing>')!r} vs yours {wanted.get(key, '<missing>')!r}"
            for key in sorted(set(wanted) | set(stored))
            if stored.get(key, "<missing>") != wanted.get(key, "<missing>")
        ]
        if differences:
            raise CheckpointMismatchError(
                f"{path} was trained with another config ({'; '.join(differences)}). "
                "Build the model with the checkpoint's config, or retrain."
            )
    own = model.state_dict()
    stored_state = payload["state_dict"]
    problems = [f"missing {k}" for k in own if k not in stored_state]
    problems += [f"unexpected {k}" for k in stored_state if k not in own]
    problems += [
        f"{k}: checkpoint {tuple(stored_state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in stored_state and stored_state[k].shape != v.shape
    ]
    if problems:
        raise CheckpointMismatchError(
            f"{path} does not fit this {expected_class} ({'; '.join(problems[:5])}"
            f"{' ...' if len(problems) > 5 else ''}): it was saved from a different architecture."
        )
    model.load_state_dict(stored_state)
    if optimizer is not None and "optimizer" in payload:
        optimizer.load_state_dict(payload["optimizer"])
    payload["history"] = History.from_state_dict(payload.get("history", {}))
    return payload


# --------------------------------------------------------------------------
# Run folders: every command line writes its JSON and Markdown through these
# --------------------------------------------------------------------------


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically: a half-written file never replaces a good one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path: str | Path, value) -> None:
    """``value`` as indented JSON, atomically (numbers JSON does not know, e.g. numpy floats, as floats)."""
    write_text(path, json.dumps(value, indent=2, default=float) + "\n")
