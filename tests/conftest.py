"""Shared set-up for the course_lib tests.

At import time (before any test or notebook kernel starts) this module sets:

* ``COURSE_DATA_DIR`` to ``<repo>/../shared/data`` when it is unset and that
  folder exists (the read-only reference data next to a CI checkout);
* ``COURSE_MODE=smoke`` when unset, and ``MPLBACKEND=Agg``;
* one torch thread in this process (unless OMP_NUM_THREADS is set).

Fixtures: ``isolated_cache`` (a private cache folder, no COURSE_DATA_DIR),
``make_omniglot_zip`` (a tiny archive in the official Omniglot layout),
``idx_encode`` / ``write_idx_gz`` (tiny MNIST IDX files, raw or gzip-compressed)
and ``real_omniglot`` (the real data set, loaded once per session).

Tests marked ``@pytest.mark.real_data("omniglot")`` / ``("mnist")`` need the
official files and are skipped only when those files are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

_shared_data = (REPO_ROOT.parent / "shared" / "data").resolve()
if not os.environ.get("COURSE_DATA_DIR") and _shared_data.is_dir():
    os.environ["COURSE_DATA_DIR"] = str(_shared_data)
os.environ.setdefault("COURSE_MODE", "smoke")
os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402  (after MPLBACKEND is set)

matplotlib.use("Agg")

import torch  # noqa: E402

from course_lib import data as course_data  # noqa: E402

# The tests use tiny tensors: one intra-op thread is as fast, and it avoids OpenMP
# threads spin-waiting when the CPU is shared (a 1 s training test took 20 s on a
# busy 2-core machine). Only this pytest process; notebook kernels are unaffected.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)


# --------------------------------------------------------------------------
# Real data: present or skipped
# --------------------------------------------------------------------------


def _real_files(kind: str) -> list:
    if kind == "omniglot":
        return list(course_data.OMNIGLOT_FILES.values())
    if kind == "mnist":
        return [remote for remote, _ in course_data.MNIST_TEST_FILES.values()]
    raise ValueError(f"unknown real data set {kind!r}")


def real_data_available(kind: str) -> bool:
    """True when every official file of ``kind`` is in COURSE_DATA_DIR (or already downloaded)."""
    folders = []
    if os.environ.get("COURSE_DATA_DIR"):
        folders.append(Path(os.environ["COURSE_DATA_DIR"]).expanduser())
    cache = os.environ.get("COURSE_CACHE_DIR")
    folders.append((Path(cache).expanduser() if cache else REPO_ROOT / "data" / "cache") / "downloads")
    remotes = _real_files(kind)
    return any(all((folder / r.folder / r.filename).is_file() for r in remotes) for folder in folders)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "real_data(kind): needs the official data files of kind ('omniglot' or 'mnist'); "
        "skipped when they are absent (set COURSE_DATA_DIR)",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in item.iter_markers(name="real_data"):
            kind = marker.args[0]
            if not real_data_available(kind):
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"real {kind} files absent: set COURSE_DATA_DIR to a folder holding "
                        f"{', '.join(f'{r.folder}/{r.filename}' for r in _real_files(kind))}"
                    )
                )


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """A private, empty COURSE_CACHE_DIR; COURSE_DATA_DIR unset."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    return cache


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def draw_character(character: int, drawer: int, size: int = 105):
    """A 1-bit 105x105 picture: white background, black strokes; shape set by ``character``."""
    from PIL import Image, ImageDraw

    picture = Image.new("1", (size, size), 1)
    pen = ImageDraw.Draw(picture)
    d = 2 * drawer  # each drawer shifts the strokes a little
    shape = character % 5
    if shape == 0:
        pen.rectangle([30 + d, 30, 75 + d, 75], outline=0, width=6)
    elif shape == 1:
        pen.ellipse([25, 25 + d, 80, 80 + d], outline=0, width=6)
    elif shape == 2:
        pen.line([20, 20 + d, 85, 85 - d], fill=0, width=7)
    elif shape == 3:
        pen.line([52 + d, 15, 52 + d, 90], fill=0, width=7)
        pen.line([15, 52, 90, 52], fill=0, width=7)
    else:
        pen.polygon([(52, 20 + d), (85, 85), (20, 85)], outline=0, width=6)
    return picture


@pytest.fixture
def make_omniglot_zip():
    """Factory: ``make(path, set_name, {"Alphabet": n_characters, ...}, drawings)`` -> info.

    Writes ``<set_name>/<Alphabet>/characterNN/<id>_<drawer>.png`` members (1-bit PNGs,
    in a shuffled order, plus directory entries like the official archives) and
    returns ``{"path", "checksum" ("sha256:..."), "class_names" (sorted), "images"
    (uint8 [n,105,105], ink 255, in sorted member order), "labels"}``.
    """

    def make(path: Path, set_name: str = "images_background", alphabets=None, drawings: int = 4,
             first_id: int = 1) -> dict:
        alphabets = alphabets or {"Alpha": 2, "Beta": 3}
        members = []  # (member name, picture)
        char_id = first_id
        shape = 0
        for alphabet, count in alphabets.items():
            for c in range(1, count + 1):
                for drawer in range(1, drawings + 1):
                    name = f"{set_name}/{alphabet}/character{c:02d}/{char_id:04d}_{drawer:02d}.png"
                    members.append((name, draw_character(shape, drawer)))
                char_id += 1
                shape += 1
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = list(members)
        random.Random(1234).shuffle(written)
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr(f"{set_name}/", b"")
            for alphabet in alphabets:
                bundle.writestr(f"{set_name}/{alphabet}/", b"")
            for name, picture in written:
                buffer = io.BytesIO()
                picture.save(buffer, format="PNG")
                bundle.writestr(name, buffer.getvalue())
        ordered = sorted(members, key=lambda m: m[0])
        class_names = []
        labels = []
        for name, _ in ordered:
            parts = name.split("/")
            character = f"{parts[1]}/{parts[2]}"
            if character not in class_names:
                class_names.append(character)
            labels.append(class_names.index(character))
        images = np.stack([255 - np.asarray(p.convert("L"), dtype=np.uint8) for _, p in ordered])
        return {
            "path": path,
            "checksum": sha256_of(path),
            "class_names": class_names,
            "images": images,
            "labels": np.array(labels),
        }

    return make


def idx_bytes(array: np.ndarray) -> bytes:
    """The MNIST IDX encoding of a uint8 array, written by hand (the test's oracle)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


@pytest.fixture
def idx_encode():
    """The hand-written IDX encoder, as a fixture (``idx_encode(uint8 array) -> bytes``)."""
    return idx_bytes


@pytest.fixture
def write_idx_gz():
    """Factory: ``write(path, uint8 array)`` -> {"path", "checksum" (sha256 of the .gz),
    "content_checksum" (md5 of the raw IDX bytes)} for a gzip-compressed IDX file."""

    def write(path: Path, array: np.ndarray) -> dict:
        raw = idx_bytes(array)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(raw))
        return {"path": path, "checksum": sha256_of(path), "content_checksum": "md5:" + hashlib.md5(raw).hexdigest()}

    return write


@pytest.fixture(scope="session")
def real_omniglot():
    """All of Omniglot, loaded once per session (from the cache after the first run)."""
    return course_data.load_omniglot()
