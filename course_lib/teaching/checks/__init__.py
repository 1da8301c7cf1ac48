"""Checks for the exercises: call ``checks.check_<name>(your_function)`` after writing it.

One module per notebook (``nb01`` ... ``nb09``); a notebook imports its own
as ``from course_lib.teaching.checks import nb04 as checks``. The shared
error and reporting helpers are in :mod:`.common`.
"""
