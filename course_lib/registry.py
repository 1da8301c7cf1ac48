"""The methods of the course, by name: what the command line, the capstone and the tables read.

Each method is one module with the same small face:

* ``Config``: a dataclass with every setting of a run (``steps`` and ``seed``
  among them) whose ``__post_init__`` rejects bad values;
* ``build(config) -> model``; ``load_data(config, smoke=False) -> dict`` (``smoke``: a few classes);
* ``trainer(model, config, data, device) -> runs.Trainer``;
* ``evaluate(model, config, data, device, settings, episodes, progress)``:
  ``{"5-way 1-shot": AccuracyResult, ...}`` (or plain JSON values);
* ``predictor(model)``: ``predict(support_x, support_y, query_x) -> scores``;
* ``PAPER`` (the paper's numbers by setting), ``RUNS`` (its
  :class:`course_lib.runs.RunSpec`) and ``describe(config) -> str``.

Optional: ``paper(config)`` (numbers that depend on a variant),
``evaluation_details(settings)`` (more for results.json) and
``results_markdown(method, results, config, meta)`` (for results that are not
few-shot accuracies). A method whose ``RUNS`` name capstone rows exports
``capstone_row(run, model, payload) -> dict`` (the fields of
:class:`course_lib.capstone.Row` but ``name``, ``predict`` and ``reset``), and
``capstone_model(folder, device) -> (model, payload)`` where such a run is not
loaded by :func:`load`. Adding a method: one module with that face, one line in :data:`METHODS`
(or :func:`register`, for a module made at run time, as notebook 09's).
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS: dict[str, str | ModuleType] = {  # name on the command line -> module's import path
    "protonet": "course_lib.protonet",
    "matching": "course_lib.matching_nets",
    "maml": "course_lib.maml",
    "sequence": "course_lib.sequence_learners",
    "rl2": "course_lib.bandits",
    "symla": "course_lib.symla",
    "learned-optimizer": "course_lib.learned_optimizers",
    "gpicl": "course_lib.gpicl",
    "icl-regression": "course_lib.icl_regression",
    "vsml": "course_lib.vsml",
}

FACE = ("Config", "build", "load_data", "trainer", "evaluate", "predictor", "PAPER", "RUNS", "describe")


def names() -> list[str]:
    return list(METHODS)


def get(name: str) -> ModuleType:
    """The module of method ``name``, checked to export the whole face."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; the registered ones: {', '.join(METHODS)}")
    module = METHODS[name] if isinstance(METHODS[name], ModuleType) else importlib.import_module(METHODS[name])
    missing = [attribute for attribute in FACE if not hasattr(module, attribute)]
    if missing:
        raise TypeError(f"{module.__name__} is registered as {name!r} but does not export {', '.join(missing)}")
    return module


def register(name: str, module: str | ModuleType) -> None:
    """Add a method at run time (a plug-in, a test's toy method): its import path, or the module itself
    (one made in a notebook). Registering the same again is allowed, so a notebook's cell can be rerun."""
    registered = METHODS.get(name)
    if registered is not None and _module_name(registered) != _module_name(module):
        raise ValueError(f"{name!r} is already registered as {_module_name(registered)}")
    METHODS[name] = module


def _module_name(module: str | ModuleType) -> str:
    return module.__name__ if isinstance(module, ModuleType) else module


def load(folder, device="cpu"):
    """``(model, checkpoint payload)`` of a run folder, built from its own stored method and config."""
    from .runs import RunError, RunFolder, load_checkpoint, with_added_defaults

    run = RunFolder(folder)
    if not run.checkpoint.is_file():
        raise RunError(f"{run.path} holds no checkpoint.pt: train it first (python -m course_lib train ...)")
    name = run.record().get("method")
    if name is None:
        raise RunError(f"{run.config_file} does not say which method trained {run.path}")
    method = get(name)
    model = method.build(method.Config(**with_added_defaults(run.stored_config(), method.Config)))
    payload = load_checkpoint(run.checkpoint, model, map_location=device)
    return model.to(device).eval(), payload
