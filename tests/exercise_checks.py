"""Shared assertions for the tests of the exercise checks (tests/test_checks_*.py).

Every check must reject a wrong implementation with an ``ExerciseError`` that
starts with the check's name and names the mistake, and must let a student's
unfinished ``NotImplementedError`` through rather than hide it. ``checks`` is
the notebook's module of checks, e.g. ``course_lib.teaching.checks.nb06``.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from course_lib.teaching.checks.common import ExerciseError


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
