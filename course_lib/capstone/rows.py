"""The capstone's rows: each a few-shot classifier (``predict(support_x, support_y, query_x) -> logits``)
and what the table says about it: what it was meta-trained on, its meta-parameters, and the numbers it
fits to one task (its *learned variables*).

Every run whose :class:`~course_lib.runs.RunSpec` names a row is one, loaded with
:func:`course_lib.registry.load` and answered and described by its method; the baselines no method
trains are the capstone's own (:data:`BASELINES`). A row whose run is missing is reported, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import registry
from ..baselines import setting_name
from ..runs import CHECKPOINT_FILE, RunSpec
from ..runtime import repo_root

PIXELS = 28 * 28
FULL_OUT, SMOKE_OUT = "data/capstone", "runs/smoke/capstone"  # smoke numbers never land in data/
SHARED_TRAINING_DATA = "Omniglot background"  # how ``trained_on`` begins for every row on the shared data
PRETRAIN = dict(steps=1500, batch_size=64, lr=0.05, momentum=0.9, seed=0)  # notebook 02's recipe


class MissingCheckpoint(FileNotFoundError):
    """A row whose run is not in this checkout (it is listed under "missing")."""


def no_reset(seed: int) -> None:
    """The reset of a row without randomness of its own."""


@dataclass
class Row:
    """A few-shot learner with what the table needs to say about it."""

    name: str
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    trained_on: str
    meta_parameters: int
    learned_variables: Callable[[int, int], int]  # (ways, shots) -> numbers fitted to one task
    family: str = ""
    note: str = ""
    supports: Callable[[int, int], bool] = lambda ways, shots: True  # can it take this setting?
    in_distribution: str = "omniglot"  # the test set of its meta-training domain (for the plots)
    reset: Callable[[int], None] = no_reset  # reseed the row's own randomness at each cell

    def variables(self, ways: int, shots: int) -> dict:
        learned = int(self.learned_variables(ways, shots))
        return {"setting": setting_name(ways, shots), "meta_parameters": int(self.meta_parameters),
                "learned_variables": learned, "ratio_learned_per_meta": learned / max(self.meta_parameters, 1)}


@dataclass
class Context:
    """Where rows are read from: the checkout's root (run folders), the output folder (the pretrained encoder)."""

    root: Path
    out: Path
    device: torch.device
    smoke: bool = False
    progress: bool = True


def pixel_nn(context: Context) -> Row:
    from ..baselines import nearest_neighbour

    return Row("pixel-nn", nearest_neighbour, "nothing", 1, lambda n, k: n * k * PIXELS, family="hand-designed",
               note="1-nearest neighbour in pixel space; 1 meta-parameter by convention (k), as "
                    "course_lib.vsml.count_variables counts SGD's learning rate")


def pixel_finetune(context: Context) -> Row:
    from ..baselines import FineTunedHead

    head = FineTunedHead(encoder=None, steps=100, lr=0.01)
    return Row("pixel-finetune", head, "nothing", 1, lambda n, k: (PIXELS + 1) * n, family="hand-designed",
               note="a linear head on unit-length pixels, 100 Adam steps (lr 0.01) on the support set")


def pretrained_encoder(out: Path, device, smoke: bool = False, progress: bool = True):
    """Notebook 02's supervised Conv4 (964 background classes), trained once and kept in ``out``."""
    from .. import data as course_data
    from ..baselines import hold_out_examples, pretrain_classifier
    from ..models import Conv4
    from ..runs import load_checkpoint, save_checkpoint

    path = out / ("pretrained_conv4_smoke.pt" if smoke else "pretrained_conv4.pt")
    train = course_data.omniglot_splits("lake")["train"]
    config = {**PRETRAIN, "steps": 10 if smoke else PRETRAIN["steps"], "protocol": "lake",
              "classes": train.num_classes}
    model = Conv4(in_channels=1, hidden=64, num_classes=train.num_classes, image_size=28)
    if path.is_file():
        load_checkpoint(path, model, config, map_location=device)
        return model.to(device).eval()
    pretrain_set, held_out = hold_out_examples(train, 2, torch.Generator().manual_seed(0))
    model, history = pretrain_classifier(pretrain_set, steps=config["steps"], device=device, lr=config["lr"],
                                         momentum=config["momentum"], batch_size=config["batch_size"],
                                         held_out=held_out, eval_every=500, seed=config["seed"], progress=progress)
    save_checkpoint(path, model, config, history=history, step=config["steps"])
    return model.eval()


def pretrained(context: Context, finetune: bool) -> Row:
    from ..baselines import FineTunedHead, NearestCentroid
    from ..models import count_parameters

    encoder = pretrained_encoder(context.out, context.device, context.smoke, context.progress)
    body = count_parameters(encoder) - sum(p.numel() for p in encoder.head.parameters())
    trained_on = f"{SHARED_TRAINING_DATA} (supervised, 964 classes)"
    if finetune:
        return Row("pretrained-finetune", FineTunedHead(encoder.embed, steps=100, lr=0.01), trained_on, body,
                   lambda n, k: 65 * n, family="pretrained",
                   note="notebook 02's pretrained Conv4 (1,500 SGD steps, trained by this command once, kept in "
                        "pretrained_conv4.pt) + a linear head, 100 Adam steps per episode")
    return Row("pretrained-centroid", NearestCentroid(encoder.embed), trained_on, body, lambda n, k: 64 * n,
               family="pretrained", note="the same pretrained Conv4 + nearest class mean of its features")


BASELINES: dict[str, Callable[[Context], Row]] = {
    "pixel-nn": pixel_nn,
    "pixel-finetune": pixel_finetune,
    "pretrained-centroid": lambda context: pretrained(context, finetune=False),
    "pretrained-finetune": lambda context: pretrained(context, finetune=True),
}


def registered_runs() -> dict[str, tuple[str, RunSpec]]:
    """``{row: (method, run)}`` for every run whose ``RunSpec.capstone`` names a row, in the registry's order."""
    rows: dict[str, tuple[str, RunSpec]] = {}
    for method in registry.names():
        for run in registry.get(method).RUNS:
            if not run.capstone:
                continue
            if run.capstone in rows or run.capstone in BASELINES:
                raise ValueError(f"two runs name the capstone row {run.capstone!r}: {run.folder} and "
                                 f"{rows[run.capstone][1].folder if run.capstone in rows else 'a baseline'}")
            rows[run.capstone] = (method, run)
    return rows


def row_names() -> list[str]:
    """Every row the capstone can evaluate, in the table's order: the baselines, then the registry's runs."""
    return [*BASELINES, *registered_runs()]


def on_device(predict: Callable, device: torch.device) -> Callable:
    """``predict`` fed on ``device``, its logits returned on the CPU (where the episodes' labels are)."""
    if device.type == "cpu":
        return predict
    return lambda sx, sy, qx: predict(sx.to(device), sy.to(device), qx.to(device)).cpu()


def registered_row(name: str, method_name: str, run: RunSpec, context: Context) -> Row:
    """Row ``name``: ``run`` of ``method_name``, loaded, answered and described by the method's own face."""
    method = registry.get(method_name)
    if not hasattr(method, "capstone_row"):
        raise TypeError(f"{method.__name__} names the capstone row {name!r} but does not export capstone_row")
    folder = context.root / run.folder
    load = getattr(method, "capstone_model", None)  # for a run that is not one checkpoint.pt
    if load is None and not (folder / CHECKPOINT_FILE).is_file():
        raise MissingCheckpoint(str(folder / CHECKPOINT_FILE))
    try:
        model, payload = (load or registry.load)(folder, context.device)
    except FileNotFoundError as error:
        raise MissingCheckpoint(str(error)) from error
    predictor = method.predictor(model)
    return Row(name, on_device(predictor, context.device), reset=getattr(predictor, "reset", no_reset),
               **method.capstone_row(run, model, payload))


def build_rows(names, device="cpu", out: Path | None = None, smoke: bool = False, progress: bool = True,
               root: Path | None = None) -> tuple[list[Row], dict[str, str]]:
    """The rows that can be built here, and ``{name: reason}`` for those whose run is missing.

    ``root``: the checkout whose ``data/`` holds the runs (default: this one);
    ``out``: where the pretrained encoder is kept (default: ``root/data/capstone``).
    """
    root = Path(root) if root is not None else repo_root()
    if root is None:
        raise FileNotFoundError("the capstone reads the shipped runs in data/: run it from a course checkout")
    context = Context(root, Path(out) if out is not None else root / FULL_OUT, torch.device(device), smoke, progress)
    registered = registered_runs()
    rows, missing = [], {}
    for name in names:
        try:
            if name in BASELINES:
                rows.append(BASELINES[name](context))
            elif name in registered:
                rows.append(registered_row(name, *registered[name], context))
            else:
                raise KeyError(f"unknown capstone row {name!r}; the rows: {', '.join(row_names())}")
        except MissingCheckpoint as error:
            missing[name] = f"no checkpoint in this checkout ({error})"
    return rows, missing
