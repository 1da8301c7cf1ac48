"""course_lib.data: archives, checksums, downloads, caches, IDX files and the loaders."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.data import LabelledImages, RemoteFile

BACKGROUND_ALPHABETS = {"Alpha": 2, "Beta": 3}  # 5 characters
EVALUATION_ALPHABETS = {"Gamma": 2, "Delta": 1}  # 3 characters ("Delta" sorts first)
DRAWINGS = 4


def files_in(folder: Path) -> list[Path]:
    """Every file (not folder) below ``folder``, hidden ones included."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


class FakeResponse:
    """Stands in for what urllib.request.urlopen returns."""

    def __init__(self, payload: bytes):
        self._body = io.BytesIO(payload)
        self.headers = {"Content-Length": str(len(payload))}

    def read(self, size: int = -1) -> bytes:
        return self._body.read(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def no_network(monkeypatch) -> list[str]:
    """Make every urlopen fail like an offline machine; returns the list of URLs tried."""
    tried: list[str] = []

    def refuse(url, *args, **kwargs):
        tried.append(url if isinstance(url, str) else url.full_url)
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return tried


def serve(monkeypatch, payloads: dict[str, bytes]) -> list[str]:
    """Make urlopen answer each URL in ``payloads`` with those bytes; returns the URLs fetched."""
    fetched: list[str] = []

    def answer(url, *args, **kwargs):
        fetched.append(url)
        if url not in payloads:
            raise urllib.error.URLError(f"unknown test URL {url}")
        return FakeResponse(payloads[url])

    monkeypatch.setattr(urllib.request, "urlopen", answer)
    return fetched


@pytest.fixture
def tiny_omniglot(tmp_path, make_omniglot_zip, monkeypatch, isolated_cache):
    """Tiny background/evaluation zips in a COURSE_DATA_DIR, with OMNIGLOT_FILES pointing at them."""
    data_dir = tmp_path / "data"
    background = make_omniglot_zip(
        data_dir / "omniglot" / "images_background.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS
    )
    evaluation = make_omniglot_zip(
        data_dir / "omniglot" / "images_evaluation.zip", "images_evaluation", EVALUATION_ALPHABETS, DRAWINGS,
        first_id=100,
    )
    files = {
        "background": RemoteFile(
            "omniglot", "images_background.zip", ("https://example.invalid/images_background.zip",),
            (background["checksum"],),
        ),
        "evaluation": RemoteFile(
            "omniglot", "images_evaluation.zip", ("https://example.invalid/images_evaluation.zip",),
            (evaluation["checksum"],),
        ),
    }
    monkeypatch.setattr(data, "OMNIGLOT_FILES", files)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    return {"data_dir": data_dir, "cache": isolated_cache, "background": background,
            "evaluation": evaluation, "files": files}


# --------------------------------------------------------------------------
# read_omniglot_archive
# --------------------------------------------------------------------------


def test_read_omniglot_archive_full_size_matches_drawn_pictures(tmp_path, make_omniglot_zip):
    """At 105 px the decoded arrays are exactly the drawn pictures, inverted, in sorted member order."""
    info = make_omniglot_zip(tmp_path / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    arrays = data.read_omniglot_archive(info["path"], image_size=105)
    assert arrays["images"].shape == (5 * DRAWINGS, 105, 105)
    assert arrays["images"].dtype == np.uint8
    assert list(arrays["class_names"]) == info["class_names"]
    np.testing.assert_array_equal(arrays["labels"], info["labels"])
    np.testing.assert_array_equal(arrays["images"], info["images"])


def test_read_omniglot_archive_class_names_labels_and_order(tmp_path, make_omniglot_zip):
    """Class names are 'Alphabet/characterNN' in sorted order; labels count drawings per class."""
    info = make_omniglot_zip(tmp_path / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    arrays = data.read_omniglot_archive(info["path"], image_size=28)
    expected_names = [
        "Alpha/character01", "Alpha/character02",
        "Beta/character01", "Beta/character02", "Beta/character03",
    ]
    assert [str(n) for n in arrays["class_names"]] == expected_names
    assert arrays["labels"].tolist() == [c for c in range(5) for _ in range(DRAWINGS)]
    assert np.bincount(arrays["labels"]).tolist() == [DRAWINGS] * 5


def test_read_omniglot_archive_resized_ink_is_bright(tmp_path, make_omniglot_zip):
    """After resizing to 28 px the background (corners) is 0 and every image has bright ink."""
    info = make_omniglot_zip(tmp_path / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    images = data.read_omniglot_archive(info["path"], image_size=28)["images"]
    assert images.shape == (5 * DRAWINGS, 28, 28)
    for corner in (images[:, 0, 0], images[:, 0, -1], images[:, -1, 0], images[:, -1, -1]):
        assert (corner == 0).all()
    # the strokes live in the middle of the picture
    assert (images[:, 4:24, 4:24].reshape(len(images), -1).max(axis=1) > 128).all()
    # most of each picture is background
    assert ((images == 0).mean(axis=(1, 2)) > 0.5).all()


def test_read_omniglot_archive_is_deterministic(tmp_path, make_omniglot_zip):
    """Two reads of the same archive give identical arrays."""
    info = make_omniglot_zip(tmp_path / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    first = data.read_omniglot_archive(info["path"], image_size=20)
    second = data.read_omniglot_archive(info["path"], image_size=20)
    for key in ("images", "labels", "class_names"):
        np.testing.assert_array_equal(first[key], second[key])


def test_read_omniglot_archive_without_pngs_is_rejected(tmp_path):
    """A zip without any PNG is not mistaken for an (empty) Omniglot archive."""
    import zipfile

    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("images_background/readme.txt", b"nothing here")
    with pytest.raises(data.ChecksumError):
        data.read_omniglot_archive(path, image_size=28)


# --------------------------------------------------------------------------
# load_omniglot from a local folder, and its cache
# --------------------------------------------------------------------------


def test_load_omniglot_from_local_folder(tiny_omniglot):
    """Background classes come first, evaluation classes after, alphabets as class groups."""
    loaded = data.load_omniglot()
    background, evaluation = tiny_omniglot["background"], tiny_omniglot["evaluation"]
    n_background = len(background["class_names"])
    assert loaded.num_classes == 5 + 3
    assert loaded.num_background_classes == n_background == 5
    assert len(loaded) == 8 * DRAWINGS
    assert loaded.images.shape == (8 * DRAWINGS, 1, 28, 28)
    assert loaded.images.dtype == torch.float32
    assert loaded.class_names == background["class_names"] + evaluation["class_names"]
    assert loaded.class_groups == ["Alpha", "Alpha", "Beta", "Beta", "Beta", "Delta", "Gamma", "Gamma"]
    expected_labels = np.concatenate([background["labels"], evaluation["labels"] + n_background])
    assert loaded.labels.tolist() == expected_labels.tolist()
    assert float(loaded.images.min()) == 0.0 and float(loaded.images.max()) <= 1.0


def test_load_omniglot_full_size_pixels_are_the_originals(tiny_omniglot):
    """At 105 px the loaded images are the drawn pictures, inverted and scaled to [0, 1]."""
    loaded = data.load_omniglot(image_size=105)
    expected = np.concatenate([tiny_omniglot["background"]["images"], tiny_omniglot["evaluation"]["images"]])
    torch.testing.assert_close(loaded.images[:, 0], torch.from_numpy(expected).float() / 255, rtol=0, atol=0)


def test_load_omniglot_writes_cache_and_reads_it_back(tiny_omniglot):
    """The first call writes omniglot-28px-v1.npz in COURSE_CACHE_DIR; the next one needs no archive."""
    cache = tiny_omniglot["cache"]
    first = data.load_omniglot()
    cached = cache / f"omniglot-28px-v{data.CACHE_FORMAT_VERSION}.npz"
    assert cached.is_file()
    assert [p.name for p in files_in(cache)] == [cached.name]  # no leftover .part file
    for part in ("background", "evaluation"):
        tiny_omniglot[part]["path"].unlink()
    second = data.load_omniglot()
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert first.class_names == second.class_names
    assert first.class_groups == second.class_groups
    assert second.num_background_classes == first.num_background_classes


def test_load_omniglot_rejects_bad_image_size(isolated_cache):
    """image_size outside [8, 105] is a ValueError before anything is read."""
    for size in (7, 106):
        with pytest.raises(ValueError, match="image_size"):
            data.load_omniglot(image_size=size)


# --------------------------------------------------------------------------
# Checksums, downloads and what is left behind on failure
# --------------------------------------------------------------------------


def test_local_archive_with_wrong_checksum_is_rejected_without_cache(tmp_path, make_omniglot_zip, monkeypatch,
                                                                    isolated_cache):
    """Archives that match none of the official checksums raise ChecksumError and write no cache."""
    data_dir = tmp_path / "data"
    for part, alphabets in (("background", BACKGROUND_ALPHABETS), ("evaluation", EVALUATION_ALPHABETS)):
        make_omniglot_zip(data_dir / "omniglot" / f"images_{part}.zip", f"images_{part}", alphabets, DRAWINGS)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    with pytest.raises(data.ChecksumError) as info:
        data.load_omniglot()
    assert "images_background.zip" in str(info.value)
    assert files_in(isolated_cache) == []
    assert (data_dir / "omniglot" / "images_background.zip").is_file()  # the user's file is left alone


def test_truncated_local_archive_raises_checksum_error_without_cache(tiny_omniglot):
    """A truncated evaluation archive (background fine) raises ChecksumError; no .npz or .part is left."""
    path = tiny_omniglot["evaluation"]["path"]
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.ChecksumError, match="images_evaluation.zip"):
        data.load_omniglot()
    assert files_in(tiny_omniglot["cache"]) == []


def test_verify_checksum_accepts_any_listed_digest(tmp_path):
    """verify_checksum passes on any matching 'algorithm:digest' entry (case-insensitive hex)."""
    path = tmp_path / "file.bin"
    path.write_bytes(b"omniglot")
    md5 = hashlib.md5(b"omniglot").hexdigest()
    sha = hashlib.sha256(b"omniglot").hexdigest()
    data.verify_checksum(path, ["md5:" + "0" * 32, "sha256:" + sha.upper()])
    data.verify_checksum(path, ["md5:" + md5])
    with pytest.raises(data.ChecksumError) as info:
        data.verify_checksum(path, ["md5:" + "0" * 32, "sha256:" + "1" * 64])
    assert md5 in str(info.value) and sha in str(info.value)  # says what it found


def test_no_network_and_no_local_folder_explains_how_to_get_the_data(isolated_cache, monkeypatch):
    """Offline without COURSE_DATA_DIR: DataUnavailableError naming COURSE_DATA_DIR and the official URLs."""
    tried = no_network(monkeypatch)
    with pytest.raises(data.DataUnavailableError) as info:
        data.load_omniglot()
    message = str(info.value)
    assert "COURSE_DATA_DIR" in message
    remote = data.OMNIGLOT_FILES["background"]
    for url in remote.urls:
        assert url in message
    assert list(remote.urls) == tried  # it did try the official URLs
    assert "images_background.zip" in message
    assert files_in(isolated_cache) == []  # no partial download, no cache


def test_mnist_no_network_tries_every_mirror(isolated_cache, monkeypatch):
    """Offline, load_mnist_test tries each MNIST mirror and names them all in the error."""
    tried = no_network(monkeypatch)
    with pytest.raises(data.DataUnavailableError) as info:
        data.load_mnist_test()
    urls = data.MNIST_TEST_FILES["images"][0].urls
    assert len(urls) >= 2
    assert tried == list(urls)
    for url in urls:
        assert url in str(info.value)
    assert files_in(isolated_cache) == []


def test_download_with_corrupt_bytes_raises_and_removes_file(isolated_cache, monkeypatch):
    """A download whose bytes fail the checksum raises ChecksumError and leaves no file behind."""
    remote = data.OMNIGLOT_FILES["background"]
    serve(monkeypatch, {url: b"<html>rate limited</html>" for url in remote.urls})
    with pytest.raises(data.ChecksumError):
        data.fetch(remote)
    assert files_in(isolated_cache) == []


def test_download_success_is_verified_kept_and_reused(tmp_path, make_omniglot_zip, isolated_cache, monkeypatch):
    """A good download lands in the cache's downloads folder and is not downloaded again."""
    info = make_omniglot_zip(tmp_path / "src" / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    remote = RemoteFile("omniglot", "images_background.zip", ("https://example.invalid/bg.zip",),
                        (info["checksum"],))
    fetched = serve(monkeypatch, {"https://example.invalid/bg.zip": info["path"].read_bytes()})
    path = data.fetch(remote)
    assert path == isolated_cache / "downloads" / "omniglot" / "images_background.zip"
    assert path.read_bytes() == info["path"].read_bytes()
    assert data.fetch(remote) == path
    assert fetched == ["https://example.invalid/bg.zip"]  # once only
    assert files_in(isolated_cache) == [path]


def test_corrupt_earlier_download_is_replaced(tmp_path, make_omniglot_zip, isolated_cache, monkeypatch):
    """A corrupt file in the downloads folder is deleted and downloaded again."""
    info = make_omniglot_zip(tmp_path / "src" / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    remote = RemoteFile("omniglot", "images_background.zip", ("https://example.invalid/bg.zip",),
                        (info["checksum"],))
    stale = isolated_cache / "downloads" / "omniglot" / "images_background.zip"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(info["path"].read_bytes()[:100])
    fetched = serve(monkeypatch, {"https://example.invalid/bg.zip": info["path"].read_bytes()})
    assert data.fetch(remote) == stale
    assert stale.read_bytes() == info["path"].read_bytes()
    assert fetched == ["https://example.invalid/bg.zip"]


def test_load_omniglot_by_download(tmp_path, make_omniglot_zip, isolated_cache, monkeypatch):
    """Without COURSE_DATA_DIR, load_omniglot downloads both archives and converts them."""
    payloads, files = {}, {}
    for part, alphabets in (("background", BACKGROUND_ALPHABETS), ("evaluation", EVALUATION_ALPHABETS)):
        info = make_omniglot_zip(tmp_path / "src" / f"{part}.zip", f"images_{part}", alphabets, DRAWINGS)
        url = f"https://example.invalid/images_{part}.zip"
        payloads[url] = info["path"].read_bytes()
        files[part] = RemoteFile("omniglot", f"images_{part}.zip", (url,), (info["checksum"],))
    monkeypatch.setattr(data, "OMNIGLOT_FILES", files)
    serve(monkeypatch, payloads)
    loaded = data.load_omniglot()
    assert loaded.num_classes == 8 and loaded.num_background_classes == 5
    names = {p.relative_to(isolated_cache).as_posix() for p in files_in(isolated_cache)}
    assert names == {
        "downloads/omniglot/images_background.zip",
        "downloads/omniglot/images_evaluation.zip",
        f"omniglot-28px-v{data.CACHE_FORMAT_VERSION}.npz",
    }


def test_course_data_dir_without_the_file_names_the_missing_path(tmp_path, isolated_cache, monkeypatch):
    """COURSE_DATA_DIR set but the archive missing: DataUnavailableError naming the path; no download."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    tried = no_network(monkeypatch)
    with pytest.raises(data.DataUnavailableError) as info:
        data.load_omniglot()
    assert str(data_dir / "omniglot" / "images_background.zip") in str(info.value)
    assert "COURSE_DATA_DIR" in str(info.value)
    assert tried == []


# --------------------------------------------------------------------------
# A server that never answers, and a download that is another file
# --------------------------------------------------------------------------


@pytest.fixture
def silent_server(monkeypatch):
    """A server on 127.0.0.1 that accepts connections and never answers; yields its base URL."""
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "*")  # talk to the loopback server directly, never through a proxy
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    held, stop = [], threading.Event()

    def accept_and_stay_silent():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)  # kept open, never written to

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_silent_server_is_announced_then_given_up_on(silent_server, isolated_cache, monkeypatch, capsys):
    """Before waiting, stderr names the URL and the timeout; after it, the error names the URL."""
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_SECONDS", 1.0)
    url = silent_server + "images_background.zip"
    remote = RemoteFile("omniglot", "images_background.zip", (url,), ("sha256:" + "0" * 64,))
    start = time.monotonic()
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch(remote)
    assert time.monotonic() - start < 10  # the patched timeout is used, not a minute
    announced = capsys.readouterr().err
    assert url in announced and "1 s" in announced
    assert f"{url}: no answer within 1 s" in str(info.value)
    assert files_in(isolated_cache) == []


def test_verify_checksum_tells_another_file_from_a_damaged_one(tmp_path, make_omniglot_zip, write_idx_gz):
    """A mismatch on an intact .zip/.gz is 'not the expected file'; on an unreadable one, 'corrupt or truncated'."""
    expected_zip = make_omniglot_zip(tmp_path / "expected.zip", "images_background", {"Alpha": 1}, 2)
    other_zip = make_omniglot_zip(tmp_path / "images_background.zip", "images_background", {"Other": 2}, 2)
    expected_gz = write_idx_gz(tmp_path / "expected.gz", np.zeros((2, 3), dtype=np.uint8))
    other_gz = write_idx_gz(tmp_path / "labels.gz", np.ones((4,), dtype=np.uint8))
    for other, expected in ((other_zip, expected_zip), (other_gz, expected_gz)):
        path = other["path"]
        with pytest.raises(data.ChecksumError) as info:
            data.verify_checksum(path, [expected["checksum"]])
        assert str(path) in str(info.value)
        assert "not the expected file" in str(info.value) and "corrupt" not in str(info.value)

        path.write_bytes(path.read_bytes()[:-20])  # truncated: unreadable
        with pytest.raises(data.ChecksumError) as info:
            data.verify_checksum(path, [expected["checksum"]])
        assert "corrupt or truncated" in str(info.value) and "not the expected file" not in str(info.value)


def test_a_download_of_another_valid_zip_is_reported_as_the_wrong_file(tmp_path, make_omniglot_zip, isolated_cache,
                                                                       monkeypatch):
    """The server sends an intact zip with other content: the error says so (not 'corrupt'), nothing is kept."""
    expected = make_omniglot_zip(tmp_path / "src" / "bg.zip", "images_background", BACKGROUND_ALPHABETS, DRAWINGS)
    other = make_omniglot_zip(tmp_path / "src" / "other.zip", "images_background", {"Other": 1}, DRAWINGS)
    url = "https://example.invalid/bg.zip"
    remote = RemoteFile("omniglot", "images_background.zip", (url,), (expected["checksum"],))
    serve(monkeypatch, {url: other["path"].read_bytes()})
    with pytest.raises(data.ChecksumError) as info:
        data.fetch(remote)
    message = str(info.value)
    assert url in message and "not the expected file" in message and "corrupt" not in message
    assert files_in(isolated_cache) == []

    serve(monkeypatch, {url: expected["path"].read_bytes()[:1000]})  # cut off: corrupt, not another file
    with pytest.raises(data.ChecksumError) as info:
        data.fetch(remote)
    assert "corrupt or truncated" in str(info.value) and "not the expected file" not in str(info.value)


# --------------------------------------------------------------------------
# IDX files and MNIST
# --------------------------------------------------------------------------


def test_read_idx_round_trip_images_and_labels(idx_encode):
    """read_idx decodes hand-encoded 3-D uint8 images and 1-D labels exactly."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 5, 4), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    decoded_images = data.read_idx(idx_encode(images))
    decoded_labels = data.read_idx(idx_encode(labels))
    assert decoded_images.shape == (3, 5, 4) and decoded_images.dtype == np.uint8
    np.testing.assert_array_equal(decoded_images, images)
    np.testing.assert_array_equal(decoded_labels, labels)


def test_read_idx_big_endian_int32():
    """The int32 type code (0x0C) is read big-endian, as the IDX format specifies."""
    values = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    raw = bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + values.astype(">i4").tobytes()
    np.testing.assert_array_equal(data.read_idx(raw), values)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\x00", b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", b"\x00\x00\x07\x01\x00\x00\x00\x01\x05"],
    ids=["empty", "short", "nonzero-first-byte", "unknown-type"],
)
def test_read_idx_bad_magic(raw):
    """Bytes that do not start with a valid IDX magic number raise ValueError."""
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(raw)


def test_read_idx_truncated_or_padded(idx_encode):
    """An IDX file with missing or extra data bytes raises ValueError."""
    raw = idx_encode(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(raw[:-1])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(raw[:10])  # cut inside the header
    with pytest.raises(ValueError, match="padded"):
        data.read_idx(raw + b"\x00")


@pytest.fixture
def tiny_mnist(tmp_path, write_idx_gz, monkeypatch, isolated_cache):
    """Tiny gzip IDX files in COURSE_DATA_DIR/mnist with MNIST_TEST_FILES pointing at them."""
    data_dir = tmp_path / "data"
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    written = {
        "images": write_idx_gz(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", images),
        "labels": write_idx_gz(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", labels),
    }

    def install(content_checksums=None):
        content_checksums = content_checksums or {}
        files = {
            key: (
                RemoteFile("mnist", info["path"].name, (f"https://example.invalid/{info['path'].name}",),
                           (info["checksum"],)),
                content_checksums.get(key, info["content_checksum"]),
            )
            for key, info in written.items()
        }
        monkeypatch.setattr(data, "MNIST_TEST_FILES", files)

    install()
    monkeypatch.setenv("COURSE_DATA_DIR", str(data_dir))
    return {"images": images, "labels": labels, "written": written, "install": install}


def test_load_mnist_test_from_tiny_files(tiny_mnist):
    """load_mnist_test gives [n,1,H,W] floats equal to the bytes / 255 and the labels as int64."""
    loaded = data.load_mnist_test()
    assert loaded.images.shape == (5, 1, 6, 7)
    assert loaded.labels.dtype == torch.int64
    assert loaded.labels.tolist() == [3, 1, 4, 1, 5]
    assert loaded.class_names == [str(d) for d in range(10)]
    assert float(loaded.images.min()) == 0.0 and float(loaded.images.max()) == 1.0
    expected = torch.from_numpy(tiny_mnist["images"]).float().unsqueeze(1) / 255
    torch.testing.assert_close(loaded.images, expected, rtol=0, atol=1e-7)


def test_load_mnist_test_content_checksum_mismatch(tiny_mnist):
    """A .gz that passes its archive checksum but decompresses to other content raises ChecksumError."""
    tiny_mnist["install"]({"labels": "md5:" + hashlib.md5(b"something else").hexdigest()})
    with pytest.raises(data.ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        data.load_mnist_test()


def test_load_mnist_test_not_gzip(tiny_mnist):
    """A file that is not gzip (but matches the archive checksum it is given) raises ChecksumError."""
    path = tiny_mnist["written"]["images"]["path"]
    path.write_bytes(b"definitely not gzip")
    tiny_mnist["written"]["images"]["checksum"] = "sha256:" + hashlib.sha256(b"definitely not gzip").hexdigest()
    tiny_mnist["install"]()
    with pytest.raises(data.ChecksumError, match="gzip"):
        data.load_mnist_test()


def test_load_mnist_test_count_mismatch(tiny_mnist, write_idx_gz):
    """Images and labels of different lengths are rejected."""
    tiny_mnist["written"]["labels"] = write_idx_gz(
        tiny_mnist["written"]["labels"]["path"], np.array([1, 2, 3], dtype=np.uint8)
    )
    tiny_mnist["install"]()
    with pytest.raises(ValueError, match="5 images but 3 labels"):
        data.load_mnist_test()


# --------------------------------------------------------------------------
# LabelledImages
# --------------------------------------------------------------------------


def indexed_dataset(labels: list[int], names: list[str] | None = None, groups=None) -> LabelledImages:
    """Images filled with their own index, so any selection can be traced back."""
    n = len(labels)
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 3, 3).clone()
    names = names or [f"c{i}" for i in range(max(labels) + 1)]
    return LabelledImages(images, torch.tensor(labels), names, groups)


def test_subset_classes_relabels_in_given_order():
    """subset_classes([2, 0]) keeps those classes' examples (in order) and relabels 2->0, 0->1."""
    dataset = indexed_dataset([0, 1, 2, 0, 2, 3, 1, 2], names=["a", "b", "c", "d"], groups=["G", "G", "H", "H"])
    subset = dataset.subset_classes([2, 0], name="sub")
    kept = subset.images[:, 0, 0, 0].long().tolist()
    assert kept == [0, 2, 3, 4, 7]  # original order, classes 0 and 2 only
    assert subset.labels.tolist() == [1, 0, 1, 0, 0]
    assert subset.class_names == ["c", "a"]
    assert subset.class_groups == ["H", "G"]
    assert subset.name == "sub"
    assert subset.examples_per_class().tolist() == [3, 2]


def test_subset_classes_rejects_duplicates():
    """A class listed twice is a ValueError."""
    dataset = indexed_dataset([0, 1, 2])
    with pytest.raises(ValueError, match="twice"):
        dataset.subset_classes([1, 1])


def test_indices_of_class_and_counts():
    """indices_of_class lists exactly the examples of a class; examples_per_class counts them."""
    labels = [2, 0, 2, 1, 0, 2]
    dataset = indexed_dataset(labels)
    for c in range(3):
        assert sorted(dataset.indices_of_class(c).tolist()) == [i for i, y in enumerate(labels) if y == c]
    assert dataset.examples_per_class().tolist() == [2, 1, 3]
    assert dataset.num_classes == 3 and len(dataset) == 6 and dataset.image_shape == (1, 3, 3)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: LabelledImages(torch.zeros(3, 4, 4), torch.zeros(3, dtype=torch.long), ["a"]), "images must be"),
        (lambda: LabelledImages(torch.zeros(3, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"]), "labels must be"),
        (lambda: LabelledImages(torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long), ["a"], ["g", "h"]),
         "class_groups"),
        (lambda: LabelledImages(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), ["a"]), "larger than"),
    ],
    ids=["3d-images", "label-count", "group-count", "label-too-large"],
)
def test_labelled_images_validates_its_fields(build, message):
    """Inconsistent images, labels, class names or groups are rejected at construction."""
    with pytest.raises(ValueError, match=message):
        build()


def test_with_rotations_on_synthetic_images():
    """Class 4c+r is class c rotated r*90 degrees; image 4i+r is image i rotated."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 5, 5, generator=generator)
    dataset = LabelledImages(images, torch.tensor([1, 0, 1]), ["x", "y"], ["X", "Y"])
    rotated = dataset.with_rotations()
    assert len(rotated) == 12 and rotated.num_classes == 8
    assert rotated.class_names == ["x rot0", "x rot90", "x rot180", "x rot270",
                                   "y rot0", "y rot90", "y rot180", "y rot270"]
    assert rotated.class_groups == ["X"] * 4 + ["Y"] * 4
    for i in range(3):
        for r in range(4):
            assert int(rotated.labels[4 * i + r]) == 4 * int(dataset.labels[i]) + r
            assert torch.equal(rotated.images[4 * i + r], torch.rot90(images[i], r, dims=(-2, -1)))


# --------------------------------------------------------------------------
# Real data (skipped only when the official files are absent)
# --------------------------------------------------------------------------


@pytest.mark.real_data("omniglot")
def test_real_omniglot_sizes(real_omniglot):
    """Omniglot: 1623 characters x 20 drawings, 964 background classes, 50 alphabets (30 + 20)."""
    assert real_omniglot.num_classes == 1623
    assert len(real_omniglot) == 32460
    assert real_omniglot.image_shape == (1, 28, 28)
    assert real_omniglot.examples_per_class().tolist() == [20] * 1623
    n = real_omniglot.num_background_classes
    assert n == 964
    assert len(set(real_omniglot.class_groups)) == 50
    assert len(set(real_omniglot.class_groups[:n])) == 30
    assert len(set(real_omniglot.class_groups[n:])) == 20
    assert real_omniglot.class_names[0].count("/") == 1
    # ink bright on a dark background
    assert float(real_omniglot.images.min()) == 0.0 and float(real_omniglot.images.max()) == 1.0
    assert float(real_omniglot.images.mean()) < 0.25


@pytest.mark.real_data("omniglot")
def test_real_omniglot_lake_split_is_alphabet_disjoint(real_omniglot):
    """Lake split: 964 / 659 characters, disjoint in characters and in alphabets."""
    splits = data.omniglot_splits("lake")
    train, test = splits["train"], splits["test"]
    assert (train.num_classes, test.num_classes) == (964, 659)
    assert set(train.class_names).isdisjoint(test.class_names)
    assert set(train.class_groups).isdisjoint(test.class_groups)
    assert (len(set(train.class_groups)), len(set(test.class_groups))) == (30, 20)
    assert set(train.class_names) | set(test.class_names) == set(real_omniglot.class_names)


@pytest.mark.real_data("omniglot")
def test_real_omniglot_vinyals_split(real_omniglot):
    """Vinyals split: 1200/423 characters (4800/1692 with rotations), disjoint in base characters."""
    plain = data.omniglot_splits("vinyals", rotations=False)
    rotated = data.omniglot_splits("vinyals")
    assert (plain["train"].num_classes, plain["test"].num_classes) == (1200, 423)
    assert (rotated["train"].num_classes, rotated["test"].num_classes) == (4800, 1692)
    assert set(plain["train"].class_names).isdisjoint(plain["test"].class_names)

    def base(names):
        return {name.rsplit(" rot", 1)[0] for name in names}

    assert base(rotated["train"].class_names) == set(plain["train"].class_names)
    assert base(rotated["test"].class_names) == set(plain["test"].class_names)
    assert base(rotated["train"].class_names).isdisjoint(base(rotated["test"].class_names))
    # the split is a fixed permutation: the same every call
    again = data.omniglot_splits("vinyals", rotations=False)
    assert again["test"].class_names == plain["test"].class_names


@pytest.mark.real_data("omniglot")
def test_real_omniglot_rotations_are_rot90(real_omniglot):
    """with_rotations on real characters: image 4i+r, class 4c+r, is torch.rot90(image i, r)."""
    few = real_omniglot.subset_classes([0, 500, 1622])
    rotated = few.with_rotations()
    assert rotated.num_classes == 12 and len(rotated) == 4 * len(few)
    for i in (0, 21, len(few) - 1):
        for r in range(4):
            assert int(rotated.labels[4 * i + r]) == 4 * int(few.labels[i]) + r
            assert torch.equal(rotated.images[4 * i + r], torch.rot90(few.images[i], r, dims=(-2, -1)))
    # a character is not rotation-invariant: rotations really differ
    assert not torch.equal(rotated.images[0], rotated.images[1])


@pytest.mark.real_data("mnist")
def test_real_mnist_test_set():
    """MNIST test set: 10,000 28x28 digits, 10 classes with the published class counts."""
    mnist = data.load_mnist_test()
    assert len(mnist) == 10000
    assert mnist.image_shape == (1, 28, 28)
    assert mnist.num_classes == 10
    assert mnist.examples_per_class().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert float(mnist.images.min()) == 0.0 and float(mnist.images.max()) == 1.0


def test_load_digits():
    """scikit-learn digits: 1797 8x8 images scaled so that the largest value is 1.0."""
    digits = data.load_digits()
    assert len(digits) == 1797
    assert digits.image_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert float(digits.images.min()) == 0.0 and float(digits.images.max()) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_subset_and_rotations_of_a_gpu_dataset():
    """subset_classes and with_rotations work on a LabelledImages moved to the GPU."""
    dataset = indexed_dataset([0, 1, 2, 0, 2, 1]).to("cuda")
    subset = dataset.subset_classes([2, 0])
    assert subset.labels.tolist() == [1, 0, 1, 0]
    rotated = subset.with_rotations()
    assert rotated.labels.tolist()[:4] == [4, 5, 6, 7]
    assert rotated.images.device.type == "cuda"
