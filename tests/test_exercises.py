"""Student copies: solution blocks become placeholders, and the committed copies are up to date."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_tools import exercises

REPO = Path(__file__).resolve().parent.parent

SOURCE = '''# %% [markdown]
# # 99 · Test

# %%
def centroids(features, labels, ways):
    """Row k: mean of the features with label k."""
    # BEGIN SOLUTION: average the features of each class
    return torch.stack([features[labels == k].mean(0) for k in range(ways)])
    # END SOLUTION


# %%
print("no exercise here")
'''


def test_strip_solutions_replaces_the_block_with_a_placeholder_at_its_indentation():
    """The block's lines are gone; the hint as a comment and a NotImplementedError stand in their place."""
    cell = "def f(x):\n    # BEGIN SOLUTION: double it\n    return 2 * x\n    # END SOLUTION\n"
    student, count = exercises.strip_solutions(cell)
    assert count == 1
    assert "2 * x" not in student
    assert student.splitlines()[1:] == ["    # Exercise: double it", f"    {exercises.PLACEHOLDER}"]
    namespace = {}
    exec(student, namespace)
    with pytest.raises(NotImplementedError, match="Exercise: write this part"):
        namespace["f"](1)


@pytest.mark.parametrize("cell, problem", [
    ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without BEGIN"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside another"),
])
def test_unpaired_markers_are_an_error_with_the_line(cell, problem):
    """Markers that do not pair up are reported, with where they are."""
    with pytest.raises(exercises.MarkerError, match=problem):
        exercises.strip_solutions(cell, where="nb, cell 3")


def test_generate_and_check_student_copies(tmp_path, capsys):
    """Only notebooks with exercises get a copy; outputs are empty; --check sees stale and extra copies."""
    notebooks, student = tmp_path / "notebooks", tmp_path / "student"
    notebooks.mkdir()
    (notebooks / "99_test.py").write_text(SOURCE)
    (notebooks / "98_plain.py").write_text("# %%\nprint(1)\n")
    assert exercises.main(["--notebooks", str(notebooks), "--out", str(student)]) == 0
    assert sorted(p.name for p in student.iterdir()) == ["99_test.ipynb"]
    copy = nbformat.read(student / "99_test.ipynb", as_version=4)
    code = [c for c in copy.cells if c.cell_type == "code"]
    assert "NotImplementedError" in code[0].source and "mean(0)" not in code[0].source
    assert all(c.outputs == [] for c in code)
    assert exercises.main(["--notebooks", str(notebooks), "--out", str(student), "--check"]) == 0

    (notebooks / "99_test.py").write_text(SOURCE.replace("average the features", "average per class"))
    assert exercises.main(["--notebooks", str(notebooks), "--out", str(student), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    exercises.main(["--notebooks", str(notebooks), "--out", str(student)])
    (student / "97_gone.ipynb").write_text("{}")
    assert exercises.stale_copies(notebooks, student) == [f"{student / '97_gone.ipynb'} has no exercises in its source any more (delete it)"]


def test_the_committed_student_copies_are_up_to_date():
    """CI's check: `make student` has been run after the last change to an exercise."""
    problems = exercises.stale_copies(REPO / "notebooks", REPO / "student")
    assert not problems, "run `make student`: " + "; ".join(problems)
