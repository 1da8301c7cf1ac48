"""``python -m course_lib train|eval METHOD ...``: see :mod:`course_lib.cli`."""

from .cli import main

main()
