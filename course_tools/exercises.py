"""Student copies of the notebooks, and the same assignments as nbgrader sources.

    python -m course_tools.exercises [--check]              # student/NN_slug.ipynb (make student)
    python -m course_tools.exercises --nbgrader COURSE_DIR  # COURSE_DIR/source/NN_slug/NN_slug.ipynb

In a notebook's jupytext source (``notebooks/NN_slug.py``) a solution is a
block of lines inside a code cell::

    # BEGIN SOLUTION: average the embeddings of each class
    centroids = ...
    # END SOLUTION

In a student copy each block becomes, at its indentation, the hint as a
comment and a placeholder::

    # Exercise: average the embeddings of each class
    raise NotImplementedError("Exercise: write this part (the comment above says what)")

and outputs are removed; ``--check`` only compares, and fails on a missing,
stale or left-over copy (CI runs it through the tests).

``--nbgrader`` writes the nbgrader course folder of a class: each notebook
with exercises becomes an assignment of the same name whose cells carry
nbgrader's metadata (a cell with a solution block is a solution cell, the
block between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; a cell that
calls ``checks.check_...`` is a locked, autograded test cell worth one
point), plus ``nbgrader_config.py`` with the same placeholder. So
``nbgrader generate_assignment NN_slug`` releases exactly the code of the
student copy (a test runs it).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?::\s*(?P<hint>.*))?$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
PLACEHOLDER = 'raise NotImplementedError("Exercise: write this part (the comment above says what)")'
CHECK_CALL = re.compile(r"^checks\.check_\w+\(", re.M)  # a check cell: its result is the grade


class MarkerError(ValueError):
    """Solution markers that do not pair up."""


def rewrite_solutions(source: str, where: str, keep: bool) -> tuple[str, int]:
    """Each solution block of ``source`` with its hint as a comment above it; the block's lines become
    ``PLACEHOLDER`` (``keep=False``, the student copy) or stay between nbgrader's delimiters (``keep=True``).
    Returns the new source and the number of blocks."""
    out, count, open_block = [], 0, None
    for number, line in enumerate(source.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_block is not None:
                raise MarkerError(f"{where}, line {number}: BEGIN SOLUTION inside another solution block")
            indent, hint = begin["indent"], (begin["hint"] or "write this part").strip()
            out += [f"{indent}# Exercise: {hint}", f"{indent}{'### BEGIN SOLUTION' if keep else PLACEHOLDER}"]
            open_block, count = number, count + 1
        elif end:
            if open_block is None:
                raise MarkerError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            if keep:
                out.append(line.replace("# END SOLUTION", "### END SOLUTION"))
            open_block = None
        elif open_block is None or keep:
            out.append(line)
    if open_block is not None:
        raise MarkerError(f"{where}, line {open_block}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out), count


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution block in ``source`` by its hint and the placeholder; the new source and the count."""
    return rewrite_solutions(source, where, keep=False)


def exercise_notebook(source: Path, for_nbgrader: bool = False):
    """The student copy (or the nbgrader source) of one jupytext notebook, or None if it has no exercises."""
    import jupytext

    notebook = jupytext.read(source)
    notebook.cells = [part for cell in notebook.cells for part in split_off_checks(cell)]
    total = 0
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # stable ids: the same source gives the same file
        if cell.cell_type != "code":
            continue
        cell.source, count = rewrite_solutions(cell.source, f"{source.name}, cell {index}", keep=for_nbgrader)
        total += count
        cell.outputs, cell.execution_count = [], None
        if for_nbgrader and (count or CHECK_CALL.search(cell.source)):
            cell.metadata["nbgrader"] = {
                "grade_id": f"{source.stem}-cell-{index}", "schema_version": 3, "task": False,
                "solution": bool(count), "grade": not count, "locked": not count,
                **({} if count else {"points": 1})}
    if total == 0:
        return None
    notebook.metadata.pop("jupytext", None)  # plain notebooks, not pairs
    return notebook


def split_off_checks(cell) -> list:
    """``[cell]``, or two cells when a code cell holds a solution and then a check: nbgrader grades whole
    cells, so the check (and what follows it) gets a cell of its own, in the student copy too."""
    import copy

    check = CHECK_CALL.search(cell.source) if cell.cell_type == "code" else None
    if check is None or "# BEGIN SOLUTION" not in cell.source[:check.start()]:
        return [cell]
    solution, rest = copy.deepcopy(cell), copy.deepcopy(cell)
    solution.source, rest.source = cell.source[:check.start()].rstrip() + "\n", cell.source[check.start():]
    return [solution, rest]


def student_notebook(source: Path):
    """The student version of one jupytext source, or None if it has no exercises."""
    return exercise_notebook(source)


def expected_copies(notebooks: Path) -> dict[str, str]:
    """``{file name: text}`` of every student copy the sources call for."""
    import nbformat

    copies = {source.with_suffix(".ipynb").name: student_notebook(source)
              for source in sorted(notebooks.glob("[0-9][0-9]_*.py"))}
    return {name: nbformat.writes(notebook) + "\n" for name, notebook in copies.items()
            if notebook is not None}


def stale_copies(notebooks: Path, student: Path) -> list[str]:
    """What differs between the committed student copies and fresh ones."""
    expected = expected_copies(notebooks)
    problems = []
    for name, text in expected.items():
        path = student / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(f"{path} is {'out of date' if path.is_file() else 'missing'}")
    return problems + [f"{path} has no exercises in its source any more (delete it)"
                       for path in sorted(student.glob("*.ipynb")) if path.name not in expected]


NBGRADER_CONFIG = f'''# Written by `python -m course_tools.exercises --nbgrader`: the placeholder of `make student`.
c = get_config()  # noqa: F821
c.ClearSolutions.code_stub = {{"python": {PLACEHOLDER!r}}}
c.ClearSolutions.begin_solution_delimeter = "### BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "### END SOLUTION"
'''


def write_nbgrader_sources(notebooks: Path, course: Path) -> list[Path]:
    """``course/source/NN_slug/NN_slug.ipynb`` for every notebook with exercises, and ``nbgrader_config.py``
    (kept if the course folder already has one: the teacher's own settings win)."""
    import nbformat

    sources = {path.stem: exercise_notebook(path, for_nbgrader=True)
               for path in sorted(notebooks.glob("[0-9][0-9]_*.py"))}  # all parsed before anything is written
    written = []
    for stem, notebook in sources.items():
        if notebook is None:
            continue
        target = course / "source" / stem / f"{stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
        written.append(target)
    config = course / "nbgrader_config.py"
    if not config.exists():
        config.write_text(NBGRADER_CONFIG)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.exercises",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("student"))
    parser.add_argument("--check", action="store_true", help="only report missing or stale copies")
    parser.add_argument("--nbgrader", type=Path, metavar="COURSE_DIR",
                        help="write the nbgrader sources of every assignment into COURSE_DIR/source/")
    args = parser.parse_args(argv)
    if args.nbgrader:
        written = write_nbgrader_sources(args.notebooks, args.nbgrader)
        print(f"wrote {len(written)} nbgrader assignments to {args.nbgrader}/source/; release one with "
              f"`cd {args.nbgrader} && nbgrader generate_assignment {written[0].parent.name if written else 'NAME'}`")
        return 0
    if args.check:
        problems = stale_copies(args.notebooks, args.out)
        if problems:
            print("student copies are not up to date (run `make student`):", *problems, sep="\n  ",
                  file=sys.stderr)
            return 1
        print("student copies are up to date")
        return 0
    copies = expected_copies(args.notebooks)  # all parsed before anything is written
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.ipynb"):
        if stale.name not in copies:
            stale.unlink()
    for name, text in copies.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(copies)} student notebooks to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
