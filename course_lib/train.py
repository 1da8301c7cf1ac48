"""The former command line of notebook 03, kept so that the commands recorded
in the shipped run folders still run: ``python -m course_lib.train METHOD ...``
is ``python -m course_lib train METHOD ...`` (``--eval-only``: ``eval``; ``--lr``: ``--meta-lr``)."""

from __future__ import annotations

import sys

from . import cli

RENAMED = {"--halve-every": "--lr-halve-every", **cli.RENAMED_OPTIONS}


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "eval" if "--eval-only" in argv else "train"
    argv = [RENAMED.get(a, a) for a in argv if a != "--eval-only"]
    return cli.main([command, *argv])


if __name__ == "__main__":
    main()
