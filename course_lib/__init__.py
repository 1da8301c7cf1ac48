"""course_lib: the shared plumbing of the meta-learning course.

Each module's docstring names the notebook that introduces it. Notebooks
import it as ``import course_lib as cl``.
"""

from .runtime import by_mode, get_device, get_mode, is_smoke, notebook_setup, seed_everything

__version__ = "0.1.0"

__all__ = ["by_mode", "get_device", "get_mode", "is_smoke", "notebook_setup", "seed_everything"]
