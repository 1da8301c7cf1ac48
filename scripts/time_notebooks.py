"""Time every notebook, top to bottom, in the current mode: a Markdown table for the instructor notes.

    COURSE_MODE=smoke .venv/bin/python scripts/time_notebooks.py
    COURSE_MODE=full  .venv/bin/python scripts/time_notebooks.py 00_welcome 01_supervised_learning

Runs each notebook with nbclient in a fresh kernel (nothing is written back)
and prints one row per notebook: mode, device, CPU threads, wall seconds.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

import course_lib as cl

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def main(names: list[str]) -> int:
    paths = [NOTEBOOKS / f"{n}.ipynb" for n in names] or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    device, mode = cl.get_device(), cl.get_mode()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads; "
          f"mode {mode}; device {device}\n")
    print("| notebook | mode | device | seconds |\n|---|---|---|---|")
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(notebook, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        print(f"| {path.stem} | {mode} | {device} | {time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
