"""Notebook 08's runs on disk: a GPICL sweep's per-model folders and bf16 weights, and reading runs back.

A sweep trained with ``python -m course_lib train gpicl --out FOLDER`` is one run
folder (:mod:`course_lib.runs`). :func:`write_model_folders` adds what notebook 08
and the capstone read: ``phase_diagram.json`` / ``.md`` (one row per model) and
``tasks_<n>/`` (the curves as means over 10 steps, ``results.json`` / ``.md`` and,
for the pool sizes named, the model's bf16 ``weights.pt``). The folders shipped in
``data/gpicl`` have that layout; :func:`load_run` reads a sweep in either form, and
:func:`load_sweep` joins sweeps trained apart into one phase diagram.
The second half does the same for in-context regression
(:mod:`course_lib.icl_regression`), whose run folder ships its models as one bf16 ``weights.pt``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch import nn

from .gpicl import (EVAL_NAMES, LAST_POSITIONS, GPICLConfig, StackedTransformer, accuracy_cell, build_model,
                    load_weights, phase_diagram_markdown)
from .icl_regression import RegressionConfig
from .icl_regression import build as build_regression
from .runs import (CHECKPOINT_FILE, HISTORY_FILE, RESULTS_FILE, History, RunError, RunFolder, atomic_write,
                   load_checkpoint, read_checkpoint, read_json, with_added_defaults, write_json, write_text)

HISTORY_WINDOW = 10  # tasks_<n>/history.json: one point per 10 training steps
FINAL_LOSS_STEPS = 50  # "final loss": the mean training loss of the last 50 steps


def window_means(pairs: list[tuple[int, float]], window: int = HISTORY_WINDOW,
                 digits: int = 4) -> tuple[list[int], list[float]]:
    """``[(step index, value), ...]`` -> one mean per ``window`` steps, labelled by the steps done at its end."""
    groups: dict[int, list[tuple[int, float]]] = {}
    for step, value in pairs:
        groups.setdefault(step // window, []).append((step, value))
    groups = [groups[k] for k in sorted(groups)]
    return ([max(s for s, _ in group) + 1 for group in groups],
            [round(sum(v for _, v in group) / len(group), digits) for group in groups])


def model_histories(history: History, names: list[str]) -> dict[str, dict]:
    """``{"tasks_16": {"step": [10, 20, ...], "loss": [...], "train_acc_last": [...]}, ...}``."""
    histories = {}
    for name in names:
        steps, loss = window_means(history.records.get(f"loss_{name}", []))
        _, accuracy = window_means(history.records.get(f"train_acc_{name}", []), digits=3)
        histories[name] = {"step": steps, "loss": loss, "train_acc_last": accuracy}
    return histories


def final_loss(history: History, name: str, steps: int = FINAL_LOSS_STEPS) -> float | None:
    """Mean training loss of model ``name`` over its last ``steps`` steps (the same for a resumed run)."""
    losses = [v for _, v in history.records.get(f"loss_{name}", [])][-steps:]
    return round(sum(losses) / len(losses), 4) if losses else None


def sweep_summary(folder: Path | str) -> dict:
    """What ``phase_diagram.json`` holds, with ``config`` and every model's ``histories``, from a run folder."""
    run = RunFolder(folder)
    results, record = run.results(), run.record()
    if results is None or not (run.path / HISTORY_FILE).is_file():
        raise RunError(f"{run.path} holds no {RESULTS_FILE} and {HISTORY_FILE}: train it first "
                       f"(python -m course_lib train gpicl --out {run.path} ...)")
    history = History.from_state_dict(read_json(run.path / HISTORY_FILE))
    config = GPICLConfig(**with_added_defaults(record["config"], GPICLConfig))
    rows = [{"run": name, "num_tasks": row["num_tasks"], "biased_fraction": row["biased_fraction"],
             "batch_size": row["batch_size"], "steps": results["steps_done"],
             "final_loss": final_loss(history, name), "parameters": row["parameters"],
             "state_size": row["state_size"], "evaluation": row["evaluation"]}
            for name, row in results["results"].items()]
    return {"rows": rows, "evaluated": True, "last_positions": results.get("last_positions", LAST_POSITIONS),
            "machine": results["machine"], "device": results["machine"]["device"], "command": record["command"],
            "later_commands": record.get("later_commands", []), "test_episodes": results["test_episodes"],
            "eval_seconds": results["eval_seconds"], "finished": results["finished"], "config": record["config"],
            "histories": model_histories(history, config.run_names)}


def model_markdown(row: dict, config: GPICLConfig) -> str:
    lines = [f"# GPICL {config.model}, {row['num_tasks']} tasks (biased fraction {row['biased_fraction']:g}), "
             f"{row['steps']} steps", "",
             f"Final training loss {row['final_loss']} (ln {config.num_classes} = "
             f"{math.log(config.num_classes):.3f}).", ""]
    if row.get("evaluation") is not None:
        lines += ["| evaluated on | accuracy, last 10 steps |", "|---|---|"]
        lines += [f"| {EVAL_NAMES[k]} | {accuracy_cell(v)} |" for k, v in row["evaluation"].items()]
    return "\n".join(lines) + "\n"


def write_model_folders(folder: Path | str, keep_weights=()) -> list[dict]:
    """Write ``phase_diagram.json`` / ``.md`` and ``tasks_<n>/`` for every model of a trained sweep; returns
    the rows. ``keep_weights``: pool sizes (``[1024, "inf"]``) whose model is saved as ``tasks_<n>/weights.pt``."""
    folder = Path(folder)
    diagram = sweep_summary(folder)
    histories, stored = diagram.pop("histories"), diagram.pop("config")
    config, rows = GPICLConfig(**with_added_defaults(stored, GPICLConfig)), diagram["rows"]
    write_json(folder / "phase_diagram.json", diagram)
    write_text(folder / "phase_diagram.md", phase_diagram_markdown(rows, config, diagram))
    about_the_run = {k: v for k, v in diagram.items() if k != "rows"}
    keep, model = {str(v) for v in keep_weights}, None
    for m, row in enumerate(rows):
        out = folder / row["run"]
        write_json(out / "history.json", histories[row["run"]])
        write_json(out / "results.json", {**row, "config": stored, **about_the_run})
        write_text(out / "results.md", model_markdown(row, config))
        if str(row["num_tasks"]) in keep:
            if model is None:
                model, _ = _from_checkpoint(folder / CHECKPOINT_FILE, GPICLConfig, build_model)
            save_weights(model, config, m, out / "weights.pt")
    return rows


def load_run(folder: Path | str) -> dict:
    """A sweep: ``{"config", "command", "rows", "histories", "machine", ...}``: the phase diagram's rows and
    each model's curves (``tasks_<n>``: steps, training loss and accuracy, every 10 steps), from
    ``phase_diagram.json`` and the per-model folders where they exist, else from the run folder itself."""
    folder = Path(folder)
    record = read_json(folder / "config.json")
    if (folder / "phase_diagram.json").is_file():
        diagram = read_json(folder / "phase_diagram.json")
        histories = {row["run"]: read_json(folder / row["run"] / "history.json")
                     for row in diagram["rows"] if (folder / row["run"] / "history.json").is_file()}
    else:
        diagram = sweep_summary(folder)
        histories = diagram.pop("histories")
    return {**diagram, "config": record.get("config"), "command": record["command"],
            "later_commands": record.get("later_commands", []), "histories": histories, "folder": str(folder)}


SAME_TRAINING = ("model", "pair_tokens", "d_model", "layers", "heads", "ffn_mult", "input_dim", "num_classes",
                 "seq_len", "train_dataset", "batch_size", "meta_lr", "warmup", "clip")


def pool_order(num_tasks) -> float:
    """Sort key of a pool size: the number, with "inf" (a fresh task per sequence) last."""
    return math.inf if num_tasks == "inf" else int(num_tasks)


def load_sweep(*folders: Path | str) -> dict:
    """One phase diagram from sweeps trained apart: :func:`load_run` of each folder, the rows merged in order
    of pool size (each row's ``folder`` says where its files are). A diagram compares pool sizes only, so the
    folders must agree on everything else (``SAME_TRAINING``, the steps and the number of test sequences)."""
    runs = [load_run(folder) for folder in folders]
    if not runs:
        raise ValueError("load_sweep needs at least one folder")
    first, settings = runs[0], [with_added_defaults(run["config"], GPICLConfig) for run in runs]
    for run, setting in zip(runs[1:], settings[1:]):
        for key in SAME_TRAINING:
            if setting[key] != settings[0][key]:
                raise ValueError(f"{run['folder']} trained with {key} = {setting[key]!r} and {first['folder']} "
                                 f"with {settings[0][key]!r}: one phase diagram must differ in the number of "
                                 "tasks only")
    for run in runs:
        for key in ("steps", "batch_size"):
            if {row[key] for row in run["rows"]} != {first["rows"][0][key]}:
                raise ValueError(f"{run['folder']}: models with {key} other than {first['rows'][0][key]:,} "
                                 f"({first['folder']}); one phase diagram must differ in the number of tasks only")
    sequences = {e["sequences"] for run in runs for row in run["rows"] for e in row["evaluation"].values()}
    if len(sequences) > 1:
        raise ValueError(f"the folders were evaluated on different numbers of sequences per set: {sorted(sequences)}")
    rows = sorted(({**row, "folder": run["folder"]} for run in runs for row in run["rows"]),
                  key=lambda row: pool_order(row["num_tasks"]))
    if len({row["run"] for row in rows}) < len(rows):
        raise ValueError("two folders trained the same pool size: " + ", ".join(str(f) for f in folders))
    shared = {key: value for key, value in first.items() if key not in ("folder", "command", "later_commands")}
    return {**shared, "rows": rows, "config": {**first["config"], "num_tasks": [row["num_tasks"] for row in rows]},
            "histories": {name: curve for run in runs for name, curve in run["histories"].items()},
            "folders": [run["folder"] for run in runs]}


# -------------------- Weights: a checkpoint's models, one model of a stack in bf16


def _from_checkpoint(path: Path, config_class, build) -> tuple[nn.Module, object]:
    """The models of a run's ``checkpoint.pt``, and their config."""
    config = config_class(**with_added_defaults(read_checkpoint(path)["config"], config_class))
    model = build(config)
    load_checkpoint(path, model, config)
    return model, config


def save_weights(model: nn.Module, config: GPICLConfig, m: int, path: Path) -> Path:
    """Model ``m`` of a stack, in bf16 (what :func:`load_model` reads)."""
    if isinstance(model, StackedTransformer):
        weights = {k: v[m].detach().to(torch.bfloat16).cpu().clone() for k, v in model.state_dict().items()}
    else:  # StackedLSTM: the m-th LSTM and head
        weights = {k: v.detach().to(torch.bfloat16).cpu().clone() for k, v in model.state_dict().items()
                   if k.startswith((f"lstms.{m}.", f"heads.{m}."))}
    payload = {"config": dataclasses.asdict(config), "model_index": m, "state_dict": weights}
    return atomic_write(path, lambda temporary: torch.save(payload, temporary))


load_model = load_weights  # one model from a weights.pt, as a stack of one (float32, eval mode), and its config


def extract_weights(checkpoint: Path | str, out: Path | str, num_tasks) -> Path:
    """Write ``<out>/tasks_<num_tasks>/weights.pt`` from a sweep's ``checkpoint.pt``: the model trained with
    that pool size, as :func:`write_model_folders` would have kept it."""
    model, config = _from_checkpoint(Path(checkpoint), GPICLConfig, build_model)
    pools = [str(n) for n in config.pools]
    if str(num_tasks) not in pools:
        raise ValueError(f"{checkpoint} holds models for num_tasks {pools}, not {num_tasks}")
    m = pools.index(str(num_tasks))
    return save_weights(model, config, m, Path(out) / config.run_names[m] / "weights.pt")


# -------------------- In-context regression: all models in one weights.pt


def load_regression_run(folder: Path | str) -> dict:
    """``results.json`` of an in-context regression run with ``rows`` (one per pool size), ``steps``,
    ``eval_sequences`` and its training ``history`` (``{"step": [...], "loss": [[one per model], ...]}``,
    every 10 steps)."""
    folder = Path(folder)
    results, history = read_json(folder / RESULTS_FILE), read_json(folder / HISTORY_FILE)
    if "rows" not in results:  # a run folder of python -m course_lib train icl-regression
        config = RegressionConfig(**with_added_defaults(results["config"], RegressionConfig))
        results = {**results, "rows": list(results["results"].values()), "steps": results["steps_done"],
                   "eval_sequences": results["test_episodes"]}
        records = History.from_state_dict(history).records
        curves = [window_means(records.get(f"loss_{n}", []), digits=5) for n in config.pools]
        history = {"step": curves[0][0], "loss": [list(values) for values in zip(*(c[1] for c in curves))]}
    return {**results, "history": history}


def export_regression_weights(folder: Path | str) -> Path:
    """Write ``weights.pt`` (every model, bf16) from the run folder's ``checkpoint.pt``."""
    model, config = _from_checkpoint(Path(folder) / CHECKPOINT_FILE, RegressionConfig, build_regression)
    payload = {"config": dataclasses.asdict(config),
               "state_dict": {k: v.detach().to(torch.bfloat16) for k, v in model.state_dict().items()}}
    return atomic_write(Path(folder) / "weights.pt", lambda temporary: torch.save(payload, temporary))


def load_regression_models(folder: Path | str) -> tuple[StackedTransformer, RegressionConfig]:
    """All models of a run folder (its ``weights.pt``, else its ``checkpoint.pt``; float32, eval mode)."""
    folder = Path(folder)
    if not (folder / "weights.pt").is_file():
        model, config = _from_checkpoint(folder / CHECKPOINT_FILE, RegressionConfig, build_regression)
        return model.eval(), config
    payload = read_checkpoint(folder / "weights.pt")
    config = RegressionConfig(**with_added_defaults(payload["config"], RegressionConfig))
    model = build_regression(config)
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    return model.eval(), config
