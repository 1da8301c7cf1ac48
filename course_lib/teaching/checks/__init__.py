"""Exercise checks, one module per notebook: ``from course_lib.teaching.checks import nb04 as checks``, then
``checks.check_<name>(your_function)``. What they share is in :mod:`.common`."""
