"""Shared tools for the tests of the exercise checks (tests/test_checks_*.py).

Every check must reject a wrong implementation with an ``ExerciseError`` that
starts with the check's name and names the mistake, and must let a student's
unfinished ``NotImplementedError`` through rather than hide it. ``checks`` is
the notebook's module of checks, e.g. ``course_lib.teaching.checks.nb06``.

The reference solution a check must accept is taken from the notebook itself
(``notebook_solution``), not from a copy in the test: a test then fails when
the notebook's solution is wrong, and the two cannot drift apart.
"""

from __future__ import annotations

import ast
import builtins
import functools
import symtable
from pathlib import Path
from types import ModuleType

import pytest

from course_lib.teaching.checks.common import ExerciseError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"  # the jupytext sources, notebooks/NN_slug.py
SOLUTION_MARKER = "# BEGIN SOLUTION"  # the start of a solution block (course_tools/exercises.py)


def assert_rejected_in_plain_words(checks: ModuleType, check: str, function, words: str) -> None:
    """``checks.<check>(function)`` fails, and its message starts with ``check`` and contains ``words``."""
    with pytest.raises(ExerciseError) as error:
        getattr(checks, check)(function)
    assert words in str(error.value), str(error.value)
    assert str(error.value).startswith(check)


def assert_unfinished_exercises_surface(checks: ModuleType, *check_names: str) -> None:
    """A placeholder that raises NotImplementedError reaches the student unchanged from every check."""

    def unfinished(*args):
        raise NotImplementedError("Exercise: write this part")

    for check in check_names:
        with pytest.raises(NotImplementedError):
            getattr(checks, check)(unfinished)


# ---------------------------------------------------------------- the notebooks' reference solutions


class NotebookSolutionError(LookupError):
    """A reference solution a test asks for is not in the notebook, or cannot be defined outside it."""


def notebook_solution(notebook: str, name: str, **namespace):
    """The reference solution ``name`` of ``notebooks/<notebook>.py``, defined afresh from the notebook's source.

    ``name`` must be a top-level function whose body holds a ``# BEGIN SOLUTION`` block. Only its definition
    runs, not the notebook, in a namespace of the notebook's top-level imports, so it reads ``torch``, ``F``,
    ``checks`` or ``cl`` as the notebook does. The other notebook globals it reads are filled in too: another
    top-level function of the notebook (defined the same way: ``training_step`` comes with the notebook's
    ``cross_entropy``), or a name the notebook binds to a literal (``TICKS = 2``). ``namespace`` overrides any
    of them, e.g. ``notebook_solution("05_black_box", "meta_train", episode_sequence=unfinished)``; a global
    that is none of these must be given that way, or a ``NotebookSolutionError`` says which one is missing.
    """
    parsed = _parse(*_read(notebook))
    candidates = [node for node in parsed.definitions.get(name, []) if node in parsed.solutions]
    if not candidates:
        found = "has no solution block" if name in parsed.definitions else "is not a top-level function there"
        raise NotebookSolutionError(f"{parsed.where}: {name!r} {found}; its reference solutions are "
                                    f"{', '.join(solution_lines(notebook)) or 'none'}")
    if len(candidates) > 1:
        raise NotebookSolutionError(f"{parsed.where}: {name!r} is defined with a solution block "
                                    f"{len(candidates)} times (lines {[n.lineno for n in candidates]})")
    globals_ = {"__name__": Path(parsed.where).stem, **parsed.imports, **namespace}
    _define(parsed, candidates[0], globals_, requested_by=name)
    return globals_[name]


def solution_lines(notebook: str) -> dict[str, tuple[int, int]]:
    """``{name: (first line, last line)}`` of every top-level function of the notebook with a solution block."""
    parsed = _parse(*_read(notebook))
    return {node.name: (node.lineno, node.end_lineno) for node in parsed.solutions}


def _read(notebook: str) -> tuple[str, str]:
    path = NOTEBOOKS / f"{notebook}.py"
    if not path.is_file():
        raise NotebookSolutionError(f"no notebook {path} (give the file's stem, e.g. '01_supervised_learning')")
    return str(path), path.read_text(encoding="utf-8")


class _Parsed:
    """A notebook's source, parsed: its top-level definitions, literals and imports."""

    def __init__(self, where: str, source: str):
        self.where, self.lines = where, source.splitlines()
        tree = ast.parse(source, where)
        self.definitions: dict[str, list[ast.stmt]] = {}
        self.literals: dict[str, ast.expr] = {}  # as the last top-level binding of each name leaves it
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.definitions.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                self._note_literals(node)
        self.solutions = [node for nodes in self.definitions.values() for node in nodes
                          if isinstance(node, ast.FunctionDef) and any(
                              line.lstrip().startswith(SOLUTION_MARKER)
                              for line in self.lines[node.lineno - 1:node.end_lineno])]
        self.solutions.sort(key=lambda node: node.lineno)
        self.scopes = {(table.get_name(), table.get_lineno()): table
                       for table in symtable.symtable(source, where, "exec").get_children()}
        imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        self.imports: dict = {}
        exec(compile(ast.Module(body=imports, type_ignores=[]), where, "exec"), self.imports)
        del self.imports["__builtins__"]

    def _note_literals(self, node: ast.Assign | ast.AnnAssign) -> None:
        """Note the names ``node`` binds to a literal (``A, B = 32, 10`` too); forget those it binds otherwise."""
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if isinstance(target, ast.Name):
                pairs = [(target, node.value)]
            elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(node.value, (ast.Tuple, ast.List)) \
                    and len(target.elts) == len(node.value.elts):
                pairs = list(zip(target.elts, node.value.elts))
            else:
                pairs = [(bound, None) for bound in ast.walk(target)]
            for bound, value in pairs:
                if isinstance(bound, ast.Name) and value is not None and _is_literal(value):
                    self.literals[bound.id] = value
                elif isinstance(bound, ast.Name):
                    self.literals.pop(bound.id, None)

    def globals_read(self, node: ast.stmt) -> set[str]:
        """The global names ``node``'s definition reads: in its body (nested functions and lambdas too) and when
        the ``def`` or ``class`` statement runs (decorators, defaults, annotations, bases)."""
        def collect(table):
            names = {symbol.get_name() for symbol in table.get_symbols() if symbol.is_global()}
            return names.union(*(collect(child) for child in table.get_children()))

        at_definition = [*node.decorator_list]
        if isinstance(node, ast.ClassDef):
            at_definition += [*node.bases, *(keyword.value for keyword in node.keywords)]
        else:
            arguments = node.args
            at_definition += [*arguments.defaults, *filter(None, arguments.kw_defaults), node.returns]
            at_definition += [a.annotation for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                                                     arguments.vararg, arguments.kwarg] if a is not None]
        names = {n.id for expr in at_definition if expr is not None for n in ast.walk(expr)
                 if isinstance(n, ast.Name)}
        return names | collect(self.scopes[node.name, node.lineno])


def _is_literal(expr: ast.expr) -> bool:
    try:
        ast.literal_eval(expr)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


@functools.lru_cache(maxsize=None)
def _parse(where: str, source: str) -> _Parsed:
    """Parsed once per notebook text (a changed text, e.g. a test's broken copy, is parsed again)."""
    return _Parsed(where, source)


def _define(parsed: _Parsed, node: ast.stmt, globals_: dict, requested_by: str) -> None:
    """Run ``node``'s definition in ``globals_``, after the notebook globals it reads that are not there yet."""
    globals_[node.name] = None  # a placeholder while its own dependencies are defined (recursion stops here)
    for name in sorted(parsed.globals_read(node)):
        if name in globals_ or hasattr(builtins, name):
            continue
        if name in parsed.definitions:  # the definition in force where node is defined, else the first below it
            above = [d for d in parsed.definitions[name] if d.lineno < node.lineno]
            _define(parsed, above[-1] if above else parsed.definitions[name][0], globals_, requested_by)
        elif name in parsed.literals:
            globals_[name] = ast.literal_eval(parsed.literals[name])
        else:
            raise NotebookSolutionError(
                f"{parsed.where}: {node.name} (line {node.lineno}) reads {name!r}, which the notebook neither "
                f"imports nor defines as a function or a literal; pass it: "
                f"notebook_solution(..., {requested_by!r}, {name}=...)")
    exec(compile(ast.Module(body=[node], type_ignores=[]), parsed.where, "exec"), globals_)
