"""What every exercise check shares: the error it raises and how it reports.

A check runs the student's function on small cases with known answers and
either prints that all cases pass or raises :class:`ExerciseError` saying in
plain words what is wrong (a shape, a sign, a missing mean), not just "failed".
Used by the modules ``nb01`` ... ``nb09`` of this package.
"""

from __future__ import annotations

from typing import Callable

import torch


class ExerciseError(AssertionError):
    """Your function gave a wrong answer on a case with a known answer."""


def fail(check: str, message: str) -> None:
    """Raise :class:`ExerciseError` with the check's name and the plain-words ``message``."""
    raise ExerciseError(f"{check}: {message}")


def run_student(check: str, function: Callable, *args):
    """``function(*args)``; an unfinished exercise's ``NotImplementedError`` passes through, any other
    error becomes an :class:`ExerciseError` that names it."""
    try:
        return function(*args)
    except NotImplementedError:
        raise
    except Exception as error:  # show the student's error with the case that caused it
        raise ExerciseError(f"{check}: your function raised {type(error).__name__}: {error}") from error


def passed(check: str, cases: int) -> None:
    """Tell the student that every case passed."""
    print(f"✓ {check}: all {cases} cases pass")


def close(a, b, tol: float = 1e-5) -> bool:
    """Whether ``a`` and ``b`` agree to ``tol`` (absolute and relative), compared in float64."""
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol, rtol=tol)
