"""The capstone benchmark: every method of the course on the same episodes.

For notebook 09. One protocol for all:

* **Test sets** (:data:`TEST_SETS`), each a pool of images ``[n, 1, 28, 28]``
  in [0, 1] with bright ink on a black background (Omniglot's convention in
  :mod:`course_lib.data`; MNIST and scikit-learn digits already follow it,
  so nothing is inverted):

  - ``omniglot``: characters of Omniglot's 20 *evaluation* alphabets that are
    ALSO in the test part of our Vinyals split. The shipped checkpoints were
    meta-trained on two different splits (ProtoNet, Matching nets and MAML on
    the Vinyals split, which mixes all 50 alphabets; the black-box learners
    and the pretrained features on the 30 background alphabets), so only this
    intersection is unseen by every one of them (rotation 0 only);
  - ``mnist``: the last 1,000 images of the MNIST test set (GPICL was
    meta-trained on the first 9,000, see :mod:`course_lib.gpicl`);
  - ``digits``: the 30 % of scikit-learn's digits that VSML's training split
    held out (:func:`course_lib.vsml.load_sources`, seed 1234), each 8x8
    image resized (bilinear) to 20x20 and padded to 28x28, MNIST's layout
    (a 20x20 digit centred in 28x28);
  - ``mnist-permuted``, ``digits-permuted``: the same images with their 784
    pixels shuffled by one fixed permutation (seed :data:`PERMUTATION_SEED`),
    never seen by any model. A permutation keeps the pixel values (so the
    value range and every pixel-space distance) and destroys every spatial
    structure a convolution relies on.

* **Episodes**: N-way K-shot (:data:`SETTINGS`: 5-way 1- and 5-shot, 2-way 1-shot,
  and 10-way 10-shot for the methods that can take it) with :func:`queries_for`
  queries per class (15; 10 at 10 shots, as an Omniglot character has only 20
  drawings), drawn by
  :class:`course_lib.episodes.EpisodeSampler` from a seeded generator per
  (test set, setting) (:func:`episode_seed`); the permuted sets reuse the
  episodes of their base set. The index lists are saved
  (``episodes.npz``) so any method can be rerun on exactly these tasks.

* **Shared meta-training data** (:data:`SHARED_TRAINING`): one row per family
  meta-trained on Omniglot's 30 background alphabets and nothing else
  (pretrained features, ProtoNet, MAML, the black-box sequence learners,
  VSML, GPICL; the last two read randomly projected, label-permuted tasks
  of those characters). The other rows are the notebooks' own checkpoints
  (the Vinyals split for ProtoNet, Matching nets and MAML, as their papers;
  digits for notebook 07's VSML, MNIST for notebook 08's GPICL).

* **Score**: query accuracy, mean ± 95% CI over episodes
  (:func:`course_lib.evaluation.mean_confidence_interval`). Every method
  classifies each query from the support set and that query alone (no
  transductive batch statistics), with logits restricted to the episode's N
  classes where a model has a fixed number of outputs.

The command line writes ``results.json`` / ``results.md`` / ``results.csv``::

    python -m course_lib.benchmark --episodes 1000 --out data/benchmark
    python -m course_lib.benchmark --methods protonet,pixel-nn --test-sets omniglot,mnist --episodes 200
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .baselines import setting_name  # "5-way 1-shot", the column names of every table of the course
from .data import OMNIGLOT_SPLIT_SEED, OMNIGLOT_VINYALS_TRAIN_CLASSES, LabelledImages
from .episodes import Episode, EpisodeSampler
from .evaluation import AccuracyResult, format_accuracy, mean_confidence_interval
from .runtime import get_device, machine_description, repo_root
from .runs import write_json, write_text

# --------------------------------------------------------------------------
# Protocol constants
# --------------------------------------------------------------------------

SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (2, 1), (10, 10))
QUERIES = 15  # per class, as in the course's other tables
DRAWINGS_PER_CHARACTER = 20  # Omniglot: shots + queries cannot exceed this


def queries_for(shots: int) -> int:
    """Queries per class of a K-shot episode: 15, or fewer where an Omniglot character would run out."""
    return min(QUERIES, DRAWINGS_PER_CHARACTER - shots)
PERMUTATION_SEED = 20_240_909
EPISODE_SEED = 0
BASE_TEST_SETS = ("omniglot", "mnist", "digits")
TEST_SETS = ("omniglot", "mnist", "digits", "mnist-permuted", "digits-permuted")
IN_DISTRIBUTION = "omniglot"
# The test set closest to a method's meta-training data, where it is not Omniglot (for the plots).
IN_DISTRIBUTION_OF = {"vsml": "digits", "gpicl": "mnist"}
MNIST_HELD_OUT_FROM = 9000  # gpicl.MNIST_TRAIN_IMAGES: GPICL trained on the images before this one
DIGITS_SPLIT_SEED = 1234  # vsml.load_sources(seed=0) shuffles with seed 0 + 1234 and keeps 70 % for training
DIGITS_TRAIN_FRACTION = 0.7


def base_of(test_set: str) -> str:
    return test_set.removesuffix("-permuted")


def episode_seed(test_set: str, ways: int, shots: int, seed: int = EPISODE_SEED) -> int:
    """The generator seed of one (base test set, setting): a fixed function of the names only."""
    return seed * 1_000_003 + zlib.crc32(f"{base_of(test_set)}/{ways}w{shots}s".encode()) % 1_000_000


# --------------------------------------------------------------------------
# Test sets
# --------------------------------------------------------------------------


def digits_to_28(images: torch.Tensor) -> torch.Tensor:
    """``[n, 1, 8, 8]`` in [0, 1] -> ``[n, 1, 28, 28]``: bilinear to 20x20, zero padding of 4 (MNIST's layout).

    The digits' ink is already bright on a 0 background, like Omniglot's in
    this course (:func:`course_lib.data.read_omniglot_archive` inverts the
    PNGs), so the polarity is kept.
    """
    if images.shape[-2:] != (8, 8):
        raise ValueError(f"expected 8x8 digits, got {tuple(images.shape)}")
    resized = F.interpolate(images.float(), size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(resized, (4, 4, 4, 4)).clamp_(0.0, 1.0)


def pixel_permutation(seed: int = PERMUTATION_SEED, size: int = 28 * 28) -> torch.Tensor:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w)[:, :, permutation].reshape(n, c, h, w)


def omniglot_unseen_classes(num_classes: int = 1623, num_background: int = 964) -> list[int]:
    """Class ids of the evaluation alphabets (Lake split) that are also Vinyals-split test classes."""
    order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(OMNIGLOT_SPLIT_SEED))
    vinyals_test = set(order[OMNIGLOT_VINYALS_TRAIN_CLASSES:].tolist())
    return sorted(c for c in range(num_background, num_classes) if c in vinyals_test)


def load_test_set(name: str) -> LabelledImages:
    """One test pool (see the module docstring), images ``[n, 1, 28, 28]`` in [0, 1]."""
    from . import data

    if name not in TEST_SETS:
        raise ValueError(f"unknown test set {name!r}; choose from {', '.join(TEST_SETS)}")
    base = base_of(name)
    if base == "omniglot":
        full = data.load_omniglot(28)
        pool = full.subset_classes(omniglot_unseen_classes(full.num_classes, full.num_background_classes),
                                   name="Omniglot (evaluation alphabets ∩ Vinyals test)")
    elif base == "mnist":
        mnist = data.load_mnist_test()
        pool = LabelledImages(mnist.images[MNIST_HELD_OUT_FROM:], mnist.labels[MNIST_HELD_OUT_FROM:],
                              mnist.class_names, name="MNIST test images 9,000-9,999")
    else:
        digits = data.load_digits()
        order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
        held = order[int(DIGITS_TRAIN_FRACTION * len(digits)):].sort().values
        pool = LabelledImages(digits_to_28(digits.images[held]), digits.labels[held], digits.class_names,
                              name="scikit-learn digits (VSML's held-out 30 %), 28x28")
    if name.endswith("-permuted"):
        pool = LabelledImages(permute_pixels(pool.images, pixel_permutation()), pool.labels, pool.class_names,
                              pool.class_groups, name=f"{pool.name}, pixels permuted")
    return pool


# --------------------------------------------------------------------------
# Episodes: index lists, identical for every method
# --------------------------------------------------------------------------


@dataclass
class EpisodeIndices:
    """``support [E, N*K]``, ``query [E, N*Q]`` (rows of the pool), ``classes [E, N]``; sorted by label."""

    support: torch.Tensor
    query: torch.Tensor
    classes: torch.Tensor
    ways: int
    shots: int
    queries: int

    def __len__(self) -> int:
        return self.support.shape[0]

    def episode(self, pool: LabelledImages, i: int) -> Episode:
        labels = torch.arange(self.ways)
        return Episode(pool.images[self.support[i]], labels.repeat_interleave(self.shots),
                       pool.images[self.query[i]], labels.repeat_interleave(self.queries), self.classes[i])


def draw_episodes(pool: LabelledImages, ways: int, shots: int, count: int, seed: int,
                  queries: int = QUERIES) -> EpisodeIndices:
    """``count`` episodes of ``pool`` by :class:`EpisodeSampler`, as index lists.

    The sampler runs on a copy of the pool whose "images" are the row indices,
    so it returns which rows it picked; the same seed gives the same rows.
    """
    index_pool = LabelledImages(torch.arange(len(pool), dtype=torch.float64).view(-1, 1, 1, 1), pool.labels,
                                pool.class_names, name=pool.name)
    sampler = EpisodeSampler(index_pool, ways, shots, queries)
    generator = torch.Generator().manual_seed(seed)
    support, query, classes = [], [], []
    for _ in range(count):
        e = sampler.sample(generator)
        support.append(e.support_x.flatten().long())
        query.append(e.query_x.flatten().long())
        classes.append(e.classes)
    return EpisodeIndices(torch.stack(support), torch.stack(query), torch.stack(classes), ways, shots, queries)


def episodes_key(test_set: str, ways: int, shots: int) -> str:
    return f"{base_of(test_set)}/{ways}w{shots}s"


def save_episodes(path: Path, episodes: dict[str, EpisodeIndices]) -> None:
    arrays = {}
    for key, e in episodes.items():
        arrays[f"{key}/support"] = e.support.numpy().astype(np.int32)
        arrays[f"{key}/query"] = e.query.numpy().astype(np.int32)
        arrays[f"{key}/classes"] = e.classes.numpy().astype(np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(temporary, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(temporary, path)


def load_episodes(path: Path) -> dict[str, EpisodeIndices]:
    out = {}
    with np.load(path) as arrays:
        keys = {k.rsplit("/", 1)[0] for k in arrays.files}
        for key in keys:
            support = torch.from_numpy(arrays[f"{key}/support"].astype(np.int64))
            query = torch.from_numpy(arrays[f"{key}/query"].astype(np.int64))
            classes = torch.from_numpy(arrays[f"{key}/classes"].astype(np.int64))
            ways = classes.shape[1]
            out[key] = EpisodeIndices(support, query, classes, ways, support.shape[1] // ways,
                                      query.shape[1] // ways)
    return out


# --------------------------------------------------------------------------
# Methods: every one is predict(support_x, support_y, query_x) -> logits [Q, ways]
# --------------------------------------------------------------------------


@dataclass
class Method:
    """A few-shot learner with what the table needs to say about it."""

    name: str
    predict: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    trained_on: str
    meta_parameters: int
    learned_variables: Callable[[int, int], int]  # (ways, shots) -> numbers fitted to one task
    settings: tuple[tuple[int, int], ...] | None = None  # None: every setting
    note: str = ""
    reset: Callable[[int], None] = lambda seed: None  # reseed the method's own randomness at each cell
    family: str = ""

    def supports(self, ways: int, shots: int) -> bool:
        return self.settings is None or (ways, shots) in self.settings

    def variables(self, ways: int, shots: int) -> dict:
        learned = int(self.learned_variables(ways, shots))
        return {"setting": setting_name(ways, shots), "meta_parameters": int(self.meta_parameters),
                "learned_variables": learned, "ratio_learned_per_meta": learned / max(self.meta_parameters, 1)}


ALL_METHODS = ("pixel-nn", "pixel-finetune", "pretrained-centroid", "pretrained-finetune", "protonet",
               "matching-net", "matching-net-scaled", "maml", "fomaml", "reptile", "mann", "lstm",
               "transformer", "vsml", "gpicl", "protonet-background", "maml-background", "vsml-omniglot",
               "gpicl-omniglot")
# The capstone's shared meta-training data: Omniglot's 30 background alphabets (Lake's split) and nothing
# else. These rows form one comparison on equal data; the others are the notebooks' own checkpoints.
SHARED_TRAINING = ("pretrained-centroid", "pretrained-finetune", "protonet-background", "maml-background", "mann",
                   "lstm", "transformer", "vsml-omniglot", "gpicl-omniglot")
SHARED_TRAINING_DATA = "Omniglot background"  # how each of their ``trained_on`` begins
CHEAP_METHODS = ("pixel-nn", "pixel-finetune", "protonet", "matching-net-scaled", "gpicl", "gpicl-omniglot")
PIXELS = 28 * 28


def _data_dir() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError("the benchmark reads the shipped checkpoints in data/: run it from a course checkout")
    return root / "data"


class MissingCheckpoint(FileNotFoundError):
    """A method whose checkpoint is not in this checkout (it is listed under "missing")."""


def _need(path: Path) -> Path:
    if not path.exists():
        raise MissingCheckpoint(str(path))
    return path


def _pixel_nn(ctx) -> Method:
    from .baselines import nearest_neighbour
    return Method("pixel-nn", nearest_neighbour, "nothing", 1,
                  lambda n, k: n * k * PIXELS, family="hand-designed",
                  note="1-nearest neighbour in pixel space; 1 meta-parameter by convention (k), as "
                       "course_lib.vsml.count_variables counts SGD's learning rate")


def _pixel_finetune(ctx) -> Method:
    from .baselines import FineTunedHead
    head = FineTunedHead(encoder=None, steps=100, lr=0.01)
    return Method("pixel-finetune", head, "nothing", 1, lambda n, k: (PIXELS + 1) * n, family="hand-designed",
                  note="a linear head on unit-length pixels, 100 Adam steps (lr 0.01) on the support set")


PRETRAIN = dict(steps=1500, batch_size=64, lr=0.05, momentum=0.9, seed=0)  # notebook 02's recipe


def pretrained_encoder(out: Path, device, smoke: bool = False, progress: bool = True):
    """Notebook 02's supervised Conv4 (964 background classes), trained once and kept in ``out``."""
    from . import data as course_data
    from .baselines import hold_out_examples, pretrain_classifier
    from .models import Conv4
    from .runs import load_checkpoint, save_checkpoint

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


def _pretrained(ctx, finetune: bool) -> Method:
    from .baselines import FineTunedHead, NearestCentroid
    from .models import count_parameters

    encoder = pretrained_encoder(ctx["out"], ctx["device"], ctx["smoke"], ctx.get("progress", True))
    body = count_parameters(encoder) - sum(p.numel() for p in encoder.head.parameters())
    if finetune:
        return Method("pretrained-finetune", FineTunedHead(encoder.embed, steps=100, lr=0.01),
                      "Omniglot background (supervised, 964 classes)", body, lambda n, k: 65 * n,
                      family="pretrained", note="notebook 02's pretrained Conv4 (1,500 SGD steps, trained by "
                      "this command once, kept in pretrained_conv4.pt) + a linear head, 100 Adam steps per episode")
    return Method("pretrained-centroid", NearestCentroid(encoder.embed),
                  "Omniglot background (supervised, 964 classes)", body, lambda n, k: 64 * n,
                  family="pretrained", note="the same pretrained Conv4 + nearest class mean of its features")


def _protonet(ctx, folder: str = "protonet") -> Method:
    from . import registry
    from .models import count_parameters
    from .runs import RunFolder
    run = _need(_data_dir() / folder)
    model, _ = registry.load(run, device=ctx["device"])
    steps = (RunFolder(run).results() or {}).get("steps_done")
    d = model.config.hidden
    trained = f"{steps:,} training episodes" if steps else "training episodes unknown"
    if model.config.protocol == "lake":
        return Method("protonet-background", model.predict,
                      f"Omniglot background (Lake, 964 characters, {'' if model.config.rotations else 'no '}rotations; "
                      f"{model.config.ways}-way "
                      f"{model.config.shots}-shot episodes)", count_parameters(model), lambda n, k: n * d,
                      family="metric", note=f"data/{folder} ({trained}; notebook 03's split ablation, a tenth of "
                                            "the paper's budget); the capstone's shared meta-training data")
    return Method("protonet", model.predict, "Omniglot, Vinyals split + rotations (60-way 5-shot episodes)",
                  count_parameters(model), lambda n, k: n * d, family="metric",
                  note=f"data/{folder} ({trained}); learned variables: the N prototypes")


def _matching(ctx, scaled: bool) -> Method:
    from . import registry
    from .models import count_parameters
    folder = _need(_data_dir() / "matching_nets" / ("5way_1shot_scaled" if scaled else "5way_1shot"))
    model, _ = registry.load(folder, device=ctx["device"])
    d = model.config.hidden
    return Method("matching-net-scaled" if scaled else "matching-net", model.predict,
                  "Omniglot, Vinyals split + rotations (5-way 1-shot episodes)", count_parameters(model),
                  lambda n, k: n * k * d, family="metric",
                  note=f"{folder.relative_to(_data_dir().parent)}; learned variables: the support embeddings")


class MAMLPredictor:
    """Adapter: course_lib.maml evaluates whole batches of its own episodes (``evaluate_classification``);
    here one episode at a time, with the same steps: copy theta, keep the first N head rows (the head
    has ``config.ways`` outputs), ``test_inner_steps`` steps of size ``inner_lr`` on the support set, then
    the queries. ``bn="support"``: query batch statistics would make a query's prediction depend on the
    other queries (the transductive setting of Finn et al.; data/maml/README.md reports both)."""

    def __init__(self, module, bn: str = "support") -> None:
        self.module, self.bn = module, bn
        self.params = {k: v.detach() for k, v in module.theta().items()}

    def __call__(self, support_x, support_y, query_x):
        from .maml import classification_loss, conv4_forward, inner_adapt, query_outputs
        config = self.module.config
        ways = int(support_y.max()) + 1
        if ways > config.ways:
            raise ValueError(f"the MAML head has {config.ways} outputs; cannot classify {ways} ways")
        device = self.params["head_weight"].device
        params = dict(self.params)
        params["head_weight"], params["head_bias"] = params["head_weight"][:ways], params["head_bias"][:ways]
        sx, sy, qx = support_x.to(device), support_y.to(device), query_x.to(device)
        with torch.no_grad():  # torch.func.grad still differentiates the inner loop
            fast = inner_adapt(params, sx, sy, config.test_inner_steps, config.inner_lr,
                               classification_loss(conv4_forward), first_order=True)
            return query_outputs(conv4_forward, fast, sx, qx, self.bn)


def _maml(ctx, variant: str, folder: str | None = None) -> Method:
    from . import registry
    folder = folder or {"maml": "maml_5w1s", "fomaml": "fomaml_5w1s", "reptile": "reptile_5w1s"}[variant]
    module, payload = registry.load(_need(_data_dir() / "maml" / folder / "checkpoint.pt").parent, ctx["device"])
    theta = sum(v.numel() for v in module.theta().values())
    c = module.config
    head = c.ways
    features = module.params["head_weight"].shape[1]
    if c.protocol == "lake":
        name = f"{variant}-background"
        trained_on = (f"Omniglot background (Lake, 964 characters{', rotations' if c.rotations else ''}; "
                      f"{c.ways}-way {c.shots}-shot tasks)")
        shared = "; the capstone's shared meta-training data"
    else:
        name, trained_on, shared = variant, f"Omniglot, Vinyals split + rotations ({c.ways}-way {c.shots}-shot tasks)", ""
    return Method(name, MAMLPredictor(module), trained_on,
                  theta, lambda n, k: theta - (head - n) * (features + 1),  # every weight is adapted (N head rows)
                  settings=tuple(s for s in SETTINGS if s[0] <= head), family="optimization",
                  note=f"data/maml/{folder} ({payload['step']} meta-iterations), {c.test_inner_steps} "
                       f"inner steps of {c.inner_lr}, non-transductive batch norm{shared}")


class SequencePredictor:
    """Adapter: each query is its own sequence, the support set (in a random order) then that one query.

    Why not :class:`course_lib.sequence_learners.SequenceClassifier` (all queries in one sequence)? The
    checkpoints were trained on sequences of ``ways * (shots + 1)`` steps (one query per class); 30 or 75
    queries in a row would be a length they never saw, and an LSTM's state keeps changing with every
    query, so a query's answer would depend on the queries before it. One query per sequence is the
    trained situation (the first query right after the support set) and is non-transductive."""

    def __init__(self, models: dict, seed: int = 0) -> None:
        self.models = models  # (ways, shots) -> model
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, support_x, support_y, query_x):
        from .sequence_learners import shifted_label_inputs
        ways, n_support = int(support_y.max()) + 1, len(support_y)
        model = self.models[(ways, n_support // ways)]
        device = next(model.parameters()).device
        order = torch.randperm(n_support, generator=self.generator)
        sx, sy = support_x[order].to(device), support_y[order].to(device)
        Q = len(query_x)
        images = torch.cat([sx.unsqueeze(0).expand(Q, *sx.shape), query_x.to(device).unsqueeze(1)], dim=1)
        targets = torch.cat([sy, sy.new_zeros(1)])  # the query's label slot is never read (it is the last step)
        is_query = torch.zeros(n_support + 1, dtype=torch.bool, device=device)
        is_query[-1] = True
        labels = shifted_label_inputs(targets, is_query, ways).unsqueeze(0).expand(Q, -1, -1)
        with torch.no_grad():
            return model(images, labels)[:, -1]


def _sequence(ctx, kind: str) -> Method:
    from . import registry
    from .models import count_parameters
    folder = _data_dir() / "black_box"
    models = {}
    for run in sorted(folder.glob(f"{kind}_*way_*shot/checkpoint.pt")):
        model, _ = registry.load(run.parent, device=ctx["device"])  # built from the run's own config
        models[(model.config.ways, model.config.shots)] = model
    if not models:
        raise MissingCheckpoint(str(folder / f"{kind}_*way_*shot/checkpoint.pt"))
    settings = tuple(s for s in SETTINGS if s in models)
    reference = models[min(models)]
    predictor = SequencePredictor(models)
    return Method(kind, predictor, "Omniglot background (Lake), 2-4 way episodes, one checkpoint per setting",
                  count_parameters(reference),
                  lambda n, k: models.get((n, k), reference).learned_variables(n * k + 1), settings=settings,
                  reset=predictor.reset, family="black-box",
                  note=f"data/black_box/{kind}_<W>way_<K>shot: only settings with their own checkpoint "
                       f"({', '.join(setting_name(*s) for s in sorted(models))}); one query per sequence")


def _standardise(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """One mean and one std over all pixels of ``reference`` (the support set: no query is used)."""
    mean, std = reference.mean(), reference.std()
    return (x - mean) / std.clamp_min(1e-6)


class VSMLPredictor:
    """Adapter: VSML is an online learner (one example at a time, then its label), meta-trained on
    100-example streams of 16 randomly projected inputs (course_lib.vsml). Here every episode gets its
    own Gaussian projection 784 -> 16 (``/ sqrt(784)``, as ``vsml.sample_streams``), inputs standardised
    with the support set's mean and std; the support set is shown in a fresh random order per pass, for
    as many passes as fill the stream length it was trained on (100 steps), and each query is then
    classified from that state (one more step, its own copy of the state). The output grid has N
    units: VSML's meta-parameters do not depend on the number of classes."""

    def __init__(self, model, seed: int = 0) -> None:
        self.model = model
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, support_x, support_y, query_x):
        from .vsml import run_stream
        config = self.model.config
        ways, n = int(support_y.max()) + 1, len(support_y)
        device = next(self.model.parameters()).device
        flat_s, flat_q = support_x.flatten(1).float(), query_x.flatten(1).float()
        flat_s, flat_q = _standardise(flat_s, flat_s), _standardise(flat_q, flat_s)
        dim = flat_s.shape[1]
        projection = torch.randn(dim, config.input_size, generator=self.generator) / math.sqrt(dim)
        passes = max(1, math.ceil(config.stream_length / n))
        order = torch.cat([torch.randperm(n, generator=self.generator) for _ in range(passes)])[:max(n, config.stream_length)]
        xs = (flat_s[order] @ projection).unsqueeze(0).to(device)
        ys = support_y[order].unsqueeze(0).to(device)
        with torch.no_grad():
            state = self.model.initial_state(1, config.input_size, ways, device=device)
            previous = (torch.zeros(1, ways, device=device), torch.full((1,), -1, dtype=torch.long, device=device))
            _, state, previous = run_stream(self.model, xs, ys, state, previous)
            Q = len(query_x)
            state = tuple(s.expand(Q, *s.shape[1:]) for s in state)
            previous = (previous[0].expand(Q, -1), previous[1].expand(Q))
            logits, _ = self.model.step(state, (flat_q @ projection).to(device), *previous)
        return logits


def _vsml(ctx, run: str = "scratch") -> Method:
    from . import registry, vsml
    folder = _need(_data_dir() / "vsml" / run)
    model, _ = registry.load(folder, ctx["device"])
    counts = vsml.count_variables(model.config)["vsml"]
    predictor = VSMLPredictor(model)
    hidden = model.config.hidden
    if model.config.dataset == "omniglot":
        name, trained_on = "vsml-omniglot", "Omniglot background (Lake, 964 characters), random projections to 16"
        note = (f"data/vsml/{run}; the capstone's shared meta-training data; support set replayed to a "
                "100-step stream")
    else:
        name, trained_on = "vsml", "scikit-learn digits (70 % of the images), random projections to 16"
        note = (f"data/vsml/{run} (notebook 07's run); support set replayed to a 100-step stream; meta-trained on "
                "digits, so its digits columns are in-distribution (held-out images, seen classes)")
    return Method(name, predictor, trained_on,
                  counts["meta_parameters"], lambda n, k: model.config.input_size * n * 2 * hidden,
                  reset=predictor.reset, family="black-box", note=note)


class GPICLPredictor:
    """Adapter: GPICL's transformer reads tokens ``[W x_t, onehot(y_{t-1})]`` of 10 classes, ``W`` a
    task's random projection to 32 (course_lib.gpicl). Each episode is a new task id (never in any
    training pool: ``UNSEEN_TASK_OFFSET`` + a counter, the ids notebook 08 uses for unseen tasks),
    inputs standardised with one mean and one std (of the support set), the support set in a random
    order, then one query per sequence; the logits are restricted to the episode's N labels (the model
    always has 10 outputs, and every training sequence used all 10 classes)."""

    def __init__(self, model, config, seed: int = 0) -> None:
        self.model, self.config = model, config
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.counter = seed * 1_000_003

    def __call__(self, support_x, support_y, query_x):
        from .gpicl import UNSEEN_TASK_OFFSET, projection_matrices
        c = self.config
        ways, n = int(support_y.max()) + 1, len(support_y)
        device = next(self.model.parameters()).device
        flat_s, flat_q = support_x.flatten(1).float(), query_x.flatten(1).float()
        flat_s, flat_q = _standardise(flat_s, flat_s), _standardise(flat_q, flat_s)
        self.counter += 1
        W = projection_matrices(torch.tensor([UNSEEN_TASK_OFFSET + self.counter]), flat_s.shape[1], c.input_dim)[0]
        order = torch.randperm(n, generator=self.generator)
        xs, ys = flat_s[order] @ W, support_y[order]
        Q = len(query_x)
        inputs = torch.cat([xs.unsqueeze(0).expand(Q, -1, -1), (flat_q @ W).unsqueeze(1)], dim=1)  # [Q, n+1, 32]
        slot = F.pad(F.one_hot(ys, c.num_classes).float(), (0, 0, 1, 0))  # [n+1, classes]: y_{t-1}
        tokens = torch.cat([inputs, slot.unsqueeze(0).expand(Q, -1, -1)], dim=-1).unsqueeze(0).to(device)
        with torch.no_grad():
            return self.model(tokens)[0, :, -1, :ways]


def _gpicl_steps(weights: Path) -> int | None:
    """Training steps of a shipped GPICL model, from the ``results.json`` beside its weights."""
    results = weights.parent / "results.json"
    return json.loads(results.read_text()).get("steps") if results.is_file() else None


def _gpicl(ctx, run: str = "sweep_cpu") -> Method:
    from . import gpicl, gpicl_runs
    path = _need(_data_dir() / "gpicl" / run / "tasks_1024" / "weights.pt")
    model, config = gpicl_runs.load_model(path, ctx["device"])
    size = gpicl.model_size(model)
    predictor = GPICLPredictor(model, config)
    steps = _gpicl_steps(path)
    trained = f"the 1,024-task model, {steps:,} steps" if steps else "the 1,024-task model"
    if config.train_dataset == "omniglot":
        name = "gpicl-omniglot"
        trained_on = (f"Omniglot background (Lake, {964 - gpicl.OMNIGLOT_HELD_OUT_CHARACTERS} of its 964 characters, "
                      "10 random ones per sequence), 1,024 random projections + label permutations")
        note = (f"data/gpicl/{run}/tasks_1024 ({trained}); the capstone's shared meta-training data; logits "
                "restricted to the episode's N of its 10 classes")
    else:
        name, trained_on = "gpicl", "MNIST test images 0-8,999, 1,024 random projections + label permutations"
        note = (f"data/gpicl/{run}/tasks_1024 ({trained}; notebook 08's run); logits restricted to the episode's "
                "N of its 10 classes; meta-trained on MNIST digits, so its MNIST column is in-distribution "
                "(held-out images)")
    return Method(name, predictor, trained_on,
                  size["parameters"], lambda n, k: model.state_size(n * k + 1), reset=predictor.reset,
                  family="black-box", settings=tuple(s for s in SETTINGS if s[0] * s[1] + 1 <= config.seq_len),
                  note=note)


BUILDERS: dict[str, Callable[[dict], Method]] = {
    "pixel-nn": _pixel_nn,
    "pixel-finetune": _pixel_finetune,
    "pretrained-centroid": lambda ctx: _pretrained(ctx, finetune=False),
    "pretrained-finetune": lambda ctx: _pretrained(ctx, finetune=True),
    "protonet": _protonet,
    "matching-net": lambda ctx: _matching(ctx, scaled=False),
    "matching-net-scaled": lambda ctx: _matching(ctx, scaled=True),
    "maml": lambda ctx: _maml(ctx, "maml"),
    "fomaml": lambda ctx: _maml(ctx, "fomaml"),
    "reptile": lambda ctx: _maml(ctx, "reptile"),
    "mann": lambda ctx: _sequence(ctx, "mann"),
    "lstm": lambda ctx: _sequence(ctx, "lstm"),
    "transformer": lambda ctx: _sequence(ctx, "transformer"),
    "vsml": _vsml,
    "gpicl": _gpicl,
    "protonet-background": lambda ctx: _protonet(ctx, "protonet_ablations/lake_split"),
    "maml-background": lambda ctx: _maml(ctx, "maml", "maml_5w1s_background"),
    "vsml-omniglot": lambda ctx: _vsml(ctx, "scratch_omniglot"),
    "gpicl-omniglot": lambda ctx: _gpicl(ctx, "omniglot_cpu"),
}
assert tuple(BUILDERS) == ALL_METHODS


def build_methods(names, device="cpu", out: Path | None = None, smoke: bool = False,
                  progress: bool = True) -> tuple[list[Method], dict]:
    """The methods that can be built here, and ``{name: reason}`` for those whose checkpoint is missing."""
    ctx = {"device": torch.device(device), "out": Path(out) if out is not None else _data_dir() / "benchmark",
           "smoke": smoke, "progress": progress}
    methods, missing = [], {}
    for name in names:
        try:
            methods.append(BUILDERS[name](ctx))
        except MissingCheckpoint as error:
            missing[name] = f"no checkpoint in this checkout ({error})"
    return methods, missing


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


def evaluate_cell(method: Method, pool: LabelledImages, episodes: EpisodeIndices, count: int, seed: int,
                  progress: bool = False, desc: str = "") -> tuple[AccuracyResult, float, list[float]]:
    """Accuracy of ``method`` on the first ``count`` episodes; returns (result, seconds, per-episode)."""
    from .evaluation import episode_accuracy
    method.reset(seed)
    accuracies = []
    start = time.perf_counter()
    for i in tqdm(range(min(count, len(episodes))), desc=desc, disable=not progress, leave=False):
        accuracies.append(episode_accuracy(method.predict, episodes.episode(pool, i)))
    seconds = time.perf_counter() - start
    mean, ci = mean_confidence_interval(accuracies)
    return AccuracyResult(mean, ci, len(accuracies)), seconds, accuracies


def run_benchmark(methods: list[Method], test_sets=TEST_SETS, settings=SETTINGS, episodes: int = 1000,
                  episodes_for: dict[str, int] | None = None, pools: dict | None = None,
                  episode_lists: dict | None = None, progress: bool = True) -> dict:
    """``{method: {"cells": {test_set: {setting: {mean, ci95, episodes, seconds}}}, ...}}``.

    Every method sees the same episodes: index lists drawn once per (base test set, setting)."""
    episodes_for = episodes_for or {}
    pools = pools if pools is not None else {}
    episode_lists = episode_lists if episode_lists is not None else {}
    needed = max([episodes, *episodes_for.values()])
    for test_set in test_sets:
        if test_set not in pools:
            pools[test_set] = load_test_set(test_set)
        for ways, shots in settings:
            key = episodes_key(test_set, ways, shots)
            if key not in episode_lists or len(episode_lists[key]) < needed:
                episode_lists[key] = draw_episodes(pools[test_set], ways, shots, needed,
                                                   episode_seed(test_set, ways, shots), queries_for(shots))
    results = {}
    for method in methods:
        count = episodes_for.get(method.name, episodes)
        cells = {}
        for test_set in test_sets:
            for ways, shots in settings:
                if not method.supports(ways, shots):
                    continue
                name = setting_name(ways, shots)
                result, seconds, _ = evaluate_cell(method, pools[test_set], episode_lists[episodes_key(test_set, ways, shots)],
                                                   count, episode_seed(test_set, ways, shots), progress,
                                                   desc=f"{method.name} {test_set} {name}")
                cells.setdefault(test_set, {})[name] = {**result.as_dict(), "seconds": seconds}
        results[method.name] = {
            "trained_on": method.trained_on, "family": method.family, "note": method.note,
            "supported_settings": [setting_name(*s) for s in settings if method.supports(*s)],
            "variables": method.variables(*next((s for s in settings if method.supports(*s)), settings[0])),
            "cells": cells,
        }
    return results


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------


def columns(record: dict) -> list[tuple[str, str]]:
    return [(t, setting_name(*s)) for t in record["test_sets"] for s in map(tuple, record["settings"])]


def cell(record: dict, method: str, test_set: str, setting: str) -> dict | None:
    return record["methods"][method]["cells"].get(test_set, {}).get(setting)


def to_markdown(record: dict, methods=None) -> str:
    """The table (rows: ``methods``, default all of the record's, in its order; columns: test set x setting)."""
    cols = columns(record)
    lines = ["| method | " + " | ".join(f"{t} · {s}" for t, s in cols) + " |", "|---|" + "---|" * len(cols)]
    for method in (record["methods"] if methods is None else [m for m in methods if m in record["methods"]]):
        cells = []
        for t, s in cols:
            c = cell(record, method, t, s)
            cells.append("–" if c is None else format_accuracy(c["mean"], c["ci95"]) +
                         (f" ({c['episodes']} ep.)" if c["episodes"] != record["episodes"] else ""))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(record: dict) -> str:
    cols = columns(record)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["method"]
    for t, s in cols:
        header += [f"{t} | {s} | mean", f"{t} | {s} | ci95", f"{t} | {s} | episodes"]
    writer.writerow(header)
    for method in record["methods"]:
        row = [method]
        for t, s in cols:
            c = cell(record, method, t, s)
            row += ["", "", ""] if c is None else [f"{c['mean']:.6f}", f"{c['ci95']:.6f}", c["episodes"]]
        writer.writerow(row)
    return buffer.getvalue()


def read_csv(text: str) -> dict[str, dict[tuple[str, str], tuple[float, float, int]]]:
    """``{method: {(test set, setting): (mean, ci95, episodes)}}`` from :func:`to_csv`'s text."""
    rows = list(csv.reader(io.StringIO(text)))
    header, out = rows[0], {}
    for row in rows[1:]:
        cells = {}
        for i in range(1, len(header), 3):
            t, s, _ = (part.strip() for part in header[i].split("|"))
            if row[i]:
                cells[(t, s)] = (float(row[i]), float(row[i + 1]), int(row[i + 2]))
        out[row[0]] = cells
    return out


def results_markdown(record: dict) -> str:
    lines = [
        "# Benchmark: every method on the same episodes",
        "",
        f"Query accuracy, mean ± 95% CI over {record['episodes']} episodes per cell unless a cell says otherwise "
        f"({QUERIES} queries per class, {queries_for(10)} at 10 shots; identical episodes for every method, "
        "index lists in `episodes.npz`; – : the method cannot take that setting). "
        f"Written by `{record['command']}` (each method's own command is in `results.json`, `runs`) on {record['hardware'].get('cpu') or record['hardware']['device']} "
        f"({record['hardware']['device']}, {record['hardware']['torch_threads']} torch thread(s)), "
        f"mode {record['mode']}.",
        "",
        to_markdown(record),
        "",
        f"**The same meta-training data.** The rows meta-trained on {SHARED_TRAINING_DATA} alphabets only "
        "(Lake's split, 964 characters; nothing else), with the untrained pixel nearest neighbour for reference:",
        "",
        to_markdown(record, ("pixel-nn",) + SHARED_TRAINING),
        "",
        "| method | meta-trained on | learned / meta variables | seconds | note |",
        "|---|---|---|---|---|",
    ]
    for name, m in record["methods"].items():
        v = m["variables"]
        seconds = sum(c["seconds"] for row in m["cells"].values() for c in row.values())
        lines.append(f"| {name} | {m['trained_on']} | {v['learned_variables']:,} / {v['meta_parameters']:,} "
                     f"= {v['ratio_learned_per_meta']:.3g} ({v['setting']}) | {seconds:.0f} | {m['note']} |")
    if record.get("missing"):
        lines += ["", "Missing (not in the table): " + "; ".join(f"{k}: {v}" for k, v in record["missing"].items())]
    lines += ["", "Test sets: " + "; ".join(f"`{k}`: {v}" for k, v in record["test_set_descriptions"].items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def chance(setting: str) -> float:
    return 1.0 / int(setting.split("-")[0])


def in_distribution(record: dict, method: str) -> str:
    """The test set of a method's own meta-training domain: Omniglot, digits for VSML, MNIST for GPICL
    (and Omniglot for the learners that were not meta-trained at all, where the choice is arbitrary)."""
    return record["methods"][method].get("in_distribution", IN_DISTRIBUTION_OF.get(method, IN_DISTRIBUTION))


def generality(record: dict, method: str, setting: str) -> dict | None:
    """In-distribution accuracy (:func:`in_distribution`), mean out-of-distribution accuracy (over the
    other test sets), and the share of above-chance accuracy kept, ``(ood - 1/N) / (id - 1/N)``."""
    home = in_distribution(record, method)
    ind = cell(record, method, home, setting)
    ood = [cell(record, method, t, setting) for t in record["test_sets"] if t != home]
    ood = [c for c in ood if c is not None]
    if ind is None or not ood:
        return None
    ood_mean = sum(c["mean"] for c in ood) / len(ood)
    base = chance(setting)
    kept = (ood_mean - base) / (ind["mean"] - base) if ind["mean"] - base > 1e-9 else float("nan")
    return {"in_distribution": ind["mean"], "out_of_distribution": ood_mean, "kept": kept, "test_sets": len(ood)}


def plot_generality(record: dict, axes=None):
    """Two panels: in- vs out-of-distribution accuracy, and the share kept vs the variable ratio (log x)."""
    import matplotlib.pyplot as plt
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    else:
        fig = axes[0].figure
    markers = {"5-way 1-shot": "o", "5-way 5-shot": "s", "2-way 1-shot": "^", "10-way 10-shot": "D"}
    colours = {}
    for name, m in record["methods"].items():
        colour = colours.setdefault(name, plt.cm.tab20(len(colours) % 20))
        edge = "black" if name in SHARED_TRAINING else "none"  # the rows on the shared meta-training data
        for setting in m["supported_settings"]:
            g = generality(record, name, setting)
            if g is None:
                continue
            axes[0].scatter(100 * g["in_distribution"], 100 * g["out_of_distribution"], color=colour,
                            marker=markers.get(setting, "x"), s=45, edgecolors=edge, linewidths=1.2,
                            label=name if setting == m["supported_settings"][0] else None)
        setting = m["variables"]["setting"]
        g = generality(record, name, setting)
        if g is not None:
            axes[1].scatter(m["variables"]["ratio_learned_per_meta"], g["kept"], color=colour,
                            marker=markers.get(setting, "x"), s=55, edgecolors=edge, linewidths=1.2)
            axes[1].annotate(name, (m["variables"]["ratio_learned_per_meta"], g["kept"]), fontsize=7,
                             xytext=(3, 3), textcoords="offset points")
    axes[0].plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="accuracy in distribution, % (Omniglot; VSML: digits, GPICL: MNIST)",
                ylabel="mean accuracy on the other four test sets, %",
                title="in vs out of distribution (o 5w1s, □ 5w5s, △ 2w1s, ◇ 10w10s;\n"
                      "black edge: meta-trained on the shared data, Omniglot background)")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set_xscale("log")
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[1].axhline(0.0, color="grey", lw=0.8)
    axes[1].set(xlabel="variable ratio: learned variables / meta-parameters (log)",
                ylabel="share of above-chance accuracy kept out of distribution",
                title="structure vs generality")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if items == ["all"]:
        return list(allowed)
    unknown = [x for x in items if x not in allowed]
    if unknown or not items:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(allowed)} (comma-separated) or 'all'")
    return items


def _parse_episodes_for(items: list[str], methods: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, number = item.partition("=")
        if name not in ALL_METHODS or not number.isdigit() or int(number) < 2:
            raise ValueError(f"--episodes-for wants METHOD=N with a known method and N >= 2, got {item!r}")
        out[name] = int(number)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_lib.benchmark", description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=None, help="episodes per cell (default: 1000, smoke: 10)")
    p.add_argument("--episodes-for", action="append", default=[], metavar="METHOD=N",
                   help="fewer (or more) episodes for one slow method; the first N of the same list")
    p.add_argument("--methods", default="all", help=f"comma-separated, from: {', '.join(ALL_METHODS)}")
    p.add_argument("--test-sets", default="all", help=f"comma-separated, from: {', '.join(TEST_SETS)}")
    p.add_argument("--settings", default="all",
                   help="comma-separated WAYSxSHOTS from: " + ", ".join(f"{w}x{k}" for w, k in SETTINGS)
                   + "; a method's cells of the other settings are kept from its earlier run")
    p.add_argument("--out", default=None, help="folder for results.json/.md/.csv and episodes.npz "
                   f"(default: {FULL_OUT} in full mode, {SMOKE_OUT} in smoke mode)")
    p.add_argument("--device", default="cpu", help="cpu (default; the shipped results), cuda, mps")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--assemble", action="store_true", help="only rebuild the tables from out/parts/*.json")
    p.add_argument("--no-progress", action="store_true")
    return p


FULL_OUT, SMOKE_OUT = "data/benchmark", "runs/smoke/benchmark"  # smoke numbers never land in data/


def output_folder(out: str | None, mode: str) -> Path:
    """Where this run writes; a usage error where smoke results would replace full-mode ones."""
    folder = Path(out if out is not None else (SMOKE_OUT if mode == "smoke" else FULL_OUT))
    if mode == "smoke":
        for path in [folder / "results.json", *sorted((folder / "parts").glob("*.json"))]:
            if path.is_file() and json.loads(path.read_text()).get("mode") == "full":
                raise ValueError(f"{path} holds full-mode results and this is a smoke run (COURSE_MODE=smoke): "
                                 f"write smoke results elsewhere with --out (default {SMOKE_OUT})")
    return folder


def _validate(args) -> tuple[list[str], list[str], list[tuple[int, int]], dict[str, int], int]:
    methods = _parse_list(args.methods, ALL_METHODS, "method(s)")
    test_sets = _parse_list(args.test_sets, TEST_SETS, "test set(s)")
    names = {f"{w}x{k}": (w, k) for w, k in SETTINGS}
    settings = [names[n] for n in _parse_list(args.settings, tuple(names), "setting(s)")]
    episodes_for = _parse_episodes_for(args.episodes_for, methods)
    from .runtime import is_smoke
    episodes = args.episodes if args.episodes is not None else (10 if is_smoke() else 1000)
    if episodes < 2:
        raise ValueError(f"--episodes must be >= 2 (a CI needs two episodes), got {episodes}")
    return methods, test_sets, settings, episodes_for, episodes


def merge_part(old: dict | None, new: dict) -> dict:
    """A method's new results on top of its earlier part: cells the new run did not evaluate are kept
    (with the earlier command listed), so one setting can be added without rerunning the others."""
    if old is None or old.get("mode") != new["mode"]:
        return new
    cells = {t: dict(row) for t, row in old["result"]["cells"].items()}
    for test_set, row in new["result"]["cells"].items():
        cells.setdefault(test_set, {}).update(row)
    either = set(old["result"].get("supported_settings", [])) | set(new["result"].get("supported_settings", []))
    supported = [setting_name(*s) for s in SETTINGS if setting_name(*s) in either]
    earlier = old.get("earlier_commands", []) + [old["command"]]
    return {**new, "result": {**new["result"], "cells": cells, "supported_settings": supported,
                              "variables": old["result"].get("variables", new["result"]["variables"])},
            "earlier_commands": earlier}


def assemble(out: Path, command: str) -> dict:
    """results.json / .md / .csv from every ``out/parts/<method>.json`` (one per method, any run)."""
    parts = sorted((out / "parts").glob("*.json"))
    if not parts:
        raise FileNotFoundError(f"no results in {out / 'parts'}: run the benchmark first")
    loaded = [json.loads(p.read_text()) for p in parts]
    order = {m: i for i, m in enumerate(ALL_METHODS)}
    loaded.sort(key=lambda r: order.get(r["method"], 99))
    first = loaded[0]
    test_sets = [t for t in TEST_SETS if any(t in r["result"]["cells"] for r in loaded)]
    settings = [list(s) for s in SETTINGS if any(setting_name(*s) in c for r in loaded for c in r["result"]["cells"].values())]
    missing_path = out / "missing.json"
    missing = json.loads(missing_path.read_text()) if missing_path.is_file() else {}
    methods = {r["method"]: {**r["result"], "in_distribution": IN_DISTRIBUTION_OF.get(r["method"], IN_DISTRIBUTION)}
               for r in loaded}
    for name in methods:
        missing.pop(name, None)
    record = {
        "command": command, "mode": first["mode"], "episodes": first["episodes"],
        "queries_per_class": {setting_name(*s): queries_for(s[1]) for s in settings},
        "settings": settings, "test_sets": test_sets, "hardware": first["hardware"],
        "episode_seeds": {episodes_key(t, *s): episode_seed(t, *s) for t in test_sets for s in map(tuple, settings)},
        "permutation_seed": PERMUTATION_SEED, "episodes_file": "episodes.npz",
        "test_set_descriptions": {t: DESCRIPTIONS[t] for t in test_sets},
        "methods": methods, "missing": missing,
        "runs": [{"method": r["method"], "command": r["command"], "earlier_commands": r.get("earlier_commands", []),
                  "hardware": r["hardware"], "finished": r["finished"]} for r in loaded],
    }
    write_json(out / "results.json", record)
    write_text(out / "results.md", results_markdown(record))
    write_text(out / "results.csv", to_csv(record))
    return record


DESCRIPTIONS = {
    "omniglot": "Omniglot characters of the 20 evaluation alphabets that are also test classes of the Vinyals "
                "split (unseen by every checkpoint), rotation 0",
    "mnist": "MNIST test images 9,000-9,999 (GPICL meta-trained on images 0-8,999)",
    "digits": "scikit-learn digits held out from VSML's training (30 %, seed 1234), 8x8 -> 20x20 bilinear, "
              "padded to 28x28",
    "mnist-permuted": "the mnist pool with one fixed pixel permutation (seed 20240909)",
    "digits-permuted": "the digits pool with the same pixel permutation",
}


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # every check before anything is loaded or written
        methods, test_sets, settings, episodes_for, episodes = _validate(args)
        device = get_device(args.device)
        from .runtime import get_mode
        out = output_folder(args.out, get_mode())
    except (ValueError, RuntimeError) as error:
        parser.error(str(error))
    command = "python -m course_lib.benchmark " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.assemble:
        return assemble(out, command)
    if args.threads:
        torch.set_num_threads(args.threads)
    from .runtime import get_mode, is_smoke
    built, missing = build_methods(methods, device, out, smoke=is_smoke(), progress=not args.no_progress)
    pools, lists = {}, {}
    path = out / "episodes.npz"
    if path.is_file():
        lists = load_episodes(path)
    for name in missing:
        (out / "parts" / f"{name}.json").unlink(missing_ok=True)
    known = json.loads((out / "missing.json").read_text()) if (out / "missing.json").is_file() else {}
    known = {k: v for k, v in known.items() if k not in methods}
    write_json(out / "missing.json", {**known, **missing})
    hardware = machine_description(device)
    record = None
    for method in built:  # one method at a time: its results are written as soon as it is done
        result = run_benchmark([method], test_sets, settings, episodes, episodes_for, pools, lists,
                               progress=not args.no_progress)[method.name]
        if path.is_file():  # another run may have written more lists meanwhile: keep the union
            stored = load_episodes(path)
            lists.update({k: v for k, v in stored.items() if k not in lists or len(v) > len(lists[k])})
        save_episodes(path, lists)
        part_path = out / "parts" / f"{method.name}.json"
        old = json.loads(part_path.read_text()) if part_path.is_file() else None
        write_json(part_path, merge_part(old, {
            "method": method.name, "result": result, "mode": get_mode(), "episodes": episodes, "command": command,
            "hardware": hardware, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        record = assemble(out, command)
    if record is None:
        record = assemble(out, command)
    print(results_markdown(record))
    return record


if __name__ == "__main__":
    main()
