"""Run folders: where training keeps its work, and how it resumes exactly (notebook 03).

A run folder holds ``config.json`` (the method, its config, the command that
started the run and every later one), ``checkpoint.pt`` (weights, optimizer,
step, history, random state; read with ``weights_only=True``), ``history.json``
and ``results.json`` / ``results.md``. No run is lost: a folder that holds one
is continued (``resume``: a checkpoint, and a config that differs at most in
``steps``) or replaced only when asked; everything is checked before the first
file is written, and every file is written whole or not at all; Ctrl-C and
SIGTERM stop *between* steps, so the checkpoint holds the state an
uninterrupted run had there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .runtime import progress_bar

CHECKPOINT_FORMAT = "course_lib.checkpoint/1"
CONFIG_FILE, CHECKPOINT_FILE, HISTORY_FILE = "config.json", "checkpoint.pt", "history.json"
RESULTS_FILE, RESULTS_MARKDOWN = "results.json", "results.md"
RESUMABLE_CHANGES = ("steps",)  # the config fields a resumed run may change
# A Config field's former name -> its name now: a stored config with the former name still loads and resumes.
RENAMED_FIELDS = {"lr": "meta_lr"}  # the meta-parameters' learning rate, as MAML names it


class RunError(ValueError):
    """A run folder cannot be used as asked; the message says what to do instead."""


class CheckpointMismatchError(ValueError):
    """The checkpoint belongs to another model class, config or architecture."""


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary)`` and rename the result to ``path``: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp makes owner-only files; run folders are shared
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, value) -> Path:
    """``value`` as indented JSON (numbers JSON does not know, e.g. numpy floats, as floats)."""
    return write_text(path, json.dumps(value, indent=2, default=float) + "\n")


def read_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunError(f"{path} is not valid JSON ({error}): restore it from git or delete the run folder") from error


class History:
    """Metrics recorded during training: ``history["loss"] -> (steps, values)``."""

    def __init__(self, records: dict[str, list[tuple[int, float]]] | None = None) -> None:
        self.records = {k: [tuple(p) for p in v] for k, v in (records or {}).items()}
        self.steps_done: int | None = None  # set by train_loop: where it stopped
        self.stopped: str | None = None  # set by train_loop: None (finished), "time" or "interrupted"

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

    def state_dict(self) -> dict[str, list[list[float]]]:
        return {k: [[s, v] for s, v in pairs] for k, pairs in self.records.items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls({k: [(int(s), float(v)) for s, v in pairs] for k, pairs in state.items()})

    def __repr__(self) -> str:
        return f"History({', '.join(f'{k}: {len(v)} points' for k, v in self.records.items())})"


@dataclasses.dataclass
class Trainer:
    """What a method hands the run mechanism: one training step, and the optimizer a checkpoint keeps."""

    step: Callable[[int], dict[str, float]]
    optimizer: torch.optim.Optimizer | None = None


class _StopRequests:
    """Ctrl-C and SIGTERM become a request honoured between steps; a second one interrupts at once
    (outside the main thread, where Python installs no handlers, signals behave as usual)."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def train_loop(step: Callable[[int], dict[str, float]], steps: int, *,
               evaluate: Callable[[], dict[str, float]] | None = None, eval_every: int | None = None,
               history: History | None = None, start_step: int = 0,
               save: Callable[[int, History], None] | None = None, checkpoint_seconds: float = 300.0,
               max_seconds: float | None = None, desc: str = "train", progress: bool = True) -> History:
    """Run ``step(i)`` for ``i = start_step .. steps-1`` and log the metrics it returns (``{"loss": 0.3}``).

    ``evaluate()`` runs every ``eval_every`` steps and after the last one. ``save(steps_done, history)``
    writes a checkpoint every ``checkpoint_seconds``, when ``max_seconds`` is used up, on Ctrl-C or
    SIGTERM (then :class:`KeyboardInterrupt` is raised) and at the end. ``history.steps_done`` and
    ``history.stopped`` say where and why it stopped.
    """
    if steps < 0 or start_step < 0:
        raise ValueError("steps and start_step must be >= 0")
    history = history if history is not None else History()
    history.steps_done, history.stopped = start_step, None
    started = saved_at = time.monotonic()
    bar = progress_bar(total=steps, initial=start_step, desc=desc, disable=not progress)
    with _StopRequests() as stop:
        for i in range(start_step, steps):
            if stop.requested:
                history.stopped = "interrupted"
                break
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                history.stopped = "time"
                break
            metrics = step(i)
            history.log(i, **metrics)
            if evaluate is not None and ((eval_every and (i + 1) % eval_every == 0) or i == steps - 1):
                eval_metrics = evaluate()
                history.log(i, **eval_metrics)
                metrics = {**metrics, **eval_metrics}
            history.steps_done = i + 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
            if save is not None and i + 1 < steps and time.monotonic() - saved_at > checkpoint_seconds:
                save(i + 1, history)
                saved_at = time.monotonic()
        bar.close()
        if save is not None:
            save(history.steps_done, history)
    if history.stopped == "interrupted":
        raise KeyboardInterrupt(f"stopped at step {history.steps_done}; the checkpoint holds that step")
    return history


def plain_config(config: Any) -> dict:
    """A dataclass config (or a dict of plain values) as a dict."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dataclass instance or a dict, got {type(config).__name__}")
    return config


def save_checkpoint(path: str | Path, model: torch.nn.Module, config: Any, *, history: History | None = None,
                    optimizer: torch.optim.Optimizer | None = None, step: int | None = None,
                    results: dict | None = None, extra: dict | None = None) -> Path:
    """Write weights, config, history, optimizer and random state atomically; ``extra``: other
    method state (plain values and tensors only, so that the file still loads with ``weights_only``)."""
    payload = {"format": CHECKPOINT_FORMAT, "model_class": type(model).__name__, "config": plain_config(config),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "history": history.state_dict() if history is not None else {}, "step": step,
               "results": results or {}, "rng": torch.get_rng_state()}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    if extra:
        payload["extra"] = extra
    return atomic_write(path, lambda temporary: torch.save(payload, temporary))


def read_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict:
    """The payload of a checkpoint, read as tensors and plain values only (never code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated, not a torch file, or a pickle that wants to run code
        raise CheckpointMismatchError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {str(error)[:200]}); "
            "restore it from git, delete it or train again") from error


def load_checkpoint(path: str | Path, model: torch.nn.Module, config: Any = None, *,
                    optimizer: torch.optim.Optimizer | None = None, map_location: torch.device | str = "cpu",
                    restore_rng: bool = False) -> dict:
    """Load a checkpoint of :func:`save_checkpoint` into ``model`` (and ``optimizer``, when resuming), after
    checking that it holds the same model class, ``config`` (if given) and tensor shapes; return its payload
    (``history`` a :class:`History`)."""
    path = Path(path)
    payload = read_checkpoint(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(f"{path} was not written by course_lib.runs.save_checkpoint")
    expected_class = type(model).__name__
    if payload["model_class"] != expected_class:
        raise CheckpointMismatchError(f"{path} holds a {payload['model_class']} but the model is a "
                                      f"{expected_class}: load it into the model it was trained with.")
    if config is not None and (differences := config_differences(with_added_defaults(payload["config"], config),
                                                                  plain_config(config))):
        raise CheckpointMismatchError(f"{path} was trained with another config ({'; '.join(differences)}). "
                                      "Build the model with the checkpoint's config, or retrain.")
    own, stored = model.state_dict(), payload["state_dict"]
    problems = [f"missing {k}" for k in own if k not in stored]
    problems += [f"unexpected {k}" for k in stored if k not in own]
    problems += [f"{k}: checkpoint {tuple(stored[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in own.items() if k in stored and stored[k].shape != v.shape]
    if problems:
        raise CheckpointMismatchError(
            f"{path} does not fit this {expected_class} ({'; '.join(problems[:5])}"
            f"{' ...' if len(problems) > 5 else ''}): it was saved from a different architecture.")
    model.load_state_dict(stored)
    if optimizer is not None:  # a resume
        if "optimizer" in payload:
            optimizer.load_state_dict(payload["optimizer"])
        else:  # saved without it: the run goes on, but not as an uninterrupted one would have
            print(f"warning: {path} holds no optimizer state, so {type(optimizer).__name__} restarts from zero "
                  "(no moments, no step count): this continuation is not exactly the run an uninterrupted "
                  "training would have given", file=sys.stderr)
    if restore_rng and "rng" in payload:
        torch.set_rng_state(payload["rng"].cpu())
    payload["history"] = History.from_state_dict(payload.get("history", {}))
    payload.setdefault("extra", {})
    return payload


def with_added_defaults(stored: dict, config: Any) -> dict:
    """``stored`` in the terms of ``config`` (a Config class or instance) today: a field renamed since the
    run was written (:data:`RENAMED_FIELDS`) under its new name, and the defaults of the fields it lacks (a
    field added to a Config later defaults to what that run did), so that the run still matches its own config."""
    if not dataclasses.is_dataclass(config):
        return stored
    fields = {field.name: field for field in dataclasses.fields(config)}
    renames = {old: new for old, new in RENAMED_FIELDS.items() if old in stored and new in fields and old not in fields}
    for old, new in renames.items():
        if new in stored:
            raise RunError(f"a stored config holds both {old!r} and {new!r}, the name {old!r} has now: keep only "
                           f"{new!r} (python scripts/convert_runs.py renames {old!r} in shipped config.json files)")
    stored = {renames.get(key, key): value for key, value in stored.items()}
    added = {name: field.default for name, field in fields.items()
             if name not in stored and field.default is not dataclasses.MISSING}
    return {**stored, **added}


def config_differences(stored: dict, wanted: dict, ignore: tuple[str, ...] = ()) -> list[str]:
    """``["lr: stored 0.001 vs yours 0.01", ...]`` for every field that differs."""
    return [f"{key}: stored {stored.get(key, '<missing>')!r} vs yours {wanted.get(key, '<missing>')!r}"
            for key in sorted(set(wanted) | set(stored))
            if key not in ignore and stored.get(key, "<missing>") != wanted.get(key, "<missing>")]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """A run of the course: where it lives, how tables name it, how to train it at full scale.

    ``options``: those of ``python -m course_lib train METHOD --out FOLDER`` at the paper's budget
    (``scripts/train_all.sh``; empty: not retrained there); ``smoke`` goes on top for a few CPU steps.
    """

    folder: str  # relative to the repository root, e.g. "data/protonet"
    label: str = ""  # the method as tables name it
    options: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()
    trained_on: str = ""  # the README results table's words ("" keeps the run out of that table)
    differs: str = ""  # what differs from the paper's run besides its length, shown when below the paper
    explains_own_setting: bool = True  # False: ``differs`` says nothing about the setting it trained on
    job: str = ""  # train_all's name for it (default: the folder's last part)
    capstone: str = ""  # its row in notebook 09's capstone table (described by the method's capstone_row)

    @property
    def name(self) -> str:
        return self.job or Path(self.folder).name


class RunFolder:
    """One training run on disk (see the module docstring for its files)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / CONFIG_FILE
        self.checkpoint = self.path / CHECKPOINT_FILE

    def record(self) -> dict:
        """What ``config.json`` holds (``{}`` when there is none)."""
        return read_json(self.config_file) if self.config_file.is_file() else {}

    def stored_config(self) -> dict | None:
        if self.checkpoint.is_file():
            return read_checkpoint(self.checkpoint)["config"]
        return self.record().get("config")

    def check(self, method: str, config: Any, *, resume: bool = False, overwrite: bool = False) -> None:
        """Raise :class:`RunError` unless ``config`` may train here as asked; writes nothing."""
        if resume and overwrite:
            raise RunError("--resume continues a run and --overwrite replaces it: choose one")
        if not resume:
            if (self.config_file.is_file() or self.checkpoint.is_file()) and not overwrite:
                raise RunError(f"{self.path} already holds a run: continue it with --resume, replace it with "
                               "--overwrite, or choose another --out")
            return
        if not self.checkpoint.is_file():
            raise RunError(f"--resume: {self.path} holds no {CHECKPOINT_FILE}; start a new run without --resume")
        stored_method = self.record().get("method", method)
        if stored_method != method:
            raise RunError(f"--resume: {self.path} holds a {stored_method} run, not {method}")
        differences = config_differences(with_added_defaults(self.stored_config(), config), plain_config(config),
                                         ignore=RESUMABLE_CHANGES)
        if differences:
            raise RunError(f"--resume: {self.path} was trained with another config ({'; '.join(differences)}); "
                           "resume with the stored settings (only --steps may change) or start a new run folder")

    def start(self, method: str, config: Any, command: str, *, resume: bool = False,
              overwrite: bool = False) -> None:
        """Check, then write ``config.json`` (``overwrite`` first deletes the old run's files); a
        resumed run keeps its first command and appends this one to ``later_commands``."""
        self.check(method, config, resume=resume, overwrite=overwrite)
        previous = self.record() if resume else {}
        if overwrite:
            for name in (CHECKPOINT_FILE, HISTORY_FILE, RESULTS_FILE, RESULTS_MARKDOWN, CONFIG_FILE):
                (self.path / name).unlink(missing_ok=True)
        record = {"method": method, "config": plain_config(config), "command": previous.get("command", command)}
        if resume:
            record["later_commands"] = previous.get("later_commands", []) + [command]
        write_json(self.config_file, record)

    def note_command(self, command: str) -> None:
        """Append a command that wrote to this folder without training (an evaluation)."""
        record = self.record()
        record["later_commands"] = record.get("later_commands", []) + [command]
        write_json(self.config_file, record)

    def write_history(self, history: History) -> None:
        write_text(self.path / HISTORY_FILE, json.dumps(history.state_dict(), separators=(",", ":")) + "\n")

    def write_results(self, results: dict, markdown: str | None = None) -> None:
        write_json(self.path / RESULTS_FILE, results)
        if markdown is not None:
            write_text(self.path / RESULTS_MARKDOWN, markdown)

    def results(self) -> dict | None:
        path = self.path / RESULTS_FILE
        return read_json(path) if path.is_file() else None
