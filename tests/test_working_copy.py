"""`make course` opens working copies in work/, so running the course never overwrites the reference outputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from course_tools import working_copy

REPO = Path(__file__).resolve().parent.parent


def fake_checkout(root: Path) -> Path:
    """A folder laid out like the course: notebooks/ with two pairs and a scratch file, a .gitignore."""
    (root / "notebooks").mkdir(parents=True)
    for name in ("00_welcome", "01_next"):
        notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": [f"# {name}"]}],
                    "metadata": {"jupytext": {"formats": "ipynb,py:percent"}, "kernelspec": {"name": "k"}},
                    "nbformat": 4, "nbformat_minor": 5}
        (root / "notebooks" / f"{name}.ipynb").write_text(json.dumps(notebook))
        (root / "notebooks" / f"{name}.py").write_text("# %%\n")
    (root / "notebooks" / "scratch.ipynb").write_text("{}")
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    return root


def test_copies_the_course_notebooks_and_never_overwrites_a_students_file(tmp_path):
    """First run: every NN_slug.ipynb is copied (not .py, not scratch files). Later runs: a student's
    file stays exactly as it is, and only notebooks missing from work/ are copied again."""
    root = fake_checkout(tmp_path / "course")
    notebooks, work = root / "notebooks", root / "work"
    made = working_copy.copy_notebooks(notebooks, work)
    assert [p.name for p in made] == ["00_welcome.ipynb", "01_next.ipynb"]
    copy = json.loads((work / "00_welcome.ipynb").read_text())
    assert copy["cells"] == json.loads((notebooks / "00_welcome.ipynb").read_text())["cells"]
    assert "jupytext" not in copy["metadata"] and copy["metadata"]["kernelspec"] == {"name": "k"}
    assert 'formats = "ipynb"' in (work / "jupytext.toml").read_text(), "no .py pairs in work/"

    (work / "00_welcome.ipynb").write_text("the student's own work")
    (work / "01_next.ipynb").unlink()  # "restore a notebook": delete the copy, run make course
    assert working_copy.copy_notebooks(notebooks, work) == [work / "01_next.ipynb"]
    assert (work / "00_welcome.ipynb").read_text() == "the student's own work"
    assert working_copy.copy_notebooks(notebooks, work) == []
    assert (work / "00_welcome.ipynb").read_text() == "the student's own work"


def test_the_command_line_reports_what_it_copied_and_kept(tmp_path, capsys):
    """What `make course` prints; an empty notebooks folder is an error, not an empty work/."""
    root = fake_checkout(tmp_path / "course")
    args = ["--notebooks", str(root / "notebooks"), "--work", str(root / "work")]
    assert working_copy.main(args) == 0
    assert "2 notebooks copied" in capsys.readouterr().out
    assert working_copy.main(args) == 0
    out = capsys.readouterr().out
    assert "0 notebooks copied" in out and "2 of your own kept" in out
    with pytest.raises(FileNotFoundError, match="NN_slug"):
        working_copy.copy_notebooks(tmp_path / "empty", root / "work")


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None, reason="needs make and git")
def test_make_course_copies_into_a_git_ignored_work_folder_and_opens_the_copy(tmp_path):
    """The Makefile's `course` recipe, run (copy step only) in a checkout-like folder with the repository's
    .gitignore: the copies land in work/, which git ignores, and JupyterLab is started on work/00_welcome.ipynb."""
    root = fake_checkout(tmp_path / "course")
    recipe = (REPO / "Makefile").read_text().split("\ncourse:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:] if line.startswith("\t")]
    copy_step = next(line for line in lines if "working_copy" in line)
    assert lines[-1].endswith("jupyter lab work/00_welcome.ipynb"), lines
    python = str(REPO / ".venv" / "bin" / "python")
    command = re.sub(r"^\$\(PY\)", python, copy_step)
    assert command != copy_step, "the copy step runs the .venv's python"
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / "work").mkdir()
    (root / "work" / "00_welcome.ipynb").write_text("mine")
    subprocess.run(command, shell=True, cwd=root, check=True, capture_output=True)
    assert (root / "work" / "00_welcome.ipynb").read_text() == "mine"
    assert (root / "work" / "01_next.ipynb").is_file()
    ignored = subprocess.run(["git", "check-ignore", "work/00_welcome.ipynb", "work/01_next.ipynb"],
                             cwd=root, capture_output=True, text=True)
    assert ignored.stdout.split() == ["work/00_welcome.ipynb", "work/01_next.ipynb"], "work/ must be git-ignored"
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    assert "work/" not in status
