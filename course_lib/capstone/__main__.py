"""``python -m course_lib.capstone``: the command line of :mod:`course_lib.capstone.cli`."""

from .cli import main

main()
