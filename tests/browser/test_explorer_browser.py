"""End to end: the episode explorer served by Voila, clicked in a real headless Chromium.

The test writes a one-cell notebook that shows :class:`course_lib.teaching.explorer.EpisodeExplorer`
(Omniglot when its files are available, else scikit-learn digits), serves it
with Voila on 127.0.0.1 and a free port, opens it in Debian's ``chromium``
driven by Playwright, waits until the explorer has rendered an episode,
clicks "resample", checks that the support grid changed, and saves a
screenshot to ``test-artifacts/explorer.png``. The server (and its kernel) is
always stopped, whatever happens.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``), ``playwright`` and
``voila`` (pip). Without them the test is skipped, except under ``CI=true``,
where it fails: CI must run it. Playwright's own browser download is not used.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1"}
SERVER_START_TIMEOUT_S = 60
RENDER_TIMEOUT_MS = 180_000  # kernel start + imports + first episode, on a busy 2-core CI machine
CLICK_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.browser


# --------------------------------------------------------------------------
# Requirements: skip locally, fail under CI
# --------------------------------------------------------------------------


def missing_requirements() -> list[str]:
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    for module, package in (("playwright", "playwright"), ("voila", "voila")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"python package {package} is missing (pip install {package})")
    return missing


@pytest.fixture(scope="module")
def browser_requirements():
    missing = missing_requirements()
    if missing:
        message = "browser test needs: " + "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: this test must run in CI, not be skipped)")
        pytest.skip(message)


# --------------------------------------------------------------------------
# The app and its server
# --------------------------------------------------------------------------

APP_SOURCE = '''\
from course_lib import baselines, data
from course_lib.teaching import explorer

if {use_omniglot!r}:
    splits = data.omniglot_splits("lake")
    datasets = {{"meta-test (20 unseen alphabets)": splits["test"], "meta-train (30 alphabets)": splits["train"]}}
else:
    datasets = {{"sklearn digits": data.load_digits()}}
app = explorer.EpisodeExplorer(
    datasets,
    {{"pixel nearest neighbour": baselines.nearest_neighbour, "pixel nearest centroid": baselines.NearestCentroid()}},
    ways=5, shots=1, queries=5, seed=0,
)
app
'''


def omniglot_available() -> bool:
    """Omniglot can be loaded without the network (files in COURSE_DATA_DIR, or the converted cache)."""
    try:
        from course_lib import data

        data.load_omniglot()  # converts once into the cache, so the kernel later loads it fast
        return True
    except Exception:  # noqa: BLE001  (no files, no network: digits will do)
        return False


def write_app(folder: Path, use_omniglot: bool) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(APP_SOURCE.format(use_omniglot=use_omniglot))]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "explorer_app.ipynb"
    nbformat.write(notebook, path)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def descendants(pid: int) -> list[int]:
    """Process ids of every process below ``pid`` (the kernels Voila started)."""
    try:
        import psutil

        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001  (psutil missing or the process already gone)
        return []


def stop(process: subprocess.Popen, log) -> None:
    """SIGTERM Voila (it shuts its kernels down), then SIGKILL whatever it started that is left."""
    children = descendants(process.pid)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log.close()


@pytest.fixture
def voila_server(browser_requirements, tmp_path):
    """A Voila server for the explorer app on 127.0.0.1:<free port>; yields its URL; always stopped."""
    use_omniglot = omniglot_available()
    app = write_app(tmp_path, use_omniglot)
    log_path = tmp_path / "voila.log"
    for attempt in range(3):  # a port taken between choosing and binding: try another
        port = free_port()
        log = open(log_path, "w")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "voila", str(app), "--no-browser", f"--port={port}",
                "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
            ],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MPLBACKEND": "Agg"},
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while time.monotonic() < deadline and process.poll() is None and not port_open(port):
                time.sleep(0.2)
            if port_open(port) and process.poll() is None:
                break
        except BaseException:
            stop(process, log)
            raise
        stop(process, log)
    else:
        pytest.fail(f"Voila did not start in 3 attempts; its log:\n{log_path.read_text()[-3000:]}")
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "log": log_path, "omniglot": use_omniglot}
    finally:
        stop(process, log)


# --------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------


def test_explorer_renders_and_resamples_in_chromium(voila_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    blocked, page_errors = [], []

    def only_local(route):
        url = route.request.url
        if urlparse(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:  # e.g. the font stylesheet Voila asks a CDN for: no network in CI, and not needed
            blocked.append(url)
            route.abort()

    def server_log() -> str:
        return voila_server["log"].read_text(errors="replace")[-4000:]

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1300},
        )
        try:
            context.route("**/*", only_local)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(voila_server["url"], wait_until="domcontentloaded", timeout=RENDER_TIMEOUT_MS)

            explorer = page.locator(".episode-explorer")
            grid = explorer.locator(".explorer-episode")
            header = explorer.locator(".explorer-header")
            support = explorer.locator(".explorer-support")
            summary = explorer.locator(".explorer-summary")
            try:
                expect(header).to_contain_text("seed 0", timeout=RENDER_TIMEOUT_MS)
                page.wait_for_function(
                    "() => { const img = document.querySelector('.episode-explorer img.explorer-episode');"
                    " return img !== null && img.complete && img.naturalWidth > 100; }",
                    timeout=RENDER_TIMEOUT_MS,
                )
            except Exception as error:
                page.screenshot(path=str(ARTIFACTS / "explorer-failed.png"), full_page=True)
                raise AssertionError(
                    f"the explorer did not render: {error}\npage errors: {page_errors}\nVoila log:\n{server_log()}"
                ) from error

            expect(summary).to_contain_text("pixel nearest neighbour:")
            expect(summary).to_contain_text("queries right")
            support_before = support.inner_text()
            grid_before = grid.screenshot()
            assert support_before.startswith("support classes: 0 = ")

            button = explorer.locator("button.explorer-resample")
            expect(button).to_have_count(1)
            assert "jupyter-button" in (button.get_attribute("class") or "")  # ipywidgets 8: the <button> itself
            button.click()

            expect(header).to_contain_text("seed 1", timeout=CLICK_TIMEOUT_MS)
            expect(support).not_to_have_text(support_before, timeout=CLICK_TIMEOUT_MS)
            page.wait_for_function(
                "() => { const img = document.querySelector('.episode-explorer img.explorer-episode');"
                " return img.complete && img.naturalWidth > 100; }",
                timeout=CLICK_TIMEOUT_MS,
            )
            page.wait_for_timeout(300)  # let the new image paint before comparing pixels
            grid_after = grid.screenshot()
            assert grid_after != grid_before, "resample changed the text but not the support grid image"
            expect(summary).to_contain_text("queries right")

            explorer.screenshot(path=str(ARTIFACTS / "explorer.png"))
            page.screenshot(path=str(ARTIFACTS / "explorer-page.png"), full_page=True)
            assert not page_errors, f"JavaScript errors on the page: {page_errors}"
            assert all(urlparse(u).hostname not in LOCAL_HOSTS for u in blocked)
        finally:
            context.close()
