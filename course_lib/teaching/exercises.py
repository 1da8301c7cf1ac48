"""Student copies of the notebooks: solutions replaced by placeholders.

    python -m course_lib.teaching.exercises [--check]

In a notebook's jupytext source (``notebooks/NN_slug.py``) a solution is a
block of lines inside a code cell::

    # BEGIN SOLUTION: average the embeddings of each class
    centroids = ...
    # END SOLUTION

Each block becomes ``raise NotImplementedError("Exercise: average the
embeddings of each class")`` at its indentation, outputs are removed, and the
copy is written to ``student/NN_slug.ipynb``. ``--check`` only compares, and
fails on a missing, stale or left-over copy (CI runs it through the tests).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?::\s*(?P<hint>.*))?$")
END = re.compile(r"^\s*# END SOLUTION\s*$")


class MarkerError(ValueError):
    """Solution markers that do not pair up."""


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution block in ``source``; return the new source and the count."""
    out, count, open_block = [], 0, None
    for number, line in enumerate(source.splitlines(), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_block is not None:
                raise MarkerError(f"{where}, line {number}: BEGIN SOLUTION inside another solution block")
            hint = (begin["hint"] or "write this part").strip()
            out.append(f'{begin["indent"]}raise NotImplementedError({("Exercise: " + hint)!r})')
            open_block, count = number, count + 1
        elif end:
            if open_block is None:
                raise MarkerError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            open_block = None
        elif open_block is None:
            out.append(line)
    if open_block is not None:
        raise MarkerError(f"{where}, line {open_block}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out), count


def student_notebook(source: Path):
    """The student version of one jupytext source, or None if it has no exercises."""
    import jupytext

    notebook = jupytext.read(source)
    total = 0
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # stable ids: the same source gives the same file
        if cell.cell_type != "code":
            continue
        cell.source, count = strip_solutions(cell.source, where=f"{source.name}, cell {index}")
        total += count
        cell.outputs, cell.execution_count = [], None
    if total == 0:
        return None
    notebook.metadata.pop("jupytext", None)  # student copies are plain notebooks, not pairs
    return notebook


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.teaching.exercises",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("student"))
    parser.add_argument("--check", action="store_true", help="only report missing or stale copies")
    args = parser.parse_args(argv)
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
