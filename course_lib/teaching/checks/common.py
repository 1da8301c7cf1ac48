"""What every exercise check shares: the error it raises and how it reports.

A check runs the student's function on small cases with known answers and
either prints that all cases pass or raises :class:`ExerciseError` saying in
plain words what is wrong (a shape, a sign, a missing mean), not just "failed".
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch


class ExerciseError(AssertionError):
    """Your function gave a wrong answer on a case with a known answer."""


def fail(check: str, message: str) -> None:
    """Raise :class:`ExerciseError` with the check's name and the plain-words ``message``."""
    raise ExerciseError(f"{check}: {message}")


def fail_if(check: str, wrong: bool, message: str) -> None:
    """:func:`fail` with ``message`` when ``wrong``: one known mistake, named in plain words."""
    if wrong:
        fail(check, message)


def run_student(check: str, function: Callable, *args):
    """``function(*args)``; an unfinished exercise's ``NotImplementedError`` passes through, any other
    error becomes an :class:`ExerciseError` that names it."""
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # show the student's error with the case that caused it
        raise ExerciseError(f"{check}: your function raised {type(error).__name__}: {error}") from error


def run_for_tensor(check: str, function: Callable, *args) -> torch.Tensor:
    """:func:`run_student`, its answer as a tensor."""
    return torch.as_tensor(run_student(check, function, *args))


def run_for_items(check: str, function: Callable, *args, count: int, what: str) -> tuple:
    """:func:`run_student` for a function that returns ``count`` things (``what`` names them)."""
    result = run_student(check, function, *args)
    fail_if(check, not isinstance(result, (tuple, list)) or len(result) != count, f"return {what}")
    return tuple(result)


def diagnose(check: str, value, mistakes: Iterable[tuple[object, str]], otherwise: str, tol: float = 1e-5):
    """Fail with the message of the first ``(wrong answer, message)`` in ``mistakes`` that ``value`` is
    close to, else with ``otherwise``."""
    for wrong, message in mistakes:
        fail_if(check, close(value, wrong, tol), message)
    fail(check, otherwise)


def passed(check: str, cases: int) -> None:
    """Tell the student that every case passed."""
    print(f"✓ {check}: all {cases} cases pass")


def close(a, b, tol: float = 1e-5) -> bool:
    """Whether ``a`` and ``b`` agree to ``tol`` (absolute and relative), compared in float64."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return torch.allclose(a, b, atol=tol, rtol=tol)
