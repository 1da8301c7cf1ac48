"""Real labelled image sets: Omniglot, the MNIST test set, scikit-learn digits.

Introduced in notebooks 00 (Omniglot) and 01 (MNIST). Every loader returns a
:class:`LabelledImages`: images in [0, 1] (ink bright, background 0), integer
labels and class names. Files come from the folder named by ``COURSE_DATA_DIR``
(the official file names, e.g. ``$COURSE_DATA_DIR/omniglot/images_background.zip``),
else from the download folder of :func:`course_lib.runtime.cache_dir`, else
from the official URLs, downloaded once. Archives are checked against known
checksums; downloads and converted arrays are written atomically, so a failed
run leaves no half-written file, and an unreadable cache is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .runtime import DATA_DIR_VARIABLE, cache_dir, local_data_dir, progress_bar

CACHE_FORMAT_VERSION = 1
DOWNLOAD_TIMEOUT_SECONDS = 60.0  # for the connection and for each block; tests lower it


class DataUnavailableError(RuntimeError):
    """The data can neither be read locally nor downloaded."""


class ChecksumError(RuntimeError):
    """A data file does not match any known checksum (corrupt, truncated or another file)."""


# The container every loader returns


@dataclass
class LabelledImages:
    """Images ``[n, channels, height, width]`` in [0, 1], labels ``[n]`` indexing ``class_names``,
    and optionally a group for every class (``class_groups``: the alphabet, for Omniglot)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    class_groups: list[str] | None = None
    name: str = "images"
    _class_index: list[torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [n, c, h, w], got shape {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be [n] with n={self.images.shape[0]}, got {tuple(self.labels.shape)}")
        if self.class_groups is not None and len(self.class_groups) != len(self.class_names):
            raise ValueError("class_groups needs one entry per class")
        if len(self.labels) and int(self.labels.max()) >= len(self.class_names):
            raise ValueError("a label is larger than the number of class names")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def indices_of_class(self, label: int) -> torch.Tensor:
        """Indices of all examples of one class (computed once, then cached)."""
        if self._class_index is None:
            order = torch.argsort(self.labels, stable=True)
            self._class_index = list(torch.split(order, self.examples_per_class().tolist()))
        return self._class_index[label]

    def examples_per_class(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset_classes(self, classes: Sequence[int], name: str | None = None) -> "LabelledImages":
        """Keep only ``classes`` and relabel them 0..len(classes)-1 in that order."""
        classes = torch.as_tensor(list(classes), dtype=torch.long)
        if classes.numel() != classes.unique().numel():
            raise ValueError("subset_classes got a class twice")
        device = self.labels.device
        new_label = torch.full((self.num_classes,), -1, dtype=torch.long, device=device)
        new_label[classes.to(device)] = torch.arange(len(classes), device=device)
        keep = new_label[self.labels] >= 0
        kept = classes.tolist()
        groups = None if self.class_groups is None else [self.class_groups[c] for c in kept]
        names = [self.class_names[c] for c in kept]
        return LabelledImages(self.images[keep], new_label[self.labels[keep]], names, groups, name or self.name)

    def with_rotations(self, name: str | None = None) -> "LabelledImages":
        """Each class rotated by 0, 90, 180 and 270 degrees becomes 4 classes (Santoro et al. 2016).

        New class ``4 * c + r`` is class ``c`` rotated by ``r * 90`` degrees, so the four
        rotations of a character stay on one side of a class split made before this call.
        """
        rotated = torch.stack([torch.rot90(self.images, r, dims=(2, 3)) for r in range(4)], dim=1)
        labels = (self.labels[:, None] * 4 + torch.arange(4, device=self.labels.device)[None, :]).reshape(-1)
        names = [f"{n} rot{90 * r}" for n in self.class_names for r in range(4)]
        groups = None if self.class_groups is None else [g for g in self.class_groups for _ in range(4)]
        return LabelledImages(rotated.reshape(-1, *self.image_shape), labels, names, groups,
                              name or f"{self.name} (+rotations)")

    def to(self, device: torch.device | str) -> "LabelledImages":
        """A copy with images and labels on ``device`` (keep data on the GPU once)."""
        return LabelledImages(self.images.to(device), self.labels.to(device), self.class_names, self.class_groups,
                              self.name)

    def __repr__(self) -> str:
        counts = self.examples_per_class()
        return (f"LabelledImages({self.name!r}: {len(self)} images of shape {self.image_shape}, "
                f"{self.num_classes} classes, {int(counts.min())}-{int(counts.max())} per class)")


# Files: checksums, downloads, atomic writes


@dataclass(frozen=True)
class RemoteFile:
    """A file of an official data set and the ``"algorithm:hexdigest"`` checksums it may match
    (the official bytes, or a known re-packed copy)."""

    folder: str  # sub-folder under COURSE_DATA_DIR and the download cache
    filename: str
    urls: tuple[str, ...]
    checksums: tuple[str, ...]


def _readable_archive(path: Path) -> bool | None:
    """Whether ``path`` is an intact zip or gzip file (None: neither kind by name), to tell the
    wrong file (an intact archive) from a damaged one."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as bundle:
                return bundle.testzip() is None  # testzip checks every member's CRC
        if path.suffix == ".gz":
            gzip.decompress(path.read_bytes())  # raises on a damaged file
            return path.stat().st_size > 0
    except (OSError, EOFError, zipfile.BadZipFile):
        return False
    return None


def verify_checksum(path: Path, checksums: Iterable[str],
                    what_to_do: str = "Delete it and download it again.") -> None:
    """Raise :class:`ChecksumError`, saying whether the file is the wrong one or a damaged one,
    unless ``path`` matches one of ``checksums``."""
    checksums = tuple(checksums)
    seen = {}
    for entry in checksums:
        algorithm, _, expected = entry.partition(":")
        if algorithm not in seen:
            seen[algorithm] = hashlib.new(algorithm, path.read_bytes()).hexdigest()
        if seen[algorithm] == expected.lower():
            return
    readable = _readable_archive(path)
    if readable:
        diagnosis = (f"is a readable {path.suffix} archive but not the expected file (another version, "
                     "or another file saved under this name)")
    elif readable is None:
        diagnosis = "does not match any known checksum: it is corrupt, truncated or not the expected file"
    else:
        diagnosis = (f"is not a readable {path.suffix} archive: it is corrupt or truncated (an interrupted "
                     "download, or an error page saved in its place)")
    found = ", ".join(f"{a}:{d}" for a, d in seen.items())
    raise ChecksumError(f"{path} {diagnosis}. Found {found}; expected one of {', '.join(checksums)}. "
                        f"{what_to_do}")


@contextlib.contextmanager
def _atomic_write(path: Path):
    """A binary file open for writing that replaces ``path`` only once it is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.chmod(temporary, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _download(url: str, destination: Path) -> None:
    """Download ``url`` to ``destination``; TimeoutError if the server stays silent."""
    timeout = DOWNLOAD_TIMEOUT_SECONDS
    # Say what we wait for before waiting: a silent server would otherwise look like a hang.
    print(f"Downloading {url} (giving up after {timeout:g} s without an answer)", file=sys.stderr, flush=True)
    with urllib.request.urlopen(url, timeout=timeout) as response, _atomic_write(destination) as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with progress_bar(total=total, unit="B", unit_scale=True, desc=f"download {destination.name}") as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def fetch(remote: RemoteFile) -> Path:
    """A verified local path to ``remote``: from COURSE_DATA_DIR, the cache, or a download."""
    where = f"set {DATA_DIR_VARIABLE} to a folder that holds {remote.folder}/{remote.filename}."
    local = local_data_dir()
    if local is not None:
        path = local / remote.folder / remote.filename
        if not path.is_file():
            raise DataUnavailableError(
                f"{DATA_DIR_VARIABLE} is set to {str(local)!r} but {path} does not exist. Put {remote.filename} "
                f"there (official source: {remote.urls[0]}), or unset {DATA_DIR_VARIABLE} to download it.")
        verify_checksum(path, remote.checksums, f"Replace it with the official file from {remote.urls[0]}, "
                                                f"or unset {DATA_DIR_VARIABLE} to download it.")
        return path

    path = cache_dir() / "downloads" / remote.folder / remote.filename
    if path.is_file():
        try:
            verify_checksum(path, remote.checksums)
            return path
        except ChecksumError:
            path.unlink()  # ours to replace: we downloaded it
    errors, rejected = [], []
    for url in remote.urls:
        try:
            _download(url, path)
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            timed_out = isinstance(getattr(error, "reason", error), TimeoutError)  # urllib may wrap it
            reason = f"no answer within {DOWNLOAD_TIMEOUT_SECONDS:g} s" if timed_out else str(error)
            errors.append(f"{url}: {reason}")
            continue
        try:
            verify_checksum(path, remote.checksums, "The download was deleted.")
            return path
        except ChecksumError as error:
            path.unlink(missing_ok=True)  # never keep a bad download
            rejected.append(f"{url}: {error}")
    if rejected:
        raise ChecksumError(f"No download of {remote.filename} gave the expected file: {'; '.join(rejected)} "
                            f"Try again later; if it keeps failing, get the official file elsewhere and {where}")
    raise DataUnavailableError(f"Could not download {remote.filename} ({'; '.join(errors)}). Without network "
                               f"access, download it elsewhere from {' or '.join(remote.urls)} and {where}")


def _read_npz_cache(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays ``keys`` of a cache file; None when it is missing, or unreadable (then it is deleted)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as arrays:  # allow_pickle stays False: a cache holds plain arrays
            return {key: arrays[key] for key in keys}  # reading each array in full checks its CRC
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        print(f"The cache file {path} is unreadable ({type(error).__name__}: {error}); deleting it and "
              "rebuilding it from the verified archives.", file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
        return None


# Omniglot (Lake, Salakhutdinov & Tenenbaum 2015)

OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"

OMNIGLOT_FILES = {  # md5: the official archives; sha256: the re-packed copies used offline in CI
    "background": RemoteFile("omniglot", "images_background.zip", (OMNIGLOT_URL + "images_background.zip",), (
        "md5:68d2efa1b9178cc56df9314c21c6e718",
        "sha256:21728bfcdc210947c722d44ae000cdbdf63d31646bc08d04bda4563b59c1655f")),
    "evaluation": RemoteFile("omniglot", "images_evaluation.zip", (OMNIGLOT_URL + "images_evaluation.zip",), (
        "md5:6b91aef0f799c5bb55b94e3f2daec811",
        "sha256:68f6c3fc25d7410405d198228f483e02d6f1ab18badc6f7ce3aa06b58c7d2faf")),
}

OMNIGLOT_VINYALS_TRAIN_CLASSES = 1200  # of 1623; the other 423 are test classes
OMNIGLOT_SPLIT_SEED = 0


def read_omniglot_archive(archive: Path, image_size: int) -> dict[str, np.ndarray]:
    """Decode one official Omniglot zip (``images_<set>/<Alphabet>/characterNN/<id>_<drawer>.png``)
    into arrays, in sorted order: images resized with antialiasing, inverted (ink 255, background 0)."""
    from PIL import Image

    images, labels, class_of = [], [], {}  # class_of: "Alphabet/characterNN" -> label, in order of appearance
    with zipfile.ZipFile(archive) as bundle:
        members = sorted(m for m in bundle.namelist() if m.lower().endswith(".png"))
        if not members:
            raise ChecksumError(f"{archive} holds no PNG images; it is not an Omniglot archive.")
        for member in members:
            parts = member.split("/")
            if len(parts) < 4:
                raise ValueError(f"{archive}: unexpected path {member!r} (want set/alphabet/character/file.png)")
            labels.append(class_of.setdefault(f"{parts[-3]}/{parts[-2]}", len(class_of)))
            with Image.open(io.BytesIO(bundle.read(member))) as picture:
                picture = picture.convert("L")
                if picture.size != (image_size, image_size):
                    picture = picture.resize((image_size, image_size), Image.LANCZOS)
                images.append(255 - np.asarray(picture, dtype=np.uint8))
    return {"images": np.stack(images), "labels": np.asarray(labels, dtype=np.int64),
            "class_names": np.asarray(list(class_of))}


def load_omniglot(image_size: int = 28) -> LabelledImages:
    """All 1623 Omniglot characters, the background set's (``num_background_classes``: 964) first.

    ``class_groups`` holds each character's alphabet. Converted once to
    ``omniglot-<size>px-v<version>.npz`` in the cache folder.
    """
    if not 8 <= image_size <= 105:
        raise ValueError(f"image_size must be in [8, 105] (the originals are 105x105), got {image_size}")
    cached = cache_dir() / f"omniglot-{image_size}px-v{CACHE_FORMAT_VERSION}.npz"
    arrays = _read_npz_cache(cached, ("images", "labels", "class_names", "num_background_classes"))
    if arrays is None:
        background, evaluation = (read_omniglot_archive(fetch(OMNIGLOT_FILES[part]), image_size)
                                  for part in ("background", "evaluation"))
        arrays = {
            "images": np.concatenate([background["images"], evaluation["images"]]),
            "labels": np.concatenate([background["labels"],
                                      evaluation["labels"] + len(background["class_names"])]),
            "class_names": np.concatenate([background["class_names"], evaluation["class_names"]]),
            "num_background_classes": np.asarray(len(background["class_names"])),
        }
        with _atomic_write(cached) as out:
            np.savez(out, **arrays)
    names = [str(n) for n in arrays["class_names"]]
    images = torch.from_numpy(arrays["images"]).float().div_(255).unsqueeze(1)
    data = LabelledImages(images, torch.from_numpy(arrays["labels"]), names, [n.split("/")[0] for n in names],
                          "Omniglot")
    data.num_background_classes = int(arrays["num_background_classes"])  # type: ignore[attr-defined]
    return data


def omniglot_splits(protocol: str = "vinyals", rotations: bool | None = None,
                    image_size: int = 28) -> dict[str, LabelledImages]:
    """Class-disjoint meta-training and meta-test sets, ``{"train": ..., "test": ...}``.

    ``"lake"``: the 30 background alphabets (964 characters) for training, the
    20 evaluation alphabets (659) for testing, so the test alphabets are new.
    ``"vinyals"``: 1200 / 423 characters from all 50 alphabets, by a fixed seeded
    permutation (Vinyals et al. did not publish their lists). ``rotations`` (by
    default with "vinyals") make every character 4 classes: 4800 / 1692.
    """
    if protocol not in ("lake", "vinyals"):
        raise ValueError(f"protocol must be 'lake' or 'vinyals', got {protocol!r}")
    data = load_omniglot(image_size)
    if protocol == "lake":
        n = data.num_background_classes  # type: ignore[attr-defined]
        train_classes, test_classes = list(range(n)), list(range(n, data.num_classes))
    else:
        order = torch.randperm(data.num_classes, generator=torch.Generator().manual_seed(OMNIGLOT_SPLIT_SEED))
        train_classes = sorted(order[:OMNIGLOT_VINYALS_TRAIN_CLASSES].tolist())
        test_classes = sorted(order[OMNIGLOT_VINYALS_TRAIN_CLASSES:].tolist())
    splits = {"train": data.subset_classes(train_classes, name=f"Omniglot {protocol} train"),
              "test": data.subset_classes(test_classes, name=f"Omniglot {protocol} test")}
    if rotations if rotations is not None else protocol == "vinyals":
        splits = {key: value.with_rotations() for key, value in splits.items()}
    return splits


# MNIST test set (LeCun, Cortes & Burges) and scikit-learn digits

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


def _mnist_file(filename: str, checksums: tuple[str, ...]) -> RemoteFile:
    return RemoteFile("mnist", filename, tuple(mirror + filename for mirror in _MNIST_MIRRORS), checksums)


MNIST_TEST_FILES = {
    # (the archive: md5 of the official .gz, sha256 of the re-compressed copy used offline in CI;
    #  md5 of the decompressed IDX file)
    "images": (_mnist_file("t10k-images-idx3-ubyte.gz", (
        "md5:9fb629c4189551a2d022fa330f9573f3",
        "sha256:167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b")),
        "md5:2646ac647ad5339dbf082846283269ea"),
    "labels": (_mnist_file("t10k-labels-idx1-ubyte.gz", (
        "md5:ec29112dd5afa0611ce80d1b7f02629c",
        "sha256:fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c")),
        "md5:27ae3e4e09519cfbb04c329615203637"),
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(raw: bytes) -> np.ndarray:
    """Parse the IDX format of MNIST: magic (0, 0, dtype, ndim), dims, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError("not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"IDX file is truncated or padded: {len(raw) - header} data bytes, expected {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _read_verified_gzip(remote: RemoteFile, checksum: str) -> bytes:
    path = fetch(remote)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise ChecksumError(f"{path} is not a valid gzip file ({error}); delete it and download again.") from error
    algorithm, _, expected = checksum.partition(":")
    if hashlib.new(algorithm, raw).hexdigest() != expected:
        raise ChecksumError(f"{path}: decompressed content does not match {checksum}; the file is corrupt.")
    return raw


def load_mnist_test() -> LabelledImages:
    """The 10,000 MNIST test digits, 28x28 (the only MNIST part this course uses)."""
    images = read_idx(_read_verified_gzip(*MNIST_TEST_FILES["images"]))
    labels = read_idx(_read_verified_gzip(*MNIST_TEST_FILES["labels"]))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST: {images.shape[0]} images but {labels.shape[0]} labels")
    return LabelledImages(torch.from_numpy(images.copy()).float().div_(255).unsqueeze(1),
                          torch.from_numpy(labels.astype(np.int64)), [str(d) for d in range(10)],
                          name="MNIST test set")


def load_digits() -> LabelledImages:
    """scikit-learn's 1,797 8x8 digits (shipped inside scikit-learn: no download)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return LabelledImages(torch.from_numpy(bunch.images).float().div_(16).unsqueeze(1),  # pixel values are 0..16
                          torch.from_numpy(bunch.target.astype(np.int64)), [str(d) for d in range(10)],
                          name="sklearn digits")


def standardise(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` shifted and scaled by one mean and one std over all values of ``reference``
    (VSML and GPICL standardise an episode by its support set, so no query is used)."""
    mean, std = reference.mean(), reference.std()
    return (x - mean) / std.clamp_min(1e-6)
