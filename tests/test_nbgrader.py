"""The assignments as an nbgrader course: ``nbgrader generate_assignment`` releases the student copies of
``make student``, and the check cells are autograded tests.

nbgrader is the optional ``classroom`` extra; CI installs it (``.ci/run``), elsewhere the tests that need
it are skipped when it is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools import exercises

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"


def test_the_nbgrader_source_keeps_the_solution_between_nbgraders_delimiters_with_the_hint_above():
    cell = "def f(x):\n    # BEGIN SOLUTION: double it\n    return 2 * x\n    # END SOLUTION\n"
    source, count = exercises.rewrite_solutions(cell, "cell", keep=True)
    assert count == 1
    assert source.splitlines() == ["def f(x):", "    # Exercise: double it", "    ### BEGIN SOLUTION",
                                   "    return 2 * x", "    ### END SOLUTION"]


def test_solution_cells_and_check_cells_carry_nbgraders_metadata(tmp_path):
    (tmp_path / "99_test.py").write_text(
        "# %%\ndef f(x):\n    # BEGIN SOLUTION: double it\n    return 2 * x\n    # END SOLUTION\n\n\n"
        "# %%\nchecks.check_double(f)\n\n# %%\nprint('plain')\n")
    notebook = exercises.exercise_notebook(tmp_path / "99_test.py", for_nbgrader=True)
    solution, check, plain = (cell.metadata.get("nbgrader") for cell in notebook.cells)
    assert solution["solution"] and not solution["grade"] and not solution["locked"]
    assert check["grade"] and check["locked"] and check["points"] == 1 and not check["solution"]
    assert plain is None
    assert solution["grade_id"] != check["grade_id"]


nbgrader = pytest.importorskip("nbgrader", reason="nbgrader is the optional `classroom` extra") \
    if os.environ.get("CI") != "true" else __import__("nbgrader")  # CI must run these


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # alembic
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def code_cells(path: Path) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nbformat.read(path, as_version=4).cells]


def test_nbgrader_releases_exactly_the_student_copies(tmp_path):
    written = exercises.write_nbgrader_sources(NOTEBOOKS, tmp_path)
    student = exercises.expected_copies(NOTEBOOKS)
    assert sorted(path.name for path in written) == sorted(student)
    for path in written:
        run_nbgrader(tmp_path, "generate_assignment", path.parent.name, "--force")
        released = tmp_path / "release" / path.parent.name / path.name
        assert code_cells(released) == [(cell.cell_type, cell.source) for cell in
                                        nbformat.reads(student[path.name], as_version=4).cells], path.name


def test_autograding_gives_the_reference_every_point_and_an_untouched_copy_none(tmp_path):
    """The smallest notebook with exercises, graded twice: its solutions, and its released copy unchanged."""
    name = "09_benchmark"
    exercises.write_nbgrader_sources(NOTEBOOKS, tmp_path)
    run_nbgrader(tmp_path, "generate_assignment", name, "--force")
    submissions = {"reference": tmp_path / "source" / name / f"{name}.ipynb",
                   "untouched": tmp_path / "release" / name / f"{name}.ipynb"}
    for student, notebook in submissions.items():
        folder = tmp_path / "submitted" / student / name
        folder.mkdir(parents=True)
        (folder / notebook.name).write_bytes(notebook.read_bytes())
        run_nbgrader(tmp_path, "autograde", name, f"--student={student}", "--create", "--force",
                     "--ExecutePreprocessor.kernel_name=python3")  # this environment's kernel

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gradebook:
        scores = {student: gradebook.find_submission(name, student) for student in submissions}
        points = {student: (submission.score, submission.max_score) for student, submission in scores.items()}
    checks = sum(1 for cell in nbformat.read(submissions["reference"], as_version=4).cells
                 if cell.metadata.get("nbgrader", {}).get("grade"))
    assert checks >= 2 and points["reference"] == (checks, checks), points
    assert points["untouched"] == (0, checks), points


def test_a_check_in_the_cell_of_its_solution_gets_a_cell_of_its_own(tmp_path):
    """nbgrader grades whole cells, so a check that follows its solution in one cell is split off."""
    (tmp_path / "99_test.py").write_text(
        "# %%\ndef f(x):\n    # BEGIN SOLUTION: double it\n    return 2 * x\n    # END SOLUTION\n\n\n"
        "checks.check_double(f)\nprint('after the check')\n")
    for for_nbgrader in (False, True):
        notebook = exercises.exercise_notebook(tmp_path / "99_test.py", for_nbgrader=for_nbgrader)
        assert [cell.source.splitlines()[0] for cell in notebook.cells] == ["def f(x):", "checks.check_double(f)"]
    assert notebook.cells[1].metadata["nbgrader"]["grade"]
