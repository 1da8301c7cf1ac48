"""The capstone's test sets and episodes: the same tasks for every row.

Five pools (:data:`DESCRIPTIONS`) of images ``[n, 1, 28, 28]`` in [0, 1], bright ink on black, as
Omniglot in :mod:`course_lib.data`. Episodes come from one seeded generator per (base test set,
setting) and are kept as index lists (``episodes.npz``); a permuted set reuses its base set's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data import OMNIGLOT_SPLIT_SEED, OMNIGLOT_VINYALS_TRAIN_CLASSES, LabelledImages
from ..episodes import Episode, EpisodeSampler, step_seed
from ..runs import atomic_write

SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (2, 1), (10, 10))
QUERIES = 15  # per class, as in the course's other tables
DRAWINGS_PER_CHARACTER = 20  # Omniglot: shots + queries cannot exceed this
PERMUTATION_SEED = 20_240_909
EPISODE_SEED = 0
TEST_SETS = ("omniglot", "mnist", "digits", "mnist-permuted", "digits-permuted")
MNIST_HELD_OUT_FROM = 9000  # gpicl.MNIST_TRAIN_IMAGES: GPICL trained on the images before this one
DIGITS_SPLIT_SEED = 1234  # vsml.load_sources(seed=0) shuffles with seed 0 + 1234 and keeps 70 % for training
DIGITS_TRAIN_FRACTION = 0.7

DESCRIPTIONS = {
    "omniglot": "Omniglot characters of the 20 evaluation alphabets that are also test classes of the Vinyals "
                "split (unseen by every checkpoint), rotation 0",
    "mnist": "MNIST test images 9,000-9,999 (GPICL meta-trained on images 0-8,999)",
    "digits": "scikit-learn digits held out from VSML's training (30 %, seed 1234), 8x8 -> 20x20 bilinear, "
              "padded to 28x28",
    "mnist-permuted": "the mnist pool with one fixed pixel permutation (seed 20240909)",
    "digits-permuted": "the digits pool with the same pixel permutation",
}


def queries_for(shots: int) -> int:
    """Queries per class of a K-shot episode: 15, or fewer where an Omniglot character would run out."""
    return min(QUERIES, DRAWINGS_PER_CHARACTER - shots)


def base_of(test_set: str) -> str:
    return test_set.removesuffix("-permuted")


def episode_seed(test_set: str, ways: int, shots: int, seed: int = EPISODE_SEED) -> int:
    """The generator seed of one (base test set, setting): a fixed function of the names only."""
    return step_seed(seed, zlib.crc32(f"{base_of(test_set)}/{ways}w{shots}s".encode()) % 1_000_000)


def digits_to_28(images: torch.Tensor) -> torch.Tensor:
    """``[n, 1, 8, 8]`` in [0, 1] -> ``[n, 1, 28, 28]``: bilinear to 20x20, zero padding of 4 (MNIST's layout).

    The digits' ink is already bright on black, like Omniglot's here, so the polarity is kept.
    """
    if images.shape[-2:] != (8, 8):
        raise ValueError(f"expected 8x8 digits, got {tuple(images.shape)}")
    resized = F.interpolate(images.float(), size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(resized, (4, 4, 4, 4)).clamp_(0.0, 1.0)


def pixel_permutation(seed: int = PERMUTATION_SEED, size: int = 28 * 28) -> torch.Tensor:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Pixel ``i`` of every output image is pixel ``permutation[i]`` of its input image: the same
    values and pixel-space distances, none of the spatial structure a convolution relies on."""
    n, c, h, w = images.shape
    return images.reshape(n, c, h * w)[:, :, permutation].reshape(n, c, h, w)


def omniglot_unseen_classes(num_classes: int = 1623, num_background: int = 964) -> list[int]:
    """Class ids of the evaluation alphabets (Lake split) that are also Vinyals-split test classes.

    The shipped checkpoints were meta-trained on one split or the other, so only
    this intersection is unseen by every one of them.
    """
    order = torch.randperm(num_classes, generator=torch.Generator().manual_seed(OMNIGLOT_SPLIT_SEED))
    vinyals_test = set(order[OMNIGLOT_VINYALS_TRAIN_CLASSES:].tolist())
    return sorted(c for c in range(num_background, num_classes) if c in vinyals_test)


def load_test_set(name: str) -> LabelledImages:
    """One test pool (:data:`DESCRIPTIONS`), images ``[n, 1, 28, 28]`` in [0, 1]."""
    from .. import data

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
    drawn = [sampler.sample(generator) for _ in range(count)]
    return EpisodeIndices(torch.stack([e.support_x.flatten().long() for e in drawn]),
                          torch.stack([e.query_x.flatten().long() for e in drawn]),
                          torch.stack([e.classes for e in drawn]), ways, shots, queries)


def episodes_key(test_set: str, ways: int, shots: int) -> str:
    return f"{base_of(test_set)}/{ways}w{shots}s"


def save_episodes(path: Path, episodes: dict[str, EpisodeIndices]) -> None:
    arrays = {f"{key}/{part}": getattr(e, part).numpy().astype(np.int32)
              for key, e in episodes.items() for part in ("support", "query", "classes")}

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a handle: given a path, numpy would add ".npz" to it
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)


def load_episodes(path: Path) -> dict[str, EpisodeIndices]:
    out = {}
    with np.load(path) as arrays:
        for key in {k.rsplit("/", 1)[0] for k in arrays.files}:
            support, query, classes = (torch.from_numpy(arrays[f"{key}/{part}"].astype(np.int64))
                                       for part in ("support", "query", "classes"))
            ways = classes.shape[1]
            out[key] = EpisodeIndices(support, query, classes, ways, support.shape[1] // ways,
                                      query.shape[1] // ways)
    return out
