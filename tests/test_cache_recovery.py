"""A damaged cache .npz is reported by name, deleted and rebuilt from the verified archives."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.data import RemoteFile

ALPHABETS = {"background": {"Alpha": 2, "Beta": 1}, "evaluation": {"Gamma": 2}}


@pytest.fixture
def cached_omniglot(tmp_path, make_omniglot_zip, monkeypatch, isolated_cache):
    """Tiny Omniglot archives in COURSE_DATA_DIR, loaded once so that the cache .npz exists."""
    data_dir = tmp_path / "data"
    files, archives = {}, {}
    for part, alphabets in ALPHABETS.items():
        info = make_omniglot_zip(data_dir / "omniglot" / f"images_{part}.zip", f"images_{part}", alphabets, 3,
                                 first_id=1 if part == "background" else 100)
        archives[part] = info["path"]
        files[part] = RemoteFile("omniglot", f"images_{part}.zip", (f"https://example.invalid/images_{part}.zip",),
                                 (info["checksum"],))
    monkeypatch.setattr(data, "OMNIGLOT_FILES", files)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    reference = data.load_omniglot()
    cache = isolated_cache / f"omniglot-28px-v{data.CACHE_FORMAT_VERSION}.npz"
    assert cache.is_file()
    return {"reference": reference, "cache": cache, "archives": archives}


def member_data_offset(path: Path, member: str) -> tuple[int, int]:
    """(offset, size) of a stored zip member's bytes inside the file."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as bundle:
        info = bundle.getinfo(member)
    assert info.compress_type == zipfile.ZIP_STORED  # np.savez stores members uncompressed
    start = info.header_offset
    name_length = int.from_bytes(raw[start + 26:start + 28], "little")  # the local header's own lengths
    extra_length = int.from_bytes(raw[start + 28:start + 30], "little")
    return start + 30 + name_length + extra_length, info.file_size


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def flip_a_byte_inside_a_member(path: Path) -> None:
    """Invert one pixel byte of images.npy: the zip structure stays valid, its CRC-32 does not match."""
    offset, size = member_data_offset(path, "images.npy")
    raw = bytearray(path.read_bytes())
    raw[offset + size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def garbage(path: Path) -> None:
    noise = random.Random(0).randbytes(4096)
    assert not noise.startswith((b"PK", b"\x93NUMPY"))  # neither a zip nor an .npy file
    path.write_bytes(noise)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def without_an_array(path: Path) -> None:
    """A readable .npz that lacks an array the loader needs (e.g. written by an older version)."""
    with np.load(path) as arrays:
        kept = {key: arrays[key] for key in arrays.files if key != "num_background_classes"}
    np.savez(path, **kept)


CORRUPTIONS = [truncate, flip_a_byte_inside_a_member, garbage, empty, without_an_array]


def assert_same_images(loaded, reference) -> None:
    assert torch.equal(loaded.images, reference.images)
    assert torch.equal(loaded.labels, reference.labels)
    assert loaded.class_names == reference.class_names
    assert loaded.num_background_classes == reference.num_background_classes


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_a_damaged_cache_is_named_deleted_and_rebuilt(cached_omniglot, corrupt, capsys):
    """Each kind of damage: a message naming the cache, then the same data, rebuilt into a readable cache."""
    cache = cached_omniglot["cache"]
    corrupt(cache)
    capsys.readouterr()
    loaded = data.load_omniglot()
    message = capsys.readouterr().err
    assert str(cache) in message and "rebuilding" in message
    assert_same_images(loaded, cached_omniglot["reference"])
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # rebuilt; no leftover .part
    with np.load(cache) as arrays:  # readable in full again, every array there
        assert len(arrays["images"]) == len(arrays["labels"]) == len(loaded)
        assert int(arrays["num_background_classes"]) == loaded.num_background_classes
    assert_same_images(data.load_omniglot(), cached_omniglot["reference"])  # and used from now on
    assert capsys.readouterr().err == ""


def test_an_intact_cache_is_used_without_the_archives(cached_omniglot, capsys):
    """The check costs nothing on the normal path: a good cache is read as before, silently."""
    for archive in cached_omniglot["archives"].values():
        archive.unlink()
    capsys.readouterr()
    assert_same_images(data.load_omniglot(), cached_omniglot["reference"])
    assert capsys.readouterr().err == ""


def test_a_damaged_cache_without_archives_says_which_archive_is_missing(cached_omniglot, capsys):
    """When the cache cannot be rebuilt, the error is about the missing archive, not a BadZipFile."""
    cache = cached_omniglot["cache"]
    truncate(cache)
    for archive in cached_omniglot["archives"].values():
        archive.unlink()
    with pytest.raises(data.DataUnavailableError, match="images_background.zip"):
        data.load_omniglot()
    assert str(cache) in capsys.readouterr().err
    assert not cache.exists()  # the damaged file is gone; the next run rebuilds it once the archives are back
