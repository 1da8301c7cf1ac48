"""Tools for teaching with the library: the episode explorer, figures and the exercise checks. They import
the library; the library does not import them, except for the widget helper
:func:`~course_lib.teaching.plots.show_in_output`. (The student copies and the static website are built
by ``course_tools``.)
"""
