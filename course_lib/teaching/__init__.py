"""Tools for teaching with the library, kept apart from the methods themselves.

The episode explorer widget (notebooks 02-03), the figures (``plots``), the
exercise checks (one module per notebook, ``checks.nb01`` ... ``checks.nb09``),
the student copies (``python -m course_lib.teaching.exercises``) and the
static website (``python -m course_lib.teaching.site build``). These modules
import the library; the library does not import them, except for the widget
helper :func:`~course_lib.teaching.plots.show_in_output`.
"""
