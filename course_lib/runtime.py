"""Where and how the course runs: mode (smoke/full), device, seeding, folders.

Introduced in notebook 00 ("How to run this course"). Every notebook starts
with :func:`notebook_setup`, which calls the three pieces below and prints
what it chose, so that a reader always knows which numbers they are looking at.

Environment variables (all optional):

``COURSE_MODE``
    ``smoke`` (tiny budgets: seconds on a laptop CPU, used by tests and CI) or
    ``full`` (the budgets the text talks about; meant for a GPU where it says
    so). Default: ``full``.
``COURSE_DEVICE``
    ``cuda``, ``cuda:1``, ``mps`` or ``cpu``; overrides the automatic choice
    (cuda, then mps, then cpu).
``COURSE_DATA_DIR``
    A folder holding the official data archives (``omniglot/*.zip``,
    ``mnist/*.gz``); when set, nothing is downloaded.
``COURSE_CACHE_DIR``
    Where downloads and converted arrays are kept. Default: ``data/cache`` in
    a checkout of the course, else ``~/.cache/meta-learning-course``.
``COURSE_PLAIN_PROGRESS``
    ``1``: progress bars are plain text lines (what ``make notebooks`` sets, so
    that committed outputs show final lines, not frozen widgets); ``0``:
    widgets in a notebook. Default: plain when ``CI`` is set, else automatic.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from tqdm.std import tqdm as std_tqdm

MODE_VARIABLE = "COURSE_MODE"
DEVICE_VARIABLE = "COURSE_DEVICE"
DATA_DIR_VARIABLE = "COURSE_DATA_DIR"
CACHE_DIR_VARIABLE = "COURSE_CACHE_DIR"
PLAIN_PROGRESS_VARIABLE = "COURSE_PLAIN_PROGRESS"
PLAIN_PROGRESS_INTERVAL = 30.0  # seconds between two lines of a plain progress bar

MODES = ("smoke", "full")
DEFAULT_MODE = "full"

T = TypeVar("T")


def get_mode() -> str:
    """The budget mode, ``"smoke"`` or ``"full"``, read from ``COURSE_MODE``."""
    mode = os.environ.get(MODE_VARIABLE, "").strip().lower() or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(
            f"{MODE_VARIABLE}={os.environ[MODE_VARIABLE]!r} is not a mode; "
            f"use one of {MODES} (e.g. `export {MODE_VARIABLE}=smoke`)."
        )
    return mode


def is_smoke() -> bool:
    return get_mode() == "smoke"


def by_mode(*, smoke: T, full: T) -> T:
    """Pick a budget by mode: ``steps = by_mode(smoke=20, full=5000)``.

    Both modes run the same code; only numbers chosen through this function
    differ, so a passing smoke test exercises the full-mode code path.
    """
    return smoke if is_smoke() else full


def _device_available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        index = device.index or 0
        return torch.cuda.is_available() and index < torch.cuda.device_count()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return False


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """Choose the device: ``preferred``, else ``COURSE_DEVICE``, else cuda > mps > cpu.

    A device that was asked for but is not available raises an error rather
    than silently falling back, so that a "GPU run" is never a CPU run.
    """
    requested = preferred if preferred is not None else os.environ.get(DEVICE_VARIABLE)
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as error:
            raise ValueError(
                f"Unknown device {str(requested)!r} (from {DEVICE_VARIABLE} or the "
                "argument): use cpu, cuda, cuda:N or mps."
            ) from error
        if not _device_available(device):
            raise RuntimeError(
                f"Device {device} was requested but is not available on this machine. "
                f"Unset {DEVICE_VARIABLE} (or pass another device) to choose automatically."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python's ``random``, numpy and torch (CPU and all GPUs) in one call.

    Returns a ``torch.Generator`` seeded the same way, for code that wants its
    own stream of random numbers (the episode samplers take one).
    Same seed, same numbers on the CPU; GPU kernels may still differ in the
    last bits because some of them are not deterministic.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def is_checkout(folder: Path) -> bool:
    """Whether ``folder`` is the root of a checkout of the course."""
    return all((folder / name).exists() for name in ("pyproject.toml", "notebooks", "course_lib"))


def repo_root() -> Path | None:
    """The course checkout this package lives in, or None for a plain install."""
    candidate = Path(__file__).resolve().parent.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "notebooks").is_dir():
        return candidate
    return None


def enclosing_checkout(path: Path) -> Path | None:
    """The checkout of the course that holds ``path`` (a notebook's folder), or None."""
    path = Path(path).resolve()
    return next((folder for folder in (path, *path.parents) if is_checkout(folder)), None)


class WrongCheckoutError(RuntimeError):
    """The notebook belongs to one checkout of the course and ``course_lib`` comes from another."""


def check_checkout(notebook_folder: Path | None = None, package_file: str | Path | None = None) -> None:
    """Fail when the notebook and the imported ``course_lib`` come from different checkouts.

    The Jupyter kernel "Python (meta-learning course)" runs the ``.venv`` of the
    checkout that registered it last (``make install``). A notebook of another
    checkout would silently run that checkout's library: its code, its data/.
    ``notebook_folder`` defaults to the working directory (Jupyter starts a
    kernel in the notebook's folder), ``package_file`` to a file of the course_lib in use.
    Outside any checkout (a script, a plain install) there is nothing to check.
    """
    notebook_checkout = enclosing_checkout(Path.cwd() if notebook_folder is None else Path(notebook_folder))
    if notebook_checkout is None:
        return
    package = Path(__file__ if package_file is None else package_file).resolve()  # this file is in course_lib/
    if notebook_checkout in package.parents:
        return
    raise WrongCheckoutError(
        f"This notebook is in the checkout {notebook_checkout}, but the kernel imports course_lib from "
        f"{package.parent} (another checkout or install), so it would run that code and data. "
        f"Fix: run `make install` in {notebook_checkout} (it registers the kernel "
        f"\"Python (meta-learning course)\" for this checkout), then restart the kernel."
    )


def cache_dir() -> Path:
    """Folder for downloads and converted arrays (created on first use)."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        path = Path(configured).expanduser()
    elif (root := repo_root()) is not None:
        path = root / "data" / "cache"
    else:
        path = Path.home() / ".cache" / "meta-learning-course"
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_data_dir() -> Path | None:
    """The folder named by ``COURSE_DATA_DIR``, if set (it must exist)."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{DATA_DIR_VARIABLE}={configured!r} is not a folder. Point it at a folder "
            "with omniglot/images_background.zip etc., or unset it to download."
        )
    return path


def describe_runtime(device: torch.device | None = None) -> str:
    device = device or get_device()
    mode = get_mode()
    meaning = (
        "tiny budgets, numbers are NOT meaningful"
        if mode == "smoke"
        else "the budgets the text describes"
    )
    return (
        f"mode: {mode} ({meaning}; set {MODE_VARIABLE}=smoke|full) | "
        f"device: {device} | torch {torch.__version__}"
    )


def notebook_setup(seed: int = 0) -> tuple[str, torch.device]:
    """The one setup call at the top of every notebook.

    Checks that ``course_lib`` comes from the notebook's own checkout
    (:func:`check_checkout`), seeds everything, chooses the device, prints mode
    and device, and returns ``(mode, device)``.
    """
    check_checkout()
    seed_everything(seed)
    device = get_device()
    print(describe_runtime(device))
    return get_mode(), device


def plain_progress() -> bool:
    """Whether progress bars print plain lines: ``COURSE_PLAIN_PROGRESS`` if set, else whether ``CI`` is set."""
    for variable in (PLAIN_PROGRESS_VARIABLE, "CI"):
        value = os.environ.get(variable, "").strip().lower()
        if value:
            return value not in ("0", "false", "no")
    return False


def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar: a widget in a live notebook, plain lines where output is kept.

    Takes tqdm's arguments. When :func:`plain_progress` (``make notebooks``, CI)
    the bar is :class:`PlainProgress`, so an executed notebook keeps readable
    lines instead of a widget frozen at its first state ("0%|          | 0/300").
    """
    if plain_progress():
        return PlainProgress(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


class _Lines:
    """A stream for tqdm that turns its redraws (``\\r`` + bar) into whole lines."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        for line in text.replace("\r", "\n").split("\n"):
            if line.strip():
                self.stream.write(line.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


class PlainProgress(std_tqdm):
    """tqdm for kept output: no line in the first ``mininterval`` seconds, then one line every
    ``mininterval`` (default :data:`PLAIN_PROGRESS_INTERVAL`) and, unless ``leave=False``, the
    totals when it closes; each a whole line, never a "0%" start."""

    def __init__(self, iterable=None, *args, file=None, **kwargs):
        kwargs.setdefault("mininterval", PLAIN_PROGRESS_INTERVAL)
        kwargs.setdefault("delay", max(kwargs["mininterval"], 1e-6))  # > 0: no line for the start
        kwargs.setdefault("ascii", True)
        super().__init__(iterable, *args, file=_Lines(file if file is not None else sys.stderr), **kwargs)

    def close(self):
        if not self.disable and self.leave is not False:
            shown = self.last_print_t >= self.start_t + self.delay
            if shown and self.last_print_n == self.n:
                self.leave = False  # its last line is out already: print it once
            else:
                self.delay = 0  # a loop shorter than the delay still prints its last line
        super().close()


def machine_description(device: torch.device) -> dict:
    """What a results file records about where it was made: device, GPU, versions, CPU, threads."""
    info = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "hostname_hash": hash(platform.node()) % 10**6,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu"] = names[0] if names else None
    except OSError:
        pass
    return info
