"""``python -m course_lib.maml ...``: the former command line (:func:`course_lib.maml.training.main`)."""

from .training import main

main()
