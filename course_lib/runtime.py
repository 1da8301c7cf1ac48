"""Where and how the course runs: mode (smoke/full), device, seeding, folders, progress bars.

Introduced in notebook 00; every notebook starts with :func:`notebook_setup`, which prints what it
chose. Environment variables (all optional): ``COURSE_MODE`` ``smoke`` (tiny budgets: tests, CI) or
``full`` (the default: the text's budgets); ``COURSE_DEVICE`` (``cuda``, ``cuda:1``, ``mps``, ``cpu``;
default cuda > mps > cpu); ``COURSE_DATA_DIR``, a folder with the official archives (``omniglot/*.zip``,
``mnist/*.gz``: nothing is downloaded); ``COURSE_CACHE_DIR`` (default ``data/cache`` in a checkout,
else ``~/.cache/meta-learning-course``); ``COURSE_PLAIN_PROGRESS`` ``1``: progress bars print plain
lines, so committed outputs show final lines, not frozen widgets (default: when ``CI`` is set).
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

MODE_VARIABLE, DEVICE_VARIABLE = "COURSE_MODE", "COURSE_DEVICE"
DATA_DIR_VARIABLE, CACHE_DIR_VARIABLE = "COURSE_DATA_DIR", "COURSE_CACHE_DIR"
PLAIN_PROGRESS_VARIABLE = "COURSE_PLAIN_PROGRESS"
PLAIN_PROGRESS_INTERVAL = 30.0  # seconds between two lines of a plain progress bar
MODES, DEFAULT_MODE = ("smoke", "full"), "full"

T = TypeVar("T")


def get_mode() -> str:
    """The budget mode, ``"smoke"`` or ``"full"``, read from ``COURSE_MODE``."""
    mode = os.environ.get(MODE_VARIABLE, "").strip().lower() or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={os.environ[MODE_VARIABLE]!r} is not a mode; "
                         f"use one of {MODES} (e.g. `export {MODE_VARIABLE}=smoke`).")
    return mode


def is_smoke() -> bool:
    return get_mode() == "smoke"


def by_mode(*, smoke: T, full: T) -> T:
    """``steps = by_mode(smoke=20, full=5000)``: only such numbers differ between modes, so a passing
    smoke test exercises the full-mode code path."""
    return smoke if is_smoke() else full


def _device_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    return device.type == "cpu" or (device.type == "mps" and torch.backends.mps.is_available())


def get_device(preferred: str | torch.device | None = None) -> torch.device:
    """``preferred``, else ``COURSE_DEVICE``, else cuda > mps > cpu; a device asked for but not
    available is an error, never a silent fallback (a "GPU run" is never a CPU run)."""
    requested = preferred if preferred is not None else os.environ.get(DEVICE_VARIABLE)
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else
                            "mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise ValueError(f"Unknown device {str(requested)!r} (from {DEVICE_VARIABLE} or the argument): "
                         "use cpu, cuda, cuda:N or mps.") from error
    if not _device_available(device):
        raise RuntimeError(f"Device {device} was requested but is not available on this machine. "
                           f"Unset {DEVICE_VARIABLE} (or pass another device) to choose automatically.")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed python's ``random``, numpy and torch (CPU and all GPUs); return a generator seeded alike.
    Same seed, same numbers on the CPU; some GPU kernels are not deterministic."""
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
    return candidate if is_checkout(candidate) else None


class WrongCheckoutError(RuntimeError):
    """The notebook belongs to one checkout of the course and ``course_lib`` comes from another."""


def check_checkout(notebook_folder: Path | None = None, package_file: str | Path | None = None) -> None:
    """Fail when the notebook (in ``notebook_folder``, default the working directory, where Jupyter
    starts a kernel) and the imported ``course_lib`` come from different checkouts: the course's kernel
    runs the ``.venv`` of the checkout that registered it last, which would silently run its code and data."""
    folder = Path(Path.cwd() if notebook_folder is None else notebook_folder).resolve()
    notebook_checkout = next((f for f in (folder, *folder.parents) if is_checkout(f)), None)
    package = Path(__file__ if package_file is None else package_file).resolve()  # a file in course_lib/
    if notebook_checkout is None or notebook_checkout in package.parents:
        return
    raise WrongCheckoutError(
        f"This notebook is in the checkout {notebook_checkout}, but the kernel imports course_lib from "
        f"{package.parent} (another checkout or install), so it would run that code and data. "
        f"Fix: run `make install` in {notebook_checkout} (it registers the kernel "
        f"\"Python (meta-learning course)\" for this checkout), then restart the kernel."
    )


def cache_dir() -> Path:
    """Folder for downloads and converted arrays (created on first use)."""
    if configured := os.environ.get(CACHE_DIR_VARIABLE):
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
        raise FileNotFoundError(f"{DATA_DIR_VARIABLE}={configured!r} is not a folder. Point it at a folder "
                                "with omniglot/images_background.zip etc., or unset it to download.")
    return path


def notebook_setup(seed: int = 0) -> tuple[str, torch.device]:
    """Every notebook's first call: check the checkout, seed, choose the device, print mode and device."""
    check_checkout()
    seed_everything(seed)
    device, mode = get_device(), get_mode()
    meaning = "tiny budgets, numbers are NOT meaningful" if mode == "smoke" else "the budgets the text describes"
    print(f"mode: {mode} ({meaning}; set {MODE_VARIABLE}=smoke|full) | device: {device} | "
          f"torch {torch.__version__}")
    return mode, device


def plain_progress() -> bool:
    """Whether progress bars print plain lines: ``COURSE_PLAIN_PROGRESS`` if set, else whether ``CI`` is set."""
    for variable in (PLAIN_PROGRESS_VARIABLE, "CI"):
        value = os.environ.get(variable, "").strip().lower()
        if value:
            return value not in ("0", "false", "no")
    return False


def progress_bar(iterable=None, **kwargs):
    """A tqdm bar (tqdm's arguments): a widget in a live notebook, :class:`PlainProgress` where
    :func:`plain_progress`, so an executed notebook keeps lines, not a widget frozen at "0%"."""
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
    """tqdm for kept output: nothing in the first ``mininterval`` seconds (default
    :data:`PLAIN_PROGRESS_INTERVAL`), then a whole line every ``mininterval`` and, unless
    ``leave=False``, the totals when it closes."""

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
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "hostname_hash": hash(platform.node()) % 10**6}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu"] = names[0] if names else None
    except OSError:
        pass
    return info
