"""``python -m course_lib.maml ...``: the former command line (see :func:`course_lib.maml.training.main`)."""

from .training import main

main()
