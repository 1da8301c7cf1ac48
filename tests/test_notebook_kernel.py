"""Every notebook asks for the course's kernel, not a plain "python3" that cannot import course_lib.

`make install` registers the kernel "Python (meta-learning course)" (name
``meta-learning-course``), which runs the checkout's .venv. A notebook whose
metadata names ``python3`` opens, in VS Code or a system-wide JupyterLab, on a
plain Python and fails at ``import course_lib``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KERNEL = {"name": "meta-learning-course", "display_name": "Python (meta-learning course)", "language": "python"}
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((REPO / "student").glob("*.ipynb"))
SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


def test_the_makefile_registers_the_kernel_the_notebooks_ask_for():
    """The name and display name in the notebooks are the ones `make install` registers."""
    makefile = (REPO / "Makefile").read_text()
    assert f"KERNEL := {KERNEL['name']}" in makefile
    assert f"KERNEL_NAME := {KERNEL['display_name']}" in makefile
    assert 'ipykernel install --user --name $(KERNEL) --display-name "$(KERNEL_NAME)"' in makefile


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_asks_for_the_course_kernel(path):
    """notebooks/*.ipynb and the student copies in student/*.ipynb."""
    kernelspec = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("kernelspec")
    assert kernelspec == KERNEL, f"{path.name}: set the kernelspec in the .py header, then `make sync` and `make student`"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_notebook_source_header_asks_for_the_course_kernel(path):
    """The jupytext header of notebooks/NN_slug.py, where the .ipynb's metadata comes from."""
    header = path.read_text(encoding="utf-8").split("# ---\n", 2)[1]
    kernelspec = dict(re.findall(r"^#     (\w+): (.+)$", header.split("kernelspec:", 1)[1], re.MULTILINE))
    assert kernelspec == KERNEL


def test_every_notebook_starts_with_notebook_setup():
    """notebook_setup checks that course_lib comes from the notebook's own checkout: every notebook calls it."""
    import jupytext

    for path in SOURCES:
        code = [cell.source for cell in jupytext.read(path).cells if cell.cell_type == "code"]
        assert code and "notebook_setup(" in code[0], f"{path.name}: the first code cell must call notebook_setup"
