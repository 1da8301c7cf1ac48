"""The former command line of notebook 07, so that the commands recorded in ``data/vsml/*/config.json``
still run: ``python -m course_lib.vsml train ...`` is ``python -m course_lib train vsml ...``
(``--eval-only``: ``eval``; ``--model``: ``--learner``; ``--eval-streams``: ``--test-episodes``;
``--lr``: ``--meta-lr``)."""

from __future__ import annotations

import sys

from . import cli

RENAMED = {"--model": "--learner", "--eval-streams": "--test-episodes", **cli.RENAMED_OPTIONS}


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        argv = argv[1:]
    if any(a == "--eval-length" or a.startswith("--eval-length=") for a in argv):
        raise SystemExit("error: --eval-length is gone: test streams have --stream-length examples")
    command = "eval" if "--eval-only" in argv else "train"
    return cli.main([command, "vsml", *[RENAMED.get(a, a) for a in argv if a != "--eval-only"]])
