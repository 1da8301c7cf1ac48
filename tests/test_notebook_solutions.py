"""``notebook_solution`` (tests/exercise_checks.py) finds every reference solution of the notebooks, defines it from
the notebook's source, and fails clearly when it cannot; a broken solution in a notebook fails its check."""

from __future__ import annotations

from pathlib import Path

import exercise_checks
import pytest
from exercise_checks import NotebookSolutionError, assert_rejected_in_plain_words, notebook_solution, solution_lines

from course_lib.teaching.checks import nb01
from course_tools import exercises

WITH_EXERCISES = [path.stem for path in sorted(exercise_checks.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
                  if "# BEGIN SOLUTION" in path.read_text(encoding="utf-8")]


@pytest.mark.parametrize("notebook", WITH_EXERCISES)
def test_every_solution_block_is_in_a_solution_function_that_can_be_defined(notebook):
    """course_tools.exercises' solution blocks and the helper's solution functions are the same: each block lies in
    one of them, each of them holds a block, and each is defined from the notebook without anything passed."""
    path = exercise_checks.NOTEBOOKS / f"{notebook}.py"
    source = path.read_text(encoding="utf-8")
    blocks = [number for number, line in enumerate(source.splitlines(), start=1) if exercises.BEGIN.match(line)]
    assert len(blocks) == exercises.strip_solutions(source, path.name)[1]
    functions = solution_lines(notebook)
    assert functions, f"{path.name} has solution blocks but no solution function"
    for block in blocks:
        holders = [name for name, (first, last) in functions.items() if first <= block <= last]
        assert len(holders) == 1, f"{path.name}, line {block}: the solution block is in {holders or 'no function'}"
    for name, (first, last) in functions.items():
        assert any(first <= block <= last for block in blocks), name
        solution = notebook_solution(notebook, name)
        assert callable(solution) and solution.__name__ == name
        assert (solution.__code__.co_filename, solution.__code__.co_firstlineno) == (str(path), first)


def test_a_missing_function_is_a_clear_error():
    with pytest.raises(NotebookSolutionError, match=r"'no_such_function' is not a top-level function.*cross_entropy"):
        notebook_solution("01_supervised_learning", "no_such_function")


def test_a_function_without_a_solution_block_is_refused():
    """04's mse is the notebook's own helper, not an exercise."""
    with pytest.raises(NotebookSolutionError, match="'mse' has no solution block"):
        notebook_solution("04_optimization_based", "mse")


def test_a_missing_notebook_is_a_clear_error():
    with pytest.raises(NotebookSolutionError, match="no notebook .*01_nothing.py"):
        notebook_solution("01_nothing", "train")


def test_the_helpers_and_literals_a_solution_reads_come_with_it_and_can_be_overridden():
    """training_step brings the notebook's own cross_entropy and sgd_step; vsml_step its TICKS; a keyword replaces
    one of them for that definition only."""
    step = notebook_solution("01_supervised_learning", "training_step")
    assert step.__globals__["cross_entropy"].__code__.co_firstlineno == solution_lines(
        "01_supervised_learning")["cross_entropy"][0]
    assert notebook_solution("07_vsml", "vsml_step").__defaults__ == (2,)
    assert notebook_solution("07_vsml", "vsml_step", TICKS=5).__defaults__ == (5,)
    assert notebook_solution("07_vsml", "vsml_step").__defaults__ == (2,)


def test_a_global_that_is_neither_imported_nor_a_function_nor_a_literal_must_be_passed(tmp_path, monkeypatch):
    (tmp_path / "99_test.py").write_text(
        "import torch\n\nSCALE = torch.ones(1).item()\n\n\n"
        "def scaled(x):\n    # BEGIN SOLUTION: multiply\n    return SCALE * torch.as_tensor(x)\n    # END SOLUTION\n")
    monkeypatch.setattr(exercise_checks, "NOTEBOOKS", tmp_path)
    with pytest.raises(NotebookSolutionError, match=r"scaled \(line 6\) reads 'SCALE'.*SCALE=\.\.\."):
        notebook_solution("99_test", "scaled")
    assert notebook_solution("99_test", "scaled", SCALE=3)(2).item() == 6


def broken_copy(tmp_path: Path, monkeypatch, notebook: str, function: str, line: str, broken: str) -> None:
    """Point the helper at a copy of the notebook in which ``line`` of ``function``'s solution reads ``broken``."""
    source = (exercise_checks.NOTEBOOKS / f"{notebook}.py").read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    first, last = solution_lines(notebook)[function]
    hits = [i for i in range(first - 1, last) if lines[i].strip() == line]
    assert len(hits) == 1, f"{function} no longer has the line {line!r}: update this test"
    lines[hits[0]] = lines[hits[0]].replace(line, broken)
    (tmp_path / f"{notebook}.py").write_text("".join(lines), encoding="utf-8")
    monkeypatch.setattr(exercise_checks, "NOTEBOOKS", tmp_path)


BROKEN = [  # (function, its line, the line broken, the check, of which solution, words of the check's message)
    ("cross_entropy", "return -log_probabilities[torch.arange(len(labels)), labels].mean()",
     "return -log_probabilities[torch.arange(len(labels)), labels].sum()", "check_cross_entropy", "cross_entropy",
     "mean"),
    # training_step is defined with the notebook's sgd_step: a sign flipped there fails training_step's check.
    ("sgd_step", "return [p - lr * g for p, g in zip(params, grads)]",
     "return [p + lr * g for p, g in zip(params, grads)]", "check_training_step", "training_step", "wrong direction"),
]


@pytest.mark.parametrize("function, line, broken, check, solution, words", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_solution_in_the_notebook_fails_the_checks(function, line, broken, check, solution, words, tmp_path,
                                                            monkeypatch):
    """The tests take the solutions from the notebook: a wrong one there is a failed check, not a passed test."""
    broken_copy(tmp_path, monkeypatch, "01_supervised_learning", function, line, broken)
    assert_rejected_in_plain_words(nb01, check, notebook_solution("01_supervised_learning", solution), words)
